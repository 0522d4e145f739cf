"""Scores of the family's members and merges on the named problem sets, each computed once."""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.toy.evaluate import Summary, evaluate
from mergekit_weightlevel.toy.family import Data
from mergekit_weightlevel.toy.train import load_model


def token_budget(task: str) -> int:
    """New tokens a completion may take on ``task``."""
    # Room for the longest reasoning ("[9+9=18,18+9=27]27" is 18 characters) and some slack.
    return 28 if task == "add3" else 20


class Evaluator:
    """Loads models once and caches their scores on the named problem sets."""

    def __init__(self, data: Data, limit: int | None = None) -> None:
        self.data = data
        sets = {
            "add2": data.add2,
            "sub": data.sub,
            "add3": data.add3_test,
            "mul": data.mul_new,
            "mod": data.mod,
        }
        self.sets = {name: problems[:limit] for name, problems in sets.items()}
        self.cache: dict[tuple[str, str], Summary] = {}

    def __call__(self, model_path: Path, task: str, model=None) -> Summary:
        key = (str(model_path), task)
        if key not in self.cache:
            model = model if model is not None else load_model(model_path)
            self.cache[key] = evaluate(model, self.sets[task], max_new_tokens=token_budget(task))
        return self.cache[key]
