"""Tables and plots from finished runs: ``python -m rpt.report DIR [DIR ...]`` (also ``rpt-report``).

A ``DIR`` is a multirun folder (``python -m rpt.train -m ...``), a single run folder, any folder
holding run folders below it, or a CSV table exported from wandb's runs view. A run folder is
one that holds ``.hydra/config.yaml`` (the composed config) or ``export/rpt.json`` (the
exported metrics); its validation curve comes from ``csv/metrics.csv`` (``logger=csv``).

Runs are grouped by task, then by *method*: ``prompt.name`` plus every hyper-parameter that
differs between runs of that prompt (``residual_mlp1 lr=0.03``). The seed never enters the
method: a method's runs are its seeds. Per task and method the report gives the mean ± sample
standard deviation, min, max, the number of runs and the trainable parameter count, and draws:

* ``<task>_seeds.png``: every run's score per method (the spread across seeds is the point);
* ``<task>_curves.png``: ``val/score`` per epoch, one line per run (needs ``logger=csv``);
* ``<task>_vs_<key>.png``: the score against each numeric hyper-parameter that varies
  (learning rate, prompt length, bottleneck, ...).

Everything goes to ``--out`` (default ``<first DIR>/report``): ``report.md``, ``summary.csv``
(one row per task and method, full precision), ``runs.csv`` (one row per run) and the PNGs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_METRIC = "val/score_best"
DEFAULT_CURVE_METRIC = "val/score"
RUN_CONFIG = Path(".hydra") / "config.yaml"
RUN_META = Path("export") / "rpt.json"
RUN_CSV = Path("csv") / "metrics.csv"
CHECKPOINTS = (Path("checkpoints") / "best.ckpt", Path("checkpoints") / "last.ckpt")

# Config keys that say where and how a run was logged, not what was trained: never part of a
# method's name. ``seed`` is left out on purpose: the seeds of one method are its repeats.
IGNORED_PREFIXES = ("hydra.", "paths.", "logger.", "callbacks.")
IGNORED_KEYS = {
    "seed",
    "data.dir",
    "data.num_workers",
    "ckpt_path",
    "resume",
    "export",
    "trainer._target_",
    "trainer.default_root_dir",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
}
# Sections named by a ``name`` key: when the name differs, the section's other keys differ with
# it and add nothing to a label (model=minilm, not model.name_or_path=... model.family=...).
NAMED_SECTIONS = ("model", "task", "prompt")
# Columns of a wandb runs-table export that describe the run, not its config.
WANDB_COLUMNS = {"name", "state", "notes", "user", "tags", "created", "runtime", "sweep", "group", "id", "job type", "hostname"}
WANDB_NAME = re.compile(r"^(?P<task>[^-]+)-(?P<prompt>.+)-seed(?P<seed>-?\d+)$")


@dataclass
class Run:
    """One finished training run, as read from its folder (or one row of a wandb CSV)."""

    source: str  # the run folder, or ``table.csv:row``
    task: str
    prompt: str
    seed: int | None
    params: dict[str, Any]  # the flattened config, logging keys left out
    metrics: dict[str, float]
    trainable_parameters: int | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, value)
    method: str = ""  # filled by :func:`assign_methods`


@dataclass
class Skipped:
    source: str
    reason: str


# ---- reading runs ----------------------------------------------------------------------------
def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become tuples so that values are hashable."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = tuple(_hashable(v) for v in value)
        else:
            flat[name] = value
    return flat


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def hyperparameters(flat: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flat.items() if k not in IGNORED_KEYS and not k.startswith(IGNORED_PREFIXES)}


def is_run_dir(path: Path) -> bool:
    return (path / RUN_CONFIG).is_file() or (path / RUN_META).is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """Run folders at or below ``root``, sorted; a run's own subfolders are not searched."""
    found: list[Path] = []
    for here, subdirs, _ in os.walk(root):
        path = Path(here)
        if is_run_dir(path):
            found.append(path)
            subdirs.clear()
        else:
            subdirs[:] = sorted(d for d in subdirs if d not in {"wandb", "report", ".submitit"})
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list[Any]:
    """Sort ``10_x`` after ``2_x``, as Hydra numbers multirun jobs."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def read_csv_metrics(path: Path) -> tuple[dict[str, float], dict[str, list[tuple[int, float]]]]:
    """Lightning CSVLogger's ``metrics.csv``: each column's last logged value, and per column
    the ``(epoch, value)`` pairs of the rows that logged it (validation rows for ``val/*``)."""
    last: dict[str, float] = {}
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = _to_float(row.get("epoch"))
            for key, text in row.items():
                value = _to_float(text)
                if key in ("epoch", "step") or value is None:
                    continue
                last[key] = value
                if epoch is not None:
                    series[key].append((int(epoch), value))
    return last, dict(series)


def _to_float(text: Any) -> float | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def trainable_from_checkpoint(run_dir: Path) -> int | None:
    """Parameter count of a checkpoint's state dict: rpt checkpoints hold trainable ones only."""
    for rel in CHECKPOINTS:
        path = run_dir / rel
        if path.is_file():
            import torch  # only here: reading configs and JSON needs no torch

            state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
            return int(sum(t.numel() for t in state.values()))
    return None


def load_run_dir(run_dir: Path, curve_metric: str = DEFAULT_CURVE_METRIC) -> Run:
    """A run from its folder: config from ``.hydra/config.yaml``, metrics from ``export/rpt.json``
    (the exported best checkpoint), falling back to ``csv/metrics.csv`` for missing ones."""
    flat: dict[str, Any] = {}
    if (run_dir / RUN_CONFIG).is_file():
        from omegaconf import OmegaConf

        # Not resolved: `paths.output_dir` points at ${hydra:...}, which exists only inside a run.
        config = OmegaConf.to_container(OmegaConf.load(run_dir / RUN_CONFIG), resolve=False)
        flat = flatten(config)
    meta: dict[str, Any] = {}
    if (run_dir / RUN_META).is_file():
        meta = json.loads((run_dir / RUN_META).read_text())
        if not flat:  # an export without its config: rebuild what the export kept
            flat = flatten({"model": meta.get("backbone", {}), "prompt": meta.get("prompt", {}), "task": meta.get("task", {})})
            flat.update({k: meta.get(k) for k in ("seed", "data_seed") if k in meta})

    metrics: dict[str, float] = {}
    curve: list[tuple[int, float]] = []
    if (run_dir / RUN_CSV).is_file():
        metrics, series = read_csv_metrics(run_dir / RUN_CSV)
        curve = series.get(curve_metric, [])
    metrics.update({k: float(v) for k, v in (meta.get("metrics") or {}).items() if _to_float(v) is not None})

    task = flat.get("task.name") or (meta.get("task") or {}).get("name")
    prompt = flat.get("prompt.name") or (meta.get("prompt") or {}).get("name")
    if not task or not prompt:
        raise ValueError(f"{run_dir}: no task.name / prompt.name in {RUN_CONFIG} or {RUN_META}")
    seed = flat.get("seed", meta.get("seed"))
    trainable = meta.get("trainable_parameters")
    if trainable is None:
        trainable = trainable_from_checkpoint(run_dir)
    return Run(
        source=str(run_dir),
        task=str(task),
        prompt=str(prompt),
        seed=None if seed is None else int(seed),
        params=hyperparameters(flat),
        metrics=metrics,
        trainable_parameters=None if trainable is None else int(trainable),
        curve=curve,
    )


def load_wandb_csv(path: Path) -> list[Run]:
    """Runs from a CSV exported from wandb's runs table (config and summary columns).

    Config columns are dotted keys (``prompt.name``, ``optimizer.lr``; a ``cfg.`` or ``config.``
    prefix is dropped); metric columns hold a ``/`` (``val/score_best``). Where the table lacks
    ``task.name`` / ``prompt.name`` / ``seed``, the run name ``<task>-<prompt>-seed<k>`` that
    the wandb logger config gives every run supplies them.
    """
    runs = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):  # row 1 is the header
            flat: dict[str, Any] = {}
            metrics: dict[str, float] = {}
            for column, text in row.items():
                if column is None or text is None or column.strip().lower() in WANDB_COLUMNS:
                    continue
                key = re.sub(r"^(cfg|config)\.", "", column.strip())
                value = _to_float(text)
                if "/" in key:
                    if value is not None:
                        metrics[key] = value
                elif "." in key or key in ("seed", "data_seed", "trainable_parameters"):
                    flat[key] = value if value is not None and not text.strip().isalpha() else text.strip()
            named = WANDB_NAME.match((row.get("Name") or row.get("name") or "").strip())
            task = flat.get("task.name") or (named and named["task"])
            prompt = flat.get("prompt.name") or (named and named["prompt"])
            seed = flat.get("seed", named["seed"] if named else None)
            if not task or not prompt:
                raise ValueError(f"{path}:{i}: no task.name / prompt.name column and no run name like cb-residual_mlp1-seed0")
            trainable = flat.pop("trainable_parameters", None)
            runs.append(
                Run(
                    source=f"{path}:{i}",
                    task=str(task),
                    prompt=str(prompt),
                    seed=None if seed in (None, "") else int(float(seed)),
                    params=hyperparameters(flat),
                    metrics=metrics,
                    trainable_parameters=None if trainable in (None, "") else int(float(trainable)),
                )
            )
    return runs


def collect_runs(
    paths: Sequence[str | Path], metric: str = DEFAULT_METRIC, curve_metric: str = DEFAULT_CURVE_METRIC
) -> tuple[list[Run], list[Skipped]]:
    """Every run under ``paths`` that has ``metric``; the others, with the reason, as skipped."""
    runs: list[Run] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.suffix.lower() == ".csv":
            candidates: Iterable[Run] = load_wandb_csv(path)
        elif path.is_dir():
            run_dirs = find_run_dirs(path)
            if not run_dirs:
                raise FileNotFoundError(
                    f"{path}: no run folders (a run folder holds {RUN_CONFIG} or {RUN_META}); "
                    "give a multirun folder, a run folder, or a CSV exported from wandb"
                )
            candidates = []
            for run_dir in run_dirs:
                try:
                    candidates.append(load_run_dir(run_dir, curve_metric))
                except (OSError, ValueError) as err:
                    skipped.append(Skipped(str(run_dir), str(err)))
        else:
            raise FileNotFoundError(f"{path}: neither a folder nor a .csv file")
        for run in candidates:
            key = str(Path(run.source).resolve()) if ":" not in run.source else run.source
            if key in seen:  # the same run reached through two DIR arguments
                continue
            seen.add(key)
            value = run.metrics.get(metric)
            if value is None or not math.isfinite(value):
                reason = f"no finite {metric} (unfinished run?)" if value is None else f"{metric} = {value}"
                skipped.append(Skipped(run.source, reason))
            else:
                runs.append(run)
    return runs, skipped


# ---- methods and statistics ------------------------------------------------------------------
def varying_keys(runs: Sequence[Run], ignore: Iterable[str] = ()) -> list[str]:
    """Hyper-parameters that take more than one value among runs of the same task and prompt."""
    ignore = set(ignore)
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.task, run.prompt)].append(run)
    keys: set[str] = set()
    for group in groups.values():
        all_keys = set().union(*(r.params for r in group))
        for key in all_keys - ignore:
            if len({_hashable(r.params.get(key)) for r in group}) > 1:
                keys.add(key)
    # model.name differs -> model.* differ with it; keep the name only.
    for section in NAMED_SECTIONS:
        if f"{section}.name" in keys:
            keys = {k for k in keys if not k.startswith(f"{section}.") or k == f"{section}.name"}
    return sorted(keys)


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """``optimizer.lr`` -> ``lr`` unless two keys share their last part (then the full key)."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def assign_methods(runs: Sequence[Run], ignore: Iterable[str] = ()) -> list[str]:
    """Set every run's ``method`` (prompt name + its differing hyper-parameters); returns those keys."""
    keys = varying_keys(runs, ignore)
    names = short_names(keys)
    for run in runs:
        parts = [run.prompt] + [f"{names[k]}={format_value(run.params.get(k))}" for k in keys if k != "prompt.name"]
        run.method = " ".join(parts)
    return keys


@dataclass
class Row:
    """One line of a task's table: a method's runs summarised."""

    task: str
    method: str
    values: list[float]
    seeds: list[int | None]
    trainable: list[int]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); NaN for a single run."""
        return statistics.stdev(self.values) if self.n > 1 else math.nan

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def trainable_text(self) -> str:
        if not self.trainable:
            return "?"
        low, high = min(self.trainable), max(self.trainable)
        return f"{low:,}" if low == high else f"{low:,}–{high:,}"

    def seeds_text(self) -> str:
        return ", ".join("?" if s is None else str(s) for s in self.seeds)


def summarise(runs: Sequence[Run], metric: str) -> dict[str, list[Row]]:
    """Per task, one :class:`Row` per method, ordered: plain prompt tuning first, then by name
    and by the hyper-parameter values (numbers compared as numbers)."""
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.task, run.method)].append(run)
    tables: dict[str, list[Row]] = defaultdict(list)
    for (task, method), members in groups.items():
        members = sorted(members, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0))
        tables[task].append(
            Row(
                task=task,
                method=method,
                values=[r.metrics[metric] for r in members],
                seeds=[r.seed for r in members],
                trainable=[r.trainable_parameters for r in members if r.trainable_parameters is not None],
            )
        )
    for rows in tables.values():
        rows.sort(key=lambda row: _method_key(row.method))
    return dict(sorted(tables.items()))


def _method_key(method: str) -> list[Any]:
    head, *rest = method.split(" ")
    key: list[Any] = [head != "none", head]
    for part in rest:
        value = part.split("=", 1)[-1]
        number = _to_float(value)
        key.append((0, number, "") if number is not None else (1, 0.0, value))
    return key


def duplicate_seeds(rows: Iterable[Row]) -> list[str]:
    warnings = []
    for row in rows:
        seen = [s for s in row.seeds if s is not None]
        twice = sorted({s for s in seen if seen.count(s) > 1})
        if twice:
            warnings.append(f"{row.task} / {row.method}: seed(s) {twice} appear more than once")
    return warnings


# ---- writing ---------------------------------------------------------------------------------
def fmt(value: float, digits: int = 4) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| method | n | mean ± std | min | max | trainable params | seeds |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.n} | {fmt(r.mean)} ± {fmt(r.std)} | {fmt(r.min)} | {fmt(r.max)} "
            f"| {r.trainable_text()} | {r.seeds_text()} |"
        )
    return "\n".join(lines)


def write_csvs(out: Path, tables: Mapping[str, Sequence[Row]], runs: Sequence[Run], metric: str) -> None:
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "method", "metric", "n", "mean", "std", "min", "max", "trainable_parameters", "seeds"])
        for rows in tables.values():
            for r in rows:
                trainable = r.trainable[0] if r.trainable and len(set(r.trainable)) == 1 else r.trainable_text()
                writer.writerow([r.task, r.method, metric, r.n, repr(r.mean), repr(r.std), repr(r.min), repr(r.max), trainable, r.seeds_text()])
    with open(out / "runs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "method", "prompt", "seed", metric, "trainable_parameters", "source"])
        for run in sorted(runs, key=lambda r: (r.task, _method_key(r.method), r.seed or 0)):
            writer.writerow([run.task, run.method, run.prompt, run.seed, repr(run.metrics[metric]), run.trainable_parameters, run.source])


