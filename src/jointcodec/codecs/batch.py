"""Many images through one codec at one setting: encode, cut the payload, decode, time each step.

Work is split into chunks over worker processes (spawned, so no parent state such as torch's thread
pools leaks into them); every image is encoded and decoded in one process, one image at a time, with
the codec libraries on one thread, so the per-image timings mean the same at any ``workers``. Each step
is timed twice: wall-clock, and the process's CPU time, which stays meaningful on a loaded machine
(a wall-clock time there includes the waits for a core).
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from jointcodec.codecs.base import CodecError, ImageCodec, Setting

CHUNK = 250


@dataclass
class Coded:
    """The outcome of coding N images: decoded images and per-image sizes (bytes) and times (seconds)."""

    codec: str
    setting: Setting
    decoded: np.ndarray  # (N, H, W, 3) uint8
    files: list[bytes]
    payload_bytes: np.ndarray  # (N,) int64
    encode_s: np.ndarray  # (N,) float64, wall-clock
    decode_s: np.ndarray  # (N,) float64, wall-clock
    inexact: int = 0  # files whose cut counted more than the payload (Layout.exact False)
    encode_cpu_s: np.ndarray | None = None  # (N,) float64, CPU time of the coding process
    decode_cpu_s: np.ndarray | None = None

    @property
    def file_bytes(self) -> np.ndarray:
        return np.array([len(f) for f in self.files], dtype=np.int64)

    @property
    def pixels(self) -> int:
        return int(self.decoded.shape[1] * self.decoded.shape[2])

    @property
    def payload_bpp(self) -> float:
        return float(8 * self.payload_bytes.mean() / self.pixels)

    @property
    def file_bpp(self) -> float:
        return float(8 * self.file_bytes.mean() / self.pixels)

    def psnr(self, originals: np.ndarray) -> float:
        """Mean over images of each image's PSNR (dB) against the originals."""
        diff = self.decoded.astype(np.float64) - originals.astype(np.float64)
        mse = np.maximum((diff**2).reshape(len(diff), -1).mean(1), 1e-10)
        return float(np.mean(10 * np.log10(255.0**2 / mse)))

    def summary(self) -> dict:
        return {"codec": self.codec, "setting": self.setting, "n_images": len(self.files),
                "payload_bpp": self.payload_bpp, "file_bpp": self.file_bpp,
                "payload_bytes_mean": float(self.payload_bytes.mean()),
                "overhead_bytes_mean": float(self.file_bytes.mean() - self.payload_bytes.mean()),
                "encode_ms_median": 1000 * float(np.median(self.encode_s)),
                "decode_ms_median": 1000 * float(np.median(self.decode_s)),
                "encode_ms_mean": 1000 * float(np.mean(self.encode_s)),
                "decode_ms_mean": 1000 * float(np.mean(self.decode_s)), "inexact_cuts": self.inexact,
                **({"encode_cpu_ms_median": 1000 * float(np.median(self.encode_cpu_s)),
                    "decode_cpu_ms_median": 1000 * float(np.median(self.decode_cpu_s))}
                   if self.encode_cpu_s is not None and self.decode_cpu_s is not None else {})}


@functools.cache
def _codec(name: str) -> ImageCodec:
    from jointcodec.codecs import get_codec

    return get_codec(name)


def code_chunk(name: str, setting: Setting, images: np.ndarray) -> dict:
    """Encode, cut and decode each image in turn (runs in a worker process)."""
    codec = _codec(name)
    files, payload, decoded, inexact = [], [], np.empty_like(images), 0
    times: dict[str, list[float]] = {"encode_s": [], "decode_s": [], "encode_cpu_s": [], "decode_cpu_s": []}
    for i, image in enumerate(images):
        wall, cpu = time.perf_counter(), time.process_time()
        data = codec.encode(image, setting)
        wall_encoded, cpu_encoded = time.perf_counter(), time.process_time()
        decoded[i] = _checked(codec, codec.decode(data), image.shape)
        times["decode_s"].append(time.perf_counter() - wall_encoded)
        times["decode_cpu_s"].append(time.process_time() - cpu_encoded)
        times["encode_s"].append(wall_encoded - wall)
        times["encode_cpu_s"].append(cpu_encoded - cpu)
        layout = codec.layout(data)
        files.append(data)
        payload.append(layout.payload_bytes)
        inexact += not layout.exact
    return {"decoded": decoded, "files": files, "payload": payload, "inexact": inexact, **times}


def _checked(codec: ImageCodec, image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if image.shape != shape:
        raise CodecError(f"{codec.name} decoded a {image.shape} image from a {shape} original")
    return image


def code_images(codec: ImageCodec | str, images: np.ndarray, setting: Setting, workers: int = 1,
                progress: bool = False, desc: str | None = None) -> Coded:
    """Code ``images`` (N, H, W, 3) uint8 at ``setting``; ``workers`` > 1 runs chunks in parallel processes."""
    name = codec if isinstance(codec, str) else codec.name
    setting = _codec(name).check_setting(setting)
    chunks = [images[i:i + CHUNK] for i in range(0, len(images), CHUNK)]
    bar = tqdm(total=len(images), desc=desc or f"{name} {setting}", unit="img", disable=not progress,
               leave=False)
    parts = []
    if workers <= 1 or len(chunks) == 1:
        for chunk in chunks:
            parts.append(code_chunk(name, setting, chunk))
            bar.update(len(chunk))
    else:
        import multiprocessing

        with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_one_thread) as pool:
            for chunk, part in zip(chunks, pool.map(code_chunk, [name] * len(chunks), [setting] * len(chunks),
                                                    chunks), strict=True):
                parts.append(part)
                bar.update(len(chunk))
    bar.close()
    return Coded(name, setting, np.concatenate([p["decoded"] for p in parts]),
                 [f for p in parts for f in p["files"]],
                 np.array([b for p in parts for b in p["payload"]], dtype=np.int64),
                 *(np.array([t for p in parts for t in p[key]]) for key in ("encode_s", "decode_s")),
                 sum(p["inexact"] for p in parts),
                 *(np.array([t for p in parts for t in p[key]]) for key in ("encode_cpu_s", "decode_cpu_s")))


def _one_thread() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
