"""What the four merge methods share: error messages, parameter checks, roles, dtypes.

Each method is a mergekit ``GroupMergeMethod`` with a declarative ``MergeMethodSpec``
(see ``paramdelta.py`` for the smallest one). This module keeps the parts that would
otherwise be written four times.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from mergekit.merge_methods.base import (
    GroupMergeMethod,
    MergeMethodSpec,
    ParameterScope,
    ParameterSpec,
    PerInputValues,
    TensorEntry,
    TensorGroup,
)

from mergekit_weightlevel.checks.headers import check_inputs
from mergekit_weightlevel.errors import WeightLevelConfigError, package_logger
from mergekit_weightlevel.methods.declaration import MethodDeclaration
from mergekit_weightlevel.methods.input_groups import PER_TENSOR, InputGroup, input_groups
from mergekit_weightlevel.methods.merge_run import current_run
from mergekit_weightlevel.numerics.pair_statistics import sigma

LOG = package_logger(__name__)


def model_label(model_id: Hashable) -> str:
    """How a model is named in messages: the path / Hub id mergekit was given."""
    return str(model_id)


@dataclass(frozen=True)
class RoleSplit:
    """A tensor group sorted by role: the base, the model receiving deltas, the donors."""

    base: TensorEntry
    target: TensorEntry
    donors: tuple[TensorEntry, ...]


ROLE_TARGET = "target"
ROLE_DONOR = "donor"
ROLES = (None, ROLE_TARGET, ROLE_DONOR)


def sort_roles(
    base: Hashable | None,
    role: Mapping[Hashable, Any],
    non_base: Sequence[Hashable],
    *,
    method: str,
    usage: str,
    tensor: str | None = None,
) -> tuple[Hashable, list[Hashable]]:
    """(the target, the donors) among ``non_base``, or explain what is wrong with the roles.

    ``role`` maps each input, the base included (so that a role put on the base by mistake
    is seen instead of silently ignored), to its `role`. ``usage`` is one line that says how
    the method expects its models to be configured. The merge of each tensor and the
    whole-config check before the merge both sort with this, so they say the same.
    """
    if base is None:
        where = f" for tensor {tensor}" if tensor else ""
        raise WeightLevelConfigError(f"{method}: no base_model{where}. {usage}")
    if role.get(base) is not None:
        raise WeightLevelConfigError(
            f"{method}: the base model {model_label(base)} has `role: {role[base]}`, "
            f"but the base cannot take a role. {usage}"
        )
    targets = [m for m in non_base if role.get(m) == ROLE_TARGET]
    donors = [m for m in non_base if role.get(m) != ROLE_TARGET]
    if not targets:
        raise WeightLevelConfigError(
            f"{method}: no model has `role: target` (models: "
            f"{', '.join(model_label(m) for m in non_base)}). {usage}"
        )
    if len(targets) > 1:
        raise WeightLevelConfigError(
            f"{method}: {len(targets)} models have `role: target` "
            f"({', '.join(model_label(m) for m in targets)}); exactly one may. {usage}"
        )
    if not donors:
        raise WeightLevelConfigError(
            f"{method}: no donor model besides the target {model_label(targets[0])}. {usage}"
        )
    return targets[0], donors


def split_roles(group: TensorGroup, role: PerInputValues, *, method: str, usage: str) -> RoleSplit:
    """Sort a tensor group into base / target / donors (``sort_roles``), or explain."""
    base = group.base
    by_id = {entry.id: entry for entry in group.non_base}
    target, donors = sort_roles(
        None if base is None else base.id,
        role,
        list(by_id),
        method=method,
        usage=usage,
        tensor=group.metadata.name or "<tensor>",
    )
    base_entry = cast(TensorEntry, base)  # sort_roles raised if there was none
    return RoleSplit(base_entry, target=by_id[target], donors=tuple(by_id[d] for d in donors))


def compute_dtype(group: TensorGroup) -> torch.dtype:
    """float32 at least; float64 when an input is float64 (never half precision)."""
    if any(entry.tensor.dtype == torch.float64 for entry in group.entries):
        return torch.float64
    return torch.float32


#: Set to 1 to let NaN / Inf through a merge (with a warning) instead of stopping it.
ALLOW_NONFINITE_ENV = "MERGEKIT_WEIGHTLEVEL_ALLOW_NONFINITE"
#: σ above this between the base and another input means "not a base / post-trained pair":
#: post-training measures 0.004–0.06 (Shadow-FT Fig. 1, arXiv 2510.10977 Table 1), while
#: unrelated checkpoints of one architecture measure 0.5 and more.
PAIR_SIGMA_WARNING = 0.25
#: How many matrices per (method, base, model) pair are sampled for that σ.
PAIR_SIGMA_SAMPLES = 2
#: At most this many evenly spaced elements of a matrix enter that σ (a warning threshold
#: of 0.25 against typical values of 0.004–0.06 needs no more, and the check stays O(1)).
PAIR_SIGMA_MAX_ELEMENTS = 1 << 16


def preflight_key(method: str, models: Sequence[Hashable]) -> tuple:
    """The key under which a merge records that the headers of ``models`` were checked.

    The whole-config checks record it too: they know whether the config aligns
    vocabularies, which the per-tensor check cannot; running it again would repeat their
    findings with less knowledge.
    """
    return ("headers", method, frozenset(models))


def _allow_nonfinite() -> bool:
    return os.environ.get(ALLOW_NONFINITE_ENV, "").strip().lower() not in ("", "0", "false", "no")


#: Shared by every method: which input the output's non-weight files come from
#: (``output_files``). The kernels never read them; the whole-config checks validate them.
OUTPUT_FILE_PARAMETERS = (
    ParameterSpec(
        "config_from",
        str | None,
        ParameterScope.SHARED,
        default=None,
        description="model (as written in the config) or `base` whose config.json the output "
        "gets; default: the model the output stands for (docs/methods/)",
    ),
    ParameterSpec(
        "tokenizer_from",
        str | None,
        ParameterScope.SHARED,
        default=None,
        description="model (as written in the config) or `base` whose tokenizer, chat template "
        "and generation_config.json the output gets; default: see docs/methods/",
    ),
)


class WeightLevelMethod(GroupMergeMethod):
    """A group merge method that checks its inputs and outputs, and names the fix.

    On top of mergekit's ``GroupMergeMethod`` it adds, for every method of this package:
    structure errors that name the method and say how to configure it; header-level
    preflight of the checkpoints when mergekit plans the merge; a refusal to return
    NaN / Inf; a warning when the models do not look like a base / post-trained pair.
    """

    spec: MergeMethodSpec
    #: Everything else the package knows about the method (``methods.declaration``).
    declaration: MethodDeclaration
    #: One sentence on how the models must be configured, appended to every error.
    usage: str = ""
    #: The parameter along which a sweep's values share an expensive step (None: none): a
    #: sweep of it gives the kernel its ``SweepShare`` (``methods.sweep_share``), and the
    #: kernel computes every value from one such step.
    sweep_shares_work_along: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Every method takes the output-file parameters; its own spec declares only its math.
        cls.spec = dataclasses.replace(
            cls.spec, parameters=(*cls.spec.parameters, *OUTPUT_FILE_PARAMETERS)
        )

    def validate_inputs(
        self,
        input_ids: Sequence[Hashable],
        base_id: Hashable | None = None,
        *,
        group_name: str | None = None,
    ) -> None:
        self.check_contract(input_ids, base_id, group_name=group_name)
        self._preflight(input_ids, base_id)

    def check_contract(
        self,
        input_ids: Sequence[Hashable],
        base_id: Hashable | None = None,
        *,
        group_name: str | None = None,
    ) -> None:
        """mergekit's input contract (a base, how many other models), naming the method."""
        try:
            super().validate_inputs(input_ids, base_id, group_name=group_name)
        except ValueError as error:
            models = ", ".join(model_label(i) for i in input_ids) or "none"
            base = model_label(base_id) if base_id is not None else "none"
            raise WeightLevelConfigError(
                f"{self.spec.name}: {error} (base_model: {base}; models: {models}). {self.usage}"
            ) from None

    # --- whole-config checks, before anything is read (``running.config_checks``) -------

    def check_config_structure(self, merge_config: Any) -> None:
        """What the config alone says is wrong, found before mergekit reads a model or
        creates the output folder: each group of inputs against the input contract, then
        its roles. Planning and the first tensor would find the same, later."""
        for group in input_groups(merge_config):
            self.check_contract(group.inputs, group.base)
            if PER_TENSOR not in group.roles.values():
                self.check_group_roles(group, merge_config)

    def check_group_roles(self, group: InputGroup, merge_config: Any) -> None:
        """The roles of one group of inputs (methods with a `role: target` model)."""
        if self.declaration.roles.target is not None:
            sort_roles(
                group.base, group.roles, group.non_base, method=self.spec.name, usage=self.usage
            )

    def check_config_inputs(self, merge_config: Any) -> None:
        """What the config and the inputs' headers say is wrong, before any tensor is read;
        runs after the header checks. Nothing by default."""

    def _preflight(self, input_ids: Sequence[Hashable], base_id: Hashable | None) -> None:
        """Header checks of real checkpoints, once per merge (mergekit calls us per tensor)."""
        # Imported here: mergekit.common pulls in mergekit.io, which `import
        # mergekit_weightlevel` should not (registration stays light).
        from mergekit.common import ModelReference

        if not all(isinstance(i, ModelReference) for i in input_ids):
            return  # the in-memory API: there are no files to check
        run = current_run()
        key = preflight_key(self.spec.name, input_ids)
        if key in run.checked:
            return
        ordered = ([base_id] if base_id in input_ids else []) + [
            i for i in input_ids if i != base_id
        ]
        check_inputs(ordered, method=self.spec.name)
        run.checked.add(key)

    def _execute(self, groups, parameters, options, *, input_dtypes, out_dtype=None):
        policy = current_run().threads
        if policy is not None:
            policy.update()  # between tensors: the CPUs other processes leave free
        results = super()._execute(
            groups, parameters, options, input_dtypes=input_dtypes, out_dtype=out_dtype
        )
        for group, result in zip(groups, results):
            self._check_pair_sigma(group)
            if result is not None and result.is_floating_point():
                self._check_finite(group, result)
        return results

    def _check_finite(self, group: TensorGroup, result: torch.Tensor) -> None:
        """Never return NaN / Inf silently: name the input(s) that carry them."""
        if all_finite(result):
            return
        tensor = group.metadata.name or "<tensor>"
        culprits = [
            model_label(e.id) for e in group.entries if not bool(torch.isfinite(e.tensor).all())
        ]
        where = (
            f"input model(s) {', '.join(culprits)} contain NaN/Inf in it"
            if culprits
            else "the inputs are finite, so the arithmetic overflowed (fp16 output?)"
        )
        message = (
            f"{self.spec.name}: the merged tensor {tensor} has NaN/Inf values: {where}. "
            f"Fix or exclude that checkpoint; set {ALLOW_NONFINITE_ENV}=1 to write it anyway."
        )
        if not _allow_nonfinite():
            raise WeightLevelConfigError(message)
        LOG.warning(message)

    def _check_pair_sigma(self, group: TensorGroup) -> None:
        """Warn once when the base and another input are far apart (not a post-trained pair)."""
        base = group.base
        if base is None or base.tensor.ndim < 2:
            return
        samples = current_run().pair_samples
        for entry in group.non_base:
            key = (self.spec.name, base.id, entry.id)
            seen = samples.get(key, 0)
            if seen >= PAIR_SIGMA_SAMPLES:
                continue
            samples[key] = seen + 1
            if entry.tensor.shape != base.tensor.shape:
                continue
            measured = sigma(evenly_spaced(base.tensor), evenly_spaced(entry.tensor))
            if measured > PAIR_SIGMA_WARNING:
                samples[key] = PAIR_SIGMA_SAMPLES  # one warning per merge and pair is enough
                LOG.warning(
                    "%s: σ(%s, %s) = %.3f on %s, far above the 0.004–0.06 measured between a "
                    "base and its post-trained versions. This method assumes %s was trained "
                    "from (or is a sibling of) the base %s; check the model paths.",
                    self.spec.name,
                    model_label(base.id),
                    model_label(entry.id),
                    measured,
                    group.metadata.name,
                    model_label(entry.id),
                    model_label(base.id),
                )


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every element is finite, with one reduction in the common (finite) case.

    A sum is NaN / ±Inf whenever an element is (NaN and Inf propagate through every
    partial sum), so a finite sum proves the tensor finite; it is ~5× cheaper than
    ``isfinite(t).all()``, which writes a boolean tensor. A non-finite sum may also be
    an overflow of finite values: the exact elementwise check decides then.
    """
    accumulate = torch.float32 if tensor.dtype in (torch.float16, torch.bfloat16) else None
    if bool(torch.isfinite(tensor.sum(dtype=accumulate))):
        return True
    return bool(torch.isfinite(tensor).all())


def evenly_spaced(tensor: torch.Tensor, count: int = PAIR_SIGMA_MAX_ELEMENTS) -> torch.Tensor:
    """At most ``count`` elements taken at a fixed stride over the flattened tensor (a view)."""
    flat = tensor.reshape(-1)
    stride = max(1, flat.numel() // count)
    return flat[::stride][:count]
