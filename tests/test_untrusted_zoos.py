"""A damaged zoo folder gives one clear error or named problem in load_zoo, verify and publish --dry-run, never a traceback.

Also holds the helpers that the other ``test_untrusted_*`` and ``test_fuzz_*`` modules use to damage copies of a zoo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rnn_zoos
from rnn_zoos.hub import loading, publish, verify
from rnn_zoos import DamagedZooError, ZooError
from rnn_zoos.format.info import SPLITS, SplitInfo, ZooInfo, file_sha256
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.hub.verify import verify_zoo


def copy_zoo(formal_zoo: Path, tmp_path: Path, name: str = "zoo") -> Path:
    """A copy of the session's tiny zoo, to damage."""
    return Path(shutil.copytree(formal_zoo, tmp_path / name))


def shard(folder: Path, split: str = "train") -> Path:
    """The (only) data file of a split."""
    return next((folder / "data").glob(f"{split}-*.parquet"))


def edit_info(folder: Path, edit: Callable[[dict], Any]) -> None:
    """Change ``meta/info.json`` in place with ``edit`` (which mutates the parsed record)."""
    path = folder / "meta" / "info.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def update_checksum(folder: Path, path: Path) -> None:
    """Record a rewritten data file's checksum, so that only the damage inside it remains."""
    edit_info(folder, lambda record: record["checksums"].__setitem__(path.relative_to(folder).as_posix(), file_sha256(path)))


def rewrite_rows(folder: Path, path: Path, edit: Callable[[list[dict]], Any], schema: pa.Schema | None = None) -> None:
    """Rewrite a data file's rows with ``edit`` (which mutates the row dicts), keeping its schema unless one is given."""
    table = pq.read_table(path)
    rows = table.to_pylist()
    edit(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema or table.schema), path)
    update_checksum(folder, path)


def set_cells(folder: Path, path: Path, column: str, cells: dict[int, Any]) -> None:
    """Replace some cells of one column of a data file (faster than :func:`rewrite_rows` for the heavy columns)."""
    table = pq.read_table(path)
    index = table.schema.get_field_index(column)
    kind = table.schema.field(index).type
    values = table.column(index).to_pylist()
    for row, value in cells.items():
        values[row] = value
    storage = pa.array(values, getattr(kind, "storage_type", kind))
    array = pa.ExtensionArray.from_storage(kind, storage) if isinstance(kind, pa.ExtensionType) else storage
    pq.write_table(table.set_column(index, table.schema.field(index), array), path)
    update_checksum(folder, path)


@pytest.fixture
def zoo(formal_zoo: Path, tmp_path: Path) -> Path:
    return copy_zoo(formal_zoo, tmp_path)


def assert_named_everywhere(folder: Path, fragment: str, capsys: pytest.CaptureFixture) -> None:
    """verify names ``fragment`` (exit 1), load_zoo raises a DamagedZooError naming it, publish --dry-run refuses (exit 1)."""
    problems = verify_zoo(folder)
    assert any(fragment in problem for problem in problems), problems
    assert verify.main([str(folder)]) == 1
    with pytest.raises(DamagedZooError, match=re.escape(fragment)):
        rnn_zoos.load_zoo(folder)
    capsys.readouterr()
    assert publish.main([str(folder), "--repo-id", "me/zoo", "--dry-run"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and fragment in error


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda record: record["splits"].pop("ood"), "splits lacks the split 'ood'"),
        (lambda record: record.__setitem__("splits", list(record["splits"].values())), "splits is [{"),
        (lambda record: record["splits"]["train"].__setitem__("num_rows", "36"), "splits.train.num_rows is '36', expected an integer"),
        (lambda record: record["splits"]["train"].__setitem__("files", ["../../etc/passwd"]), "splits.train.files[0] is '../../etc/passwd'"),
        (lambda record: record["splits"]["validation"].pop("runs"), "splits.validation.runs is missing"),
        (lambda record: record["splits"]["ood"]["tasks"].insert(0, "abc"), "splits.ood.tasks[0] is 'abc', expected a formal-lang task"),
    ],
    ids=["lacks-split", "splits-list", "num-rows-string", "file-outside-data", "no-runs", "bad-task"],
)
def test_malformed_info_is_named_by_verify_load_and_publish(zoo: Path, edit, fragment: str, capsys) -> None:
    edit_info(zoo, edit)
    assert_named_everywhere(zoo, fragment, capsys)


