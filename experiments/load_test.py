"""Load and fault test of the receiver service (``jointcodec serve``) on loopback. Not a unit test.

    python experiments/load_test.py --checkpoint default --clients 16 --duration 60 --fuzz 10000 --json load.json

1. starts ``jointcodec serve`` as a subprocess on 127.0.0.1 (a free port) and waits for ``/healthz``;
2. encodes ``--images`` CIFAR-10 test images as single-image ``.jcc`` bodies (``--per-request`` images each) and
   classifies them in-process for the expected labels;
3. load: ``--clients`` concurrent clients post the bodies for ``--duration`` seconds; requests/s, images/s,
   p50/p90/p99 latency, errors (any non-200 answer, transport error or label different from in-process);
   ``--compare-batching`` runs the same load against a second server started with ``--no-batching``;
4. fuzz: ``--fuzz`` malformed bodies from a seeded generator (truncated, bit-flipped, random bytes, oversized,
   another model's fingerprint, impossible header values with a valid CRC, empty, wrong content type); every
   answer must be a 4xx with a JSON ``error``; then ``/healthz`` must answer and the server process must be alive.

Every request goes to 127.0.0.1 only, and every loop is bounded in time or count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import torch

from jointcodec.api import Codec
from jointcodec.bitstream import pack, split
from jointcodec.data import load_split

HOST = "127.0.0.1"
OCTETS = {"content-type": "application/octet-stream"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(checkpoint: str, port: int, extra: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "jointcodec.cli.main", "serve", "--checkpoint", checkpoint, "--host", HOST,
               "--port", str(port), *extra]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}): {server.stdout.read()}")
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise SystemExit("the server did not answer /healthz within 180 s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)  # the one process this script started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def bodies_and_labels(checkpoint: str, images: int, per_request: int, data_dir: str | None):
    codec = Codec.load(checkpoint)
    data = load_split("cifar10", "test", data_dir).subset(slice(0, images))
    container = codec.encode_symbols(codec.symbols(data.images)).container
    labels = codec.logits_of_symbols(codec.symbols(data.images)).argmax(1).tolist()
    bodies = [(pack(split(container, range(i, min(i + per_request, len(data))))),
               labels[i:i + per_request]) for i in range(0, len(data), per_request)]
    return codec, container, bodies


# --- load ---------------------------------------------------------------------------------------------
async def load_phase(url: str, bodies: list, clients: int, duration: float, timeout: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    images = 0
    deadline = time.perf_counter() + duration

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def client(index: int, http: httpx.AsyncClient) -> None:
        nonlocal images
        i = index
        while time.perf_counter() < deadline:
            body, expected = bodies[i % len(bodies)]
            i += clients
            started = time.perf_counter()
            try:
                response = await http.post("/v1/classify", content=body, headers=OCTETS)
            except httpx.HTTPError as err:
                error(type(err).__name__)
                continue
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                error(f"http_{response.status_code}")
            elif [p["label"] for p in response.json()["predictions"]] != expected:
                error("wrong_label")
            else:
                images += len(expected)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {"clients": clients, "duration_s": elapsed, "requests": len(latencies), "images": images,
            "requests_per_s": len(latencies) / elapsed, "images_per_s": images / elapsed,
            "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                           "p99": float(np.percentile(lat, 99)), "max": float(lat.max())},
            "errors": sum(errors.values()), "error_kinds": errors}


# --- fuzz ---------------------------------------------------------------------------------------------
def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def malformed_bodies(count: int, valid: list[bytes], fingerprint: bytes, max_body: int, seed: int):
    """(kind, body, content type) for ``count`` malformed requests, reproducible from ``seed``."""
    rng = random.Random(seed)
    kinds = ["truncated", "bit_flipped", "random_bytes", "oversized", "wrong_model", "bad_header", "empty",
             "wrong_content_type"]
    for _ in range(count):
        kind = rng.choice(kinds)
        body = rng.choice(valid)
        content_type = "application/octet-stream"
        if kind == "truncated":
            body = body[:rng.randrange(len(body))]
            if not body:
                kind = "empty"
        elif kind == "bit_flipped":
            flipped = bytearray(body)
            for _ in range(rng.randint(1, 8)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            body = bytes(flipped)
        elif kind == "random_bytes":
            body = rng.randbytes(rng.randint(1, 4096))
            if rng.random() < 0.5:
                body = b"JCC\x01" + body
        elif kind == "oversized":
            body = body + rng.randbytes(max_body + rng.randint(1, max_body))
        elif kind == "wrong_model":  # a well-formed file whose fingerprint is another model's
            other = bytes(rng.getrandbits(8) for _ in range(8))
            body = _with_crc(body[:4] + (other if other != fingerprint else bytes(8)) + body[12:-4])
        elif kind == "bad_header":  # valid CRC, impossible values for this model
            levels, shape, images = rng.choice([(3, (16, 8, 8), 1), (2, (8, 8, 8), 1), (2, (16, 9, 8), 1),
                                                (2, (16, 8, 8), 0), (1, (16, 8, 8), 1), (2, (16, 200, 200), 1)])
            payloads = [rng.randbytes(rng.randint(0, 40)) for _ in range(images)]
            body = _with_crc(b"JCC\x01" + fingerprint + b"".join(_varint(v) for v in (levels, *shape, images))
                             + b"".join(_varint(len(p)) for p in payloads) + b"".join(payloads))
        elif kind == "empty":
            body = b""
        elif kind == "wrong_content_type":
            content_type = rng.choice(["application/json", "text/plain", "multipart/form-data; boundary=x",
                                       "application/x-www-form-urlencoded", "image/png"])
        yield kind, body, content_type


async def fuzz_phase(url: str, cases, concurrency: int, timeout: float) -> dict:
    results: dict[str, dict[str, int]] = {}
    failures: list[dict] = []
    queue = list(cases)
    position = 0

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal position
        while position < len(queue):
            kind, body, content_type = queue[position]
            position += 1
            try:
                response = await http.post("/v1/classify", content=body, headers={"content-type": content_type})
                status = response.status_code
                ok = 400 <= status < 500 and isinstance(response.json().get("error"), str)
            except (httpx.HTTPError, ValueError) as err:
                status, ok = type(err).__name__, False
            counts = results.setdefault(kind, {})
            counts[str(status)] = counts.get(str(status), 0) + 1
            if not ok and len(failures) < 20:
                failures.append({"kind": kind, "status": status, "bytes": len(body)})

    async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    bad = sum(n for counts in results.values() for status, n in counts.items()
              if not (status.isdigit() and 400 <= int(status) < 500))
    return {"bodies": len(queue), "duration_s": elapsed, "non_4xx": bad, "by_kind": results, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--images", type=int, default=1000, help="CIFAR-10 test images to send (cycled)")
    parser.add_argument("--per-request", type=int, default=1, help="images per request")
    parser.add_argument("--fuzz", type=int, default=10000, help="malformed bodies")
    parser.add_argument("--fuzz-concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-body-bytes", type=int, default=65536, help="the server's limit (oversized bodies "
                                                                          "are up to twice this)")
    parser.add_argument("--compare-batching", action="store_true", help="also load a server with --no-batching")
    parser.add_argument("--server-args", default="", help="extra `jointcodec serve` flags, e.g. '--workers 2'")
    parser.add_argument("--timeout", type=float, default=60.0, help="client timeout per request (s)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    codec, container, bodies = bodies_and_labels(args.checkpoint, args.images, args.per_request, args.data_dir)
    common = ["--max-body-bytes", str(args.max_body_bytes), *args.server_args.split()]
    report = {"command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]), "cpu_count": os.cpu_count(),
              "checkpoint": args.checkpoint, "per_request": args.per_request, "bodies": len(bodies)}
    variants = [("batching", [])] + ([("no_batching", ["--no-batching"])] if args.compare_batching else [])
    for name, extra in variants:
        port = free_port()
        server = start_server(args.checkpoint, port, [*common, *extra])
        url = f"http://{HOST}:{port}"
        try:
            load = asyncio.run(load_phase(url, bodies, args.clients, args.duration, args.timeout))
            load["server_health"] = httpx.get(f"{url}/healthz", timeout=10).json()
            report[f"load_{name}"] = load
            print(f"{name}: {load['requests']} requests in {load['duration_s']:.1f} s: {load['requests_per_s']:.1f} "
                  f"req/s, {load['images_per_s']:.1f} images/s, p50 {load['latency_ms']['p50']:.0f} ms, p99 "
                  f"{load['latency_ms']['p99']:.0f} ms, {load['errors']} errors {load['error_kinds']}", flush=True)
            if name == "batching" and args.fuzz:
                valid = [body for body, _ in bodies[:200]]
                cases = list(malformed_bodies(args.fuzz, valid, container.fingerprint, args.max_body_bytes, args.seed))
                fuzz = asyncio.run(fuzz_phase(url, cases, args.fuzz_concurrency, args.timeout))
                health = httpx.get(f"{url}/healthz", timeout=10)
                after = httpx.post(f"{url}/v1/classify", content=bodies[0][0], headers=OCTETS, timeout=30)
                fuzz.update(healthz_after=health.status_code, alive_after=server.poll() is None,
                            valid_request_after=after.status_code == 200
                            and [p["label"] for p in after.json()["predictions"]] == bodies[0][1])
                report["fuzz"] = fuzz
                print(f"fuzz: {fuzz['bodies']} malformed bodies in {fuzz['duration_s']:.1f} s, {fuzz['non_4xx']} not "
                      f"4xx+JSON; /healthz after: {fuzz['healthz_after']}, server alive: {fuzz['alive_after']}, "
                      f"valid request after: {fuzz['valid_request_after']}", flush=True)
            report[f"load_{name}"]["server_alive"] = server.poll() is None
        finally:
            stop_server(server)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    failed = any(report[k]["errors"] for k in report if k.startswith("load_")) or \
        (args.fuzz and (report["fuzz"]["non_4xx"] or report["fuzz"]["healthz_after"] != 200))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
