"""The model card, the pre-upload checks and `publish`, with the real huggingface_hub client.

The Hub is replaced by ``hub_standin.StandInHub`` on 127.0.0.1 (``constants.ENDPOINT`` in
process, ``HF_ENDPOINT`` in the subprocess test): only the remote service is a stand-in, the
client and our code are the real ones. No test reaches the real Hub.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hub_standin import StandInHub
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub import constants as hub_constants
from mergekit.config import MergeConfiguration
from mergekit.merge import run_merge
from mergekit.options import MergeOptions

from mergekit_weightlevel.cli import main
from mergekit_weightlevel.demo.tiny_models import build_family
from mergekit_weightlevel.method_configs import (
    interp_config,
    paramdelta_config,
    shadow_graft_adapter_config,
    shadow_graft_config,
    timber_config,
)
from mergekit_weightlevel.publishing import (
    FolderNotReadyError,
    PublishError,
    build_card,
    check_folder,
    publish_folder,
    write_card,
)
from mergekit_weightlevel.registry import DECLARATIONS

# huggingface_hub's LFS upload passes a file object as `data=` (its code, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

TOKEN = "hf_standin_secret_token_0123456789"
LICENSE_CARD = "---\nlicense: apache-2.0\npipeline_tag: text-generation\n---\n# input\n"
#: Hub ids the tests give the family's local folders (`--hub-id PATH=org/name`).
HUB_NAMES = {
    "base": "org/tiny-base",
    "instruct": "org/tiny-instruct",
    "base_v2": "org/tiny-base-v2",
    "thinking": "org/tiny-thinking",
    "base_tuned": "org/tiny-base-tuned",
}


def method_configs(family) -> dict[str, dict]:
    """One config per method over the tiny family, as the docs write them."""
    return {
        "paramdelta": paramdelta_config(family.base, family.instruct, family.base_v2),
        "shadow_graft": shadow_graft_config(family.base, family.base_tuned, family.instruct),
        "timber_spectral": timber_config(family.base, family.instruct, 0.2),
        "instruct_thinking_interp": interp_config(family.instruct, family.thinking, 0.8),
    }


def merge(config: dict, out: Path, **options) -> Path:
    """The stock YAML path (what mergekit-yaml runs), tokenizer copied, card written by mergekit."""
    text = yaml.safe_dump(config, sort_keys=False)
    run_merge(
        MergeConfiguration.model_validate(config),
        str(out),
        options=MergeOptions(quiet=True, **options),
        config_source=text,
    )
    return out


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A tiny family whose inputs carry cards naming a license, as Hub models do."""
    family = build_family(tmp_path_factory.mktemp("publish-family"))
    for folder in family.paths().values():
        (folder / "README.md").write_text(LICENSE_CARD, encoding="utf-8")
    return family


@pytest.fixture(scope="module")
def merged(family, tmp_path_factory) -> dict[str, Path]:
    """Each method merged once (read-only for the tests: they copy before changing anything)."""
    root = tmp_path_factory.mktemp("publish-merged")
    return {name: merge(cfg, root / name) for name, cfg in method_configs(family).items()}


@pytest.fixture(scope="module")
def sharded(family, tmp_path_factory) -> Path:
    """Timber merged into several shards (an index naming them)."""
    root = tmp_path_factory.mktemp("publish-sharded")
    config = method_configs(family)["timber_spectral"]
    return merge(config, root / "sharded", out_shard_size=150_000)


@pytest.fixture
def folder(merged, tmp_path) -> Path:
    """A private copy of the Timber output."""
    return Path(shutil.copytree(merged["timber_spectral"], tmp_path / "timber-out"))


