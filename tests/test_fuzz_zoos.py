"""Many kinds of damaged zoos and crafted weights blobs: verify names every one, load_zoo works or raises ZooError, within bounds.

Each case damages a copy of the session's tiny zoo. ``verify_zoo`` must return a non-empty list of problems, one of which
names the damaged file (or row); ``load_zoo`` (eager and streaming, every row read, every weights blob decoded) must either
work or raise :class:`ZooError`, never another exception, growing peak memory by at most a few hundred MB and within seconds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rnn_zoos
from rnn_zoos import ZooError
from rnn_zoos.zoos.seq_mnist import SEQ_MNIST
from rnn_zoos.format.blob import encode_weights, weights_architecture, weights_header
from rnn_zoos.format.info import file_sha256
from rnn_zoos.lstm.functional import LSTMWithHead
from rnn_zoos.hub.verify import verify_zoo

from test_untrusted_blobs import bounded, craft_blob, lstm_metadata
from test_untrusted_zoos import copy_zoo, edit_info, rewrite_rows, set_cells, shard, update_checksum

TRAIN = "data/train-00000-of-00001.parquet"
INFO = "meta/info.json"
CARD = "README.md"

Damage = Callable[[Path], Any]


@dataclass(frozen=True)
class Case:
    """A way to damage a zoo, and what verify must name (a file, or a row of a file)."""

    name: str
    damage: Damage
    names: str
    sample_rows: int = 0
    stream_rows: bool = True
    """Whether streamed rows are read too: a streaming reader meets a damaged page only when it reads it, and raises its own error."""


# --- data files -------------------------------------------------------------------------------

def keep_bytes(split: str, edit: Callable[[bytes], bytes], lie: bool = False) -> Damage:
    """Rewrite a data file's bytes with ``edit``; with ``lie``, ``meta/info.json`` records the new checksum."""
    def damage(folder: Path) -> None:
        path = shard(folder, split)
        path.write_bytes(edit(path.read_bytes()))
        if lie:
            update_checksum(folder, path)
    return damage


def flip_bits(data: bytes, count: int = 64, seed: int = 0, start: int = 0, end: int | None = None) -> bytes:
    generator, flipped = random.Random(seed), bytearray(data)
    for _ in range(count):
        flipped[generator.randrange(start, end or len(data))] ^= 1 << generator.randrange(8)
    return bytes(flipped)


def corrupt_page(column: str, split: str = "validation") -> Damage:
    """Scramble the header of a column's first data page and record the file's new checksum: only reading the page shows it."""
    def damage(folder: Path) -> None:
        path = shard(folder, split)
        group = pq.ParquetFile(path).metadata.row_group(0)
        chunk = next(group.column(i) for i in range(group.num_columns) if group.column(i).path_in_schema.split(".")[0] == column)
        data = bytearray(path.read_bytes())
        data[chunk.data_page_offset : chunk.data_page_offset + 16] = bytes(byte ^ 0xFF for byte in data[chunk.data_page_offset : chunk.data_page_offset + 16])
        path.write_bytes(bytes(data))
        update_checksum(folder, path)
    return damage


def with_schema(change: Callable[[pa.Schema], pa.Schema], split: str = "validation") -> Damage:
    return lambda folder: rewrite_rows(folder, shard(folder, split), lambda rows: None, schema=change(pq.read_schema(shard(folder, split))))


def retype(name: str, kind: pa.DataType) -> Callable[[pa.Schema], pa.Schema]:
    return lambda schema: schema.set(schema.get_field_index(name), pa.field(name, kind))


def cell(column: str, value: Any, row: int = 0) -> Damage:
    return lambda folder: set_cells(folder, shard(folder), column, {row: value})


def move(source: str, target: str) -> Damage:
    return lambda folder: (folder / source).rename(folder / target)


def write(relative: str, data: bytes) -> Damage:
    return lambda folder: (folder / relative).write_bytes(data)


def replace_by_folder(folder: Path) -> None:
    (folder / TRAIN).unlink()
    (folder / TRAIN).mkdir()


def link_to_device(folder: Path) -> None:
    (folder / TRAIN).unlink()
    os.symlink("/dev/zero", folder / TRAIN)


def repeat_rows(times: int, claimed: bool = False) -> Damage:
    """The train shard's rows ``times`` over in one row group, its checksum recorded; if ``claimed``, ``meta/info.json``
    also gives the split that many rows, so that only the size of the row group is wrong (a crafted 332 KB shard of
    20,000 all-zero rows in one row group once made verify and load_zoo use 5.5 GB)."""
    def damage(folder: Path) -> None:
        path = shard(folder)
        table = pq.read_table(path)
        pq.write_table(pa.concat_tables([table] * times), path, row_group_size=times * table.num_rows)
        update_checksum(folder, path)
        if claimed:
            edit_info(folder, set_key("splits", "train", "num_rows", times * table.num_rows))
    return damage


