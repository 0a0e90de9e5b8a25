"""Finishing a build: the zoo written from the finished chunks, once, and the work folder discarded.

Under the build lock, the first process to find every chunk finished checks each chunk's snapshot
parts, assigns the splits and writes the Hub layout (:func:`rnn_zoos.hub.layout.write_zoo_layout`);
a process that comes later finds the work folder gone and the zoo complete, and changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..common.arguments import option_name
from ..zoos.build_config import ENGINE_OPTIONS, BuildConfig
from .build_folder import WORK_DIR, build_lock, discard_work
from ..hub.cards import provenance_fields
from .chunk_trainer import check_finished_chunk
from .claims import Chunk, is_finished
from ..hub.layout import plan_splits, write_zoo_layout
from ..lstm.training import STEP_CONVENTION, TrainingSchedule
from ..zoos import ZooRecipe


def build_command(kind_name: str, config: BuildConfig) -> str:
    """The command that builds this zoo: ``rnn-zoos build ZOO`` with every option of ``config`` spelled out."""
    options = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.name in ENGINE_OPTIONS:
            continue
        if value is True:
            options.append(option_name(item.name))
        elif value is not None and value is not False:
            options.append(f"{option_name(item.name)} {value}")
    return f"rnn-zoos build {kind_name} {' '.join(options)}"


def device_description(device: str) -> str:
    """The device a zoo was built on, in words: the GPU's name, or the CPU's."""
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def finalize_build(recipe: ZooRecipe, config: BuildConfig, identity: dict[str, Any], out: Path, plan: list[Chunk]) -> None:
    """Write the zoo from the finished chunks and discard the work folder, once: under the build lock, by the first
    process to get there (the others find the work folder gone, and a complete zoo is never touched again)."""
    with build_lock(out, identity):
        work = out / WORK_DIR
        if not work.is_dir() or not all(is_finished(work / chunk.name) for chunk in plan):
            return
        snapshot_steps = TrainingSchedule(steps=config.steps).snapshot_steps()
        for chunk in plan:
            check_finished_chunk(work / chunk.name, chunk, snapshot_steps)
        _finalize(recipe, config, identity, out, [work / chunk.name for chunk in plan])
        discard_work(work)


def _run_tasks(chunk_folders: list[Path]) -> dict[int, Any]:
    """The task of every run, read from the first part of each chunk."""
    tasks: dict[int, Any] = {}
    for folder in chunk_folders:
        first_part = min(folder.glob("step-*.parquet"))
        table = pq.read_table(first_part, columns=["run", "task"])
        tasks.update(zip(table.column("run").to_pylist(), table.column("task").to_pylist()))
    return tasks


def _split_tables(chunk_folders: list[Path], runs: set[int], group: int = 100) -> Iterator[pa.Table]:
    """The rows of ``runs`` as Arrow tables ordered by (run, step), reading a bounded group of runs at a time."""
    for folder in chunk_folders:
        parts = sorted(folder.glob("step-*.parquet"))
        chunk_runs = sorted(run for run in pq.read_table(parts[0], columns=["run"]).column("run").to_pylist() if run in runs)
        for start in range(0, len(chunk_runs), group):
            selected = chunk_runs[start : start + group]
            table = pa.concat_tables(pq.read_table(part, filters=[("run", "in", selected)]) for part in parts)
            yield table.sort_by([("run", "ascending"), ("step", "ascending")])


def _finalize(recipe: ZooRecipe, config: BuildConfig, identity: dict[str, Any], out: Path, chunk_folders: list[Path]) -> None:
    """Assign splits and write the Hub layout from the finished chunks."""
    kind = recipe.kind
    plan = plan_splits(kind, _run_tasks(chunk_folders))
    snapshot_steps = TrainingSchedule(steps=config.steps).snapshot_steps()
    write_zoo_layout(
        out,
        kind,
        plan,
        rows_of=lambda runs: _split_tables(chunk_folders, set(runs)),
        rows_per_split={split: len(entry.runs) * len(snapshot_steps) for split, entry in plan.items()},
        info_fields={"builder": identity, "snapshot_steps": snapshot_steps, "notes": [STEP_CONVENTION, *recipe.notes()]},
        card_fields={
            "steps": config.steps,
            "provenance": "rebuilt with the batched builder of rnn-zoos",
            **provenance_fields(build_command(kind.name, config), device_description(config.device)),
            "seeds": f"zoo seed {config.seed}; run r uses the seed `SeedSequence([{config.seed}, r])` (stored in `seed`), "
            "which alone determines all its random numbers",
            **recipe.card_fields(),
        },
    )