def hub_ids(family) -> dict[str, str]:
    return {str(path): HUB_NAMES[name] for name, path in family.paths().items()}


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The stand-in Hub, the client pointed at it, logged in with TOKEN, Xet off."""
    with StandInHub() as standin:
        monkeypatch.setattr(hub_constants, "ENDPOINT", standin.url)
        monkeypatch.setattr(hub_constants, "HF_HUB_DISABLE_XET", True)
        isolate_login(monkeypatch, tmp_path, token=TOKEN)
        yield standin


def isolate_login(monkeypatch, tmp_path: Path, *, token: str | None) -> None:
    """No token file, no cached agent registry of the user's; HF_TOKEN = ``token``."""
    monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(hub_constants, "AGENT_HARNESSES_PATH", str(tmp_path / "hf-home" / "a.json"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# ------------------------------------------------------------------------------ the card


EXPECTED_SUMMARY = {
    "paramdelta": "ParamΔ: the post-training of Θ_post (tiny-instruct) transplanted onto "
    "Θ'_base (tiny-base-v2), Θ = Θ'_base + (Θ_post − Θ_base) with Θ_base = tiny-base.",
    "shadow_graft": "Shadow-FT: the tuning of W_B (tiny-base) into W_B⁺ (tiny-base-tuned) "
    "grafted onto the Instruct W_I (tiny-instruct)",
    "timber_spectral": "Timber: tiny-instruct with the spectral tail of its delta from "
    "tiny-base scaled by λ = 0.2",
    "instruct_thinking_interp": "Instruct/Thinking interpolation: Θ = λ·Θ_Thinking "
    "(tiny-thinking) + (1 − λ)·Θ_Instruct (tiny-instruct) with λ = 0.8.",
}


#: method -> (the input config.json comes from, the input the tokenizer and generation config
#: come from), as output_files decides; the card must say so.
EXPECTED_FILES = {
    "paramdelta": ("base_v2", "instruct"),
    "shadow_graft": ("instruct", "instruct"),
    "timber_spectral": ("instruct", "instruct"),
    "instruct_thinking_interp": ("thinking", "thinking"),
}


@pytest.mark.parametrize("method", sorted(EXPECTED_SUMMARY))
def test_card_round_trips_through_modelcard(method, family, merged, tmp_path):
    out = Path(shutil.copytree(merged[method], tmp_path / method))
    config = method_configs(family)[method]
    path = write_card(out, hub_ids=hub_ids(family), model_id=f"me/{method}")
    assert path == out / "README.md"

    card = ModelCard.load(path)
    data = card.data.to_dict()
    inputs = [config["base_model"]] + [m["model"] for m in config["models"]]
    names = {str(p): HUB_NAMES[n] for n, p in family.paths().items()}
    assert data["base_model"] == [names[p] for p in inputs]
    assert data["base_model_relation"] == "merge"
    assert data["tags"] == list(
        dict.fromkeys(["mergekit", "merge", method, DECLARATIONS[method].paper.tag])
    )
    assert data["library_name"] == "transformers"
    assert data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "text-generation"
    # Round trip: the front matter re-parses to the same data, and the card to the same text.
    assert ModelCardData(ignore_metadata_errors=False, **data).to_dict() == data
    assert str(ModelCard(str(card))) == str(card)

    text = card.text
    paper = DECLARATIONS[method].paper
    assert EXPECTED_SUMMARY[method] in text
    assert paper.url in text and paper.bibtex in text
    yaml_text = (out / "mergekit_config.yml").read_text(encoding="utf-8")
    published = yaml_text
    for local, repo_id in names.items():  # every input shown by its Hub id, as --hub-id says
        published = published.replace(f" {local}\n", f" {repo_id}\n")
    assert f"```yaml\n{published.rstrip()}\n```" in text
    assert str(family.root) not in str(card)  # no local path anywhere on the card
    assert 'model_id = "me/' + method + '"' in text
    assert MergeConfiguration.model_validate(yaml.safe_load(yaml_text)).merge_method == method
    assert "This is a merge of pre-trained language models" not in text  # mergekit's card replaced

    config_from, tokenizer_from = (HUB_NAMES[n] for n in EXPECTED_FILES[method])
    link = "[{0}](https://huggingface.co/{0})"
    assert f"- `config.json`: from {link.format(config_from)} (" in text
    assert f"- tokenizer and chat template: from {link.format(tokenizer_from)} (" in text
    assert (
        f"- `generation_config.json` (stop ids, sampling defaults): from {link.format(tokenizer_from)} ("
        in text
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            paramdelta_config("{base}", [("{instruct}", 0.5), ("{thinking}", 0.25)], "{base_v2}"),
            "ParamΔ: the post-training of tiny-instruct (weight = 0.5) and tiny-thinking (weight "
            "= 0.25) transplanted onto Θ'_base (tiny-base-v2), Θ = Θ'_base + Σ weight·(Θ_post − "
            "Θ_base) with Θ_base = tiny-base.",
        ),
        (
            timber_config("{base}", "{instruct}", 0.0),
            "Timber: tiny-instruct with the spectral tail of its delta from tiny-base cut off "
            "(λ = 0, hard truncation beyond ⌈eRank⌉)",
        ),
        (
            timber_config("{base}", "{instruct}"),
            "Timber: tiny-instruct with the spectral tail of its delta from tiny-base scaled by "
            "λ = 0.2;",  # the method's default, read from its spec
        ),
        (
            shadow_graft_adapter_config(
                "{root}/lora", "{instruct}", base="{base}", parameters={"adapter_weight": 0.5}
            ),
            "Shadow-FT: the LoRA adapter lora, trained on W_B (tiny-base), grafted onto the "
            "Instruct W_I (tiny-instruct) with weight = 0.5.",
        ),
    ],
    ids=["paramdelta-weighted", "timber-truncation", "timber-default", "shadow-adapter"],
)
def test_card_summary_reads_the_config(config, expected, family, merged, tmp_path):
    paths = {name: str(path) for name, path in family.paths().items()}
    text = yaml.safe_dump(config).format(root=family.root, **paths)
    out = Path(shutil.copytree(merged["timber_spectral"], tmp_path / "out"))
    (out / "mergekit_config.yml").write_text(text, encoding="utf-8")
    assert expected in build_card(out, hub_ids=hub_ids(family)).text