# --- meta/info.json and the card -------------------------------------------------------------

def info(edit: Callable[[dict], Any]) -> Damage:
    return lambda folder: edit_info(folder, edit)


def set_key(*path_and_value: Any) -> Callable[[dict], Any]:
    """An edit that sets ``record[k1][k2]... = value``."""
    *keys, last, value = path_and_value

    def edit(record: dict) -> None:
        for key in keys:
            record = record[key]
        record[last] = value
    return edit


def oversized_info(folder: Path) -> None:
    os.truncate(folder / INFO, 65 << 20)  # sparse: no time, no disk


def card(edit: Callable[[str], str]) -> Damage:
    return lambda folder: (folder / CARD).write_text(edit((folder / CARD).read_text()))


# --- weights blobs ----------------------------------------------------------------------------

def blob_of(folder: Path, row: int = 0) -> bytes:
    return pq.read_table(shard(folder), columns=["weights"]).column(0)[row].as_py()


def blob(make: Callable[[bytes], bytes]) -> Damage:
    """Replace the weights of row 0 of the train split with ``make(its blob)``."""
    return lambda folder: set_cells(folder, shard(folder), "weights", {0: make(blob_of(folder))})


def header_edit(edit: Callable[[dict], Any]) -> Callable[[bytes], bytes]:
    """A blob maker: the real blob with its header edited (data bytes unchanged)."""
    def make(original: bytes) -> bytes:
        header = weights_header(original)
        edit(header)
        (size,) = struct.unpack("<Q", original[:8])
        return craft_blob(header, original[8 + size :])
    return make


def tensor_edit(key: str, value: Any, tensor: str = "head.bias") -> Callable[[bytes], bytes]:
    return header_edit(lambda header: header[tensor].__setitem__(key, value))


def metadata_edit(**changes: Any) -> Callable[[bytes], bytes]:
    return header_edit(lambda header: header["__metadata__"].update(changes))


def overlapping(original: bytes) -> bytes:
    """The real blob with ``head.bias`` moved onto the first bytes of ``head.weight``."""
    begin = weights_header(original)["head.weight"]["data_offsets"][0]
    return tensor_edit("data_offsets", [begin, begin + 24])(original)


def nan_weight(original: bytes) -> bytes:
    """The real blob with one weight NaN: a sound blob of lies, which only reproducing log_probs would show on sampled rows."""
    params = rnn_zoos.decode_weights(original)
    params["lstm.weight_hh_l1"][3, 7] = float("nan")
    return encode_weights(params, weights_architecture(original))


def mnist_blob(_: bytes) -> bytes:
    return encode_weights(dict(LSTMWithHead(SEQ_MNIST.architecture).state_dict()), SEQ_MNIST.architecture)


ROW0 = f"{TRAIN} row 0"

