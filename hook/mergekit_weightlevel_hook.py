"""Start-up hook that makes stock mergekit see mergekit-weightlevel's merge methods.

mergekit 0.1.5 has no plugin discovery. A ``.pth`` file in site-packages runs
``install()`` at interpreter start-up; ``install()`` imports nothing heavy (only
``os``, ``sys``) and puts a finder on ``sys.meta_path`` that waits for two modules:

- ``mergekit.merge_methods``: once it has loaded, our methods are registered into
  mergekit's registry;
- ``mergekit.merge``: once it has loaded, ``run_merge`` is wrapped
  (``mergekit_weightlevel.running.stock_merge``) so that configs using our methods get the
  whole-config checks and the right non-weight files under the stock ``mergekit-yaml``.

Set ``MERGEKIT_WEIGHTLEVEL_DISABLE=1`` to switch the hook off.
"""

import os
import sys

DISABLE_ENV = "MERGEKIT_WEIGHTLEVEL_DISABLE"


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _warn(what: str, error: BaseException) -> None:
    import warnings

    warnings.warn(
        f"mergekit-weightlevel: could not {what} ({error!r}); stock mergekit still works, "
        "but paramdelta / shadow_graft / timber_spectral / instruct_thinking_interp may be "
        f"unavailable or unchecked. Set {DISABLE_ENV}=1 to silence this.",
        RuntimeWarning,
        stacklevel=3,
    )


def _register() -> None:
    package = sys.modules.get("mergekit_weightlevel")
    if package is not None and getattr(package, "_registration_pending", False):
        # `import mergekit_weightlevel.registry` is what imported mergekit; that module
        # registers by itself once its own import has finished.
        return
    # Never break mergekit: a failure here becomes a warning.
    try:
        from mergekit_weightlevel.registry import register_methods

        register_methods()
    except Exception as error:  # noqa: BLE001
        _warn("register merge methods", error)


def _wrap_run_merge() -> None:
    try:
        from mergekit_weightlevel.running.stock_merge import install as install_wrappers

        install_wrappers()
    except Exception as error:  # noqa: BLE001
        _warn("wrap mergekit.merge.run_merge", error)


#: Module → what to do once it has finished loading.
_TRIGGERS = {"mergekit.merge_methods": _register, "mergekit.merge": _wrap_run_merge}


def _loaded(name: str) -> bool:
    """Whether module ``name`` has finished loading (not merely begun)."""
    module = sys.modules.get(name)
    if module is None:
        return False
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


class _RegisterAfterImport:
    """Meta-path finder that waits for the trigger modules and acts after each loads."""

    def __init__(self) -> None:
        self.waiting = dict(_TRIGGERS)

    def find_spec(self, fullname, path=None, target=None):
        action = self.waiting.pop(fullname, None)
        if action is None:
            return None
        if not self.waiting:
            _remove_finder()
        # Find the real spec with the remaining finders (this one skips `fullname` now).
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            action()

        spec.loader.exec_module = exec_module
        return spec


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterImport)]


def install(force: bool = False) -> None:
    """Register now if mergekit's registry is loaded, else wait for it on ``sys.meta_path``.

    ``force`` ignores ``MERGEKIT_WEIGHTLEVEL_DISABLE``: ``import mergekit_weightlevel``
    uses it, since importing the package is an explicit request for its methods.
    """
    if _disabled() and not force:
        return
    if any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        return  # already waiting
    finder = _RegisterAfterImport()
    for name, action in _TRIGGERS.items():
        if name in sys.modules:
            del finder.waiting[name]
            if _loaded(name):
                action()
            # else: it is loading now, inside this very import chain; whoever imports
            # it completes it (registration: ``registry`` itself; run_merge: see below).
    if finder.waiting:
        sys.meta_path.insert(0, finder)
