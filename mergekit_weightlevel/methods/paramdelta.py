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
from mergekit_weightlevel.methods.declaration import (
    OTHER,
    TARGET,
    FileOrigin,
    MergeView,
    MethodDeclaration,
    Paper,
    Role,
    Roles,
    SweepAxis,
    is_plain_number,
)

NAME = "paramdelta"


def describe(merge: MergeView) -> str:
    """The card's sentence: which post-training went onto which new base."""
    base, target, donors = merge.first("base"), merge.first(TARGET), merge.all(OTHER)
    weights = [d.parameters.get("weight", 1.0) for d in donors]
    if len(donors) == 1 and is_plain_number(weights[0], 1.0):
        moved = f"Θ_post ({donors[0].name})"
        formula = "Θ = Θ'_base + (Θ_post − Θ_base)"
    else:
        moved = " and ".join(
            f"{d.name} ({merge.text('weight', w, default=1.0)})" for d, w in zip(donors, weights)
        )
        formula = "Θ = Θ'_base + Σ weight·(Θ_post − Θ_base)"
    return (
        f"ParamΔ: the post-training of {moved} transplanted onto Θ'_base ({target.name}), "
        f"{formula} with Θ_base = {base.name}."
    )


DECLARATION = MethodDeclaration(
    name=NAME,
    display_name="ParamΔ",
    paper=Paper(
        arxiv_id="2504.21023",
        title="ParamΔ for Direct Weight Mixing: Post-Train Large Language Model at Zero Cost",
        tag="paramdelta",
        # The authors of arXiv 2504.21023 (ICLR 2025); ParamΔ has no official repository.
        bibtex="""@article{cao2025paramdelta,
  title={Param$\\Delta$ for Direct Weight Mixing: Post-Train Large Language Model at Zero Cost},
  author={Cao, Sheng and Wu, Mingrui and Prasad, Karthik and Tian, Yuandong and Liu, Zechun},
  journal={arXiv preprint arXiv:2504.21023},
  year={2025}
}""",
    ),
    roles=Roles(
        base=Role("Θ_base", "the base Θ_post was post-trained from"),
        target=Role("Θ'_base", "the new base that receives the post-training"),
        other=Role("Θ_post", "the post-trained model whose delta is transplanted"),
    ),
    config_from=FileOrigin(TARGET, "the `role: target` model"),
    tokenizer_from=FileOrigin(OTHER, "the (first) donor Θ_post"),
    # Users scale the transplanted delta: the donors' `weight`.
    sweep=SweepAxis(
        "weight",
        "weight",
        grid=(0.25, 0.5, 0.75, 1.0),
        per_donor=True,
        # weight 0 is the new base itself; the paper reads the share of Θ_post's score recovered
        ends=(("new base Θ'_base", TARGET), ("post-trained Θ_post", OTHER)),
    ),
    describe=describe,
    aliases=("param_delta", "paramΔ", "param-delta"),
)


class ParamDeltaMerge(WeightLevelMethod):
    """Θ'_base + Σ weight · (Θ_post − Θ_base): transplant post-training onto a new base."""

    declaration = DECLARATION
    spec = MergeMethodSpec(
        name=NAME,
        pretty_name=DECLARATION.display_name,
        reference_url=DECLARATION.paper.url,
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
