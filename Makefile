# sfreports build. `make` builds the C core for $(LUA) into build/$(LUA)/sfreports/core.so.
#   make LUA=luajit        another interpreter (lua5.1, lua5.3, lua5.4, luajit)
#   make test              the spec suite on Lua 5.4 (make test-all: every runtime)
#   make demo              the main job against the bundled fake org
#   make env               prints the exports that run the library from this checkout
#   make install           into $(DESTDIR)$(PREFIX)
#   make sanitize|memcheck|lint|bench|clean

LUA ?= lua5.4
RUNTIMES ?= lua5.4 lua5.3 lua5.1 luajit

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

CC ?= cc
CFLAGS ?= -O2 -g
WARN = -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LIBFLAG ?= -shared
ALL_CFLAGS = $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden -I$(LUA_INCDIR) $(CURL_CFLAGS)
ALL_LIBS = $(CURL_LIBS) $(SSL_LIBS) $(ZLIB_LIBS)

BUILD = build/$(LUA)
CORE = $(BUILD)/sfreports/core.so
SOURCES = $(wildcard src/*.c) $(wildcard src/*.h)

BUSTED = $(LUA) /usr/bin/busted
SPEC_PATHS = LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;spec/support/?.lua;;' LUA_CPATH='$(BUILD)/?.so;;'

.PHONY: all deps test test-all demo env install clean lint sanitize memcheck bench

all: $(CORE)

$(CORE): $(SOURCES)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $(LIBFLAG) -o $@ src/core.c $(ALL_LIBS)

deps:
	@bash .ci/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	$(SPEC_PATHS) $(BUSTED) --cpath='$(BUILD)/?.so' spec

test-all: deps
	@set -e; for l in $(RUNTIMES); do \
	  echo "== $$l"; $(MAKE) --no-print-directory LUA=$$l all; \
	  $(MAKE) --no-print-directory LUA=$$l test-one; done

test-one:
	$(SPEC_PATHS) $(BUSTED) --cpath='$(BUILD)/?.so' spec

demo: deps
	@$(MAKE) --no-print-directory all
	@$(SPEC_PATHS) $(LUA) examples/demo.lua

env:
	@echo "export LUA_PATH='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;'"
	@echo "export LUA_CPATH='$(CURDIR)/$(BUILD)/?.so;;'"

install: $(CORE)
	install -d $(DESTDIR)$(LUA_LIBDIR)/sfreports $(DESTDIR)$(LUA_SHAREDIR)/sfreports $(DESTDIR)$(BINDIR)
	install -m 0755 $(CORE) $(DESTDIR)$(LUA_LIBDIR)/sfreports/core.so
	install -m 0644 lua/sfreports/*.lua $(DESTDIR)$(LUA_SHAREDIR)/sfreports/
	@if [ -f bin/sfreports ]; then \
	  sed '1s|.*|#!/usr/bin/env $(LUA)|' bin/sfreports > $(DESTDIR)$(BINDIR)/sfreports; \
	  chmod 0755 $(DESTDIR)$(BINDIR)/sfreports; fi

# The spec suite under valgrind: no definite or indirect leaks, no invalid accesses.
VALGRIND = valgrind --keep-debuginfo=yes --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=9 --track-fds=no
memcheck: deps
	@$(MAKE) --no-print-directory all
	$(SPEC_PATHS) SFREPORTS_UNDER_VALGRIND=1 $(VALGRIND) $(BUSTED) --cpath='$(BUILD)/?.so' spec

# The benchmark suite (bench/run.sh; not part of `make test`): sfreports against the floor
# (curl + cjson.decode) and jsforce (installed into .cache/bench from npm), ~5 minutes.
# BENCH_ARGS=--quick for a short smoke run. Tables: .cache/bench/results.md.
bench: deps
	@bash bench/run.sh $(BENCH_ARGS)

lint:
	luacheck lua spec bin examples bench fakeorg

clean:
	rm -rf build
