"""URL manifests and `repainter fetch`: downloads over a loopback HTTP server, checksum lock."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from repainter.cli import app
from repainter.datasets import (
    EvalRef100Dataset,
    ManifestDataset,
    evalref100_manifest,
    fetch_dataset,
    fetch_manifest,
    load_dataset,
)
from repainter.fetch import (
    LOCK_FILE,
    DownloadError,
    OfflineError,
    cache_root,
    dataset_cache_dir,
)
from repainter.network import OFFLINE_VARIABLES


def _png_bytes(color: str, size=(16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


HTML = b"<!DOCTYPE html><html><head><title>GitHub</title></head><body>blob page</body></html>"
LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12345\n"


class _Server:
    """Serves ``routes`` (path -> (status, content type, body)) on 127.0.0.1; counts requests."""

    def __init__(self):
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                status, content_type, body = server.routes.get(
                    self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def total_hits(self) -> int:
        return sum(self.hits.values())

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("REPAINTER_ALLOW_PRIVATE_URLS", "1")  # the loopback server is this machine's
    for var in OFFLINE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    srv = _Server()
    srv.routes = {
        "/img/red.png": (200, "image/png", _png_bytes("red")),
        "/img/green.png": (200, "image/png", _png_bytes("green")),
        "/img/blue": (200, "application/octet-stream", _png_bytes("blue")),  # sniffed
        "/blob/page.png": (200, "text/html; charset=utf-8", HTML),
        "/sneaky.png": (200, "application/octet-stream", HTML),
        "/lfs.png": (200, "text/plain", LFS),
        "/not-image.bin": (200, "application/octet-stream", b"\x00\x01 random bytes"),
    }
    yield srv
    srv.close()


def _manifest(tmp_path: Path, server: _Server, rows: list[dict]) -> Path:
    path = tmp_path / "manifest" / "m.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in rows:
        row = dict(row)
        if row.get("url", "").startswith("/"):
            row["url"] = server.url + row["url"]
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = [
    {"id": "red", "url": "/img/red.png", "category": "warm", "license": "CC0-1.0"},
    {"id": "green", "url": "/img/green.png", "category": "cool"},
    {"id": "blue", "url": "/img/blue", "category": "cool"},
]


def test_fetch_downloads_locks_and_refetch_is_a_no_op(tmp_path, server):
    manifest = _manifest(tmp_path, server, GOOD)
    cache = tmp_path / "cache"
    report = fetch_manifest(manifest, cache)
    assert report.ok and [i.status for i in report.items] == ["downloaded"] * 3
    lock = json.loads((cache / LOCK_FILE).read_text())["items"]
    for item in report.items:
        data = Path(item.path).read_bytes()
        assert lock[item.id]["sha256"] == hashlib.sha256(data).hexdigest() == item.sha256
        assert lock[item.id]["url"] == item.url
    hits = server.total_hits()

    again = fetch_manifest(manifest, cache)
    assert again.ok and [i.status for i in again.items] == ["cached"] * 3
    assert server.total_hits() == hits  # nothing downloaded the second time

    # the dataset reads the same cache, with the licence from the manifest
    items = ManifestDataset(str(manifest), cache_dir=str(cache), license="fallback").items()
    ref = items[0].load()
    assert ref.image.getpixel((0, 0)) == (255, 0, 0) and ref.license == "CC0-1.0"
    assert ref.source == server.url + "/img/red.png"
    assert items[1].load().license == "fallback"
    assert server.total_hits() == hits


def test_loading_a_url_item_downloads_it_once(tmp_path, server):
    manifest = _manifest(tmp_path, server, GOOD[:1])
    dataset = ManifestDataset(str(manifest), cache_dir=str(tmp_path / "cache"))
    item = dataset.items()[0]
    assert item.load().image.size == (16, 12)
    assert item.load().image.size == (16, 12)
    assert server.hits["/img/red.png"] == 1
    assert (tmp_path / "cache" / LOCK_FILE).exists()


def test_tampered_cached_file_is_detected(tmp_path, server):
    manifest = _manifest(tmp_path, server, GOOD[:2])
    cache = tmp_path / "cache"
    report = fetch_manifest(manifest, cache)
    tampered = Path(report.items[0].path)
    tampered.write_bytes(_png_bytes("black"))

    again = fetch_manifest(manifest, cache)
    assert [i.status for i in again.items] == ["failed", "cached"]
    assert "was modified" in again.items[0].error and LOCK_FILE in again.items[0].error
    item = ManifestDataset(str(manifest), cache_dir=str(cache)).items()[0]
    with pytest.raises(DownloadError, match="was modified"):
        item.load()


def test_upstream_change_after_first_download_is_refused(tmp_path, server):
    manifest = _manifest(tmp_path, server, GOOD[:1])
    cache = tmp_path / "cache"
    first = fetch_manifest(manifest, cache).items[0]
    Path(first.path).unlink()
    server.routes["/img/red.png"] = (200, "image/png", _png_bytes("purple"))
    again = fetch_manifest(manifest, cache).items[0]
    assert again.status == "failed" and "changed upstream" in again.error
    assert not Path(first.path).exists()


@pytest.mark.parametrize("url, message", [
    ("/blob/page.png", r"served 'text/html', not an image \(an HTML page\)"),
    ("/sneaky.png", "is an HTML page, not an image"),
    ("/lfs.png", "Git LFS pointer"),
    ("/not-image.bin", "not a recognised image format"),
    ("/missing.png", "HTTP 404"),
])
def test_non_images_fail_the_item_with_a_reason(tmp_path, server, url, message):
    manifest = _manifest(tmp_path, server, [{"id": "x", "url": url}, GOOD[0]])
    cache = tmp_path / "cache"
    report = fetch_manifest(manifest, cache)
    assert [i.status for i in report.items] == ["failed", "downloaded"]
    assert re.search(message, report.items[0].error), report.items[0].error
    assert not list((cache / "files").glob("x-*"))  # nothing cached for the failed item
    items = ManifestDataset(str(manifest), cache_dir=str(cache)).items()
    with pytest.raises(DownloadError, match=message):
        items[0].load()
    assert items[1].load().id == "red"


def test_manifest_sha256_is_checked_on_download(tmp_path, server):
    red = hashlib.sha256(server.routes["/img/red.png"][2]).hexdigest()
    manifest = _manifest(tmp_path, server, [
        {"id": "ok", "url": "/img/red.png", "sha256": red},
        {"id": "wrong", "url": "/img/green.png", "sha256": red},
    ])
    report = fetch_manifest(manifest, tmp_path / "cache")
    assert [i.status for i in report.items] == ["downloaded", "failed"]
    assert "manifest expects" in report.items[1].error


def test_offline_and_no_download_give_clear_per_item_errors(tmp_path, server, monkeypatch):
    manifest = _manifest(tmp_path, server, GOOD[:2])
    cache = tmp_path / "cache"
    item = ManifestDataset(str(manifest), cache_dir=str(cache), allow_download=False).items()[0]
    with pytest.raises(OfflineError, match=r"not in the cache .*allow_download: false.*repainter fetch"):
        item.load()

    monkeypatch.setenv("REPAINTER_OFFLINE", "1")
    items = ManifestDataset(str(manifest), cache_dir=str(cache)).items()
    with pytest.raises(OfflineError, match="REPAINTER_OFFLINE"):
        items[0].load()
    assert server.total_hits() == 0

    monkeypatch.delenv("REPAINTER_OFFLINE")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")  # one switch: the weights' variable too
    with pytest.raises(OfflineError, match="TRANSFORMERS_OFFLINE=1"):
        items[0].load()
    assert server.total_hits() == 0

    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    fetch_manifest(manifest, cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert items[0].load().id == "red"  # cached files load offline


def test_cache_location_follows_repainter_cache(tmp_path, server, monkeypatch):
    monkeypatch.setenv("REPAINTER_CACHE", str(tmp_path / "rc"))
    assert cache_root() == tmp_path / "rc"
    assert dataset_cache_dir("evalref-100") == tmp_path / "rc" / "datasets" / "evalref-100"
    manifest = _manifest(tmp_path, server, GOOD[:1])
    report = fetch_manifest(manifest)
    assert Path(report.items[0].path).is_relative_to(tmp_path / "rc" / "datasets")


def test_cli_fetch_manifest(tmp_path, server):
    manifest = _manifest(tmp_path, server, GOOD)
    runner = CliRunner()
    args = ["fetch", str(manifest), "--cache-dir", str(tmp_path / "cache"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["downloaded"] == 3
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and json.loads(result.stdout)["counts"]["cached"] == 3

    bad = _manifest(tmp_path, server, [*GOOD, {"id": "page", "url": "/blob/page.png"}])
    result = runner.invoke(app, ["fetch", str(bad), "--cache-dir", str(tmp_path / "cache")])
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "failed page:" in output and "not an image" in output


def test_cli_fetch_unknown_dataset(tmp_path):
    result = CliRunner().invoke(app, ["fetch", "no-such-dataset"])
    assert result.exit_code == 2 and "unknown dataset" in result.output
    result = CliRunner().invoke(app, ["fetch", "world"])
    assert result.exit_code == 2 and "nothing to fetch" in result.output


# -- EvalRef-100 --------------------------------------------------------------------------------


def test_evalref100_manifest_is_complete_and_bundles_no_images():
    manifest = evalref100_manifest()
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    assert len(rows) == 100 and len({r["id"] for r in rows}) == 100
    for category in ("portrait", "object", "scene", "complex"):
        assert sorted(r["id"] for r in rows if r["category"] == category) == sorted(
            f"{category}_{n}" for n in range(1, 26))
    for row in rows:
        assert row["license"] == "CC-BY-NC-4.0" and row["sha256"] is None
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/SPEEDSRER/Image-Regeneration/"
                            r"[0-9a-f]{40}/[\w/]+\.png", row["url"]), row["url"]
    folder = manifest.parent
    assert not [p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"}]


def test_evalref100_dataset_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("REPAINTER_OFFLINE", "1")
    dataset = load_dataset("evalref-100", {"cache_dir": str(tmp_path / "cache")})
    assert isinstance(dataset, EvalRef100Dataset)
    items = dataset.select(["portrait"], limit=2)
    assert [i.id for i in items] == ["portrait_1", "portrait_2"]
    with pytest.raises(OfflineError, match="repainter fetch evalref-100"):
        items[0].load()
    report = fetch_dataset("evalref-100", tmp_path / "cache")
    assert report.count("failed") == 100 and not report.ok


def test_evalref100_reads_a_prepared_cache(tmp_path, server, monkeypatch):
    """Point a copy of the manifest at the loopback server: fetch, then load through the registry."""
    rows = [json.loads(line) for line in evalref100_manifest().read_text().splitlines()][:3]
    for row in rows:
        server.routes[f"/evalref/{row['id']}.png"] = (200, "image/png", _png_bytes("orange"))
        row["url"] = f"{server.url}/evalref/{row['id']}.png"
    manifest = tmp_path / "evalref.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cache = tmp_path / "cache"
    dataset = EvalRef100Dataset(cache_dir=str(cache), manifest=str(manifest))
    from repainter.datasets import fetch_dataset_items

    assert fetch_dataset_items(dataset).ok
    monkeypatch.setenv("REPAINTER_OFFLINE", "1")
    ref = dataset.items()[0].load()
    assert ref.license == "CC-BY-NC-4.0" and ref.category == "portrait"


class _TrickleServer:
    """Loopback server that sends one byte every ``gap`` seconds: headers too (``/headers``),
    or a normal header then the body (``/body``). Each byte beats any per-read timeout."""

    def __init__(self, gap: float = 0.05, size: int = 2000):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = _png_bytes("red")[:size]
                head = (f"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n"
                        f"Content-Length: {size}\r\n\r\n").encode()
                try:
                    if self.path == "/headers":
                        for i in range(len(head)):
                            self.wfile.write(head[i:i + 1])
                            self.wfile.flush()
                            time.sleep(gap)
                    else:
                        self.wfile.write(head)
                    for i in range(size):
                        self.wfile.write(body[i % len(body):i % len(body) + 1])
                        self.wfile.flush()
                        time.sleep(gap)
                except OSError:  # the client gave up: what the test wants
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_server_cannot_outlast_the_download_deadline(server, where):
    """Issue 12 item 17 (fetch): 1 byte per gap never trips a per-read timeout; the total
    deadline ends the download with a reason (the old code read on for 2000 x gap seconds)."""
    from repainter.fetch import DownloadError, download

    slow = _TrickleServer()
    try:
        with pytest.raises(DownloadError, match="longer than the 0.5 s limit"):
            download(f"{slow.url}/{where}", timeout=0.5)
    finally:
        slow.close()
