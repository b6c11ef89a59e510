"""Released weights are checked by their content; the opt-in download is atomic, resumable and verified. Every
download goes to an HTTP server on 127.0.0.1 that the test starts (nothing else is contacted)."""

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mindcv_shufflenet import create_model
from mindcv_shufflenet.models import registry, save_checkpoint
from mindcv_shufflenet.models.download import (
    ENV_DOWNLOAD,
    DownloadError,
    WeightsFileError,
    download_file,
    fetch_released_weights,
)
from mindcv_shufflenet.models.metadata import ReleasedWeights
from tests.helpers import publish_release, randomize, run_eval

MODEL = "shufflenet_v2_x0_5"
IMAGE = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)


class Files(BaseHTTPRequestHandler):
    """Serves ``server.files[path] = (body, mode)``: mode "ok" (honours Range), "truncated" (announces the whole
    length, sends half, closes), "no-range" (always the whole body); anything else is a 404. Each request's path and
    Range header go to ``server.requests``."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append((self.path, self.headers.get("Range")))
        if self.path not in self.server.files:
            self.send_error(404)
            return
        body, mode = self.server.files[self.path]
        start = 0
        asked = self.headers.get("Range")
        if asked and mode != "no-range":
            start = int(asked.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        self.wfile.write(payload[:len(payload) // 2] if mode == "truncated" else payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    httpd.files, httpd.requests = {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A checkpoint's bytes, their SHA-256 prefix and the logits of the network it holds."""
    net = randomize(create_model(MODEL), seed=11)
    path = save_checkpoint(net, tmp_path_factory.mktemp("weights") / "w.ckpt")
    body = path.read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:8], run_eval(net, IMAGE)


def release_on(server, monkeypatch, tmp_path, body, prefix):
    """Register a release of MODEL whose URL is on ``server`` (not serving it yet); the weights folder is empty."""
    released = ReleasedWeights(f"{server.url}/releases/shufflenetv2/{MODEL}-{prefix}.ckpt", prefix)
    monkeypatch.setitem(registry._INFO, MODEL, dataclasses.replace(registry.model_info(MODEL), weights=released))
    monkeypatch.setenv("MINDCV_SHUFFLENET_HOME", str(tmp_path))
    monkeypatch.delenv(ENV_DOWNLOAD, raising=False)
    return released, tmp_path / released.relative_path


def assert_one_line(err):
    assert "\n" not in str(err), str(err)


def test_a_local_file_without_the_released_hash_is_refused_naming_both_hashes(tmp_path, monkeypatch, weights):
    body, prefix, _ = weights
    (tmp_path / "w.ckpt").write_bytes(body)
    path = publish_release(monkeypatch, MODEL, tmp_path / "w.ckpt", tmp_path / "home")
    damaged = bytearray(body)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(damaged))
    found = hashlib.sha256(damaged).hexdigest()[:8]
    with pytest.raises(WeightsFileError) as err:
        create_model(MODEL, pretrained=True)
    assert_one_line(err.value)
    assert str(err.value).startswith(f"{path} is not the released {path.name}: its SHA-256 starts with {found}, "
                                     f"expected {prefix}; delete it and download ")


def test_offline_is_the_default_and_the_error_says_how_to_download(server, tmp_path, monkeypatch, weights):
    body, prefix, _ = weights
    released, path = release_on(server, monkeypatch, tmp_path, body, prefix)
    server.files[f"/releases/shufflenetv2/{path.name}"] = (body, "ok")
    with pytest.raises(FileNotFoundError, match=f"set {ENV_DOWNLOAD}=1 to let pretrained=True fetch it"):
        create_model(MODEL, pretrained=True)
    assert server.requests == [] and not path.exists()


def test_pretrained_url_downloads_verifies_and_keeps_the_file(server, tmp_path, monkeypatch, weights, capsys):
    body, prefix, logits = weights
    _, path = release_on(server, monkeypatch, tmp_path, body, prefix)
    server.files["/elsewhere/w.ckpt"] = (body, "ok")
    net = create_model(MODEL, pretrained=True, pretrained_url=f"{server.url}/elsewhere/w.ckpt")
    np.testing.assert_array_equal(run_eval(net, IMAGE), logits)
    assert path.read_bytes() == body and sorted(p.name for p in path.parent.iterdir() if p.suffix != ".lock") == [
        path.name]
    assert f"downloading {path.name}: [" in capsys.readouterr().err
    create_model(MODEL, pretrained=True)  # now local: no second request
    assert server.requests == [("/elsewhere/w.ckpt", None)]


