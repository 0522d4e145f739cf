"""Model ids that cannot be fetched, and analyze outputs that cannot be written.

No test here touches the network: the Hub request is replaced where a test needs it to
answer (or not), and ``HF_HUB_OFFLINE=1`` makes the rest fail before any request.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import write_config

from mergekit_weightlevel import method_configs
from mergekit_weightlevel.analyze.report import OutputNotWritableError, write_atomically
from mergekit_weightlevel.checks import hub
from mergekit_weightlevel.checks.hub import ModelNotAvailableError, check_models_available
from mergekit_weightlevel.cli import main

MISSING_ID = "someorg/not-a-local-model"


def paramdelta_config(family, donor: str) -> dict:
    return method_configs.paramdelta_config(family.base, donor, family.base_v2)


def assert_explains_unavailable(text: str, model: str, why: str) -> None:
    assert f"'{model}' could not be fetched" in text
    assert "not a local folder" in text and "not in the local Hugging Face cache" in text
    assert why in text
    assert f"hf download {model} --local-dir DIR" in text
    assert "give the folder's path instead of the id" in text
    assert "Traceback" not in text


# ----------------------------------------------------------------------------- Hub ids


def test_merge_cli_offline_names_the_model_and_the_fix(llama_family, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = write_config(tmp_path / "c.yml", paramdelta_config(llama_family, MISSING_ID))
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["merge", str(config), str(tmp_path / "out")])
    assert time.perf_counter() - start < 10  # no download retries
    assert result.exit_code == 1
    assert_explains_unavailable(result.output, MISSING_ID, "HF_HUB_OFFLINE is set")
    assert result.output.startswith("error: merge (paramdelta): model")
    assert not (tmp_path / "out").exists()


def test_merge_cli_without_network_fails_fast(llama_family, tmp_path, monkeypatch):
    """No HF_HUB_OFFLINE, but the Hub does not answer: one request, then the message."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def unreachable(self, repo_id, **kwargs):
        calls.append((repo_id, kwargs.get("timeout")))
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", unreachable)
    config = write_config(tmp_path / "c.yml", paramdelta_config(llama_family, MISSING_ID))
    result = CliRunner().invoke(main, ["merge", str(config), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert_explains_unavailable(
        result.output, MISSING_ID, "the Hugging Face Hub could not be reached (ConnectionError"
    )
    assert calls == [(MISSING_ID, hub.PROBE_TIMEOUT_S)]  # local models were never probed


def test_reachable_hub_lets_mergekit_download(monkeypatch):
    """With network the check stays out of the way: mergekit fetches the model as usual."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", lambda self, repo_id, **kw: object())
    check_models_available([MISSING_ID], purpose="merge")


def test_hub_answers_no_such_repository(monkeypatch):
    from huggingface_hub.errors import RepositoryNotFoundError

    def not_found(self, repo_id, **kwargs):
        raise RepositoryNotFoundError("404", response=_FakeResponse())

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", not_found)
    with pytest.raises(ModelNotAvailableError) as caught:
        check_models_available([MISSING_ID], purpose="merge")
    assert_explains_unavailable(str(caught.value), MISSING_ID, "the Hub has no such repository")


class _FakeResponse:
    status_code = 404
    headers: dict = {}
    request = None
    url = "https://huggingface.co/api/models/x"

    def json(self):
        return {}


def test_cached_hub_id_is_accepted_offline(tmp_path, monkeypatch):
    """A model already in the Hugging Face cache needs no network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    revision = "0" * 40
    repo = tmp_path / "models--someorg--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    check_models_available(["someorg/cached-model"], purpose="merge", cache_dir=str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="someorg/other"):
        check_models_available(["someorg/other"], purpose="merge", cache_dir=str(tmp_path))


def test_lora_adapter_id_is_named_as_an_adapter(llama_family, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as caught:
        check_models_available([f"{llama_family.base}+someorg/an-adapter"], purpose="analyze")
    assert_explains_unavailable(str(caught.value), "someorg/an-adapter", "HF_HUB_OFFLINE")
    assert "LoRA adapter 'someorg/an-adapter'" in str(caught.value)


def test_a_path_that_is_no_id_says_check_the_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelNotAvailableError, match=r"not a valid Hugging Face id.*Check the path"
    ):
        check_models_available(["../no/such/folder"], purpose="merge")


def test_analyze_cli_offline(llama_family, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(
        main,
        ["analyze", str(llama_family.base), MISSING_ID, "--json", str(tmp_path / "r.json")],
    )
    assert result.exit_code == 1
    assert_explains_unavailable(result.output, MISSING_ID, "HF_HUB_OFFLINE is set")
    assert result.output.startswith("error: analyze: model")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- analyze outputs


def analyze(family, *extra) -> object:
    return CliRunner().invoke(
        main,
        ["analyze", str(family.base), str(family.instruct), "--metrics", "sigma", "--quiet"]
        + [str(e) for e in extra],
    )


def test_output_under_a_regular_file_fails_before_the_analysis(llama_family, tmp_path):
    """A path whose parent is a file: unwritable even for root (chmod would not stop root)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    result = analyze(
        llama_family,
        "--json", tmp_path / "ok.json",
        "--csv", blocker / "sub" / "r.csv",
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"cannot write --csv {blocker / 'sub' / 'r.csv'}" in result.output
    assert f"{blocker} is a file" in result.output
    assert "Traceback" not in result.output
    assert "σ mean" not in result.output  # it failed before spending time on the analysis
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]  # nothing written


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root writes into a 0o500 folder anyway (CI runs as root); the regular-file "
    "variant above covers the unwritable case there",
)
def test_output_in_a_read_only_folder(llama_family, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = analyze(llama_family, "--markdown", locked / "card.md")
        assert result.exit_code == 1
        assert f"the folder {locked} is not writable" in result.output
        assert "Traceback" not in result.output
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_output_that_is_a_folder(llama_family, tmp_path):
    # click sees this one first: a usage error (exit 2); the API check says the same.
    result = analyze(llama_family, "--json", tmp_path)
    assert result.exit_code == 2
    assert "is a directory" in result.output
    from mergekit_weightlevel.analyze.report import check_writable

    with pytest.raises(OutputNotWritableError, match=f"{tmp_path} is a folder; give a file name"):
        check_writable(tmp_path, option="--json")


def test_plots_folder_under_a_file(llama_family, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = analyze(llama_family, "--plots", blocker / "plots")
    assert result.exit_code == 1
    assert f"cannot write --plots {blocker / 'plots'}" in result.output


class _DiesHalfway:
    """A file stream that writes half of what it is given, then fails (disk full, kill)."""

    def __init__(self, stream, error: BaseException):
        self.stream, self.error = stream, error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()
        return False

    def write(self, data: bytes) -> int:
        self.stream.write(data[: len(data) // 2])
        self.stream.flush()
        raise self.error


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_writes_leave_no_complete_looking_file(
    llama_family, tmp_path, monkeypatch, error
):
    real_fdopen = os.fdopen
    monkeypatch.setattr(
        "mergekit_weightlevel.analyze.output.os.fdopen",
        lambda handle, mode: _DiesHalfway(real_fdopen(handle, mode), error),
    )
    outputs = {"--json": tmp_path / "r.json", "--csv": tmp_path / "r.csv"}
    outputs["--markdown"] = tmp_path / "r.md"
    outputs["--html"] = tmp_path / "r.html"
    args = [arg for pair in outputs.items() for arg in pair]
    if isinstance(error, KeyboardInterrupt):
        from mergekit_weightlevel.analyze import analyze_models

        report = analyze_models([llama_family.base, llama_family.instruct], metrics="sigma",
                                quiet=True)  # fmt: skip
        for write, path in ((report.to_json, outputs["--json"]), (report.to_csv, outputs["--csv"]),
                            (report.to_markdown, outputs["--markdown"]),
                            (report.to_html, outputs["--html"])):  # fmt: skip
            with pytest.raises(KeyboardInterrupt):
                write(path)
    else:
        result = analyze(llama_family, *args)
        assert result.exit_code == 1
        assert f"writing {outputs['--json']} failed (No space left on device)" in result.output
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # no output, no half-written temporary file


def test_write_atomically_names_the_file_when_the_folder_cannot_be_made(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputNotWritableError, match=rf"cannot write {tmp_path / 'f' / 'r.json'}"):
        write_atomically(tmp_path / "f" / "r.json", json.dumps({}))
    assert Path(tmp_path / "f").read_text() == "x"
