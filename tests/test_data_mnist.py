"""MNIST lookup and download, against a local HTTP server serving small fixture files."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from digitlab.data import DataError, download_mnist, find_mnist, load_mnist
from digitlab.data.mnist import FILES
from conftest import write_mnist_folder

STEMS = [s for pair in FILES.values() for s in pair]


@pytest.fixture
def fixture_files(tmp_path):
    """A mirror's folder of tiny MNIST-shaped .gz files, and the sha256 of each decompressed file."""
    folder = write_mnist_folder(tmp_path / "mirror", gz=True)
    sums = {s: hashlib.sha256(gzip.decompress((folder / f"{s}.gz").read_bytes())).hexdigest() for s in STEMS}
    return folder, sums


class _Server:
    """A loopback HTTP server; ``mode`` picks its behaviour: serve files, corrupt them, or cut them."""

    def __init__(self, folder: Path, mode: str = "ok"):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                file = folder / Path(self.path).name
                if not file.is_file():
                    self.send_error(404)
                    return
                body = file.read_bytes()
                if server.mode == "corrupt":
                    body = gzip.compress(gzip.decompress(body)[:-1] + b"\x01")
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection dies mid-file
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.mode, self.requests = mode, []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(folder, mode="ok"):
        servers.append(_Server(folder, mode))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _dead_url() -> str:
    """A loopback URL nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def test_download_falls_back_to_second_mirror(tmp_path, fixture_files, serve):
    folder, sums = fixture_files
    good = serve(folder)
    dest = tmp_path / "cache"
    seen = []
    out = download_mnist(dest, mirrors=[_dead_url(), good.url], checksums=sums,
                         progress=lambda name, done, total: seen.append((name, done, total)))
    assert out == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    assert len(good.requests) == 4
    assert {name for name, _, _ in seen} == set(STEMS) and all(d == t for _, d, t in seen[-1:])
    ds = load_mnist("test", dest)
    assert len(ds) == 10


def test_checksum_mismatch_rejected_cache_untouched(tmp_path, fixture_files, serve):
    folder, sums = fixture_files
    bad = serve(folder, mode="corrupt")
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch"):
        download_mnist(dest, mirrors=[bad.url], checksums=sums)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_connection_dropped_leaves_no_partial_file(tmp_path, fixture_files, serve):
    folder, sums = fixture_files
    cut = serve(folder, mode="drop")
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match="could not download") as err:
        download_mnist(dest, mirrors=[cut.url], checksums=sums)
    assert "DIGITLAB_DATA_DIR" in str(err.value)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_corrupt_mirror_then_good_mirror(tmp_path, fixture_files, serve):
    folder, sums = fixture_files
    bad, good = serve(folder, "corrupt"), serve(folder)
    dest = download_mnist(tmp_path / "c", mirrors=[bad.url, good.url], checksums=sums)
    assert len(list(dest.iterdir())) == 4


def test_verified_cached_files_are_not_downloaded_again(tmp_path, fixture_files, serve):
    folder, sums = fixture_files
    server = serve(folder)
    dest = tmp_path / "c"
    download_mnist(dest, mirrors=[server.url], checksums=sums)
    download_mnist(dest, mirrors=[server.url], checksums=sums)
    assert len(server.requests) == 4


def test_lookup_order(tmp_path, monkeypatch):
    arg = write_mnist_folder(tmp_path / "arg", n_test=3)
    env = write_mnist_folder(tmp_path / "env", n_test=4)
    cache = tmp_path / "cache"
    write_mnist_folder(cache / "mnist", n_test=5, gz=False)
    monkeypatch.setenv("DIGITLAB_CACHE_DIR", str(cache))
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(env))
    assert len(load_mnist("test", arg)) == 3
    assert len(load_mnist("test")) == 4
    monkeypatch.delenv("DIGITLAB_DATA_DIR")
    assert find_mnist() == cache / "mnist"
    assert len(load_mnist("test")) == 5


def test_named_folder_missing_a_file_is_an_error(tmp_path, monkeypatch):
    folder = write_mnist_folder(tmp_path / "m")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(folder))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist("train")


def test_nothing_found_offline_says_how_to_fix(monkeypatch):
    monkeypatch.delenv("DIGITLAB_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="set DIGITLAB_DATA_DIR"):
        load_mnist("train", download=False)


def test_bad_split():
    with pytest.raises(DataError, match="split"):
        load_mnist("validation")


@pytest.mark.mnist
def test_real_mnist(mnist):
    train, test = mnist
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.class_counts().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert train.labels[0] == 5


@pytest.mark.mnist
def test_real_mnist_checksums_match_the_code(mnist_dir):
    from digitlab.data.mnist import SHA256

    for stem, digest in SHA256.items():
        assert hashlib.sha256(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes())).hexdigest() == digest
