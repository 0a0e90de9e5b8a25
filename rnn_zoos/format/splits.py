"""Splitting a zoo by task exactly as the paper's code does (``ParametersSequencesDataset`` in ``dataset_classes.py``).

Whole tasks (and so whole runs) go to one split, never across. The unique task vectors, in
NumPy's ``np.unique(..., axis=0)`` order, are sorted by the zoo's criterion; the ``ood`` split is
the last ``U - floor(0.70 U) - floor(0.15 U)`` of them, and the rest are permuted with NumPy's
legacy generator seeded 1 and cut into ``train`` then ``validation``. For the downstream protocol
the ``ood`` tasks are permuted with seed 2; the larger half joins the training data and the smaller
half is reported.

The criterion ties often (the entropy of the formal languages takes 52 values over 216 tasks), so the sort
order of tied tasks decides which of them are ``train`` and which ``validation``. The paper's code
sorts with ``np.argsort`` of NumPy 1.23 (its ``requirements.txt``); newer NumPy versions dispatch
``argsort`` to SIMD sorts that order ties differently on machines with AVX-512 or AVX2.
:func:`introsort_argsort` is that NumPy 1.23 algorithm, so the splits are the paper's on every
machine and every NumPy version.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EVAL_RATIO = 0.15
OOD_RATIO = 0.15
SPLIT_SEED = 1
"""Seed of the permutation that deals the non-ood tasks into train and validation."""
DOWNSTREAM_SEED = 2
"""Seed of the permutation that halves the ood tasks for the downstream protocol."""
SMALL_PARTITION = 15
"""NumPy's ``SMALL_QUICKSORT``: partitions at most this long (plus one) are insertion-sorted."""

Criterion = Callable[[np.ndarray], np.ndarray]
"""The split criterion of unique task vectors ``[U, k]`` -> ``[U]``: the highest form the ``ood`` split."""


def introsort_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values)`` as NumPy 1.23 computes it (introsort without SIMD), ties included.

    A port of NumPy's ``aquicksort_``: median-of-three quicksort that keeps the larger partition on a
    stack, insertion sort below :data:`SMALL_PARTITION` + 1 elements, heapsort past a depth of twice
    the most significant bit of the length. ``values`` must be one-dimensional and free of NaN.
    """
    v = np.asarray(values).tolist()
    if any(x != x for x in v):
        raise ValueError("introsort_argsort: the values contain NaN")
    order = list(range(len(v)))
    if len(order) < 2:
        return np.asarray(order, dtype=np.int64)
    stack: list[tuple[int, int, int]] = []
    left, right = 0, len(order) - 1
    depth = 2 * (len(order).bit_length() - 1)
    while True:
        if depth < 0:
            _heapsort(v, order, left, right)
        else:
            while right - left > SMALL_PARTITION:
                middle = left + ((right - left) >> 1)
                if v[order[middle]] < v[order[left]]:
                    order[middle], order[left] = order[left], order[middle]
                if v[order[right]] < v[order[middle]]:
                    order[right], order[middle] = order[middle], order[right]
                if v[order[middle]] < v[order[left]]:
                    order[middle], order[left] = order[left], order[middle]
                pivot = v[order[middle]]
                i, j = left, right - 1
                order[middle], order[j] = order[j], order[middle]
                while True:
                    i += 1
                    while v[order[i]] < pivot:
                        i += 1
                    j -= 1
                    while pivot < v[order[j]]:
                        j -= 1
                    if i >= j:
                        break
                    order[i], order[j] = order[j], order[i]
                order[i], order[right - 1] = order[right - 1], order[i]
                depth -= 1
                if i - left < right - i:
                    stack.append((i + 1, right, depth))
                    right = i - 1
                else:
                    stack.append((left, i - 1, depth))
                    left = i + 1
            for i in range(left + 1, right + 1):
                item = order[i]
                key = v[item]
                j = i
                while j > left and key < v[order[j - 1]]:
                    order[j] = order[j - 1]
                    j -= 1
                order[j] = item
        if not stack:
            break
        left, right, depth = stack.pop()
    return np.asarray(order, dtype=np.int64)


def _heapsort(v: list, order: list[int], left: int, right: int) -> None:
    """NumPy's ``aheapsort_`` on ``order[left:right + 1]`` (the introsort fallback)."""
    n = right - left + 1
    a = order[left : right + 1]
    a.insert(0, -1)  # heapsort indexing starts at 1

    def sift(i: int, size: int, item: int) -> None:
        j = 2 * i
        while j <= size:
            if j < size and v[a[j]] < v[a[j + 1]]:
                j += 1
            if v[item] < v[a[j]]:
                a[i] = a[j]
                i, j = j, 2 * j
            else:
                break
        a[i] = item

    for start in range(n >> 1, 0, -1):
        sift(start, n, a[start])
    while n > 1:
        item = a[n]
        a[n] = a[1]
        n -= 1
        sift(1, n, item)
    order[left : right + 1] = a[1:]


def split_sizes(num_tasks: int) -> dict[str, int]:
    """The paper's counts for U unique tasks, computed as its code does (``int(U * (1 - 0.15 - 0.15))`` train)."""
    train = int(num_tasks * (1 - EVAL_RATIO - OOD_RATIO))
    validation = int(num_tasks * EVAL_RATIO)
    return {"train": train, "validation": validation, "ood": num_tasks - train - validation}


def ranked_tasks(tasks: np.ndarray, criterion: Criterion) -> np.ndarray:
    """The unique task vectors of ``tasks [N, k]``, sorted by ``criterion`` as the paper's code sorts them."""
    unique = np.unique(np.asarray(tasks), axis=0)
    if len(unique) == 0:
        return unique
    return unique[introsort_argsort(criterion(unique))]


def split_tasks(tasks: np.ndarray, criterion: Criterion) -> dict[str, np.ndarray]:
    """Assign the unique task vectors of ``tasks [N, k]`` to ``train``, ``validation`` and ``ood``.

    Each split is an array of task vectors ``[n, k]`` in the paper's order (``ood``: ascending criterion).
    """
    ranked = ranked_tasks(tasks, criterion)
    sizes = split_sizes(len(ranked))
    order = np.random.RandomState(SPLIT_SEED).permutation(sizes["train"] + sizes["validation"])
    return {
        "train": ranked[order[: sizes["train"]]],
        "validation": ranked[order[sizes["train"] :]],
        "ood": ranked[len(ranked) - sizes["ood"] :],
    }


def downstream_tasks(tasks: np.ndarray, criterion: Criterion) -> tuple[np.ndarray, np.ndarray]:
    """The paper's downstream protocol over the ``ood`` tasks of ``tasks [N, k]``: (moved into training, reported).

    The ``ood`` tasks, in criterion order, are permuted with seed 2; the last ``ceil(n / 2)`` of the
    permutation join the training data of a property predictor, the first ``floor(n / 2)`` are reported.
    """
    ood = split_tasks(tasks, criterion)["ood"]
    order = np.random.RandomState(DOWNSTREAM_SEED).permutation(len(ood))
    half = len(ood) // 2
    return ood[order[half:]], ood[order[:half]]


def task_mask(tasks: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Which rows of ``tasks [N, k]`` hold one of the task vectors ``chosen [n, k]`` (exact equality, as the paper's code)."""
    tasks, chosen = np.asarray(tasks), np.asarray(chosen)
    if len(chosen) == 0 or len(tasks) == 0:
        return np.zeros(len(tasks), dtype=bool)
    return (tasks[:, None] == chosen[None, :]).all(-1).any(-1)
