"""rnn-zoos: model zoos of trained RNNs on the Hugging Face Hub, and the tools around them.

    import rnn_zoos
    zoo = rnn_zoos.load_zoo(REPO_ID_OR_FOLDER, split="train")     # a zoo on the Hub, or a local folder
    rnn = rnn_zoos.to_module(zoo[0]["weights"])                        # torch.nn.Module

The names below are imported on first use, so ``import rnn_zoos`` (and ``rnn-zoos --help``) costs no torch,
``datasets`` or ``transformers`` import; importing ``rnn_zoos`` still registers the encoder and the emulator
with ``transformers``' Auto classes, as soon as ``transformers`` is imported (:mod:`rnn_zoos.auto_classes`).
"""

from importlib import import_module
from typing import Any

from .auto_classes import register_with_transformers
from .common.version import __version__  # noqa: F401  (public, in __all__)

_PUBLIC = {
    "FORMAT_VERSION": "format.info",
    "ZooInfo": "format.info",
    "DamagedZooError": "common.errors",
    "ZooError": "common.errors",
    "decode_weights": "format.blob",
    "encode_weights": "format.blob",
    "collate_rows": "hub.loading",
    "decode_batch": "hub.loading",
    "load_zoo": "hub.loading",
    "read_info": "hub.loading",
    "resolve_zoo": "hub.loading",
    "to_module": "hub.loading",
    "LSTMArchitecture": "lstm.functional",
    "LSTMWithHead": "lstm.functional",
    "LSTMWeights": "lstm.weights",
}
"""Public name -> the module (of this package) that defines it."""

__all__ = sorted([*_PUBLIC, "models", "__version__"])


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name == "models":
        return import_module(".models", __name__)
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


register_with_transformers()
