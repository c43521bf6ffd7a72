/* error.c: structured errors and the classification of HTTP responses.
 * Part of the sfreports.core unity build (included by core.c); everything here is static.
 *
 * An error is a Lua table { kind, message, status?, code?, retryable, ... } whose metatable
 * ("sfreports.error", exposed as core.error_mt) gives it __tostring. The same
 * classification serves the libcurl engine and the nginx cosocket transport
 * (core.classify), so a response means the same thing whichever way it arrived. */

#include <ctype.h>
#include <string.h>
#include <stdlib.h>

#define SFR_ERROR_MT "sfreports.error"
#define SFR_EXCERPT 200

/* Pushes a new error table. code may be NULL, status 0 when there was no HTTP status. */
static void sfr_push_error(lua_State *L, const char *kind, const char *message,
                           long status, const char *code, int retryable)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    if (status > 0) {
        lua_pushinteger(L, (lua_Integer)status);
        lua_setfield(L, -2, "status");
    }
    if (code != NULL) {
        lua_pushstring(L, code);
        lua_setfield(L, -2, "code");
    }
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
    luaL_getmetatable(L, SFR_ERROR_MT);
    lua_setmetatable(L, -2);
}

/* Adds s to the buffer with every control character as a space: an error prints as one
 * line whatever its fields hold. */
static void sfr_add_one_line(luaL_Buffer *b, const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        luaL_addchar(b, (c < 32 || c == 127) ? ' ' : (char)c);
    }
}

/* The text of field slot i when it is a string or a number, else NULL (a field of
 * another type, set by a caller or read from a server, is left out, never read). */
static const char *sfr_field_text(lua_State *L, int i, size_t *len)
{
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return NULL;
    return lua_tolstring(L, i, len); /* converts the slot's copy, not the table's value */
}

/* __tostring: "sfreports: <kind> error (HTTP <status>, <code>): <message>" */
static int sfr_error_tostring(lua_State *L)
{
    luaL_Buffer b;
    const char *kind, *status, *code, *message;
    size_t kind_len = 7, status_len = 0, code_len = 0, message_len = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "kind");
    lua_getfield(L, 1, "status");
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "message");
    kind = sfr_field_text(L, 2, &kind_len);
    status = sfr_field_text(L, 3, &status_len);
    code = sfr_field_text(L, 4, &code_len);
    message = sfr_field_text(L, 5, &message_len);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "sfreports: ");
    if (kind != NULL)
        sfr_add_one_line(&b, kind, kind_len);
    else
        luaL_addstring(&b, "unknown");
    luaL_addstring(&b, " error");
    if (status != NULL || code != NULL) {
        luaL_addstring(&b, " (");
        if (status != NULL) {
            luaL_addstring(&b, "HTTP ");
            sfr_add_one_line(&b, status, status_len);
            if (code != NULL)
                luaL_addstring(&b, ", ");
        }
        if (code != NULL)
            sfr_add_one_line(&b, code, code_len);
        luaL_addstring(&b, ")");
    }
    if (message != NULL) {
        luaL_addstring(&b, ": ");
        sfr_add_one_line(&b, message, message_len);
    }
    luaL_pushresult(&b);
    return 1;
}

/* core.new_error(t): gives t the error metatable and a boolean retryable; returns t. */
static int sfr_new_error(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "kind");
    if (!lua_isstring(L, -1))
        return luaL_argerror(L, 1, "error table needs a string 'kind'");
    lua_getfield(L, 1, "message");
    if (!lua_isstring(L, -1))
        return luaL_argerror(L, 1, "error table needs a string 'message'");
    lua_getfield(L, 1, "retryable");
    lua_pushboolean(L, lua_toboolean(L, -1));
    lua_setfield(L, 1, "retryable");
    lua_settop(L, 1);
    luaL_getmetatable(L, SFR_ERROR_MT);
    lua_setmetatable(L, 1);
    return 1;
}

/* Pushes a short, single-line, tag-free excerpt of a non-JSON body (an HTML error page). */
static void sfr_push_excerpt(lua_State *L, const char *body, size_t len)
{
    char out[SFR_EXCERPT + 4];
    size_t i, n = 0;
    int in_tag = 0, last_space = 1;
    for (i = 0; i < len && n < SFR_EXCERPT; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == '<') { in_tag = 1; continue; }
        if (c == '>') { in_tag = 0; c = ' '; }
        else if (in_tag) continue;
        if (isspace(c) || c < 32 || c == 127) {
            if (last_space) continue;
            c = ' ';
            last_space = 1;
        } else {
            last_space = 0;
        }
        out[n++] = (char)c;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    if (i < len && n == SFR_EXCERPT) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    lua_pushlstring(L, out, n);
}

