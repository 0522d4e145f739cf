"""What the package is, readable without importing anything heavy: its version and the
names of the merge methods it registers (``registry.METHODS`` holds the methods)."""

__version__ = "0.1.0"

#: The merge methods this package registers, in the order `mergekit-weightlevel methods`
#: lists them (``registry.METHOD_NAMES`` is read from the specs; a test keeps both equal).
METHOD_NAMES: tuple[str, ...] = (
    "paramdelta",
    "shadow_graft",
    "timber_spectral",
    "instruct_thinking_interp",
)
