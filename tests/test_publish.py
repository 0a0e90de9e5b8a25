"""builders.publish: refuses early without a token or a reachable Hub, lists exactly what it uploads, merges the card, tags.

The Hub itself cannot be reached from the tests, so pushes go to a recording ``HfApi`` whose
``upload_folder`` selects files with huggingface_hub's own code (``_prepare_upload_folder_additions``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import DatasetCard, HfApi
from huggingface_hub.errors import EntryNotFoundError

from rnn_zoos.hub import publish
from rnn_zoos import ZooError
from rnn_zoos.hub.publish import publish_zoo, version_tag


class RecordingHub(HfApi):
    """An HfApi that records what would be sent and keeps a remote card and tags in memory."""

    def __init__(self, scratch: Path, remote_card: str | None = None, tags: tuple[str, ...] = ()) -> None:
        super().__init__(token="hf_test_token")
        self.scratch = scratch
        self.calls: list[tuple] = []
        self.uploaded: list[str] = []
        self.remote_card = remote_card
        self.tags = set(tags)

    def whoami(self, *args, **kwargs):
        return {"name": "tester"}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs.get("private")))

    def create_branch(self, repo_id, *, branch, **kwargs):
        self.calls.append(("create_branch", branch))

    def upload_folder(self, *, repo_id, folder_path, allow_patterns=None, delete_patterns=None, revision=None, **kwargs):
        operations = self._prepare_upload_folder_additions(folder_path, "", allow_patterns=allow_patterns, repo_type="dataset")
        self.uploaded += [operation.path_in_repo for operation in operations]
        self.calls.append(("upload_folder", revision, tuple(delete_patterns or ())))

    def hf_hub_download(self, repo_id, filename, **kwargs):
        if self.remote_card is None:
            raise EntryNotFoundError("no card yet")
        path = self.scratch / "remote_README.md"
        path.write_text(self.remote_card)
        return str(path)

    def upload_file(self, *, path_or_fileobj, path_in_repo, revision=None, **kwargs):
        self.uploaded.append(path_in_repo)
        self.card = path_or_fileobj.decode()
        self.calls.append(("upload_file", path_in_repo, revision))
        return SimpleNamespace(oid="c0ffee")

    def list_repo_refs(self, repo_id, **kwargs):
        return SimpleNamespace(tags=[SimpleNamespace(name=tag) for tag in self.tags])

    def delete_tag(self, repo_id, *, tag, **kwargs):
        self.tags.discard(tag)
        self.calls.append(("delete_tag", tag))

    def create_tag(self, repo_id, *, tag, revision, **kwargs):
        self.tags.add(tag)
        self.calls.append(("create_tag", tag, revision))


@pytest.fixture
def zoo(formal_zoo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(formal_zoo, tmp_path / "zoo"))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_dry_run_lists_exactly_what_a_push_uploads(zoo: Path, tmp_path: Path, capsys) -> None:
    (zoo / "notes.txt").write_text("not part of the zoo")
    assert publish.main([str(zoo), "--repo-id", "me/zoo", "--dry-run"]) == 0
    listed = [line.split()[-1] for line in capsys.readouterr().out.splitlines()[:-1]]
    hub = RecordingHub(tmp_path)
    pushed = publish_zoo(zoo, "me/zoo", api=hub)
    assert sorted(hub.uploaded) == sorted(listed) == sorted(pushed)
    assert "notes.txt" not in listed and "README.md" in listed and "meta/info.json" in listed
    assert any(path.startswith("assets/") for path in listed) and any(path.startswith("data/") for path in listed)


def test_push_creates_uploads_card_last_and_tags(zoo: Path, tmp_path: Path) -> None:
    hub = RecordingHub(tmp_path, tags=(version_tag(),))
    publish_zoo(zoo, "me/zoo", revision="dev", private=True, api=hub)
    names = [call[0] for call in hub.calls]
    assert names == ["create_repo", "create_branch", "upload_folder", "upload_file", "delete_tag", "create_tag"]
    assert hub.calls[0] == ("create_repo", "me/zoo", True)
    assert hub.calls[2] == ("upload_folder", "dev", ("data/*.parquet", "assets/*.png"))
    assert hub.calls[-1] == ("create_tag", "v2.0", "c0ffee")
    assert 'load_dataset("me/zoo")' in hub.card and "rnn-zoos/formal-lang" not in hub.card


def test_card_update_keeps_hub_metadata(zoo: Path, tmp_path: Path) -> None:
    remote = "---\nlanguage:\n- en\nlicense: mit\nconfigs:\n- config_name: old\n---\nold text\n"
    hub = RecordingHub(tmp_path, remote_card=remote)
    publish_zoo(zoo, "me/zoo", api=hub)
    card = DatasetCard(hub.card)
    assert card.data.language == ["en"]  # only on the Hub: kept
    assert card.data.license == "cc-by-4.0"  # ours wins
    assert card.data.configs[0]["config_name"] == "default"
    assert "old text" not in card.text and "# rnn-zoos: formal-language LSTM zoo" in card.text


def test_without_a_token_it_fails_at_once_and_changes_nothing(zoo: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("rnn_zoos.hub.publish.get_token", lambda: None)
    before = snapshot(zoo)
    assert publish.main([str(zoo), "--repo-id", "me/zoo"]) == 2
    assert capsys.readouterr().err.strip() == "error: no Hugging Face token found: log in with `hf auth login` (or set HF_TOKEN) and check that the Hub is reachable"
    assert snapshot(zoo) == before


def test_without_the_hub_it_fails_at_once_and_changes_nothing(zoo: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")  # the tests run with HF_HUB_OFFLINE=1: no Hub
    before = snapshot(zoo)
    assert publish.main([str(zoo), "--repo-id", "me/zoo"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: cannot reach the Hub as a logged-in user") and "hf auth login" in error
    assert snapshot(zoo) == before


def test_an_unsound_zoo_is_not_published(zoo: Path, tmp_path: Path) -> None:
    next((zoo / "data").glob("train-*.parquet")).unlink()
    hub = RecordingHub(tmp_path)
    with pytest.raises(ZooError, match="is not a sound zoo, so it is not published: data/train-00000-of-00001.parquet is missing"):
        publish_zoo(zoo, "me/zoo", api=hub)
    assert hub.calls == []


@pytest.mark.parametrize("repo_id", ["me/zoo/extra", "me//zoo", "-me/zoo", "me zoo", "me/" + "z" * 97])
def test_an_invalid_repo_id_is_one_line_and_status_2(zoo: Path, repo_id: str, capsys) -> None:
    assert publish.main([str(zoo), f"--repo-id={repo_id}", "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: repo id '{repo_id[:40]}") and "is not valid on the Hub: use ORG/NAME" in error and error.count("\n") == 1
