"""Training throughput and peak memory of rpt against PEFT, the original padding and the bound.

    python -m benchmarks.train_throughput --backbone minilm --tasks cb,rte,multirc
    python -m benchmarks.train_throughput --backbone t5_small_random --tasks cb,rte --batches 3
    python -m benchmarks.train_throughput --backbone minilm --tasks rte --memory
    python -m benchmarks.train_throughput --backbone minilm --tasks rte --rows rpt,bound \\
        --prompt-lengths 10,100

Rows (``--rows``; see ``benchmarks/rows.py`` for exactly what each runs):

* ``rpt``           Trainer.fit as rpt.train builds it, prompt=none, random batches
* ``rpt_residual``  the same with prompt=residual_mlp1
* ``rpt_grouped``   prompt=none with data.group_by_length=true
* ``peft``          PEFT PromptTuningConfig + a plain loop + HF dynamic-padding collator
* ``bound``         bare loop, raw nn.Parameter prompt, rpt's random batches pre-collated
* ``bound_grouped`` the same on the length-grouped batches
* ``padded``        the bound's loop with every input padded to 512 (the original code)
* ``rpt_bare``      (not by default) rpt's own step code in the bound's loop: splits the gap
                    between rpt and the bound into rpt's code and Lightning's

Every row trains on the same ``--batches × --batch-size`` real training examples of each task
(drawn by data_seed), in one process, alternating row after row for ``--repeats`` repeats.
Throughput is examples per CPU second and per wall second, medians over repeats; ratios are
paired (same repeat), median over repeats. ``--override`` adds an rpt config override to every
row's config (e.g. ``trainer.precision=bf16-mixed`` for the rpt rows). ``--memory`` instead
runs each row ``--repeats`` times, each in a fresh subprocess, and reports the peak resident
memory the training added (see ``benchmarks.common.reset_peak_rss``). docs/performance.md has
the results and what they mean.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import (
    DEFAULT_THREADS,
    RowResult,
    Timing,
    alternate,
    paired_ratio,
    peak_rss_kb,
    reset_peak_rss,
    setup_process,
    write_json,
)

ROWS = (
    "rpt",
    "rpt_residual",
    "rpt_grouped",
    "peft",
    "bound",
    "bound_grouped",
    "padded",
    "rpt_bare",
)
DEFAULT_ROWS = ROWS[:-1]
GROUPED = {"rpt_grouped", "bound_grouped"}


def make_row(name: str, work, padded_batches: int) -> Callable[[], Timing]:
    """Set a row up (models loaded, data tokenised, batches collated); return its timed run."""
    from benchmarks import rows

    if name == "rpt":
        return rows.rpt_row(work, "none")
    if name == "rpt_residual":
        return rows.rpt_row(work, "residual_mlp1")
    if name == "rpt_grouped":
        return rows.rpt_row(work, "none", grouped=True)
    if name == "rpt_bare":
        return rows.rpt_bare_row(work)
    if name == "peft":
        return rows.PeftLoop(work).run
    if name in ("bound", "bound_grouped"):
        return rows.BoundLoop(work, grouped=name in GROUPED).run
    if name == "padded":
        loop = rows.BoundLoop(work, pad_to=rows.original_width(work))
        return lambda: loop.run(limit=padded_batches)
    raise ValueError(f"unknown row {name!r}; choose from {', '.join(ROWS)}")


def reparam_cost_ms(work, prompt: str = "residual_mlp1", iters: int = 200) -> float:
    """Forward + backward of the prompt network alone, in CPU ms: what it adds to each step."""
    reparam = work.module(prompt).reparam
    start = time.process_time()
    for _ in range(iters):
        reparam().sum().backward()
    reparam.zero_grad(set_to_none=True)
    return (time.process_time() - start) / iters * 1e3


def checkpoint_sizes(work) -> dict[str, float]:
    """Bytes of a Lightning checkpoint of rpt (trainable parameters only) and of PEFT's adapter."""
    import tempfile

    import torch

    from benchmarks.rows import PeftLoop

    sizes = {}
    for prompt in ("none", "residual_mlp1"):
        module = work.module(prompt)
        state = {
            k: v for k, v in module.state_dict().items() if not k.startswith("backbone.model.")
        }
        with tempfile.TemporaryDirectory() as tmp:
            # The same filtering as PromptTuningModule.on_save_checkpoint, saved as Lightning does.
            path = Path(tmp) / "x.ckpt"
            torch.save({"state_dict": state}, path)
            sizes[f"rpt_{prompt}_ckpt_bytes"] = path.stat().st_size
        sizes[f"rpt_{prompt}_trainable_bytes"] = 4 * module.num_trainable_parameters()
    peft = PeftLoop(work)
    with tempfile.TemporaryDirectory() as tmp:
        peft.model.save_pretrained(tmp)
        sizes["peft_adapter_bytes"] = sum(
            p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()
        )
    sizes["backbone_bytes"] = 4 * sum(p.numel() for p in work.module().backbone.model.parameters())
    return sizes


