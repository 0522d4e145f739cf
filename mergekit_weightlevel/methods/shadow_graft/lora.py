"""Read a PEFT LoRA adapter lazily and turn it into per-tensor weight deltas.

A PEFT LoRA adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors``.
``open_adapter`` reads the config and the safetensors *header* once per process (the
file stays memory-mapped); ``LoraAdapter.delta(name)`` then reads just the two small
matrices of that tensor and returns PEFT's merge delta:

    Linear:      scaling · (B @ A)          (transposed when ``fan_in_fan_out``, i.e. Conv1D)
    Embedding:   scaling · (B @ A)ᵀ         (``lora_embedding_A`` is r × vocab, ``_B`` dim × r)
    scaling   =  alpha / r                  (alpha / √r with ``use_rslora``)

with ``r`` and ``alpha`` per module from ``rank_pattern`` / ``alpha_pattern`` (PEFT's rule:
a pattern key ``k`` applies to module ``m`` when ``m`` matches ``(.*\\.)?(k)$``, first key wins).

Tensors saved whole (``modules_to_save``, embedding layers saved with
``save_embedding_layers``, biases trained with ``bias: all``) are *full weights*: they can
only be grafted as a difference against the base the adapter was trained on.
Everything the graft cannot apply exactly is a ``WeightLevelConfigError``.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from mergekit_weightlevel.errors import WeightLevelConfigError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
#: The prefix PeftModel puts before the wrapped model's own module names.
PEFT_PREFIX = "base_model.model."

#: adapter_config.json switches whose merge is not ``W + scaling · B @ A`` (or that add
#: weights outside the base model). Each maps to how the error explains it.
UNSUPPORTED_SWITCHES = {
    "use_dora": "DoRA (`use_dora: true`: a learned magnitude rescales each weight column)",
    "lora_bias": "`lora_bias: true` (a trained bias on lora_B)",
    "trainable_token_indices": "trainable token embeddings (`trainable_token_indices`)",
    "target_parameters": "LoRA on raw parameters (`target_parameters`, e.g. MoE experts)",
    "layer_replication": "`layer_replication` (it changes the model's layer structure)",
    "alora_invocation_tokens": "activated LoRA (`alora_invocation_tokens`)",
    "use_qalora": "QA-LoRA (`use_qalora: true`)",
    "use_bdlora": "BD-LoRA (`use_bdlora`)",
    "arrow_config": "Arrow routing (`arrow_config`)",
    "velora_config": "VeLoRA (`velora_config`)",
    "monteclora_config": "MonteCLoRA (`monteclora_config`)",
    "kasa_config": "KaSA (`kasa_config`)",
}

_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A|lora_B)\.weight$")
_EMBEDDING_KEY = re.compile(r"^(?P<module>.+)\.(?P<part>lora_embedding_A|lora_embedding_B)$")


def _error(adapter: str | Path, what: str) -> WeightLevelConfigError:
    return WeightLevelConfigError(f"shadow_graft: adapter {adapter}: {what}")


def pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's rank_pattern / alpha_pattern lookup: first key k with module ~ (.*\\.)?(k)$."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


@dataclass(frozen=True)
class LoraModule:
    """One adapted module: where its matrices are and how to scale their product."""

    module: str  # the model's module name, e.g. model.layers.0.self_attn.q_proj
    a_key: str
    b_key: str
    a_shape: tuple[int, ...]
    b_shape: tuple[int, ...]
    embedding: bool
    transpose: bool  # PEFT transposes B @ A for embeddings and fan_in_fan_out (Conv1D)
    scaling: float

    @property
    def rank(self) -> int:
        return self.a_shape[0]

    @property
    def delta_shape(self) -> tuple[int, int]:
        rows, cols = self.b_shape[0], self.a_shape[1]
        return (cols, rows) if self.transpose else (rows, cols)


@dataclass
class LoraAdapter:
    """A PEFT LoRA adapter, indexed by the model tensor each part changes."""

    path: Path
    config: dict[str, Any]
    #: model tensor name (``<module>.weight``) -> its LoRA matrices
    modules: dict[str, LoraModule]
    #: model tensor name -> key of a tensor saved whole in the adapter file
    full_weights: dict[str, str]
    _file: Any = field(repr=False, default=None)

    @property
    def base_model_name(self) -> str | None:
        return self.config.get("base_model_name_or_path")

    def targets(self) -> list[str]:
        """Every model tensor this adapter changes."""
        return sorted({*self.modules, *self.full_weights})

    def check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """Raise if the LoRA matrices for ``name`` cannot produce a delta of ``shape``."""
        module = self.modules[name]
        if tuple(shape) != module.delta_shape:
            hint = ""
            if self.config.get("fan_in_fan_out") and not module.embedding:
                hint = (
                    " The adapter sets `fan_in_fan_out: true`, which only applies to "
                    "Conv1D weights stored (in, out), e.g. GPT-2; PEFT turns it off for "
                    "nn.Linear layers: set it to false in adapter_config.json."
                )
            raise _error(
                self.path,
                f"its LoRA matrices for {name} (A {list(module.a_shape)}, B "
                f"{list(module.b_shape)}, rank {module.rank}) give a delta of shape "
                f"{list(module.delta_shape)}, but the model tensor has shape {list(shape)}. "
                f"Was the adapter trained on a model of this architecture and size?{hint}",
            )

    def delta(self, name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        """PEFT's merge delta scaling · B @ A for model tensor ``name`` (None if not adapted)."""
        module = self.modules.get(name)
        if module is None:
            return None
        a = self._file.get_tensor(module.a_key).to(dtype)
        b = self._file.get_tensor(module.b_key).to(dtype)
        product = (b @ a) * module.scaling
        return product.T if module.transpose else product

    def full_weight(self, name: str) -> torch.Tensor | None:
        """The tensor saved whole for ``name`` (modules_to_save and the like), if any."""
        key = self.full_weights.get(name)
        return None if key is None else self._file.get_tensor(key)


