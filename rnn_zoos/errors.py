"""The one exception type the library raises for problems a user can fix."""

import sys
from typing import Any


class ZooError(Exception):
    """A problem with a zoo, a file or an option, with a message that says what to do.

    Command-line entry points print the message as a single ``error:`` line and exit with status 2.
    """


def report(error: ZooError) -> int:
    """Print ``error`` as one ``error: ...`` line on stderr and return the command-line exit status (2)."""
    print(f"error: {error}", file=sys.stderr)
    return 2


def describe_difference(found: dict[str, Any], wanted: dict[str, Any]) -> str:
    """The options that differ between what a folder holds and what was asked for: ``key='a' there vs 'b' now``."""
    keys = sorted(set(found) | set(wanted))
    return ", ".join(f"{key}={found.get(key)!r} there vs {wanted.get(key)!r} now" for key in keys if found.get(key) != wanted.get(key))
