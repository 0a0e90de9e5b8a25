"""Downstream property prediction: what can be read off an RNN's weights.

    rnn-zoos downstream ZOO --out DIR [--pretrained [ENCODER=]RUN/encoder ...]
        [--supervised ENCODER ...] [--targets task accuracy ...] [--num-seeds 5] [--device auto|cpu|cuda] [--revision REV]

For every target, every method is trained and scored under the paper's protocol: it trains on the
``train`` split plus the runs of a fixed half of the ``ood`` tasks
(:func:`rnn_zoos.format.splits.downstream_tasks`), is selected on ``validation``, and is reported on
``validation`` and on the other half of ``ood``. Methods: an MLP on the frozen embeddings of a
pretrained encoder (``--pretrained``), the same encoder architecture trained end to end on the
target without pretraining (``--supervised``), and the trivial predictor (mean, most frequent
class or mean direction of the training targets), the floor beside every metric. Each method runs
with several seeds; the report gives the mean and a bootstrapped 95 % confidence interval.

The targets are the zoo kind's (:meth:`rnn_zoos.zoos.ZooKind.targets`, :mod:`rnn_zoos.zoos.targets`):
formal languages ``task`` and ``accuracy`` (and, when asked for, ``accuracy_ordered``); sequential
MNIST ``angle``, ``accuracy``, ``step`` and ``generalization_gap``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnn_zoos.common.arguments import DEVICE, OUT, REVISION, ZOO, CommandParser, renamed
from rnn_zoos.common.errors import ZooError, report
from rnn_zoos.common.files import atomic_write, check_out_folder, json_text, output_folder, save_atomically
from rnn_zoos.hub.provenance import run_provenance
from rnn_zoos.common.results import check_results_folder
from rnn_zoos.format import ZooInfo
from rnn_zoos.zoos import zoo_kind
from tqdm.auto import tqdm
from rnn_zoos.format.splits import downstream_tasks
from rnn_zoos.zoos.targets import Target

from .data import (
    ZooTensors,
    check_counts,
    check_device,
    check_encoders,
    check_zoo,
    load_splits,
)
from ..models.encoders import UnknownEncoderError, resolve_encoder
from ..models.encoders.base import mlp
from ..models.encoders.registry import REFERENCE_HELP
from ..models.modeling import RNNEncoderConfig, RNNEncoderModel

REPORTED = ("validation", "ood")
"""The protocol's parts that are reported; ``fit`` (train split + half of the ood tasks, :func:`protocol_parts`) only trains."""
SUPERVISED_BATCH = 64
"""RNNs per step of the encoders trained end to end (``--supervised``)."""


def protocol_parts(splits: dict[str, ZooTensors]) -> tuple[dict[str, ZooTensors], list, list]:
    """The rows of ``fit``, ``validation`` and ``ood`` (the reported half) under the paper's protocol,
    with the ood tasks moved into training and those reported (:func:`rnn_zoos.format.splits.downstream_tasks`)."""
    ood = splits["ood"]
    kind = ood.kind
    every_task = kind.task_array([task for part in splits.values() for task in part.tasks])
    moved, kept = (kind.task_keys(vectors) for vectors in downstream_tasks(every_task, kind.criterion))
    moved_mask = torch.tensor([task in set(moved) for task in ood.tasks], dtype=torch.bool)
    parts = {"fit": ZooTensors.concat([splits["train"], ood.select(moved_mask)]), "validation": splits["validation"], "ood": ood.select(~moved_mask)}
    return parts, moved, kept


def bootstrap_ci(values: list[float], seed: int = 0, resamples: int = 10_000) -> list[float]:
    """95 % confidence interval of the mean of per-seed values, by bootstrap over seeds."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return [float(array.mean()), float(array.mean())]
    means = array[np.random.default_rng(seed).integers(0, len(array), (resamples, len(array)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    """Per-seed metrics, their means and confidence intervals."""
    names = list(per_seed[0])
    return {"seeds": per_seed, "mean": {n: float(np.mean([m[n] for m in per_seed])) for n in names},
            "ci95": {n: bootstrap_ci([m[n] for m in per_seed]) for n in names}}


# --- predictors ---------------------------------------------------------------------------------

Predict = Callable[[ZooTensors], torch.Tensor]
"""A trained predictor: rows -> predictions in the target's terms."""


