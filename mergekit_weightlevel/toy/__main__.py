"""``python -m mergekit_weightlevel.toy``: rebuild docs/toy-replication.md (see replicate.py)."""

from __future__ import annotations

import argparse
import shlex
import sys

from mergekit_weightlevel.toy.family import Recipe
from mergekit_weightlevel.toy.replicate import Settings, replicate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mergekit_weightlevel.toy",
        description="Train the toy model family, merge it with every method, evaluate it "
        "and write the replication report.",
    )
    parser.add_argument("--work", default="toy-work", help="where models and merges go")
    parser.add_argument("--doc", default="docs/toy-replication.md", help="the report to write")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--smoke", action="store_true", help="a seconds-long miniature run")
    args = parser.parse_args(argv)
    recipe = Recipe.smoke() if args.smoke else Recipe()
    settings = Settings(recipe=recipe, threads=args.threads)
    if args.smoke:
        settings = Settings(
            recipe=recipe,
            threads=args.threads,
            interp_lambdas=(0.0, 0.5, 1.0),
            timber_lambdas=(0.2,),
            pass_problems=4,
            pass_samples=4,
            pass_ks=(1, 4),
            analyze_metrics=("sigma", "erank"),
            eval_limit=12,
        )
    command = "python -m mergekit_weightlevel.toy " + shlex.join(argv or sys.argv[1:])
    replicate(args.work, args.doc, settings, command=command.strip())


if __name__ == "__main__":
    main()
