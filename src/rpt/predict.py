"""Predict with an exported prompt: ``python -m rpt.predict export=DIR task=cb split=test`` (``rpt-predict``).

Reads a SuperGLUE split (``split=`` from ``data=`` or ``$RPT_DATA_DIR``) or any JSONL file in the
task's official format (``input=``) and writes, under ``out=`` (default: ``<export>/predictions``):

* ``<Task>.jsonl`` for ``split=test``: the leaderboard file (``idx`` and the official label per
  line; MultiRC nested per paragraph), ready to zip and upload;
  ``<Task>.<split>.jsonl`` for other splits and ``<Task>.<file stem>.jsonl`` for ``input=``;
* ``<same name>.metrics.json`` when the examples are labeled (val, AX-b, AX-g);
* ``<same name>.scores.jsonl`` with ``scores=true`` (rank mode): every candidate's score.

Arguments are ``key=value`` (as for ``rpt.train``) or ``--key value``; ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: key → (metavar, help). Every key is accepted as ``key=value`` or ``--key value``.
OPTIONS = {
    "export": ("DIR", "an export folder (prompt.safetensors, rpt.json)"),
    "run": ("RUN_DIR", "a training run folder: uses RUN_DIR/export"),
    "task": ("NAME", "the task to predict (default: the export's; axb/axg with an RTE export)"),
    "split": (
        "SPLIT",
        "a split in the data folder: test (default; the leaderboard file), val, train",
    ),
    "input": ("FILE", "a JSONL file in the task's official format, instead of split="),
    "data": ("DIR", "the SuperGLUE folder <Task>/{train,val,test}.jsonl (default: $RPT_DATA_DIR)"),
    "out": ("DIR", "the output folder (default: <export>/predictions)"),
    "mode": ("MODE", "rank (score every candidate) or generate (greedy); default: the export's"),
    "batch_size": ("N", "examples per forward pass (default 32)"),
    "device": ("DEVICE", "cpu, cuda, cuda:1... (default: cuda when available)"),
    "model": ("PATH", "a folder or hub name holding the export's backbone (a local copy of it)"),
    "scores": ("BOOL", "true: also write every candidate's score (rank mode)"),
}
_KEY_VALUE = re.compile(r"^([a-z_]+)=(.*)$", re.DOTALL)


def _as_flags(argv: Sequence[str]) -> list[str]:
    """``key=value`` → ``--key value`` for the known keys, so argparse does the rest."""
    out: list[str] = []
    for arg in argv:
        match = _KEY_VALUE.match(arg)
        if match and match.group(1) in OPTIONS:
            out += [f"--{match.group(1)}", match.group(2)]
        else:
            out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpt-predict",
        usage="rpt-predict export=DIR | run=RUN_DIR [split=test | input=FILE.jsonl] [key=value ...]",
        description=(
            "Predict with an exported prompt and write predictions / SuperGLUE submission files.\n"
            "Every option is given as key=value (split=test) or --key value (--split test)."
        ),
        epilog=(
            "Examples:\n"
            "  python -m rpt.predict export=exports/cb task=cb split=test     # CB.jsonl for the leaderboard\n"
            "  python -m rpt.predict run=outputs/runs/rte/... task=axb        # AX-b.jsonl with an RTE prompt\n"
            "  python -m rpt.predict export=exports/cb input=my_cb.jsonl out=preds scores=true"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for key, (metavar, help_text) in OPTIONS.items():
        kwargs: dict[str, Any] = {"help": help_text, "metavar": metavar}
        if key == "batch_size":
            kwargs["type"] = int
        if key == "split":
            kwargs["default"] = "test"
        if key == "mode":
            kwargs["choices"] = ("rank", "generate")
        if key == "scores":
            kwargs["type"] = _boolean
            kwargs["default"] = False
        parser.add_argument(f"--{key}", **kwargs)
    return parser


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def export_folder(args: argparse.Namespace) -> Path:
    if bool(args.export) == bool(args.run):
        raise ValueError("give exactly one of export=DIR or run=RUN_DIR")
    return Path(args.export) if args.export else Path(args.run) / "export"


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)  # never a half-written submission file


def predict(args: argparse.Namespace) -> dict[str, Any]:
    """Run one prediction job; returns what was written (paths, counts, metrics)."""
    from rpt.data.readers import DataError, load_split
    from rpt.inference import load

    export_dir = export_folder(args)
    model = args.model or None
    predictor = load(
        export_dir,
        model=model,
        task=args.task,
        device=args.device,
        batch_size=args.batch_size or 32,
    )
    task = predictor.task

    # 1. the examples
    if args.input:
        examples = predictor.examples_from_file(args.input)
        name = f"{task.folder}.{Path(args.input).stem}"
    else:
        data_dir = args.data or os.environ.get("RPT_DATA_DIR")
        if not data_dir:
            raise DataError(
                "no data folder: pass data=/path/to/superglue (or set RPT_DATA_DIR), or input=FILE.jsonl"
            )
        split = args.split  # AX-b / AX-g: their one file is split=test
        examples = load_split(task, data_dir, split)
        name = task.folder if split == "test" else f"{task.folder}.{split}"

    # 2. predictions
    texts, scores = predictor.predict_examples(examples, mode=args.mode, return_scores=True)

    # 3. files
    out_dir = Path(args.out) if args.out else export_dir / "predictions"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"predictions": out_dir / f"{name}.jsonl"}
    _write_jsonl(written["predictions"], task.submission_records(examples, texts))
    metrics = None
    if all(ex.is_labeled for ex in examples):
        metrics = task.compute_metrics(examples, texts)
        written["metrics"] = out_dir / f"{name}.metrics.json"
        written["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    if args.scores and scores is not None:
        written["scores"] = out_dir / f"{name}.scores.jsonl"
        rows = [
            {"idx": ex.idx, "prediction": text, "choices": list(ex.choices), "scores": s}
            for ex, text, s in zip(examples, texts, scores)
        ]
        _write_jsonl(written["scores"], rows)
    return {"files": written, "examples": len(examples), "metrics": metrics}


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(_as_flags(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rpt.backbones import ModelLoadError
    from rpt.data.readers import DataError
    from rpt.inference import ExportError

    try:
        result = predict(args)
    except (ExportError, DataError, ModelLoadError, ValueError) as err:
        parser.exit(2, f"rpt-predict: error: {err}\n")
    for kind, path in result["files"].items():
        print(f"[rpt] {kind}: {path}")
    print(
        f"[rpt] {result['examples']} examples"
        + (f"; metrics: {result['metrics']}" if result["metrics"] else "")
    )


if __name__ == "__main__":
    main()
