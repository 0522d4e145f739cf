"""A device that cannot run what was asked for: one line before any work, not a traceback.

``mergekit-yaml --cuda`` on a torch built without CUDA (or on a machine where torch sees no
GPU) gets as far as mergekit's executor: its first task, ``TensorWriterTask``, creates the
output folder (``TensorWriter.__init__``), and the first tensor moved to the GPU then fails
with torch's "Torch not compiled with CUDA enabled" inside a 46-line traceback, leaving an
empty folder behind. ``analyze --device cuda`` would likewise fail at its first tensor.

``check_device`` answers before anything is read or written: whether ``device`` exists for
this torch, and if not, one line saying why (a build without CUDA, no GPU visible, a
``cuda:N`` beyond the GPUs there are, a name torch does not know) and what to do instead.
``check_merge_device`` applies it to mergekit's options (``--cuda``, ``--device``,
``--gpu-rich``, ``--multi-gpu``); ``running.stock_merge`` calls it for every merge, and
``analyze`` for ``--device``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mergekit_weightlevel.errors import WeightLevelModelError

if TYPE_CHECKING:
    from mergekit.options import MergeOptions

#: Where a CUDA build of torch comes from (the fix for a CPU-only build).
TORCH_INSTALL_URL = "https://pytorch.org/get-started/locally/"


class DeviceNotAvailableError(WeightLevelModelError):
    """``--cuda`` / ``--device`` names a device this torch cannot use here."""


def cuda_problem(index: int | None) -> str | None:
    """Why CUDA device ``index`` (None: the current one) cannot be used; None if it can."""
    if not torch.backends.cuda.is_built():
        return (
            f"this torch ({torch.__version__}) is a build without CUDA (CUDA builds: "
            f"{TORCH_INSTALL_URL}), so no CUDA device is available"
        )
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) finds no CUDA "
            "device, so no CUDA device is available (no GPU, no NVIDIA driver, or "
            "CUDA_VISIBLE_DEVICES hides them; `nvidia-smi` shows what the driver sees)"
        )
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        return f"there is no CUDA device {index}: torch finds {count} (cuda:0 to cuda:{count - 1})"
    return None


def device_problem(device: str | torch.device) -> str | None:
    """Why torch cannot compute on ``device`` here; None when it can."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        return f"{str(device)!r} is not a device name torch knows (e.g. cpu, cuda, cuda:1)"
    if parsed.type == "cpu":
        return None
    if parsed.type == "cuda":
        return cuda_problem(parsed.index)
    if parsed.type == "mps":
        available = torch.backends.mps.is_available()
    else:  # xpu and the other accelerators torch has a module for
        backend = getattr(torch, parsed.type, None)
        available = getattr(backend, "is_available", lambda: True)()
    return None if available else f"no {parsed.type} device is available to this torch"


def check_device(device: str | torch.device, *, asked_by: str, instead: str) -> None:
    """Raise ``DeviceNotAvailableError`` when ``device`` cannot be used.

    ``asked_by`` names the option as the user gave it (e.g. ``analyze: --device cuda``),
    ``instead`` says what to do (e.g. ``use --device cpu``); with the cause, one line.
    """
    problem = device_problem(device)
    if problem is not None:
        raise DeviceNotAvailableError(f"{asked_by}: {problem}; {instead}")


def merge_device_option(options: MergeOptions) -> str:
    """The option of mergekit's that chose the device, as the user would have typed it."""
    if options.gpu_rich:
        return "--gpu-rich"
    if options.cuda:
        return "--cuda"
    return f"--device {options.device}"


def check_merge_device(options: MergeOptions) -> None:
    """mergekit's device options (``--cuda``, ``--device``, ``--gpu-rich``, ``--multi-gpu``)
    against this torch and machine, before mergekit creates the output folder."""
    option = merge_device_option(options)
    check_device(
        options.device or "cpu", asked_by=option, instead=f"leave out {option} to merge on the CPU"
    )
    # mergekit's multi-GPU executor spreads the work over every CUDA (or XPU) device.
    if options.multi_gpu and all(device_problem(kind) for kind in ("cuda", "xpu")):
        raise DeviceNotAvailableError(
            f"--multi-gpu: {cuda_problem(None)}; leave out --multi-gpu to merge on the CPU"
        )
