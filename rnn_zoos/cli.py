"""The ``rnn-zoos`` command: one entry point for every job, each with the options of its ``python -m`` form.

    rnn-zoos build ZOO --out DIR [options]     build a zoo (ZOO: one of the registered zoo kinds)
    rnn-zoos verify DIR_OR_REPO_ID             check a zoo
    rnn-zoos publish DIR --repo-id ORG/NAME    push a zoo to the Hub
    rnn-zoos import-release SRC --out DIR      convert the paper's original release
    rnn-zoos pretrain --zoo Z --encoder E --out DIR
    rnn-zoos downstream --zoo Z --out DIR [--pretrained RUN/encoder ...]
    rnn-zoos reproduce --zoo Z --out DIR [--scale tiny|small|paper]

``rnn-zoos COMMAND --help`` lists a command's options.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "build": ("rnn_zoos.build", "build a zoo of trained RNNs (rnn-zoos build ZOO --help for its options)"),
    "verify": ("rnn_zoos.verify", "check a zoo folder or Hub dataset repo"),
    "publish": ("rnn_zoos.publish", "push a zoo folder to a Hugging Face dataset repo"),
    "import-release": ("rnn_zoos.release_import", "convert a zoo of the paper's original release"),
    "pretrain": ("rnn_zoos.experiments.pretrain", "pretrain a weight encoder by emulation"),
    "downstream": ("rnn_zoos.experiments.downstream", "predict properties of RNNs from their weights"),
    "reproduce": ("rnn_zoos.experiments.reproduce", "the paper's study in one command: pretraining, downstream, report"),
}


def usage() -> str:
    """The top-level help: the commands and the zoos ``build`` knows."""
    from .zoos import zoo_kind, zoo_names

    width = max(map(len, COMMANDS))
    lines = ["usage: rnn-zoos COMMAND [options]", "", "Model zoos of trained RNNs on the Hugging Face Hub, and the tools around them.",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "zoos (rnn-zoos build ZOO):"]
    lines += [f"  {name:<{width}}  {zoo_kind(name).description}" for name in zoo_names()]
    lines += ["", "rnn-zoos COMMAND --help lists the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``rnn-zoos COMMAND ...``; returns the command's exit status (2 for an unknown command or zoo)."""
    from .errors import ZooError, report
    from .zoos import zoo_kind, zoo_names

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"rnn-zoos {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"rnn-zoos: error: unknown command {command!r}; choose from {', '.join(COMMANDS)} (rnn-zoos --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if command != "build":
        return module.main(rest, prog=f"rnn-zoos {command}")
    if not rest or rest[0] in ("-h", "--help"):
        print(f"usage: rnn-zoos build ZOO --out DIR [options]\n\nZOO: {', '.join(zoo_names())}; "
              "rnn-zoos build ZOO --help lists its options.")
        return 0 if rest else 2
    try:
        zoo_kind(rest[0])
    except ZooError as error:
        return report(error)
    return module.main(rest[0], rest[1:], prog=f"rnn-zoos build {rest[0]}")


if __name__ == "__main__":
    sys.exit(main())