def test_card_parameters_and_weights_come_from_the_folder(family, merged, tmp_path):
    out = Path(shutil.copytree(merged["timber_spectral"], tmp_path / "t"))
    text = build_card(out, hub_ids=hub_ids(family)).text
    assert "| `lambda` | `0.2` |" in text
    assert "| `scope` | `all` (default) |" in text
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        count = sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())  # noqa: SIM118 - not a dict
    assert f"{count:,} parameters" in text


def test_card_names_the_input_a_fallback_file_came_from(family, tmp_path):
    """The Instruct has no tokenizer: the merge takes the next input's, and the card says so."""
    root = Path(shutil.copytree(family.root, tmp_path / "family"))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (root / "instruct" / name).unlink(missing_ok=True)
    config = timber_config(root / "base", root / "instruct")
    out = merge(config, tmp_path / "out")
    text = build_card(out).text
    assert (
        "- tokenizer and chat template: from `base` (local folder) (instruct, the Instruct model "
        "W_I, has no tokenizer: the next input that has one)" in text
    )
    assert "- `config.json`: from `instruct` (local folder) (the Instruct model W_I)" in text


def test_card_trusts_the_files_over_the_config(family, merged, tmp_path):
    """A folder whose tokenizer is not the one its config asks for: the card names whose it is."""
    out = Path(shutil.copytree(merged["timber_spectral"], tmp_path / "t"))
    config = {**method_configs(family)["timber_spectral"], "parameters": {"tokenizer_from": "base"}}
    (out / "mergekit_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    text = build_card(out, hub_ids=hub_ids(family)).text
    assert (
        "- tokenizer and chat template: from [org/tiny-instruct](https://huggingface.co/org/"
        "tiny-instruct) (identical to its files, not to those of org/tiny-base, `tokenizer_from`)"
    ) in text


def test_card_without_hub_ids_names_no_base_model(merged, tmp_path):
    out = Path(shutil.copytree(merged["instruct_thinking_interp"], tmp_path / "i"))
    card = ModelCard.load(write_card(out))
    assert "base_model" not in card.data.to_dict()
    assert "base_model_relation" not in card.data.to_dict()
    assert "`instruct`, `thinking`" in card.text and "--hub-id PATH=org/name" in card.text


def test_card_leaves_license_out_when_inputs_disagree(family, merged, tmp_path):
    root = Path(shutil.copytree(family.root, tmp_path / "family"))
    (root / "thinking" / "README.md").write_text("---\nlicense: llama3.1\n---\n", encoding="utf-8")
    out = Path(shutil.copytree(merged["instruct_thinking_interp"], tmp_path / "i"))
    config = method_configs(family)["instruct_thinking_interp"]
    config["base_model"], config["models"][0]["model"] = (
        str(root / "instruct"),
        str(root / "thinking"),
    )
    (out / "mergekit_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    card = ModelCard.load(write_card(out))
    assert "license" not in card.data.to_dict()
    assert "licenses differ (instruct: apache-2.0, thinking: llama3.1)" in card.text


def test_card_of_hub_inputs_offline_is_written_in_seconds(merged, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = Path(shutil.copytree(merged["timber_spectral"], tmp_path / "t"))
    config = timber_config("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct")
    (out / "mergekit_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    start = time.perf_counter()
    card = ModelCard.load(write_card(out))
    assert time.perf_counter() - start < 5
    assert card.data.base_model == ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct"]
    assert "license" not in card.data.to_dict()
    assert "Hub look-ups are off (offline)" in card.text
    assert (
        "Timber: Llama-3.1-8B-Instruct with the spectral tail of its delta from Llama-3.1-8B "
        "scaled by λ = 0.2 (default)" not in card.text
    )  # the default is said in the parameters table, the sentence gives the value
    assert "scaled by λ = 0.2" in card.text


def test_card_license_from_the_readable_cards_names_the_unchecked_ones(
    family, merged, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = Path(shutil.copytree(merged["timber_spectral"], tmp_path / "t"))
    # The base is local (its card says apache-2.0), the instruct model a Hub id, offline.
    config = timber_config(family.base, "meta-llama/Llama-3.1-8B-Instruct")
    (out / "mergekit_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    card = ModelCard.load(write_card(out))
    assert card.data.license == "apache-2.0"
    assert card.data.base_model == ["meta-llama/Llama-3.1-8B-Instruct"]
    assert (
        "not checked, their card could not be read: meta-llama/Llama-3.1-8B-Instruct: "
        "Hub look-ups are off (offline)" in card.text
    )


def test_card_reads_hub_inputs_cards_from_the_hub(merged, tmp_path, hub):
    for repo_id, license in (("org/remote-base", "mit"), ("org/remote-instruct", "mit")):
        hub.handle("POST", "/api/repos/create", {}, json.dumps(_create(repo_id)).encode())
        hub.repos[repo_id].card_data = {"license": license}
        hub.repos[repo_id].pipeline_tag = "text-generation"
    out = Path(shutil.copytree(merged["timber_spectral"], tmp_path / "t"))
    config = timber_config("org/remote-base", "org/remote-instruct")
    (out / "mergekit_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    card = ModelCard.load(write_card(out))
    assert card.data.license == "mit"
    assert [r.path for r in hub.requests if r.method == "GET" and "remote" in r.path] == [
        "/api/models/org/remote-base",
        "/api/models/org/remote-instruct",
    ]


def _create(repo_id: str) -> dict:
    organization, name = repo_id.split("/")
    return {"organization": organization, "name": name}


def test_card_cli_rewrites_readme(family, folder):
    base = str(family.base)
    result = CliRunner().invoke(main, ["card", str(folder), "--hub-id", f"{base}=org/tiny-base"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {folder / 'README.md'}"  # a license is set: no note
    assert ModelCard.load(folder / "README.md").data.base_model == ["org/tiny-base"]


def test_publish_keeps_the_hub_ids_the_card_was_written_with(family, folder, hub):
    base = str(family.base)
    assert (
        CliRunner().invoke(main, ["card", str(folder), "--hub-id", f"{base}=org/a"]).exit_code == 0
    )
    result = CliRunner().invoke(main, ["publish", str(folder), "me/tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert ModelCard.load(folder / "README.md").data.base_model == ["org/a"]
    # A new --hub-id for the same input wins over the recorded one.
    CliRunner().invoke(main, ["card", str(folder), "--hub-id", f"{base}=org/b"])
    assert ModelCard.load(folder / "README.md").data.base_model == ["org/b"]


def test_card_cli_says_when_no_license_is_set(folder):
    (folder / "mergekit_config.yml").write_text(
        yaml.safe_dump(timber_config("/nowhere/base", "/nowhere/instruct")),
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["card", str(folder)])
    assert result.exit_code == 0, result.output
    assert "note: the card sets no license: No input's card could be read" in result.output


def test_card_cli_rejects_bad_hub_id(folder):
    result = CliRunner().invoke(main, ["card", str(folder), "--hub-id", "/x=not a repo id"])
    assert result.exit_code == 1
    assert "--hub-id '/x=not a repo id'" in result.output and "not a valid Hub id" in result.output
    assert "Traceback" not in result.output


def test_card_report_adds_weight_level_section_and_figures(family, folder):
    card = ModelCard.load(write_card(folder, hub_ids=hub_ids(family), report=True))
    assert "## Weight-level analysis" in card.text
    assert "### org/tiny-base against this model" in card.text
    assert "### org/tiny-instruct against this model" in card.text
    figures = sorted((folder / "weight_level").glob("*.png"))
    assert figures
    for figure in figures:
        assert f"](weight_level/{figure.name})" in card.text
    section = card.text.split("## Weight-level analysis")[1].split("## Configuration")[0]
    assert str(folder) not in section and str(family.root) not in section  # no local paths
    # No Reading: its previews read A as a Base, and here A is this merge.
    assert "**Reading**" not in section


# ---------------------------------------------------------------------- the pre-upload checks


def _missing_shard(folder: Path) -> str:
    name = sorted(folder.glob("model-*.safetensors"))[-1].name
    (folder / name).unlink()
    return f"{name}: missing (named by model.safetensors.index.json)"


def _truncated_shard(folder: Path) -> str:
    path = sorted(folder.glob("model-*.safetensors"))[0]
    path.write_bytes(path.read_bytes()[:-100])
    return f"{path.name}: unreadable safetensors header (truncated"


def _stray_shard(folder: Path) -> str:
    shutil.copy(
        sorted(folder.glob("model-*.safetensors"))[0], folder / "model-00009-of-00009.safetensors"
    )
    return "model-00009-of-00009.safetensors: a weight file that model.safetensors.index.json does not name"


def _broken_config(folder: Path) -> str:
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    return "config.json: transformers cannot load it"


def _no_tokenizer(folder: Path) -> str:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    return "no tokenizer"


def _invalid_card(folder: Path) -> str:
    (folder / "README.md").write_text(
        "---\nlicense: [unclosed\n---\nhand-written\n", encoding="utf-8"
    )
    return "README.md: not a valid model card"


BREAKAGES = [
    _missing_shard,
    _truncated_shard,
    _stray_shard,
    _broken_config,
    _no_tokenizer,
    _invalid_card,
]


def test_sharded_output_passes_the_checks(sharded):
    summary = check_folder(sharded, card=False)
    assert len(summary.files) > 1
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert summary.tensors == len(index["weight_map"])


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_publish_refuses_an_incomplete_folder_and_sends_nothing(breakage, sharded, tmp_path, hub):
    out = Path(shutil.copytree(sharded, tmp_path / "out"))
    expected = breakage(out)
    result = CliRunner().invoke(main, ["publish", str(out), "me/tiny"])
    assert result.exit_code == 1
    assert expected in result.output
    assert "nothing was sent" in result.output and "Traceback" not in result.output
    assert hub.requests == []
    with pytest.raises(FolderNotReadyError):
        check_folder(out)


def test_hand_written_card_is_kept(folder, hub):
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Mine\n", encoding="utf-8")
    result = publish_folder(folder, "me/tiny", dry_run=True, report=True)
    assert (folder / "README.md").read_text(encoding="utf-8") == "---\nlicense: mit\n---\n# Mine\n"
    assert any("kept as is" in n and "--report was not applied" in n for n in result.notes)
    assert not (folder / "weight_level").exists()


# ----------------------------------------------------------------------------- dry run


def test_dry_run_writes_and_prints_the_card_and_files_and_sends_nothing(folder, hub):
    result = CliRunner().invoke(main, ["publish", str(folder), "me/tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert card in result.output
    assert 'model_id = "me/tiny"' in card
    for name in folder_bytes(folder):
        assert f"  {name}  " in result.output
    size = (folder / "model.safetensors").stat().st_size
    assert f"  model.safetensors  {size / 1000:.1f} KB" in result.output
    assert "nothing was sent to me/tiny" in result.output
    assert hub.requests == []


# ----------------------------------------------------------------------------- upload


def test_upload_sends_exactly_the_folder(folder, hub):
    result = CliRunner().invoke(
        main, ["publish", str(folder), "me/tiny", "--private", "--commit-message", "first"]
    )
    assert result.exit_code == 0, result.output
    repo = hub.repos["me/tiny"]
    assert repo.private
    assert repo.branches["main"] == folder_bytes(folder)  # every file, byte for byte
    assert repo.commits == [{"revision": "main", "summary": "first", "pr": False}]
    paths = hub.paths()
    for step in (
        "/api/repos/create",
        "/api/models/me/tiny/preupload/main",
        "/me/tiny.git/info/lfs/objects/batch",
        "/api/models/me/tiny/commit/main",
    ):
        assert step in paths
    assert f"published {folder} to me/tiny: {hub.url}/me/tiny/commit/" in result.output
    assert {r.authorization for r in hub.requests if r.path.startswith("/api/repos")} == {
        f"Bearer {TOKEN}"
    }
    assert TOKEN not in result.output
    assert TOKEN not in (folder / "README.md").read_text(encoding="utf-8")


def test_bare_name_is_published_in_the_users_namespace(folder, hub):
    result = CliRunner().invoke(main, ["publish", str(folder), "tiny"])
    assert result.exit_code == 0, result.output
    assert hub.repos[f"{hub.user}/tiny"].branches["main"] == folder_bytes(folder)
    assert f"published {folder} to {hub.user}/tiny: " in result.output


def test_upload_of_a_sharded_folder_with_its_report(sharded, tmp_path, hub):
    out = Path(shutil.copytree(sharded, tmp_path / "sharded"))
    result = CliRunner().invoke(main, ["publish", str(out), "me/sharded", "--report"])
    assert result.exit_code == 0, result.output
    sent = hub.repos["me/sharded"].branches["main"]
    assert sent == folder_bytes(out)
    shards = [name for name in sent if name.startswith("model-")]
    figures = [name for name in sent if name.startswith("weight_level/")]
    assert len(shards) > 1 and figures
    assert "## Weight-level analysis" in sent["README.md"].decode()
    batch = [r for r in hub.requests if r.path.endswith("/objects/batch")]
    oids = {o["oid"] for r in batch for o in json.loads(r.body)["objects"]}
    assert len(oids) == len(shards) + len(figures)  # every weight file and figure went by LFS


def test_upload_to_a_new_branch(folder, hub):
    result = CliRunner().invoke(main, ["publish", str(folder), "me/tiny", "--revision", "v1"])
    assert result.exit_code == 0, result.output
    repo = hub.repos["me/tiny"]
    assert "/api/models/me/tiny/branch/v1" in hub.paths("POST")
    assert repo.branches["v1"] == folder_bytes(folder)
    assert repo.branches["main"] == {}


def test_upload_as_pull_request(folder, hub):
    result = CliRunner().invoke(main, ["publish", str(folder), "me/tiny", "--create-pr"])
    assert result.exit_code == 0, result.output
    repo = hub.repos["me/tiny"]
    assert repo.pull_requests == [folder_bytes(folder)] and repo.branches["main"] == {}
    commit = next(r for r in hub.requests if "/commit/" in r.path)
    assert commit.query == {"create_pr": ["1"]}
    assert f"{hub.url}/me/tiny/discussions/1" in result.output


def test_existing_repo_is_reused_and_private_flag_explained(folder, hub):
    assert CliRunner().invoke(main, ["publish", str(folder), "me/tiny"]).exit_code == 0
    result = CliRunner().invoke(main, ["publish", str(folder), "me/tiny", "--private"])
    assert result.exit_code == 0, result.output
    assert "--private does not change its visibility" in result.output
    assert len(hub.repos["me/tiny"].commits) == 2


# ------------------------------------------------------------------------- refusals


def _publish_error(args: list[str]) -> str:
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["publish", *args])
    assert time.perf_counter() - start < 10
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "Traceback" not in result.output and TOKEN not in result.output
    return result.output


def test_no_login_fails_before_any_request(folder, hub, monkeypatch, tmp_path):
    isolate_login(monkeypatch, tmp_path, token=None)
    output = _publish_error([str(folder), "me/tiny"])
    assert "cannot publish to me/tiny: not logged in" in output and "hf auth login" in output
    assert hub.requests == []


def test_no_write_access_names_the_namespace(folder, hub):
    hub.refuse_writes.add("someone-else")
    output = _publish_error([str(folder), "someone-else/tiny"])
    assert "cannot publish to someone-else/tiny (creating the repo)" in output
    assert "no write access to 'someone-else'" in output


def test_token_refused(folder, hub):
    def refuse(method, path, query, body):
        return 401, {}, {"error": "Invalid credentials in Authorization header"}

    hub.handle = refuse
    output = _publish_error([str(folder), "me/tiny"])
    assert "cannot publish to me/tiny" in output and "refused the token" in output


def test_unreachable_hub_fails_in_seconds(folder, monkeypatch, tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    isolate_login(monkeypatch, tmp_path, token=TOKEN)
    output = _publish_error([str(folder), "me/tiny"])
    assert "cannot publish to me/tiny (reaching the Hub)" in output
    assert f"the Hub at http://127.0.0.1:{port} could not be reached" in output
    assert "check the network (or HF_ENDPOINT)" in output


@pytest.mark.parametrize(
    ("repo_id", "expected"),
    [
        ("datasets/me/tiny", "names a dataset repository: publish uploads a model"),
        ("spaces/me/tiny", "names a Space repository"),
        ("https://huggingface.co/me/tiny", "is a URL: give the repo id"),
        ("me/tiny/extra", "not a valid Hub id"),
    ],
)
def test_wrong_repo_kind_is_refused_locally(repo_id, expected, folder, hub):
    assert expected in _publish_error([str(folder), repo_id])
    assert hub.requests == []


def test_create_pr_with_a_branch_is_refused(folder, hub):
    output = _publish_error([str(folder), "me/tiny", "--create-pr", "--revision", "dev"])
    assert "leave out --revision dev" in output
    assert hub.requests == []


def test_hub_rejecting_the_card_commits_nothing(folder, hub):
    def reject(payload):
        return 400, {}, {"errors": [{"message": '"license" must be one of [apache-2.0, mit, …]'}]}

    hub._validate_yaml = reject
    output = _publish_error([str(folder), "me/tiny"])
    assert "cannot publish to me/tiny (uploading): Invalid metadata in README.md." in output
    assert '"license" must be one of' in output
    assert hub.repos["me/tiny"].commits == [] and not any("/commit/" in p for p in hub.paths())


def test_custom_code_config_is_not_run(folder):
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig"}  # code that is not there
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    write_card(folder)
    check_folder(folder)  # present and valid JSON is all a check can say without running it


def test_publish_error_is_a_runtime_error():
    assert issubclass(PublishError, RuntimeError)  # the CLI reports it without a traceback


# ------------------------------------------------------------------ the installed command


def test_installed_command_publishes_through_hf_endpoint(folder, tmp_path):
    """`mergekit-weightlevel publish` in a fresh process, configured only by the environment."""
    script = Path(sys.executable).parent / "mergekit-weightlevel"
    with StandInHub() as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_TOKEN": TOKEN,
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_DISABLE_XET": "1",
        }
        env.pop("HF_HUB_OFFLINE", None)
        done = subprocess.run(
            [str(script), "publish", str(folder), "me/tiny"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert hub.repos["me/tiny"].branches["main"] == folder_bytes(folder)
    assert TOKEN not in done.stdout + done.stderr


# ------------------------------------ no local path on the card; an empty base_model; LoRA files


def test_card_shows_local_inputs_by_folder_name_never_by_path(family, merged, tmp_path):
    out = Path(shutil.copytree(merged["paramdelta"], tmp_path / "out"))
    written = (out / "mergekit_config.yml").read_bytes()
    card = str(build_card(out))
    assert str(family.root) not in card and str(tmp_path) not in card
    assert "base_model: base\nmodels:\n- model: instruct\n- model: base_v2\n" in card
    assert "(local folders by their names, inputs with a Hub id by that id; " in card
    assert (out / "mergekit_config.yml").read_bytes() == written  # as mergekit wrote it


def test_card_with_a_hub_id_for_one_input_shows_it_there(family, merged, tmp_path):
    out = Path(shutil.copytree(merged["paramdelta"], tmp_path / "out"))
    card = str(build_card(out, hub_ids={str(family.base): "org/tiny-base"}))
    assert "base_model: org/tiny-base\nmodels:\n- model: instruct\n" in card
    assert '<!-- hub ids given for local inputs: {"base": "org/tiny-base"} -->' in card
    assert str(family.root) not in card


def test_card_of_relative_paths_and_two_folders_of_one_name(family, merged, tmp_path, monkeypatch):
    """Relative paths (run from where the merge ran) and same-named folders, told apart."""
    other = Path(shutil.copytree(family.instruct, tmp_path / "elsewhere" / "base"))
    out = Path(shutil.copytree(merged["timber_spectral"], tmp_path / "out"))
    monkeypatch.chdir(family.root.parent)
    config = timber_config(Path(family.root.name) / "base", other, 0.2)
    (out / "mergekit_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    card = str(build_card(out, lookup=False))
    assert str(other) not in card and f"base_model: {family.root.name}/base" not in card
    assert f"base_model: …/{family.root.name}/base\n" in card  # folder and parent: no more
    assert "- model: …/elsewhere/base\n" in card


def test_publish_says_when_base_model_will_be_empty(family, merged, tmp_path, hub):
    out = Path(shutil.copytree(merged["instruct_thinking_interp"], tmp_path / "out"))
    result = CliRunner().invoke(main, ["publish", str(out), "me/tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert (
        "note: the card's base_model is empty: every input is a local folder, so the Hub's model "
        "tree will not link this model to the models it was merged from. Name the Hub id each "
        f"input stands for: --hub-id {family.instruct}=org/name --hub-id {family.thinking}="
        "org/name\n" in result.output
    )
    named = ["--hub-id", f"{family.instruct}=org/tiny-instruct"]
    result = CliRunner().invoke(main, ["publish", str(out), "me/tiny", "--dry-run", *named])
    assert "base_model is empty" not in result.output


@pytest.mark.parametrize("method", ["paramdelta", "instruct_thinking_interp"])
def test_a_lora_donors_files_are_named_one_way(method, family, tmp_path):
    """`model+adapter` as the input the files come from: the card says it one way, truthfully."""
    from mergekit_weightlevel.demo import demo_lora_adapter

    adapter = demo_lora_adapter(family, tmp_path / "lora")
    donor = f"{family.base}+{adapter}"
    config = (
        paramdelta_config(family.base, donor, family.base_v2)
        if method == "paramdelta"
        else interp_config(family.instruct, donor, 0.5)
    )
    out = merge(config, tmp_path / "out", lora_merge_cache=str(tmp_path / "cache"))
    text = build_card(out, lookup=False).text
    remark = "a LoRA adapter brings weights only, so these are base's files)"
    source = "from `base` (local folder) + LoRA `lora` (local folder) ("
    assert f"- tokenizer and chat template: {source}" in text
    assert f"- `generation_config.json` (stop ids, sampling defaults): {source}" in text
    for line in text.splitlines():
        if line.startswith(("- tokenizer", "- `generation_config.json`")):
            assert line.endswith(remark), line
    assert "not to those of" not in text


def test_card_of_paths_that_do_not_exist_here_shows_their_names(merged, tmp_path):
    """A card rewritten on another machine: the config's paths are no folders here."""
    out = Path(shutil.copytree(merged["timber_spectral"], tmp_path / "out"))
    config = timber_config("/home/me/models/base", "work/models/instruct", 0.2)
    (out / "mergekit_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    card = str(build_card(out, lookup=False))
    assert "/home/me" not in card and "work/models" not in card
    assert "base_model: base\n" in card and "- model: instruct\n" in card
