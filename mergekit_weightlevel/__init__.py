"""mergekit-weightlevel: post-training seen at the weight level, as mergekit merge methods.

Importing the package makes sure its merge methods are in mergekit's registry whenever
``mergekit.merge_methods`` is usable, so ``mergekit.merge_methods.get("paramdelta")``
works in notebooks and scripts even where the start-up hook (``mergekit_weightlevel.pth``)
is not processed. It does so without importing mergekit itself: importing mergekit pulls
in transformers and peft (seconds), which ``analyze`` on local folders does not need. If
``mergekit.merge_methods`` is already imported the methods are registered at once;
otherwise they are registered the moment it is.
"""

import sys

from mergekit_weightlevel.about import METHOD_NAMES, __version__

# Read by the start-up hook: while this is True, importing ``mergekit_weightlevel.registry``
# is under way and registers by itself at its end, so the hook must not import it again.
_registration_pending = False


def register_methods() -> tuple[str, ...]:
    """Register every method not yet known to mergekit (imports mergekit); see ``registry``."""
    from mergekit_weightlevel.registry import register_methods as register

    return register()


def _register_when_mergekit_loads() -> None:
    try:
        import mergekit_weightlevel_hook
    except ImportError:  # the package without its top-level hook module: register now
        register_methods()
        if "mergekit.merge" in sys.modules:
            from mergekit_weightlevel.running.stock_merge import install

            install()
        return
    # Even with MERGEKIT_WEIGHTLEVEL_DISABLE set: importing the package is an explicit ask.
    # Registers now if mergekit's registry is loaded, else the moment it is (likewise the
    # run_merge wrapper for `mergekit.merge`).
    mergekit_weightlevel_hook.install(force=True)


_register_when_mergekit_loads()

__all__ = ["METHOD_NAMES", "__version__", "register_methods"]
