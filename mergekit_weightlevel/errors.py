"""The package's user-facing errors: one base class, so a caller can tell them from bugs.

Every error a user can cause and fix (a bad config, a damaged checkpoint, a refused upload)
derives from ``WeightLevelError``; its message names what is wrong and says what to do. The
CLI prints those as one line (exit 1); anything else that escapes the package's own code is
a bug, shown with its traceback. Each class also derives from the builtin exception it
replaced, so ``except ValueError`` in callers' code keeps working.

Warnings go through ``logging`` (``package_logger``), all under one name, whatever module
issues them: ``WARNING:mergekit_weightlevel:…`` beside mergekit's ``WARNING:mergekit.merge:…``.
"""

from __future__ import annotations

import logging

#: The one name this package's log records carry (the logger of the module that issued one
#: keeps its own level, so ``logging.getLogger(module).setLevel`` still works).
LOGGER_NAME = "mergekit_weightlevel"


class _PackageName(logging.Filter):
    """Names a record after the package, not the module deep inside it that issued it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.name = LOGGER_NAME
        return True


def package_logger(module: str) -> logging.Logger:
    """The logger of ``module`` (``__name__``), whose records are named ``mergekit_weightlevel``.

    Without it a warning printed as ``WARNING:mergekit_weightlevel.running.config_checks:…``,
    a path into the package that tells a user nothing; mergekit's own read
    ``WARNING:mergekit.merge:…``.
    """
    logger = logging.getLogger(module)
    if not any(isinstance(existing, _PackageName) for existing in logger.filters):
        logger.addFilter(_PackageName())
    return logger


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
