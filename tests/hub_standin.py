"""A stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1, for the publish tests.

It replaces only the remote service: the tests run the real ``huggingface_hub`` client
(``HF_ENDPOINT`` / ``constants.ENDPOINT`` pointed here) and our real code. It answers the
requests ``create_repo``, ``create_branch``, ``repo_info`` / ``model_info`` and
``upload_folder`` make in huggingface_hub 2.x (read from the installed client: ``hf_api.py``,
``_commit_api.py``, ``lfs.py``), the way the Hub does, and records each of them:

- ``POST /api/repos/create`` → ``{"url": ...}``; 409 if it exists;
- ``GET /api/models/{repo}`` → ``{"id", "sha", "private", "cardData", "pipeline_tag"}``,
  404 with ``X-Error-Code: RepoNotFound`` if it does not exist;
- ``POST /api/models/{repo}/branch/{branch}``;
- ``GET /api/agent-harnesses`` (fetched by the client itself) → an empty registry;
- ``POST /api/validate-yaml`` → ``{"errors": [], "warnings": []}`` (400 when the YAML is bad);
- ``POST /api/models/{repo}/preupload/{rev}`` → per file ``uploadMode`` ``lfs`` (weights,
  images) or ``regular``;
- ``POST /{repo}.git/info/lfs/objects/batch`` → a ``basic`` upload action to ``PUT /lfs/{oid}``
  (the bytes' sha256 is checked), then ``POST /lfs-verify``;
- ``POST /api/models/{repo}/commit/{rev}``: the NDJSON commit; regular files arrive base64,
  LFS files by oid; the repo's files at that revision become exactly what was committed.

Xet storage is not served (the client is told ``HF_HUB_DISABLE_XET``): it is a separate CAS
protocol. ``refuse_writes`` lists namespaces whose writes are answered 403, as the Hub answers a
token without write access there. Loopback only; request bodies are bounded; the server stops
by itself after ``lifetime_s`` even if a test forgets to.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

MAX_BODY_BYTES = 64 * 1024 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".png", ".pt")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: bytes


@dataclass
class Repo:
    private: bool
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    commits: list[dict[str, Any]] = field(default_factory=list)
    pull_requests: list[dict[str, bytes]] = field(default_factory=list)
    card_data: dict[str, Any] | None = None
    pipeline_tag: str | None = None


class StandInHub:
    """The stand-in server; use as a context manager (``with StandInHub() as hub: hub.url``)."""

    def __init__(self, *, refuse_writes: tuple[str, ...] = (), lifetime_s: float = 60.0) -> None:
        self.refuse_writes = set(refuse_writes)
        self.user = "standin-user"  # the namespace of the token's owner
        self.lifetime_s = lifetime_s
        self.requests: list[Recorded] = []
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    def __enter__(self) -> StandInHub:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    # -- the routes ---------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, dict, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "POST" and path == "/api/repos/create":
            return self._create(json.loads(body))
        if method == "GET" and path == "/api/agent-harnesses":  # the client's agent detection
            return 200, {}, {"standardEnvVars": [], "harnesses": {}}
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if method == "PUT" and parts[0] == "lfs" and len(parts) == 2:
            return self._lfs_put(parts[1], body)
        if method == "POST" and path == "/lfs-verify":
            oid = json.loads(body)["oid"]
            return (200, {}, {}) if oid in self.lfs else (404, {}, {"error": "not uploaded"})
        if method == "POST" and parts[-4:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch("/".join(parts[:2])[: -len(".git")], json.loads(body))
        if method == "GET" and parts[:2] == ["api", "models"] and len(parts) == 3:
            return self._info(parts[2])  # a bare name: no such repo (none is created so)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = f"{parts[2]}/{parts[3]}"
            rest = parts[4:]
            if method == "GET" and (not rest or rest[0] == "revision"):
                return self._info(repo_id)
            if method == "POST" and len(rest) == 2 and rest[0] == "branch":
                return self._branch(repo_id, rest[1])
            if method == "POST" and len(rest) >= 2 and rest[0] == "preupload":
                return self._preupload(repo_id, json.loads(body))
            if method == "POST" and len(rest) >= 2 and rest[0] == "commit":
                revision = "/".join(rest[1:])
                return self._commit(repo_id, revision, query, body)
        return 404, {}, {"error": f"the stand-in does not serve {method} {path}"}

    @staticmethod
    def _not_found(repo_id: str) -> tuple[int, dict, Any]:
        return 404, {"X-Error-Code": "RepoNotFound"}, {"error": f"Repository {repo_id} not found"}

    def _refused(self, repo_id: str) -> bool:
        return repo_id.split("/")[0] in self.refuse_writes

    def _create(self, payload: dict) -> tuple[int, dict, Any]:
        # No organization: the Hub creates the repo in the token owner's namespace.
        repo_id = f"{payload['organization'] or self.user}/{payload['name']}"
        if self._refused(repo_id):
            return (
                403,
                {},
                {"error": "You don't have the rights to create a model under this namespace"},
            )
        if repo_id in self.repos:
            return (
                409,
                {},
                {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"},
            )
        self.repos[repo_id] = Repo(private=payload.get("visibility") == "private")
        return 200, {}, {"url": f"{self.url}/{repo_id}", "name": repo_id}

    def _info(self, repo_id: str) -> tuple[int, dict, Any]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._not_found(repo_id)
        return (
            200,
            {},
            {
                "id": repo_id,
                "sha": "0" * 40,
                "private": repo.private,
                "cardData": repo.card_data,
                "pipeline_tag": repo.pipeline_tag,
                "siblings": [{"rfilename": name} for name in repo.branches["main"]],
            },
        )

    def _branch(self, repo_id: str, branch: str) -> tuple[int, dict, Any]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._not_found(repo_id)
        if branch in repo.branches:
            return 409, {}, {"error": "Reference already exists"}
        repo.branches[branch] = dict(repo.branches["main"])
        return 200, {}, {}

    @staticmethod
    def _validate_yaml(payload: dict) -> tuple[int, dict, Any]:
        content = payload["content"]
        if content.startswith("---"):
            try:
                yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as error:
                return 400, {}, {"errors": [{"message": str(error)}], "warnings": []}
        return 200, {}, {"errors": [], "warnings": []}

    def _preupload(self, repo_id: str, payload: dict) -> tuple[int, dict, Any]:
        if repo_id not in self.repos:
            return self._not_found(repo_id)
        files = [
            {
                "path": f["path"],
                "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                "shouldIgnore": False,
                "oid": None,
            }
            for f in payload["files"]
        ]
        return 200, {}, {"files": files, "commitOid": "0" * 40}

    def _lfs_batch(self, repo_id: str, payload: dict) -> tuple[int, dict, Any]:
        if repo_id not in self.repos:
            return self._not_found(repo_id)
        if self._refused(repo_id):
            return 403, {}, {"error": "write access refused"}
        objects = [
            {
                "oid": o["oid"],
                "size": o["size"],
                "authenticated": True,
                "actions": {
                    "upload": {"href": f"{self.url}/lfs/{o['oid']}"},
                    "verify": {"href": f"{self.url}/lfs-verify"},
                },
            }
            for o in payload["objects"]
        ]
        return 200, {}, {"transfer": "basic", "objects": objects}

    def _lfs_put(self, oid: str, body: bytes) -> tuple[int, dict, Any]:
        if hashlib.sha256(body).hexdigest() != oid:
            return 400, {}, {"error": "sha256 does not match the oid"}
        self.lfs[oid] = body
        return 200, {}, {}

    def _commit(self, repo_id: str, revision: str, query: dict, body: bytes):
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._not_found(repo_id)
        if self._refused(repo_id):
            return 403, {}, {"error": "You don't have write access to this repo"}
        create_pr = query.get("create_pr") == ["1"]
        if revision not in repo.branches:
            return (
                404,
                {"X-Error-Code": "RevisionNotFound"},
                {"error": f"Invalid rev id: {revision}"},
            )
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = lines[0]["value"]
        files = dict(repo.branches[revision])
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.lfs:
                    return 400, {}, {"error": f"LFS object of {value['path']} was not uploaded"}
                files[value["path"]] = self.lfs[value["oid"]]
            elif line["key"] in ("deletedFile", "deletedFolder"):
                files.pop(value["path"], None)
        oid = hashlib.sha1(json.dumps(sorted(files)).encode() + body).hexdigest()
        repo.commits.append({"revision": revision, "summary": header["summary"], "pr": create_pr})
        answer = {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid}
        if create_pr:
            repo.pull_requests.append(files)
            number = len(repo.pull_requests)
            answer["pullRequestUrl"] = f"{self.url}/{repo_id}/discussions/{number}"
        else:
            repo.branches[revision] = files
        return 200, {}, answer

    # -- HTTP plumbing ----------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # seconds a connection may stay silent

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks, total = [], 0
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        total += size
                        if total > MAX_BODY_BYTES:
                            raise ValueError("request body too large")
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    raise ValueError("request body too large")
                return self.rfile.read(length)

            def _serve(self) -> None:
                url = urlsplit(self.path)
                try:
                    body = self._body()
                except ValueError as error:
                    self._answer(413, {}, {"error": str(error)})
                    return
                with hub._lock:
                    hub.requests.append(
                        Recorded(
                            self.command,
                            url.path,
                            parse_qs(url.query),
                            self.headers.get("Authorization"),
                            body,
                        )
                    )
                    status, headers, payload = hub.handle(
                        self.command, url.path, parse_qs(url.query), body
                    )
                self._answer(status, headers, payload)

            def _answer(self, status: int, headers: dict, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

        return Handler
