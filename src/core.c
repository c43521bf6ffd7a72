/* core.c: sfreports.core, the C half of sfreports (luaopen_sfreports_core).
 *
 * A unity build: error.c (structured errors, response classification), request.c (the
 * one request description, option checks and defaults), session.c (the libcurl
 * engine), crypto.c (RS256, base64url), inflate.c (gzip) and shape.c (the report shape
 * scan) are included here, so that
 * everything but luaopen_sfreports_core is static and nothing else is exported.
 *
 * JSON is decoded by lua-cjson: at load time the module requires "cjson", makes a private
 * instance with cjson.new() (so that a user's cjson settings cannot change what the
 * library sees) and keeps its decode function as an upvalue. JSON null arrives as
 * cjson.null (exposed as core.null). */

#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* realpath */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "compat.h"

#define SFR_VERSION "0.1.0"

#include "error.c"
#include "request.c"
#include "session.c"
#include "crypto.c"
#include "inflate.c"
#include "shape.c"

/* core.decode(s) -> value | nil, err */
static int sfr_core_decode(lua_State *L)
{
    luaL_checkstring(L, 1);
    sfr_decode(L, lua_upvalueindex(1), 1);
    return 2;
}

/* core.classify(status, content_type?, body, headers?, allow_empty?, raw?, expected?)
 *   -> value | nil, err
 * For transports that do their own I/O (the nginx cosocket one). expected: the media
 * type a request's sink waited for (plan.stream_type), for an answer that did not stream. */
static int sfr_core_classify(lua_State *L)
{
    long status;
    const char *ctype, *location = NULL;
    int allow_empty;
    double retry_after = -1;
    const char *expected;
    lua_settop(L, 7); /* fixed slots: the body may be replaced in place below */
    {
        /* checked before the cast: on 5.1/LuaJIT luaL_checkinteger casts NaN as is */
        double st = luaL_checknumber(L, 1);
        if (!sfr_in_range(st, 0, 999))
            return luaL_error(L, "sfreports: classify expects an HTTP status from 0 to 999");
        status = (long)st;
    }
    ctype = luaL_optstring(L, 2, NULL);
    allow_empty = lua_toboolean(L, 5);
    if (lua_istable(L, 4)) {
        lua_getfield(L, 4, "retry-after");
        if (lua_type(L, -1) == LUA_TSTRING)
            retry_after = sfr_header_number(lua_tostring(L, -1));
        lua_getfield(L, 4, "location");
        if (lua_type(L, -1) == LUA_TSTRING)
            location = lua_tostring(L, -1);
        lua_replace(L, 4); /* keeps the location string alive; the headers are read */
        lua_pop(L, 1);
    }
    if (lua_isnoneornil(L, 3)) {
        lua_pushliteral(L, "");
        lua_replace(L, 3);
    }
    luaL_checkstring(L, 3);
    expected = luaL_optstring(L, 7, NULL);
    sfr_classify(L, lua_upvalueindex(1), status, ctype, 3, allow_empty, lua_toboolean(L, 6), retry_after,
                 location, expected);
    return 2;
}

/* core.sleep(seconds): blocks the calling thread. Not for use inside nginx. */
static int sfr_core_sleep(lua_State *L)
{
    double secs = luaL_checknumber(L, 1);
    struct timespec ts, rem;
    if (secs != secs || secs - secs != 0) /* NaN, or an infinity */
        return luaL_error(L, "sfreports: sleep expects a finite number of seconds");
    if (secs <= 0)
        return 0;
    if (secs > SFR_MAX_SECONDS)
        return luaL_error(L, "sfreports: sleep expects at most %d seconds", (int)SFR_MAX_SECONDS);
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &rem) != 0 && errno == EINTR)
        ts = rem;
    return 0;
}

/* core.monotime() -> seconds from an arbitrary start, never going backwards */
static int sfr_core_monotime(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 1;
}

/* core.file_kind(path) -> kind[, target]: what a name an output is written to stands for,
 * so that a whole file is renamed into place only where that is right. kind: "missing",
 * "file" (a regular file, or a symbolic link to one: target is then the file's real
 * path, so that the link stays and the file it names is replaced), "directory", or
 * "other" (a device such as /dev/null, a FIFO, a socket: renaming over it would replace
 * the device itself, so it is written in place). */
static int sfr_core_file_kind(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st, lst;
    if (stat(path, &st) != 0) {
        lua_pushliteral(L, "missing");
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        lua_pushliteral(L, "directory");
        return 1;
    }
    if (!S_ISREG(st.st_mode)) {
        lua_pushliteral(L, "other");
        return 1;
    }
    lua_pushliteral(L, "file");
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        char *real = realpath(path, NULL); /* malloc'd: freed before anything can raise */
        if (real == NULL)
            return 1;
        lua_pushstring(L, real); /* may raise (memory): copy first, then free */
        free(real);
        return 2;
    }
    return 1;
}

/* Functions that share the core's private cjson decode (upvalue 1). */
static const luaL_Reg sfr_core_funcs[] = {
    { "decode", sfr_core_decode },
    { "classify", sfr_core_classify },
    { "session", sfr_session_new },
    { NULL, NULL }
};

/* Functions without upvalues. */
static const luaL_Reg sfr_core_plain_funcs[] = {
    { "gunzip", sfr_core_gunzip },
    { "inflater", sfr_core_inflater },
    { "sign_rs256", sfr_core_sign_rs256 },
    { "verify_rs256", sfr_core_verify_rs256 },
    { "base64url", sfr_core_base64url },
    { "new_error", sfr_new_error },
    { "sleep", sfr_core_sleep },
    { "monotime", sfr_core_monotime },
    { "file_kind", sfr_core_file_kind },
    { "scan_facts", sfr_core_scan_facts },
    { NULL, NULL }
};

/* Pushes a private cjson decode function; raises if lua-cjson is missing. */
static void sfr_push_cjson_decode(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);              /* a private instance */
    lua_getfield(L, -1, "decode");
    lua_replace(L, -3);
    lua_pop(L, 1);
}

static void sfr_push_cjson_null(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "null");
    lua_replace(L, -2);
}

#if defined(__GNUC__)
#define SFR_EXPORT __attribute__((visibility("default")))
#else
#define SFR_EXPORT
#endif

SFR_EXPORT int luaopen_sfreports_core(lua_State *L);

SFR_EXPORT int luaopen_sfreports_core(lua_State *L)
{
    /* curl_global_init is not thread-safe before 7.84; it runs once per process here,
     * and curl keeps its own count, so several Lua states may load the module. */
    curl_global_init(CURL_GLOBAL_DEFAULT);

    luaL_newmetatable(L, SFR_ERROR_MT);
    lua_pushcfunction(L, sfr_error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    lua_newtable(L);
    sfr_push_cjson_decode(L);
    lua_pushvalue(L, -1);
    sfr_session_register(L);          /* pops one copy of decode */
    sfr_setfuncs(L, sfr_core_funcs, 1);

    sfr_request_register(L);
    sfr_inflate_register(L);
    sfr_setfuncs(L, sfr_core_plain_funcs, 0);
    luaL_getmetatable(L, SFR_ERROR_MT);
    lua_setfield(L, -2, "error_mt");
    sfr_push_cjson_null(L);
    lua_setfield(L, -2, "null");
    lua_pushliteral(L, SFR_VERSION);
    lua_setfield(L, -2, "VERSION");
    lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
    lua_setfield(L, -2, "curl_version");
    return 1;
}
