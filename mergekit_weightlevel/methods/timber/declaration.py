"""What Timber declares about itself: paper, roles, file origins, its sentence, its sweep axis."""

from __future__ import annotations

from mergekit_weightlevel.methods.declaration import (
    OTHER,
    FileOrigin,
    MergeView,
    MethodDeclaration,
    Paper,
    Role,
    Roles,
    SweepAxis,
    is_plain_number,
)

NAME = "timber_spectral"
#: The paper's best λ, the default of the method's `lambda`.
DEFAULT_LAMBDA = 0.2


def describe(merge: MergeView) -> str:
    """The card's sentence: how the tail of the Instruct's delta was treated."""
    base, instruct = merge.first("base"), merge.first(OTHER)
    lam = merge.parameters.get("lambda")
    if is_plain_number(lam, 0.0):
        tail = "cut off (λ = 0, hard truncation beyond ⌈eRank⌉)"
    else:
        tail = f"scaled by {merge.text('λ', lam, default=DEFAULT_LAMBDA)}"
    return (
        f"Timber: {instruct.name} with the spectral tail of its delta from {base.name} {tail}; "
        "the top ⌈eRank⌉ singular directions of each W_I − W_B are kept."
    )


DECLARATION = MethodDeclaration(
    name=NAME,
    display_name="Timber",
    paper=Paper(
        arxiv_id="2509.23595",
        title="Timber: Training-free Instruct Model Refining with Base via Effective Rank",
        tag="timber",
        # The citation the authors give in their official repository (wutaiqiang/Timber).
        bibtex="""@article{wu2025timber,
  title={Timber: Training-free Instruct Model Refining with Base via Effective Rank},
  author={Wu, Taiqiang and Yang, Runming and Liu, Tao and Wang, Jiahao and Xu, Zenan and Wong, Ngai},
  journal={arXiv preprint arXiv:2509.23595},
  year={2025}
}""",
    ),
    roles=Roles(
        base=Role("W_B", "the Base"),
        other=Role("W_I", "the Instruct that is refined"),
    ),
    # timber.py copies every extra file from the Instruct.
    config_from=FileOrigin(OTHER, "the Instruct model W_I"),
    tokenizer_from=FileOrigin(OTHER, "the Instruct model W_I"),
    # The paper's best is λ = 0.2; users try 0 (hard truncation) to 0.4.
    sweep=SweepAxis(
        "lambda",
        "λ",
        grid=(0.0, 0.1, 0.2, 0.3, 0.4),
        ends=(("Instruct", OTHER),),  # λ = 1
    ),
    describe=describe,
    aliases=("timber",),
)
