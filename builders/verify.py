"""Check a zoo folder or Hub dataset repo; names every problem and exits non-zero if there is one.

    python -m builders.verify DIR_OR_REPO_ID [--sample-rows 8] [--revision REV]
"""

from __future__ import annotations

import argparse
import sys

from rnn_zoos.errors import ZooError, report
from rnn_zoos.verify import verify_zoo


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 0 for a sound zoo, 1 if problems were found, 2 for bad options."""
    parser = argparse.ArgumentParser(prog="python -m builders.verify", description=__doc__.split("\n")[0])
    parser.add_argument("zoo", help="a zoo folder, or a Hub dataset repo id such as rnn-zoos/formal-lang")
    parser.add_argument("--sample-rows", type=int, default=8, help="rows whose weights are checked against their log_probs (0 or more)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of a Hub repo")
    args = parser.parse_args(argv)
    try:
        problems = verify_zoo(args.zoo, sample_rows=args.sample_rows, revision=args.revision)
    except ZooError as error:
        return report(error)
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{args.zoo}: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.zoo}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
