"""Small helpers: atomic file writes, progress bars, device and precision choice."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions of a new file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: object) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def image_bar(total: int, desc: str, show: bool | None = None):
    """A tqdm bar counting images, on stderr. ``show``: True always, False never, None only on a terminal (so
    a pipe or a log file gets the command's result lines alone)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=None if show is None else not show, leave=False)


@contextmanager
def claimed(result: str | Path, lock_dir: str | Path) -> Iterator[bool]:
    """Claim the result file ``result`` for this process while the block runs. Yields False when the file exists
    or another process holds the claim (it is producing that result), else True. Processes started in parallel
    over one list of results thus split it instead of computing (and timing) each result twice. The lock file
    goes under ``lock_dir``, away from results that are committed."""
    from filelock import FileLock, Timeout  # here: the torch-free edge client imports this module

    result = Path(result)
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    lock = FileLock(Path(lock_dir) / f"{result.parent.name}-{result.stem}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield not result.is_file()  # checked under the claim: another process may have just finished it
    finally:
        lock.release()


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform says: what a timing is measured on."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix units (AMX or AVX-512 BF16).

    Without them (e.g. AVX2-only CPUs) bf16 autocast is emulated and many times slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(device: str) -> str:
    import torch  # here, not at the top: the torch-free edge client uses this module's atomic_write

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_precision(precision: str, device: str) -> str:
    """Lightning precision string: bf16 autocast where the hardware runs it fast, else fp32."""
    import torch

    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32-true"
