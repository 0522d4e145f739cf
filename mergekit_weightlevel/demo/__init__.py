"""The offline demo and its fixtures: tiny model families built on the spot
(``tiny_models``) and ``mergekit-weightlevel demo``, which merges one with every method and
checks each output against an independent float64 computation (``run``)."""

from mergekit_weightlevel.demo.run import (
    DemoReport,
    MergeResult,
    demo_lora_adapter,
    existing_family,
    files_from,
    read_state,
    run_demo,
)

__all__ = [
    "DemoReport",
    "MergeResult",
    "demo_lora_adapter",
    "existing_family",
    "files_from",
    "read_state",
    "run_demo",
]
