"""Verifying a zoo folder or Hub repo: layout, ``meta/info.json``, checksums, schemas, splits, and rows.

:func:`verify_zoo` returns the problems it finds, one sentence each naming the file (and row); an
empty list means the zoo is sound. ``rnn-zoos verify DIR_OR_REPO_ID`` prints them.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..common.arguments import REVISION, ZOO, CommandParser
from ..common.errors import DamagedZooError, ZooError, report
from ..common.files import TEMPORARY_NAME
from ..format.info import CARD_PATH, DATA_DIR, INFO_PATH, RELEASE_SOURCE, SPLITS, ZooInfo, file_sha256, short
from ..zoos import ZooKind, known_zoos, zoo_kind
from ..format.blob import decode_weights
from .cards import read_card
from ..format.info import ROW_GROUP_SIZE, ROWS_PER_SHARD, shard_paths, shard_rows
from .loading import check_data_file, conventions_note, read_info, unlisted_files
from .sources import resolve_zoo
from ..lstm.functional import lstm_forward, stack_params
from .plots import ASSETS_DIR

LOG_PROB_TOLERANCE = (2**-9, 2e-3)
"""(relative, absolute) tolerance between recomputed and stored ``log_probs`` (stored as float16)."""
REPRODUCTION_MARGIN = LOG_PROB_TOLERANCE[1]
"""Added to the largest error measured at the import of the paper's release: float32 rounding differs across machines."""
MAX_ROW_MEAN_ERROR = 0.02
"""The largest mean error of one row (over its sequences, positions and classes) that an imported zoo may have: the
paper's float16 inputs give about 0.001; random log-probs give about 1."""
MAX_REPRODUCTION_ERROR = 10.0
"""The largest ``log_probs_reproduction.max_abs_error`` an imported zoo may record (a log-probability off by a factor of
about 22,000 in probability)."""
LIGHT_COLUMNS = ["run", "step", "task"]
"""The columns read from every row (the weights are read in batches, the heavy columns only on sampled rows)."""
MAX_ROW_PROBLEMS = 3
"""Rows with unreadable weights named per file; the rest are counted."""


def verify_zoo(source: str | Path, sample_rows: int = 8, revision: str | None = None) -> list[str]:
    """Check a zoo and return its problems (empty if none).

    Checks the layout (no unlisted or leftover temporary files), ``meta/info.json`` (format version,
    every field, row counts, the checksum of every data file), the card's ``configs``, the schema of
    every shard, that splits are disjoint by task and keep runs whole, that every row's weights blob
    is a sound blob of the zoo's architecture, and that on ``sample_rows`` rows spread over the zoo the
    decoded weights reproduce ``log_probs`` from ``inputs`` within :data:`LOG_PROB_TOLERANCE` (a zoo
    imported from the paper's release also within its recorded, measured ``log_probs_reproduction``:
    see :func:`reproduction_bound`). Raises :class:`ZooError` only for bad arguments (a negative
    ``sample_rows``, a folder or repo that does not exist).
    """
    if sample_rows < 0:
        raise ZooError(f"sample_rows must be 0 or more, not {sample_rows}")
    folder = resolve_zoo(source, revision).snapshot()
    problems: list[str] = []
    if not (folder / CARD_PATH).is_file():
        problems.append(f"{CARD_PATH} (the dataset card) is missing")
    problems += leftover_temporary_files(folder)
    try:
        info = ZooInfo.read(folder / INFO_PATH, INFO_PATH, known_zoos())
        kind = zoo_kind(info.zoo)
    except ZooError as error:
        return problems + [str(error)]
    if info.architecture != kind.architecture:
        problems.append(f"{INFO_PATH} records the architecture {info.architecture}; a {kind.name} zoo has {kind.architecture}")
    light = _check_files(folder, info, kind, problems)
    _check_card(folder, info, problems)
    _check_splits(info, kind, light, problems)
    _check_pages_and_blobs(folder, kind, light, problems)
    _check_rows(folder, kind, light, sample_rows, reproduction_bound(info, problems), problems)
    return problems


def leftover_temporary_files(folder: Path) -> list[str]:
    """Problems for the temporary files (``.NAME.tmp-HOST-PID``) that an interrupted write left in a zoo's folders."""
    folders = [folder, *(folder / name for name in (DATA_DIR, Path(INFO_PATH).parent.name, ASSETS_DIR))]
    found = sorted(path.relative_to(folder).as_posix() for place in folders if place.is_dir() for path in place.iterdir()
                   if TEMPORARY_NAME.fullmatch(path.name))
    return [f"{path} is a temporary file left by an interrupted write; delete it" for path in found]


