"""The torch-free edge client: ONNX export, integer context export, and files that decode on the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from jointcodec.api import Codec
from jointcodec.data import load_split
from jointcodec.entropy import FixedPointContext
from jointcodec.entropy.integer import IntegerContext
from jointcodec.errors import CheckpointError, ConfigError
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
