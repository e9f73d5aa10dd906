"""Export a trained prompt: ``python -m rpt.export RUN_DIR_OR_CHECKPOINT OUT_DIR``.

The reparameterizer runs once, in eval mode, and only its output ``P'`` is kept, so inference
costs exactly what plain prompt tuning costs. The folder holds:

* ``prompt.safetensors``: key ``prompt``, fp32, ``(n, d)``;
* ``head.safetensors`` (encoder backbones): the classification head;
* ``rpt.json``: backbone, family, task, template, label words, prompt config, metrics, version.

Writes are atomic: everything goes to a temporary folder that is renamed at the end, so a crash
never leaves a half-written export, and an existing export is replaced only with ``overwrite``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

import rpt

PROMPT_FILE = "prompt.safetensors"
HEAD_FILE = "head.safetensors"
META_FILE = "rpt.json"


def export_metadata(module, metrics: Mapping[str, float], notes: Sequence[str]) -> dict[str, Any]:
    cfg = module.cfg
    prompt = module.computed_prompt()
    return {
        "rpt_version": rpt.__version__,
        "backbone": {
            **{k: v for k, v in cfg["model"].items()},
            "family": module.backbone.family,
            "embed_dim": module.backbone.embed_dim,
        },
        "task": {
            "name": module.task.name,
            "template": cfg["task"].get("template"),
            "label_words": list(module.task.label_words or []),
        },
        "prompt": {**cfg["prompt"], "num_virtual_tokens": int(prompt.shape[0]), "token_dim": int(prompt.shape[1])},
        "eval": cfg.get("eval", {}),
        "seed": cfg.get("seed"),
        "data_seed": cfg.get("data_seed"),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "notes": list(notes),
    }


def write_export(
    module,
    out_dir: str | Path,
    metrics: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
    overwrite: bool = False,
) -> Path:
    """Write the export folder for ``module``'s current parameters; returns its path."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass --overwrite to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        save_file({"prompt": module.computed_prompt()}, str(tmp / PROMPT_FILE))
        head = module.backbone.trainable_head()
        if head is not None:
            state = {k: v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()}
            save_file(state, str(tmp / HEAD_FILE))
        meta = export_metadata(module, metrics or {}, notes)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
