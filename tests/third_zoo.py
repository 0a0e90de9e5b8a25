"""A third kind of zoo, defined here in the test folder only: LSTMs 16 wide that recall a token after a delay.

Adding a zoo to rnn-zoos is adding one module like this one: a :class:`ZooKind` with its columns,
its recipe, its scoring and its downstream targets, registered with :func:`register_zoo`. Nothing
else of the package changes. A run's task is a delay d in 0..3: the RNN reads a sequence of
one-hot tokens (4 kinds, as real-valued inputs) and must output, at every position t, the token of
position t - d (token 0 before the sequence starts).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from datasets import Array3D, Value
from torch import nn

from rnn_zoos.zoos.build_config import BuildConfig
from rnn_zoos.lstm.functional import LSTMArchitecture, Params, lstm_forward
from rnn_zoos.lstm.streams import stream_uniform
from rnn_zoos.zoos.targets import Classes, Regression, Target
from rnn_zoos.zoos import CLONED_MEASURES, SequenceModel, ZooKind, ZooRecipe, recorded_log_probs, register_zoo, rnn_model

TOKENS, LENGTH, DELAYS, RECORDED, EVALUATED = 4, 12, 4, 100, 64
STREAM_TASK, STREAM_DATA, STREAM_EVAL = 16, 17, 18

CARD = """---
license: cc-by-4.0
pretty_name: "delayed recall: a test zoo"
tags:
- rnn-zoos
---

# Delayed recall ($runs runs)

| split | tasks | runs | rows |
|---|---|---|---|
$split_table

Made by `$build_command` ($code_version, $torch_version, $device).

$plots

$notes
"""


def sequences(seeds: torch.Tensor, keys: tuple[int, ...], count: int) -> torch.Tensor:
    """``count`` one-hot token sequences ``[len(seeds), count, LENGTH, TOKENS]`` drawn from each seed's stream."""
    tokens = torch.floor(stream_uniform(seeds, keys, (count, LENGTH)) * TOKENS).long()
    return nn.functional.one_hot(tokens, TOKENS).float()


def targets(inputs: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """The token each position must recall: that of ``d`` positions earlier, 0 before the start; ``[M, B, LENGTH]``."""
    tokens = inputs.argmax(-1)
    position = torch.arange(LENGTH, device=inputs.device)
    source = position - delays.view(-1, 1, 1)
    recalled = tokens.gather(-1, source.clamp(min=0).expand_as(tokens))
    return torch.where(source >= 0, recalled, 0)


def accuracy(model: SequenceModel, inputs: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """Fraction of positions each of M models recalls right ``[M]``."""
    logits, _ = model(inputs, None)
    return (logits.argmax(-1) == targets(inputs, delays)).float().mean(dim=(1, 2))


class DelayRecipe(ZooRecipe):
    def setup(self, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        delay = torch.floor(stream_uniform(seeds, (STREAM_TASK,), ()) * DELAYS).long()
        return {"task": delay, "weight_decay": torch.zeros(len(seeds), device=seeds.device)}

    def loss(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> torch.Tensor:
        inputs = sequences(seeds, (STREAM_DATA, step), 16)
        logits, _ = lstm_forward(params, inputs)
        losses = nn.functional.cross_entropy(logits.flatten(0, -2), targets(inputs, runs["task"]).flatten(), reduction="none")
        return losses.view(len(seeds), -1).mean(dim=1)

    def snapshot(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> dict[str, Any]:
        evaluation = sequences(seeds, (STREAM_EVAL,), RECORDED)
        return {"task": runs["task"].cpu().tolist(),
                "accuracy": accuracy(rnn_model(params), evaluation, runs["task"]).cpu().numpy(),
                "weight_decay": runs["weight_decay"].cpu().numpy(),
                "inputs": evaluation.to(torch.float16).cpu().numpy(),
                "log_probs": recorded_log_probs(self.kind, params, evaluation.to(torch.float16))}


class Delay(Classes):
    """Which delay an RNN was trained on, as a class."""

    def values(self, rows: Any, steps: list[int]) -> torch.Tensor:
        return torch.tensor(rows.tasks, dtype=torch.long)

    def output_size(self, steps: list[int]) -> int:
        return DELAYS


class DelayedRecall(ZooKind):
    name = "delayed-recall"
    description = "LSTMs 16 wide recalling the token seen d steps earlier (a test zoo)"
    architecture = LSTMArchitecture(input_size=TOKENS, hidden_size=16, num_layers=2, output_size=TOKENS)
    task_feature = Value("int8")
    inputs_feature = Array3D((RECORDED, LENGTH, TOKENS), "float16")
    log_probs_feature = Array3D((RECORDED, LENGTH, TOKENS), "float16")
    criterion_label = "delay"
    probing_length = LENGTH

    def task_key(self, cell: Any) -> int:
        return int(cell)

    def criterion(self, vectors: np.ndarray) -> np.ndarray:
        return vectors.reshape(len(vectors), -1).sum(-1)

    def is_task(self, cell: Any) -> bool:
        return isinstance(cell, int) and not isinstance(cell, bool) and 0 <= cell < DELAYS

    def recipe(self, config: BuildConfig) -> ZooRecipe:
        return DelayRecipe(self)

    def card_template(self) -> str:
        return CARD

    def cloned_scores(self, rnn: SequenceModel, emulator: SequenceModel, rows: Any, index: torch.Tensor, data: Any,
                      draw: int = 0, measures: tuple[str, ...] = CLONED_MEASURES) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        delays = torch.tensor([rows.tasks[row] for row in index.tolist()], device=index.device)
        evaluation = sequences(index, (STREAM_EVAL + 1, draw), EVALUATED)
        scores = (accuracy(rnn, evaluation, delays).cpu(), accuracy(emulator, evaluation, delays).cpu())
        return {measure: scores for measure in measures}

    def targets(self) -> dict[str, Target]:
        return {"delay": Delay("delay"), "accuracy": Regression("accuracy")}


DELAYED_RECALL = register_zoo(DelayedRecall())
