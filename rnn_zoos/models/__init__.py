"""Shareable models: weight encoders (the paper's six, or yours) and the emulator as ``transformers`` models. Imports
common, lstm, format, zoos and hub."""

from .encoders import register_encoder
from .modeling import EmulatorConfig, EmulatorModel, RNNEncoderConfig, RNNEncoderModel

__all__ = ["EmulatorConfig", "EmulatorModel", "RNNEncoderConfig", "RNNEncoderModel", "register_encoder"]
