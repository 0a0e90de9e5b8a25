"""Weight encoders: the paper's six, by name, and the registry that finds any encoder by reference.

Mechanistic: ``layerwise_statistics``, ``flat``, ``parameter_transformer``, ``dws``.
Functionalist: ``noninteractive_probing``, ``interactive_probing``.
The protocol that every encoder follows, these six and yours, is in :mod:`.registry`.
"""

from torch import nn

from .base import EncoderShape, WeightEncoder
from .registry import (
    ENCODERS,
    ENTRY_POINT_GROUP,
    EncoderSource,
    UnknownEncoderError,
    check_encoder,
    known_encoder,
    register_encoder,
    resolve_encoder,
)


def build_encoder(reference: str, shape: EncoderShape) -> nn.Module:
    """A new encoder for RNNs of ``shape``: one of :data:`ENCODERS`, or one known to this process (:func:`known_encoder`)."""
    return known_encoder(reference).build(shape)


__all__ = [
    "ENCODERS",
    "ENTRY_POINT_GROUP",
    "EncoderShape",
    "EncoderSource",
    "UnknownEncoderError",
    "WeightEncoder",
    "build_encoder",
    "check_encoder",
    "known_encoder",
    "register_encoder",
    "resolve_encoder",
]
