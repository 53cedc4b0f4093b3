"""GameTransformer: shapes, exact masking, sparse routing, the balancing loss, determinism."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from g2048lab.engine.rules import Action
from g2048lab.model import (
    PRESETS,
    GameTransformer,
    ModelConfig,
    MoEFeedForward,
    load_balancing_loss,
    route,
    routed_fraction,
    router_z_loss,
)


def random_batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` boards of exponents 0..17 and masks with at least one legal move."""
    gen = torch.Generator().manual_seed(seed)
    boards = torch.randint(0, 18, (n, 4, 4), generator=gen, dtype=torch.uint8)
    mask = torch.rand(n, 4, generator=gen) < 0.6
    mask[torch.arange(n), torch.randint(0, 4, (n,), generator=gen)] = True
    return boards, mask


def make_model(preset: str = "tiny", seed: int = 0, **overrides) -> GameTransformer:
    torch.manual_seed(seed)
    return GameTransformer(ModelConfig.from_preset(preset, **overrides)).eval()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One thread: on a shared 2-core machine two threads run over 2x slower when busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> GameTransformer:
    return make_model("tiny")


# --- configuration and presets -------------------------------------------------------------


def test_presets_table():
    assert set(PRESETS) == {"tiny", "cpu", "small", "base"}
    base = PRESETS["base"]
    design = {"d_model": 512, "n_heads": 16, "n_layers": 8, "n_experts": 8, "top_k": 2}
    assert {name: getattr(base, name) for name in design} == design
    assert not any(config.dense for config in PRESETS.values())
    assert ModelConfig() == PRESETS["cpu"]


def test_from_preset_overrides_and_errors():
    assert ModelConfig.from_preset("cpu", n_layers=3).n_layers == 3
    assert PRESETS["cpu"].n_layers == 1  # the table itself is untouched
    with pytest.raises(ValueError, match="known presets: tiny, cpu, small, base"):
        ModelConfig.from_preset("huge")
    with pytest.raises(ValueError, match="resolve 'auto' with g2048lab.device"):
        ModelConfig.from_preset("auto")
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        ModelConfig.from_preset("tiny", d_modle=8)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"top_k": 5, "n_experts": 4}, "top_k"),
        ({"top_k": 0}, "top_k"),
        ({"n_layers": 0}, "n_layers"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_config_says_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**overrides)


# --- shapes, dtypes, parameter counts ------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "cpu", "small", "base"])
def test_shapes_and_dtypes(preset):
    model = make_model(preset)
    config = model.config
    boards, mask = random_batch(3)
    with torch.inference_mode():
        fast = model(boards, mask)
        slow = model(boards, mask, return_attention=True)
    assert fast.logits.shape == (3, 4) and fast.logits.dtype == torch.float32
    assert fast.value.shape == (3,) and fast.value.dtype == torch.float32
    assert fast.aux_loss.shape == () and fast.z_loss.shape == ()
    assert fast.expert_usage.shape == (config.n_layers, config.n_experts)
    assert fast.attention is None
    assert slow.attention.shape == (config.n_layers, 3, config.n_heads, 16, 16)
    assert slow.attention.dtype == torch.float32


def expected_param_count(config: ModelConfig) -> tuple[int, int]:
    """(total, active) parameters counted by hand from the architecture."""
    C, E, k, H, L = config.d_model, config.n_experts, config.top_k, config.d_expert, config.n_layers
    embeddings = config.vocab_size * C + 2 * 4 * C  # tiles, rows, columns
    attention = 3 * C * C + C * C
    layer_norms = 2 * 2 * C
    expert = 2 * C * H
    router = C * E
    heads = (16 * C * 4 + 4) + (16 * C + 1)
    shared = embeddings + L * (attention + layer_norms + router) + 2 * C + heads
    return shared + L * E * expert, shared + L * k * expert


@pytest.mark.parametrize("preset", ["tiny", "cpu", "small", "base"])
def test_num_params_on_meta_device(preset):
    config = PRESETS[preset]
    with torch.device("meta"):
        model = GameTransformer(config)
    assert all(p.is_meta for p in model.parameters())
    count = model.num_params()
    assert (count.total, count.active) == expected_param_count(config)
    assert count.total == sum(p.numel() for p in model.parameters())


