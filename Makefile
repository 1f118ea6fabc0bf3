# sluice — build, test, install. See README.md.
#
#   make                 library (static + shared) and example binaries
#   make test            every test; ends with "N passed, N failed"
#   make SAN=1 test      the same under ASan + UBSan (build/san/)
#   make tsan            the unit tests under ThreadSanitizer (build/tsan/)
#   make install PREFIX=/usr/local DESTDIR=
#   make demo | bench | bench-micro | fuzz | clean

SHELL      := /bin/bash
# `make` alone builds `all`, whatever rule comes first (the optional hosts'
# rules below would otherwise be the default goal)
.DEFAULT_GOAL := all
VERSION    := 0.2.0
SOVERSION  := 1
PREFIX     ?= /usr/local
DESTDIR    ?=
CC         ?= cc

ifeq ($(SAN),1)
BUILD      ?= build/san
SANFLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT        ?= -O1 -g
else ifeq ($(TSAN),1)
BUILD      ?= build/tsan
SANFLAGS   := -fsanitize=thread -fno-omit-frame-pointer
OPT        ?= -O1 -g
else
BUILD      ?= build
SANFLAGS   :=
OPT        ?= -O2 -g
endif

WARN       := -Wall -Wextra -Werror -pedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CPPFLAGS   += -Iinclude -D_DEFAULT_SOURCE -MMD -MP
CFLAGS     += -std=c11 $(OPT) $(WARN) $(SANFLAGS)
LIBCFLAGS  := -fPIC -fvisibility=hidden -DSLUICE_BUILDING
LDFLAGS    += $(SANFLAGS) -pthread
LIBS_PRIVATE :=

