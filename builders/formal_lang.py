"""``python -m builders.formal_lang --out DIR [options]``: build the formal-language zoo (the same as ``rnn-zoos build formal-lang``).

The zoo is defined in :mod:`rnn_zoos.zoos.formal_lang`, the builder in :mod:`rnn_zoos.builder`;
``--help`` lists the options.
"""

import sys

from rnn_zoos.builder.command import main

if __name__ == "__main__":
    sys.exit(main("formal-lang", prog="python -m builders.formal_lang"))
