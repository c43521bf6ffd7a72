# sfreports build. `make` builds the C core for $(LUA) into build/$(LUA)/sfreports/core.so.
#   make LUA=luajit        another interpreter (lua5.1, lua5.3, lua5.4, luajit)
#   make test              the spec suite on Lua 5.4 (make test-all: every runtime)
#   make demo              the main job against the bundled fake org
#   make env               prints the exports that run the library from this checkout
#   make install           into $(DESTDIR)$(PREFIX)
#   make nginx-example NGINX_DIR=DIR   the nginx example, ready to start (examples/nginx/README.md)
#   make sanitize|memcheck|fuzz|lint|bench|bench-compare OLD=dir|clean

LUA ?= lua5.4
RUNTIMES ?= lua5.4 lua5.3 lua5.1 luajit
# The spec files test, test-one, sanitize and memcheck run (e.g. SPECS=spec/core_spec.lua)
SPECS ?= spec

ifeq ($(LUA),luajit)
LUA_VERSION ?= 5.1
LUA_INCDIR ?= /usr/include/luajit-2.1
else
LUA_VERSION ?= $(patsubst lua%,%,$(LUA))
LUA_INCDIR ?= /usr/include/$(LUA)
endif

PREFIX ?= /usr/local
LUA_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
BINDIR ?= $(PREFIX)/bin

CURL_CFLAGS ?= $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS ?= $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
SSL_LIBS ?= $(shell pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)
ZLIB_LIBS ?= $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)
XLSX_CFLAGS ?= $(shell pkg-config --cflags xlsxwriter 2>/dev/null)
XLSX_LIBS ?= $(shell pkg-config --libs xlsxwriter 2>/dev/null || echo -lxlsxwriter -lz)

CC ?= cc
CFLAGS ?= -O2 -g
WARN = -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LIBFLAG ?= -shared
ALL_CFLAGS = $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden -I$(LUA_INCDIR) $(CURL_CFLAGS)
ALL_LIBS = $(CURL_LIBS) $(SSL_LIBS) $(ZLIB_LIBS)