def test_info_that_is_not_json_or_not_utf8(zoo: Path, capsys) -> None:
    (zoo / "meta" / "info.json").write_bytes(b'{"format_version": "1.1", "zoo": "\xff\xfe"}')
    assert_named_everywhere(zoo, "meta/info.json is not UTF-8 JSON", capsys)
    (zoo / "meta" / "info.json").write_text("[" * 100_000)
    assert_named_everywhere(zoo, "meta/info.json is not UTF-8 JSON", capsys)


def test_broken_card_yaml_loads_and_verify_names_it(zoo: Path) -> None:
    card = zoo / "README.md"
    card.write_text(card.read_text().replace("configs:", "configs: [\n  {{{", 1))
    assert len(rnn_zoos.load_zoo(zoo, split="train")) == len(rnn_zoos.load_zoo(zoo)["train"]) > 0
    assert "README.md has a YAML header that is not valid YAML (ParserError)" in verify_zoo(zoo, sample_rows=0)
    card.write_bytes(b"---\n\xff\n---\n")
    assert "README.md is not UTF-8 text" in verify_zoo(zoo, sample_rows=0)


def test_an_extra_shard_is_not_loaded_but_named(zoo: Path, formal_zoo: Path) -> None:
    train = shard(zoo)
    extra = zoo / "data" / "train-00001-of-00002.parquet"
    shutil.copy(train, extra)  # the card's pattern data/train-* picks it up
    expected = pq.read_table(train).column("seed").to_pylist()
    with pytest.warns(UserWarning, match="data/train-00001-of-00002.parquet not listed in meta/info.json, so not loaded"):
        assert [int(seed) for seed in rnn_zoos.load_zoo(zoo, split="train")["seed"]] == expected
    with pytest.warns(UserWarning, match="not listed"):
        streamed = [int(row["seed"]) for row in rnn_zoos.load_zoo(zoo, split="train", streaming=True)]
    assert streamed == expected
    assert "data/train-00001-of-00002.parquet is not listed in meta/info.json; delete it or rebuild the zoo" in verify_zoo(zoo, sample_rows=0)


def test_leftover_temporary_files_are_flagged(zoo: Path) -> None:
    (zoo / "data" / ".train-00000-of-00001.parquet.tmp-4242").write_bytes(b"PAR1")
    (zoo / "meta" / ".info.json.tmp-17").write_text("{")
    problems = verify_zoo(zoo, sample_rows=0)
    assert problems == [
        "data/.train-00000-of-00001.parquet.tmp-4242 is a temporary file left by an interrupted write; delete it",
        "meta/.info.json.tmp-17 is a temporary file left by an interrupted write; delete it",
    ]


def test_a_listed_file_replaced_by_a_folder_is_missing(zoo: Path) -> None:
    path = shard(zoo, "ood")
    path.unlink()
    path.mkdir()
    assert f"data/{path.name} is missing" in verify_zoo(zoo, sample_rows=0)
    with pytest.raises(DamagedZooError, match=f"data/{path.name} is missing"):
        rnn_zoos.load_zoo(zoo)


def test_a_shard_with_another_schema_is_named(zoo: Path) -> None:
    path = shard(zoo, "validation")
    schema = pq.read_schema(path)
    schema = schema.set(schema.get_field_index("accuracy"), pa.field("accuracy", pa.float64()))
    rewrite_rows(zoo, path, lambda rows: None, schema=schema.remove(schema.get_field_index("log_probs")))
    message = f"data/{path.name} does not have the formal-lang schema: the columns accuracy, log_probs are missing, extra or of another type"
    assert any(problem.startswith(message) for problem in verify_zoo(zoo, sample_rows=0))
    with pytest.raises(DamagedZooError, match=message):
        rnn_zoos.load_zoo(zoo)


def test_a_row_count_that_disagrees_with_info_is_named(zoo: Path) -> None:
    edit_info(zoo, lambda record: record["splits"]["validation"].__setitem__("num_rows", 10))
    message = f"data/{shard(zoo, 'validation').name} holds 9 rows, meta/info.json says 10; rebuild the zoo or download it again"
    with pytest.raises(DamagedZooError, match=re.escape(message)):
        rnn_zoos.load_zoo(zoo)
    assert message in verify_zoo(zoo, sample_rows=0)