def _module_name(key: str) -> str:
    return key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key


def _read_config(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_FILE
    if not path.is_dir():
        raise _error(
            path,
            "no such folder. `adapter` must be a local folder holding a PEFT LoRA adapter "
            f"({CONFIG_FILE} and {WEIGHTS_FILE}); download Hub adapters first "
            "(`huggingface-cli download ORG/ADAPTER --local-dir DIR`).",
        )
    if not config_path.is_file():
        raise _error(path, f"{CONFIG_FILE} is missing; is this a PEFT adapter folder?")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise _error(path, f"cannot read {CONFIG_FILE}: {error}") from None
    if not isinstance(config, dict):
        raise _error(path, f"{CONFIG_FILE} is not a JSON object")
    return config


def check_supported(path: Path, config: dict[str, Any]) -> None:
    """Refuse adapter kinds and options whose merge the graft cannot reproduce exactly."""
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise _error(
            path,
            f"peft_type is {config.get('peft_type')!r}; shadow_graft grafts LoRA adapters "
            "only. Merge this adapter into its base with PEFT and graft the merged model as "
            "a donor instead.",
        )
    used = [reason for key, reason in UNSUPPORTED_SWITCHES.items() if config.get(key)]
    if used:
        raise _error(
            path,
            "uses " + "; ".join(used) + ", which shadow_graft cannot apply as "
            "W + scaling · B @ A. Merge the adapter into the base with PEFT "
            "(merge_and_unload) and graft the merged model as a donor instead.",
        )


def _index_tensors(path: Path, config: dict[str, Any], file: Any) -> LoraAdapter:
    parts: dict[str, dict[str, str]] = {}
    kinds: dict[str, bool] = {}
    full_weights: dict[str, str] = {}
    for key in file.keys():  # noqa: SIM118 (safe_open is not a dict)
        if match := _LORA_KEY.match(key) or _EMBEDDING_KEY.match(key):
            module = _module_name(match["module"])
            part = match["part"].replace("lora_embedding_", "lora_")
            parts.setdefault(module, {})[part] = key
            kinds[module] = match["part"].startswith("lora_embedding")
        elif ".lora_" in key or "lora_magnitude_vector" in key:
            raise _error(
                path,
                f"{WEIGHTS_FILE} holds {key}, a LoRA tensor shadow_graft does not know "
                "how to merge. Merge the adapter with PEFT and graft the merged model as a donor.",
            )
        else:
            # Saved whole (modules_to_save, save_embedding_layers, bias: all).
            full_weights[_module_name(key).replace(".base_layer.", ".")] = key

    rslora = bool(config.get("use_rslora"))
    fan_in_fan_out = bool(config.get("fan_in_fan_out"))
    rank_pattern = config.get("rank_pattern") or {}
    alpha_pattern = config.get("alpha_pattern") or {}
    modules: dict[str, LoraModule] = {}
    for module, keys in parts.items():
        if set(keys) != {"lora_A", "lora_B"}:
            raise _error(path, f"module {module} has only {sorted(keys)}; need lora_A and lora_B")
        a_shape = tuple(file.get_slice(keys["lora_A"]).get_shape())
        b_shape = tuple(file.get_slice(keys["lora_B"]).get_shape())
        rank = pattern_value(rank_pattern, module, config.get("r"))
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
            raise _error(
                path,
                f"module {module}: lora_A {list(a_shape)} and lora_B {list(b_shape)} "
                "are not a rank-r pair (A r × in, B out × r)",
            )
        if rank is not None and int(rank) != a_shape[0]:
            raise _error(
                path,
                f"module {module}: its matrices have rank {a_shape[0]}, but {CONFIG_FILE} "
                f"says r = {rank} for it (`r` / `rank_pattern`). The config does not belong "
                "to these weights.",
            )
        alpha = float(pattern_value(alpha_pattern, module, config.get("lora_alpha", 8)))
        r = a_shape[0]
        embedding = kinds[module]
        modules[f"{module}.weight"] = LoraModule(
            module=module,
            a_key=keys["lora_A"],
            b_key=keys["lora_B"],
            a_shape=a_shape,
            b_shape=b_shape,
            embedding=embedding,
            transpose=embedding or fan_in_fan_out,
            scaling=alpha / math.sqrt(r) if rslora else alpha / r,
        )
    return LoraAdapter(
        path=path, config=config, modules=modules, full_weights=full_weights, _file=file
    )


@lru_cache(maxsize=16)
def _open_cached(path: str, stamp: tuple[int, int]) -> LoraAdapter:
    folder = Path(path)
    config = _read_config(folder)
    check_supported(folder, config)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise _error(
            folder,
            f"{WEIGHTS_FILE} is missing (found: {found}). Re-save the adapter with "
            "`save_pretrained(..., safe_serialization=True)`; .bin adapters cannot be read lazily.",
        )
    file = safe_open(str(weights), framework="pt", device="cpu")
    adapter = _index_tensors(folder, config, file)
    if not adapter.modules and not adapter.full_weights:
        raise _error(folder, f"{WEIGHTS_FILE} holds no LoRA weights")
    return adapter


def open_adapter(path: str | os.PathLike[str]) -> LoraAdapter:
    """The adapter at ``path``, opened once per process (re-opened if its files change)."""
    folder = Path(path).expanduser()
    stamp = tuple(
        (folder / name).stat().st_mtime_ns if (folder / name).exists() else 0
        for name in (CONFIG_FILE, WEIGHTS_FILE)
    )
    return _open_cached(str(folder.resolve()) if folder.exists() else str(folder), stamp)


def save_lora_adapter(
    folder: str | os.PathLike[str],
    matrices: dict[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    base_model_name_or_path: str,
    lora_alpha: float,
) -> Path:
    """Write ``{module: (A, B)}`` as a PEFT LoRA adapter folder (Linear modules, one rank).

    For the demo and the examples, where PEFT need not be installed; PEFT loads the
    result (the tests check that ``PeftModel.from_pretrained`` merges it as we do).
    """
    from safetensors.torch import save_file

    ranks = {a.shape[0] for a, _ in matrices.values()}
    if len(ranks) != 1:
        raise ValueError(f"save_lora_adapter writes one rank for all modules, got {sorted(ranks)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for module, (a, b) in matrices.items():
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = a.contiguous()
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = b.contiguous()
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "base_model_name_or_path": base_model_name_or_path,
        "r": ranks.pop(),
        "lora_alpha": lora_alpha,
        "target_modules": sorted({m.rsplit(".", 1)[-1] for m in matrices}),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "rank_pattern": {},
        "alpha_pattern": {},
        "modules_to_save": None,
        "task_type": "CAUSAL_LM",
        "inference_mode": True,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder
