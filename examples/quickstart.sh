#!/usr/bin/env bash
# One command on a fresh machine: make .venv, install the project, run the offline demo.
#   bash examples/quickstart.sh [DEMO_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
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
say "Installing mergekit-weightlevel with mergekit, transformers and the test tools (about a minute)"
.venv/bin/python -m pip install -q -e ".[dev]"
say "Building a tiny model family in ${1:-weightlevel-demo}/ and merging it with every method (offline)"
.venv/bin/mergekit-weightlevel demo "${1:-weightlevel-demo}"
