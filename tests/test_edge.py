"""The torch-free edge client: ONNX export, integer context export, and files that decode on the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from jointcodec.api import Codec
from jointcodec.data import load_split
from jointcodec.entropy import FixedPointContext
from jointcodec.entropy.integer import IntegerContext
from jointcodec.errors import CheckpointError, ConfigError, DataError
from jointcodec.models import CONTEXTS, create_context

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# Runs in a fresh interpreter where `import torch` fails: the edge client must not need it.
NO_TORCH = "import sys; sys.modules['torch'] = None\n"
EDGE_SCRIPT = NO_TORCH + textwrap.dedent("""
    import numpy as np
    from jointcodec.edge import EdgeEncoder
    edge = EdgeEncoder(sys.argv[1], threads=1)
    images = np.load(sys.argv[2])
    np.save(sys.argv[3], edge.symbols(images))
    open(sys.argv[4], "wb").write(edge.compress(images))
    loaded = [name for name, module in sys.modules.items() if module is not None and name.split(".")[0] == "torch"]
    assert not loaded, loaded
    print("ok", edge.fingerprint.hex())
""")
EDGE_CLI = NO_TORCH + "import runpy; sys.argv[0] = 'edge'; runpy.run_module('jointcodec.edge', run_name='__main__')"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """`jointcodec export --checkpoint default --onnx DIR`, in this process."""
    from jointcodec.cli.main import main

    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", "--checkpoint", "default", "--onnx", str(out)]) == 0
    assert json.loads((out / "edge.json").read_text())["export_check"]["symbol_agreement"] == 1.0
    return out


@pytest.fixture(scope="module")
def images(data_dir: Path) -> torch.Tensor:
    return load_split("cifar10", "test", data_dir).images[:24]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def test_export_writes_the_documented_files(export_dir: Path) -> None:
    manifest = json.loads((export_dir / "edge.json").read_text())
    codec = Codec.load("default")
    assert manifest["fingerprint"] == codec.fingerprint.hex()
    assert manifest["latent_shape"] == [16, 8, 8] and manifest["levels"] == 2
    for entry in manifest["files"].values():
        assert (export_dir / entry["file"]).is_file()
    assert manifest["export_check"]["context_logits_max_abs_diff"] < 1e-3


def test_the_edge_client_imports_and_runs_without_torch(export_dir: Path, images: torch.Tensor,
                                                        tmp_path: Path) -> None:
    """Edge files (ONNX encoder, numpy integer coder) decode on the server to the torch model's symbols."""
    np.save(tmp_path / "images.npy", images.numpy())
    proc = subprocess.run([sys.executable, "-c", EDGE_SCRIPT, str(export_dir), str(tmp_path / "images.npy"),
                           str(tmp_path / "symbols.npy"), str(tmp_path / "edge.jcc")],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    codec = Codec.load("default")
    edge_symbols = torch.from_numpy(np.load(tmp_path / "symbols.npy"))
    data = (tmp_path / "edge.jcc").read_bytes()
    assert torch.equal(codec.decode_symbols(data), edge_symbols)  # edge files decode exactly on the server
    assert torch.equal(edge_symbols, codec.symbols(images))  # ONNX symbols == torch symbols on these images
    assert data == codec.compress(images)  # same symbols, same integers: byte-identical files


def test_the_edge_command_line_without_torch(export_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.jcc"
    proc = subprocess.run([sys.executable, "-c", EDGE_CLI, str(export_dir),
                           f"{data_dir / 'cifar10' / 'test.npz'}[:5]", "-o", str(out), "--threads", "1"],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "5 images" in proc.stdout
    codec = Codec.load("default")
    assert len(codec.decode_symbols(out.read_bytes())) == 5
    proc = subprocess.run([sys.executable, "-c", EDGE_CLI, str(export_dir), str(tmp_path / "missing.npy"), "-o",
                           str(out)], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


def test_the_edge_client_reads_a_folder_as_its_images_in_name_order(data_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    from jointcodec.edge.client import read_inputs

    with np.load(data_dir / "cifar10" / "test.npz") as data:
        images = data["images"][:2]  # (N, 32, 32, 3) or (N, 3, 32, 32): the client takes both
    hwc = images if images.shape[-1] == 3 else images.transpose(0, 2, 3, 1)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(hwc[0]).save(folder / "b.png")
    Image.fromarray(hwc[1]).save(folder / "a.png")
    (folder / "notes.txt").write_text("not an image")
    read = read_inputs([str(folder)], 32)
    assert np.array_equal(read, hwc[[1, 0]].transpose(0, 3, 1, 2))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no image files"):
        read_inputs([str(empty)], 32)


def test_export_refuses_the_server_part(tmp_path: Path, capsys) -> None:
    from jointcodec.cli.main import main
    from jointcodec.edge.split import export_split

    parts = export_split("default", tmp_path / "parts")
    assert main(["export", "--checkpoint", str(parts["server"]), "--onnx", str(tmp_path / "onnx")]) == 1
    assert "needs the encoder" in capsys.readouterr().err


def test_the_edge_client_refuses_bad_exports_and_images(export_dir: Path, tmp_path: Path) -> None:
    from jointcodec.edge import EdgeEncoder

    edge = EdgeEncoder(export_dir, threads=1)
    with pytest.raises(ConfigError, match="uint8"):
        edge.compress(np.zeros((2, 3, 16, 16), dtype=np.uint8))
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in export_dir.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    (damaged / "context_int.npz").write_bytes((export_dir / "context_int.npz").read_bytes()[:-10] + b"0" * 10)
    with pytest.raises(CheckpointError, match="checksum"):
        EdgeEncoder(damaged)
    with pytest.raises(CheckpointError, match="not an edge export"):
        EdgeEncoder(tmp_path)


@pytest.mark.parametrize("kind", sorted(CONTEXTS))
def test_the_exported_integer_context_is_the_same_coder(kind: str, tmp_path: Path) -> None:
    """IntegerContext.load(to_npz) == the FixedPointContext it came from: digest, order, logits."""
    torch.manual_seed(0)
    context = create_context(3, {"kind": kind, "width": 8, "layers": 3})
    fixed = FixedPointContext(context, torch.tensor([-1.5, 0.1, 1.2]))
    shape = (6, 5, 4)
    (tmp_path / "c.npz").write_bytes(fixed.to_npz([shape]))
    loaded = IntegerContext.load(tmp_path / "c.npz")
    assert loaded.digest() == fixed.digest() and loaded.fingerprint == fixed.fingerprint
    assert [s.raster.tolist() for s in loaded.coding_order(shape)] == [s.raster.tolist()
                                                                        for s in fixed.coding_order(shape)]
    symbols = np.random.default_rng(0).integers(0, 3, (5, *shape))
    np.testing.assert_array_equal(loaded.logits(symbols), fixed.logits(symbols))
    with pytest.raises(ConfigError, match="latent shapes"):
        loaded.coding_order((6, 5, 5))


@pytest.fixture(scope="module")
def int8_export_dir(tmp_path_factory, data_dir: Path) -> Path:
    """`jointcodec export --checkpoint default --onnx DIR --int8`, calibrated on a few training images."""
    from jointcodec.cli.main import main

    out = tmp_path_factory.mktemp("onnx_int8")
    assert main(["export", "--checkpoint", "default", "--onnx", str(out), "--int8", "--calibration-images", "64",
                 "--data-dir", str(data_dir)]) == 0
    return out


def test_the_int8_encoder_round_trips_through_the_service(int8_export_dir: Path, images: torch.Tensor,
                                                          data_dir: Path, tmp_path: Path) -> None:
    """int8 edge files (quantized encoder, exact integer coder) decode on the server to the int8 symbols, and the
    service classifies them; the quantizer's nearest-center choice stays in float, so most symbols match fp32."""
    pytest.importorskip("fastapi")
    with warnings.catch_warnings():  # starlette's TestClient says it prefers httpx2; httpx works
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient
    from jointcodec.edge import EdgeEncoder
    from jointcodec.serve import create_app

    manifest = json.loads((int8_export_dir / "edge.json").read_text())
    assert manifest["files"]["encoder_int8"]["file"] == "encoder_int8.onnx"
    assert manifest["int8"]["calibration_images"] == 64 and "node_argmin" in manifest["int8"]["float_nodes"]
    int8, fp32 = (EdgeEncoder(int8_export_dir, threads=1, precision=p) for p in ("int8", "fp32"))
    int8_symbols = int8.symbols(images.numpy())
    assert 0.95 <= float((int8_symbols == fp32.symbols(images.numpy())).mean()) < 1.0
    data = int8.compress(images.numpy())
    codec = Codec.load("default")
    assert torch.equal(codec.decode_symbols(data), torch.from_numpy(int8_symbols))
    with TestClient(create_app(codec)) as client:
        response = client.post("/v1/classify", content=data, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200
    assert [p["label"] for p in response.json()["predictions"]] == codec.classify(data).tolist()

    # The command line without torch, with --int8: the same file.
    out = tmp_path / "int8.jcc"
    np.save(tmp_path / "images.npy", images.numpy())
    proc = subprocess.run([sys.executable, "-c", EDGE_CLI, str(int8_export_dir), str(tmp_path / "images.npy"),
                           "-o", str(out), "--threads", "1", "--int8"], capture_output=True, text=True, timeout=120,
                          env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "int8 encoder" in proc.stdout and out.read_bytes() == data


def test_bad_int8_requests_are_one_line_errors(export_dir: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    from jointcodec.cli.main import main
    from jointcodec.edge import EdgeEncoder

    for argv, message in [
            (["--onnx", str(tmp_path / "a"), "--int8", "--calibration-images", "0"], "at least 1"),
            (["--split", str(tmp_path / "b"), "--int8"], "for --onnx exports"),
            (["--onnx", str(tmp_path / "c"), "--calibration-images", "8"], "with --int8"),
            (["--onnx", str(tmp_path / "d"), "--int8", "--data-dir", str(tmp_path / "nothing")], "cifar10")]:
        assert main(["export", "--checkpoint", "default", *argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith("jointcodec: error:") and err.count("\n") == 1 and message in err, err
    with pytest.raises(CheckpointError, match="no int8 encoder"):
        EdgeEncoder(export_dir, precision="int8")
    with pytest.raises(ConfigError, match="precision"):
        EdgeEncoder(export_dir, precision="fp16")
    np.save(tmp_path / "one.npy", np.zeros((1, 3, 32, 32), dtype=np.uint8))
    proc = subprocess.run([sys.executable, "-c", EDGE_CLI, str(export_dir), str(tmp_path / "one.npy"), "-o",
                           str(tmp_path / "x.jcc"), "--int8"], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no int8 encoder" in proc.stderr
