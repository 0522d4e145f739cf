"""timber_spectral: the official algorithm, its closed forms, the Gram fast path, and errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from helpers import read_state, run_yaml_merge
from mergekit.merge_methods import merge_tensors

from mergekit_weightlevel import method_configs, reference
from mergekit_weightlevel.methods import timber as ts

# ----------------------------------------------------------------------------- oracles


def numpy_erank(s: np.ndarray, exponent: float = 1.0) -> float:
    """The float64 eRank of the reference: exp(−Σ p log(p + 1e-9)), p = s^γ / Σ s^γ."""
    return reference.effective_rank(torch.from_numpy(np.asarray(s, dtype=np.float64)), exponent)


def numpy_timber(base: np.ndarray, instruct: np.ndarray, lam: float) -> np.ndarray:
    """The float64 reference of timber.py's per-tensor algorithm (ΔW in float32, float64
    SVD, ⌈eRank⌉), on numpy arrays."""
    return reference.timber_tensor(torch.from_numpy(base), torch.from_numpy(instruct), lam).numpy()


def timber_config(family, dtype="float32", **parameters):
    return method_configs.timber_config(
        family.base, family.instruct, parameters=parameters or None, dtype=dtype
    )


def with_spectrum(rows: int, cols: int, s: list[float], seed: int = 0):
    """(D, U, V) with D = U diag(s) Vᵀ exactly in float64 (orthonormal U, V from QR)."""
    gen = torch.Generator().manual_seed(seed)
    r = len(s)
    U, _ = torch.linalg.qr(torch.randn(rows, r, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(cols, r, generator=gen, dtype=torch.float64))
    sv = torch.tensor(s, dtype=torch.float64)
    return (U * sv) @ V.T, U, V


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


# ----------------------------------------------------------------------------- YAML path


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("lam", [0.0, 0.2])
@pytest.mark.parametrize("solver", ["auto", "svd"])
def test_matches_float64_reimplementation(all_families, arch, lam, solver, tmp_path):
    family = all_families[arch]
    out = run_yaml_merge(timber_config(family, **{"lambda": lam, "solver": solver}), tmp_path / "o")
    base, instruct = read_state(family.base), read_state(family.instruct)
    assert set(out) == set(instruct)
    changed = 0
    for name, tensor in out.items():
        expected = numpy_timber(base[name].numpy(), instruct[name].numpy(), lam)
        assert tensor.dtype == torch.float32
        assert np.allclose(tensor.double().numpy(), expected, rtol=0, atol=1e-6), name
        if tensor.ndim < 2:
            assert torch.equal(tensor, instruct[name]), f"1-D {name} must be Instruct"
        else:
            changed += not torch.equal(tensor, instruct[name])
    assert changed > 0  # the tail was attenuated somewhere: not the identity


def test_bf16_family_matches_reimplementation_and_returns_bf16(qwen3_bf16_family, tmp_path):
    family = qwen3_bf16_family
    out = run_yaml_merge(timber_config(family, dtype="bfloat16"), tmp_path / "o")
    base, instruct = read_state(family.base), read_state(family.instruct)
    for name, tensor in out.items():
        assert tensor.dtype == torch.bfloat16, name
        expected = numpy_timber(base[name].float().numpy(), instruct[name].float().numpy(), 0.2)
        # One bf16 rounding of the float32 result: within half an ulp (2^-9 relative).
        bound = np.abs(expected) * 2.0**-8 + 1e-30
        assert np.all(np.abs(tensor.double().numpy() - expected) <= bound), name


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_lambda_one_returns_instruct_exactly(all_families, dtype, tmp_path):
    family = all_families["qwen3" if dtype == "bfloat16" else "llama"]
    out = run_yaml_merge(timber_config(family, dtype=dtype, **{"lambda": 1.0}), tmp_path / "o")
    instruct = read_state(family.instruct)
    for name, tensor in out.items():
        assert torch.equal(tensor, instruct[name].to(tensor.dtype)), name


def test_scope_linear_keeps_embeddings_and_lm_head(llama_family, tmp_path):
    out = run_yaml_merge(timber_config(llama_family, scope="linear"), tmp_path / "o")
    full = run_yaml_merge(timber_config(llama_family), tmp_path / "full")
    instruct = read_state(llama_family.instruct)
    vocabulary = [n for n in out if "embed_tokens" in n or "lm_head" in n]
    assert sorted(vocabulary) == ["lm_head.weight", "model.embed_tokens.weight"]
    for name in vocabulary:
        assert torch.equal(out[name], instruct[name]), name
        assert not torch.equal(full[name], instruct[name]), f"scope all changes {name}"
    projection = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(out[projection], full[projection])


def test_scope_linear_recognises_names_without_vocabulary_axis():
    gen = torch.Generator().manual_seed(3)
    base, instruct = torch.randn(32, 16, generator=gen), torch.randn(32, 16, generator=gen)
    for name, kept in [
        ("model.embed_tokens.weight", True),
        ("lm_head.weight", True),
        ("transformer.wte.weight", True),
        ("model.layers.0.mlp.up_proj.weight", False),
    ]:
        out = merge_tensors(
            [base, instruct], "timber_spectral", base_index=0, name=name,
            parameters={"scope": "linear"},
        )  # fmt: skip
        assert torch.equal(out, instruct) == kept, name


# ----------------------------------------------------------------------------- closed forms


SPECTRUM = [8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625]


@pytest.mark.parametrize("solver", ["auto", "svd"])
@pytest.mark.parametrize("lam", [0.0, 0.2, 0.7])
def test_known_spectrum_gives_hand_computed_k_and_output(solver, lam):
    delta64, U, V = with_spectrum(12, 10, SPECTRUM)
    total = sum(SPECTRUM)
    hand_erank = math.exp(-sum(s / total * math.log(s / total + 1e-9) for s in SPECTRUM))
    hand_k = math.ceil(hand_erank)
    assert 0 < hand_k < len(SPECTRUM)  # a real split, not "keep all"

    split = ts.split_delta(delta64.float(), solver=solver, name="w")
    assert split.k == hand_k
    assert split.erank == pytest.approx(hand_erank, rel=1e-6)

    s = torch.tensor(SPECTRUM, dtype=torch.float64)
    scaled = torch.where(torch.arange(len(s)) < hand_k, s, lam * s)
    base = torch.randn(12, 10, generator=torch.Generator().manual_seed(9))
    expected = base.double() + (U * scaled) @ V.T
    out = ts.timber_spectral(base, base + delta64.float(), lam=lam, solver=solver, name="w")
    assert torch.allclose(out.double(), expected, rtol=0, atol=1e-6)


def test_lambda_zero_is_the_hard_truncation():
    delta64, U, V = with_spectrum(12, 10, SPECTRUM)
    k = ts.split_delta(delta64.float(), solver="svd").k
    base = torch.zeros(12, 10)
    out = ts.timber_spectral(base, delta64.float(), lam=0.0, solver="svd")
    truncated = (U[:, :k] * torch.tensor(SPECTRUM[:k], dtype=torch.float64)) @ V[:, :k].T
    assert torch.allclose(out.double(), truncated, rtol=0, atol=1e-6)
    assert torch.linalg.matrix_rank(out.double(), atol=1e-4) == k


def test_erank_exponent_changes_k_as_the_formula_says():
    delta64, _, _ = with_spectrum(12, 10, SPECTRUM)
    for gamma in (0.5, 1.0, 2.0):
        expected = math.ceil(numpy_erank(np.array(SPECTRUM), gamma))
        assert ts.split_delta(delta64.float(), exponent=gamma, solver="svd").k == expected
    # Flatter weights (γ < 1) see more directions than steeper ones (γ > 1).
    k_half = ts.split_delta(delta64.float(), exponent=0.5, solver="svd").k
    k_two = ts.split_delta(delta64.float(), exponent=2.0, solver="svd").k
    assert k_half > k_two


def test_conv_like_tensor_is_reshaped_to_rows_by_rest():
    gen = torch.Generator().manual_seed(4)
    base, instruct = torch.randn(6, 3, 2, 2, generator=gen), torch.randn(6, 3, 2, 2, generator=gen)
    out = ts.timber_spectral(base, instruct, lam=0.3, solver="svd")
    expected = numpy_timber(base.numpy(), instruct.numpy(), 0.3)
    assert out.shape == base.shape
    assert np.allclose(out.double().numpy(), expected, atol=1e-6)


# ----------------------------------------------------------------------------- fast path


def realistic_spectra(r: int) -> dict[str, torch.Tensor]:
    i = torch.arange(r, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    return {
        "power-law 0.5": (i + 1) ** -0.5,
        "power-law 1": (i + 1) ** -1.0,
        "power-law 2": (i + 1) ** -2.0,
        "low-rank + noise": torch.where(i < 12, 10.0 / (i + 1), 0.0)
        + 0.05 * torch.rand(r, generator=gen, dtype=torch.float64).sort(descending=True).values,
        "ill-conditioned": torch.logspace(0, -9, r, dtype=torch.float64),
        "exponential": torch.exp(-i / 15),
    }


@pytest.mark.parametrize("shape", [(96, 160), (160, 96), (128, 128)])
@pytest.mark.parametrize("kind", list(realistic_spectra(8)))
def test_fast_path_agrees_with_svd(shape, kind):
    s = realistic_spectra(min(shape))[kind]
    delta = with_spectrum(*shape, s.tolist())[0].float()
    fast = ts.gram_split(delta, exponent=1.0, name=kind)
    exact = ts.svd_split(delta, exponent=1.0, name=kind)
    assert fast is not None, f"{kind}: the fast path should accept this spectrum"
    assert fast.solver == "gram" and fast.k == exact.k
    for lam in (0.0, 0.2, 0.5):
        assert relative(fast.apply(lam), exact.apply(lam)) <= 1e-5, (kind, lam)


def test_strong_low_rank_part_in_a_tall_delta_stays_on_the_fast_path():
    """A dominant direction over a flat bulk (as 8B MLP deltas): the split estimate with
    worst-case noise growth rejected it; the measured split error is ~1e-11, far below."""
    s = [2000.0, *torch.linspace(1.0, 0.5, 299).tolist()]
    delta = with_spectrum(2000, 300, s)[0].float()
    spectrum = ts.gram_spectrum(delta)
    exact = ts.svd_split(delta, exponent=1.0, name="w")
    values, k = spectrum.eigenvalues, exact.k
    scale = math.sqrt(float(values[k - 1])) / math.sqrt(float(values.sum()))
    worst_case_estimate = spectrum.noise / float(values[k - 1] - values[k]) * scale
    assert worst_case_estimate > ts.GRAM_MAX_SPLIT_ERROR  # the old criterion fell back here
    fast = ts.gram_split(delta, exponent=1.0, name="w")
    assert fast is not None and fast.k == k
    u, sv, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    for lam in (0.0, 0.2, 0.5):
        scaled = sv.clone()
        scaled[k:] *= lam
        reference = (u * scaled) @ vh
        error = float((fast.apply(lam).double() - reference).norm() / reference.norm())
        assert error < 1e-7, (lam, error)  # float32 rounding of the output


def repeated_at_k(rows: int, cols: int) -> torch.Tensor:
    """A block spectrum [3]*6 + [1]*(r−6): k lands inside the block of equal values."""
    r = min(rows, cols)
    s = [3.0] * 6 + [1.0] * (r - 6)
    delta = with_spectrum(rows, cols, s)[0].float()
    k = ts.svd_split(delta, exponent=1.0, name="w").k
    assert 7 < k < r  # σ_(k-1) == σ_k
    return delta


def ill_conditioned_at_k(rows: int, cols: int) -> torch.Tensor:
    """One dominant direction and a long tail at 1e-6·σ_0: σ_(k-1)²/σ_0² ≈ 1e-12."""
    r = min(rows, cols)
    s = [1.0] + [1e-6 * (1 + 1e-3 * i) for i in range(r - 1, 0, -1)]
    delta = with_spectrum(rows, cols, s)[0].float()
    k = ts.svd_split(delta, exponent=1.0, name="w").k
    assert 1 < k < r
    return delta


@pytest.mark.parametrize("build", [repeated_at_k, ill_conditioned_at_k])
def test_fast_path_falls_back_where_it_cannot_be_exact(build):
    delta = build(64, 48)
    assert ts.gram_split(delta, exponent=1.0, name="w") is None
    auto = ts.split_delta(delta, solver="auto", name="w")
    exact = ts.split_delta(delta, solver="svd", name="w")
    assert auto.solver == "svd"
    assert torch.equal(auto.apply(0.2), exact.apply(0.2))


def timber_py_erank(s: torch.Tensor) -> float:
    """``timber.py``'s ``calculate_effective_rank``, written out: float32 ops on the float32 S."""
    s = s.to(torch.float32)
    total = torch.sum(s)
    if total == 0:
        return 0.0
    p = s / total
    return torch.exp(-torch.sum(p * torch.log(p + 1e-9))).item()


