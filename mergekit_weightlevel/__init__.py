"""mergekit-weightlevel: post-training seen at the weight level, as mergekit merge methods.

Importing the package registers its merge methods into mergekit (idempotent), so
``mergekit.merge_methods.get("paramdelta")`` works in notebooks and scripts even
where the start-up hook (``mergekit_weightlevel.pth``) is not processed.
"""

__version__ = "0.1.0"

# Read by the start-up hook: while this is True the package itself will register.
_registration_pending = True

from mergekit_weightlevel.registry import METHOD_NAMES, register_methods  # noqa: E402

register_methods()
_registration_pending = False

__all__ = ["METHOD_NAMES", "__version__", "register_methods"]