def run_task(args, task: str, prompt_length: int, first: bool) -> dict:
    from benchmarks.rows import Workload, rpt_row

    examples = args.batches * args.batch_size
    work = Workload(
        args.backbone,
        task,
        prompt_length,
        examples,
        args.batch_size,
        mode=args.mode,
        extra=tuple(args.override),
    )
    # The 512-padded row costs the same whatever the examples: measured on the first task only.
    names = [r for r in args.rows if r != "padded" or first]
    runs = {name: make_row(name, work, args.padded_batches) for name in names}
    print(
        f"\n== {args.backbone} / {task} / prompt {prompt_length}: {examples} examples, batch "
        f"{args.batch_size}, frozen model in {'train' if work.backbone_training else 'eval'} mode"
    )

    # Warm-up, not timed: kernels and allocator for this task's shapes; Lightning's first fit
    # in a process also imports and sets up what later fits reuse.
    from benchmarks.rows import BoundLoop

    BoundLoop(work).run(limit=2)
    if first and any(r.startswith("rpt") for r in args.rows):
        rpt_row(work, "none")()

    results = alternate(runs, args.repeats)
    out = {
        "task": task,
        "prompt_length": prompt_length,
        "examples": examples,
        "backbone_training": work.backbone_training,
        "rows": {
            name: {
                "examples": r.timings[0].examples,
                "wall_rate": r.median_rate("wall"),
                "wall_spread": r.spread("wall"),
                "cpu_rate": r.median_rate("cpu"),
                "cpu_spread": r.spread("cpu"),
                "wall_s": [t.seconds for t in r.timings],
                "cpu_s": [t.cpu for t in r.timings],
                "fit_s": [t.extra["fit_s"] for t in r.timings if "fit_s" in t.extra],
            }
            for name, r in results.items()
        },
        "padding_efficiency": {
            "random": work.padding_efficiency(False),
            "grouped": work.padding_efficiency(True),
        },
        "ratios": {clock: ratios(results, clock) for clock in ("cpu", "wall")},
    }
    if "rpt_residual" in results and "rpt" in results:
        step_ms = 1e3 * min(t.cpu for t in results["rpt"].timings) / args.batches
        out["residual_network_ms_per_step"] = reparam_cost_ms(work)
        out["step_ms_fastest_rpt"] = step_ms
    if args.sizes:
        out["sizes"] = checkpoint_sizes(work)
    print_table(out)
    return out


def ratios(results: dict[str, RowResult], clock: str) -> dict[str, float]:
    pairs = {
        "rpt/bound": ("rpt", "bound"),
        "rpt_grouped/bound_grouped": ("rpt_grouped", "bound_grouped"),
        "rpt/peft": ("rpt", "peft"),
        "rpt_grouped/peft": ("rpt_grouped", "peft"),
        "bound_grouped/bound": ("bound_grouped", "bound"),
        "rpt_residual/rpt": ("rpt_residual", "rpt"),
        "peft/bound": ("peft", "bound"),
        "rpt_bare/bound": ("rpt_bare", "bound"),
        "rpt/rpt_bare": ("rpt", "rpt_bare"),
        "padded/bound": ("padded", "bound"),
        "rpt_grouped/padded": ("rpt_grouped", "padded"),
    }
    return {
        k: paired_ratio(results[a], results[b], clock)
        for k, (a, b) in pairs.items()
        if a in results and b in results
    }


def print_table(out: dict) -> None:
    print(
        "\n| row | examples/CPU-s | min-max | examples/s (wall) | min-max | examples |"
        "\n|---|---:|---:|---:|---:|---:|"
    )
    for name, r in out["rows"].items():
        print(
            f"| {name} | {r['cpu_rate']:.2f} | {r['cpu_spread']} | {r['wall_rate']:.2f} "
            f"| {r['wall_spread']} | {r['examples']} |"
        )
    eff = out["padding_efficiency"]
    print(
        f"\npadding efficiency (real/computed tokens): random {eff['random']:.2f}, "
        f"grouped {eff['grouped']:.2f}"
    )
    print(f"  {'paired ratio (median)':<28} {'cpu':>6} {'wall':>6}")
    for k, v in out["ratios"]["cpu"].items():
        print(f"  {k:<28} {v:6.3f} {out['ratios']['wall'][k]:6.3f}")
    if "residual_network_ms_per_step" in out:
        print(
            f"  residual_mlp1 network fwd+bwd: {out['residual_network_ms_per_step']:.3f} ms/step "
            f"vs fastest rpt step {out['step_ms_fastest_rpt']:.1f} ms (cpu)"
        )
    if "sizes" in out:
        print("  sizes: " + ", ".join(f"{k}={v / 1024:.1f} KiB" for k, v in out["sizes"].items()))


