"""Property-based tests of the four methods through mergekit's in-memory API.

Random shapes, dtypes (float32, bfloat16, float16), weights and λ go through
``mergekit.merge_methods.merge_state_dicts``, exactly as a user of that API calls them.
For every draw: outputs are finite, keep each input's shape and dtype, and the methods'
identities hold (paramdelta weight 0 → target; shadow_graft with tuned == base → Instruct;
Timber λ = 1 → Instruct; interpolation λ = 0 / 1 → the endpoints, exactly); the closed
forms are checked against an independent float64 recomputation.

Kept small (a few dozen examples per property, matrices of at most 24 × 24) so that the
whole file runs in seconds on two CPU cores.
"""

from __future__ import annotations

import logging

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mergekit.merge_methods import merge_state_dicts

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
#: Per-dtype tolerance of a float32 computation rounded to the output dtype, relative to
#: the magnitude of the values involved (one or two units in the last place).
RELATIVE_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2**-7, torch.float16: 2**-10}

MATRIX = "model.layers.0.mlp.up_proj.weight"
VECTOR = "model.layers.0.input_layernorm.weight"

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(autouse=True, scope="module")
def _quiet_pair_warning():
    # Random tensors are not a base / post-trained pair: the σ warning is expected noise here.
    logger = logging.getLogger("mergekit_weightlevel.methods.base")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@st.composite
def models(draw, count: int) -> tuple[list[dict[str, torch.Tensor]], torch.dtype]:
    """``count`` state dicts of one random dtype: a matrix and a vector, close to each other."""
    dtype = draw(st.sampled_from(DTYPES))
    rows = draw(st.integers(1, 24))
    cols = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    gen = torch.Generator().manual_seed(seed)
    shapes = {MATRIX: (rows, cols), VECTOR: (cols,)}
    shared = {name: scale * torch.randn(shape, generator=gen) for name, shape in shapes.items()}
    states = [
        {
            name: (tensor + 0.05 * scale * torch.randn(tensor.shape, generator=gen)).to(dtype)
            for name, tensor in shared.items()
        }
        for _ in range(count)
    ]
    return states, dtype


def assert_well_formed(out: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert set(out) == set(reference)
    for name, tensor in out.items():
        assert tensor.shape == reference[name].shape, name
        assert tensor.dtype == reference[name].dtype, name
        assert torch.isfinite(tensor).all(), name


def assert_close_to(
    actual: torch.Tensor, expected64: torch.Tensor, dtype: torch.dtype, scale: torch.Tensor
) -> None:
    """``actual`` equals a float64 result up to rounding into ``dtype`` (plus float32 ops).

    Relative to the values' magnitude, plus one step of ``dtype``'s subnormal grid (fp16
    stores values below 6e-5 with a fixed spacing of 6e-8).
    """
    info = torch.finfo(dtype)
    tolerance = RELATIVE_TOLERANCE[dtype] * scale + info.tiny * info.eps
    error = (actual.double() - expected64).abs()
    assert bool((error <= tolerance).all()), float((error - tolerance).max())


def magnitude(*tensors: torch.Tensor) -> torch.Tensor:
    """A per-element bound on the size of the values a closed form adds up."""
    return sum(t.double().abs() for t in tensors)


weights = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False, width=32)
lambdas01 = st.floats(0.0, 1.0, allow_nan=False, width=32)


# ----------------------------------------------------------------------------- paramdelta


@PROPERTY_SETTINGS
@given(drawn=models(4), w1=weights, w2=weights)
def test_paramdelta_closed_form(drawn, w1, w2):
    (base, post1, post2, target), dtype = drawn
    out = merge_state_dicts(
        {"base": base, "p1": post1, "p2": post2, "target": target},
        "paramdelta",
        base="base",
        parameters={
            "role": [None, None, None, "target"],
            "weight": {"p1": w1, "p2": w2, "target": 1.0},
        },
    )
    assert_well_formed(out, target)
    for name in target:
        t, b, p1, p2 = (s[name].double() for s in (target, base, post1, post2))
        expected = t + w1 * (p1 - b) + w2 * (p2 - b)
        bound = (
            magnitude(target[name], expected)
            + 2
            * (abs(w1) + abs(w2))
            * magnitude(base[name], post1[name], post2[name])
            * RELATIVE_TOLERANCE[torch.float32]
        )
        assert_close_to(out[name], expected, dtype, bound)


@PROPERTY_SETTINGS
@given(drawn=models(3))
def test_paramdelta_weight_zero_is_the_target(drawn):
    (base, post, target), _ = drawn
    out = merge_state_dicts(
        {"base": base, "post": post, "target": target},
        "paramdelta",
        base="base",
        parameters={"role": [None, None, "target"], "weight": {"post": 0.0, "target": 1.0}},
    )
    for name in target:
        assert torch.equal(out[name], target[name]), name


# ----------------------------------------------------------------------------- shadow_graft


@PROPERTY_SETTINGS
@given(drawn=models(3), w=weights)
def test_shadow_graft_closed_form_on_projections(drawn, w):
    (base, tuned, instruct), dtype = drawn
    out = merge_state_dicts(
        {"base": base, "tuned": tuned, "instruct": instruct},
        "shadow_graft",
        base="base",
        parameters={"role": [None, None, "target"], "weight": {"tuned": w, "instruct": 1.0}},
    )
    assert_well_formed(out, instruct)
    # up_proj is grafted: W_I + w·(W_B⁺ − W_B); the layer norm is not (default `include`).
    i, b, t = (s[MATRIX].double() for s in (instruct, base, tuned))
    expected = i + w * (t - b)
    bound = (
        magnitude(instruct[MATRIX], expected)
        + 2 * abs(w) * magnitude(base[MATRIX], tuned[MATRIX]) * RELATIVE_TOLERANCE[torch.float32]
    )
    assert_close_to(out[MATRIX], expected, dtype, bound)
    assert torch.equal(out[VECTOR], instruct[VECTOR])


