"""Write ``official_splits.json``: the splits of the paper's ``dataset_classes.py``, computed with its own NumPy.

The paper's ``requirements.txt`` pins ``numpy~=1.23.4``. Run this file with NumPy 1.23 (and nothing
from rnn_zoos), on a CPU without AVX-512 or with it switched off, for example::

    python3.11 -m venv /tmp/np123 && /tmp/np123/bin/pip install numpy==1.23.5
    NPY_DISABLE_CPU_FEATURES="AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL" \
        /tmp/np123/bin/python tests/data/make_official_splits.py

On AVX-512 CPUs NumPy 1.23 computes float64 ``np.log`` with SVML, which differs in the last bit for
159 of the 864 logarithms of the formal-language criterion; 29 entropies change and the order of
tied tasks with them. Which CPU the paper's splits were computed on is not recorded.

The split logic below follows ``ParametersSequencesDataset.__init__`` (criterion, ``np.unique``,
``np.argsort``, the counts, ``fix_seed`` with seeds 1 and 2) and ``task_entropy_criterion``.
"""

import json
import random
from pathlib import Path

import numpy as np


def seeded_permutation(count, seed):
    random.seed(seed)
    np.random.seed(seed)
    return np.random.permutation(count)


def entropy_criterion(tasks):
    tasks = 1 + tasks - tasks.min(axis=-1, keepdims=True)
    distribution = tasks.astype(np.float32) / tasks.sum(axis=-1, keepdims=True)
    return -(distribution * np.log(distribution + 1e-6)).sum(axis=-1)


def angle_criterion(tasks):
    return tasks.reshape(tasks.shape[0], -1).sum(-1)


def official(tasks, criterion):
    unique = np.unique(tasks, axis=0)
    ranked = unique[np.argsort(criterion(unique))]
    train = int(unique.shape[0] * (1 - 0.15 - 0.15))
    validation = int(unique.shape[0] * 0.15)
    ood = ranked[-(unique.shape[0] - train - validation):]
    order = seeded_permutation(train + validation, 1)
    halves = seeded_permutation(len(ood), 2)
    half = len(ood) // 2
    return {"train": ranked[order[:train]].tolist(), "validation": ranked[order[train:]].tolist(), "ood": ood.tolist(),
            "downstream_moved": ood[halves[half:]].tolist(), "downstream_reported": ood[halves[:half]].tolist()}


def main():
    assert np.__version__.startswith("1.23"), f"run with NumPy 1.23, not {np.__version__}"
    every_task = np.array([[0, b, c, d] for b in range(-3, 3) for c in range(-3, 3) for d in range(-3, 3)])
    some_runs = every_task[np.random.RandomState(7).randint(0, 216, 100)]
    angles = np.random.RandomState(3).rand(40, 1) * 360
    golden = {
        "formal_all_216": official(every_task, entropy_criterion),
        "formal_100_runs": {"tasks": some_runs.tolist(), **official(some_runs, entropy_criterion)},
        "mnist_40_runs": {"tasks": angles.tolist(), **official(angles, angle_criterion)},
    }
    (Path(__file__).parent / "official_splits.json").write_text(json.dumps(golden))


if __name__ == "__main__":
    main()
