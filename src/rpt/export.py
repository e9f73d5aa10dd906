"""Export a trained prompt: ``python -m rpt.export RUN_DIR_OR_CHECKPOINT OUT_DIR`` (``rpt-export``).

The reparameterizer runs once, in eval mode (no dropout), and only its output ``P'`` is kept, so
inference costs exactly what plain prompt tuning costs. The folder holds:

* ``prompt.safetensors``: key ``prompt``, fp32, ``(n, d)``;
* ``head.safetensors`` (encoder backbones): the classification head, ``weight (k, d)``, ``bias (k,)``;
* ``rpt.json``: backbone (its config, family, width, vocabulary size and an embedding
  fingerprint), task, template, label words, prompt config, metrics, rpt version;
* ``peft/``: the same prompt as a PEFT prompt-tuning adapter (``adapter_config.json`` +
  ``adapter_model.safetensors`` with ``prompt_embeddings``; encoders add their head as PEFT's
  ``classifier``), written by PEFT itself from a real ``get_peft_model`` so the format is PEFT's.

Writes are atomic: everything goes to a temporary folder that is renamed at the end, so a crash
never leaves a half-written export, and an existing export is replaced only with ``overwrite``.
Checkpoints are read with ``torch.load(..., weights_only=True)``: no code runs from the file.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

import rpt

PROMPT_FILE = "prompt.safetensors"
HEAD_FILE = "head.safetensors"
META_FILE = "rpt.json"
PEFT_DIR = "peft"

#: rpt's backbone family → PEFT's task type for prompt tuning.
PEFT_TASK_TYPES = {"seq2seq": "SEQ_2_SEQ_LM", "causal": "CAUSAL_LM", "encoder": "SEQ_CLS"}
#: Keys rpt.json adds to the model config to identify the backbone; not model-config keys.
IDENTITY_KEYS = ("embed_dim", "model_type", "vocab_size", "fingerprint")
FINGERPRINT_ROWS, FINGERPRINT_COLS = 8, 4


# ---- what identifies a backbone ------------------------------------------------------------------
def embedding_fingerprint(weight: Tensor) -> list[list[float]]:
    """A few entries of the ``(V, d)`` input-embedding matrix: 8 rows spread over the
    vocabulary, first 4 columns. Two checkpoints with the same architecture (t5-base and
    flan-t5-base, or tiny models from different ``init_seed``) differ here; the same model loaded
    in bf16 agrees to within rounding."""
    rows = torch.linspace(0, weight.shape[0] - 1, FINGERPRINT_ROWS).round().long()
    block = weight.detach()[rows, :FINGERPRINT_COLS].float().cpu()  # (8, 4)
    return [[round(float(x), 6) for x in row] for row in block]


def backbone_identity(backbone) -> dict[str, Any]:
    """Family, architecture, width, vocabulary size and embedding fingerprint of a backbone."""
    embeddings = backbone.input_embeddings
    return {
        "family": backbone.family,
        "model_type": getattr(backbone.model.config, "model_type", None),
        "embed_dim": int(embeddings.shape[1]),
        "vocab_size": int(embeddings.shape[0]),
        "fingerprint": embedding_fingerprint(embeddings),
    }


# ---- rpt.json ------------------------------------------------------------------------------------
def export_metadata(
    module,
    metrics: Mapping[str, float],
    notes: Sequence[str],
    peft_info: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    cfg = module.cfg
    prompt = module.computed_prompt()
    return {
        "rpt_version": rpt.__version__,
        "backbone": {**dict(cfg["model"]), **backbone_identity(module.backbone)},
        "task": {
            "name": module.task.name,
            "template": module.task.template,
            "label_words": list(module.task.label_words or []),
        },
        "prompt": {
            **cfg["prompt"],
            "num_virtual_tokens": int(prompt.shape[0]),
            "token_dim": int(prompt.shape[1]),
        },
        "eval": cfg.get("eval", {}),
        "seed": cfg.get("seed"),
        "data_seed": cfg.get("data_seed"),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "trainable_parameters": module.num_trainable_parameters(),
        "notes": list(notes),
        "peft": dict(peft_info or {}),
        "source": dict(source or {}),
    }


# ---- the PEFT adapter ----------------------------------------------------------------------------
def peft_equivalence(backbone) -> tuple[bool, str]:
    """Whether PEFT's own forward pass reproduces rpt's scores for this backbone, and why."""
    if backbone.family != "encoder":
        return True, "PEFT prepends the prompt to the input embeddings, as rpt does"
    if backbone.prompt_position == "front" and backbone.pooling == "pooler":
        return True, "prompt in front and the model's pooler at position 0, as PEFT's SEQ_CLS does"
    return False, (
        "PEFT's SEQ_CLS prompt tuning puts the virtual tokens before [CLS] and classifies the "
        "model's pooler output at position 0; this export was trained with "
        f"model.prompt_position={backbone.prompt_position} model.pooling={backbone.pooling}, so "
        "PEFT's logits differ from rpt's. Train with model.prompt_position=front "
        "model.pooling=pooler for an exact PEFT equivalent; rpt.load always reproduces rpt's."
    )


def base_model_reference(model_cfg: Mapping[str, Any]) -> str | None:
    """What ``base_model_name_or_path`` says: the hub name or folder (``pkg:`` resolved to the
    installed folder); for a random-weight test model, its config name (rebuilt by rpt only)."""
    from rpt.backbones.loading import resolve_path

    if model_cfg.get("random_init"):
        return model_cfg.get("name")
    name = model_cfg.get("name_or_path")
    return resolve_path(name) if name else None


def _meta_base_model(backbone, task_type: str, num_labels: int):
    """The backbone's architecture with no weights (meta device): PEFT needs a model to wrap,
    and the adapter it saves holds only the prompt (and head), so no memory is spent on it."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(backbone.model.config)
    with torch.device("meta"):
        if task_type == "SEQ_CLS":
            config.num_labels = num_labels
            return AutoModelForSequenceClassification.from_config(config)
        # The backbone's own class: the LM class for seq2seq / causal, the bare encoder otherwise.
        return type(backbone.model)._from_config(config)


