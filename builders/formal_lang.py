"""Build the formal-language zoo: 2-layer LSTMs trained as generative models of a^n b^(n+m_b) c^(n+m_c) d^(n+m_d).

    python -m builders.formal_lang --out DIR [--runs 1000] [--steps 20000] [--seed 0]
                                   [--device cpu|cuda] [--runs-per-batch K]

Each run draws its task uniformly from the 216 languages, trains with teacher-forced cross-entropy
on strings of its language (batch 32, AdamW with weight decay 1e-4, the paper's learning-rate
schedule) and is recorded at nine snapshot steps: accuracy over 1000 sampled strings, 100 of
those strings as ``inputs`` and the RNN's log-probabilities on them.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from rnn_zoos.build import BuildConfig, ZooRecipe, parse_build_args, recorded_log_probs, run_builder
from rnn_zoos.zoos import FORMAL_LANG
from rnn_zoos.lstm import Params, lstm_forward, lstm_step
from rnn_zoos.streams import stream_uniform
from rnn_zoos.zoos import formal_lang as fl
from rnn_zoos.training import TrainingSchedule

STREAM_TASK, STREAM_DATA, STREAM_SAMPLE = 16, 17, 18
WEIGHT_DECAY = 1e-4
SAMPLES = 1000
"""Strings sampled per snapshot to measure accuracy."""
RECORDED = 100
"""Of those, how many are stored as ``inputs``."""
ACCURACY_DEFINITION = (
    "fraction of 1000 strings sampled from the RNN that are in its language: a string counts only if it contains "
    "EOS and, before it, the letters come in order with counts n, n + m_b, n + m_c, n + m_d for one n >= 0 "
    "(the paper's release counts the letters without checking their order)"
)


class FormalLangRecipe(ZooRecipe):
    """The formal-language zoo of the paper (DESIGN.md section 4)."""

    spec = FORMAL_LANG

    def setup(self, seeds: torch.Tensor) -> dict[str, torch.Tensor]:
        choice = torch.floor(stream_uniform(seeds, (STREAM_TASK,), ()) * len(fl.TASKS)).long()
        return {
            "task": fl.TASKS.to(seeds.device)[choice],
            "weight_decay": torch.full(seeds.shape, WEIGHT_DECAY, device=seeds.device),
        }

    def loss(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> torch.Tensor:
        uniforms = stream_uniform(seeds, (STREAM_DATA, step), (TrainingSchedule.batch_size,))
        strings = fl.training_strings(runs["task"], uniforms)
        logits, _ = lstm_forward(params, fl.one_hot(strings[..., :-1]))
        losses = torch.nn.functional.cross_entropy(logits.flatten(0, -2), strings[..., 1:].flatten(), reduction="none")
        return losses.view(len(seeds), -1).mean(dim=1)

    def snapshot(self, params: Params, runs: dict[str, torch.Tensor], seeds: torch.Tensor, step: int) -> dict[str, Any]:
        uniforms = stream_uniform(seeds, (STREAM_SAMPLE, step), (SAMPLES, fl.SEQUENCE_LENGTH - 1))
        strings = fl.sample_strings(lambda tokens, state: lstm_step(params, tokens, state), uniforms)
        accuracy = fl.accepts(strings, runs["task"].unsqueeze(1)).float().mean(dim=1)
        inputs = strings[:, :RECORDED]
        return {
            "task": runs["task"].cpu().tolist(),
            "accuracy": accuracy.cpu().numpy(),
            "weight_decay": runs["weight_decay"].cpu().numpy(),
            "inputs": inputs.to(torch.int16).cpu().numpy(),
            "log_probs": recorded_log_probs(self.spec, params, inputs),
        }

    def card_fields(self) -> dict[str, Any]:
        return {"accuracy_definition": ACCURACY_DEFINITION}

    def notes(self) -> list[str]:
        return [
            "Strings are cut to 42 tokens (BOS included); for the 4 tasks with m_b + m_c + m_d >= 5 the n = 9 "
            "strings lose their EOS, and such strings cannot count as correct when sampled.",
            f"accuracy: {ACCURACY_DEFINITION}.",
        ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    config = parse_build_args(BuildConfig, "python -m builders.formal_lang", __doc__.split("\n")[0], argv)
    return run_builder(config, FormalLangRecipe)


if __name__ == "__main__":
    sys.exit(main())
