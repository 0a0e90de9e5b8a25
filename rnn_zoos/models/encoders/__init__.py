"""The six weight encoders of the paper, by name.

Mechanistic: ``layerwise_statistics``, ``flat``, ``parameter_transformer``, ``dws``.
Functionalist: ``noninteractive_probing``, ``interactive_probing``.
"""

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


def build_encoder(name: str, shape: EncoderShape) -> WeightEncoder:
    """A new encoder by name (see :data:`ENCODERS`)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name](shape)


__all__ = ["ENCODERS", "EncoderShape", "WeightEncoder", "build_encoder"]
