"""Formal-language builder speed: our batched builder against a one-run-at-a-time nn.LSTM loop.

    python -m benchmarks.build_formal_lang [--device auto|cpu|cuda] [--rnns-per-batch 1000] [--steps 20] [--compile] [--cuda-graphs]
"""

from __future__ import annotations

import torch

from benchmarks.builder_speed import arguments, lever_name, one_run_loop, report, time_baseline, time_ours
from rnn_zoos.zoos.formal_lang import FORMAL_LANG, WEIGHT_DECAY, FormalLangRecipe
from rnn_zoos.lstm.functional import LSTMWithHead
from rnn_zoos.zoos import formal_lang as fl
from rnn_zoos.lstm.training import TrainingSchedule


def baseline_step(device: str):
    """One run of the recipe the usual way: nn.LSTM + nn.Linear, torch.optim.AdamW, strings drawn per step."""
    torch.manual_seed(0)
    model = LSTMWithHead(FORMAL_LANG.architecture).to(device)
    task = fl.TASKS[17].to(device)

    def loss(step: int) -> torch.Tensor:
        strings = fl.training_strings(task, torch.rand(TrainingSchedule.batch_size, device=device))
        logits = model(fl.one_hot(strings[:, :-1]))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), strings[:, 1:].flatten())

    return one_run_loop(model, WEIGHT_DECAY, loss)


def main() -> None:
    args = arguments(__doc__.split("\n")[0])
    baseline = time_baseline(baseline_step(args.device), args.baseline_steps, args.device)
    ours = time_ours(FormalLangRecipe(FORMAL_LANG), args.runs_per_batch, args.steps, args.device, args.compile, args.cuda_graphs,
                     args.profile, f"formal-lang builder, {lever_name(args)}, K = {args.runs_per_batch}")
    report("formal-lang", args, ours, baseline)


if __name__ == "__main__":
    main()
