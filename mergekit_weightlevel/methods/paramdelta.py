"""ParamΔ (arXiv 2504.21023): transplant post-training onto a new base.

    Θ_ParamΔ = Θ'_base + Σ_d weight_d · (Θ_post,d − Θ_base)

``base_model`` is Θ_base, the model with ``role: target`` is Θ'_base (it receives the
delta), every other model is a donor Θ_post. With one donor at weight 1 this is the
paper's formula; several donors mix several post-training deltas (our extension).
Every tensor is transferred, 1-D ones included, as the paper names no exclusion.
"""

from __future__ import annotations

from typing import Any

import torch
from mergekit.merge_methods.base import (
    BasePolicy,
    InputContract,
    MergeMethodSpec,
    ParameterScope,
    ParameterSpec,
    PerInputValues,
    TensorGroup,
)

from mergekit_weightlevel.checks.parameter_types import choice
from mergekit_weightlevel.methods.base import ROLES, WeightLevelMethod, compute_dtype, split_roles

NAME = "paramdelta"


class ParamDeltaMerge(WeightLevelMethod):
    """Θ'_base + Σ weight · (Θ_post − Θ_base): transplant post-training onto a new base."""

    spec = MergeMethodSpec(
        name=NAME,
        pretty_name="ParamΔ",
        reference_url="https://arxiv.org/abs/2504.21023",
        contract=InputContract(base=BasePolicy.REQUIRED, min_non_base=2),
        parameters=(
            ParameterSpec(
                "role",
                choice(NAME, "role", ROLES),
                ParameterScope.INPUT,
                default=None,
                description="`target` for Θ'_base (receives the delta); donors (Θ_post) need no role",
            ),
            ParameterSpec(
                "weight",
                float,
                ParameterScope.NON_BASE,
                default=1.0,
                description="scale of this donor's delta (Θ_post − Θ_base); ignored on the target",
            ),
        ),
    )
    usage = (
        "paramdelta needs `base_model:` Θ_base, one model with `parameters: {role: target}` "
        "(Θ'_base, the new base that receives the delta) and one or more donor models Θ_post "
        "(post-trained from Θ_base)."
    )

    def merge_group(self, group: TensorGroup, /, **parameters: Any) -> torch.Tensor:
        roles = split_roles(group, parameters["role"], method=NAME, usage=self.usage)
        weight: PerInputValues = parameters["weight"]
        return paramdelta(
            roles.target.tensor,
            roles.base.tensor,
            [(d.tensor, weight[d.id]) for d in roles.donors],
            compute_dtype=compute_dtype(group),
        )


def paramdelta(
    target: torch.Tensor,
    base: torch.Tensor,
    donors: list[tuple[torch.Tensor, float]],
    *,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """target + Σ weight · (donor − base), computed in ``compute_dtype``, returned in target's.

    One buffer is allocated: the first donor's difference, which then receives
    target + weight · difference in place (the same kernel as ``target.add(difference,
    alpha=weight)``, so the result is bit for bit that of the plain formula).
    """
    base_c = base.to(compute_dtype)
    out: torch.Tensor | None = None
    for donor, weight in donors:
        if weight == 0.0:
            continue
        difference = donor.to(compute_dtype) - base_c
        if out is None:
            out = torch.add(target.to(compute_dtype), difference, alpha=weight, out=difference)
        else:
            out.add_(difference, alpha=weight)
    if out is None:  # every weight is 0: the target unchanged
        return target.clone()
    return out.to(target.dtype)


paramdelta_method = ParamDeltaMerge()
