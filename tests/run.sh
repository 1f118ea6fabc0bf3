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
