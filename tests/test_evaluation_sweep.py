"""``evaluate_sweep``: a sweep's outputs and its axis' ends evaluated, a value chosen, the
report written, ``--keep best`` applied; the choice rules on hand-made curves."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from mergekit.options import MergeOptions

from mergekit_weightlevel.evaluation import evaluate_sweep
from mergekit_weightlevel.evaluation.results import MetricValue, ModelEvaluation
from mergekit_weightlevel.evaluation.selection import Selection, SelectionError, choose
from mergekit_weightlevel.method_configs import interp_config
from mergekit_weightlevel.running.merging import merge_yaml

TOY_MODELS = Path(__file__).resolve().parent.parent / "examples" / "toy" / "models"
INSTRUCT, THINKING = TOY_MODELS / "instruct", TOY_MODELS / "thinking"


def quiet(_line: str) -> None:
    pass


def curve(points: dict[float, dict[str, float]], task: str = "t") -> list:
    """Hand-made outputs: {value: {metric: score}} (acc higher is better, length lower)."""
    return [
        (
            value,
            ModelEvaluation(
                Path(f"/out/{value:g}"),
                f"v{value:g}",
                "evaluated",
                metrics=[
                    MetricValue(task, name, "none", score, None, name != "gen_length")
                    for name, score in scores.items()
                ],
            ),
        )
        for value, scores in points.items()
    ]


def test_the_best_value_and_ties_to_the_smaller_value():
    points = curve({0.2: {"acc": 0.7}, 0.4: {"acc": 0.9}, 0.6: {"acc": 0.9}, 0.8: {"acc": 0.5}})
    chosen = choose("lambda", points, Selection("t", "acc"))
    assert (chosen.value, chosen.score) == (0.4, 0.9)
    assert "the highest t:acc: 0.9000" in chosen.reason
    assert "lowest t:acc" in choose("lambda", points, Selection("t", "acc", "min")).reason
    lowest = choose("lambda", points, Selection("t", "acc", "min"))
    assert lowest.value == 0.8


def test_within_picks_the_shortest_generations_near_the_best():
    # The interpolation paper's plateau: accuracy saturates while length keeps growing.
    points = curve(
        {
            0.2: {"acc": 0.40, "gen_length": 50},
            0.4: {"acc": 0.78, "gen_length": 300},
            0.5: {"acc": 0.81, "gen_length": 420},
            0.6: {"acc": 0.82, "gen_length": 900},
        }
    )
    chosen = choose("lambda", points, Selection("t", "acc"), within=2)
    assert chosen.value == 0.5  # 0.81 is within 2 points of 0.82, and shorter than 0.6
    assert "shortest generations" in chosen.reason
    assert choose("lambda", points, Selection("t", "acc"), within=5).value == 0.4
    assert choose("lambda", points, Selection("t", "acc"), within=0).value == 0.6


def test_within_without_a_length_picks_the_smallest_value_and_units_follow_the_metric():
    shares = curve({0.0: {"acc": 0.95}, 0.5: {"acc": 0.96}, 1.0: {"acc": 0.97}})
    assert choose("lambda", shares, Selection("t", "acc"), within=1.5).value == 0.5
    # A metric outside [0, 1] is read in its own units: 3 units, not 3 points.
    raw = curve({0.0: {"score": 40.0}, 0.5: {"score": 42.0}, 1.0: {"score": 44.0}})
    assert choose("lambda", raw, Selection("t", "score"), within=3).value == 0.5


def test_failed_outputs_are_not_chosen():
    points = curve({0.2: {"acc": 0.5}, 0.4: {"acc": 0.6}})
    points.append((0.6, ModelEvaluation(Path("/out/0.6"), "v0.6", "failed", error="OOM")))
    assert choose("lambda", points, Selection("t", "acc")).value == 0.4
    assert choose("lambda", points[2:], Selection("t", "acc")) is None


def test_a_selection_names_a_metric_the_tasks_produce():
    produced = {"toy_qa_add3": ["acc", "format", "gen_length"], "gsm8k": ["exact_match,strict"]}
    assert Selection.parse("gsm8k:exact_match").resolve(produced).metric == "exact_match,strict"
    with pytest.raises(SelectionError, match=r"'accuracy' is not produced.*toy_qa_add3: acc"):
        Selection.parse("toy_qa_add3:accuracy").resolve(produced)
    with pytest.raises(SelectionError, match="task 'mmlu' is not evaluated"):
        Selection.parse("mmlu:acc").resolve(produced)
    with pytest.raises(SelectionError, match="TASK:METRIC"):
        Selection.parse("toy_qa_add3")


@pytest.fixture(scope="module")
def interpolation(tmp_path_factory) -> tuple[Path, list[tuple[float, Path]]]:
    """The toy pair interpolated at λ = 0, 0.6, 1 through mergekit's YAML path."""
    root = tmp_path_factory.mktemp("sweep")
    outputs = []
    for lam in (0.0, 0.6, 1.0):
        out = root / f"interp-lambda{lam:g}"
        config = interp_config(INSTRUCT, THINKING, lam, dtype="float32")
        merge_yaml(config, out, MergeOptions(quiet=True, copy_tokenizer=True))
        outputs.append((lam, out))
    return root, outputs


