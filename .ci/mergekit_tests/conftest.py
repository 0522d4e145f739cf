"""Run mergekit's own tests with mergekit-weightlevel installed: checks and deselections.

``.ci/mergekit_tests.sh`` copies this file next to the tests it fetches from mergekit's
sdist. It does two things:

1. At start-up it asserts that this interpreter's mergekit registry already holds our four
   methods *before anything imports mergekit_weightlevel*: the ``.pth`` start-up hook did
   it, exactly as for a user's ``mergekit-yaml``. So the suite really runs with the plugin
   active, and a plugin that broke mergekit (its registry, its imports, a method's
   planning) fails mergekit's own tests here.
2. It deselects the few tests that cannot apply, each with its reason (``DESELECTED``),
   and fails if one of them no longer exists (so the list cannot silently go stale).
"""

from __future__ import annotations

import sys

import pytest

OUR_METHODS = ("paramdelta", "shadow_graft", "timber_spectral", "instruct_thinking_interp")

_GENERIC_STRIDED = (
    "tests/test_merge_method_regressions.py::"
    "test_state_dict_methods_accept_strided_weights_without_mutation[{}]"
)
#: node id → why it is deselected.
DESELECTED = {
    _GENERIC_STRIDED.format(name): (
        "calls every registered method with only the generic parameters weight / t / density "
        "and 3 inputs; our methods need `role: target` (paramdelta, shadow_graft), a `lambda` "
        "(instruct_thinking_interp) or exactly one non-base model (timber_spectral, "
        "instruct_thinking_interp), so the call is a configuration error by design. The "
        "property it checks (strided inputs: same result, inputs not mutated) is tested with "
        "valid configs in our tests/test_properties.py"
    )
    for name in OUR_METHODS
}


def pytest_sessionstart(session: pytest.Session) -> None:
    from mergekit import merge_methods

    registered = {method.spec.name for method in merge_methods.registered_methods()}
    missing = [name for name in OUR_METHODS if name not in registered]
    if missing:
        pytest.exit(
            f"mergekit-weightlevel is not active in this interpreter ({sys.executable}): "
            f"{', '.join(missing)} missing from mergekit's registry. Is the plugin installed "
            "(with its .pth start-up hook) in this environment?",
            returncode=3,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    found = {item.nodeid for item in items}
    stale = sorted(set(DESELECTED) - found)
    if stale:
        raise pytest.UsageError(
            "tests listed in DESELECTED no longer exist in mergekit's suite: " + ", ".join(stale)
        )
    kept = [item for item in items if item.nodeid not in DESELECTED]
    config.hook.pytest_deselected(items=[item for item in items if item.nodeid in DESELECTED])
    items[:] = kept
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for nodeid, reason in DESELECTED.items():
            reporter.write_line(f"deselected {nodeid}: {reason[:100]}…")
