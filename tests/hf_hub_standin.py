"""A Hugging Face Hub **stand-in** (NOT the real Hub) on 127.0.0.1, for tests that use the real, unpatched
``huggingface_hub`` client via ``HF_ENDPOINT``.

It serves tiny in-memory repositories in the Hub's file layout and wire format, as far as ``snapshot_download``,
``hf_hub_download``, ``HfApi.list_repo_tree`` and open_clip's ``hf-hub:`` loading use it:

* ``GET /api/{models|datasets}/{repo}/revision/{rev}``: ``{"id", "sha", "siblings": [{"rfilename"}]}``;
* ``GET /api/{models|datasets}/{repo}/tree/{rev}[/{path}]``: the file entries (``type``, ``oid`` = git blob id,
  ``size``, ``path``, and for LFS files ``lfs: {oid: sha256, size, pointerSize}``);
* ``HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}``: the file with ``X-Repo-Commit``, ``ETag`` (git blob id, or
  the sha256 for LFS files, also as ``X-Linked-Etag``) and ``Content-Length``.

Files whose name ends in ``.tar``, ``.safetensors`` or ``.bin`` are LFS files, as on the Hub.

Built on the shared test-server base (``tests/http_testserver.py``: threaded server on a free loopback port, context
manager, request log :attr:`~http_testserver.HttpTestServer.requests`). Faults are per file path here, consumed one
GET of that file each (:meth:`HubStandin.add_fault`): ``truncate`` (``Content-Length`` promises the whole file, half
is sent, the connection closes: the base's ``cut``; a ``Range`` request gets the whole file again) and ``corrupt``
(right length and headers, one byte flipped: a Hub-only extension).
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import unquote

from http_testserver import Fault, HttpTestServer, Recorded, Reply

LFS_SUFFIXES = (".tar", ".safetensors", ".bin")
FILE_FAULTS = ("truncate", "corrupt")  # "truncate" is the base's "cut" (a body shorter than its Content-Length)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubStandin(HttpTestServer):
    """``with HubStandin() as hub:`` (or :meth:`start` / :meth:`stop`) serves the repositories of :meth:`add_repo` on
    :attr:`url`."""

    thread_name = "hf-hub-standin"
    error_label = "Hub stand-in"

    def __init__(self):
        super().__init__()
        self.repos: dict[tuple[str, str], dict] = {}
        self.faults: dict[str, list[str]] = {}  # file path -> faults still to serve, in order

    def add_repo(self, repo_id: str, files: dict[str, bytes], repo_type: str = "dataset",
                 commit: str | None = None) -> str:
        """Serve ``files`` (path -> bytes) as ``repo_id`` at one commit (derived from the content unless given);
        ``main`` resolves to it. Returns the commit."""
        commit = commit or hashlib.sha1(json.dumps(sorted((p, git_blob_id(b)) for p, b in files.items()))
                                        .encode()).hexdigest()
        self.repos[(repo_type, repo_id)] = {"commit": commit, "files": dict(files)}
        return commit

    def add_fault(self, path: str, kind: str, times: int = 1) -> None:  # type: ignore[override]
        """The next ``times`` GETs of the file ``path`` get the fault (huggingface_hub retries a broken body
        itself). Per file, unlike the base's request-ordered queue."""
        assert kind in FILE_FAULTS, f"unknown Hub stand-in fault {kind!r}; known: {FILE_FAULTS}"
        with self._lock:
            self.faults.setdefault(path, []).extend([kind] * times)

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

    def reply(self, req: Recorded) -> Reply:
        parts = unquote(req.path).strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 6 and parts[1] in ("models", "datasets"):
            return self._api(parts)
        if parts[0] == "datasets":
            repo_type, parts = "dataset", parts[1:]
        else:
            repo_type = "model"
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(req.method, repo_type, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        return Reply(404, b"{}")

    def _api(self, parts: list[str]) -> Reply:
        """``/api/{models|datasets}/{repo}/{revision|tree}/{rev}[/{path}]``."""
        repo_type, repo_id, op, rev = parts[1][:-1], "/".join(parts[2:4]), parts[4], parts[5]
        repo = self._repo(repo_type, repo_id, rev)
        if repo is None:
            return Reply(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
        if op == "revision":
            body = {"id": repo_id, "sha": repo["commit"], "siblings": [{"rfilename": p} for p in
                                                                        sorted(repo["files"])]}
        elif op == "tree":
            under = "/".join(parts[6:])
            body = [self._entry(p, b) for p, b in sorted(repo["files"].items())
                    if not under or p.startswith(under + "/")]
        else:
            return Reply(404, b"{}")
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _resolve(self, method: str, repo_type: str, repo_id: str, rev: str, fpath: str) -> Reply:
        """``[/datasets]/{repo}/resolve/{rev}/{path}``: the file, with the Hub's headers and this path's next
        fault (GET only)."""
        repo = self._repo(repo_type, repo_id, rev)
        if repo is None:
            return Reply(404, b"{}", {"X-Error-Code": "RevisionNotFound"})
        if fpath not in repo["files"]:
            return Reply(404, b"{}", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo["commit"]})
        data = repo["files"][fpath]
        e = self._entry(fpath, data)
        etag = e["lfs"]["oid"] if "lfs" in e else e["oid"]
        headers = {"X-Repo-Commit": repo["commit"], "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        if "lfs" in e:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(data))
        with self._lock:
            queued = self.faults.get(fpath)
            fault = queued.pop(0) if method == "GET" and queued else None
        if fault == "corrupt":
            return Reply(200, bytes([data[0] ^ 0xFF]) + data[1:], headers)
        return Reply(200, data, headers, fault=Fault("cut") if fault == "truncate" else None)


def point_client_at(monkeypatch, url: str) -> None:
    """Send the real huggingface_hub client of this process (and of its subprocesses) to the stand-in at ``url``,
    online: ``make test`` exports ``HF_HUB_OFFLINE=1`` for the whole suite (so that nothing reaches for the real
    Hub), and huggingface_hub reads that variable once, at import, into ``constants.HF_HUB_OFFLINE``; the rule
    ``prepare_benchmark`` downloads by design, so these tests switch both back for their own duration."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
