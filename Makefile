# hydra-agent: plain Makefile.
#
#   make              build build/bin/*
#   make check        install missing packages, build, run every test
#   make check SANITIZE=1   the same with ASan + UBSan in build-asan/
#   make torture      SIGKILLs of install, sync and mirror fills (TORTURE_SEED=N replays)
#   make demo         one install and one discovery against local servers
#   make bench        benchmarks against real peers
#   make install PREFIX=/usr/local DESTDIR=   agent, mirror, units, configs, man pages
#   make install-sim  hydra-cluster-sim and its man page (tests and labs only)
#   make deb          Debian packages in build/deb/ (version from git describe)

PREFIX  ?= /usr/local
DESTDIR ?=
# The programs read /etc/hydra-agent and /etc/hydra-mirror whatever PREFIX is.
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
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

PKGS     = libcurl libcares json-c yaml-0.1 openssl libmicrohttpd libsystemd libzip libarchive
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
# Benchmark drivers (one .c each), built the same way.
BENCH_TOOLS := $(patsubst bench/tools/%.c,$(BUILD)/bin/%,$(wildcard bench/tools/*.c))

TEST_SRCS := $(wildcard tests/unit/test_*.c tests/integration/test_*.c)
TESTS := $(patsubst %.c,$(BUILD)/%,$(TEST_SRCS))
TEST_SUPPORT_SRCS := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SUPPORT_SRCS))

all: $(PROGS) $(TOOLS) $(BENCH_TOOLS)

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

$(BUILD)/bin/%: $(BUILD)/obj/bench/tools/%.o $(MODULE_LIBS)
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

# One seed for every torture script, so one line replays the whole run.
torture: deps
	@$(MAKE) --no-print-directory all
	@seed=$${TORTURE_SEED:-$$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}; \
	echo "torture seed $$seed (replay: TORTURE_SEED=$$seed make torture)"; \
	TORTURE_SEED=$$seed BUILD=$(BUILD) SANITIZE=$(SANITIZE) SCRIPTS='tests/torture/*.sh' \
	PROGRAMS=0 LOG_PREFIX=torture- TEST_TIMEOUT=$${TORTURE_TIMEOUT:-240} sh tests/run.sh

testbooks: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh testbooks/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh tools/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) sh bench/run.sh

# install puts the same files in place as the hydra-agent and hydra-mirror
# packages (debian/*.install list them again, split by package). Units and
# scripts name /usr paths; they are rewritten for another PREFIX. A config
# already in SYSCONFDIR is kept. The system users and state folders are made
# by the packages' maintainer scripts, not here.
install_conf = [ -e $(DESTDIR)$(SYSCONFDIR)/$(2) ] || install -m 0644 $(1) $(DESTDIR)$(SYSCONFDIR)/$(2)
INSTALL_FIX = sed -e 's|/usr/bin/|$(PREFIX)/bin/|g' -e 's|/usr/lib/hydra-mirror/|$(PREFIX)/lib/hydra-mirror/|g'
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/lib/hydra-mirror \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/hydra-agent \
		$(DESTDIR)$(SYSCONFDIR)/hydra-mirror $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0755 $(BUILD)/bin/hydra-agent $(BUILD)/bin/hydra-mirror $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 docs/man/hydra-agent.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/man/hydra-mirror.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	for f in acme-hook acme-renew; do \
		$(INSTALL_FIX) packaging/acme/$$f > $(DESTDIR)$(PREFIX)/lib/hydra-mirror/$$f && \
		chmod 0755 $(DESTDIR)$(PREFIX)/lib/hydra-mirror/$$f || exit 1; done
	for f in packaging/systemd/*.service packaging/systemd/*.timer; do \
		$(INSTALL_FIX) $$f > $(DESTDIR)$(UNITDIR)/$${f##*/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${f##*/} || exit 1; done
	$(call install_conf,packaging/etc/agent.yaml,hydra-agent/agent.yaml)
	$(call install_conf,packaging/etc/stream.env,hydra-agent/stream.env)
	$(call install_conf,packaging/etc/mirror.yaml,hydra-mirror/mirror.yaml)
	$(call install_conf,packaging/etc/acme.conf,hydra-mirror/acme.conf)
	$(call install_conf,packaging/logrotate/hydra-agent,logrotate.d/hydra-agent)
	$(call install_conf,packaging/logrotate/hydra-mirror,logrotate.d/hydra-mirror)

install-sim: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BUILD)/bin/hydra-cluster-sim $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 docs/man/hydra-cluster-sim.1 $(DESTDIR)$(PREFIX)/share/man/man1/

# Binary packages of the working tree (tracked and new files) built in a
# copy under $(BUILD)/deb, so debhelper's scratch never lands in the tree.
deb:
	@BUILD=$(BUILD) sh packaging/build-deb.sh

clean:
	rm -rf build build-asan

.PHONY: all tests deps check torture testbooks demo bench install install-sim deb clean FORCE
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
