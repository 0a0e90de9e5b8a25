"""The rnn-zoos command and its python -m forms; models that load through transformers' Auto classes from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers.utils import ModelOutput

from rnn_zoos.cli import COMMANDS, main
from rnn_zoos.models.modeling import EmulatorConfig, EmulatorModel, RNNEncoderConfig, RNNEncoderModel
from rnn_zoos.zoos.formal_lang import FORMAL_LANG

ROOT = Path(__file__).resolve().parent.parent
PYTHON_M_FORMS = {
    "build formal-lang": "builders.formal_lang", "build seq-mnist": "builders.seq_mnist", "verify": "builders.verify",
    "publish": "builders.publish", "import-release": "builders.import_release", "pretrain": "baselines.pretrain",
    "downstream": "baselines.downstream", "reproduce": "baselines.reproduce",
}


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_lists_every_command_and_build_help_every_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert all(f"  {command} " in shown for command in COMMANDS)
    assert main(["build", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "  formal-lang  " in shown and "  seq-mnist  " in shown
    assert main([]) == 2 and main(["frobnicate"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: unknown command 'frobnicate'")


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_help_and_version_import_no_torch_datasets_or_transformers(argv: list[str], tmp_path: Path) -> None:
    code = ("import sys\nfrom rnn_zoos.cli import main\nstatus = main(sys.argv[1:])\n"
            "heavy = sorted(name for name in ('torch', 'datasets', 'transformers') if name in sys.modules)\n"
            "print('heavy:', ','.join(heavy))\nsys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "heavy: "
    script = Path(sys.executable).with_name("rnn-zoos")
    timed = subprocess.run([sys.executable, "-X", "importtime", str(script), *argv], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    imported = {line.split("|")[-1].strip() for line in timed.stderr.splitlines() if line.startswith("import time:")}
    assert timed.returncode == 0 and "rnn_zoos.cli" in imported and not imported & {"torch", "datasets", "transformers"}


def test_importing_rnn_zoos_registers_the_models_once_transformers_is_imported(tmp_path: Path) -> None:
    code = ("import sys\nimport rnn_zoos\nassert 'torch' not in sys.modules\n"
            "from transformers import AutoConfig\n"
            "print(type(AutoConfig.for_model('rnn_zoos_encoder')).__name__, rnn_zoos.load_zoo.__name__)")
    done = run("-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["RNNEncoderConfig", "load_zoo"]


def test_the_installed_script_runs_from_another_folder(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("rnn-zoos")
    assert script.is_file(), "pip install -e . installs the rnn-zoos script next to python"
    done = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and all(command in done.stdout for command in COMMANDS)


@pytest.mark.parametrize("command", list(PYTHON_M_FORMS))
def test_every_command_has_the_options_of_its_python_m_form(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    ours = capsys.readouterr().out
    assert ours.startswith(f"usage: rnn-zoos {command} ")
    assert "(default: None)" not in ours and "--runs_per_batch RUNS" not in ours.split("options:")[0]
    usage = ours.split("\n\n")[0]
    assert "_" not in "".join(word for word in usage.split() if word.startswith("--"))  # dashes, as the README spells them
    theirs = run("-m", PYTHON_M_FORMS[command], "--help")
    assert theirs.returncode == 0 and theirs.stdout.startswith(f"usage: python -m {PYTHON_M_FORMS[command]} ")
    assert theirs.stdout.split("\n\n", 1)[1] == ours.split("\n\n", 1)[1]  # the same options and help


@pytest.mark.parametrize("command", list(PYTHON_M_FORMS))
def test_every_option_has_help_text(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    parsers = []

    def capture(self: argparse.ArgumentParser, *args, **kwargs):
        parsers.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    actions = [action for action in parsers[0]._actions if not isinstance(action, argparse._HelpAction)]
    assert actions and all(action.help for action in actions), [action.dest for action in actions if not action.help]


def test_encoders_load_with_auto_model_from_another_folder(tmp_path: Path) -> None:
    encoder = RNNEncoderModel(RNNEncoderConfig.for_zoo("layerwise_statistics", FORMAL_LANG))
    encoder.save_pretrained(tmp_path / "run" / "encoder")
    EmulatorModel(EmulatorConfig.for_zoo(FORMAL_LANG)).save_pretrained(tmp_path / "run" / "emulator")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import rnn_zoos, torch, transformers\n"
            "e = transformers.AutoModel.from_pretrained('../run/encoder')\n"
            "m = transformers.AutoModel.from_pretrained('../run/emulator')\n"
            "print(type(e).__name__, type(m).__name__, sum(p.numel() for p in e.parameters()))")
    done = run("-c", code, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["RNNEncoderModel", "EmulatorModel", str(sum(p.numel() for p in encoder.parameters()))]
    assert "Loading weights" not in done.stderr and "Writing model shards" not in done.stderr


def test_push_to_hub_uploads_our_model_card(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import HfApi, ModelCard

    uploaded: dict = {}

    def create_repo(self, repo_id: str, **kwargs) -> object:
        return type("Url", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id: str, folder_path: str, **kwargs) -> str:
        uploaded.update(repo_id=repo_id, files=sorted(path.name for path in Path(folder_path).iterdir()),
                        card=(Path(folder_path) / "README.md").read_text())
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    encoder = RNNEncoderModel(RNNEncoderConfig.for_zoo("dws", FORMAL_LANG, training={"steps": 7}))
    assert encoder.push_to_hub("me/encoder") == "commit"
    assert uploaded["repo_id"] == "me/encoder"
    assert {"README.md", "config.json", "model.safetensors", "rnn_zoos_model.py"} <= set(uploaded["files"])
    card = ModelCard(uploaded["card"])
    assert card.data.library_name == "rnn-zoos" and card.data.license == "cc-by-4.0" and "rnn-zoos" in card.data.tags
    assert "arxiv:2403.11998" in card.data.tags and 'pip install "rnn-zoos @ git+' in card.text
    assert "`dws` RNN weight encoder" in card.text and '"steps": 7' in card.text
    encoder.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "README.md").read_text() == uploaded["card"]
    assert torch.equal(RNNEncoderModel.from_pretrained(tmp_path / "saved").encoder.state_dict()[next(iter(encoder.encoder.state_dict()))],
                       next(iter(encoder.encoder.state_dict().values())))


def test_importing_the_library_leaves_matplotlibs_backend_alone(tmp_path: Path) -> None:
    code = ("import matplotlib\n"
            "import rnn_zoos, rnn_zoos.hub.plots, rnn_zoos.experiments.reproduce, rnn_zoos.experiments.pretrain, rnn_zoos.zoos\n"
            "rnn_zoos.zoos.zoo_names()\n"
            "print(matplotlib.get_backend())")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "MPLBACKEND": "svg"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "svg"


ZOO_COMMANDS = ("verify", "publish", "pretrain", "downstream", "reproduce")
"""The commands that read a zoo: it is their first positional argument."""


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_one_grammar_zoo_first_revision_wherever_a_zoo_is_read_device_auto(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ZOO_COMMANDS:
        shown = help_of(command, capsys)
        assert shown.startswith(f"usage: rnn-zoos {command} ZOO "), shown.splitlines()[0]
        assert "--revision REV" in shown and "--zoo" not in shown
    for command in ("build formal-lang", "build seq-mnist", "pretrain", "downstream", "reproduce"):
        shown = " ".join(help_of(command, capsys).split())
        assert "--device {auto,cpu,cuda} where to compute: auto (cuda if available, else cpu), cpu or cuda (default: auto)" in shown
    build, pretrain = help_of("build formal-lang", capsys), help_of("pretrain", capsys)
    assert "--rnns-per-batch K " in build and "--rnns-per-batch B " in pretrain
    assert "--compile  " in build and "[COMPILE]" not in build and "--finalize  " in build  # flags take no value
    downstream = help_of("downstream", capsys)
    assert "--num-seeds N " in downstream and "--seed" not in downstream.replace("--num-seeds", "")
    for old in ("--runs-per-batch", "--batch-rnns", "--runs_per_batch", "--seeds "):
        assert old not in build + pretrain + downstream


def test_earlier_spellings_are_still_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from rnn_zoos.common.arguments import parse_config
    from rnn_zoos.zoos.build_config import BuildConfig
    from rnn_zoos.experiments.pretrain_config import PretrainConfig

    old = parse_config(PretrainConfig, "p", "", ["--zoo", "z", "--encoder", "dws", "--out", "o", "--batch-rnns", "8", "--eval_every", "3"])
    new = parse_config(PretrainConfig, "p", "", ["z", "--encoder", "dws", "--out", "o", "--rnns-per-batch", "8", "--eval-every", "3"])
    assert old == new and (new.zoo, new.batch_rnns, new.eval_every) == ("z", 8, 3)
    assert parse_config(BuildConfig, "b", "", ["--out", "o", "--runs-per-batch", "5", "--compile"]).runs_per_batch == 5
    parsed = {}
    monkeypatch.setattr("rnn_zoos.experiments.downstream.run_downstream", lambda *args, **kwargs: parsed.update(seeds=args[4]) or 1 / 0)
    monkeypatch.setattr("rnn_zoos.experiments.downstream.check_zoo", lambda *args: None)
    monkeypatch.setattr("rnn_zoos.experiments.downstream.check_study", lambda *args: None)
    for spelling in ("--seeds", "--num-seeds"):
        with pytest.raises(ZeroDivisionError):
            main(["downstream", "--zoo", "z", "--out", "/nonexistent-rnn-zoos/o", spelling, "3", "--device", "cpu"])
        assert parsed.pop("seeds") == 3


def test_an_unknown_encoder_is_one_error_line_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "z", "--encoder", "lstm_whisperer", "--out", "/nonexistent-rnn-zoos/o"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith("error: --encoder 'lstm_whisperer' is unknown; choose one of layerwise_statistics, flat")
    assert "MODULE:CLASS" in captured.err


@pytest.mark.parametrize("argv", [
    ["pretrain", "--encoder", "dws", "--out", "o"],
    ["downstream", "z", "--out", "o", "--num-seeds", "many"],
    ["build", "formal-lang", "--out", "o", "--compile", "yes"],
    ["verify", "z", "--zoo", "y"],
])
def test_a_bad_command_line_ends_in_one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and captured.err.startswith("error: "), captured.err
    assert captured.err.rstrip().endswith(f"(rnn-zoos {' '.join(argv[:2]) if argv[0] == 'build' else argv[0]} --help lists the options)")


def test_without_rnn_zoos_loading_a_model_fails_with_our_install_hint(tmp_path: Path) -> None:
    training = {"zoo": "someone/zoo", "emulation_loss": "total_variation", "validation_loss": 0.25, "ood_loss": 0.5}
    encoder = RNNEncoderModel(RNNEncoderConfig.for_zoo("flat", FORMAL_LANG, training=training))
    encoder.save_pretrained(tmp_path / "encoder")
    card = ModelCard.load(tmp_path / "encoder" / "README.md")
    assert card.data.library_name == "rnn-zoos" and card.data.datasets == ["someone/zoo"]
    assert [(result.dataset_split, result.metric_value) for result in card.data.eval_results] == [("validation", 0.25), ("ood", 0.5)]
    mode = (tmp_path / "encoder" / "model.safetensors").stat().st_mode & 0o777
    assert mode == (tmp_path / "encoder" / "config.json").stat().st_mode & 0o777 == 0o666 & ~current_umask()
    missing = ("import sys\nsys.modules['rnn_zoos'] = None  # as if rnn-zoos were not installed\nimport transformers\n"
               "transformers.AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)")
    done = run("-c", missing, str(tmp_path / "encoder"), cwd=tmp_path)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("ImportError: this is an rnn-zoos model, which the rnn-zoos library loads: pip install")
    installed = "import sys, transformers\nprint(type(transformers.AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)).__name__)"
    done = run("-c", installed, str(tmp_path / "encoder"), cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.split() == ["RNNEncoderModel"], done.stderr
    output = encoder(rnn_params(3))
    assert isinstance(output, ModelOutput) and output.embeddings.shape == (3, 16)
    emulated = EmulatorModel(EmulatorConfig.for_zoo(FORMAL_LANG))(torch.zeros(3, 5, 6), output.embeddings)
    assert isinstance(emulated, ModelOutput) and emulated.logits.shape == (3, 5, 6) and len(emulated.state) == 2


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def rnn_params(count: int) -> dict[str, torch.Tensor]:
    shapes = FORMAL_LANG.architecture.parameter_shapes()
    return {name: torch.randn(count, *shape) for name, shape in shapes.items()}
