"""Export and inference on the tiny models of every family: zero overhead, PEFT interop, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import rpt
from rpt.backbones.base import flatten_choices, scatter_scores, sequence_logprob
from rpt.backbones.causal import join_rows
from rpt.data.collate import Collator
from rpt.export import main as export_main
from rpt.export import write_export
from rpt.inference import ExportError
from rpt.prompts import Reparameterizer
from tests.helpers import build_module, plain_config

#: CB records in the official format, written for these tests.
CB_RECORDS = [
    {
        "idx": 0,
        "premise": "The cat slept all day on the warm mat.",
        "hypothesis": "the cat was awake",
        "label": "contradiction",
    },
    {
        "idx": 1,
        "premise": "She bought bread, milk and two apples.",
        "hypothesis": "she bought apples",
        "label": "entailment",
    },
    {
        "idx": 2,
        "premise": "He may come to the party, or he may not.",
        "hypothesis": "he will come",
        "label": "neutral",
    },
    {
        "idx": 3,
        "premise": "The river flooded the old town twice last year.",
        "hypothesis": "the town flooded",
        "label": "entailment",
    },
    {
        "idx": 4,
        "premise": "I doubt that the shop opens on Sundays.",
        "hypothesis": "the shop opens on Sundays",
        "label": "neutral",
    },
]


def trained_module(model: str, *overrides: str, steps: int = 2):
    """A tiny module after a few AdamW steps on CB_RECORDS, in eval mode: prompt, network (and
    head) all moved away from their initial values."""
    torch.manual_seed(0)
    module = build_module(
        [f"model={model}", "task=cb", "prompt=residual_mlp2", "optimizer.lr=0.05", *overrides]
    )
    examples = [
        ex
        for i, r in enumerate(CB_RECORDS)
        for ex in module.task.record_to_examples(r, f"record {i}")
    ]
    n = module.reparam.length
    features = [
        {
            **module.backbone.featurize(ex.source, ex.choices, ex.target, n),
            "example": ex,
            "index": i,
        }
        for i, ex in enumerate(examples)
    ]
    batch = Collator(module.backbone.pad_id)(features)
    optimizer = torch.optim.AdamW([p for _, p in module.trainable_named_parameters()], lr=0.05)
    module.train()
    for _ in range(steps):
        optimizer.zero_grad()
        module.backbone.loss(batch, module.prompt()).backward()
        optimizer.step()
    return module.eval()


#: (family, overrides): every family with its defaults, and the encoder with the placement and
#: pooling that PEFT's SEQ_CLS prompt tuning uses (front, pooler), which PEFT reproduces exactly.
VARIANTS = [
    ("tiny_t5", ()),
    ("tiny_gpt2", ()),
    ("tiny_bert", ()),
    ("tiny_bert", ("model.prompt_position=front", "model.pooling=pooler")),
]


_EXPORTS: dict[tuple[str, tuple[str, ...]], tuple] = {}


def export_of(variant: tuple[str, tuple[str, ...]], tmp_path_factory) -> tuple:
    """``(family, overrides, trained module, export folder)``, built once per test session."""
    if variant not in _EXPORTS:
        family, overrides = variant
        module = trained_module(family, *overrides)
        out = write_export(
            module, tmp_path_factory.mktemp(family) / "export", metrics={"val/score": 0.5}
        )
        _EXPORTS[variant] = (family, overrides, module, out)
    return _EXPORTS[variant]


@pytest.fixture(params=VARIANTS, ids=["t5", "gpt2", "bert", "bert_front_pooler"])
def exported(request, tmp_path_factory) -> tuple:
    return export_of(request.param, tmp_path_factory)


@pytest.fixture
def t5_export(tmp_path_factory) -> Path:
    return export_of(VARIANTS[0], tmp_path_factory)[3]


# ---- the export folder ---------------------------------------------------------------------------
def test_export_folder_holds_the_computed_prompt_and_a_peft_adapter(exported) -> None:
    family, _, module, out = exported
    prompt = load_file(str(out / "prompt.safetensors"))["prompt"]
    assert prompt.dtype == torch.float32 and prompt.shape == (10, 32)
    assert torch.equal(prompt, module.computed_prompt())
    # The residual network is not the identity, so exporting the raw P would be caught here.
    assert not torch.allclose(prompt, module.reparam.prompt.detach())
    meta = json.loads((out / "rpt.json").read_text())
    assert meta["backbone"]["name"] == family and meta["task"]["label_words"] == [
        "entailment",
        "contradiction",
        "neutral",
    ]
    assert meta["prompt"]["name"] == "residual_mlp2" and meta["metrics"] == {"val/score": 0.5}
    assert meta["rpt_version"] == rpt.__version__
    config = json.loads((out / "peft" / "adapter_config.json").read_text())
    task_type = {"tiny_t5": "SEQ_2_SEQ_LM", "tiny_gpt2": "CAUSAL_LM", "tiny_bert": "SEQ_CLS"}[
        family
    ]
    assert config["peft_type"] == "PROMPT_TUNING" and config["task_type"] == task_type
    assert (
        config["num_virtual_tokens"],
        config["token_dim"],
        config["num_transformer_submodules"],
    ) == (10, 32, 1)
    assert config["base_model_name_or_path"] == family
    adapter = load_file(str(out / "peft" / "adapter_model.safetensors"))
    assert torch.equal(adapter["prompt_embeddings"], prompt)
    if family == "tiny_bert":
        head = load_file(str(out / "head.safetensors"))
        assert "classifier" in config["modules_to_save"]
        assert torch.equal(adapter["base_model.classifier.weight"], head["weight"])
        assert torch.equal(adapter["base_model.classifier.bias"], head["bias"])
    else:
        assert set(adapter) == {"prompt_embeddings"} and not (out / "head.safetensors").exists()


# ---- zero overhead -------------------------------------------------------------------------------
def test_exported_prompt_reproduces_the_trained_module_exactly(exported) -> None:
    family, _, module, out = exported
    predictor = rpt.load(out, device="cpu")
    # No reparameterisation network: the prompt (and an encoder's head) are all there is to train.
    assert not any(isinstance(m, Reparameterizer) for m in predictor.modules())
    head = module.backbone.trainable_head()
    expected = 10 * 32 + (sum(p.numel() for p in head.parameters()) if head is not None else 0)
    assert predictor.num_trainable_parameters() == expected
    assert module.num_trainable_parameters() > expected  # the module also trains its network

    batch = next(predictor.batches(predictor.examples(CB_RECORDS)))
    with torch.no_grad():
        reference = module.backbone.choice_scores(batch, module.prompt())  # P' through the network
        reference_texts = module.predict_texts(batch, mode="rank")
    scores = predictor.choice_scores(batch)
    assert (scores - reference).abs().max().item() <= 1e-6
    texts, listed = predictor.predict(CB_RECORDS, return_scores=True)
    assert texts == reference_texts
    assert torch.tensor(listed).sub(reference).abs().max().item() <= 1e-6
    if family != "tiny_bert":
        with torch.no_grad():
            generated = module.predict_texts(batch, mode="generate")
        assert predictor.predict(CB_RECORDS, mode="generate") == generated


# ---- PEFT interop --------------------------------------------------------------------------------
def fresh_base(family: str, overrides: tuple[str, ...] = ()):
    """The same tiny backbone as a plain transformers model, for PEFT (SEQ_CLS for the encoder)."""
    from transformers import AutoModelForSequenceClassification

    from rpt.backbones.loading import load_model, load_tokenizer

    model_cfg = plain_config([f"model={family}", *overrides])["model"]
    model, _ = load_model(model_cfg, load_tokenizer(model_cfg))
    if family != "tiny_bert":
        return model.eval()
    config = model.config
    config.num_labels = 3
    classifier = AutoModelForSequenceClassification.from_config(config)
    classifier.bert.load_state_dict(model.state_dict())
    return classifier.eval()


def peft_scores(
    peft_model, family: str, batch: dict, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, (B, C) scores)`` from PEFT's own forward pass on rpt's batch."""
    src, mask = batch["source_ids"], batch["source_mask"]
    with torch.no_grad():
        if family == "tiny_bert":
            logits = peft_model(input_ids=src, attention_mask=mask).logits  # (B, 3)
            return logits, logits
        labels, row, valid = flatten_choices(batch)  # (B*C, L)
        if family == "tiny_t5":
            logits = peft_model(input_ids=src[row], attention_mask=mask[row], labels=labels).logits
            scores = sequence_logprob(logits, labels)
        else:
            ids, joined_mask, answer = join_rows(src[row], mask[row], labels, pad_id)
            logits = peft_model(input_ids=ids, attention_mask=joined_mask).logits  # (N, n+T, V)
            n = logits.shape[1] - ids.shape[1]
            answer = torch.cat([answer.new_full((answer.shape[0], n), -100), answer], dim=1)
            scores = sequence_logprob(logits[:, :-1], answer[:, 1:])
            logits = logits[:, :-1][answer[:, 1:] != -100]  # (answer tokens, V), row by row
    return logits, scatter_scores(scores, valid, src.shape[0])


