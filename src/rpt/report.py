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
WANDB_COLUMNS = {
    "name",
    "state",
    "notes",
    "user",
    "tags",
    "created",
    "runtime",
    "sweep",
    "group",
    "id",
    "job type",
    "hostname",
}
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
    return {
        k: v
        for k, v in flat.items()
        if k not in IGNORED_KEYS and not k.startswith(IGNORED_PREFIXES)
    }


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
            flat = flatten(
                {
                    "model": meta.get("backbone", {}),
                    "prompt": meta.get("prompt", {}),
                    "task": meta.get("task", {}),
                }
            )
            flat.update({k: meta.get(k) for k in ("seed", "data_seed") if k in meta})

    metrics: dict[str, float] = {}
    curve: list[tuple[int, float]] = []
    if (run_dir / RUN_CSV).is_file():
        metrics, series = read_csv_metrics(run_dir / RUN_CSV)
        curve = series.get(curve_metric, [])
    metrics.update(
        {k: float(v) for k, v in (meta.get("metrics") or {}).items() if _to_float(v) is not None}
    )

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


def load_wandb_csv(path: Path) -> tuple[list[Run], list[Skipped]]:
    """Runs from a CSV exported from wandb's runs table (config and summary columns).

    Config columns are dotted keys (``prompt.name``, ``optimizer.lr``; a ``cfg.`` or ``config.``
    prefix is dropped); metric columns hold a ``/`` (``val/score_best``). Where the table lacks
    ``task.name`` / ``prompt.name`` / ``seed``, the run name ``<task>-<prompt>-seed<k>`` that
    the wandb logger config gives every run supplies them. Rows whose ``State`` is not
    ``finished`` (crashed, killed, still running: their summary is partial) are skipped.
    """
    runs: list[Run] = []
    skipped: list[Skipped] = []
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
                elif text.strip() and (
                    "." in key or key in ("seed", "data_seed", "trainable_parameters")
                ):
                    flat[key] = (
                        value if value is not None and not text.strip().isalpha() else text.strip()
                    )
            named = WANDB_NAME.match((row.get("Name") or row.get("name") or "").strip())
            task = flat.get("task.name") or (named and named["task"])
            prompt = flat.get("prompt.name") or (named and named["prompt"])
            seed = flat.get("seed", named["seed"] if named else None)
            if not task or not prompt:
                raise ValueError(
                    f"{path}:{i}: no task.name / prompt.name column and no run name like cb-residual_mlp1-seed0"
                )
            trainable = flat.pop("trainable_parameters", None)
            state = (row.get("State") or row.get("state") or "finished").strip().lower()
            if state != "finished":
                skipped.append(Skipped(f"{path}:{i}", f"wandb state {state!r}"))
                continue
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
    return runs, skipped


def collect_runs(
    paths: Sequence[str | Path],
    metric: str = DEFAULT_METRIC,
    curve_metric: str = DEFAULT_CURVE_METRIC,
) -> tuple[list[Run], list[Skipped]]:
    """Every run under ``paths`` that has ``metric``; the others, with the reason, as skipped."""
    runs: list[Run] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.suffix.lower() == ".csv":
            candidates, not_finished = load_wandb_csv(path)
            skipped += not_finished
        elif path.is_dir():
            run_dirs = find_run_dirs(path)
            if not run_dirs:
                raise FileNotFoundError(
                    f"{path}: no run folders (a run folder holds {RUN_CONFIG} or {RUN_META}); "
                    "give a multirun folder, a run folder, or a CSV exported from wandb"
                )
            candidates: list[Run] = []
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
                reason = (
                    f"no finite {metric} (unfinished run?)"
                    if value is None
                    else f"{metric} = {value}"
                )
                skipped.append(Skipped(run.source, reason))
            else:
                runs.append(run)
    return runs, skipped


# ---- methods and statistics ------------------------------------------------------------------
def _by_task_and_prompt(runs: Sequence[Run]) -> list[list[Run]]:
    """The runs grouped by (task, prompt config): hyper-parameters are compared within these."""
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.task, run.prompt)].append(run)
    return list(groups.values())