def reproduction_bound(info: ZooInfo, problems: list[str]) -> float | None:
    """The largest error a sampled row may show when it misses :data:`LOG_PROB_TOLERANCE`; None: no such allowance.

    Only a zoo imported from the paper's release (``builder["source"] == "paper-release"``) may carry
    ``log_probs_reproduction``, the error measured over all its rows at import; it then allows that
    error plus :data:`REPRODUCTION_MARGIN`. On any other zoo, or if it records more error than an import
    accepts (:data:`MAX_REPRODUCTION_ERROR`, :data:`MAX_ROW_MEAN_ERROR`), the record is reported as a problem
    and ignored, so a self-declared tolerance never loosens the check.
    """
    record = info.log_probs_reproduction
    if record is None:
        return None
    if info.builder.get("source") != RELEASE_SOURCE:
        problems.append(
            f"{INFO_PATH} records log_probs_reproduction, which only a zoo imported from the paper's release may carry "
            f"(builder source {info.builder.get('source')!r}); its rows are held to the standard tolerance: "
            "remove the record or rebuild the zoo"
        )
        return None
    if record.max_abs_error > MAX_REPRODUCTION_ERROR or record.mean_abs_error > MAX_ROW_MEAN_ERROR:
        problems.append(
            f"{INFO_PATH} records a log_probs_reproduction error of {record.max_abs_error:.3g} at most and {record.mean_abs_error:.3g} "
            f"on average, more than an import accepts ({MAX_REPRODUCTION_ERROR:g} and {MAX_ROW_MEAN_ERROR:g}); its rows are held "
            "to the standard tolerance: import the release again"
        )
        return None
    return record.max_abs_error + REPRODUCTION_MARGIN


