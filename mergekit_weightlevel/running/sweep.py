"""Timber λ sweeps: one mergekit run, one decomposition per tensor, one checkpoint per λ.

Users try several λ (0.0–0.4). Each ``timber_spectral`` output is W_B + P_k(D) + λ·(D − P_k(D)),
so the expensive part (the decomposition giving P_k) does not depend on λ. A sweep runs the
ordinary mergekit merge once, for the first λ, with two small additions:

- the ``timber_spectral`` kernel is asked (through ``methods.timber.sweep_hook``, where this
  runner registers its request) for every λ, computes all of them from one decomposition,
  returns the first to mergekit and stashes the others;
- mergekit's ``TensorWriter`` is replaced, for this run only, by ``SweepWriter``: whatever
  mergekit saves (after its own dtype casts) goes to the first output, and the stashed
  tensor for each other λ, cast the same way, goes to that λ's output. Tensors that do not
  depend on λ (1-D, buffers, pass-throughs) are saved to every output as they are.

Afterwards the non-weight files mergekit wrote (config.json, tokenizer, chat template,
generation config) are copied to every output, with that λ's ``mergekit_config.yml`` and
model card. So each output
is exactly what a single ``timber_spectral`` run with that λ writes, produced streaming,
tensor by tensor, through mergekit's loaders and writer.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from mergekit.io import TensorWriter
from mergekit.options import MergeOptions

import mergekit_weightlevel.methods.timber.sweep_hook as sweep_hook
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.method_configs import timber_config
from mergekit_weightlevel.methods.timber.sweep_hook import SweepRequest
from mergekit_weightlevel.running.stock_merge import (
    is_weight_file,
    remove_stale_weights,
    weight_files,
    write_method_card,
)

METHOD = "timber_spectral"


class _Sweep:
    """A sweep's output folders and its request to the Timber kernel (``sweep_hook``)."""

    def __init__(self, lambdas: Sequence[float], out_dirs: Sequence[Path]):
        self.request = SweepRequest(lambdas)
        self.main_dir = str(out_dirs[0])
        self.side_dirs = [str(d) for d in out_dirs[1:]]


class SweepWriter(TensorWriter):
    """mergekit's writer for the first λ, plus one writer per other λ fed from the stash."""

    def __init__(self, out_path: str, sweep: _Sweep, **options: Any):
        super().__init__(out_path, **options)
        self.sweep = sweep
        self.side_writers = [TensorWriter(side, **options) for side in sweep.side_dirs]

    def save_tensor(self, name: str, tensor: torch.Tensor, clone: bool = False) -> None:
        super().save_tensor(name, tensor, clone=clone)
        others = self.sweep.request.take(name)
        for index, writer in enumerate(self.side_writers):
            # The same cast mergekit applied to the first λ's tensor (out_dtype, device).
            side = tensor if others is None else others[index].to(tensor.device, tensor.dtype)
            writer.save_tensor(name, side, clone=clone)

    def finalize(self) -> None:
        super().finalize()
        for writer in self.side_writers:
            writer.finalize()


@contextlib.contextmanager
def _sweeping(sweep: _Sweep) -> Iterator[None]:
    """Install the sweep for one mergekit run: its request to the kernel, and the writer."""
    import mergekit.io.tasks as io_tasks

    original = io_tasks.TensorWriter

    def make_writer(out_path: str, **options: Any) -> TensorWriter:
        if str(out_path) == sweep.main_dir:
            return SweepWriter(out_path, sweep, **options)
        return original(out_path, **options)

    with sweep_hook.sweeping(sweep.request):
        io_tasks.TensorWriter = make_writer
        try:
            yield
        finally:
            io_tasks.TensorWriter = original


def _config_for(config: dict[str, Any], lam: float) -> dict[str, Any]:
    updated = dict(config)
    updated["parameters"] = {**(config.get("parameters") or {}), "lambda": lam}
    return updated


