"""Timber (arXiv 2509.23595): refine an Instruct model by partly reverting it towards its Base.

Its parts, bottom up: ``declaration`` (what the package knows about Timber: paper, roles,
file origins, the card's sentence, the sweep axis), ``decomposition`` (how one delta matrix
splits at k = ⌈eRank⌉, by SVD or the float64 Gram route), ``kernel`` (W = W_B + P_k(D) +
λ·(D − P_k(D)) per tensor, stacked experts matrix by matrix), ``method`` (the mergekit
spec; in a λ sweep its kernels share one decomposition per tensor, ``methods.sweep_share``).
"""

from mergekit_weightlevel.methods.timber.decomposition import (
    GRAM_MAX_SPLIT_ERROR,
    NAME,
    GramSpectrum,
    SpectralSplit,
    gram_is_accurate,
    gram_official_k,
    gram_spectrum,
    gram_split,
    kept_part,
    official_effective_rank,
    split_delta,
    svd_split,
)
from mergekit_weightlevel.methods.timber.kernel import timber_spectral, timber_tensors
from mergekit_weightlevel.methods.timber.method import (
    SCOPES,
    SOLVERS,
    TimberSpectralMerge,
    is_embedding_group,
    timber_spectral_method,
)

__all__ = [
    "GRAM_MAX_SPLIT_ERROR",
    "NAME",
    "SCOPES",
    "SOLVERS",
    "GramSpectrum",
    "SpectralSplit",
    "TimberSpectralMerge",
    "gram_is_accurate",
    "gram_official_k",
    "gram_spectrum",
    "gram_split",
    "is_embedding_group",
    "kept_part",
    "official_effective_rank",
    "split_delta",
    "svd_split",
    "timber_spectral",
    "timber_spectral_method",
    "timber_tensors",
]