def test_a_sweep_is_evaluated_chosen_and_reported(interpolation, tmp_path):
    root, outputs = interpolation
    report = evaluate_sweep(
        "lambda",
        outputs,
        {"Instruct": INSTRUCT, "Thinking": THINKING},
        "toy_qa_add3",
        root / "interp",
        select="toy_qa_add3:acc",
        within=50,
        limit=12,
        batch_size=16,
        cache_dir=tmp_path / "cache",
        log=quiet,
    )
    written = json.loads(report.json_path.read_text())
    assert [row["value"] for row in written["values"]] == [0.0, 0.6, 1.0]
    assert [ref["name"] for ref in written["references"]] == ["Instruct", "Thinking"]
    rows = {row["value"]: row["metrics"] for row in written["values"]}
    acc = {v: m["toy_qa_add3:acc"]["score"] for v, m in rows.items()}
    length = {v: m["toy_qa_add3:gen_length"]["score"] for v, m in rows.items()}
    # The choice, recomputed from the written numbers: the shortest generations among the
    # values within 50 points of the best accuracy.
    near = [v for v in acc if acc[v] >= max(acc.values()) - 0.5]
    expected = min(near, key=lambda v: (length[v], v))
    assert written["chosen"]["value"] == expected
    assert "shortest generations" in written["chosen"]["reason"]
    # λ = 0 is the Instruct model and λ = 1 the Thinking model, weight for weight.
    by_name = {ref["name"]: ref["metrics"] for ref in written["references"]}
    assert rows[0.0] == by_name["Instruct"] and rows[1.0] == by_name["Thinking"]
    assert length[1.0] > length[0.0]
    # The page: one plot per metric, a dashed line per reference, the chosen point ringed.
    page = report.html_path.read_text()
    svgs = [ElementTree.fromstring(s.split("</figure>")[0].split("<figcaption>")[0])
            for s in page.split("<figure>")[1:]]  # fmt: skip
    assert len(svgs) == len(written["metrics"]) == 4
    namespace = "{http://www.w3.org/2000/svg}"
    for svg in svgs:
        assert len(svg.findall(f"{namespace}g[@class='reference']")) == 2
        assert len(svg.findall(f"{namespace}g[@class='chosen']")) == 1
        assert len(svg.findall(f"{namespace}g[@class='point']")) == 3
    assert f"lambda = {expected:g}" in page


def test_a_rerun_evaluates_nothing_and_keep_best_removes_only_other_outputs(
    interpolation, tmp_path, monkeypatch
):
    root, outputs = interpolation
    copies = [(v, Path(shutil.copytree(f, tmp_path / f.name))) for v, f in outputs]
    arguments = dict(
        select="toy_qa_add3:gen_length:min", limit=6, cache_dir=tmp_path / "cache", log=quiet
    )
    references = {"Instruct": INSTRUCT}
    evaluate_sweep("lambda", copies, references, "toy_qa_add3", tmp_path / "s", **arguments)
    import mergekit_weightlevel.evaluation.evaluate as evaluate_module

    def must_not_run(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(evaluate_module, "run_lm_eval", must_not_run)
    users = copies[-1][1]  # a user's notes and results in one output: never ours to delete
    (users / "notes.md").write_text("mine")
    (users / "my_results").mkdir()
    (users / "my_results" / "a.txt").write_text("mine too")
    again = evaluate_sweep(
        "lambda", copies, references, "toy_qa_add3", tmp_path / "s", keep="best", **arguments
    )
    assert all(model.status == "cached" for _, model in again.outputs)
    kept = Path(again.chosen.folder)
    assert again.chosen.value == 0.0  # the Instruct end answers shortest
    assert kept.is_dir() and sorted(again.removed) == sorted(f for _, f in copies if f != kept)
    assert all(not f.exists() for f in again.removed if f != users)
    assert sorted(p.name for p in users.iterdir()) == ["my_results", "notes.md"]
    assert (users / "my_results" / "a.txt").read_text() == "mine too"
    assert (INSTRUCT / "model.safetensors").is_file()
    assert json.loads(again.json_path.read_text())["removed"] == [str(f) for f in again.removed]


def test_one_failed_output_leaves_the_others_complete(interpolation, tmp_path):
    root, outputs = interpolation
    copies = [(v, Path(shutil.copytree(f, tmp_path / f.name))) for v, f in outputs]
    (copies[1][1] / "model.safetensors").write_bytes(b"broken")
    report = evaluate_sweep(
        "lambda",
        copies,
        {},
        "toy_qa_add3",
        tmp_path / "s",
        select="toy_qa_add3:acc",
        limit=4,
        cache_dir=tmp_path / "cache",
        log=quiet,
    )
    statuses = {value: model.status for value, model in report.outputs}
    assert statuses == {0.0: "evaluated", 0.6: "failed", 1.0: "evaluated"}
    failed = report.outputs[1][1]
    assert "could not load the model" in failed.error and copies[1][1].name in failed.error
    assert "failed" in report.table() and report.chosen.value in (0.0, 1.0)
    assert "failed: " in report.html_path.read_text()


def test_bad_sweep_arguments_are_refused_before_any_work(interpolation, tmp_path):
    root, outputs = interpolation
    with pytest.raises(SelectionError, match="--keep best needs --select"):
        evaluate_sweep("lambda", outputs, {}, "toy_qa_add3", tmp_path / "s", keep="best")
    with pytest.raises(SelectionError, match="reference Instruct"):
        evaluate_sweep(
            "lambda", outputs, {"Instruct": outputs[0][1]}, "toy_qa_add3", tmp_path / "s"
        )
    with pytest.raises(SelectionError, match="'pass@1' is not produced.*toy_qa_add3: acc"):
        evaluate_sweep(
            "lambda",
            outputs,
            {},
            "toy_qa_add3",
            tmp_path / "s",
            select="toy_qa_add3:pass@1",
            cache_dir=tmp_path / "cache",
            log=quiet,
        )
    assert not (tmp_path / "s-sweep.json").exists()
