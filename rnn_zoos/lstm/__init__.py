"""The LSTM maths: the functional LSTM and its modules (:mod:`.functional`), typed weights (:mod:`.weights`), hidden-unit
permutations (:mod:`.symmetry`), the batched training schedule and AdamW (:mod:`.training`) and seeded random streams
(:mod:`.streams`). Imports only :mod:`rnn_zoos.common`."""

from .functional import LSTMArchitecture, LSTMWithHead, Params, lstm_forward

__all__ = ["LSTMArchitecture", "LSTMWithHead", "Params", "lstm_forward"]
