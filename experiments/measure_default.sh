#!/usr/bin/env bash
# Every figure of docs/results.md, "`default` in detail", for the shipped default, in one run. Rerun it whenever
# the default changes. Run it from the repository root, with the package installed editable (the decoder it trains
# is copied beside the shipped weights), the extras `codecs`, `onnx` and `serve`, and JOINTCODEC_DATA set.
# Only the timings want the CPU to itself: the [coded], [bench] and [load] steps, which run first.
#
#   bash experiments/measure_default.sh [STEP ...]     # steps: coded bench load bitexact decoder edge (default: all)
set -euo pipefail

RESULTS=docs/results
EDGE_EXPORT=${EDGE_EXPORT:-/tmp/jointcodec-edge}
DECODER_RUN=${DECODER_RUN:-runs/decoder-default}
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(coded bench load bitexact decoder edge)  # the timed steps first, on a quiet CPU

step() { echo "== $1: $(date -u +%H:%M:%S)" >&2; }
exported=0
export_edge() {  # once per run, so an export left by an earlier default is never measured
  [ $exported -eq 1 ] || jointcodec export --checkpoint default --onnx "$EDGE_EXPORT" --int8
  exported=1
}

for name in "${STEPS[@]}"; do
  case $name in
    coded)  # accuracy and rates in memory and through real .jcc files, coding speed
      step coded
      jointcodec evaluate --checkpoint default --dataset cifar10 --coded --no-progress \
        --json $RESULTS/cifar10/default-coded.json ;;
    bitexact)  # batch sizes, one-by-one decoding, thread counts; the report is the script's stdout
      step bitexact
      python tools/bitexact_check.py --checkpoint default --images 10000 --one-by-one 10000 \
        > $RESULTS/cifar10/default-bitexact.json.tmp
      mv $RESULTS/cifar10/default-bitexact.json.tmp $RESULTS/cifar10/default-bitexact.json ;;
    decoder)  # train the image decoder on the frozen model, ship it beside the weights, then its PSNR and grid
      step decoder
      jointcodec train-decoder --checkpoint default --out "$DECODER_RUN" --epochs 3 --no-progress
      weights=$(python -c "from jointcodec.zoo import weights_path; print(weights_path('default').parent)")
      cp "$DECODER_RUN/decoder.safetensors" "$weights/decoder.safetensors"
      cp "$DECODER_RUN/decoder_eval_test.json" $RESULTS/cifar10/decoder-default-test.json
      python experiments/reconstruction_grid.py --checkpoint default --limit 2000 --full-test \
        --json $RESULTS/cifar10/reconstruction-default.json --grid docs/reconstructions_default.png ;;
    bench)  # edge size, speed and energy against the alternatives; the edge client's speed bound
      step bench
      export_edge
      jointcodec bench --checkpoint default --onnx "$EDGE_EXPORT" --json $RESULTS/bench_default.json \
        --markdown $RESULTS/bench_default.md
      OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python experiments/edge_speed_bound.py --export-dir "$EDGE_EXPORT" \
        --json $RESULTS/deployment/edge_speed_bound.json ;;
    edge)  # the ONNX edge client (fp32 and int8) -> the service, against the in-process labels
      step edge
      export_edge
      python experiments/edge_accuracy.py --checkpoint default --images 10000 --per-file 100 \
        --export-dir "$EDGE_EXPORT" --int8 --json $RESULTS/deployment/edge_accuracy.json ;;
    load)  # the service under 16 clients, with and without micro-batching, then 10,000 malformed bodies
      step load
      python experiments/load_test.py --checkpoint default --clients 16 --duration 60 --fuzz 10000 \
        --compare-batching --json $RESULTS/deployment/load.json ;;
    *)
      echo "error: unknown step '$name' (steps: coded bench load bitexact decoder edge)" >&2
      exit 2 ;;
  esac
done
step done
