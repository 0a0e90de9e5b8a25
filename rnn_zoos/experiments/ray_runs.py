"""A reproduction's pretraining runs (one per encoder) as parallel Ray tasks: ``rnn-zoos reproduce ... --ray [ADDRESS]``."""

from __future__ import annotations

from typing import Any

import torch

from rnn_zoos.common.ray_tasks import run_tasks, start_ray

from .pretrain import PretrainConfig, pretrain


def _pretrain(options: dict[str, Any], threads: int, progress: Any) -> dict[str, Any]:
    """A Ray task: one pretraining run (resumable as any) with ``threads`` torch threads, returning its summary."""
    torch.set_num_threads(threads)
    summary = pretrain(PretrainConfig(**options))
    progress.update(1)
    return summary


def pretrain_with_ray(address: str | None, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the pretraining runs ``runs`` (:class:`PretrainConfig` options each) as parallel Ray tasks, one per GPU on CUDA,
    one per CPU otherwise; returns their summaries in order. Each task computes with as many torch threads as this process
    does, so that its numbers are exactly those of a run without Ray (float sums depend on the thread count)."""
    ray = start_ray(address)
    gpus = 1 if any(options.get("device") == "cuda" for options in runs) else 0
    threads = torch.get_num_threads()
    return run_tasks(ray, _pretrain, [(options, threads) for options in runs], gpus, "pretraining runs on Ray", len(runs), " runs")