def straddling_delta(rows: int, cols: int, rank: int) -> tuple[torch.Tensor, int]:
    """A float32 delta whose float32 (timber.py) and float64 eRanks have different ceilings.

    The leading σ is tuned by bisection until the float64 eRank of the designed spectrum is
    an integer, then nudged until the delta's actual S (float64 SVD of the float32 delta, cast
    to float32 as timber.py does) puts the two computations on the two sides of it.
    Returns the delta and timber.py's k.
    """
    tail = [0.9**i for i in range(1, rank)]

    def erank_of(first: float) -> float:
        return numpy_erank(np.array([first, *tail]))

    low, high = 1.0, 50.0  # eRank falls as the first σ grows
    target = math.floor(erank_of(low))
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if erank_of(mid) > target else (low, mid)
    for step in range(400):
        first = low * (1 + (step // 2) * (-1) ** step * 2e-7)
        delta = with_spectrum(rows, cols, [first, *tail])[0].float()
        s = torch.linalg.svd(delta.double(), full_matrices=False).S.float()
        official, exact = timber_py_erank(s), numpy_erank(s.double().numpy())
        if math.ceil(official) != math.ceil(exact):
            return delta, math.ceil(official)
    raise AssertionError("no straddling spectrum found")


def test_k_is_timber_py_float32_k_on_the_svd_route():
    """Issue 16: eRank within float32 rounding of an integer: k is the one timber.py gets."""
    delta, official_k = straddling_delta(64, 40, 40)
    split = ts.split_delta(delta, solver="svd", name="w")
    assert split.k == official_k
    float64_k = math.ceil(numpy_erank(split.S.double().numpy()))
    assert float64_k != official_k  # the float64 arithmetic would have picked the other k


def test_k_is_timber_py_float32_k_on_the_gram_route():
    """Full rank, well conditioned: the Gram route's float32 S is certain, so it keeps the fast
    path and gets timber.py's k although float64 arithmetic would give the other one."""
    delta, official_k = straddling_delta(64, 40, 40)
    spectrum = ts.gram_spectrum(delta)
    k, _erank, reason = ts.gram_official_k(spectrum.eigenvalues, spectrum.noise, 1.0)
    assert (k, reason) == (official_k, "float32 S certain")
    fast = ts.gram_split(delta, exponent=1.0, name="w")
    assert fast is not None and fast.solver == "gram" and fast.k == official_k
    exact = ts.split_delta(delta, solver="svd", name="w")
    assert relative(fast.apply(0.2), exact.apply(0.2)) <= 1e-5


def test_gram_route_falls_back_where_the_float32_s_is_unsure():
    """Rank 40 in 48 columns: 8 σ at the float32 noise floor, whose float32 casts the Gram route
    cannot know; with eRank at an integer it cannot be sure of k and uses the SVD."""
    delta, official_k = straddling_delta(64, 48, 40)
    assert ts.gram_split(delta, exponent=1.0, name="w") is None
    auto = ts.split_delta(delta, solver="auto", name="w")
    assert auto.solver == "svd" and auto.k == official_k


def test_unsure_float32_casts_are_each_tried(monkeypatch):
    """A few σ whose float32 cast is unsure: every combination is evaluated, and one that
    changes k sends the tensor to the SVD."""
    values = torch.tensor([9.0, 4.0, 1.0, 0.25], dtype=torch.float64)
    noise = 1e-9
    k, _erank, reason = ts.gram_official_k(values, noise, 1.0)
    assert k == math.ceil(timber_py_erank(values.sqrt())) and reason == "float32 S certain"
    # Make the last σ unsure between two neighbouring float32 values: both give the same k.
    edge = torch.nextafter(torch.tensor(0.5, dtype=torch.float32), torch.tensor(1.0))
    midpoint = (0.5 + float(edge)) / 2
    values[-1] = midpoint**2
    k, _erank, reason = ts.gram_official_k(values, 1e-9, 1.0)
    assert reason == "every possible float32 S gives this k"
    from mergekit_weightlevel.methods.timber import decomposition

    calls = []
    real = ts.official_effective_rank
    monkeypatch.setattr(
        decomposition,
        "official_effective_rank",
        lambda s, e=1.0: calls.append(s.clone()) or real(s, e),
    )
    ts.gram_official_k(values, 1e-9, 1.0)
    assert {float(c[-1]) for c in calls[1:]} == {0.5, float(edge)}


def test_zero_delta_returns_base():
    base = torch.randn(16, 8, generator=torch.Generator().manual_seed(6))
    for solver in ("auto", "svd"):
        out = ts.timber_spectral(base, base.clone(), lam=0.2, solver=solver)
        assert torch.equal(out, base)


# ----------------------------------------------------------------------------- dtypes, failures


def test_bf16_never_reaches_a_decomposition(qwen3_bf16_family, tmp_path, monkeypatch):
    seen: list[torch.dtype] = []
    real_svd, real_eigh = torch.linalg.svd, torch.linalg.eigh

    def svd(matrix, *args, **kwargs):
        seen.append(matrix.dtype)
        return real_svd(matrix, *args, **kwargs)

    def eigh(matrix, *args, **kwargs):
        seen.append(matrix.dtype)
        return real_eigh(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", svd)
    monkeypatch.setattr(torch.linalg, "eigh", eigh)
    for solver in ("auto", "svd"):
        run_yaml_merge(
            timber_config(qwen3_bf16_family, dtype="bfloat16", solver=solver), tmp_path / solver
        )
    assert seen, "no decomposition was recorded"
    assert set(seen) == {torch.float64}


def test_svd_failure_keeps_instruct_and_names_the_tensor(monkeypatch):
    def failing_svd(*args, **kwargs):
        raise torch.linalg.LinAlgError("did not converge")

    monkeypatch.setattr(torch.linalg, "svd", failing_svd)
    gen = torch.Generator().manual_seed(7)
    base, instruct = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    name = "model.layers.1.mlp.down_proj.weight"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = merge_tensors(
            [base, instruct], "timber_spectral", base_index=0, name=name,
            parameters={"solver": "svd"},
        )  # fmt: skip
    assert torch.equal(out, instruct)
    messages = [str(w.message) for w in caught]
    assert any(
        f"tensor {name} did not converge" in m and "keeping the Instruct" in m for m in messages
    ), messages


def test_failed_eigh_falls_back_to_svd(monkeypatch):
    def failing_eigh(*args, **kwargs):
        raise torch.linalg.LinAlgError("eigh failed")

    monkeypatch.setattr(torch.linalg, "eigh", failing_eigh)
    delta = with_spectrum(20, 12, [4, 2, 1, 0.5, 0.2])[0].float()
    split = ts.split_delta(delta, solver="auto", name="w")
    assert split.solver == "svd"


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"lambda": -0.1}, r"timber_spectral: parameter `lambda` must be a float in \[0, inf\)"),
        ({"scope": "mlp"}, r"timber_spectral: parameter `scope` must be one of 'all', 'linear'"),
        ({"solver": "gpu"}, r"timber_spectral: parameter `solver` must be one of 'auto', 'svd'"),
        ({"erank_exponent": 0.0}, r"timber_spectral: parameter `erank_exponent` must be"),
    ],
)
def test_bad_parameters_fail_at_planning_time(llama_family, tmp_path, parameters, message):
    with pytest.raises(Exception, match=message):
        run_yaml_merge(timber_config(llama_family, **parameters), tmp_path / "o")
    assert not list((tmp_path / "o").glob("*.safetensors"))


def test_two_instruct_models_is_an_error(llama_family, tmp_path):
    config = timber_config(llama_family)
    config["models"].append({"model": str(llama_family.thinking)})
    with pytest.raises(
        ValueError, match=r"timber_spectral: Merge method requires exactly 1 non-base inputs"
    ):
        run_yaml_merge(config, tmp_path / "o")


def test_missing_base_is_an_error(llama_family, tmp_path):
    config = timber_config(llama_family)
    del config["base_model"]
    with pytest.raises(ValueError, match=r"timber_spectral: Merge method requires a base input"):
        run_yaml_merge(config, tmp_path / "o")


@pytest.mark.cuda
def test_cuda_matches_cpu():
    delta = with_spectrum(96, 160, realistic_spectra(96)["power-law 1"].tolist())[0].float()
    base = torch.randn(96, 160, generator=torch.Generator().manual_seed(8))
    for solver in ("auto", "svd"):
        cpu = ts.timber_spectral(base, base + delta, solver=solver)
        gpu = ts.timber_spectral(base.cuda(), (base + delta).cuda(), solver=solver)
        assert gpu.device.type == "cuda"
        assert relative(gpu.cpu(), cpu) <= 1e-5
