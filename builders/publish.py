"""``python -m builders.publish DIR --repo-id ORG/NAME [options]``: push a zoo to the Hub (the same as ``rnn-zoos publish``).

The code is :mod:`rnn_zoos.hub.publish`.
"""

import sys

from rnn_zoos.hub.publish import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m builders.publish"))
