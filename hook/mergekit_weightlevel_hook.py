"""Start-up hook that makes stock mergekit see mergekit-weightlevel's merge methods.

mergekit 0.1.5 has no plugin discovery. A ``.pth`` file in site-packages runs
``install()`` at interpreter start-up; ``install()`` imports nothing heavy (only
``os``, ``sys``) and puts a one-shot finder on ``sys.meta_path``. When
``mergekit.merge_methods`` is first imported, the finder lets the real module load,
then registers our methods into mergekit's registry.

Set ``MERGEKIT_WEIGHTLEVEL_DISABLE=1`` to switch the hook off.
"""

import os
import sys

_TRIGGER = "mergekit.merge_methods"
DISABLE_ENV = "MERGEKIT_WEIGHTLEVEL_DISABLE"


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


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
        import warnings

        warnings.warn(
            f"mergekit-weightlevel: could not register merge methods ({error!r}); "
            "stock mergekit still works, but paramdelta / shadow_graft / "
            "timber_spectral / instruct_thinking_interp are unavailable. "
            f"Set {DISABLE_ENV}=1 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )


class _RegisterAfterImport:
    """Meta-path finder that waits for ``mergekit.merge_methods`` and then registers."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TRIGGER:
            return None
        # One shot: step aside, find the real spec with the remaining finders.
        _remove_finder()
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            _register()

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
    if _TRIGGER in sys.modules:
        _register()
        return
    if not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
