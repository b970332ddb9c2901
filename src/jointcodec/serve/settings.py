"""The receiver service's settings (no web framework imported here: the CLI reads the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from jointcodec.errors import ConfigError


@dataclass
class ServeSettings:
    """Limits and worker settings of the service (``jointcodec serve --help`` lists them as flags)."""

    max_body_bytes: int = 1 << 20  # larger bodies: 413
    max_images: int = 1024  # images per request; more: 413
    timeout_s: float = 30.0  # per request, queueing included: 504 after that
    workers: int = 2  # decode + classify threads
    max_pending: int = 256  # requests queued or running; more: 503
    batching: bool = True  # decode concurrent requests together
    max_batch_images: int = 256
    batch_wait_ms: float = 2.0  # how long a ready batch waits for more requests
    torch_threads: int = 1  # per worker: parallelism comes from the workers
    blas_threads: int = 1  # numpy's BLAS (the integer context model); 0 leaves it alone

    def check(self) -> None:
        for name in ("max_body_bytes", "max_images", "workers", "max_pending", "max_batch_images", "torch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.timeout_s <= 0 or self.batch_wait_ms < 0 or self.blas_threads < 0:
            raise ConfigError("timeout_s must be positive, batch_wait_ms and blas_threads not negative")
