#!/usr/bin/env bash
# examples/uv-relay.c, the libuv host (tests/hosts/run.py uv). Skipped, and
# counted neither passed nor failed, where libuv is not installed.
# Env: BUILD, SAN, MAKE, CC as tests/run.sh sets them.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
# libuv may have been installed by tests/run.sh after `make all` ran
if [ ! -x "$BUILD/bin/uv-relay" ] && pkg-config --exists libuv 2>/dev/null; then
    ${MAKE:-make} -s SAN="${SAN:-}" BUILD="$BUILD" CC="${CC:-cc}" "$BUILD/bin/uv-relay" >/dev/null
fi
if [ ! -x "$BUILD/bin/uv-relay" ]; then
    echo "skipped: libuv not installed (apt-get install libuv1-dev)"
    echo "0 passed, 0 failed"
    exit 0
fi
exec python3 tests/hosts/run.py uv "$@"
