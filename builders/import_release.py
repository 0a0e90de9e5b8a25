"""Convert the paper's original release (NumPy files) into an rnn-zoos zoo folder.

    python -m builders.import_release SRC --out DIR

``SRC`` is one zoo folder of the release, recognised by its name: ``formal_languages_*`` or
``sequential_mnist_*``. The arrays (0.5 to 1.5 GB each) are memory-mapped and converted a block
of rows at a time, so memory stays bounded. The release's conventions are kept and recorded in
``meta/info.json`` and the card: its step 0 holds the weights after one update, its formal-language
accuracy counts letters without checking their order, and it records no per-run seeds.
"""

from __future__ import annotations

import argparse
import json
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
from rnn_zoos.format import FORMAL_LANG, SEQ_MNIST, ZooSpec, encode_weights
from rnn_zoos.hub import plan_splits, write_zoo_layout

BLOCK_ROWS = 256
"""Release rows converted at a time."""
NO_SEED = -1


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
        parameters = torch.from_numpy(np.asarray(arrays["parameters"][index], dtype=np.float32))
        shapes = spec.architecture.parameter_shapes()
        sizes = [int(np.prod(shape)) for shape in shapes.values()]
        weights = []
        for row in parameters:
            pieces = row.split(sizes)
            weights.append(encode_weights({name: piece.view(shape) for (name, shape), piece in zip(shapes.items(), pieces)}, spec.architecture))
        columns: dict[str, Any] = {
            "run": self.run[index],
            "step": self.step[index],
            "seed": np.full(len(index), NO_SEED, dtype=np.int64),
            "weights": weights,
            "inputs": np.asarray(arrays["sequences"][index], dtype=spec.inputs_feature.dtype),
        }
        logits = np.asarray(arrays["logits"][index])
        if spec is FORMAL_LANG:
            correct = np.asarray(arrays["num_step_correct"][index, 2], dtype=np.float64)
            columns.update(
                task=np.asarray(arrays["tasks"][index], dtype=np.int8).tolist(),
                accuracy=(correct / 1000).astype(np.float32),
                weight_decay=np.full(len(index), float(self.args.get("weight_decay", 1e-4)), dtype=np.float32),
                log_probs=logits.astype(np.float16),
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
                log_probs=torch.log_softmax(torch.from_numpy(logits.astype(np.float32)), dim=-1).numpy().astype(np.float16),
            )
        batch = {name: columns[name] for name in spec.features}
        return datasets.Dataset.from_dict(batch, features=spec.features).with_format("arrow")[:]

    def notes(self) -> list[str]:
        """What differs from a zoo built by rnn-zoos."""
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
        else:
            notes.append("log_probs are the log-softmax of the release's raw logits.")
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


def import_release(source: Path, out: Path) -> Path:
    """Convert a release folder into a zoo folder ``out`` (which must not exist or be empty)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ZooError(f"--out {out} exists and is not empty; choose a new or empty folder")
    release = Release(source)
    spec = release.layout.spec
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
                "builder": {"zoo": spec.name, "source": "paper-release", "release": source.name, "release_args": release.args},
                "snapshot_steps": snapshot_steps,
                "notes": release.notes(),
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
