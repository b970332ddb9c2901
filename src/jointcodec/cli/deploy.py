"""``jointcodec export`` (``--onnx``: the torch-free edge side; ``--split``: edge and server weight files),
its old name ``export-edge``, and ``jointcodec serve`` (the receiver service)."""

from __future__ import annotations

import sys

from jointcodec.cli.options import add_data_options
from jointcodec.errors import ConfigError

MAX_PORT = 65535  # the largest TCP port


def add_export(sub) -> None:
    p = sub.add_parser("export")
    p.add_argument("--checkpoint", default="default",
                   help="run directory, .safetensors file (full, or the edge part for --onnx), or shipped model name")
    form = p.add_mutually_exclusive_group(required=True)
    form.add_argument("--onnx", metavar="DIR",
                      help="folder for encoder.onnx, context.onnx, context_int.npz and edge.json (for the edge client)")
    form.add_argument("--split", metavar="DIR",
                      help="folder for edge.safetensors, server.safetensors and deployment.json")
    p.add_argument("--int8", action="store_true",
                   help="with --onnx: also write encoder_int8.onnx, the encoder quantized to int8 (calibrated on "
                        "training images of the model's data set)")
    p.add_argument("--calibration-images", type=int, default=None,
                   help="training images for the int8 calibration (default: 256)")
    add_data_options(p, download=False)
    p.set_defaults(run=run_export)


def add_export_edge(sub) -> None:
    p = sub.add_parser("export-edge")
    p.add_argument("--checkpoint", default="default", help="run directory, .safetensors file, or shipped model")
    p.add_argument("--out", required=True, help="folder for edge.safetensors, server.safetensors, deployment.json")
    p.set_defaults(run=run_export_edge)


def run_export(args) -> int:
    if args.split:
        if args.int8 or args.calibration_images is not None:
            raise ConfigError("--int8 and --calibration-images are for --onnx exports, not --split")
        return _export_split(args.checkpoint, args.split)
    if args.calibration_images is not None and not args.int8:
        raise ConfigError("--calibration-images sets the int8 calibration: give it with --int8")
    try:
        from jointcodec.edge.onnx_export import CALIBRATION_IMAGES, export_onnx, manifest_summary
    except ImportError as err:
        raise ConfigError(f"export --onnx needs onnx, onnxscript and onnxruntime "
                          f"(pip install 'jointcodec[onnx]'): {err}") from err
    manifest = export_onnx(args.checkpoint, args.onnx, int8=args.int8, data_dir=args.data_dir,
                           calibration_images=CALIBRATION_IMAGES if args.calibration_images is None
                           else args.calibration_images)
    print(f"wrote {args.onnx}: {manifest_summary(manifest)}")
    return 0


def run_export_edge(args) -> int:
    print(f"jointcodec: export-edge is now `jointcodec export --checkpoint {args.checkpoint} --split {args.out}`",
          file=sys.stderr)
    return _export_split(args.checkpoint, args.out)


def _export_split(checkpoint: str, out: str) -> int:
    from jointcodec.edge.split import export_split, split_summary

    print(split_summary(out, export_split(checkpoint, out)))
    return 0


def add_serve(sub) -> None:
    from jointcodec.serve.settings import ServeSettings

    d = ServeSettings()
    p = sub.add_parser("serve")
    p.add_argument("--checkpoint", default="default",
                   help="run directory, .safetensors file (full or server part), or shipped model name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=d.workers, help="decode + classify threads")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="larger request bodies get 413")
    p.add_argument("--max-images", type=int, default=d.max_images, help="images per request; more get 413")
    p.add_argument("--timeout", type=float, default=d.timeout_s, dest="timeout_s",
                   help="seconds per request, queueing included (504 after that)")
    p.add_argument("--max-pending", type=int, default=d.max_pending,
                   help="requests queued or running at once; more get 503")
    p.add_argument("--no-batching", dest="batching", action="store_false",
                   help="decode each request on its own (no micro-batching across requests)")
    p.add_argument("--max-batch-images", type=int, default=d.max_batch_images)
    p.add_argument("--batch-wait-ms", type=float, default=d.batch_wait_ms,
                   help="how long a ready batch waits for more requests")
    p.add_argument("--torch-threads", type=int, default=d.torch_threads)
    p.add_argument("--blas-threads", type=int, default=d.blas_threads, help="0 leaves numpy's BLAS threads alone")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(run=run_serve)


def run_serve(args) -> int:
    from dataclasses import fields

    from jointcodec.serve.settings import ServeSettings

    try:
        import uvicorn

        from jointcodec.serve.app import create_app
    except ImportError as err:
        raise ConfigError(f"serve needs fastapi and uvicorn (pip install 'jointcodec[serve]'): {err}") from err
    if not 0 <= args.port <= MAX_PORT:  # before the model loads: uvicorn would fail only when it binds
        raise ConfigError(f"--port must be in [0, {MAX_PORT}], got {args.port}")
    settings = ServeSettings(**{f.name: getattr(args, f.name) for f in fields(ServeSettings)})
    app = create_app(args.checkpoint, settings)
    print(f"jointcodec serve: model {app.state.codec.fingerprint.hex()} on http://{args.host}:{args.port} "
          f"({settings.workers} workers, batching {'on' if settings.batching else 'off'})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.log_level == "debug")
    return 0
