"""The exception types the library raises for problems a user can fix."""

import sys
from typing import Any


class ZooError(Exception):
    """A problem with a zoo, a file or an option, with a message that says what to do.

    Command-line entry points print the message as a single ``error:`` line and exit with status 2
    (status 1 for a :class:`DamagedZooError`).
    """


class DamagedZooError(ZooError):
    """A zoo whose files are missing, corrupt or inconsistent: rebuild it or download it again."""


def exit_status(error: ZooError) -> int:
    """The command-line exit status of ``error``: 1 for a damaged zoo, 2 for a bad option or input."""
    return 1 if isinstance(error, DamagedZooError) else 2


def report(error: ZooError) -> int:
    """Print ``error`` as one ``error: ...`` line on stderr and return its command-line exit status (:func:`exit_status`)."""
    print(f"error: {error}", file=sys.stderr)
    return exit_status(error)


def describe_difference(found: dict[str, Any], wanted: dict[str, Any]) -> str:
    """The options that differ between what a folder holds and what was asked for: ``key='a' there vs 'b' now``."""
    keys = sorted(set(found) | set(wanted))
    return ", ".join(f"{key}={found.get(key)!r} there vs {wanted.get(key)!r} now" for key in keys if found.get(key) != wanted.get(key))


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: untrusted values in error messages stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
