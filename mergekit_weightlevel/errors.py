"""The package's user-facing errors: one base class, so a caller can tell them from bugs.

Every error a user can cause and fix (a bad config, a damaged checkpoint, a refused upload)
derives from ``WeightLevelError``; its message names what is wrong and says what to do. The
CLI prints those as one line (exit 1); anything else that escapes the package's own code is
a bug, shown with its traceback. Each class also derives from the builtin exception it
replaced, so ``except ValueError`` in callers' code keeps working.
"""

from __future__ import annotations


class WeightLevelError(Exception):
    """An error in the user's input or environment; the message says how to fix it."""


class WeightLevelConfigError(WeightLevelError, ValueError):
    """A merge configuration this package cannot run; the message says how to fix it."""


class WeightLevelInputError(WeightLevelError, ValueError):
    """A bad argument or option value (``--layers``, ``--names``, a report file, ...)."""


class WeightLevelModelError(WeightLevelError, RuntimeError):
    """A model or device that cannot be used as asked (unreadable, incomplete, absent)."""


class ModelFolderError(WeightLevelError, FileNotFoundError):
    """A folder that should hold models or a family of them, and does not."""
