"""A zoo served over real HTTP by a local Hub mirror (olah) loads like the folder; offline, the cache serves it."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub_mirror import client_env, serve_datasets
from rnn_zoos.hub.cards import with_repo_id

REPO_ID = "rnn-zoos/formal-lang"
ROOT = Path(__file__).resolve().parent.parent

ONLINE_CLIENT = """
import hashlib, json, os
import datasets, huggingface_hub, rnn_zoos
from rnn_zoos.hub.verify import verify_zoo

rows = datasets.load_dataset("rnn-zoos/formal-lang")
folder = huggingface_hub.snapshot_download("rnn-zoos/formal-lang", repo_type="dataset")
files = {}
for base, _, names in os.walk(folder):
    for name in names:
        path = os.path.join(base, name)
        files[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
print(json.dumps({
    "rows": {split: [[r["run"], r["step"], r["seed"], hashlib.sha256(r["weights"]).hexdigest()] for r in rows[split]] for split in rows},
    "files": files,
    "load_zoo_train": len(rnn_zoos.load_zoo("rnn-zoos/formal-lang", split="train")),
    "problems": verify_zoo("rnn-zoos/formal-lang"),
}))
"""

OFFLINE_CLIENT = """
import json, rnn_zoos
zoo = rnn_zoos.load_zoo("rnn-zoos/formal-lang")
try:
    rnn_zoos.load_zoo("rnn-zoos/never-loaded")
    error = None
except rnn_zoos.ZooError as caught:
    error = str(caught)
print(json.dumps({"sizes": {split: len(zoo[split]) for split in zoo}, "error": error}))
"""


def run_client(code: str, env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def card_examples(card: str) -> list[str]:
    """The Python blocks of the card's loading section, as written: with rnn_zoos, then with datasets alone."""
    section = card.split("## Loading", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


EXAMPLE_CHECKS = (
    "\nimport torch\ntorch.testing.assert_close(log_probs, row['log_probs'], rtol=2**-10, atol=1e-5)\n",
    "\nimport torch, rnn_zoos\nexpected = rnn_zoos.decode_weights(row['weights'])\n"
    "assert isinstance(row['weights'], bytes) and weights.keys() == expected.keys()\n"
    "assert all(torch.equal(weights[name], expected[name]) for name in expected)\n",
)
"""What each loading example must give: the RNN reproduces its log_probs; the weights read without rnn_zoos are the RNN's."""


@pytest.fixture(scope="module")
def served(formal_zoo: Path, mnist_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[str]]:
    """Serve the tiny zoos as rnn-zoos/formal-lang and rnn-zoos/seq-mnist, load one over HTTP, run both cards' examples."""
    work = tmp_path_factory.mktemp("olah")
    hf_home = work / "hf_home"
    zoos = {REPO_ID: formal_zoo, "rnn-zoos/seq-mnist": mnist_zoo}
    with serve_datasets(zoos, work / "server") as endpoint:
        online = run_client(ONLINE_CLIENT, client_env(hf_home, endpoint))
        examples = [card_examples(with_repo_id((folder / "README.md").read_text(), repo_id)) for repo_id, folder in zoos.items()]
        for index, blocks in enumerate(examples):
            assert len(blocks) == len(EXAMPLE_CHECKS)
            for block, check in zip(blocks, EXAMPLE_CHECKS):
                run_client(block + check + "print('{}')\n", client_env(work / f"hf_home_example_{index}", endpoint))
    return online, hf_home, examples


def local_rows(folder: Path) -> dict[str, list]:
    info = json.loads((folder / "meta" / "info.json").read_text())
    rows = {}
    for split, entry in info["splits"].items():
        if entry["files"]:
            table = pa.concat_tables([pq.read_table(folder / path) for path in entry["files"]]).to_pydict()
            rows[split] = [[run, step, seed, hashlib.sha256(blob).hexdigest()]
                           for run, step, seed, blob in zip(table["run"], table["step"], table["seed"], table["weights"])]
    return rows


def test_load_dataset_over_http_gives_the_folders_rows(served, formal_zoo: Path) -> None:
    online, _, _ = served
    assert online["rows"] == local_rows(formal_zoo)
    assert online["load_zoo_train"] == len(online["rows"]["train"])


def test_snapshot_download_gives_the_folders_files(served, formal_zoo: Path) -> None:
    online, _, _ = served
    expected = {path.relative_to(formal_zoo).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in formal_zoo.rglob("*") if path.is_file()}
    assert online["files"] == expected
    assert any(name.startswith("assets/") for name in expected)


def test_verify_passes_on_a_hub_repo(served) -> None:
    online, _, _ = served
    assert online["problems"] == []


def test_card_examples_run_as_published(served) -> None:
    _, _, examples = served  # all ran above, as publish writes them, against the mirror, and gave the RNNs
    for blocks, repo_id in zip(examples, (REPO_ID, "rnn-zoos/seq-mnist")):
        assert f'rnn_zoos.load_zoo("{repo_id}")' in blocks[0] and f'load_dataset("{repo_id}")' in blocks[1]
        assert "with_format" not in "".join(blocks)


def test_offline_the_cache_serves_a_loaded_zoo_and_names_a_missing_one(served) -> None:
    online, hf_home, _ = served
    offline = run_client(OFFLINE_CLIENT, client_env(hf_home, offline=True))
    assert offline["sizes"] == {split: len(rows) for split, rows in online["rows"].items()}
    assert offline["error"].startswith("no folder named rnn-zoos/never-loaded in ")
    assert ", and the Hub dataset repo rnn-zoos/never-loaded is not in the local cache and HF_HUB_OFFLINE is set" in offline["error"]
