#!/usr/bin/env bash
# S3 upload sink against moto (tests/s3/moto_suite.py): uploads through
# build/tests/s3-driver, objects checked with boto3, every request the sink
# sent checked from a recording proxy (SigV4 recomputed with botocore,
# aws-chunked framing and checksums rebuilt from the AWS spec). Needs python3
# with moto[server] and boto3; fails (never skips) without them.
# Env: BUILD (build dir, default build). Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
driver=$BUILD/tests/s3-driver
. tests/s3/python.sh s3
if [ ! -x "$driver" ]; then
    echo "FAIL s3: $driver is not built (make test builds it; or make $driver)"
    echo "0 passed, 1 failed"
    exit 1
fi
exec "$py" tests/s3/moto_suite.py --driver "$driver"