CASES = [
    # data files: damaged bytes, with the checksum stale or recorded anew ("lie")
    Case("truncated-shard", keep_bytes("train", lambda data: data[: len(data) // 2]), TRAIN),
    Case("truncated-shard-lying-checksum", keep_bytes("train", lambda data: data[: len(data) // 2], lie=True), TRAIN),
    Case("bit-flipped-shard", keep_bytes("ood", flip_bits), "data/ood-00000-of-00001.parquet"),
    Case("bit-flipped-footer-lying-checksum", keep_bytes("train", lambda data: flip_bits(data, 16, 1, len(data) - 2000, len(data) - 8), lie=True), TRAIN),
    Case("empty-shard-lying-checksum", keep_bytes("train", lambda data: b"", lie=True), TRAIN),
    Case("random-bytes-lying-checksum", keep_bytes("train", lambda data: random.Random(2).randbytes(5000), lie=True), TRAIN),
    Case("magic-only-lying-checksum", keep_bytes("train", lambda data: b"PAR1PAR1", lie=True), TRAIN),
    Case("corrupt-page-lying-checksum", corrupt_page("log_probs"), "data/validation-00000-of-00001.parquet", stream_rows=False),
    # data files: wrong schemas and cells
    Case("column-of-another-type", with_schema(retype("accuracy", pa.float64())), "data/validation-00000-of-00001.parquet"),
    Case("column-missing", with_schema(lambda schema: schema.remove(schema.get_field_index("log_probs"))), "data/validation-00000-of-00001.parquet"),
    Case("column-extra", with_schema(lambda schema: schema.append(pa.field("extra", pa.int8()))), "data/validation-00000-of-00001.parquet"),
    Case("weights-as-large-binary", with_schema(retype("weights", pa.large_binary())), "data/validation-00000-of-00001.parquet"),
    Case("null-weights-cell", cell("weights", None), ROW0),
    Case("null-run-cell", cell("run", None, row=3), TRAIN),
    Case("null-inputs-cell", cell("inputs", None), ROW0, sample_rows=1),
    Case("token-out-of-range", cell("inputs", [[9] * 42] * 100), ROW0, sample_rows=1),
    Case("rows-doubled", repeat_rows(2), f"{TRAIN} holds 72 rows, meta/info.json says 36"),
    Case("rows-beyond-info-in-one-row-group", repeat_rows(6), f"{TRAIN} holds 216 rows, meta/info.json says 36"),
    Case("row-group-beyond-the-limit", repeat_rows(6, claimed=True), f"{TRAIN} has a row group of 216 rows"),
    Case("cell-of-30-mb-compressed", cell("weights", bytes(30_000_000)), f"{TRAIN} has a row group of 36 rows taking"),
    # data files: missing, extra, renamed, replaced
    Case("missing-shard", lambda folder: (folder / TRAIN).unlink(), TRAIN),
    Case("extra-shard", lambda folder: shutil.copy(folder / TRAIN, folder / "data/train-00001-of-00002.parquet"), "data/train-00001-of-00002.parquet"),
    Case("renamed-shard", move(TRAIN, "data/train-00000-of-00002.parquet"), "data/train-00000-of-00002.parquet"),
    Case("shard-is-a-folder", replace_by_folder, TRAIN),
    Case("shard-is-a-device", link_to_device, TRAIN),
    Case("leftover-temporary-file", write("data/.train-00000-of-00001.parquet.tmp-999", b"PAR1"), "data/.train-00000-of-00001.parquet.tmp-999"),
    Case("unlisted-junk", write("data/notes.txt", b"hello"), "data/notes.txt"),
    # meta/info.json
    Case("info-missing", lambda folder: (folder / INFO).unlink(), INFO),
    Case("info-empty", write(INFO, b""), INFO),
    Case("info-not-json", write(INFO, b"{'zoo': formal-lang"), INFO),
    Case("info-not-utf8", write(INFO, b'{"format_version": "1.1", "zoo": "\xff"}'), INFO),
    Case("info-deeply-nested", write(INFO, b'{"format_version": "1.1", "x": ' + b"[" * 200_000), INFO),
    Case("info-a-list", write(INFO, b"[1, 2]"), INFO),
    Case("info-oversized", oversized_info, INFO),
    Case("info-format-3", info(set_key("format_version", "3.0")), INFO),
    Case("info-format-a-number", info(set_key("format_version", 1.1)), INFO),
    Case("info-lacks-split", info(lambda record: record["splits"].pop("ood")), INFO),
    Case("info-unknown-split", info(set_key("splits", "test", {"tasks": [], "runs": [], "num_rows": 0, "num_bytes": 0, "files": []})), INFO),
    Case("info-splits-a-list", info(lambda record: record.__setitem__("splits", list(record["splits"].values()))), INFO),
    Case("info-num-rows-a-string", info(set_key("splits", "train", "num_rows", "36")), INFO),
    Case("info-num-rows-negative", info(set_key("splits", "train", "num_rows", -1)), INFO),
    Case("info-num-rows-huge", info(set_key("splits", "train", "num_rows", 10**18)), INFO),
    Case("info-file-outside", info(set_key("splits", "train", "files", ["../../../../etc/passwd"])), INFO),
    Case("info-file-absolute", info(set_key("splits", "validation", "files", ["/etc/passwd"])), INFO),
    Case("info-file-without-checksum", info(lambda record: record["checksums"].pop(TRAIN)), INFO),
    Case("info-unknown-zoo", info(set_key("zoo", "gru-zoo")), INFO),
    Case("info-task-not-a-task", info(set_key("splits", "ood", "tasks", [{"a": 1}])), INFO),
    Case("info-architecture-of-strings", info(set_key("architecture", "hidden_size", "32")), INFO),
    Case("info-other-architecture", info(set_key("architecture", "hidden_size", 64)), INFO),
    Case("info-reproduction-record", info(set_key("log_probs_reproduction", {"max_abs_error": 1.0, "mean_abs_error": 0.1, "rows": 1,
                                                                            "worst_run": 0, "worst_step": 0, "reason": "none"})), INFO),
    # the card
    Case("card-missing", lambda folder: (folder / CARD).unlink(), CARD),
    Case("card-broken-yaml", card(lambda text: text.replace("configs:", "configs: [{{", 1)), CARD),
    Case("card-not-utf8", write(CARD, b"---\nconfigs: \xff\n---\n"), CARD),
    Case("card-points-elsewhere", card(lambda text: text.replace("path: data/train-*", "path: data/*", 1)), CARD),
    # crafted weights blobs in row 0 of train
    Case("blob-empty", blob(lambda _: b""), ROW0),
    Case("blob-huge-hidden-size", blob(lambda _: craft_blob({"__metadata__": lstm_metadata(hidden_size=20000)})), ROW0),
    Case("blob-millions-of-layers", blob(metadata_edit(num_layers="3000000")), ROW0),
    Case("blob-metadata-a-list", blob(header_edit(lambda header: header.__setitem__("__metadata__", ["lstm"]))), ROW0),
    Case("blob-metadata-of-numbers", blob(metadata_edit(hidden_size=32)), ROW0),
    Case("blob-gru-cell", blob(metadata_edit(cell="gru")), ROW0),
    Case("blob-header-size-past-end", blob(lambda original: struct.pack("<Q", len(original)) + original[8:]), ROW0),
    Case("blob-header-size-huge", blob(lambda original: struct.pack("<Q", 2**63) + original[8:]), ROW0),
    Case("blob-header-size-zero", blob(lambda original: struct.pack("<Q", 0) + original[8:]), ROW0),
    Case("blob-header-not-utf8", blob(lambda original: original[:9] + b"\xff" + original[10:]), ROW0),
    Case("blob-header-deeply-nested", blob(lambda _: struct.pack("<Q", 100_000) + b'{"a":' + b"[" * 99_995), ROW0),
    Case("blob-negative-offsets", blob(tensor_edit("data_offsets", [-24, 0])), ROW0),
    Case("blob-offsets-past-end", blob(tensor_edit("data_offsets", [60_000, 60_024])), ROW0),
    Case("blob-overlapping-offsets", blob(overlapping), ROW0),
    Case("blob-float16", blob(tensor_edit("dtype", "F16")), ROW0),
    Case("blob-float64", blob(tensor_edit("dtype", "F64")), ROW0),
    Case("blob-huge-shape", blob(tensor_edit("shape", [2**62, 2**62])), ROW0),
    Case("blob-shape-of-rank-100", blob(tensor_edit("shape", [1] * 100)), ROW0),
    Case("blob-extra-tensor", blob(header_edit(lambda header: header.__setitem__("extra", {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}))), ROW0),
    Case("blob-json-escape-safetensors-rejects", blob(metadata_edit(format="\ud800")), ROW0),
    Case("blob-truncated", blob(lambda original: original[:-100]), ROW0),
    Case("blob-of-another-zoo", blob(mnist_blob), ROW0),
    Case("blob-nan-weight", blob(nan_weight), f"{ROW0} (run"),
]


def read_everything(folder: Path, stream_rows: bool) -> None:
    """Load the zoo eagerly and streaming, read every row (streamed ones if ``stream_rows``) and decode every weights blob;
    ZooError is the only failure allowed."""
    for streaming in (False, True):
        try:
            zoo = rnn_zoos.load_zoo(folder, streaming=streaming)
            for split in zoo.values() if stream_rows or not streaming else ():
                for row in split:
                    rnn_zoos.decode_weights(row["weights"])
        except ZooError:
            pass


@pytest.mark.filterwarnings("ignore:.*not listed in meta/info.json, so not loaded")
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_damaged_zoo(case: Case, formal_zoo: Path, tmp_path: Path) -> None:
    folder = copy_zoo(formal_zoo, tmp_path)
    case.damage(folder)
    with bounded(seconds=60):
        problems = verify_zoo(folder, sample_rows=case.sample_rows)
        assert problems and any(case.names in problem for problem in problems), problems
        read_everything(folder, case.stream_rows)


def test_at_least_thirty_kinds() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 30


def test_damage_is_real(formal_zoo: Path, tmp_path: Path) -> None:
    """The fuzz cases start from a sound zoo, and checksum "lies" really leave the checksums consistent."""
    assert verify_zoo(formal_zoo, sample_rows=0) == []
    folder = copy_zoo(formal_zoo, tmp_path)
    keep_bytes("train", lambda data: data[:100], lie=True)(folder)
    assert json.loads((folder / INFO).read_text())["checksums"][TRAIN] == file_sha256(folder / TRAIN)
