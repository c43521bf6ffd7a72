/* response_fuzzer.c: a libFuzzer target for the C core's response handling.
 *
 * Each input is one HTTP response as the core would see it:
 *     byte 0-1   status (100 + value % 500)
 *     byte 2     flags (bit 0: allow an empty body, as for DELETE)
 *     then       the raw header block, up to the first blank line ("\n\n" or "\r\n\r\n")
 *     then       the body
 * It goes through everything the core does with a response: the header parser
 * (sfr_push_headers, Content-Type and Retry-After extraction with sfr_header_number),
 * classification (sfr_classify via core.classify: status, content type, excerpts, error
 * bodies), JSON decoding with lua-cjson (core.decode) and gunzip (core.gunzip, with and
 * without a size cap), and the report shape scan (core.scan_facts) over whatever the body
 * decodes to and its factMap. It runs in a real Lua 5.4 state with the real cjson module, as in
 * production. None of these may raise a Lua error or touch memory they do not own; a raise
 * aborts (a crash for libFuzzer), and the sanitizers catch the rest.
 *
 * The core is included whole (unity build) so its static functions are reachable. */
#include "../src/core.c"

#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *FL;
static int core_ref = LUA_NOREF;
static int decode_ref = LUA_NOREF; /* the core's private cjson decode */
static unsigned long runs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FL = luaL_newstate();
    luaL_openlibs(FL);
    lua_pushcfunction(FL, luaopen_sfreports_core); /* requires "cjson" via package.cpath */
    if (lua_pcall(FL, 0, 1, 0) != 0) {
        fprintf(stderr, "response_fuzzer: cannot load the core: %s\n", lua_tostring(FL, -1));
        exit(1);
    }
    lua_getfield(FL, -1, "decode");
    if (lua_getupvalue(FL, -1, 1) == NULL) {
        fprintf(stderr, "response_fuzzer: core.decode has no decode upvalue\n");
        exit(1);
    }
    decode_ref = luaL_ref(FL, LUA_REGISTRYINDEX);
    lua_pop(FL, 1);
    core_ref = luaL_ref(FL, LUA_REGISTRYINDEX);
    return 0;
}

/* Calls core[name] with the nargs values on top; aborts if it raises. */
static void call_core(const char *name, int nargs)
{
    lua_rawgeti(FL, LUA_REGISTRYINDEX, core_ref);
    lua_getfield(FL, -1, name);
    lua_remove(FL, -2);
    lua_insert(FL, -(nargs + 1));
    if (lua_pcall(FL, nargs, 2, 0) != 0) {
        fprintf(stderr, "response_fuzzer: core.%s raised: %s\n", name, lua_tostring(FL, -1));
        abort();
    }
    /* a failure must be a proper error object: nil, { kind = ..., message = ... } */
    if (lua_isnil(FL, -2)) {
        if (!lua_istable(FL, -1))
            abort();
        lua_getfield(FL, -1, "kind");
        lua_getfield(FL, -2, "message");
        if (!lua_isstring(FL, -2) || !lua_isstring(FL, -1))
            abort();
        lua_pop(FL, 2);
    }
    lua_pop(FL, 2);
}

static size_t header_end(const char *p, size_t n, size_t *body)
{
    size_t i;
    for (i = 0; i + 1 < n; i++) {
        if (p[i] == '\n' && p[i + 1] == '\n') { *body = i + 2; return i + 1; }
        if (i + 3 < n && p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            *body = i + 4;
            return i + 2;
        }
    }
    *body = n;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long status;
    int allow_empty, raw, headers;
    size_t head_len, body_at;
    const char *p = (const char *)data + 3;
    size_t n;
    const char *ctype, *location;
    if (size < 3)
        return 0;
    status = 100 + ((long)data[0] << 8 | data[1]) % 500;
    allow_empty = data[2] & 1;
    raw = (data[2] >> 1) & 1;
    n = size - 3;
    head_len = header_end(p, n, &body_at);

    lua_settop(FL, 0);
    /* the header parser, exactly as for a libcurl response */
    sfr_push_headers(FL, p, head_len);
    headers = lua_gettop(FL);
    lua_getfield(FL, headers, "content-type");
    ctype = lua_tostring(FL, -1);
    lua_getfield(FL, headers, "retry-after");
    if (lua_isstring(FL, -1))
        (void)sfr_header_number(lua_tostring(FL, -1));
    lua_pop(FL, 1);
    lua_getfield(FL, headers, "location");
    location = lua_tostring(FL, -1);

    /* classification through the public entry point (and so the same code paths) */
    lua_pushinteger(FL, status);
    if (ctype) lua_pushstring(FL, ctype); else lua_pushnil(FL);
    lua_pushlstring(FL, p + body_at, n - body_at);
    lua_pushvalue(FL, headers);
    lua_pushboolean(FL, allow_empty);
    lua_pushboolean(FL, raw);
    call_core("classify", 6);

    /* and directly, as the session calls it (the body as a Lua string at an index), in the
     * mode the input selects: decoded, or raw (the text itself) */
    lua_rawgeti(FL, LUA_REGISTRYINDEX, decode_ref);
    lua_pushlstring(FL, p + body_at, n - body_at);
    sfr_classify(FL, lua_gettop(FL) - 1, status, ctype, -1, allow_empty, raw, -1, location, NULL);
    if (lua_istable(FL, -1)) { /* an error: it prints as one line */
        lua_pushcfunction(FL, sfr_error_tostring);
        lua_pushvalue(FL, -2);
        lua_call(FL, 1, 1);
        size_t tl;
        const char *text = lua_tolstring(FL, -1, &tl);
        if (memchr(text, '\n', tl) != NULL || memchr(text, '\r', tl) != NULL)
            abort();
    }
    lua_settop(FL, headers + 2);

    lua_pushlstring(FL, p + body_at, n - body_at);
    call_core("decode", 1);
    /* the shape scan over the decoded value (any table) and its factMap (any table) */
    lua_rawgeti(FL, LUA_REGISTRYINDEX, decode_ref);
    lua_pushlstring(FL, p + body_at, n - body_at);
    if (lua_pcall(FL, 1, 1, 0) == 0 && lua_istable(FL, -1)) {
        int decoded = lua_gettop(FL);
        lua_pushvalue(FL, decoded);
        lua_pushlightuserdata(FL, NULL); /* cjson.null */
        call_core("scan_facts", 2);
        lua_getfield(FL, decoded, "factMap");
        if (lua_istable(FL, -1)) {
            lua_pushlightuserdata(FL, NULL);
            call_core("scan_facts", 2);
        } else {
            lua_pop(FL, 1);
        }
    }
    lua_settop(FL, headers + 2);
    /* a 16 KB input can inflate to ~16 MB: cap it (the cap's own path is the same code) */
    lua_pushlstring(FL, p + body_at, n - body_at);
    lua_pushnumber(FL, 1024 * 1024);
    call_core("gunzip", 2);
    lua_pushlstring(FL, p + body_at, n - body_at);
    lua_pushnumber(FL, 64);
    call_core("gunzip", 2);

    lua_settop(FL, 0);
    if (++runs % 1000 == 0)
        lua_gc(FL, LUA_GCCOLLECT, 0);
    return 0;
}
