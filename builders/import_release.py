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
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from builders import CARDS_DIR
from rnn_zoos.errors import ZooError, report
from rnn_zoos.format import FORMAL_LANG, RELEASE_SOURCE, SEQ_MNIST, LogProbsReproduction, ZooSpec, encode_weights
from rnn_zoos.hub import plan_splits, write_zoo_layout
from rnn_zoos.lstm import LSTMArchitecture, Params, lstm_forward, stack_params
from rnn_zoos.tasks.formal_lang import BOS, EOS
from rnn_zoos.verify import LOG_PROB_TOLERANCE, REPRODUCTION_MARGIN

BLOCK_ROWS = 256
"""Release rows converted at a time."""
MEASURE_ROWS = 32
"""Release rows whose RNNs run at once when measuring how exactly they reproduce their log-probs (about 150 MB)."""
NO_SEED = -1
FLOAT16_INPUTS_REASON = (
    "the release computed its logits on float32 input tiles, then stored the tiles rounded to float16; "
    "on the stored tiles the weights reproduce the stored log-probs only approximately"
)


@dataclass(frozen=True)
class ReleaseLayout:
    """One zoo of the paper's release: its folder-name prefix, our spec and its files."""

    prefix: str
    spec: ZooSpec
    files: tuple[str, ...]


FORMAL_RELEASE = ReleaseLayout(
    "formal_languages", FORMAL_LANG, ("parameters.npy", "sequences.npy", "logits.npy", "tasks.npy", "num_step_correct.npy", "args.json")
)
MNIST_RELEASE = ReleaseLayout(
    "sequential_mnist", SEQ_MNIST, ("parameters.npy", "sequences.npy", "logits.npy", "tasks.npy", "num_step.npy", "accuracy_losses.npy", "args.json")
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
    """The release layout of a folder, from its name."""
    for layout in (FORMAL_RELEASE, MNIST_RELEASE):
        if source.name.startswith(layout.prefix):
            return layout
    raise ZooError(f"{source} is not a zoo of the paper's release: its name must start with formal_languages or sequential_mnist")


class Release:
    """The memory-mapped arrays of one release zoo, checked for shape."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.layout = detect(source)
        for name in self.layout.files:
            if not (source / name).is_file():
                raise ZooError(f"{source / name} is missing; a {self.layout.prefix} release folder holds {', '.join(self.layout.files)}")
        try:
            self.args = json.loads((source / "args.json").read_text())
        except ValueError as error:
            raise ZooError(f"{source / 'args.json'} is not JSON ({error})") from None
        self.arrays = {name[:-4]: self._load(name) for name in self.layout.files if name.endswith(".npy")}
        spec = self.layout.spec
        self.rows = len(self.arrays["parameters"])
        self._expect("parameters", (spec.architecture.num_parameters,))
        self._expect("sequences", spec.inputs_feature.shape)
        self._expect("logits", spec.log_probs_feature.shape)
        if spec is FORMAL_LANG:
            self._expect("tasks", (4,))
            self._expect("num_step_correct", (3,))
            self.run, self.step = (np.asarray(self.arrays["num_step_correct"][:, i], dtype=np.int64) for i in (0, 1))
        else:
            self._expect("tasks", (1,))
            self._expect("num_step", (2,))
            self._expect("accuracy_losses", (4,))
            self.run, self.step = (np.asarray(self.arrays["num_step"][:, i], dtype=np.int64) for i in (0, 1))

    def _load(self, name: str) -> np.ndarray:
        try:
            return np.load(self.source / name, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise ZooError(f"cannot read {self.source / name}: {error}") from None

    def _expect(self, name: str, shape: tuple[int, ...]) -> None:
        found = self.arrays[name].shape
        if found != (self.rows, *shape):
            raise ZooError(f"{self.source / (name + '.npy')} has shape {found}, expected {(self.rows, *shape)} ({self.rows} snapshots)")

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
                weight_decay=np.full(len(index), float(self.args.get("weight_decay", 1e-4)), dtype=np.float32),
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
                if not bool(torch.isfinite(error).all()):
                    raise ZooError(f"{self.source}: rows {start} to {index[-1]} hold NaN or infinite values (parameters.npy, "
                                   "sequences.npy or logits.npy); the release folder is corrupt: download it again")
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


def import_release(source: Path, out: Path) -> Path:
    """Convert a release folder into a zoo folder ``out`` (which must not exist or be empty)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ZooError(f"--out {out} exists and is not empty; choose a new or empty folder")
    release = Release(source)
    spec = release.layout.spec
    repaired = release.count_eos_starts() if spec is FORMAL_LANG else 0
    reproduction = release.measure_reproduction() if spec is SEQ_MNIST else None
    staging = out.with_name(out.name + ".importing")
    shutil.rmtree(staging, ignore_errors=True)
    plan = plan_splits(spec, release.run_tasks())
    snapshot_steps = sorted(set(release.step.tolist()))
    with tqdm(total=release.rows, desc=f"importing {source.name}", unit=" rows") as progress:
        write_zoo_layout(
            staging,
            spec,
            plan,
            rows_of=lambda runs: release.rows_of(runs, progress),
            rows_per_split={split: int(np.isin(release.run, entry.runs).sum()) for split, entry in plan.items()},
            info_fields={
                "builder": {"zoo": spec.name, "source": RELEASE_SOURCE, "release": source.name, "release_args": release.args},
                "snapshot_steps": snapshot_steps,
                "notes": release.notes(repaired, reproduction),
                "log_probs_reproduction": reproduction,
            },
            template=CARDS_DIR / f"{spec.name}.md",
            card_fields=release.card_fields(),
        )
    if out.exists():
        out.rmdir()
    staging.rename(out)
    return out


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
