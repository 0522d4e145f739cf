"""The sweep of every method along its own axis: one pass over the inputs, and each output
equal to the merge at that value on its own (mergekit's own YAML path, ``run_merge``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from helpers import read_state, run_yaml_merge, write_config
from mergekit.io.lazy_tensor_loader import LazyTensorLoader
from mergekit.options import MergeOptions

from mergekit_weightlevel import method_configs
from mergekit_weightlevel.checks.model_folder import INCOMPLETE_MARKER
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.demo.tiny_models import build_family
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.methods.timber import decomposition
from mergekit_weightlevel.running.merging import merge_yaml
from mergekit_weightlevel.running.sweep import plan_sweep, sweep, sweep_out_dirs


def configs(family) -> dict[str, dict]:
    """One standard config per method, its swept parameter left to the sweep."""
    return {
        "paramdelta": method_configs.paramdelta_config(
            family.base, family.instruct, family.base_v2, dtype="float32"
        ),
        "shadow_graft": method_configs.shadow_graft_config(
            family.base, family.base_tuned, family.instruct, dtype="float32"
        ),
        "timber_spectral": method_configs.timber_config(
            family.base, family.instruct, dtype="float32"
        ),
        "instruct_thinking_interp": method_configs.interp_config(
            family.instruct, family.thinking, 0.5, dtype="float32"
        ),
    }


#: Three values of each method's axis, the default axis of each.
VALUES = {
    "paramdelta": [0.5, 1.0, 1.5],
    "shadow_graft": [0.5, 1.0, 2.0],
    "timber_spectral": [0.0, 0.2, 1.0],
    "instruct_thinking_interp": [0.2, 0.45, 0.8],
}
AXIS = {
    "paramdelta": "weight",
    "shadow_graft": "weight",
    "timber_spectral": "lambda",
    "instruct_thinking_interp": "lambda",
}


def single_config(config: dict, method: str, value: float) -> dict:
    """The config a user would write for one value: λ at the top, or `weight` on the donors."""
    return method_configs.with_value(
        config, AXIS[method], value, per_donor=AXIS[method] == "weight"
    )


def non_weight_files(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in folder.iterdir()
        if p.is_file() and not p.name.endswith(".safetensors") and p.name != "README.md"
    }


@pytest.mark.parametrize("method", sorted(VALUES))
def test_each_output_equals_its_own_merge_bit_for_bit(method, llama_family, tmp_path):
    config = configs(llama_family)[method]
    values = VALUES[method]
    options = MergeOptions(quiet=True, copy_tokenizer=True)
    outputs = sweep(config, values, tmp_path / "sweep", options=options)
    assert [o.folder for o in outputs] == [
        d.resolve() for d in sweep_out_dirs(tmp_path / "sweep", values, AXIS[method])
    ]
    assert all(o.error is None for o in outputs)
    states = []
    for value, output in zip(values, outputs):
        alone = tmp_path / f"alone{value:g}"
        single = run_yaml_merge(single_config(config, method, value), alone, copy_tokenizer=True)
        swept = read_state(output.folder)
        states.append(swept)
        assert set(swept) == set(single)
        for name in single:
            assert torch.equal(swept[name], single[name]), (value, name)
        # The same folder as the merge alone: config, tokenizer, generation config, the YAML
        # with its value (the card's title is the folder's name, so it is compared apart).
        assert non_weight_files(output.folder) == non_weight_files(alone)
        card = (output.folder / "README.md").read_text(encoding="utf-8")
        assert f"{value:g}" in card and output.folder.name in card
        assert not (output.folder / INCOMPLETE_MARKER).exists()
    # The values really differ (each output got its own value).
    name = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(states[0][name], states[-1][name])


def test_each_tensor_is_read_once_and_decomposed_once(llama_family, tmp_path, monkeypatch):
    reads: dict[tuple[str, str], int] = {}
    original_get = LazyTensorLoader.get_tensor

    def counting_get(self, key, *args, **kwargs):
        where = (str(self.index.base_path), key)
        reads[where] = reads.get(where, 0) + 1
        return original_get(self, key, *args, **kwargs)

    splits = []
    original_split = decomposition.split_delta

    def counting_split(delta, **kwargs):
        splits.append(kwargs["name"])
        return original_split(delta, **kwargs)

    monkeypatch.setattr(LazyTensorLoader, "get_tensor", counting_get)
    monkeypatch.setattr("mergekit_weightlevel.methods.timber.kernel.split_delta", counting_split)
    config = configs(llama_family)["timber_spectral"]
    outputs = sweep(config, [0.0, 0.2, 0.4, 0.6], tmp_path / "t", options=MergeOptions(quiet=True))
    assert all(o.error is None for o in outputs)
    assert reads and set(reads.values()) == {1}  # every tensor of both inputs, once
    matrices = [n for n, t in read_state(llama_family.base).items() if t.ndim >= 2]
    assert sorted(splits) == sorted(matrices)  # one decomposition per matrix for four λ


def test_a_failing_value_leaves_the_others_written(llama_family, tmp_path):
    # float16 weights: ParamΔ's delta × 1e6 overflows to inf for the second value only.
    config = method_configs.paramdelta_config(
        llama_family.base, llama_family.instruct, llama_family.base_v2, dtype="float16"
    )
    outputs = sweep(config, [1.0, 1e6, 0.5], tmp_path / "p", options=MergeOptions(quiet=True))
    good, bad, also_good = outputs
    assert bad.error is not None and "NaN/Inf" in bad.error
    assert good.error is None and also_good.error is None
    assert not list(bad.folder.glob("*.safetensors"))  # no partial weights to mistake
    assert "failed" in (bad.folder / INCOMPLETE_MARKER).read_text(encoding="utf-8")
    single = run_yaml_merge(single_config(config, "paramdelta", 0.5), tmp_path / "alone")
    swept = read_state(also_good.folder)
    assert all(torch.equal(swept[n], single[n]) for n in single)


def test_per_donor_axis_applies_to_every_donor(llama_family, tmp_path):
    family = llama_family
    config = method_configs.paramdelta_config(
        family.base, [(family.instruct, 1.0), (family.thinking, 0.3)], family.base_v2,
        dtype="float32",
    )  # fmt: skip
    request = plan_sweep(config, [0.5], out_prefix=tmp_path / "p")
    donors = [m for m in request.configs[0]["models"] if m["parameters"].get("role") != "target"]
    assert [m["parameters"]["weight"] for m in donors] == [0.5, 0.5]
    target = next(m for m in request.configs[0]["models"] if m["parameters"].get("role"))
    assert "weight" not in target["parameters"]


def test_another_parameter_can_be_swept(llama_family, tmp_path):
    config = configs(llama_family)["timber_spectral"]
    outputs = sweep(
        config, [0.5, 2.0], tmp_path / "t", parameter="erank_exponent",
        options=MergeOptions(quiet=True),
    )  # fmt: skip
    assert [o.folder.name for o in outputs] == ["t-erank_exponent0.5", "t-erank_exponent2"]
    single = run_yaml_merge({**config, "parameters": {"erank_exponent": 2.0}}, tmp_path / "alone")
    swept = read_state(outputs[1].folder)
    assert all(torch.equal(swept[n], single[n]) for n in single)


@pytest.mark.parametrize(
    ("method", "parameter", "values", "message"),
    [
        ("instruct_thinking_interp", None, [0.5, 1.5], r"`lambda` must be a float in \[0, 1\]; not 1.5"),
        ("timber_spectral", "scope", [0.5], r"`scope` is not a numeric parameter .* `lambda`, `erank_exponent`"),
        ("paramdelta", None, [0.5, 0.5], r"values repeat"),
        ("timber_spectral", None, [0.2, float("inf")], r"values must be finite numbers"),
        ("paramdelta", None, [1.0, float("nan")], r"values must be finite numbers"),
    ],
)  # fmt: skip
def test_bad_sweeps_fail_before_any_work(
    llama_family, tmp_path, method, parameter, values, message
):
    config = configs(llama_family)[method]
    with pytest.raises(WeightLevelConfigError, match=message):
        plan_sweep(config, values, out_prefix=tmp_path / "x", parameter=parameter)
    assert not list(tmp_path.iterdir())


def test_a_per_tensor_setting_of_the_axis_is_refused(llama_family, tmp_path):
    config = configs(llama_family)["instruct_thinking_interp"]
    config["parameters"] = {"lambda": [{"filter": "self_attn", "value": 0.0}, {"value": 0.8}]}
    with pytest.raises(WeightLevelConfigError, match=r"sets `lambda` per tensor \(filters"):
        plan_sweep(config, [0.2, 0.4], out_prefix=tmp_path / "x")


def test_cli_sweeps_any_method_and_defaults_to_its_grid(llama_family, tmp_path):
    config = write_config(tmp_path / "i.yml", configs(llama_family)["instruct_thinking_interp"])
    result = CliRunner().invoke(
        main, ["sweep", str(config), str(tmp_path / "interp"), "--values", "0.4,0.45"]
    )
    assert result.exit_code == 0, result.output
    assert "lambda 0.45: " in result.output
    saved = yaml.safe_load((tmp_path / "interp-lambda0.45" / "mergekit_config.yml").read_text())
    assert saved["parameters"]["lambda"] == 0.45
    request = plan_sweep(configs(llama_family)["paramdelta"], out_prefix=tmp_path / "p")
    assert request.values == (0.25, 0.5, 0.75, 1.0)  # ParamΔ's declared grid


def test_two_merges_in_one_process_each_check_and_warn_as_if_alone(
    llama_family, qwen2_sharded_family, tmp_path, monkeypatch, caplog
):
    """No memory carries from one merge to the next: headers are checked and the
    unrelated-pair warning is given by every merge, whatever ran before it."""
    checked = []
    import mergekit_weightlevel.checks.headers as headers

    original = headers.check_inputs

    def counting(models, **kwargs):
        checked.append(kwargs["method"])
        return original(models, **kwargs)

    monkeypatch.setattr(headers, "check_inputs", counting)
    # Timber of two unrelated models (the llama Base against another family's) warns.
    stranger = build_family(tmp_path / "stranger", seed=7).instruct
    unrelated = method_configs.timber_config(llama_family.base, stranger, 0.2, dtype="float32")
    paramdelta = configs(qwen2_sharded_family)["paramdelta"]
    options = MergeOptions(quiet=True)
    for run, config in enumerate([unrelated, paramdelta, unrelated]):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            merge_yaml(config, tmp_path / f"out{run}", options)
        warned = [r for r in caplog.records if "far above the 0.004" in r.getMessage()]
        assert bool(warned) == (config is unrelated), run
    assert checked == ["timber_spectral", "paramdelta", "timber_spectral"]


def test_a_rerun_reuses_finished_outputs_and_redoes_the_rest(llama_family, tmp_path, monkeypatch):
    import os

    import mergekit_weightlevel.running.one_pass as one_pass

    config = configs(llama_family)["instruct_thinking_interp"]
    options = MergeOptions(quiet=True)
    first = sweep(config, [0.2, 0.4, 0.6], tmp_path / "i", options=options)
    # An interrupted value: its marker is back (as after Ctrl-C); another value's weights
    # are older than an input that changed since.
    (first[1].folder / INCOMPLETE_MARKER).write_text("interrupted", encoding="utf-8")
    merged: list[list[float]] = []
    original = one_pass.merge_in_one_pass

    def recording(outputs, *args, **kwargs):
        merged.append([o.value for o in outputs])
        return original(outputs, *args, **kwargs)

    monkeypatch.setattr(one_pass, "merge_in_one_pass", recording)
    again = sweep(config, [0.2, 0.4, 0.6, 0.8], tmp_path / "i", options=options)
    assert merged == [[0.4, 0.8]]  # 0.2 and 0.6 were complete and current
    assert [o.reused for o in again] == [True, False, True, False]
    assert not (again[1].folder / INCOMPLETE_MARKER).exists()

    newer = max(p.stat().st_mtime_ns for p in again[3].folder.iterdir()) + 10**9
    for item in llama_family.thinking.iterdir():  # the Thinking model "retrained" since
        os.utime(item, ns=(newer, newer))
    merged.clear()
    sweep(config, [0.2, 0.4], tmp_path / "i", options=options)
    assert merged == [[0.2, 0.4]]  # nothing is current any more


TOY = Path(__file__).resolve().parent.parent / "examples" / "toy"


def test_sweep_with_eval_evaluates_chooses_and_reports(tmp_path, monkeypatch):
    """`sweep … --eval`: every output and the axis' ends evaluated as `evaluate` does, a value
    chosen by the rule, the report written."""
    import json

    from mergekit_weightlevel.evaluation.evaluate import evaluate_folders

    monkeypatch.setenv("MERGEKIT_WEIGHTLEVEL_CACHE", str(tmp_path / "cache"))
    config = yaml.safe_load((TOY / "instruct_thinking_interp.yml").read_text())
    config["base_model"], config["models"][0]["model"] = (
        str(TOY / "models/instruct"),
        str(TOY / "models/thinking"),
    )
    path = write_config(tmp_path / "toy.yml", config)
    prefix = tmp_path / "toy"
    arguments = ["sweep", str(path), str(prefix), "--values", "0.2,0.8", "--eval", "toy_qa_add3"]
    arguments += ["--limit", "20", "--batch-size", "32"]
    arguments += ["--select", "toy_qa_add3:reasoning", "--within", "5"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "toy-sweep.json").read_text())
    assert [row["value"] for row in report["values"]] == [0.2, 0.8]
    assert [row["name"] for row in report["references"]] == ["Instruct", "Thinking"]
    assert (tmp_path / "toy-sweep.html").is_file()
    # The numbers are those `evaluate` gives on the same folder.
    alone = evaluate_folders(
        [tmp_path / "toy-lambda0.8"], ["toy_qa_add3"], limit=20, batch_size=32, log=quiet,
        device="cpu",
    )  # fmt: skip
    expected = {m.key: m.value for m in alone.models[0].metrics}
    measured = {k: v["score"] for k, v in report["values"][1]["metrics"].items()}
    assert measured == expected
    # The rule: the shortest generations among values within 5 points of the best reasoning.
    scores = {row["value"]: row["metrics"] for row in report["values"]}
    best = max(m["toy_qa_add3:reasoning"]["score"] for m in scores.values())
    near = [v for v, m in scores.items() if m["toy_qa_add3:reasoning"]["score"] >= best - 0.05]
    shortest = min(near, key=lambda v: scores[v]["toy_qa_add3:gen_length"]["score"])
    assert report["chosen"]["value"] == shortest
    assert f"chosen: lambda {shortest:g}" in result.output


def quiet(_line: str) -> None:
    pass


def test_sweep_eval_mistakes_fail_before_any_merge(tmp_path):
    config = write_config(tmp_path / "t.yml", method_configs.interp_config(
        TOY / "models/instruct", TOY / "models/thinking", dtype="float32"))  # fmt: skip
    base = ["sweep", str(config), str(tmp_path / "o"), "--values", "0.5"]
    result = CliRunner().invoke(
        main, [*base, "--eval", "toy_qa_add3", "--select", "toy_qa_add3:nope"]
    )
    assert result.exit_code == 1 and "metric 'nope' is not produced" in result.output
    result = CliRunner().invoke(main, [*base, "--eval", "toy_qa_ad3"])
    assert result.exit_code == 1 and "toy_qa_add3" in result.output  # the close name
    result = CliRunner().invoke(main, [*base, "--select", "toy_qa_add3:acc"])
    assert result.exit_code == 2 and "add --eval" in result.output
    assert not list(tmp_path.glob("o-*"))  # nothing merged


def test_a_rerun_redoes_outputs_whose_adapter_changed(llama_family, tmp_path):
    """Shadow-FT's adapter is an input given as a parameter: it is dated like the models."""
    import os

    from mergekit_weightlevel.demo.run import demo_lora_adapter

    adapter = demo_lora_adapter(llama_family, tmp_path / "base_lora", rank=4)
    config = method_configs.shadow_graft_adapter_config(
        adapter, llama_family.instruct, parameters={"include": ".*"}
    )
    options = MergeOptions(quiet=True)
    first = sweep(config, [0.5, 1.0], tmp_path / "g", parameter="adapter_weight", options=options)
    assert [o.reused for o in first] == [False, False]
    assert [o.reused for o in sweep(config, [0.5, 1.0], tmp_path / "g",
                                    parameter="adapter_weight", options=options)] == [True, True]  # fmt: skip
    newer = max(p.stat().st_mtime_ns for o in first for p in o.folder.iterdir()) + 10**9
    for item in adapter.iterdir():  # the adapter retrained at the same path
        os.utime(item, ns=(newer, newer))
    again = sweep(config, [0.5, 1.0], tmp_path / "g", parameter="adapter_weight", options=options)
    assert [o.reused for o in again] == [False, False]


