#!/usr/bin/env bash
# One command on a fresh machine: make .venv, install the project, run the offline demo,
# then sweep λ of the toy's trained Instruct/Thinking pair and evaluate every output.
#   bash examples/quickstart.sh [DEMO_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
demo="${1:-weightlevel-demo}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch pinned first: a CPU build; see docs/installation.md for GPU machines.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/mergekit-weightlevel demo "$demo"
# The interpolation paper's reading on a pair whose curve means something: as λ grows the
# answers start to reason in steps and lengthen; --within 5 chooses the shortest answers
# within 5 points of the most reasoning (lm-evaluation-harness on the toy's own task).
echo
echo "== sweep λ of the toy Instruct/Thinking pair, evaluating each output with lm-eval =="
.venv/bin/mergekit-weightlevel sweep examples/toy/instruct_thinking_interp.yml "$demo/toy-interp" \
    --values 0,0.2,0.4,0.6,0.8,1 --eval toy_qa_add3 --limit 100 --batch-size 128 \
    --select toy_qa_add3:reasoning --within 5
