# hotpath - one GNU make build for the library, the server, tests and fuzzers.
#
#   make            build/libhotpath.a, build/libhotpath.so, build/hotpath,
#                   build/hpbench
#   make run        build and start the server on the default configuration
#   make test       build and run every unit and integration test, and the
#                   layering check (CI=true: -Werror, a second run under
#                   ASan+UBSan, fuzzing)
#   make fuzz       run every fuzz target for FUZZ_SECONDS (default 300)
#   make bench      run the side-by-side benchmarks (bench/http.sh)
#   make regen      generate the AMQP codec (amqp_spec.[ch]) again
#   make install    install into PREFIX (default /usr/local; DESTDIR honoured)
#   V=1             show full commands; SANITIZE=address,undefined for a
#                   sanitizer build (into build/san)

CC       ?= gcc
CLANG    ?= clang
PYTHON   ?= /usr/bin/python3
VERSION  := 0.1.0
# The soname's number changes with every release that breaks the ABI.
SOVERSION := 0

ifeq ($(origin CC),default)
CC := gcc
endif

ifdef SANITIZE
BUILD    ?= build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      ?= -O1
else
BUILD    ?= build
SANFLAGS :=
OPT      ?= -O2
endif

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wundef
ifeq ($(CI),true)
WARN     += -Werror
endif