def test_dense_baseline_has_the_moe_active_size():
    config = PRESETS["cpu"]
    moe = GameTransformer(config).num_params()
    dense = GameTransformer(replace(config, dense=True)).num_params()
    routers = config.n_layers * config.d_model * config.n_experts
    assert dense.total == dense.active == moe.active - routers


def test_dense_model_outputs():
    model = make_model("tiny", dense=True)
    out = model(*random_batch(5))
    assert out.logits.shape == (5, 4)
    assert out.aux_loss.item() == 0.0 and out.z_loss.item() == 0.0
    assert torch.equal(out.expert_usage, torch.ones(model.config.n_layers, 1))


# --- masking -------------------------------------------------------------------------------


def test_illegal_moves_get_probability_exactly_zero(tiny):
    boards, mask = random_batch(64)
    probs = tiny(boards, mask).logits.softmax(-1)
    assert torch.all(probs[~mask] == 0.0)
    assert torch.all(probs[mask] > 0.0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(64))


@pytest.mark.parametrize("action", list(Action))
def test_a_single_legal_move_gets_probability_one(tiny, action):
    boards, _ = random_batch(4)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:, action] = True
    probs = tiny(boards, mask).logits.softmax(-1)
    assert torch.all(probs[:, action] == 1.0)
    assert torch.all(probs.sum(-1) == 1.0)


def test_game_over_board_gives_finite_logits_not_nan(tiny):
    boards, mask = random_batch(3)
    mask[1] = False  # no legal move: the game is over
    logits = tiny(boards, mask).logits
    assert torch.isfinite(logits[1]).all()
    assert torch.isfinite(logits.log_softmax(-1)[1]).all()
    assert torch.isinf(logits[0][~mask[0]]).all()  # other rows still masked


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=1, max_size=8),
    st.integers(0, 2**16),
)
def test_masking_property(mask_rows, seed):
    mask = torch.tensor(mask_rows)
    boards, _ = random_batch(len(mask_rows), seed)
    model = make_model("tiny")
    log_probs = model(boards, mask).logits.log_softmax(-1)
    assert not torch.isnan(log_probs).any()
    legal = mask.any(-1)
    assert torch.all(log_probs[legal][~mask[legal]] == float("-inf"))
    assert torch.isfinite(log_probs[legal][mask[legal]]).all()


# --- initialisation and determinism --------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "cpu", "small"])
def test_initial_policy_near_uniform_and_value_near_zero(preset):
    boards, mask = random_batch(128)
    with torch.inference_mode():
        out = make_model(preset)(boards, mask)
    uniform = mask.float() / mask.sum(-1, keepdim=True)
    torch.testing.assert_close(out.logits.softmax(-1), uniform, atol=0.02, rtol=0)
    assert out.value.abs().max() < 0.05


def test_same_seed_same_outputs():
    boards, mask = random_batch(16)
    a = make_model("tiny", seed=3)(boards, mask, return_attention=True)
    b = make_model("tiny", seed=3)(boards, mask, return_attention=True)
    c = make_model("tiny", seed=4)(boards, mask)
    for name in ("logits", "value", "aux_loss", "z_loss", "expert_usage", "attention"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.value, c.value)


# --- attention -----------------------------------------------------------------------------


def test_attention_rows_sum_to_one_and_paths_agree():
    model = make_model("cpu")
    boards, mask = random_batch(8)
    with torch.inference_mode():
        slow = model(boards, mask, return_attention=True)
        fast = model(boards, mask)
    assert (slow.attention >= 0).all()
    torch.testing.assert_close(slow.attention.sum(-1), torch.ones(slow.attention.shape[:-1]))
    torch.testing.assert_close(slow.logits, fast.logits)
    torch.testing.assert_close(slow.value, fast.value)
    torch.testing.assert_close(slow.expert_usage, fast.expert_usage)


# --- routing -------------------------------------------------------------------------------


def test_each_token_uses_exactly_top_k_distinct_experts():
    torch.manual_seed(0)
    router = torch.nn.Linear(16, 6, bias=False)
    routing = route(torch.randn(500, 16), router, top_k=3)
    assert routing.indices.shape == (500, 3)
    assert all(len(set(row.tolist())) == 3 for row in routing.indices)
    torch.testing.assert_close(routing.weights.sum(-1), torch.ones(500))
    chosen = routing.probs.gather(1, routing.indices)
    assert torch.all(chosen.min(-1).values >= routing.probs.sort(-1).values[:, -3])


