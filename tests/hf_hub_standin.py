"""A Hugging Face Hub **stand-in** (NOT the real Hub) on 127.0.0.1, for tests that use the real, unpatched
``huggingface_hub`` client via ``HF_ENDPOINT``.

It serves tiny in-memory repositories in the Hub's file layout and wire format, as far as ``snapshot_download``,
``hf_hub_download``, ``HfApi.list_repo_tree`` and open_clip's ``hf-hub:`` loading use it:

* ``GET /api/{models|datasets}/{repo}/revision/{rev}``: ``{"id", "sha", "siblings": [{"rfilename"}]}``;
* ``GET /api/{models|datasets}/{repo}/tree/{rev}[/{path}]``: the file entries (``type``, ``oid`` = git blob id,
  ``size``, ``path``, and for LFS files ``lfs: {oid: sha256, size, pointerSize}``);
* ``HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}``: the file with ``X-Repo-Commit``, ``ETag`` (git blob id, or
  the sha256 for LFS files, also as ``X-Linked-Etag``) and ``Content-Length``.

Files whose name ends in ``.tar``, ``.safetensors`` or ``.bin`` are LFS files, as on the Hub. Faults, per file
path, consumed one GET each: ``truncate`` (``Content-Length`` promises the whole file, half is sent, the connection
closes; a ``Range`` request gets the whole file again) and ``corrupt`` (right length and headers, one byte flipped).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".tar", ".safetensors", ".bin")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubStandin:
    def __init__(self):
        self.repos: dict[tuple[str, str], dict] = {}
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self._server = None

    def add_repo(self, repo_id: str, files: dict[str, bytes], repo_type: str = "dataset",
                 commit: str | None = None) -> str:
        """Serve ``files`` (path -> bytes) as ``repo_id`` at one commit (derived from the content unless given);
        ``main`` resolves to it. Returns the commit."""
        commit = commit or hashlib.sha1(json.dumps(sorted((p, git_blob_id(b)) for p, b in files.items()))
                                        .encode()).hexdigest()
        self.repos[(repo_type, repo_id)] = {"commit": commit, "files": dict(files)}
        return commit

    def add_fault(self, path: str, kind: str, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` get the fault (huggingface_hub retries a broken body itself)."""
        assert kind in ("truncate", "corrupt")
        self.faults.setdefault(path, []).extend([kind] * times)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------ serving

    def _repo(self, repo_type: str, repo_id: str, rev: str):
        r = self.repos.get((repo_type, repo_id))
        if r is None or rev not in ("main", r["commit"]):
            return None
        return r

    @staticmethod
    def _entry(path: str, data: bytes) -> dict:
        e = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
        if path.endswith(LFS_SUFFIXES):
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def _route(self, method: str, raw_path: str):
        """(status, headers, body, fault) of a request."""
        path = unquote(urlsplit(raw_path).path)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 6 and parts[1] in ("models", "datasets"):
            repo_type, repo_id, op, rev = parts[1][:-1], "/".join(parts[2:4]), parts[4], parts[5]
            repo = self._repo(repo_type, repo_id, rev)
            if repo is None:
                return 404, {"X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}', None
            if op == "revision":
                body = {"id": repo_id, "sha": repo["commit"], "siblings": [{"rfilename": p} for p in
                                                                            sorted(repo["files"])]}
            elif op == "tree":
                under = "/".join(parts[6:])
                body = [self._entry(p, b) for p, b in sorted(repo["files"].items())
                        if not under or p.startswith(under + "/")]
            else:
                return 404, {}, b"{}", None
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode(), None
        if parts[0] == "datasets":
            repo_type, parts = "dataset", parts[1:]
        else:
            repo_type = "model"
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, rev, fpath = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            repo = self._repo(repo_type, repo_id, rev)
            if repo is None:
                return 404, {"X-Error-Code": "RevisionNotFound"}, b"{}", None
            if fpath not in repo["files"]:
                return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo["commit"]}, b"{}", None
            data = repo["files"][fpath]
            e = self._entry(fpath, data)
            etag = e["lfs"]["oid"] if "lfs" in e else e["oid"]
            headers = {"X-Repo-Commit": repo["commit"], "ETag": f'"{etag}"', "Content-Length": str(len(data)),
                       "Content-Type": "application/octet-stream"}
            if "lfs" in e:
                headers["X-Linked-Etag"] = f'"{etag}"'
                headers["X-Linked-Size"] = str(len(data))
            fault = self.faults[fpath].pop(0) if method == "GET" and self.faults.get(fpath) else None
            return 200, headers, data, fault
        return 404, {}, b"{}", None

    def start(self, port: int = 0) -> "HubStandin":
        """Serve on 127.0.0.1:``port`` (0: any free port)."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self, method):
                standin.requests.append((method, self.path))
                status, headers, body, fault = standin._route(method, self.path)
                if fault == "corrupt":
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(status)
                headers.setdefault("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                if fault == "truncate":
                    self.send_header("Connection", "close")
                self.end_headers()
                if method == "GET":
                    self.wfile.write(body[: len(body) // 2] if fault == "truncate" else body)
                if fault == "truncate":
                    self.wfile.flush()
                    self.close_connection = True

            def do_GET(self):  # noqa: N802
                self._serve("GET")

            def do_HEAD(self):  # noqa: N802
                self._serve("HEAD")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "HubStandin":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def point_client_at(monkeypatch, url: str) -> None:
    """Send the real huggingface_hub client of this process (and of its subprocesses) to the stand-in at ``url``,
    online: ``make test`` exports ``HF_HUB_OFFLINE=1`` for the whole suite (so that nothing reaches for the real
    Hub), and huggingface_hub reads that variable once, at import, into ``constants.HF_HUB_OFFLINE``; the rule
    ``prepare_benchmark`` downloads by design, so these tests switch both back for their own duration."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
