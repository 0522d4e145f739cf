"""The numbers the methods and ``analyze`` share, one subject per module: σ and its companions
from one blocked pass over a pair (``pair_statistics``, its blocks shared out between threads
by ``spans``), the effective rank (``effective_rank``), He & Cao's spectral structure
(``structure``, ``structure_gram``), robust z-scores (``robust``), decompositions that do not
fail quietly and the Gram matrices (``spectral``), and how many threads the kernels use
(``threads``)."""
