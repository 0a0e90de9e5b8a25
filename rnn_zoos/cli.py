"""The ``rnn-zoos`` command: one entry point for every job, each with the options of its ``python -m`` form.

    rnn-zoos build ZOO --out DIR [options]     build a zoo (ZOO: one of the registered zoo kinds)
    rnn-zoos verify ZOO                        check a zoo (a folder or a Hub dataset repo id)
    rnn-zoos publish ZOO --repo-id ORG/NAME    push a zoo folder to the Hub
    rnn-zoos import-release SRC --out DIR      convert the paper's original release
    rnn-zoos pretrain ZOO --encoder E --out DIR
    rnn-zoos downstream ZOO --out DIR [--pretrained RUN/encoder ...]
    rnn-zoos reproduce ZOO --out DIR [--scale tiny|small|paper]

``rnn-zoos COMMAND --help`` lists a command's options (:mod:`rnn_zoos.common.arguments`: the grammar they share).
``rnn-zoos --help`` and ``--version`` import nothing heavy (torch, ``datasets``, ``transformers``): a command's
module is imported only when it runs.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "build": ("rnn_zoos.builder.command", "build a zoo of trained RNNs (rnn-zoos build ZOO --help for its options)"),
    "verify": ("rnn_zoos.hub.verify", "check a zoo folder or Hub dataset repo"),
    "publish": ("rnn_zoos.hub.publish", "push a zoo folder to a Hugging Face dataset repo"),
    "import-release": ("rnn_zoos.release.importer", "convert a zoo of the paper's original release"),
    "pretrain": ("rnn_zoos.experiments.pretrain", "pretrain a weight encoder by emulation"),
    "downstream": ("rnn_zoos.experiments.downstream", "predict properties of RNNs from their weights"),
    "reproduce": ("rnn_zoos.experiments.reproduce", "the paper's study in one command: pretraining, downstream, report"),
}


def usage() -> str:
    """The top-level help: the commands (``rnn-zoos build --help`` lists the zoos it builds)."""
    width = max(map(len, COMMANDS))
    lines = ["usage: rnn-zoos COMMAND [options]", "", "Model zoos of trained RNNs on the Hugging Face Hub, and the tools around them.",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "rnn-zoos COMMAND --help lists the options of a command; rnn-zoos build --help, the zoos it builds.",
              "rnn-zoos --version prints the version."]
    return "\n".join(lines)


def build_usage() -> str:
    """The help of ``rnn-zoos build``: the zoos it builds, with what each holds."""
    from .zoos import zoo_kind, zoo_names

    names = zoo_names()
    width = max(map(len, names))
    lines = ["usage: rnn-zoos build ZOO --out DIR [options]", "", "zoos:"]
    lines += [f"  {name:<{width}}  {zoo_kind(name).description}" for name in names]
    lines += ["", "rnn-zoos build ZOO --help lists the options of a zoo's builder."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``rnn-zoos COMMAND ...``; returns the command's exit status (2 for an unknown command or zoo)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from .common.version import __version__

        print(f"rnn-zoos {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose from {', '.join(COMMANDS)} (rnn-zoos --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if command != "build":
        return module.main(rest, prog=f"rnn-zoos {command}")
    if not rest or rest[0] in ("-h", "--help"):
        print(build_usage(), file=sys.stdout if rest else sys.stderr)
        return 0 if rest else 2
    from .common.errors import ZooError, report
    from .zoos import zoo_kind

    try:
        zoo_kind(rest[0])
    except ZooError as error:
        return report(error)
    return module.main(rest[0], rest[1:], prog=f"rnn-zoos build {rest[0]}")


if __name__ == "__main__":
    sys.exit(main())
