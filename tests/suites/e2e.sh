#!/usr/bin/env bash
# End-to-end acceptance suite for sluice-proxy and sluice-sink (tests/e2e/).
# Env: BUILD (build dir, default build), SAN=1 for sanitizer builds.
# Prints one line per case and ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export BUILD SAN=${SAN:-}
if [ ! -x "$BUILD/bin/sluice-proxy" ] || [ ! -x "$BUILD/bin/sluice-sink" ]; then
    echo "e2e: binaries not built, skipped"
    echo "0 passed, 0 failed"
    exit 0
fi
for tool in python3 curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAIL e2e: $tool is not installed"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
exec python3 tests/e2e/run.py "$@"
