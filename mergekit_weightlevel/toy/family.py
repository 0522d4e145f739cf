"""Train the toy model family, each member cached in its own folder.

Members (every one a normal ``transformers`` Llama checkpoint with the char tokenizer):

==================  =========================================================  ===========
member              how it is made                                             from
==================  =========================================================  ===========
``base``            pre-training on add2, sub, some add3, small products        scratch
``instruct``        SFT into the Q/A format (direct answers), same problems     ``base``
``thinking``        SFT into the Q/A format with ``[steps]`` before the answer  ``base``
``base_v2``         continued pre-training: the other products, with replay     ``base``
``base_v2_sft``     the instruct SFT, run on ``base_v2`` (ParamΔ's reference)   ``base_v2``
``base_tuned``      full SFT on Q/A ``mod`` (Shadow-FT's W_B⁺)                  ``base``
``base_lora``       LoRA (PEFT adapter) on Q/A ``mod``                         ``base``
``instruct_tuned``  the same full SFT run on ``instruct`` (the usual way)       ``instruct``
``instruct_lora``   the same LoRA run on ``instruct``                           ``instruct``
``instruct_loud``   the instruct SFT at the first family's steps and rate       ``base``
==================  =========================================================  ===========

A folder holding ``toy-member.json`` with the same key (this member's training run and
its parent's key) is reused, so a second run skips training.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mergekit_weightlevel.toy import tasks
from mergekit_weightlevel.toy.tasks import Example
from mergekit_weightlevel.toy.tokenizer import save_tokenizer
from mergekit_weightlevel.toy.train import (
    ModelShape,
    TrainSpec,
    load_model,
    new_model,
    save_model,
    train,
)

MEMBER_FILE = "toy-member.json"

#: Bump when the tasks, formats or data mixtures change: cached members are then retrained.
WORLD_VERSION = 2


@dataclass(frozen=True)
class Recipe:
    """Step counts and sizes of the whole family (``smoke`` shrinks them for tests)."""

    shape: ModelShape = field(default_factory=ModelShape)
    pretrain_steps: int = 3000
    sft_steps: int = 100
    thinking_steps: int = 100
    continued_steps: int = 400
    tune_steps: int = 300
    lora_rank: int = 8
    # Learning rates (AdamW, warm-up then cosine to 10 %): pre-training from scratch is
    # fast; post-training gentle and short, so that it moves the weights as little as
    # real post-training does (σ ≤ 0.03, see the page's "Choices").
    pretrain_lr: float = 3e-3
    sft_lr: float = 1e-4
    thinking_lr: float = 1e-4
    continued_lr: float = 5e-5
    tune_lr: float = 3e-4
    lora_lr: float = 3e-3
    #: The first family's SFT (issue 7: 300 steps at 1e-3), rerun on this base as a
    #: yardstick: how far the same data moves the weights with the old post-training.
    loud_sft_steps: int = 300
    loud_sft_lr: float = 1e-3
    #: Share of pre-training documents in the Q/A formats (see ``Data.pretrain``).
    pretrain_format_share: float = 0.1
    #: add3 problems seen in pre-training and SFT; the other ones are never trained on.
    seen_add3: int = 400
    #: add3 problems never trained on: the reasoning benchmark.
    held_out_add3: int = 300
    seed: int = 0

    @classmethod
    def smoke(cls) -> Recipe:
        return cls(
            shape=ModelShape(hidden_size=32, intermediate_size=64, num_hidden_layers=1),
            pretrain_steps=4,
            sft_steps=2,
            thinking_steps=2,
            continued_steps=2,
            tune_steps=2,
            lora_rank=2,
            loud_sft_steps=2,
            held_out_add3=20,
        )


@dataclass(frozen=True)
class Data:
    """The data sets of the world, split once."""

    add2: list
    sub: list
    add3_seen: list
    add3_test: list
    #: The multiplication facts the base knows (a, b < 5) and those only base_v2 learns.
    mul_seen: list
    mul_new: list
    mod: list

    @classmethod
    def make(cls, recipe: Recipe) -> Data:
        rest, test3 = tasks.split(tasks.add3(), recipe.held_out_add3, seed=recipe.seed)
        mul = tasks.mul()
        seen_mul = [p for p in mul if max(p.operands) < 5]
        new_mul = [p for p in mul if max(p.operands) >= 5]
        return cls(
            tasks.add2(),
            tasks.sub(),
            rest[: recipe.seen_add3],
            test3,
            seen_mul,
            new_mul,
            tasks.mod(),
        )

    def _mix(self, render) -> list[tuple[list[Example], float]]:
        return [(render(p), w) for p, w in self._known()]

    @staticmethod
    def _corpus(
        facts: list[tuple[list, float]], format_share: float
    ) -> list[tuple[list[Example], float]]:
        """Pre-training text on ``facts`` [(problems, weight)]: plain statements, and now
        and then the same facts as questions and answers (``format_share`` of the documents:
        half with a direct answer, half with worked steps), as web text holds Q&A pages."""
        renders = [(tasks.plain_examples, 1 - format_share)]
        if format_share:
            renders += [
                (tasks.qa_documents, format_share / 2),
                (tasks.thinking_documents, format_share / 2),
            ]
        return [(render(p), w * share) for render, share in renders for p, w in facts]

    def _known(self) -> list[tuple[list, float]]:
        return list(
            zip((self.add2, self.sub, self.add3_seen, self.mul_seen), (0.3, 0.25, 0.35, 0.1))
        )

    def pretrain(self, format_share: float = 0.0) -> list[tuple[list[Example], float]]:
        """add2, sub, the seen add3 and a little mul as text (see ``_corpus``)."""
        return self._corpus(self._known(), format_share)

    def instruct_sft(self) -> list[tuple[list[Example], float]]:
        """The same problems, asked and answered directly in the Q/A format."""
        return self._mix(tasks.qa_examples)

    def thinking_sft(self) -> list[tuple[list[Example], float]]:
        """The same problems, answered with ``[steps]`` before the answer."""
        return self._mix(tasks.thinking_examples)

    def continued(self, format_share: float = 0.0) -> list[tuple[list[Example], float]]:
        """New knowledge (the rest of the multiplication table) with replay, as text."""
        return self._corpus(
            [(self.mul_new, 0.5)] + [(p, 0.5 * w) for p, w in self._known()], format_share
        )

    def new_skill(self) -> list[tuple[list[Example], float]]:
        """Shadow-FT's task: Q/A on mod, never seen before."""
        return [(tasks.qa_examples(self.mod), 1.0)]


