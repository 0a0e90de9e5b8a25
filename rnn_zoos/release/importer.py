"""Convert the paper's original release into an rnn-zoos zoo folder.

    rnn-zoos import-release SRC --out DIR      (or python -m builders.import_release in a checkout)

``SRC`` is one zoo folder of the release (:mod:`rnn_zoos.release` reads it). The options are
checked, then the whole release, before anything is written; the zoo is written into a folder of
its own beside ``DIR`` and renamed into place once complete.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..common.arguments import OUT, CommandParser
from ..hub.cards import provenance_fields
from ..common.errors import ZooError, report
from ..common.files import check_out_folder, disk_full_errors, output_folder, sync_folder, sync_tree
from ..common.results import check_results_folder
from ..format.info import RELEASE_SOURCE, LogProbsReproduction
from ..hub.layout import plan_splits, summary_line, write_zoo_layout
from .reader import Release, detect


def check_out(source: Path, out: Path) -> None:
    """Raise :class:`ZooError` unless ``out`` is a new or empty folder that is neither the current folder nor in ``source``."""
    check_out_folder(out)
    where, release = out.resolve(), source.resolve()
    if where == Path.cwd().resolve():
        raise ZooError(f"--out {out} is the current folder; choose a new folder for the zoo")
    if where == release or release in where.parents:
        raise ZooError(f"--out {out} is in the release folder {source}; choose a folder outside it")
    check_results_folder(out, "import-release", resumes=False)


def import_release(source: Path, out: Path) -> Path:
    """Convert a release folder into a zoo folder ``out`` (new or empty).

    The options are checked first (:class:`ZooError`), then the release (:class:`DamagedZooError`), before anything is
    written. The zoo is written into a new folder of its own beside ``out`` and renamed to ``out`` once complete; that
    folder, and nothing else, is removed if the import fails.
    """
    check_out(source, out)
    detect(source)
    release = Release(source)
    release.check_values()
    release.check_runs()
    reproduction = release.measure_reproduction() if release.format.measures_reproduction else None
    out = Path(os.path.abspath(out))
    with output_folder(out.parent):
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
        try:
            staging = work / out.name
            write_release_zoo(release, staging, reproduction)
            sync_tree(staging)  # complete on the disk before it takes the real name
            if out.exists():
                out.rmdir()
            staging.rename(out)
            sync_folder(out.parent)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def write_release_zoo(release: Release, folder: Path, reproduction: LogProbsReproduction | None) -> None:
    """Write the zoo of ``release`` into ``folder``, with the measured ``reproduction`` of its log-probs if any."""
    kind = release.kind
    plan = plan_splits(kind, release.run_tasks())
    snapshot_steps = sorted(set(release.step.tolist()))
    with tqdm(total=release.rows, desc=f"importing {release.source.name}", unit=" rows") as progress:
        write_zoo_layout(
            folder,
            kind,
            plan,
            rows_of=lambda runs: release.rows_of(runs, progress),
            rows_per_split={split: int(np.isin(release.run, entry.runs).sum()) for split, entry in plan.items()},
            info_fields={
                "builder": {"zoo": kind.name, "source": RELEASE_SOURCE, "release": release.source.name, "release_args": release.args},
                "snapshot_steps": snapshot_steps,
                "notes": release.notes(reproduction),
                "log_probs_reproduction": reproduction,
            },
            card_fields={**release.card_fields(),
                         **provenance_fields(f"rnn-zoos import-release {release.source.name} --out {folder.name}", "cpu")},
        )


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = CommandParser(prog or "rnn-zoos import-release", __doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a zoo folder of the paper's release (e.g. formal_languages_tokens_4_length_42_2x32)")
    parser.add(OUT, type=Path, help="the zoo folder to write (new or empty)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        with disk_full_errors(args.out):
            out = import_release(args.source, args.out)
    except ZooError as error:
        return report(error)
    print(summary_line(out, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
