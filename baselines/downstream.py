"""``python -m baselines.downstream``: downstream prediction of RNN properties (the same as ``rnn-zoos downstream``).

The code is :mod:`rnn_zoos.experiments.downstream`.
"""

import sys

from rnn_zoos.experiments.downstream import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m baselines.downstream"))
