"""The one-command replication, on a miniature recipe (seconds): every section is written."""

from __future__ import annotations

from mergekit_weightlevel.toy.__main__ import main
from mergekit_weightlevel.toy.family import MEMBER_FILE, Recipe, build_toy_family

#: The sections with a table and a reading, in page order.
SECTIONS = (
    "## The family",
    "## The regime: analyze on the family",
    "## ParamΔ",
    "## Shadow-FT",
    "## Instruct ↔ Thinking interpolation",
    "## Timber",
)


def test_smoke_run_writes_every_section_and_the_plot(tmp_path):
    doc = tmp_path / "docs" / "toy.md"
    main(["--smoke", "--work", str(tmp_path / "work"), "--doc", str(doc)])
    text = doc.read_text(encoding="utf-8")
    positions = [text.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions)
    assert text.count("**Reading.**") == len(SECTIONS)
    for heading in ("## In short", "## What changed", "## Choices"):
        assert text.index(heading) > positions[-1]
    # The regime table has one row per member compared with base, each with its σ.
    regime = text.split("## The regime")[1].split("## ParamΔ")[0]
    for member in ("instruct", "thinking", "base_v2", "base_tuned", "instruct_loud"):
        assert f"| `{member}` | 0." in regime
    assert "**Machine:**" in text and "**Date:**" in text
    assert "python -m mergekit_weightlevel.toy --smoke" in text
    assert (tmp_path / "docs" / "toy-interpolation.png").stat().st_size > 1000
    # The interpolation table has one row per λ of the smoke settings (0, 0.5, 1).
    interp = text.split("## Instruct ↔ Thinking interpolation")[1].split("## Timber")[0]
    assert (
        sum(line.startswith("| 0.") or line.startswith("| 1.") for line in interp.splitlines()) == 3
    )
    # The merges went through mergekit's YAML path: each output keeps its config.
    merged = tmp_path / "work" / "merged"
    for name in ("paramdelta", "shadow_full", "shadow_lora", "interp-0.5", "timber-0.2"):
        assert (merged / name / "mergekit_config.yml").exists()


def test_family_members_are_cached_and_loadable(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = Recipe.smoke()
    first = build_toy_family(tmp_path, recipe, log=lambda _: None)
    assert not any(m.cached for m in first.values())
    again = build_toy_family(tmp_path, recipe, log=lambda _: None)
    assert all(m.cached for m in again.values())
    assert (tmp_path / "base" / MEMBER_FILE).exists()
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "instruct"))
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "instruct"))
    assert model.config.vocab_size == len(tokenizer)
    assert (tmp_path / "base_lora" / "adapter_config.json").exists()
    # A different recipe is not mistaken for the cached one.
    changed = build_toy_family(
        tmp_path, Recipe(**{**recipe.__dict__, "tune_steps": 3}), log=lambda _: None
    )
    assert not changed["base_tuned"].cached and changed["base"].cached


def test_demo_runs_on_a_trained_family_and_keeps_its_adapter(tmp_path):
    import pytest

    from mergekit_weightlevel.demo import run_demo

    recipe = Recipe.smoke()
    build_toy_family(tmp_path / "models", recipe, log=lambda _: None)
    adapter = tmp_path / "models" / "base_lora" / "adapter_model.safetensors"
    trained_adapter = adapter.read_bytes()
    report = run_demo(tmp_path / "demo", family_root=tmp_path / "models")
    assert report.family.base == (tmp_path / "models" / "base").resolve()
    assert adapter.read_bytes() == trained_adapter  # the trained LoRA was used, not replaced
    for merge in report.merges:
        assert merge.max_abs_error < 1e-4, merge.method
    with pytest.raises(FileNotFoundError, match="demo: .* no checkpoint for"):
        run_demo(tmp_path / "demo2", family_root=tmp_path / "demo")


def test_toy_modules_import_each_other_one_way_only():
    """No import cycle among the toy's modules, counting imports inside functions."""
    import ast
    from pathlib import Path

    import mergekit_weightlevel.toy as toy

    root = Path(toy.__file__).parent
    modules = {
        "mergekit_weightlevel.toy." + ".".join(path.relative_to(root).with_suffix("").parts): path
        for path in root.rglob("*.py")
    }
    modules = {name.removesuffix(".__init__"): path for name, path in modules.items()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            imported |= {t for t in targets if t in modules and t != name}
        graph[name] = imported
    assert "mergekit_weightlevel.toy.report.paramdelta" in graph  # one module per paper
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for child in sorted(graph[node]):
            assert state.get(child) != 1, " -> ".join([*path, node, child])
            if child not in state:
                visit(child, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_regime_targets_are_checked_only_where_a_member_has_them():
    from mergekit_weightlevel.toy.report.regime import ERANK_TARGET, SIGMA_TARGET, Regime

    near, far = SIGMA_TARGET / 2, SIGMA_TARGET * 2
    assert Regime("instruct", near, ERANK_TARGET / 2, True, True).met
    assert not Regime("instruct", far, ERANK_TARGET / 2, True, True).met
    assert not Regime("instruct", near, ERANK_TARGET * 2, True, True).met
    assert Regime("base_v2", near, ERANK_TARGET * 2, True, False).met  # eRank free to change
    assert not Regime("base_tuned", far, 1.0, False, False).targeted


def test_learning_rates_are_written_as_in_the_recipe():
    from mergekit_weightlevel.toy.report.render import rate

    assert [rate(x) for x in (1e-4, 3e-3, 5e-5, 1e-3)] == ["1e-4", "3e-3", "5e-5", "1e-3"]