@dataclass
class Member:
    name: str
    path: Path
    seconds: float
    cached: bool
    final_loss: float | None


def _member_key(name: str, recipe: Recipe, steps: int, lr: float, parent: dict | None) -> dict:
    """What a member depends on: its own training run and, recursively, its parent's key.

    Changing e.g. ``tune_steps`` retrains the tuned members only, not the base.
    """
    return {
        "member": name,
        "world": WORLD_VERSION,
        "shape": asdict(recipe.shape),
        "seed": recipe.seed,
        "data": [recipe.seen_add3, recipe.held_out_add3, recipe.lora_rank],
        "format_share": recipe.pretrain_format_share,
        "steps": steps,
        "lr": lr,
        "parent": parent,
    }


def _cached(folder: Path, key: dict) -> bool:
    marker = folder / MEMBER_FILE
    return marker.exists() and json.loads(marker.read_text())["key"] == key


def _write_marker(folder: Path, key: dict, losses: list[float], seconds: float) -> None:
    record = {"key": key, "seconds": seconds, "first_loss": losses[0], "final_loss": losses[-1]}
    (folder / MEMBER_FILE).write_text(json.dumps(record, indent=1))


def _member(
    root: Path, name: str, key: dict, make: Callable[[], tuple[object, list[float]]], save
) -> Member:
    folder = root / name
    if _cached(folder, key):
        record = json.loads((folder / MEMBER_FILE).read_text())
        return Member(name, folder, record["seconds"], True, record["final_loss"])
    start = time.perf_counter()
    model, losses = make()
    save(model, folder)
    seconds = time.perf_counter() - start
    _write_marker(folder, key, losses, seconds)
    return Member(name, folder, seconds, False, losses[-1])


