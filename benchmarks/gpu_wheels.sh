#!/usr/bin/env bash
# Builds .whl/ (git-ignored): the Python packages the GPU machine lacks, as wheels for its
# Python (CPython 3.12, x86-64 Linux), which has no network. benchmarks/gpu_check.sh installs
# them there; the device call carries the folder:
#
#   bash benchmarks/gpu_wheels.sh                 # here, once (needs PyPI): 3 MB
#   bash benchmarks/gpu_wheels.sh --with-eval     # the same and lm-eval's: 16 MB
#   run(command="bash benchmarks/gpu_check.sh --out $OUT", carry=[".whl"], timeout_s=420)
#
# That machine has PyTorch, transformers, peft, safetensors, accelerate, numpy, scipy, click,
# tqdm, pyyaml, huggingface-hub, tokenizers, sentencepiece, protobuf and networkx
# (/work/.library/device/KINDS.md), not mergekit nor pydantic. So: mergekit 0.1.5 (pure
# Python) and what it imports that is missing there: pydantic with pydantic-core (compiled,
# hence the platform tags), annotated-types, typing-inspection, a typing-extensions recent
# enough for them, and immutables (compiled). Versions: those this project's tests run with.
# Each is fetched without its dependencies (--no-deps), so that nothing the machine already
# has (torch above all) is downloaded; one version of each, or pip refuses the folder.
#
# --with-eval adds lm-evaluation-harness for the `evaluate` row; without it that row says
# lm_eval is missing. (mergekit declares `datasets` too, but imports it only in its
# scripts that use it, never in a merge: it comes only with --with-eval.)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
PYTHON=${PYTHON:-python3}
PLATFORMS=(
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64
)
PACKAGES=(
  mergekit==0.1.5
  pydantic==2.14.4
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0
  immutables==0.21
)
# lm-evaluation-harness with its hf backend and what they import that the machine lacks
# (checked against the machine's package list: every requirement is carried or there).
EVAL_PACKAGES=(
  lm-eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19
  jsonlines==4.0.0 pytablewriter==1.2.1 dataproperty==1.1.1 mbstrdecoder==1.1.5
  pathvalidate==3.3.1 tabledata==1.3.5 tcolorpy==0.1.7 typepy==1.3.4 chardet==5.2.0
  pytz==2026.6 rouge-score==0.0.4 nltk==3.10.4 defusedxml==0.7.1 more-itertools==11.2.1
)
# Published as source only: built into (pure-Python) wheels here.
EVAL_SOURCES=(sqlitedict==2.1.0 word2number==1.1)
WITH_EVAL=0
if [[ "${1:-}" == "--with-eval" ]]; then
  WITH_EVAL=1
  PACKAGES+=("${EVAL_PACKAGES[@]}")
fi
mkdir -p "$DEST"
for package in "${PACKAGES[@]}"; do
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d "$DEST" "$package"
done
if [[ $WITH_EVAL == 1 ]]; then
  "$PYTHON" -m pip wheel --quiet --no-deps -w "$DEST" "${EVAL_SOURCES[@]}"
fi
ls -1 "$DEST"
du -sh "$DEST"
