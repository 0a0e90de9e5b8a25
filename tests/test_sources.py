"""One resolver for every command: folder or repo id + revision -> files; a repo id alone reads the newest format tag."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import rnn_zoos.hub.sources as sources
from rnn_zoos import ZooError
from rnn_zoos.format.info import FORMAT_VERSION, INFO_PATH
from rnn_zoos.hub.sources import format_tags, resolve_zoo


def test_format_tags_are_those_of_our_major_version_newest_first() -> None:
    tags = ["v1.0", "v2.0", "v1.10", "v1.2", "latest", "v1.x", "1.3", "v0.9"]
    assert format_tags(tags, "1.1") == ["v1.10", "v1.2", "v1.0"]
    assert format_tags(tags, "2.0") == ["v2.0"] and format_tags(["main"], "1.1") == []


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, formal_zoo: Path) -> dict:
    """A Hub whose repo has the given tags and serves the formal zoo's files; records the revision of every download."""
    seen: dict = {"revisions": [], "tags": []}

    def list_repo_refs(self, repo_id: str, repo_type: str) -> SimpleNamespace:
        assert repo_type == "dataset"
        return SimpleNamespace(tags=[SimpleNamespace(name=tag) for tag in seen["tags"]], branches=[])

    def download(repo_id: str, filename: str, repo_type: str, revision: str | None) -> str:
        seen["revisions"].append(revision)
        return str(formal_zoo / filename)

    monkeypatch.setattr(sources.HfApi, "list_repo_refs", list_repo_refs)
    monkeypatch.setattr(sources, "hf_hub_download", download)
    return seen


def test_a_repo_id_without_revision_reads_the_newest_tag_of_our_format_and_says_so(fake_hub: dict, capsys) -> None:
    major = FORMAT_VERSION.split(".")[0]
    fake_hub["tags"] = [f"v{major}.0", f"v{major}.7", f"v{int(major) + 1}.0", f"v{int(major) - 1}.9", "v0.3"]
    zoo = resolve_zoo("someone/zoo")
    assert zoo.revision == f"v{major}.7" and fake_hub["revisions"] == [f"v{major}.7"]
    assert "someone/zoo: reading revision v" + f"{major}.7, the newest tag of a format version this rnn_zoos reads" in capsys.readouterr().err
    assert zoo.info().zoo == "formal-lang" and fake_hub["revisions"][-1] == f"v{major}.7"


def test_a_repo_with_tags_of_the_earlier_format_only_reads_its_newest(fake_hub: dict) -> None:
    fake_hub["tags"] = ["v1.0", "v1.1", "v0.3"]  # a zoo published under format 1, which this library still reads
    assert resolve_zoo("someone/zoo").revision == "v1.1"


def test_a_given_revision_or_a_repo_without_tags_is_read_as_asked(fake_hub: dict, capsys) -> None:
    fake_hub["tags"] = ["v1.0"]
    assert resolve_zoo("someone/zoo", revision="main").revision == "main"
    fake_hub["tags"] = ["release"]
    assert resolve_zoo("someone/zoo").revision is None
    assert fake_hub["revisions"] == ["main", None] and capsys.readouterr().err == ""


def test_a_folder_is_read_as_it_is(formal_zoo: Path, fake_hub: dict) -> None:
    zoo = resolve_zoo(str(formal_zoo))
    assert zoo.folder == formal_zoo and zoo.file(INFO_PATH).is_file() and fake_hub["revisions"] == []


UNREACHABLE = "http://127.0.0.1:9"
"""A Hub endpoint nothing answers at: the network as a compute node without internet sees it."""


def offline_run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run a command with the Hub unreachable and HF_HUB_OFFLINE unset (as on a cluster node), with an empty cache."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))}
    env.update(HF_ENDPOINT=UNREACHABLE, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_unreachable_hub_a_mistyped_folder_or_a_repo_id_ends_in_one_line(tmp_path: Path) -> None:
    script = str(Path(sys.executable).with_name("rnn-zoos"))
    done = offline_run(tmp_path, script, "verify", "zoo-dmeo")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert re.fullmatch(rf"error: no folder named zoo-dmeo in {re.escape(str(tmp_path))}, and the Hub is not reachable \(\w+: .+\); "
                        r"check the name, or set HF_HUB_OFFLINE=1 to use the cache\n", done.stderr), done.stderr
    code = "import rnn_zoos\ntry:\n    rnn_zoos.load_zoo('rnn-zoos/formal-lang')\nexcept rnn_zoos.ZooError as error:\n    print(error)"
    done = offline_run(tmp_path, "-c", code)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("no folder named rnn-zoos/formal-lang in ") and "and the Hub is not reachable (" in done.stdout


@pytest.mark.parametrize("name", ["./zoo-dmeo", "/nonexistent/zoo", "../zoo", "zoos/"])
def test_a_name_written_as_a_path_never_goes_to_the_hub(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(sources.HfApi, "list_repo_refs", no_hub)
    monkeypatch.setattr(sources, "hf_hub_download", no_hub)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ZooError, match=rf"^no folder named {re.escape(name)}(?: in .*)?; give the path of a zoo folder"):
        resolve_zoo(name)
