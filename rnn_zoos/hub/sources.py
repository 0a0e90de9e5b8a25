"""Where a zoo's files are: one resolver, "folder or Hub repo id + revision -> files on this machine".

:func:`resolve_zoo` serves loading, ``verify`` and ``publish`` alike. For a Hub repo given without a
revision it picks the newest tag of a format version this library reads (``v2.0`` before ``v1.1``
before ``v1.0``; ``publish`` tags every push), as lerobot resolves its codebase version, and says
which it used; a repo without such tags is read at its main branch.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from urllib.parse import quote

from ..common.errors import DamagedZooError, ZooError
from ..format.info import FORMAT_VERSION, INFO_PATH, READ_MAJORS, ZooInfo, short
from ..zoos import known_zoos

try:  # huggingface_hub >= 1.0 speaks HTTP through httpx, whose network errors are no OSError
    from huggingface_hub.errors import HTTPError as _TransportBase
except ImportError:  # before: requests, whose errors are OSErrors
    _TransportBase = OSError

VERSION_TAG = re.compile(r"v(\d+)\.(\d+)")
"""A tag of a pushed format version: ``v{major}.{minor}``."""
OFFLINE_ADVICE = "set HF_HUB_OFFLINE=1 to use the cache"


class HubUnreachable(ZooError):
    """The Hub could not be reached (no network, a proxy, a firewall), as opposed to an answer from it."""


def unreachable_reason(error: BaseException) -> str | None:
    """Why the Hub was not reached, if ``error`` (or an error it was raised from) is a network error rather than an
    answer of the Hub: ``ConnectError: [Errno -2] Name or service not known``; None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (_TransportBase, OSError)) and not isinstance(current, (HfHubHTTPError, LocalEntryNotFoundError)):
            said = str(current).splitlines()[0][:120] if str(current) else ""
            return f"{type(current).__name__}: {said}" if said else type(current).__name__
        current = current.__cause__ or current.__context__
    return None


def looks_like_path(name: str) -> bool:
    """Whether ``name`` is written as a path (``./x``, ``../x``, ``/x``, ``~/x``, ``x/``, or more than one ``/``), so that
    it is never taken for a Hub repo id."""
    return name.startswith((".", "/", "~")) or name.endswith("/") or name.count("/") > 1 or os.sep != "/" and os.sep in name


@dataclass(frozen=True)
class ZooSource:
    """A zoo resolved to its files: a local folder, or a Hub dataset repo whose files are fetched into the Hub cache."""

    name: str
    """The folder or repo id as given, for messages."""
    folder: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    def file(self, relative: str) -> Path:
        """A file of the zoo on this machine: in the folder (it may not exist), or downloaded from the Hub once."""
        if self.folder is not None:
            return self.folder / relative
        return Path(self._from_hub(lambda: hf_hub_download(self.repo_id, relative, repo_type="dataset", revision=self.revision), relative))

    def snapshot(self) -> Path:
        """A folder on this machine with all files of the zoo: the folder itself, or a download of the whole repo."""
        if self.folder is not None:
            return self.folder
        return Path(self._from_hub(lambda: snapshot_download(self.repo_id, repo_type="dataset", revision=self.revision), "the files"))

    def hub_url(self, relative: str) -> str:
        """The ``hf://`` URL of a file of the repo, for streaming it."""
        at = f"@{quote(self.revision, safe='')}" if self.revision else ""
        return f"hf://datasets/{self.repo_id}{at}/{relative}"

    def info(self) -> ZooInfo:
        """``meta/info.json``, parsed and checked (:meth:`ZooInfo.from_json`)."""
        return ZooInfo.read(self.file(INFO_PATH), f"{self.name}/{INFO_PATH}", known_zoos())

    def _from_hub(self, call: Callable[[], str], relative: str) -> str:
        """Run a Hub download of ``relative``; its errors become a :class:`ZooError` saying what the Hub said."""
        repo = f"the Hub dataset repo {self.repo_id}" + (f" (revision {self.revision})" if self.revision else "")
        try:
            return call()
        except LocalEntryNotFoundError as error:
            if constants.HF_HUB_OFFLINE:
                raise ZooError(f"{repo} is not in the local cache and HF_HUB_OFFLINE is set; load it once while online") from None
            reason = unreachable_reason(error) or "no network"
            raise HubUnreachable(f"the Hub is not reachable ({reason}) and {repo} is not in the local cache") from None
        except GatedRepoError:
            raise ZooError(f"{repo} is gated: request access on its page and log in with `hf auth login`") from None
        except RepositoryNotFoundError:
            raise ZooError(f"{repo} does not exist (check the name, or log in with `hf auth login` for a private repo)") from None
        except RevisionNotFoundError:
            raise ZooError(f"{repo} has no revision {self.revision!r}") from None
        except EntryNotFoundError:
            if relative == INFO_PATH:
                raise ZooError(f"{repo} has no {INFO_PATH}: it is not an rnn-zoos zoo") from None
            raise DamagedZooError(f"{repo} has no file {relative}: the zoo is incomplete") from None
        except (HfHubHTTPError, HFValidationError, _TransportBase, OSError) as error:
            if (reason := unreachable_reason(error)) is not None:
                raise HubUnreachable(f"the Hub is not reachable ({reason}) to read {repo}; check the network, or "
                                     f"{OFFLINE_ADVICE}") from None
            said = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ZooError(f"{repo} could not be read: the Hub said {short(said, 200)}") from None


