"""The Reading of a pair: what its numbers mean against the papers, with figures and sources.

Per pair, from the summary and the per-tensor records only (no second pass over the weights):

1. whether it looks like a post-training pair: σ against the published pairs, the eRank
   change against Timber's examples, α and the rotation gap against He & Cao's description;
2. its signature: o_proj's α against the other modules' (He & Cao's long-CoT hint);
3. what ParamΔ, Shadow-FT and Timber would do to it (``previews``);
4. the layers and module types whose σ, α or gap stand out (``aggregate.stands_out``).

Every statement carries its figures and its sources; thresholds live in ``references``.
Where the papers give no range, the Reading states the figure and draws no verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any, Protocol

from mergekit_weightlevel.analyze.aggregate import MIN_GROUP_FOR_Z, stands_out
from mergekit_weightlevel.analyze.columns import SIGMA, percent
from mergekit_weightlevel.analyze.previews import (
    TimberPreview,
    param_delta_preview,
    shadow_ft_preview,
    timber_preview,
)
from mergekit_weightlevel.analyze.records import TensorRecord
from mergekit_weightlevel.analyze.references import (
    HE_CAO_FINDINGS,
    INDEPENDENT_GAUSSIAN_SIGMA,
    INTERPOLATION_SIGMA,
    INTERPOLATION_TABLE1,
    OUTLIER_RULE,
    POST_TRAINING_SIGMA_MAX,
    SHADOW_FT_CODE,
    SHADOW_FT_FIG1,
    SHADOW_FT_SIGMA,
    SHADOW_FT_SIGMA_RANGE,
    SHADOW_FT_WORDS,
    TIMBER_ALGORITHM,
    TIMBER_ERANK,
    TIMBER_ERANK_CHANGE_MAX,
    TIMBER_ERANK_EXAMPLES,
    UNRELATED_COSINE_MAX,
    UNRELATED_RULE,
    W_O_RULE,
    W_O_SIGNATURE_SHARE,
    Published,
    Source,
)

#: The regimes a pair can be given; None when it fits none the papers describe.
REGIMES = ("identical", "post-training", "unrelated")
#: ``summary.sigma_mean_scope`` in words.
SCOPE_WORDS = {
    "model.layers.<n>": "decoder-layer tensors",
    "layer-indexed": "layer-indexed tensors",
    "all": "tensors (no layer names found)",
    "none": "tensors",
}
#: The module type He & Cao single out (the attention output projection, W_o).
OUTPUT_PROJECTION = "o"


class PairData(Protocol):
    """What the Reading needs of a compared pair (``pair.PairReport`` is one)."""

    metrics: tuple[str, ...]
    tensors: list[TensorRecord]
    skipped: list[dict[str, str]]
    only_in_a: list[str]
    only_in_b: list[str]

    @property
    def summary(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Statement:
    """One sentence of the Reading, with its figures in the text and where they come from."""

    topic: str
    text: str
    sources: tuple[Source, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "text": self.text,
            "sources": [source.to_dict() for source in self.sources],
        }


@dataclass
class Reading:
    """The Reading of one pair (``PairReport.reading``); ``to_dict`` is its JSON."""

    regime: str | None
    statements: list[Statement] = field(default_factory=list)
    timber: TimberPreview | None = None
    shadow_ft: dict[str, Any] | None = None
    param_delta: dict[str, Any] | None = None
    signature: dict[str, Any] | None = None
    outliers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "regime": self.regime,
            "statements": [statement.to_dict() for statement in self.statements],
            "timber_preview": self.timber.to_dict() if self.timber else None,
            "shadow_ft": self.shadow_ft,
            "param_delta": self.param_delta,
            "signature": self.signature,
            "outliers": self.outliers,
        }


def read_pair(pair: PairData) -> Reading:
    """The Reading of ``pair`` (see the module docstring)."""
    regime, statements = _regime(pair)
    reading = Reading(regime=regime, statements=statements)
    if "erank" in pair.metrics:
        reading.statements += _erank_change(pair.tensors)
    if "structure" in pair.metrics:
        reading.statements += _scale_and_rotation(pair.tensors)
        reading.signature, signature = _signature(pair)
        reading.statements += signature
    reading.timber = timber_preview(pair.tensors)
    if reading.timber is not None:
        reading.statements.append(_timber_statement(reading.timber))
    reading.param_delta = param_delta_preview(
        pair.summary, pair.skipped, pair.only_in_a, pair.only_in_b
    )
    reading.statements.append(_param_delta_statement(reading.param_delta))
    reading.shadow_ft = shadow_ft_preview(pair.tensors)
    if reading.shadow_ft is not None:
        reading.statements.append(_shadow_ft_statement(reading.shadow_ft))
    reading.outliers = _group_outliers(pair)
    reading.statements += [_outlier_statement(item) for item in reading.outliers]
    return reading


# ------------------------------------------------------------------ 1. a post-training pair?


def _matrix_cosine(tensors: list[TensorRecord]) -> tuple[float | None, int]:
    """Mean |cosine| of the ≥2-D tensors (norms are left out: trained norms of two unrelated
    models both sit near 1 and would look alike)."""
    values = [abs(r.cosine) for r in tensors if len(r.shape) >= 2]
    return (sum(values) / len(values), len(values)) if values else (None, 0)


def _regime(pair: PairData) -> tuple[str | None, list[Statement]]:
    s = pair.summary
    sigma, scope, count = s["sigma_mean"], s["sigma_mean_scope"], s["sigma_mean_tensors"]
    cosine, matrices = _matrix_cosine(pair.tensors)
    measured = f"σ {SIGMA.cell(sigma)} (Shadow-FT's mean over {count} {SCOPE_WORDS[scope]})"
    shadow_low, shadow_high = SHADOW_FT_SIGMA_RANGE
    shadow = _span(SHADOW_FT_SIGMA)
    published = _span(INTERPOLATION_SIGMA)
    if sigma is None:  # nothing compared (analyze_models refuses such a pair)
        return None, []
    if s["sigma_global"] == 0:  # every compared tensor, not only the decoder layers'
        return "identical", [Statement("regime", f"{measured}: A and B are identical.")]
    if cosine is not None and cosine < UNRELATED_COSINE_MAX:
        text = (
            f"{measured} and a mean |cosine| of {cosine:.3f} over the {matrices} matrices: what "
            "two independent sets of weights give (cosine ≈ 0; σ ≈ "
            f"{INDEPENDENT_GAUSSIAN_SIGMA:.2f} for Gaussian weights of one scale, by "
            "arithmetic), not a base and its post-trained model."
        )
        return "unrelated", [
            Statement("regime", text, (UNRELATED_RULE,)),
            _premise(f"A and B share no weights to speak of (cosine {cosine:.3f})"),
        ]
    if sigma <= shadow_high:
        where = "below" if sigma < shadow_low else "within"
        text = (
            f"{measured} is {where} the range Shadow-FT reports between Base and Instruct "
            f"({shadow}; '{SHADOW_FT_WORDS}'): as close as those post-training pairs."
        )
        return "post-training", [Statement("regime", text, (SHADOW_FT_FIG1,))]
    if sigma <= POST_TRAINING_SIGMA_MAX:
        text = (
            f"{measured} is above Shadow-FT's Base / Instruct pairs ({shadow}) and within the "
            f"post-training pairs of the interpolation paper ({published}): as close as those."
        )
        return "post-training", [Statement("regime", text, (SHADOW_FT_FIG1, INTERPOLATION_TABLE1))]
    related = (
        f", and the matrices' mean |cosine| {cosine:.3f} is far from that of independent "
        "weights (≈ 0)"
        if cosine is not None
        else ""
    )
    text = (
        f"{measured} is above every published post-training pair (largest "
        f"{POST_TRAINING_SIGMA_MAX:g}; Shadow-FT {shadow}; interpolation paper {published})"
        f"{related}: a regime the papers do not describe, so no label."
    )
    return None, [
        Statement("regime", text, (SHADOW_FT_FIG1, INTERPOLATION_TABLE1, UNRELATED_RULE)),
        _premise(f"its delta is larger than any the papers measured (σ {SIGMA.cell(sigma)})"),
    ]


def _span(published: tuple[Published, ...]) -> str:
    """'0.004 Qwen-2.5-32B … to 0.018 Llama-3.1-8B …': the smallest and largest figure."""
    ordered = sorted(published, key=lambda p: p.value)
    low, high = ordered[0], ordered[-1]
    return f"{low.value:g} {low.about} to {high.value:g} {high.about}"


def _premise(why: str) -> Statement:
    return Statement(
        "premise",
        "ParamΔ, Shadow-FT and Timber all carry or edit the delta between a base and its "
        f"post-trained model, which the papers find small ('{SHADOW_FT_WORDS}'); here {why}, "
        "so the methods' premise does not hold or is untested.",
        (SHADOW_FT_FIG1,),
    )


def _erank_change(tensors: list[TensorRecord]) -> list[Statement]:
    changes = [
        (abs(r.erank["b"] - r.erank["a"]) / r.erank["a"], r.name)
        for r in tensors
        if r.erank is not None and r.erank["a"] > 0
    ]
    if not changes:
        return []
    typical = median(change for change, _ in changes)
    largest, where = max(changes)
    examples = ", ".join(f"{e.base:g} → {e.instruct:g} ({e.about})" for e in TIMBER_ERANK)
    verdict = (
        "as unchanged as in Timber's examples"
        if typical <= TIMBER_ERANK_CHANGE_MAX
        else "more than in Timber's examples"
    )
    text = (
        f"The weights' eRank changes by {percent(typical)} from A to B (median over "
        f"{len(changes)} matrices; at most {percent(largest)}, {where}): {verdict}, where Base "
        f"and Instruct eRank are 'almost the same' ({examples}; at most "
        f"{percent(TIMBER_ERANK_CHANGE_MAX)})."
    )
    return [Statement("erank", text, (TIMBER_ERANK_EXAMPLES,))]


def _quantile(values: list[float], level: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(level * len(ordered)))]


def _scale_and_rotation(tensors: list[TensorRecord]) -> list[Statement]:
    fields = [r.structure for r in tensors if r.structure is not None]
    if not fields:
        return []
    alphas = [f["alpha"] for f in fields]
    text = (
        f"Over {len(fields)} matrices: α {median(alphas):.4f} (median; 5–95 %: "
        f"{_quantile(alphas, 0.05):.4f}–{_quantile(alphas, 0.95):.4f}), spread of the "
        f"singular-value ratios cv {median(f['cv'] for f in fields):.3g}, rotation gap "
        f"{median(f['consistency_gap'] for f in fields):.3f}, reconstruction error "
        f"{median(f['reconstruction_error'] for f in fields):.3g} (medians). He & Cao describe "
        "post-training as a near-uniform scaling of the singular values and one rotation "
        "shared by the left and right singular vectors (small cv, gap and reconstruction "
        "error); they give no numeric range for these, so no verdict is drawn."
    )
    return [Statement("structure", text, (HE_CAO_FINDINGS,))]


# ------------------------------------------------------------------ 2. the pair's signature


def _signature(pair: PairData) -> tuple[dict[str, Any] | None, list[Statement]]:
    """o_proj's α against the other modules' (per layer and overall), and He & Cao's hint."""
    layered = [r for r in pair.tensors if r.structure is not None and r.layer is not None]
    outputs = [r for r in layered if r.module_type == OUTPUT_PROJECTION]
    others = [r for r in layered if r.module_type != OUTPUT_PROJECTION]
    if not outputs or not others:
        return None, []
    o_alpha = median(r.structure["alpha"] for r in outputs)
    other_alpha = median(r.structure["alpha"] for r in others)
    per_layer = []
    for layer in sorted({r.layer for r in outputs}):
        o = [r.structure["alpha"] for r in outputs if r.layer == layer]
        rest = [r.structure["alpha"] for r in others if r.layer == layer]
        if rest:
            per_layer.append(
                {
                    "layer": layer,
                    "alpha_o": median(o),
                    "alpha_others": median(rest),
                    "o_highest": max(o) > max(rest),
                }
            )
    flagged = {
        item["name"]
        for item in pair.summary["alpha_outliers"]
        if item["module_type"] == OUTPUT_PROJECTION
        and "model" in item["flagged_against"]
        and item["alpha"] > other_alpha
    }
    share = len(flagged) / len(outputs)
    highest = sum(item["o_highest"] for item in per_layer)
    figures = (
        f"o_proj's α {o_alpha:.4f} against {other_alpha:.4f} for the other modules (medians); "
        f"o_proj has the highest α of its layer in {highest} of {len(per_layer)} layers, and "
        f"{len(flagged)} of its {len(outputs)} matrices are α outliers above the model"
    )
    if share >= W_O_SIGNATURE_SHARE:
        hint = "long-CoT distillation"
        text = (
            f"{figures}: the pattern He & Cao report after long-CoT distillation (W_o's singular "
            "values scaled anomalously high) and not after instruction tuning. A hint from α "
            "alone, not a verdict."
        )
    elif not flagged and abs(o_alpha / other_alpha - 1) <= 0.01:
        hint = "no W_o anomaly"
        text = (
            f"{figures}: no sign of the W_o anomaly He & Cao report after long-CoT distillation "
            "(they find none after instruction tuning)."
        )
    else:
        hint = None
        text = f"{figures}; He & Cao's W_o pattern is neither clearly there nor absent."
    signature = {
        "alpha_o": o_alpha,
        "alpha_others": other_alpha,
        "o_matrices": len(outputs),
        "o_outliers": len(flagged),
        "hint": hint,
        "per_layer": per_layer,
    }
    return signature, [Statement("signature", text, (HE_CAO_FINDINGS, W_O_RULE))]


