"""What Shadow-FT declares about itself: paper, roles, file origins, its sentence, its sweep axis."""

from __future__ import annotations

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
    setting_text,
)

NAME = "shadow_graft"


def _include_text(include: object) -> str:
    return f"`{include}`" if isinstance(include, str) else setting_text("include", include)


def describe(merge: MergeView) -> str:
    """The card's sentence: which tuning (or adapter) was grafted onto which Instruct."""
    base, target = merge.first("base"), merge.first(TARGET)
    base_name = base.name if base is not None else "its base"
    adapter = merge.first("parameter")
    if adapter is not None:
        scale = merge.text("weight", merge.parameters.get("adapter_weight"), default=1.0)
        return (
            f"Shadow-FT: the LoRA adapter {adapter.name}, trained on W_B ({base_name}), "
            f"grafted onto the Instruct W_I ({target.name}) with {scale}."
        )
    tuned = merge.all(OTHER)
    weights = [d.parameters.get("weight", 1.0) for d in tuned]
    named = " and ".join(
        d.name + ("" if is_plain_number(w, 1.0) else f" ({merge.text('α', w, default=1.0)})")
        for d, w in zip(tuned, weights)
    )
    unscaled = all(is_plain_number(w, 1.0) for w in weights)
    formula = "W_I⁺ = W_I + (W_B⁺ − W_B)" if unscaled else "W_I⁺ = W_I + Σ α·(W_B⁺ − W_B)"
    return (
        f"Shadow-FT: the tuning of W_B ({base_name}) into W_B⁺ ({named}) grafted onto the "
        f"Instruct W_I ({target.name}): {formula} on the tensors matching "
        f"{_include_text(merge.parameters.get('include'))}."
    )


DECLARATION = MethodDeclaration(
    name=NAME,
    display_name="Shadow-FT",
    paper=Paper(
        arxiv_id="2505.12716",
        title="Shadow-FT: Tuning Instruct via Base",
        tag="shadow-ft",
        # The citation the authors give in their official repository (wutaiqiang/Shadow-FT).
        bibtex="""@article{wu2025shadow,
  title={Shadow-FT: Tuning Instruct via Base},
  author={Wu, Taiqiang and Yang, Runming and Li, Jiayi and Hu, Pengfei and Wong, Ngai and Yang, Yujiu},
  journal={arXiv preprint arXiv:2505.12716},
  year={2025}
}""",
    ),
    roles=Roles(
        base=Role("W_B", "the Base the tuning was done on"),
        target=Role("W_I", "the Instruct that receives the update"),
        other=Role("W_B⁺", "the tuned Base"),
        parameter_input=("adapter", Role("LoRA", "the adapter trained on W_B, grafted onto W_I")),
    ),
    # apply_diff.py takes the tokenizer and config from the target.
    config_from=FileOrigin(TARGET, "the `role: target` model"),
    tokenizer_from=FileOrigin(TARGET, "the `role: target` model"),
    # α, the graft's scale (the paper's v3 sweeps it over 0.1–2.0).
    sweep=SweepAxis(
        "weight",
        "α",
        grid=(0.5, 1.0, 1.5, 2.0),
        per_donor=True,
        ends=(("Instruct W_I", TARGET),),  # α = 0
    ),
    describe=describe,
    aliases=("shadow_ft", "shadowft", "shadow", "shadow-ft"),
)
