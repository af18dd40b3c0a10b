"""A Hugging Face hub-compatible HTTP server on 127.0.0.1, for tests that download without the internet.

It answers what ``huggingface_hub`` (``snapshot_download``, ``hf_hub_download``) asks of a hub, for
repos held in memory:

* ``GET /api/{models,spaces}/{repo_id}/revision/{rev}``: the repo's commit (``sha``) and file names;
* ``GET /api/{models,spaces}/{repo_id}/tree/{rev}``: every file with its size (one page);
* ``HEAD``/``GET /[spaces/]{repo_id}/resolve/{rev}/{path}``: the file, with the ``X-Repo-Commit``,
  ``ETag`` and ``Content-Length`` headers the client needs (no Xet headers: plain HTTP downloads);

and, for files pinned in a code repository (``models.pinned``), ``GET /raw/{path}``. Files named in
:attr:`LocalHub.held` wait for :attr:`LocalHub.release` before their body is sent, so a test can look at
a download in progress. Point the client at it with :func:`use_hub` (``HF_ENDPOINT``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

#: Where nothing listens: an unreachable hub.
UNREACHABLE = "http://127.0.0.1:9"
_TYPES = {"models": "model", "spaces": "space", "datasets": "dataset"}


class LocalHub:
    def __init__(self):
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}
        self.raw: dict[str, bytes] = {}
        self.held: set[str] = set()
        self.release = threading.Event()
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_repo(self, repo_id: str, files: dict[str, bytes], repo_type: str = "model") -> None:
        self.repos[(repo_type, repo_id)] = dict(files)

    def commit(self, repo_type: str, repo_id: str) -> str:
        digest = hashlib.sha1(f"{repo_type}/{repo_id}".encode())
        for path, content in sorted(self.repos[(repo_type, repo_id)].items()):
            digest.update(path.encode() + hashlib.sha1(content).digest())
        return digest.hexdigest()

    def __enter__(self) -> "LocalHub":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


def use_hub(monkeypatch, url: str) -> None:
    """Make huggingface_hub (already imported: it read ``HF_ENDPOINT`` then) talk to ``url``."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _handler(hub: LocalHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            parts = path.strip("/").split("/")
            if parts[0] == "raw" and "/".join(parts[1:]) in hub.raw:
                return self._file(hub.raw["/".join(parts[1:])], "/".join(parts[1:]), {}, body)
            if parts[0] == "api" and len(parts) >= 6 and parts[1] in _TYPES:
                return self._api(_TYPES[parts[1]], f"{parts[2]}/{parts[3]}", parts[4], parts[5])
            repo_type = "model"
            if parts[0] in ("spaces", "datasets"):
                repo_type, parts = _TYPES[parts[0]], parts[1:]
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id, filename = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
                files = hub.repos.get((repo_type, repo_id))
                if files is None:
                    return self._error(404, "RepoNotFound")
                commit = {"X-Repo-Commit": hub.commit(repo_type, repo_id)}
                if filename not in files:
                    return self._error(404, "EntryNotFound", commit)
                return self._file(files[filename], filename, commit, body)
            self._error(404, "RepoNotFound")

        def _api(self, repo_type: str, repo_id: str, kind: str, revision: str) -> None:
            files = hub.repos.get((repo_type, repo_id))
            if files is None:
                return self._error(404, "RepoNotFound")
            sha = hub.commit(repo_type, repo_id)
            if kind == "revision":
                data = {"id": repo_id, "sha": sha, "siblings": [{"rfilename": f} for f in files]}
            elif kind == "tree":
                data = [{"type": "file", "path": f, "size": len(c), "oid": hashlib.sha1(c).hexdigest()}
                        for f, c in files.items()]
            else:
                return self._error(404, "RepoNotFound")
            self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"}, True)

        def _file(self, content: bytes, name: str, headers: dict, body: bool) -> None:
            headers = {**headers, "ETag": f'"{hashlib.sha1(content).hexdigest()}"',
                       "Content-Type": "application/octet-stream"}
            if body and (name in hub.held or name.rsplit("/", 1)[-1] in hub.held):
                hub.release.wait(60)
            self._send(200, content, headers, body)

        def _error(self, status: int, code: str, headers: dict | None = None) -> None:
            self._send(status, json.dumps({"error": code}).encode(), {**(headers or {}), "X-Error-Code": code}, True)

        def _send(self, status: int, content: bytes, headers: dict, body: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if body:
                try:
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: its problem
                    self.close_connection = True

    return Handler
