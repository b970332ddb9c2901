"""The receiver service (``jointcodec serve``): classify ``.jcc`` bitstreams over HTTP (FastAPI + uvicorn)."""

from __future__ import annotations

_LAZY = {"create_app": "jointcodec.serve.app", "ServeSettings": "jointcodec.serve.settings"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:  # lazily: the CLI reads the settings without importing FastAPI
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jointcodec.serve' has no attribute {name!r}")
