"""Encoders by reference (the six built in, installed ones, yours) and the protocol every encoder follows.

**The protocol.** An encoder is a ``torch.nn.Module`` made by a class or factory called with an
:class:`EncoderShape`: ``shape.architecture`` (the RNNs' :class:`~rnn_zoos.lstm.functional.LSTMArchitecture`),
``shape.embedding_dim`` (the size of the embedding to return), ``shape.token_vocab`` (formal
languages: inputs are distributions over this many tokens; None: real-valued inputs) and the
probing options. Its ``forward(weights)`` receives a batch of B RNNs as
:class:`~rnn_zoos.lstm.weights.LSTMWeights` (``tensors()``, ``layers``, ``gates(layer, kind)``,
``flatten()``, ``rows_with_bias()``, ``permute_hidden(perms)``; every tensor ``[B, ...]``) and returns
their embeddings, a float tensor ``[B, embedding_dim]``. A functionalist encoder runs the B RNNs on
probe inputs of its own with ``weights.run(inputs)`` or ``weights.step(inputs, state)``,
differentiably. A class attribute ``needs_augmentation = True`` says that the encoder is not
invariant to hidden-neuron permutations; training then shows it randomly permuted RNNs, as the paper
does for ``flat`` and ``parameter_transformer``.

**Its config.** :class:`~rnn_zoos.models.RNNEncoderModel` wraps every encoder, so ``save_pretrained``,
``from_pretrained`` and ``push_to_hub`` work for all: its config records the reference and the shape.
A plain module is rebuilt from them on loading, so its other settings are its code's defaults (one
factory per variant). A ``transformers.PreTrainedModel`` subclass is built as
``cls(cls.config_class(**shape.config_fields()))``: its own ``PretrainedConfig`` subclass receives
``rnn_architecture``, ``token_vocab``, ``embedding_dim`` and the probing options as keyword
arguments, is saved inside the wrapper's config, and is given back to the class on loading.

**References.** One of the six names of :data:`ENCODERS`; the name of an installed encoder, an entry
point of the group ``rnn_zoos.encoders`` declared by an installed package
(``[project.entry-points."rnn_zoos.encoders"]`` ``mean-pool = "my_pkg.encoders:MeanPool"``); or
``MODULE:ATTRIBUTE``, a class or factory in your own code. The six names come first.

**What is imported.** Importing a module runs its code. :func:`resolve_encoder` (what the command
line and :func:`register_encoder` call) imports the module that a reference names. A saved model
records its encoder's reference in ``config.json``, but loading it never imports a module because a
file names it: :func:`known_encoder` finds only the six, the references resolved or registered in
this process, and installed encoders (installing a package is trusting its code). The saved folder
holds no code of the encoder's: its config's ``auto_map`` names only the loader rnn-zoos writes
beside every model, which imports rnn-zoos itself and nothing else, so ``transformers``'
``trust_remote_code`` has none of the encoder's code to run either.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from rnn_zoos.common.errors import ZooError, short
from rnn_zoos.lstm.weights import LSTMWeights

from .base import EncoderShape, WeightEncoder
from .dws import DWSEncoder
from .mechanistic import FlatEncoder, LayerwiseStatisticsEncoder
from .probing import InteractiveProbingEncoder, NoninteractiveProbingEncoder
from .transformer import ParameterTransformerEncoder

ENCODERS: dict[str, type[WeightEncoder]] = {
    cls.name: cls
    for cls in (
        LayerwiseStatisticsEncoder,
        FlatEncoder,
        ParameterTransformerEncoder,
        DWSEncoder,
        NoninteractiveProbingEncoder,
        InteractiveProbingEncoder,
    )
}
"""The paper's six encoders, by name."""
ENTRY_POINT_GROUP = "rnn_zoos.encoders"
"""The entry-point group through which installed packages offer encoders."""
REFERENCE_HELP = (
    f"one of the six ({', '.join(ENCODERS)}), the name of an installed encoder (entry point group {ENTRY_POINT_GROUP}), "
    "or MODULE:CLASS, a class or factory in your own code; naming MODULE imports it, which runs its code"
)
"""How the commands' help describes an encoder reference."""
EXPECTED = "a class or factory taking an EncoderShape and returning a torch.nn.Module"
"""What a reference must name, as the error messages say it."""
CODE_REFERENCE = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attribute>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
"""``MODULE:ATTRIBUTE``, both dotted Python names."""
CHECK_RNNS = 2
"""RNNs in the batch on which :func:`check_encoder` runs an encoder before any training."""

Factory = Callable[..., nn.Module]


@dataclass(frozen=True)
class EncoderSource:
    """An encoder's code, the reference a saved config records for it, and the package it comes from (None: built in)."""

    reference: str
    make: Factory
    package: str | None = None

    def build(self, shape: EncoderShape, saved_config: dict[str, Any] | None = None) -> nn.Module:
        """A new encoder for RNNs of ``shape``; a ``PreTrainedModel`` class gets its saved config back if there is one."""
        if isinstance(self.make, type) and issubclass(self.make, PreTrainedModel):
            config_class = self.make.config_class
            return self.make(config_class.from_dict(saved_config) if saved_config else config_class(**shape.config_fields()))
        return self.make(shape)