def _check_sweep(
    config: dict[str, Any], lambdas: Sequence[float], out_dirs: Sequence[Path]
) -> None:
    if config.get("merge_method") != METHOD:
        raise WeightLevelConfigError(
            f"{METHOD} sweep: the config's merge_method is {config.get('merge_method')!r}; "
            f"a Timber sweep needs `merge_method: {METHOD}`."
        )
    if not lambdas:
        raise WeightLevelConfigError(f"{METHOD} sweep: give at least one λ value (`--lambdas`).")
    if len(lambdas) != len(out_dirs):
        raise WeightLevelConfigError(
            f"{METHOD} sweep: {len(lambdas)} λ values but {len(out_dirs)} output folders."
        )
    bad = [lam for lam in lambdas if not (lam >= 0.0)]
    if bad:
        raise WeightLevelConfigError(
            f"{METHOD} sweep: parameter `lambda` must be a float ≥ 0, got {bad}."
        )
    if isinstance((config.get("parameters") or {}).get("lambda"), (list, dict)):
        raise WeightLevelConfigError(
            f"{METHOD} sweep: the config sets `lambda` per tensor (a list or filters); a sweep "
            "uses one λ for every tensor. Remove `lambda` from the config's `parameters:`."
        )
    if len({float(lam) for lam in lambdas}) != len(lambdas):
        raise WeightLevelConfigError(f"{METHOD} sweep: λ values repeat: {list(lambdas)}.")
    if len({d.resolve() for d in out_dirs}) != len(out_dirs):
        raise WeightLevelConfigError(f"{METHOD} sweep: output folders repeat.")


def _copy_side_files(main: Path, side: Path, side_yaml: str, options: MergeOptions) -> None:
    """Everything but weights from the first output; the config and card of this λ.

    The card is written anew, as a single run into ``side`` writes it (its title is the
    folder's name, its YAML and λ this output's).
    """
    for item in main.iterdir():
        if is_weight_file(item.name) or item.name == "README.md":
            continue
        target = side / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        elif item.name == "mergekit_config.yml":
            target.write_text(side_yaml, encoding="utf-8")
        else:
            shutil.copy2(item, target)
    write_method_card(side, options)


def sweep_config(
    config: str | Path | dict[str, Any],
    lambdas: Sequence[float],
    out_dirs: Sequence[str | Path],
    options: MergeOptions | None = None,
) -> list[Path]:
    """Run a ``timber_spectral`` YAML config once for every λ; return the output folders.

    Each tensor is decomposed once; output ``i`` equals a single run with ``lambda:
    lambdas[i]`` (bit for bit: the same kernel code computes both).
    """
    from mergekit_weightlevel.running.merging import merge_yaml

    if isinstance(config, (str, Path)):
        config = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    out_paths = [Path(d).resolve() for d in out_dirs]
    lambdas = [float(lam) for lam in lambdas]
    _check_sweep(config, lambdas, out_paths)
    texts = [yaml.safe_dump(_config_for(config, lam), sort_keys=False) for lam in lambdas]
    # The first output is mergekit's own run (cleaned by the run_merge wrapper); the
    # others are written beside it, so their leftovers are removed here.
    side_before = [weight_files(side) for side in out_paths[1:]]
    with _sweeping(_Sweep(lambdas, out_paths)):
        merge_yaml(yaml.safe_load(texts[0]), out_paths[0], options)
    for side, text, before in zip(out_paths[1:], texts[1:], side_before):
        _copy_side_files(out_paths[0], side, text, options or MergeOptions())
        remove_stale_weights(side, before)
    return out_paths


def timber_sweep(
    base: str | Path,
    instruct: str | Path,
    lambdas: Sequence[float],
    out_dirs: Sequence[str | Path],
    *,
    parameters: dict[str, Any] | None = None,
    dtype: str | None = None,
    options: MergeOptions | None = None,
) -> list[Path]:
    """Timber of ``instruct`` against ``base`` for every λ in ``lambdas``, one folder each.

    ``parameters`` are the other ``timber_spectral`` parameters (``scope``,
    ``erank_exponent``, ``solver``); ``dtype`` is mergekit's (default: the checkpoints').
    """
    config = timber_config(base, instruct, parameters=dict(parameters or {}), dtype=dtype)
    return sweep_config(config, lambdas, out_dirs, options)


def sweep_out_dirs(prefix: str | Path, lambdas: Sequence[float]) -> list[Path]:
    """``PREFIX-lambda0.2``-style folder names, one per λ."""
    return [Path(f"{prefix}-lambda{float(lam):g}") for lam in lambdas]
