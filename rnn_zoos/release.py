"""Convert the paper's original release (NumPy files) into an rnn-zoos zoo folder.

    python -m builders.import_release SRC --out DIR

``SRC`` is one zoo folder of the release, recognised by its name: ``formal_languages_*`` or
``sequential_mnist_*``. The arrays (0.5 to 1.5 GB each) are memory-mapped and converted a block
of rows at a time, so memory stays bounded. The release's conventions are kept and recorded in
``meta/info.json`` and the card: its step 0 holds the weights after one update, its formal-language
accuracy counts letters without checking their order, and it records no per-run seeds.

Two of the release's quirks are handled so that the imported zoo keeps its contract (the weights
reproduce ``log_probs`` from ``inputs``), and both are stated in the notes:

- formal languages: the official acceptance check wrote ``EOS`` in place at position 0 of every
  sampled string without ``EOS``, after its logits were computed with ``BOS`` there; the import
  restores ``BOS`` at position 0 of those strings and counts them;
- sequential MNIST: the logits were computed on float32 input tiles, which were then stored as
  float16; the release's numbers are kept, and how exactly the weights reproduce them on the
  stored inputs is measured over every row and recorded (:class:`rnn_zoos.format.LogProbsReproduction`),
  the tolerance ``verify`` holds the zoo to.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from rnn_zoos.files import check_out_folder, output_folder
from rnn_zoos.errors import DamagedZooError, ZooError, report
from rnn_zoos.zoos import FORMAL_LANG, SEQ_MNIST, ZooSpec
from rnn_zoos.format import RELEASE_SOURCE, LogProbsReproduction
from rnn_zoos.blob import encode_weights
from rnn_zoos.layout import card_template, plan_splits, write_zoo_layout
from rnn_zoos.lstm import LSTMArchitecture, Params, lstm_forward, stack_params
from rnn_zoos.zoos.formal_lang import BOS, EOS
from rnn_zoos.verify import LOG_PROB_TOLERANCE, REPRODUCTION_MARGIN

BLOCK_ROWS = 256
"""Release rows converted at a time."""
MEASURE_ROWS = 32
"""Release rows whose RNNs run at once when measuring how exactly they reproduce their log-probs (about 150 MB)."""
NO_SEED = -1
PAPER_WEIGHT_DECAY = 1e-4
"""The weight decay of the paper's formal-language runs, for a release whose ``args.json`` records none."""
FLOAT16_INPUTS_REASON = (
    "the release computed its logits on float32 input tiles, then stored the tiles rounded to float16; "
    "on the stored tiles the weights reproduce the stored log-probs only approximately"
)
DAMAGED = "the release folder is damaged: download it again"
FLOATS, INTEGERS, REALS = "f", "iu", "iuf"
"""The NumPy dtype kinds a release array may have: floating-point numbers, integers, either."""
KIND_NAMES = {FLOATS: "floating-point numbers", INTEGERS: "integers", REALS: "real numbers (integers or floating-point)"}
INT8_BOUNDS = (-128, 127)
"""The values an ``int8`` holds: the formal-language ``task`` column stores its components as ``int8``."""


@dataclass(frozen=True)
class ReleaseArray:
    """What one array of a release holds per snapshot (row): its shape, its dtype kind and, if bounded, its value range."""

    shape: tuple[int, ...]
    kinds: str
    """:data:`FLOATS`, :data:`INTEGERS` or :data:`REALS`."""
    bounds: tuple[int, int] | None = None
    """The smallest and largest value the import can store (token ids; ``int8`` task components)."""


@dataclass(frozen=True)
class ReleaseLayout:
    """One zoo of the paper's release: its folder-name prefix, our spec and its arrays (``NAME.npy``) besides ``args.json``."""

    prefix: str
    spec: ZooSpec
    arrays: dict[str, ReleaseArray]

    @property
    def files(self) -> tuple[str, ...]:
        """The files a release folder of this layout holds."""
        return (*(f"{name}.npy" for name in self.arrays), "args.json")