def varying_keys(runs: Sequence[Run], ignore: Iterable[str] = ()) -> list[str]:
    """Hyper-parameters that take more than one value among runs of the same task and prompt."""
    ignore = set(ignore)
    keys: set[str] = set()
    for group in _by_task_and_prompt(runs):
        all_keys = set().union(*(r.params for r in group))
        for key in all_keys - ignore:
            # A key some runs lack (added by a later rpt version) differs only if the runs
            # that have it disagree; see keys_some_runs_lack.
            if len({_hashable(r.params[key]) for r in group if key in r.params}) > 1:
                keys.add(key)
    # model.name differs -> model.* differ with it; keep the name only.
    for section in NAMED_SECTIONS:
        if f"{section}.name" in keys:
            keys = {k for k in keys if not k.startswith(f"{section}.") or k == f"{section}.name"}
    return sorted(keys)


def keys_some_runs_lack(runs: Sequence[Run], ignore: Iterable[str] = ()) -> dict[str, Any]:
    """``{key: value}`` for keys that some runs of a task and prompt lack and the others share
    with one value: typically a key a later rpt version added, with its default (runs from
    before and after pool into one method). The report lists them, so none is hidden."""
    ignore = set(ignore)
    found: dict[str, Any] = {}
    for group in _by_task_and_prompt(runs):
        for key in set().union(*(r.params for r in group)) - ignore:
            present = [r.params[key] for r in group if key in r.params]
            if len(present) < len(group) and len({_hashable(v) for v in present}) == 1:
                found[key] = present[0]
    return dict(sorted(found.items()))


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """``optimizer.lr`` -> ``lr`` unless two keys share their last part (then the full key)."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def format_value(value: Any) -> str:
    """Short and without spaces (a method name is split on spaces): 0.3, 800, [0.9,0.999]."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value).replace(" ", "_")


def assign_methods(runs: Sequence[Run], ignore: Iterable[str] = ()) -> list[str]:
    """Set every run's ``method`` (prompt name + its differing hyper-parameters); returns those keys."""
    keys = varying_keys(runs, ignore)
    names = short_names(keys)
    for run in runs:
        # A key this run's config lacks (no bottleneck for prompt=none) is left out of its name.
        parts = [run.prompt] + [
            f"{names[k]}={format_value(run.params[k])}"
            for k in keys
            if k != "prompt.name" and run.params.get(k) is not None
        ]
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
        members = sorted(
            members, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0)
        )
        tables[task].append(
            Row(
                task=task,
                method=method,
                values=[r.metrics[metric] for r in members],
                seeds=[r.seed for r in members],
                trainable=[
                    r.trainable_parameters for r in members if r.trainable_parameters is not None
                ],
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


def write_csvs(
    out: Path, tables: Mapping[str, Sequence[Row]], runs: Sequence[Run], metric: str
) -> None:
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "task",
                "method",
                "metric",
                "n",
                "mean",
                "std",
                "min",
                "max",
                "trainable_parameters",
                "seeds",
            ]
        )
        for rows in tables.values():
            for r in rows:
                trainable = (
                    r.trainable[0]
                    if r.trainable and len(set(r.trainable)) == 1
                    else r.trainable_text()
                )
                writer.writerow(
                    [
                        r.task,
                        r.method,
                        metric,
                        r.n,
                        repr(r.mean),
                        repr(r.std),
                        repr(r.min),
                        repr(r.max),
                        trainable,
                        r.seeds_text(),
                    ]
                )
    with open(out / "runs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["task", "method", "prompt", "seed", metric, "trainable_parameters", "source"]
        )
        for run in sorted(runs, key=lambda r: (r.task, _method_key(r.method), r.seed or 0)):
            writer.writerow(
                [
                    run.task,
                    run.method,
                    run.prompt,
                    run.seed,
                    repr(run.metrics[metric]),
                    run.trainable_parameters,
                    run.source,
                ]
            )


