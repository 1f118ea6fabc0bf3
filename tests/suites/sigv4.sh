#!/usr/bin/env bash
# SigV4 differential suite: sluice's signer against botocore's on random S3
# requests, and the aws-chunked framing against the AWS spec computed in
# Python (tests/sigv4/botocore_diff.py). Needs python3 with botocore; fails
# (never skips) without it. Env: BUILD (build dir, default build),
# SIGV4_CASES (random requests, default 600), SIGV4_SEED.
# Ends with "N passed, N failed", one case per request.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
driver=$BUILD/tests/sigv4-driver
# The first python3 on PATH that has botocore (pip's, or Debian's
# python3-botocore under /usr/bin/python3, which tests/run.sh installs).
py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import botocore' >/dev/null 2>&1; then
        py=$p
        break
    fi
done
if [ -z "$py" ]; then
    echo "FAIL sigv4: no python3 with botocore (pip install boto3, or apt-get install python3-botocore)"
    echo "0 passed, 1 failed"
    exit 1
fi
if [ ! -x "$driver" ]; then
    echo "FAIL sigv4: $driver is not built (make test builds it; or make $driver)"
    echo "0 passed, 1 failed"
    exit 1
fi
exec "$py" tests/sigv4/botocore_diff.py --driver "$driver" -n "${SIGV4_CASES:-600}" \
    ${SIGV4_SEED:+--seed "$SIGV4_SEED"}