# ---- memory: one fresh process per row -----------------------------------------------------
def child(args) -> None:
    """Set one row up, reset the peak RSS, train once, print the peak the training added."""
    from benchmarks.rows import Workload

    task = args.tasks[0]
    work = Workload(
        args.backbone,
        task,
        args.prompt_lengths[0],
        args.batches * args.batch_size,
        args.batch_size,
        mode=args.mode,
        extra=tuple(args.override),
    )
    run = make_row(args.child, work, args.padded_batches)
    rss0 = reset_peak_rss()
    timing = run()
    peak = peak_rss_kb()
    print(
        "MEM "
        + json.dumps(
            {
                "row": args.child,
                "task": task,
                "rss_before_mb": rss0 / 1024,
                "peak_mb": peak / 1024,
                "added_mb": (peak - rss0) / 1024,
                "seconds": timing.seconds,
                "examples": timing.examples,
            }
        )
    )


def memory(args) -> list[dict]:
    """Each row ``--repeats`` times, each time in a fresh process, rows alternating; medians."""
    import statistics

    found = []
    for task in args.tasks:
        added: dict[str, list[float]] = {row: [] for row in args.rows}
        for r in range(args.repeats):
            for row in args.rows:
                record = _child_run(args, task, row)
                record["repeat"] = r
                found.append(record)
                added[row].append(record["added_mb"])
                print(
                    f"  {task:<8} {row:<14} +{record['added_mb']:7.1f} MB peak over "
                    f"{record['rss_before_mb']:.0f} MB ({record['examples']} examples)"
                )
        print(f"\n| {task}: row | peak memory added by training, MB (median) | min-max |")
        print("|---|---:|---:|")
        for row, values in added.items():
            print(
                f"| {row} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} |"
            )
    return found


def _child_run(args, task: str, row: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.train_throughput",
        "--child",
        row,
        "--backbone",
        args.backbone,
        "--tasks",
        task,
        "--batches",
        str(args.batches),
        "--batch-size",
        str(args.batch_size),
        "--padded-batches",
        str(args.padded_batches),
        "--prompt-lengths",
        str(args.prompt_lengths[0]),
        "--threads",
        str(args.threads),
        "--mode",
        args.mode,
        *(f"--override={o}" for o in args.override),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MEM ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][4:])


def parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--backbone",
        default="minilm",
        help="a model config name (minilm, t5_small_random, tiny_t5, ...)",
    )
    p.add_argument("--tasks", default="cb,rte,multirc", type=lambda s: s.split(","))
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS), type=lambda s: s.split(","))
    p.add_argument(
        "--batches",
        type=int,
        default=4,
        help="batches per row and repeat (an epoch of batches × batch-size examples)",
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--padded-batches",
        type=int,
        default=1,
        help="batches for the 512-padded row (its cost does not depend on the examples)",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--prompt-lengths", default="10", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument(
        "--mode",
        default="rpt",
        choices=("rpt", "train", "eval"),
        help="frozen model's dropout in every row: as rpt.train leaves it (rpt), on, or off",
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        help="extra rpt config override for every row, e.g. model.gradient_checkpointing=true",
    )
    p.add_argument(
        "--memory", action="store_true", help="peak memory per row, one fresh process each"
    )
    p.add_argument("--sizes", action="store_true", help="also report checkpoint and adapter sizes")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}; choose from {', '.join(ROWS)}")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    setup_process(args.threads)
    if args.child:
        return child(args)
    start = time.perf_counter()
    meta = {"argv": sys.argv, "threads": args.threads, "backbone": args.backbone}
    if args.memory:
        write_json(args.json, {**meta, "memory": memory(args)})
    else:
        results = []
        for i, task in enumerate(args.tasks):
            for n in args.prompt_lengths:
                results.append(
                    run_task(args, task, n, first=i == 0 and n == args.prompt_lengths[0])
                )
        write_json(args.json, {**meta, "results": results})
    print(f"\n[bench] total wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
