"""Weights blobs that end in zero bytes come back byte for byte in every format and mode, and such a zoo is sound."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import rnn_zoos
from rnn_zoos import DamagedZooError
from rnn_zoos.zoos.formal_lang import FORMAL_LANG
from rnn_zoos.format.info import SPLITS
from rnn_zoos.format.blob import decode_weights, encode_weights, weights_header
from rnn_zoos.lstm.functional import lstm_forward, stack_params
from rnn_zoos.hub.verify import verify_zoo

from test_hub_http import EXAMPLE_CHECKS, card_examples
from test_untrusted_zoos import copy_zoo, rewrite_rows, shard
from rnn_zoos.hub.cards import with_repo_id


def zero_tails(rows: list[dict]) -> None:
    """Make the last float of each row's last tensor 0.0 (its blob then ends in four zero bytes); recompute the log_probs."""
    header = weights_header(rows[0]["weights"])
    last = max((name for name in header if name != "__metadata__"), key=lambda name: header[name]["data_offsets"][1])
    params = [decode_weights(row["weights"]) for row in rows]
    for row, single in zip(rows, params):
        single[last].view(-1)[-1] = 0.0
        row["weights"] = encode_weights(single, FORMAL_LANG.architecture)
    inputs = FORMAL_LANG.model_inputs(torch.tensor([row["inputs"] for row in rows]))
    with torch.no_grad():
        logits, _ = lstm_forward(stack_params(params), inputs)  # all rows at once
    for row, log_probs in zip(rows, torch.log_softmax(logits, dim=-1).half()):
        row["log_probs"] = log_probs.tolist()


@pytest.fixture(scope="module")
def zero_tail_zoo(formal_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = copy_zoo(formal_zoo, tmp_path_factory.mktemp("zero_tail"), "zero_tail")  # not "zoo": datasets would serve that cache
    for split in SPLITS:
        rewrite_rows(folder, shard(folder, split), zero_tails)
    return folder


@pytest.fixture(scope="module")
def stored(zero_tail_zoo: Path) -> dict[str, list[bytes]]:
    """The blobs as Parquet holds them, by split."""
    blobs = {split: pq.read_table(shard(zero_tail_zoo, split), columns=["weights"]).column(0).to_pylist() for split in SPLITS}
    assert all(blob.endswith(b"\0\0\0\0") for split in SPLITS for blob in blobs[split])
    return blobs


def assert_exact(found: list, expected: list[bytes]) -> None:
    assert [type(blob) for blob in found] == [bytes] * len(expected)
    assert [len(blob) for blob in found] == [len(blob) for blob in expected]
    assert list(found) == expected


@pytest.mark.parametrize("format", ["torch", "numpy", "python"])
def test_eager_load_zoo_keeps_bytes_in_rows_batches_columns_and_iteration(zero_tail_zoo: Path, stored, format: str) -> None:
    zoo = rnn_zoos.load_zoo(zero_tail_zoo, format=format)
    for split in SPLITS:
        dataset, expected = zoo[split], stored[split]
        assert_exact([dataset[index]["weights"] for index in range(len(dataset))], expected)
        assert_exact(list(dataset[:]["weights"]), expected)
        assert_exact(list(dataset["weights"]), expected)
        assert_exact([row["weights"] for row in dataset], expected)
        assert_exact([blob for batch in dataset.iter(batch_size=4) for blob in batch["weights"]], expected)
        assert_exact([row["weights"] for row in dataset.select(range(len(dataset) - 1, -1, -1))][::-1], expected)


@pytest.mark.parametrize("format", ["torch", "numpy", "python"])
def test_streaming_load_zoo_keeps_bytes(zero_tail_zoo: Path, stored, format: str) -> None:
    zoo = rnn_zoos.load_zoo(zero_tail_zoo, streaming=True, format=format)
    for split in SPLITS:
        assert_exact([row["weights"] for row in zoo[split]], stored[split])
        assert_exact([blob for batch in zoo[split].iter(batch_size=4) for blob in batch["weights"]], stored[split])


def test_plain_load_dataset_keeps_bytes(zero_tail_zoo: Path, stored) -> None:
    for streaming in (False, True):
        plain = datasets.load_dataset(str(zero_tail_zoo), streaming=streaming)
        for split in SPLITS:
            assert_exact([row["weights"] for row in plain[split]], stored[split])


def test_blobs_ending_in_zeros_decode_batch_and_verify(zero_tail_zoo: Path, stored) -> None:
    zoo = rnn_zoos.load_zoo(zero_tail_zoo)
    loader = torch.utils.data.DataLoader(zoo["train"], batch_size=5, collate_fn=rnn_zoos.collate_rows)
    batch = next(iter(loader))
    assert batch["weights"]["lstm.weight_ih_l1"].shape == (5, 128, 32) and (batch["weights"]["lstm.weight_ih_l1"][:, -1, -1] == 0).all()
    for row in zoo["ood"].select(range(2)):
        torch.testing.assert_close(rnn_zoos.to_module(row["weights"]).log_probs(row["inputs"][:, :-1]), row["log_probs"], rtol=2**-9, atol=2e-3)
    numpy_rows = rnn_zoos.load_zoo(zero_tail_zoo, split="validation", format="numpy")[:]
    assert rnn_zoos.decode_batch(list(numpy_rows["weights"]))["head.bias"].shape == (len(stored["validation"]), 6)
    assert verify_zoo(zero_tail_zoo, sample_rows=3) == []


def test_the_cards_loading_examples_read_blobs_ending_in_zeros(zero_tail_zoo: Path, stored) -> None:
    blocks = card_examples(with_repo_id((zero_tail_zoo / "README.md").read_text(), str(zero_tail_zoo)))
    assert len(blocks) == 2 and "$" not in "".join(blocks)
    for block, check in zip(blocks, EXAMPLE_CHECKS):
        namespace: dict = {}
        exec(block + check, namespace)  # as a user runs it: the RNN's log_probs, the exact weights
        assert namespace["row"]["weights"] == stored["train"][0]


def test_a_blob_shortened_by_numpy_is_named_with_the_cause(stored) -> None:
    shortened = np.array(stored["train"][:1])[0]  # NumPy's bytes dtype drops trailing zero bytes
    assert len(shortened) == len(stored["train"][0]) - 4
    with pytest.raises(DamagedZooError, match="it is truncated .*loses its trailing zero bytes .*: read rows with rnn_zoos.load_zoo"):
        rnn_zoos.to_module(shortened)
