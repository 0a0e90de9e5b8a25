"""Shared fixtures: tiny zoos built once per test session in temporary folders (CPU, no network)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from builders.formal_lang import FormalLangRecipe  # noqa: E402
from rnn_zoos.build import BuildConfig, build_zoo  # noqa: E402

TINY = {"runs": 8, "steps": 150, "seed": 3, "runs_per_batch": 3}
"""A tiny formal-language zoo: three chunks (3 + 3 + 2 runs), nine snapshots per run."""


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