LIB_SRC    := $(sort $(wildcard lib/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC   := $(sort $(wildcard tests/test_*.c)) tests/harness.c
TEST_OBJ   := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
# examples/*.c are programs; examples/common/*.c is what they share (the
# epoll host, sockets, HTTP replies), linked in from one archive.
# Hosts on other libraries are built only where the library is installed
# (pkg-config); `make` says in one line what it skipped.
OPTIONAL_EX := uv-relay tls-digest
EXAMPLES   := $(filter-out $(OPTIONAL_EX),$(patsubst examples/%.c,%,$(wildcard examples/*.c)))
SKIPPED    :=
ifeq ($(shell pkg-config --exists libuv 2>/dev/null && echo 1),1)
EXAMPLES   += uv-relay
$(BUILD)/obj/examples/uv-relay.o: CPPFLAGS += $(shell pkg-config --cflags libuv)
$(BUILD)/bin/uv-relay: EX_LIBS := $(shell pkg-config --libs libuv)
else
SKIPPED    += uv-relay (libuv not installed: apt-get install libuv1-dev)
endif
ifeq ($(shell pkg-config --exists openssl 2>/dev/null && echo 1),1)
EXAMPLES   += tls-digest
$(BUILD)/obj/examples/tls-digest.o $(BUILD)/obj/examples/tls/tls_io.o: \
    CPPFLAGS += $(shell pkg-config --cflags openssl)
$(BUILD)/bin/tls-digest: $(BUILD)/obj/examples/tls/tls_io.o
$(BUILD)/bin/tls-digest: EX_LIBS := $(BUILD)/obj/examples/tls/tls_io.o $(shell pkg-config --libs openssl)
else
SKIPPED    += tls-digest (OpenSSL not installed: apt-get install libssl-dev)
endif
ifneq ($(SKIPPED),)
ifeq ($(filter clean,$(MAKECMDGOALS)),)
$(info skipped: $(SKIPPED))
endif
endif
EX_BIN     := $(EXAMPLES:%=$(BUILD)/bin/%)
EX_INSTALL := $(filter $(BUILD)/bin/sluice-%,$(EX_BIN))
EX_COMMON_SRC := $(sort $(wildcard examples/common/*.c))
EX_COMMON_OBJ := $(EX_COMMON_SRC:%.c=$(BUILD)/obj/%.o)
EX_COMMON  := $(BUILD)/obj/examples/common/libcommon.a
HEADERS    := $(wildcard include/sluice/*.h)

STATIC     := $(BUILD)/lib/libsluice.a
SHARED     := $(BUILD)/lib/libsluice.so.$(VERSION)
UNIT       := $(BUILD)/tests/unit
# Test programs other than the unit tests: tests/<dir>/driver.c -> $(BUILD)/tests/<dir>-driver
DRIVERS    := $(patsubst tests/%/driver.c,$(BUILD)/tests/%-driver,$(wildcard tests/*/driver.c))

FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_CC    ?= clang
FUZZ_SECONDS ?= 60
BENCH_SRC  := $(sort $(wildcard tests/bench/bench_*.c))
BENCH_BIN  := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all test unit tsan install uninstall demo bench bench-micro fuzz fuzz-run clean
all: $(STATIC) $(SHARED) $(EX_BIN)

# sluice-proxy's S3 mode is a compilation unit of its own, linked before
# the archives it draws on (the S3 sink, the shared socket helpers)
PROXY_OBJ  := $(BUILD)/obj/examples/proxy/s3_mode.o
$(BUILD)/bin/sluice-proxy: $(PROXY_OBJ)
$(BUILD)/bin/sluice-proxy: EX_OBJS := $(PROXY_OBJ)

$(BUILD)/obj/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LIBCFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ) lib/sluice.map
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libsluice.so.$(SOVERSION) -Wl,--version-script=lib/sluice.map \
	    -Wl,-z,defs -o $@ $(LIB_OBJ) $(LDFLAGS) $(LIBS_PRIVATE)
	ln -sf libsluice.so.$(VERSION) $(BUILD)/lib/libsluice.so.$(SOVERSION)
	ln -sf libsluice.so.$(SOVERSION) $(BUILD)/lib/libsluice.so

$(EX_COMMON): $(EX_COMMON_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/examples/%.o $(EX_COMMON) $(STATIC)
	@mkdir -p $(@D)
	$(CC) -o $@ $< $(EX_OBJS) $(EX_COMMON) $(STATIC) $(EX_LIBS) $(LDFLAGS) $(LIBS_PRIVATE)

$(UNIT): $(TEST_OBJ) $(STATIC)
	@mkdir -p $(@D)
	$(CC) -o $@ $(TEST_OBJ) $(STATIC) $(LDFLAGS) $(LIBS_PRIVATE)

$(BUILD)/tests/%-driver: $(BUILD)/obj/tests/%/driver.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) -o $@ $< $(STATIC) $(LDFLAGS) $(LIBS_PRIVATE)

unit: $(UNIT)

# The unit tests (tests/test_threads.c among them) under ThreadSanitizer.
tsan:
	$(MAKE) TSAN=1 unit
	TSAN_OPTIONS="halt_on_error=1 $(TSAN_OPTIONS)" build/tsan/tests/unit

test: all $(UNIT) $(DRIVERS)
	@BUILD=$(BUILD) SAN=$(SAN) MAKE="$(MAKE)" CC="$(CC)" bash tests/run.sh

INSTALLED_HEADERS := $(HEADERS:include/%=$(DESTDIR)$(PREFIX)/include/%)

install: all
	install -d $(DESTDIR)$(PREFIX)/include/sluice $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/sluice.h $(DESTDIR)$(PREFIX)/include/sluice.h
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/sluice/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libsluice.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libsluice.so.$(SOVERSION)
	ln -sf libsluice.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libsluice.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' pkgconfig/sluice.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc
	$(if $(EX_INSTALL),install -m 755 $(EX_INSTALL) $(DESTDIR)$(PREFIX)/bin/)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/sluice.h $(INSTALLED_HEADERS)
	-rmdir $(DESTDIR)$(PREFIX)/include/sluice 2>/dev/null
	rm -f $(DESTDIR)$(PREFIX)/lib/libsluice.a $(DESTDIR)$(PREFIX)/lib/libsluice.so \
	    $(DESTDIR)$(PREFIX)/lib/libsluice.so.$(SOVERSION) \
	    $(DESTDIR)$(PREFIX)/lib/libsluice.so.$(VERSION) \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc
	rm -f $(EX_INSTALL:$(BUILD)/bin/%=$(DESTDIR)$(PREFIX)/bin/%)

# Fuzz targets: libFuzzer + ASan + UBSan, built with clang from the sources.
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(HEADERS) lib/internal.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -g -O1 -Iinclude -Ilib -D_DEFAULT_SOURCE $(WARN) \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o $@ $< $(LIB_SRC)

fuzz: $(FUZZ_BIN)

# Runs every fuzz target for FUZZ_SECONDS each; fails on the first crash.
fuzz-run: fuzz
	@set -e; for f in $(FUZZ_BIN); do \
	    n=$$(basename $$f); mkdir -p build/fuzz/corpus/$$n; \
	    seeds=; [ -d tests/fuzz/corpus/$$n ] && seeds=tests/fuzz/corpus/$$n; \
	    echo "== $$n for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=build/fuzz/ build/fuzz/corpus/$$n $$seeds 2>&1 | \
	        grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Done' ; \
	    test $${PIPESTATUS[0]} -eq 0; \
	done

$(BUILD)/bench/%: tests/bench/%.c tests/bench/bench.h $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Ilib $(CFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) $(LIBS_PRIVATE)

# Micro-benchmarks: each prints "bench: <name> <value> <unit>" lines, also
# kept in $(BUILD)/bench/micro.txt for the results of `make bench`.
bench-micro: $(BENCH_BIN)
	@set -eo pipefail; mkdir -p $(BUILD)/bench; \
	    for b in $(BENCH_BIN); do $$b; done | tee $(BUILD)/bench/micro.txt

# Everything: micro-benchmarks, then the end-to-end runs (tests/bench/e2e.sh:
# uploads, e2e.py; small requests and a download beside nginx, rate.py, with
# wrk; idle connections, conns.py; S3 mode, s3.py; overload, overload.py).
bench: all bench-micro
	@if [ -f tests/bench/e2e.sh ]; then BUILD=$(BUILD) bash tests/bench/e2e.sh $(BENCH_ARGS); fi

demo: all
	@BUILD=$(BUILD) bash examples/demo.sh

clean:
	rm -rf build

# objects of examples and tests are not intermediate: keep them between runs
.SECONDARY:

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(EXAMPLES:%=$(BUILD)/obj/examples/%.d) \
    $(patsubst tests/%.c,$(BUILD)/obj/tests/%.d,$(wildcard tests/*/driver.c)) \
    $(EX_COMMON_OBJ:.o=.d) $(BUILD)/obj/examples/tls/tls_io.d $(PROXY_OBJ:.o=.d)