@pytest.mark.parametrize("claimed", [False, True], ids=["more-rows-than-info", "row-group-too-large"])
def test_a_crafted_shard_is_refused_from_its_footer(zoo: Path, claimed: bool, monkeypatch) -> None:
    path = shard(zoo)
    table = pq.read_table(path)
    crafted = pa.concat_tables([table] * 30).slice(0, 1000 if claimed else None)  # 1,000 or 1,080 rows, one row group
    pq.write_table(crafted, path, row_group_size=crafted.num_rows)
    update_checksum(zoo, path)
    if claimed:  # meta/info.json claims the rows too, so only the row group is too large
        edit_info(zoo, lambda record: record["splits"]["train"].update(num_rows=1000))
    problem = "has a row group of 1,000 rows; a zoo's data files hold at most 100 rows" if claimed else "holds 1,080 rows, meta/info.json says 36"

    def no_reading(*args, **kwargs):
        raise AssertionError("load_zoo handed the data files to datasets")

    assert any(entry.startswith(f"data/{path.name} {problem}") for entry in verify_zoo(zoo, sample_rows=8))
    monkeypatch.setattr(datasets, "load_dataset", no_reading)  # load_zoo refuses from the footer, before datasets reads a row
    for streaming in (False, True):
        with pytest.raises(DamagedZooError, match=re.escape(f"zoo/data/{path.name} {problem}")):
            rnn_zoos.load_zoo(zoo, streaming=streaming)


def flip_a_weights_byte_keeping_size_and_mtime(path: Path) -> None:
    """Change one byte inside the first page of the ``weights`` column, then set the modification time back."""
    before = path.stat()
    group = pq.ParquetFile(path).metadata.row_group(0)
    offset = next(group.column(i) for i in range(group.num_columns) if group.column(i).path_in_schema == "weights").data_page_offset + 4000
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_byte_changed_under_the_same_size_and_mtime_is_caught_in_both_modes(zoo: Path, monkeypatch) -> None:
    """The cache of checked files once trusted size and mtime: load_zoo then served the changed weights (streaming) or a
    stale cache (eager) without a word."""
    monkeypatch.setattr(loading, "CHANGE_TIME_SLACK_NS", 0)  # record the files at once, as if they were written long ago
    for streaming in (False, True):
        assert [row["weights"] for row in rnn_zoos.load_zoo(zoo, split="train", streaming=streaming)]
    flip_a_weights_byte_keeping_size_and_mtime(shard(zoo))
    for streaming in (False, True):
        with pytest.raises(DamagedZooError, match=f"zoo/data/{shard(zoo).name} does not match its checksum in meta/info.json"):
            rnn_zoos.load_zoo(zoo, streaming=streaming)


def test_a_file_changed_just_before_its_check_is_hashed_again(zoo: Path, monkeypatch) -> None:
    """Coarse timestamps: a file whose status changed within a tick of its check is not trusted by its status next time."""
    key = str(shard(zoo).resolve())
    rnn_zoos.load_zoo(zoo, split="train")
    assert key not in json.loads(loading._fingerprints_path().read_text())  # copied a moment ago
    monkeypatch.setattr(loading, "CHANGE_TIME_SLACK_NS", 0)
    rnn_zoos.load_zoo(zoo, split="train")
    assert key in json.loads(loading._fingerprints_path().read_text())


def split_check_lines(runs: int) -> int:
    """Python lines that verify's split check executes on a sound train split of ``runs`` runs of nine snapshots."""
    steps = list(range(0, 900, 100))
    light = {"data/train.parquet": pa.table({"run": [run for run in range(runs) for _ in steps], "step": steps * runs,
                                             "task": [[0, 0, 0, 0]] * (9 * runs)})}
    splits = {name: SplitInfo(tasks=[[0, 0, 0, 0]] if name == "train" else [], runs=list(range(runs)) if name == "train" else [],
                              num_rows=9 * runs if name == "train" else 0, num_bytes=0, files=list(light) if name == "train" else [])
              for name in SPLITS}
    info = ZooInfo(zoo="formal-lang", architecture=FORMAL_LANG.architecture, builder={}, snapshot_steps=steps, splits=splits, checksums={})
    lines, problems = 0, []

    def trace(frame, event, arg):
        nonlocal lines
        lines += event == "line"
        return trace

    sys.settrace(lambda frame, event, arg: trace if frame.f_code.co_filename == verify.__file__ else None)
    try:
        verify._check_splits(info, FORMAL_LANG, light, problems)
    finally:
        sys.settrace(None)
    assert problems == []
    return lines


def test_the_split_check_grows_linearly_with_the_rows() -> None:
    """It once compared every row with every run: 20,000 crafted rows took 51 s. Lines run, not seconds, are counted."""
    assert split_check_lines(400) < 6 * split_check_lines(100)  # linear: about 4 times; quadratic: about 16 times


def test_unknown_format_is_refused(zoo: Path) -> None:
    with pytest.raises(ZooError, match="unknown format 'pandas'; load_zoo gives rows as torch, numpy, python"):
        rnn_zoos.load_zoo(zoo, format="pandas")
