"""What every benchmark shares: process set-up, configs composed as ``rpt.train`` composes them,
timing statistics, and peak-memory probes.

Numbers on a shared machine are noisy, so every benchmark runs its rows side by side in one
process, alternating them repeat after repeat, and reports medians and *paired* ratios: the
ratio of two rows within the same repeat (same moment, same load), then the median over repeats.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Threads for every row. One, because on a 2-core machine shared with other jobs two OpenMP
#: threads spend most of their time waiting for each other at barriers (measured: a MiniLM
#: step at batch 8 x 64 tokens took 3.2 s with 2 threads and 0.36 s with 1 while two other
#: trainings ran). Pass --threads 2 on a quiet machine.
DEFAULT_THREADS = 1


def setup_process(threads: int) -> None:
    """Offline, quiet, and the same thread count for every row (call before any torch work)."""
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_MODE", "offline")
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "rpt", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")


def compose(overrides: Sequence[str], output_dir: str | os.PathLike) -> Any:
    """The training config ``rpt.train`` would run with ``overrides`` (outside a Hydra run)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    import rpt

    config_dir = str(Path(rpt.__file__).parent / "conf")  # the configs rpt.train composes
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


# ---- timing ----------------------------------------------------------------------------------
@dataclass
class Timing:
    """One run of a row: wall and CPU seconds of the timed part, and the examples it trained on.

    ``cpu`` is this process's CPU time (all its threads). With one compute thread it is the
    time the work would take on a core of its own, so it is far less sensitive than wall time
    to other jobs on a shared machine (cache and memory-bandwidth contention remain).
    """

    seconds: float
    examples: int
    cpu: float
    extra: dict[str, float] = field(default_factory=dict)


class Clock:
    """Wall and process-CPU stopwatch."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, examples: int, **extra: float) -> Timing:
        return Timing(
            time.perf_counter() - self.wall, examples, time.process_time() - self.cpu, dict(extra)
        )


@dataclass
class RowResult:
    name: str
    timings: list[Timing] = field(default_factory=list)

    def rates(self, clock: str = "wall") -> list[float]:
        """Examples per second (``wall``) or per CPU second (``cpu``), one per repeat."""
        return [t.examples / (t.seconds if clock == "wall" else t.cpu) for t in self.timings]

    def median_rate(self, clock: str = "wall") -> float:
        return statistics.median(self.rates(clock))

    def spread(self, clock: str = "wall") -> str:
        """Min-max of the rate over repeats, to show the noise."""
        rates = self.rates(clock)
        return f"{min(rates):.2f}-{max(rates):.2f}"


def paired_ratio(a: RowResult, b: RowResult, clock: str = "wall") -> float:
    """Median over repeats of rate(a) / rate(b), each pair measured in the same repeat."""
    return statistics.median(x / y for x, y in zip(a.rates(clock), b.rates(clock)))


def alternate(
    rows: dict[str, Callable[[], Timing]], repeats: int, log: Callable[[str], None] = print
) -> dict[str, RowResult]:
    """Run every row once per repeat, rotating the order each repeat so no row always goes first."""
    names = list(rows)
    results = {name: RowResult(name) for name in names}
    for r in range(repeats):
        turn = names[r % len(names) :] + names[: r % len(names)]
        for name in turn:
            timing = rows[name]()
            results[name].timings.append(timing)
            log(
                f"  repeat {r + 1}/{repeats} {name:<16} {timing.examples / timing.seconds:7.2f} ex/s"
                f" {timing.examples / timing.cpu:7.2f} ex/cpu-s ({timing.seconds:.2f} s wall,"
                f" {timing.cpu:.2f} s cpu, {timing.examples} examples)"
            )
    return results


def timed(fn: Callable[[], int]) -> Timing:
    """Time ``fn`` (which returns the number of examples it trained on)."""
    clock = Clock()
    return clock.stop(fn())


# ---- memory ----------------------------------------------------------------------------------
def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak_rss() -> int:
    """Reset this process's peak resident set size (Linux ``clear_refs`` 5); returns RSS in KiB.

    torch's CPU allocator is invisible to ``tracemalloc``; the kernel's high-water mark of
    resident memory sees everything (tensors, allocator caches, Python objects).
    """
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    """Peak resident set size since the last :func:`reset_peak_rss`, in KiB."""
    return _status_kb("VmHWM")


def write_json(path: str | os.PathLike | None, payload: Any) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2, default=str))
