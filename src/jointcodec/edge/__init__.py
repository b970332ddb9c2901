"""The edge side: what runs on the device, and the exports that make its files.

    from jointcodec.edge import EdgeEncoder
    edge = EdgeEncoder("deploy/onnx")                 # written by `jointcodec export --onnx deploy/onnx`
    data = edge.compress(images)                      # uint8 (N, 3, S, S) -> bytes of one .jcc file

    python -m jointcodec.edge deploy/onnx photo.png batch.npy test.npz[:100] -o out.jcc

* ``client``: ``EdgeEncoder``, the torch-free client (numpy, onnxruntime and constriction only);
* ``onnx_export``: ``jointcodec export --onnx DIR``, the files the client reads (needs torch and onnx);
* ``split``: ``jointcodec export --split DIR``, the edge and server weight files of a checkpoint (needs torch).

Importing this package imports no torch: a device has none. The two exports are imported on first use.
"""

from __future__ import annotations

from jointcodec.edge.client import (
    CONTEXT_FILE,
    EDGE_FORMAT,
    ENCODER_FILE,
    INTEGER_FILE,
    MANIFEST,
    EdgeEncoder,
    main,
    read_inputs,
)

_LAZY = {
    "export_onnx": "jointcodec.edge.onnx_export",
    "manifest_summary": "jointcodec.edge.onnx_export",
    "export_split": "jointcodec.edge.split",
}

__all__ = ["CONTEXT_FILE", "EDGE_FORMAT", "ENCODER_FILE", "INTEGER_FILE", "MANIFEST", "EdgeEncoder", "main",
           "read_inputs", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:  # these need torch; the client does not
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jointcodec.edge' has no attribute {name!r}")
