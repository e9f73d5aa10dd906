"""What ``rpt.train`` writes to disk, against the trainable parameters and the frozen backbone.

    python -m benchmarks.checkpoint_size --backbones minilm,t5_small_random --prompts none,residual_mlp1

Runs ``python -m rpt.train`` (one short epoch on CB: 16 training examples) for every backbone and
prompt, then lists the files of its ``checkpoints/`` and ``export/`` folders. ``best.ckpt`` is
saved weights-only (``callbacks.checkpoint.save_weights_only``): about 1x the trainable
parameters plus the run's config (~5-6 KiB). ``last.ckpt`` (for ``resume=true``) also holds the
optimizer's state (AdamW keeps two moments per parameter): about 3x. The export holds the
computed prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import write_json


def trainable_and_frozen(backbone: str, prompt: str) -> tuple[int, int]:
    """Numbers of trainable and frozen parameters of the module rpt.train builds."""
    code = (
        "from benchmarks.common import compose, setup_process; setup_process(1)\n"
        "from rpt.config import run_config; from rpt.module import PromptTuningModule\n"
        f"m = PromptTuningModule(run_config(compose(['model={backbone}', 'task=cb', "
        f"'prompt={prompt}'], '.')))\n"
        "print(m.num_trainable_parameters(), sum(p.numel() for p in m.backbone.model.parameters()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    trainable, frozen = out.stdout.split()[-2:]
    return int(trainable), int(frozen)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbones", default="minilm,t5_small_random", type=lambda s: s.split(","))
    p.add_argument("--prompts", default="none,residual_mlp1", type=lambda s: s.split(","))
    p.add_argument("--json")
    args = p.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    print(
        "| backbone | prompt | trainable params | 4 B x trainable | files written | frozen model (fp32) |"
    )
    print("|---|---|---:|---:|---|---:|")
    for backbone in args.backbones:
        for prompt in args.prompts:
            trainable, frozen = trainable_and_frozen(backbone, prompt)
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [
                    sys.executable,
                    "-m",
                    "rpt.train",
                    f"model={backbone}",
                    "task=cb",
                    f"prompt={prompt}",
                    "trainer=cpu",
                    "trainer.max_epochs=1",
                    "trainer.enable_progress_bar=false",
                    "data.max_train_examples=16",
                    "logger=csv",
                    f"hydra.run.dir={tmp}",
                ]
                subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                files = {
                    str(f.relative_to(tmp)): f.stat().st_size
                    for f in sorted(Path(tmp).rglob("*"))
                    if f.is_file() and f.parent.name in ("checkpoints", "export", "peft")
                }
            rows.append(
                {
                    "backbone": backbone,
                    "prompt": prompt,
                    "trainable": trainable,
                    "frozen": frozen,
                    "files": files,
                }
            )
            listed = ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in files.items())
            print(
                f"| {backbone} | {prompt} | {trainable:,} | {4 * trainable / 1024:.0f} KiB | "
                f"{listed} | {4 * frozen / 2**20:.0f} MiB |"
            )
    write_json(args.json, {"argv": vars(args), "results": rows})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
