#!/usr/bin/env bash
# Install test: `make install` into a temporary prefix, build an external
# program with pkg-config against the shared and the static library, run
# both, then `make uninstall` and check that nothing is left behind.
set -u
SOVERSION=$(sed -n "s/^SOVERSION *:= *//p" Makefile)
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
CC=${CC:-cc}
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

if [ "${SAN:-}" = 1 ]; then
    echo "install test skipped under SAN=1"
    echo "0 passed, 0 failed"
    exit 0
fi
if ! command -v pkg-config >/dev/null; then
    bad "pkg-config is not installed"
    echo "$pass passed, $fail failed"; exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
if $MAKE -s install PREFIX="$prefix" BUILD="$BUILD" >"$tmp/install.log" 2>&1; then
    ok "make install PREFIX=$prefix"
else
    cat "$tmp/install.log"; bad "make install"
fi

cat >"$tmp/hello.c" <<'C'
#include <sluice.h>
#include <stdio.h>
int main(void)
{
    sluice_pool *pool;
    if (sluice_pool_new(NULL, &pool) < 0)
        return 1;
    sluice_bytes b;
    if (sluice_bytes_copy_from(pool, "hi", 2, &b) < 0)
        return 1;
    sluice_bytes_release(&b);
    sluice_pool_close(pool);
    printf("%s\n", sluice_version());
    return 0;
}
C
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
want=$(sed -n 's/^VERSION *:= *//p' Makefile)

if [ "$(pkg-config --modversion sluice 2>/dev/null)" = "$want" ]; then
    ok "pkg-config --modversion sluice = $want"
else
    bad "pkg-config --modversion sluice"
fi

# shared
if $CC -std=c11 -Wall -Werror -o "$tmp/hello-shared" "$tmp/hello.c" \
        $(pkg-config --cflags --libs sluice) 2>"$tmp/cc.log" &&
   out=$(LD_LIBRARY_PATH=$prefix/lib "$tmp/hello-shared") && [ "$out" = "$want" ]; then
    ok "shared link prints $want"
else
    cat "$tmp/cc.log"; bad "shared link"
fi
if ldd "$tmp/hello-shared" 2>/dev/null | grep -q "libsluice.so.$SOVERSION =>"; then
    ok "shared binary depends on libsluice.so.$SOVERSION"
else
    bad "shared binary does not load libsluice.so.$SOVERSION"
fi

# static
if $CC -std=c11 -Wall -Werror -o "$tmp/hello-static" "$tmp/hello.c" \
        $(pkg-config --cflags sluice) -Wl,-Bstatic $(pkg-config --static --libs sluice) \
        -Wl,-Bdynamic 2>"$tmp/cc.log" &&
   out=$("$tmp/hello-static") && [ "$out" = "$want" ]; then
    ok "static link prints $want"
else
    cat "$tmp/cc.log"; bad "static link"
fi
if ! ldd "$tmp/hello-static" 2>/dev/null | grep -q libsluice; then
    ok "static binary has no libsluice dependency"
else
    bad "static binary still loads libsluice"
fi

# only the public sluice_* API is exported (no sluice__ internals), and it
# stays small
if exported=$(nm -D --defined-only "$prefix/lib/libsluice.so" | awk '{print $3}' |
              grep -v '^SLUICE_[0-9]*$') &&
   [ -n "$exported" ] && ! echo "$exported" | grep -qv '^sluice_[a-z0-9]' &&
   [ "$(echo "$exported" | wc -l)" -le 122 ]; then
    ok "only sluice_* symbols exported ($(echo "$exported" | wc -l), at most 122)"
else
    echo "$exported" | grep -v '^sluice_[a-z0-9]' | head; bad "exported symbols"
fi

if [ "$(readelf -d "$prefix/lib/libsluice.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')" = libsluice.so.$SOVERSION ]; then
    ok "soname libsluice.so.$SOVERSION"
else
    bad "soname"
fi

$MAKE -s uninstall PREFIX="$prefix" BUILD="$BUILD" >/dev/null 2>&1
left=$(find "$prefix" -type f -o -type l)
if [ -z "$left" ]; then
    ok "make uninstall removes every installed file"
else
    echo "$left"; bad "make uninstall left files"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
