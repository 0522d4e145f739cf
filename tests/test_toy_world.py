"""The toy world's pieces: tokenizer, task generators, trainer (scoring: test_toy_eval_tasks)."""

from __future__ import annotations

import pytest
import torch

from mergekit_weightlevel.toy import tasks
from mergekit_weightlevel.toy.tokenizer import (
    BOS_ID,
    CHARACTERS,
    EOS_ID,
    CharCodec,
    save_tokenizer,
    vocab_size,
)
from mergekit_weightlevel.toy.train import ModelShape, TrainSpec, new_model, train

# ---------------------------------------------------------------- tokenizer


def test_saved_tokenizer_loads_with_autotokenizer_and_round_trips(tmp_path):
    from transformers import AutoTokenizer

    save_tokenizer(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    text = "Q:13+5+8?A:[13+5=18,18+8=26]26 7*8=56. 9%4=1"
    ids = tokenizer(text)["input_ids"]
    # One token per character after BOS, as training feeds the models (train.encode_batch);
    # no EOS added.
    assert ids == [BOS_ID, *CharCodec().encode(text)]
    assert len(ids) == len(text) + 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == CharCodec().encode(text)
    assert len(tokenizer) == vocab_size() == 4 + len(CHARACTERS)
    assert tokenizer.eos_token_id == EOS_ID


def test_codec_decode_stops_at_eos():
    codec = CharCodec()
    assert codec.decode([*codec.encode("12"), EOS_ID, *codec.encode("34")]) == "12"


# ---------------------------------------------------------------- tasks


def test_task_sizes_and_answers_in_closed_form():
    assert len(tasks.add2()) == 200 and len(tasks.add3()) == 1000 and len(tasks.mul()) == 100
    assert len(tasks.add2_high()) == 200
    assert not {p.expression for p in tasks.add2()} & {p.expression for p in tasks.add2_high()}
    assert len(tasks.sub()) == sum(min(a, 9) + 1 for a in range(20))
    assert len(tasks.mod()) == 180
    for problem in tasks.add3():
        assert problem.answer == sum(problem.operands)
    for problem in tasks.sub():
        a, b = problem.operands
        assert problem.answer == a - b >= 0
    for problem in tasks.mod():
        a, b = problem.operands
        assert problem.answer == a - b * (a // b)


def test_formats_of_one_problem():
    p = tasks.Problem((3, 5, 8), "+")
    assert p.plain() == "3+5+8=16."
    assert p.prompt() == "Q:3+5+8?A:"
    assert p.direct_completion() == "16"
    assert p.thinking_completion() == "[3+5=8,8+8=16]16"


def test_every_thinking_step_is_a_true_add2_fact():
    known = {p.plain()[:-1] for p in tasks.add2()}
    for problem in tasks.add3():
        for step in problem.steps():
            assert step in known
            left, right = step.split("=")
            assert eval(left) == int(right)  # noqa: S307 (digits and + only)


def test_split_is_deterministic_and_disjoint():
    train_a, held_a = tasks.split(tasks.add3(), 300, seed=0)
    train_b, held_b = tasks.split(tasks.add3(), 300, seed=0)
    assert held_a == held_b and train_a == train_b
    assert not set(train_a) & set(held_a) and len(held_a) == 300
    assert tasks.split(tasks.add3(), 300, seed=1)[1] != held_a


# ---------------------------------------------------------------- trainer


def test_a_few_steps_lower_the_loss():
    model = new_model(ModelShape(hidden_size=32, intermediate_size=64, num_hidden_layers=1), 0)
    examples = tasks.qa_examples(tasks.add2()[:20])
    losses = train(model, [(examples, 1.0)], TrainSpec(steps=40, lr=1e-2, batch_size=16))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_training_is_deterministic():
    shape = ModelShape(hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    examples = tasks.plain_examples(tasks.sub()[:30])
    runs = []
    for _ in range(2):
        model = new_model(shape, 0)
        runs.append(train(model, [(examples, 1.0)], TrainSpec(steps=5, batch_size=8)))
    assert runs[0] == runs[1]


def test_bucketed_loss_equals_the_loss_of_one_padded_batch():
    """Short and long sequences run apart give the same loss (and gradient) as one batch."""
    from mergekit_weightlevel.toy.train import SHORT, batch_loss, encode_batch

    model = new_model(ModelShape(hidden_size=32, intermediate_size=64, num_hidden_layers=1), 0)
    problems = tasks.add3()[:6]
    batch = [*tasks.plain_examples(problems), *tasks.thinking_documents(problems)]
    batch += tasks.thinking_examples(problems)  # prompt off the loss, long completion
    lengths = [len(e.prompt) + len(e.completion) + 2 for e in batch]
    assert min(lengths) <= SHORT < max(lengths)  # both buckets are used
    codec = CharCodec()
    ids, mask, labels = encode_batch(batch, codec)
    whole = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    whole.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    bucketed = batch_loss(model, batch, codec)
    bucketed.backward()
    assert float(bucketed.detach()) == pytest.approx(float(whole.detach()), rel=1e-5)
    for got, want in zip((p.grad for p in model.parameters()), expected):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_documents_put_the_whole_question_and_answer_in_the_loss():
    problem = tasks.Problem((3, 5, 8), "+")
    (direct,) = tasks.qa_documents([problem])
    (worked,) = tasks.thinking_documents([problem])
    assert (direct.prompt, direct.completion) == ("", "Q:3+5+8?A:16")
    assert (worked.prompt, worked.completion) == ("", "Q:3+5+8?A:[3+5=8,8+8=16]16")


def test_pretraining_corpus_holds_the_format_share_of_qa_documents():
    from mergekit_weightlevel.toy.family import Data, Recipe

    data = Data.make(Recipe.smoke())
    corpus = data.pretrain(0.1)
    total = sum(weight for _, weight in corpus)
    qa = sum(w for examples, w in corpus if examples[0].completion.startswith("Q:"))
    assert total == pytest.approx(1.0) and qa == pytest.approx(0.1)
    assert all(not e.prompt for examples, _ in corpus for e in examples)  # all plain text
    assert (
        sum(w for examples, w in data.pretrain(0.0) if examples[0].completion.startswith("Q:")) == 0
    )
    continued = data.continued(0.1)
    new = {p.plain() for p in data.mul_new}
    assert sum(w for ex, w in continued if ex[0].completion in new) == pytest.approx(0.45)
