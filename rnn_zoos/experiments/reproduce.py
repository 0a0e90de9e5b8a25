"""The whole study in one command: pretrain the six encoders (and yours), run every downstream target, write a report.

    rnn-zoos reproduce ZOO --out DIR [--scale tiny|small|paper] [--device auto|cpu|cuda] [--revision REV]
        [--encoders ENCODER ...]

Writes ``DIR/REPORT.md`` (emulation loss per encoder as in the paper's Table 2; downstream metrics
per encoder, target and split with 95 % confidence intervals, for pretrained encoders, the same
architectures trained end to end, and the trivial floor; cloned performance; PCA plots of the
embeddings coloured by task and by accuracy), ``DIR/results.json`` with every number of the report,
and the runs themselves (``DIR/pretrain/<encoder>``, ``DIR/predictions.pt``). ``--encoders`` picks
which of the six run and adds encoders of your own (an installed encoder's name, or ``MODULE:CLASS``),
which the report shows beside them. Every pretraining run resumes where it stopped, so an interrupted
reproduction continues when run again. The report lists every setting that differs from the paper.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any


from rnn_zoos.common.arguments import DEVICE, OUT, REVISION, ZOO, CommandParser
from rnn_zoos.common.errors import ZooError, report
from rnn_zoos.common.files import atomic_write, check_out_folder, json_text, output_folder, save_atomically
from rnn_zoos.hub.provenance import run_provenance
from rnn_zoos.common.results import check_results_folder
from rnn_zoos.format import ZooInfo
from rnn_zoos.zoos import zoo_kind

from .data import check_device, check_encoders, check_zoo, load_splits
from .downstream import embedder, run_downstream
from ..models.encoders import ENCODERS
from ..models.encoders.registry import REFERENCE_HELP, folder_name
from ..models.modeling import RNNEncoderModel
from .pretrain import PretrainConfig, pretrain
from .report import SCALES, Scale, differences, pca_plots, write_report

__all__ = ["SCALES", "Scale", "main", "reproduce"]


def reproduce(zoo: str, scale_name: str, out: Path, device: str = "auto", encoders: list[str] | None = None,
              ray: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """Run the study on the zoo (at ``revision``); returns the results (also in ``out/results.json``).

    ``ray``: run the pretraining runs as parallel Ray tasks on the cluster at this address (``local``: a local
    instance; :mod:`rnn_zoos.experiments.ray_runs`). Every option is checked before ``out`` is made; if the study fails,
    ``out`` is not left behind empty. An ``out`` holding an unfinished study of ``reproduce`` is resumed.
    """
    if scale_name not in SCALES:
        raise ZooError(f"--scale {scale_name!r} is unknown; choose tiny, small or paper")
    names = study_encoders(encoders or [])
    check_encoders("--encoders", names)
    device = check_device(device)
    check_out_folder(out)
    check_results_folder(out, "reproduce", resumes=True)
    info = check_zoo(zoo, revision)
    check_encoders("--encoders", names, zoo_kind(info.zoo))
    with output_folder(out):
        return run_study(zoo, info, scale_name, out, device, names, ray, revision)


def study_encoders(named: list[str]) -> list[str]:
    """The encoders a study runs: the six built-in ones named in ``named`` (all six if it names none), then the others
    it names (installed encoders, ``MODULE:CLASS``), each once."""
    builtin = [name for name in named if name in ENCODERS]
    return list(dict.fromkeys([*(builtin or ENCODERS), *(name for name in named if name not in ENCODERS)]))


def run_study(zoo: str, info: ZooInfo, scale_name: str, out: Path, device: str, names: list[str],
              ray: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """Pretrain the encoders ``names`` on the zoo of ``info``, run the downstream study, write the report into ``out``."""
    scale = SCALES[scale_name]
    kind = zoo_kind(info.zoo)
    runs = {encoder: {"zoo": zoo, "revision": revision, "encoder": encoder, "out": str((out / "pretrain" / folder_name(encoder)).resolve()),
                      "device": device, **scale.pretraining} for encoder in names}
    if ray is not None:
        from .ray_runs import pretrain_with_ray

        summaries = dict(zip(names, pretrain_with_ray(ray, list(runs.values()))))
    splits = load_splits(zoo, device, revision)  # once, shared by every run below
    emulation, cloned, models = {}, {}, {}
    for encoder in names:
        run = Path(runs[encoder]["out"])
        summary = summaries[encoder] if ray is not None else pretrain(PretrainConfig(**runs[encoder]), splits)
        model = RNNEncoderModel.from_pretrained(run / "encoder").to(device)
        models[encoder] = model
        emulation[encoder] = {
            "selected_on": model.config.training.get("selected_on", "validation"),
            "validation_loss": model.config.training["validation_loss"],
            "ood_loss": model.config.training["ood_loss"],
            "steps": model.config.training["steps"],
            "trained_steps": summary["steps"],
            "parameters": summary["parameters"]["encoder"],
        }
        cloned[encoder] = {
            measure: {split: entry[key] for split, entry in summary.get("cloned_best_model", {}).items()}
            for measure, key in (("paper", "mean_abs_difference"), ("rnn_zoos", "rnn_zoos_mean_abs_difference"))
        }
        cloned[encoder]["official_min"] = summary.get("cloned_official_min")
        cloned[encoder]["rnns"] = {split: entry["rnns"] for split, entry in summary.get("cloned_best_model", {}).items()}
        cloned[encoder]["emulated_all_zero"] = _emulated_all_zero(run)
    downstream, outputs = run_downstream(
        zoo,
        {name: embedder(model) for name, model in models.items()},
        names,
        seeds=scale.seeds,
        probe_steps=scale.probe_steps,
        supervised_steps=scale.supervised_steps,
        supervised_batch=scale.supervised_batch,
        device=device,
        splits=splits,
        revision=revision,
    )
    save_atomically(outputs, out / "predictions.pt")
    results = {
        "zoo": zoo,
        "zoo_name": info.zoo,
        "scale": scale_name,
        "settings": asdict(scale),
        "device": device,
        "differences_from_paper": differences(scale_name, info),
        "zoo_notes": info.notes,
        "emulation": emulation,
        "downstream": downstream,
        "cloned": cloned,
        "paper_emulation_loss": kind.paper_emulation_loss,
        "zoo_splits": {split: {"runs": len(entry.runs), "rows": entry.num_rows, "tasks": len(entry.tasks)}
                       for split, entry in info.splits.items()},
        "plots": pca_plots(out, splits, models),
        "provenance": run_provenance(zoo, revision),
    }
    with atomic_write(out / "results.json") as temporary:
        temporary.write_text(json_text(results, indent=1))
    write_report(out, results)
    return results


def _emulated_all_zero(run: Path) -> bool:
    """Whether every emulator of the pretraining run ``run`` scored 0 (the paper's measure) on every RNN it stood in for."""
    path = run / "cloned.json"
    if not path.is_file():
        return False
    scores = [value for entry in json.loads(path.read_text()).values() for value in entry["cloned"]]
    return bool(scores) and all(value == 0 for value in scores)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = CommandParser(prog or "rnn-zoos reproduce", __doc__.split("\n")[0])
    parser.add(ZOO)
    parser.add(OUT, type=Path, help="folder for REPORT.md, results.json and the runs (resumed if interrupted)")
    parser.add_argument("--scale", default="tiny", help="tiny (CI, minutes on a CPU), small, or paper (the paper's settings)")
    parser.add_argument("--encoders", nargs="*", default=None, metavar="ENCODER",
                        help="which of the six encoders run (default: all six), and encoders of your own that run beside them; "
                             f"each is {REFERENCE_HELP}")
    parser.add(DEVICE)
    parser.add(REVISION)
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run the pretraining runs as parallel Ray tasks on the cluster at ADDRESS (without ADDRESS: a local "
                             "Ray instance); one per GPU, or per CPU")
    args = parser.parse_args(argv)
    try:
        reproduce(args.zoo, args.scale, args.out, args.device, args.encoders, args.ray, args.revision)
    except ZooError as error:
        return report(error)
    print(f"wrote {args.out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
