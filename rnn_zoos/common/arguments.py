"""One grammar for every ``rnn-zoos`` command line: the options the commands share are defined here, once.

- The zoo a command reads is its first positional argument (``rnn-zoos pretrain ZOO ...``); a zoo on the Hub
  is pinned with ``--revision`` wherever a zoo is read.
- ``--device`` is ``auto`` by default everywhere: cuda if this machine has it, else cpu.
- ``--seed`` is a seed; a number of seeds is ``--num-seeds``. RNNs handled at once are ``--rnns-per-batch``.
- Boolean options are flags (``--compile``), never ``--compile true``.
- A bad option ends in one ``error:`` line (exit status 2), as every other error of a command does.

Earlier spellings (``--zoo Z``, ``--seeds``, ``--runs-per-batch``, ``--batch-rnns``, underscores) are still
accepted for one version, without being shown in ``--help``. A command's options come either from a config
dataclass (:func:`parse_config`) or from :class:`CommandParser` with the shared :class:`Option`\\ s; this module
imports neither torch nor ``transformers``, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeVar, Union

from .errors import ZooError

Config = TypeVar("Config")

DEVICES = ("auto", "cpu", "cuda")
"""The values of ``--device``; ``auto`` is cuda when available, else cpu (:func:`check_device`)."""


@dataclass(frozen=True)
class Option:
    """One command-line option as every command spells it: its name (``zoo`` for a positional argument, ``--device``
    for an option), the ``add_argument`` settings, and earlier spellings still accepted but not shown."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        """The attribute the parsed value is stored in."""
        return self.name.lstrip("-").replace("-", "_")


ZOO = Option("zoo", {"metavar": "ZOO", "help": "a zoo folder, or a Hub dataset repo id (ORG/NAME)"}, aliases=("--zoo",))
REVISION = Option("--revision", {
    "default": None, "metavar": "REV", "help": "branch, tag or commit of a zoo on the Hub (default: the newest tag of its format version)"})
DEVICE = Option("--device", {"choices": DEVICES, "default": "auto",
                             "help": "where to compute: auto (cuda if available, else cpu), cpu or cuda"})
SEED = Option("--seed", {"type": int, "default": 0, "help": "random seed"})
OUT = Option("--out", {"required": True, "metavar": "DIR", "help": "output folder"})
SHARED = {option.dest: option for option in (ZOO, REVISION, DEVICE, SEED, OUT)}
"""The options every command spells the same way, by the config field or attribute that holds them."""

RENAMED: dict[str, tuple[str, tuple[str, ...]]] = {
    "runs_per_batch": ("--rnns-per-batch", ("--runs-per-batch",)),
    "batch_rnns": ("--rnns-per-batch", ("--batch-rnns",)),
    "seeds": ("--num-seeds", ("--seeds",)),
}
"""Config fields whose option is not their dashed name: field -> (option, earlier spellings still accepted)."""


def option_name(field_name: str) -> str:
    """The command-line spelling of a config field or parsed attribute: ``probe_steps`` -> ``--probe-steps``."""
    if field_name in RENAMED:
        return RENAMED[field_name][0]
    return "--" + field_name.replace("_", "-")


def renamed(field_name: str, settings: dict[str, Any]) -> Option:
    """The option of a field in :data:`RENAMED`, with ``settings`` and its earlier spellings as hidden aliases."""
    name, aliases = RENAMED[field_name]
    return Option(name, {"dest": field_name, **settings}, aliases)


def check_device(device: str) -> str:
    """``device`` resolved (``auto``: cuda if this machine has it, else cpu); :class:`ZooError` for ``cuda`` on a machine
    without it."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ZooError("--device cuda: no CUDA device is available here; use --device cpu (or auto)")
    return device


def check_seed(seed: int, option: str = "--seed") -> None:
    """Raise :class:`ZooError` unless ``seed`` is a non-negative 64-bit integer, as every seed of torch and numpy must be."""
    if not 0 <= seed < 2**63:
        raise ZooError(f"{option} must be a non-negative 64-bit integer, got {seed}")


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help only for optional options whose default means something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "%(default)" in help_text or action.required or any(action.default is empty for empty in (None, argparse.SUPPRESS, False)):
            return help_text
        if action.option_strings and action.nargs != 0:
            return f"{help_text} (default: %(default)s)"
        return help_text


