"""Bring your own encoder: a class in the user's own file or an installed package runs through pretrain, downstream and
reproduce beside the six; bad references are refused in one line before any training; a saved model never imports the
code it names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.image
import pytest
import torch
import transformers

from rnn_zoos.experiments import downstream, pretrain, reproduce
from rnn_zoos.experiments.data import load_splits
from rnn_zoos.experiments.report import pca_plots
from rnn_zoos.models import RNNEncoderConfig, RNNEncoderModel, register_encoder
from rnn_zoos.models.encoders import ENCODERS, UnknownEncoderError, registry
from rnn_zoos.zoos.formal_lang import FORMAL_LANG

MEAN_POOL = '''
import torch
from torch import nn


class MeanPool(nn.Module):
    """Mean and standard deviation of every weight tensor, then an MLP."""

    def __init__(self, shape, hidden=32):
        super().__init__()
        tensors = len(shape.architecture.parameter_shapes())
        self.net = nn.Sequential(nn.Linear(2 * tensors, hidden), nn.ReLU(), nn.Linear(hidden, shape.embedding_dim))

    def forward(self, weights):
        flat = [tensor.flatten(1) for tensor in weights.tensors()]
        return self.net(torch.cat([torch.stack([t.mean(1), t.std(1)], 1) for t in flat], 1))
'''
MEAN_POOL_PARAMETERS = 20 * 32 + 32 + 32 * 16 + 16
"""Ten tensors of a formal-language RNN, two statistics each, 20 -> 32 -> 16."""
QUICK = ["--steps", "4", "--batch-rnns", "4", "--eval-every", "2", "--eval-rnns", "2", "--cloned-rnns", "0", "--device", "cpu"]


def run(arguments: list[str], cwd: Path, path: Path | None) -> subprocess.CompletedProcess:
    """``python ARGUMENTS`` in a fresh process in ``cwd`` with ``path`` (if any) as its PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run([sys.executable, *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)


def rnn_zoos_command(arguments: list[str], cwd: Path, path: Path | None) -> subprocess.CompletedProcess:
    """``rnn-zoos ARGUMENTS`` in a fresh process; asserts that it succeeded."""
    done = run(["-m", "rnn_zoos.cli", *arguments], cwd, path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


LOAD = '''
import sys
import rnn_zoos, torch, transformers
from rnn_zoos.models.encoders.registry import random_weights
from safetensors.torch import load_file
if len(sys.argv) > 2:
    rnn_zoos.models.register_encoder(sys.argv[2])
model = transformers.AutoModel.from_pretrained(sys.argv[1])
state, saved = model.state_dict(), load_file(sys.argv[1] + "/model.safetensors")
same = state.keys() == saved.keys() and all(torch.equal(saved[name], tensor) for name, tensor in state.items())
print(type(model.encoder).__module__, type(model.encoder).__name__, model.config.encoder, model.config.encoder_package,
      sum(p.numel() for p in model.parameters()), same, tuple(model(random_weights(model.config.shape, 3)).embeddings.shape))
'''
"""Load an encoder folder in a fresh process (registering the reference given after it first) and say what it holds."""


def test_an_encoder_in_the_users_own_file_runs_pretrain_downstream_and_reproduce(formal_zoo: Path, tmp_path: Path) -> None:
    code, work = tmp_path / "code", tmp_path / "work"
    code.mkdir()
    work.mkdir()
    (code / "my_encoders.py").write_text(MEAN_POOL)
    (work / "load.py").write_text(LOAD)
    reference = "my_encoders:MeanPool"

    rnn_zoos_command(["pretrain", "--zoo", str(formal_zoo), "--encoder", reference, "--out", "run", *QUICK], work, code)
    saved = json.loads((work / "run" / "encoder" / "config.json").read_text())
    assert (saved["encoder"], saved["encoder_package"]) == (reference, "my_encoders")
    # the only code the folder names is our loader, which imports rnn_zoos and nothing of the user's
    assert {target.split(".")[0] for target in saved["auto_map"].values()} == {"rnn_zoos_model"}
    assert "my_encoders" not in (work / "run" / "encoder" / "rnn_zoos_model.py").read_text()
    assert json.loads((work / "run" / "summary.json").read_text())["parameters"]["encoder"] == MEAN_POOL_PARAMETERS

    # AutoModel.from_pretrained where the code is importable, once the user names it: the user's class, the saved weights
    loaded = run(["load.py", "run/encoder", reference], work, code)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split() == ["my_encoders", "MeanPool", reference, "my_encoders", str(MEAN_POOL_PARAMETERS), "True",
                                     "(3,", "16)"]

    # without naming the code, or where it is not importable: one line that names the package
    unnamed = run(["load.py", "run/encoder"], work, code)
    assert unnamed.returncode != 0
    assert unnamed.stderr.strip().splitlines()[-1].endswith(
        "this model's encoder 'my_encoders:MeanPool' is code from the package 'my_encoders', which rnn-zoos does not import "
        "because a saved model names it: call rnn_zoos.models.register_encoder('my_encoders:MeanPool') before loading the "
        "model (that imports it and runs its code)")
    missing = run(["load.py", "run/encoder"], work, None)
    assert missing.stderr.strip().splitlines()[-1].endswith(
        "this model's encoder 'my_encoders:MeanPool' comes from the package 'my_encoders', which is not installed here: "
        "install it or put its folder on PYTHONPATH, then call rnn_zoos.models.register_encoder('my_encoders:MeanPool') "
        "before loading the model")

    rnn_zoos_command(["downstream", "--zoo", str(formal_zoo), "--out", "downstream", "--pretrained", f"{reference}=run/encoder",
                      "--supervised", reference, "--seeds", "1", "--probe-steps", "20", "--supervised-steps", "4",
                      "--device", "cpu"], work, code)
    results = json.loads((work / "downstream" / "downstream.json").read_text())
    for target in results["targets"].values():
        assert {"trivial", f"pretrained:{reference}", f"supervised:{reference}"} == set(target["methods"])

    rnn_zoos_command(["reproduce", "--zoo", str(formal_zoo), "--scale", "tiny", "--out", "study", "--encoders", reference,
                      "layerwise_statistics", "--device", "cpu"], work, code)
    results = json.loads((work / "study" / "results.json").read_text())
    assert list(results["emulation"]) == ["layerwise_statistics", reference]
    assert results["emulation"][reference]["parameters"] == MEAN_POOL_PARAMETERS
    report = (work / "study" / "REPORT.md").read_text()
    tables = [block for block in report.split("\n\n") if block.startswith("| ")]
    # the zoo, Table 2, one per target, cloned performance by the paper's figure and by ours
    assert len(tables) == 2 + len(results["downstream"]["targets"]) + 2
    for table in tables[1:]:  # every table of results shows the user's encoder beside the built-in one
        assert f"| {reference} |" in table or f"| pretrained:{reference} |" in table
    assert f"| {reference} | {MEAN_POOL_PARAMETERS:,} |" in report
    assert f"| supervised:{reference} |" in report
    assert "(pretrain/my_encoders.MeanPool/cloned.png)" in report
    assert (work / "study" / "pretrain" / "my_encoders.MeanPool" / "cloned.png").is_file()


TINY_PACKAGE = {
    "pyproject.toml": '''
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tiny-encoders"
        version = "0.1"

        [project.entry-points."rnn_zoos.encoders"]
        mean-pool = "tiny_encoders:MeanPool"

        [tool.setuptools]
        packages = ["tiny_encoders"]
    ''',
    "tiny_encoders/__init__.py": MEAN_POOL,
}


def test_an_installed_package_offers_its_encoder_by_name(formal_zoo: Path, tmp_path: Path) -> None:
    source, target, work = tmp_path / "source", tmp_path / "site", tmp_path / "work"
    for name, text in TINY_PACKAGE.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(textwrap.dedent(text))
    work.mkdir()
    installed = run(["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target",
                     str(target), str(source)], tmp_path, None)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert list(target.glob("tiny_encoders-0.1.dist-info/entry_points.txt"))

    help_text = rnn_zoos_command(["pretrain", "--help"], work, target).stdout
    assert "runs its code" in " ".join(help_text.split())
    rnn_zoos_command(["pretrain", "--zoo", str(formal_zoo), "--encoder", "mean-pool", "--out", "run", *QUICK], work, target)
    saved = json.loads((work / "run" / "encoder" / "config.json").read_text())
    assert (saved["encoder"], saved["encoder_package"]) == ("mean-pool", "tiny-encoders")
    (work / "load.py").write_text(LOAD)
    loaded = run(["load.py", "run/encoder"], work, target)  # an installed encoder loads as it is: nothing to name
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split(" ")[:4] == ["tiny_encoders", "MeanPool", "mean-pool", "tiny-encoders"]
    gone = run(["load.py", "run/encoder"], work, None)
    assert gone.stderr.strip().splitlines()[-1].endswith(
        "this model's encoder 'mean-pool' is neither one of the six nor an installed encoder; install the package that "
        "provides it (an entry point 'mean-pool' in the group rnn_zoos.encoders)")


# --- in this process: bad references, untrusted folders, the PreTrainedModel route ------------------------------------

BAD = MEAN_POOL + '''

class TooNarrow(MeanPool):
    def forward(self, weights):
        return super().forward(weights)[:, :5]


class Integers(MeanPool):
    def forward(self, weights):
        return torch.zeros(weights.batch_shape[0], 16, dtype=torch.long)


class NeedsWidth(nn.Module):
    def __init__(self, shape, width):
        super().__init__()


class NotAModule:
    pass


def returns_a_list(shape):
    return [shape]


LIMIT = 3
'''


@pytest.fixture
def own_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module ``own_encoders`` (:data:`BAD`) importable from this process; forgotten, with every encoder it
    registered, afterwards."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "own_encoders.py").write_text(BAD)
    monkeypatch.syspath_prepend(folder)
    monkeypatch.setattr(registry, "_TRUSTED", {})
    yield folder
    sys.modules.pop("own_encoders", None)


EXPECTED = "a class or factory taking an EncoderShape and returning a torch.nn.Module"
NARROW = "returned a tensor of shape [2, 5] for 2 RNNs; expected a float tensor [2, 16], one embedding of embedding_dim 16 per RNN"


@pytest.mark.parametrize(("reference", "message"), [
    ("nowhere_at_all:MeanPool", "'nowhere_at_all:MeanPool': importing nowhere_at_all failed (ModuleNotFoundError: No module "
                                "named 'nowhere_at_all'); expected MODULE importable here (installed, or its folder on PYTHONPATH)"),
    ("own_encoders:Missing", f"'own_encoders:Missing': own_encoders has no Missing; expected the name of {EXPECTED} in own_encoders"),
    ("own_encoders:LIMIT", f"'own_encoders:LIMIT' names 3 of type int, not a class or factory; expected {EXPECTED}"),
    ("own_encoders:NotAModule", f"'own_encoders:NotAModule' names the class NotAModule, which is not a torch.nn.Module; "
                                f"expected {EXPECTED}"),
    ("own_encoders:returns_a_list", f"'own_encoders:returns_a_list' returned a list, not a torch.nn.Module; expected {EXPECTED}"),
    ("own_encoders:NeedsWidth", "'own_encoders:NeedsWidth': building it raised TypeError: NeedsWidth.__init__() missing 1 "
                                f"required positional argument: 'width'; expected {EXPECTED}"),
    ("own_encoders:TooNarrow", f"'own_encoders:TooNarrow' {NARROW}"),
    ("own_encoders:Integers", "'own_encoders:Integers' returned a tensor of torch.int64 for 2 RNNs; expected a float tensor "
                              "[2, 16], one embedding of embedding_dim 16 per RNN"),
    ("own_encoders.MeanPool", "'own_encoders.MeanPool' is unknown; choose one of " + ", ".join(ENCODERS) + ", an installed "
                              "encoder (none is installed), or MODULE:CLASS (a class or factory in your own code)"),
    ("own_encoders:MeanPool:x", f"'own_encoders:MeanPool:x' is not MODULE:CLASS; expected a dotted module name, a colon and the "
                                f"name of {EXPECTED} in it, such as my_pkg.encoders:MeanPool"),
], ids=lambda value: value.split(":")[-1][:20])
def test_a_bad_reference_is_refused_before_any_training(formal_zoo: Path, tmp_path: Path, own_code: Path, capsys,
                                                        reference: str, message: str) -> None:
    out = tmp_path / "run"
    assert pretrain.main(["--zoo", str(formal_zoo), "--encoder", reference, "--out", str(out), *QUICK]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --encoder {message}"]
    assert not out.exists()


def test_downstream_and_reproduce_check_every_encoder_before_any_training(formal_zoo: Path, tmp_path: Path, own_code: Path,
                                                                          capsys, monkeypatch) -> None:
    def study_started(*args, **kwargs) -> None:
        raise AssertionError("the study started before the encoders were checked")

    monkeypatch.setattr(downstream, "load_splits", study_started)
    monkeypatch.setattr(reproduce, "load_splits", study_started)
    out = tmp_path / "out"
    assert downstream.main(["--zoo", str(formal_zoo), "--out", str(out), "--supervised", "own_encoders:TooNarrow",
                            "--device", "cpu"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --supervised 'own_encoders:TooNarrow' {NARROW}"]
    assert reproduce.main(["--zoo", str(formal_zoo), "--out", str(out), "--encoders", "own_encoders:MeanPool",
                           "own_encoders:TooNarrow", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --encoders 'own_encoders:TooNarrow' {NARROW}"]
    assert not out.exists()


def test_downstream_imports_a_folders_encoder_only_where_the_command_line_names_it(formal_zoo: Path, tmp_path: Path,
                                                                                    own_code: Path, capsys) -> None:
    import own_encoders

    folder = tmp_path / "encoder"
    register_encoder(own_encoders.MeanPool)
    RNNEncoderModel(RNNEncoderConfig.for_zoo("own_encoders:MeanPool", FORMAL_LANG)).save_pretrained(folder)
    registry._TRUSTED.clear()  # a new process: nothing registered
    out = tmp_path / "out"
    assert downstream.main(["--zoo", str(formal_zoo), "--out", str(out), "--pretrained", str(folder), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: --pretrained {folder}: this model's encoder 'own_encoders:MeanPool' is code from the package 'own_encoders', "
        f"which rnn-zoos does not import because a saved model names it: name it on the command line: --pretrained "
        f"own_encoders:MeanPool={folder} (that imports it and runs its code)")
    assert downstream.main(["--zoo", str(formal_zoo), "--out", str(out), "--pretrained", f"flat={folder}", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: --pretrained flat={folder}: {folder} holds the encoder 'own_encoders:MeanPool', not 'flat'")
    assert not out.exists()
    loaded = downstream.load_encoder(f"own_encoders:MeanPool={folder}")[1]
    assert type(loaded.encoder) is own_encoders.MeanPool


def test_a_saved_model_never_imports_the_code_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker, code = tmp_path / "imported", tmp_path / "code"
    code.mkdir()
    (code / "planted.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + MEAN_POOL)
    monkeypatch.syspath_prepend(code)
    monkeypatch.setattr(registry, "_TRUSTED", {})
    saved = tmp_path / "saved"
    RNNEncoderModel(RNNEncoderConfig.for_zoo("layerwise_statistics", FORMAL_LANG)).save_pretrained(saved)
    config = json.loads((saved / "config.json").read_text())
    for reference in ("planted:MeanPool", "subprocess:Popen", "os.path:join"):  # os and subprocess are already imported
        (saved / "config.json").write_text(json.dumps({**config, "encoder": reference}))
        with pytest.raises(UnknownEncoderError, match="does not import because a saved model names it"):
            transformers.AutoModel.from_pretrained(saved)
    # transformers' own remote code: an auto_map is ignored for a model type registered here, unless trusted explicitly
    (saved / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "planted.MeanPool"}}))
    assert type(transformers.AutoModel.from_pretrained(saved).encoder).__name__ == "LayerwiseStatisticsEncoder"
    assert not marker.exists() and "planted" not in sys.modules


PRETRAINED_MODEL = '''
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from rnn_zoos import LSTMArchitecture


class FlatLinearConfig(PretrainedConfig):
    model_type = "flat_linear_for_rnn_zoos_tests"

    def __init__(self, scale=1.0, **kwargs):
        self.scale = scale
        super().__init__(**kwargs)


class FlatLinear(PreTrainedModel):
    """All weights, one linear map; its config receives the RNNs' shape."""

    config_class = FlatLinearConfig
    needs_augmentation = True

    def __init__(self, config):
        super().__init__(config)
        size = LSTMArchitecture(**config.rnn_architecture).num_parameters
        self.linear = nn.Linear(size, config.embedding_dim)
        self.post_init()

    def forward(self, weights):
        return self.linear(weights.flatten()) * self.config.scale
'''


def test_an_encoder_with_its_own_pretrained_config_saves_and_loads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "hf_encoders.py").write_text(PRETRAINED_MODEL)
    monkeypatch.syspath_prepend(code)
    monkeypatch.setattr(registry, "_TRUSTED", {})
    try:
        import hf_encoders

        register_encoder(hf_encoders.FlatLinear)
        model = RNNEncoderModel(RNNEncoderConfig.for_zoo("hf_encoders:FlatLinear", FORMAL_LANG))
        assert model.encoder.config.embedding_dim == 16 and model.encoder.config.rnn_architecture["hidden_size"] == 32
        assert model.needs_augmentation  # the encoder's own declaration
        model.encoder.config.scale = 2.5
        model.save_pretrained(tmp_path / "saved")
        loaded = transformers.AutoModel.from_pretrained(tmp_path / "saved")
        assert type(loaded.encoder) is hf_encoders.FlatLinear and loaded.encoder.config.scale == 2.5
        weights = registry.random_weights(model.config.shape, 3)
        embed = lambda m, w: m(w).embeddings  # noqa: E731
        assert torch.equal(embed(loaded, weights), embed(model, weights))
        assert torch.equal(embed(model, weights), embed(model, weights.to_params()))
    finally:
        sys.modules.pop("hf_encoders", None)


def test_a_decorated_encoder_loads_once_its_module_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "decorated.py").write_text("from rnn_zoos.models import register_encoder\n" + MEAN_POOL.replace(
        "class MeanPool", "@register_encoder\nclass MeanPool"))
    monkeypatch.syspath_prepend(code)
    monkeypatch.setattr(registry, "_TRUSTED", {})
    try:
        import decorated

        RNNEncoderModel(RNNEncoderConfig.for_zoo("decorated:MeanPool", FORMAL_LANG)).save_pretrained(tmp_path / "saved")
        registry._TRUSTED.clear()
        with pytest.raises(UnknownEncoderError):
            transformers.AutoModel.from_pretrained(tmp_path / "saved")
        sys.modules.pop("decorated")
        import decorated  # noqa: F811  (importing the user's module again registers its encoder)

        assert type(transformers.AutoModel.from_pretrained(tmp_path / "saved").encoder) is decorated.MeanPool
    finally:
        sys.modules.pop("decorated", None)


def test_the_embedding_plots_show_every_encoder(formal_zoo: Path, tmp_path: Path, own_code: Path) -> None:
    splits = load_splits(formal_zoo)
    import own_encoders

    register_encoder(own_encoders.MeanPool)
    models = {f"mean_pool_{index}": RNNEncoderModel(RNNEncoderConfig.for_zoo("own_encoders:MeanPool", FORMAL_LANG))
              for index in range(7)}
    heights = {}
    for count in (6, 7):
        folder = tmp_path / str(count)
        folder.mkdir()
        pca_plots(folder, splits, dict(list(models.items())[:count]))
        heights[count] = matplotlib.image.imread(folder / "pca_accuracy.png").shape[0]
    assert heights[7] > 1.4 * heights[6]  # a third row of plots for the seventh encoder
