#!/usr/bin/env bash
# make demo: stream a generated body through a SHA-256 tap and a pump into a
# counting sink, then check the digest against sha256sum of the same bytes
# (written out by --emit), and that memory stays flat as the body grows.
# BUILD names the build directory (default: build); DEMO_MIB the body size.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MIB=${DEMO_MIB:-256}
BIN=$BUILD/bin/sluice-digest-demo

peak() { sed -n 's/^pool: *peak live blocks \([0-9]*\) .*/\1/p'; }

echo "== $MIB MiB: generator -> tap(sha256) -> pump -> counting sink"
out=$("$BIN" --mib "$MIB")
echo "$out"
got=$(sed -n 's/^sha256: *//p' <<<"$out")

want=$("$BIN" --mib "$MIB" --emit | sha256sum | cut -d' ' -f1)
echo "== sha256sum of the same bytes (--emit): $want"
if [ -z "$got" ] || [ "$got" != "$want" ]; then
    echo "demo: FAILED: the digests differ"
    exit 1
fi

small=$("$BIN" --mib 1 | peak)
big=$(peak <<<"$out")
echo "== peak blocks live: $small for 1 MiB, $big for $MIB MiB"
if [ -z "$big" ] || [ "$small" != "$big" ]; then
    echo "demo: FAILED: memory grew with the body"
    exit 1
fi
echo "demo: ok"
