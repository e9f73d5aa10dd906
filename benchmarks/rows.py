"""The rows a training benchmark compares, all on the same frozen model and the same examples.

* ``rpt``: rpt's training step as ``rpt.train`` runs it: the composed config, ``build_trainer``
  and a real ``Trainer.fit`` over the rpt DataModule (progress bar, logging, checkpoint
  callback and all). The timed part is the training epoch (first batch fetched to last
  optimizer step); the fit's fixed start-up cost is reported apart (``fit_s``).
* ``peft``: what a user would write with PEFT: ``PromptTuningConfig`` on the same model
  (``SEQ_CLS`` on ``AutoModelForSequenceClassification`` for encoders, ``SEQ_2_SEQ_LM`` for
  T5), a plain PyTorch loop, ``DataCollatorWithPadding`` (``DataCollatorForSeq2Seq`` for T5,
  which also pads the labels), same batch size, same examples in the same order, AdamW.
* ``rpt_bare``: rpt's own step code (``module.prompt()``, ``backbone.loss``) in the bare loop
  below, on the same pre-collated batches: what rpt costs without Lightning.
* ``bound``: a bare loop with a raw ``nn.Parameter`` prompt (and, for encoders, the same head):
  frozen forward plus backward to the inputs, batches collated beforehand, no framework.
* ``padded``: the bound's loop, but every input padded to 512 positions as the original code
  did (T5: 512 text tokens + the prompt; BERT-style models: 512 in all, their position limit).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.nn import functional as F

from benchmarks.common import Clock, Timing, compose
from rpt.backbones.causal import join_rows
from rpt.data.datamodule import SuperGLUEDataModule
from rpt.module import PromptTuningModule
from rpt.train import build_trainer

LR, WEIGHT_DECAY = 0.3, 1e-5  # rpt's defaults (conf/optimizer/adamw.yaml), used by every row
ORIGINAL_WIDTH = 512
MODES = ("rpt", "train", "eval")


class EpochTimer(Callback):
    """Wall and CPU time from the start of the training epoch to its last optimizer step.

    Also records the frozen model's train/eval mode while training, so that a row never
    compares rpt with dropout against a baseline without it (or the reverse).
    """

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.examples = 0
        self.clock = Clock()
        self.timing = self.clock.stop(0)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.backbone_training = pl_module.backbone.model.training

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.examples += int(batch["source_ids"].shape[0])
        self.timing = self.clock.stop(self.examples)


class Workload:
    """One backbone, one task, one prompt length, a fixed set of real training examples.

    ``examples`` training examples are drawn by ``data_seed`` (``data.max_train_examples``), so
    an epoch is ``examples / batch_size`` steps and every row trains on exactly these examples.
    """

    def __init__(
        self,
        backbone: str,
        task: str,
        prompt_length: int = 10,
        examples: int = 32,
        batch_size: int = 8,
        seed: int = 42,
        extra: tuple[str, ...] = (),
        mode: str = "rpt",
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.backbone, self.task, self.prompt_length = backbone, task, prompt_length
        self.examples, self.batch_size, self.seed = examples, batch_size, seed
        self.extra, self.mode = extra, mode
        self.tmp = tempfile.TemporaryDirectory(prefix="rpt-bench-")
        self._modules: dict[str, PromptTuningModule] = {}
        self._datamodules: dict[bool, SuperGLUEDataModule] = {}

    def overrides(self, prompt: str, grouped: bool, extra: tuple[str, ...] = ()) -> list[str]:
        return [
            f"model={self.backbone}",
            f"task={self.task}",
            f"prompt={prompt}",
            f"prompt.length={self.prompt_length}",
            "trainer=cpu",
            "logger=csv",
            f"seed={self.seed}",
            f"data.batch_size={self.batch_size}",
            f"data.max_train_examples={self.examples}",
            f"data.group_by_length={str(grouped).lower()}",
            "trainer.max_epochs=1",
            f"trainer.limit_train_batches={-(-self.examples // self.batch_size)}",
            "trainer.limit_val_batches=0",
            # rpt sets the frozen model's mode from this key at every epoch's start.
            *(
                [f"++train.backbone_dropout={self.mode == 'train'}".lower()]
                if self.mode != "rpt"
                else []
            ),
            *self.extra,
            *extra,
        ]

    def config(self, prompt: str = "none", grouped: bool = False, extra: tuple[str, ...] = ()):
        return compose(self.overrides(prompt, grouped, extra), self.tmp.name)

    def module(self, prompt: str = "none") -> PromptTuningModule:
        if prompt not in self._modules:
            from rpt.config import run_config

            module = PromptTuningModule(run_config(self.config(prompt)))
            # rpt's choice: train.backbone_dropout (set at every epoch's start), or, in older
            # versions without the key, the mode the model was loaded in.
            dropout = (module.cfg.get("train") or {}).get("backbone_dropout")
            self.rpt_backbone_training = (
                bool(dropout) if dropout is not None else module.backbone.model.training
            )
            self._modules[prompt] = module
        return self._modules[prompt]

    @property
    def backbone_training(self) -> bool:
        """Whether every row runs the frozen model in train mode (dropout on).

        ``rpt``: the mode rpt trains it in (``train.backbone_dropout``, off by default).
        ``train``: dropout on in every row (PEFT's and the original code's ``model.train()``;
        rpt's ``train.backbone_dropout=true``). ``eval``: off in every row.
        """
        if self.mode == "rpt":
            self.module()
            return self.rpt_backbone_training
        return self.mode == "train"

    def datamodule(self, grouped: bool = False) -> SuperGLUEDataModule:
        if grouped not in self._datamodules:
            cfg = self.config("none", grouped)
            module = self.module("none")
            dm = SuperGLUEDataModule(
                task=module.task,
                featurize=module.backbone.featurize,
                pad_id=module.backbone.pad_id,
                prompt_length=self.prompt_length,
                data=OmegaConf.to_container(cfg.data, resolve=True),
                seed=self.seed,
                data_seed=int(cfg.data_seed),
            )
            dm.setup("fit")
            self._datamodules[grouped] = dm
        return self._datamodules[grouped]

    def order(self, grouped: bool = False) -> list[int]:
        """Training-example indices in the order of epoch 0 (what ``Trainer.fit`` sees)."""
        return list(self.datamodule(grouped).train_dataloader().sampler)

    def batches(self, grouped: bool = False) -> list[dict[str, Any]]:
        """Epoch 0's batches, collated by rpt's collator (tensors only)."""
        loader = self.datamodule(grouped).train_dataloader()
        return [{k: v for k, v in b.items() if isinstance(v, Tensor)} for b in loader]

    def padding_efficiency(self, grouped: bool = False) -> float:
        """Real input tokens / computed (padded) input tokens over the epoch, prompt excluded."""
        real = padded = 0
        for batch in self.batches(grouped):
            real += int(batch["source_mask"].sum())
            padded += batch["source_mask"].numel()
        return real / padded


# ---- rows ------------------------------------------------------------------------------------
def rpt_row(work: Workload, prompt: str = "none", grouped: bool = False, extra=()) -> Callable:
    """``Trainer.fit`` as ``rpt.train`` builds it; times the training epoch."""
    cfg = work.config(prompt, grouped, tuple(extra))
    module = work.module(prompt)
    datamodule = work.datamodule(grouped)
    training = work.backbone_training

    def run() -> Timing:
        module.backbone.model.train(training)  # Lightning keeps this mode during fit
        trainer = build_trainer(cfg)
        timer = EpochTimer()
        trainer.callbacks.append(timer)
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        timer.timing.extra["fit_s"] = time.perf_counter() - start
        if timer.backbone_training != training:
            raise RuntimeError(
                f"rpt trained the frozen model in {'train' if timer.backbone_training else 'eval'}"
                " mode, not the mode every other row uses: rerun with --mode train or --mode eval"
            )
        return timer.timing

    return run


def rpt_bare_row(work: Workload, prompt: str = "none") -> Callable:
    """rpt's own step code (``module.prompt()`` and ``backbone.loss``) in the bare loop.

    Splits rpt's distance from the bound in two: ``rpt_bare / bound`` is rpt's model code,
    ``rpt / rpt_bare`` is Lightning (hooks, logging, progress bar, data loading, collation).
    """
    module = work.module(prompt)
    batches = work.batches(False)
    training = work.backbone_training

    def run() -> Timing:
        optimizer = module.configure_optimizers()
        module.backbone.model.train(training)
        clock = Clock()
        for batch in batches:
            module.backbone.loss(batch, module.prompt()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return clock.stop(sum(int(b["source_ids"].shape[0]) for b in batches))

    return run


def _num_labels(work: Workload) -> int:
    return int(work.module().task.num_classes or 1)


class BoundLoop:
    """The least a prompt-tuning step can do: embed, prepend P, frozen forward, backward, step.

    Uses the rpt module's own frozen model (same weights) and the same prompt placement and
    pooling as its backbone, so the computation is the one rpt does, minus every framework layer.
    """

    def __init__(self, work: Workload, grouped: bool = False, pad_to: int | None = None):
        module = work.module("none")
        self.model = module.backbone.model
        self.family = module.backbone.family
        self.pad_id = module.backbone.pad_id
        self.batches = work.batches(grouped)
        if pad_to is not None:
            if self.family == "causal":  # the answer follows the real tokens, not the padding
                raise NotImplementedError("no padded (original code) row for the causal family")
            self.batches = [pad_batch(b, pad_to, self.pad_id) for b in self.batches]
        model_cfg = module.cfg["model"]
        self.after_cls = model_cfg.get("prompt_position", "after_cls") == "after_cls"
        self.mean_pool = model_cfg.get("pooling", "cls") == "mean"
        self.prompt = nn.Parameter(module.reparam.prompt.detach().clone())  # (n, d)
        self.head = nn.Linear(self.prompt.shape[1], _num_labels(work))
        self.training = work.backbone_training

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        ids, mask = batch["source_ids"], batch["source_mask"]  # (B, T)
        b, n = ids.shape[0], self.prompt.shape[0]
        tokens = self.model.get_input_embeddings()(ids)  # (B, T, d)
        prompt = self.prompt.unsqueeze(0).expand(b, -1, -1)  # (B, n, d)
        ones = mask.new_ones(b, n)
        if self.family == "seq2seq":
            embeds, full = torch.cat([prompt, tokens], 1), torch.cat([ones, mask], 1)
            return self.model(
                inputs_embeds=embeds, attention_mask=full, labels=batch["target_ids"]
            ).loss
        if self.family == "causal":  # [P] source answer, right-padded, logits everywhere
            ids, mask, labels = join_rows(ids, mask, batch["target_ids"], self.pad_id)
            tokens = self.model.get_input_embeddings()(ids)
            embeds, full = torch.cat([prompt, tokens], 1), torch.cat([ones, mask], 1)
            labels = torch.cat([labels.new_full((b, n), -100), labels], 1)
            return self.model(inputs_embeds=embeds, attention_mask=full, labels=labels).loss
        if self.family != "encoder":
            raise NotImplementedError(f"no bound loop for the {self.family} family")
        if self.after_cls:  # [CLS] P x [SEP]
            embeds = torch.cat([tokens[:, :1], prompt, tokens[:, 1:]], 1)  # (B, n+T, d)
            full = torch.cat([mask[:, :1], ones, mask[:, 1:]], 1)
        else:
            embeds, full = torch.cat([prompt, tokens], 1), torch.cat([ones, mask], 1)
        hidden = self.model(inputs_embeds=embeds, attention_mask=full).last_hidden_state
        if self.mean_pool:
            w = full.to(hidden.dtype).unsqueeze(1)  # (B, 1, n+T)
            pooled = torch.bmm(w, hidden).squeeze(1) / w.sum(-1)  # (B, d), as rpt pools
        else:
            pooled = hidden[:, 0 if self.after_cls else n]
        return F.cross_entropy(self.head(pooled), batch["labels"])

    def run(self, limit: int | None = None) -> Timing:
        optimizer = torch.optim.AdamW(
            [self.prompt, *self.head.parameters()], lr=LR, weight_decay=WEIGHT_DECAY
        )
        self.model.train(self.training)
        batches = self.batches[:limit]
        clock = Clock()
        for batch in batches:
            self.loss(batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return clock.stop(sum(int(b["source_ids"].shape[0]) for b in batches))


def pad_batch(batch: dict[str, Tensor], width: int, pad_id: int) -> dict[str, Tensor]:
    """Right-pad ``source_ids``/``source_mask`` to ``width`` columns (the original code's way)."""
    ids, mask = batch["source_ids"], batch["source_mask"]
    extra = width - ids.shape[1]
    if extra < 0:
        raise ValueError(f"batch is {ids.shape[1]} tokens wide, more than {width}")
    return {
        **batch,
        "source_ids": F.pad(ids, (0, extra), value=pad_id),
        "source_mask": F.pad(mask, (0, extra), value=0),
    }


def original_width(work: Workload) -> int:
    """512 text tokens for T5 (the original code); 512 in all (or the position limit) for BERTs."""
    module = work.module()
    positions = getattr(module.backbone.model.config, "max_position_embeddings", None)
    return min(ORIGINAL_WIDTH, positions) - work.prompt_length if positions else ORIGINAL_WIDTH


class PeftLoop:
    """PEFT prompt tuning on the same model, a plain loop, dynamic padding by HF's collators."""

    def __init__(self, work: Workload, grouped: bool = False):
        from peft import PromptTuningConfig, get_peft_model
        from torch.utils.data import DataLoader
        from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

        module = work.module()
        self.family = module.backbone.family
        tokenizer = module.backbone.tokenizer
        base, task_type = peft_base_model(
            module.cfg["model"], self.family, tokenizer, _num_labels(work)
        )
        config = PromptTuningConfig(task_type=task_type, num_virtual_tokens=work.prompt_length)
        self.model = get_peft_model(base, config)
        features = work.datamodule(grouped).split_features("train")
        records = []
        for i in work.order(grouped):
            f = features[i]
            source = f["source"]
            if self.family == "causal":  # the answer follows the input; loss on it only
                source, label = source + f["target"], [-100] * len(source) + f["target"]
            else:
                label = f["example"].label if self.family == "encoder" else f["target"]
            records.append(
                {"input_ids": source, "attention_mask": [1] * len(source), "labels": label}
            )
        collator = (
            DataCollatorWithPadding(tokenizer)
            if self.family == "encoder"
            else DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
        )
        self.loader = DataLoader(
            records, batch_size=work.batch_size, shuffle=False, collate_fn=collator
        )
        self.training = work.backbone_training

    def run(self) -> Timing:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
        self.model.train(self.training)  # the same dropout as the rpt rows (see Workload)
        examples = 0
        clock = Clock()
        for batch in self.loader:
            self.model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            examples += int(batch["input_ids"].shape[0])
        return clock.stop(examples)


def peft_base_model(model_cfg: dict[str, Any], family: str, tokenizer, num_labels: int):
    """The model a PEFT user would load: a classifier for encoders, the LM for T5 and GPT-2."""
    from peft import TaskType
    from transformers import AutoModelForSequenceClassification

    from rpt.backbones.loading import _random_config, load_model, resolve_path

    if family in ("seq2seq", "causal"):
        # The same loader as rpt: same weights (random ones from the same init_seed).
        task_type = TaskType.SEQ_2_SEQ_LM if family == "seq2seq" else TaskType.CAUSAL_LM
        return load_model(model_cfg, tokenizer)[0], task_type
    if family != "encoder":
        raise NotImplementedError(f"no PEFT baseline for the {family} family")
    if model_cfg.get("random_init"):
        config = _random_config(dict(model_cfg["random_init"]), tokenizer)
        config.num_labels = num_labels
        return AutoModelForSequenceClassification.from_config(config), TaskType.SEQ_CLS
    path = resolve_path(model_cfg["name_or_path"])
    return (
        AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels),
        TaskType.SEQ_CLS,
    )
