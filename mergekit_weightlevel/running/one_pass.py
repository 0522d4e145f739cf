"""Several merges of the same inputs in one pass over them: what a sweep runs.

A sweep is one config merged at several values of one parameter. Each value's merge is
planned by mergekit's own ``MergePlanner`` exactly as it would be alone, into its own
folder; one mergekit ``Executor`` then runs every plan together. mergekit's task graph
merges identical tasks, so each input tensor is loaded once and serves every value; its
schedule takes one tensor name at a time, so what is held at once is one tensor's inputs
and its outputs for every value. Each value is computed by the method's ordinary kernel,
so each output equals the merge at that value alone (bit for bit). A method whose
expensive step does not depend on the value (Timber's decomposition) gets the sweep's
``SweepShare`` and computes every value from one such step (``methods.sweep_share``).

Each value's merge tasks are guarded: a value that fails (a non-finite result, say) stops
only its own output, which keeps its "incomplete" marker with the reason; the others are
written to the end. Then each finished output gets what mergekit's ``run_merge`` gives a
merge after its weights (``config.json``, ``mergekit_config.yml``, the tokenizer, the
architecture's tag-along files: mergekit's own functions, in ``run_merge``'s order) and
what our wrapper adds (generation config, card, no stale weights).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from mergekit.architecture import ModelArchitecture, get_architecture_info
from mergekit.common import ImmutableMap
from mergekit.config import MergeConfiguration
from mergekit.graph import Executor, Task
from mergekit.io.tasks import LoaderCache
from mergekit.multigpu_executor import MultiGPUExecutor
from mergekit.options import MergeOptions
from mergekit.plan import MergePlanner
from mergekit.tokenizer import TokenizerInfo
from pydantic import ConfigDict

from mergekit_weightlevel.errors import WeightLevelConfigError, package_logger
from mergekit_weightlevel.methods.merge_run import current_run
from mergekit_weightlevel.methods.output_files import file_sources
from mergekit_weightlevel.methods.sweep_share import SWEEP_SHARE, SweepShare
from mergekit_weightlevel.running.file_donors import FileDecisions, config_for_mergekit
from mergekit_weightlevel.running.output_folder import (
    complete_output,
    mark_incomplete,
    prepare_output,
    remove_new_weights,
    weight_files,
)

LOG = package_logger(__name__)


@dataclass
class PlannedOutput:
    """One merge of the pass: its config, its folder, the YAML text it records."""

    config: MergeConfiguration
    out_path: Path
    config_text: str
    label: str  # how messages name it, e.g. "lambda 0.4"
    value: float | None = None  # the swept value, when the pass is a sweep


@dataclass(eq=False)
class OutputOutcome:
    """How one output of the pass ended: ``error`` is None when it was written completely."""

    label: str
    error: BaseException | None = None
    tensor: str | None = None  # the tensor whose merge failed
    decisions: FileDecisions | None = field(default=None, repr=False)
    #: Called once, when the output fails (a shared sweep step then stops serving it).
    on_failure: Callable[[], None] | None = field(default=None, repr=False)

    def fail(self, error: BaseException, tensor: str) -> None:
        if self.error is None:
            self.error, self.tensor = error, tensor
            if self.on_failure is not None:
                self.on_failure()

    @property
    def message(self) -> str | None:
        if self.error is None:
            return None
        return f"{self.label}: tensor {self.tensor}: {self.error}"


class GuardedMerge(Task[torch.Tensor | None]):
    """One output's merge of one tensor; a failure stops that output only.

    mergekit's ``SaveTensor`` skips a ``None`` of an optional tensor, so the planner marks
    every tensor optional and this guard says ``required`` for the ones that were not.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    merge: Task
    outcome: OutputOutcome
    tensor: str
    required: bool

    def arguments(self) -> dict[str, Task]:
        return self.merge.arguments()

    def group_label(self) -> str | None:
        return self.merge.group_label()

    def priority(self) -> int:
        return self.merge.priority()

    def uses_accelerator(self) -> bool:
        return self.merge.uses_accelerator()

    def execute(self, **arguments: Any) -> torch.Tensor | None:
        if self.outcome.error is not None:
            return None  # this output already failed: spend nothing more on it
        try:
            result = self.merge.execute(**arguments)
        except Exception as error:  # noqa: BLE001 - recorded, reported, and the output marked
            self.outcome.fail(error, self.tensor)
            return None
        if result is None and self.required:
            self.outcome.fail(RuntimeError("no value for a required tensor"), self.tensor)
        return result


