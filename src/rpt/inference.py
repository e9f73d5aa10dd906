"""Inference from an export folder: ``rpt.load(export_dir).predict(records)``.

``load`` rebuilds the frozen backbone from the model config stored in ``rpt.json`` (a hub name, a
local folder, the packaged MiniLM, or a tiny random model from its ``init_seed``), reads the
computed prompt ``P'`` ``(n, d)`` from ``prompt.safetensors`` and, for encoders, the head from
``head.safetensors``. The reparameterisation network is never built: inference costs exactly
what plain prompt tuning costs. Only JSON and safetensors files are read; nothing is unpickled.

Example::

    import rpt
    predictor = rpt.load("outputs/runs/cb/residual_mlp2/<time>/export")
    predictor.predict([{"idx": 0, "premise": "...", "hypothesis": "..."}])   # ["neutral"]

Records are in the task's official JSONL format (one dict per line). Tasks with several examples
per record (MultiRC: one per answer; ReCoRD: one per query) give one prediction per example.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from rpt.backbones import Backbone, build_backbone
from rpt.data.collate import Collator
from rpt.data.example import Example
from rpt.data.readers import read_jsonl
from rpt.data.tasks import TASKS, Task, get_task
from rpt.export import HEAD_FILE, IDENTITY_KEYS, META_FILE, PROMPT_FILE, backbone_identity

EVAL_MODES = ("rank", "generate")


class ExportError(ValueError):
    """An export folder that cannot be used as asked; the message names the file and the fix."""


# ---- reading the folder --------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportFiles:
    """The contents of an export folder: ``rpt.json``, the prompt ``(n, d)`` and the head."""

    path: Path
    meta: dict[str, Any]
    prompt: Tensor
    head: dict[str, Tensor] | None


def read_export(export_dir: str | Path) -> ExportFiles:
    """Read ``rpt.json``, ``prompt.safetensors`` and (if present) ``head.safetensors``."""
    path = Path(export_dir)
    meta_file, prompt_file, head_file = path / META_FILE, path / PROMPT_FILE, path / HEAD_FILE
    if not path.is_dir():
        raise ExportError(
            f"{path}: no such export folder (make one with `python -m rpt.export RUN_DIR {path}`)"
        )
    for required in (meta_file, prompt_file):
        if not required.is_file():
            raise ExportError(f"{path} is not an rpt export: {required.name} is missing")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as err:
        raise ExportError(f"{meta_file}:{err.lineno}: not valid JSON ({err.msg})") from None
    for key in ("backbone", "task"):
        if not isinstance(meta.get(key), dict):
            raise ExportError(f"{meta_file}: field '{key}' is missing or not an object")
    tensors = _load_safetensors(prompt_file)
    if "prompt" not in tensors:
        raise ExportError(
            f"{prompt_file}: no tensor named 'prompt' (found: {', '.join(tensors) or 'none'})"
        )
    prompt = tensors["prompt"]
    if prompt.ndim != 2 or not prompt.is_floating_point():
        raise ExportError(
            f"{prompt_file}: 'prompt' must be a float (n, d) matrix, got {prompt.dtype} {tuple(prompt.shape)}"
        )
    head = _load_safetensors(head_file) if head_file.is_file() else None
    return ExportFiles(path, meta, prompt.float(), head)


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ExportError(f"{path}: not a readable safetensors file ({err})") from None


def describe(identity: Mapping[str, Any], name: Any) -> str:
    """``'tiny_t5' (seq2seq t5, width 32, vocabulary 30522)``: how errors name a backbone."""
    return (
        f"{name!r} ({identity.get('family')} {identity.get('model_type')}, width "
        f"{identity.get('embed_dim')}, vocabulary {identity.get('vocab_size')})"
    )


def _backbone_name(model_cfg: Mapping[str, Any]) -> Any:
    return model_cfg.get("name_or_path") or model_cfg.get("name")


def check_backbone(files: ExportFiles, backbone: Backbone, model_cfg: Mapping[str, Any]) -> None:
    """Stop, naming both, when the prompt's width or the export's backbone does not match."""
    stored = files.meta["backbone"]
    actual = backbone_identity(backbone)
    made_for = describe(stored, _backbone_name(stored))
    loaded = describe(actual, _backbone_name(model_cfg))
    width = int(files.prompt.shape[1])
    if width != actual["embed_dim"]:
        raise ExportError(
            f"{files.path / PROMPT_FILE}: the prompt has width {width}, but the backbone {loaded} "
            f"has embedding width {actual['embed_dim']}. The export was made for backbone {made_for}."
        )
    differs = [
        k
        for k in ("family", "model_type", "embed_dim", "vocab_size")
        if k in stored and stored[k] != actual[k]
    ]
    if (
        "fingerprint" in stored
        and not differs
        and not _same_fingerprint(stored["fingerprint"], actual["fingerprint"])
    ):
        differs.append("embedding weights")
    if differs:
        raise ExportError(
            f"{files.path}: this export was made for backbone {made_for}, but the backbone loaded "
            f"is {loaded}; they differ in {', '.join(differs)}. Load it with the backbone it was "
            "trained with (rpt.load(..., model=...) only to point at a copy of that same model)."
        )


def _same_fingerprint(stored: Sequence[Sequence[float]], actual: Sequence[Sequence[float]]) -> bool:
    a, b = torch.tensor(stored, dtype=torch.float64), torch.tensor(actual, dtype=torch.float64)
    if a.shape != b.shape:
        return False
    # 1% of the largest entry: bf16/fp16 rounding of the same weights passes, other weights do not.
    return bool(((a - b).abs() <= 0.01 * a.abs().max() + 1e-6).all())


def task_for(meta: Mapping[str, Any], name: str | None = None) -> Task:
    """The export's task with its template and label words; ``name`` picks a compatible task
    evaluated with the same prompt (AX-b and AX-g with an RTE export)."""
    stored = meta["task"]
    label_words = stored.get("label_words") or None
    trained = get_task(stored["name"], template=stored.get("template"), label_words=label_words)
    if name is None or get_task(name).name == trained.name:
        return trained
    wanted = TASKS[get_task(name).name]
    if not issubclass(wanted, type(trained)):
        raise ExportError(
            f"this export was trained for task {trained.name!r}; task={name!r} cannot use its "
            f"prompt (only tasks in {trained.name}'s format can, e.g. axb/axg with an rte export)"
        )
    # The diagnostics name RTE's fields differently, so their own default template applies.
    return wanted(label_words=label_words)


# ---- the predictor -------------------------------------------------------------------------------
class Predictor(nn.Module):
    """A frozen backbone plus an exported prompt ``(n, d)``: predictions for official records.

    Its only parameters besides the frozen backbone are the prompt (and an encoder's head);
    there is no reparameterisation network. Build it with :func:`load`.
    """

    def __init__(
        self,
        backbone: Backbone,
        prompt: Tensor,
        task: Task,
        eval_cfg: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        meta: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.prompt = nn.Parameter(prompt.detach().float().clone())  # (n, d), fp32 as exported
        self.task = task
        eval_cfg = dict(eval_cfg or {})
        self.mode = eval_cfg.get("mode", "rank")
        self.max_new_tokens = int(eval_cfg.get("max_new_tokens", 16))
        self.batch_size = int(batch_size)
        self.meta = dict(meta or {})
        self.collate = Collator(backbone.pad_id)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.prompt.device

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # -- records → examples → batches --
    def examples(
        self, records: Iterable[Mapping[str, Any]], where: str = "record"
    ) -> list[Example]:
        """The task's examples of official records (errors name ``<where> <number>``, 1-based)."""
        examples: list[Example] = []
        for i, record in enumerate(records, start=1):
            examples += self.task.record_to_examples(record, f"{where} {i}", labeled=None)
        return examples

    def examples_from_file(self, path: str | Path) -> list[Example]:
        """The examples of a JSONL file in the task's official format (errors name file:line)."""
        examples: list[Example] = []
        for line, record in read_jsonl(path):
            examples += self.task.record_to_examples(record, f"{path}:{line}", labeled=None)
        return examples

    def batches(
        self, examples: Sequence[Example], batch_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Padded batches (see :mod:`rpt.backbones.base`) in order, on the predictor's device.

        No gold answer is passed to ``featurize``: an input's truncation never depends on its label.
        """
        n = self.prompt.shape[0]
        size = int(batch_size or self.batch_size)
        for start in range(0, len(examples), size):
            chunk = examples[start : start + size]
            features = [
                {
                    **self.backbone.featurize(ex.source, ex.choices, None, n),
                    "example": ex,
                    "index": start + i,
                }
                for i, ex in enumerate(chunk)
            ]
            batch = self.collate(features)
            yield {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}

    # -- scoring --
    @torch.inference_mode()
    def choice_scores(self, batch: Mapping[str, Any]) -> Tensor:
        """``(B, C)`` score of every candidate (log-likelihood or head logit; ``-inf`` padding)."""
        return self.backbone.choice_scores(dict(batch), self.prompt)

    @torch.inference_mode()
    def predict_batch(
        self, batch: Mapping[str, Any], mode: str | None = None
    ) -> tuple[list[str], list[list[float]] | None]:
        """Predicted texts of one batch, and in rank mode every candidate's score."""
        mode = mode or self.mode
        if mode not in EVAL_MODES:
            raise ValueError(f"mode must be one of {EVAL_MODES}, got {mode!r}")
        examples = batch["examples"]
        if mode == "generate":
            return self.backbone.generate(dict(batch), self.prompt, self.max_new_tokens), None
        scores = self.choice_scores(batch).float().cpu()  # (B, C)
        best = scores.argmax(-1).tolist()
        texts = [ex.choices[i] for ex, i in zip(examples, best)]
        return texts, [row[: len(ex.choices)].tolist() for ex, row in zip(examples, scores)]

    def predict_examples(
        self,
        examples: Sequence[Example],
        *,
        mode: str | None = None,
        batch_size: int | None = None,
        return_scores: bool = False,
    ) -> list[str] | tuple[list[str], list[list[float]] | None]:
        """Predicted text per example; with ``return_scores`` also ``(texts, scores)`` where
        scores[i][j] is the score of ``examples[i].choices[j]`` (rank mode; None in generate mode)."""
        texts: list[str] = []
        scores: list[list[float]] | None = [] if (mode or self.mode) == "rank" else None
        for batch in self.batches(examples, batch_size):
            batch_texts, batch_scores = self.predict_batch(batch, mode)
            texts += batch_texts
            if scores is not None and batch_scores is not None:
                scores += batch_scores
        return (texts, scores) if return_scores else texts

    def predict(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        mode: str | None = None,
        batch_size: int | None = None,
        return_scores: bool = False,
    ) -> list[str] | tuple[list[str], list[list[float]] | None]:
        """Predicted answer per example of official records: the label word of the predicted
        class (CB: ``"entailment"``…), COPA's chosen alternative, ReCoRD's entity.

        ``mode``: ``rank`` (score every candidate, the export's default) or ``generate`` (greedy).
        ``return_scores``: also return each candidate's score (rank mode).
        """
        return self.predict_examples(
            self.examples(records), mode=mode, batch_size=batch_size, return_scores=return_scores
        )

    def evaluate(self, records: Iterable[Mapping[str, Any]], **kwargs: Any) -> dict[str, float]:
        """The task's metrics (and ``score``) on labeled records, as training's validation logs them."""
        examples = self.examples(records)
        return self.task.compute_metrics(examples, self.predict_examples(examples, **kwargs))

    def submission(
        self, records: Iterable[Mapping[str, Any]], **kwargs: Any
    ) -> list[dict[str, Any]]:
        """SuperGLUE leaderboard lines (``idx`` and the official label) for official records."""
        examples = self.examples(records)
        return self.task.submission_records(examples, self.predict_examples(examples, **kwargs))


def load(
    export_dir: str | Path,
    *,
    model: str | Mapping[str, Any] | None = None,
    task: str | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 32,
) -> Predictor:
    """Load an export folder for inference (no reparameterisation network is built).

    Args:
        export_dir: a folder written by ``rpt.export`` (or a training run's ``export/``).
        model: where to find the same backbone elsewhere: a folder or hub name (replaces
            ``name_or_path``), or a mapping of model-config overrides (``{"dtype": "bfloat16"}``;
            ``{"trust_remote_code": True}`` for a model that needs its own code: rpt.json's value
            is never used). A different backbone is refused, with both named.
        task: a task in the same format to predict with this prompt (``axb`` for an RTE export).
        device: ``"cpu"``, ``"cuda"``…; default: CUDA when available.
        batch_size: examples per forward pass.
    """
    files = read_export(export_dir)
    stored = files.meta["backbone"]
    model_cfg = {k: v for k, v in stored.items() if k not in IDENTITY_KEYS}
    # Loading an export runs no code from it: remote model code only if the caller asks here.
    # Gradient checkpointing is a training-time memory trade, useless for inference.
    model_cfg.update(trust_remote_code=False, gradient_checkpointing=False)
    if isinstance(model, str):
        model_cfg.update(name_or_path=model, random_init=None)
    elif model:
        model_cfg.update(model)
    trained_task = task_for(files.meta)  # the head's size is the trained task's
    predict_task = task_for(files.meta, task)

    # 1. the frozen backbone, checked against what the export was made for
    backbone = build_backbone(model_cfg, num_classes=trained_task.num_classes)
    check_backbone(files, backbone, model_cfg)
    # 2. the head of an encoder (the prompt is the Predictor's own parameter)
    head = backbone.trainable_head()
    if head is not None:
        if files.head is None:
            raise ExportError(
                f"{files.path}: {HEAD_FILE} is missing; encoder backbones need their head"
            )
        try:
            head.load_state_dict(files.head)
        except RuntimeError as err:
            raise ExportError(
                f"{files.path / HEAD_FILE} does not fit the backbone's head: {err}"
            ) from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    predictor = Predictor(
        backbone, files.prompt, predict_task, files.meta.get("eval"), batch_size, files.meta
    )
    return predictor.to(device)
