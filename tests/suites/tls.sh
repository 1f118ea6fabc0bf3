#!/usr/bin/env bash
# examples/tls-digest.c over examples/tls/tls_io.c, the OpenSSL transport
# (tests/hosts/run.py tls). Skipped, and counted neither passed nor failed,
# where OpenSSL (libssl-dev, and the openssl tool for the test certificate)
# is not installed. Env: BUILD, SAN, MAKE, CC as tests/run.sh sets them.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
# libssl-dev may have been installed by tests/run.sh after `make all` ran
if [ ! -x "$BUILD/bin/tls-digest" ] && pkg-config --exists openssl 2>/dev/null; then
    ${MAKE:-make} -s SAN="${SAN:-}" BUILD="$BUILD" CC="${CC:-cc}" "$BUILD/bin/tls-digest" >/dev/null
fi
if [ ! -x "$BUILD/bin/tls-digest" ] || ! command -v openssl >/dev/null 2>&1; then
    echo "skipped: OpenSSL not installed (apt-get install libssl-dev openssl)"
    echo "0 passed, 0 failed"
    exit 0
fi
exec python3 tests/hosts/run.py tls "$@"
