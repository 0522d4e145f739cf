"""Runs on Ray: the oracle of each is the same run without Ray.

The tests marked with ``ray_instance`` share one local Ray instance (2 CPUs) per session;
the others need no Ray at all (the grouping, the resource requests, the messages).
"""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray_units
from click.testing import CliRunner
from mergekit.options import MergeOptions

from mergekit_weightlevel import method_configs
from mergekit_weightlevel.analyze import analyze_models
from mergekit_weightlevel.cli import main
from mergekit_weightlevel.distributed.cluster import Cluster, Node, TaskRequest
from mergekit_weightlevel.distributed.connection import ClusterUnreachableError, connect
from mergekit_weightlevel.distributed.settings import RaySettings
from mergekit_weightlevel.distributed.storage import (
    PROBE_PREFIX,
    Probe,
    SharedStorageError,
    check_shared_storage,
    read_probes,
)
from mergekit_weightlevel.distributed.sweep import group_sizes, split_request
from mergekit_weightlevel.distributed.units import UnitsInterrupted, run_units
from mergekit_weightlevel.errors import WeightLevelInputError
from mergekit_weightlevel.running.sweep import plan_sweep, sweep

VALUES = [0.0, 0.2, 1.0]


def timber_yaml(family, folder: Path) -> Path:
    path = folder / "timber.yml"
    config = method_configs.timber_config(family.base, family.instruct, dtype="float32")
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; the card's own folder name (it says where the model is) as FOLDER."""
    return {
        path.name: path.read_bytes().replace(str(folder).encode(), b"FOLDER")
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------ without Ray


def test_without_ray_nothing_imports_ray(llama_family, tmp_path):
    """The quickstart path: a sweep and the help of every command, and `ray` never imported."""
    config = timber_yaml(llama_family, tmp_path)
    code = f"""
import sys
from click.testing import CliRunner
from mergekit_weightlevel.cli import main
for args in (["sweep", {str(config)!r}, {str(tmp_path / "t")!r}, "--values", "0.2"],
             ["sweep", "--help"], ["sweep", "timber", "--help"], ["analyze", "--help"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
print("ray" in sys.modules, "mergekit_weightlevel.distributed.units" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
    assert (tmp_path / "t-lambda0.2" / "model.safetensors").exists()


def test_analyze_of_some_pairs_gives_those_pairs_of_the_full_run(llama_family):
    """What each Ray task of analyze runs: the full run's pair, nothing else read."""
    from mergekit_weightlevel.analyze.core import planned_pairs

    models = [llama_family.base, llama_family.instruct, llama_family.thinking]
    full = analyze_models(models, all_pairs=True, metrics="sigma,erank", quiet=True)
    assert planned_pairs(3, all_pairs=True) == [(0, 1), (0, 2), (1, 2)]
    assert planned_pairs(3) == [(0, 1), (0, 2)]
    for index, pair in enumerate(planned_pairs(3, all_pairs=True)):
        one = analyze_models(
            models, all_pairs=True, metrics="sigma,erank", quiet=True, pairs=[pair]
        )
        assert [p.to_dict() for p in one.pairs] == [full.pairs[index].to_dict()]
        assert one.models == full.models and one.metrics == full.metrics
    with pytest.raises(WeightLevelInputError, match=r"pairs=\[\(1, 2\)\] are not compared"):
        analyze_models(models, pairs=[(1, 2)])


def test_groups_split_the_values_contiguously(llama_family, tmp_path):
    request = plan_sweep(
        method_configs.timber_config(llama_family.base, llama_family.instruct),
        [0.0, 0.1, 0.2, 0.3, 0.4],
        out_prefix=tmp_path / "t",
    )
    assert group_sizes(5, 2) == [3, 2]
    assert group_sizes(2, 8) == [1, 1]
    by_slots = split_request(request, slots=2)
    assert [group.values for group in by_slots] == [(0.0, 0.1, 0.2), (0.3, 0.4)]
    assert [group.out_dirs for group in by_slots] == [request.out_dirs[:3], request.out_dirs[3:]]
    assert [group.configs for group in by_slots] == [request.configs[:3], request.configs[3:]]
    by_size = split_request(request, slots=8, values_per_task=2)
    assert [group.values for group in by_size] == [(0.0, 0.1), (0.2, 0.3), (0.4,)]


def test_one_gpu_per_task_where_the_cluster_has_gpus_else_one_cpu():
    gpu_node = Node("a" * 16, "gpu-host", cpus=16, gpus=8)
    cpu_node = Node("b" * 16, "cpu-host", cpus=4, gpus=0)
    cluster = Cluster("test", (gpu_node, cpu_node))
    request = cluster.request(RaySettings())
    assert request == TaskRequest(cpus=1, gpus=1)
    assert cluster.slots(request) == 8
    assert cluster.nodes_for(request) == [gpu_node]
    assert Cluster("test", (cpu_node,)).request(RaySettings()) == TaskRequest(cpus=1, gpus=0)
    two = cluster.request(RaySettings(gpus_per_task=2, cpus_per_task=4))
    assert cluster.slots(two) == 4
    with pytest.raises(WeightLevelInputError, match=r"2 GPU \+ 32 CPU, which no node has"):
        cluster.request(RaySettings(gpus_per_task=2, cpus_per_task=32))


def test_ray_options_without_ray_are_a_usage_error(llama_family, tmp_path):
    config = str(timber_yaml(llama_family, tmp_path))
    for option in (["--gpus-per-task", "1"], ["--cpus-per-task", "2"], ["--values-per-task", "1"]):
        result = CliRunner().invoke(main, ["sweep", config, str(tmp_path / "t"), *option])
        assert result.exit_code == 2, result.output
        assert f"{option[0]} applies to a run on Ray" in result.output
    assert not (tmp_path / "t-lambda0").exists()
    with pytest.raises(WeightLevelInputError, match="a task must request a CPU or a GPU"):
        RaySettings(gpus_per_task=0, cpus_per_task=0)


def test_an_unreachable_address_fails_fast_naming_it(llama_family, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install '.[distributed]'")
    address = f"ray://127.0.0.1:{closed_port()}"
    expected = f"cannot reach the Ray cluster at {address}"
    with pytest.raises(ClusterUnreachableError, match=expected), connect(address):
        pass
    config = str(timber_yaml(llama_family, tmp_path))
    result = CliRunner().invoke(
        main, ["sweep", config, str(tmp_path / "t"), "--ray-address", address]
    )
    assert result.exit_code == 1
    assert f"error: cannot reach the Ray cluster at {address}" in result.output
    assert not (tmp_path / "t-lambda0").exists()


def test_a_probe_the_driver_does_not_see_is_not_shared_storage(tmp_path):
    elsewhere = Probe("c" * 32, "node-7", path=str(tmp_path / f"{PROBE_PREFIX}x-ccc"))
    with pytest.raises(SharedStorageError) as raised:
        read_probes(tmp_path, [elsewhere], token="x")
    message = str(raised.value)
    assert f"{tmp_path} is not shared with node node-7 (cccccccc)" in message
    assert "shared storage" in message and "\n" not in message


# ------------------------------------------------------------------ on a local Ray instance


def test_analyze_of_three_models_equals_the_local_run(ray_instance, llama_family):
    from mergekit_weightlevel.distributed.analyze import analyze_on_ray

    models = [llama_family.base, llama_family.instruct, llama_family.thinking]
    options = {"metrics": "sigma,erank", "names": ["Base", "Instruct", "Thinking"]}
    local = analyze_models(models, all_pairs=True, quiet=True, **options)
    on_ray = analyze_on_ray(models, all_pairs=True, **options)

    assert [(pair.a, pair.b) for pair in on_ray.pairs] == [(pair.a, pair.b) for pair in local.pairs]
    assert len(on_ray.pairs) == 3
    for report in (local, on_ray):
        report.settings.pop("created")
    assert on_ray.to_json() == local.to_json()
    assert on_ray.summary_text() == local.summary_text()
    assert on_ray.to_markdown() == local.to_markdown()


def test_sweep_of_three_values_equals_the_local_run_bit_for_bit(
    ray_instance, llama_family, tmp_path
):
    from mergekit_weightlevel.distributed.sweep import sweep_on_ray

    config = method_configs.timber_config(llama_family.base, llama_family.instruct, dtype="float32")
    options = MergeOptions(quiet=True, copy_tokenizer=True)
    local = sweep(config, VALUES, tmp_path / "local" / "timber", options=options)
    request = plan_sweep(config, VALUES, out_prefix=tmp_path / "ray" / "timber")
    swept = sweep_on_ray(request, options, evaluate=ray_units.weights_digests)

    assert [result.output.value for result in swept] == VALUES
    assert all(output.error is None for output in [*local, *(r.output for r in swept)])
    for here, there in zip(local, swept):
        assert there.output.folder == tmp_path / "ray" / here.folder.name
        assert files_of(there.output.folder) == files_of(here.folder)
    # The hook ran in the tasks, one per group (0 and 0.2, then 1), after their merges.
    pids = [result.evaluation[0] for result in swept]
    assert pids[0] == pids[1] and ray_units.os.getpid() not in pids
    digests = [result.evaluation[1] for result in swept]
    assert digests == [ray_units.weights_digest(output.folder) for output in local]
    assert not list((tmp_path / "ray").glob(f"{PROBE_PREFIX}*"))


@pytest.mark.parametrize("dies_while", ["merging", "evaluating"])
def test_a_group_whose_task_dies_twice_is_reported_and_the_others_complete(
    ray_instance, llama_family, tmp_path, dies_while
):
    from mergekit_weightlevel.distributed.sweep import sweep_on_ray

    config = method_configs.interp_config(llama_family.instruct, llama_family.thinking, 0.5)
    request = plan_sweep(config, [0.2, 0.45, 0.8], out_prefix=tmp_path / "interp")
    attempts = tmp_path / "attempts"
    hook = ray_units.die_mid_merge_on_value if dies_while == "merging" else ray_units.die_on_value
    dies = functools.partial(hook, 0.45, str(attempts))
    swept = sweep_on_ray(request, MergeOptions(quiet=True), values_per_task=1, evaluate=dies)

    assert attempts.read_text() == "2"
    assert [result.output.value for result in swept] == [0.2, 0.45, 0.8]
    died = swept[1]
    reason = "its task failed: its worker died, and so did its retry"
    if dies_while == "merging":  # not written, and its folder says so
        assert died.output.error.startswith(reason)
        assert (died.output.folder / "MERGE_INCOMPLETE.txt").is_file()
    else:  # its merge had finished: written, only its evaluation failed
        assert died.output.error is None
        assert died.evaluation_error.startswith(reason)
        assert not (died.output.folder / "MERGE_INCOMPLETE.txt").exists()
        alone = sweep(config, [0.45], tmp_path / "alone" / "interp")[0].folder
        assert ray_units.weights_digest(died.output.folder) == ray_units.weights_digest(alone)
    for result in (swept[0], swept[2]):
        assert result.output.error is None
        assert result.evaluation == ray_units.weights_digest(result.output.folder)


def test_sweep_timber_command_with_ray_writes_what_it_writes_without(
    ray_instance, llama_family, tmp_path
):
    config = str(timber_yaml(llama_family, tmp_path))
    lines = {}
    for where, extra in (("local", []), ("ray", ["--ray", "--values-per-task", "1"])):
        args = ["sweep", "timber", config, str(tmp_path / where / "t"), "--lambdas", "0,0.2"]
        result = CliRunner().invoke(main, [*args, "--quiet", *extra])
        assert result.exit_code == 0, result.output
        lines[where] = result.stdout.replace(str(tmp_path / where), "OUT").splitlines()
        if where == "ray":  # progress on stderr as each task ends
            assert sorted(result.stderr.splitlines()) == [
                "task lambda 0.2: done",
                "task lambda 0: done",
            ]
    assert (
        lines["ray"]
        == lines["local"]
        == [
            "lambda 0: OUT/t-lambda0",
            "lambda 0.2: OUT/t-lambda0.2",
        ]
    )
    for name in ("t-lambda0", "t-lambda0.2"):
        assert files_of(tmp_path / "ray" / name) == files_of(tmp_path / "local" / name)


def test_a_unit_whose_worker_dies_is_retried_once_then_reported(ray_instance, tmp_path):
    attempts = tmp_path / "attempts"
    request = TaskRequest(cpus=1, gpus=0)
    outcomes = run_units(
        lambda payload: payload[0](*payload[1:]),
        [(ray_units.square, 3), (ray_units.die, str(attempts)), (ray_units.refuse, "no")],
        request,
        labels=["three", "dies", "refuses"],
    )
    assert [outcome.label for outcome in outcomes] == ["three", "dies", "refuses"]
    assert outcomes[0].ok and outcomes[0].result == 9
    assert attempts.read_text() == "2"  # ran, its worker died, ran once more
    assert outcomes[1].result is None
    assert outcomes[1].error.startswith("its worker died, and so did its retry")
    assert outcomes[2].error == "ValueError: no"  # an exception: reported, not retried
    assert isinstance(outcomes[2].exception, ValueError)


def test_ctrl_c_cancels_the_unfinished_units_and_stops_their_workers(ray_instance, tmp_path):
    pid_file = tmp_path / "pid"

    def interrupt_once_the_sleeper_runs(outcome) -> None:
        for _ in range(600):
            if pid_file.exists():
                break
            time.sleep(0.1)
        raise KeyboardInterrupt

    with pytest.raises(UnitsInterrupted) as raised:
        run_units(
            lambda payload: payload[0](payload[1]),
            [(ray_units.square, 2), (ray_units.sleep_long, str(pid_file))],
            TaskRequest(cpus=1, gpus=0),
            labels=["square", "sleeper"],
            on_done=interrupt_once_the_sleeper_runs,
        )
    assert raised.value.cancelled == ["sleeper"]
    assert [outcome.label for outcome in raised.value.finished] == ["square"]
    status = Path(f"/proc/{pid_file.read_text()}/status")
    for _ in range(300):  # the killed worker's process goes away
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    assert not status.exists() or "State:\tZ" in status.read_text()


def test_the_storage_probe_passes_on_shared_storage_and_names_what_a_node_misses(
    ray_instance, llama_family, tmp_path
):
    with connect() as cluster:
        request = cluster.request(RaySettings())
        out = tmp_path / "out"
        check_shared_storage(cluster, request, out, [llama_family.base])
        assert out.is_dir() and list(out.iterdir()) == []
        missing = tmp_path / "not-here"
        with pytest.raises(SharedStorageError, match=f"does not see the input {missing}: "):
            check_shared_storage(cluster, request, out, [llama_family.base, missing])


TOY = Path(__file__).resolve().parent.parent / "examples" / "toy"


def test_sweep_with_eval_on_ray_reports_what_the_local_run_reports(ray_instance, tmp_path):
    """`sweep --eval --ray`: merged and evaluated in the tasks, the same report as without Ray
    (the same numbers, the same choice)."""
    import json

    import yaml

    config = yaml.safe_load((TOY / "instruct_thinking_interp.yml").read_text())
    config["base_model"] = str(TOY / "models/instruct")
    config["models"][0]["model"] = str(TOY / "models/thinking")
    path = tmp_path / "toy.yml"
    path.write_text(yaml.safe_dump(config))
    reports = {}
    for where, extra in (("local", []), ("ray", ["--ray", "--values-per-task", "1"])):
        prefix = tmp_path / where / "toy"
        arguments = ["sweep", str(path), str(prefix), "--values", "0.4,0.8", "--quiet"]
        arguments += ["--eval", "toy_qa_add3", "--limit", "10", "--batch-size", "16"]
        arguments += ["--select", "toy_qa_add3:reasoning", "--within", "5", *extra]
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / where / "toy-sweep.json").read_text())
        reports[where] = {
            "values": [(row["value"], row["metrics"]) for row in report["values"]],
            "references": [(row["name"], row["metrics"]) for row in report["references"]],
            "chosen": report["chosen"]["value"],
        }
    assert reports["ray"] == reports["local"]
    # On Ray the numbers came through the cache beside the outputs, which every node shares.
    assert (tmp_path / "ray" / ".mergekit-weightlevel-cache").is_dir()


def test_evaluate_on_ray_gives_the_local_table(ray_instance, tmp_path, monkeypatch):
    from mergekit_weightlevel.distributed.evaluation import evaluate_on_ray
    from mergekit_weightlevel.distributed.settings import RaySettings
    from mergekit_weightlevel.evaluation.evaluate import evaluate_folders

    folders = [TOY / "models/instruct", TOY / "models/thinking"]
    settings = {"limit": 10, "batch_size": 16, "device": "cpu", "log": lambda _line: None}
    local = evaluate_folders(folders, ["toy_qa_add3"], cache_dir=tmp_path / "local", **settings)
    on_ray = evaluate_on_ray(
        folders, ["toy_qa_add3"], RaySettings(), cache_dir=tmp_path / "ray", **settings
    )
    assert on_ray.table() == local.table()