#define SFR_TEXT_MAX 300 /* bytes kept of a server's message or code */

/* Pushes server text (len bytes) as one line: each control character becomes a space,
 * and text over max bytes is cut at a UTF-8 character boundary and ends in "...". A
 * server can neither clear a terminal through an error message nor fill a log. */
static void sfr_push_clean(lua_State *L, const char *s, size_t len, size_t max)
{
    luaL_Buffer b;
    size_t n = len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* s[n] continues a character: cut before that character */
    }
    luaL_buffinit(L, &b);
    sfr_add_one_line(&b, s, n);
    if (n < len)
        luaL_addstring(&b, "...");
    luaL_pushresult(&b);
}

static int sfr_ci_contains(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; hay != NULL && *hay; hay++)
        if (strncasecmp(hay, needle, nl) == 0)
            return 1;
    return 0;
}

static int sfr_status_retryable(long status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

/* Calls the private cjson decode (at decode_idx) on the string at body_idx, which is passed
 * as is: the body is never copied again. Leaves the value, or nil and an error, on the
 * stack (two slots). Never raises for bad JSON: decode runs under pcall.
 * A decode builds one tree of new objects (about 3.5 bytes per byte of JSON) and leaves no
 * garbage. When the body is most of the Lua heap (the rest is less than half the body's
 * size), the collector would mostly traverse the tree being built, for nothing (about 3%
 * of a large report's decode on Lua 5.4), and there is little garbage it could free
 * meanwhile: it is paused for the decode and resumed after, when the host has it running
 * (Lua 5.2+, where that can be asked). Not otherwise: garbage already there would wait
 * (peak memory), and resuming makes the collector due at once, which costs more than a
 * small decode saves. */
static void sfr_decode(lua_State *L, int decode_idx, int body_idx)
{
    int rc;
#if LUA_VERSION_NUM >= 502
    size_t len = 0;
    int paused = 0;
    if (lua_type(L, body_idx) == LUA_TSTRING) {
        (void)lua_tolstring(L, body_idx, &len);
        size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024;
        paused = heap < len + len / 2 && lua_gc(L, LUA_GCISRUNNING, 0) > 0;
    }
    if (paused)
        lua_gc(L, LUA_GCSTOP, 0);
#endif
    body_idx = sfr_absindex(L, body_idx);
    lua_pushvalue(L, decode_idx);
    lua_pushvalue(L, body_idx);
    rc = lua_pcall(L, 1, 1, 0);
#if LUA_VERSION_NUM >= 502
    if (paused)
        lua_gc(L, LUA_GCRESTART, 0);
#endif
    if (rc == 0) {
        lua_pushnil(L);
        return;
    }
    {
        /* cjson's message names the offending character; keep it, it has no secrets */
        const char *why = lua_isstring(L, -1) ? lua_tostring(L, -1) : "invalid JSON";
        lua_pushnil(L);
        lua_pushfstring(L, "response body is not valid JSON (%s)", why);
        sfr_push_error(L, "decode", lua_tostring(L, -1), 0, NULL, 0);
        lua_remove(L, -2); /* the formatted message */
        lua_remove(L, -3); /* cjson's message */
    }
}

/* Turns a decoded non-2xx JSON body (at index v) into an error on top of the stack. */
static void sfr_push_api_error(lua_State *L, int v, long status, double retry_after)
{
    const char *code = NULL, *msg = NULL, *kind;
    int retryable = sfr_status_retryable(status);
    v = sfr_absindex(L, v);
    if (lua_istable(L, v)) {
        lua_rawgeti(L, v, 1); /* Salesforce: [ {errorCode, message} ] */
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "errorCode");
            lua_getfield(L, -2, "message");
        } else {               /* OAuth: { error, error_description } */
            lua_getfield(L, v, "error");
            lua_getfield(L, v, "error_description");
        }
        if (lua_type(L, -2) == LUA_TSTRING) code = lua_tostring(L, -2);
        if (lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
        /* the three values stay on the stack so code/msg stay valid */
    } else {
        lua_pushnil(L); lua_pushnil(L); lua_pushnil(L);
    }
    if (status == 401 || (code && strcmp(code, "INVALID_SESSION_ID") == 0))
        kind = "auth";
    else if (status == 429 || (code && strcmp(code, "REQUEST_LIMIT_EXCEEDED") == 0)
             || ((status == 403 || status == 400) && msg
                 && (sfr_ci_contains(msg, "limit") || sfr_ci_contains(msg, "try again later"))))
        kind = "limit";
    else if (code != NULL && (status == 400 && (strcmp(code, "invalid_grant") == 0
                              || strcmp(code, "invalid_client") == 0
                              || strcmp(code, "invalid_client_id") == 0
                              || strcmp(code, "unauthorized_client") == 0)))
        kind = "auth";
    else
        kind = "api";
    /* the server's text, one line and bounded (the kind was decided on it as sent) */
    if (code != NULL) {
        size_t n;
        code = lua_tolstring(L, -2, &n);
        sfr_push_clean(L, code, n, SFR_TEXT_MAX);
        lua_replace(L, -3);
        code = lua_tostring(L, -2);
    }
    if (msg != NULL) {
        size_t n;
        msg = lua_tolstring(L, -1, &n);
        sfr_push_clean(L, msg, n, SFR_TEXT_MAX);
        lua_replace(L, -2);
        msg = lua_tostring(L, -1);
    }
    if (msg == NULL) {
        lua_pushfstring(L, "HTTP %d with no error message", (int)status);
        msg = lua_tostring(L, -1);
    } else {
        lua_pushnil(L);
    }
    sfr_push_error(L, kind, msg, status, code, retryable || strcmp(kind, "limit") == 0);
    if (retry_after >= 0) {
        lua_pushnumber(L, retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    if (lua_istable(L, v)) {
        lua_rawgeti(L, v, 1);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "fields");
            lua_setfield(L, -3, "fields");
        }
        lua_pop(L, 1);
    }
    lua_replace(L, -5); /* error over the first pushed slot */
    lua_pop(L, 3);
}

