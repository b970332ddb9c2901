"""Edge export end to end on the CIFAR-10 test split: ONNX vs torch symbols, and accuracy through the service.

    python experiments/edge_accuracy.py --checkpoint default --images 10000 --json edge_accuracy.json [--int8]

1. exports the model (``jointcodec export --onnx``, with ``--int8`` also the int8 encoder) unless ``--export-dir``
   holds one;
2. runs the edge client in a subprocess where torch cannot be imported: ONNX symbols and ``.jcc`` files of
   ``--per-file`` images each;
3. compares the ONNX symbols with the torch model's (agreement rate; for any disagreement, how far the torch
   latent was from the boundary between the two centers), and the client's payloads with the torch path's
   (``Codec.encode_symbols`` of the torch symbols), byte for byte;
4. posts every file to the receiver service (in-process through FastAPI's test client, or ``--url`` of a running
   ``jointcodec serve``) and compares its labels with the in-process model's labels (float forward pass on the
   images) and with the server ``Codec`` decoding the same files;
5. with ``--int8``, runs the int8 client the same way: the share of its symbols that differ from fp32's, its top-1
   through the service and its payload rate, each beside fp32's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from jointcodec.api import Codec
from jointcodec.bitstream import unpack
from jointcodec.data import load_split
from jointcodec.evaluation.evaluate import predict

EDGE_CHILD = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None  # the edge client must run without torch
    import time, numpy as np
    from jointcodec.edge import EdgeEncoder
    from jointcodec.bitstream import Container, pack
    export_dir, images_path, out_dir, per_file, precision = sys.argv[1:4] + [int(sys.argv[4]), sys.argv[5]]
    edge = EdgeEncoder(export_dir, threads=1, precision=precision)
    images = np.load(images_path)
    started = time.perf_counter()
    symbols = edge.symbols(images)
    network_s = time.perf_counter() - started
    container = edge.encode_symbols(symbols)
    total_s = time.perf_counter() - started
    np.save(f"{out_dir}/symbols.npy", symbols)
    for i, start in enumerate(range(0, len(images), per_file)):
        part = Container(container.fingerprint, container.levels, container.latent_shape,
                         container.payloads[start:start + per_file])
        open(f"{out_dir}/part{i:05d}.jcc", "wb").write(pack(part))
    print(network_s, total_s, sum(map(len, container.payloads)))
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--export-dir", default=None, help="an existing export (default: export into a temp dir)")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--per-file", type=int, default=100, help="images per .jcc file / request")
    parser.add_argument("--url", default=None, help="a running service (default: in-process test client)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--int8", action="store_true", help="also measure the int8 encoder against fp32")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load_split("cifar10", "test", args.data_dir)
    data = data.subset(slice(0, args.images))
    work = Path(tempfile.mkdtemp(prefix="edge_accuracy."))
    export_dir = Path(args.export_dir) if args.export_dir else work / "onnx"
    manifest = export_dir / "edge.json"
    if not manifest.is_file() or (args.int8 and "encoder_int8" not in json.loads(manifest.read_text())["files"]):
        from jointcodec.edge import export_onnx

        export_onnx(args.checkpoint, export_dir, int8=args.int8, data_dir=args.data_dir)
    np.save(work / "images.npy", data.images.numpy())
    edge_network_s, edge_total_s, payload_bytes, onnx_symbols, files = _run_client(export_dir, work, "fp32",
                                                                                   args.per_file)

    codec = Codec.load(args.checkpoint)
    reference = predict(codec.model, data, 500)  # float forward pass: in-process labels and torch symbols
    torch_symbols = reference["symbols"]
    agree = onnx_symbols == torch_symbols
    disagreements = []
    if not bool(agree.all()):
        with torch.no_grad():
            latent = torch.cat([codec.model.encoder(_normalized(data.images[i:i + 500]))
                                for i in range(0, len(data), 500)])
        centers = codec.model.quantizer.centers.detach()
        for index in torch.nonzero(~agree)[:50].tolist():
            z = float(latent[tuple(index)])
            a, b = sorted(int(s[tuple(index)]) for s in (onnx_symbols, torch_symbols))
            disagreements.append({"where": index, "latent": z,
                                  "distance_to_boundary": abs(z - float(centers[a] + centers[b]) / 2)})

    client_payloads = [p for f in files for p in unpack(f.read_bytes()).payloads]
    torch_payloads = list(codec.encode_symbols(torch_symbols).container.payloads)
    started = time.perf_counter()
    service_labels, statuses = _classify_files(files, codec, args.url)
    service_s = time.perf_counter() - started
    server_labels = torch.cat([codec.classify(f.read_bytes()) for f in files])
    in_process = reference["logits"].argmax(1)
    service = torch.tensor(service_labels)
    result = {
        "checkpoint": str(args.checkpoint), "images": len(data), "per_file": args.per_file, "files": len(files),
        "symbol_agreement": float(agree.float().mean()), "symbols_differing": int((~agree).sum()),
        "images_with_a_differing_symbol": int((~agree).flatten(1).any(1).sum()),
        "disagreements": disagreements,
        "edge_files_decode_to_onnx_symbols": bool(torch.equal(torch.cat([codec.decode_symbols(f.read_bytes())
                                                                          for f in files]), onnx_symbols)),
        "top1_in_process": float((in_process == data.labels).float().mean() * 100),
        "top1_service": float((service == data.labels).float().mean() * 100),
        "labels_equal_in_process": int((service == in_process).sum()),
        "labels_equal_server_codec": int((service == server_labels).sum()),
        "http_statuses": statuses,
        "payloads_equal_torch_path": sum(a == b for a, b in zip(client_payloads, torch_payloads, strict=True)),
        "payload_bpp": 8 * payload_bytes / (len(data) * 32 * 32),
        "edge_network_s": edge_network_s, "edge_encode_total_s": edge_total_s, "service_s": service_s,
        "service": args.url or "in-process test client", "torch_threads": 1, "export_dir": str(export_dir),
    }
    if args.int8:
        result["int8"] = _int8(export_dir, work, args, data, codec, onnx_symbols, result)
    print(json.dumps({k: v for k, v in result.items() if k != "disagreements"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def _run_client(export_dir: Path, work: Path, precision: str, per_file: int):
    """The edge client without torch, in a subprocess: its network and total times, payload bytes, symbols and
    files (written into ``work/precision``)."""
    out = work / precision
    out.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", EDGE_CHILD, str(export_dir), str(work / "images.npy"), str(out),
                           str(per_file), precision], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"edge client ({precision}) failed: {proc.stderr}")
    network_s, total_s, payload_bytes = (float(v) for v in proc.stdout.split())
    return (network_s, total_s, payload_bytes, torch.from_numpy(np.load(out / "symbols.npy")),
            sorted(out.glob("part*.jcc")))


def _int8(export_dir: Path, work: Path, args, data, codec: Codec, fp32_symbols: torch.Tensor, fp32: dict) -> dict:
    """The int8 client through the same service, beside the fp32 client's figures."""
    network_s, total_s, payload_bytes, symbols, files = _run_client(export_dir, work, "int8", args.per_file)
    labels, statuses = _classify_files(files, codec, args.url)
    top1 = float((torch.tensor(labels) == data.labels).float().mean() * 100)
    bpp = 8 * payload_bytes / (len(data) * 32 * 32)
    decoded = torch.cat([codec.decode_symbols(f.read_bytes()) for f in files])
    return {
        "symbols_differing_from_fp32": float((symbols != fp32_symbols).float().mean()),
        "images_with_a_differing_symbol": int((symbols != fp32_symbols).flatten(1).any(1).sum()),
        "edge_files_decode_to_int8_symbols": bool(torch.equal(decoded, symbols)),
        "top1_service": top1, "top1_minus_fp32": top1 - fp32["top1_service"],
        "payload_bpp": bpp, "payload_bpp_ratio_to_fp32": bpp / fp32["payload_bpp"],
        "http_statuses": statuses, "edge_network_s": network_s, "edge_encode_total_s": total_s,
    }


def _normalized(images: torch.Tensor) -> torch.Tensor:
    from jointcodec.data import normalize

    return normalize(images)


def _classify_files(files: list[Path], codec: Codec, url: str | None) -> tuple[list[int], dict[str, int]]:
    headers = {"content-type": "application/octet-stream"}
    labels, statuses = [], {}
    if url:
        import httpx

        client = httpx.Client(base_url=url, timeout=120)
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*httpx2")
            from fastapi.testclient import TestClient
        from jointcodec.serve import ServeSettings, create_app

        client = TestClient(create_app(codec, ServeSettings(max_images=10000, max_body_bytes=16 << 20)))
    with client:
        for path in files:
            response = client.post("/v1/classify", content=path.read_bytes(), headers=headers)
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
            if response.status_code != 200:
                sys.exit(f"{path}: HTTP {response.status_code}: {response.text}")
            labels.extend(p["label"] for p in response.json()["predictions"])
    return labels, statuses


if __name__ == "__main__":
    main()
