"""``python -m builders.verify DIR_OR_REPO_ID [options]``: check a zoo (the same as ``rnn-zoos verify``).

The code is :mod:`rnn_zoos.hub.verify`.
"""

import sys

from rnn_zoos.hub.verify import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m builders.verify"))