def is_repo_id(name: str) -> bool:
    """Whether ``name`` is a valid Hub repo id (``NAME`` or ``ORG/NAME``), by ``huggingface_hub``'s rules."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_zoo(source: str | Path, revision: str | None = None, hub: bool = True) -> ZooSource:
    """Resolve a zoo folder or Hub dataset repo id to its files; the one place that decides which it is.

    An existing folder wins. A ``Path``, a name that is not a valid repo id, or any name when ``hub`` is
    False must be a folder. Otherwise the repo's ``meta/info.json`` is fetched (or found in the Hub cache).
    A name that is neither raises :class:`ZooError` saying that no such folder exists and, for a valid
    repo id, what the Hub said. A repo id without ``revision`` is read at the newest tag of a format
    version we read (:func:`newest_format_tag`), if it has one.
    """
    path, shown = Path(source), str(source) if len(str(source)) <= 200 else f"{str(source)[:197]}..."
    try:
        kind = "folder" if path.is_dir() else "file" if path.exists() else None
    except OSError as error:  # a name too long for a path, say
        raise ZooError(f"{shown} cannot be a zoo folder ({error.strerror})") from None
    if kind == "folder":
        return ZooSource(str(source), folder=path)
    if kind == "file":
        raise ZooError(f"{shown} is a file, not a zoo folder")
    absent = f"no folder named {shown}" + ("" if path.is_absolute() else f" in {Path.cwd()}")
    if not hub or isinstance(source, Path) or looks_like_path(str(source)) or not is_repo_id(str(source)):
        raise ZooError(f"{absent}; give the path of a zoo folder" + (" or a Hub dataset repo id (ORG/NAME)" if hub else ""))
    try:
        if revision is None and (revision := newest_format_tag(str(source))) is not None:
            print(f"{shown}: reading revision {revision}, the newest tag of a format version this rnn_zoos reads "
                  "(pass a revision to read another)", file=sys.stderr)
        zoo = ZooSource(str(source), repo_id=str(source), revision=revision)
        zoo.file(INFO_PATH)
    except HubUnreachable as error:
        reason = re.search(r"the Hub is not reachable \((.*?)\)(?: and| to read)", str(error))
        raise HubUnreachable(f"{absent}, and the Hub is not reachable ({reason[1] if reason else 'no network'}); check the name, "
                             f"or {OFFLINE_ADVICE}") from None
    except ZooError as error:
        raise ZooError(f"{absent}, and {error}") from None
    return zoo


def format_tags(tags: list[str], version: str = FORMAT_VERSION) -> list[str]:
    """The tags among ``tags`` of the major format version of ``version``, newest first."""
    major = int(version.split(".")[0])
    found = [(int(match[2]), tag) for tag in tags if (match := VERSION_TAG.fullmatch(tag)) and int(match[1]) == major]
    return [tag for _, tag in sorted(found, reverse=True)]


def newest_format_tag(repo_id: str) -> str | None:
    """The newest tag of a format version we read (:data:`READ_MAJORS`, the newest major first) on the Hub dataset repo
    ``repo_id``; None if it has none or the Hub's list of tags cannot be read (offline, say). :class:`HubUnreachable` if the Hub
    cannot be reached (``HF_HUB_OFFLINE`` unset)."""
    try:
        refs = HfApi().list_repo_refs(repo_id, repo_type="dataset")
    except (HfHubHTTPError, HFValidationError, _TransportBase, OSError, ValueError) as error:
        if not constants.HF_HUB_OFFLINE and (reason := unreachable_reason(error)) is not None:
            raise HubUnreachable(f"the Hub is not reachable ({reason}) to read the tags of {repo_id}") from None
        return None
    names = [ref.name for ref in refs.tags]
    tags = [tag for major in reversed(READ_MAJORS) for tag in format_tags(names, f"{major}.0")]
    return tags[0] if tags else None
