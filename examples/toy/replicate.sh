#!/usr/bin/env bash
# Rebuild docs/toy-replication.md from nothing: train the toy model family on CPU, merge it
# with every method through mergekit, evaluate, write the tables and the plot.
#   bash examples/toy/replicate.sh [--work DIR] [--doc PATH] [--threads N] [--smoke]
# Trained models are cached in toy-work/ (a rerun only merges and evaluates; delete it to
# retrain). The same thing inside an installed environment:
#   python -m mergekit_weightlevel.toy
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
# The toy needs PEFT (the LoRA runs) and matplotlib (the plot): the `test` extra has both.
.venv/bin/python -c "import mergekit_weightlevel.toy, mergekit, peft, matplotlib" 2>/dev/null || .venv/bin/python -m pip install -q -e ".[test]"
exec .venv/bin/python -m mergekit_weightlevel.toy "$@"
