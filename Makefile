# hydra-agent: plain Makefile.
#
#   make              build build/bin/*
#   make check        install missing packages, build, run every test
#   make check SANITIZE=1   the same with ASan + UBSan in build-asan/
#   make demo         one install and one discovery against local servers
#   make bench        benchmarks against real peers
#   make install PREFIX=/usr/local DESTDIR=

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc

ifeq ($(SANITIZE),1)
BUILD   ?= build-asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      = -O1
else
BUILD   ?= build
SANFLAGS =
OPT      = -O2
endif

PKGS     = libcurl libcares json-c yaml-0.1 openssl libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) $(SANFLAGS) \
           -I. $(PKG_CFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lpthread

# Modules in link order: a module may only use modules to its right.
MODULE_ORDER = agent mirrorfetch discovery mirror cluster common
MODULES := $(foreach m,$(MODULE_ORDER),$(if $(filter-out $(m)/main.c,$(wildcard $(m)/*.c)),$(m)))
MODULE_LIBS := $(foreach m,$(MODULES),$(BUILD)/lib/lib$(m).a)

# Programs: a module's main.c becomes a program of this name.
PROG_agent   = hydra-agent
PROG_mirror  = hydra-mirror
PROG_cluster = hydra-cluster-sim
PROGS := $(foreach m,agent mirror cluster,$(if $(wildcard $(m)/main.c),$(BUILD)/bin/$(PROG_$(m))))
# Small helper programs used by testbooks and demo (one .c each).
TOOLS := $(patsubst testbooks/tools/%.c,$(BUILD)/bin/%,$(wildcard testbooks/tools/*.c))

TEST_SRCS := $(wildcard tests/unit/test_*.c tests/integration/test_*.c)
TESTS := $(patsubst %.c,$(BUILD)/%,$(TEST_SRCS))
TEST_SUPPORT_SRCS := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SUPPORT_SRCS))

all: $(PROGS) $(TOOLS)

# A library is rebuilt when an object changes or when the list of its
# sources does (a removed file must not linger in the archive).
define module_rules
$(1)_OBJS := $$(patsubst %.c,$(BUILD)/obj/%.o,$$(filter-out $(1)/main.c,$$(wildcard $(1)/*.c)))
$(BUILD)/lib/lib$(1).list: FORCE
	@mkdir -p $$(@D)
	@echo '$$($(1)_OBJS)' | cmp -s - $$@ || echo '$$($(1)_OBJS)' > $$@
$(BUILD)/lib/lib$(1).a: $$($(1)_OBJS) $(BUILD)/lib/lib$(1).list
	rm -f $$@ && ar rcs $$@ $$($(1)_OBJS)
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/bin/hydra-agent: $(BUILD)/obj/agent/main.o $(MODULE_LIBS)
$(BUILD)/bin/hydra-mirror: $(BUILD)/obj/mirror/main.o $(MODULE_LIBS)
$(BUILD)/bin/hydra-cluster-sim: $(BUILD)/obj/cluster/main.o $(MODULE_LIBS)
$(PROGS):
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/%: $(BUILD)/obj/testbooks/tools/%.o $(MODULE_LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_SUPPORT_OBJS) $(MODULE_LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

tests: $(TESTS)

deps:
	@sh tools/deps.sh

check: deps
	@$(MAKE) --no-print-directory all tests
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) sh tests/run.sh

testbooks: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh testbooks/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	$(if $(wildcard docs/man/*.1),install -d $(DESTDIR)$(PREFIX)/share/man/man1)
	$(if $(wildcard docs/man/*.1),install -m 0644 $(wildcard docs/man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/)

clean:
	rm -rf build build-asan

.PHONY: all tests deps check testbooks demo bench install clean FORCE
# Objects reached through pattern rules (tests, tools) are kept, not deleted
# as intermediates; lib objects are named prerequisites and always rebuilt.
.PRECIOUS: $(BUILD)/obj/%.o

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# make fuzz (docs/HACKING.md, "Fuzzing"): every fuzz/NAME.c is a libFuzzer
# target, linked with fuzz/lib/*.c (but replay.c, the main of the gcc replay
# in tests/static/fuzz_replay.sh) and the module libraries, all built by
# clang with the fuzzer's coverage and ASan + UBSan in build-fuzz/, then
# each run for FUZZ_SECONDS (0: only build).
FUZZ_BUILD    = build-fuzz
FUZZ_CC       = clang
FUZZ_SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=undefined
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := $(basename $(notdir $(wildcard fuzz/*.c)))
FUZZ_LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out fuzz/lib/replay.c,$(wildcard fuzz/lib/*.c)))

fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) missing; run make deps" >&2; exit 1; }
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT=-O1 \
		SANFLAGS='$(FUZZ_SANFLAGS)' fuzz-targets
	@[ "$(FUZZ_SECONDS)" = 0 ] || FUZZ_SECONDS=$(FUZZ_SECONDS) sh fuzz/run.sh $(FUZZ_BUILD)

fuzz-targets: $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz/$(t))

$(BUILD)/fuzz/%: $(BUILD)/obj/fuzz/%.o $(FUZZ_LIB_OBJS) $(MODULE_LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

clean: clean-fuzz
clean-fuzz:
	rm -rf $(FUZZ_BUILD)

.PHONY: fuzz fuzz-targets clean-fuzz
