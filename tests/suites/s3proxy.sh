#!/usr/bin/env bash
# sluice-proxy in S3 mode against moto (tests/s3/proxy_suite.py): uploads
# through the proxy checked with boto3, every request the proxy sent checked
# from a recording proxy (SigV4 recomputed with botocore, aws-chunked framing
# and checksums rebuilt from the AWS spec), failures leave nothing, memory.
# Needs python3 with moto[server] and boto3; fails (never skips) without them.
# Env: BUILD (build dir, default build), SAN=1 (no memory ceilings).
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export BUILD SAN=${SAN:-}
. tests/s3/python.sh s3proxy
if [ ! -x "$BUILD/bin/sluice-proxy" ]; then
    echo "FAIL s3proxy: $BUILD/bin/sluice-proxy is not built (make)"
    echo "0 passed, 1 failed"
    exit 1
fi
exec "$py" tests/s3/proxy_suite.py "$@"