def test_expert_usage_counts_routed_slots(tiny):
    boards, mask = random_batch(32)
    usage = tiny(boards, mask).expert_usage
    torch.testing.assert_close(usage.sum(-1), torch.ones(tiny.config.n_layers))
    slots = 32 * 16 * tiny.config.top_k
    torch.testing.assert_close(usage * slots, (usage * slots).round())


def test_top_1_keeps_the_raw_gate_probability():
    torch.manual_seed(0)
    routing = route(torch.randn(10, 8), torch.nn.Linear(8, 4, bias=False), top_k=1)
    torch.testing.assert_close(routing.weights[:, 0], routing.probs.max(-1).values)


def test_router_runs_in_float32_under_bf16_autocast():
    model = make_model("tiny")
    boards, mask = random_batch(4)
    x = torch.randn(10, model.config.d_model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        routing = route(x, model.blocks[0].ffn.router, 2)
        out = model(boards, mask)
    assert routing.logits.dtype == torch.float32
    assert torch.isfinite(out.logits[mask]).all()


def reference_moe(moe: MoEFeedForward, x: torch.Tensor) -> torch.Tensor:
    """Slow and obviously right: every expert on every token, mixed by the routing weights."""
    routing = route(x, moe.router, moe.top_k)
    every = torch.stack([expert(x) for expert in moe.experts], dim=1)  # (T, E, C)
    weights = torch.zeros_like(routing.probs).scatter(1, routing.indices, routing.weights)
    return (weights.unsqueeze(-1) * every).sum(1)


def test_sparse_dispatch_matches_the_dense_reference():
    torch.manual_seed(0)
    moe = MoEFeedForward(ModelConfig(d_model=16, n_heads=2, n_experts=5, top_k=2, d_expert=24))
    x = torch.randn(3, 16, 16)
    y, _ = moe(x)
    torch.testing.assert_close(y.view(-1, 16), reference_moe(moe, x.view(-1, 16)))


def test_one_token_gradients_reach_only_its_chosen_experts():
    torch.manual_seed(0)
    config = ModelConfig(d_model=16, n_heads=2, n_experts=6, top_k=2, d_expert=8)
    moe = MoEFeedForward(config)
    y, routing = moe(torch.randn(1, 1, 16))
    y.square().sum().backward()
    chosen = set(routing.indices.flatten().tolist())
    assert len(chosen) == 2
    for e, expert in enumerate(moe.experts):
        for param in expert.parameters():
            touched = param.grad is not None and bool(param.grad.abs().sum() > 0)
            assert touched == (e in chosen), (e, chosen)
    assert moe.router.weight.grad.abs().sum() > 0  # the renormalised weights train the router


def test_every_parameter_gets_a_gradient():
    model = make_model("tiny")
    model.train()
    boards, mask = random_batch(64)
    out = model(boards, mask)
    loss = out.logits.log_softmax(-1).masked_fill(~mask, 0).sum() + out.value.sum() + out.aux_loss
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


# --- the auxiliary losses ------------------------------------------------------------------

HAND_PROBS = torch.tensor(
    [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
)  # mean over tokens P = [0.4, 0.275, 0.325]


def test_balancing_loss_hand_computed_top_1():
    indices = torch.tensor([[0], [0], [1], [2]])  # f = [2/4, 1/4, 1/4]
    expected = 3 * (0.5 * 0.4 + 0.25 * 0.275 + 0.25 * 0.325)  # 1.05
    loss = load_balancing_loss(HAND_PROBS, indices, 3)
    assert loss.item() == pytest.approx(expected) == pytest.approx(1.05)


def test_balancing_loss_hand_computed_top_2():
    indices = torch.tensor([[0, 1], [0, 1], [1, 2], [2, 0]])  # f = [3/8, 3/8, 2/8]
    expected = 3 * (0.375 * 0.4 + 0.375 * 0.275 + 0.25 * 0.325)  # 1.003125
    assert load_balancing_loss(HAND_PROBS, indices, 3).item() == pytest.approx(expected)
    torch.testing.assert_close(routed_fraction(indices, 3), torch.tensor([0.375, 0.375, 0.25]))


@pytest.mark.parametrize("n_experts", [2, 4, 8])
def test_balancing_loss_is_one_for_uniform_and_n_experts_for_collapse(n_experts):
    tokens = 4 * n_experts
    uniform_probs = torch.full((tokens, n_experts), 1.0 / n_experts)
    round_robin = torch.arange(tokens).remainder(n_experts).unsqueeze(1)
    assert load_balancing_loss(uniform_probs, round_robin, n_experts).item() == pytest.approx(1.0)
    collapsed_probs = torch.zeros(tokens, n_experts)
    collapsed_probs[:, 0] = 1.0
    everyone_to_0 = torch.zeros(tokens, 1, dtype=torch.long)
    loss = load_balancing_loss(collapsed_probs, everyone_to_0, n_experts)
    assert loss.item() == pytest.approx(n_experts)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=2, max_size=8).filter(lambda c: sum(c) > 0))
