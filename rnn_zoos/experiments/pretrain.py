"""Emulation pretraining of an RNN weight encoder (and its emulator) on a zoo, as the paper's training loop.

    rnn-zoos pretrain ZOO --encoder NAME --out DIR [--steps 100000] [--rnns-per-batch 64]
        [--device auto|cpu|cuda] [--seed 0] [--revision REV] [--probing-sequences 1] [--probing-length N]

As the paper's loop, the steps are numbered 0 to ``steps``, one update each. Each step takes the
next ``batch_rnns`` RNNs of a shuffled pass over the ``train`` split (the last batch of a pass may
be smaller; ``flat`` and ``parameter_transformer`` see them with the hidden neurons of each layer
permuted by one random permutation for the batch), embeds them, and trains the emulator,
conditioned on each unit-normalised embedding, to reproduce its RNN's outputs on
``sequences_per_rnn`` of its recorded sequences (total variation against the stored log-probs
renormalised as the paper's ``Categorical`` does). The paper's optimiser: one AdamW (lr 1e-4, weight
decay 0.01) over both models, gradient norms clipped to 0.1 for the emulator and for the encoder
separately. After the update of every step divisible by ``eval_every`` (0 included) and of the last,
the emulation loss of every validation RNN and every ood RNN is measured on one fixed recorded
sequence each, and the cloned performance of ``cloned_rnns`` validation RNNs as the paper measures it
(``DIR/log.jsonl``, drawn in ``DIR/loss.png``); the best model on validation (on ood if the zoo's validation
split is empty, as the run says) is kept in ``DIR/encoder`` and ``DIR/emulator`` (``from_pretrained``-ready,
with model cards). Interrupting and running the same command again resumes from ``DIR/checkpoint.pt``,
which is removed once the run is finished. At the end: the paper's figure of cloned performance, the smallest of those
measured on validation with its step (its ``min return difference``), and rnn-zoos' own, the best
model's measured on ``cloned_rnns`` RNNs of every split, as the paper measures it and as rnn-zoos does
(``DIR/cloned.json``, ``DIR/cloned.png``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from rnn_zoos.common.arguments import parse_config
from rnn_zoos.common.errors import ZooError, report
from rnn_zoos.common.files import atomic_write, check_out_folder, disk_full_errors, json_text, output_folder
from rnn_zoos.format.info import SPLITS
from rnn_zoos.lstm import Params
from rnn_zoos.lstm.training import adam_checkpoint_bound
from rnn_zoos.hub.provenance import run_provenance
from rnn_zoos.common.results import check_results_folder

from .data import (
    ZooTensors,
    check_zoo,
    load_splits,
)
from .run_folder import (damaged_checkpoint, finished_summary, read_checkpoint, read_log, remove_dead_temporaries, run_lock,
                         save_model, write_checkpoint)
from .pretrain_config import PAPER_SETTINGS, PretrainConfig  # noqa: F401  (re-exported)
from .emulation import cloned_scores, emulation_loss, evaluate_emulation, evaluation_rows, loss_plot, mean_abs_difference, scatter_plot
from ..models.modeling import EmulatorConfig, EmulatorModel, RNNEncoderConfig, RNNEncoderModel

EVALUATION_SEED = 1234
"""Seed of the fixed evaluation sequences and permutations (the paper's ``fix_seed`` default)."""


class Pretraining:
    """The state of one pretraining run: models, optimiser, data on the device, the log."""

    def __init__(self, config: PretrainConfig, splits: dict[str, ZooTensors] | None = None) -> None:
        self.config = config
        self.out = Path(config.out)
        self.device = torch.device(config.device)
        self.info = check_zoo(config.zoo, config.revision)
        config.validate_for_zoo(self.info)
        self.splits = splits or load_splits(config.zoo, self.device, config.revision)
        kind = self.splits["train"].kind
        torch.manual_seed(config.seed)
        self.encoder = RNNEncoderModel(RNNEncoderConfig.for_zoo(config.encoder, kind, **config.encoder_options())).to(self.device)
        self.emulator = EmulatorModel(EmulatorConfig.for_zoo(kind)).to(self.device)
        self.optimizer = torch.optim.AdamW(self.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.permutations = torch.Generator().manual_seed((config.seed + 2) % 2**64)
        fixed = torch.Generator().manual_seed(EVALUATION_SEED)
        self.eval_index, self.eval_sequence = {}, {}
        for split in ("validation", "ood"):
            rows = self.splits[split]
            if len(rows) == 0:  # nothing to evaluate: the split is left out of the log
                continue
            index = evaluation_rows(len(rows), config.eval_rnns or len(rows))
            self.eval_index[split] = index.to(self.device)
            self.eval_sequence[split] = torch.randint(rows.inputs.shape[1], (len(index), 1), generator=fixed).to(self.device)
        kind = self.splits["train"].kind
        self.cloned_data = kind.validation_data(self.info.builder, config.mnist, self.device) if config.cloned_rnns else None
        self.selected_on = "validation" if "validation" in self.eval_index else "ood"
        """The split whose emulation loss selects the best model: validation, or ood if the zoo has no validation RNNs."""
        self.step = 0
        """The next step to train: the updates done."""
        self.best = float("inf")
        self.history: list[dict[str, float]] = []
        self._epoch: tuple[int, torch.Tensor] | None = None

    def parameters(self) -> list[torch.nn.Parameter]:
        return [*self.encoder.parameters(), *self.emulator.parameters()]

    # --- training ---------------------------------------------------------------------------

    def batch_index(self) -> torch.Tensor:
        """The train rows of this step: the next slice of this pass's shuffled order (a pure function of seed and step)."""
        rows, size = len(self.splits["train"]), self.config.batch_rnns
        per_pass = -(-rows // size)
        epoch, position = divmod(self.step, per_pass)
        if self._epoch is None or self._epoch[0] != epoch:
            order = torch.randperm(rows, generator=torch.Generator().manual_seed((self.config.seed * 1_000_003 + epoch) % 2**64))
            self._epoch = (epoch, order.to(self.device))
        return self._epoch[1][position * size : (position + 1) * size]

    def train_step(self) -> float:
        """One optimiser step on a batch of training RNNs; returns its emulation loss."""
        config, train = self.config, self.splits["train"]
        index = self.batch_index()
        scores = torch.rand(len(index), train.inputs.shape[1], generator=self.generator, device=self.device)
        sequence = scores.argsort(dim=1)[:, : config.sequences_per_rnn]  # distinct sequences per RNN
        params = train.params(index, self.permutations, permute=self.encoder.needs_augmentation)
        inputs, targets = train.sequences(index, sequence)
        return self.optimize(params, inputs, targets)

    def optimize(self, params: Params, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        """One optimiser step on RNN weights ``[B, ...]`` and their sequences ``[B * k, T, ·]``; returns the emulation loss."""
        config = self.config
        self.encoder.train()
        self.emulator.train()
        embedding = self.encoder(params).embeddings.repeat_interleave(len(inputs) // len(params["head.weight"]), dim=0)
        logits = self.emulator(inputs, embedding).logits
        loss = emulation_loss(logits, targets, config.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.emulator.parameters(), config.clip)
            torch.nn.utils.clip_grad_norm_(self.encoder.parameters(), config.clip)
        self.optimizer.step()
        return loss.item()

    def evaluate(self) -> dict[str, float]:
        """Emulation loss on the fixed validation and ood RNNs, one fixed recorded sequence each (a split without RNNs is
        left out)."""
        self.encoder.eval()
        self.emulator.eval()
        losses = {}
        for split, index in self.eval_index.items():
            permutations = torch.Generator().manual_seed(EVALUATION_SEED) if self.encoder.needs_augmentation else None
            losses[split] = evaluate_emulation(
                self.encoder,
                self.emulator,
                self.splits[split],
                index,
                self.eval_sequence[split],
                self.config.loss,
                self.config.batch_rnns,
                permutations,
            )
        return losses

    def cloned_validation(self, step: int) -> float:
        """The paper's ``return difference`` of the current model: mean absolute difference between the paper's scores of
        ``cloned_rnns`` validation RNNs and of the emulator standing in for each (new random draws at every step)."""
        rows = self.splits["validation"]
        index = evaluation_rows(len(rows), self.config.cloned_rnns).to(self.device)
        if len(index) == 0:
            return float("nan")
        self.encoder.eval()
        self.emulator.eval()
        scores = cloned_scores(self.encoder, self.emulator, rows, index, self.cloned_data, draw=step, measures=("paper",))
        return mean_abs_difference(*scores["paper"])

    def run(self) -> None:
        """Train steps 0 to ``config.steps``, evaluating after the update of every step divisible by ``eval_every`` and
        of the last (keeping the best model, checkpointing), as the paper's loop evaluates after its update."""
        config = self.config
        recent: list[float] = []
        with tqdm(total=config.steps + 1, initial=self.step, desc=f"pretraining {config.encoder}", unit=" steps") as progress:
            while self.step <= config.steps:
                step = self.step
                recent.append(self.train_step())  # the losses since the last evaluation (a checkpoint)
                self.step += 1
                progress.update(1)
                best = {f"best_{self.selected_on}": f"{self.best:.4f}"} if self.best < float("inf") else {}
                progress.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", **best, refresh=False)
                if step % config.eval_every == 0 or step == config.steps:
                    losses = self.evaluate()
                    entry = {"step": step, "train": sum(recent) / len(recent), **losses}
                    if config.cloned_rnns:
                        entry["cloned_validation"] = self.cloned_validation(step)
                    diverged = [name for name in ("train", self.selected_on) if not math.isfinite(entry[name])]
                    if diverged:
                        raise ZooError(f"the run diverged: its {diverged[0]} loss is {entry[diverged[0]]} at step {step} (--lr "
                                       f"{config.lr} is likely too large); {self.diverged_models()}rerun with a smaller --lr and a new --out")
                    self.history.append(entry)
                    self._log(entry)
                    recent = []
                    score = losses[self.selected_on]
                    if score < self.best:
                        self.best = score
                        self.save_models(self.out, losses, step)
                    self.save_checkpoint()

    def diverged_models(self) -> str:
        """What a diverged run keeps: the best model before it diverged, or none."""
        if self.best < float("inf"):
            return f"the best model before it diverged ({self.selected_on} loss {self.best:.4f}) is kept in {self.out}; "
        return "no model was saved; "

    # --- files ------------------------------------------------------------------------------

    def _log(self, entry: dict[str, float]) -> None:
        with disk_full_errors(self.out / "log.jsonl"), open(self.out / "log.jsonl", "a") as log:
            log.write(json_text(entry) + "\n")
            log.flush()
            os.fsync(log.fileno())

    def training_record(self, losses: dict[str, float], step: int) -> dict[str, Any]:
        """What a saved model records of its training: the run's settings and the step (and losses) it was saved at."""
        return {
            "zoo": self.config.zoo,
            "zoo_name": self.info.zoo,
            "encoder": self.config.encoder,
            "steps": step,
            "emulation_loss": self.config.loss,
            "selected_on": self.selected_on,
            "validation_loss": losses.get("validation"),
            "ood_loss": losses.get("ood"),
            "batch_rnns": self.config.batch_rnns,
            "seed": self.config.seed,
        }

    def save_models(self, folder: Path, losses: dict[str, float], step: int) -> None:
        """Save the encoder and the emulator, evaluated at ``step`` with ``losses``, as ``folder/encoder`` and ``folder/emulator``."""
        record = self.training_record(losses, step)
        for name, model in (("encoder", self.encoder), ("emulator", self.emulator)):
            model.config.training = record
            save_model(model, folder, name)

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "best": self.best, "history": self.history, "encoder": self.encoder.state_dict(),
                 "emulator": self.emulator.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": self.generator.get_state(), "permutations": self.permutations.get_state()}
        write_checkpoint(state, self.out / "checkpoint.pt")

    def checkpoint_bound(self) -> int:
        """The most bytes a checkpoint of this run can take, with a wide margin: the models' tensors with two AdamW
        moments each (4x their bytes), 64 KiB per evaluation the history can hold, and 64 MiB for the rest."""
        tensors = [*self.encoder.state_dict().values(), *self.emulator.state_dict().values()]
        evaluations = self.config.steps // max(1, self.config.eval_every) + 2
        return adam_checkpoint_bound(tensors, evaluations * (64 << 10) + (64 << 20))

    def restore(self) -> None:
        """Continue from ``OUT/checkpoint.pt`` if there is one, and make ``OUT/log.jsonl`` the restored history: the
        lines an interrupted session logged after its last checkpoint (or before a first one) are logged again as the
        run repeats them."""
        path = self.out / "checkpoint.pt"
        if path.is_file():
            state = read_checkpoint(path, self.device, self.checkpoint_bound())
            try:
                self.encoder.load_state_dict(state["encoder"])
                self.emulator.load_state_dict(state["emulator"])
                self.optimizer.load_state_dict(state["optimizer"])
                self.generator.set_state(state["generator"].cpu())
                self.permutations.set_state(state["permutations"].cpu())
                self.step, self.best, self.history = int(state["step"]), float(state["best"]), list(state["history"])
                json_text(self.history)
            except (KeyError, RuntimeError, TypeError, ValueError, AttributeError, RecursionError) as error:
                raise damaged_checkpoint(path, f"{type(error).__name__}: {error}") from None
            if not 0 <= self.step <= self.config.steps + 1 or not all(isinstance(entry, dict) for entry in self.history):
                raise damaged_checkpoint(path, f"it is at step {self.step} of a run of {self.config.steps} steps")
        with atomic_write(self.out / "log.jsonl") as temporary:
            temporary.write_text("".join(json_text(entry) + "\n" for entry in self.history))

    # --- cloned performance -------------------------------------------------------------------

    def cloned_performance(self) -> dict[str, Any]:
        """The best model's emulator standing in for RNNs of every split, scored as the paper does and as rnn-zoos does."""
        encoder = RNNEncoderModel.from_pretrained(self.out / "encoder").to(self.device).eval()
        emulator = EmulatorModel.from_pretrained(self.out / "emulator").to(self.device).eval()
        scores: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {"paper": {}, "rnn_zoos": {}}
        summary = {}
        for split in tqdm(SPLITS, desc="cloned performance", unit=" split"):
            rows = self.splits[split]
            index = evaluation_rows(len(rows), self.config.cloned_rnns).to(self.device)
            if len(index) == 0:
                continue
            measured = cloned_scores(encoder, emulator, rows, index, self.cloned_data)
            for measure, pair in measured.items():
                scores[measure][split] = pair
            paper, ours = measured["paper"], measured["rnn_zoos"]
            summary[split] = {
                "rnns": len(index),
                "mean_abs_difference": mean_abs_difference(*paper),
                "original": paper[0].tolist(),
                "cloned": paper[1].tolist(),
                "rnn_zoos": {"mean_abs_difference": mean_abs_difference(*ours), "original": ours[0].tolist(), "cloned": ours[1].tolist()},
            }
        name = f"{self.config.encoder} on {self.info.zoo}"
        scatter_plot(self.out / "cloned.png", scores["paper"], f"{name}: cloned performance (the paper's measure)", "score")
        scatter_plot(self.out / "cloned_rnn_zoos.png", scores["rnn_zoos"], f"{name}: rnn-zoos' measure", "accuracy")
        with atomic_write(self.out / "cloned.json") as temporary:
            temporary.write_text(json_text(summary, indent=1))
        return summary

    def official_cloned(self) -> dict[str, Any]:
        """The paper's figure of cloned performance (its ``min return difference``): the smallest of the differences
        measured on validation at the evaluations (:meth:`cloned_validation`), with the first step that reached it."""
        measured = [(entry["cloned_validation"], entry["step"]) for entry in self.history
                    if isinstance(entry.get("cloned_validation"), float) and not math.isnan(entry["cloned_validation"])]
        smallest = min(measured, key=lambda pair: pair[0], default=(math.nan, None))
        return {"split": "validation", "rnns": len(evaluation_rows(len(self.splits["validation"]), self.config.cloned_rnns)),
                "min_mean_abs_difference": smallest[0], "step": smallest[1], "evaluations": len(measured)}

    def describe(self) -> str:
        """One line: what this run trains on, when and on what it evaluates, and what it measures at the end."""
        config, rows = self.config, {split: len(self.splits[split]) for split in SPLITS}
        evaluated = " and ".join(f"{len(index)} {split}" for split, index in self.eval_index.items())
        empty = " (the validation split is empty)" if self.selected_on == "ood" else ""
        cloned = f"{config.cloned_rnns} RNNs per split" if config.cloned_rnns else "skipped (--cloned-rnns 0)"
        every = "every step" if config.eval_every == 1 else f"every {config.eval_every} steps"
        return (f"pretraining {config.encoder} for {config.steps} steps of {min(config.batch_rnns, rows['train'])} of "
                f"{rows['train']} train RNNs; after the update of step 0 and then {every}, "
                f"the emulation loss of {evaluated} RNNs, "
                f"the best model selected on {self.selected_on}{empty}; at the end, cloned performance: {cloned}")



def pretrain(config: PretrainConfig, splits: dict[str, ZooTensors] | None = None) -> dict[str, Any]:
    """Run (or resume, or find finished) a pretraining run; returns its summary (also written to ``OUT/summary.json``).

    ``splits``: the zoo already loaded on ``config.device`` (:func:`rnn_zoos.experiments.data.load_splits`), to share it between runs.
    """
    config.validate()
    out = Path(config.out)
    options = asdict(config)
    options.pop("device")
    check_out_folder(out)
    options["out"] = str(out.resolve())
    check_results_folder(out, "pretrain", resumes=True)
    with output_folder(out), run_lock(out):
        return run_locked(config, splits, options)


def run_locked(config: PretrainConfig, splits: dict[str, ZooTensors] | None, options: dict[str, Any]) -> dict[str, Any]:
    """:func:`pretrain`, once this process holds the lock of ``config.out``."""
    out = Path(config.out)
    finished = finished_summary(out, options)
    if finished is not None:
        print(f"{out}: this run is already complete")
        return finished
    run = Pretraining(config, splits)  # reads and checks the zoo; nothing is written before this succeeds
    remove_dead_temporaries(out)
    with atomic_write(out / "config.json") as temporary:
        temporary.write_text(json.dumps(options, indent=1))
    run.restore()
    print(run.describe(), file=sys.stderr)
    started = time.perf_counter()
    run.run()
    loss_plot(out / "loss.png", read_log(out / "log.jsonl"), f"{config.encoder} on {run.info.zoo}: emulation loss")
    summary = {
        "steps": config.steps,
        "updates": run.step,
        "selected_on": run.selected_on,
        "best_loss": run.best,
        "history": run.history,
        "parameters": {
            "encoder": sum(p.numel() for p in run.encoder.parameters()),
            "emulator": sum(p.numel() for p in run.emulator.parameters()),
        },
        "seconds_this_session": time.perf_counter() - started,
    }
    if config.cloned_rnns:
        summary["cloned_official_min"] = run.official_cloned()
        summary["cloned_best_model"] = {
            split: {
                "rnns": entry["rnns"],
                "mean_abs_difference": entry["mean_abs_difference"],
                "rnn_zoos_mean_abs_difference": entry["rnn_zoos"]["mean_abs_difference"],
            }
            for split, entry in run.cloned_performance().items()
        }
    summary["provenance"] = run_provenance(config.zoo, config.revision)
    with atomic_write(out / "summary.json") as temporary:
        temporary.write_text(json_text(summary, indent=1))
    (out / "checkpoint.pt").unlink(missing_ok=True)  # finished: only an unfinished run resumes from it
    return summary


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    config = parse_config(PretrainConfig, prog or "rnn-zoos pretrain", __doc__.split("\n")[0], argv)
    try:
        with disk_full_errors(config.out):
            summary = pretrain(config)
    except ZooError as error:
        return report(error)
    shown = {key: summary[key] for key in ("steps", "selected_on", "best_loss", "parameters")}
    print(json_text(shown | {key: summary.get(key) for key in ("cloned_official_min", "cloned_best_model")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
