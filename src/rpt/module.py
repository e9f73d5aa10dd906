"""PromptTuningModule: a frozen backbone, a trainable prompt network, one training loop.

Every step the reparameterizer runs once, ``P' = f(P)`` of shape ``(n, d)``, and the backbone
prepends ``P'`` to every input of the batch. The backbone (a frozen Hugging Face model) is never
trained and never written into a checkpoint: checkpoints hold the prompt, the prompt network
and, for encoders, the classification head — plus the config that rebuilds the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from hydra.utils import instantiate
from torch import Tensor, nn

from rpt.backbones import (
    Backbone,
    build_backbone,
    checkpointed_modules,
    train_checkpointed_modules,
)
from rpt.data.tasks import get_task
from rpt.prompts import Reparameterizer, initial_prompt

FROZEN_PREFIX = "backbone.model."
EVAL_MODES = ("rank", "generate")


class PromptTuningModule(L.LightningModule):
    """Trains ``n`` soft-prompt vectors (through a reparameterizer) for a frozen model.

    Args:
        cfg: the run's resolved config as plain data (keys ``model``, ``task``, ``prompt``,
            ``optimizer``, ``scheduler``, ``eval``, ``train``, ``seed``). Only this dict goes
            into the checkpoint's hyperparameters; the networks never do.
    """

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        cfg = dict(cfg)
        self.save_hyperparameters({"cfg": cfg})
        self.cfg = cfg
        self.task = get_task(cfg["task"]["name"], **_task_overrides(cfg["task"]))
        self.eval_mode = cfg.get("eval", {}).get("mode", "rank")
        if self.eval_mode not in EVAL_MODES:
            raise ValueError(f"eval.mode must be one of {EVAL_MODES}, got {self.eval_mode!r}")

        # 1. the frozen model, wrapped for its family
        self.backbone: Backbone = build_backbone(cfg["model"], num_classes=self.task.num_classes)
        # 2. the prompt network, sized by the backbone's width
        prompt_cfg = cfg["prompt"]
        self.reparam: Reparameterizer = instantiate(prompt_cfg["net"])(
            length=int(prompt_cfg["length"]), dim=self.backbone.embed_dim
        )
        # 3. the raw prompt's starting point (vocabulary samples by default)
        if self.reparam.length > 0:
            self._init_prompt(prompt_cfg.get("init") or {}, seed=int(cfg.get("seed", 0)))
        if self.num_trainable_parameters() == 0:
            raise ValueError(
                f"Nothing to train: prompt={prompt_cfg.get('name')} has no parameters and the "
                f"{self.backbone.family} backbone has no head. prompt=head_only is a baseline for "
                "encoder models (model=minilm, bert_base, …) only."
            )

        if self._checkpoints_in_eval_mode():
            checkpointed_modules(self.backbone.model)  # refuses a model that cannot, before fit

        # Checkpoints hold trainable parameters only, so loading one leaves the frozen keys out.
        self.strict_loading = False
        self.best_score = -math.inf
        self._val_records: list[tuple[int, Any, str]] = []

    def _init_prompt(self, init_cfg: Mapping[str, Any], seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        start = initial_prompt(
            init_cfg.get("strategy", "vocab"),
            self.reparam.length,
            self.backbone.input_embeddings.detach().float(),
            tokenizer=self.backbone.tokenizer,
            text=init_cfg.get("text"),
            label_words=self.task.label_words or None,
            path=init_cfg.get("path"),
            range_=float(init_cfg.get("range", 0.5)),
            vocab_sample_size=init_cfg.get("vocab_sample_size", 5000),
            generator=generator,
        )
        self.reparam.set_prompt_(start)

    # ---- the prompt --------------------------------------------------------------------------
    def prompt(self) -> Tensor:
        """``P'`` of shape ``(n, d)``, computed once for the whole batch."""
        return self.reparam()

    @torch.no_grad()
    def computed_prompt(self) -> Tensor:
        """``P'`` in eval mode (no dropout), fp32, detached: what an export stores."""
        was_training = self.reparam.training
        self.reparam.eval()
        out = self.reparam().detach().float().cpu().contiguous()
        self.reparam.train(was_training)
        return out

    def trainable_named_parameters(self) -> Iterable[tuple[str, nn.Parameter]]:
        return ((k, p) for k, p in self.named_parameters() if p.requires_grad)

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for _, p in self.trainable_named_parameters())

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # The batch's Example objects are plain Python data for metrics: only tensors move.
        examples = batch.pop("examples", None) if isinstance(batch, dict) else None
        batch = super().transfer_batch_to_device(batch, device, dataloader_idx)
        if examples is not None:
            batch["examples"] = examples
        return batch

    # ---- training ----------------------------------------------------------------------------
    def _backbone_dropout(self) -> bool:
        return bool(self.cfg.get("train", {}).get("backbone_dropout", False))

    def _checkpoints_in_eval_mode(self) -> bool:
        """Gradient checkpointing on while the frozen model trains in eval mode (no dropout)."""
        return (
            bool(self.cfg["model"].get("gradient_checkpointing")) and not self._backbone_dropout()
        )

    def on_train_epoch_start(self) -> None:
        # The frozen model's dropout: off by default (from_pretrained leaves it in eval mode, and
        # Lightning keeps that), on with train.backbone_dropout=true as in the paper's code.
        self.backbone.model.train(self._backbone_dropout())
        if self._checkpoints_in_eval_mode():
            # Hugging Face checkpoints only layers in train mode: put those (not their dropout)
            # there, or model.gradient_checkpointing=true would save no memory.
            train_checkpointed_modules(self.backbone.model)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        loss = self.backbone.loss(batch, self.prompt())
        finite = bool(torch.isfinite(loss))
        if self._trainer is not None:
            # All processes must take the same branch, or DDP waits forever for the others' gradients.
            finite = self._trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            return self._non_finite(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["source_ids"].shape[0])
        return loss

    def _non_finite(self, loss: Tensor, batch_idx: int) -> None:
        policy = self.cfg.get("train", {}).get("on_nonfinite", "stop")
        where = f"epoch {self.current_epoch}, batch {batch_idx}, global step {self.global_step}"
        if policy == "skip":
            self.print(f"[rpt] non-finite loss ({loss.item()}) at {where}: step skipped")
            return None  # no backward, so no parameter moves (global_step still counts it)
        raise FloatingPointError(
            f"Non-finite training loss ({loss.item()}) at {where}. The last good checkpoint and "
            "export are kept. Lower optimizer.lr, or set train.on_nonfinite=skip to skip such steps."
        )

    # ---- evaluation --------------------------------------------------------------------------
    def predict_texts(self, batch: dict[str, Any], mode: str | None = None) -> list[str]:
        """The predicted answer text per example (``rank``: best candidate; ``generate``: greedy)."""
        mode = mode or self.eval_mode
        prompt = self.prompt()
        if mode == "generate":
            max_new = int(self.cfg.get("eval", {}).get("max_new_tokens", 16))
            return self.backbone.generate(batch, prompt, max_new)
        best = self.backbone.choice_scores(batch, prompt).argmax(-1).tolist()
        return [ex.choices[i] for ex, i in zip(batch["examples"], best)]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        texts = self.predict_texts(batch)
        self._val_records += list(zip(batch["index"].tolist(), batch["examples"], texts))

    def on_validation_epoch_end(self) -> None:
        records, self._val_records = self._val_records, []
        if self.trainer.sanity_checking:
            return
        metrics = self.score_records(gather_records(records))
        self.best_score = max(self.best_score, metrics["score"])
        # Every rank holds the same gathered numbers, so no further reduction is needed.
        for name, value in metrics.items():
            self.log(f"val/{name}", value, prog_bar=name == "score", sync_dist=False)
        self.log("val/score_best", self.best_score, sync_dist=False)

    def score_records(self, records: list[tuple[int, Any, str]]) -> dict[str, float]:
        """Task metrics over ``(index, example, prediction)`` records, each index counted once."""
        unique = {i: (ex, text) for i, ex, text in records}
        ordered = [unique[i] for i in sorted(unique)]
        return self.task.compute_metrics([ex for ex, _ in ordered], [t for _, t in ordered])

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        opt_cfg = self.cfg["optimizer"]
        groups = parameter_groups(
            prompt=[self.reparam.prompt],
            network=self.reparam.network_parameters(),
            head=self.backbone.trainable_head(),
            lr=float(opt_cfg["lr"]),
            net_lr=opt_cfg.get("net_lr"),
            head_lr=opt_cfg.get("head_lr"),
            weight_decay=float(opt_cfg.get("weight_decay", 0.0)),
        )
        optimizer = instantiate(opt_cfg["fn"])(groups)
        sched_cfg = self.cfg.get("scheduler")
        if not sched_cfg:
            return optimizer
        scheduler = instantiate(sched_cfg)(
            optimizer, num_training_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # ---- checkpoints: trainable parameters only ----------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {
            k: v for k, v in state.items() if not k.startswith(FROZEN_PREFIX)
        }
        checkpoint["rpt_best_score"] = self.best_score

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        expected = {k for k in self.state_dict() if not k.startswith(FROZEN_PREFIX)}
        missing = sorted(expected - set(checkpoint["state_dict"]))
        if missing:
            raise KeyError(
                f"checkpoint lacks trainable parameters {missing}: was it made for another prompt config?"
            )
        self.best_score = checkpoint.get("rpt_best_score", -math.inf)


def _task_overrides(task_cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: task_cfg[k] for k in ("template", "label_words") if task_cfg.get(k) is not None}


def parameter_groups(
    prompt: list[nn.Parameter],
    network: list[nn.Parameter],
    head: nn.Module | None,
    lr: float,
    net_lr: float | None,
    head_lr: float | None,
    weight_decay: float,
) -> list[dict[str, Any]]:
    """Optimizer groups: prompt, network and head may have their own learning rates.

    Weight decay follows the usual rule: matrices decay; biases and norm weights (1-D) do not.
    """
    head_params = list(head.parameters()) if head is not None else []
    groups = []
    for params, group_lr in ((prompt, lr), (network, net_lr or lr), (head_params, head_lr or lr)):
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        if decay:
            groups.append({"params": decay, "lr": float(group_lr), "weight_decay": weight_decay})
        if no_decay:
            groups.append({"params": no_decay, "lr": float(group_lr), "weight_decay": 0.0})
    return groups


def gather_records(records: list[tuple[int, Any, str]]) -> list[tuple[int, Any, str]]:
    """All ranks' validation records; the distributed sampler's padding repeats are dropped later."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return records
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, records)
    return [r for part in everyone for r in part]
