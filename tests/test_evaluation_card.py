"""An evaluated merge's card: ``model-index`` (huggingface_hub's own ``EvalResult`` read back
as the oracle), the Evaluation section, ``.eval_results/`` for a Hub benchmark, and
``publish`` sending both (to the stand-in Hub of ``hub_standin``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from hub_standin import StandInHub
from huggingface_hub import ModelCard
from huggingface_hub import constants as hub_constants
from mergekit.options import MergeOptions

from mergekit_weightlevel.evaluation import evaluate_folders
from mergekit_weightlevel.evaluation.record import RECORD, read_record
from mergekit_weightlevel.method_configs import interp_config
from mergekit_weightlevel.publishing import publish_folder, write_card
from mergekit_weightlevel.publishing.eval_results import EVAL_RESULTS_DIR, WRITTEN_HERE
from mergekit_weightlevel.running.merging import merge_yaml

# huggingface_hub's LFS upload passes a file object as `data=` (its code, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

TOY_MODELS = Path(__file__).resolve().parent.parent / "examples" / "toy" / "models"
#: The documents of the toy's held-out sums task.
ADD3_DOCUMENTS = 300


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """The toy pair interpolated at λ = 0.5, evaluated on two tasks (a few documents)."""
    root = tmp_path_factory.mktemp("evaluated")
    folder = root / "interp-0.5"
    config = interp_config(TOY_MODELS / "instruct", TOY_MODELS / "thinking", 0.5, dtype="float32")
    merge_yaml(config, folder, MergeOptions(quiet=True, copy_tokenizer=True))
    evaluate_folders(
        [folder],
        ["toy_qa_add3", "toy_pass_add3"],
        limit=3,
        batch_size=16,
        cache_dir=root / "cache",
        log=lambda _: None,
    )
    return folder


@pytest.fixture
def folder(evaluated, tmp_path) -> Path:
    return Path(shutil.copytree(evaluated, tmp_path / "interp-0.5"))


def test_the_card_carries_model_index_and_the_evaluation_section(folder):
    write_card(folder, lookup=False)
    card = ModelCard.load(folder / "README.md")
    record = read_record(folder)
    measured = {
        (task, m["metric"]): m["value"]
        for task, entry in record["tasks"].items()
        for m in entry["metrics"]
    }
    read_back = {(r.task_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert read_back == measured
    assert card.data.model_name == folder.name
    assert {r.dataset_name for r in card.data.eval_results} == {
        "toy_qa_add3 (local lm-eval task)",
        "toy_pass_add3 (local lm-eval task)",
    }
    assert {r.source_url for r in card.data.eval_results} == {
        "https://github.com/EleutherAI/lm-evaluation-harness"
    }
    text = card.text
    section = text.split("## Evaluation")[1].split("## Configuration")[0]
    assert f"toy_qa_add3 (local data; 3 of {ADD3_DOCUMENTS} documents, greedy, 0-shot)" in section
    assert "16 samples each at temperature 1" in section
    assert "lm_eval 0.4.13" in section and "transformers" in section
    acc = next(m for m in record["tasks"]["toy_qa_add3"]["metrics"] if m["metric"] == "acc")
    assert f"| toy_qa_add3 | acc | {acc['value']:.4f} | ± {acc['stderr']:.4f} |" in section
    # Local tasks are no Hub benchmark: model-index only.
    assert not (folder / EVAL_RESULTS_DIR).exists()


def as_hub_benchmark(folder: Path) -> None:
    """Pretend the evaluation was a full GPQA-diamond run (the Hub's benchmark example);
    lm-eval's GPQA data cannot be fetched offline."""
    path = folder / RECORD
    record = json.loads(path.read_text())
    facts = record["tasks"]["toy_qa_add3"]["facts"]
    facts.update(dataset="Idavidrein/gpqa", dataset_config="gpqa_diamond", split="train")
    facts["documents_in_task"] = facts["documents"]
    path.write_text(json.dumps(record))


def test_a_full_run_on_a_hub_benchmark_gets_an_eval_results_file(folder):
    from huggingface_hub._eval_results import parse_eval_result_entries

    as_hub_benchmark(folder)
    (folder / EVAL_RESULTS_DIR).mkdir()
    theirs = folder / EVAL_RESULTS_DIR / "someone_elses.yaml"
    theirs.write_text("- dataset: {id: cais/hle, task_id: hle}\n  value: 1.0\n")
    write_card(folder, lookup=False)
    written = folder / EVAL_RESULTS_DIR / "toy_qa_add3.yaml"
    assert written.read_text().startswith(WRITTEN_HERE)
    (entry,) = parse_eval_result_entries(yaml.safe_load(written.read_text()))
    acc = read_record(folder)["tasks"]["toy_qa_add3"]["metrics"][0]
    assert (entry.dataset_id, entry.task_id) == ("Idavidrein/gpqa", "gpqa_diamond")
    assert entry.value == pytest.approx(100 * acc["value"])
    assert theirs.exists()  # not ours: left alone
    # The record changes (a limited rerun): the file written here goes, theirs stays.
    record = json.loads((folder / RECORD).read_text())
    record["tasks"]["toy_qa_add3"]["facts"]["documents_in_task"] = 1000
    (folder / RECORD).write_text(json.dumps(record))
    write_card(folder, lookup=False)
    assert not written.exists() and theirs.exists()


def test_publish_sends_the_results_and_the_eval_results_folder(folder, monkeypatch, tmp_path):
    as_hub_benchmark(folder)
    with StandInHub() as hub:
        monkeypatch.setattr(hub_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(hub_constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
        monkeypatch.setenv("HF_TOKEN", "hf_standin_secret_token_0123456789")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        dry = publish_folder(folder, "me/interp", dry_run=True)
        names = {name for name, _ in dry.files}
        assert {RECORD, f"{EVAL_RESULTS_DIR}/toy_qa_add3.yaml", "README.md"} <= names
        publish_folder(folder, "me/interp")
        sent = hub.repos["me/interp"].branches["main"]
    assert (
        sent[f"{EVAL_RESULTS_DIR}/toy_qa_add3.yaml"]
        == (folder / EVAL_RESULTS_DIR / "toy_qa_add3.yaml").read_bytes()
    )
    assert ModelCard(sent["README.md"].decode()).data.eval_results


@pytest.mark.parametrize("merge_method", ["instruct_thinking_interp", "linear"])
def test_a_merge_over_an_evaluated_folder_drops_the_results_of_the_weights_it_replaces(
    folder, merge_method
):
    """The old weights' numbers must not reach the new weights' card or the Hub (ours and
    mergekit's own methods alike); files that others wrote in `.eval_results/` stay."""
    as_hub_benchmark(folder)
    write_card(folder, lookup=False)
    ours = folder / EVAL_RESULTS_DIR / "toy_qa_add3.yaml"
    theirs = folder / EVAL_RESULTS_DIR / "someone_elses.yaml"
    theirs.write_text("- dataset: {id: cais/hle, task_id: hle}\n  value: 1.0\n")
    assert ours.is_file() and read_record(folder) is not None  # what the merge must drop
    if merge_method == "linear":
        config = {
            "merge_method": "linear",
            "models": [
                {"model": str(TOY_MODELS / "instruct"), "parameters": {"weight": 0.3}},
                {"model": str(TOY_MODELS / "thinking"), "parameters": {"weight": 0.7}},
            ],
            "dtype": "float32",
        }
    else:
        config = interp_config(
            TOY_MODELS / "instruct", TOY_MODELS / "thinking", 0.7, dtype="float32"
        )
    merge_yaml(config, folder, MergeOptions(quiet=True, copy_tokenizer=True))

    assert not (folder / RECORD).exists() and not ours.exists()
    assert theirs.is_file()
    if merge_method != "linear":  # our card, rewritten: no results, no model-index
        card = ModelCard.load(folder / "README.md")
        assert "## Evaluation" not in card.text and not card.data.eval_results
    dry = publish_folder(folder, "me/interp", dry_run=True)
    assert RECORD not in {name for name, _ in dry.files}
