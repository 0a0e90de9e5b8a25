"""The package's architecture (ARCHITECTURE.md): wings that import only wings below them, and no import circle."""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import WING_LEVELS, circles, imports, module_names, upward_imports

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 420


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return imports(ROOT, "rnn_zoos")


def test_no_import_circle(graph) -> None:
    assert circles(graph) == []


def test_wings_import_only_lower_wings(graph) -> None:
    assert upward_imports(graph) == []


def test_every_module_lies_in_a_wing_but_the_facade_and_the_command_line(graph) -> None:
    top = sorted(module for module in graph if module.count(".") == 1 and module.split(".")[1] not in WING_LEVELS)
    assert top == ["rnn_zoos.auto_classes", "rnn_zoos.cli"]
    for name in WING_LEVELS:
        docstring = (ROOT / "rnn_zoos" / name / "__init__.py").read_text()
        assert docstring.startswith('"""') and "import" in docstring.lower().split('"""')[1], f"{name}/__init__.py must say what it may import"


def test_no_wing_imports_the_facade(graph) -> None:
    assert sorted(module for module, targets in graph.items() if "rnn_zoos" in targets and module.count(".") > 1) == []


def test_modules_stay_small() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in module_names(ROOT, "rnn_zoos").items()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_planted_circle_is_found_even_inside_a_function_or_under_type_checking(tmp_path: Path) -> None:
    root = write_package(tmp_path, {
        "rnn_zoos/__init__.py": "",
        "rnn_zoos/format/__init__.py": "",
        "rnn_zoos/format/info.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..zoos import kind\n",
        "rnn_zoos/zoos/__init__.py": "",
        "rnn_zoos/zoos/kind.py": "def f():\n    from rnn_zoos.format.info import x\n",
        "rnn_zoos/hub/__init__.py": "",
        "rnn_zoos/hub/a.py": "from . import b\n",
        "rnn_zoos/hub/b.py": "import rnn_zoos.hub.a\n",
    })
    graph = imports(root, "rnn_zoos")
    assert circles(graph) == [["rnn_zoos.format.info", "rnn_zoos.zoos.kind"], ["rnn_zoos.hub.a", "rnn_zoos.hub.b"]]
    assert upward_imports(graph) == ["rnn_zoos.format.info -> rnn_zoos.zoos.kind"]


def test_an_import_into_a_higher_wing_is_found(tmp_path: Path) -> None:
    root = write_package(tmp_path, {
        "rnn_zoos/__init__.py": "",
        "rnn_zoos/lstm/__init__.py": "",
        "rnn_zoos/lstm/weights.py": "from ..builder.build import main\n",
        "rnn_zoos/builder/__init__.py": "",
        "rnn_zoos/builder/build.py": "from ..lstm.weights import LSTMWeights\nfrom .. import lstm\n",
    })
    graph = imports(root, "rnn_zoos")
    assert upward_imports(graph) == ["rnn_zoos.lstm.weights -> rnn_zoos.builder.build"]
    assert graph["rnn_zoos.builder.build"] == {"rnn_zoos.lstm.weights", "rnn_zoos.lstm"}