static int sfr_is_json_type(const char *ctype)
{
    return ctype == NULL || *ctype == '\0' || sfr_ci_contains(ctype, "json");
}

static int sfr_body_blank(const char *body, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (!isspace((unsigned char)body[i]))
            return 0;
    return 1;
}

/* Classifies a complete response whose body is the string at body_idx. Leaves two values:
 * (value, nil) or (nil, err). allow_empty: an empty 2xx body is success (DELETE, 204) and
 * yields true. raw: a 2xx JSON body is the value as is, undecoded. retry_after: seconds
 * from a Retry-After header, or -1. location: the Location header or NULL (a 3xx answer
 * is an `http` error naming it: no engine follows redirects). expected: NULL, or the
 * media type a request's sink waited for (then every 2xx reaching here is an error:
 * the answer was not that type, or had no body). Text from the server
 * (message, code, content type, excerpt) goes into errors as one bounded line. */
/* Pushes the redirect error of a 3xx answer: where it pointed (scheme, host and path of
 * the Location, never its query, fragment or userinfo, which may carry a session id;
 * one line, bounded) and that redirects are not followed. */
static void sfr_push_redirect_error(lua_State *L, long status, const char *location)
{
    if (location != NULL && *location != '\0') {
        size_t n = strcspn(location, "?#");
        const char *at = memchr(location, '@', n);
        const char *scheme_end = strstr(location, "://");
        lua_pushfstring(L, "HTTP %d redirect to ", (int)status);
        if (at != NULL && scheme_end != NULL && scheme_end < at) {
            /* scheme:// then what follows the userinfo */
            sfr_push_clean(L, location, (size_t)(scheme_end + 3 - location), SFR_EXCERPT);
            sfr_push_clean(L, at + 1, n - (size_t)(at + 1 - location), SFR_EXCERPT);
            lua_concat(L, 2);
        } else {
            sfr_push_clean(L, location, n, SFR_EXCERPT);
        }
        lua_pushliteral(L, "; sfreports does not follow redirects");
        lua_concat(L, 3);
    } else {
        lua_pushfstring(L, "HTTP %d redirect without a Location; sfreports does not follow redirects",
                        (int)status);
    }
    sfr_push_error(L, "http", lua_tostring(L, -1), status, NULL, 0);
    lua_remove(L, -2);
}