def _check_files(folder: Path, info: ZooInfo, kind: ZooKind, problems: list[str]) -> dict[str, pa.Table]:
    """Existence, names, checksums, schemas and row counts of the data files.

    Returns the ``run``, ``step`` and ``task`` columns of every readable file, by path.
    """
    listed = [path for split in SPLITS for path in info.splits[split].files]
    for path in unlisted_files(folder, info):
        if not TEMPORARY_NAME.fullmatch(Path(path).name):  # those are reported as leftovers
            problems.append(f"{path} is not listed in {INFO_PATH}; delete it or rebuild the zoo")
    if len(set(listed)) != len(listed):
        problems.append(f"{INFO_PATH} lists a data file more than once: {short(sorted(listed), 200)}")
    if set(info.checksums) != set(listed):
        problems.append(f"{INFO_PATH} lists checksums for {short(sorted(info.checksums), 200)} but data files {short(sorted(listed), 200)}")
    readable: dict[str, pa.Table] = {}
    for split in SPLITS:
        entry = info.splits[split]
        count = -(-entry.num_rows // ROWS_PER_SHARD)
        if len(entry.files) != count or entry.files != shard_paths(split, entry.num_rows):
            problems.append(f"{INFO_PATH}: split {split} with {entry.num_rows} rows should have {count} files named "
                            f"{DATA_DIR}/{split}-NNNNN-of-{count:05d}.parquet, lists {short(entry.files, 200)}")
        for index, path in enumerate(entry.files):
            if not (folder / path).is_file():
                problems.append(f"{path} is missing")
                continue
            if info.checksums.get(path) != file_sha256(folder / path):
                problems.append(f"{path} does not match its checksum in {INFO_PATH} (corrupt, truncated or modified)")
            try:
                readable[path] = _light_columns(folder / path, path, kind, info.format_version, shard_rows(entry.num_rows, index))
            except DamagedZooError as error:
                problems.append(str(error))
    return readable


def _light_columns(path: Path, relative: str, kind: ZooKind, format_version: str, rows: int) -> pa.Table:
    """The ``run``, ``step`` and ``task`` columns of a data file with the zoo's schema (of format ``format_version``) and
    ``rows`` rows; DamagedZooError if its footer says otherwise (:func:`rnn_zoos.hub.loading.check_data_file`), it cannot be
    read or has empty (null) cells in them."""
    check_data_file(path, relative, kind, format_version, rows)
    try:
        table = pq.read_table(path, columns=LIGHT_COLUMNS)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise DamagedZooError(f"{relative} is not a readable Parquet file ({type(error).__name__}: {short(str(error), 200)})") from None
    if empty := [name for name in LIGHT_COLUMNS if table.column(name).null_count]:
        raise DamagedZooError(f"{relative} has empty (null) cells in the columns {', '.join(empty)}")
    return table


def _check_card(folder: Path, info: ZooInfo, problems: list[str]) -> None:
    """The card loads with ``DatasetCard.load`` and its ``configs`` point every non-empty split at its files."""
    if not (folder / CARD_PATH).is_file():
        return
    try:
        configs = {entry["split"]: entry["path"] for entry in read_card(folder).data.to_dict()["configs"][0]["data_files"]}
    except DamagedZooError as error:
        problems.append(str(error))
        return
    except (IndexError, KeyError, TypeError):
        problems.append(f"{CARD_PATH} has no YAML header with configs mapping splits to data files")
        return
    for split in SPLITS:
        wanted = f"{DATA_DIR}/{split}-*" if info.splits[split].num_rows else None
        if configs.get(split) != wanted:
            problems.append(f"{CARD_PATH} maps split {split} to {short(configs.get(split))}, expected {wanted!r}")


def _check_splits(info: ZooInfo, kind: ZooKind, light: dict[str, pa.Table], problems: list[str]) -> None:
    """Splits are disjoint by task and by run, every run has every snapshot, and they match ``meta/info.json``."""
    tasks_of, runs_of = {}, {}
    snapshot_steps = sorted(info.snapshot_steps)
    for split in SPLITS:
        if not all(path in light for path in info.splits[split].files):
            continue
        tables = [light[path] for path in info.splits[split].files]
        steps_of_run: dict[int, list[int]] = defaultdict(list)
        for table in tables:
            for run, step in zip(table.column("run").to_pylist(), table.column("step").to_pylist()):
                steps_of_run[run].append(step)
        tasks_of[split] = {kind.task_key(task) for table in tables for task in table.column("task").to_pylist()}
        runs_of[split] = set(steps_of_run)
        recorded = {kind.task_key(task) for task in info.splits[split].tasks}
        if tasks_of[split] != recorded:
            problems.append(f"split {split}: its rows hold the tasks {short(sorted(tasks_of[split]), 300)}, {INFO_PATH} lists {short(sorted(recorded), 300)}")
        if runs_of[split] != set(info.splits[split].runs):
            problems.append(f"split {split}: its rows hold the runs {short(sorted(runs_of[split]), 300)}, {INFO_PATH} lists {short(info.splits[split].runs, 300)}")
        for run in sorted(runs_of[split]):
            if (run_steps := sorted(steps_of_run[run])) != snapshot_steps:
                problems.append(f"split {split}: run {run} has the steps {short(run_steps, 300)}, expected {short(info.snapshot_steps, 300)}")
    names = list(tasks_of)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if shared := tasks_of[first] & tasks_of[second]:
                problems.append(f"splits {first} and {second} share the tasks {sorted(shared)[:5]}")
            if shared := runs_of[first] & runs_of[second]:
                problems.append(f"splits {first} and {second} share the runs {sorted(shared)[:5]}")


def _row_label(path: str, light: pa.Table, index: int) -> str:
    """A row named by file, index, run and step."""
    return f"{path} row {index} (run {light.column('run')[index]}, step {light.column('step')[index]})"


def _check_pages_and_blobs(folder: Path, kind: ZooKind, light: dict[str, pa.Table], problems: list[str]) -> None:
    """Every page of every readable data file decodes, and every row's ``weights`` cell is a sound weights blob of the
    zoo's architecture with finite weights (a few bad rows are named per file, the rest counted).

    Parquet pages carry no checksum here, so a page damaged under a matching file checksum shows only when it is read.
    """
    for path, table in light.items():
        bad: list[str] = []
        try:
            batches = pq.ParquetFile(folder / path).iter_batches(batch_size=ROW_GROUP_SIZE)
            blobs = (blob for batch in batches for blob in batch.column("weights").to_pylist())
            for index, blob in enumerate(blobs):
                try:
                    params = decode_weights(blob, kind.architecture)
                except ZooError as error:
                    bad.append(f"{_row_label(path, table, index)}: {error}")
                    continue
                if not all(bool(tensor.isfinite().all()) for tensor in params.values()):
                    bad.append(f"{_row_label(path, table, index)}: its weights hold NaN or infinite values")
        except Exception as error:  # pyarrow raises several types for a damaged page
            problems.append(f"{path} is not a readable Parquet file ({type(error).__name__}: {short(str(error), 200)})")
        problems += bad[:MAX_ROW_PROBLEMS]
        if len(bad) > MAX_ROW_PROBLEMS:
            problems.append(f"{path}: {len(bad) - MAX_ROW_PROBLEMS} more rows hold unreadable weights blobs")


def _check_rows(
    folder: Path, kind: ZooKind, light: dict[str, pa.Table], sample_rows: int, bound: float | None, problems: list[str]
) -> None:
    """On rows spread evenly over the readable files, the decoded weights reproduce ``log_probs``.

    A row passes within :data:`LOG_PROB_TOLERANCE`, or, if ``bound`` is set, with its largest error at most ``bound`` and
    its mean error at most :data:`MAX_ROW_MEAN_ERROR`.
    """
    readable = list(light)
    counts = [light[path].num_rows for path in readable]
    total = sum(counts)
    if total == 0 or sample_rows == 0:
        return
    picks = sorted(set(np.linspace(0, total - 1, min(sample_rows, total)).round().astype(int).tolist()))
    offsets = np.cumsum([0, *counts])
    for path, start, count in zip(readable, offsets[:-1], counts):
        local = [pick - start for pick in picks if start <= pick < start + count]
        if not local:
            continue
        try:
            rows = _read_rows(folder / path, local)
        except Exception as error:  # a damaged page in a column the light read did not touch
            problems.append(f"{path} is not a readable Parquet file ({type(error).__name__}: {short(str(error), 200)})")
            continue
        for position, index in enumerate(local):
            if problem := _row_problem(kind, {column: values[position] for column, values in rows.items()}, bound):
                problems.append(f"{_row_label(path, light[path], index)}: {problem}")


def _row_problem(kind: ZooKind, row: dict[str, Any], bound: float | None) -> str | None:
    """Why a row's weights do not reproduce its ``log_probs`` from its ``inputs``; None if they do.

    A row whose weights blob does not decode passes here: :func:`_check_pages_and_blobs` reports it.
    """
    try:
        params = stack_params([decode_weights(row["weights"], kind.architecture)])
    except ZooError:
        return None
    if row["inputs"] is None or row["log_probs"] is None:
        return "its inputs or log_probs cell is empty (null)"
    inputs = torch.as_tensor(np.asarray(row["inputs"])).unsqueeze(0)
    if kind.token_vocab is not None and not (0 <= int(inputs.min()) and int(inputs.max()) < kind.token_vocab):
        return f"its inputs hold token ids outside 0..{kind.token_vocab - 1}"
    stored = torch.as_tensor(np.asarray(row["log_probs"], dtype=np.float32))
    with torch.no_grad():
        logits, _ = lstm_forward(params, kind.model_inputs(inputs))
    error = (torch.log_softmax(logits[0], dim=-1) - stored).abs()
    largest, mean = error.max().item(), error.mean().item()
    rtol, atol = LOG_PROB_TOLERANCE
    if bool((error <= atol + rtol * stored.abs()).all()) or (bound is not None and largest <= bound and mean <= MAX_ROW_MEAN_ERROR):
        return None
    allowed = "" if bound is None else (f"; the import of the release measured at most {bound - REPRODUCTION_MARGIN:.3g}, "
                                        f"and a row may be off by {MAX_ROW_MEAN_ERROR:g} on average")
    return f"the weights do not reproduce log_probs from inputs (largest error {largest:.3g}, mean error {mean:.3g}{allowed})"


def _read_rows(path: Path, rows: list[int]) -> dict[str, list]:
    """Rows of a Parquet file by index, reading only the row groups that hold them."""
    parquet = pq.ParquetFile(path)
    sizes = [parquet.metadata.row_group(group).num_rows for group in range(parquet.num_row_groups)]
    starts = np.cumsum([0, *sizes])
    group_of = {row: int(np.searchsorted(starts, row, side="right")) - 1 for row in rows}
    groups = sorted(set(group_of.values()))
    first_in_read = dict(zip(groups, np.cumsum([0, *[sizes[group] for group in groups]])))
    positions = [int(first_in_read[group_of[row]] + row - starts[group_of[row]]) for row in rows]
    return parquet.read_row_groups(groups).take(positions).to_pydict()


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns 0 for a sound zoo, 1 if problems were found, 2 for bad options."""
    parser = CommandParser(prog or "rnn-zoos verify", "Check a zoo folder or Hub dataset repo; names every problem and exits non-zero if there is one.")
    parser.add(ZOO)
    parser.add(REVISION)
    parser.add_argument("--sample-rows", type=int, default=8, help="rows whose weights are checked against their log_probs (0 or more)")
    args = parser.parse_args(argv)
    try:
        problems = verify_zoo(args.zoo, sample_rows=args.sample_rows, revision=args.revision)
        note = None if problems else conventions_note(read_info(args.zoo, args.revision), args.zoo)
    except ZooError as error:
        return report(error)
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{args.zoo}: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.zoo}: ok" + (f"\nnote: {note}" if note else ""))
    return 0
