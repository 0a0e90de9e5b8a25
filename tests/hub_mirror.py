"""Serve local zoo folders as Hugging Face Hub dataset repos over real HTTP, with ``olah``'s local mirror mode.

olah answers the Hub API for ``datasets/<org>/<name>`` from a git repository (branch ``main``)
under its ``mirrors-path``. With ``offline = true`` and the upstream pointed at a closed local
port it never reaches out. Two answers come from its own cache instead of the mirror (the
revision-less repo info, and a file missing at ``main``); seeding that cache makes them behave
like the Hub. olah ignores Range requests, so streaming is not tested over it.

Clients read ``HF_ENDPOINT``/``HF_HUB_OFFLINE`` at import time: run them in a subprocess with
:func:`client_env`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

GIT_DATE = "2024-01-01T00:00:00+00:00"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_AUTHOR_NAME": "rnn-zoos tests", "GIT_AUTHOR_EMAIL": "tests@rnn-zoos.invalid", "GIT_AUTHOR_DATE": GIT_DATE,
           "GIT_COMMITTER_NAME": "rnn-zoos tests", "GIT_COMMITTER_EMAIL": "tests@rnn-zoos.invalid", "GIT_COMMITTER_DATE": GIT_DATE}
    result = subprocess.run(["git", "-C", str(repo), "-c", "commit.gpgsign=false", *args], env=env, check=True,
                            capture_output=True, text=True, timeout=120)
    return result.stdout.strip()


def _mirror(folder: Path, repo: Path) -> str:
    """Commit a copy of ``folder`` as branch ``main`` of a new git repository ``repo``; returns the commit."""
    shutil.copytree(folder, repo, ignore=shutil.ignore_patterns(".git"))
    _git(repo, "init", "-q")
    _git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    _git(repo, "add", "-A", "-f", ".")
    _git(repo, "commit", "-q", "-m", "zoo")
    return _git(repo, "rev-parse", "HEAD")


def _seed_cache(cache: Path, repo_id: str, commit: str) -> None:
    folder = cache / "api" / "datasets" / repo_id / "revision" / "main"
    folder.mkdir(parents=True)
    (folder / "meta_head.json").write_text(json.dumps({"sha": commit, "lastModified": GIT_DATE}))
    (folder / "resolved_commit.json").write_text(json.dumps({"status_code": 200, "headers": {}, "content": commit.encode().hex()}))


def _status(url: str) -> int | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@contextlib.contextmanager
def serve_datasets(repos: Mapping[str, Path], workdir: Path, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``{"org/name": folder}`` on 127.0.0.1; yields the endpoint URL and stops the server on exit."""
    mirrors, cache = workdir / "mirrors", workdir / "cache"
    cache.mkdir(parents=True)
    for repo_id, folder in repos.items():
        commit = _mirror(Path(folder), mirrors / "datasets" / repo_id)
        _seed_cache(cache, repo_id, commit)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = workdir / "olah.toml"
    config.write_text(f"""[basic]
host = "127.0.0.1"
port = {port}
repos-path = "{cache}"
mirrors-path = ["{mirrors}"]
hf-scheme = "http"
hf-netloc = "127.0.0.1:9"
hf-lfs-netloc = "127.0.0.1:9"
mirror-scheme = "http"
mirror-netloc = "127.0.0.1:{port}"
mirror-lfs-netloc = "127.0.0.1:{port}"

[accessibility]
offline = true
""")
    env = {key: value for key, value in os.environ.items() if key not in ("HF_ENDPOINT", "HF_HUB_OFFLINE")}
    log = open(workdir / "olah.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "olah.server", "--config", str(config), "--log-path", str(workdir / "logs")],
                              cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        probe_url = f"{endpoint}/api/datasets/{next(iter(repos))}/revision/main"
        while _status(probe_url) != 200:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"olah did not start: {(workdir / 'olah.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def client_env(hf_home: Path, endpoint: str | None = None, offline: bool = False) -> dict[str, str]:
    """Environment of a fresh client process: its own ``HF_HOME``, the mirror as endpoint, or offline."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1" if offline else "0", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
    env["NO_PROXY"] = env["no_proxy"] = ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    return env