def _finetune(
    source: Path | None, mixture, steps: int, lr: float, recipe: Recipe, seed_offset: int
):
    def make():
        model = new_model(recipe.shape, recipe.seed) if source is None else load_model(source)
        spec = TrainSpec(steps=steps, lr=lr, seed=recipe.seed + seed_offset)
        return model, train(model, mixture, spec)

    return make


def _lora(source: Path, mixture, steps: int, lr: float, recipe: Recipe, seed_offset: int):
    def make():
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(recipe.seed + seed_offset)
        config = LoraConfig(
            r=recipe.lora_rank,
            lora_alpha=2 * recipe.lora_rank,
            target_modules=[
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
            lora_dropout=0.0,
        )
        model = get_peft_model(load_model(source), config)
        spec = TrainSpec(steps=steps, lr=lr, seed=recipe.seed + seed_offset)
        return model, train(model, mixture, spec)

    return make


def _save_adapter(model, folder: Path) -> None:
    # A PEFT adapter folder; its base_model_name_or_path is the base's absolute path.
    model.save_pretrained(str(folder))


def build_toy_family(
    root: str | Path, recipe: Recipe | None = None, *, log: Callable[[str], None] = print
) -> dict[str, Member]:
    """Train (or reuse) every member under ``root``; returns them by name, in build order."""
    recipe = recipe or Recipe()
    root = Path(root).resolve()
    data = Data.make(recipe)
    members: dict[str, Member] = {}
    keys: dict[str, dict] = {}

    def add(name, parent, mixture, steps, lr, seed_offset, lora=False) -> Path:
        source = members[parent].path if parent else None
        key = _member_key(name, recipe, steps, lr, keys.get(parent))
        if lora:
            make, save = _lora(source, mixture, steps, lr, recipe, seed_offset), _save_adapter
        else:
            make, save = _finetune(source, mixture, steps, lr, recipe, seed_offset), save_model
        member = _member(root, name, key, make, save)
        if member.cached and not lora:
            # Tokenizer files hold no trained state: a member cached by an older version of
            # the toy gets the current ones (the BOS that lm-eval needs, e.g.).
            save_tokenizer(member.path)
        members[name], keys[name] = member, key
        state = "cached" if member.cached else f"trained in {member.seconds:.0f} s"
        log(f"  {name:<15} {state}, final loss {member.final_loss:.3f}")
        return member.path

    r = recipe
    add("base", None, data.pretrain(r.pretrain_format_share), r.pretrain_steps, r.pretrain_lr, 0)
    add("instruct", "base", data.instruct_sft(), r.sft_steps, r.sft_lr, 1)
    add("thinking", "base", data.thinking_sft(), r.thinking_steps, r.thinking_lr, 2)
    add(
        "base_v2",
        "base",
        data.continued(r.pretrain_format_share),
        r.continued_steps,
        r.continued_lr,
        3,
    )
    add("base_v2_sft", "base_v2", data.instruct_sft(), r.sft_steps, r.sft_lr, 1)
    add("base_tuned", "base", data.new_skill(), r.tune_steps, r.tune_lr, 4)
    add("instruct_tuned", "instruct", data.new_skill(), r.tune_steps, r.tune_lr, 4)
    add("base_lora", "base", data.new_skill(), r.tune_steps, r.lora_lr, 5, lora=True)
    add("instruct_lora", "instruct", data.new_skill(), r.tune_steps, r.lora_lr, 5, lora=True)
    add("instruct_loud", "base", data.instruct_sft(), r.loud_sft_steps, r.loud_sft_lr, 1)
    return members
