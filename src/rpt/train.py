"""Train a soft prompt: ``python -m rpt.train task=boolq prompt=residual_mlp2`` (also ``rpt-train``).

Steps:
1. check the config (before any model is loaded, so mistakes cost seconds, not minutes);
2. seed everything and build the module (frozen backbone + prompt network) and the data;
3. ``Trainer.fit``, keeping the best checkpoint by ``val/score`` and a ``last.ckpt``;
4. export the best checkpoint's computed prompt to ``<run dir>/export``.

Returns the best validation score, so that Hydra sweepers (Optuna) can optimise it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rpt.backbones.loading import ModelLoadError
from rpt.callbacks import AtomicCheckpointIO
from rpt.config import ConfigError, check_config, run_config
from rpt.data.datamodule import SuperGLUEDataModule
from rpt.data.readers import DataError
from rpt.data.tasks import get_task
from rpt.evaluation import evaluate_loader
from rpt.module import PromptTuningModule
from rpt.resume import ResumeError

log = logging.getLogger("rpt.train")

# Errors whose message already says what to change; anything else is a bug and keeps its traceback.
# FloatingPointError: a diverged run (train.on_nonfinite=stop); ResumeError: resume with other data.
USER_ERRORS = (ConfigError, DataError, ModelLoadError, FloatingPointError, ResumeError)


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    # Checkpoint files are replaced atomically and read with weights_only=True (rpt.callbacks),
    # unless the trainer config brings its own plugins.
    extra = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, **extra)


def resume_path(cfg: DictConfig, run_dir: Path) -> str | None:
    """``ckpt_path`` if given; with ``resume=true`` the run folder's ``last.ckpt``."""
    if cfg.get("ckpt_path"):
        if not Path(str(cfg.ckpt_path)).is_file():
            raise ConfigError(
                f"ckpt_path={cfg.ckpt_path} does not exist: give the path of a .ckpt file"
            )
        check_resumable(Path(str(cfg.ckpt_path)), "ckpt_path")
        return str(cfg.ckpt_path)
    if not cfg.get("resume"):
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise ConfigError(
            f"resume=true but {last} does not exist: point hydra.run.dir at the run to resume, "
            "or pass ckpt_path=/path/to/a.ckpt"
        )
    check_resumable(last, "resume=true")
    return str(last)


