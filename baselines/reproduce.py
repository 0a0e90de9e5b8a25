"""``python -m baselines.reproduce``: the paper's whole study and its report (the same as ``rnn-zoos reproduce``).

The code is :mod:`rnn_zoos.experiments.reproduce`.
"""

import sys

from rnn_zoos.experiments.reproduce import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m baselines.reproduce"))
