"""analyze's metrics: σ / eRank against numpy float64, the spectral structure on constructed
matrices, module-type recognition, and the α outlier rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import numpy_structure, read_state

from mergekit_weightlevel.analyze import analyze_models, layer_index, module_type, tensor_record
from mergekit_weightlevel.analyze.aggregate import alpha_outliers
from mergekit_weightlevel.analyze.names import in_shadow_ft_mean, parse_layers
from mergekit_weightlevel.analyze.options import parse_metrics
from mergekit_weightlevel.analyze.records import TensorRecord
from mergekit_weightlevel.numerics.robust import robust_z_scores
from mergekit_weightlevel.numerics.spectral import thin_svd
from mergekit_weightlevel.numerics.structure import spectral_structure


def numpy_sigma(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum() / (np.abs(a).sum() + np.abs(b).sum()))


def numpy_erank(matrix: np.ndarray) -> float:
    """Roy & Vetterli with the 1e-9 inside the log that the Timber code (and the docs) use."""
    s = np.linalg.svd(matrix.reshape(matrix.shape[0], -1), compute_uv=False)
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p + 1e-9)).sum()))


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.to(torch.float64).numpy()


@pytest.mark.parametrize("family_name", ["llama", "qwen2", "qwen3"])
def test_sigma_and_erank_match_numpy_float64_on_every_tensor(all_families, family_name):
    family = all_families[family_name]
    report = analyze_models([family.base, family.instruct], metrics="sigma,erank", quiet=True)
    base, post = read_state(family.base), read_state(family.instruct)
    pair = report.pairs[0]
    assert {r.name for r in pair.tensors} == set(base)  # every tensor, none skipped
    kinds = set()
    for record in pair.tensors:
        a, b = as_numpy(base[record.name]), as_numpy(post[record.name])
        # pair_statistics rounds each term once to float32 (2^-24) and sums in float64.
        assert record.sigma == pytest.approx(numpy_sigma(a, b), rel=1e-7)
        assert record.rel_frobenius == pytest.approx(
            np.linalg.norm(b - a) / np.linalg.norm(a), rel=1e-7
        )
        assert record.cosine == pytest.approx(
            float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))), rel=1e-7
        )
        if a.ndim == 1:
            kinds.add("bias" if record.name.endswith("bias") else "vector")
            assert record.rank is None and record.erank is None
            continue
        kinds.add(record.module_type)
        assert record.rank == min(a.shape[0], a[0].size)
        # Float32 SVDs (the default precision) against float64 numpy.
        assert record.erank["a"] == pytest.approx(numpy_erank(a), rel=1e-4)
        assert record.erank["b"] == pytest.approx(numpy_erank(b), rel=1e-4)
        assert record.erank["delta"] == pytest.approx(numpy_erank(b - a), rel=1e-4)
        assert record.erank_ratio["b"] == pytest.approx(record.erank["b"] / record.rank)
    assert {"vector", "embed", "q", "k", "v", "o", "gate", "up", "down"} <= kinds
    if family_name == "qwen2":
        assert "bias" in kinds
    if family_name == "llama":
        assert "lm_head" in kinds


def test_float64_precision_matches_numpy_to_float64_accuracy(llama_family):
    report = analyze_models(
        [llama_family.base, llama_family.thinking],
        metrics="erank",
        precision="float64",
        include=r"layers\.0\.mlp",
        quiet=True,
    )
    base, post = read_state(llama_family.base), read_state(llama_family.thinking)
    assert len(report.pairs[0].tensors) == 3
    for record in report.pairs[0].tensors:
        a, b = as_numpy(base[record.name]), as_numpy(post[record.name])
        assert record.erank["delta"] == pytest.approx(numpy_erank(b - a), rel=1e-8)


# ----------------------------------------------------------------------------- structure


def random_orthogonal(size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # Haar-distributed


def factors(rows: int = 24, cols: int = 16, seed: int = 0):
    """U (rows × k), distinct descending singular values, V (cols × k), k = min(rows, cols)."""
    k = min(rows, cols)
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, k, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, k, generator=gen, dtype=torch.float64))
    s = torch.linspace(6.0, 0.5, k, dtype=torch.float64)
    return u, s, v


def structure_of(a: torch.Tensor, b: torch.Tensor, precision=torch.float64) -> dict[str, float]:
    record = tensor_record("w", a, b, metrics=("sigma", "structure"), precision=precision)
    return record.structure


@pytest.mark.parametrize("precision, tolerance", [(torch.float64, 1e-8), (torch.float32, 2e-4)])
def test_scale_plus_shared_rotation_is_recovered(precision, tolerance):
    u, s, v = factors()
    q = random_orthogonal(s.numel(), seed=1)
    alpha = 1.37
    a = (u * s) @ v.T
    b = (u @ q) @ torch.diag(alpha * s) @ (v @ q).T
    result = structure_of(a, b, precision)
    assert result["alpha"] == pytest.approx(alpha, rel=tolerance)
    assert result["median_ratio"] == pytest.approx(alpha, rel=tolerance)
    assert result["p5_ratio"] == pytest.approx(alpha, rel=tolerance)
    assert result["p95_ratio"] == pytest.approx(alpha, rel=tolerance)
    assert result["cv"] < tolerance
    assert result["consistency_gap"] < 10 * tolerance
    assert result["reconstruction_error"] < 10 * tolerance
    # The rotation really moved the singular vectors: alignment is well below 1.
    assert result["alignment"] < 0.6


def test_pure_scaling_keeps_the_singular_vectors_aligned():
    u, s, v = factors(seed=3)
    a = (u * s) @ v.T
    result = structure_of(a, 0.8 * a)
    assert result["alpha"] == pytest.approx(0.8, rel=1e-10)
    assert result["alignment"] == pytest.approx(1.0, abs=1e-10)
    assert result["consistency_gap"] < 1e-10
    assert result["reconstruction_error"] < 1e-10


def test_different_rotations_and_uneven_scaling_are_detected():
    u, s, v = factors(seed=4)
    gen = torch.Generator().manual_seed(5)
    uneven = s * (0.5 + 1.5 * torch.rand(s.numel(), generator=gen, dtype=torch.float64))
    q_left, q_right = random_orthogonal(s.numel(), 6), random_orthogonal(s.numel(), 7)
    a = (u * s) @ v.T
    b = (u @ q_left) @ torch.diag(uneven) @ (v @ q_right).T
    result = structure_of(a, b)
    assert result["cv"] > 0.1  # vs < 1e-8 for a uniform scaling
    assert result["consistency_gap"] > 0.5
    assert result["reconstruction_error"] > 0.3
    # The singular values and ratios against an independent numpy computation.
    s_a = np.linalg.svd(a.numpy(), compute_uv=False)
    s_b = np.linalg.svd(b.numpy(), compute_uv=False)
    ratios = s_b / s_a
    assert result["alpha"] == pytest.approx(float(s_b @ s_a / (s_a @ s_a)), rel=1e-10)
    assert result["cv"] == pytest.approx(float(ratios.std() / ratios.mean()), rel=1e-10)
    assert result["median_ratio"] == pytest.approx(float(np.median(ratios)), rel=1e-10)
    assert result["p5_ratio"] == pytest.approx(float(np.percentile(ratios, 5)), rel=1e-10)
    assert result["p95_ratio"] == pytest.approx(float(np.percentile(ratios, 95)), rel=1e-10)


def flip_pairs(svd, columns: list[int]):
    u, s, vh = (t.clone() for t in svd)
    u[:, columns] *= -1
    vh[columns, :] *= -1
    return u, s, vh


def test_sign_flips_of_singular_pairs_change_nothing():
    u, s, v = factors(seed=8)
    gen = torch.Generator().manual_seed(9)
    a = (u * s) @ v.T
    b = a + 0.3 * torch.randn(a.shape, generator=gen, dtype=torch.float64)  # an imperfect fit
    svd_a, svd_b = thin_svd(a), thin_svd(b)
    reference = spectral_structure(*svd_a, *svd_b)
    flipped = spectral_structure(*flip_pairs(svd_a, [0, 3, 7]), *flip_pairs(svd_b, [1, 3, 15]))
    for name, value in reference.as_dict().items():
        assert getattr(flipped, name) == pytest.approx(value, rel=1e-10, abs=1e-12), name
    assert reference.reconstruction_error > 0.01  # a case where the numbers are not trivial


@pytest.mark.parametrize(
    "rows, cols, noise",
    [(40, 24, 0.3), (24, 40, 0.3), (32, 32, 0.05), (32, 32, 1e-5), (40, 24, 1e-5), (24, 40, 0.0)],
)
def test_structure_equals_the_explicit_float64_computation(rows, cols, noise):
    """The k × k shortcuts (reconstruction error, eigh polar factor) change no number."""
    u, s, v = factors(rows, cols, seed=11)
    gen = torch.Generator().manual_seed(12)
    a = (u * s) @ v.T
    b = 1.1 * a + noise * torch.randn(a.shape, generator=gen, dtype=torch.float64)
    got = spectral_structure(*thin_svd(a), *thin_svd(b)).as_dict()
    for name, value in numpy_structure(a.numpy(), b.numpy()).items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("condition", [10.0, 1e3, 1e6])
def test_polar_factor_matches_the_svd_route_at_every_conditioning(condition):
    from mergekit_weightlevel.numerics.structure import polar_orthogonal_factor

    q1, q2 = random_orthogonal(30, 21), random_orthogonal(30, 22)
    singular = torch.logspace(0, -np.log10(condition), 30, dtype=torch.float64)
    matrix = (q1 * singular) @ q2.T
    x, _, yh = np.linalg.svd(matrix.numpy())
    got = polar_orthogonal_factor(matrix)
    np.testing.assert_allclose(got.numpy(), x @ yh, atol=1e-9)
    np.testing.assert_allclose((got.T @ got).numpy(), np.eye(30), atol=1e-9)


@pytest.mark.parametrize("svd_beyond_qr", [True, False])
def test_polar_factor_orthogonalises_the_few_small_columns(svd_beyond_qr):
    """Well-conditioned but for three singular values (the structure level's usual M): the
    columns of those three are orthogonalised rather than divided by s_i, and the factor
    is the SVD's."""
    from mergekit_weightlevel.numerics.structure import (
        POLAR_EIGH_MIN_RATIO,
        polar_orthogonal_factor,
    )

    q1, q2 = random_orthogonal(40, 23), random_orthogonal(40, 24)
    singular = torch.linspace(1.0, 0.6, 40, dtype=torch.float64)
    singular[-3:] = torch.tensor([3e-3, 1e-4, 3e-5], dtype=torch.float64)
    assert float(singular[-1] ** 2) < POLAR_EIGH_MIN_RATIO  # the direct route alone would not do
    matrix = (q1 * singular) @ q2.T
    x, _, yh = np.linalg.svd(matrix.numpy())
    got = polar_orthogonal_factor(matrix, svd_beyond_qr=svd_beyond_qr)
    np.testing.assert_allclose(got.numpy(), x @ yh, atol=1e-9)
    np.testing.assert_allclose((got.T @ got).numpy(), np.eye(40), atol=1e-9)


def test_polar_factor_of_a_nearly_singular_matrix_is_orthogonal():
    """Where s_i is at rounding level, M y_i is noise: the column must still come out
    orthogonal to the others (the Gram–Schmidt step), the factor agreeing with the SVD's
    wherever it is determined (the well-conditioned columns)."""
    from mergekit_weightlevel.numerics.structure import polar_orthogonal_factor

    q1, q2 = random_orthogonal(40, 25), random_orthogonal(40, 26)
    singular = torch.linspace(1.0, 0.6, 40, dtype=torch.float64)
    singular[-2:] = torch.tensor([1e-13, 1e-14], dtype=torch.float64)
    matrix = (q1 * singular) @ q2.T
    got = polar_orthogonal_factor(matrix, svd_beyond_qr=False)
    np.testing.assert_allclose((got.T @ got).numpy(), np.eye(40), atol=1e-9)
    well_determined = q2[:, :-2]  # R q2_i = q1_i for the 38 clear singular pairs
    np.testing.assert_allclose((got @ well_determined).numpy(), q1[:, :-2].numpy(), atol=1e-9)


def test_polar_factor_refuses_a_rectangular_matrix():
    from mergekit_weightlevel.numerics.structure import polar_orthogonal_factor

    with pytest.raises(ValueError, match="square"):
        polar_orthogonal_factor(torch.ones(3, 2, dtype=torch.float64))


# ------------------------------------------------------------------------------- outliers


def alpha_record(name: str, alpha: float) -> TensorRecord:
    return TensorRecord(
        name=name,
        shape=[4, 4],
        module_type=module_type(name),
        layer=layer_index(name),
        sigma=0.01,
        sigma_numerator=0.01,
        sigma_denominator=1.0,
        rel_frobenius=0.02,
        cosine=1.0,
        rank=4,
        structure={"alpha": alpha},
    )


PROJECTIONS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
PROJECTIONS += ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def model_alphas(overrides: dict[str, float], noise: float = 0.002) -> list[TensorRecord]:
    gen = torch.Generator().manual_seed(0)
    records = []
    for layer in range(8):
        for projection in PROJECTIONS:
            name = f"model.layers.{layer}.{projection}.weight"
            alpha = overrides.get(name, 1.0 + noise * float(torch.randn(1, generator=gen)))
            if projection == "self_attn.o_proj" and "o" in overrides:
                alpha = overrides["o"] + noise * float(torch.randn(1, generator=gen))
            records.append(alpha_record(name, alpha))
    return records


def test_a_module_type_scaling_differently_is_flagged_against_the_model():
    flagged = alpha_outliers(model_alphas({"o": 1.3}))
    assert {f["module_type"] for f in flagged} == {"o"}
    assert len(flagged) == 8
    assert all(f["flagged_against"] == ["model"] for f in flagged)
    assert all(f["z_model"] > 3.5 for f in flagged)


def test_one_layer_unlike_its_siblings_is_flagged_within_its_type():
    odd = "model.layers.5.mlp.gate_proj.weight"
    flagged = alpha_outliers(model_alphas({odd: 0.8}))
    assert [f["name"] for f in flagged] == [odd]
    assert set(flagged[0]["flagged_against"]) == {"model", "module_type"}
    assert flagged[0]["z_module_type"] < -3.5


def test_noise_around_a_common_alpha_is_not_flagged():
    assert alpha_outliers(model_alphas({}, noise=1e-4)) == []


def test_robust_z_scores_by_hand():
    # median 2, MAD 1 → 0.6745 (x − 2)
    assert robust_z_scores([1.0, 2.0, 3.0, 10.0, 2.0]) == pytest.approx(
        [-0.6745, 0.0, 0.6745, 8 * 0.6745, 0.0]
    )
    assert robust_z_scores([1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, kind, layer",
    [
        ("model.embed_tokens.weight", "embed", None),
        ("model.layers.3.self_attn.q_proj.weight", "q", 3),
        ("model.layers.3.self_attn.q_proj.bias", "q.bias", 3),  # Qwen2
        ("model.layers.0.self_attn.k_proj.weight", "k", 0),
        ("model.layers.0.self_attn.v_proj.weight", "v", 0),
        ("model.layers.11.self_attn.o_proj.weight", "o", 11),
        ("model.layers.0.self_attn.q_norm.weight", "norms", 0),  # Qwen3
        ("model.layers.0.self_attn.k_norm.weight", "norms", 0),
        ("model.layers.2.mlp.gate_proj.weight", "gate", 2),
        ("model.layers.2.mlp.up_proj.weight", "up", 2),
        ("model.layers.2.mlp.down_proj.weight", "down", 2),
        ("model.layers.2.input_layernorm.weight", "norms", 2),
        ("model.layers.2.post_attention_layernorm.weight", "norms", 2),
        ("model.norm.weight", "norms", None),
        ("lm_head.weight", "lm_head", None),
        # GPT-2
        ("transformer.wte.weight", "embed", None),
        ("transformer.wpe.weight", "embed", None),
        ("transformer.h.7.attn.c_attn.weight", "qkv", 7),
        ("transformer.h.7.attn.c_attn.bias", "qkv.bias", 7),
        ("transformer.h.7.attn.c_proj.weight", "o", 7),
        ("transformer.h.7.mlp.c_fc.weight", "up", 7),
        ("transformer.h.7.mlp.c_proj.weight", "down", 7),
        ("transformer.h.7.ln_1.weight", "norms", 7),
        ("transformer.h.7.ln_1.bias", "norms.bias", 7),
        ("transformer.ln_f.weight", "norms", None),
        # Fallback: the last module component.
        ("model.blocks.4.mixer.in_proj.weight", "in_proj", 4),
        ("model.layers.1.block_sparse_moe.experts.0.w1.weight", "expert.gate", 1),
    ],
)
def test_module_type_and_layer(name, kind, layer):
    assert module_type(name) == kind
    assert layer_index(name) == layer


def test_shadow_ft_scope_is_model_layers_only():
    assert in_shadow_ft_mean("model.layers.0.input_layernorm.weight")
    assert not in_shadow_ft_mean("model.embed_tokens.weight")
    assert not in_shadow_ft_mean("transformer.h.0.attn.c_attn.weight")


def test_parse_layers_and_metrics():
    assert parse_layers("0-3,8, 10-11") == frozenset({0, 1, 2, 3, 8, 10, 11})
    with pytest.raises(ValueError, match="backwards"):
        parse_layers("5-2")
    with pytest.raises(ValueError, match="--layers"):
        parse_layers("first")
    assert parse_metrics("structure") == ("sigma", "structure")
    assert parse_metrics("erank, sigma") == ("sigma", "erank")
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metrics("sigma,entropy")
