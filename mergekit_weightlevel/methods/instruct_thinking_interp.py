"""Instruct ↔ Thinking model interpolation (arXiv 2510.10977, "Revisiting Model Interpolation
for Efficient Reasoning").

    Θ = λ · Θ_Thinking + (1 − λ) · Θ_Instruct

``base_model`` is the Instruct model (λ = 0), the one other model is the Thinking model
(λ = 1). Every tensor is interpolated, embeddings and norms included, as the official
``mi.py`` does. Module-wise and layer-wise variants (the paper's ablations) are mergekit
``filter``s, gradients and ``slices`` on ``lambda``; see ``docs/methods/``.
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
    TensorGroup,
)

from mergekit_weightlevel.checks.parameter_types import required_bounded_float
from mergekit_weightlevel.methods.base import WeightLevelMethod, compute_dtype
from mergekit_weightlevel.methods.declaration import (
    OTHER,
    FileOrigin,
    MergeView,
    MethodDeclaration,
    Paper,
    Role,
    Roles,
    SweepAxis,
)

NAME = "instruct_thinking_interp"


def describe(merge: MergeView) -> str:
    """The card's sentence: the formula with the two models and λ in every form it takes."""
    instruct, thinking = merge.first("base"), merge.first(OTHER)
    lam = merge.text("λ", merge.parameters.get("lambda"))
    return (
        f"Instruct/Thinking interpolation: Θ = λ·Θ_Thinking ({thinking.name}) + "
        f"(1 − λ)·Θ_Instruct ({instruct.name}) with {lam}."
    )


DECLARATION = MethodDeclaration(
    name=NAME,
    display_name="Instruct-Thinking Model Interpolation",
    paper=Paper(
        arxiv_id="2510.10977",
        title="Revisiting Model Interpolation for Efficient Reasoning",
        tag="model-interpolation",
        # The citation the authors give in their official repository (wutaiqiang/MI).
        bibtex="""@article{wu2025revisiting,
  title={Revisiting Model Interpolation for Efficient Reasoning},
  author={Wu, Taiqiang and Yang, Runming and Liu, Tao and Wang, Jiahao and Wong, Ngai},
  journal={arXiv preprint arXiv:2510.10977},
  year={2025}
}""",
    ),
    roles=Roles(
        base=Role("Θ_Instruct", "the λ = 0 end"),
        other=Role("Θ_Thinking", "the λ = 1 end"),
    ),
    # mi.py copies the tokenizer, chat template and configs from the Thinking model.
    config_from=FileOrigin(OTHER, "the Thinking model"),
    tokenizer_from=FileOrigin(OTHER, "the Thinking model"),
    # The paper's own evaluation grid.
    sweep=SweepAxis(
        "lambda",
        "λ",
        grid=(0.2, 0.4, 0.45, 0.5, 0.55, 0.6, 0.8),
        ends=(("Instruct", "base"), ("Thinking", OTHER)),  # λ = 0 and λ = 1
    ),
    describe=describe,
    aliases=("mi", "model_interpolation", "thinking_interp", "interp", "interpolation"),
    decoding_note="The paper decodes interpolated models with the Thinking model's sampling "
    "settings (temperature 0.6, top-p 0.95).",
)


class InstructThinkingInterpMerge(WeightLevelMethod):
    """λ·Θ_Thinking + (1 − λ)·Θ_Instruct: dial a model between short answers and long CoT."""

    declaration = DECLARATION

    spec = MergeMethodSpec(
        name=NAME,
        pretty_name=DECLARATION.display_name,
        reference_url=DECLARATION.paper.url,
        contract=InputContract(base=BasePolicy.REQUIRED, min_non_base=1, max_non_base=1),
        parameters=(
            ParameterSpec(
                "lambda",
                required_bounded_float(NAME, "lambda", ge=0.0, le=1.0),
                ParameterScope.SHARED,
                # None means "not given": the validator turns it into an error naming
                # the method (mergekit's own required-parameter error does not).
                default=None,
                description="weight of the Thinking model: 0 = Instruct (base_model), 1 = Thinking",
            ),
        ),
    )
    usage = (
        "instruct_thinking_interp needs `base_model:` the Instruct model, exactly one other "
        "model (the Thinking model) and `parameters: {lambda: ...}` in [0, 1]."
    )

    def merge_group(self, group: TensorGroup, /, **parameters: Any) -> torch.Tensor:
        (thinking,) = group.non_base  # the contract guarantees exactly one
        return interpolate(
            group.base.tensor,
            thinking.tensor,
            parameters["lambda"],
            compute_dtype=compute_dtype(group),
        )


def interpolate(
    instruct: torch.Tensor,
    thinking: torch.Tensor,
    lam: float,
    *,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """λ·thinking + (1 − λ)·instruct in ``compute_dtype``, returned in instruct's dtype.

    Written as (1 − λ)·instruct, then + λ·thinking with one fused add: the same
    operations as mergekit's ``linear`` with weights (1 − λ, λ), so both agree to float
    rounding (bit for bit on the CPUs we test on), and only one float32 buffer is made.
    The endpoints return an input unchanged, so λ = 0 / 1 reproduce Instruct / Thinking
    exactly (even where a tensor holds inf, which 0·inf would turn into NaN).
    """
    if lam == 0.0:
        return instruct
    if lam == 1.0:
        return thinking.to(instruct.dtype)
    instruct_c = instruct.to(compute_dtype)
    # torch.mul allocates the one buffer and scales in the same pass (no copy, then scale).
    out = instruct_c.mul_(1.0 - lam) if instruct_c is not instruct else instruct.mul(1.0 - lam)
    out.add_(thinking.to(compute_dtype), alpha=lam)
    return out.to(instruct.dtype)


instruct_thinking_interp_method = InstructThinkingInterpMerge()
