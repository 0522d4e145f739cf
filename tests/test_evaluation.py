"""``evaluate``: lm-eval on local folders, offline, on the shipped tasks and tiny models.

The oracle is lm-eval's own command line on the same folder and tasks: every number (and
stderr) must be the same. The models are the toy's trained Instruct and Thinking
(examples/toy/models, 0.34 M parameters) and the demo's random tiny Llama.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mergekit_weightlevel.cli import main
from mergekit_weightlevel.errors import ModelFolderError
from mergekit_weightlevel.evaluation import evaluate_folders
from mergekit_weightlevel.evaluation.harness import TaskDataError, UnknownTaskError
from mergekit_weightlevel.evaluation.record import RECORD, read_record
from mergekit_weightlevel.evaluation.shipped import TASKS_DIR

TOY_MODELS = Path(__file__).resolve().parent.parent / "examples" / "toy" / "models"
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)


def quiet(_line: str) -> None:
    pass


def lm_eval_command_line(
    folder: Path, tasks: str, limit: int, out: Path, chat_template: bool = False
) -> dict:
    """lm-eval's own results for ``folder``, from its command line."""
    command = [
        str(Path(sys.executable).with_name("lm_eval")),
        "--model", "hf",
        "--model_args", f"pretrained={folder}",
        "--tasks", tasks,
        "--include_path", str(TASKS_DIR),
        "--device", "cpu",
        "--limit", str(limit),
        "--output_path", str(out),
        *(["--apply_chat_template"] if chat_template else []),
    ]  # fmt: skip
    env = {**os.environ, **OFFLINE}
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=600)
    (written,) = out.rglob("results_*.json")
    return json.loads(written.read_text())


def numbers(results: dict) -> dict[str, dict[str, float]]:
    """Every metric and stderr lm-eval reports per task (names and counts left out)."""
    return {
        task: {k: v for k, v in entry.items() if "," in k}
        for task, entry in results["results"].items()
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "tasks", "limit"),
    [
        # Greedy generation (accuracy, format, reasoning, length) and sampled pass@k.
        ("toy_instruct", "toy_qa_add3,toy_pass_add3", 4),
        # Log-likelihoods of four choices, and greedy continuation, on a random Llama,
        # through its chat template.
        ("demo_instruct", "demo", 6),
    ],
)
def test_our_numbers_equal_lm_evals_command_line(model, tasks, limit, llama_family, tmp_path):
    folder = TOY_MODELS / "instruct" if model == "toy_instruct" else llama_family.instruct
    chat = model == "demo_instruct"
    ours = evaluate_folders(
        [folder],
        tasks,
        limit=limit,
        device="cpu",
        apply_chat_template=chat,
        cache_dir=tmp_path / "cache",
        log=quiet,
    )
    theirs = lm_eval_command_line(folder, tasks, limit, tmp_path / "cli", chat_template=chat)
    if chat:  # the prompts went through the instruct member's template, on both sides
        assert theirs["chat_template"] and "[assistant]" in theirs["chat_template"]
    kept = json.loads(ours.models[0].lm_eval_results.read_text())
    assert numbers(kept) == numbers(theirs)
    assert len(numbers(theirs)) == (2 if model == "toy_instruct" else 2)
    for metric in ours.models[0].metrics:
        entry = theirs["results"][metric.task]
        assert metric.value == entry[f"{metric.metric},{metric.filter}"]
        assert metric.stderr == entry[f"{metric.metric}_stderr,{metric.filter}"]


