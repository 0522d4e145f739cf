"""One module per merge method; `base.py` holds what they share (roles, dtypes, errors)."""

# The registry first: a method module imports mergekit.merge_methods, which fires the
# start-up hook; with the registry's import under way the hook leaves registration to it,
# instead of importing the registry (and so this half-imported method module) a second time.
import mergekit_weightlevel.registry  # noqa: F401
