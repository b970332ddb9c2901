"""``jointcodec bench``: size, speed, memory and energy of the edge side against the alternatives."""

from __future__ import annotations

from jointcodec.cli.options import add_data_options, add_progress_option


def add_bench(sub) -> None:
    from jointcodec.evaluation.bench import BenchConfig

    d = BenchConfig()
    p = sub.add_parser("bench")
    p.add_argument("--checkpoint", default=d.checkpoint, help="run directory, .safetensors file, or shipped model")
    p.add_argument("--preset", default=None, help="bench an untrained preset instead (e.g. imagenet-v4 at 224x224)")
    p.add_argument("--json", default=None, help="write the full results as JSON to this file")
    p.add_argument("--markdown", default=None, help="write the tables as Markdown to this file")
    p.add_argument("--threads", type=int, default=None, help="only this thread count (default: 1 and all cores)")
    p.add_argument("--repeats", type=int, default=d.repeats, help="timed batch runs per measurement (median)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="batch for the throughput measurement")
    p.add_argument("--budget-s", type=float, default=d.budget_s,
                   help="stop repeating a measurement after this many seconds (at least 3 samples)")
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    p.add_argument("--webp-quality", type=int, default=d.webp_quality)
    p.add_argument("--compressai-quality", type=int, default=d.compressai_quality)
    p.add_argument("--watts-per-core", type=float, default=d.watts_per_core,
                   help="stated power of a busy core for the CPU-time energy estimate (W)")
    p.add_argument("--pj-per-mac", type=float, default=d.pj_per_mac,
                   help="stated energy per multiply-accumulate for the MAC energy estimate (pJ)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory measurement")
    p.add_argument("--onnx", default=None, metavar="DIR",
                   help="the checkpoint's edge export (`jointcodec export --onnx DIR [--int8]`) whose torch-free "
                        "client is measured (default: export one for this run, with int8 where the training images "
                        "are at hand)")
    add_data_options(p, download=False)
    add_progress_option(p)
    p.set_defaults(run=run_bench_cli)


def run_bench_cli(args) -> int:
    from jointcodec.evaluation.bench import BenchConfig, format_markdown, run_bench, save_outputs

    fields = BenchConfig.__dataclass_fields__
    result = run_bench(BenchConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    print(format_markdown(result))
    save_outputs(result, args.json, args.markdown)
    for path in (args.json, args.markdown):
        if path:
            print(f"wrote {path}")
    return 0