def test_a_rerun_reads_the_cache_keyed_by_content_not_path(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = evaluate_folders(
        [TOY_MODELS / "instruct"], "toy_qa_add3", limit=3, cache_dir=cache, log=quiet
    )
    assert first.models[0].status == "evaluated"
    # The same weights elsewhere: nothing may run again.
    copy = shutil.copytree(TOY_MODELS / "instruct", tmp_path / "elsewhere")
    import mergekit_weightlevel.evaluation.evaluate as evaluate_module

    def must_not_run(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(evaluate_module, "run_lm_eval", must_not_run)
    again = evaluate_folders([copy], "toy_qa_add3", limit=3, cache_dir=cache, log=quiet)
    assert again.models[0].status == "cached"
    assert again.models[0].metrics == first.models[0].metrics
    # Other settings, or other weights, are another evaluation.
    with pytest.raises(AssertionError, match="evaluated again"):
        evaluate_folders([copy], "toy_qa_add3", limit=4, cache_dir=cache, log=quiet)
    shutil.copy(TOY_MODELS / "thinking" / "model.safetensors", copy / "model.safetensors")
    with pytest.raises(AssertionError, match="evaluated again"):
        evaluate_folders([copy], "toy_qa_add3", limit=3, cache_dir=cache, log=quiet)


def test_merged_folders_keep_their_results_and_inputs_are_not_written(tmp_path):
    merged = shutil.copytree(TOY_MODELS / "thinking", tmp_path / "merged")
    (merged / "mergekit_config.yml").write_text("merge_method: linear\n")
    evaluation = evaluate_folders(
        [TOY_MODELS / "instruct", merged],
        ["toy_qa_add3", "toy_plain_add3"],
        limit=3,
        cache_dir=tmp_path / "cache",
        json_path=tmp_path / "all.json",
        log=quiet,
    )
    assert not (TOY_MODELS / "instruct" / RECORD).exists()
    record = read_record(merged)
    assert set(record["tasks"]) == {"toy_qa_add3", "toy_plain_add3"}
    stored = {
        (m["task"], m["metric"]): m["value"] for t in record["tasks"].values() for m in t["metrics"]
    }
    measured = {(m.task, m.metric): m.value for m in evaluation.models[1].metrics}
    assert stored == measured
    assert record["tasks"]["toy_qa_add3"]["facts"]["documents"] == 3
    combined = json.loads((tmp_path / "all.json").read_text())
    assert [m["label"] for m in combined["models"]] == ["instruct", "merged"]
    assert combined["settings"]["limit"] == 3
    # The Thinking model reasons and writes longer answers than the Instruct model.
    length = {m.label: m.metric("toy_qa_add3", "gen_length").value for m in evaluation.models}
    assert length["merged"] > 3 * length["instruct"]


def test_the_command_prints_one_table_and_where_lm_evals_files_are(tmp_path, monkeypatch):
    monkeypatch.setenv("MERGEKIT_WEIGHTLEVEL_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(TOY_MODELS / "instruct"),
            str(TOY_MODELS / "thinking"),
            "--tasks",
            "toy_qa_add3",
            "--limit",
            "3",
            "--json",
            str(tmp_path / "out.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "task", "metric", "value", "stderr"]
    rows = [line.split() for line in lines[2:] if line.startswith(("instruct", "thinking"))]
    assert {(r[0], r[2]) for r in rows} >= {("instruct", "acc"), ("thinking", "gen_length")}
    kept = [line for line in lines if line.startswith("lm-eval's results for")]
    assert len(kept) == 2 and all(Path(line.split(": ", 1)[1]).is_file() for line in kept)
    assert json.loads((tmp_path / "out.json").read_text())["models"][1]["label"] == "thinking"


def test_an_unknown_task_names_close_ones(tmp_path):
    with pytest.raises(UnknownTaskError, match=r"'toy_qa_ad3' \(did you mean toy_qa_add3"):
        evaluate_folders(
            [TOY_MODELS / "instruct"], "toy_qa_ad3", cache_dir=tmp_path / "cache", log=quiet
        )


def test_a_hub_dataset_offline_names_the_dataset_and_the_switch(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants

    # `datasets` reads the switch when imported; an earlier test may have imported it.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "hub_task.yaml").write_text(
        "task: hub_task_not_cached\ndataset_path: someone/not-a-cached-dataset\n"
        "output_type: generate_until\ntest_split: test\ndoc_to_text: '{{q}}'\n"
        "doc_to_target: '{{a}}'\nmetric_list: [{metric: exact_match}]\n"
    )
    with pytest.raises(TaskDataError) as raised:
        evaluate_folders(
            [TOY_MODELS / "instruct"],
            "hub_task_not_cached",
            include_path=tasks,
            cache_dir=tmp_path / "cache",
            log=quiet,
        )
    message = str(raised.value)
    assert "someone/not-a-cached-dataset" in message and "HF_DATASETS_OFFLINE=1" in message


def test_a_folder_that_is_not_a_model_is_named_before_any_work(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ModelFolderError, match="not-a-model.*no config.json"):
        evaluate_folders([TOY_MODELS / "instruct", empty], "toy_qa_add3", log=quiet)
    broken = shutil.copytree(TOY_MODELS / "instruct", tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="broken: its config.json does not load"):
        evaluate_folders([broken], "toy_qa_add3", log=quiet)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "MERGE_INCOMPLETE.txt").write_text("This output of a sweep failed: …\n")
    with pytest.raises(ModelFolderError, match="unfinished: the merge into this folder did not"):
        evaluate_folders([unfinished], "toy_qa_add3", log=quiet)
    a_file = tmp_path / "config.yml"
    a_file.write_text("merge_method: linear\n")
    with pytest.raises(ModelFolderError, match="config.yml: a file, not a model folder"):
        evaluate_folders([a_file], "toy_qa_add3", log=quiet)


def test_weights_that_do_not_load_name_the_folder(tmp_path):
    broken = shutil.copytree(TOY_MODELS / "instruct", tmp_path / "bad-weights")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFolderError, match="bad-weights: lm-eval could not load the model"):
        evaluate_folders([broken], "toy_qa_add3", limit=2, cache_dir=tmp_path / "c", log=quiet)


def test_the_worked_example_task_reports_every_metric(tmp_path):
    example = Path(__file__).resolve().parent.parent / "examples" / "eval_task"
    evaluation = evaluate_folders(
        [TOY_MODELS / "thinking"],
        "example_sums",
        include_path=example,
        limit=5,
        batch_size=20,
        cache_dir=tmp_path / "cache",
        log=quiet,
    )
    metrics = {m.metric: m.value for m in evaluation.models[0].metrics}
    assert set(metrics) == {"exact_match", "pass@1", "pass@4", "format", "reasoning", "gen_length"}
    assert {m.filter for m in evaluation.models[0].metrics} == {"samples"}
    assert 0 <= metrics["pass@1"] <= metrics["pass@4"] <= 1
    # The Thinking model writes out its steps: several tokens per answer.
    assert metrics["gen_length"] > 5


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--limit", "0"], "must be positive"),
        (["--batch-size", "many"], "an integer or 'auto'"),
        (["--model-args", "pretrained=/x"], "pretrained is the FOLDER itself"),
        (["--device", "tpu"], "'tpu' is not one of"),
    ],
)
def test_bad_options_are_usage_errors(arguments, complaint):
    folder = str(TOY_MODELS / "instruct")
    result = CliRunner().invoke(main, ["evaluate", folder, "--tasks", "toy_qa_add3", *arguments])
    assert result.exit_code == 2 and complaint in result.output