def test_a_merge_without_its_card_is_never_taken_for_another_config(llama_family, tmp_path):
    """`--no-write-model-card` writes no `mergekit_config.yml`: the earlier run's must not stay
    beside the new weights, or a later run of that earlier config would reuse them."""
    config = configs(llama_family)["timber_spectral"]
    other = {**config, "parameters": {**config.get("parameters", {}), "erank_exponent": 3.0}}
    folder = [tmp_path / "t"]
    sweep(config, [0.2], out_dirs=folder, options=MergeOptions(quiet=True))
    no_card = MergeOptions(quiet=True, write_model_card=False)
    sweep(other, [0.2], out_dirs=folder, options=no_card)
    assert not (folder[0] / "mergekit_config.yml").exists()
    (rerun,) = sweep(config, [0.2], out_dirs=folder, options=MergeOptions(quiet=True))
    assert not rerun.reused
    alone = run_yaml_merge(single_config(config, "timber_spectral", 0.2), tmp_path / "alone")
    swept = read_state(rerun.folder)
    assert all(torch.equal(swept[n], alone[n]) for n in alone)


def test_a_failed_value_is_no_longer_computed_or_held_for(llama_family, tmp_path, monkeypatch):
    """Timber's shared step stops serving a value whose output failed: nothing waits for it
    until the pass ends (up to a whole model), and its later tensors are not computed."""
    from mergekit_weightlevel.methods import sweep_share

    computed: list[tuple[float, ...]] = []
    held: list[int] = []
    original_take = sweep_share.SweepShare.take

    def take(self, tensor, value, compute):
        def recording(values):
            computed.append(tuple(values))
            return compute(values)

        output = original_take(self, tensor, value, recording)
        held.append(sum(len(waiting) for waiting in self._waiting.values()))
        return output

    monkeypatch.setattr(sweep_share.SweepShare, "take", take)
    # float16: λ = 1e30 overflows at the first tensor with a tail, λ = 0.2 is fine.
    config = method_configs.timber_config(llama_family.base, llama_family.instruct, dtype="float16")
    good, bad = sweep(config, [0.2, 1e30], tmp_path / "t", options=MergeOptions(quiet=True))
    assert good.error is None and bad.error is not None
    assert computed[-1] == (0.2,)  # after the failure, λ = 0.2 alone
    assert max(held) <= 1  # at most the other value's output of one tensor waits


