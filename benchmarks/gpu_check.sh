#!/usr/bin/env bash
# The GPU check of issue 30, for a session that is lent a GPU machine: installs what that
# machine lacks from the carried wheels, then runs benchmarks/gpu_check.py (its text says
# what each row checks), which prints ONE summary table. Within 5 minutes on one H100,
# installs included; without a GPU it says so and skips the GPU rows (seconds).
#
#   bash benchmarks/gpu_wheels.sh      # here, once: builds .whl/ (see that file)
#   run(command="bash benchmarks/gpu_check.sh --out $OUT", carry=[".whl"], timeout_s=420)
#
# The machine has Python 3.12 with PyTorch, transformers, peft and safetensors but neither
# mergekit nor pydantic, and no network: where `import mergekit, pydantic` fails, the wheels
# in .whl/ are installed into a folder of their own (--no-index --no-deps) and put on
# PYTHONPATH, with this checkout before them (the package is used from the working tree).
# Options go to gpu_check.py: --out DIR (default benchmarks/out/gpu_check), --budget SECONDS.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
EXTRA_PATH=""

if "$PYTHON" -c "import mergekit, pydantic" 2>/dev/null; then
  export GPU_CHECK_INSTALL="mergekit and pydantic already installed"
elif compgen -G ".whl/*.whl" >/dev/null; then
  start_ms=$(date +%s%3N)
  if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl; then
    EXTRA_PATH=":$SITE"
    wheels=$(compgen -G ".whl/*.whl" | wc -l)
    export GPU_CHECK_INSTALL="installed $wheels wheels from .whl/ into $SITE in $(( $(date +%s%3N) - start_ms )) ms"
  else
    export GPU_CHECK_INSTALL="pip could not install .whl/ (its output is above)"
  fi
else
  echo "mergekit is not installed and .whl/ holds no wheels: build them here with" \
    "'bash benchmarks/gpu_wheels.sh' and carry .whl (the rows that need mergekit will fail)"
  export GPU_CHECK_INSTALL="nothing installed: no .whl/ (bash benchmarks/gpu_wheels.sh)"
fi
# This checkout first (the package is used from the working tree), then the wheels.
export PYTHONPATH="$PWD$EXTRA_PATH${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