FORMAL_RELEASE = ReleaseLayout(
    "formal_languages",
    FORMAL_LANG,
    {
        "parameters": ReleaseArray((FORMAL_LANG.architecture.num_parameters,), FLOATS),
        "sequences": ReleaseArray(FORMAL_LANG.inputs_feature.shape, INTEGERS, (0, FORMAL_LANG.token_vocab - 1)),
        "logits": ReleaseArray(FORMAL_LANG.log_probs_feature.shape, FLOATS),
        "tasks": ReleaseArray((4,), INTEGERS, INT8_BOUNDS),
        "num_step_correct": ReleaseArray((3,), INTEGERS),
    },
)
MNIST_RELEASE = ReleaseLayout(
    "sequential_mnist",
    SEQ_MNIST,
    {
        "parameters": ReleaseArray((SEQ_MNIST.architecture.num_parameters,), FLOATS),
        "sequences": ReleaseArray(SEQ_MNIST.inputs_feature.shape, FLOATS),
        "logits": ReleaseArray(SEQ_MNIST.log_probs_feature.shape, FLOATS),
        "tasks": ReleaseArray((1,), REALS),
        "num_step": ReleaseArray((2,), INTEGERS),
        "accuracy_losses": ReleaseArray((4,), FLOATS),
    },
)


def unflatten_parameters(flat: torch.Tensor, architecture: LSTMArchitecture) -> Params:
    """One RNN's parameters from the release's flat vector: ``nn.LSTM``'s parameters, then ``nn.Linear``'s."""
    shapes = architecture.parameter_shapes()
    pieces = flat.split([math.prod(shape) for shape in shapes.values()])
    return {name: piece.view(shape) for (name, shape), piece in zip(shapes.items(), pieces)}


def restore_bos(sequences: np.ndarray) -> np.ndarray:
    """Formal-language strings ``[..., 42]`` with ``BOS`` back at position 0 where the release stores ``EOS`` (a copy).

    The paper's acceptance check sets ``seq[argmax(seq == EOS)] = EOS`` in place; for a string without
    ``EOS`` that index is 0, so the stored string begins with ``EOS``, though its logits were computed
    with ``BOS`` there. Nothing else of the string changes.
    """
    repaired = np.array(sequences, copy=True)
    first = repaired[..., 0]
    first[first == EOS] = BOS
    return repaired


def detect(source: Path) -> ReleaseLayout:
    """The release layout of a folder, from its name; :class:`ZooError` if it is not a release folder."""
    for layout in (FORMAL_RELEASE, MNIST_RELEASE):
        if source.name.startswith(layout.prefix):
            if not source.is_dir():
                raise ZooError(f"no release folder {source}; pass a zoo folder of the paper's release")
            return layout
    raise ZooError(f"{source} is not a zoo of the paper's release: its name must start with formal_languages or sequential_mnist")