static void sfr_classify(lua_State *L, int decode_idx, long status, const char *ctype,
                         int body_idx, int allow_empty, int raw, double retry_after,
                         const char *location, const char *expected)
{
    size_t len;
    const char *body;
    body_idx = sfr_absindex(L, body_idx);
    body = lua_tolstring(L, body_idx, &len);
    int blank = sfr_body_blank(body, len);
    if (status >= 200 && status < 300 && expected != NULL) {
        /* a sink waited for `expected` (sfr_streams said no): a 2xx of another type, or
         * one without a body, is not the file that was asked for */
        lua_pushnil(L);
        lua_pushfstring(L, "HTTP %d with ", (int)status);
        if (blank) {
            lua_pushliteral(L, "an empty body where ");
            sfr_push_clean(L, expected, strlen(expected), 100);
            lua_pushliteral(L, " was expected");
            lua_concat(L, 4);
        } else {
            lua_pushliteral(L, "content type ");
            sfr_push_clean(L, ctype ? ctype : "(none)", strlen(ctype ? ctype : "(none)"), 100);
            lua_pushliteral(L, " where ");
            sfr_push_clean(L, expected, strlen(expected), 100);
            lua_pushliteral(L, " was expected: ");
            sfr_push_excerpt(L, body, len);
            lua_concat(L, 7);
        }
        sfr_push_error(L, blank ? "decode" : "http", lua_tostring(L, -1), status, NULL, 0);
        lua_remove(L, -2);
        return;
    }
    if (status >= 200 && status < 300) {
        if (blank) {
            if (allow_empty || status == 204) {
                lua_pushboolean(L, 1);
                lua_pushnil(L);
            } else {
                lua_pushnil(L);
                lua_pushfstring(L, "HTTP %d with an empty body where JSON was expected", (int)status);
                sfr_push_error(L, "decode", lua_tostring(L, -1), status, NULL, 1);
                lua_remove(L, -2);
            }
            return;
        }
        if (!sfr_is_json_type(ctype)) {
            lua_pushnil(L);
            lua_pushfstring(L, "HTTP %d with content type ", (int)status);
            sfr_push_clean(L, ctype, strlen(ctype), 100);
            lua_pushliteral(L, " where JSON was expected: ");
            sfr_push_excerpt(L, body, len);
            lua_concat(L, 4);
            sfr_push_error(L, "http", lua_tostring(L, -1), status, NULL, 0);
            lua_remove(L, -2);
            return;
        }
        if (raw) {
            lua_pushvalue(L, body_idx);
            lua_pushnil(L);
            return;
        }
        sfr_decode(L, decode_idx, body_idx);
        if (!lua_isnil(L, -1)) {
            lua_pushinteger(L, (lua_Integer)status);
            lua_setfield(L, -2, "status");
        }
        return;
    }
    /* not 2xx */
    if (status >= 300 && status < 400) {
        lua_pushnil(L);
        sfr_push_redirect_error(L, status, location);
        return;
    }
    if (!blank && sfr_is_json_type(ctype) && (body[0] == '[' || body[0] == '{' || isspace((unsigned char)body[0]))) {
        sfr_decode(L, decode_idx, body_idx);
        if (lua_isnil(L, -1)) { /* decoded */
            lua_pop(L, 1);
            sfr_push_api_error(L, -1, status, retry_after);
            lua_remove(L, -2);
            lua_pushnil(L);
            lua_insert(L, -2);
            return;
        }
        lua_pop(L, 2); /* not JSON after all: fall through to the excerpt */
    }
    lua_pushnil(L);
    if (blank)
        lua_pushliteral(L, "empty response body");
    else {
        lua_pushliteral(L, "non-JSON response body: ");
        sfr_push_excerpt(L, body, len);
        lua_concat(L, 2);
    }
    sfr_push_error(L, status == 401 ? "auth" : "http", lua_tostring(L, -1), status, NULL,
                   sfr_status_retryable(status));
    lua_remove(L, -2);
    if (retry_after >= 0) {
        lua_pushnumber(L, retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    if (!blank) {
        sfr_push_excerpt(L, body, len);
        lua_setfield(L, -2, "excerpt");
    }
}
