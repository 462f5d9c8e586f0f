"""A small Hugging Face hub on loopback, for the download tests: the endpoints and headers
huggingface_hub's file_download.py uses.

  GET  /api/models/{repo}/revision/{rev}       {"sha": commit, "siblings": [{"rfilename"}]}
  HEAD /{repo}/resolve/{rev}/{file}            X-Repo-Commit; ETag (git blob sha1) for plain
  GET  /{repo}/resolve/{rev}/{file}            files; for LFS files (*.safetensors,
                                               tokenizer.model) 302 to /cdn/{sha256} with
                                               X-Linked-Etag and X-Linked-Size
  GET  /cdn/{sha256}                           the bytes, with Range requests (206)

Private repositories answer 401 without "Authorization: Bearer <token>"; unknown repositories,
revisions and files 404. `cut_once` makes the next GET of a blob stop halfway (the connection
closed after half the announced bytes), as a dropped download does. Every request is logged."""
import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def lfs(name):
    return name.endswith(".safetensors") or name == "tokenizer.model"


class FakeHub:
    def __init__(self):
        self.repos = {}  # repo -> {"private": token or None, "refs": {rev: commit}, "commits": {commit: {name: bytes}}}
        self.blobs = {}  # sha256 -> bytes
        self.log = []    # (method, path, headers)
        self.cut_once = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                hub.handle(self, head=True)

            def do_GET(self):
                hub.handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, repo, folder, revisions=("main",), private_token=None, extra=None):
        """Serves `folder`'s files (plus `extra` {name: bytes}) as `repo`; each revision name gets
        its own commit (the same files). Returns {revision: commit}."""
        files = {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))
                 if os.path.isfile(os.path.join(folder, n))}
        files.update(extra or {})
        r = self.repos.setdefault(repo, {"private": private_token, "refs": {}, "commits": {}})
        for rev in revisions:
            commit = hashlib.sha1(f"{repo}@{rev}".encode()).hexdigest()
            r["refs"][rev] = commit
            r["commits"][commit] = files
        for data in files.values():
            self.blobs[hashlib.sha256(data).hexdigest()] = data
        return dict(r["refs"])

    def requests(self, prefix=""):
        return [e for e in self.log if e[1].startswith(prefix)]

    # ---- serving -------------------------------------------------------------------------------

    def reply(self, h, status, body=b"", headers=None, head=False):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, str(v))
        if "Content-Length" not in (headers or {}):
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head and body:
            h.wfile.write(body)

    def error(self, h, status, msg, head):
        self.reply(h, status, json.dumps({"error": msg}).encode(), {"Content-Type": "application/json"}, head)

    def handle(self, h, head):
        path = h.path.split("?")[0]
        self.log.append((h.command, path, dict(h.headers)))
        if path.startswith("/cdn/"):
            return self.cdn(h, path[5:], head)
        if path.startswith("/api/models/"):
            parts = path[len("/api/models/"):].split("/")
            if len(parts) < 4 or parts[2] != "revision":
                return self.error(h, 404, "bad api path", head)
            repo, rev = "/".join(parts[:2]), "/".join(parts[3:])
            r, commit = self.lookup(h, repo, rev, head)
            if r is None:
                return
            body = json.dumps({"id": repo, "sha": commit,
                               "siblings": [{"rfilename": n} for n in r["commits"][commit]]}).encode()
            return self.reply(h, 200, body, {"Content-Type": "application/json"}, head)
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            r, commit = self.lookup(h, repo, rev, head)
            if r is None:
                return
            files = r["commits"][commit]
            if name not in files:
                return self.error(h, 404, "entry not found", head)
            data = files[name]
            if lfs(name):
                sha = hashlib.sha256(data).hexdigest()
                return self.reply(h, 302, b"", {"Location": f"{self.url}/cdn/{sha}", "X-Repo-Commit": commit,
                                                "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": len(data),
                                                "Content-Length": 0}, head)
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            return self.reply(h, 200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag}"'}, head)
        return self.error(h, 404, "no route", head)

    def lookup(self, h, repo, rev, head):
        r = self.repos.get(repo)
        if r is None:
            self.error(h, 404, "Repository not found", head)
            return None, None
        if r["private"] and h.headers.get("Authorization") != "Bearer " + r["private"]:
            self.error(h, 401, "Invalid username or password.", head)
            return None, None
        commit = r["refs"].get(rev, rev if rev in r["commits"] else None)
        if commit is None:
            self.error(h, 404, "Revision not found", head)
            return None, None
        return r, commit

    def cdn(self, h, sha, head):
        data = self.blobs.get(sha)
        if data is None:
            return self.error(h, 404, "no blob", head)
        start = 0
        rng = h.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self.reply(h, 416, b"", {}, head)
        body = data[start:]
        headers = {"Content-Length": len(body), "Content-Type": "application/octet-stream"}
        if rng:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if sha in self.cut_once and not head:
            self.cut_once.discard(sha)
            h.send_response(206 if rng else 200)
            for k, v in headers.items():
                h.send_header(k, str(v))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        self.reply(h, 206 if rng else 200, body, headers, head)
