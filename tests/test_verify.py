"""builders.verify passes sound zoos and names each problem of a damaged one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rnn_zoos.hub import verify
from rnn_zoos.format.info import ZooInfo, file_sha256
from rnn_zoos.hub.verify import verify_zoo


@pytest.fixture
def damaged(formal_zoo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(formal_zoo, tmp_path / "zoo"))


def shard(folder: Path, split: str = "train") -> Path:
    return next((folder / "data").glob(f"{split}-*.parquet"))


def update_checksum(folder: Path, path: Path) -> None:
    info_path = folder / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["checksums"][path.relative_to(folder).as_posix()] = file_sha256(path)
    info_path.write_text(json.dumps(info))


def test_built_zoos_pass(formal_zoo: Path, mnist_zoo: Path, capsys) -> None:
    assert verify_zoo(formal_zoo, sample_rows=1000) == []
    assert verify_zoo(mnist_zoo, sample_rows=1000) == []
    assert verify.main([str(formal_zoo)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")


def test_corrupted_shard(damaged: Path, capsys) -> None:
    path = shard(damaged)
    data = bytearray(path.read_bytes())
    data[100:4000] = bytes(3900)
    path.write_bytes(bytes(data))
    problems = verify_zoo(damaged)
    assert f"data/{path.name} does not match its checksum in meta/info.json (corrupt, truncated or modified)" in problems
    assert verify.main([str(damaged)]) == 1
    assert f"problem: data/{path.name} does not match its checksum" in capsys.readouterr().out


def test_truncated_shard_is_unreadable(damaged: Path) -> None:
    path = shard(damaged, "ood")
    path.write_bytes(path.read_bytes()[:1000])
    problems = verify_zoo(damaged)
    assert any(p.startswith(f"data/{path.name} is not a readable Parquet file") for p in problems)


def test_missing_shard(damaged: Path) -> None:
    path = shard(damaged, "validation")
    path.unlink()
    assert f"data/{path.name} is missing" in verify_zoo(damaged)


def test_wrong_checksum(damaged: Path) -> None:
    info_path = damaged / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    name = f"data/{shard(damaged).name}"
    info["checksums"][name] = "0" * 64
    info_path.write_text(json.dumps(info))
    assert verify_zoo(damaged) == [f"{name} does not match its checksum in meta/info.json (corrupt, truncated or modified)"]


def test_row_whose_weights_do_not_match_its_log_probs(damaged: Path) -> None:
    path = shard(damaged)
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[5]["log_probs"] = rows[30]["log_probs"]  # another RNN's outputs
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    update_checksum(damaged, path)
    problems = verify_zoo(damaged, sample_rows=10_000)
    assert len(problems) == 1
    assert problems[0].startswith(f"data/{path.name} row 5 (run {rows[5]['run']}, step {rows[5]['step']}): the weights do not reproduce log_probs")


def test_other_minor_versions_are_read(damaged: Path) -> None:
    info_path = damaged / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    older = {key: value for key, value in info.items() if key != "log_probs_reproduction"}
    info_path.write_text(json.dumps({**older, "format_version": "2.0"}))
    assert ZooInfo.load(damaged).log_probs_reproduction is None
    assert verify_zoo(damaged) == []
    later = {**info, "format_version": "2.9", "added_in_2_9": {"x": 1}}
    later["splits"]["train"]["added_in_2_9"] = 2
    info_path.write_text(json.dumps(later))
    assert ZooInfo.load(damaged).format_version == "2.9"
    assert verify_zoo(damaged) == []


def test_split_sharing_a_task(damaged: Path) -> None:
    path = shard(damaged, "validation")
    table = pq.read_table(path)
    train_task = pq.read_table(shard(damaged), columns=["task"]).column("task")[0].as_py()
    rows = table.to_pylist()
    for row in rows:
        row["task"] = train_task
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    update_checksum(damaged, path)
    problems = verify_zoo(damaged, sample_rows=0)
    assert any(p.startswith("splits train and validation share the tasks") for p in problems)


def test_missing_info_and_card(damaged: Path, tmp_path: Path, capsys) -> None:
    (damaged / "README.md").unlink()
    assert "README.md (the dataset card) is missing" in verify_zoo(damaged)
    (damaged / "meta" / "info.json").unlink()
    assert any("meta/info.json not found" in p for p in verify_zoo(damaged))
    assert verify.main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_negative_sample_rows_is_a_bad_option(formal_zoo: Path, capsys) -> None:
    assert verify.main([str(formal_zoo), "--sample-rows", "-3"]) == 2
    assert capsys.readouterr().err == "error: sample_rows must be 0 or more, not -3\n"
