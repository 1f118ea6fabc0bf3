#!/usr/bin/env bash
# End-to-end benchmark, run by `make bench` after the micro-benchmarks.
# Builds the reference sink and relay, makes sure curl and nginx are present
# (installing them from the Debian archive when running as root; without
# nginx its rows are skipped with a message), then runs tests/bench/e2e.py
# (uploads), tests/bench/rate.py (small requests and downloads, with wrk;
# skipped with a message without nginx or wrk), tests/bench/instructions.py
# (user-space instructions per small request, under valgrind's callgrind;
# skipped without valgrind), tests/bench/conns.py (idle
# keep-alive connections), tests/bench/s3.py (uploads through
# sluice-proxy --s3 into moto) and tests/bench/overload.py (512 concurrent
# chunked uploads, uncapped vs --max-memory 4 MiB). Arguments go to e2e.py: BENCH_ARGS="--quick",
# "--sizes 64M --reps 5", "--only direct,sluice-stream", "--help"; rate.py
# and overload.py get --quick when they hold it.
# BUILD (default build) and CC (default cc) come from the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
CC=${CC:-cc}
mkdir -p "$BUILD/bench"

for prog in sink relay conns; do
    src=tests/bench/$prog.c
    bin=$BUILD/bench/$prog
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
        $CC -std=c11 -O2 -Wall -Wextra -Werror -o "$bin" "$src"
    fi
done

# Installs a Debian package when its program is missing and we may. A
# policy-rc.d that forbids service starts (Debian container images ship one;
# otherwise one is put in place for the install) keeps the package from
# starting its own daemon: the only servers running are those e2e.py starts.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
install_pkg() {
    local prog=$1 pkg=$2 hook=/usr/sbin/policy-rc.d made_hook=
    have "$prog" && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "e2e: $prog not installed and cannot install it (needs root and apt-get)"
        return 1
    fi
    echo "e2e: installing $pkg from the Debian archive"
    if [ ! -e $hook ]; then
        printf '#!/bin/sh\nexit 101\n' >$hook && chmod 755 $hook && made_hook=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get install -y -q "$pkg" >/dev/null ||
        { timeout 300 apt-get update -q >/dev/null && timeout 300 apt-get install -y -q "$pkg" >/dev/null; } ||
        rc=$?
    [ -n "$made_hook" ] && rm -f $hook
    [ $rc -eq 0 ] || echo "e2e: installing $pkg failed"
    have "$prog"
}

case " $* " in
*" --help "* | *" -h "*) exec python3 tests/bench/e2e.py --help ;;
esac
install_pkg curl curl || { echo "e2e: curl is required"; exit 1; }
install_pkg nginx nginx || echo "e2e: nginx rows skipped"
install_pkg wrk wrk || echo "e2e: wrk missing: small-request benchmark (rate.py) skipped"

micro=()
if [ -s "$BUILD/bench/micro.txt" ]; then
    micro=(--micro "$BUILD/bench/micro.txt")
fi
rc=0
python3 tests/bench/e2e.py --build "$BUILD" "${micro[@]}" "$@" || rc=$?
# small requests (wrk) and a download, sluice-proxy beside nginx
rate_args=()
case " $* " in *" --quick "*) rate_args=(--quick) ;; esac
python3 tests/bench/rate.py --build "$BUILD" "${rate_args[@]}" || rc=$?
# user-space instructions per small request (callgrind; skipped without valgrind)
python3 tests/bench/instructions.py --build "$BUILD" || rc=$?
python3 tests/bench/instructions.py --build "$BUILD" --post || rc=$?
# connection scale: idle keep-alive connections, CPU per request and RSS
python3 tests/bench/conns.py --build "$BUILD" || rc=$?
# sluice-proxy --s3 into moto: CPU s/GiB and peak RSS (skipped without moto)
python3 tests/bench/s3.py --build "$BUILD" || rc=$?
# overload: 512 concurrent 2 MiB chunked uploads, uncapped vs a 4 MiB cap
python3 tests/bench/overload.py --build "$BUILD" "${rate_args[@]}" || rc=$?
exit $rc
