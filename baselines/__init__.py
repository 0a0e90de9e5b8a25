"""The paper's baselines: weight encoders, the emulator, emulation pretraining and downstream probes.

Run from a checkout: ``python -m baselines.<script>``. Baselines import ``rnn_zoos``, never the builders.
"""
