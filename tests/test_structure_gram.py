"""The structure level's float64 Gram route against an independent numpy float64 SVD.

The route (``gram_spectral_structure``) never computes singular vectors of the long side;
its error estimate decides whether ``analyze`` keeps it or falls back to the SVDs. These
tests check the two promises: every field within 1e-6 of the float64 SVD definition where
the route is kept, and an estimate that does not understate the error it makes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import numpy_structure

import mergekit_weightlevel.analyze.records as records
from mergekit_weightlevel.analyze.records import matrix_structure, tensor_record
from mergekit_weightlevel.numerics.structure import SpectralStructure
from mergekit_weightlevel.numerics.structure_gram import (
    STRUCTURE_GRAM_TOLERANCE,
    gram_spectral_structure,
)

FIELDS = tuple(SpectralStructure.__dataclass_fields__)


def weight_pair(rows: int, cols: int, condition: float, change: float, seed: int):
    """A float32 matrix with log-spaced singular values (cond = ``condition``) and a
    post-training-like B: a slight scaling, a low-rank change and dense noise."""
    gen = torch.Generator().manual_seed(seed)
    k = min(rows, cols)
    u, _ = torch.linalg.qr(torch.randn(rows, k, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, k, generator=gen, dtype=torch.float64))
    s = torch.logspace(0, -math.log10(condition), k, dtype=torch.float64)
    a = (u * s) @ v.T
    low_rank = torch.randn(rows, 2, generator=gen, dtype=torch.float64) @ torch.randn(
        2, cols, generator=gen, dtype=torch.float64
    )
    noise = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    b = 1.02 * a + change * (low_rank / low_rank.norm() + noise / noise.norm()) * a.norm()
    return a.float(), b.float()


def field_errors(got: dict[str, float], a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    reference = numpy_structure(a.double().numpy(), b.double().numpy())
    return {name: abs(got[name] - reference[name]) for name in FIELDS}


@pytest.mark.parametrize("rows, cols", [(96, 64), (64, 96), (80, 80)])
@pytest.mark.parametrize("condition", [10.0, 1e3, 1e5, 1e7])
@pytest.mark.parametrize("change", [1e-3, 0.05])
def test_the_error_estimate_does_not_understate_the_error(rows, cols, condition, change):
    a, b = weight_pair(rows, cols, condition, change, seed=int(condition) % 97 + rows)
    gram = gram_spectral_structure(a, b)
    errors = field_errors(gram.structure.as_dict(), a, b)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= gram.error_estimate, (worst, errors[worst], gram.error_estimate)
    if condition <= 1e3:
        # Where the route is meant to be used it is kept, and then well within the promise.
        assert gram.error_estimate <= STRUCTURE_GRAM_TOLERANCE
        assert errors[worst] <= 1e-9, (worst, errors[worst])


@pytest.mark.parametrize("rows, cols", [(192, 128), (128, 192), (160, 160)])
def test_analyze_keeps_the_gram_route_and_is_within_1e_6_of_float64(rows, cols, monkeypatch):
    svd_calls = []
    monkeypatch.setattr(records, "thin_svd", lambda *a, **k: svd_calls.append(a))
    a, b = weight_pair(rows, cols, 300.0, 0.02, seed=rows + cols)
    structure, s_a, s_b = matrix_structure(a, b)
    assert not svd_calls  # no SVD was needed
    errors = field_errors(structure.as_dict(), a, b)
    assert max(errors.values()) <= 1e-6, errors
    np.testing.assert_allclose(
        s_a.numpy(), np.linalg.svd(a.double().numpy(), compute_uv=False), rtol=1e-10
    )
    np.testing.assert_allclose(
        s_b.numpy(), np.linalg.svd(b.double().numpy(), compute_uv=False), rtol=1e-10
    )


@pytest.mark.parametrize("rows, cols", [(96, 64), (64, 96)])
def test_an_ill_conditioned_pair_falls_back_to_the_svds(rows, cols, monkeypatch):
    a, b = weight_pair(rows, cols, 1e7, 0.01, seed=3)
    assert gram_spectral_structure(a, b).error_estimate > STRUCTURE_GRAM_TOLERANCE
    calls = []
    svd = records.thin_svd
    monkeypatch.setattr(records, "thin_svd", lambda *x, **k: calls.append(x) or svd(*x, **k))
    record = tensor_record("w", a.double(), b.double(), metrics=("sigma", "structure"),
                           precision=torch.float64)  # fmt: skip
    assert len(calls) == 2  # A's and B's SVDs
    errors = field_errors(record.structure, a.double(), b.double())
    assert max(errors.values()) <= 1e-8, errors


def test_a_rank_deficient_pair_is_never_kept():
    a, b = weight_pair(64, 48, 10.0, 0.01, seed=5)
    a[:, 0] = 0.0  # rank 47 of 48: the route divides by every singular value of A
    assert gram_spectral_structure(a, b) is None
    structure, _, _ = matrix_structure(a, b, precision=torch.float64)
    errors = field_errors(structure.as_dict(), a, b)
    assert max(errors.values()) <= 1e-6, errors


def test_the_eranks_of_a_and_b_come_from_the_same_singular_values():
    a, b = weight_pair(120, 80, 50.0, 0.03, seed=9)
    record = tensor_record("w", a, b, metrics=("sigma", "erank", "structure"))
    s_a = np.linalg.svd(a.double().numpy(), compute_uv=False)
    p = s_a / s_a.sum()
    assert record.erank["a"] == pytest.approx(
        float(np.exp(-(p * np.log(p + 1e-9)).sum())), rel=1e-12
    )