@pytest.mark.parametrize("text", ["", "- merge_method: linear\n"])
def test_a_config_that_is_no_mapping_gets_one_line(tmp_path, text):
    path = tmp_path / "sweep.yml"
    path.write_text(text)
    result = CliRunner().invoke(
        main, ["sweep", str(path), str(tmp_path / "out"), "--values", "0.5"]
    )
    assert result.exit_code != 0
    assert result.output.startswith(f"error: {path} is not a mergekit config")
    assert "Traceback" not in result.output and "a bug" not in result.output
    assert not (tmp_path / "out").exists()


def test_sweep_eval_writes_no_record_into_a_reference_made_by_a_merge(tmp_path, monkeypatch):
    """The axis' ends are inputs: even one that a merge wrote (it holds
    `mergekit_config.yml`) gets no `evaluation.json`; the sweep's own outputs do."""
    import shutil

    from mergekit_weightlevel.evaluation.record import RECORD

    monkeypatch.setenv("MERGEKIT_WEIGHTLEVEL_CACHE", str(tmp_path / "cache"))
    instruct = Path(shutil.copytree(TOY / "models/instruct", tmp_path / "instruct"))
    (instruct / "mergekit_config.yml").write_text("merge_method: linear\n")
    config = write_config(tmp_path / "t.yml", method_configs.interp_config(
        instruct, TOY / "models/thinking", dtype="float32"))  # fmt: skip
    arguments = ["sweep", str(config), str(tmp_path / "o"), "--values", "0.5"]
    arguments += ["--eval", "toy_qa_add3", "--limit", "5", "--batch-size", "8"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o-lambda0.5" / RECORD).is_file()
    assert not (instruct / RECORD).exists()


def test_sweep_eval_where_no_value_was_written_says_why_for_each(llama_family, tmp_path):
    # float16 weights: ParamΔ's delta × 1e6 (and × 1e7) overflows for every value.
    config = write_config(tmp_path / "p.yml", method_configs.paramdelta_config(
        llama_family.base, llama_family.instruct, llama_family.base_v2, dtype="float16"))  # fmt: skip
    arguments = ["sweep", str(config), str(tmp_path / "p"), "--values", "1e6,1e7"]
    arguments += ["--eval", "toy_qa_add3", "--limit", "5"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "NaN/Inf" in line]
    assert len(lines) == 2, result.output  # one line per value, with its reason


def test_an_output_path_that_is_a_file_is_refused_before_any_folder_is_touched(
    llama_family, tmp_path
):
    config = configs(llama_family)["instruct_thinking_interp"]
    first = tmp_path / "i-lambda0.3"
    first.mkdir()
    (first / "README.md").write_text("---\nlicense: mit\n---\n# My card\n")
    (tmp_path / "i-lambda0.5").write_text("a file where a folder goes")
    with pytest.raises(WeightLevelConfigError, match=r"i-lambda0.5 exists and is not a folder"):
        sweep(config, [0.3, 0.5], tmp_path / "i", options=MergeOptions(quiet=True))
    assert [p.name for p in first.iterdir()] == ["README.md"]  # untouched


def test_a_single_timber_merge_refuses_an_infinite_lambda(llama_family, tmp_path):
    config = method_configs.timber_config(llama_family.base, llama_family.instruct)
    config["parameters"] = {"lambda": float("inf")}
    with pytest.raises(Exception, match=r"must be a float in \[0, inf\), got inf"):
        merge_yaml(config, tmp_path / "t", MergeOptions(quiet=True))


def test_a_rerun_merges_again_an_output_whose_weights_are_truncated(llama_family, tmp_path):
    config = configs(llama_family)["instruct_thinking_interp"]
    options = MergeOptions(quiet=True)
    first = sweep(config, [0.3, 0.6], tmp_path / "i", options=options)
    shard = sorted(first[1].folder.glob("*.safetensors"))[-1]
    with shard.open("r+b") as handle:  # a copy cut short: the header intact, the data not
        handle.truncate(shard.stat().st_size - 100)
    again = sweep(config, [0.3, 0.6], tmp_path / "i", options=options)
    assert [o.reused for o in again] == [True, False]
    alone = run_yaml_merge(single_config(config, "instruct_thinking_interp", 0.6), tmp_path / "a")
    swept = read_state(again[1].folder)
    assert all(torch.equal(swept[n], alone[n]) for n in alone)


def test_sweep_eval_with_a_failed_evaluation_says_so_in_one_line_and_exits_1(tmp_path, monkeypatch):
    import mergekit_weightlevel.evaluation.evaluate as evaluate_module

    monkeypatch.setenv("MERGEKIT_WEIGHTLEVEL_CACHE", str(tmp_path / "cache"))
    original = evaluate_module.run_lm_eval

    def fails_for_one(folder, *args, **kwargs):
        if Path(folder).name == "o-lambda0.2":
            raise RuntimeError("out of memory")
        return original(folder, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "run_lm_eval", fails_for_one)
    config = write_config(tmp_path / "t.yml", method_configs.interp_config(
        TOY / "models/instruct", TOY / "models/thinking", dtype="float32"))  # fmt: skip
    arguments = ["sweep", str(config), str(tmp_path / "o"), "--values", "0.2,0.8"]
    arguments += ["--eval", "toy_qa_add3", "--limit", "5", "--select", "toy_qa_add3:acc"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 1, result.output
    assert result.output.count("evaluation failed") == 1
    assert 'File "' not in result.output  # no traceback lines
    assert "chosen: lambda 0.8" in result.output  # the others are evaluated and chosen among


def test_sweep_help_and_usage_errors_show_the_config_form(tmp_path):
    """`sweep --help` lists the options of `sweep CONFIG OUT_PREFIX`, and its usage errors
    name the command as typed, not the hidden default command behind it."""

    def invoke(arguments: list[str]):
        return CliRunner().invoke(main, arguments, prog_name="mergekit-weightlevel")

    help_text = invoke(["sweep", "--help"]).output
    assert "Usage: mergekit-weightlevel sweep [OPTIONS] CONFIG_FILE OUT_PREFIX" in help_text
    assert all(option in help_text for option in ("--values", "--parameter", "--eval", "--ray"))
    assert "sweep timber" in help_text
    config = write_config(tmp_path / "t.yml", method_configs.interp_config(
        TOY / "models/instruct", TOY / "models/thinking", dtype="float32"))  # fmt: skip
    result = invoke(["sweep", str(config), str(tmp_path / "o"), "--within", "x"])
    assert result.exit_code == 2
    assert "Try 'mergekit-weightlevel sweep --help' for help." in result.output
    assert "sweep config" not in result.output


def test_ctrl_c_during_a_local_sweep_says_how_to_finish_and_exits_130(
    llama_family, tmp_path, monkeypatch
):
    import mergekit_weightlevel.running.one_pass as one_pass

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(one_pass, "merge_in_one_pass", interrupted)
    config = write_config(tmp_path / "i.yml", configs(llama_family)["instruct_thinking_interp"])
    result = CliRunner().invoke(
        main, ["sweep", str(config), str(tmp_path / "i"), "--values", "0.5"]
    )
    assert result.exit_code == 130
    assert "interrupted: the values not finished keep MERGE_INCOMPLETE.txt" in result.output


def test_inputs_without_a_tokenizer_give_one_warning_line_per_output(
    llama_family, tmp_path, caplog
):
    import shutil

    bare = {}
    for name in ("instruct", "thinking"):
        folder = Path(shutil.copytree(getattr(llama_family, name), tmp_path / name))
        for path in folder.iterdir():
            if path.name.startswith(("tokenizer", "special_tokens", "chat_template")):
                path.unlink()
        bare[name] = folder
    config = method_configs.interp_config(bare["instruct"], bare["thinking"], dtype="float32")
    with caplog.at_level(logging.WARNING, logger="mergekit_weightlevel"):
        outputs = sweep(config, [0.3, 0.6], tmp_path / "i", options=MergeOptions(quiet=True))
    assert all(output.error is None for output in outputs)
    lines = [r for r in caplog.records if "no tokenizer was copied" in r.getMessage()]
    assert len(lines) == 2 and not any(r.exc_info for r in lines)
