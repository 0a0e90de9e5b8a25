"""Verifying a zoo folder or Hub repo: layout, ``meta/info.json``, checksums, schemas, splits, and rows.

:func:`verify_zoo` returns the problems it finds, one sentence each naming the file (and row); an
empty list means the zoo is sound. ``python -m builders.verify DIR_OR_REPO_ID`` prints them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml
from datasets import Features

from .errors import ZooError
from .format import CARD_PATH, DATA_DIR, INFO_PATH, RELEASE_SOURCE, SPLITS, ZooInfo, ZooSpec, decode_weights, file_sha256, zoo_spec
from .hub import shard_paths
from .lstm import lstm_forward, stack_params

LOG_PROB_TOLERANCE = (2**-9, 2e-3)
"""(relative, absolute) tolerance between recomputed and stored ``log_probs`` (stored as float16)."""
REPRODUCTION_MARGIN = LOG_PROB_TOLERANCE[1]
"""Added to the largest error measured at the import of the paper's release: float32 rounding differs across machines."""


def local_zoo(source: str | Path, revision: str | None = None) -> Path:
    """A folder holding the zoo: ``source`` itself, or a download of the Hub dataset repo ``source``."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(str(source), repo_type="dataset", revision=revision))
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as error:
        raise ZooError(f"{source} is neither a local folder nor a reachable dataset repo on the Hub ({type(error).__name__})") from None


def verify_zoo(source: str | Path, sample_rows: int = 8, revision: str | None = None) -> list[str]:
    """Check a zoo and return its problems (empty if none).

    Checks the layout, ``meta/info.json`` (format version, row counts, the checksum of every data
    file), the card's ``configs``, the schema of every shard, that splits are disjoint by task and
    keep runs whole, and that on ``sample_rows`` rows spread over the zoo the decoded weights
    reproduce ``log_probs`` from ``inputs`` within :data:`LOG_PROB_TOLERANCE` (a zoo imported from the
    paper's release also within its recorded, measured ``log_probs_reproduction``: see :func:`reproduction_bound`).
    """
    folder = local_zoo(source, revision)
    problems: list[str] = []
    if not (folder / CARD_PATH).is_file():
        problems.append(f"{CARD_PATH} (the dataset card) is missing")
    try:
        info = ZooInfo.load(folder)
        spec = zoo_spec(info.zoo)
    except ZooError as error:
        return problems + [str(error)]
    light = _check_files(folder, info, spec, problems)
    _check_card(folder, info, problems)
    _check_splits(info, spec, light, problems)
    _check_rows(folder, spec, light, sample_rows, reproduction_bound(info, problems), problems)
    return problems


def reproduction_bound(info: ZooInfo, problems: list[str]) -> float | None:
    """The largest error a sampled row may show when it misses :data:`LOG_PROB_TOLERANCE`; None: no such allowance.

    Only a zoo imported from the paper's release (``builder["source"] == "paper-release"``) may carry
    ``log_probs_reproduction``, the error measured over all its rows at import; it then allows that
    error plus :data:`REPRODUCTION_MARGIN`. On any other zoo the record is reported as a problem and
    ignored, so it never loosens the check of a built zoo.
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
    return record.max_abs_error + REPRODUCTION_MARGIN


def _check_files(folder: Path, info: ZooInfo, spec: ZooSpec, problems: list[str]) -> dict[str, pa.Table]:
    """Existence, names, checksums, schemas and row counts of the data files.

    Returns the ``run``, ``step`` and ``task`` columns of every readable file, by path.
    """
    listed = [path for split in SPLITS for path in info.splits[split].files]
    on_disk = {path.relative_to(folder).as_posix() for path in (folder / DATA_DIR).glob("*.parquet")}
    for path in sorted(on_disk - set(listed)):
        problems.append(f"{path} is not listed in {INFO_PATH}")
    if set(info.checksums) != set(listed):
        problems.append(f"{INFO_PATH} lists checksums for {sorted(info.checksums)} but data files {sorted(listed)}")
    readable: dict[str, pa.Table] = {}
    for split in SPLITS:
        entry = info.splits[split]
        if entry.files != shard_paths(split, entry.num_rows):
            problems.append(f"{INFO_PATH}: split {split} with {entry.num_rows} rows should have the files {shard_paths(split, entry.num_rows)}, lists {entry.files}")
        rows = 0
        for path in entry.files:
            if path not in on_disk:
                problems.append(f"{path} is missing")
                continue
            if info.checksums.get(path) != file_sha256(folder / path):
                problems.append(f"{path} does not match its checksum in {INFO_PATH} (corrupt, truncated or modified)")
            try:
                found = Features.from_arrow_schema(pq.read_schema(folder / path))
                if found != spec.features:
                    problems.append(f"{path} has the schema {found}, expected the {spec.name} schema {spec.features}")
                    continue
                readable[path] = pq.read_table(folder / path, columns=["run", "step", "task"])
            except Exception as error:  # pyarrow raises several types for a damaged file
                problems.append(f"{path} is not a readable Parquet file ({type(error).__name__}: {error})")
                continue
            rows += readable[path].num_rows
        if rows != entry.num_rows and all(path in readable for path in entry.files):
            problems.append(f"split {split} has {rows} rows in its files, {INFO_PATH} says {entry.num_rows}")
    return readable


def _check_card(folder: Path, info: ZooInfo, problems: list[str]) -> None:
    """The card's YAML ``configs`` point every non-empty split at its files."""
    path = folder / CARD_PATH
    if not path.is_file():
        return
    text = path.read_text()
    try:
        header = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else None
        configs = {entry["split"]: entry["path"] for entry in header["configs"][0]["data_files"]}
    except (IndexError, KeyError, TypeError, yaml.YAMLError):
        problems.append(f"{CARD_PATH} has no YAML header with configs mapping splits to data files")
        return
    for split in SPLITS:
        wanted = f"{DATA_DIR}/{split}-*" if info.splits[split].num_rows else None
        if configs.get(split) != wanted:
            problems.append(f"{CARD_PATH} maps split {split} to {configs.get(split)!r}, expected {wanted!r}")


def _check_splits(info: ZooInfo, spec: ZooSpec, light: dict[str, pa.Table], problems: list[str]) -> None:
    """Splits are disjoint by task and by run, every run has every snapshot, and they match ``meta/info.json``."""
    tasks_of, runs_of = {}, {}
    for split in SPLITS:
        if not all(path in light for path in info.splits[split].files):
            continue
        tables = [light[path] for path in info.splits[split].files]
        runs = [run for table in tables for run in table.column("run").to_pylist()]
        steps = [step for table in tables for step in table.column("step").to_pylist()]
        tasks = [spec.task_key(task) for table in tables for task in table.column("task").to_pylist()]
        tasks_of[split], runs_of[split] = set(tasks), set(runs)
        recorded = {spec.task_key(task) for task in info.splits[split].tasks}
        if tasks_of[split] != recorded:
            problems.append(f"split {split}: its rows hold the tasks {sorted(tasks_of[split])}, {INFO_PATH} lists {sorted(recorded)}")
        if runs_of[split] != set(info.splits[split].runs):
            problems.append(f"split {split}: its rows hold the runs {sorted(runs_of[split])}, {INFO_PATH} lists {info.splits[split].runs}")
        for run in sorted(runs_of[split]):
            run_steps = sorted(step for r, step in zip(runs, steps) if r == run)
            if run_steps != sorted(info.snapshot_steps):
                problems.append(f"split {split}: run {run} has the steps {run_steps}, expected {info.snapshot_steps}")
    names = list(tasks_of)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if shared := tasks_of[first] & tasks_of[second]:
                problems.append(f"splits {first} and {second} share the tasks {sorted(shared)[:5]}")
            if shared := runs_of[first] & runs_of[second]:
                problems.append(f"splits {first} and {second} share the runs {sorted(shared)[:5]}")


def _check_rows(
    folder: Path, spec: ZooSpec, light: dict[str, pa.Table], sample_rows: int, bound: float | None, problems: list[str]
) -> None:
    """On rows spread evenly over the readable files, the decoded weights reproduce ``log_probs``.

    A row passes within :data:`LOG_PROB_TOLERANCE`, or, if ``bound`` is set, with its largest error at most ``bound``.
    """
    readable = list(light)
    counts = [light[path].num_rows for path in readable]
    total = sum(counts)
    if total == 0 or sample_rows <= 0:
        return
    picks = sorted(set(np.linspace(0, total - 1, min(sample_rows, total)).round().astype(int).tolist()))
    offsets = np.cumsum([0, *counts])
    rtol, atol = LOG_PROB_TOLERANCE
    for path, start, count in zip(readable, offsets[:-1], counts):
        local = [pick - start for pick in picks if start <= pick < start + count]
        if not local:
            continue
        try:
            rows = _read_rows(folder / path, local)
        except Exception as error:  # a damaged page in a column the light read did not touch
            problems.append(f"{path} is not a readable Parquet file ({type(error).__name__}: {error})")
            continue
        for position, index in enumerate(local):
            label = f"{path} row {index} (run {rows['run'][position]}, step {rows['step'][position]})"
            try:
                params = stack_params([decode_weights(rows["weights"][position], spec.architecture)])
            except ZooError as error:
                problems.append(f"{label}: {error}")
                continue
            inputs = torch.as_tensor(np.asarray(rows["inputs"][position])).unsqueeze(0)
            stored = torch.as_tensor(np.asarray(rows["log_probs"][position], dtype=np.float32))
            with torch.no_grad():
                logits, _ = lstm_forward(params, spec.model_inputs(inputs))
            recomputed = torch.log_softmax(logits[0], dim=-1)
            error = (recomputed - stored).abs()
            largest = error.max().item()
            if bool((error <= atol + rtol * stored.abs()).all()) or (bound is not None and largest <= bound):
                continue
            allowed = "" if bound is None else f"; the import of the release measured at most {bound - REPRODUCTION_MARGIN:.3g}"
            problems.append(f"{label}: the weights do not reproduce log_probs from inputs (largest error {largest:.3g}{allowed})")


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
