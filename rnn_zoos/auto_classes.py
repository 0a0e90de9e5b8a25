"""Registering the encoder and the emulator with ``transformers``' Auto classes, without importing ``transformers`` early.

``import rnn_zoos`` promises that ``transformers.AutoModel.from_pretrained`` then loads our models. Registering
needs ``transformers`` and torch (seconds to import), which a command line's ``--help`` should not pay for. So
:func:`register_with_transformers` registers at once if ``transformers`` is already imported, and otherwise
right after ``transformers`` is first imported, by watching that one import (a finder on ``sys.meta_path``
that steps aside as soon as it has seen it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


def register_with_transformers() -> None:
    """Register our models with the Auto classes now if ``transformers`` is imported, else once it is."""
    if "transformers" in sys.modules:
        _register()
    elif not any(isinstance(finder, _TransformersWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TransformersWatcher())


def _register() -> None:
    """Import :mod:`rnn_zoos.models`, whose import registers the models (a failure is a warning, not a failed import)."""
    try:
        importlib.import_module("rnn_zoos.models")
    except Exception as error:  # never break the user's import of transformers
        warnings.warn(f"rnn_zoos could not register its models with transformers' Auto classes: {error}", stacklevel=2)


class _TransformersWatcher(importlib.abc.MetaPathFinder):
    """Finds nothing itself; when ``transformers`` is imported, makes its loader call :func:`_register` after it ran."""

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    """Runs the real loader of ``transformers``, then :func:`_register`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _register()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...: those of the real loader
        return getattr(self.loader, name)
