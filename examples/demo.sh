#!/usr/bin/env bash
# make demo: the job sluice exists for. Starts sluice-sink and sluice-proxy on
# free loopback ports, uploads a 256 MiB file as a multipart form through the
# proxy in --extract mode (the file part streams upstream as a chunked PUT),
# then the same through --mode buffer, and prints bytes, MiB/s, the proxy's
# peak RSS and whether the SHA-256 at the sink equals the file's.
# BUILD names the build directory (default build); DEMO_MIB the file size.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MIB=${DEMO_MIB:-256}
BIN=$BUILD/bin

if ! command -v curl >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "demo: installing curl"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >/dev/null 2>&1; }
    fi
    command -v curl >/dev/null 2>&1 || { echo "demo: curl is needed"; exit 1; }
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background, waits for "listening on",
# sets PORT and PID
start() {
    local name=$1; shift
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/$name.out")
        [ -n "$PORT" ] && return 0
        sleep 0.05
    done
    echo "demo: $name did not start"; cat "$tmp/$name.log"; exit 1
}

start sink "$BIN/sluice-sink" --listen 127.0.0.1:0
sink=$PORT
start stream "$BIN/sluice-proxy" --listen 127.0.0.1:0 --upstream 127.0.0.1:$sink \
    --extract file --digest
stream_port=$PORT stream_pid=$PID
start buffer "$BIN/sluice-proxy" --listen 127.0.0.1:0 --upstream 127.0.0.1:$sink \
    --extract file --mode buffer
buffer_port=$PORT buffer_pid=$PID

echo "== generating a $MIB MiB file"
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$tmp/upload.bin"
want=$(sha256sum "$tmp/upload.bin" | cut -d' ' -f1)

ok=1
run() {
    local mode=$1 port=$2 pid=$3
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
    local out
    out=$(curl -s -S -H 'Expect:' -F "note=sluice demo" -F "file=@$tmp/upload.bin" \
        -w '\n%{time_total}' "http://127.0.0.1:$port/demo/upload.bin")
    local json secs rss bytes sha match
    json=$(head -n 1 <<<"$out")
    secs=$(tail -n 1 <<<"$out")
    rss=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
    bytes=$(sed -n 's/.*"bytes":\([0-9]*\).*/\1/p' <<<"$json")
    sha=$(sed -n 's/.*"sha256":"\([0-9a-f]*\)".*/\1/p' <<<"$json")
    match=no
    [ "$sha" = "$want" ] && [ "$bytes" = "$((MIB * 1024 * 1024))" ] && match=yes
    [ "$match" = yes ] || ok=0
    printf '%-28s %12s %10.0f %12s %12s\n' "$mode" "${bytes:-?}" \
        "$(awk -v b="${bytes:-0}" -v s="$secs" 'BEGIN { print (s > 0 ? b / 1048576 / s : 0) }')" \
        "$rss" "$match"
}

echo "== uploading it as multipart/form-data through sluice-proxy --extract file"
printf '%-28s %12s %10s %12s %12s\n' mode bytes MiB/s "peak RSS MiB" "sha256 ok"
run "stream (--extract file)" "$stream_port" "$stream_pid"
run "buffer (--mode buffer)" "$buffer_port" "$buffer_pid"
echo
echo "The sink received only the file part, as a chunked PUT; its SHA-256 is the"
echo "file's. Streaming keeps the proxy's memory flat whatever the upload size;"
echo "buffering holds the whole body."
echo "proxy log (stream): $(cat "$tmp/stream.log")"
[ "$ok" = 1 ] && echo "demo: ok" || { echo "demo: FAILED"; exit 1; }
