# sluice — build, test, install. See README.md.
#
#   make                 library (static + shared) and example binaries
#   make test            every test; ends with "N passed, N failed"
#   make SAN=1 test      the same under ASan + UBSan (build/san/)
#   make install PREFIX=/usr/local DESTDIR=
#   make demo | bench | bench-micro | fuzz | clean

VERSION    := 0.1.0
SOVERSION  := 0
PREFIX     ?= /usr/local
DESTDIR    ?=
CC         ?= cc

ifeq ($(SAN),1)
BUILD      ?= build/san
SANFLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
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
LDFLAGS    += $(SANFLAGS)
LIBS_PRIVATE :=

LIB_SRC    := $(sort $(wildcard lib/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC   := $(sort $(wildcard tests/test_*.c)) tests/harness.c
TEST_OBJ   := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
EXAMPLES   := $(patsubst examples/%.c,%,$(wildcard examples/*.c))
EX_BIN     := $(EXAMPLES:%=$(BUILD)/bin/%)
HEADERS    := $(wildcard include/sluice/*.h)

STATIC     := $(BUILD)/lib/libsluice.a
SHARED     := $(BUILD)/lib/libsluice.so.$(VERSION)
UNIT       := $(BUILD)/tests/unit

.PHONY: all test unit install uninstall demo bench bench-micro fuzz clean
all: $(STATIC) $(SHARED) $(EX_BIN)

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

$(BUILD)/bin/%: $(BUILD)/obj/examples/%.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) -o $@ $< $(STATIC) $(LDFLAGS) $(LIBS_PRIVATE)

$(UNIT): $(TEST_OBJ) $(STATIC)
	@mkdir -p $(@D)
	$(CC) -o $@ $(TEST_OBJ) $(STATIC) $(LDFLAGS) $(LIBS_PRIVATE)

unit: $(UNIT)

test: all $(UNIT)
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
	$(if $(EX_BIN),install -m 755 $(EX_BIN) $(DESTDIR)$(PREFIX)/bin/)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/sluice.h $(INSTALLED_HEADERS)
	-rmdir $(DESTDIR)$(PREFIX)/include/sluice 2>/dev/null
	rm -f $(DESTDIR)$(PREFIX)/lib/libsluice.a $(DESTDIR)$(PREFIX)/lib/libsluice.so \
	    $(DESTDIR)$(PREFIX)/lib/libsluice.so.$(SOVERSION) \
	    $(DESTDIR)$(PREFIX)/lib/libsluice.so.$(VERSION) \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc
	rm -f $(EXAMPLES:%=$(DESTDIR)$(PREFIX)/bin/%)

demo: all
	@BUILD=$(BUILD) bash examples/demo.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(EXAMPLES:%=$(BUILD)/obj/examples/%.d)
