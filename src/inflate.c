/* inflate.c: gzip inflation for transports that receive compressed bodies themselves
 * (nginx cosockets). Part of the sfreports.core unity build.
 *
 *   core.inflater(max_bytes?) -> inflater     a streaming gunzip, fed as bytes arrive:
 *     inflater:feed(data, parts) -> total | nil, err    appends plain pieces to `parts`
 *     inflater:finish() -> total | nil, err             the stream must have ended
 *     inflater:close()                                  (also __gc and __close)
 *   core.gunzip(data, max_bytes?) -> string | nil, err  the whole body at once
 *
 * A gzip bomb is stopped as soon as the plain bytes pass max_bytes, so a worker never
 * holds more than about max_bytes of output (plus one 32 KB piece), whatever the ratio.
 * The z_stream is owned by a userdata with __gc: a memory error raised while a piece is
 * pushed leaves nothing behind. Errors: `limit` (past max_bytes) and `decode` (corrupt or
 * truncated stream; retryable as core.gunzip always said, the transport decides);
 * after one, every feed answers the same error. */

#include <zlib.h>

#define SFR_INFLATER_MT "sfreports.inflater"

enum { SFR_Z_OK = 0, SFR_Z_LIMIT, SFR_Z_CORRUPT, SFR_Z_TRUNCATED };

typedef struct {
    z_stream zs;
    int live;     /* zs needs inflateEnd */
    int ended;    /* the gzip stream is complete: later bytes are ignored */
    int failed;   /* an SFR_Z_* error, sticky */
    int closed;   /* close() was called: using it again is a bug */
    double max;   /* 0: no limit */
    double total; /* plain bytes produced so far */
} sfr_inflater;

static void sfr_inflater_end(sfr_inflater *z)
{
    if (z->live) {
        inflateEnd(&z->zs);
        z->live = 0;
    }
}

static int sfr_inflater_gc(lua_State *L)
{
    sfr_inflater_end(luaL_checkudata(L, 1, SFR_INFLATER_MT));
    return 0;
}

/* Pushes a new inflater; raises when zlib cannot start (out of memory). */
static sfr_inflater *sfr_inflater_push(lua_State *L, double max)
{
    sfr_inflater *z;
    if (max != max || max < 0)
        luaL_error(L, "sfreports: the inflater's max_bytes must be a number >= 0");
    z = lua_newuserdata(L, sizeof(*z));
    memset(z, 0, sizeof(*z));
    luaL_getmetatable(L, SFR_INFLATER_MT);
    lua_setmetatable(L, -2);
    if (inflateInit2(&z->zs, 16 + MAX_WBITS) != Z_OK)
        luaL_error(L, "sfreports: inflateInit2 failed");
    z->live = 1;
    z->max = max;
    return z;
}

/* Where plain pieces go: appended to the table at index `parts`, or to a luaL_Buffer. */
typedef struct {
    int parts;        /* stack index of the table, 0 when b is used */
    luaL_Buffer *b;
} sfr_sink;

static void sfr_sink_put(lua_State *L, sfr_sink *s, const char *p, size_t n)
{
    if (s->parts) {
        lua_pushlstring(L, p, n);
        lua_rawseti(L, s->parts, (int)sfr_rawlen(L, s->parts) + 1);
    } else {
        luaL_addlstring(s->b, p, n);
    }
}

/* Inflates n bytes of input into the sink. Returns SFR_Z_OK or an SFR_Z_* error; on an
 * error the stream is ended and the error kept. Input after the end is ignored. */
static int sfr_inflater_step(lua_State *L, sfr_inflater *z, const char *in, size_t n, sfr_sink *sink)
{
    char out[32768];
    if (z->failed || z->ended)
        return z->failed;
    while (n > 0 && !z->ended && !z->failed) {
        /* avail_in is a uInt: a larger input goes in slices */
        uInt slice = n > 0x40000000u ? 0x40000000u : (uInt)n;
        size_t used;
        int rc;
        z->zs.next_in = (Bytef *)in;
        z->zs.avail_in = slice;
        do {
            size_t got;
            z->zs.next_out = (Bytef *)out;
            z->zs.avail_out = sizeof(out);
            rc = inflate(&z->zs, Z_NO_FLUSH);
            /* Z_BUF_ERROR: no progress without more input, which the next feed brings */
            if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
                z->failed = SFR_Z_CORRUPT;
                break;
            }
            got = sizeof(out) - z->zs.avail_out;
            z->total += (double)got;
            if (z->max > 0 && z->total > z->max) {
                z->failed = SFR_Z_LIMIT;
                break;
            }
            if (got > 0)
                sfr_sink_put(L, sink, out, got);
            if (rc == Z_STREAM_END)
                z->ended = 1;
        } while (rc == Z_OK && (z->zs.avail_in > 0 || z->zs.avail_out == 0));
        used = slice - z->zs.avail_in;
        if (used == 0)
            break;
        in += used;
        n -= used;
    }
    if (z->failed || z->ended)
        sfr_inflater_end(z);
    return z->failed;
}

