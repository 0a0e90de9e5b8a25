"""The paper's baselines as scripts, run from a checkout: ``python -m baselines.<script>`` (the same as ``rnn-zoos <script>``).

The encoders and the emulator live in :mod:`rnn_zoos.models`, the pretraining, downstream study and
reproduction in :mod:`rnn_zoos.experiments`; these scripts only call them.
"""
