"""What one replication run measures: the family's recipe and the evaluation settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mergekit_weightlevel.toy.family import Recipe

INTERP_LAMBDAS = tuple(round(0.1 * i, 1) for i in range(11))
TIMBER_LAMBDAS = (0.0, 0.2, 0.5)


@dataclass(frozen=True)
class Settings:
    recipe: Recipe = field(default_factory=Recipe)
    interp_lambdas: Sequence[float] = INTERP_LAMBDAS
    timber_lambdas: Sequence[float] = TIMBER_LAMBDAS
    threads: int = 1
    analyze_metrics: tuple[str, ...] = ("sigma", "erank", "structure")
    #: lm-eval's --limit: at most this many problems per toy task (None: all); the smoke run
    #: caps it. The tasks themselves (problems, samples, temperature, pass@k) are the YAMLs
    #: in evaluation/tasks/toy.
    eval_limit: int | None = None
    #: The same for the sampled pass@k task (100 problems × 16 samples in full).
    pass_limit: int | None = None
    #: lm-eval's batch size (rows generated at once).
    batch_size: int = 512

    @classmethod
    def smoke(cls, threads: int = 1) -> Settings:
        """A seconds-long miniature run (the tests' and ``--smoke``'s)."""
        return cls(
            recipe=Recipe.smoke(),
            threads=threads,
            interp_lambdas=(0.0, 0.5, 1.0),
            timber_lambdas=(0.2,),
            analyze_metrics=("sigma", "erank"),
            eval_limit=12,
            pass_limit=4,
        )