CPPFLAGS := -Iinclude -Isrc -I$(BUILD) -D_GNU_SOURCE -DHP_VERSION=\"$(VERSION)\"
# Hidden by default: libhotpath.so exports what the public headers mark
# HP_EXPORT, nothing else (tests/integration/test_library.py checks).
CFLAGS   := -std=gnu17 $(OPT) -g -fPIC -fvisibility=hidden $(WARN) $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS  := $(SANFLAGS) $(EXTRA_LDFLAGS)
# cJSON (libcjson-dev) and msgpack-c (libmsgpack-dev, pkg-config name
# msgpack) parse and print AMQP message bodies (src/amqp/payload.c);
# hotpath.pc's Libs.private lists the same libraries for static linking.
LDLIBS   := -lpthread -lm -lyaml -lz -lbrotlienc -lbrotlidec -lcjson -lmsgpackc

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRCS  := $(sort $(wildcard src/core/*.c src/codec/*.c src/metrics/*.c src/net/*.c src/http/*.c src/config/*.c src/amqp/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/amqp_spec.o
SRV_SRCS  := $(sort $(wildcard src/server/*.c))
SRV_OBJS  := $(SRV_SRCS:%.c=$(BUILD)/%.o)
HPB_SRCS  := $(sort $(wildcard tools/hpbench/*.c))
HPB_OBJS  := $(HPB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

.PHONY: all run test unit integration check-layers fuzz fuzz-regress bench deps deps-bench clean ci-san install install-check regen
all: $(BUILD)/libhotpath.a $(BUILD)/libhotpath.so $(BUILD)/hotpath $(BUILD)/hpbench

# Rebuild everything when the flags change: the flags file only changes
# (and so only bumps its timestamp) when its content differs.
FLAGS_LINE := $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS)
$(BUILD)/.flags: FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(FLAGS_LINE)' ]; then echo '$(FLAGS_LINE)' > $@; fi
FORCE:

# Feature probes, written once per build directory.
$(BUILD)/config.h: scripts/probe.sh $(BUILD)/.flags
	@mkdir -p $(@D)
	$(Q)CC="$(CC)" sh scripts/probe.sh > $@

# The AMQP 0-9-1 method and property codec is generated from the spec XML
# of Debian's amqp-specs (RabbitMQ's extended 0-9-1) and our additions in
# src/amqp/rabbit_ext.xml; the generator also checks the constants the
# hand-written headers give (reply codes, frame types, property flags)
# against the spec. Generated into each build directory (build/ for the
# fuzzers whatever BUILD is), never into the tree.
AMQP_SPEC   ?= /usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml
AMQP_EXT    := src/amqp/rabbit_ext.xml
AMQP_CHECK  := include/hotpath/amqp.h src/amqp/frame_int.h
AMQPGEN     := tools/amqpgen/amqpgen.py
AMQPGEN_RUN  = $(PYTHON) $(AMQPGEN) --spec $(AMQP_SPEC) $(AMQP_EXT:%=--ext %) $(AMQP_CHECK:%=--check %)

%/amqp_spec.h: $(AMQPGEN) $(AMQP_SPEC) $(AMQP_EXT) $(AMQP_CHECK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)$(AMQPGEN_RUN) --header $@

%/amqp_spec.c: $(AMQPGEN) $(AMQP_SPEC) $(AMQP_EXT) $(AMQP_CHECK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)$(AMQPGEN_RUN) --source $@

$(AMQP_SPEC):
	@echo "missing $@: install Debian's amqp-specs (make deps)" >&2; exit 1

regen:
	rm -f $(BUILD)/amqp_spec.h $(BUILD)/amqp_spec.c
	$(MAKE) $(BUILD)/amqp_spec.h $(BUILD)/amqp_spec.c

# Every object may include amqp_spec.h: it is generated before any is
# compiled (order-only: a new header alone rebuilds only the objects whose
# -MMD dependencies name it).
$(BUILD)/%.o: %.c $(BUILD)/.flags $(BUILD)/config.h | $(BUILD)/amqp_spec.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/amqp_spec.o: $(BUILD)/amqp_spec.c $(BUILD)/amqp_spec.h $(BUILD)/.flags $(BUILD)/config.h
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libhotpath.a: $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libhotpath.so: $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libhotpath.so.$(SOVERSION) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/hotpath: $(SRV_OBJS) $(BUILD)/libhotpath.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(SRV_OBJS) $(BUILD)/libhotpath.a $(LDLIBS)

$(BUILD)/hpbench: $(HPB_OBJS) $(BUILD)/libhotpath.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(HPB_OBJS) $(BUILD)/libhotpath.a $(LDLIBS)

# Tests of the tools link the tool's own objects (all but its main.c).
$(BUILD)/tests/unit/tools/%: tests/unit/tools/%.c $(filter-out %/main.o,$(HPB_OBJS)) $(BUILD)/libhotpath.a $(BUILD)/.flags $(BUILD)/config.h | $(BUILD)/amqp_spec.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CPPFLAGS) -Isrc -Itools/hpbench $(CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< $(filter-out %/main.o,$(HPB_OBJS)) $(BUILD)/libhotpath.a -lcmocka $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libhotpath.a $(BUILD)/.flags $(BUILD)/config.h | $(BUILD)/amqp_spec.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CPPFLAGS) -Isrc $(CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< $(BUILD)/libhotpath.a -lcmocka $(LDLIBS)

deps:
	@sh scripts/deps.sh

# What only bench/'s comparison tools link (bench/amqp.sh's rmq_perf).
deps-bench:
	@sh scripts/deps.sh --bench

run: deps all
	$(BUILD)/hotpath --config config/hotpath.yaml

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: all
	HOTPATH_BIN=$(abspath $(BUILD)/hotpath) $(PYTHON) -m pytest -q tests/integration

# Dependencies point downward: src/config includes no protocol or engine header.
check-layers:
	@sh scripts/check_layers.sh

# Fuzzers are built with clang's libFuzzer, ASan and UBSan against the
# library sources directly (not the gcc-built archive), the generated
# AMQP codec included.
build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) build/amqp_spec.c build/amqp_spec.h build/config.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CLANG) $(CPPFLAGS:-I$(BUILD)=-Ibuild) -Isrc -std=gnu17 -g -O1 \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o $@ $< $(LIB_SRCS) build/amqp_spec.c $(LDLIBS)

# Replays every seed and every saved crash through each target: fast, and
# run by `make test`.
fuzz-regress: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$${f##*/fuzz_}; \
	  dirs=""; for d in tests/fuzz/corpus/$$n tests/fuzz/regress/$$n; do \
	    [ -d $$d ] && dirs="$$dirs $$(ls -d $$d/* 2>/dev/null)"; done; \
	  echo "== $$f (replay)"; $$f -runs=0 $$dirs >/dev/null 2>build/fuzz/$$n.log || { cat build/fuzz/$$n.log; exit 1; }; done

FUZZ_SECONDS ?= 300
fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$${f##*/fuzz_}; \
	  mkdir -p build/fuzz/work/$$n; \
	  dict=""; [ -f tests/fuzz/$$n.dict ] && dict="-dict=tests/fuzz/$$n.dict"; \
	  echo "== $$f ($(FUZZ_SECONDS) s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict \
	      -artifact_prefix=build/fuzz/ build/fuzz/work/$$n tests/fuzz/corpus/$$n \
	      2>build/fuzz/$$n.log || { tail -50 build/fuzz/$$n.log; exit 1; }; \
	  grep -E 'stat::number_of_executed_units' build/fuzz/$$n.log; done

ci-san:
	$(MAKE) SANITIZE=address,undefined unit integration

# Installs into a scratch root and checks what landed, pkg-config included.
install-check: all
	@rm -rf $(BUILD)/install-check
	@$(MAKE) -s install DESTDIR=$(abspath $(BUILD)/install-check) PREFIX=/usr >/dev/null
	@set -e; r=$(BUILD)/install-check/usr; \
	  for f in bin/hotpath bin/hpbench lib/libhotpath.a lib/libhotpath.so $(wildcard include/hotpath/*.h); do \
	    test -e $$r/$$f || { echo "install-check: missing $$f"; exit 1; }; done; \
	  $$r/bin/hpbench --version >/dev/null; \
	  test "$$(PKG_CONFIG_PATH=$$r/lib/pkgconfig pkg-config --modversion hotpath)" = "$(VERSION)"; \
	  echo "install-check: binaries, libraries, headers and hotpath.pc in place"

test: deps
	$(MAKE) check-layers all unit integration fuzz-regress install-check
# CI adds the sanitizer run and half a minute of fuzzing per target (thirteen
# targets: the whole of CI stays under twenty minutes; `make fuzz`
# runs them for longer).
ifeq ($(CI),true)
	$(MAKE) ci-san
	$(MAKE) fuzz FUZZ_SECONDS=30
endif

bench: deps all
	bash bench/http.sh

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include

# hotpath.pc names its directories relative to ${prefix} when they lie
# under it, so the tree can be moved (pkg-config --define-variable=prefix=).
PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCDIR))

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)/hotpath
	install -m 755 $(BUILD)/hotpath $(BUILD)/hpbench $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libhotpath.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libhotpath.so $(DESTDIR)$(LIBDIR)/libhotpath.so.$(VERSION)
	ln -sf libhotpath.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libhotpath.so.$(SOVERSION)
	ln -sf libhotpath.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libhotpath.so
	install -m 644 include/hotpath/*.h $(DESTDIR)$(INCDIR)/hotpath/
	printf 'prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: hotpath\nDescription: thread-per-core network server engine and HTTP/1.1 server\nVersion: %s\nLibs: -L$${libdir} -lhotpath\nLibs.private: -lpthread -lm -lyaml -lz -lbrotlienc -lbrotlidec -lcjson -lmsgpackc\nCflags: -I$${includedir}\n' \
	    '$(PREFIX)' '$(PC_LIBDIR)' '$(PC_INCDIR)' '$(VERSION)' > $(DESTDIR)$(LIBDIR)/pkgconfig/hotpath.pc

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(SRV_OBJS:.o=.d) $(HPB_OBJS:.o=.d) $(UNIT_BINS:=.d)
