"""Levers measured one by one against rpt's default training step, side by side in one process.

    python -m benchmarks.levers --backbone minilm --task rte
    python -m benchmarks.levers --backbone t5_small_random --task rte --levers bf16,checkpointing
    python -m benchmarks.levers --backbone minilm --task rte --levers compile --batches 3

Levers (``--levers``):

* ``bf16``: ``trainer.precision=bf16-mixed`` (autocast to bfloat16 on the CPU);
* ``dropout``: the frozen model in train mode (dropout on, as PEFT users and the original code
  run it) against the mode rpt.train leaves it in;
* ``quiet``: no progress bar and no logger (``trainer.enable_progress_bar=false logger=none``):
  what Lightning's per-step display and logging cost;
* ``checkpointing``: ``model.gradient_checkpointing=true`` against rpt's default step (both in
  the mode rpt.train leaves the frozen model in: eval, no dropout);
* ``compile``: ``torch.compile(dynamic=True)`` of the frozen model in the bare loop; the first
  pass (compilation included) is reported apart from the steady state.

Every row is a real ``Trainer.fit`` as in ``benchmarks.train_throughput`` (``compile``: the bare
loop). Ratios are paired (same repeat) medians of examples per CPU second.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import (
    DEFAULT_THREADS,
    Clock,
    alternate,
    paired_ratio,
    setup_process,
    write_json,
)

LEVERS = ("bf16", "dropout", "quiet", "checkpointing", "compile")


def build(args) -> tuple[dict, list[tuple[str, str]], dict]:
    """Rows to alternate, the (row, baseline) pairs to compare, and one-off figures."""
    from benchmarks.rows import BoundLoop, Workload, rpt_row

    examples = args.batches * args.batch_size
    kw = dict(examples=examples, batch_size=args.batch_size)
    base = Workload(args.backbone, args.task, **kw)
    rows = {"rpt": rpt_row(base)}
    pairs, once = [], {}
    if "bf16" in args.levers:
        rows["rpt_bf16"] = rpt_row(base, extra=("trainer.precision=bf16-mixed",))
        pairs.append(("rpt_bf16", "rpt"))
    if "quiet" in args.levers:
        rows["rpt_quiet"] = rpt_row(
            base, extra=("trainer.enable_progress_bar=false", "logger=none")
        )
        pairs.append(("rpt_quiet", "rpt"))
    train_mode = None
    if "dropout" in args.levers:
        train_mode = Workload(args.backbone, args.task, mode="train", **kw)
        rows["rpt_train_mode"] = rpt_row(train_mode)
        pairs.append(("rpt_train_mode", "rpt"))
    if "checkpointing" in args.levers:
        # Its own workload: a model setting, so its own module (rpt_row's extra reaches the trainer only).
        ckpt = Workload(
            args.backbone, args.task, extra=("model.gradient_checkpointing=true",), **kw
        )
        rows["rpt_checkpointing"] = rpt_row(ckpt)
        pairs.append(("rpt_checkpointing", "rpt"))
    if "compile" in args.levers:
        import torch

        eager = BoundLoop(base)
        compiled = BoundLoop(base)
        compiled.model = torch.compile(base.module().backbone.model, dynamic=True)
        clock = Clock()
        first = compiled.run()  # compiles (and recompiles for new shapes) on the way
        once["compile_first_pass_wall_s"] = time.perf_counter() - clock.wall
        once["compile_first_pass_cpu_s"] = first.cpu
        rows["bound"] = eager.run
        rows["bound_compiled"] = compiled.run
        pairs.append(("bound_compiled", "bound"))
    return rows, pairs, once


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", default="minilm")
    p.add_argument("--task", default="rte")
    p.add_argument("--levers", default="bf16,dropout,quiet", type=lambda s: s.split(","))
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--json")
    args = p.parse_args(argv)
    unknown = set(args.levers) - set(LEVERS)
    if unknown:
        p.error(f"unknown levers {sorted(unknown)}; choose from {', '.join(LEVERS)}")
    setup_process(args.threads)
    start = time.perf_counter()
    rows, pairs, once = build(args)
    rows[next(iter(rows))]()  # warm-up, not timed
    print(
        f"\n== levers on {args.backbone} / {args.task}: {args.batches} batches of {args.batch_size}"
    )
    results = alternate(rows, args.repeats)
    print("\n| row | examples/CPU-s | min-max | examples/s (wall) |\n|---|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r.median_rate('cpu'):.2f} | {r.spread('cpu')} | "
            f"{r.median_rate('wall'):.2f} |"
        )
    ratios = {f"{a}/{b}": paired_ratio(results[a], results[b], "cpu") for a, b in pairs}
    for k, v in ratios.items():
        print(f"  {k:<36} {v:.3f} (paired, cpu)")
    for k, v in once.items():
        print(f"  {k:<36} {v:.1f}")
    write_json(
        args.json,
        {
            "argv": vars(args),
            "rows": {
                n: {
                    "cpu": r.median_rate("cpu"),
                    "wall": r.median_rate("wall"),
                    "cpu_s": [t.cpu for t in r.timings],
                }
                for n, r in results.items()
            },
            "ratios_cpu": ratios,
            "once": once,
        },
    )
    print(f"\n[bench] total wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
