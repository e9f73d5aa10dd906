"""The shared LightningDataModule: read a task's splits, select, tokenise once, batch.

Per-task modules (``rpt.data.tasks``) only say what differs; everything here is common:

1. read splits from the official JSONL folder (``data.source=local``) or the hub (``hub``);
2. carve a seeded train/validation split where a split is missing (``data.carve``);
3. select few-shot / capped training sets by ``data_seed``;
4. tokenise each split once, through the backbone's ``featurize`` (the prompt's room reserved);
5. serve dynamically padded batches; the training order depends on (``seed``, epoch) only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from rpt.data import sampling
from rpt.data.collate import Collator
from rpt.data.example import Example
from rpt.data.readers import DataError, load_hub_split, load_split
from rpt.data.samplers import EpochSeededSampler, LengthGroupedSampler
from rpt.data.tasks.base import Task
from rpt.resume import ResumableDataLoader

log = logging.getLogger(__name__)

Featurize = Callable[[str, tuple[str, ...], "str | None", int], dict[str, list]]
SOURCES = ("auto", "local", "hub")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """``data.dir``, else ``$RPT_DATA_DIR``, else None."""
    value = data_dir or os.environ.get("RPT_DATA_DIR")
    return Path(value).expanduser() if value else None


def pick_source(source: str, task: Task, data_dir: Path | None) -> str:
    """``auto`` means local when the task's folder exists, else the hub."""
    if source not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
    if source != "auto":
        return source
    return "local" if data_dir is not None and (data_dir / task.folder).is_dir() else "hub"