@pytest.mark.parametrize("setting", ["1", "mirror"])
def test_the_environment_setting_downloads_from_the_release_or_a_mirror(server, tmp_path, monkeypatch, weights,
                                                                        setting):
    body, prefix, _ = weights
    released, path = release_on(server, monkeypatch, tmp_path, body, prefix)
    if setting == "1":
        server.files[f"/releases/{released.relative_path}"] = (body, "ok")
        monkeypatch.setenv(ENV_DOWNLOAD, "1")
    else:
        server.files[f"/mirror/{released.relative_path}"] = (body, "ok")
        monkeypatch.setenv(ENV_DOWNLOAD, f"{server.url}/mirror/")
    assert fetch_released_weights(MODEL, progress=False) == path and path.read_bytes() == body


def test_a_truncated_body_is_one_line_and_the_next_try_resumes_it(server, tmp_path, weights):
    body, prefix, _ = weights
    dest = tmp_path / "w.ckpt"
    server.files["/w.ckpt"] = (body, "truncated")
    with pytest.raises(DownloadError) as err:
        download_file(f"{server.url}/w.ckpt", dest, prefix, progress=False)
    assert_one_line(err.value)
    half = len(body) // 2
    assert f"stopped after {half} of {len(body)} bytes (w.ckpt.part kept: run again to resume)" in str(err.value)
    assert not dest.exists() and (tmp_path / "w.ckpt.part").stat().st_size == half

    server.files["/w.ckpt"] = (body, "ok")
    assert download_file(f"{server.url}/w.ckpt", dest, prefix, progress=False) == dest
    assert dest.read_bytes() == body and not (tmp_path / "w.ckpt.part").exists()
    assert server.requests[-1] == ("/w.ckpt", f"bytes={half}-")  # only the rest was asked for


def test_a_server_that_ignores_the_range_gives_a_whole_new_file(server, tmp_path, weights):
    body, prefix, _ = weights
    (tmp_path / "w.ckpt.part").write_bytes(b"x" * 100)
    server.files["/w.ckpt"] = (body, "no-range")
    download_file(f"{server.url}/w.ckpt", tmp_path / "w.ckpt", prefix, progress=False)
    assert (tmp_path / "w.ckpt").read_bytes() == body


def test_a_download_with_another_hash_is_one_line_and_leaves_nothing(server, tmp_path, weights):
    body, prefix, _ = weights
    server.files["/w.ckpt"] = (body[:-1] + bytes([body[-1] ^ 1]), "ok")
    with pytest.raises(DownloadError) as err:
        download_file(f"{server.url}/w.ckpt", tmp_path / "w.ckpt", prefix, progress=False)
    assert_one_line(err.value)
    assert "sent a file whose SHA-256 starts with " in str(err.value) and f"expected {prefix}" in str(err.value)
    assert not (tmp_path / "w.ckpt").exists() and not (tmp_path / "w.ckpt.part").exists()


def test_a_missing_file_on_the_server_is_one_line_and_leaves_nothing(server, tmp_path, monkeypatch, weights):
    body, prefix, _ = weights
    _, path = release_on(server, monkeypatch, tmp_path, body, prefix)
    with pytest.raises(DownloadError) as err:
        create_model(MODEL, pretrained=True, pretrained_url=f"{server.url}/nothing/here.ckpt")
    assert_one_line(err.value)
    assert str(err.value) == (f"cannot download {server.url}/nothing/here.ckpt: HTTP 404 Not Found; check the "
                              f"URL, or put the file at {path}")
    assert not path.exists() and not path.with_name(path.name + ".part").exists()


def test_a_bad_environment_setting_is_refused(tmp_path, monkeypatch, weights):
    monkeypatch.setenv(ENV_DOWNLOAD, "yes please")
    monkeypatch.setenv("MINDCV_SHUFFLENET_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=f"{ENV_DOWNLOAD}='yes please' is not understood"):
        create_model(MODEL, pretrained=True)


def test_only_http_urls_are_fetched(tmp_path, weights):
    _, prefix, _ = weights
    with pytest.raises(DownloadError, match=f"only http:// and https:// URLs are fetched; for a local file, copy it "
                                            f"to {tmp_path / 'w.ckpt'}"):
        download_file(f"file://{tmp_path}/elsewhere.ckpt", tmp_path / "w.ckpt", prefix, progress=False)
    assert list(tmp_path.iterdir()) == []
