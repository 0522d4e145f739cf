"""`--cuda` / `--device` that cannot be used: one line before any work (checks/device.py).

Without a GPU (every CI run) the CPU-only torch path is tested for real: the stock
`mergekit-yaml --cuda`, `mergekit-weightlevel merge --cuda` and `analyze --device cuda`.
The other causes (a CUDA build that sees no GPU, `cuda:N` beyond the GPUs there are) are
played by replacing torch's answers. docs/troubleshooting.md is held against the messages.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import write_config

from mergekit_weightlevel.analyze import analyze_models
from mergekit_weightlevel.checks import device
from mergekit_weightlevel.checks.device import DeviceNotAvailableError, check_device
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.method_configs import timber_config

TROUBLESHOOTING = Path(__file__).resolve().parent.parent / "docs" / "troubleshooting.md"

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the path without CUDA")


def linear_config(family) -> dict:
    """A mergekit built-in (not ours): the wrapper checks its device too."""
    return {
        "merge_method": "linear",
        "models": [
            {"model": str(family.base), "parameters": {"weight": 0.5}},
            {"model": str(family.instruct), "parameters": {"weight": 0.5}},
        ],
    }


def cuda_build_without_gpu(monkeypatch, count: int = 0) -> None:
    """torch built for CUDA on a machine with ``count`` GPUs (0: none it can see)."""
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


# ----------------------------------------------------------------------------- the check


def test_the_cpu_is_always_usable():
    assert device.device_problem("cpu") is None
    check_device("cpu", asked_by="--device cpu", instead="-")


@pytest.mark.skipif(torch.backends.cuda.is_built(), reason="needs a torch built without CUDA")
def test_a_torch_without_cuda_is_named_with_its_version():
    problem = device.device_problem("cuda")
    assert problem is not None
    assert f"this torch ({torch.__version__}) is a build without CUDA" in problem
    assert device.TORCH_INSTALL_URL in problem
    assert device.device_problem("cuda:0") == problem


def test_a_cuda_build_without_a_gpu_says_where_to_look(monkeypatch):
    cuda_build_without_gpu(monkeypatch)
    problem = device.device_problem("cuda")
    assert "built for CUDA 12.8" in problem and "finds no CUDA device" in problem
    assert "CUDA_VISIBLE_DEVICES" in problem


def test_a_gpu_index_beyond_the_gpus_names_the_range(monkeypatch):
    cuda_build_without_gpu(monkeypatch, count=2)
    assert device.device_problem("cuda") is None
    assert device.device_problem("cuda:1") is None
    assert device.device_problem("cuda:2") == (
        "there is no CUDA device 2: torch finds 2 (cuda:0 to cuda:1)"
    )


def test_an_unknown_device_name():
    assert device.device_problem("gpu") == (
        "'gpu' is not a device name torch knows (e.g. cpu, cuda, cuda:1)"
    )


@no_cuda
def test_the_error_is_one_line_naming_the_option_and_the_way_out():
    with pytest.raises(DeviceNotAvailableError) as caught:
        check_device("cuda", asked_by="--cuda", instead="leave out --cuda to merge on the CPU")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("--cuda: ") and message.endswith(
        "; leave out --cuda to merge on the CPU"
    )


@no_cuda
@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"cuda": True}, "--cuda"),
        ({"device": "cuda:1"}, "--device cuda:1"),
        ({"gpu_rich": True}, "--gpu-rich"),
        ({"multi_gpu": True}, "--multi-gpu"),
    ],
)
def test_mergekit_options_are_named_as_given(options, option):
    from mergekit.options import MergeOptions

    with pytest.raises(DeviceNotAvailableError, match=rf"^{re.escape(option)}: "):
        device.check_merge_device(MergeOptions(**options))
    device.check_merge_device(MergeOptions())  # the CPU: nothing to say


# ----------------------------------------------------------------------- the entry points


@no_cuda
@pytest.mark.slow
@pytest.mark.parametrize("config", [timber_config, linear_config], ids=["ours", "mergekit's"])
def test_stock_mergekit_yaml_cuda_is_one_line_and_leaves_no_folder(llama_family, tmp_path, config):
    """Before: 46 lines of traceback ending in "Torch not compiled with CUDA enabled", and
    the output folder that mergekit's TensorWriterTask had created, empty."""
    if config is timber_config:
        merge = timber_config(llama_family.base, llama_family.instruct, 0.2)
    else:
        merge = linear_config(llama_family)
    path = write_config(tmp_path / "merge.yml", merge)
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("mergekit-yaml")
    proc = subprocess.run(
        [str(exe), str(path), str(out), "--cuda"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: --cuda: "), proc.stderr
    assert "no CUDA device is available" in lines[0]
    assert not out.exists()


@no_cuda
@pytest.mark.parametrize("config", [timber_config, linear_config], ids=["ours", "mergekit's"])
def test_merge_and_sweep_cuda_are_a_user_error_not_a_bug(llama_family, tmp_path, config):
    if config is timber_config:
        merge = timber_config(llama_family.base, llama_family.instruct, 0.2)
    else:
        merge = linear_config(llama_family)
    path = write_config(tmp_path / "merge.yml", merge)
    result = CliRunner().invoke(main, ["merge", str(path), str(tmp_path / "out"), "--cuda"])
    assert result.exit_code == 1
    assert result.output.startswith("error: --cuda: ") and "Traceback" not in result.output
    assert "This is a bug" not in result.output
    assert not (tmp_path / "out").exists()
    if config is timber_config:
        result = CliRunner().invoke(
            main, ["sweep", "timber", str(path), str(tmp_path / "s"), "--lambdas", "0,1", "--cuda"]
        )
        assert result.exit_code == 1 and result.output.startswith("error: --cuda: ")
        assert not list(tmp_path.glob("s-lambda*"))


@no_cuda
def test_analyze_checks_the_device_before_opening_any_model(tmp_path):
    """The models do not exist: had they been opened first, that would be the error."""
    missing = [str(tmp_path / "no-model-a"), str(tmp_path / "no-model-b")]
    with pytest.raises(DeviceNotAvailableError, match=r"^analyze: --device cuda: "):
        analyze_models(missing, device="cuda", quiet=True)
    with pytest.raises(DeviceNotAvailableError, match=r"^analyze: --device cuda:0: "):
        analyze_models(missing, device="CUDA:0", quiet=True)


# ------------------------------------------------------------------------ the documentation


def documented_templates() -> list[re.Pattern[str]]:
    """The quoted messages of troubleshooting.md's GPU section, as patterns: `<…>` is any
    text, `…` any rest."""
    text = TROUBLESHOOTING.read_text(encoding="utf-8")
    section = text.split("## GPUs: `--cuda`, `--device`", 1)[1].split("\n## ", 1)[0]
    patterns = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        quoted = row.split("`", 2)[1]
        pieces = re.split(r"(<[^>]+>|…)", quoted)
        regex = "".join(
            ".+?" if piece.startswith("<") else ".*" if piece == "…" else re.escape(piece)
            for piece in pieces
        )
        patterns.append(re.compile(regex))
    return patterns


def actual_messages(monkeypatch) -> list[str]:
    """Every kind of message, as merges and analyze word them."""
    from mergekit.options import MergeOptions

    def merge_message(**options) -> str:
        with pytest.raises(DeviceNotAvailableError) as caught:
            device.check_merge_device(MergeOptions(**options))
        return str(caught.value)

    def analyze_message(name: str) -> str:
        with pytest.raises(DeviceNotAvailableError) as caught:
            analyze_models(["a", "b"], device=name, quiet=True)
        return str(caught.value)

    messages = [merge_message(device="gpu"), analyze_message("gpu")]
    with monkeypatch.context() as patched:
        patched.setattr(torch.backends.cuda, "is_built", lambda: False)
        messages += [merge_message(cuda=True), analyze_message("cuda")]
    with monkeypatch.context() as patched:
        cuda_build_without_gpu(patched)
        messages += [merge_message(cuda=True), merge_message(multi_gpu=True)]
    with monkeypatch.context() as patched:
        cuda_build_without_gpu(patched, count=1)
        messages += [merge_message(device="cuda:3"), analyze_message("cuda:3")]
    with monkeypatch.context() as patched:
        patched.setattr(torch.xpu, "is_available", lambda: False)
        messages += [merge_message(device="xpu")]
    return messages


def test_troubleshooting_quotes_every_device_message_and_nothing_else(monkeypatch):
    templates = documented_templates()
    messages = actual_messages(monkeypatch)
    for message in messages:
        assert any(t.match(message) for t in templates), f"not in troubleshooting.md: {message}"
    for template in templates:
        assert any(template.match(m) for m in messages), f"no such message: {template.pattern}"
