"""Writing a zoo folder in the Hub layout: Parquet shards, ``meta/info.json`` and the dataset card.

Every file is written under a temporary name in its final folder and renamed into place, so an
interrupted write never leaves a truncated file under a real name.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features
from datasets.arrow_writer import ParquetWriter

from .cards import card_metadata, write_card
from ..common.errors import DamagedZooError
from ..common.files import atomic_write
from ..format.info import (
    DATA_DIR, FORMAT_VERSION, INFO_PATH, ROW_GROUP_SIZE, ROWS_PER_SHARD, SPLITS, SplitInfo, ZooInfo, file_sha256, shard_paths,
)
from ..zoos import ZooKind, known_zoos
from .plots import card_plots
from ..format.splits import split_sizes, split_tasks, task_mask

def write_parquet(path: str | Path, features: Features, batches: Iterable[dict[str, Any] | pa.Table]) -> int:
    """Write rows (column dicts or Arrow tables with these features) to one Parquet file atomically; returns the row count."""
    with atomic_write(path) as temporary:
        return write_parquet_file(temporary, features, batches)


def write_parquet_file(path: Path, features: Features, batches: Iterable[dict[str, Any] | pa.Table]) -> int:
    """Write rows to the Parquet file ``path`` directly (a temporary name: the caller renames it); returns the row count."""
    writer = ParquetWriter(path=str(path), features=features, writer_batch_size=ROW_GROUP_SIZE)
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

    Returns the shards' relative paths and the rows' size in Arrow memory (the Hub's ``num_bytes``, :func:`arrow_size`).
    Raises :class:`ZooError` if the tables hold more or fewer than ``num_rows`` rows (the shards
    written by then are incomplete; ``meta/info.json`` is written only after every split).
    """
    paths = shard_paths(split, num_rows)
    pending = _rechunk(tables, ROWS_PER_SHARD)
    num_bytes = found = 0
    for relative, table in zip(paths, pending):
        num_bytes += arrow_size(table)
        found += table.num_rows
        write_parquet(folder / relative, features, [table])
    found += sum(table.num_rows for table in pending)
    if found != num_rows:
        raise DamagedZooError(f"split {split} has {found} rows, {num_rows} were expected: the rows it was written from are incomplete "
                       f"or repeated, so {folder} is left unfinished; delete it and write it again")
    return paths, num_bytes


def arrow_size(table: pa.Table) -> int:
    """The bytes ``table``'s rows take in Arrow memory as one contiguous copy: a function of the rows alone. (``nbytes``
    of the table itself counts an offset per chunk and whole bitmaps of slices, so it changes with how the rows arrived:
    with ``--runs-per-batch``.)"""
    return sum(pa.concat_arrays([column.chunk(0).slice(0, 0), *column.chunks]).nbytes if column.num_chunks else 0
               for column in table.columns)


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


@dataclass
class SplitPlan:
    """The tasks (as task keys) and runs of one split."""

    tasks: list[Hashable]
    runs: list[int]


def plan_splits(kind: ZooKind, run_tasks: dict[int, Any]) -> dict[str, SplitPlan]:
    """Assign every run to a split by its task, as the paper's code does (see :func:`rnn_zoos.format.splits.split_tasks`).

    ``run_tasks`` maps runs to task cells; a release's own values (float64 angles) may be given, so
    that the criterion sees exactly what the paper's code saw.
    """
    runs = sorted(run_tasks)
    vectors = kind.task_array([run_tasks[run] for run in runs])
    plan = {}
    for split, chosen in split_tasks(vectors, kind.criterion).items():
        member = task_mask(vectors, chosen)
        keys = sorted({kind.task_key(run_tasks[run]) for run, inside in zip(runs, member) if inside})
        plan[split] = SplitPlan(keys, [run for run, inside in zip(runs, member) if inside])
    return plan


LIGHT_COLUMNS = ["run", "step", "task", "accuracy"]
"""The columns every zoo has that its card plots and ``verify`` read whole (a kind adds its extra columns)."""


def write_zoo_layout(
    folder: Path,
    kind: ZooKind,
    plan: dict[str, SplitPlan],
    rows_of: Callable[[list[int]], Iterable[pa.Table]],
    rows_per_split: dict[str, int],
    info_fields: dict[str, Any],
    card_fields: dict[str, Any],
) -> ZooInfo:
    """Write a zoo folder's data files, ``meta/info.json``, plots and card; returns the info record.

    Args:
        plan: the runs of each split.
        rows_of: the rows of the given runs as Arrow tables of ``kind.features``, ordered by (run, step).
        rows_per_split: how many rows each split has.
        info_fields: ``builder``, ``snapshot_steps`` and ``notes`` of the :class:`ZooInfo`.
        card_fields: the zoo-specific ``$placeholders`` of the kind's card template, and the provenance ones
            (:func:`rnn_zoos.hub.cards.provenance_fields`).
    """
    splits = {}
    for split in SPLITS:
        runs = plan[split].runs
        files, num_bytes = write_split(folder, split, kind.features, rows_of(runs), rows_per_split[split])
        tasks = [kind.task_cell(task) for task in plan[split].tasks]
        splits[split] = SplitInfo(tasks=tasks, runs=runs, num_rows=rows_per_split[split], num_bytes=num_bytes, files=files)
    all_files = [path for split in splits.values() for path in split.files]
    remove_stale_data(folder, all_files)
    info = ZooInfo(
        zoo=kind.name,
        architecture=kind.architecture,
        splits=splits,
        checksums={path: file_sha256(folder / path) for path in all_files},
        **info_fields,
    )
    light = {split: _read_columns(folder, entry.files, [*LIGHT_COLUMNS, *kind.extra_columns]) for split, entry in splits.items()}
    plots = card_plots(folder, kind, light)
    fields = {
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
    write_card(folder, kind.card_template(), card_metadata(info, kind.features, folder), fields, kind.name)
    write_info(folder, info)
    return info


def _read_columns(folder: Path, files: list[str], columns: list[str]) -> pa.Table | None:
    tables = [pq.read_table(folder / path, columns=columns) for path in files]
    return pa.concat_tables(tables) if tables else None


def summary_line(folder: Path, seconds: float) -> str:
    """The line a command that wrote a zoo ends with: the folder, the zoo, its rows per split and the time taken; and a
    second line if a split is empty (:func:`empty_split_warning`)."""
    info = ZooInfo.load(folder, known_zoos())
    rows = ", ".join(f"{split} {entry.num_rows}" for split, entry in info.splits.items())
    tasks = {split: len(entry.tasks) for split, entry in info.splits.items()}
    warning = empty_split_warning(tasks, f"{folder} has {sum(tasks.values())} tasks")
    return f"{folder}: {info.zoo} zoo with {rows} rows; {seconds:.0f} s" + (f"\n{warning}" if warning else "")


def empty_split_warning(tasks: dict[str, int], subject: str) -> str | None:
    """A ``warning:`` line if a split has no tasks (``tasks``: the tasks per split), saying why and what to do; None if
    every split has some. ``subject``: whose tasks they are (``DIR has 4 tasks``, ``--runs 4 gives at most 4 tasks``)."""
    empty = [split for split, count in tasks.items() if count == 0]
    if not empty:
        return None
    needed = next(count for count in range(1, 1000) if all(split_sizes(count).values()))
    selects = "; rnn-zoos pretrain then selects its best model on ood" if empty == ["validation"] else ""
    return (f"warning: {subject}: none for {' and '.join(empty)}, as splits are by task (70, 15 and 15 % of them){selects}; "
            f"build with more runs ({needed} tasks or more) for every split")
