"""Shared fixtures: tiny model families built once per test session (seconds, offline)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Keep the 2-core CI machine responsive and the numbers reproducible.
torch.set_num_threads(min(2, os.cpu_count() or 1))

from mergekit_weightlevel.demo.tiny_models import TinyFamily, build_family  # noqa: E402


@pytest.fixture(scope="session")
def llama_family(tmp_path_factory) -> TinyFamily:
    """Llama-style, untied embeddings, float32, single-file checkpoints."""
    return build_family(tmp_path_factory.mktemp("llama"), arch="llama")


@pytest.fixture(scope="session")
def qwen2_sharded_family(tmp_path_factory) -> TinyFamily:
    """Qwen2-style (q/k/v biases, tied embeddings), float32, sharded checkpoints."""
    return build_family(tmp_path_factory.mktemp("qwen2"), arch="qwen2", shard_size="60KB")


@pytest.fixture(scope="session")
def qwen3_bf16_family(tmp_path_factory) -> TinyFamily:
    """Qwen3-style (q_norm / k_norm), bfloat16 checkpoints."""
    return build_family(tmp_path_factory.mktemp("qwen3"), arch="qwen3", dtype=torch.bfloat16)


@pytest.fixture(scope="session")
def all_families(llama_family, qwen2_sharded_family, qwen3_bf16_family) -> dict[str, TinyFamily]:
    return {"llama": llama_family, "qwen2": qwen2_sharded_family, "qwen3": qwen3_bf16_family}


@pytest.fixture(scope="session")
def arch_family(tmp_path_factory):
    """``arch_family(name)``: a tiny family of a real architecture (tests/architectures.py),
    built once per session on first use."""
    from architectures import build_arch_family

    root = tmp_path_factory.mktemp("architectures")
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = build_arch_family(root, name)
        return built[name]

    return get


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def tensor_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("*.safetensors"))


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance with 2 CPUs for the session's Ray tests, stopped at the end.

    Its workers import ``tests/`` modules (the units of ``ray_units``) by name: the folder is
    on the ``PYTHONPATH`` they inherit.
    """
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed: pip install '.[distributed]' (CI installs it)"
    )
    tests = str(Path(__file__).resolve().parent)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (tests, previous) if p)
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous
    yield ray
    ray.shutdown()