class SuperGLUEDataModule(L.LightningDataModule):
    """Batches of one SuperGLUE task for one backbone.

    Args:
        task: what differs per task (template, label words, metric, record → examples).
        featurize: the backbone's ``featurize(source, choices, target, prompt_length)``.
        pad_id: the tokenizer's pad id.
        prompt_length: ``n``, reserved in every input.
        data: the ``data`` config (dir, source, batch sizes, few-shot, carve, …).
        seed: optimisation seed (training order); data_seed: example selection and carving.
    """

    def __init__(
        self,
        task: Task,
        featurize: Featurize,
        pad_id: int,
        prompt_length: int,
        data: Mapping[str, Any],
        seed: int = 0,
        data_seed: int = 0,
    ):
        super().__init__()
        self.task = task
        self.featurize = featurize
        self.prompt_length = prompt_length
        self.cfg = dict(data)
        self.seed = seed
        self.data_seed = data_seed
        self.collate = Collator(pad_id)
        self.data_dir = resolve_data_dir(self.cfg.get("dir"))
        self.source = pick_source(self.cfg.get("source", "auto"), task, self.data_dir)
        self.examples: dict[str, list[Example]] = {}
        self.features: dict[str, list[dict[str, Any]]] = {}
        self.notes: list[str] = []  # what was carved or sampled, for the run's log and rpt.json

    # ---- reading -----------------------------------------------------------------------------
    def available_splits(self) -> list[str]:
        if self.source == "hub":
            return list(self.task.split_files)
        folder = self._task_folder()
        return [s for s, name in self.task.split_files.items() if (folder / name).is_file()]

    def _task_folder(self) -> Path:
        if self.data_dir is None:
            raise DataError(
                "No data folder: set data.dir=/path/to/superglue or the environment variable "
                "RPT_DATA_DIR (a folder in the official layout <Task>/{train,val,test}.jsonl), "
                "or use data.source=hub."
            )
        return self.data_dir / self.task.folder

    def _read(self, split: str) -> list[Example]:
        if self.source == "hub":
            return load_hub_split(self.task, split)
        return load_split(self.task, self._task_folder().parent, split)

    def split_examples(self, split: str) -> list[Example]:
        """Examples of ``split`` after carving and selection (cached)."""
        if split not in self.examples:
            self._load(split)
        return self.examples[split]

    def _load(self, split: str) -> None:
        carve = self.cfg.get("carve") or {}
        if split in ("train", "val") and carve.get("from"):
            self._carve(carve)
        else:
            self.examples[split] = self._read(split)
        if split == "train":
            self.examples["train"] = self._select_train(self.examples["train"])

    def _carve(self, carve: Mapping[str, Any]) -> None:
        source_split = carve["from"]
        fraction = float(carve.get("val_fraction", 0.5))
        pool = self._read(source_split)
        # Group so that one passage / question never lands on both sides.
        train, val = sampling.carve(pool, fraction, self.data_seed, key=carve_key)
        self.examples["train"], self.examples["val"] = train, val
        self._note(
            f"carved {self.task.folder}/{source_split} ({len(pool)} examples) into train {len(train)}"
            f" / val {len(val)} with data_seed={self.data_seed}: val is NOT the official validation set"
        )

    def _select_train(self, examples: list[Example]) -> list[Example]:
        k = self.cfg.get("k_per_class")
        if k:
            by_class = self.task.num_classes is not None
            examples = sampling.k_per_class(examples, int(k), self.data_seed, by_class=by_class)
            self._note(
                f"few-shot: {len(examples)} training examples (k={k}, data_seed={self.data_seed})"
            )
        limit = self.cfg.get("max_train_examples")
        if limit:
            before = len(examples)
            examples = sampling.cap(examples, int(limit), self.data_seed)
            if len(examples) < before:
                self._note(
                    f"capped training set at {len(examples)} of {before} (data_seed={self.data_seed})"
                )
        return examples

    def _note(self, message: str) -> None:
        log.info(message)
        self.notes.append(message)

    # ---- tokenising --------------------------------------------------------------------------
    def split_features(self, split: str) -> list[dict[str, Any]]:
        """Token ids of every example of ``split``, computed once per split."""
        if split not in self.features:
            examples = self.split_examples(split)
            bar = tqdm(
                examples,
                desc=f"tokenising {self.task.name}/{split}",
                disable=len(examples) < 2000,
                leave=False,
            )
            self.features[split] = [
                {
                    **self.featurize(ex.source, ex.choices, ex.target, self.prompt_length),
                    "example": ex,
                    "index": i,
                }
                for i, ex in enumerate(bar)
            ]
        return self.features[split]

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": ["train", "val"],
            "validate": ["val"],
            "test": ["val"],
            "predict": ["test"],
        }
        for split in wanted.get(stage or "fit", ["train", "val"]):
            self.split_features(split)

    # ---- loaders -----------------------------------------------------------------------------
    def _loader(
        self, features: Sequence[dict[str, Any]], batch_size: int, sampler=None, train: bool = False
    ) -> DataLoader:
        # The training loader can restart mid-epoch where a checkpoint left off (rpt.resume).
        extra = {"trainer": lambda: self.trainer} if train else {}
        return (ResumableDataLoader if train else DataLoader)(
            features,  # type: ignore[arg-type]
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=int(self.cfg.get("num_workers", 0)),
            **extra,
        )

    def train_dataloader(self) -> DataLoader:
        features = self.split_features("train")
        batch_size = int(self.cfg["batch_size"])
        if self.cfg.get("group_by_length"):
            # Batches of similar length pad less (docs/performance.md); the sampler shards itself.
            replicas, rank = self._replica()
            lengths = [len(f["source"]) for f in features]
            sampler = LengthGroupedSampler(
                lengths, batch_size, self.seed, num_replicas=replicas, rank=rank
            )
            return self._loader(features, batch_size, sampler, train=True)
        sampler = EpochSeededSampler(len(features), self.seed)
        return self._loader(features, batch_size, sampler, train=True)

    def _replica(self) -> tuple[int, int]:
        """``(num_replicas, rank)`` from the attached trainer's strategy; ``(1, 0)`` otherwise."""
        kwargs = getattr(self.trainer, "distributed_sampler_kwargs", None) if self.trainer else None
        return (int(kwargs["num_replicas"]), int(kwargs["rank"])) if kwargs else (1, 0)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split_features("val"), int(self.cfg.get("eval_batch_size", 32)))

    def loader_for(self, split: str) -> DataLoader:
        return self._loader(self.split_features(split), int(self.cfg.get("eval_batch_size", 32)))


def carve_key(example: Example) -> Any:
    """The unit kept whole when carving: MultiRC's paragraph, ReCoRD's passage, else the example."""
    if "passage_idx" in example.meta:
        return example.meta["passage_idx"]
    group = example.group
    if isinstance(group, (tuple, list)) and group:
        return group[0]
    return group if group is not None else example.idx
