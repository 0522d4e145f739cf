"""The σ pass (``pair_statistics``) gives the figures of its plain definition, however its
blocks are shared between threads (``numerics/spans.py``), the same bits for any thread count.

The oracle is the pass written the plain way: whole tensors, each term (A − B, the squares,
A·B, the absolute values) rounded once to the working type, every sum in float64, the count
by comparison. Only the order in which float64 sums are added may differ: 1e-13 relative
catches any change of a term's precision (a float64 product instead of a float32 one moves
a sum by ~1e-10 here), and the count must be exact.
"""

from __future__ import annotations

import pytest
import torch

from mergekit_weightlevel.numerics import pair_statistics as statistics
from mergekit_weightlevel.numerics import spans

FIELDS = ("abs_diff", "abs_a", "abs_b", "sq_diff", "sq_a", "sq_b", "dot")


def plain_statistics(a: torch.Tensor, b: torch.Tensor, threshold: float = 1e-5) -> dict:
    work = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    x, y = a.to(work).flatten(), b.to(work).flatten()
    d = x - y

    def total(term: torch.Tensor) -> float:
        return float(term.sum(dtype=torch.float64))

    return {
        "abs_diff": total(d.abs()),
        "abs_a": total(x.abs()),
        "abs_b": total(y.abs()),
        "sq_diff": total(d * d),
        "sq_a": total(x * x),
        "sq_b": total(y * y),
        "dot": total(x * y),
        "unchanged": int((d.abs() < threshold).sum()),
    }


def post_trained_pair(dtype: torch.dtype, shape=(257, 131), seed: int = 0):
    """A base and a slightly moved copy, a third of its elements within 1e-5 of the base
    and some exactly at the threshold's neighbours."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(*shape, generator=generator, dtype=torch.float64) * 0.02
    moved = torch.randn(*shape, generator=generator, dtype=torch.float64) * 1e-3
    still = torch.rand(*shape, generator=generator) < 0.3
    moved[still] = (
        torch.rand(int(still.sum()), generator=generator, dtype=torch.float64) - 0.5
    ) * 3e-5
    b = a + moved
    return a.to(dtype), b.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("block", [7, 4096, 1 << 16], ids=["ragged", "small", "default"])
def test_pair_statistics_are_the_plain_pass(dtype, block, monkeypatch):
    monkeypatch.setattr(statistics, "PAIR_STATISTICS_BLOCK", block)
    monkeypatch.setattr(spans, "MIN_BLOCKS_PER_SPAN", 1)  # several spans even for small inputs
    a, b = post_trained_pair(dtype)
    got = statistics.pair_statistics(a, b)
    expected = plain_statistics(a, b)
    for field in FIELDS:
        assert getattr(got, field) == pytest.approx(expected[field], rel=1e-13, abs=0), field
    assert got.unchanged == expected["unchanged"] and 0 < got.unchanged < a.numel()
    assert got.elements == a.numel()


def test_one_thread_and_several_give_the_same_figures(monkeypatch):
    monkeypatch.setattr(statistics, "PAIR_STATISTICS_BLOCK", 64)
    monkeypatch.setattr(spans, "MIN_BLOCKS_PER_SPAN", 1)
    a, b = post_trained_pair(torch.float32, shape=(300, 70), seed=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = statistics.pair_statistics(a, b)
        torch.set_num_threads(3)
        shared = statistics.pair_statistics(a, b)
        assert torch.get_num_threads() == 3  # given back after the pass
    finally:
        torch.set_num_threads(threads)
    assert shared == alone  # the same bits: blocks summed alone, added in block order


def test_the_count_is_strict_at_the_threshold_and_never_counts_nan():
    threshold = torch.tensor(1e-5, dtype=torch.float32)
    below = torch.nextafter(threshold, torch.tensor(0.0))
    a = torch.zeros(6)
    b = torch.tensor([float(below), float(threshold), -float(below), float("nan"), 0.0, 1.0])
    stats = statistics.pair_statistics(a, b)
    assert stats.unchanged == 3  # ±(just below), 0; not the threshold itself, NaN, 1
    with pytest.raises(ValueError, match="positive"):
        statistics.pair_statistics(a, b, threshold=0.0)


def test_empty_tensors():
    stats = statistics.pair_statistics(torch.zeros(0), torch.zeros(0))
    assert (stats.sigma, stats.unchanged, stats.elements) == (0.0, 0, 0)


@pytest.mark.parametrize(
    ("total", "block", "parts"), [(10, 3, 2), (1000, 7, 3), (64, 8, 8), (5, 8, 4), (0, 8, 2)]
)
def test_spans_cover_the_range_in_whole_blocks(total, block, parts, monkeypatch):
    monkeypatch.setattr(spans, "MIN_BLOCKS_PER_SPAN", 1)
    cut = spans.block_spans(total, block, parts)
    assert len(cut) <= parts
    assert [i for start, stop in cut for i in range(start, stop)] == list(range(total))
    assert all(start % block == 0 for start, _ in cut)


def test_small_ranges_stay_in_one_span():
    assert spans.block_spans(100 * 64, 64, 2) == [(0, 3200), (3200, 6400)]
    assert spans.block_spans(15 * 64, 64, 2) == [(0, 960)]  # < 2 × MIN_BLOCKS_PER_SPAN blocks


def test_a_failing_span_gives_the_threads_back(monkeypatch):
    monkeypatch.setattr(spans, "MIN_BLOCKS_PER_SPAN", 1)
    threads = torch.get_num_threads()

    def work(start: int, stop: int) -> int:
        if start > 0:
            raise RuntimeError("span failed")
        return stop

    with pytest.raises(RuntimeError, match="span failed"):
        spans.map_spans(work, 1000, 10, torch.device("cpu"), parts=2)
    assert torch.get_num_threads() == threads