def _fit(target: Target, model: nn.Module, features: Callable[[ZooTensors, torch.Tensor | None], torch.Tensor], parts: dict[str, ZooTensors],
         truth: dict[str, torch.Tensor], scaler: Any, steps: int, batch: int, lr: float, seed: int, eval_every: int) -> Predict:
    """Train ``model`` on ``features`` of the fit rows, keeping the state best on validation (the fit rows if validation is empty)."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    select = "validation" if len(parts["validation"]) else "fit"
    name, higher = target.primary, target.higher_is_better
    best_score, best_state = None, None

    def predict(rows: ZooTensors) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            outs = [model(features(rows, torch.arange(start, min(start + 256, len(rows)))))
                    for start in range(0, len(rows), 256)]
        return target.predictions(torch.cat(outs).cpu(), scaler)

    fit_truth = truth["fit"].to(device)
    for step in range(1, steps + 1):
        model.train()
        index = torch.randint(len(parts["fit"]), (min(batch, len(parts["fit"])),), generator=generator)
        loss = target.loss(model(features(parts["fit"], index)), fit_truth[index.to(device)], scaler)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            score = target.metrics(predict(parts[select]), truth[select])[name]
            if best_score is None or (score > best_score if higher else score < best_score):
                best_score, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return predict


def probe_predictor(target: Target, embed: Callable[[ZooTensors], torch.Tensor], parts: dict[str, ZooTensors], truth: dict[str, torch.Tensor],
                    steps: list[int], seed: int, train_steps: int, device: torch.device) -> Predict:
    """An MLP on frozen embeddings (standardised with the fit rows' statistics)."""
    embedded = {part: embed(rows).detach() for part, rows in parts.items()}
    mean, scale = embedded["fit"].mean(0), embedded["fit"].std(0).clamp(min=1e-6)
    cache = {id(rows): (embedded[part] - mean) / scale for part, rows in parts.items()}
    torch.manual_seed(seed)
    model = mlp(embedded["fit"].shape[1], 64, 64, target.output_size(steps)).to(device)
    features = lambda rows, index: cache[id(rows)][index.to(device)]  # noqa: E731
    return _fit(target, model, features, parts, truth, target.scaler(truth["fit"]), train_steps, 256, 1e-3, seed, max(1, train_steps // 20))


class EndToEnd(nn.Module):
    """An encoder and an MLP head, trained together on a target."""

    def __init__(self, encoder: RNNEncoderModel, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.encoder(params).embeddings)


def supervised_predictor(target: Target, encoder: str, parts: dict[str, ZooTensors], truth: dict[str, torch.Tensor],
                         steps: list[int], seed: int, train_steps: int, batch: int, device: torch.device) -> Predict:
    """The encoder architecture with an MLP head, trained end to end on the target from the weights (no pretraining).

    Encoders that are not permutation-invariant see randomly permuted RNNs in training, as in pretraining.
    """
    torch.manual_seed(seed)
    network = RNNEncoderModel(RNNEncoderConfig.for_zoo(encoder, parts["fit"].kind))
    model = EndToEnd(network, mlp(network.config.embedding_dim, 64, target.output_size(steps))).to(device)
    permutations = torch.Generator().manual_seed(seed)

    def features(rows: ZooTensors, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return rows.params(index.to(rows.inputs.device), permutations, permute=model.training and network.needs_augmentation)

    return _fit(target, model, features, parts, truth, target.scaler(truth["fit"]), train_steps, batch, 1e-3, seed, max(1, train_steps // 10))


# --- the study ----------------------------------------------------------------------------------

def check_study(info: ZooInfo, supervised: list[str], targets: list[str] | None, seeds: int, probe_steps: int,
                supervised_steps: int, supervised_batch: int, device: str) -> list[str]:
    """Raise :class:`ZooError` for settings no study of the zoo of ``info`` can run with; returns the targets to run
    (``targets``, or all of the zoo's but its optional ones). ``seeds``: how many seeds (``--num-seeds``)."""
    check_counts(seeds=seeds, probe_steps=probe_steps, supervised_steps=supervised_steps, supervised_batch=supervised_batch)
    check_device(device)
    kind = zoo_kind(info.zoo)
    check_encoders("--supervised", supervised, kind)
    missing = kind.unavailable_targets(info.builder, info.format_version)
    available = [name for name in kind.targets() if name not in missing]
    unknown = [name for name in targets or [] if name not in available]
    if unknown:
        why = "".join(f" ({name}: {missing[name]})" for name in unknown if name in missing)
        raise ZooError(f"unknown target(s) {unknown} for this {info.zoo} zoo{why}; choose from {', '.join(available)}")
    return targets or [name for name in available if name not in kind.optional_targets]


def embedder(encoder: RNNEncoderModel) -> Callable[[ZooTensors], torch.Tensor]:
    """Frozen embeddings of all rows of a part, in chunks."""

    def embed(rows: ZooTensors) -> torch.Tensor:
        encoder.eval()
        with torch.no_grad():
            chunks = [encoder(rows.params(torch.arange(start, min(start + 256, len(rows)), device=rows.inputs.device))).embeddings
                      for start in range(0, len(rows), 256)]
        return torch.cat(chunks) if chunks else torch.zeros(0, encoder.config.embedding_dim, device=rows.inputs.device)

    return embed


def run_downstream(
    zoo: str | Path,
    pretrained: dict[str, Callable[[ZooTensors], torch.Tensor]],
    supervised: list[str],
    targets: list[str] | None = None,
    seeds: int = 5,
    probe_steps: int = 2000,
    supervised_steps: int = 2000,
    supervised_batch: int = SUPERVISED_BATCH,
    device: str = "cpu",
    splits: dict[str, ZooTensors] | None = None,
    revision: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score every method on every target; returns the results and seed 0's predictions on the reported parts.

    ``pretrained`` maps a method name to a function giving embeddings of rows (for a pretrained
    encoder: :func:`embedder`; tests pass synthetic ones). ``seeds``: how many seeds, 0 to ``seeds - 1``. ``splits``: the
    zoo (at ``revision``) already loaded on ``device``. Every setting is checked (:func:`check_study`) before the zoo's
    rows are loaded.
    """
    info = check_zoo(zoo, revision)
    kind = zoo_kind(info.zoo)
    chosen = check_study(info, supervised, targets, seeds, probe_steps, supervised_steps, supervised_batch, device)
    torch_device = torch.device(check_device(device))
    parts, moved, kept = protocol_parts(splits or load_splits(zoo, torch_device, revision))
    if len(parts["fit"]) == 0:
        raise ZooError(f"{zoo} has no rows to train a predictor on")
    available = kind.targets()
    steps = sorted(info.snapshot_steps)
    results: dict[str, Any] = {"zoo": str(zoo), "zoo_name": kind.name, "seeds": seeds,
                               "rows": {part: len(rows) for part, rows in parts.items()},
                               "ood_tasks": {"moved_into_training": [kind.task_cell(task) for task in moved], "reported": [kind.task_cell(task) for task in kept]},
                               "targets": {}}
    outputs: dict[str, Any] = {}
    progress = tqdm(total=len(chosen) * (len(pretrained) + len(supervised)) * seeds, desc="downstream predictors", unit=" fits")
    for name in chosen:
        target = available[name]
        truth = {part: target.values(rows, steps) for part, rows in parts.items()}
        methods: dict[str, Callable[[int], Predict]] = {
            f"pretrained:{method}": partial(probe_predictor, target, embed, parts, truth, steps, train_steps=probe_steps, device=torch_device)
            for method, embed in pretrained.items()
        }
        methods.update({f"supervised:{encoder}": partial(supervised_predictor, target, encoder, parts, truth, steps,
                                                         train_steps=supervised_steps, batch=supervised_batch, device=torch_device)
                        for encoder in supervised})
        entry: dict[str, Any] = {"kind": target.label, "primary_metric": target.primary, "higher_is_better": target.higher_is_better,
                                 "methods": {}}
        trivial = {part: target.metrics(target.trivial(truth["fit"], len(truth[part])), truth[part])
                   for part in REPORTED if len(truth[part])}
        entry["methods"]["trivial"] = {part: summarise([score]) for part, score in trivial.items()}
        for method, make in methods.items():
            per_part: dict[str, list[dict[str, float]]] = {part: [] for part in REPORTED if len(truth[part])}
            for seed in range(seeds):
                predict = make(seed=seed)
                progress.update()
                for part in per_part:
                    predicted = predict(parts[part])
                    per_part[part].append(target.metrics(predicted, truth[part]))
                    if seed == 0:
                        outputs.setdefault(name, {}).setdefault(method, {})[part] = {"predicted": predicted, "true": truth[part]}
            entry["methods"][method] = {part: summarise(scores) for part, scores in per_part.items()}
        results["targets"][name] = entry
    progress.close()
    return results, outputs


def pretrained_argument(value: str | Path) -> tuple[str | None, Path]:
    """A ``--pretrained`` value: ``FOLDER``, or ``ENCODER=FOLDER`` naming the encoder's code (an existing path is a folder)."""
    reference, equals, folder = str(value).partition("=")
    if not equals or Path(value).exists():
        return None, Path(value)
    return reference, Path(folder)


def load_encoder(value: str | Path) -> tuple[Path, RNNEncoderModel]:
    """The encoder saved in the folder of a ``--pretrained`` value (:func:`pretrained_argument`). Its code is imported only
    where the value names it (``ENCODER=FOLDER``), never because the folder does; :class:`ZooError` for a folder that
    holds no encoder, another encoder than named, or one whose code is not known here."""
    reference, folder = pretrained_argument(value)
    if not (folder / "config.json").is_file():
        raise ZooError(f"--pretrained {folder} is not an encoder folder (no config.json); pass RUN/encoder of rnn-zoos pretrain")
    recorded = RNNEncoderConfig.from_pretrained(folder).encoder
    if reference is not None:
        try:
            named = resolve_encoder(reference).reference
        except ZooError as error:
            raise ZooError(f"--pretrained {error}") from None
        if named != recorded:
            raise ZooError(f"--pretrained {value}: {folder} holds the encoder {recorded!r}, not {named!r}")
    try:
        return folder, RNNEncoderModel.from_pretrained(folder)
    except UnknownEncoderError as error:
        advice = f"name it on the command line: --pretrained {error.reference}={folder}"
        raise ZooError(f"--pretrained {folder}: {error.explain(advice)}") from None


def load_pretrained(values: list[str | Path], info: ZooInfo, device: str,
                    zoo: str | Path = "the zoo") -> dict[str, Callable[[ZooTensors], torch.Tensor]]:
    """The embedders of the encoders saved in the folders of ``--pretrained`` ``values`` (``RUN/encoder`` of ``rnn-zoos
    pretrain``, :func:`load_encoder`), by method name: the encoder's name, or ``ENCODER@RUN`` for encoders that two or
    more folders share (so no run's results replace another's); :class:`ZooError` for a folder that holds no encoder, or
    one pretrained on another kind of zoo than that of ``info``."""
    models = []
    for value in values:
        folder, model = load_encoder(value)
        if model.config.zoo != info.zoo:
            raise ZooError(f"--pretrained {folder} was pretrained on a {model.config.zoo} zoo, not a {info.zoo} zoo like {zoo}")
        models.append((folder, model))
    names = [model.config.encoder for _, model in models]
    encoders = {}
    for (folder, model), name in zip(models, names):
        if names.count(name) > 1:
            run = folder.resolve().parent if folder.name == "encoder" else folder.resolve()
            name = f"{name}@{run.name}"
        if name in encoders:
            raise ZooError(f"--pretrained: two folders give the method name {name}; pass each pretraining run once")
        encoders[name] = embedder(model.to(device))
    return encoders


def write_results(out: Path, results: dict[str, Any], outputs: dict[str, Any]) -> None:
    """Write ``out/predictions.pt`` (seed 0's predictions), then ``out/downstream.json`` (what marks the folder as
    downstream's, :mod:`rnn_zoos.common.results`)."""
    with output_folder(out):
        save_atomically(outputs, out / "predictions.pt")
        with atomic_write(out / "downstream.json") as temporary:
            temporary.write_text(json_text(results, indent=1))


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = CommandParser(prog or "rnn-zoos downstream", __doc__.split("\n")[0])
    parser.add(ZOO)
    parser.add(OUT, type=Path, help="folder for downstream.json and predictions.pt (new or empty)")
    parser.add_argument("--pretrained", nargs="*", default=[], metavar="FOLDER",
                        help="encoder folders written by rnn-zoos pretrain (RUN/encoder); the same encoder twice is named ENCODER@RUN. "
                             "A folder never makes rnn-zoos import code: for an encoder of your own code write "
                             "MODULE:CLASS=RUN/encoder, which imports MODULE (its code runs)")
    parser.add_argument("--supervised", nargs="*", default=[], metavar="ENCODER",
                        help=f"encoders trained end to end on each target, without pretraining: {REFERENCE_HELP}")
    parser.add_argument("--targets", nargs="*", default=None, help="which of the zoo's targets to predict (default: all of them)")
    parser.add(renamed("seeds", {"type": int, "default": 5, "metavar": "N",
                                 "help": "seeds per method, 0 to N-1; the report gives their mean and a 95 %% interval"}))
    parser.add_argument("--probe-steps", type=int, default=2000, help="training steps of each probe on frozen embeddings")
    parser.add_argument("--supervised-steps", type=int, default=2000, help="training steps of each end-to-end encoder")
    parser.add(DEVICE)
    parser.add(REVISION)
    args = parser.parse_args(argv)
    try:
        device = check_device(args.device)
        check_out_folder(args.out)
        check_results_folder(args.out, "downstream", resumes=False)
        info = check_zoo(args.zoo, args.revision)
        check_study(info, args.supervised, args.targets, args.seeds, args.probe_steps, args.supervised_steps, SUPERVISED_BATCH,
                    device)
        encoders = load_pretrained(args.pretrained, info, device, args.zoo)
        results, outputs = run_downstream(args.zoo, encoders, args.supervised, args.targets, args.seeds, args.probe_steps,
                                          args.supervised_steps, device=device, revision=args.revision)
        results["provenance"] = run_provenance(args.zoo, args.revision)
        write_results(args.out, results, outputs)
    except ZooError as error:
        return report(error)
    print(json_text({target: {method: {part: entry[part]["mean"] for part in entry} for method, entry in value["methods"].items()}
                      for target, value in results["targets"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
