"""The zoo kinds this library knows, by name (:class:`ZooKind`): ``formal-lang`` and ``seq-mnist`` built in.

A new kind of zoo is one module that defines a :class:`ZooKind` subclass and calls
:func:`register_zoo` with an instance; every command and function then finds it by name. The wing also holds what a
kind declares: its build options (:mod:`.build_config`), downstream targets (:mod:`.targets`) and release format
(:mod:`.release_format`). Imports common, lstm and format.
"""

from __future__ import annotations

import importlib

from ..common.errors import ZooError
from .base import CLONED_MEASURES, SequenceModel, ZooKind, ZooRecipe, recorded_log_probs, rnn_model

BUILTIN_MODULES = ("rnn_zoos.zoos.formal_lang", "rnn_zoos.zoos.seq_mnist")
"""Modules that register the built-in kinds; imported on the first lookup (they import much of the library)."""
_KINDS: dict[str, ZooKind] = {}


def register_zoo(kind: ZooKind) -> ZooKind:
    """Make ``kind`` known by its name (replacing a kind of that name); returns it."""
    _KINDS[kind.name] = kind
    return kind


def _builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def zoo_names() -> list[str]:
    """The names of the known kinds of zoo, sorted."""
    _builtin()
    return sorted(_KINDS)


def known_zoos() -> dict[str, ZooKind]:
    """Every known kind of zoo by name: what :meth:`rnn_zoos.format.info.ZooInfo.read` checks a record's zoo and tasks against."""
    _builtin()
    return dict(_KINDS)


def zoo_kind(name: str) -> ZooKind:
    """The kind of zoo called ``name``; :class:`ZooError` listing the known names if there is none."""
    _builtin()
    if name not in _KINDS:
        raise ZooError(f"unknown zoo {name!r}; known zoos: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


__all__ = ["CLONED_MEASURES", "SequenceModel", "ZooKind", "ZooRecipe", "recorded_log_probs", "register_zoo", "rnn_model", "known_zoos", "zoo_kind", "zoo_names"]
