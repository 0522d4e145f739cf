"""The toy's lm-eval tasks: their data is the toy's own problem sets, their scoring reads a
completion as the toy defines it, and the shipped members are the current recipe's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mergekit_weightlevel.evaluation.shipped import TOY_TASKS
from mergekit_weightlevel.evaluation.tasks.toy import utils as toy_scoring
from mergekit_weightlevel.toy.eval_tasks import task_documents
from mergekit_weightlevel.toy.family import MEMBER_FILE, Recipe, _member_key

SHIPPED = Path(__file__).resolve().parent.parent / "examples" / "toy" / "models"


def test_the_committed_data_is_the_default_recipes_problem_sets():
    for stem, documents in task_documents().items():
        path = TOY_TASKS / "data" / f"{stem}.jsonl"
        assert [json.loads(line) for line in path.read_text().splitlines()] == documents, stem
    held_out = task_documents()["add3_held_out"]
    assert len(held_out) == Recipe().held_out_add3
    assert task_documents()["add3_pass"] == held_out[:100]


@pytest.mark.parametrize(
    ("completion", "truth", "format_ok", "reasoning", "correct"),
    [
        ("3+5+8=16", 16, True, False, True),  # instruct's format
        ("16", 16, True, False, True),  # a bare answer follows the format too
        ("[3+5=8,8+8=16]16", 16, True, True, True),  # thinking's format
        ("[3+5=8,8+8=17]17", 16, True, True, False),  # right format, wrong answer
        ("3+5+8=16.", 16, False, False, False),  # pre-training style: not the Q/A format
        ("[3+5=8,8+8=16", 16, False, True, False),  # reasoning cut off: no answer
        ("Q:3+5?A:8", 16, False, False, False),
        ("", 16, False, False, False),
    ],
)
def test_a_completion_is_read_as_the_toy_defines_it(
    completion, truth, format_ok, reasoning, correct, tmp_path
):
    from mergekit_weightlevel.toy.tokenizer import save_tokenizer

    save_tokenizer(tmp_path)
    doc = {"expression": "3+5+8", "answer": truth, "_tokenizer": str(tmp_path)}
    scores = toy_scoring.score_answer(doc, [completion])
    assert scores == {
        "acc": float(correct),
        "format": float(format_ok),
        "reasoning": float(reasoning),
        "gen_length": float(len(completion)),  # one token per character
    }
    assert toy_scoring.score_plain(doc, ["16."]) == {"acc": float(truth == 16)}


def test_pass_at_k_of_the_sampled_answers():
    doc = {"answer": 16}
    samples = ["16"] * 4 + ["17"] * 12
    scores = toy_scoring.score_samples(doc, [samples])
    assert scores["pass@1"] == pytest.approx(4 / 16)
    assert scores["pass@16"] == 1.0
    assert set(scores) == {"pass@1", "pass@4", "pass@16"}


@pytest.mark.parametrize("member", ["instruct", "thinking"])
def test_the_shipped_members_are_the_current_recipes(member):
    """examples/toy/models holds what `python -m mergekit_weightlevel.toy` trains now: same
    recipe key (training run and parent's), or the shipped files are stale."""
    recipe = Recipe()
    base = _member_key("base", recipe, recipe.pretrain_steps, recipe.pretrain_lr, None)
    steps, lr = (
        (recipe.sft_steps, recipe.sft_lr)
        if member == "instruct"
        else (recipe.thinking_steps, recipe.thinking_lr)
    )
    expected = _member_key(member, recipe, steps, lr, base)
    shipped = json.loads((SHIPPED / member / MEMBER_FILE).read_text())["key"]
    assert shipped == expected


def test_the_quickstart_config_interpolates_the_shipped_pair(tmp_path, monkeypatch):
    import torch
    import yaml
    from mergekit.options import MergeOptions

    from mergekit_weightlevel.checkpoints import read_state
    from mergekit_weightlevel.running.merging import merge_yaml

    monkeypatch.chdir(SHIPPED.parent.parent.parent)  # the repository root, as documented
    config = yaml.safe_load(Path("examples/toy/instruct_thinking_interp.yml").read_text())
    out = merge_yaml(config, tmp_path / "out", MergeOptions(quiet=True, copy_tokenizer=True))
    instruct, thinking = (read_state(SHIPPED / m) for m in ("instruct", "thinking"))
    lam = config["parameters"]["lambda"]
    for name, tensor in read_state(out).items():
        expected = lam * thinking[name].double() + (1 - lam) * instruct[name].double()
        assert torch.allclose(tensor.double(), expected, atol=1e-6), name
