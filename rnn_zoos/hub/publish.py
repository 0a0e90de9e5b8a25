"""Pushing a zoo folder to the Hub: verify, create the repo, upload, update the card, tag the version.

The upload goes through ``HfApi.upload_folder``, which (with ``hf_xet``, a dependency of
``huggingface_hub``) splits large folders into several commits and resumes an interrupted upload
when run again. The card is uploaded last, merged into the card already on the Hub, so that
metadata the Hub or the repo's owners added there is kept. The pushed commit is tagged
``v{FORMAT_VERSION}``.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import DatasetCard, HfApi
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.utils import get_token

from ..common.arguments import REVISION, ZOO, CommandParser
from .cards import with_repo_id
from ..common.errors import DamagedZooError, ZooError, report
from ..format.info import CARD_PATH, FORMAT_VERSION, INFO_PATH, ZooInfo, short
from .sources import is_repo_id, resolve_zoo
from .plots import ASSETS_DIR
from .verify import verify_zoo
from ..zoos import known_zoos

LOGIN_HELP = "log in with `hf auth login` (or set HF_TOKEN) and check that the Hub is reachable"


def upload_plan(folder: Path) -> list[str]:
    """The files a push uploads, relative to ``folder``: the card, ``meta/info.json``, the data files and the plots."""
    info = ZooInfo.load(folder, known_zoos())
    data = [path for split in info.splits.values() for path in split.files]
    assets = sorted(path.relative_to(folder).as_posix() for path in (folder / ASSETS_DIR).glob("*.png"))
    return [CARD_PATH, INFO_PATH, *data, *assets]


def version_tag() -> str:
    """The tag a push puts on its commit: ``v`` and the format version."""
    return f"v{FORMAT_VERSION}"


def merge_card(local: str, remote: str | None, repo_id: str) -> str:
    """Our card, with the YAML keys only the remote card has kept, and the loading example pointing at ``repo_id``."""
    card = DatasetCard(with_repo_id(local, repo_id))
    if remote:
        ours = card.data.to_dict()
        merged = {**DatasetCard(remote).data.to_dict(), **ours}
        card = DatasetCard(f"---\n{type(card.data)(**merged).to_yaml()}\n---\n{card.text}")
    return str(card)


def publish_zoo(
    folder: str | Path,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    api: HfApi | None = None,
) -> list[str]:
    """Verify ``folder`` and push it to the dataset repo ``repo_id``; returns the uploaded paths.

    With ``dry_run`` nothing is sent: the files that a push would upload are returned. An invalid
    ``repo_id``, a missing folder, no token or no reachable Hub raise :class:`ZooError`, and a zoo
    with problems :class:`DamagedZooError`, before anything is uploaded; nothing local changes.
    """
    if not is_repo_id(repo_id):
        raise ZooError(f"repo id {short(repo_id)} is not valid on the Hub: use ORG/NAME (or NAME) of letters, digits, '-', '_' "
                       "and '.', not starting or ending with '-' or '.', '--' or '..' nowhere, at most 96 characters")
    folder = resolve_zoo(folder, hub=False).snapshot()
    api = api or HfApi()
    if not dry_run:
        if not (api.token or get_token()):
            raise ZooError(f"no Hugging Face token found: {LOGIN_HELP}")
        try:
            api.whoami()
        except Exception as error:  # offline mode, no network, a refused token: all mean "cannot push now"
            raise ZooError(f"cannot reach the Hub as a logged-in user ({type(error).__name__}): {LOGIN_HELP}") from None
    problems = verify_zoo(folder)
    if problems:
        raise DamagedZooError(f"{folder} is not a sound zoo, so it is not published: " + "; ".join(problems))
    files = upload_plan(folder)
    if dry_run:
        return files
    info = ZooInfo.load(folder, known_zoos())
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="dataset",
        revision=revision,
        allow_patterns=[path for path in files if path != CARD_PATH],
        delete_patterns=["data/*.parquet", f"{ASSETS_DIR}/*.png"],
        commit_message=f"Upload {info.zoo} zoo ({info.num_rows} rows, format {FORMAT_VERSION})",
    )
    commit = api.upload_file(
        path_or_fileobj=merge_card((folder / CARD_PATH).read_text(), _remote_card(api, repo_id, revision), repo_id).encode(),
        path_in_repo=CARD_PATH,
        repo_id=repo_id,
        repo_type="dataset",
        revision=revision,
        commit_message="Update dataset card",
    )
    tag = version_tag()
    if tag in {ref.name for ref in api.list_repo_refs(repo_id, repo_type="dataset").tags}:
        api.delete_tag(repo_id, tag=tag, repo_type="dataset")
    api.create_tag(repo_id, tag=tag, revision=commit.oid, repo_type="dataset", tag_message=f"rnn-zoos format {FORMAT_VERSION}")
    return files


def _remote_card(api: HfApi, repo_id: str, revision: str | None) -> str | None:
    """The card on the Hub, or None if the repo has none yet."""
    try:
        return Path(api.hf_hub_download(repo_id, CARD_PATH, repo_type="dataset", revision=revision)).read_text()
    except (EntryNotFoundError, RepositoryNotFoundError):
        return None


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns 0 when pushed (or listed), 1 for a zoo with problems, 2 for bad options."""
    parser = CommandParser(prog or "rnn-zoos publish", "Push a zoo folder to a Hugging Face dataset repo, after verifying it, and tag it with the format version.")
    parser.add(ZOO, type=Path, help="the zoo folder to push")
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="the dataset repo (created if needed)")
    parser.add(REVISION, help="branch to push to (created if needed; default main)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--dry-run", action="store_true", help="verify and list the files a push would upload; send nothing")
    args = parser.parse_args(argv)
    try:
        files = publish_zoo(args.zoo, args.repo_id, revision=args.revision, private=args.private, dry_run=args.dry_run)
    except ZooError as error:
        return report(error)
    if args.dry_run:
        sizes = {path: (args.zoo / path).stat().st_size for path in files}
        for path, size in sizes.items():
            print(f"{size:>14,d}  {path}")
        print(f"would upload {len(files)} files ({sum(sizes.values()):,d} bytes) to datasets/{args.repo_id} and tag {version_tag()}")
    else:
        print(f"pushed {len(files)} files to datasets/{args.repo_id} and tagged {version_tag()}")
    return 0