def _linear_classifier(model, head: nn.Linear) -> str | None:
    """Name of the sequence-classification model's classifier if our head fits it exactly."""
    for name in ("classifier", "score"):
        layer = getattr(model, name, None)
        if isinstance(layer, nn.Linear) and layer.weight.shape == head.weight.shape:
            if (layer.bias is None) == (head.bias is None):
                return name
    return None


def write_peft_adapter(
    backbone, prompt: Tensor, model_cfg: Mapping[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Save ``prompt`` ``(n, d)`` (and an encoder's head) as a PEFT prompt-tuning adapter.

    Built by PEFT itself: ``get_peft_model(base, PromptTuningConfig(...))`` on a weightless copy
    of the backbone, our tensors copied in, ``save_pretrained``. Returns what rpt.json records.
    """
    from peft import PromptTuningConfig, get_peft_model

    task_type = PEFT_TASK_TYPES[backbone.family]
    head = backbone.trainable_head()
    num_labels = head.out_features if head is not None else 0
    classifier = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PEFT/transformers deprecation chatter on wrapping
        base = _meta_base_model(backbone, task_type, num_labels)
        if task_type == "SEQ_CLS":
            classifier = _linear_classifier(base, head)
            if classifier is None:
                # e.g. RoBERTa's two-layer head: our linear head has no place there, so the
                # adapter carries the prompt alone, for PEFT's plain encoder.
                task_type = "FEATURE_EXTRACTION"
                base = _meta_base_model(backbone, task_type, num_labels)
        peft_config = PromptTuningConfig(
            task_type=task_type,
            num_virtual_tokens=int(prompt.shape[0]),
            token_dim=int(prompt.shape[1]),
            num_transformer_submodules=1,  # PEFT's default for seq2seq is 2 (decoder too); rpt prompts the input only
            modules_to_save=[classifier] if classifier else None,
        )
        peft_model = get_peft_model(base, peft_config)
        # 1. the prompt: PEFT's embedding table is (n, d), looked up with 0..n-1
        peft_model.prompt_encoder["default"].embedding.weight = nn.Parameter(
            prompt.detach().float().cpu().clone()
        )
        # 2. the head, into PEFT's trainable copy of the classifier (modules_to_save)
        if classifier:
            copy_of_classifier = getattr(peft_model.base_model, classifier).modules_to_save[
                "default"
            ]
            for name, value in head.state_dict().items():
                setattr(
                    copy_of_classifier, name, nn.Parameter(value.detach().float().cpu().clone())
                )
        saved = peft_model.peft_config["default"]
        saved.base_model_name_or_path = base_model_reference(model_cfg)
        if saved.modules_to_save:  # PEFT appends its defaults; keep each name once
            saved.modules_to_save = list(dict.fromkeys(saved.modules_to_save))
        # save_embedding_layers=False: the embeddings are frozen, and "auto" would query the hub.
        peft_model.save_pretrained(str(out_dir), save_embedding_layers=False)
    equivalent, why = peft_equivalence(backbone)
    if task_type == "FEATURE_EXTRACTION":
        equivalent, why = (
            False,
            "the model's classifier is not one linear layer: the head is in head.safetensors only",
        )
    return {
        "dir": PEFT_DIR,
        "task_type": task_type,
        "classifier": classifier,
        "equivalent": equivalent,
        "note": why,
    }


# ---- the folder ----------------------------------------------------------------------------------
def write_export(
    module,
    out_dir: str | Path,
    metrics: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
    overwrite: bool = False,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Write the export folder for ``module``'s current parameters; returns its path."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass --overwrite to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        prompt = module.computed_prompt()  # (n, d) fp32, eval mode
        save_file({"prompt": prompt}, str(tmp / PROMPT_FILE))
        head = module.backbone.trainable_head()
        if head is not None:
            state = {k: v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()}
            save_file(state, str(tmp / HEAD_FILE))
        try:
            peft_info = write_peft_adapter(
                module.backbone, prompt, module.cfg["model"], tmp / PEFT_DIR
            )
        except Exception as err:  # the prompt itself is exported either way; say what failed
            shutil.rmtree(tmp / PEFT_DIR, ignore_errors=True)
            peft_info = {"dir": None, "error": f"{err.__class__.__name__}: {err}"}
            warnings.warn(
                f"[rpt] the PEFT adapter was not written: {peft_info['error']}", stacklevel=2
            )
        meta = export_metadata(module, metrics or {}, notes, peft_info, source)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        _usual_permissions(tmp)
        _replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _usual_permissions(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; give the export the permissions of any new file."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _replace(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``: renames only, so ``target`` is never half-written."""
    if not target.exists():
        new.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


# ---- from a run folder or checkpoint -------------------------------------------------------------
def resolve_checkpoint(source: str | Path, which: str = "best") -> Path:
    """``source`` if it is a file, else ``<run dir>/checkpoints/<which>.ckpt``."""
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such run folder or checkpoint file")
    path = source / "checkpoints" / f"{which}.ckpt"
    if not path.is_file():
        found = sorted(p.name for p in (source / "checkpoints").glob("*.ckpt"))
        raise FileNotFoundError(
            f"{path} does not exist (checkpoints in {source / 'checkpoints'}: {', '.join(found) or 'none'}); "
            "pass a checkpoint file or --checkpoint last"
        )
    return path


def load_checkpoint_module(path: str | Path):
    """A PromptTuningModule rebuilt from a checkpoint's config, with its trainable parameters.

    Returns ``(module, checkpoint)``. The frozen backbone comes from the config, not the file.
    """
    from rpt.module import PromptTuningModule

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    try:
        cfg = checkpoint["hyper_parameters"]["cfg"]
    except (KeyError, TypeError):
        raise ValueError(f"{path}: not an rpt checkpoint (no hyper_parameters.cfg)") from None
    module = PromptTuningModule(cfg)
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    module.eval()
    return module, checkpoint


def export_checkpoint(
    source: str | Path, out_dir: str | Path, overwrite: bool = False, which: str = "best"
) -> Path:
    """Export a run folder's best (or last) checkpoint, or a checkpoint file, to ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        # Checked before the model is built, so the mistake costs no time.
        raise FileExistsError(f"{out_dir} already exists; pass --overwrite to replace it")
    path = resolve_checkpoint(source, which)
    module, checkpoint = load_checkpoint_module(path)
    metrics = {}
    best = checkpoint.get("rpt_best_score")
    if isinstance(best, (int, float)) and math.isfinite(best):
        metrics["val/score_best"] = float(best)
    # The training export's notes say how the data was carved or sampled; keep them.
    notes: list[str] = []
    run_meta = path.parent.parent / "export" / META_FILE
    if run_meta.is_file():
        notes = list(json.loads(run_meta.read_text()).get("notes", []))
    source_info = {
        "checkpoint": str(path),
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
    }
    return write_export(
        module, out_dir, metrics=metrics, notes=notes, overwrite=overwrite, source=source_info
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="rpt-export",
        description=(
            "Compute a trained prompt once (reparameterizer in eval mode) and write an export folder: "
            "prompt.safetensors, rpt.json, head.safetensors (encoders) and peft/ (a PEFT adapter)."
        ),
        epilog="Example:\n  python -m rpt.export outputs/runs/cb/residual_mlp2/2024-01-01_12-00-00 exports/cb",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        metavar="RUN_DIR_OR_CHECKPOINT",
        help="a run folder (uses checkpoints/best.ckpt) or a .ckpt file",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the export folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="which checkpoint of a run folder (default: best)",
    )
    args = parser.parse_args(argv)
    try:
        out = export_checkpoint(
            args.source, args.out_dir, overwrite=args.overwrite, which=args.checkpoint
        )
    except (FileExistsError, FileNotFoundError, ValueError, KeyError) as err:
        parser.exit(2, f"rpt-export: error: {err}\n")
    print(f"[rpt] export: {out}")


if __name__ == "__main__":
    main()
