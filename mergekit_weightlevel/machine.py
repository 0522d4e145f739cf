"""One line describing the machine and library versions a measurement ran on, for the toy
report and the benchmarks page (both state their date beside it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def load_average() -> str:
    """The 1 / 5 / 15 minute load average: other jobs on the machine slow the timings."""
    if not hasattr(os, "getloadavg"):
        return "?"
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def gpu() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    return "no GPU"


def machine_description(threads: int | None = None) -> str:
    """CPU model, logical CPUs, memory, GPU, the torch threads (when given), the load average
    now, the OS, and the Python / torch / transformers / mergekit versions."""
    import mergekit
    import torch
    import transformers

    torch_threads = f", torch threads {threads}" if threads is not None else ""
    return (
        f"{cpu_model()}, {os.cpu_count()} logical CPUs, {memory_gib():.0f} GiB RAM, {gpu()}"
        f"{torch_threads}, load average {load_average()} (1 / 5 / 15 min, at the end: other "
        f"jobs slow the timings); {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, "
        f"mergekit {getattr(mergekit, '__version__', '0.1.5')}"
    )
