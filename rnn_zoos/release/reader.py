"""Reading the paper's original release (NumPy files): :class:`Release` and the :class:`ReleaseFormat` each zoo kind defines.

A release folder is recognised by its name (``formal_languages_*``, ``sequential_mnist_*``: the
:class:`ReleaseFormat` of a zoo kind says which). Its arrays (0.5 to 1.5 GB each) are memory-mapped,
checked for shape, dtype and values before anything is converted, and read a block of rows at a
time. Each format repairs and notes what its release records differently from a built zoo (formal languages: ``BOS``
restored where the paper's acceptance check overwrote it; sequential MNIST: log-probs recorded
before the inputs were rounded, their measured reproduction recorded as
:class:`rnn_zoos.format.info.LogProbsReproduction`). :mod:`rnn_zoos.release.importer` writes the zoo folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import datasets
import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from ..format.blob import encode_weights
from ..common.errors import DamagedZooError, ZooError, short
from ..format.info import LogProbsReproduction
from ..lstm.functional import LSTMArchitecture, Params, lstm_forward, stack_params
from ..lstm.training import STEP_CONVENTION
from ..hub.verify import LOG_PROB_TOLERANCE, MAX_REPRODUCTION_ERROR, MAX_ROW_MEAN_ERROR, REPRODUCTION_MARGIN
from ..zoos import ZooKind, zoo_kind, zoo_names
from ..zoos.release_format import KIND_NAMES, ReleaseArray, ReleaseFormat

BLOCK_ROWS = 256
"""Release rows converted at a time."""
MEASURE_ROWS = 32
"""Release rows whose RNNs run at once when measuring how exactly they reproduce their log-probs (about 150 MB)."""
NO_SEED = -1
DAMAGED = "the release folder is damaged: download it again"
MAX_ARGS_BYTES = 1 << 20
"""The largest ``args.json`` a release may have (the paper's hold a few hundred bytes); it is copied into ``meta/info.json``."""
MAX_ARGS_DEPTH = 64
"""The deepest nesting of lists and objects ``args.json`` may have (the paper's: 1), so that ``meta/info.json`` stays readable."""
def unflatten_parameters(flat: torch.Tensor, architecture: LSTMArchitecture) -> Params:
    """One RNN's parameters from the release's flat vector: ``nn.LSTM``'s parameters, then ``nn.Linear``'s."""
    shapes = architecture.parameter_shapes()
    pieces = flat.split([math.prod(shape) for shape in shapes.values()])
    return {name: piece.view(shape) for (name, shape), piece in zip(shapes.items(), pieces)}


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in a value parsed from JSON (0 for a number or string), found without recursion."""
    depth, level = 0, [value]
    while containers := [item for item in level if isinstance(item, (list, dict))]:
        depth += 1
        level = [child for item in containers for child in (item.values() if isinstance(item, dict) else item)]
    return depth


def detect(source: Path) -> ZooKind:
    """The kind of zoo whose release the folder ``source`` holds, from its name; :class:`ZooError` if none."""
    kinds = [zoo_kind(name) for name in zoo_names() if zoo_kind(name).release is not None]
    for kind in kinds:
        if source.name.startswith(kind.release.prefix):
            if not source.is_dir():
                raise ZooError(f"no release folder {source}; pass a zoo folder of the paper's release")
            return kind
    prefixes = " or ".join(kind.release.prefix for kind in kinds)
    raise ZooError(f"{source} is not a zoo of the paper's release: its name must start with {prefixes}")


class Release:
    """The memory-mapped arrays of one release zoo, checked for shape and dtype (:meth:`check_values` checks the values).

    A folder that is not a release raises :class:`ZooError`; a release whose files are missing or hold what the
    release cannot hold raises :class:`DamagedZooError`, with one line naming the file.
    """

    def __init__(self, source: Path) -> None:
        self.source = source
        self.kind = detect(source)
        self.format: ReleaseFormat = self.kind.release
        for name in self.format.files:
            if not (source / name).is_file():
                files = ", ".join(self.format.files)
                raise DamagedZooError(f"{source / name} is missing; a {self.format.prefix} release folder holds {files}")
        self.args = self._read_args()
        self.format.check_args(self.args, source / "args.json")
        self.arrays = {name: self._load(name, array.kinds) for name, array in self.format.arrays.items()}
        parameters = self.arrays["parameters"]
        self.rows = parameters.shape[0] if parameters.ndim else 0
        if self.rows == 0:
            raise DamagedZooError(f"{self.path('parameters')} holds no snapshots; {DAMAGED}")
        for name, array in self.format.arrays.items():
            self._expect(name, array.shape)
        run_step = self.arrays[self.format.run_step]
        self.run, self.step = (np.asarray(run_step[:, i], dtype=np.int64) for i in (0, 1))

    def path(self, name: str) -> Path:
        """The file of the array ``name``."""
        return self.source / f"{name}.npy"

    def _read_args(self) -> dict[str, Any]:
        """The run options the release recorded in ``args.json``."""
        path = self.source / "args.json"
        if (size := path.stat().st_size) > MAX_ARGS_BYTES:
            raise DamagedZooError(f"{path} has {size:,} bytes, more than the {MAX_ARGS_BYTES:,} of run options a release holds; {DAMAGED}")
        try:
            args = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise DamagedZooError(f"{path} is not JSON ({error}); {DAMAGED}") from None
        if not isinstance(args, dict):
            raise DamagedZooError(f"{path} holds a JSON {type(args).__name__}, expected an object of the run options; {DAMAGED}")
        if (depth := json_depth(args)) > MAX_ARGS_DEPTH:
            raise DamagedZooError(f"{path} nests lists and objects {depth} deep, more than the {MAX_ARGS_DEPTH} run options need; {DAMAGED}")
        return args

    def _load(self, name: str, kinds: str) -> np.ndarray:
        expected = f"expected a NumPy array of {KIND_NAMES[kinds]}"
        try:
            array = np.load(self.path(name), mmap_mode="r")
        except (OSError, ValueError, EOFError) as error:
            raise DamagedZooError(f"cannot read {self.path(name)} ({error}); {expected}") from None
        if not isinstance(array, np.ndarray):
            array.close()  # a .npz archive saved under the name
            raise DamagedZooError(f"{self.path(name)} is a {type(array).__name__} (an .npz archive), not a .npy file; {expected}")
        if array.dtype.kind not in kinds:
            raise DamagedZooError(f"{self.path(name)} holds {array.dtype} values; {expected}")
        return array

    def _expect(self, name: str, shape: tuple[int, ...]) -> None:
        found = self.arrays[name].shape
        if found != (self.rows, *shape):
            raise DamagedZooError(f"{self.path(name)} has shape {found}, expected {(self.rows, *shape)} ({self.rows} snapshots)")

    def check_values(self) -> None:
        """Raise :class:`DamagedZooError` naming the file and row of the first NaN or infinite number, or of the first value
        outside an array's bounds (token ids, task components, weights, runs and steps); reads the memory-mapped arrays
        block by block."""
        for name, array in self.format.arrays.items():
            for start in range(0, self.rows, BLOCK_ROWS):
                block = np.asarray(self.arrays[name][start : start + BLOCK_ROWS])
                self._check_block(name, array, start, block.reshape(len(block), -1))

    def _check_block(self, name: str, array: ReleaseArray, start: int, block: np.ndarray) -> None:
        """Check the rows ``block [B, ·]`` of the array ``name``, the first of them row ``start``."""
        if block.dtype.kind == "f":
            self._refuse_rows(name, start, ~np.isfinite(block), "NaN or infinite values")
        if array.bounds is not None:
            low, high = (np.broadcast_to(np.asarray(bound, dtype=np.float64), block.shape[1:]) for bound in array.bounds)
            if (outside := (block < low) | (block > high)).any():
                column = int(np.nonzero(outside)[1][0])
                self._refuse_rows(name, start, outside, f"values outside {low[column]:.10g} to {high[column]:.10g}")

    def _refuse_rows(self, name: str, start: int, bad: np.ndarray, what: str) -> None:
        """Raise :class:`DamagedZooError` for the first row with a value marked ``bad [B, ·]`` of a block of ``name`` starting
        at row ``start``."""
        if bad.any():
            raise DamagedZooError(f"{self.path(name)}: row {start + int(np.flatnonzero(bad.any(axis=1))[0])} holds {what}; {DAMAGED}")

    def check_runs(self) -> None:
        """Raise :class:`DamagedZooError` unless the rows form whole runs: every (run, step) once, every run with the same
        snapshot steps and one task throughout, a task of this zoo. Call it after :meth:`check_values`."""
        order = np.lexsort((self.step, self.run))
        run, step = self.run[order], self.step[order]
        runs_file = self.path(self.format.run_step)
        if (twice := (run[1:] == run[:-1]) & (step[1:] == step[:-1])).any():
            first = int(np.flatnonzero(twice)[0])
            raise DamagedZooError(f"{runs_file}: rows {order[first]} and {order[first + 1]} both hold run {run[first]}, step "
                                  f"{step[first]}; {DAMAGED}")
        steps = np.unique(step)
        runs, starts, counts = np.unique(run, return_index=True, return_counts=True)
        if (short_runs := np.flatnonzero(counts != len(steps))).size:
            index = int(short_runs[0])
            missing = sorted(set(steps.tolist()) - set(step[starts[index] : starts[index] + counts[index]].tolist()))
            raise DamagedZooError(f"{runs_file}: run {runs[index]} lacks the steps {short(missing, 200)} that other runs have; every "
                                  f"run has the same snapshot steps; {DAMAGED}")
        tasks = [self.kind.task_key(self.format.task_cell(self, int(row))) for row in order]
        for index, begin in enumerate(starts.tolist()):
            cell = self.format.task_cell(self, int(order[begin]))
            if not self.kind.is_task(cell):
                raise DamagedZooError(f"{self.path(self.format.task_array)}: run {runs[index]} has the task {short(cell)}, which is not "
                                      f"a {self.kind.name} task; {DAMAGED}")
            if len(set(tasks[begin : begin + counts[index]])) > 1:
                raise DamagedZooError(f"{self.path(self.format.task_array)}: run {runs[index]} has several tasks "
                                      f"{short(sorted(set(tasks[begin : begin + counts[index]])), 200)}; a run trains on one task; {DAMAGED}")

    def blocks(self, name: str) -> Iterator[np.ndarray]:
        """The array ``name`` read block by block (at most :data:`BLOCK_ROWS` rows each)."""
        for start in range(0, self.rows, BLOCK_ROWS):
            yield np.asarray(self.arrays[name][start : start + BLOCK_ROWS])

    def run_tasks(self) -> dict[int, Any]:
        """The task of every run (from its first row)."""
        first: dict[int, int] = {}
        for index, run in enumerate(self.run.tolist()):
            first.setdefault(run, index)
        return {run: self.format.task_cell(self, index) for run, index in first.items()}

    def rows_of(self, runs: list[int], progress: tqdm) -> Iterator[pa.Table]:
        """The rows of ``runs`` ordered by (run, step), as Arrow tables of at most :data:`BLOCK_ROWS` rows."""
        chosen = np.flatnonzero(np.isin(self.run, runs))
        order = chosen[np.lexsort((self.step[chosen], self.run[chosen]))]
        for start in range(0, len(order), BLOCK_ROWS):
            block = np.sort(order[start : start + BLOCK_ROWS])  # sorted reads from the memory maps ...
            block = block[np.lexsort((self.step[block], self.run[block]))]  # ... in (run, step) order
            yield self._table(block)
            progress.update(len(block))

    def _table(self, index: np.ndarray) -> pa.Table:
        kind = self.kind
        columns: dict[str, Any] = {
            "run": self.run[index],
            "step": self.step[index],
            "seed": np.full(len(index), NO_SEED, dtype=np.int64),
            "weights": [encode_weights(params, kind.architecture) for params in self.parameters(index)],
            "inputs": self.inputs(index),
            "log_probs": self.log_probs(index),
            **self.format.columns(self, index),
        }
        batch = {name: columns[name] for name in kind.features}
        return datasets.Dataset.from_dict(batch, features=kind.features).with_format("arrow")[:]

    def parameters(self, index: np.ndarray) -> list[Params]:
        """The float32 parameters of the rows ``index``, one dict per row."""
        flat = torch.from_numpy(np.asarray(self.arrays["parameters"][index], dtype=np.float32))
        return [unflatten_parameters(row, self.kind.architecture) for row in flat]

    def inputs(self, index: np.ndarray) -> np.ndarray:
        """The ``inputs`` cells of the rows ``index`` (repaired by the format where it must be)."""
        return self.format.inputs(np.asarray(self.arrays["sequences"][index], dtype=self.kind.inputs_feature.dtype))

    def log_probs(self, index: np.ndarray) -> np.ndarray:
        """The ``log_probs`` cells of the rows ``index``."""
        return self.format.log_probs(np.asarray(self.arrays["logits"][index]))

    def measure_reproduction(self) -> LogProbsReproduction:
        """How exactly the weights reproduce the rows' ``log_probs`` from their ``inputs``, over every row.

        Recomputes as :mod:`rnn_zoos.hub.verify` does (float32, ``rnn_zoos.lstm``), :data:`MEASURE_ROWS` RNNs
        at a time, reading the memory-mapped arrays in order. A row off by more than ``verify`` accepts of an import
        (:data:`MAX_ROW_MEAN_ERROR` on average, :data:`MAX_REPRODUCTION_ERROR` at most) raises :class:`DamagedZooError`.
        """
        kind = self.kind
        largest, total, worst = -1.0, 0.0, 0
        with tqdm(total=self.rows, desc=f"measuring log_probs of {self.source.name}", unit=" rows") as progress:
            for start in range(0, self.rows, MEASURE_ROWS):
                index = np.arange(start, min(start + MEASURE_ROWS, self.rows))
                params = stack_params(self.parameters(index))
                with torch.no_grad():
                    logits, _ = lstm_forward(params, kind.model_inputs(torch.from_numpy(self.inputs(index))))
                error = (torch.log_softmax(logits, dim=-1) - torch.from_numpy(self.log_probs(index)).float()).abs()
                if not bool(torch.isfinite(error).all()):  # the stored numbers are finite (check_values): the weights overflow
                    raise DamagedZooError(f"{self.path('parameters')}: the weights of rows {start} to {index[-1]} compute NaN or "
                                          f"infinite log-probs; {DAMAGED}")
                row_largest, row_mean = error.flatten(1).max(dim=1).values, error.flatten(1).mean(dim=1)
                if float(row_mean.max()) > MAX_ROW_MEAN_ERROR:
                    self._refuse_reproduction(int(index[int(row_mean.argmax())]), f"{float(row_mean.max()):.3g} on average",
                                              f"{MAX_ROW_MEAN_ERROR:g} (about 0.001 in the paper's release)")
                total += float(error.sum(dtype=torch.float64))
                if float(row_largest.max()) > largest:
                    largest, worst = float(row_largest.max()), int(index[int(row_largest.argmax())])
                progress.update(len(index))
        if largest > MAX_REPRODUCTION_ERROR:
            self._refuse_reproduction(worst, f"{largest:.3g} at most", f"{MAX_REPRODUCTION_ERROR:g}")
        values_per_row = math.prod(kind.log_probs_feature.shape)
        return LogProbsReproduction(
            max_abs_error=largest,
            mean_abs_error=total / (self.rows * values_per_row),
            rows=self.rows,
            worst_run=int(self.run[worst]),
            worst_step=int(self.step[worst]),
            reason=self.format.reproduction_reason,
        )

    def _refuse_reproduction(self, row: int, found: str, accepted: str) -> NoReturn:
        """Raise :class:`DamagedZooError`: the weights of ``row`` reproduce its log-probs off by ``found``, more than ``accepted``."""
        raise DamagedZooError(f"{self.path('logits')}: row {row} (run {self.run[row]}, step {self.step[row]}): its weights reproduce its "
                              f"log-probs off by {found}, more than the {accepted} that inputs rounded to float16 explain; {DAMAGED}")

    def notes(self, reproduction: LogProbsReproduction | None) -> list[str]:
        """What differs from a zoo built by rnn-zoos, with the measured ``reproduction`` of the log-probs if any."""
        notes = [
            f"Imported from the paper's original release ({self.source.name}) by rnn-zoos import-release.",
            STEP_CONVENTION,
            f"The release records no per-run seeds: the seed column is {NO_SEED}.",
            *self.format.notes(self),
            *self.format.repair_notes(self),
        ]
        if reproduction is not None:
            notes.append(reproduction_note(reproduction))
        return notes

    def card_fields(self) -> dict[str, Any]:
        """The card placeholders that describe the release."""
        return {
            "provenance": f"imported from the paper's original release (`{self.source.name}`)",
            "steps": int(self.step.max()),
            "seeds": f"the release records no per-run seeds (`seed` is {NO_SEED})",
            **self.format.card_fields(self),
        }


def reproduction_note(reproduction: LogProbsReproduction) -> str:
    """The note on how exactly the weights reproduce the stored log-probs (recorded in ``log_probs_reproduction``)."""
    rtol, atol = LOG_PROB_TOLERANCE
    return (
        f"log_probs keep the release's numbers (they are not recomputed): {reproduction.reason}. Measured at import over all "
        f"{reproduction.rows} rows, recomputed log-probs differ from the stored ones by {reproduction.mean_abs_error:.2g} "
        f"on average and by at most {reproduction.max_abs_error:.3g} (run {reproduction.worst_run}, step "
        f"{reproduction.worst_step}); meta/info.json records this as log_probs_reproduction, and verify accepts a row "
        f"within the usual tolerance ({atol:g} + |log_prob| / {1 / rtol:g}) or within that largest error + {REPRODUCTION_MARGIN:g} "
        f"and {MAX_ROW_MEAN_ERROR:g} on average."
    )