class CommandParser(argparse.ArgumentParser):
    """An argument parser that ends a bad command line in one ``error:`` line and knows the shared options."""

    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description, formatter_class=HelpFormatter)
        self.positionals: dict[str, tuple[tuple[str, ...], bool]] = {}
        """Positional arguments (optional to argparse, so that an earlier ``--option`` spelling may give them instead):
        dest -> (those spellings, whether the argument is required)."""

    def format_usage(self) -> str:  # noqa: D102
        return f"usage: {self.compact_usage()}\n"

    def format_help(self) -> str:  # noqa: D102
        self.usage = self.compact_usage()
        return super().format_help()

    def compact_usage(self) -> str:
        """``PROG ZOO --out DIR [options]``: what must be given, in order, then ``[options]``."""
        parts = [self.prog]
        for action in self._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            metavar = action.metavar or action.dest.upper()
            if not action.option_strings:
                parts.append(metavar if self.positionals.get(action.dest, ((), True))[1] else f"[{metavar}]")
            elif action.required:
                parts.append(f"{action.option_strings[0]} {metavar}")
        return " ".join([*parts, "[options]"])

    def error(self, message: str) -> NoReturn:
        """Print ``error: MESSAGE`` and where the options are listed, in one line; exit with status 2."""
        print(f"error: {message} ({self.prog} --help lists the options)", file=sys.stderr)
        sys.exit(2)

    def add(self, option: Option, **settings: Any) -> None:
        """Add ``option`` (``settings`` override its own, such as ``help``), and its earlier spellings, hidden."""
        settings = {**option.settings, **settings}
        if not option.name.startswith("-"):  # a positional argument, optional so that its --alias may give it instead
            self.positionals[option.dest] = (option.aliases, settings.pop("required", True))
            self.add_argument(option.dest, nargs="?", default=None, **settings)
            hidden = {key: value for key, value in settings.items() if key in ("type", "metavar")}
            for alias in option.aliases:
                self.add_argument(alias, dest=f"{option.dest}_alias", default=None, help=argparse.SUPPRESS, **hidden)
            return
        dest = settings.pop("dest", option.dest)
        self.add_argument(option.name, dest=dest, **settings)
        hidden = {key: value for key, value in settings.items() if key not in ("help", "required", "default")}
        for alias in option.aliases:
            self.add_argument(alias, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **hidden)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """Parse, then take a positional argument from its earlier ``--option`` spelling where that was used."""
        parsed = super().parse_args(args, namespace)
        for dest, (aliases, required) in self.positionals.items():
            given, old = getattr(parsed, dest), vars(parsed).pop(f"{dest}_alias", None)
            if given is not None and old is not None and given != old:
                self.error(f"the {dest} is given twice ({given} and {aliases[0]} {old}); give it once, first")
            value = given if given is not None else old
            if value is None and required:
                self.error(f"the {dest} is missing; give it first: {self.prog} {dest.upper()} ...")
            setattr(parsed, dest, value)
        return parsed


def config_parser(config_class: type[Any], prog: str, description: str) -> CommandParser:
    """A :class:`CommandParser` with one option per field of the dataclass ``config_class``.

    A field named like a shared option (:data:`SHARED`) gets that option; the others are ``--dashed-names``
    (or their name in :data:`RENAMED`), typed by the field's annotation: ``int``, ``float``, ``str``, a
    ``Literal`` (its values are the choices), ``Optional`` of one of these, or ``bool`` (a flag). A field's
    metadata may give ``help``, ``metavar``, ``nargs`` and ``const``.
    """
    parser = CommandParser(prog, description)
    hints = typing.get_type_hints(config_class)
    for item in dataclasses.fields(config_class):
        settings = {key: value for key, value in item.metadata.items() if key in ("help", "metavar", "nargs", "const")}
        default = _field_default(item)
        if item.name in SHARED:
            shared = SHARED[item.name]
            if default is not dataclasses.MISSING:
                settings["default"] = default
            elif shared.name.startswith("-"):
                settings["required"] = True
            parser.add(shared, **settings)
            continue
        settings.update(_typed_settings(hints[item.name], default))
        name, aliases = RENAMED.get(item.name, (option_name(item.name), ()))
        underscored = "--" + item.name
        parser.add(Option(name, {"dest": item.name, **settings}, aliases + ((underscored,) if underscored != name else ())))
    return parser


def _field_default(item: dataclasses.Field) -> Any:
    """The default of a dataclass field (``MISSING`` for a required one)."""
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return dataclasses.MISSING


def _typed_settings(annotation: Any, default: Any) -> dict[str, Any]:
    """The ``add_argument`` settings for a field of type ``annotation`` with ``default``."""
    if default is dataclasses.MISSING:
        settings: dict[str, Any] = {"required": True}
    else:
        settings = {"default": default}
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        origin = typing.get_origin(annotation)
    if annotation is bool:
        if default is not False:
            raise TypeError("a boolean option must default to False (it is a flag)")
        return {"action": "store_true", "default": False}
    if origin is Literal:
        choices = typing.get_args(annotation)
        return settings | {"choices": choices, "type": type(choices[0])}
    return settings | {"type": annotation}


def parse_config(config_class: type[Config], prog: str, description: str, argv: list[str] | None = None) -> Config:
    """Parse a command line into ``config_class``; a bad one ends in one ``error:`` line (exit status 2)."""
    return config_class(**vars(config_parser(config_class, prog, description).parse_args(argv)))
