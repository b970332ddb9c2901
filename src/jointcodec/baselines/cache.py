"""Codec outputs cached on disk, keyed by codec, setting, library version and a hash of the images.

One ``.npz`` per (codec, setting, images) under the cache directory (default
``~/.cache/jointcodec/baselines``, or ``$JOINTCODEC_CACHE``) holds the decoded images, every encoded
file and the per-image encode/decode times. Payload sizes are not stored: they are cut again from the
stored files on load, so a change to a payload cut never needs the images re-encoded.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from jointcodec.codecs import ImageCodec, Setting
from jointcodec.codecs.batch import Coded, code_images
from jointcodec.utils import atomic_write

CACHE_ENV = "JOINTCODEC_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "jointcodec" / "baselines")


def images_hash(images: np.ndarray) -> str:
    digest = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()[:16]


def cache_path(cache_dir: str | Path, codec: ImageCodec, setting: Setting, data_hash: str) -> Path:
    library = hashlib.sha256(codec.library().encode()).hexdigest()[:8]
    return Path(cache_dir) / f"{codec.name}-{codec.format_setting(setting)}-{data_hash}-{library}.npz"


def save_coded(path: Path, coded: Coded, meta: dict) -> None:
    lengths = np.array([len(f) for f in coded.files], dtype=np.int64)
    arrays = {"decoded": coded.decoded, "files": np.frombuffer(b"".join(coded.files), dtype=np.uint8),
              "offsets": np.concatenate([[0], np.cumsum(lengths)]), "encode_s": coded.encode_s,
              "decode_s": coded.decode_s, "meta": np.array(json.dumps(meta))}
    if coded.encode_cpu_s is not None and coded.decode_cpu_s is not None:
        arrays.update(encode_cpu_s=coded.encode_cpu_s, decode_cpu_s=coded.decode_cpu_s)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write(path, write)


def load_coded(path: Path, codec: ImageCodec, setting: Setting) -> Coded:
    with np.load(path) as data:
        blob, offsets = data["files"].tobytes(), data["offsets"]
        files = [blob[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        layouts = [codec.layout(f) for f in files]
        return Coded(codec.name, setting, data["decoded"], files,
                     np.array([lay.payload_bytes for lay in layouts], dtype=np.int64),
                     data["encode_s"], data["decode_s"], sum(not lay.exact for lay in layouts),
                     *(data[k] if k in data.files else None for k in ("encode_cpu_s", "decode_cpu_s")))


def coded_cached(codec: ImageCodec, images: np.ndarray, setting: Setting, cache_dir: str | Path | None = None,
                 workers: int = 1, progress: bool = False, desc: str | None = None) -> tuple[Coded, Path, bool]:
    """Code ``images`` at ``setting``, or load the result from the cache; returns (coded, cache file, hit)."""
    setting = codec.check_setting(setting)
    data_hash = images_hash(images)
    path = cache_path(cache_dir or default_cache_dir(), codec, setting, data_hash)
    if path.is_file():
        try:
            coded = load_coded(path, codec, setting)
            if coded.decoded.shape == images.shape:
                return coded, path, True
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            print(f"jointcodec: warning: ignoring unreadable cache file {path}: {err}", file=sys.stderr)
    coded = code_images(codec, images, setting, workers, progress, desc)
    save_coded(path, coded, {"codec": codec.name, "setting": setting, "library": codec.library(),
                             "images_hash": data_hash, "n_images": len(images)})
    return coded, path, False


__all__ = ["CACHE_ENV", "coded_cached", "default_cache_dir", "images_hash"]
