#!/usr/bin/env bash
# Install jointcodec with its test dependencies, make sure CIFAR-10 is at hand, lint, and run the tests.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -r requirements-ci.txt
python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
python -m pip install --quiet --disable-pip-version-check --no-deps -e .

# Real CIFAR-10 for the tests: $JOINTCODEC_DATA if it holds it, else unpack the shared copy beside the checkout.
if [ -z "${JOINTCODEC_DATA:-}" ] || [ ! -f "$JOINTCODEC_DATA/cifar10/test.npz" ]; then
    export JOINTCODEC_DATA="${HOME}/.cache/jointcodec/data"
    shared="$(pwd)/../shared/data/prepare.py"
    if [ -f "$shared" ]; then
        python "$shared" --out "$JOINTCODEC_DATA" --format npz --datasets cifar10
    elif [ ! -f "$JOINTCODEC_DATA/cifar10/test.npz" ]; then
        echo "note: no local CIFAR-10 copy; tests that need real data will be skipped" >&2
    fi
fi

ruff check src tests
# One pytest worker per core (pytest-xdist; at most 4): every test runs one torch thread, so the workers do not
# contend, and the suite takes about half as long on the 2-core CI machine. PYTEST_WORKERS=0 runs it serially.
workers="${PYTEST_WORKERS:-$(python -c 'import os; print(min(len(os.sched_getaffinity(0)), 4))')}"
python -m pytest -n "$workers" --dist worksteal "$@"
