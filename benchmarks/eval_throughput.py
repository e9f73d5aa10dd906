"""Evaluation throughput: ``rank`` (score every candidate in one batched pass) against ``generate``.

    python -m benchmarks.eval_throughput --backbone t5_small_random --tasks cb,rte
    python -m benchmarks.eval_throughput --backbone gpt2_random --tasks cb --batches 1

Both go through ``PromptTuningModule.predict_texts`` (what validation runs), in eval mode and
without gradients, on the first ``--batches`` validation batches of each task (batch size
``data.eval_batch_size``). Rows:

* ``rank``: the encoder runs once per example; the decoder scores every label's tokens;
* ``generate``: greedy decoding with ``eval.max_new_tokens`` (16, rpt's default). A model with
  random weights rarely emits end-of-sequence, so this is the worst case: 16 decoder steps;
* ``rank_full_rows`` (decoder-only models): every ``[P] source candidate`` row in full, the
  source once per candidate (what rank did before it shared the source's cache);
* ``generate_short``: greedy decoding capped at the longest label's length: the best case, what a
  trained model that stops right after the label costs.

Encoders (MiniLM) cannot generate: their "generate" is the head's best label, i.e. ``rank``.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import (
    DEFAULT_THREADS,
    Clock,
    Timing,
    alternate,
    paired_ratio,
    setup_process,
    write_json,
)


def make_rows(work, batches: int) -> dict:
    module = work.module("none").eval()
    loader = work.datamodule().loader_for("val")
    data = []
    for i, batch in enumerate(loader):
        if i == batches:
            break
        data.append(batch)
    label_tokens = max(int(b["choice_mask"].sum(-1).max()) for b in data)

    def row(mode: str, max_new_tokens: int | None = None):
        def run() -> Timing:
            eval_cfg = module.cfg.setdefault("eval", {})
            saved = eval_cfg.get("max_new_tokens", 16)
            if max_new_tokens is not None:
                eval_cfg["max_new_tokens"] = max_new_tokens
            clock = Clock()
            with torch.inference_mode():
                n = sum(len(module.predict_texts(b, mode)) for b in data)
            timing = clock.stop(n)
            eval_cfg["max_new_tokens"] = saved
            return timing

        return run

    def full_rows() -> Timing:
        # Decoder-only rank scoring before the shared source: every [P] source candidate row.
        clock = Clock()
        with torch.inference_mode():
            prompt = module.prompt()
            n = sum(len(module.backbone.choice_scores_full_rows(b, prompt)) for b in data)
        return clock.stop(n)

    rows = {"rank": row("rank")}
    if module.backbone.family == "causal":
        rows["rank_full_rows"] = full_rows
    if module.backbone.family != "encoder":
        rows["generate"] = row("generate")
        rows["generate_short"] = row("generate", label_tokens)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", default="t5_small_random")
    p.add_argument("--tasks", default="cb,rte", type=lambda s: s.split(","))
    p.add_argument("--batches", type=int, default=2, help="validation batches per row and repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--json")
    args = p.parse_args(argv)
    setup_process(args.threads)
    from benchmarks.rows import Workload

    start = time.perf_counter()
    out = []
    for task in args.tasks:
        work = Workload(args.backbone, task)
        rows = make_rows(work, args.batches)
        rows["rank"]()  # warm-up, not timed
        print(f"\n== {args.backbone} / {task}: eval batch {work.config().data.eval_batch_size}")
        results = alternate(rows, args.repeats)
        record = {"task": task, "rows": {}}
        print("\n| row | examples/CPU-s | examples/s (wall) | rank's speed-up (cpu) |")
        print("|---|---:|---:|---:|")
        for name, r in results.items():
            up = paired_ratio(results["rank"], r, "cpu")
            record["rows"][name] = {
                "cpu_rate": r.median_rate("cpu"),
                "wall_rate": r.median_rate("wall"),
                "rank_speedup_cpu": up,
            }
            print(
                f"| {name} | {r.median_rate('cpu'):.1f} | {r.median_rate('wall'):.1f} | {up:.2f} |"
            )
        out.append(record)
    write_json(args.json, {"argv": vars(args), "results": out})
    print(f"\n[bench] total wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
