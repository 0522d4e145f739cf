"""What one replication run measures: the family's recipe and the evaluation settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mergekit_weightlevel.toy.family import Recipe

INTERP_LAMBDAS = tuple(round(0.1 * i, 1) for i in range(11))
TIMBER_LAMBDAS = (0.0, 0.2, 0.5)
PASS_KS = (1, 4, 16)


@dataclass(frozen=True)
class Settings:
    recipe: Recipe = field(default_factory=Recipe)
    interp_lambdas: Sequence[float] = INTERP_LAMBDAS
    timber_lambdas: Sequence[float] = TIMBER_LAMBDAS
    pass_problems: int = 100
    pass_samples: int = 16
    pass_ks: Sequence[int] = PASS_KS
    temperature: float = 1.0
    threads: int = 1
    analyze_metrics: tuple[str, ...] = ("sigma", "erank", "structure")
    #: Evaluate on at most this many problems per set (None: all); the smoke run caps it.
    eval_limit: int | None = None

    @classmethod
    def smoke(cls, threads: int = 1) -> Settings:
        """A seconds-long miniature run (the tests' and ``--smoke``'s)."""
        return cls(
            recipe=Recipe.smoke(),
            threads=threads,
            interp_lambdas=(0.0, 0.5, 1.0),
            timber_lambdas=(0.2,),
            pass_problems=4,
            pass_samples=4,
            pass_ks=(1, 4),
            analyze_metrics=("sigma", "erank"),
            eval_limit=12,
        )
