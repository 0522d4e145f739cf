"""Timber λ sweeps: one run, one checkpoint per λ, each equal to its single run."""

from __future__ import annotations

import pytest
import torch
import yaml
from click.testing import CliRunner
from helpers import read_state, run_yaml_merge, write_config
from mergekit.options import MergeOptions

from mergekit_weightlevel import method_configs
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.errors import WeightLevelConfigError
from mergekit_weightlevel.methods import timber as ts
from mergekit_weightlevel.methods.sweep_share import SweepShare
from mergekit_weightlevel.running.sweep import sweep_config, sweep_out_dirs, timber_sweep

LAMBDAS = [0.0, 0.2, 0.4, 1.0]


def timber_config(family, dtype, **parameters):
    return method_configs.timber_config(
        family.base, family.instruct, parameters=parameters, dtype=dtype
    )


@pytest.mark.parametrize(("arch", "dtype"), [("llama", "float32"), ("qwen3", "bfloat16")])
def test_each_output_equals_its_single_run_bit_for_bit(all_families, arch, dtype, tmp_path):
    family = all_families[arch]
    config = timber_config(family, dtype)
    out_dirs = sweep_out_dirs(tmp_path / "sweep", LAMBDAS)
    options = MergeOptions(quiet=True, copy_tokenizer=True)
    written = sweep_config(config, LAMBDAS, out_dirs, options)
    assert written == [d.resolve() for d in out_dirs]
    outputs = [read_state(d) for d in out_dirs]
    for lam, swept in zip(LAMBDAS, outputs):
        single = run_yaml_merge({**config, "parameters": {"lambda": lam}}, tmp_path / f"s{lam}")
        assert set(swept) == set(single)
        for name in single:
            assert torch.equal(swept[name], single[name]), (lam, name)
    # The outputs really differ between λ values (the stash reached the side writers).
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(outputs[0][q], outputs[1][q])


def test_outputs_are_complete_and_loadable(qwen2_sharded_family, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    family = qwen2_sharded_family
    lambdas = [0.1, 0.3]
    out_dirs = [tmp_path / "a", tmp_path / "b"]
    timber_sweep(
        family.base, family.instruct, lambdas, out_dirs,
        options=MergeOptions(quiet=True, out_shard_size=60_000),
    )  # fmt: skip
    first = {p.name for p in out_dirs[0].iterdir()}
    assert "model.safetensors.index.json" in first  # sharded like the single run
    for lam, folder in zip(lambdas, out_dirs):
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "mergekit_config.yml", "tokenizer.json"} <= names
        assert {n for n in names if n.endswith(".safetensors")} == {
            n for n in first if n.endswith(".safetensors")
        }
        saved = yaml.safe_load((folder / "mergekit_config.yml").read_text())
        assert saved["parameters"]["lambda"] == lam
        model = AutoModelForCausalLM.from_pretrained(folder)
        AutoTokenizer.from_pretrained(folder)
        instruct, base = read_state(family.instruct), read_state(family.base)
        name = "model.layers.1.mlp.down_proj.weight"
        expected = ts.timber_spectral(base[name], instruct[name], lam=lam, name=name)
        assert torch.equal(model.state_dict()[name], expected)


def test_cli_sweep_writes_one_folder_per_lambda(llama_family, tmp_path):
    config = write_config(tmp_path / "t.yml", timber_config(llama_family, "float32"))
    result = CliRunner().invoke(
        main,
        ["sweep", "timber", str(config), str(tmp_path / "out"), "--lambdas", "0,0.25"],
    )
    assert result.exit_code == 0, result.output
    assert "lambda 0.25:" in result.output
    for lam in (0.0, 0.25):
        folder = tmp_path / f"out-lambda{lam:g}"
        single = run_yaml_merge(
            {**timber_config(llama_family, "float32"), "parameters": {"lambda": lam}},
            tmp_path / f"single{lam}",
        )
        swept = read_state(folder)
        for name in single:
            assert torch.equal(swept[name], single[name]), (lam, name)


def test_sweep_rejects_another_method(llama_family, tmp_path):
    config = {**timber_config(llama_family, "float32"), "merge_method": "linear"}
    with pytest.raises(WeightLevelConfigError, match="a Timber sweep needs `merge_method"):
        sweep_config(config, [0.1], [tmp_path / "o"])


def test_sweep_rejects_lambda_set_per_tensor(llama_family, tmp_path):
    config = timber_config(llama_family, "float32")
    config["parameters"] = {"lambda": [{"filter": "mlp", "value": 0.5}, {"value": 0.2}]}
    with pytest.raises(WeightLevelConfigError, match=r"sweep: the config sets `lambda` per tensor"):
        sweep_config(config, [0.1, 0.2], [tmp_path / "a", tmp_path / "b"])


def test_share_computes_every_value_once_and_forgets_what_was_taken():
    share = SweepShare([0.1, 0.2, 0.4])
    calls = []

    def compute(values):
        calls.append(tuple(values))
        return [torch.full((2,), v) for v in values]

    # Any order of asking: one computation for all three, each value gets its own output.
    assert torch.equal(share.take("w", 0.4, compute), torch.full((2,), 0.4))
    assert torch.equal(share.take("w", 0.1, compute), torch.full((2,), 0.1))
    assert torch.equal(share.take("w", 0.2, compute), torch.full((2,), 0.2))
    assert calls == [(0.1, 0.2, 0.4)]
    assert not share._waiting  # nothing is kept once every value has taken its output
    share.take("v", 0.1, compute)
    share.forget(0.2)
    share.forget(0.4)
    assert not share._waiting  # a failed value's outputs are dropped too


def test_cli_sweep_reports_bad_lambdas(llama_family, tmp_path):
    config = write_config(tmp_path / "t.yml", timber_config(llama_family, "float32"))
    result = CliRunner().invoke(
        main, ["sweep", "timber", str(config), str(tmp_path / "o"), "--lambdas", "0.1,-1"]
    )
    assert result.exit_code == 1
    assert "timber_spectral sweep: `lambda` must be a float in [0, inf); not -1." in result.output


def test_example_config_runs_on_the_demo_family(llama_family, tmp_path):
    """examples/timber_spectral.yml, with its demo paths pointed at a tiny family."""
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "timber_spectral.yml"
    config = yaml.safe_load(example.read_text())
    assert config["base_model"] == "weightlevel-demo/models/base"
    config["base_model"] = str(llama_family.base)
    config["models"][0]["model"] = str(llama_family.instruct)
    out = run_yaml_merge(config, tmp_path / "o")
    base, instruct = read_state(llama_family.base), read_state(llama_family.instruct)
    name = "model.layers.0.mlp.gate_proj.weight"
    expected = ts.timber_spectral(base[name], instruct[name], lam=config["parameters"]["lambda"])
    assert torch.equal(out[name], expected)


def test_demo_timber_step_checks_against_float64(llama_family, tmp_path):
    from mergekit_weightlevel.demo.run import _timber_demo

    result = _timber_demo(llama_family, tmp_path, MergeOptions(quiet=True, copy_tokenizer=False))
    assert result.method == "timber_spectral"
    assert result.max_abs_error < 1e-6
    # A partial revert: the output sits between the base and the instruct model.
    assert 0 < result.sigmas["output, base"] < result.sigmas["instruct, base"]
    assert result.sigmas["output, instruct"] > 0
