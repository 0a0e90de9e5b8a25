"""Command lines from config dataclasses: ``transformers``' :class:`HfArgumentParser`, with the help users expect.

Options are spelt with dashes (``--runs-per-batch``) in the usage line and the help, the underscore
spelling still accepted; a default is shown only where there is one to show (not for required
options, nor ``None``).
"""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from transformers import HfArgumentParser

Config = TypeVar("Config")


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help only for optional options whose default means something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "%(default)" in help_text or action.required or any(action.default is empty for empty in (None, argparse.SUPPRESS, False)):
            return help_text
        if action.option_strings and action.nargs != 0:
            return f"{help_text} (default: %(default)s)"
        return help_text


def config_parser(config_class: type[Any], prog: str, description: str) -> HfArgumentParser:
    """An :class:`HfArgumentParser` of ``config_class`` whose usage and help spell every option with dashes."""
    parser = HfArgumentParser(config_class, prog=prog, description=description, formatter_class=HelpFormatter)
    for action in parser._actions:
        short = [option for option in action.option_strings if not option.startswith("--")]
        dashed = [option for option in action.option_strings if option.startswith("--") and "_" not in option]
        action.option_strings = short + dashed + [option for option in action.option_strings if option not in short + dashed]
    return parser


def parse_config(config_class: type[Config], prog: str, description: str, argv: list[str] | None = None) -> Config:
    """Parse a command line into ``config_class`` (bad options exit 2 with the usage)."""
    return config_class(**vars(config_parser(config_class, prog, description).parse_args(argv)))