/* Pushes nil and the error for code; returns 2. */
static int sfr_inflate_error(lua_State *L, int code)
{
    lua_pushnil(L);
    if (code == SFR_Z_LIMIT)
        sfr_push_error(L, "limit", "decompressed response larger than max_response", 0, NULL, 0);
    else
        sfr_push_error(L, "decode", code == SFR_Z_TRUNCATED ? "gzip stream is truncated"
                                                            : "gzip stream is corrupt", 0, NULL, 1);
    return 2;
}

static sfr_inflater *sfr_check_inflater(lua_State *L)
{
    sfr_inflater *z = luaL_checkudata(L, 1, SFR_INFLATER_MT);
    if (z->closed)
        luaL_error(L, "sfreports: the inflater is closed");
    return z;
}

/* core.inflater(max_bytes?) */
static int sfr_core_inflater(lua_State *L)
{
    sfr_inflater_push(L, luaL_optnumber(L, 1, 0));
    return 1;
}

/* inflater:feed(data, parts) -> total plain bytes so far | nil, err */
static int sfr_inflater_feed(lua_State *L)
{
    sfr_inflater *z = sfr_check_inflater(L);
    size_t n;
    const char *in = luaL_checklstring(L, 2, &n);
    sfr_sink sink;
    int rc;
    luaL_checktype(L, 3, LUA_TTABLE);
    sink.parts = 3;
    sink.b = NULL;
    rc = sfr_inflater_step(L, z, in, n, &sink);
    if (rc != SFR_Z_OK)
        return sfr_inflate_error(L, rc);
    lua_pushinteger(L, (lua_Integer)z->total);
    return 1;
}

/* inflater:finish() -> total | nil, err (truncated when the stream has not ended) */
static int sfr_inflater_finish(lua_State *L)
{
    sfr_inflater *z = sfr_check_inflater(L);
    if (z->failed)
        return sfr_inflate_error(L, z->failed);
    if (!z->ended) {
        sfr_inflater_end(z);
        z->failed = SFR_Z_TRUNCATED;
        return sfr_inflate_error(L, z->failed);
    }
    lua_pushinteger(L, (lua_Integer)z->total);
    return 1;
}

/* inflater:close(): frees the zlib state now (closing twice is harmless) */
static int sfr_inflater_close(lua_State *L)
{
    sfr_inflater *z = luaL_checkudata(L, 1, SFR_INFLATER_MT);
    sfr_inflater_end(z);
    z->closed = 1;
    return 0;
}

/* core.gunzip(data, max_bytes?) -> string | nil, err(decode or limit) */
static int sfr_core_gunzip(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    sfr_inflater *z = sfr_inflater_push(L, luaL_optnumber(L, 2, 0));
    luaL_Buffer b;
    sfr_sink sink;
    int rc;
    luaL_buffinit(L, &b);
    sink.parts = 0;
    sink.b = &b;
    rc = sfr_inflater_step(L, z, in, n, &sink);
    if (rc == SFR_Z_OK && !z->ended)
        rc = SFR_Z_TRUNCATED;
    sfr_inflater_end(z);
    if (rc != SFR_Z_OK)
        return sfr_inflate_error(L, rc);
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg sfr_inflater_methods[] = {
    { "feed", sfr_inflater_feed },
    { "finish", sfr_inflater_finish },
    { "close", sfr_inflater_close },
    { NULL, NULL }
};

static void sfr_inflate_register(lua_State *L)
{
    luaL_newmetatable(L, SFR_INFLATER_MT);
    lua_pushcfunction(L, sfr_inflater_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, sfr_inflater_close);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    sfr_setfuncs(L, sfr_inflater_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
