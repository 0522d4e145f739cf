"""σ and its companions of one pair of same-shaped tensors, from one blocked pass.

- ``sigma``: the relative weight gap of the Shadow-FT paper, Σ|A − B| / (Σ|A| + Σ|B|).
  Not WeightWatcher's ``sigma`` (a power-law fit error), an unrelated quantity.
- ``pair_statistics``: every float64 sum behind σ, the relative Frobenius gap, the cosine
  and Timber's sparsity count, read-bound.

Sums are accumulated in float64 so that the numbers do not depend on the input dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def sigma_parts(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(Σ|A − B|, Σ|A| + Σ|B|): numerator and denominator of ``sigma``, for ratio-of-sums aggregation."""
    a64 = a.to(torch.float64)
    b64 = b.to(torch.float64)
    return float((a64 - b64).abs().sum()), float(a64.abs().sum() + b64.abs().sum())


def sigma(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative weight gap Σ|A − B| / (Σ|A| + Σ|B|); 0 for identical tensors, 0 when both are zero."""
    if a.shape != b.shape:
        raise ValueError(
            f"sigma needs tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    numerator, denominator = sigma_parts(a, b)
    return numerator / denominator if denominator > 0 else 0.0


#: Elements per block of ``pair_statistics`` on the CPU: the block of each input, the
#: difference, one term and its float64 copy stay in a core's L2 cache, and blocks are large
#: enough that per-operation overhead does not dominate.
PAIR_STATISTICS_BLOCK = 1 << 16
#: Elements per block on a GPU: few launches, the temporaries a few hundred MB at most.
PAIR_STATISTICS_DEVICE_BLOCK = 1 << 24


@dataclass(frozen=True)
class PairStatistics:
    """The float64 sums behind σ, the relative Frobenius gap and the cosine of two tensors."""

    abs_diff: float  # Σ|A − B|
    abs_a: float  # Σ|A|
    abs_b: float  # Σ|B|
    sq_diff: float  # Σ(A − B)²
    sq_a: float  # Σ A²
    sq_b: float  # Σ B²
    dot: float  # Σ A·B
    #: Elements with |A − B| < ``threshold`` of ``pair_statistics`` (Timber's sparsity count).
    unchanged: int = 0
    elements: int = 0

    @property
    def sparsity(self) -> float:
        """Share of elements with |A − B| below the threshold (0 for empty tensors)."""
        return self.unchanged / self.elements if self.elements else 0.0

    @property
    def sigma(self) -> float:
        """Σ|A − B| / (Σ|A| + Σ|B|), as ``sigma``."""
        denominator = self.abs_a + self.abs_b
        return self.abs_diff / denominator if denominator > 0 else 0.0

    @property
    def rel_frobenius(self) -> float:
        """‖B − A‖_F / ‖A‖_F; inf when A = 0 and B ≠ 0, 0 when both are zero."""
        if self.sq_a > 0:
            return math.sqrt(self.sq_diff) / math.sqrt(self.sq_a)
        return 0.0 if self.sq_diff == 0 else math.inf

    @property
    def cosine(self) -> float:
        """⟨A, B⟩ / (‖A‖_F ‖B‖_F) over the flattened tensors; 0 if either is zero."""
        norms = math.sqrt(self.sq_a) * math.sqrt(self.sq_b)
        return self.dot / norms if norms > 0 else 0.0


#: ``pair_statistics`` counts an element as unchanged when |A − B| is below this (Timber's
#: ``calculate_sparsity_ratio`` threshold).
SPARSITY_THRESHOLD = 1e-5


def pair_statistics(
    a: torch.Tensor, b: torch.Tensor, *, threshold: float = SPARSITY_THRESHOLD
) -> PairStatistics:
    """Every sum of σ, Frobenius gap and cosine, and the sparsity count, in one blocked pass.

    Element-wise work (A − B, the squares, A·B, absolute values) runs in float32 (float64
    for float64 inputs) on blocks of ``PAIR_STATISTICS_BLOCK`` elements; every sum is
    accumulated in float64. Each term is thus rounded at most once, to float32: the sums
    of same-sign terms are within 2⁻²⁴ ≈ 6e-8 relative of the all-float64 computation
    (bf16 / fp16 inputs: exact products, and almost always exact differences). Measured on
    the 120M benchmark pair: σ within 1e-10, cosine within 2e-9 of float64, at 1.7× less
    time than converting every block to float64, which made ``analyze --metrics sigma``
    compute-bound rather than read-bound.

    On the CPU the blocks are shared out between torch's threads, a span of whole blocks
    each, every operation single-threaded (``spans.map_spans``), and every temporary is
    allocated once per span; the blocks' sums are then added in block order, so the
    figures are the same bits whatever the thread count (before, torch's threads split
    each block's sums, and 48 of the 525 figures of the benchmark pair changed in their
    last bit between one and two threads). On a GPU the blocks are larger and the sums stay
    on the device until the end.

    The sparsity count is the number of elements with |A − B| < ``threshold`` (strictly),
    the difference being the block's float32 (float64) one: what Timber's
    ``calculate_sparsity_ratio`` computes on its float32 copies of bf16 weights.
    """
    from mergekit_weightlevel.numerics.spans import map_spans

    if a.shape != b.shape:
        raise ValueError(f"tensors of one shape needed, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not threshold > 0:
        raise ValueError(f"the sparsity threshold must be positive, got {threshold}")
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    block = PAIR_STATISTICS_BLOCK if a.device.type == "cpu" else PAIR_STATISTICS_DEVICE_BLOCK
    parts = map_spans(
        lambda start, stop: _span_sums(flat_a, flat_b, start, stop, block, threshold),
        flat_a.numel(),
        block,
        a.device,
    )
    # The blocks' float64 sums added one after the other, in block order: the figures do not
    # depend on how the blocks were shared out.
    sums = [0.0] * 7
    for row in torch.cat([block_sums for block_sums, _ in parts]).tolist():
        sums = [total + value for total, value in zip(sums, row)]
    unchanged = sum(int(part_unchanged) for _, part_unchanged in parts)
    return PairStatistics(*sums, unchanged=unchanged, elements=flat_a.numel())


#: The integer type of each working float type's bit patterns (for the sparsity count).
_BIT_PATTERNS = {torch.float32: torch.int32, torch.float64: torch.int64}


def _span_sums(
    flat_a: torch.Tensor,
    flat_b: torch.Tensor,
    start: int,
    stop: int,
    block: int,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pair_statistics``' seven float64 sums of each block of ``[start, stop)`` (one row
    per block, in ``PairStatistics``' field order) and its count, on the inputs' device."""
    work = torch.promote_types(torch.promote_types(flat_a.dtype, flat_b.dtype), torch.float32)
    device = flat_a.device
    size = max(0, min(block, stop - start))
    diff_buffer = torch.empty(size, dtype=work, device=device)
    term_buffer = torch.empty(size, dtype=work, device=device)
    # bf16 / fp16 blocks are converted into these (inputs already in `work` are used as they are).
    a_buffer = torch.empty(size if flat_a.dtype != work else 0, dtype=work, device=device)
    b_buffer = torch.empty(size if flat_b.dtype != work else 0, dtype=work, device=device)
    # The count compares bit patterns: for floats ≥ 0 (and NaN, which is never counted, as
    # with `<`) they are ordered like the values, so |A − B| < t where the sign bit of
    # bits(|A − B|) − bits(t) is set: an arithmetic shift makes that −1, else 0. Three
    # cheap integer passes instead of a comparison into booleans (~3× dearer on the CPU).
    bits = _BIT_PATTERNS[work]
    below_buffer = torch.empty(size, dtype=bits, device=device)
    limit = int(torch.tensor(threshold, dtype=work).view(bits))
    sign_shift = torch.iinfo(bits).bits - 1
    blocks = -(-(stop - start) // block)
    sums = torch.zeros(blocks, 7, dtype=torch.float64, device=device)
    below = torch.zeros(blocks, dtype=bits, device=device)
    for index, first in enumerate(range(start, stop, block)):
        last = min(first + block, stop)
        block_a = _in_work_type(flat_a[first:last], a_buffer)
        block_b = _in_work_type(flat_b[first:last], b_buffer)
        diff = torch.sub(block_a, block_b, out=diff_buffer[: last - first])
        term = term_buffer[: last - first]
        row = sums[index]
        for column, (left, right) in enumerate(
            ((diff, diff), (block_a, block_a), (block_b, block_b), (block_a, block_b)), start=3
        ):
            torch.sum(torch.mul(left, right, out=term), 0, dtype=torch.float64, out=row[column])
        # The blocks may be the caller's tensors (no copy when already in `work`): their
        # absolute values go to the buffer; diff is ours, made absolute in place.
        torch.sum(torch.abs(block_a, out=term), 0, dtype=torch.float64, out=row[1])
        torch.sum(torch.abs(block_b, out=term), 0, dtype=torch.float64, out=row[2])
        torch.sum(diff.abs_(), 0, dtype=torch.float64, out=row[0])
        signs = torch.sub(diff.view(bits), limit, out=below_buffer[: last - first])
        torch.sum(signs.bitwise_right_shift_(sign_shift), 0, dtype=bits, out=below[index])
    return sums, -below.sum()


def _in_work_type(piece: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
    """``piece`` itself when it has the buffer's dtype, else converted into the buffer."""
    if piece.dtype == buffer.dtype:
        return piece
    return buffer[: piece.numel()].copy_(piece)
