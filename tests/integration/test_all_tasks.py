"""Every SuperGLUE task trains (fast_dev_run) on tiny_t5, in both evaluation modes.

Real files from RPT_DATA_DIR where they exist; the hand-written fixtures for what the shared
folder lacks (BoolQ train, all of ReCoRD).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from omegaconf import open_dict

from rpt.data.tasks import TASKS
from rpt.train import train
from tests.conftest import FIXTURES, require_real_data_dir
from tests.helpers import compose_config

pytestmark = pytest.mark.integration

FROM_FIXTURES = {"boolq", "record"}


def data_dir_for(task: str) -> Path:
    if task in FROM_FIXTURES:
        return FIXTURES / "superglue"
    return require_real_data_dir()


@pytest.mark.parametrize("mode", ["rank", "generate"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_fast_dev_run(task: str, mode: str, tmp_path: Path) -> None:
    cfg = compose_config(
        [
            "model=tiny_t5",
            f"task={task}",
            "prompt=residual_mlp1",
            "trainer=cpu",
            "trainer.fast_dev_run=true",
            "logger=none",
            f"eval.mode={mode}",
            "eval.max_new_tokens=4",
            "data.max_train_examples=32",
            f"data.dir={data_dir_for(task)}",
        ]
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    metrics = train(cfg)
    trained_on = TASKS[task].trained_on or task
    expected = TASKS[trained_on].metric_names
    for name in (*expected, "score"):
        value = metrics[f"val/{name}"]
        assert math.isfinite(value), (name, value)
    if TASKS[task].trained_on:
        for name in (*TASKS[task].metric_names, "score"):
            assert math.isfinite(metrics[f"{task}/{name}"])
