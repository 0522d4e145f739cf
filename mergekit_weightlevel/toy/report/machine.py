"""One line describing the machine and library versions a report was measured on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine_description(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import mergekit
    import transformers

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch threads {threads}, load average "
        f"{load} (1 / 5 / 15 min, at the end: other jobs slow the timings); "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"mergekit {getattr(mergekit, '__version__', '0.1.5')}"
    )