# ------------------------------------------------------------------ 3. the methods, before merging


def _timber_statement(preview: TimberPreview) -> Statement:
    distances = ", ".join(
        f"{distance:.3g} at λ = {lam:g}"
        for lam, distance in zip(preview.lambdas, preview.distances)
    )
    text = (
        "Timber (A as Base, B as Instruct) keeps the k = ⌈eRank(ΔW)⌉ leading directions of "
        f"each matrix's delta (median k / rank {preview.median_k_ratio:.3f} over "
        f"{preview.matrices} matrices) and scales the rest by λ; the rest holds "
        f"{percent(preview.tail_share)} of ‖ΔW‖_F, so the output moves from B by "
        f"(1 − λ)·‖tail‖: relative distance ‖W_λ − B‖ / ‖B‖ {distances}, over the "
        f"{preview.tensors} compared tensors."
    )
    return Statement("timber", text, (TIMBER_ALGORITHM,))


#: What a vocabulary tensor of another size needs before ParamΔ can add a delta to it.
VOCABULARY_NOTE = "vocabulary: aligned by a tokenizer section"


def _param_delta_statement(preview: dict[str, Any]) -> Statement:
    sigma = f"σ {SIGMA.cell(preview['sigma_mean'])} between them"
    differ = preview["shape_differs"]
    if differ:
        names = "; ".join(
            f"{item['name']} ({VOCABULARY_NOTE if item['vocabulary'] else 'cannot take the delta'})"
            for item in differ[:3]
        )
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        shapes = f"{len(differ)} tensors differ in shape: {names}{more}"
    else:
        shapes = "every tensor they share has one shape in both"
    missing = ""
    if preview["only_in_a"] or preview["only_in_b"]:
        missing = f"; {preview['only_in_a']} tensors only in A, {preview['only_in_b']} only in B"
    text = f"If A and B are ParamΔ's old and new base: {sigma}; {shapes}{missing}."
    return Statement("param_delta", text)