_TRUSTED: dict[str, EncoderSource] = {}
"""The references resolved or registered in this process (as given and as recorded)."""


def top_package(reference: str) -> str:
    """The top-level package of a ``MODULE:ATTRIBUTE`` reference (``my_pkg.encoders:MeanPool`` -> ``my_pkg``)."""
    return reference.partition(":")[0].split(".")[0]


def is_code_reference(reference: str) -> bool:
    """Whether ``reference`` names code as ``MODULE:ATTRIBUTE`` (rather than a built-in or installed encoder by name)."""
    return ":" in reference


def resolve_encoder(reference: str) -> EncoderSource:
    """The encoder ``reference`` names; a ``MODULE:ATTRIBUTE`` reference imports MODULE (running its code). Call it only
    with a reference that the user gave (command line, Python), never with one read from a file. The encoder is then
    known to this process, so models that record it load. :class:`ZooError` saying what was expected otherwise."""
    if reference in ENCODERS:
        return EncoderSource(reference, ENCODERS[reference])
    if reference in _TRUSTED:
        return _TRUSTED[reference]
    if not is_code_reference(reference):
        source = _installed(reference)
        if source is None:
            names = ", ".join(installed_encoders()) or "none is installed"
            raise ZooError(f"{reference!r} is unknown; choose one of {', '.join(ENCODERS)}, an installed encoder ({names}), "
                           "or MODULE:CLASS (a class or factory in your own code)")
    else:
        make = _import_attribute(reference)
        canonical = code_reference(make)
        source = EncoderSource(canonical, make, top_package(canonical))
    _TRUSTED[reference] = _TRUSTED[source.reference] = source
    return source


def register_encoder(encoder: str | Factory) -> Factory:
    """Make an encoder of your code known to this process, so that models that record it load with ``from_pretrained``
    (a saved model never imports it by itself). Give the class or factory (also as a decorator, ``@register_encoder``),
    or its ``MODULE:ATTRIBUTE`` reference, which imports MODULE. Returns the class or factory."""
    if isinstance(encoder, str):
        return resolve_encoder(encoder).make
    _check_factory(encoder, repr(encoder))
    reference = code_reference(encoder)
    _TRUSTED[reference] = EncoderSource(reference, encoder, top_package(reference))
    return encoder


def known_encoder(reference: str) -> EncoderSource:
    """The encoder a saved model records, without importing any module because the record names it: one of the six, one
    resolved or registered in this process, or an installed encoder (by name, or by its entry point's reference).
    :class:`UnknownEncoderError` otherwise."""
    if reference in ENCODERS or reference in _TRUSTED:
        return resolve_encoder(reference)
    source = _installed(reference)
    if source is None:
        raise UnknownEncoderError(reference)
    _TRUSTED[reference] = source
    return source


