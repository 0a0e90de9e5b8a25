"""Writing a zoo folder in the Hub layout: Parquet shards, ``meta/info.json`` and the dataset card.

Every file is written under a temporary name in its final folder and renamed into place, so an
interrupted write never leaves a truncated file under a real name.
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable

import string
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from datasets import Features
from datasets.arrow_writer import ParquetWriter

from .errors import DamagedZooError, ZooError
from .files import atomic_write
from .format import (
    CARD_PATH, DATA_DIR, FORMAT_VERSION, INFO_PATH, ROW_GROUP_SIZE, ROWS_PER_SHARD, SPLITS, SplitInfo, ZooInfo, file_sha256, shard_paths,
)
from .zoos import ZooSpec
from .plots import card_plots
from .splits import split_tasks, task_mask

def write_parquet(path: str | Path, features: Features, batches: Iterable[dict[str, Any] | pa.Table]) -> int:
    """Write rows (column dicts or Arrow tables with these features) to one Parquet file atomically; returns the row count."""
    with atomic_write(path) as temporary:
        writer = ParquetWriter(path=str(temporary), features=features, writer_batch_size=ROW_GROUP_SIZE)
        try:
            for batch in batches:
                if isinstance(batch, pa.Table):
                    writer.write_table(batch, writer_batch_size=ROW_GROUP_SIZE)
                else:
                    writer.write_batch(batch, writer_batch_size=ROW_GROUP_SIZE)
            num_rows, _ = writer.finalize()
        finally:
            writer.close()
    return num_rows


def write_split(folder: Path, split: str, features: Features, tables: Iterable[pa.Table], num_rows: int) -> tuple[list[str], int]:
    """Write the rows of one split, given as Arrow tables in order, into its shards.

    Returns the shards' relative paths and the rows' size in Arrow memory (the Hub's ``num_bytes``).
    Raises :class:`ZooError` if the tables hold more or fewer than ``num_rows`` rows (the shards
    written by then are incomplete; ``meta/info.json`` is written only after every split).
    """
    paths = shard_paths(split, num_rows)
    pending = _rechunk(tables, ROWS_PER_SHARD)
    num_bytes = found = 0
    for relative, table in zip(paths, pending):
        num_bytes += table.nbytes
        found += table.num_rows
        write_parquet(folder / relative, features, [table])
    found += sum(table.num_rows for table in pending)
    if found != num_rows:
        raise DamagedZooError(f"split {split} has {found} rows, {num_rows} were expected: the rows it was written from are incomplete "
                       f"or repeated, so {folder} is left unfinished; delete it and write it again")
    return paths, num_bytes


def _rechunk(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Regroup a stream of tables into tables of exactly ``rows`` rows (the last may be shorter)."""
    buffered: list[pa.Table] = []
    size = 0
    for table in tables:
        buffered.append(table)
        size += table.num_rows
        while size >= rows:
            merged = pa.concat_tables(buffered)
            yield merged.slice(0, rows)
            rest = merged.slice(rows)
            buffered, size = [rest], rest.num_rows
    if size:
        yield pa.concat_tables(buffered)


def remove_stale_data(folder: Path, keep: Iterable[str]) -> None:
    """Delete data files of an earlier, different write that are not among ``keep``."""
    keep = set(keep)
    for path in (folder / DATA_DIR).glob("*.parquet"):
        if path.relative_to(folder).as_posix() not in keep:
            path.unlink()


def write_info(folder: Path, info: ZooInfo) -> None:
    """Write ``meta/info.json`` atomically."""
    with atomic_write(folder / INFO_PATH) as temporary:
        temporary.write_text(info.to_json())


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` tag for a row count."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if num_rows < limit:
            return label
    return "1M<n<10M"


def card_metadata(info: ZooInfo, features: Features, folder: Path) -> str:
    """The generated part of the card's YAML header: ``configs``, ``dataset_info`` and ``size_categories``.

    ``datasets`` cannot load a split without files, so an empty split is left out (it stays in
    ``meta/info.json`` with zero rows, and :func:`rnn_zoos.load_zoo` returns it empty).
    ``dataset_info`` also keys ``datasets``' cache of a local folder to the zoo's content: without
    it, two zoo folders of the same name share one cache entry, and the second loads the first's rows.
    """
    present = [split for split in SPLITS if info.splits[split].num_rows]
    metadata = {
        "configs": [{"config_name": "default", "data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*"} for s in present]}],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": s, "num_bytes": info.splits[s].num_bytes, "num_examples": info.splits[s].num_rows} for s in present],
            "download_size": sum((folder / path).stat().st_size for path in info.checksums),
            "dataset_size": sum(info.splits[s].num_bytes for s in present),
        },
        "size_categories": [size_category(info.num_rows)],
    }
    return yaml.safe_dump(metadata, sort_keys=False).rstrip()


def card_template(zoo: str) -> Traversable:
    """The dataset card template of a zoo: ``dataset_cards/<zoo>.md`` (installed as ``rnn_zoos.dataset_cards``)."""
    return importlib.resources.files("rnn_zoos.dataset_cards") / f"{zoo}.md"


def write_card(folder: Path, template: Traversable, fields: dict[str, Any]) -> None:
    """Fill the card template (``$name`` placeholders) and write it as ``README.md`` atomically."""
    try:
        text = string.Template(template.read_text()).substitute({key: str(value) for key, value in fields.items()})
    except KeyError as error:
        raise ZooError(f"card template {template} uses ${error.args[0]}, which the builder does not fill in") from None
    with atomic_write(folder / CARD_PATH) as temporary:
        temporary.write_text(text)


@dataclass
class SplitPlan:
    """The tasks (as task keys) and runs of one split."""

    tasks: list[Hashable]
    runs: list[int]


def plan_splits(spec: ZooSpec, run_tasks: dict[int, Any]) -> dict[str, SplitPlan]:
    """Assign every run to a split by its task, as the paper's code does (see :func:`rnn_zoos.splits.split_tasks`).

    ``run_tasks`` maps runs to task cells; a release's own values (float64 angles) may be given, so
    that the criterion sees exactly what the paper's code saw.
    """
    runs = sorted(run_tasks)
    vectors = spec.task_array([run_tasks[run] for run in runs])
    plan = {}
    for split, chosen in split_tasks(vectors, spec.criterion).items():
        member = task_mask(vectors, chosen)
        keys = sorted({spec.task_key(run_tasks[run]) for run, inside in zip(runs, member) if inside})
        plan[split] = SplitPlan(keys, [run for run, inside in zip(runs, member) if inside])
    return plan


LIGHT_COLUMNS = ["run", "step", "task", "accuracy", "weight_decay"]


def write_zoo_layout(
    folder: Path,
    spec: ZooSpec,
    plan: dict[str, SplitPlan],
    rows_of: Callable[[list[int]], Iterable[pa.Table]],
    rows_per_split: dict[str, int],
    info_fields: dict[str, Any],
    template: Traversable,
    card_fields: dict[str, Any],
) -> ZooInfo:
    """Write a zoo folder's data files, ``meta/info.json``, plots and card; returns the info record.

    Args:
        plan: the runs of each split.
        rows_of: the rows of the given runs as Arrow tables of ``spec.features``, ordered by (run, step).
        rows_per_split: how many rows each split has.
        info_fields: ``builder``, ``snapshot_steps`` and ``notes`` of the :class:`ZooInfo`.
        template: the card template; ``card_fields`` fill its zoo-specific ``$placeholders``.
    """
    splits = {}
    for split in SPLITS:
        runs = plan[split].runs
        files, num_bytes = write_split(folder, split, spec.features, rows_of(runs), rows_per_split[split])
        tasks = [spec.task_cell(task) for task in plan[split].tasks]
        splits[split] = SplitInfo(tasks=tasks, runs=runs, num_rows=rows_per_split[split], num_bytes=num_bytes, files=files)
    all_files = [path for split in splits.values() for path in split.files]
    remove_stale_data(folder, all_files)
    info = ZooInfo(
        zoo=spec.name,
        architecture=spec.architecture,
        splits=splits,
        checksums={path: file_sha256(folder / path) for path in all_files},
        **info_fields,
    )
    light = {split: _read_columns(folder, entry.files, LIGHT_COLUMNS) for split, entry in splits.items()}
    plots = card_plots(folder, spec, light)
    fields = {
        "metadata": card_metadata(info, spec.features, folder),
        "format_version": FORMAT_VERSION,
        "runs": sum(len(entry.runs) for entry in splits.values()),
        "num_rows": info.num_rows,
        "snapshot_steps": ", ".join(map(str, info.snapshot_steps)),
        "split_table": "\n".join(
            f"| `{name}` | {len(entry.tasks)} | {len(entry.runs)} | {entry.num_rows} |" for name, entry in splits.items()
        ),
        "plots": "\n\n".join(f"![{caption}]({path})" for caption, path in plots),
        "notes": "\n".join(f"- {note}" for note in info.notes) or "- none",
        **card_fields,
    }
    write_card(folder, template, fields)
    write_info(folder, info)
    return info


def _read_columns(folder: Path, files: list[str], columns: list[str]) -> pa.Table | None:
    tables = [pq.read_table(folder / path, columns=columns) for path in files]
    return pa.concat_tables(tables) if tables else None
