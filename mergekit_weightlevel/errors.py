"""The package's user-facing errors: one base class, so a caller can tell them from bugs.

Every error a user can cause and fix (a bad config, a damaged checkpoint, a refused upload)
derives from ``WeightLevelError``; its message names what is wrong and says what to do.
Anything else that escapes the package is a bug.
"""

from __future__ import annotations


class WeightLevelError(Exception):
    """An error in the user's input or environment; the message says how to fix it."""


class WeightLevelConfigError(WeightLevelError, ValueError):
    """A merge configuration this package cannot run; the message says how to fix it."""