def test_the_sweep_options_reach_the_command_as_evaluate_sweeps_arguments():
    """What a sweep command gets from the shared options (the sweep runner's wiring)."""
    import click

    from mergekit_weightlevel.cli.evaluate_command import (
        sweep_evaluation_options,
        sweep_run_options,
    )

    seen = {}

    @click.command()
    @sweep_evaluation_options
    @sweep_run_options
    def sweep(**kwargs):
        seen.update(kwargs)

    arguments = ["--eval", "toy_qa_add3,toy_pass_add3", "--select", "toy_qa_add3:acc"]
    arguments += ["--within", "2", "--keep", "best", "--limit", "0.5", "--batch-size", "auto"]
    result = CliRunner().invoke(sweep, [*arguments, "--model-args", "dtype=bfloat16"])
    assert result.exit_code == 0, result.output
    assert seen == {
        "eval_tasks": ["toy_qa_add3", "toy_pass_add3"],
        "select": "toy_qa_add3:acc",
        "within": 2.0,
        "keep": "best",
        "eval_options": {
            "include_path": [],
            "limit": 0.5,
            "num_fewshot": None,
            "batch_size": "auto",
            "model_args": {"dtype": "bfloat16"},
            "apply_chat_template": False,
        },
    }
    import inspect

    from mergekit_weightlevel.evaluation import evaluate_sweep

    accepted = inspect.signature(evaluate_sweep).parameters
    assert set(seen["eval_options"]) | {"device"} <= set(accepted)  # the sweep adds its device
