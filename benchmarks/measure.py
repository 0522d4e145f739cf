"""Measuring one case: run it in a child process, sample its anonymous memory, keep its wall
time; the command lines of the workers and of the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: The script the workers run from (a sibling of this file).
WORKERS_SCRIPT = Path(__file__).with_name("workers.py")


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_anon_mb: float  # largest RssAnon sampled: the process's own memory
    peak_rss_mb: float  # ru_maxrss: also counts touched pages of mmap'd checkpoint files


#: How often the driver samples a child's RssAnon (seconds).
SAMPLE_PERIOD = 0.01


def rss_anon_kb(pid: int) -> int:
    """The RssAnon line of /proc/PID/status (kB); 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


#: Runs per case (``--repeat``): the table keeps the fastest time and the largest memory.
REPEAT = 1


def measure(label: str, argv: list[str], env: dict[str, str] | None = None) -> Measurement:
    """``run_once`` REPEAT times: the best time (least disturbed by other load) and the
    worst memory of the runs. ``env`` adds variables to the child's environment."""
    runs = [run_once(label, argv, env) for _ in range(REPEAT)]
    return Measurement(
        label,
        min(run.seconds for run in runs),
        max(run.peak_anon_mb for run in runs),
        max(run.peak_rss_mb for run in runs),
    )


def child_environment(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a measured child: imports as from an installed package.

    An installed package is imported from bytecode compiled once; with
    ``PYTHONDONTWRITEBYTECODE`` set (as on the development machine) every run of a checkout
    recompiled the package's modules, ~60 ms that only ours paid (4 % of reading the 8-layer
    family). Unset here, the first run writes them to ``__pycache__`` (git-ignored).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(label: str, argv: list[str], extra_env: dict[str, str] | None = None) -> Measurement:
    """Run argv in a child process: wall time, peak RssAnon (sampled) and ru_maxrss."""
    env = child_environment(extra_env)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()))
    reader.start()  # drain stderr so that a chatty child never blocks on a full pipe
    peak_anon_kb = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak_anon_kb = max(peak_anon_kb, rss_anon_kb(proc.pid))
        time.sleep(SAMPLE_PERIOD)
    seconds = time.perf_counter() - start
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = b"".join(stderr_chunks).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{stderr[-3000:]}")
    measurement = Measurement(label, seconds, peak_anon_kb / 1024, usage.ru_maxrss / 1024)
    print(
        f"  {label:<58} {seconds:8.2f} s  anon {measurement.peak_anon_mb:6.0f} MB  "
        f"maxrss {measurement.peak_rss_mb:6.0f} MB",
        flush=True,
    )
    return measurement


def worker_argv(name: str, *args: str) -> list[str]:
    """The command line that runs worker NAME (``workers.py``) in a child process."""
    return [sys.executable, str(WORKERS_SCRIPT), name, *map(str, args)]


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mergekit_weightlevel.cli", *map(str, args)]


def max_relative_difference(a_folder: Path, b_folder: Path) -> str:
    """max over tensors of ‖a − b‖_F / ‖b‖_F, computed in a child (the driver stays small)."""
    result = subprocess.run(
        worker_argv("diff", a_folder, b_folder), capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1]
