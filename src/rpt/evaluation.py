"""Evaluate a module on any split of any task: predictions, then the task's official metrics.

Used at the end of training for the diagnostics (AX-b, AX-g are scored with the RTE prompt) and
by prediction; validation during training goes through the module's own hooks.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from rpt.data.example import Example
from rpt.data.tasks.base import Task


@torch.no_grad()
def predict_loader(
    module,
    loader: DataLoader,
    mode: str | None = None,
    desc: str = "predicting",
    limit_batches: int | None = None,
) -> list[tuple[Example, str]]:
    """``(example, predicted text)`` for every example the loader yields (or its first batches)."""
    was_training = module.training
    module.eval()
    out: list[tuple[Example, str]] = []
    try:
        batches = itertools.islice(loader, limit_batches)
        for batch in tqdm(
            batches,
            desc=desc,
            leave=False,
            total=limit_batches or len(loader),
            disable=len(loader) < 20,
        ):
            batch = module.transfer_batch_to_device(batch, module.device, 0)
            out += list(zip(batch["examples"], module.predict_texts(batch, mode=mode)))
    finally:
        module.train(was_training)
    return out


def evaluate_loader(
    module,
    task: Task,
    loader: DataLoader,
    mode: str | None = None,
    limit_batches: int | None = None,
) -> dict[str, Any]:
    """The task's metrics (``score`` included) over everything the loader yields."""
    pairs = predict_loader(
        module, loader, mode, desc=f"evaluating {task.name}", limit_batches=limit_batches
    )
    return task.compute_metrics([ex for ex, _ in pairs], [text for _, text in pairs])