def check_resumable(path: Path, option: str) -> None:
    """Refuse a weights-only checkpoint (``best.ckpt``) to continue training from.

    Lightning would fail later with a ``KeyError`` about optimizer state that names no file.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "optimizer_states" in checkpoint:
        return
    last = path.parent / "last.ckpt"
    instead = f"continue from {last}" if last.is_file() and last != path else "use a last.ckpt"
    raise ConfigError(
        f"{option}: {path} holds weights only, no optimizer state (best.ckpt is written with "
        f"callbacks.checkpoint.save_weights_only=true, for export and evaluation): training "
        f"cannot continue from it. To resume, {instead} (or resume=true with hydra.run.dir at "
        f"that run); to export it: python -m rpt.export {path} OUT_DIR"
    )


def load_trainable_state(module: PromptTuningModule, ckpt_path: str) -> dict[str, Any]:
    """Load a checkpoint's trainable parameters into ``module`` (no code runs from the file)."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    return checkpoint


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training run from a composed config; returns the final metrics."""
    # 1. fail fast on a bad config
    check_config(cfg)
    run_dir = Path(cfg.paths.output_dir)
    ckpt_path = resume_path(cfg, run_dir)
    plain = run_config(cfg)
    diagnostic = diagnostic_task(plain)

    # 2. seeds, module, data
    L.seed_everything(int(cfg.seed), workers=True)
    module = PromptTuningModule(plain)
    datamodule = make_datamodule(module, cfg, module.task)
    log.info(
        "%s on %s (%s), prompt %s: %d trainable parameters",
        module.task.name,
        cfg.model.name,
        module.backbone.family,
        cfg.prompt.name,
        module.num_trainable_parameters(),
    )

    # 3. fit
    trainer = build_trainer(cfg)
    if (cfg.get("train") or {}).get("on_nonfinite") == "skip" and trainer.world_size > 1:
        raise ConfigError(
            f"train.on_nonfinite=skip works in a single process only ({trainer.world_size} here): Lightning "
            "cannot skip a step in distributed training. Use train.on_nonfinite=stop (the default)."
        )
    try:
        # weights_only=True: resuming runs no code from the checkpoint file.
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except FloatingPointError as err:
        # train.on_nonfinite=stop: the checkpoints on disk predate the bad step; export the best.
        export_best_so_far(
            trainer, module, cfg, run_dir, notes=[*datamodule.notes, f"stopped early: {err}"]
        )
        raise
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if not trainer.is_global_zero:
        return metrics

    # 4. the best checkpoint: diagnostics (AX-b, AX-g), then the export
    checkpoint = getattr(trainer, "checkpoint_callback", None)
    best = checkpoint.best_model_path if checkpoint is not None else ""
    if best:
        load_trainable_state(module, best)
        metrics["val/score_best"] = float(module.best_score)
    if diagnostic is not None:
        metrics.update(
            evaluate_diagnostic(
                module, cfg, diagnostic, quick=bool(cfg.trainer.get("fast_dev_run"))
            )
        )
    if best and cfg.get("export", True):
        from rpt.export import write_export

        out = write_export(
            module, run_dir / "export", metrics=metrics, notes=datamodule.notes, overwrite=True
        )
        print(f"[rpt] best checkpoint: {best}\n[rpt] export: {out}")
    return metrics


def export_best_so_far(
    trainer: L.Trainer, module: PromptTuningModule, cfg: DictConfig, run_dir: Path, notes: list[str]
) -> None:
    """After a failed fit: export the best checkpoint written so far, if there is one (rank 0)."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    if not (trainer.is_global_zero and cfg.get("export", True)):
        return
    if not best:
        log.error("the run stopped before its first validation: no checkpoint to export")
        return
    from rpt.export import write_export

    load_trainable_state(module, best)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics["val/score_best"] = float(module.best_score)
    out = write_export(module, run_dir / "export", metrics=metrics, notes=notes, overwrite=True)
    print(f"[rpt] the run stopped early; best checkpoint so far: {best}\n[rpt] export: {out}")


def make_datamodule(module: PromptTuningModule, cfg: DictConfig, task) -> SuperGLUEDataModule:
    return SuperGLUEDataModule(
        task=task,
        featurize=module.backbone.featurize,
        pad_id=module.backbone.pad_id,
        prompt_length=int(cfg.prompt.length),
        data=OmegaConf.to_container(cfg.data, resolve=True),
        seed=int(cfg.seed),
        data_seed=int(cfg.data_seed),
    )


def diagnostic_task(plain: dict[str, Any]):
    """For AX-b / AX-g: switch ``plain`` to the task they are trained on; return the diagnostic.

    The benchmark scores the diagnostics with the RTE model, so the run trains and validates on
    RTE and evaluates the best checkpoint on the diagnostic at the end.
    """
    task_cfg = plain["task"]
    task = get_task(task_cfg["name"])
    if task.trained_on is None:
        return None
    log.info(
        "%s is a diagnostic: training on %s, then evaluating on %s",
        task.name,
        task.trained_on,
        task.folder,
    )
    plain["task"] = {
        "name": task.trained_on,
        "template": None,
        "label_words": task_cfg.get("label_words"),
    }
    return get_task(
        task_cfg["name"], **{k: v for k, v in task_cfg.items() if k != "name" and v is not None}
    )


def evaluate_diagnostic(
    module: PromptTuningModule, cfg: DictConfig, task, quick: bool
) -> dict[str, float]:
    """``<task>/<metric>`` on the diagnostic's (labelled) test split."""
    loader = make_datamodule(module, cfg, task).loader_for("test")
    result = evaluate_loader(module, task, loader, limit_batches=1 if quick else None)
    print(f"[rpt] {task.folder} ({'one batch' if quick else 'all'}): {result}")
    return {f"{task.name}/{k}": float(v) for k, v in result.items()}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        metrics = train(cfg)
    except USER_ERRORS as err:
        # A mistake in the config, the data or the model name: one clear sentence, no traceback.
        log.error("%s", err)
        raise SystemExit(f"rpt.train: error: {err}") from None
    return metrics.get("val/score_best")


if __name__ == "__main__":
    main()
