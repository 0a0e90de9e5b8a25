"""Zoo builders: ``python -m builders.<zoo> --out DIR ...`` trains a zoo and writes it in the Hub layout."""

from pathlib import Path

CARDS_DIR = Path(__file__).resolve().parent.parent / "dataset_cards"
"""The dataset card templates, next to ``builders/`` in a checkout."""
