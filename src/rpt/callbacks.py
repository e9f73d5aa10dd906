"""Callbacks and checkpoint I/O that make runs survive crashes (docs/reliability.md).

* :class:`ResumeState` (``conf/callbacks/default.yaml``, key ``resume``): writes ``last.ckpt``
  after every validation and every N optimizer steps inside an epoch, and stores the random
  number generators' states in every checkpoint, so that ``resume=true`` continues bit for bit
  where the run stopped.
* :class:`AtomicCheckpointIO` (added by ``rpt.train``): a checkpoint file is either the old one
  or the complete new one, never half written, whatever kills the process during the write.

With :class:`rpt.resume.ResumableDataLoader` (the training loader's position in its epoch) these
are everything Lightning does not already restore.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn

from rpt.resume import loader_state_in

# ---- random number generators ----------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """This process's global RNG states (torch, CUDA, Python, NumPy) as plain data and tensors.

    Plain data so that checkpoints keep loading with ``torch.load(weights_only=True)``: NumPy's
    state array becomes a list of ints.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": (kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate(
        (version, tuple(internal), gauss)
    )  # a list after a round trip through torch.save
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _gather(obj: Any) -> list[Any]:
    """``obj`` of every process, by rank (just ``[obj]`` without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, obj)
    return everyone


# ---- the callback ------------------------------------------------------------------------------


class ResumeState(Checkpoint):
    """``last.ckpt`` after every validation and every N steps, with RNG states: a bitwise resume.

    Lightning's ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only at validations
    that also write a top-k checkpoint (Lightning 2.6), so after an epoch that did not improve
    ``val/score`` it is stale; this callback owns ``last.ckpt`` instead. Being a ``Checkpoint``,
    Lightning runs it after the ``ModelCheckpoint`` (callbacks' order is kept among checkpoints),
    so the file it writes already holds that validation's best-checkpoint bookkeeping.

    Args:
        dirpath: folder of ``last.ckpt`` (the ModelCheckpoint's ``dirpath``).
        every_n_train_steps: also write ``last.ckpt`` every this many optimizer steps inside an
            epoch; 0: only after validations.
        filename: the file written, ``last.ckpt`` so that ``resume=true`` finds it.

    Notes:
        * Checkpoints are taken where Lightning 2.6 restarts cleanly: after a training batch
          that is not the epoch's last, and at the end of validation. Not on an epoch's last
          batch (resuming there makes Lightning skip that epoch's validation), not at
          ``on_train_epoch_end`` (resuming there, Lightning draws the next epoch's first batch
          before it sets the sampler's epoch), and not in the middle of gradient accumulation
          (accumulated gradients are not saved). With ``check_val_every_n_epoch > 1`` an epoch
          without validation therefore ends with its last mid-epoch checkpoint.
        * RNG states are restored at ``on_train_start``, after Lightning has built the resumed
          run's data iterators (which draw from the global generator): from then on the resumed
          run draws exactly what the uninterrupted run drew after the checkpoint.
        * Under DDP every process's states are gathered and each restores its own.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike,
        every_n_train_steps: int = 200,
        filename: str = "last.ckpt",
    ):
        if (
            isinstance(every_n_train_steps, bool)
            or not isinstance(every_n_train_steps, int)
            or every_n_train_steps < 0
        ):
            raise ValueError(
                f"callbacks.resume.every_n_train_steps must be a whole number >= 0 (0 = off), got {every_n_train_steps!r}"
            )
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self.filename = filename
        self._pending_rng: list[dict[str, Any]] | None = None
        self._pending_loader: dict[str, int] | None = None
        self._last_saved_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # A process killed during a write leaves its temporary file (AtomicCheckpointIO); the
        # checkpoint it was replacing is intact, so the leftover is just removed.
        if trainer.is_global_zero and self.dirpath.is_dir():
            for leftover in self.dirpath.glob(".*.tmp-*"):
                leftover.unlink(missing_ok=True)

    # ---- state carried in every checkpoint ----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # Trainer.save_checkpoint runs on every process, so the gather cannot deadlock.
        return {"rng": _gather(rng_state())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_rng = state_dict.get("rng")

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Restored before the training loader exists, so that the loader learns where its epoch
        # stopped even when Lightning builds it before restoring the loops (rpt.resume).
        self._pending_loader = loader_state_in(checkpoint)

    def take_loader_state(self) -> dict[str, int] | None:
        """The training loader's saved position, handed over once (see rpt.resume)."""
        state, self._pending_loader = self._pending_loader, None
        return state

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        states, self._pending_rng = self._pending_rng, None
        if not states:
            return
        rank = trainer.global_rank
        if len(states) != trainer.world_size:
            rank_zero_warn(
                f"The checkpoint holds RNG states of {len(states)} processes, this run has {trainer.world_size}: "
                "random draws (dropout) will not match an uninterrupted run."
            )
            rank = rank % len(states)
        set_rng_state(states[rank])

    # ---- last.ckpt -----------------------------------------------------------------------------
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        trainer.save_checkpoint(self.dirpath / self.filename)
        self._last_saved_step = trainer.global_step

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        n = self.every_n_train_steps
        step = trainer.global_step
        if n == 0 or step == 0 or step % n or step == self._last_saved_step:
            return
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if progress.current.ready % trainer.accumulate_grad_batches:
            return  # mid-accumulation: the gradients so far would be lost
        if progress.is_last_batch or progress.current.ready >= trainer.num_training_batches:
            return  # the end-of-epoch checkpoint follows, after validation
        trainer.save_checkpoint(self.dirpath / self.filename)
        self._last_saved_step = step


# ---- atomic checkpoint files -----------------------------------------------------------------


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file next to the target, ``fsync``, then ``os.replace``.

    Lightning 2.6's own ``_atomic_save`` writes through an fsspec transaction whose temporary
    file is made by ``tempfile.mkstemp()`` in the system temp folder and then moved with
    ``shutil.move``: an atomic rename only when that folder is on the same file system as the
    run (often not: a tmpfs ``/tmp``, a cluster's scratch), otherwise a copy that a kill can cut
    short, leaving a truncated ``last.ckpt``; it also never ``fsync``s. Here the temporary file
    sits in the checkpoint's own folder, so the rename is always atomic, and it is flushed to
    disk first. Remote paths (``s3://`` …) keep Lightning's behaviour.

    Loading defaults to ``weights_only=True``: no code runs from a checkpoint file.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(
                tmp, target
            )  # atomic on POSIX and Windows: readers see old or new, never half
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        kwargs = {} if map_location is None else {"map_location": map_location}
        return super().load_checkpoint(
            path, weights_only=True if weights_only is None else weights_only, **kwargs
        )


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
