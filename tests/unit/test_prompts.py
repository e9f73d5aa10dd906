"""Reparameterizers: every shipped prompt config builds, counts and trains as documented."""

from __future__ import annotations

from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file
from torch import nn

import rpt
from rpt.prompts import (
    STRATEGIES,
    LSTMPrompt,
    MLPPrompt,
    PlainPrompt,
    Reparameterizer,
    ResidualMLPPrompt,
)

CONF_DIR = Path(rpt.__file__).parent / "conf" / "prompt"
# Every prompt config with a prompt; head_only (length 0, a baseline with no prompt) is tested below.
ALL_CONFIGS = sorted(CONF_DIR.rglob("*.yaml"))
CONFIGS = [p for p in ALL_CONFIGS if OmegaConf.load(p).length > 0]
REQUIRED = {"none", "mlp1", "mlp2", "residual_mlp1", "residual_mlp2", "residual_mlp2_shared"}

N, D, M = 5, 16, 8  # small prompt length, width and bottleneck keep every test instant


def independent_count(net_cfg, n: int, d: int) -> int:
    """Parameter count written out from the config alone, independent of the classes' code."""
    cls = net_cfg._target_.rsplit(".", 1)[-1]
    prompt = n * d
    if cls == "PlainPrompt":
        return prompt
    if cls in ("MLPPrompt", "ResidualMLPPrompt"):
        m = net_cfg.bottleneck
        down, up = d * m + m, m * d + d  # weights + biases
        norm = 2 * d if net_cfg.layer_norm else 0
        block = (down + up + norm) * (n if net_cfg.per_token else 1)
        return prompt + block * (1 if net_cfg.share_blocks else net_cfg.num_blocks)
    if cls == "LSTMPrompt":
        h = net_cfg.hidden_size or (d + 1) // 2
        lstm = 0
        for layer in range(net_cfg.num_layers):
            in_size = d if layer == 0 else 2 * h
            lstm += 2 * (4 * h * in_size + 4 * h * h + 4 * h + 4 * h)  # both directions
        return prompt + lstm + (2 * h * d + d) + (d * d + d)
    raise AssertionError(f"write an independent parameter count for {cls} in this test")


def build(path: Path, **net_overrides) -> tuple[Reparameterizer, object]:
    cfg = OmegaConf.load(path)
    if "bottleneck" in cfg.net:
        cfg.net.bottleneck = M
    for key, value in net_overrides.items():
        cfg.net[key] = value
    net = hydra.utils.instantiate(cfg.net)(length=N, dim=D)
    return net, cfg


def weighted_sum(out: torch.Tensor) -> torch.Tensor:
    # Fixed random weights: a plain sum or sum of squares is constant under layer norm.
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    return (out * w).sum()


# 1. Every shipped config.


def test_required_configs_are_shipped():
    assert REQUIRED <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_file_shape(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# python -m rpt.train ")
    assert f"prompt={path.stem}" in first_line
    cfg = OmegaConf.load(path)
    assert cfg.name == path.stem
    assert cfg.length == 10  # the paper's default
    assert cfg.init.strategy in STRATEGIES
    assert cfg.net._partial_ is True


VARIANTS = {"as_shipped": {}, "per_token": {"per_token": True}, "no_norm": {"layer_norm": False}}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_with_documented_count(path, variant):
    overrides = VARIANTS[variant]
    if not set(overrides) <= set(OmegaConf.load(path).net):
        pytest.skip(f"no {variant} option")
    net, cfg = build(path, **overrides)
    assert isinstance(net, Reparameterizer)
    out = net()
    assert out.shape == (N, D)
    assert out.dtype == torch.float32
    counted = sum(p.numel() for p in net.parameters())
    assert counted == net.expected_num_parameters()
    assert counted == independent_count(cfg.net, N, D)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_gradients_reach_prompt_and_network(path):
    net, _ = build(path)
    weighted_sum(net()).backward()
    assert net.prompt.grad is not None and net.prompt.grad.abs().sum() > 0
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    network = net.network_parameters()
    assert all(p is not net.prompt for p in network)
    assert {id(p) for p in network} | {id(net.prompt)} == {id(p) for p in net.parameters()}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_state_dict_saves_with_safetensors(path, tmp_path):
    # safetensors refuses aliased tensors: shared blocks must be registered once.
    net, _ = build(path)
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))


# 2. Block structure and sharing.


def test_plain_prompt_is_identity():
    net = PlainPrompt(N, D)
    assert net() is net.prompt
    assert net.network_parameters() == []


