#!/usr/bin/env bash
# One command on a fresh machine: make .venv, install the project, run the offline demo.
#   bash examples/quickstart.sh [DEMO_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch pinned first: a CPU build; see docs/installation.md for GPU machines.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/mergekit-weightlevel demo "${1:-weightlevel-demo}"
