"""``python -m baselines.pretrain``: emulation pretraining of a weight encoder (the same as ``rnn-zoos pretrain``).

The code is :mod:`rnn_zoos.experiments.pretrain`.
"""

import sys

from rnn_zoos.experiments.pretrain import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m baselines.pretrain"))
