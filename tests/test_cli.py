"""The rnn-zoos command and its python -m forms; models that load through transformers' Auto classes from anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


def test_help_lists_every_command_and_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert all(f"  {command} " in shown for command in COMMANDS)
    assert "formal-lang" in shown and "seq-mnist" in shown
    assert main([]) == 2 and main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


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
    assert uploaded["repo_id"] == "me/encoder" and {"README.md", "config.json", "model.safetensors"} <= set(uploaded["files"])
    card = ModelCard(uploaded["card"])
    assert card.data.library_name == "transformers" and card.data.license == "cc-by-4.0" and "rnn-zoos" in card.data.tags
    assert "`dws` RNN weight encoder" in card.text and '"steps": 7' in card.text
    encoder.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "README.md").read_text() == uploaded["card"]
    assert torch.equal(RNNEncoderModel.from_pretrained(tmp_path / "saved").encoder.state_dict()[next(iter(encoder.encoder.state_dict()))],
                       next(iter(encoder.encoder.state_dict().values())))


def test_importing_the_library_leaves_matplotlibs_backend_alone(tmp_path: Path) -> None:
    code = ("import matplotlib\n"
            "import rnn_zoos, rnn_zoos.plots, rnn_zoos.experiments.reproduce, rnn_zoos.experiments.pretrain, rnn_zoos.zoos\n"
            "rnn_zoos.zoos.zoo_names()\n"
            "print(matplotlib.get_backend())")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "MPLBACKEND": "svg"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "svg"
