"""A zoo's dataset card (``README.md``): written and read through ``huggingface_hub``'s :class:`DatasetCard`.

A zoo kind's template (``dataset_cards/<zoo>.md``) is a card: a YAML header with the static metadata
(license, pretty name, tags) and a Markdown body with ``$placeholders``. :func:`write_card` adds the
generated metadata to the header (``configs``, ``dataset_info``, ``size_categories``) as
:class:`DatasetCardData`, fills the body, and writes the card atomically; :func:`read_card` loads it
back with :meth:`DatasetCard.load`.
"""

from __future__ import annotations

import platform
import string
from pathlib import Path
from typing import Any

import torch
import yaml
from datasets import Features
from huggingface_hub import DatasetCard, DatasetCardData

from ..common.errors import DamagedZooError, ZooError
from ..common.files import atomic_write
from ..format.info import CARD_PATH, DATA_DIR, SPLITS, ZooInfo

LICENSE = "cc-by-4.0"
"""Every zoo's license."""
UNPUBLISHED_REPO_ID = "ORG/NAME"
"""The repo id a card's loading example shows until ``rnn-zoos publish`` puts the zoo's own there (:func:`with_repo_id`)."""


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` tag for a row count."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if num_rows < limit:
            return label
    return "1M<n<10M"


def card_metadata(info: ZooInfo, features: Features, folder: Path) -> dict[str, Any]:
    """The generated part of the card's YAML header: ``configs``, ``dataset_info`` and ``size_categories``.

    ``datasets`` cannot load a split without files, so an empty split is left out (it stays in
    ``meta/info.json`` with zero rows, and :func:`rnn_zoos.load_zoo` returns it empty).
    ``dataset_info`` also keys ``datasets``' cache of a local folder to the zoo's content: without
    it, two zoo folders of the same name share one cache entry, and the second loads the first's rows.
    """
    present = [split for split in SPLITS if info.splits[split].num_rows]
    return {
        "configs": [{"config_name": "default", "data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*"} for s in present]}],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": s, "num_bytes": info.splits[s].num_bytes, "num_examples": info.splits[s].num_rows} for s in present],
            "download_size": sum((folder / path).stat().st_size for path in info.checksums),
            "dataset_size": sum(info.splits[s].num_bytes for s in present),
        },
        "size_categories": [size_category(info.num_rows)],
    }


def provenance_fields(command: str, device: str) -> dict[str, str]:
    """The card's provenance placeholders: the exact command, the code and torch versions, and the device; and those of
    its loading example: where the code is, the line that installs it, and the repo id (:data:`UNPUBLISHED_REPO_ID`)."""
    from ..common.version import __version__
    from .provenance import code_url, git_commit, install_command

    commit = git_commit()
    return {
        "code_url": code_url(),
        "install_command": install_command(),
        "repo_id": UNPUBLISHED_REPO_ID,
        "build_command": command,
        "code_version": f"rnn-zoos {__version__}" + (f" (git commit {commit})" if commit else ""),
        "torch_version": f"torch {torch.__version__} (Python {platform.python_version()})",
        "device": device,
    }


def write_card(folder: Path, template: str, metadata: dict[str, Any], fields: dict[str, Any], zoo: str) -> DatasetCard:
    """Fill the card ``template`` of the zoo ``zoo`` and write it as ``README.md`` atomically.

    Args:
        template: the kind's card template (YAML header and Markdown body with ``$placeholders``).
        metadata: header keys added to the template's (:func:`card_metadata`); the license is always ``cc-by-4.0``.
        fields: the body's placeholders.
    """
    card = DatasetCard(template, ignore_metadata_errors=False)
    try:
        body = string.Template(card.text).substitute({key: str(value) for key, value in fields.items()})
    except KeyError as error:
        raise ZooError(f"the card template of {zoo} uses ${error.args[0]}, which the builder does not fill in") from None
    except ValueError as error:
        raise ZooError(f"the card template of {zoo} has a malformed placeholder ({error}); write $$ for a dollar sign") from None
    data = DatasetCardData(**{**card.data.to_dict(), **metadata, "license": LICENSE})
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}")
    with atomic_write(folder / CARD_PATH) as temporary:
        card.save(temporary)
    return card


def with_repo_id(card: str, repo_id: str) -> str:
    """The card text with its loading example pointing at ``repo_id`` instead of :data:`UNPUBLISHED_REPO_ID`."""
    return card.replace(f'"{UNPUBLISHED_REPO_ID}"', f'"{repo_id}"')


def read_card(folder: Path) -> DatasetCard:
    """The card of the zoo folder ``folder``, loaded with :meth:`DatasetCard.load`; :class:`DamagedZooError` if it is not one."""
    path = folder / CARD_PATH
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedZooError(f"{CARD_PATH} is not UTF-8 text") from None
    try:
        return DatasetCard.load(path, ignore_metadata_errors=False)
    except (ValueError, TypeError, RecursionError, yaml.YAMLError) as error:
        raise DamagedZooError(f"{CARD_PATH} has a YAML header that is not valid YAML ({type(error).__name__})") from None