class Release:
    """The memory-mapped arrays of one release zoo, checked for shape and dtype (:meth:`check_values` checks the values).

    A folder that is not a release raises :class:`ZooError`; a release whose files are missing or hold what the
    release cannot hold raises :class:`DamagedZooError`, with one line naming the file.
    """

    def __init__(self, source: Path) -> None:
        self.source = source
        self.layout = detect(source)
        for name in self.layout.files:
            if not (source / name).is_file():
                files = ", ".join(self.layout.files)
                raise DamagedZooError(f"{source / name} is missing; a {self.layout.prefix} release folder holds {files}")
        self.args = self._read_args()
        self.weight_decay = self._weight_decay() if self.layout.spec is FORMAL_LANG else None
        self.arrays = {name: self._load(name, array.kinds) for name, array in self.layout.arrays.items()}
        parameters = self.arrays["parameters"]
        self.rows = parameters.shape[0] if parameters.ndim else 0
        if self.rows == 0:
            raise DamagedZooError(f"{self.path('parameters')} holds no snapshots; {DAMAGED}")
        for name, array in self.layout.arrays.items():
            self._expect(name, array.shape)
        run_step = self.arrays["num_step_correct" if self.layout.spec is FORMAL_LANG else "num_step"]
        self.run, self.step = (np.asarray(run_step[:, i], dtype=np.int64) for i in (0, 1))

    def path(self, name: str) -> Path:
        """The file of the array ``name``."""
        return self.source / f"{name}.npy"

    def _read_args(self) -> dict[str, Any]:
        """The run options the release recorded in ``args.json``."""
        path = self.source / "args.json"
        try:
            args = json.loads(path.read_text())
        except ValueError as error:
            raise DamagedZooError(f"{path} is not JSON ({error}); {DAMAGED}") from None
        if not isinstance(args, dict):
            raise DamagedZooError(f"{path} holds a JSON {type(args).__name__}, expected an object of the run options; {DAMAGED}")
        return args

    def _weight_decay(self) -> float:
        """The weight decay of every run of a formal-language release: its ``args.json``'s, or the paper's."""
        value = self.args.get("weight_decay", PAPER_WEIGHT_DECAY)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise DamagedZooError(f"{self.source / 'args.json'}: weight_decay is {value!r}, expected a number >= 0; {DAMAGED}")
        return float(value)

    def _load(self, name: str, kinds: str) -> np.ndarray:
        expected = f"expected a NumPy array of {KIND_NAMES[kinds]}"
        try:
            array = np.load(self.path(name), mmap_mode="r")
        except (OSError, ValueError) as error:
            raise DamagedZooError(f"cannot read {self.path(name)} ({error}); {expected}") from None
        if array.dtype.kind not in kinds:
            raise DamagedZooError(f"{self.path(name)} holds {array.dtype} values; {expected}")
        return array

    def _expect(self, name: str, shape: tuple[int, ...]) -> None:
        found = self.arrays[name].shape
        if found != (self.rows, *shape):
            raise DamagedZooError(f"{self.path(name)} has shape {found}, expected {(self.rows, *shape)} ({self.rows} snapshots)")

    def check_values(self) -> None:
        """Raise :class:`DamagedZooError` naming the file and row of the first NaN or infinite number, or of the first value
        outside an array's bounds (token ids, task components); reads the memory-mapped arrays block by block."""
        for name, array in self.layout.arrays.items():
            for start in range(0, self.rows, BLOCK_ROWS):
                block = np.asarray(self.arrays[name][start : start + BLOCK_ROWS])
                self._check_block(name, array, start, block.reshape(len(block), -1))

    def _check_block(self, name: str, array: ReleaseArray, start: int, block: np.ndarray) -> None:
        """Check the rows ``block [B, ·]`` of the array ``name``, the first of them row ``start``."""
        if block.dtype.kind == "f":
            self._refuse_rows(name, start, ~np.isfinite(block).all(axis=1), "NaN or infinite values")
        if array.bounds is not None:
            low, high = array.bounds
            self._refuse_rows(name, start, ((block < low) | (block > high)).any(axis=1), f"values outside {low} to {high}")

    def _refuse_rows(self, name: str, start: int, bad: np.ndarray, what: str) -> None:
        """Raise :class:`DamagedZooError` for the first row marked ``bad`` of a block of ``name`` starting at row ``start``."""
        if bad.any():
            raise DamagedZooError(f"{self.path(name)}: row {start + int(np.flatnonzero(bad)[0])} holds {what}; {DAMAGED}")

    def run_tasks(self) -> dict[int, Any]:
        """The task of every run (as stored in our ``task`` column)."""
        first = {}
        for index, run in enumerate(self.run.tolist()):
            first.setdefault(run, index)
        tasks = self.arrays["tasks"]
        if self.layout.spec is FORMAL_LANG:
            return {run: [int(v) for v in tasks[index]] for run, index in first.items()}
        return {run: float(tasks[index, 0]) for run, index in first.items()}

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
        spec = self.layout.spec
        arrays = self.arrays
        columns: dict[str, Any] = {
            "run": self.run[index],
            "step": self.step[index],
            "seed": np.full(len(index), NO_SEED, dtype=np.int64),
            "weights": [encode_weights(params, spec.architecture) for params in self.parameters(index)],
            "inputs": self.inputs(index),
            "log_probs": self.log_probs(index),
        }
        if spec is FORMAL_LANG:
            correct = np.asarray(arrays["num_step_correct"][index, 2], dtype=np.float64)
            columns.update(
                task=np.asarray(arrays["tasks"][index], dtype=np.int8).tolist(),
                accuracy=(correct / 1000).astype(np.float32),
                weight_decay=np.full(len(index), self.weight_decay, dtype=np.float32),
            )
        else:
            measured = np.asarray(arrays["accuracy_losses"][index], dtype=np.float64)
            columns.update(
                task=np.asarray(arrays["tasks"][index, 0], dtype=np.float32),
                accuracy=measured[:, 0].astype(np.float32),
                weight_decay=measured[:, 3].astype(np.float32),
                train_loss=measured[:, 1].astype(np.float32),
                val_loss=measured[:, 2].astype(np.float32),
                generalization_gap=(measured[:, 2] - measured[:, 1]).astype(np.float32),
            )
        batch = {name: columns[name] for name in spec.features}
        return datasets.Dataset.from_dict(batch, features=spec.features).with_format("arrow")[:]

    def parameters(self, index: np.ndarray) -> list[Params]:
        """The float32 parameters of the rows ``index``, one dict per row."""
        flat = torch.from_numpy(np.asarray(self.arrays["parameters"][index], dtype=np.float32))
        return [unflatten_parameters(row, self.layout.spec.architecture) for row in flat]

    def inputs(self, index: np.ndarray) -> np.ndarray:
        """The ``inputs`` cells of the rows ``index``; formal-language strings get ``BOS`` back (:func:`restore_bos`)."""
        inputs = np.asarray(self.arrays["sequences"][index], dtype=self.layout.spec.inputs_feature.dtype)
        return restore_bos(inputs) if self.layout.spec is FORMAL_LANG else inputs

    def log_probs(self, index: np.ndarray) -> np.ndarray:
        """The ``log_probs`` cells of the rows ``index``: the release's log-softmax outputs (formal languages), or the
        log-softmax of its raw logits (sequential MNIST)."""
        logits = np.asarray(self.arrays["logits"][index])
        if self.layout.spec is FORMAL_LANG:
            return logits.astype(np.float16)
        return torch.log_softmax(torch.from_numpy(logits.astype(np.float32)), dim=-1).numpy().astype(np.float16)

    def count_eos_starts(self) -> int:
        """How many stored strings of a formal-language release begin with ``EOS``: the strings :func:`restore_bos` repairs."""
        sequences = self.arrays["sequences"]
        return sum(int((sequences[start : start + BLOCK_ROWS, :, 0] == EOS).sum()) for start in range(0, self.rows, BLOCK_ROWS))

    def measure_reproduction(self) -> LogProbsReproduction:
        """How exactly the weights reproduce the rows' ``log_probs`` from their ``inputs``, over every row.

        Recomputes as :mod:`rnn_zoos.verify` does (float32, ``rnn_zoos.lstm``), :data:`MEASURE_ROWS` RNNs
        at a time, reading the memory-mapped arrays in order.
        """
        spec = self.layout.spec
        largest, total, worst = -1.0, 0.0, 0
        with tqdm(total=self.rows, desc=f"measuring log_probs of {self.source.name}", unit=" rows") as progress:
            for start in range(0, self.rows, MEASURE_ROWS):
                index = np.arange(start, min(start + MEASURE_ROWS, self.rows))
                params = stack_params(self.parameters(index))
                with torch.no_grad():
                    logits, _ = lstm_forward(params, spec.model_inputs(torch.from_numpy(self.inputs(index))))
                error = (torch.log_softmax(logits, dim=-1) - torch.from_numpy(self.log_probs(index)).float()).abs()
                if not bool(torch.isfinite(error).all()):  # the stored numbers are finite (check_values): the weights overflow
                    raise DamagedZooError(f"{self.path('parameters')}: the weights of rows {start} to {index[-1]} compute NaN or "
                                          f"infinite log-probs; {DAMAGED}")
                row_largest = error.flatten(1).max(dim=1).values
                total += float(error.sum(dtype=torch.float64))
                if float(row_largest.max()) > largest:
                    largest, worst = float(row_largest.max()), int(index[int(row_largest.argmax())])
                progress.update(len(index))
        values_per_row = math.prod(spec.log_probs_feature.shape)
        return LogProbsReproduction(
            max_abs_error=largest,
            mean_abs_error=total / (self.rows * values_per_row),
            rows=self.rows,
            worst_run=int(self.run[worst]),
            worst_step=int(self.step[worst]),
            reason=FLOAT16_INPUTS_REASON,
        )

    def notes(self, repaired: int, reproduction: LogProbsReproduction | None) -> list[str]:
        """What differs from a zoo built by rnn-zoos, with the count of ``repaired`` strings (formal languages) and
        the measured ``reproduction`` of the log-probs (sequential MNIST)."""
        notes = [
            f"Imported from the paper's original release ({self.source.name}) by python -m builders.import_release.",
            "Step 0 of the release holds the weights after one optimizer update (a built zoo's step 0 is the initial weights).",
            f"The release records no per-run seeds: the seed column is {NO_SEED}.",
        ]
        if self.layout.spec is FORMAL_LANG:
            notes.append("accuracy is the release's own count of correct strings out of 1000, which counts the letters "
                         "without checking their order (rnn-zoos' builder also checks the order).")
            if "weight_decay" not in self.args:
                notes.append("args.json records no weight_decay; the column holds the paper's 1e-4.")
            notes.append(bos_note(repaired, self.rows * FORMAL_LANG.inputs_feature.shape[0]))
        else:
            notes.append("log_probs are the log-softmax of the release's raw logits.")
        if reproduction is not None:
            notes.append(reproduction_note(reproduction))
        return notes

    def card_fields(self) -> dict[str, Any]:
        """The card placeholders that describe the release."""
        fields = {
            "provenance": f"imported from the paper's original release (`{self.source.name}`)",
            "steps": int(self.step.max()),
            "step_zero": "step 0 = the weights after one optimizer update, as in the release",
            "seeds": f"the release records no per-run seeds (`seed` is {NO_SEED})",
        }
        if self.layout.spec is FORMAL_LANG:
            fields["accuracy_definition"] = ("the release's count of correct strings out of 1000 sampled from the RNN; "
                                             "it counts the letters without checking their order")
        else:
            fields["images"] = "the MNIST training images, split into training and validation images by the paper's code"
        return fields


