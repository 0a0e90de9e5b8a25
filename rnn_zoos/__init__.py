"""rnn-zoos: model zoos of trained RNNs on the Hugging Face Hub, and the tools around them.

    import rnn_zoos
    zoo = rnn_zoos.load_zoo(REPO_ID_OR_FOLDER, split="train")     # a zoo on the Hub, or a local folder
    rnn = rnn_zoos.to_module(zoo[0]["weights"])                        # torch.nn.Module
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnn-zoos")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0.0.0+unknown"

from .errors import DamagedZooError, ZooError
from .format import FORMAT_VERSION, ZooInfo
from .blob import decode_weights, encode_weights
from .loading import collate_rows, decode_batch, load_zoo, read_info, resolve_zoo, to_module
from .lstm import LSTMArchitecture, LSTMWithHead
from . import models  # registers the encoder and emulator with transformers' Auto classes


__all__ = [
    "FORMAT_VERSION",
    "DamagedZooError",
    "LSTMArchitecture",
    "LSTMWithHead",
    "ZooError",
    "ZooInfo",
    "collate_rows",
    "decode_batch",
    "decode_weights",
    "encode_weights",
    "load_zoo",
    "models",
    "read_info",
    "resolve_zoo",
    "to_module",
]
