"""``rnn-zoos build ZOO``: the zoo kind's options, checked, then the build on the engine the options choose (this process,
one of ``--worker I/N``, or Ray tasks with ``--ray``); every error in one line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..common.arguments import parse_config
from ..common.errors import ZooError, report
from ..format.info import INFO_PATH
from ..format.splits import split_sizes
from ..hub.layout import empty_split_warning, summary_line
from ..zoos import zoo_kind
from ..common.files import disk_full_errors
from .build import StillTraining, build_zoo, zoo_complete
from .claims import ClaimLost
from .ray_engine import build_with_ray

INTERRUPTED = "interrupted; run the same command to resume"


def main(zoo: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """``rnn-zoos build ZOO``: parse the zoo kind's options, check them, make its recipe and build; returns the exit status.

    A :class:`ZooError` ends in one ``error:`` line (status 2, or 1 for a damaged zoo), Ctrl-C in one
    line that says how to resume (status 130), neither with a traceback. A finished build ends with
    one summary line: the folder, the rows per split and the time it took.
    """
    kind = zoo_kind(zoo)
    config = parse_config(kind.build_config, prog or f"rnn-zoos build {zoo}", f"Build the {zoo} zoo: {kind.description}.", argv)
    started = time.monotonic()
    try:
        config.validate()
        if not config.finalize and is_new_folder(Path(config.out)):  # warned once, when the build starts; a resume or a refusal says only what it does
            warning = empty_split_warning(split_sizes(config.runs), f"--runs {config.runs} gives at most {config.runs} tasks")
            if warning is not None:
                print(warning, file=sys.stderr)
        with disk_full_errors(config.out):
            if config.ray is not None:
                out = build_with_ray(zoo, config)
            else:
                out = build_zoo(kind.recipe(config), config, config.worker_slot(), config.finalize)
    except ZooError as error:
        return report(error)
    except StillTraining as still:
        print(still, file=sys.stderr)
        return 3
    except ClaimLost as lost:  # paused past the heartbeat timeout: another worker has the chunk, maybe the whole zoo
        print(lost, file=sys.stderr)
        return 0 if zoo_complete(Path(config.out)) else 1
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    if (out / INFO_PATH).is_file():
        print(summary_line(out, time.monotonic() - started))
    return 0


def is_new_folder(folder: Path) -> bool:
    """Whether ``folder`` does not exist yet or is empty: a build into it starts from nothing."""
    return not folder.exists() or (folder.is_dir() and next(folder.iterdir(), None) is None)
