"""The SuperGLUE task registry: ``get_task("cb")`` → a configured :class:`Task`."""

from __future__ import annotations

from typing import Any

from rpt.data.tasks.axb import AxB
from rpt.data.tasks.axg import AxG
from rpt.data.tasks.base import Task
from rpt.data.tasks.boolq import BoolQ
from rpt.data.tasks.cb import CB
from rpt.data.tasks.copa import COPA
from rpt.data.tasks.multirc import MultiRC
from rpt.data.tasks.record import ReCoRD
from rpt.data.tasks.rte import RTE
from rpt.data.tasks.wic import WiC
from rpt.data.tasks.wsc import WSC

__all__ = ["TASKS", "Task", "get_task"]

TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (BoolQ, CB, COPA, MultiRC, ReCoRD, RTE, WiC, WSC, AxB, AxG)
}


def get_task(name: str, **overrides: Any) -> Task:
    """The task called ``name`` ("cb"; the folder name "CB" or "AX-b" works too).

    ``overrides`` are the task's constructor arguments: ``template``, ``label_words``
    (None keeps the default). Unknown names raise ValueError listing the valid ones.
    """
    key = name.lower().replace("-", "").replace("_", "") if isinstance(name, str) else name
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid names: {', '.join(sorted(TASKS))}")
    return TASKS[key](**overrides)
