"""Every experiment, search, launcher and wandb sweep file composes into a valid training config.

No model is loaded: these tests compose configs only (a fraction of a second each).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from rpt.config import check_config

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "src" / "rpt" / "conf"
EXPERIMENTS = sorted((CONF / "experiment").glob("*.yaml"))
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


def compose_train(overrides, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=hydra)
    if not hydra:
        with open_dict(cfg):
            cfg.paths.output_dir = "unused"
    return cfg


def first_command(path: Path) -> list[str]:
    """The overrides of the ``python -m rpt.train ...`` command on the file's first lines,
    each comma-separated multirun list replaced by its first value."""
    for line in path.read_text().splitlines()[:3]:
        match = re.search(r"python -m rpt\.train (.*?)(\s{2,}\(|$)", line.lstrip("# "))
        if match:
            args = [a for a in shlex.split(match.group(1)) if a not in ("-m", "--multirun")]
            return [re.sub(r"=([^,]*),.*$", r"=\1", a) if "(" not in a else a for a in args]
    raise AssertionError(f"{path}: no `python -m rpt.train ...` command in its first lines")


def test_the_paper_and_offline_experiments_are_shipped() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {
        "t5_base_10tok",
        "t5_base_100tok",
        "t5_large_10tok",
        "t5_large_100tok",
        "minilm_seeds",
    } <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_composes_and_starts_with_its_command(path: Path, tmp_path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0] == "# @package _global_", (
        f"{path.name}: first line must be '# @package _global_'"
    )
    overrides = first_command(path)
    assert f"experiment={path.stem}" in overrides, (
        f"{path.name}: its command must use experiment={path.stem}"
    )
    cfg = compose_train(overrides)
    # What the file sets wins over conf/train.yaml's defaults (and is not silently dropped).
    own = OmegaConf.load(path)
    for key in ("prompt.length", "optimizer.lr", "trainer.max_epochs"):
        value = OmegaConf.select(own, key)
        if value is not None:
            assert OmegaConf.select(cfg, key) == value, f"{path.name}: {key}"
    with open_dict(cfg):
        cfg.data.dir = None  # the data's presence is not what is checked here
    check_config(cfg)


@pytest.mark.parametrize(
    "name,model,length", [("t5_base_10tok", "t5_base", 10), ("t5_large_100tok", "t5_large", 100)]
)
def test_paper_settings(name: str, model: str, length: int) -> None:
    cfg = compose_train([f"experiment={name}"])
    assert (
        cfg.model.name == model
        and cfg.prompt.name == "residual_mlp1"
        and cfg.prompt.length == length
    )
    assert cfg.prompt.net.bottleneck == 800 and cfg.optimizer.lr == 0.3 and cfg.data.batch_size == 8
    assert cfg.trainer.max_epochs == 20 and cfg.trainer.accelerator == "gpu"


def test_minilm_seeds_is_offline_and_the_command_line_wins() -> None:
    cfg = compose_train(["experiment=minilm_seeds", "task=rte", "prompt=none", "seed=3"])
    assert cfg.model.name_or_path.startswith("pkg:") and cfg.trainer.accelerator == "cpu"
    assert cfg.logger._target_.endswith("CSVLogger")
    assert (cfg.task.name, cfg.prompt.name, cfg.seed) == ("rte", "none", 3)


SEARCHES = sorted((CONF / "hparams_search").glob("*.yaml"))


@pytest.mark.parametrize("path", SEARCHES, ids=lambda p: p.stem)
def test_optuna_search_composes_and_its_space_names_real_keys(path: Path) -> None:
    overrides = first_command(path)
    assert f"hparams_search={path.stem}" in overrides
    cfg = compose_train(overrides, hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert {"optimizer.lr", "prompt.length"} <= set(sweeper.params)
    for key in sweeper.params:  # a misspelt key would only fail at the first trial
        assert OmegaConf.select(cfg, key) is not None, (
            f"{path.name}: hydra.sweeper.params.{key} is not a key of {overrides}"
        )


def test_optuna_default_space_is_lr_bottleneck_length() -> None:
    params = compose_train(["hparams_search=optuna"], hydra=True).hydra.sweeper.params
    assert set(params) == {"optimizer.lr", "prompt.net.bottleneck", "prompt.length"}


def test_slurm_launcher_composes_without_submitting() -> None:
    cfg = compose_train(
        ["launcher=slurm", "experiment=t5_base_10tok", "hydra.launcher.partition=gpu"], hydra=True
    )
    launcher = cfg.hydra.launcher
    assert (
        launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert (
        launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1
    )
    # Without launcher=..., runs stay on this machine.
    assert compose_train([], hydra=True).hydra.launcher._target_.endswith("BasicLauncher")


def test_sweep_files_are_shipped() -> None:
    assert {p.stem for p in SWEEPS} >= {
        "seeds",
        "lr_bottleneck_length",
        "lr_bottleneck_length_bayes",
    }


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_wandb_sweep_file_is_valid_and_its_command_composes(path: Path) -> None:
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    sweep = yaml.safe_load(path.read_text())
    assert sweep["method"] in ("grid", "random", "bayes")
    assert sweep["metric"] == {"name": "val/score_best", "goal": "maximize"}
    assert sweep["program"] and sweep["parameters"]
    command = sweep["command"]
    assert command[:5] == ["${env}", "python", "-m", "rpt.train", "${args_no_hyphens}"]
    assert "logger.offline=false" in command, "a sweep needs the wandb logger online"
    # What the agent would run for the first grid point (or the low end of a distribution).
    first = {}
    for key, spec in sweep["parameters"].items():
        if "value" in spec:
            first[key] = {"value": spec["value"]}
        elif "values" in spec:
            first[key] = {"value": spec["values"][0]}
        else:
            assert spec["distribution"] in (
                "log_uniform_values",
                "uniform",
                "int_uniform",
                "q_log_uniform_values",
            )
            assert spec["min"] < spec["max"]
            first[key] = {"value": spec["min"]}
    args = create_sweep_command_args({"args": first})["args_no_hyphens"]
    extra = [c for c in command[5:] if not c.startswith("${")]
    cfg = compose_train(args + extra)
    for key, spec in first.items():
        if "." in key:  # a value override (a bare key is a config group choice)
            assert OmegaConf.select(cfg, key) == spec["value"], key
    assert cfg.logger.offline is False and cfg.logger.group == f"{cfg.task.name}-{cfg.prompt.name}"
