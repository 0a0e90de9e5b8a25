"""rnn-zoos: model zoos of trained RNNs on the Hugging Face Hub, and the tools around them.

    import rnn_zoos
    zoo = rnn_zoos.load_zoo("rnn-zoos/formal-lang", split="train")   # or a local folder
    rnn = rnn_zoos.to_module(zoo[0]["weights"])                        # torch.nn.Module
"""

from .errors import DamagedZooError, ZooError
from .format import FORMAT_VERSION, ZooInfo
from .blob import decode_weights, encode_weights
from .loading import collate_rows, decode_batch, load_zoo, read_info, resolve_zoo, to_module
from .lstm import LSTMArchitecture, LSTMWithHead

__version__ = "0.1.0"

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
    "read_info",
    "resolve_zoo",
    "to_module",
]