# ---- plots -----------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on clusters and CI
    import matplotlib.pyplot as plt

    return plt


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    """A colour per label; past ten labels (tab10 would repeat) one per prompt config instead."""
    plt = _pyplot()
    cycle = plt.get_cmap("tab10").colors
    if len(labels) <= len(cycle):
        return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}
    prompts = list(dict.fromkeys(_prompt_of(label) for label in labels))
    return {label: cycle[prompts.index(_prompt_of(label)) % len(cycle)] for label in labels}


def _prompt_of(method: str) -> str:
    return method.split(" ", 1)[0]


def _legend_outside(ax) -> None:
    # Outside the axes, so it never hides a point; bbox_inches="tight" keeps it in the file.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)


def plot_seeds(rows: Sequence[Row], task: str, metric: str, path: Path) -> Path:
    """One row per method, one dot per run, the mean ± std as a bar: the spread is the point."""
    plt = _pyplot()
    colors = _colors([r.method for r in rows])
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7.5, 1.3 + 0.55 * n))
    for i, row in enumerate(rows):
        y = n - 1 - i  # the table's first row on top
        k = row.n
        # The runs in a band above the method's line (spread in seed order, so that equal scores
        # stay visible), the mean ± std just below it, so that the two never hide each other.
        offsets = [0.1] if k == 1 else [-0.02 + 0.3 * j / (k - 1) for j in range(k)]
        ax.scatter(
            row.values,
            [y + o for o in offsets],
            s=30,
            color=colors[row.method],
            alpha=0.85,
            zorder=3,
            edgecolors="none",
            label="one run (seed)" if i == 0 else None,
        )
        ax.errorbar(
            row.mean,
            y - 0.2,
            xerr=None if k == 1 else row.std,
            fmt="D",
            color="black",
            markersize=5,
            capsize=4,
            linewidth=1.5,
            zorder=4,
            label="mean ± std" if i == 0 else None,
        )
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{r.method}  (n={r.n})" for r in reversed(rows)])
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(metric)
    ax.set_title(f"{task}: {metric}, one dot per run")
    ax.grid(axis="x", alpha=0.3)
    _legend_outside(ax)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(
    runs: Sequence[Run], methods: Sequence[str], task: str, curve_metric: str, path: Path
) -> Path | None:
    """``curve_metric`` per epoch, one line per run, one colour per method; None without curves."""
    with_curves = [r for r in runs if r.curve]
    if not with_curves:
        return None
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    colors = _colors(methods)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for run in with_curves:
        epochs, values = zip(*sorted(run.curve))
        ax.plot(
            [e + 1 for e in epochs],
            values,
            marker="o",
            markersize=3,
            linewidth=1.2,
            alpha=0.7,
            color=colors[run.method],
        )
    # One legend entry per colour: per method, or per prompt config when colours are shared.
    by_prompt = len(set(colors.values())) < len(colors)
    legend_of = _prompt_of if by_prompt else (lambda m: m)
    counts: dict[str, int] = defaultdict(int)
    for run in with_curves:
        counts[legend_of(run.method)] += 1
    entries = list(dict.fromkeys(legend_of(m) for m in methods))
    first = {legend_of(m): m for m in reversed(methods)}
    handles = [
        Line2D(
            [],
            [],
            color=colors[first[e]],
            marker="o",
            markersize=3,
            label=f"{e}{', all settings' if by_prompt else ''} ({counts[e]} run{'' if counts[e] == 1 else 's'})",
        )
        for e in entries
        if counts[e]
    ]
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(curve_metric)
    ax.set_title(f"{task}: {curve_metric} after each epoch, one line per run")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def numeric_runs(runs: Sequence[Run], key: str) -> list[Run]:
    """The runs whose ``key`` is a number (``prompt.net.bottleneck`` is absent for ``prompt=none``)."""
    return [r for r in runs if _is_number(r.params.get(key))]


def numeric_keys(runs: Sequence[Run], keys: Sequence[str]) -> list[str]:
    """The varying keys that take at least two numeric values among ``runs``."""
    return [k for k in keys if len({r.params[k] for r in numeric_runs(runs, k)}) > 1]