def test_balancing_loss_is_minimal_for_uniform_routing(counts):
    """With router probabilities that match the dispatch (P = f) the loss is E * sum f^2,
    at least 1 (Cauchy-Schwarz), with equality exactly when the routing is uniform."""
    n_experts = len(counts)
    indices = torch.repeat_interleave(torch.arange(n_experts), torch.tensor(counts)).unsqueeze(1)
    f = torch.tensor(counts, dtype=torch.float32) / sum(counts)
    probs = f.expand(len(indices), n_experts)
    loss = load_balancing_loss(probs, indices, n_experts).item()
    assert loss >= 1.0 - 1e-6
    assert (loss <= 1.0 + 1e-6) == (len(set(counts)) == 1)


def test_balancing_loss_gradient_pushes_probability_off_the_busy_expert():
    probs = HAND_PROBS.clone().requires_grad_()
    load_balancing_loss(probs, torch.tensor([[0], [0], [1], [2]]), 3).backward()
    grad = probs.grad[0]  # the same for every token: E * f / T
    torch.testing.assert_close(grad, 3 * torch.tensor([0.5, 0.25, 0.25]) / 4)


def test_router_z_loss_hand_computed():
    assert router_z_loss(torch.zeros(5, 4)).item() == pytest.approx(math.log(4) ** 2)
    logits = torch.tensor([[0.0, math.log(3.0)]])  # logsumexp = log 4
    assert router_z_loss(logits).item() == pytest.approx(math.log(4) ** 2)


# --- inputs --------------------------------------------------------------------------------


def test_largest_exponent_is_accepted(tiny):
    boards = torch.full((2, 4, 4), 31, dtype=torch.uint8)
    out = tiny(boards, torch.ones(2, 4, dtype=torch.bool))
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize(
    ("boards", "mask", "message"),
    [
        (torch.zeros(2, 16, dtype=torch.uint8), torch.ones(2, 4, dtype=torch.bool), r"\(N, 4, 4\)"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), torch.ones(2, 4), "bool"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), torch.ones(3, 4, dtype=torch.bool), "shape"),
        (torch.zeros(2, 4, 4), torch.ones(2, 4, dtype=torch.bool), "integer"),
        (torch.full((2, 4, 4), 32, dtype=torch.uint8), torch.ones(2, 4, dtype=torch.bool), "0..31"),
    ],
)
def test_bad_inputs_say_what_is_wrong(tiny, boards, mask, message):
    with pytest.raises(ValueError, match=message):
        tiny(boards, mask)


# --- it learns -----------------------------------------------------------------------------


def test_tiny_fits_a_small_batch_in_a_few_steps():
    torch.manual_seed(0)
    model = GameTransformer(PRESETS["tiny"])
    boards, mask = random_batch(64)
    target_action = mask.float().argmax(-1)  # the first legal move
    target_value = boards.float().mean((1, 2)) / 10
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = model(boards, mask)
        policy_loss = torch.nn.functional.cross_entropy(out.logits, target_action)
        value_loss = (out.value - target_value).square().mean()
        loss = policy_loss + value_loss + 0.01 * out.aux_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
