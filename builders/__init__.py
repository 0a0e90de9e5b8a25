"""Zoo builders and tools, run from a checkout: ``python -m builders.<zoo> --out DIR ...`` trains a zoo and writes it
in the Hub layout; ``verify``, ``publish`` and ``import_release`` check, push and import zoos (the same as ``rnn-zoos ...``)."""
