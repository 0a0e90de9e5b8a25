"""A damaged zoo folder gives one clear error or named problem in load_zoo, verify and publish --dry-run, never a traceback.

Also holds the helpers that the other ``test_untrusted_*`` and ``test_fuzz_*`` modules use to damage copies of a zoo.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rnn_zoos
from rnn_zoos import publish, verify
from rnn_zoos import DamagedZooError, ZooError
from rnn_zoos.format import file_sha256
from rnn_zoos.verify import verify_zoo


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
    with pytest.raises(DamagedZooError, match="split validation has 9 rows in its files, meta/info.json says 10"):
        rnn_zoos.load_zoo(zoo)
    assert "split validation has 9 rows in its files, meta/info.json says 10" in verify_zoo(zoo, sample_rows=0)


def test_unknown_format_is_refused(zoo: Path) -> None:
    with pytest.raises(ZooError, match="unknown format 'pandas'; load_zoo gives rows as torch, numpy, python"):
        rnn_zoos.load_zoo(zoo, format="pandas")