def rpt_logits(predictor, family: str, batch: dict) -> torch.Tensor:
    """The logits rpt's backbone computes for the same rows (what PEFT should reproduce)."""
    backbone, prompt = predictor.backbone, predictor.prompt
    src, mask = batch["source_ids"], batch["source_mask"]
    labels, row, _ = flatten_choices(batch)
    with torch.no_grad():
        if family == "tiny_t5":
            embeds, full_mask = backbone.embed_with_prompt(src[row], mask[row], prompt)
            return backbone.model(
                inputs_embeds=embeds, attention_mask=full_mask, labels=labels
            ).logits
        # Causal: rpt computes logits on the answer positions only.
        logits, targets = backbone._answer_logits(src[row], mask[row], labels, prompt)
        return logits[targets != -100]  # (answer tokens, V), row by row


@pytest.mark.filterwarnings(
    "ignore::FutureWarning"
)  # transformers' deprecation notes, raised via PEFT
def test_peft_from_pretrained_reproduces_rpt_inference_where_equivalent(exported) -> None:
    from peft import PeftModel

    family, overrides, _, out = exported
    peft_info = json.loads((out / "rpt.json").read_text())["peft"]
    predictor = rpt.load(out, device="cpu")
    batch = next(predictor.batches(predictor.examples(CB_RECORDS)))
    peft_model = PeftModel.from_pretrained(fresh_base(family, overrides), str(out / "peft")).eval()
    logits, scores = peft_scores(peft_model, family, batch, predictor.backbone.pad_id)
    expected = predictor.choice_scores(batch)

    if family == "tiny_bert" and not overrides:
        # rpt's default places the prompt after [CLS] and classifies the raw [CLS] state; PEFT's
        # SEQ_CLS cannot express that. The adapter still loads, with our head as its classifier,
        # and rpt.json says so.
        assert peft_info["equivalent"] is False and "prompt_position=front" in peft_info["note"]
        head = load_file(str(out / "head.safetensors"))
        classifier = peft_model.base_model.classifier.modules_to_save["default"]
        assert torch.equal(classifier.weight, head["weight"]) and torch.equal(
            classifier.bias, head["bias"]
        )
        assert (logits - expected).abs().max().item() > 1e-3
        return
    assert peft_info["equivalent"] is True
    if family != "tiny_bert":  # the LM logits themselves, before rpt turns them into scores
        assert (logits - rpt_logits(predictor, family, batch)).abs().max().item() <= 1e-6
    assert (scores - expected).abs().max().item() <= 1e-6 * max(1.0, expected.abs().max().item())
    assert scores.argmax(-1).tolist() == expected.argmax(-1).tolist()


