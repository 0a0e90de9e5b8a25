"""``python -m builders.seq_mnist --out DIR [options]``: build the sequential-MNIST zoo (the same as ``rnn-zoos build seq-mnist``).

The zoo is defined in :mod:`rnn_zoos.zoos.seq_mnist`, the builder in :mod:`rnn_zoos.builder`;
``--help`` lists the options.
"""

import sys

from rnn_zoos.builder.command import main

if __name__ == "__main__":
    sys.exit(main("seq-mnist", prog="python -m builders.seq_mnist"))