BUILD = build/$(LUA)
CORE = $(BUILD)/sfreports/core.so
# the native .xlsx writer's C half (sfreports.xlsx, over libxlsxwriter): a module of its own
XLSX = $(BUILD)/sfreports/xlsx.so
SOURCES = $(filter-out src/xlsx.c,$(wildcard src/*.c)) $(wildcard src/*.h)

BUSTED = $(LUA) /usr/bin/busted
SPEC_PATHS = LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;spec/support/?.lua;;' LUA_CPATH='$(BUILD)/?.so;;'

.PHONY: all deps test test-all test-one demo env install clean lint sanitize memcheck bench bench-compare fuzz \
	spec-cores nginx-example

all: $(CORE) $(XLSX)

$(CORE): $(SOURCES)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $(LIBFLAG) -o $@ src/core.c $(ALL_LIBS)

$(XLSX): src/xlsx.c src/compat.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden -I$(LUA_INCDIR) $(XLSX_CFLAGS) $(LDFLAGS) $(LIBFLAG) \
		-o $@ src/xlsx.c $(XLSX_LIBS)

# What every spec run needs besides the core under test: the plain build for $(LUA)
# (bin/sfreports, run as a child process by the CLI specs, loads build/<interpreter>/),
# and the build for LuaJIT (the nginx workers of the fake org, which verify JWTs with it,
# and of the nginx specs).
LUAJIT_CORE = build/luajit/sfreports/core.so
ifneq ($(LUA),luajit)
$(LUAJIT_CORE): $(SOURCES)
	@$(MAKE) --no-print-directory LUA=luajit all
endif
spec-cores: $(CORE) $(XLSX) $(LUAJIT_CORE)

deps:
	@bash .ci/deps.sh

test: deps
	@$(MAKE) --no-print-directory spec-cores
	$(SPEC_PATHS) $(BUSTED) --cpath='$(BUILD)/?.so' $(SPECS)

# The whole suite on every runtime, each with its own build of the C core (the nginx
# specs load build/luajit, made first). Every runtime runs; the failing ones are listed.
test-all: deps
	@$(MAKE) --no-print-directory LUA=luajit all
	@failed=""; for l in $(RUNTIMES); do \
	  echo "== $$l"; \
	  if $(MAKE) --no-print-directory LUA=$$l all && $(MAKE) --no-print-directory LUA=$$l test-one; \
	  then :; else failed="$$failed $$l"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "test-all: FAILED on:$$failed" >&2; exit 1; fi; \
	echo "test-all: passed on $(RUNTIMES)"

test-one: spec-cores
	$(SPEC_PATHS) $(BUSTED) --cpath='$(BUILD)/?.so' $(SPECS)

demo: deps
	@$(MAKE) -s --no-print-directory all
	@$(SPEC_PATHS) $(LUA) examples/demo.lua

env:
	@echo "export LUA_PATH='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;'"
	@echo "export LUA_CPATH='$(CURDIR)/$(BUILD)/?.so;;'"
	@echo "export PATH='$(CURDIR)/bin':\"\$$PATH\""

install: $(CORE) $(XLSX)
	install -d $(DESTDIR)$(LUA_LIBDIR)/sfreports $(DESTDIR)$(LUA_SHAREDIR)/sfreports $(DESTDIR)$(BINDIR)
	install -m 0755 $(CORE) $(DESTDIR)$(LUA_LIBDIR)/sfreports/core.so
	install -m 0755 $(XLSX) $(DESTDIR)$(LUA_LIBDIR)/sfreports/xlsx.so
	for f in $$(cd lua && find sfreports -name '*.lua'); do \
	  install -D -m 0644 "lua/$$f" "$(DESTDIR)$(LUA_SHAREDIR)/$$f"; done
	@if [ -f bin/sfreports ]; then \
	  sed '1s|.*|#!/usr/bin/env $(LUA)|' bin/sfreports > $(DESTDIR)$(BINDIR)/sfreports; \
	  chmod 0755 $(DESTDIR)$(BINDIR)/sfreports; fi

# The spec suite under valgrind: no definite or indirect leaks, no invalid accesses.
# Only the lua process is traced (nginx and curl(1) started by the specs are not).
# SFREPORTS_UNDER_VALGRIND stretches the fake org's delays (spec/support/timing.lua) and makes the GC stress
# rounds fewer. This is the leak check: `make sanitize` runs with detect_leaks=0.
VALGRIND = valgrind --keep-debuginfo=yes --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect --error-exitcode=9 --track-fds=no
memcheck: deps
	@$(MAKE) --no-print-directory spec-cores
	$(SPEC_PATHS) SFREPORTS_UNDER_VALGRIND=1 $(VALGRIND) $(BUSTED) --cpath='$(BUILD)/?.so' $(SPECS)

# The C core built with AddressSanitizer + UndefinedBehaviorSanitizer (any UB aborts), and
# the whole spec suite run against it (lua5.4 only). The specs run under fuzz/lua_host.c, a
# minimal lua5.4 interpreter linked with the sanitizer runtime: preloading the runtime
# into the stock lua5.4 instead would leak LD_PRELOAD into nginx and curl(1), which the
# specs start (curl hangs under it). The instrumented core reaches busted through
# --cpath only; LUA_CPATH, which the interpreters the specs start (`lua5.4 examples/...`,
# bin/sfreports, luarocks) inherit, names the plain build, which the stock lua5.4 can load
# (the instrumented one it refuses: "ASan runtime does not come first"); hence
# spec-cores. Leak detection is off: busted exits through os.exit
# with the Lua state, curl and OpenSSL globals still allocated, which LeakSanitizer reports
# as noise; leaks are what `make memcheck` (valgrind, with stacks into src/) is for.
SAN_CC ?= gcc
SAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_BUILD = build/sanitize/lua5.4
SAN_CORE = $(SAN_BUILD)/sfreports/core.so
SAN_XLSX = $(SAN_BUILD)/sfreports/xlsx.so
SAN_LUA = $(SAN_BUILD)/lua_host
SAN_ENV = SFREPORTS_UNDER_SANITIZER=1 \
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
$(SAN_CORE): $(SOURCES)
	@mkdir -p $(dir $@)
	$(SAN_CC) $(SAN_FLAGS) $(WARN) -fPIC -fvisibility=hidden -I/usr/include/lua5.4 $(CURL_CFLAGS) $(LDFLAGS) \
		$(LIBFLAG) -o $@ src/core.c $(ALL_LIBS)
$(SAN_XLSX): src/xlsx.c src/compat.h
	@mkdir -p $(dir $@)
	$(SAN_CC) $(SAN_FLAGS) $(WARN) -fPIC -fvisibility=hidden -I/usr/include/lua5.4 $(XLSX_CFLAGS) $(LDFLAGS) \
		$(LIBFLAG) -o $@ src/xlsx.c $(XLSX_LIBS)
$(SAN_LUA): fuzz/lua_host.c
	@mkdir -p $(dir $@)
	$(SAN_CC) $(SAN_FLAGS) $(WARN) -I/usr/include/lua5.4 -o $@ fuzz/lua_host.c -llua5.4
sanitize: deps
	@$(MAKE) --no-print-directory LUA=lua5.4 spec-cores $(SAN_CORE) $(SAN_XLSX) $(SAN_LUA)
	LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;spec/support/?.lua;;' LUA_CPATH='build/lua5.4/?.so;;' \
		$(SAN_ENV) $(SAN_LUA) /usr/bin/busted --cpath='$(SAN_BUILD)/?.so' $(SPECS)

# libFuzzer target for the core's response handling (fuzz/response_fuzzer.c), built with
# clang + ASan + UBSan against lua5.4 and Debian's lua-cjson. `make fuzz` first replays
# every kept crash input (spec/fixtures/fuzz_regressions/), then fuzzes for FUZZ_SECONDS
# from the seed corpus (fuzz/corpus/, made by fuzz/make_seeds.lua). New inputs go to
# build/fuzz/work; a crash is written to build/fuzz/crash-* and fails the target: copy it
# into spec/fixtures/fuzz_regressions/ with the fix so it stays a regression test.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BIN = build/fuzz/response_fuzzer
$(FUZZ_BIN): fuzz/response_fuzzer.c $(SOURCES)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(WARN) -Werror \
		-I/usr/include/lua5.4 $(CURL_CFLAGS) -o $@ fuzz/response_fuzzer.c -llua5.4 $(ALL_LIBS)
fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@mkdir -p build/fuzz/work
	ASAN_OPTIONS=detect_leaks=1 $(FUZZ_BIN) -runs=0 spec/fixtures/fuzz_regressions fuzz/corpus
	ASAN_OPTIONS=detect_leaks=1 $(FUZZ_BIN) -max_len=16384 -max_total_time=$(FUZZ_SECONDS) \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build/fuzz/ \
		build/fuzz/work fuzz/corpus

# The benchmark suite (bench/run.sh; not part of `make test`): sfreports against the floor
# (curl + cjson.decode) and jsforce (installed into .cache/bench from npm), about 3 minutes.
# BENCH_ARGS=--quick for a short smoke run. Tables: .cache/bench/results.md.
bench: deps
	@bash bench/run.sh $(BENCH_ARGS)

# The nginx example (examples/nginx) made ready to run in NGINX_DIR: the config rendered
# from the template, and a copy of what the workers load (lua/, the LuaJIT build of the
# core, the handlers) under NGINX_DIR/sfreports, readable by every user. Workers of an
# nginx started as root run as nobody, who may not read the checkout (e.g. under /root).
#   make nginx-example NGINX_DIR=/tmp/sfr NGINX_PORT=8080
NGINX_PORT ?= 8080
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
nginx-example: $(LUAJIT_CORE)
	@test -n "$(NGINX_DIR)" || { echo "usage: make nginx-example NGINX_DIR=DIR [NGINX_PORT=8080]" >&2; exit 2; }
	@mkdir -p '$(NGINX_DIR)/tmp' '$(NGINX_DIR)/sfreports/build' '$(NGINX_DIR)/sfreports/examples'
	@rm -rf '$(NGINX_DIR)/sfreports/lua' '$(NGINX_DIR)/sfreports/build/luajit' '$(NGINX_DIR)/sfreports/examples/nginx'
	@cp -R lua '$(NGINX_DIR)/sfreports/'
	@cp -R build/luajit '$(NGINX_DIR)/sfreports/build/'
	@cp -R examples/nginx '$(NGINX_DIR)/sfreports/examples/'
	@sed -e 's|{{PORT}}|$(NGINX_PORT)|g' -e 's|{{PREFIX}}|$(abspath $(NGINX_DIR))|g' \
		-e 's|{{SFREPORTS}}|$(abspath $(NGINX_DIR))/sfreports|g' -e 's|{{CA_BUNDLE}}|$(CA_BUNDLE)|g' \
		examples/nginx/nginx.conf > '$(NGINX_DIR)/nginx.conf'
	@chmod -R a+rX '$(NGINX_DIR)'
	@echo "nginx example ready in $(abspath $(NGINX_DIR)) (port $(NGINX_PORT)); start it with:"
	@echo "  SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... nginx -p $(abspath $(NGINX_DIR)) -c $(abspath $(NGINX_DIR))/nginx.conf -e $(abspath $(NGINX_DIR))/error.log"

# Before/after: the sfreports scenarios of `make bench` for this checkout and OLD (another
# checkout, e.g. a git worktree of an older commit), interleaved against one fake org, with
# new/old ratios of wall, CPU, peak RSS and callgrind instructions (bench/compare.lua).
bench-compare:
	@test -n "$(OLD)" || { echo "usage: make bench-compare OLD=dir [BENCH_ARGS=...]" >&2; exit 2; }
	@bash bench/compare.sh $(OLD) $(BENCH_ARGS)

lint:
	luacheck -q --no-color lua spec bin examples bench fakeorg fuzz

# also what `luarocks make` leaves in the checkout (it compiles in place; docs/install.md)
clean:
	rm -rf build
	rm -f sfreports/core.so sfreports/xlsx.so src/*.o
	@if [ -d sfreports ]; then rmdir sfreports 2>/dev/null || true; fi