@PROPERTY_SETTINGS
@given(drawn=models(2), w=weights)
def test_shadow_graft_untuned_base_gives_instruct(drawn, w):
    (base, instruct), _ = drawn
    tuned = {name: tensor.clone() for name, tensor in base.items()}
    out = merge_state_dicts(
        {"base": base, "tuned": tuned, "instruct": instruct},
        "shadow_graft",
        base="base",
        parameters={
            "role": [None, None, "target"],
            "weight": {"tuned": w, "instruct": 1.0},
            "include": ".*",
        },
    )
    for name in instruct:
        assert torch.equal(out[name], instruct[name]), name


# ----------------------------------------------------------------------------- timber_spectral


@PROPERTY_SETTINGS
@given(drawn=models(2), lam=st.floats(0.0, 1.0, allow_nan=False, width=32))
def test_timber_is_finite_and_never_moves_further_than_instruct(drawn, lam):
    (base, instruct), dtype = drawn
    out = merge_state_dicts(
        {"base": base, "instruct": instruct},
        "timber_spectral",
        base="base",
        parameters={"lambda": lam},
    )
    assert_well_formed(out, instruct)
    # D' keeps the top directions of D and scales the rest by λ ≤ 1: ‖D'‖_F ≤ ‖D‖_F.
    b, i, o = (s[MATRIX].double() for s in (base, instruct, out))
    slack = RELATIVE_TOLERANCE[dtype] * float(magnitude(base[MATRIX], instruct[MATRIX]).norm())
    assert float((o - b).norm()) <= float((i - b).norm()) + 2 * slack
    # Vectors are not decomposed: they are the Instruct's.
    assert torch.equal(out[VECTOR], instruct[VECTOR])


@PROPERTY_SETTINGS
@given(drawn=models(2))
def test_timber_lambda_one_is_instruct(drawn):
    (base, instruct), _ = drawn
    out = merge_state_dicts(
        {"base": base, "instruct": instruct},
        "timber_spectral",
        base="base",
        parameters={"lambda": 1.0},
    )
    for name in instruct:
        assert torch.equal(out[name], instruct[name]), name


# ----------------------------------------------------------------------------- instruct_thinking_interp


@PROPERTY_SETTINGS
@given(drawn=models(2), lam=lambdas01)
def test_interp_closed_form(drawn, lam):
    (instruct, thinking), dtype = drawn
    out = merge_state_dicts(
        {"instruct": instruct, "thinking": thinking},
        "instruct_thinking_interp",
        base="instruct",
        parameters={"lambda": lam},
    )
    assert_well_formed(out, instruct)
    for name in instruct:
        expected = (1 - lam) * instruct[name].double() + lam * thinking[name].double()
        bound = magnitude(instruct[name], thinking[name])
        assert_close_to(out[name], expected, dtype, bound)


@PROPERTY_SETTINGS
@given(drawn=models(2), lam=st.sampled_from([0.0, 1.0]))
def test_interp_endpoints_are_exact(drawn, lam):
    (instruct, thinking), _ = drawn
    out = merge_state_dicts(
        {"instruct": instruct, "thinking": thinking},
        "instruct_thinking_interp",
        base="instruct",
        parameters={"lambda": lam},
    )
    endpoint = instruct if lam == 0.0 else thinking
    for name in instruct:
        assert torch.equal(out[name], endpoint[name]), name


# ----------------------------------------------------------------------------- all four


def _strided(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same values in non-contiguous storage (a transposed view of a transposed copy)."""
    return {
        name: (t.T.contiguous().T if t.ndim == 2 else torch.stack([t, t], dim=1)[:, 0])
        for name, t in state.items()
    }


CONFIGS = {
    "paramdelta": (3, "m0", {"role": [None, None, "target"]}),
    "shadow_graft": (3, "m0", {"role": [None, None, "target"]}),
    "timber_spectral": (2, "m0", {"lambda": 0.3}),
    "instruct_thinking_interp": (2, "m0", {"lambda": 0.3}),
}


@pytest.mark.parametrize("method", sorted(CONFIGS))
@settings(max_examples=8, deadline=None)
@given(drawn=models(3))
def test_strided_inputs_give_the_same_result_and_are_not_changed(method, drawn):
    """What mergekit's own test_state_dict_methods_accept_strided_weights_without_mutation
    checks for every registered method, with the roles / λ our methods need (see
    .ci/mergekit_tests.sh for why that generic test is deselected for them)."""
    count, base, parameters = CONFIGS[method]
    states = drawn[0][:count]
    strided = [_strided(s) for s in states]
    assert not strided[0][MATRIX].is_contiguous() or min(strided[0][MATRIX].shape) == 1
    copies = [{n: t.clone() for n, t in s.items()} for s in strided]
    ids = [f"m{i}" for i in range(count)]
    expected = merge_state_dicts(dict(zip(ids, states)), method, base=base, parameters=parameters)
    actual = merge_state_dicts(dict(zip(ids, strided)), method, base=base, parameters=parameters)
    for name in expected:
        assert torch.equal(actual[name], expected[name]), name
    for before, after in zip(copies, strided):
        for name in before:
            assert torch.equal(before[name], after[name]), name
