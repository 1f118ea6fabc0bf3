#!/usr/bin/env bash
# Runs every test suite and ends with one line "N passed, N failed".
# Each suite prints its own "N passed, N failed" as its last line; a suite
# that exits non-zero without such a line counts as one failure.
# Called by `make test` with BUILD, SAN, MAKE and CC set.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SAN=${SAN:-}
MAKE=${MAKE:-make}
export BUILD SAN MAKE CC

# Tools the suites need besides the compiler; on a fresh Debian machine they
# are installed here (as root), so `make test` alone is the whole set-up.
missing=()
for t in pkg-config:pkg-config curl:curl python3:python3; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
done
# the libuv and TLS hosts (tests/suites/uv.sh, tls.sh; skipped without them)
pkg-config --exists libuv 2>/dev/null || missing+=(libuv1-dev)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# the SigV4 suite compares with botocore's signer
python3 -c 'import botocore' >/dev/null 2>&1 || /usr/bin/python3 -c 'import botocore' >/dev/null 2>&1 ||
    missing+=(python3-botocore)
# the S3 suite runs moto's server and checks objects with boto3 (elsewhere:
# pip install 'moto[server]' boto3)
if ! python3 -c 'import moto, boto3' >/dev/null 2>&1 &&
   ! /usr/bin/python3 -c 'import moto, boto3' >/dev/null 2>&1 &&
   [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    # best effort, on its own: a missing package must not stop the others
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        python3-moto python3-boto3 python3-flask python3-flask-cors >/dev/null 2>&1 ||
        echo "could not install moto and boto3: the S3 suite will say so"
fi
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
          apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } ||
        echo "could not install ${missing[*]}: the suites that need them will fail"
fi

total_pass=0
total_fail=0

run_suite() {
    local name=$1; shift
    local log
    log=$(mktemp)
    echo "== $name"
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        local p f
        p=${line%% passed*}
        f=${line#*, }; f=${f%% failed*}
        total_pass=$((total_pass + p))
        total_fail=$((total_fail + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            total_fail=$((total_fail + 1))
        fi
    else
        echo "$name: exited $rc without a summary line"
        total_fail=$((total_fail + 1))
    fi
    rm -f "$log"
}

run_suite unit "$BUILD/tests/unit"
for t in tests/suites/*.sh; do
    [ -e "$t" ] || continue
    run_suite "$(basename "$t" .sh)" bash "$t"
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
