"""One resolver decides "folder or Hub repo id" for load_zoo, read_info, verify and publish, and says which it was not."""

from __future__ import annotations

from pathlib import Path

import pytest

import rnn_zoos
from rnn_zoos.hub import publish, verify
from rnn_zoos import ZooError
from rnn_zoos.hub.verify import verify_zoo

OFFLINE = "is not in the local cache and HF_HUB_OFFLINE is set; load it once while online"


@pytest.mark.parametrize("name", ["/nonexistent", "./zoo-demo", "../zoos/demo", "a/b/c"])
def test_a_missing_path_that_is_no_repo_id_is_a_missing_folder(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for call in (rnn_zoos.load_zoo, rnn_zoos.read_info, verify_zoo):
        with pytest.raises(ZooError) as caught:
            call(name)
        assert str(caught.value).startswith(f"no folder named {name}") and "repo" in str(caught.value) and "Hub" not in str(caught.value).split(";")[0]


def test_a_misspelt_folder_says_so_and_what_the_hub_said(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ZooError) as caught:
        rnn_zoos.load_zoo("zoo-dmo")
    assert str(caught.value) == f"no folder named zoo-dmo in {tmp_path}, and the Hub dataset repo zoo-dmo {OFFLINE}"
    with pytest.raises(ZooError, match="^no folder named zoo-dmo in .*; give the path of a zoo folder or a Hub dataset repo id"):
        rnn_zoos.load_zoo(Path("zoo-dmo"))  # a Path is always a folder


def test_a_file_or_an_impossible_name_is_not_a_zoo_folder(tmp_path: Path) -> None:
    (tmp_path / "zoo").write_text("")
    with pytest.raises(ZooError, match=f"^{tmp_path / 'zoo'} is a file, not a zoo folder$"):
        rnn_zoos.load_zoo(tmp_path / "zoo")
    with pytest.raises(ZooError, match=r"^x{197}\.\.\. cannot be a zoo folder \(File name too long\)$"):
        rnn_zoos.load_zoo("x" * 5000)


def test_command_lines_give_one_line_and_status_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert verify.main(["zoo-dmo"]) == 2
    assert capsys.readouterr().err == f"error: no folder named zoo-dmo in {tmp_path}, and the Hub dataset repo zoo-dmo {OFFLINE}\n"
    assert publish.main(["zoo-dmo", "--repo-id", "me/zoo", "--dry-run"]) == 2
    assert capsys.readouterr().err == f"error: no folder named zoo-dmo in {tmp_path}; give the path of a zoo folder\n"
