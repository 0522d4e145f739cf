"""The papers' metrics for lm-eval tasks (evaluation/task_metrics.py, task_utils.py), each
against an independent computation: pass@k by enumerating every k-subset of the samples,
token counts by the toy's own character codec."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mergekit_weightlevel.evaluation import task_metrics as m
from mergekit_weightlevel.evaluation.shipped import TOY_TASKS
from mergekit_weightlevel.evaluation.task_utils import local_dataset


def pass_at_k_by_enumeration(n: int, c: int, k: int) -> float:
    """The share of k-subsets of n samples (c correct) holding at least one correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_at_k_is_the_share_of_k_subsets_with_a_correct_sample(nc):
    n, c = nc
    for k in range(1, n + 1):
        assert m.pass_at_k(n, c, k) == pytest.approx(pass_at_k_by_enumeration(n, c, k), abs=1e-12)


def test_pass_at_k_of_large_n_matches_the_binomial_formula():
    # The product form stays accurate where C(n, k) is astronomically large.
    n, c, k = 200, 7, 64
    expected = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert m.pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12)


def test_pass_at_k_refuses_k_beyond_the_samples():
    with pytest.raises(ValueError, match="1 ≤ k ≤ n"):
        m.pass_at_k(4, 1, 8)
    assert m.pass_at_ks([True, False, False, False], (1, 4, 16)) == {
        "pass@1": pytest.approx(0.25),
        "pass@4": 1.0,
    }


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        (" 1,000.0 ", "1000"),
        ("$-3.", "-3"),
        ("2.50", "2.5"),
        ("The Answer!", "answer"),
        ("an  apple,  a pear", "apple pear"),
    ],
)
def test_normalize_answer(text, normal):
    assert m.normalize_answer(text) == normal


def test_exact_match_after_normalisation():
    assert m.exact_match("1,024", ["1024"]) == 1.0
    assert m.exact_match("The Paris.", "paris") == 1.0
    assert m.exact_match("1025", "1024") == 0.0
    assert m.exact_match(None, "1") == 0.0


def test_format_and_reasoning_checks():
    answer = r"(?:\[[^\]]*\])?(?P<answer>-?\d+)"
    assert m.follows_format("[3+5=8]8", answer)
    assert not m.follows_format("8 apples", answer)
    assert m.extract_answer("so 3 then 8", r"(?P<answer>\d+)") == "8"
    assert m.extract_answer("none", r"\d+") is None
    assert m.reasons_in_steps("Step 1: add.\nStep 2: carry.\nSo 8.")
    assert not m.reasons_in_steps("Step 1: it is 8.")  # one step is not reasoning in steps
    assert m.reasons_in_steps("<think>3+5 is 8</think>8")
    assert m.reasons_in_steps("[3+5=8]8", r"^\[\d", min_steps=1, think_block=None)


def test_generated_tokens_counts_in_the_models_tokenizer(tmp_path):
    from mergekit_weightlevel.toy.tokenizer import CharCodec, save_tokenizer

    save_tokenizer(tmp_path)
    text = "[3+5=8,8+8=16]16"
    # The toy's tokenizer has one token per character: its own codec is the oracle.
    expected = len(CharCodec().encode(text))
    assert m.generated_tokens(text, {m.TOKENIZER_FIELD: str(tmp_path)}) == expected
    with pytest.raises(ValueError, match="local_dataset"):
        m.generated_tokens(text, {})


def test_local_dataset_reads_files_beside_the_yaml_and_records_the_tokenizer(tmp_path):
    yaml_path = TOY_TASKS / "toy_qa_add3.yaml"
    dataset = local_dataset(
        {"test": "data/add3_held_out.jsonl"},
        config_source=str(yaml_path),
        pretrained="/models/instruct",
        version=1.0,
    )
    lines = (TOY_TASKS / "data" / "add3_held_out.jsonl").read_text().splitlines()
    assert len(dataset["test"]) == len(lines)
    first = dataset["test"][0]
    assert {k: first[k] for k in ("expression", "answer")} == json.loads(lines[0])
    assert first[m.TOKENIZER_FIELD] == "/models/instruct"
    # A `tokenizer` model argument wins over `pretrained` (as in lm-eval's RULER tasks).
    named = local_dataset(
        "data/add3_pass.jsonl", config_source=str(yaml_path), pretrained="a", tokenizer="b"
    )
    assert named["test"][0][m.TOKENIZER_FIELD] == "b"
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        local_dataset({"test": "missing.jsonl"}, config_source=str(yaml_path))


def test_hub_dataset_records_the_tokenizer_in_every_split(monkeypatch):
    import datasets

    from mergekit_weightlevel.evaluation.task_utils import hub_dataset

    asked = []

    def load_dataset(path, name=None):  # the Hub, as `datasets` would return it
        asked.append((path, name))
        rows = datasets.Dataset.from_list([{"question": "1+1", "answer": "2"}] * 3)
        return datasets.DatasetDict({"train": rows, "test": rows})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    loaded = hub_dataset("openai/gsm8k", "main", pretrained="/models/x", config_source="t.yaml")
    assert asked == [("openai/gsm8k", "main")]
    assert {split: set(part[m.TOKENIZER_FIELD]) for split, part in loaded.items()} == {
        "train": {"/models/x"},
        "test": {"/models/x"},
    }
