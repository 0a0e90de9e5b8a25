"""Builder guarantees: resumable, independent of batching, safe on bad input, and reloadable after a rebuild."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from rnn_zoos.builder.command import main as build_main
import torch

import rnn_zoos
import rnn_zoos.builder.build
import rnn_zoos.hub.layout
from rnn_zoos import ZooError
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.format.blob import encode_weights, weights_header
from rnn_zoos.lstm.functional import LSTMArchitecture, LSTMWithHead

from conftest import assert_same_zoo, build_formal, build_with_kills, cli_options, zoo_content

ROOT = Path(__file__).resolve().parent.parent


def test_batching_does_not_change_any_run(tmp_path: Path) -> None:
    options = {"runs": 4, "steps": 20, "seed": 11}
    alone = build_formal(tmp_path / "alone", runs_per_batch=1, **options)
    together = build_formal(tmp_path / "together", runs_per_batch=4, **options)
    info, tables_alone = zoo_content(alone)
    _, tables_together = zoo_content(together)
    for split in info["splits"]:
        if tables_alone[split] is None:
            continue
        a, b = tables_alone[split].to_pydict(), tables_together[split].to_pydict()
        for column in ("run", "step", "seed", "task", "weight_decay"):
            assert a[column] == b[column]
        for blob_a, blob_b in zip(a["weights"], b["weights"]):
            for name, tensor in rnn_zoos.decode_weights(blob_a).items():
                torch.testing.assert_close(tensor, rnn_zoos.decode_weights(blob_b)[name], rtol=1e-4, atol=1e-5)


def test_resume_after_a_crash_in_finalisation_gives_the_same_zoo(tmp_path: Path, monkeypatch) -> None:
    options = {"runs": 5, "steps": 10, "seed": 2, "runs_per_batch": 2}
    reference = build_formal(tmp_path / "reference", **options)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(rnn_zoos.hub.layout, "write_info", crash)
    with pytest.raises(KeyboardInterrupt):
        build_formal(tmp_path / "resumed", **options)
    assert (tmp_path / "resumed" / ".build").is_dir()
    monkeypatch.undo()
    assert_same_zoo(reference, build_formal(tmp_path / "resumed", **options))


def test_killed_and_resumed_build_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    options = {"runs": 6, "steps": 120, "seed": 5, "runs_per_batch": 2}
    reference = build_formal(tmp_path / "reference", **options)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "builders.formal_lang", "--out", str(out), *cli_options(options)]
    kills = build_with_kills(command, out, kill_after=(1, 2, 6))
    assert kills == 3, "the build finished before it could be interrupted three times"
    assert_same_zoo(reference, out)
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "assets", "data", "meta"]


def test_rebuilt_folder_loads_the_new_rows(tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    build_formal(out, runs=3, steps=4, seed=0)
    first = rnn_zoos.load_zoo(out, split="train")[:]["seed"].tolist()
    shutil.rmtree(out)
    build_formal(out, runs=3, steps=4, seed=1)
    second = rnn_zoos.load_zoo(out, split="train")[:]["seed"].tolist()
    expected = pq.read_table(out / json.loads((out / "meta/info.json").read_text())["splits"]["train"]["files"][0]).column("seed").to_pylist()
    assert second == expected and second != first


def test_a_split_without_tasks_still_loads(tmp_path: Path) -> None:
    out = build_formal(tmp_path / "zoo", runs=3, steps=4, seed=0)
    info = rnn_zoos.read_info(out)
    assert info.splits["validation"].num_rows == 0 and info.splits["validation"].tasks == []
    plain = datasets.load_dataset(str(out))
    assert "validation" not in plain and len(plain["train"]) > 0
    zoo = rnn_zoos.load_zoo(out)
    assert len(zoo["validation"]) == 0 and zoo["validation"].features == FORMAL_LANG.features
    assert list(rnn_zoos.load_zoo(out, split="validation", streaming=True)) == []
    assert len(list(rnn_zoos.load_zoo(out, streaming=True)["train"])) == len(zoo["train"])


def test_rerun_on_a_complete_zoo_changes_nothing(tmp_path: Path, capsys) -> None:
    out = build_formal(tmp_path / "zoo", runs=2, steps=3, seed=0)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    build_formal(out, runs=2, steps=3, seed=0)
    assert "already complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    with pytest.raises(ZooError, match=r"holds a different zoo \(runs=2 there vs 3 now\)"):
        build_formal(out, runs=3, steps=3, seed=0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_unfinished_build_of_another_configuration_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(rnn_zoos.hub.layout, "write_info", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build_formal(tmp_path / "zoo", runs=2, steps=3, seed=0)
    monkeypatch.undo()
    with pytest.raises(ZooError, match=r"unfinished build of a different zoo \(seed=0 there vs 1 now\)"):
        build_formal(tmp_path / "zoo", runs=2, steps=3, seed=1)


def test_non_empty_foreign_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ZooError, match="holds files that no rnn-zoos command wrote; choose a new or empty folder for rnn-zoos build"):
        build_formal(tmp_path, runs=2, steps=3)
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(tmp_path.iterdir()) == [tmp_path / "notes.txt"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--runs", "0"], "error: --runs must be at least 1, got 0"),
        (["--steps", "-3"], "error: --steps must be at least 1, got -3"),
        (["--rnns-per-batch", "0"], "error: --rnns-per-batch must be at least 1, got 0"),
        (["--seed", "-1"], "error: --seed must be a non-negative 64-bit integer, got -1"),
    ],
)
def test_cli_reports_bad_options_in_one_line(tmp_path: Path, capsys, argv, message) -> None:
    assert build_main("formal-lang", ["--out", str(tmp_path / "zoo"), *argv]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "zoo").exists()


def test_cli_cuda_without_a_gpu(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert build_main("formal-lang", ["--out", str(tmp_path / "zoo"), "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip() == "error: --device cuda: no CUDA device is available here; use --device cpu (or auto)"


def test_cli_unknown_option_and_bad_choice() -> None:
    result = subprocess.run([sys.executable, "-m", "builders.formal_lang", "--out", "/tmp/x", "--bogus", "1"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: unrecognized arguments: --bogus 1 (python -m builders.formal_lang --help lists the options)"]
    result = subprocess.run([sys.executable, "-m", "builders.formal_lang", "--out", "/tmp/x", "--device", "tpu"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "argument --device: invalid choice: 'tpu'" in result.stderr


@pytest.fixture
def zoo_copy(formal_zoo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(formal_zoo, tmp_path / "copy"))


def test_truncated_parquet_is_named(zoo_copy: Path) -> None:
    shard = next((zoo_copy / "data").glob("train-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-5000])
    with pytest.raises(ZooError, match=f"{shard.name} does not match its checksum.*rebuild the zoo or download it again"):
        rnn_zoos.load_zoo(zoo_copy)
    with pytest.raises(ZooError, match=shard.name):
        rnn_zoos.load_zoo(zoo_copy, streaming=True)


def test_corrupt_byte_in_parquet_is_named(zoo_copy: Path) -> None:
    shard = next((zoo_copy / "data").glob("ood-*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ZooError, match=f"{shard.name} does not match its checksum"):
        rnn_zoos.load_zoo(zoo_copy, split="ood")


def test_missing_shard_is_named(zoo_copy: Path) -> None:
    shard = next((zoo_copy / "data").glob("validation-*.parquet"))
    shard.unlink()
    with pytest.raises(ZooError, match=f"{shard.name} is missing"):
        rnn_zoos.load_zoo(zoo_copy)


def test_unknown_format_version_is_refused(zoo_copy: Path) -> None:
    path = zoo_copy / "meta" / "info.json"
    info = json.loads(path.read_text())
    assert info["format_version"] == rnn_zoos.FORMAT_VERSION
    path.write_text(json.dumps({**info, "format_version": "3.0"}, indent=2))
    with pytest.raises(ZooError, match=r"format version 3\.0; this rnn_zoos reads format versions 1\.x and 2\.x"):
        rnn_zoos.load_zoo(zoo_copy)
    path.write_text(json.dumps({**info, "format_version": "two"}, indent=2))
    with pytest.raises(ZooError, match="has the format version 'two', which is not MAJOR.MINOR"):
        rnn_zoos.load_zoo(zoo_copy)


def test_unknown_split_and_unknown_repo(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="unknown split 'test'"):
        rnn_zoos.load_zoo(tmp_path, split="test")
    with pytest.raises(ZooError, match="no folder named rnn-zoos/never-downloaded.*is not in the local cache and HF_HUB_OFFLINE is set"):
        rnn_zoos.load_zoo("rnn-zoos/never-downloaded")


def test_foreign_weights_blobs_are_refused() -> None:
    mnist_like = LSTMArchitecture(16, 32, 2, 10)
    blob = encode_weights(dict(LSTMWithHead(mnist_like).state_dict()), mnist_like)
    assert rnn_zoos.to_module(blob).head.out_features == 10  # a complete model file on its own
    with pytest.raises(ZooError, match="belongs to another zoo"):
        rnn_zoos.decode_weights(blob, FORMAL_LANG.architecture)
    header = weights_header(blob)
    gru = blob.replace(b'"cell":"lstm"', b'"cell":"gru "')
    assert weights_header(gru)["__metadata__"]["cell"] == "gru " and header["__metadata__"]["cell"] == "lstm"
    with pytest.raises(ZooError, match="holds a 'gru ' cell"):
        rnn_zoos.decode_weights(gru)
    lying = blob.replace(b'"output_size":"10"', b'"output_size":"11"')
    with pytest.raises(ZooError, match="do not match its metadata"):
        rnn_zoos.decode_weights(lying)
    with pytest.raises(ZooError, match="not a safetensors file"):
        rnn_zoos.decode_weights(b"\x00garbage")


def test_plain_load_dataset_keeps_same_named_zoo_folders_apart(tmp_path: Path) -> None:
    first = build_formal(tmp_path / "a" / "zoo", runs=3, steps=4, seed=0)
    second = build_formal(tmp_path / "b" / "zoo", runs=3, steps=4, seed=1)
    for folder in (first, second, first):
        expected = pq.read_table(next((folder / "data").glob("train-*.parquet"))).column("seed").to_pylist()
        assert datasets.load_dataset(str(folder), split="train")["seed"] == expected


def test_info_does_not_depend_on_the_batching(tmp_path: Path) -> None:
    """Issue 23 item 12: num_bytes was the size of the Arrow chunks the rows arrived in, so it changed with K."""
    infos = [json.loads((build_formal(tmp_path / f"k{k}", runs=8, steps=20, seed=0, runs_per_batch=k) / "meta/info.json").read_text())
             for k in (2, 3, 8)]
    sizes = [{split: entry["num_bytes"] for split, entry in info["splits"].items()} for info in infos]
    assert sizes[0] == sizes[1] == sizes[2]
    for info in infos[1:]:
        if info["checksums"] == infos[0]["checksums"]:  # identical data files: an identical record
            assert info == infos[0]