def test_mlp2_has_two_distinct_blocks_applied_in_order():
    net = MLPPrompt(N, D, bottleneck=M, num_blocks=2)
    first, second = net.blocks
    assert first.down.weight is not second.down.weight
    assert not torch.equal(first.down.weight, second.down.weight)
    assert torch.allclose(net(), second(first(net.prompt)))


def test_share_blocks_reuses_one_block_like_the_original_code():
    shared = ResidualMLPPrompt(N, D, bottleneck=M, num_blocks=2, share_blocks=True)
    one = ResidualMLPPrompt(N, D, bottleneck=M, num_blocks=1)
    assert len(shared.blocks) == 1
    block_count = one.expected_num_parameters() - N * D
    assert sum(p.numel() for p in shared.parameters()) == N * D + block_count
    block = shared.blocks[0]
    # The original MLP2: Sequential(layers + layers) under one skip connection.
    assert torch.allclose(shared(), shared.prompt + block(block(shared.prompt)))


@pytest.mark.parametrize("num_blocks", [1, 2])
def test_residual_is_prompt_plus_mlp_output(num_blocks):
    torch.manual_seed(0)
    plain = MLPPrompt(N, D, bottleneck=M, num_blocks=num_blocks)
    residual = ResidualMLPPrompt(N, D, bottleneck=M, num_blocks=num_blocks)
    residual.load_state_dict(plain.state_dict())
    assert torch.allclose(residual(), residual.prompt + plain())


def test_residual_scope_block_adds_a_skip_around_each_block():
    net = ResidualMLPPrompt(N, D, bottleneck=M, num_blocks=2, residual_scope="block")
    b0, b1 = net.blocks
    x1 = net.prompt + b0(net.prompt)
    assert torch.allclose(net(), x1 + b1(x1))
    whole = ResidualMLPPrompt(N, D, bottleneck=M, num_blocks=2)
    whole.load_state_dict(net.state_dict())
    assert not torch.allclose(whole(), net())


@pytest.mark.parametrize("scope", ["network", "block"])
@pytest.mark.parametrize("per_token", [False, True])
@pytest.mark.parametrize("num_blocks", [1, 2])
def test_residual_with_zero_up_projection_returns_prompt_exactly(num_blocks, per_token, scope):
    kwargs = dict(bottleneck=M, num_blocks=num_blocks, layer_norm=False, per_token=per_token)
    residual = ResidualMLPPrompt(N, D, residual_scope=scope, **kwargs)
    plain = MLPPrompt(N, D, **kwargs)
    for net in (residual, plain):
        with torch.no_grad():
            zeroed = [p.zero_() for name, p in net.named_parameters() if ".up" in name]
        assert len(zeroed) == 2 * num_blocks  # weight and bias of every up-projection
    assert torch.equal(residual(), residual.prompt)
    assert not torch.allclose(plain(), plain.prompt)


def test_shared_mlp_treats_tokens_independently():
    net = ResidualMLPPrompt(N, D, bottleneck=M, num_blocks=2)
    p = net.prompt.detach().clone()
    q = p.clone()
    q[0] += 1.0
    out_p, out_q = net.transform(p), net.transform(q)
    assert not torch.allclose(out_p[0], out_q[0])
    assert torch.equal(out_p[1:], out_q[1:])
    # One network for all tokens: the same vector gives the same output in every position.
    same = p[:1].expand(N, D)
    assert torch.allclose(net.transform(same), net.transform(same)[:1].expand(N, D))


def test_per_token_equals_separate_linear_layers():
    torch.manual_seed(0)
    net = MLPPrompt(N, D, bottleneck=M, activation="tanh", per_token=True)
    block = net.blocks[0]
    with torch.no_grad():  # non-trivial layer-norm affine, different per token
        block.norm_weight.uniform_(0.5, 1.5)
        block.norm_bias.uniform_(-0.5, 0.5)
    out = net()
    for i in range(N):
        down, up = nn.Linear(D, M), nn.Linear(M, D)
        norm = nn.LayerNorm(D)
        with torch.no_grad():
            down.weight.copy_(block.down_weight[i].T)
            down.bias.copy_(block.down_bias[i])
            up.weight.copy_(block.up_weight[i].T)
            up.bias.copy_(block.up_bias[i])
            norm.weight.copy_(block.norm_weight[i])
            norm.bias.copy_(block.norm_bias[i])
        expected = norm(up(torch.tanh(down(net.prompt[i]))))
        assert torch.allclose(out[i], expected, atol=1e-5), i


