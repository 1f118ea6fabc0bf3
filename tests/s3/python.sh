# Sourced by tests/suites/s3.sh and s3proxy.sh: sets $py to a python3 that
# has moto and boto3, or reports the suite ($1) failed and exits: the S3
# suites never skip (.ci/run installs the packages; elsewhere:
# pip install 'moto[server]' boto3).
py=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import moto, boto3' >/dev/null 2>&1; then
        py=$p
        break
    fi
done
if [ -z "$py" ]; then
    echo "FAIL $1: no python3 with moto and boto3: pip install 'moto[server]' boto3"
    echo "0 passed, 1 failed"
    exit 1
fi
