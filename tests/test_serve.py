"""The receiver service with FastAPI's test client: endpoints, predictions, and every error class."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's TestClient says it prefers httpx2; httpx works
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

from jointcodec.api import Codec  # noqa: E402
from jointcodec.bitstream import BitstreamError, Container, image_count, pack, unpack  # noqa: E402
from jointcodec.data import load_split  # noqa: E402
from jointcodec.models import create_model  # noqa: E402
from jointcodec.serve import ServeSettings, create_app  # noqa: E402

OCTETS = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.load("default")


@pytest.fixture(scope="module")
def client(codec: Codec):
    app = create_app(codec, ServeSettings(max_body_bytes=20_000, max_images=64, workers=2))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def images(data_dir: Path) -> torch.Tensor:
    return load_split("cifar10", "test", data_dir).images[:12]


def _error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"]


def test_health_and_model(client: TestClient, codec: Codec) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    info = client.get("/v1/model").json()
    assert info["fingerprint"] == codec.fingerprint.hex() and info["preset"] == codec.config["preset"]["name"]
    assert info["levels"] == 2 and info["classes"][0] == "airplane" and info["latent_shape"] == [16, 8, 8]


def test_classify_one_and_many_images(client: TestClient, codec: Codec, images: torch.Tensor) -> None:
    expected = codec.classify(codec.compress(images)).tolist()
    one = client.post("/v1/classify", content=codec.compress(images[:1]), headers=OCTETS)
    assert one.status_code == 200
    body = one.json()
    assert body["model"] == codec.fingerprint.hex() and body["count"] == 1 and body["decode_ms"] >= 0
    (entry,) = body["predictions"]
    assert entry["label"] == expected[0] and entry["class"] == codec.classes[expected[0]]
    assert entry["top_k"] == [{"label": entry["label"], "class": entry["class"], "probability": entry["probability"]}]
    many = client.post("/v1/classify?top_k=3", content=codec.compress(images), headers=OCTETS).json()
    assert [p["label"] for p in many["predictions"]] == expected
    assert [p["index"] for p in many["predictions"]] == list(range(len(images)))
    assert all(len(p["top_k"]) == 3 for p in many["predictions"])


def test_damaged_bitstreams_are_400(client: TestClient, codec: Codec, images: torch.Tensor) -> None:
    data = codec.compress(images[:3])
    _error(client.post("/v1/classify", content=data[:-5], headers=OCTETS), 400, "truncated_bitstream")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    _error(client.post("/v1/classify", content=bytes(flipped), headers=OCTETS), 400, "corrupt_bitstream")
    _error(client.post("/v1/classify", content=b"not a bitstream", headers=OCTETS), 400, "corrupt_bitstream")
    _error(client.post("/v1/classify", content=b"", headers=OCTETS), 400, "empty_body")
    version = bytearray(data)
    version[3] = 9
    _error(client.post("/v1/classify", content=bytes(version), headers=OCTETS), 400, "unsupported_version")
    # A well-formed container (valid CRC) whose latent shape the model cannot have.
    container = unpack(data)
    odd = pack(Container(container.fingerprint, container.levels, (16, 4, 4), container.payloads))
    _error(client.post("/v1/classify", content=odd, headers=OCTETS), 400, "corrupt_bitstream")
    # A valid CRC over garbage payloads: they decode to something (200) or fail cleanly (400); the worker lives on.
    impossible = pack(Container(container.fingerprint, container.levels, container.latent_shape,
                                (b"\xff" * 40,) * 2))
    response = client.post("/v1/classify", content=impossible, headers=OCTETS)
    assert response.status_code in (200, 400), response.text
    assert client.post("/v1/classify", content=data, headers=OCTETS).status_code == 200


def test_a_bitstream_of_another_model_is_409(client: TestClient, images: torch.Tensor) -> None:
    torch.manual_seed(1)
    other = Codec(create_model("cifar-v1", 2, 10).eval())
    _error(client.post("/v1/classify", content=other.compress(images[:2]), headers=OCTETS), 409, "wrong_model")


def test_limits_are_413(client: TestClient, codec: Codec, images: torch.Tensor) -> None:
    _error(client.post("/v1/classify", content=b"JCC" + bytes(30_000), headers=OCTETS), 413, "body_too_large")
    symbols = codec.symbols(images[:1]).repeat(65, 1, 1, 1)
    _error(client.post("/v1/classify", content=codec.encode_symbols(symbols).to_bytes(), headers=OCTETS), 413,
           "too_many_images")


def test_wrong_content_and_parameters_are_4xx_json(client: TestClient, codec: Codec, images: torch.Tensor) -> None:
    data = codec.compress(images[:1])
    _error(client.post("/v1/classify", content=data, headers={"content-type": "application/json"}), 415,
           "unsupported_media_type")
    _error(client.post("/v1/classify", json={"image": "cat.png"}), 415, "unsupported_media_type")
    _error(client.post("/v1/classify?top_k=0", content=data, headers=OCTETS), 422, "invalid_request")
    _error(client.get("/v1/classify"), 405, "method_not_allowed")
    _error(client.get("/v2/anything"), 404, "not_found")


def test_busy_and_timeout(codec: Codec, images: torch.Tensor) -> None:
    app = create_app(codec, ServeSettings(timeout_s=1e-6, max_pending=4))
    data = codec.compress(images)
    with TestClient(app) as client:
        _error(client.post("/v1/classify", content=data, headers=OCTETS), 504, "timeout")
        deadline = time.monotonic() + 30
        while app.state.pool.pending and time.monotonic() < deadline:  # the abandoned job finishes or is dropped
            time.sleep(0.05)
        app.state.pool.pending = 4  # as if four requests were in progress
        _error(client.post("/v1/classify", content=data, headers=OCTETS), 503, "busy")
        app.state.pool.pending = 0
        assert client.get("/healthz").status_code == 200


@settings(max_examples=100, deadline=None)
@given(container=st.builds(Container, fingerprint=st.binary(min_size=8, max_size=8), levels=st.integers(2, 256),
                           latent_shape=st.tuples(*(st.integers(1, 250),) * 3),  # < MAX_SYMBOLS_PER_IMAGE
                           payloads=st.lists(st.binary(max_size=50), min_size=1, max_size=6).map(tuple)),
       cut=st.integers(0, 40))
def test_the_header_peek_agrees_with_the_parser(container: Container, cut: int) -> None:
    """``image_count`` (what the service checks before parsing) reads the count ``unpack`` reads, or fails alike."""
    data = pack(container)
    assert image_count(data) == container.count == unpack(data).count
    try:
        count = image_count(data[:cut])
    except BitstreamError:
        return
    assert count == container.count


def test_the_serve_command_builds_the_app_from_its_flags(monkeypatch, capsys) -> None:
    import uvicorn

    from jointcodec.cli.main import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    assert main(["serve", "--port", "8123", "--workers", "3", "--no-batching", "--max-images", "7"]) == 0
    (app, kwargs), = calls
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8123
    settings = app.state.settings
    assert settings.workers == 3 and not settings.batching and settings.max_images == 7
    assert "on http://127.0.0.1:8123" in capsys.readouterr().out
    assert main(["serve", "--workers", "0"]) == 1
    assert "workers must be at least 1" in capsys.readouterr().err