def bos_note(repaired: int, strings: int) -> str:
    """The note on the strings whose ``BOS`` the import restored."""
    return (
        f"{repaired} of the release's {strings} strings began with EOS (5) at position 0, though their logits were "
        "computed with BOS (4) there: the official acceptance check writes EOS in place at the first EOS of each "
        "sampled string, which is position 0 for a string without EOS. The import restored BOS at position 0 of "
        "these strings (nothing else changed), so the weights reproduce log_probs from inputs."
    )


def reproduction_note(reproduction: LogProbsReproduction) -> str:
    """The note on how exactly the weights reproduce the stored log-probs (recorded in ``log_probs_reproduction``)."""
    rtol, atol = LOG_PROB_TOLERANCE
    return (
        f"log_probs keep the release's numbers (they are not recomputed): {reproduction.reason}. Measured at import over all "
        f"{reproduction.rows} rows, recomputed log-probs differ from the stored ones by {reproduction.mean_abs_error:.2g} "
        f"on average and by at most {reproduction.max_abs_error:.3g} (run {reproduction.worst_run}, step "
        f"{reproduction.worst_step}); meta/info.json records this as log_probs_reproduction, and verify accepts a row "
        f"within the usual tolerance ({atol:g} + |log_prob| / {1 / rtol:g}) or within that largest error + {REPRODUCTION_MARGIN:g}."
    )


