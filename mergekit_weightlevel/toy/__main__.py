"""``python -m mergekit_weightlevel.toy``: rebuild docs/toy-replication.md (see replicate.py)."""

from __future__ import annotations

import argparse
import shlex
import sys

from mergekit_weightlevel.toy.replicate import replicate
from mergekit_weightlevel.toy.settings import Settings


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
    settings = Settings.smoke(args.threads) if args.smoke else Settings(threads=args.threads)
    command = "python -m mergekit_weightlevel.toy " + shlex.join(argv or sys.argv[1:])
    replicate(args.work, args.doc, settings, command=command.strip())


if __name__ == "__main__":
    main()
