"""How much of a full training epoch is padding, with random and with length-grouped batches.

    python -m benchmarks.padding --backbone minilm --tasks cb,rte,multirc

No model runs: this tokenises each task's whole training split as rpt does (the prompt's room
reserved) and counts, for one epoch of rpt's sampler at ``--batch-size``, the input positions a
dynamically padded batch computes (batch size × its longest input, plus the prompt) against the
real ones. Noise-free, so it shows what the timed benchmarks (on a few batches) can only sample.
"""

from __future__ import annotations

import argparse

from benchmarks.common import DEFAULT_THREADS, setup_process, write_json


def epoch_positions(lengths: list[int], order: list[int], batch_size: int, prompt: int) -> int:
    """Positions computed over an epoch: every batch padded to its longest input, plus the prompt."""
    total = 0
    for k in range(0, len(order), batch_size):
        batch = order[k : k + batch_size]
        total += len(batch) * (max(lengths[i] for i in batch) + prompt)
    return total


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", default="minilm")
    p.add_argument("--tasks", default="cb,rte,multirc", type=lambda s: s.split(","))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--prompt-length", type=int, default=10)
    p.add_argument("--json")
    args = p.parse_args(argv)
    setup_process(DEFAULT_THREADS)
    from benchmarks.rows import Workload
    from rpt.data.samplers import EpochSeededSampler, LengthGroupedSampler

    out = []
    print(
        "| task | examples | mean / max input | random: real/computed | grouped: real/computed "
        "| computed positions, random / grouped |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for task in args.tasks:
        work = Workload(args.backbone, task, args.prompt_length, examples=10**9)
        features = work.datamodule().split_features("train")
        lengths = [len(f["source"]) for f in features]
        n, b, prompt = len(lengths), args.batch_size, args.prompt_length
        real = sum(lengths) + n * prompt
        random_order = list(EpochSeededSampler(n, work.seed))
        grouped_order = list(LengthGroupedSampler(lengths, b, work.seed))
        rand = epoch_positions(lengths, random_order, b, prompt)
        grouped = epoch_positions(lengths, grouped_order, b, prompt)
        record = {
            "task": task,
            "examples": n,
            "mean_len": sum(lengths) / n,
            "max_len": max(lengths),
            "random_efficiency": real / rand,
            "grouped_efficiency": real / grouped,
            "positions_ratio": rand / grouped,
        }
        out.append(record)
        print(
            f"| {task} | {n} | {record['mean_len']:.0f} / {record['max_len']} "
            f"| {record['random_efficiency']:.2f} | {record['grouped_efficiency']:.2f} "
            f"| {record['positions_ratio']:.2f}x |"
        )
    write_json(args.json, {"argv": vars(args), "results": out})


if __name__ == "__main__":
    main()
