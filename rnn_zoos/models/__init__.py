"""Shareable models: the paper's six weight encoders and its emulator as ``transformers`` models."""

from .modeling import EmulatorConfig, EmulatorModel, RNNEncoderConfig, RNNEncoderModel

__all__ = ["EmulatorConfig", "EmulatorModel", "RNNEncoderConfig", "RNNEncoderModel"]
