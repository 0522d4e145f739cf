"""The plugin's merge methods and their (idempotent) registration into mergekit."""

from __future__ import annotations

import sys

# Importing mergekit below fires the start-up hook; it must leave registration to the end of
# this module (the hook would otherwise import this half-initialised module again). The flag
# lives on the package (always imported before this module), read by the hook; set through
# sys.modules, not an import, so that no module imports the package it is part of.
_package = sys.modules["mergekit_weightlevel"]
_package._registration_pending = True

from mergekit import merge_methods  # noqa: E402
from mergekit.merge_methods.base import MISSING, ParameterScope  # noqa: E402

from mergekit_weightlevel.checks.parameter_types import describe_type, is_required  # noqa: E402
from mergekit_weightlevel.methods.base import WeightLevelMethod  # noqa: E402
from mergekit_weightlevel.methods.declaration import MethodDeclaration  # noqa: E402
from mergekit_weightlevel.methods.instruct_thinking_interp import (  # noqa: E402
    instruct_thinking_interp_method,
)
from mergekit_weightlevel.methods.paramdelta import paramdelta_method  # noqa: E402
from mergekit_weightlevel.methods.shadow_graft import shadow_graft_method  # noqa: E402
from mergekit_weightlevel.methods.timber import timber_spectral_method  # noqa: E402

# Every method this package provides, in the order `mergekit-weightlevel methods` lists them.
METHODS: tuple[WeightLevelMethod, ...] = (
    paramdelta_method,
    shadow_graft_method,
    timber_spectral_method,
    instruct_thinking_interp_method,
)
METHOD_NAMES: tuple[str, ...] = tuple(method.spec.name for method in METHODS)
#: What each method declares about itself (``methods.declaration``), by name.
DECLARATIONS: dict[str, MethodDeclaration] = {m.spec.name: m.declaration for m in METHODS}


def declaration_of(name: str | None) -> MethodDeclaration | None:
    """The declaration of one of this package's methods; None for any other name."""
    return DECLARATIONS.get(name or "")


def method_of(name: str | None) -> WeightLevelMethod | None:
    """This package's method of that name; None for any other name (mergekit's own included)."""
    return next((m for m in METHODS if m.spec.name == name), None)


def register_methods() -> tuple[str, ...]:
    """Register every method not yet known to mergekit; return the names newly registered.

    Safe to call any number of times: names mergekit already knows are skipped.
    """
    known = {method.spec.name for method in merge_methods.registered_methods()}
    added = []
    for method in METHODS:
        if method.spec.name not in known:
            merge_methods.register(method)
            added.append(method.spec.name)
    return tuple(added)


# Importing this module means the methods are wanted: register them now.
register_methods()
_package._registration_pending = False


SCOPE_READING = {
    ParameterScope.SHARED: "shared",
    ParameterScope.INPUT: "per model",
    ParameterScope.NON_BASE: "per non-base model",
}


def describe_methods() -> list[dict]:
    """Each method with its paper link, parameters and sweep axis, read from the method specs
    and declarations."""
    described = []
    for method in METHODS:
        spec, declaration = method.spec, method.declaration
        described.append(
            {
                "name": spec.name,
                "pretty_name": spec.pretty_name,
                "reference_url": spec.reference_url,
                "aliases": list(declaration.aliases),
                "sweep": {
                    "parameter": declaration.sweep.parameter,
                    "per_donor": declaration.sweep.per_donor,
                    "grid": list(declaration.sweep.grid),
                },
                "summary": (method.__doc__ or "").strip().splitlines()[0] if method.__doc__ else "",
                "parameters": [
                    {
                        "name": p.name,
                        "scope": SCOPE_READING[p.scope],
                        "type": describe_type(p.value_type),
                        "default": None if p.default is MISSING else p.default,
                        "required": p.default is MISSING or is_required(p.value_type),
                        "description": p.description or "",
                    }
                    for p in spec.parameters
                ],
            }
        )
    return described
