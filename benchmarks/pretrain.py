"""Emulation-pretraining speed per encoder (the paper's sizes): training steps/s at 64 RNNs per step on the formal-language zoo.

    python -m benchmarks.pretrain [ZOO] [--device auto|cpu|cuda] [--steps 10] [--rnns-per-batch 64] [--json FILE] [--profile FILE]

Ours keeps the zoo resident on the device as tensors (a batch is an index). The baseline is the
same models fed the usual way: a ``DataLoader`` over the zoo's rows with ``rnn_zoos.collate_rows``
(safetensors decoded every step), moved to the device. Both are timed in this run; the paper's
figures (its code on one H100) are printed for reference only, as they come from another machine.
Without ``ZOO`` a small zoo (16 runs, about 100 training rows) is built in a temporary folder.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch

import rnn_zoos
from rnn_zoos.common.arguments import DEVICE, ZOO, CommandParser, check_device, renamed
from rnn_zoos.models.encoders import ENCODERS
from rnn_zoos.experiments.pretrain import PretrainConfig, Pretraining
from benchmarks.builder_speed import PROFILED_STEPS, profile_steps, synchronize
from rnn_zoos.zoos.formal_lang import FORMAL_LANG, FormalLangRecipe
from rnn_zoos.builder.build import BuildConfig, build_zoo
from rnn_zoos.lstm.symmetry import permute_hidden, random_permutations

PAPER_H100 = {
    "interactive_probing": 7.9,
    "noninteractive_probing": 7.7,
    "dws": 15.2,
    "parameter_transformer": 26.5,
    "flat": 52.5,
    "layerwise_statistics": 54.6,
}


def loader_step(run: Pretraining, batches: Iterator[dict]) -> None:
    """One training step of ``run``'s models on a batch from a DataLoader (the baseline pipeline), the same optimisation."""
    batch = next(batches)
    device, config = run.device, run.config
    params = {name: tensor.to(device) for name, tensor in batch["weights"].items()}
    if run.encoder.needs_augmentation:
        params = permute_hidden(params, random_permutations(params, shared=True))
    sequence = torch.rand(len(batch["inputs"]), batch["inputs"].shape[1]).argsort(dim=1)[:, : config.sequences_per_rnn]
    rows = torch.arange(len(batch["inputs"])).unsqueeze(1).expand_as(sequence)
    inputs = run.splits["train"].kind.model_inputs(batch["inputs"][rows, sequence].flatten(0, 1)).to(device)
    targets = batch["log_probs"][rows, sequence].flatten(0, 1).float().to(device)
    run.optimize(params, inputs, targets)


def endless(loader: torch.utils.data.DataLoader) -> Iterator[dict]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def timed(step, steps: int, device: str) -> float:
    """Steps per second of ``step()`` after one warm-up call."""
    step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = CommandParser("python -m benchmarks.pretrain", __doc__.split("\n")[0])
    parser.add(ZOO, required=False, help="a zoo folder or Hub repo id (default: a small zoo built in a temporary folder)")
    parser.add(DEVICE)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per encoder")
    parser.add(renamed("batch_rnns", {"type": int, "default": 64, "metavar": "B", "help": "RNNs per step"}))
    parser.add_argument("--json", default=None, help="also append each encoder's figures as one JSON line to this file")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="also record a few training steps of each encoder with torch.profiler and append where their time goes to FILE")
    args = parser.parse_args()
    args.device = check_device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        zoo = args.zoo or str(
            build_zoo(FormalLangRecipe(FORMAL_LANG), BuildConfig(out=str(Path(scratch) / "zoo"), runs=16, steps=20, device=args.device))
        )
        dataset = rnn_zoos.load_zoo(zoo, split="train")
        if len(dataset) < args.batch_rnns:
            raise SystemExit(f"the zoo's train split has {len(dataset)} rows, fewer than --rnns-per-batch {args.batch_rnns}")
        device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        print(f"emulation pretraining, {args.batch_rnns} RNNs per step, on {device}, torch {torch.__version__}")
        print(f"{'encoder':24s} {'ours steps/s':>12s} {'DataLoader':>12s} {'ratio':>7s} {'paper, H100':>12s}")
        for name in ENCODERS:
            config = PretrainConfig(
                zoo=zoo, encoder=name, out=str(Path(scratch) / name), batch_rnns=args.batch_rnns, device=args.device
            )
            run = Pretraining(config)
            ours = timed(run.train_step, args.steps, args.device)
            if args.profile:
                profile_steps(run.train_step, args.device, f"pretraining {name}, {args.batch_rnns} RNNs per step", args.profile,
                              steps=min(PROFILED_STEPS, args.steps))
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=args.batch_rnns, shuffle=True, collate_fn=rnn_zoos.collate_rows, drop_last=True
            )
            stream = endless(loader)
            baseline = timed(partial(loader_step, run, stream), args.steps, args.device)
            print(f"{name:24s} {ours:12.2f} {baseline:12.2f} {ours / baseline:6.2f}x {PAPER_H100[name]:12.1f}")
            if args.json:
                figures = {"section": "pretrain", "encoder": name, "device": device, "batch_rnns": args.batch_rnns,
                           "ours_steps_per_s": ours, "dataloader_steps_per_s": baseline, "paper_h100_steps_per_s": PAPER_H100[name]}
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
