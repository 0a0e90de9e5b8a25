"""Push a zoo folder to a Hugging Face dataset repo, after verifying it, and tag it with the format version.

    python -m builders.publish DIR --repo-id ORG/NAME [--revision BRANCH] [--private] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnn_zoos.errors import ZooError, report
from rnn_zoos.publish import publish_zoo, version_tag


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 0 when pushed (or listed), 1 for a zoo with problems, 2 for bad options."""
    parser = argparse.ArgumentParser(prog="python -m builders.publish", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="the zoo folder to push")
    parser.add_argument("--repo-id", required=True, help="the dataset repo, ORG/NAME (created if needed)")
    parser.add_argument("--revision", default=None, help="branch to push to (created if needed; default main)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--dry-run", action="store_true", help="verify and list the files a push would upload; send nothing")
    args = parser.parse_args(argv)
    try:
        files = publish_zoo(args.folder, args.repo_id, revision=args.revision, private=args.private, dry_run=args.dry_run)
    except ZooError as error:
        return report(error)
    if args.dry_run:
        sizes = {path: (args.folder / path).stat().st_size for path in files}
        for path, size in sizes.items():
            print(f"{size:>14,d}  {path}")
        print(f"would upload {len(files)} files ({sum(sizes.values()):,d} bytes) to datasets/{args.repo_id} and tag {version_tag()}")
    else:
        print(f"pushed {len(files)} files to datasets/{args.repo_id} and tagged {version_tag()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
