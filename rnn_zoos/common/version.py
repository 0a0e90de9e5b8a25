"""The installed rnn-zoos version (``0.0.0+unknown`` in a checkout that was never installed)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnn-zoos")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0.0.0+unknown"
