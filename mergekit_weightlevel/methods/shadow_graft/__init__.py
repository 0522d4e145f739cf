"""Shadow-FT (arXiv 2505.12716): the mergekit method (``method``) and the PEFT LoRA adapter
reading it grafts from (``lora``)."""

from mergekit_weightlevel.methods.shadow_graft.method import (
    DEFAULT_INCLUDE,
    NAME,
    ShadowGraftMerge,
    shadow_graft_method,
)

__all__ = ["DEFAULT_INCLUDE", "NAME", "ShadowGraftMerge", "shadow_graft_method"]
