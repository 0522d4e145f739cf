#!/usr/bin/env bash
# One command on a fresh machine: make .venv, install the project, run the offline demo,
# then sweep λ of the toy's trained Instruct/Thinking pair and evaluate every output.
#   bash examples/quickstart.sh [DEMO_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
demo="${1:-weightlevel-demo}"
# Each step says what it does first: the installs take minutes and print nothing themselves.
say() { printf '\n==> %s\n' "$*" >&2; }
[ -x .venv/bin/python ] || { say "Creating a virtual environment in .venv"; python3 -m venv .venv; }
say "Upgrading pip in .venv"
.venv/bin/python -m pip install -q --upgrade pip
# torch pinned first: a CPU build; see docs/installation.md for GPU machines.
.venv/bin/python -c "import torch" 2>/dev/null || {
  say "Installing torch 2.13.0, CPU build (a large download: a minute or two)"
  .venv/bin/python -m pip install -q torch==2.13.0
}
say "Installing mergekit-weightlevel with mergekit, transformers, lm-evaluation-harness, Ray and the test tools (a few minutes)"
.venv/bin/python -m pip install -q -e ".[dev]"
say "Building a tiny model family in $demo/ and merging it with every method (offline)"
.venv/bin/mergekit-weightlevel demo "$demo"
# The interpolation paper's reading on a pair whose curve means something: as λ grows the
# answers start to reason in steps and lengthen; --within 5 chooses the shortest answers
# within 5 points of the most reasoning (lm-evaluation-harness on the toy's own task).
say "Sweeping λ of the toy's trained Instruct/Thinking pair, each output evaluated with lm-eval"
.venv/bin/mergekit-weightlevel sweep examples/toy/instruct_thinking_interp.yml "$demo/toy-interp" \
    --values 0,0.2,0.4,0.6,0.8,1 --eval toy_qa_add3 --limit 100 --batch-size 128 \
    --select toy_qa_add3:reasoning --within 5