def test_per_token_init_matches_linear_scale():
    net = MLPPrompt(4, 64, bottleneck=32, per_token=True)
    block = net.blocks[0]
    assert block.down_weight.abs().max() <= 1 / 64**0.5
    assert block.up_weight.abs().max() <= 1 / 32**0.5
    assert block.down_weight.std() > 0.5 / 64**0.5  # not all zeros or tiny


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "sigmoid"])
def test_activations(activation):
    torch.manual_seed(0)
    net = MLPPrompt(N, D, bottleneck=M, activation=activation, layer_norm=False)
    expected = {"relu": torch.relu, "tanh": torch.tanh, "gelu": nn.functional.gelu}.get(
        activation, torch.sigmoid
    )
    block = net.blocks[0]
    assert torch.allclose(net(), block.up(expected(block.down(net.prompt))))


def test_dropout_only_in_training():
    net = ResidualMLPPrompt(N, D, bottleneck=M, dropout=0.5, layer_norm=False)
    net.train()
    assert not torch.equal(net(), net())
    net.eval()
    assert torch.equal(net(), net())


def test_lstm_mixes_tokens_and_can_skip_residual():
    net = LSTMPrompt(N, D, residual=False)
    p = net.prompt.detach().clone()
    q = p.clone()
    q[0] += 1.0
    assert not torch.allclose(net.transform(p)[1:], net.transform(q)[1:])
    residual = LSTMPrompt(N, D)
    residual.load_state_dict(net.state_dict())
    assert torch.allclose(residual(), residual.prompt + net())


def test_set_prompt_copies_in_place_and_checks_shape():
    net = ResidualMLPPrompt(N, D, bottleneck=M)
    param = net.prompt
    values = torch.arange(N * D, dtype=torch.float64).reshape(N, D)
    net.set_prompt_(values)
    assert net.prompt is param and net.prompt.dtype == torch.float32
    assert torch.equal(net.prompt, values.float())
    with pytest.raises(ValueError, match=r"\(5, 16\).*\(4, 16\)"):
        net.set_prompt_(torch.zeros(4, D))


# 3. Validation.


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (PlainPrompt, dict(length=0, dim=D), r"prompt\.length must be >= 1, got 0"),
        (PlainPrompt, dict(length=True, dim=D), r"prompt\.length"),
        (PlainPrompt, dict(length=N, dim=0), r"dim .* must be >= 1, got 0"),
        (MLPPrompt, dict(bottleneck=0), r"prompt\.net\.bottleneck must be > 0, got 0"),
        (MLPPrompt, dict(bottleneck=-3), r"prompt\.net\.bottleneck must be > 0, got -3"),
        (MLPPrompt, dict(num_blocks=0), r"prompt\.net\.num_blocks must be >= 1"),
        (
            MLPPrompt,
            dict(activation="swish"),
            r"prompt\.net\.activation.*relu, tanh, gelu, sigmoid",
        ),
        (MLPPrompt, dict(dropout=1.0), r"prompt\.net\.dropout must be in \[0, 1\)"),
        (MLPPrompt, dict(per_token="yes"), r"prompt\.net\.per_token"),
        (MLPPrompt, dict(share_blocks=1), r"prompt\.net\.share_blocks"),
        (ResidualMLPPrompt, dict(residual_scope="all"), r"prompt\.net\.residual_scope.*network"),
        (ResidualMLPPrompt, dict(length=0), r"prompt\.length"),
        (LSTMPrompt, dict(num_layers=0), r"prompt\.net\.num_layers"),
        (LSTMPrompt, dict(hidden_size=0), r"prompt\.net\.hidden_size"),
    ],
)
def test_bad_arguments_raise_with_the_field_name(cls, kwargs, message):
    args = {"length": N, "dim": D}
    if cls is not PlainPrompt and cls is not LSTMPrompt:
        args["bottleneck"] = M
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        cls(**args)


def test_head_only_has_no_prompt_and_no_parameters():
    from rpt.prompts import NoPrompt

    cfg = OmegaConf.load(CONF_DIR / "head_only.yaml")
    assert cfg.length == 0
    net = hydra.utils.instantiate(cfg.net)(length=cfg.length, dim=D)
    assert isinstance(net, NoPrompt)
    assert net().shape == (0, D)
    assert sum(p.numel() for p in net.parameters()) == 0 == net.expected_num_parameters()
    with pytest.raises(ValueError, match="must be 0 for prompt=head_only"):
        NoPrompt(length=3, dim=D)