def check_out(source: Path, out: Path) -> None:
    """Raise :class:`ZooError` unless ``out`` is a new or empty folder that is neither the current folder nor in ``source``."""
    check_out_folder(out)
    where, release = out.resolve(), source.resolve()
    if where == Path.cwd().resolve():
        raise ZooError(f"--out {out} is the current folder; choose a new folder for the zoo")
    if where == release or release in where.parents:
        raise ZooError(f"--out {out} is in the release folder {source}; choose a folder outside it")
    if out.is_dir() and any(out.iterdir()):
        raise ZooError(f"--out {out} exists and is not empty; choose a new or empty folder")


def import_release(source: Path, out: Path) -> Path:
    """Convert a release folder into a zoo folder ``out`` (new or empty).

    The options are checked first (:class:`ZooError`), then the release (:class:`DamagedZooError`), before anything is
    written. The zoo is written into a new folder of its own beside ``out`` and renamed to ``out`` once complete; that
    folder, and nothing else, is removed if the import fails.
    """
    detect(source)
    check_out(source, out)
    release = Release(source)
    release.check_values()
    spec = release.layout.spec
    repaired = release.count_eos_starts() if spec is FORMAL_LANG else 0
    reproduction = release.measure_reproduction() if spec is SEQ_MNIST else None
    out = Path(os.path.abspath(out))
    with output_folder(out.parent):
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
        try:
            staging = work / out.name
            write_release_zoo(release, staging, repaired, reproduction)
            if out.exists():
                out.rmdir()
            staging.rename(out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def write_release_zoo(release: Release, folder: Path, repaired: int, reproduction: LogProbsReproduction | None) -> None:
    """Write the zoo of ``release`` into ``folder``, with the count of ``repaired`` strings and the measured ``reproduction``."""
    spec = release.layout.spec
    plan = plan_splits(spec, release.run_tasks())
    snapshot_steps = sorted(set(release.step.tolist()))
    with tqdm(total=release.rows, desc=f"importing {release.source.name}", unit=" rows") as progress:
        write_zoo_layout(
            folder,
            spec,
            plan,
            rows_of=lambda runs: release.rows_of(runs, progress),
            rows_per_split={split: int(np.isin(release.run, entry.runs).sum()) for split, entry in plan.items()},
            info_fields={
                "builder": {"zoo": spec.name, "source": RELEASE_SOURCE, "release": release.source.name, "release_args": release.args},
                "snapshot_steps": snapshot_steps,
                "notes": release.notes(repaired, reproduction),
                "log_probs_reproduction": reproduction,
            },
            template=card_template(spec.name),
            card_fields=release.card_fields(),
        )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m builders.import_release", description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a zoo folder of the paper's release (formal_languages_* or sequential_mnist_*)")
    parser.add_argument("--out", type=Path, required=True, help="the zoo folder to write (new or empty)")
    args = parser.parse_args(argv)
    try:
        import_release(args.source, args.out)
    except ZooError as error:
        return report(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
