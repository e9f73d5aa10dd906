"""Config checks that run before any model is loaded, and the plain config a run keeps.

Unknown group choices (``task=nope``, ``prompt=nope``, ``model=nope``) are caught by Hydra itself,
which lists the available options. Here we catch values that compose fine but cannot work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rpt.data.tasks import get_task

# The parts of a config that define the model and its training; kept in checkpoints and exports.
RUN_KEYS = (
    "model",
    "task",
    "prompt",
    "optimizer",
    "scheduler",
    "eval",
    "train",
    "data",
    "seed",
    "data_seed",
)


class ConfigError(ValueError):
    """A config value that cannot work; the message says which key and what to change."""


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved, plain-data part of the config that a module and its checkpoints carry."""
    plain = {
        k: OmegaConf.to_container(cfg[k], resolve=True)
        if isinstance(cfg.get(k), DictConfig)
        else cfg.get(k)
        for k in RUN_KEYS
    }
    return plain


def check_config(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first setting that cannot work."""
    task_cfg = cfg["task"]
    try:
        task = get_task(task_cfg["name"])
    except ValueError as err:
        raise ConfigError(f"task.name: {err}") from err

    prompt = cfg["prompt"]
    length = prompt.get("length")
    if not isinstance(length, int) or length < 0:
        raise ConfigError(f"prompt.length must be a whole number >= 1, got {length!r}")
    _check_prompt_net(prompt, length)
    max_length = int(cfg["model"].get("max_length", 512))
    if length >= max_length - 1:
        raise ConfigError(
            f"prompt.length={length} does not fit model.max_length={max_length}: the prompt and at "
            f"least two input tokens must fit. Use prompt.length<={max_length - 2} or raise model.max_length."
        )
    bottleneck = (prompt.get("net") or {}).get("bottleneck")
    if bottleneck is not None and (not isinstance(bottleneck, int) or bottleneck <= 0):
        raise ConfigError(f"prompt.net.bottleneck must be a whole number > 0, got {bottleneck!r}")

    _check_learning_rates(cfg["optimizer"])
    fit_task = get_task(task.trained_on) if task.trained_on else task
    for folder in dict.fromkeys((task.folder, fit_task.folder)):
        _check_data(cfg, folder)
    _check_fit_splits(cfg, fit_task)
    _check_run_settings(cfg)


def _check_prompt_net(prompt: Mapping[str, Any], length: int) -> None:
    """Build the prompt network at a tiny width: its own checks (length, bottleneck, activation…)
    run in milliseconds, before the backbone is loaded."""
    try:
        instantiate(prompt["net"])(length=length, dim=4)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from err
    except InstantiationException as err:
        cause = err.__cause__ if isinstance(err.__cause__, (ValueError, TypeError)) else err
        raise ConfigError(f"prompt.net: {cause}") from err


def _check_learning_rates(opt: Mapping[str, Any]) -> None:
    for key in ("lr", "net_lr", "head_lr"):
        value = opt.get(key)
        if value is None and key != "lr":
            continue
        if isinstance(value, Sequence) and not isinstance(value, str):
            if len(value) == 0:
                raise ConfigError(
                    f"optimizer.{key} is an empty list: give one number (optimizer.{key}=0.3), or "
                    f"several with a multirun (python -m rpt.train -m optimizer.{key}=0.3,0.03)."
                )
            raise ConfigError(
                f"optimizer.{key} is a list {list(value)}: a run takes one learning rate; sweep "
                f"several with a multirun (python -m rpt.train -m optimizer.{key}=0.3,0.03)."
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"optimizer.{key} must be a number, got {value!r}") from None
        if not number > 0:
            raise ConfigError(f"optimizer.{key} must be > 0, got {value!r}")


def _check_data(cfg: Mapping[str, Any], folder: str) -> None:
    data = cfg.get("data") or {}
    if data.get("source", "auto") == "hub" or not data.get("dir"):
        return
    root = Path(str(data["dir"])).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"data.dir={root} does not exist. Point data.dir (or RPT_DATA_DIR) at a SuperGLUE folder, or use data.source=hub."
        )
    if not (root / folder).is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise ConfigError(
            f"data.dir={root} has no {folder}/ folder for task {cfg['task']['name']!r} "
            f"(found: {', '.join(present) or 'nothing'}). Point data.dir at a folder in the official "
            f"layout <Task>/{{train,val,test}}.jsonl, or use data.source=hub."
        )


def _check_fit_splits(cfg: Mapping[str, Any], task: Any) -> None:
    """Training needs train and val files locally, unless ``data.carve`` makes them from one."""
    data = cfg.get("data") or {}
    if (
        data.get("source", "auto") == "hub"
        or not data.get("dir")
        or (data.get("carve") or {}).get("from")
    ):
        return
    folder = Path(str(data["dir"])).expanduser() / task.folder
    missing = [
        s
        for s in ("train", "val")
        if not (folder / task.split_files.get(s, f"{s}.jsonl")).is_file()
    ]
    if missing:
        present = sorted(p.stem for p in folder.glob("*.jsonl"))
        # Carve from a labelled split: val if there is one, else train (test files have no labels).
        source = next((s for s in ("val", "train") if s in present), "val")
        raise ConfigError(
            f"{folder} has no {' or '.join(m + '.jsonl' for m in missing)} (found: {', '.join(present) or 'nothing'}). "
            f"Set data.carve={{from:{source},val_fraction:0.5}} to carve a seeded "
            "train/validation split out of one file, or point data.dir at a folder that has both."
        )


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_run_settings(cfg: Mapping[str, Any]) -> None:
    """Settings read only once the model is loaded (or deep in the data code): check them now."""
    for key in ("seed", "data_seed"):
        if not _whole(cfg.get(key), 0):
            raise ConfigError(f"{key} must be a whole number >= 0, got {cfg.get(key)!r}")
    data = cfg.get("data") or {}
    for key, minimum in (("batch_size", 1), ("eval_batch_size", 1), ("num_workers", 0)):
        if key in data and not _whole(data[key], minimum):
            raise ConfigError(f"data.{key} must be a whole number >= {minimum}, got {data[key]!r}")
    for key in ("k_per_class", "max_train_examples"):
        if data.get(key) is not None and not _whole(data[key], 1):
            raise ConfigError(
                f"data.{key} must be a whole number >= 1, or null for all examples; got {data[key]!r}"
            )
    choices = {
        ("data", "source"): ("auto", "local", "hub"),
        ("eval", "mode"): ("rank", "generate"),
        ("train", "on_nonfinite"): ("stop", "skip"),
    }
    for (group, key), allowed in choices.items():
        value = (cfg.get(group) or {}).get(key, allowed[0])
        if value not in allowed:
            raise ConfigError(f"{group}.{key} must be one of {', '.join(allowed)}; got {value!r}")