class GuardedPlanner(MergePlanner):
    """mergekit's planner for one output, each tensor's merge guarded by ``GuardedMerge``;
    for a method that shares work between a sweep's values, each merge gets the share."""

    def __init__(
        self, *args: Any, outcome: OutputOutcome, share: SweepShare | None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.outcome = outcome
        self.share = share

    def plan_tensor(self, weight: Any, weights_in: Any, models: Any, cfg_reader: Any) -> None:
        planned = len(self._tensors)
        super().plan_tensor(weight, weights_in, models, cfg_reader)
        if len(self._tensors) == planned:  # an optional tensor no input has
            return
        planned_weight, merge = self._tensors[-1]
        if self.share is not None:
            parameters = ImmutableMap({**dict(merge.parameters.items()), SWEEP_SHARE: self.share})
            merge = merge.model_copy(update={"parameters": parameters})
        guarded = GuardedMerge(
            merge=merge, outcome=self.outcome, tensor=weight.name, required=not weight.optional
        )
        self._tensors[-1] = (planned_weight.model_copy(update={"optional": True}), guarded)


def merge_in_one_pass(
    outputs: Sequence[PlannedOutput],
    options: MergeOptions,
    *,
    share: SweepShare | None = None,
) -> list[OutputOutcome]:
    """Merge every planned output in one pass over their (common) inputs.

    Runs inside the caller's ``MergeRun``, after its whole-config checks. Returns one
    outcome per output; a failed output's partial weights are removed and its folder keeps
    the "incomplete" marker, with the reason.
    """
    import mergekit.merge as stock  # its helpers, as wrapped by ``stock_merge``

    arch_info = get_architecture_info(outputs[0].config, options)
    if getattr(arch_info, "post_fill_parameters", False):
        raise WeightLevelConfigError(
            f"{outputs[0].config.merge_method}: this architecture is completed after the merge "
            "from another repository (mergekit's post_fill_parameters), which a sweep does not "
            "do; merge each value on its own."
        )
    loader_cache = LoaderCache()
    loader_cache.setup(options=options)
    for model in outputs[0].config.referenced_models():  # every output reads the same inputs
        loader_cache.get(model)

    run = current_run()
    outcomes, targets, out_configs, before = [], [], [], []
    for output in outputs:
        outcome = OutputOutcome(output.label)
        if share is not None and output.value is not None:
            outcome.on_failure = functools.partial(share.forget, output.value)
        outcome.decisions = FileDecisions(output.config, file_sources(output.config))
        run.runner = outcome.decisions
        before.append(weight_files(output.out_path))
        prepare_output(output.out_path, options)
        out_config = stock._model_out_config(
            output.config, arch_info, trust_remote_code=options.trust_remote_code
        )
        planner = GuardedPlanner(
            output.config,
            arch_info,
            options=options,
            out_model_config=out_config,
            outcome=outcome,
            share=share,
        )
        targets += planner.plan_to_disk(out_path=str(output.out_path))
        outcomes.append(outcome)
        out_configs.append(out_config)

    tokenizer = None
    for _task, value in _executor(targets, options).run(quiet=options.quiet):
        if isinstance(value, TokenizerInfo):
            tokenizer = value.tokenizer

    for output, outcome, out_config, written in zip(outputs, outcomes, out_configs, before):
        if outcome.error is not None:
            remove_new_weights(output.out_path, written)
            mark_incomplete(output.out_path, f"This output of a sweep failed: {outcome.message}\n")
            LOG.error("%s: not written (%s)", output.out_path, outcome.message)
            continue
        run.runner = outcome.decisions
        chosen = config_for_mergekit(outcome.decisions, options)
        _finish_like_run_merge(output, chosen, out_config, arch_info, tokenizer, options)
        complete_output(outcome.decisions, output.out_path, options, written)
    return outcomes


def _executor(targets: list[Task], options: MergeOptions) -> Any:
    """The executor ``run_merge`` would use for these options."""
    if options.multi_gpu:
        storage = None if options.low_cpu_memory else "cpu"
        return MultiGPUExecutor(targets=targets, storage_device=storage)
    storage = options.device if options.low_cpu_memory else "cpu"
    return Executor(targets=targets, math_device=options.device, storage_device=storage)


def _finish_like_run_merge(
    output: PlannedOutput,
    config: MergeConfiguration,
    out_config: Any,
    arch_info: ModelArchitecture,
    tokenizer: Any,
    options: MergeOptions,
) -> None:
    """What ``run_merge`` writes after the weights, with mergekit's own functions, in its order
    (mergekit's generic card is left out: ``complete_output`` writes the method's); ``config``
    is the one mergekit would run (``file_donors.config_for_mergekit``)."""
    import mergekit.merge as stock

    out = str(output.out_path)
    if tokenizer is not None:
        pad = config.tokenizer.pad_to_multiple_of if config.tokenizer else None
        stock._update_config_vocab(out_config, arch_info, tokenizer, pad_to_multiple_of=pad)
    out_config.save_pretrained(out)
    if options.write_model_card:
        (output.out_path / "mergekit_config.yml").write_text(output.config_text, encoding="utf-8")
    if tokenizer is not None:
        stock._set_chat_template(tokenizer, config)
        tokenizer.save_pretrained(out, safe_serialization=True)
    elif options.copy_tokenizer:
        try:
            stock._copy_tokenizer(config, out, options=options)
        except Exception as error:  # noqa: BLE001 - run_merge logs and goes on, and so do we
            # One line per output (mergekit's run_merge prints a whole traceback each time).
            LOG.warning(
                "no tokenizer was copied into %s (%s: %s): the weights are complete; copy the "
                "tokenizer files from the input, or pass --no-copy-tokenizer",
                out,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )
            LOG.debug("copying the tokenizer failed", exc_info=error)
    elif config.chat_template:
        LOG.warning("Chat template specified but no tokenizer found: not saved in %s.", out)
    stock._copy_tagalong_files(config, out, files=arch_info.tagalong_files or [], options=options)
