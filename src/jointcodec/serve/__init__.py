"""The server side: read ``.jcc`` bitstreams and classify them.

* ``codec``: ``Codec``, the model that decodes and classifies (it also compresses, for torch users);
* ``app`` and ``worker``: the receiver service (``jointcodec serve``), classification over HTTP (FastAPI +
  uvicorn) with micro-batching across requests;
* ``settings``: the service's limits and thread counts.
"""

from __future__ import annotations

_LAZY = {"Codec": "jointcodec.serve.codec", "create_app": "jointcodec.serve.app",
         "ServeSettings": "jointcodec.serve.settings"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:  # lazily: the CLI reads the settings without importing FastAPI
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jointcodec.serve' has no attribute {name!r}")