class UnknownEncoderError(ZooError):
    """A saved model's encoder that is not known to this process (:func:`known_encoder`); the message says what to do."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(self.explain())

    def explain(self, advice: str | None = None) -> str:
        """One line: where the encoder comes from, whether that is installed, and ``advice`` (default: the Python call)."""
        reference = short(self.reference)
        if not CODE_REFERENCE.fullmatch(self.reference):
            return (f"this model's encoder {reference} is neither one of the six nor an installed encoder; install the package "
                    f"that provides it (an entry point {reference} in the group {ENTRY_POINT_GROUP})")
        advice = advice or f"call rnn_zoos.models.register_encoder({reference}) before loading the model"
        package = top_package(self.reference)
        if importlib.util.find_spec(package) is None:  # a top-level name: finding it runs no code
            return (f"this model's encoder {reference} comes from the package {package!r}, which is not installed here: "
                    f"install it or put its folder on PYTHONPATH, then {advice}")
        return (f"this model's encoder {reference} is code from the package {package!r}, which rnn-zoos does not import "
                f"because a saved model names it: {advice} (that imports it and runs its code)")


def installed_encoders() -> list[str]:
    """The names of the installed encoders: the entry points of the group :data:`ENTRY_POINT_GROUP`."""
    return sorted({entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)})


def _installed(reference: str) -> EncoderSource | None:
    """The installed encoder named ``reference`` or whose entry point is ``reference``, loaded (importing its installed
    package); None if there is none."""
    matches = {entry.value: entry for entry in entry_points(group=ENTRY_POINT_GROUP) if reference in (entry.name, entry.value)}
    if not matches:
        return None
    if len(matches) > 1:
        raise ZooError(f"installed packages give the encoder {reference!r} as {' and '.join(sorted(matches))}; "
                       "uninstall one of them or name the encoder as MODULE:CLASS")
    entry = next(iter(matches.values()))
    label = f"the installed encoder {reference!r} ({entry.value}{_distribution(entry)})"
    try:
        make = entry.load()
    except Exception as error:  # the package's own code failed
        raise ZooError(f"{label} cannot be loaded: {_one_line(error)}; reinstall its package") from None
    _check_factory(make, label)
    return EncoderSource(reference, make, entry.dist.name if entry.dist else entry.module.split(".")[0])


def _distribution(entry: EntryPoint) -> str:
    return f" of the package {entry.dist.name}" if entry.dist else ""


def _import_attribute(reference: str) -> Factory:
    """Import the module of a ``MODULE:ATTRIBUTE`` reference and return the attribute, checked to be a class or factory."""
    match = CODE_REFERENCE.fullmatch(reference)
    if match is None:
        raise ZooError(f"{reference!r} is not MODULE:CLASS; expected a dotted module name, a colon and the name of {EXPECTED} "
                       "in it, such as my_pkg.encoders:MeanPool")
    module_name, attribute = match["module"], match["attribute"]
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as error:  # an import runs the user's code, which may raise anything
        raise ZooError(f"{reference!r}: importing {module_name} failed ({_one_line(error)}); expected MODULE importable here "
                       "(installed, or its folder on PYTHONPATH)") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ZooError(f"{reference!r}: {module_name} has no {attribute}; expected the name of {EXPECTED} in {module_name}")
        found = getattr(found, part)
    _check_factory(found, repr(reference))
    return found


def _check_factory(make: Any, label: str) -> None:
    """:class:`ZooError` unless ``make`` is an ``nn.Module`` class or another callable (a factory)."""
    if isinstance(make, type) and not issubclass(make, nn.Module):
        raise ZooError(f"{label} names the class {make.__name__}, which is not a torch.nn.Module; expected {EXPECTED}")
    if not callable(make):
        raise ZooError(f"{label} names {short(make, 40)} of type {type(make).__name__}, not a class or factory; "
                       f"expected {EXPECTED}")


def code_reference(make: Factory) -> str:
    """The ``MODULE:QUALNAME`` reference of a class or function, as a saved config records it."""
    module, name = getattr(make, "__module__", None), getattr(make, "__qualname__", None)
    if not module or not name or "<" in name:
        raise ZooError(f"{make!r} cannot be named as MODULE:CLASS (a lambda, a partial, or defined inside a function); "
                       f"define {EXPECTED} at the top level of a module")
    return f"{module}:{name}"


def check_encoder(reference: str, shape: EncoderShape) -> None:
    """Resolve ``reference`` (:func:`resolve_encoder`: this imports it) and, unless it is one of the six, build it for RNNs
    of ``shape`` and run it on a batch of :data:`CHECK_RNNS` random RNNs; :class:`ZooError` saying what was expected if
    it cannot be built, fails, or returns anything but a float tensor ``[CHECK_RNNS, shape.embedding_dim]``. Leaves torch's
    random state as it found it."""
    source = resolve_encoder(reference)
    if reference in ENCODERS:
        return
    size = shape.embedding_dim
    expected = f"a float tensor [{CHECK_RNNS}, {size}], one embedding of embedding_dim {size} per RNN"
    with torch.random.fork_rng(devices=[]):
        try:
            module = source.build(shape)
        except Exception as error:
            raise ZooError(f"{reference!r}: building it raised {_one_line(error)}; expected {EXPECTED}") from None
        if not isinstance(module, nn.Module):
            raise ZooError(f"{reference!r} returned a {type(module).__name__}, not a torch.nn.Module; expected {EXPECTED}")
        try:
            output = module(random_weights(shape, CHECK_RNNS))
        except Exception as error:
            raise ZooError(f"{reference!r} failed on a batch of {CHECK_RNNS} RNNs ({_one_line(error)}); expected "
                           f"forward(weights: LSTMWeights) to return {expected}") from None
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        found = f"a tensor of {output.dtype}" if isinstance(output, torch.Tensor) else f"a {type(output).__name__}"
        raise ZooError(f"{reference!r} returned {found} for {CHECK_RNNS} RNNs; expected {expected}")
    if tuple(output.shape) != (CHECK_RNNS, size):
        raise ZooError(f"{reference!r} returned a tensor of shape {list(output.shape)} for {CHECK_RNNS} RNNs; "
                       f"expected {expected}")


def random_weights(shape: EncoderShape, rnns: int) -> LSTMWeights:
    """A batch of ``rnns`` RNNs of the architecture of ``shape`` with random weights (a fixed seed)."""
    generator = torch.Generator().manual_seed(0)
    params = {name: 0.3 * torch.randn((rnns, *size), generator=generator)
              for name, size in shape.architecture.parameter_shapes().items()}
    return LSTMWeights.from_params(params, shape.architecture)


def folder_name(reference: str) -> str:
    """A file-name form of a reference (``my_pkg.encoders:MeanPool`` -> ``my_pkg.encoders.MeanPool``)."""
    name = re.sub(r"[^\w.-]+", "_", reference.replace(":", "."))
    return name if name.strip(".") else f"_{name}"


def _one_line(error: BaseException) -> str:
    """``Type: message`` of an exception from the user's code, its first line, shortened."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
