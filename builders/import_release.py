"""``python -m builders.import_release SRC --out DIR``: the paper's original release as an rnn-zoos zoo (the same as ``rnn-zoos import-release``).

The code is :mod:`rnn_zoos.release.importer`.
"""

import sys

from rnn_zoos.release.importer import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m builders.import_release"))
