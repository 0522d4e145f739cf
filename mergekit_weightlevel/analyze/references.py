"""The papers' published figures and every threshold the Reading uses, in one place.

Each figure carries its source (paper and table or figure). A threshold is either derived
from those figures (the largest σ any paper reports for a post-training pair) or marked as
this package's own rule, with why. Where no paper gives a range (He & Cao's α and rotation
gap, a continued pre-training's σ), there is no threshold, and the Reading draws no
verdict. docs/analyze.md ("The Reading") lists the same table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mergekit_weightlevel.analyze.columns import PAPERS


@dataclass(frozen=True)
class Source:
    """Where a figure or a rule comes from: a paper (a key of ``columns.PAPERS``) and the
    place in it; ``paper`` None marks a rule of this package (documented in docs/analyze.md)."""

    paper: str | None
    where: str

    def text(self) -> str:
        if self.paper is None:
            return f"this package's rule ({self.where})"
        return f"{PAPERS[self.paper][0]}, {self.where}"

    def to_dict(self) -> dict[str, str | None]:
        address = PAPERS[self.paper][1] if self.paper else None
        return {"paper": self.paper, "where": self.where, "text": self.text(), "url": address}


@dataclass(frozen=True)
class Published:
    """One figure a paper reports about one pair of models."""

    value: float
    about: str
    source: Source


SHADOW_FT_FIG1 = Source("shadow_ft", "Fig. 1")
INTERPOLATION_TABLE1 = Source("interpolation", "Table 1")
TIMBER_ERANK_EXAMPLES = Source("timber", "its Base / Instruct eRank comparison")
TIMBER_ALGORITHM = Source("timber", "the method; the official timber.py")
SHADOW_FT_CODE = Source("shadow_ft", "the official apply_diff.py")
HE_CAO_FINDINGS = Source("he_cao", "its findings on instruction tuning and long-CoT distillation")

#: σ between a base and its post-trained model as published (Shadow-FT's mean over the
#: decoder-layer tensors, ``sigma_v2.py``, which is what ``sigma_mean`` computes).
SHADOW_FT_SIGMA = (
    Published(0.004, "Qwen-2.5-32B Base vs Instruct", SHADOW_FT_FIG1),
    Published(0.018, "Llama-3.1-8B Base vs Instruct", SHADOW_FT_FIG1),
)
INTERPOLATION_SIGMA = (
    Published(0.0269, "Qwen3-4B Instruct-2507 vs Thinking-2507", INTERPOLATION_TABLE1),
    Published(0.0326, "Qwen3-4B Base vs hybrid", INTERPOLATION_TABLE1),
    Published(0.0562, "Qwen3-4B Base vs Instruct-2507", INTERPOLATION_TABLE1),
    Published(0.0638, "Qwen3-4B Base vs Thinking-2507", INTERPOLATION_TABLE1),
)
#: Shadow-FT's own words for the range of Fig. 1 (its abstract).
SHADOW_FT_WORDS = "highly similar weight values (i.e., less than 2% on average for Llama 3.1 8B)"

#: The σ range of Shadow-FT's Base / Instruct pairs, and the largest σ any of the papers
#: reports between two post-training relatives (derived from the figures above).
SHADOW_FT_SIGMA_RANGE = (
    min(p.value for p in SHADOW_FT_SIGMA),
    max(p.value for p in SHADOW_FT_SIGMA),
)
POST_TRAINING_SIGMA_MAX = max(p.value for p in (*SHADOW_FT_SIGMA, *INTERPOLATION_SIGMA))


@dataclass(frozen=True)
class PublishedErank:
    """eRank of one matrix in a Base and in its Instruct, as Timber reports it."""

    base: float
    instruct: float
    about: str

    @property
    def relative_change(self) -> float:
        return abs(self.instruct - self.base) / self.base


TIMBER_ERANK = (
    PublishedErank(2629, 2630, "Llama-3.1-8B layer 10 q_proj"),
    PublishedErank(3844, 3844, "Llama-3.1-8B layer 10 up_proj"),
    PublishedErank(3534, 3539, "Qwen3-14B layer 24 q_proj"),
)
#: The largest relative eRank change among Timber's examples ("almost unchanged"): 0.14 %.
TIMBER_ERANK_CHANGE_MAX = max(example.relative_change for example in TIMBER_ERANK)

#: Two independent sets of zero-mean weights have cosine ≈ 0 (within ~1/√n); a pair whose
#: matrices' mean |cosine| is below this is read as unrelated. This package's rule: no paper
#: gives the cosine of related pairs, but for Gaussian weights B = A + D, σ = 0.064 (the
#: largest published pair) means ‖D‖ ≈ 0.13 ‖A‖ and a cosine of about 0.99.
UNRELATED_COSINE_MAX = 0.1
UNRELATED_RULE = Source(None, "mean |cosine| of the matrices below 0.1")
#: σ of two independent Gaussian weight tensors of one scale: E|A − B| = √2·E|A|, so
#: σ = √2 / 2 (arithmetic, quoted for orientation; not a threshold).
INDEPENDENT_GAUSSIAN_SIGMA = math.sqrt(2) / 2

#: The λ of the Timber preview: 0 (hard truncation), 0.2 (the paper's default), 0.5.
TIMBER_PREVIEW_LAMBDAS = (0.0, 0.2, 0.5)

#: He & Cao's W_o signature is hinted at when at least this share of the o_proj matrices are
#: α outliers above the rest of the model (``aggregate.alpha_outliers``). This package's rule:
#: the paper reports the anomaly for W_o as a whole, not a count.
W_O_SIGNATURE_SHARE = 0.5
W_O_RULE = Source(None, "half the o_proj matrices or more are α outliers above the model")

#: The outlier rule of ``aggregate.stands_out`` (Iglewicz & Hoaglin's |z| > 3.5, and more than
#: 1 % from the median, this package's floor against flagging noise).
OUTLIER_RULE = Source(None, "robust z > 3.5 (Iglewicz & Hoaglin) and more than 1 % off the median")
