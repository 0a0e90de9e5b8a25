"""Splitting a zoo by task: whole tasks (and so whole runs) go to one split, never across."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np


def split_sizes(num_tasks: int) -> dict[str, int]:
    """The paper's counts for U unique tasks: floor(0.70 U) train, floor(0.15 U) validation, the rest ood."""
    train = 70 * num_tasks // 100
    validation = 15 * num_tasks // 100
    return {"train": train, "validation": validation, "ood": num_tasks - train - validation}


def split_tasks(tasks: Sequence[Hashable], criterion: Callable[[Hashable], float], seed: int) -> dict[str, list[Hashable]]:
    """Assign unique tasks to ``train``, ``validation`` and ``ood``.

    The ``ood`` tasks are those highest in ``criterion`` (ties broken by the task itself, highest
    first); the rest are sorted, shuffled with ``seed`` and cut into ``train`` then ``validation``.
    Each returned list is sorted.
    """
    unique = sorted(set(tasks))
    sizes = split_sizes(len(unique))
    ranked = sorted(unique, key=lambda task: (criterion(task), task), reverse=True)
    ood, rest = ranked[: sizes["ood"]], sorted(ranked[sizes["ood"] :])
    order = np.random.default_rng(seed).permutation(len(rest))
    shuffled = [rest[index] for index in order]
    train, validation = shuffled[: sizes["train"]], shuffled[sizes["train"] :]
    return {"train": sorted(train), "validation": sorted(validation), "ood": sorted(ood)}


def downstream_tasks(ood_tasks: Sequence[Hashable], seed: int = 0) -> tuple[list[Hashable], list[Hashable]]:
    """The paper's downstream protocol over the ``ood`` split: (tasks moved into training, tasks reported).

    A fixed, seeded half (rounded down) of the ``ood`` tasks joins the training data of a property
    predictor; the other half stays out and is where ``ood`` results are reported.
    """
    tasks = sorted(set(ood_tasks))
    order = np.random.default_rng(seed).permutation(len(tasks))
    moved = {tasks[index] for index in order[: len(tasks) // 2]}
    return sorted(moved), sorted(task for task in tasks if task not in moved)
