#!/usr/bin/env bash
# mergekit's own test suite, run with mergekit-weightlevel installed (its .pth hook active).
#
# The tests ship in mergekit's sdist (not in the wheel): fetch it at CI time into a temporary
# folder (nothing is committed), add the two files of .ci/mergekit_tests/, run pytest with the
# given interpreter, delete the folder.
#   - common.py: mergekit's tests import tests/common.py, which the 0.1.5 sdist does not ship;
#     ours provides the same helpers (used only if the sdist lacks the file).
#   - conftest.py: asserts that our methods are in mergekit's registry in that very process
#     (the start-up hook did it) and deselects, with reasons, the tests that cannot apply:
#       test_merge_method_regressions.py::test_state_dict_methods_accept_strided_weights_without_mutation
#       [paramdelta | shadow_graft | timber_spectral | instruct_thinking_interp]
#       (a generic call with weight / t / density only is a configuration error for our
#       methods by design; tests/test_properties.py checks that property with valid configs).
# Tests needing a GPU (CUDA / MPS) skip themselves in mergekit's suite; none needs the
# Hugging Face Hub (HF_HUB_OFFLINE=1 below makes sure none tries).
#
# Usage: .ci/mergekit_tests.sh [PYTHON]   (default: .venv/bin/python). ~1 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
given="${1:-.venv/bin/python}"
# Absolute, but not through symlinks: a venv's python is a symlink to the base interpreter.
python="$(cd "$(dirname "$given")" && pwd)/$(basename "$given")"
here="$PWD/.ci/mergekit_tests"
start=$(date +%s)

version=$("$python" -c "import importlib.metadata as m; print(m.version('mergekit'))")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! "$python" -m pip download -q "mergekit==$version" --no-binary :all: --no-deps \
    -d "$work/sdist" >"$work/pip.log" 2>&1; then
  cat "$work/pip.log" >&2
  echo "mergekit_tests: could not download the mergekit $version sdist from PyPI" >&2
  exit 1
fi
tar -xzf "$work"/sdist/mergekit-"$version".tar.gz -C "$work/sdist"
src="$work/sdist/mergekit-$version"

# Only tests/ and the pytest settings: the sdist's mergekit/ source must not shadow the
# installed mergekit that our plugin extends.
mkdir "$work/run"
cp -r "$src/tests" "$src/pyproject.toml" "$work/run/"
[ -e "$work/run/tests/common.py" ] || cp "$here/common.py" "$work/run/tests/common.py"
cp "$here/conftest.py" "$work/run/conftest.py"

cd "$work/run"
HF_HUB_OFFLINE=1 "$python" -m pytest -q -p no:cacheprovider tests
echo "mergekit $version test suite with the plugin: $(( $(date +%s) - start )) s"
