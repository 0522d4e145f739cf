"""Timber (arXiv 2509.23595): refine an Instruct model by partly reverting it towards its Base.

Per ≥2-D tensor, with ΔW = W_I − W_B (float32) seen as D = shape[0] × rest:

    k  = ⌈eRank(σ(D))⌉                       (effective rank of the delta's spectrum)
    D' = Σ_{i<k} σ_i u_i v_iᵀ + λ · Σ_{i≥k} σ_i u_i v_iᵀ
       = P_k(D) + λ · (D − P_k(D))            (P_k: projection on the top-k directions)
    W  = W_B + D'

λ = 1 gives W_I back, λ = 0 keeps only the top-k directions (hard truncation). 1-D tensors
(norms, biases) keep W_I. The official ``timber.py`` (where λ is called ``gamma``) runs a
float64 thin SVD per tensor; ``solver: svd`` does exactly that. The default ``solver: auto``
gets P_k(D) from the float64 eigendecomposition of the smaller Gram matrix (DᵀD or DDᵀ),
which is several times cheaper, and falls back to the SVD for every tensor where it cannot
guarantee float32-rounding agreement (see ``gram_is_accurate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mergekit.merge_methods.base import (
    BasePolicy,
    InputContract,
    MergeMethodSpec,
    ParameterScope,
    ParameterSpec,
    TensorGroup,
)

from mergekit_weightlevel.checks.parameter_types import bounded_float, choice
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.methods.base import WeightLevelMethod
from mergekit_weightlevel.methods.sweep_share import SWEEP_SHARE, SweepShare
from mergekit_weightlevel.methods.timber.declaration import DECLARATION, DEFAULT_LAMBDA, NAME
from mergekit_weightlevel.methods.timber.kernel import timber_tensors
from mergekit_weightlevel.tensor_names import is_embedding

SCOPES = ("all", "linear")
SOLVERS = ("auto", "svd")


def is_embedding_group(group: TensorGroup) -> bool:
    """Embeddings / lm_head: mergekit's vocabulary axis, or their names (``tensor_names``:
    token and position embeddings, output heads) when it is unset or does not apply."""
    if group.metadata.vocabulary_axis is not None:
        return True
    return is_embedding(group.metadata.name or "")


# ----------------------------------------------------------------------------- mergekit method


class TimberSpectralMerge(WeightLevelMethod):
    """W_B + (top-eRank directions of W_I − W_B) + λ·(the rest): Timber's partial revert."""

    declaration = DECLARATION
    sweep_shares_work_along = "lambda"  # one decomposition of W_I − W_B serves every λ

    spec = MergeMethodSpec(
        name=NAME,
        pretty_name=DECLARATION.display_name,
        reference_url=DECLARATION.paper.url,
        contract=InputContract(base=BasePolicy.REQUIRED, min_non_base=1, max_non_base=1),
        parameters=(
            ParameterSpec(
                "lambda",
                bounded_float(NAME, "lambda", ge=0.0),
                ParameterScope.SHARED,
                default=DEFAULT_LAMBDA,
                description="scale of the delta's tail beyond ⌈eRank⌉ (1: Instruct, 0: hard truncation)",
            ),
            ParameterSpec(
                "scope",
                choice(NAME, "scope", SCOPES),
                ParameterScope.SHARED,
                default="all",
                description="`all` ≥2-D tensors (official), or `linear`: embeddings / lm_head keep Instruct",
            ),
            ParameterSpec(
                "erank_exponent",
                bounded_float(NAME, "erank_exponent", ge=0.01, le=10.0),
                ParameterScope.SHARED,
                default=1.0,
                description="γ in p_i = σ_i^γ / Σσ^γ for the effective rank (official code: 1)",
            ),
            ParameterSpec(
                "solver",
                choice(NAME, "solver", SOLVERS),
                ParameterScope.SHARED,
                default="auto",
                description="`auto`: Gram fast path where exact to float32, else SVD; `svd`: always the full SVD",
            ),
        ),
    )
    usage = (
        "timber_spectral needs `base_model:` W_B (the Base) and exactly one other model, "
        "W_I (the Instruct model post-trained from it)."
    )

    def merge_group(self, group: TensorGroup, /, **parameters: Any) -> torch.Tensor:
        base, instruct = group.base, group.non_base[0]
        if base is None:  # the contract requires one; kept for type checkers
            raise WeightLevelConfigError(f"{NAME}: no base_model. {self.usage}")
        name = group.metadata.name or "<tensor>"
        keep = parameters["scope"] == "linear" and is_embedding_group(group)

        def outputs_for(lambdas: Sequence[float]) -> list[torch.Tensor]:
            return timber_tensors(
                base.tensor,
                instruct.tensor,
                lambdas,
                exponent=float(parameters["erank_exponent"]),
                solver=parameters["solver"],
                name=name,
                keep_instruct=keep,
            )

        lam = float(parameters["lambda"])
        share: SweepShare | None = parameters.get(SWEEP_SHARE)
        if share is None:
            return outputs_for([lam])[0]
        # A sweep: one decomposition serves every λ of it (methods.sweep_share).
        return share.take(name, lam, outputs_for)


timber_spectral_method = TimberSpectralMerge()
