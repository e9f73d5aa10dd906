"""Resume a run mid-epoch exactly where its checkpoint left it (docs/reliability.md).

Lightning 2.6 restores the loop counters, optimizer, schedulers and callbacks from a checkpoint,
but not the position of a plain ``DataLoader`` inside its epoch: after a restart the loader
begins the epoch again, so a run resumed from a mid-epoch checkpoint trains twice on the
epoch's first batches and never on its last ones (Lightning warns "your dataloader is not
resumable"). :class:`ResumableDataLoader` fixes that:

* ``state_dict`` (Lightning's ``_Stateful`` protocol, stored under the fit loop's state in every
  checkpoint): ``(epoch, batches of it already trained)``, read from the trainer's progress
  counters, not from the loader's iterator, which Lightning reads one batch ahead;
* on resume, the first iterator sets the sampler to that epoch and skips those batches. The
  training order is a pure function of ``(seed, epoch)`` (``rpt.data.samplers``), so this
  reproduces the uninterrupted run batch for batch.

The saved position reaches the loader by two roads, because Lightning's own
(``load_state_dict``, called from ``FitLoop.setup_data``) is skipped when the loader was already
built before the loops were restored, which happens whenever ``configure_optimizers`` asks for
``trainer.estimated_stepping_batches`` (``scheduler=linear``): the
:class:`rpt.callbacks.ResumeState` callback, restored before anything is built, also reads it
from the checkpoint and hands it over (:func:`take_pending_position`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader


class ResumeError(RuntimeError):
    """A checkpoint cannot be resumed exactly; the message says why and what to do."""


def fit_progress(trainer: Any) -> tuple[int, int]:
    """``(epoch, batches of that epoch already trained)`` of a fit in progress; ``(0, 0)`` outside one.

    ``processed`` counts a batch once its optimizer step is done: during ``on_train_batch_end``
    (mid-epoch checkpoints) it includes the current batch; after the epoch's validation
    (end-of-epoch checkpoints) it is the epoch's length.
    """
    if trainer is None:
        return 0, 0
    epoch_loop = trainer.fit_loop.epoch_loop
    return int(trainer.current_epoch), int(epoch_loop.batch_progress.current.processed)


def loader_state_in(checkpoint: Mapping[str, Any]) -> dict[str, int] | None:
    """The training loader's state that :class:`ResumableDataLoader` stored in ``checkpoint``."""
    fit_loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
    states = (fit_loop.get("state_dict") or {}).get("combined_loader") or []
    return states[0] if len(states) == 1 and "batches_done" in states[0] else None


def take_pending_position(trainer: Any) -> dict[str, int] | None:
    """The loader state a resume callback holds for the next iterator (handed over once)."""
    for callback in getattr(trainer, "callbacks", None) or []:
        take = getattr(callback, "take_loader_state", None)
        if callable(take):
            return take()
    return None


class ResumableDataLoader(DataLoader):
    """A training ``DataLoader`` that Lightning can stop and restart mid-epoch.

    Args: those of :class:`~torch.utils.data.DataLoader`, plus
        trainer: returns the trainer this loader feeds (``lambda: datamodule.trainer``) or None.

    Skipping happens on batch indices, before any example is fetched or collated (a microsecond
    per batch), after Lightning's DDP sharding and before worker processes start, so it works
    the same with any sampler, with workers and with several processes.
    """

    def __init__(self, *args: Any, trainer: Callable[[], Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.trainer = trainer
        self._pending: dict[str, int] | None = None
        self._skip = 0  # > 0 only while the resumed epoch's iterator is being created

    def _trainer(self) -> Any:
        return self.trainer() if self.trainer is not None else None

    # ---- Lightning's _Stateful protocol ------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        epoch, done = fit_progress(self._trainer())
        return {
            "epoch": epoch,
            "batches_done": done,
            "num_examples": len(self.dataset),  # type: ignore[arg-type]
            "num_batches": len(self),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._pending = dict(state)

    # ---- iteration ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        # Take the callback's copy too, so that it is not applied a second time later.
        from_callback = take_pending_position(self._trainer())
        state, self._pending = self._pending or from_callback, None
        if state is None:
            return super().__iter__()
        self._check(state)
        # Lightning creates the resumed epoch's iterator before it calls set_epoch, so the order
        # would be epoch 0's: set the checkpoint's epoch first.
        set_sampler_epoch(self, int(state["epoch"]))
        self._skip = int(state["batches_done"])
        try:
            return super().__iter__()
        finally:
            self._skip = 0

    @property
    def _index_sampler(self) -> Any:
        # torch's iterators draw batch indices from this (the batch sampler); they read it only
        # while being created (twice for worker processes), so the skip applies to that epoch only.
        indices = super()._index_sampler
        return _SkipFirst(self, indices)

    def _check(self, state: Mapping[str, int]) -> None:
        size = len(self.dataset)  # type: ignore[arg-type]
        if state["num_examples"] != size:
            raise ResumeError(
                f"The checkpoint was written while training on {state['num_examples']} examples, but "
                f"this run's training set has {size}: resume with the data settings of the original run "
                "(data.*, data_seed), or start a new run without resume/ckpt_path."
            )
        if state["num_batches"] != len(self):
            rank_zero_warn(
                f"The checkpoint's epoch had {state['num_batches']} batches per process, this run's has "
                f"{len(self)} (batch size or number of processes changed): training continues after batch "
                f"{state['batches_done']} of epoch {state['epoch']}, but no longer matches an uninterrupted run."
            )


class _SkipFirst:
    """``indices`` (a batch sampler) without its first ``loader._skip`` items, read at ``iter``."""

    def __init__(self, loader: ResumableDataLoader, indices: Any):
        self.loader = loader
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.indices), self.loader._skip, None)


def set_sampler_epoch(loader: DataLoader, epoch: int) -> None:
    """Call ``set_epoch`` on the loader's sampler (and batch sampler's sampler) where they have it."""
    for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        set_epoch = getattr(sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
