"""What made a result: the zoo and its revision, the versions of the packages, and the code's git commit; and where
the code and the paper are (for cards).

Every result file of the commands (``summary.json`` of a pretraining run, ``downstream.json``,
``results.json`` of a reproduction) records :func:`run_provenance`; a zoo's card records the versions
and the commit through :func:`rnn_zoos.hub.cards.provenance_fields`.
"""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, metadata, version
from pathlib import Path
from typing import Any

from ..format.info import INFO_PATH, file_sha256
from .sources import resolve_zoo

PACKAGES = ("rnn-zoos", "torch", "datasets", "transformers", "huggingface-hub", "numpy")
"""The packages whose versions a result records."""
PAPER_ARXIV = "2403.11998"
"""The paper: Herrmann, Faccio, Schmidhuber, *Learning Useful Representations of Recurrent Neural Network Weight Matrices*,
ICML 2024 (PMLR 235)."""
PAPER_URL = f"https://arxiv.org/abs/{PAPER_ARXIV}"


def code_url() -> str:
    """Where the code is: the ``Source`` URL of the package's metadata (``[project.urls]`` in ``pyproject.toml``)."""
    try:
        for entry in metadata("rnn-zoos").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "source":
                return url.strip()
    except PackageNotFoundError:
        pass
    return "https://github.com/rnn-zoos/rnn-zoos"


def install_command() -> str:
    """The one line that installs this library from its code's repository."""
    return f'pip install "rnn-zoos @ git+{code_url()}"'


def software_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None if missing), and Python's."""
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    versions["python"] = platform.python_version()
    return versions


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (``+dirty`` if it has uncommitted changes); None for an
    installed package or where git is missing."""
    root = Path(__file__).resolve().parents[2]  # rnn_zoos/hub/provenance.py: the checkout holds rnn_zoos/
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+dirty" if status.returncode == 0 and status.stdout.strip() else "")


def zoo_provenance(zoo: str | Path, revision: str | None = None) -> dict[str, Any]:
    """The zoo a result was made from: as given, the Hub revision and commit it was read at (None for a folder), and
    the sha256 of its ``meta/info.json`` (which holds the checksum of every data file, so it names the content)."""
    source = resolve_zoo(zoo, revision)
    info_path = source.file(INFO_PATH)  # in a Hub download: .../snapshots/COMMIT/meta/info.json
    return {
        "zoo": str(zoo),
        "revision": source.revision,
        "commit": info_path.parent.parent.name if source.folder is None else None,
        "info_sha256": file_sha256(info_path),
    }


def run_provenance(zoo: str | Path, revision: str | None = None) -> dict[str, Any]:
    """What made a result: the zoo (:func:`zoo_provenance`), the package versions and the code's git commit."""
    return {"zoo": zoo_provenance(zoo, revision), "versions": software_versions(), "git_commit": git_commit()}