def _shadow_ft_statement(preview: dict[str, Any]) -> Statement:
    left_out = ", ".join(preview["left_out_module_types"]) or "none"
    text = (
        f"Shadow-FT's default include selects {preview['selected_tensors']} of the "
        f"{preview['tensors']} compared tensors, holding {percent(preview['energy_share'])} of "
        f"this pair's ‖ΔW‖²_F ({percent(preview['abs_share'])} of Σ|ΔW|); the delta of the "
        f"others (module types {left_out}) would not be grafted."
    )
    return Statement("shadow_ft", text, (SHADOW_FT_CODE,))


# ------------------------------------------------------------------ 4. what stands out

#: The per-group metrics whose outliers the Reading names, with their display labels.
OUTLIER_METRICS = {"sigma": "σ", "alpha": "α", "consistency_gap": "rotation gap"}


def _group_outliers(pair: PairData) -> list[dict[str, Any]]:
    """Layers and module types whose mean σ, α or gap stands out from their siblings'."""
    found = []
    summary = pair.summary
    for group, title in (("by_layer", "layer"), ("by_module", "module type")):
        for metric in OUTLIER_METRICS:
            keyed = [
                (key, stats[metric]) for key, stats in summary[group].items() if metric in stats
            ]
            if len(keyed) < MIN_GROUP_FOR_Z:
                continue
            scores, flags, middle = stands_out([value for _, value in keyed])
            for (key, value), score, flagged in zip(keyed, scores, flags):
                if flagged:
                    found.append(
                        {"group": title, "key": key, "metric": metric, "value": value,
                         "median": middle, "z": score}
                    )  # fmt: skip
    return found


def _outlier_statement(item: dict[str, Any]) -> Statement:
    label = OUTLIER_METRICS[item["metric"]]
    fmt = SIGMA.cell if item["metric"] == "sigma" else (lambda v: f"{v:.4f}")
    text = (
        f"{item['group'].capitalize()} {item['key']} stands out in {label}: "
        f"{fmt(item['value'])} against the {item['group']}s' median {fmt(item['median'])} "
        f"(robust z {item['z']:+.1f})."
    )
    return Statement("outlier", text, (OUTLIER_RULE,))
