"""Splits by task: the paper's algorithm, its tie order, its seeds, and the downstream halves.

``tests/data/official_splits.json`` was written by ``tests/data/make_official_splits.py``: the
paper's ``dataset_classes.py`` split logic, transcribed, run under NumPy 1.23.5 (the version of the
paper's ``requirements.txt``). It is reference data from the paper's code, not from ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.zoos.seq_mnist import SEQ_MNIST
from rnn_zoos.hub.layout import plan_splits
from rnn_zoos.format.splits import downstream_tasks, introsort_argsort, split_sizes, split_tasks, task_mask
from rnn_zoos.zoos import formal_lang as fl

GOLDEN = json.loads((Path(__file__).parent / "data" / "official_splits.json").read_text())


@pytest.mark.parametrize("case", ["formal_all_216", "formal_100_runs", "mnist_40_runs"])
def test_splits_equal_the_papers_code_under_numpy_1_23(case: str) -> None:
    golden = GOLDEN[case]
    spec = SEQ_MNIST if case.startswith("mnist") else FORMAL_LANG
    tasks = np.asarray(golden["tasks"]) if "tasks" in golden else fl.TASKS.numpy()
    splits = split_tasks(spec.task_array(tasks), spec.criterion)
    for split in ("train", "validation", "ood"):
        assert splits[split].tolist() == golden[split], split
    moved, reported = downstream_tasks(spec.task_array(tasks), spec.criterion)
    assert moved.tolist() == golden["downstream_moved"] and reported.tolist() == golden["downstream_reported"]


def test_introsort_argsort_is_numpys_generic_introsort_including_ties() -> None:
    # NumPy's long double argsort has no SIMD dispatch: it runs the generic introsort that 1.23 ran for every type
    rng = np.random.default_rng(0)
    for size in (0, 1, 2, 15, 16, 17, 40, 216, 1000, 4000):
        for trial in range(6):
            values = rng.integers(0, max(1, size // 7), size).astype(np.float64) if trial % 2 else rng.random(size)
            assert introsort_argsort(values).tolist() == np.argsort(values.astype(np.longdouble)).tolist()


def test_the_formal_entropy_ties_make_the_sort_algorithm_matter() -> None:
    entropy = FORMAL_LANG.criterion(fl.TASKS.numpy())
    assert len(np.unique(entropy)) == 52  # 216 tasks, 52 distinct values: tie order decides train vs validation
    assert not np.array_equal(introsort_argsort(entropy), np.argsort(entropy, kind="stable"))
    with pytest.raises(ValueError, match="NaN"):
        introsort_argsort(np.array([1.0, float("nan")]))


def test_split_sizes_follow_the_papers_float_expression() -> None:
    assert split_sizes(216) == {"train": 151, "validation": 32, "ood": 33}
    assert split_sizes(1000) == {"train": 700, "validation": 150, "ood": 150}
    for count in range(0, 300):
        sizes = split_sizes(count)
        assert sizes["train"] == int(count * (1 - 0.15 - 0.15)) and sizes["validation"] == int(count * 0.15)
        assert sum(sizes.values()) == count and (count == 0 or sizes["ood"] >= 1)


def test_plan_keeps_runs_whole_and_splits_disjoint() -> None:
    rng = np.random.RandomState(5)
    run_tasks = {run: fl.TASKS[rng.randint(216)].tolist() for run in range(300)}
    plan = plan_splits(FORMAL_LANG, run_tasks)
    assert sorted(run for entry in plan.values() for run in entry.runs) == list(range(300))
    tasks = {split: set(entry.tasks) for split, entry in plan.items()}
    assert not (tasks["train"] & tasks["validation"] or tasks["train"] & tasks["ood"] or tasks["validation"] & tasks["ood"])
    for split, entry in plan.items():
        assert {tuple(run_tasks[run]) for run in entry.runs} == tasks[split]
    entropy = {split: FORMAL_LANG.task_criterion(sorted(keys)) for split, keys in tasks.items()}
    assert entropy["ood"].min() >= max(entropy["train"].max(), entropy["validation"].max())


def test_plan_splits_mnist_release_angles_as_float64_and_keys_them_as_stored() -> None:
    angles = {run: float(angle) for run, angle in enumerate(np.random.RandomState(3).rand(40) * 360)}
    plan = plan_splits(SEQ_MNIST, angles)
    golden = GOLDEN["mnist_40_runs"]
    assert [sorted(plan[split].tasks) for split in ("train", "validation", "ood")] == [
        sorted(float(np.float32(angle)) for (angle,) in golden[split]) for split in ("train", "validation", "ood")
    ]


def test_task_mask_is_exact_row_equality() -> None:
    tasks = np.array([[0, 1, 2, 3], [0, 1, 2, 2], [0, 1, 2, 3]])
    assert task_mask(tasks, np.array([[0, 1, 2, 3]])).tolist() == [True, False, True]
    assert task_mask(tasks, np.zeros((0, 4))).tolist() == [False, False, False]
