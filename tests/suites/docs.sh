#!/usr/bin/env bash
# Compiles (with -Werror) and runs every ```c block in README.md and docs/*.md
# that is a whole program (has a main()), so examples in the docs cannot rot.
# Fragments (no main) are listed as skipped.
set -u
BUILD=${BUILD:-build}
CC=${CC:-cc}
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
san=
[ "${SAN:-}" = 1 ] && san="-fsanitize=address,undefined -fno-sanitize-recover=all"
for md in README.md docs/*.md; do
    [ -f "$md" ] || continue
    awk -v out="$tmp/$(basename "$md" .md)" '
        /^```c$/ { n++; f = out "-" n ".c"; inblk = 1; next }
        /^```/   { inblk = 0; next }
        inblk    { print > f }' "$md"
done
for src in "$tmp"/*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    if ! grep -q 'main(' "$src"; then
        # a fragment (statements with names from the surrounding text): only
        # whole programs are compiled and run
        echo "skip $name (fragment)"
        continue
    fi
    if $CC -std=c11 -Wall -Wextra -Werror -Iinclude -D_DEFAULT_SOURCE $san -o "$tmp/$name" \
            "$src" "$BUILD/lib/libsluice.a" 2>"$tmp/$name.log" && "$tmp/$name" >"$tmp/$name.out"; then
        echo "ok   $name ($(head -c 60 "$tmp/$name.out" | tr '\n' ' '))"; pass=$((pass + 1))
    else
        cat "$tmp/$name.log"; echo "FAIL $name"; fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