MAX_LINES = 8
MAX_TICKS = 8  # more distinct values (a random or Bayesian search): matplotlib picks the ticks


def plot_against(
    runs: Sequence[Run], key: str, keys: Sequence[str], task: str, metric: str, path: Path
) -> Path:
    """The score against one hyper-parameter: every run as a dot, the mean per value as a line.

    One line per setting of the other varying hyper-parameters; when that makes more than
    ``MAX_LINES`` lines, one per prompt config (the mean then runs over the other settings too).
    """
    plt = _pyplot()
    names = short_names(list(keys))
    others = [k for k in keys if k not in (key, "prompt.name")]

    def label(run: Run, with_others: bool) -> str:
        extra = (
            [f"{names[k]}={format_value(run.params.get(k))}" for k in others] if with_others else []
        )
        return " ".join([run.prompt, *extra])

    marginal = len({label(r, True) for r in runs}) > MAX_LINES
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[label(run, not marginal)].append(run)
    ordered = sorted(groups, key=_method_key)
    colors = _colors(ordered)
    values = [float(r.params[key]) for r in runs]
    distinct = sorted(set(values))
    # A grid repeats each value: join the means. A random or Bayesian search rarely repeats one:
    # a line through single runs would draw noise, so show the runs alone.
    grid = len(distinct) <= MAX_TICKS
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name in ordered:
        members = groups[name]
        xs = [float(r.params[key]) for r in members]
        ys = [r.metrics[metric] for r in members]
        ax.scatter(
            xs,
            ys,
            s=22 if grid else 30,
            alpha=0.45 if grid else 0.85,
            color=colors[name],
            edgecolors="none",
            label=None if grid else name,
        )
        if not grid:
            continue
        by_x: dict[float, list[float]] = defaultdict(list)
        for x, y in zip(xs, ys):
            by_x[x].append(y)
        line_x = sorted(by_x)
        means = [statistics.fmean(by_x[x]) for x in line_x]
        ax.plot(line_x, means, marker="o", linewidth=2, color=colors[name], label=name)
    if min(values) > 0 and max(values) / min(values) >= 10:
        ax.set_xscale("log")
    if grid:  # label exactly the grid's values
        ax.set_xticks(distinct)
        ax.set_xticklabels([format_value(v) for v in distinct])
        ax.minorticks_off()
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    over = "seeds and other settings" if marginal else "seeds"
    legend = f"dots: runs; lines: mean over {over}" if grid else "dots: runs"
    ax.set_title(f"{task}: {metric} against {names[key]}\n({legend})", fontsize=11)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


# ---- the report ------------------------------------------------------------------------------
def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")


