"""The thread policy: the CPUs other processes leave free, and the user's choice first."""

from __future__ import annotations

import time

import pytest
import torch
from helpers import run_yaml_merge

from mergekit_weightlevel.method_configs import timber_config
from mergekit_weightlevel.numerics import threads


@pytest.mark.parametrize(
    "cpus, others, expected",
    [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 2.0, 1), (2, 5.0, 1), (8, 3.2, 5), (1, 0.0, 1)],
)
def test_threads_for_uses_the_cpus_left(cpus, others, expected):
    assert threads.threads_for(cpus, others) == expected


def test_system_busy_seconds_counts_everything_but_idle_and_iowait(tmp_path):
    import os

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 20 30 1000 50 5 7 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    busy = threads.system_busy_seconds(str(stat))
    assert busy == pytest.approx((100 + 20 + 30 + 5 + 7 + 3) / os.sysconf("SC_CLK_TCK"))
    assert threads.system_busy_seconds(str(tmp_path / "missing")) is None


class FakeMachine:
    """/proc/stat and our own CPU time as a machine where others keep ``others`` CPUs busy."""

    def __init__(self, others: float):
        self.others = others
        self.wall = 0.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds

    def install(self, monkeypatch) -> None:
        own = 0.5  # this process uses half a CPU
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.wall)
        monkeypatch.setattr(threads.time, "process_time", lambda: own * self.wall)
        monkeypatch.setattr(threads, "system_busy_seconds", lambda: (self.others + own) * self.wall)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("others, expected", [(0.0, 2), (1.5, 1), (0.3, 2)])
def test_policy_measures_the_others_between_checks(monkeypatch, restore_threads, others, expected):
    machine = FakeMachine(others)
    machine.install(monkeypatch)
    torch.set_num_threads(2)
    policy = threads.ThreadPolicy(cpus=2)
    machine.advance(threads.RECHECK_SECONDS / 2)
    assert policy.update() == 2  # too soon: unchanged
    machine.advance(threads.RECHECK_SECONDS)
    assert policy.update() == expected
    assert torch.get_num_threads() == expected
    policy.restore()
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(
    "num_threads, environ, chose",
    [
        (None, {}, False),
        (3, {}, True),
        (None, {"OMP_NUM_THREADS": "2"}, True),
        (None, {"MKL_NUM_THREADS": "1"}, True),
        (None, {threads.THREADS_ENV: "off"}, True),
        (None, {"OMP_NUM_THREADS": ""}, False),
    ],
)
def test_the_users_choice_switches_the_policy_off(num_threads, environ, chose):
    assert threads.user_chose_threads(num_threads, environ) is chose


def test_a_merge_on_a_busy_machine_runs_its_kernels_on_one_thread(
    llama_family, tmp_path, monkeypatch, restore_threads
):
    """Through mergekit's run_merge: the kernels see one thread, the caller gets its own back."""
    for name in threads.USER_THREAD_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "RECHECK_SECONDS", 0.0)
    start = time.monotonic()
    # Others keep both CPUs busy: the machine's busy time grows by 2 s per second plus ours.
    monkeypatch.setattr(
        threads,
        "system_busy_seconds",
        lambda: 2.0 * (time.monotonic() - start) + time.process_time(),
    )
    monkeypatch.setattr(threads, "cpus_available", lambda: 2)
    torch.set_num_threads(2)
    seen: list[int] = []
    from mergekit_weightlevel.methods import timber as timber_spectral

    kernel = timber_spectral.TimberSpectralMerge.merge_group

    def recording(self, group, /, **parameters):
        seen.append(torch.get_num_threads())
        return kernel(self, group, **parameters)

    monkeypatch.setattr(timber_spectral.TimberSpectralMerge, "merge_group", recording)
    config = timber_config(llama_family.base, llama_family.instruct)
    run_yaml_merge(config, tmp_path / "out")
    assert seen and set(seen) == {1}  # from the first tensor on: the first look decided
    assert torch.get_num_threads() == 2
