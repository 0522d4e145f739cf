"""One compared pair (``PairReport``) and what a renderer may read of a whole report.

Renderers (plots, Markdown, HTML) take any object shaped like ``ReportData``; the
``AnalysisReport`` of ``report`` is one. They never import ``report``, and ``report``
imports them: the package has no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from mergekit_weightlevel.analyze.aggregate import pair_summary
from mergekit_weightlevel.analyze.interpretation import Reading, read_pair
from mergekit_weightlevel.analyze.records import TensorRecord


@dataclass
class PairReport:
    """A (reference A, model B) comparison: one record per common tensor."""

    a: str
    b: str
    metrics: tuple[str, ...]
    tensors: list[TensorRecord] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)

    @cached_property
    def summary(self) -> dict[str, Any]:
        return pair_summary(self.tensors)

    @cached_property
    def reading(self) -> Reading:
        """What the numbers mean against the papers (``interpretation.read_pair``)."""
        return read_pair(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "metrics": list(self.metrics),
            "summary": self.summary,
            "reading": self.reading.to_dict(),
            "tensors": [record.to_dict() for record in self.tensors],
            "skipped": self.skipped,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
        }


class ReportData(Protocol):
    """The parts of an ``AnalysisReport`` that the renderers read."""

    models: list[str]
    metrics: tuple[str, ...]
    pairs: list[PairReport]
    settings: dict[str, Any]
    versions: dict[str, str]
    names: dict[str, str]

    def sigma_matrix(self, aggregate: str = "sigma_mean") -> list[list[float | None]]: ...