# ---- errors --------------------------------------------------------------------------------------
def test_prompt_of_the_wrong_width_names_both_widths_and_backbones(
    t5_export, tmp_path: Path
) -> None:
    out = t5_export
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "rpt.json").write_text((out / "rpt.json").read_text())
    save_file({"prompt": torch.zeros(10, 48)}, str(bad / "prompt.safetensors"))
    with pytest.raises(ExportError) as err:
        rpt.load(bad, device="cpu")
    message = str(err.value)
    assert "width 48" in message and "width 32" in message and "'tiny_t5'" in message


def test_export_for_another_backbone_is_refused_naming_both(t5_export) -> None:
    out = t5_export
    gpt2 = plain_config(["model=tiny_gpt2"])["model"]
    with pytest.raises(ExportError) as err:
        rpt.load(out, model=gpt2, device="cpu")
    message = str(err.value)
    assert "'tiny_t5' (seq2seq t5" in message and "'tiny_gpt2' (causal gpt2" in message
    # Same architecture, other weights (another init_seed): caught by the embedding fingerprint.
    with pytest.raises(ExportError, match="embedding weights"):
        rpt.load(out, model={"init_seed": 1}, device="cpu")


def test_missing_files_and_foreign_task_are_clear_errors(t5_export, tmp_path: Path) -> None:
    out = t5_export
    with pytest.raises(ExportError, match="no such export folder"):
        rpt.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="rpt.json is missing"):
        rpt.load(tmp_path / "empty")
    with pytest.raises(ExportError, match="trained for task 'cb'"):
        rpt.load(out, task="boolq", device="cpu")


def test_existing_export_is_kept_unless_overwrite(tmp_path: Path) -> None:
    module = build_module(["model=tiny_t5", "task=cb", "prompt=residual_mlp1"])
    out = write_export(module, tmp_path / "export")
    before = (out / "prompt.safetensors").read_bytes()
    with torch.no_grad():
        module.reparam.prompt.add_(1.0)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_export(module, out)
    assert (out / "prompt.safetensors").read_bytes() == before
    write_export(module, out, overwrite=True)
    assert (out / "prompt.safetensors").read_bytes() != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], (
        "temporary folders left behind"
    )


def test_export_cli_from_a_checkpoint(tmp_path: Path, capsys) -> None:
    module = trained_module("tiny_t5", steps=1)
    checkpoint = {
        "hyper_parameters": {"cfg": module.cfg},
        "state_dict": {k: p.detach() for k, p in module.trainable_named_parameters()},
        "rpt_best_score": 0.25,
        "epoch": 3,
        "global_step": 7,
    }
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save(checkpoint, tmp_path / "run" / "checkpoints" / "best.ckpt")
    export_main([str(tmp_path / "run"), str(tmp_path / "out")])
    assert torch.equal(
        load_file(str(tmp_path / "out" / "prompt.safetensors"))["prompt"], module.computed_prompt()
    )
    meta = json.loads((tmp_path / "out" / "rpt.json").read_text())
    assert meta["metrics"] == {"val/score_best": 0.25} and meta["source"]["global_step"] == 7
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(tmp_path / "run"), str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    export_main([str(tmp_path / "run"), str(tmp_path / "out"), "--overwrite"])


def test_import_rpt_stays_cheap() -> None:
    code = "import sys, rpt; assert callable(rpt.load); print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
