"""The options every zoo builder shares: ``rnn-zoos build ZOO --out DIR [--runs ...]`` (a zoo kind may add its own)."""

from __future__ import annotations

import shutil
from pathlib import Path
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..common.arguments import check_device, check_seed, option_name
from ..common.errors import ZooError
from ..common.files import check_out_folder


@dataclass
class BuildConfig:
    """Options shared by every zoo builder (the command line of ``rnn-zoos build ZOO`` and ``python -m builders.<zoo>``)."""

    out: str = field(metadata={"help": "folder to write the zoo to (created; an unfinished build there is resumed)"})
    runs: int = field(default=1000, metadata={"help": "number of training runs"})
    steps: int = field(default=20_000, metadata={"help": "optimizer steps per run; snapshot steps and learning-rate breakpoints scale with it"})
    seed: int = field(default=0, metadata={"help": "zoo seed; run r uses the seed SeedSequence([seed, r])"})
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runs_per_batch: Optional[int] = field(
        default=None, metadata={"metavar": "K", "help": "runs trained at once as one batched model (default: 1000 on cuda, 64 on cpu)"}
    )
    compile: bool = field(
        default=False, metadata={"help": "compile the training loss (forward and backward) with torch.compile; rounding may differ slightly"}
    )
    cuda_graphs: bool = field(
        default=False, metadata={"help": "capture the training step once as a CUDA graph and replay it (cuda only); rounding may differ slightly"}
    )
    worker: Optional[str] = field(
        default=None, metadata={"metavar": "I/N", "help": "I/N: train chunks I, I+N, ... of the plan first, then any free ones (SLURM job arrays)"}
    )
    finalize: bool = field(default=False, metadata={"help": "train nothing; write the zoo once every chunk is finished"})
    no_wait: bool = field(
        default=False, metadata={"help": "exit at once (status 3) instead of waiting while the chunks left are trained by other workers"}
    )
    ray: Optional[str] = field(
        default=None,
        metadata={"nargs": "?", "const": "local", "metavar": "ADDRESS",
                  "help": "train the chunks as Ray tasks on the cluster at ADDRESS (without ADDRESS: a local Ray instance)"},
    )

    def __post_init__(self) -> None:
        if self.device == "auto":
            self.device = check_device(self.device)

    def validate(self) -> None:
        """Raise :class:`ZooError` for a value no build can use."""
        check_device(self.device)
        check_out_folder(self.out)
        for name in ("runs", "steps"):
            if getattr(self, name) < 1:
                raise ZooError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.runs_per_batch is not None and self.runs_per_batch < 1:
            raise ZooError(f"{option_name('runs_per_batch')} must be at least 1, got {self.runs_per_batch}")
        check_seed(self.seed)
        check_plan_size(self.runs, self.out)
        self.worker_slot()
        if self.no_wait and (self.finalize or self.ray):
            raise ZooError("--no-wait is for a worker that would wait for others; leave it out with --finalize and --ray")
        if self.finalize and (self.worker or self.ray):
            raise ZooError("--finalize trains nothing: leave out --worker and --ray")
        if self.worker and self.ray:
            raise ZooError("--worker and --ray are two ways to share a build; choose one")
        if self.cuda_graphs and self.device != "cuda":
            raise ZooError(f"--cuda-graphs captures the training step as a CUDA graph, which needs --device cuda; "
                           f"drop --cuda-graphs on {self.device} (--compile works there)")
        if self.compile and self.device == "cpu" and not any(shutil.which(name) for name in ("g++", "c++", "clang++")):
            raise ZooError("--compile on cpu needs a C++ compiler (g++ or clang++) on the PATH; install one or drop --compile")

    def worker_slot(self) -> tuple[int, int] | None:
        """``--worker I/N`` as ``(I, N)``; None without it."""
        if self.worker is None:
            return None
        try:
            index, count = (int(part) for part in self.worker.split("/"))
        except ValueError:
            raise ZooError(f"--worker {self.worker!r}: give I/N, this worker's index I of N workers, such as 0/4") from None
        if not 0 <= index < count:
            raise ZooError(f"--worker {self.worker}: I must be at least 0 and below N")
        return index, count

    @property
    def batch_runs(self) -> int:
        """Runs per batched model."""
        default = 1000 if self.device == "cuda" else 64
        return min(self.runs, self.runs_per_batch or default)


MAX_RUNS = 10_000_000
"""The most runs a zoo may have: its plan, split and ``meta/info.json`` are held in memory (the paper's zoos have 1,000)."""
MIN_BYTES_PER_RUN = 10_000
"""Less than any zoo stores per run (the smallest, formal languages 2x32, stores its ~10 KB of weights at each of 9 or more
snapshots): a lower bound of the disk a zoo needs."""


def check_plan_size(runs: int, out: str) -> None:
    """Raise :class:`ZooError` for a zoo of ``runs`` runs that no machine holds: more than :data:`MAX_RUNS`, or more than
    the disk free under ``out`` could take at :data:`MIN_BYTES_PER_RUN` each."""
    needed = runs * MIN_BYTES_PER_RUN
    if runs > MAX_RUNS:
        raise ZooError(f"--runs {runs}: a zoo of that size needs more than {needed / 1e12:,.1f} TB of disk, and its plan and "
                       f"split more memory than a machine has; build at most {MAX_RUNS:,} runs (the paper's zoos have 1,000)")
    folder = next((path for path in (Path(out).absolute(), *Path(out).absolute().parents) if path.exists()), Path("/"))
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ZooError(f"--runs {runs}: the zoo needs more than {needed / 1e9:,.1f} GB of disk, and {free / 1e9:,.1f} GB are "
                       f"free under {folder}; free space or pass fewer --runs")


ENGINE_OPTIONS = ("worker", "finalize", "ray", "no_wait")
"""Options that say how a build is shared between processes, not what the zoo holds."""
