"""What each command leaves in its ``--out``, and the check that no command writes into the ``--out`` of another.

A folder's results are recognised by the files that only one kind of result has (:data:`RESULT_FILES`); a
command continues its own unfinished work where it resumes (``build``, ``pretrain``, ``reproduce``) and
refuses every other non-empty folder in one line that says what the folder holds, so nothing is overwritten.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ZooError

RESULT_FILES: dict[str, tuple[str, ...]] = {
    "a study of rnn-zoos reproduce": ("results.json", "REPORT.md", "pretrain"),
    "the results of rnn-zoos downstream": ("downstream.json",),
    "a zoo": ("meta/info.json", ".build", ".build.lock", ".build.trash"),
    "a pretraining run of rnn-zoos pretrain": ("log.jsonl", "checkpoint.pt", "summary.json", "config.json", ".pretrain.lock"),
}
"""What a folder holds -> the paths that only that holds, checked in this order (a study holds pretraining runs)."""
COMMAND_RESULTS = {
    "build": "a zoo",
    "import-release": "a zoo",
    "pretrain": "a pretraining run of rnn-zoos pretrain",
    "downstream": "the results of rnn-zoos downstream",
    "reproduce": "a study of rnn-zoos reproduce",
}
"""What each command writes into its ``--out``."""


def held_results(folder: Path) -> str | None:
    """What the results in ``folder`` are (a key of :data:`RESULT_FILES`), or None if it holds none of them."""
    for held, paths in RESULT_FILES.items():
        if any((folder / path).exists() for path in paths):
            return held
    return None


def check_results_folder(out: Path, command: str, resumes: bool) -> bool:
    """Raise :class:`ZooError` unless ``--out`` of ``rnn-zoos COMMAND`` is new, empty, or (if the command ``resumes``)
    holds that command's own results; returns whether it holds them (to be resumed or found complete)."""
    out = Path(out)
    if not out.is_dir() or not any(out.iterdir()):
        return False
    held = held_results(out)
    if resumes and held == COMMAND_RESULTS[command]:
        return True
    what = held or "files that no rnn-zoos command wrote"
    again = " (it does not resume; nothing there is overwritten)" if held == COMMAND_RESULTS[command] else ""
    raise ZooError(f"--out {out} holds {what}{again}; choose a new or empty folder for rnn-zoos {command}")