def write_report(
    paths: Sequence[str | Path],
    out: Path,
    metric: str = DEFAULT_METRIC,
    curve_metric: str = DEFAULT_CURVE_METRIC,
    ignore: Iterable[str] = (),
    plots: bool = True,
) -> dict[str, Any]:
    """Read the runs under ``paths`` and write ``report.md``, the CSVs and the plots into ``out``.

    Returns ``{"report", "summary", "runs_csv", "figures", "runs", "skipped", "tables"}``.
    """
    runs, skipped = collect_runs(paths, metric, curve_metric)
    if not runs:
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:5])
        raise ValueError(
            f"no finished runs with {metric} under {', '.join(map(str, paths))}. {reasons}"
        )
    keys = assign_methods(runs, ignore)
    tables = summarise(runs, metric)
    out.mkdir(parents=True, exist_ok=True)
    write_csvs(out, tables, runs, metric)

    lines = [
        f"# Report: {metric}",
        "",
        f"{len(runs)} run{'' if len(runs) == 1 else 's'} from {', '.join(str(p) for p in paths)}.",
        "",
        "Per task and method: mean ± sample standard deviation (n − 1; – for a single run), min and max "
        "over the method's runs (its seeds), their number n, and the trainable parameter count. A method "
        "is the prompt config plus every hyper-parameter that differs between runs of that prompt"
        + (f" (here: {', '.join(keys)})." if keys else " (here: none besides the seed)."),
    ]
    figures: list[Path] = []
    notes: list[str] = duplicate_seeds(row for rows in tables.values() for row in rows)
    lacking = keys_some_runs_lack(runs, ignore)
    if lacking:
        notes.append(
            "some runs' configs lack "
            + ", ".join(f"{k} (the others: {format_value(v)})" for k, v in lacking.items())
            + "; counted as the same setting (a key added by a later rpt version). If that is "
            "not so, rerun those runs."
        )
    for task, rows in tables.items():
        task_runs = [r for r in runs if r.task == task]
        lines += ["", f"## {task}", "", markdown_table(rows)]
        if not plots:
            continue
        methods = [r.method for r in rows]
        made = [
            (
                f"{task}: {metric} per run",
                plot_seeds(rows, task, metric, out / f"{_file_part(task)}_seeds.png"),
            )
        ]
        curves = plot_curves(
            task_runs, methods, task, curve_metric, out / f"{_file_part(task)}_curves.png"
        )
        if curves is None:
            notes.append(
                f"{task}: no validation curves (they come from csv/metrics.csv: train with logger=csv)"
            )
        else:
            made.append((f"{task}: {curve_metric} per epoch", curves))
        for key in numeric_keys(task_runs, keys):
            target = out / f"{_file_part(task)}_vs_{_file_part(key)}.png"
            key_runs = numeric_runs(task_runs, key)
            made.append(
                (
                    f"{task}: {metric} against {key}",
                    plot_against(key_runs, key, keys, task, metric, target),
                )
            )
        lines.append("")
        lines += [f"![{title}]({p.name})" for title, p in made]
        figures += [p for _, p in made]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if skipped:
        lines += ["", f"## Skipped ({len(skipped)})", ""] + [
            f"- {s.source}: {s.reason}" for s in skipped
        ]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return {
        "report": report,
        "summary": out / "summary.csv",
        "runs_csv": out / "runs.csv",
        "figures": figures,
        "runs": runs,
        "skipped": skipped,
        "tables": tables,
        "notes": notes,
    }


def default_out(first: str | Path) -> Path:
    first = Path(first)
    return first.with_name(f"{first.stem}_report") if first.is_file() else first / "report"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rpt-report",
        description="Tables (mean ± std over seeds) and plots from finished rpt runs.",
        epilog="Example: python -m rpt.report outputs/multirun/2025-01-01_12-00-00 --out reports/cb",
    )
    parser.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="multirun folder, run folder, folder of runs, or a wandb CSV export",
    )
    parser.add_argument(
        "--metric",
        default=DEFAULT_METRIC,
        help=f"the score to summarise (default {DEFAULT_METRIC}: the best validation score, the exported checkpoint's)",
    )
    parser.add_argument(
        "--curve-metric",
        default=DEFAULT_CURVE_METRIC,
        help=f"the per-epoch curve (default {DEFAULT_CURVE_METRIC}; from csv/metrics.csv)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <first DIR>/report)"
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="KEY",
        help="a config key never to put in a method's name (repeatable), e.g. trainer.accelerator",
    )
    parser.add_argument("--no-plots", action="store_true", help="tables and CSVs only")
    args = parser.parse_args(argv)

    out = args.out or default_out(args.dirs[0])
    try:
        result = write_report(
            args.dirs, out, args.metric, args.curve_metric, args.ignore, plots=not args.no_plots
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"[rpt.report] {err}", file=sys.stderr)
        return 2
    for task, rows in result["tables"].items():
        print(f"\n{task} ({args.metric})\n{markdown_table(rows)}")
    for note in result["notes"]:
        print(f"[rpt.report] note: {note}")
    if result["skipped"]:
        print(
            f"[rpt.report] skipped {len(result['skipped'])} run(s); see the report's last section"
        )
    print(f"\n[rpt.report] {len(result['runs'])} runs -> {out}")
    for path in [result["report"], result["summary"], result["runs_csv"], *result["figures"]]:
        print(f"[rpt.report]   {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
