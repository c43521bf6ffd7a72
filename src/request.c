/* request.c: the one description of an HTTP request, shared by both engines.
 * Part of the sfreports.core unity build (included by core.c); everything here is static.
 *
 * An engine's options (base URL, token, user agent, timeouts, limits) are read and checked
 * once, into an sfr_conf: the libcurl session embeds one, the nginx cosocket transport
 * holds one as a userdata (core.request_conf). A request (method, path, body, headers,
 * raw, per-request timeout) is then checked and described by sfr_plan_make: the URL and
 * its parts, the header lines (defaults, bearer token only to the session's own host,
 * Content-Type when a body is sent), the body and how the answer is taken. The libcurl
 * engine turns the description into an easy handle; the cosocket transport gets it as a
 * table (core.plan_request) and only frames it (request line, Host, Content-Length).
 * So path safety, header control characters (user_agent and token included), defaults
 * and body rules are stated here and nowhere else. Report runs (run_sync, run_async,
 * fetch_instance) are described here too (sfr_plan_run, sfr_plan_instance).
 *
 * Misuse raises naming the option or argument; a URL nothing can be sent to (a base URL
 * or absolute URL that is not http(s)://host[:port]/...) is a runtime `invalid` error. */

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SFR_CONF_MT "sfreports.request_conf"

/* The defaults of every engine option, exported as core.DEFAULTS. */
#define SFR_DEFAULT_API_VERSION "67.0"
#define SFR_DEFAULT_TIMEOUT 150.0
#define SFR_DEFAULT_CONNECT_TIMEOUT 10.0
#define SFR_DEFAULT_STALL_TIMEOUT 130.0
#define SFR_DEFAULT_MAX_RESPONSE (256.0 * 1024 * 1024)
#define SFR_DEFAULT_USER_AGENT "sfreports/" SFR_VERSION

/* Bounds that keep every later cast defined: seconds become int/long milliseconds
 * (INT_MAX ms is about 24.8 days), a byte count becomes a size_t (2^48 bytes). */
#define SFR_MAX_SECONDS ((double)(INT_MAX / 1000))
#define SFR_MAX_BYTES 281474976710656.0

typedef struct {
    char *base_url;        /* scheme://host[:port], no trailing slash */
    char *api_version;     /* "67.0" */
    char *auth_header;     /* "Authorization: Bearer ..." (a secret: never printed) */
    char *user_agent;
    char *cafile, *capath, *proxy;
    double timeout, connect_timeout, stall_timeout; /* seconds, checked; 0: none */
    double max_response;   /* bytes, a whole number, checked; 0: no limit */
    int verify;
} sfr_conf;

/* ---------- numbers from Lua ---------- */

/* True when v is a number from lo to hi: false for NaN and the infinities. */
static int sfr_in_range(double v, double lo, double hi)
{
    return v >= lo && v <= hi; /* every comparison with NaN is false */
}

/* Raises unless v is a finite number from 0 to hi; names the option. */
static double sfr_check_option_number(lua_State *L, double v, const char *name, double hi)
{
    if (!sfr_in_range(v, 0, DBL_MAX))
        luaL_error(L, "sfreports: option '%s' must be a finite number >= 0", name);
    if (v > hi) {
        char num[32];
        snprintf(num, sizeof(num), "%.0f", hi);
        luaL_error(L, "sfreports: option '%s' must be at most %s", name, num);
    }
    return v;
}

/* Seconds (a checked number) as milliseconds for curl: rounded up, so that a positive
 * timeout never becomes 0 (which curl reads as "no timeout"). */
static long sfr_ms(double seconds)
{
    double ms = ceil(seconds * 1000.0);
    return ms > (double)INT_MAX ? INT_MAX : (long)ms;
}

/* Pushes v, as an integer when it is a whole number (so 150 prints as 150 on 5.3+). */
static void sfr_push_number(lua_State *L, double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

/* ---------- options ---------- */

/* True when s (len bytes) holds a control character (CR, LF, NUL...): one in a header
 * would let a value add headers of its own or split the request. */
static int sfr_has_ctl(const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] < 32 || s[i] == 127)
            return 1;
    return 0;
}

/* Raises unless the string at index i is safe inside a header line (the message never
 * shows the value: it may be a token). */
static const char *sfr_check_header_value(lua_State *L, int i, const char *what)
{
    size_t len;
    const char *v = lua_tolstring(L, i, &len);
    if (sfr_has_ctl(v, len))
        luaL_error(L, "sfreports: %s must not contain control characters (CR, LF, NUL)", what);
    return v;
}

/* Reads string option `name` of the table at t (nil: dflt, which may be NULL) into a
 * malloc'd copy stored at *dst at once, so a later raise cannot leak it. what: how a
 * header check names the value, or NULL when the value is not sent in a header. */
static void sfr_conf_string(lua_State *L, int t, const char *name, const char *dflt, char **dst,
                            const char *what)
{
    const char *v = dflt;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "sfreports: option '%s' must be a string", name);
        if (what != NULL)
            sfr_check_header_value(L, -1, what);
        v = lua_tostring(L, -1);
    }
    if (v != NULL) {
        *dst = strdup(v);
        if (*dst == NULL)
            luaL_error(L, "sfreports: out of memory");
    }
    lua_pop(L, 1);
}

static double sfr_conf_number(lua_State *L, int t, const char *name, double dflt, double hi)
{
    double v = dflt;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "sfreports: option '%s' must be a number", name);
        v = sfr_check_option_number(L, lua_tonumber(L, -1), name, hi);
    }
    lua_pop(L, 1);
    return v;
}

static void sfr_free_secret(char **p)
{
    if (*p) {
        memset(*p, 0, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

/* Releases every string of c; safe on a half-read conf and when called twice. */
static void sfr_conf_free(sfr_conf *c)
{
    free(c->base_url); c->base_url = NULL;
    free(c->api_version); c->api_version = NULL;
    sfr_free_secret(&c->auth_header);
    free(c->user_agent); c->user_agent = NULL;
    free(c->cafile); c->cafile = NULL;
    free(c->capath); c->capath = NULL;
    free(c->proxy); c->proxy = NULL;
}

/* "Authorization: Bearer <token>" for the token at index i (checked); NULL: no memory. */
static char *sfr_make_auth_header(lua_State *L, int i)
{
    static const char prefix[] = "Authorization: Bearer ";
    size_t len;
    const char *token = sfr_check_header_value(L, i, "token");
    char *h;
    (void)lua_tolstring(L, i, &len);
    h = malloc(sizeof(prefix) + len);
    if (h != NULL) {
        memcpy(h, prefix, sizeof(prefix) - 1);
        memcpy(h + sizeof(prefix) - 1, token, len + 1);
    }
    return h;
}

/* Replaces c's token with the string at index i (raises on misuse). */
static void sfr_conf_set_token(lua_State *L, sfr_conf *c, int i)
{
    char *h;
    if (lua_type(L, i) != LUA_TSTRING)
        luaL_error(L, "sfreports: option 'token' must be a string");
    h = sfr_make_auth_header(L, i);
    if (h == NULL)
        luaL_error(L, "sfreports: out of memory");
    sfr_free_secret(&c->auth_header);
    c->auth_header = h;
}

/* Reads the engine options of the table at t into c (zeroed by the caller, owned by a
 * userdata): every field type-checked, every number finite and in range, defaults from
 * SFR_DEFAULT_*. Raises naming the option. */
static void sfr_conf_read(lua_State *L, int t, sfr_conf *c)
{
    size_t n;
    t = sfr_absindex(L, t);
    sfr_conf_string(L, t, "base_url", NULL, &c->base_url, NULL);
    if (c->base_url == NULL)
        luaL_error(L, "sfreports: option 'base_url' is required");
    n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/')
        c->base_url[--n] = '\0';
    sfr_conf_string(L, t, "api_version", SFR_DEFAULT_API_VERSION, &c->api_version, NULL);
    sfr_conf_string(L, t, "user_agent", SFR_DEFAULT_USER_AGENT, &c->user_agent, "user_agent");
    sfr_conf_string(L, t, "cafile", NULL, &c->cafile, NULL);
    sfr_conf_string(L, t, "capath", NULL, &c->capath, NULL);
    sfr_conf_string(L, t, "proxy", NULL, &c->proxy, NULL);
    c->timeout = sfr_conf_number(L, t, "timeout", SFR_DEFAULT_TIMEOUT, SFR_MAX_SECONDS);
    c->connect_timeout = sfr_conf_number(L, t, "connect_timeout", SFR_DEFAULT_CONNECT_TIMEOUT,
                                         SFR_MAX_SECONDS);
    c->stall_timeout = sfr_conf_number(L, t, "stall_timeout", SFR_DEFAULT_STALL_TIMEOUT, SFR_MAX_SECONDS);
    c->max_response = floor(sfr_conf_number(L, t, "max_response", SFR_DEFAULT_MAX_RESPONSE, SFR_MAX_BYTES));
    lua_getfield(L, t, "verify");
    c->verify = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "token");
    if (!lua_isnil(L, -1))
        sfr_conf_set_token(L, c, -1);
    lua_pop(L, 1);
}

static char *sfr_strdup_or_null(lua_State *L, const char *s)
{
    char *d;
    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        luaL_error(L, "sfreports: out of memory");
    return d;
}

/* Copies src into dst (zeroed, owned by a userdata): each string is stored before the
 * next allocation, so a raise leaks nothing. */
static void sfr_conf_copy(lua_State *L, sfr_conf *dst, const sfr_conf *src)
{
    dst->timeout = src->timeout;
    dst->connect_timeout = src->connect_timeout;
    dst->stall_timeout = src->stall_timeout;
    dst->max_response = src->max_response;
    dst->verify = src->verify;
    dst->base_url = sfr_strdup_or_null(L, src->base_url);
    dst->api_version = sfr_strdup_or_null(L, src->api_version);
    dst->user_agent = sfr_strdup_or_null(L, src->user_agent);
    dst->cafile = sfr_strdup_or_null(L, src->cafile);
    dst->capath = sfr_strdup_or_null(L, src->capath);
    dst->proxy = sfr_strdup_or_null(L, src->proxy);
    dst->auth_header = sfr_strdup_or_null(L, src->auth_header);
}

static void sfr_set_string_field(lua_State *L, const char *name, const char *v)
{
    if (v != NULL) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, name);
    }
}

/* Pushes c's options as a table (never the token). */
static void sfr_push_conf_options(lua_State *L, const sfr_conf *c)
{
    lua_createtable(L, 0, 12);
    sfr_set_string_field(L, "base_url", c->base_url);
    sfr_set_string_field(L, "api_version", c->api_version);
    sfr_set_string_field(L, "user_agent", c->user_agent);
    sfr_set_string_field(L, "cafile", c->cafile);
    sfr_set_string_field(L, "capath", c->capath);
    sfr_set_string_field(L, "proxy", c->proxy);
    sfr_push_number(L, c->timeout);
    lua_setfield(L, -2, "timeout");
    sfr_push_number(L, c->connect_timeout);
    lua_setfield(L, -2, "connect_timeout");
    sfr_push_number(L, c->stall_timeout);
    lua_setfield(L, -2, "stall_timeout");
    sfr_push_number(L, c->max_response);
    lua_setfield(L, -2, "max_response");
    lua_pushboolean(L, c->verify);
    lua_setfield(L, -2, "verify");
    lua_pushboolean(L, c->auth_header != NULL);
    lua_setfield(L, -2, "has_token");
}

/* Pushes core.DEFAULTS: the default of every engine option. */
static void sfr_push_defaults(lua_State *L)
{
    lua_createtable(L, 0, 7);
    lua_pushliteral(L, SFR_DEFAULT_API_VERSION);
    lua_setfield(L, -2, "api_version");
    sfr_push_number(L, SFR_DEFAULT_TIMEOUT);
    lua_setfield(L, -2, "timeout");
    sfr_push_number(L, SFR_DEFAULT_CONNECT_TIMEOUT);
    lua_setfield(L, -2, "connect_timeout");
    sfr_push_number(L, SFR_DEFAULT_STALL_TIMEOUT);
    lua_setfield(L, -2, "stall_timeout");
    sfr_push_number(L, SFR_DEFAULT_MAX_RESPONSE);
    lua_setfield(L, -2, "max_response");
    lua_pushliteral(L, SFR_DEFAULT_USER_AGENT);
    lua_setfield(L, -2, "user_agent");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "verify");
}

/* ---------- URLs and paths ---------- */

typedef struct {
    size_t scheme_len;            /* "http" or "https" */
    size_t auth_off, auth_len;    /* authority: host[:port], brackets kept */
    size_t host_off, host_len;    /* host, without brackets */
    size_t target_off, target_len;/* path and query, without the fragment ("" means "/") */
    long port;
} sfr_url;

static int sfr_is_absolute(const char *p)
{
    return strncmp(p, "https://", 8) == 0 || strncmp(p, "http://", 7) == 0;
}

/* Splits an http(s) URL of len bytes into u. Returns 0 for a URL no engine may send to:
 * another scheme, userinfo ("@"), an empty host, a bad port, or a space or control
 * character anywhere. */
static int sfr_split_url(const char *s, size_t len, sfr_url *u)
{
    size_t i, a, e, port_off;
    if (len > 8 && strncmp(s, "https://", 8) == 0)
        u->scheme_len = 5;
    else if (len > 7 && strncmp(s, "http://", 7) == 0)
        u->scheme_len = 4;
    else
        return 0;
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 32 || s[i] == 127)
            return 0;
    a = u->scheme_len + 3;
    for (e = a; e < len && s[e] != '/' && s[e] != '?' && s[e] != '#'; e++)
        if (s[e] == '@')
            return 0;
    if (e == a)
        return 0;
    u->auth_off = a;
    u->auth_len = e - a;
    if (s[a] == '[') {
        size_t close = a + 1;
        while (close < e && s[close] != ']')
            close++;
        if (close >= e || close == a + 1)
            return 0;
        u->host_off = a + 1;
        u->host_len = close - a - 1;
        port_off = close + 1;
    } else {
        size_t colon = a;
        while (colon < e && s[colon] != ':')
            colon++;
        if (colon == a)
            return 0;
        u->host_off = a;
        u->host_len = colon - a;
        port_off = colon;
    }
    u->port = u->scheme_len == 5 ? 443 : 80;
    if (port_off < e) {
        long port = 0;
        if (s[port_off] != ':')
            return 0;
        for (i = port_off + 1; i < e; i++) {
            if (s[i] < '0' || s[i] > '9' || port > 65535)
                return 0;
            port = port * 10 + (s[i] - '0');
        }
        if (i > port_off + 1) {
            if (port < 1 || port > 65535)
                return 0;
            u->port = port;
        }
    }
    u->target_off = e;
    for (i = e; i < len && s[i] != '#'; i++)
        ;
    u->target_len = i - e;
    return 1;
}

/* Returns NULL when a relative request path is safe, else why it is not. The path is
 * built from ids and names that may come from users or from responses; whatever they
 * hold, the request must stay on the resource it names: no dot segments, no encoded or
 * backslash separators in the path part, no fragment, space or control character. */
static const char *sfr_path_problem(const char *p)
{
    const char *q;
    for (q = p; *q && *q != '?'; q++) {
        if (*q == '\\')
            return "a backslash";
        if (*q == '%' && (strncasecmp(q, "%2e", 3) == 0 || strncasecmp(q, "%2f", 3) == 0
                          || strncasecmp(q, "%5c", 3) == 0))
            return "an encoded dot, slash or backslash";
        if (*q == '/' && q[1] == '.' && (q[2] == '/' || q[2] == '?' || q[2] == '\0'
                                         || (q[2] == '.' && (q[3] == '/' || q[3] == '?' || q[3] == '\0'))))
            return "a '.' or '..' segment";
    }
    for (q = p; *q; q++) {
        if ((unsigned char)*q <= 32 || *q == 127)
            return "a space or control character";
        if (*q == '#')
            return "a '#'";
    }
    return NULL;
}

/* ---------- the request description ---------- */

typedef struct {
    const char *method;
    const char *url;         /* anchored by the first value sfr_plan_make pushes */
    size_t url_len;
    sfr_url parts;
    int absolute;            /* an http(s) URL was given: no token goes with it */
    int send_body;           /* a body (maybe empty) and Content-Length go out */
    const char *body;        /* the caller's string (NULL: none), anchored by the caller */
    size_t body_len;
    int raw;                 /* a 2xx JSON answer is returned as its text, undecoded */
    int allow_empty;         /* an empty 2xx answer is success (DELETE, HEAD) */
    double timeout;          /* this request's total time cap in seconds; 0: the engine's */
    int sink;                /* ropts.sink: a 2xx answer of stream_type goes to that function in
                              * pieces as it arrives, never whole into memory */
    int ropts_idx;           /* the ropts table on the stack (holds the sink function) */
    const char *stream_type; /* with a sink: the caller's Accept header, the type that streams */
} sfr_plan;

static const char *const sfr_methods[] = { "GET", "POST", "DELETE", "PATCH", "PUT", "HEAD", NULL };

/* The method at index i, one of sfr_methods; raises otherwise. */
static const char *sfr_check_method(lua_State *L, int i)
{
    const char *m = lua_type(L, i) == LUA_TSTRING ? lua_tostring(L, i) : NULL;
    int k;
    for (k = 0; m != NULL && sfr_methods[k] != NULL; k++)
        if (strcmp(m, sfr_methods[k]) == 0)
            return sfr_methods[k];
    luaL_error(L, "sfreports: bad method '%s' (GET, POST, DELETE, PATCH, PUT, HEAD)",
               m != NULL ? m : luaL_typename(L, i));
    return NULL;
}

/* Reads per-request options at index i into p: nil/false (none), true (raw, the old
 * 5th argument) or a table { raw = bool, timeout = seconds (finite, > 0), start = bool,
 * sink = function }. Returns start. Raises on misuse.
 *
 * The sink. With ropts.sink, the answer is taken another way: when the status is 2xx
 * and the Content-Type is the media type the caller's Accept header names
 * (sfr_streams), the body is handed to sink(chunk) piece by piece as it arrives (the
 * first call also gets the response headers: sink(chunk, headers)), never held whole;
 * the result is then the number of bytes handed over. Any other answer (a JSON error,
 * an HTML page) is collected within max_response and classified as usual, except that
 * a 2xx of another type is an error: it is not what the sink waits for. A sink that
 * raises, or returns false or nil plus an error, ends the transfer with an `io` error.
 * Once a byte reached the sink, a failure is not retryable (err.streamed = bytes). The
 * libcurl engine calls the sink between curl turns, never from a curl callback; the
 * cosocket engine calls it per chunk read. */
static int sfr_read_ropts(lua_State *L, int i, sfr_plan *p)
{
    int start = 0;
    p->raw = 0;
    p->timeout = 0;
    p->sink = 0;
    p->ropts_idx = 0;
    p->stream_type = NULL;
    if (lua_isnoneornil(L, i) || lua_type(L, i) == LUA_TBOOLEAN) {
        p->raw = lua_toboolean(L, i);
        return 0;
    }
    if (!lua_istable(L, i))
        luaL_error(L, "sfreports: request options must be true (raw) or a table { raw =, timeout = }");
    i = sfr_absindex(L, i);
    lua_getfield(L, i, "sink");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TFUNCTION)
            luaL_error(L, "sfreports: request option 'sink' must be a function");
        p->sink = 1;
        p->ropts_idx = i;
    }
    lua_pop(L, 1);
    lua_getfield(L, i, "raw");
    p->raw = lua_toboolean(L, -1);
    lua_getfield(L, i, "start");
    start = lua_toboolean(L, -1);
    lua_getfield(L, i, "timeout");
    if (!lua_isnil(L, -1)) {
        double t = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
        if (!sfr_in_range(t, DBL_MIN, SFR_MAX_SECONDS))
            luaL_error(L, "sfreports: request option 'timeout' must be a finite number > 0 and at most %d",
                       (int)SFR_MAX_SECONDS);
        p->timeout = t;
    }
    lua_pop(L, 3);
    return start;
}

/* Checks a caller's headers table (strings to strings, no control characters). */
static void sfr_check_headers(lua_State *L, int t)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "sfreports: request headers must map strings to strings");
        sfr_check_header_value(L, -2, "a request header name");
        sfr_check_header_value(L, -1, "a request header value");
        lua_pop(L, 1);
    }
}

/* Framing belongs to the engine (curl, or the cosocket transport's HTTP/1.1): a caller's
 * Host, Content-Length or Transfer-Encoding would contradict it and is not sent. */
static int sfr_is_framing_header(const char *name)
{
    return strcasecmp(name, "host") == 0 || strcasecmp(name, "content-length") == 0
        || strcasecmp(name, "transfer-encoding") == 0;
}

/* True when the caller's headers table (0: none) names header `name`. */
static int sfr_caller_has(lua_State *L, int t, const char *name)
{
    int found = 0;
    if (t == 0)
        return 0;
    lua_pushnil(L);
    while (!found && lua_next(L, t)) {
        found = strcasecmp(lua_tostring(L, -2), name) == 0;
        lua_pop(L, 1);
    }
    if (found)
        lua_pop(L, 1); /* the key lua_next left */
    return found;
}

/* The value of the caller's header `name` (headers table at t, 0: none), anchored by that
 * table, or NULL. */
static const char *sfr_caller_value(lua_State *L, int t, const char *name)
{
    const char *v = NULL;
    if (t == 0)
        return NULL;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (strcasecmp(lua_tostring(L, -2), name) == 0) {
            v = lua_tostring(L, -1); /* the table's own string: stays valid */
            lua_pop(L, 2);
            break;
        }
        lua_pop(L, 1);
    }
    return v;
}

/* True when the media types of a and b (the part before ';' or ',', blanks trimmed)
 * are the same, ignoring case. */
static int sfr_same_media_type(const char *a, const char *b)
{
    size_t la, lb;
    if (a == NULL || b == NULL)
        return 0;
    while (*a == ' ' || *a == '\t')
        a++;
    while (*b == ' ' || *b == '\t')
        b++;
    la = strcspn(a, ";, \t");
    lb = strcspn(b, ";, \t");
    return la > 0 && la == lb && strncasecmp(a, b, la) == 0;
}

/* Whether a response streams to a request's sink: a 2xx of the type the request asked
 * for (its Accept header). Everything else is collected and classified. */
static int sfr_streams(long status, const char *ctype, const char *stream_type)
{
    return status >= 200 && status < 300 && sfr_same_media_type(ctype, stream_type);
}

static void sfr_add_line(lua_State *L, int lines, int *n, const char *line)
{
    lua_pushstring(L, line);
    lua_rawseti(L, lines, ++*n);
}

/* Pushes the header lines of the request as an array of "Name: value": the defaults
 * (User-Agent, Accept, Accept-Encoding; a caller's header of the same name replaces
 * one), the bearer token for the session's own host only, the caller's headers, and
 * Content-Type when a body goes out. */
static void sfr_push_header_lines(lua_State *L, const sfr_conf *c, const sfr_plan *p, int headers)
{
    int lines, n = 0;
    lua_newtable(L);
    lines = lua_gettop(L);
    if (!sfr_caller_has(L, headers, "User-Agent")) {
        lua_pushfstring(L, "User-Agent: %s", c->user_agent ? c->user_agent : SFR_DEFAULT_USER_AGENT);
        lua_rawseti(L, lines, ++n);
    }
    if (!sfr_caller_has(L, headers, "Accept"))
        sfr_add_line(L, lines, &n, "Accept: application/json");
    if (!sfr_caller_has(L, headers, "Accept-Encoding"))
        sfr_add_line(L, lines, &n, "Accept-Encoding: gzip");
    /* The token goes only to the session's own host: an absolute URL (an OAuth
     * endpoint, another org) never receives it. */
    if (!p->absolute && c->auth_header != NULL)
        sfr_add_line(L, lines, &n, c->auth_header);
    if (headers != 0) {
        lua_pushnil(L);
        while (lua_next(L, headers)) {
            if (!sfr_is_framing_header(lua_tostring(L, -2))) {
                lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
                lua_rawseti(L, lines, ++n);
            }
            lua_pop(L, 1);
        }
    }
    if (p->send_body && !sfr_caller_has(L, headers, "Content-Type"))
        sfr_add_line(L, lines, &n, "Content-Type: application/json");
}

/* Describes a request into p. method: a checked method; path at path_idx; body at
 * body_idx (0 or nil: none); headers at headers_idx (0: none); p->raw and p->timeout
 * already set (sfr_read_ropts). Pushes two values: (url, header lines) when the request
 * can be sent, returning 1, or (nil, err) for a URL nothing can be sent to, returning 0.
 * Raises on misuse before anything is allocated. */
static int sfr_plan_make(lua_State *L, const sfr_conf *c, const char *method, int path_idx,
                         int body_idx, int headers_idx, sfr_plan *p)
{
    const char *path;
    path_idx = sfr_absindex(L, path_idx);
    if (lua_type(L, path_idx) != LUA_TSTRING)
        luaL_error(L, "sfreports: request path must be a string");
    path = lua_tostring(L, path_idx);
    p->method = method;
    p->body = NULL;
    p->body_len = 0;
    if (body_idx != 0 && !lua_isnoneornil(L, body_idx)) {
        if (lua_type(L, body_idx) != LUA_TSTRING)
            luaL_error(L, "sfreports: request body must be a string or nil");
        p->body = lua_tolstring(L, body_idx, &p->body_len);
    }
    if (headers_idx != 0) {
        headers_idx = sfr_absindex(L, headers_idx);
        if (lua_isnoneornil(L, headers_idx))
            headers_idx = 0;
        else if (!lua_istable(L, headers_idx))
            luaL_error(L, "sfreports: request headers must be a table");
        else
            sfr_check_headers(L, headers_idx);
    }
    if (p->body != NULL && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        luaL_error(L, "sfreports: a %s request has no body", method);
    p->absolute = sfr_is_absolute(path);
    if (!p->absolute) {
        const char *why;
        if (path[0] != '/')
            luaL_error(L, "sfreports: request path must start with '/' or be an http(s) URL");
        if ((why = sfr_path_problem(path)) != NULL)
            luaL_error(L, "sfreports: request path must not contain %s", why);
    }
    if (p->sink) {
        p->stream_type = sfr_caller_value(L, headers_idx, "Accept");
        if (p->stream_type == NULL || !sfr_same_media_type(p->stream_type, p->stream_type))
            luaL_error(L, "sfreports: a request with a sink needs an Accept header naming the media type to stream");
    }
    p->send_body = p->body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0
                   || strcmp(method, "PUT") == 0;
    p->allow_empty = strcmp(method, "DELETE") == 0 || strcmp(method, "HEAD") == 0;
    if (p->absolute)
        lua_pushvalue(L, path_idx);
    else
        lua_pushfstring(L, "%s%s", c->base_url, path);
    p->url = lua_tolstring(L, -1, &p->url_len);
    if (!sfr_split_url(p->url, p->url_len, &p->parts)) {
        lua_pop(L, 1);
        lua_pushnil(L);
        sfr_push_error(L, "invalid", "malformed URL: not http(s)://host[:port]/path", 0, NULL, 0);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "request_sent");
        return 0;
    }
    sfr_push_header_lines(L, c, p, headers_idx);
    return 1;
}

/* Ids go into the URL path, so anything but 15/18 alphanumerics is refused here too
 * (the Lua layer also verifies the checksum and explains the problem). Returns 1 and
 * pushes (nil, err) for a bad id; raises when the id is not a string. */
static int sfr_push_id_error(lua_State *L, int i, const char *what)
{
    size_t len, k;
    const char *id;
    int ok;
    if (lua_type(L, i) != LUA_TSTRING)
        luaL_error(L, "sfreports: %s must be a string", what);
    id = lua_tolstring(L, i, &len);
    ok = (len == 15 || len == 18);
    for (k = 0; ok && k < len; k++)
        ok = isalnum((unsigned char)id[k]) != 0;
    if (ok)
        return 0;
    lua_pushnil(L);
    lua_pushfstring(L, "%s must be 15 or 18 letters and digits", what);
    sfr_push_error(L, "invalid", lua_tostring(L, -1), 0, NULL, 0);
    lua_remove(L, -2);
    return 1;
}

/* A report run: the report id at id_idx, metadata JSON at md_idx (nil: none), the
 * include_details flag at details_idx (nil: true). async posts an instance; a sync run
 * is a GET without metadata and a POST with it. Describes it like sfr_plan_make (same
 * pushes and return), or pushes (nil, err) for a bad id. */
static int sfr_plan_run(lua_State *L, const sfr_conf *c, int async, int id_idx, int md_idx,
                        int details_idx, sfr_plan *p)
{
    int has_md = !lua_isnoneornil(L, md_idx);
    int details = lua_isnoneornil(L, details_idx) ? 1 : lua_toboolean(L, details_idx);
    int ok;
    if (has_md && lua_type(L, md_idx) != LUA_TSTRING)
        luaL_error(L, "sfreports: report metadata must be a JSON string or nil");
    if (sfr_push_id_error(L, id_idx, "report id"))
        return 0;
    lua_pushfstring(L, "/services/data/v%s/analytics/reports/%s%s?includeDetails=%s",
                    c->api_version, lua_tostring(L, id_idx), async ? "/instances" : "",
                    details ? "true" : "false");
    ok = sfr_plan_make(L, c, (async || has_md) ? "POST" : "GET", -1, has_md ? md_idx : 0, 0, p);
    lua_remove(L, -3); /* the path */
    return ok;
}

/* The results of an instance: GET .../reports/<id>/instances/<iid>. As sfr_plan_run. */
static int sfr_plan_instance(lua_State *L, const sfr_conf *c, int id_idx, int iid_idx, sfr_plan *p)
{
    int ok;
    if (sfr_push_id_error(L, id_idx, "report id") || sfr_push_id_error(L, iid_idx, "instance id"))
        return 0;
    lua_pushfstring(L, "/services/data/v%s/analytics/reports/%s/instances/%s",
                    c->api_version, lua_tostring(L, id_idx), lua_tostring(L, iid_idx));
    ok = sfr_plan_make(L, c, "GET", -1, 0, 0, p);
    lua_remove(L, -3);
    return ok;
}

/* ---------- the Lua view: core.request_conf and core.plan_* ---------- */

/* Turns the (url, lines) pair sfr_plan_make left on top into the plan table:
 * { method, url, scheme, host, port, authority, target, headers = { "Name: value", ... },
 *   body = string|nil, raw = bool, allow_empty = bool, timeout = seconds|nil } */
static void sfr_push_plan_table(lua_State *L, const sfr_plan *p)
{
    const sfr_url *u = &p->parts;
    lua_createtable(L, 0, 12);
    lua_insert(L, -3);        /* plan, url, lines */
    lua_setfield(L, -3, "headers");
    lua_setfield(L, -2, "url");
    lua_pushstring(L, p->method);
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, p->url, u->scheme_len);
    lua_setfield(L, -2, "scheme");
    lua_pushlstring(L, p->url + u->host_off, u->host_len);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, (lua_Integer)u->port);
    lua_setfield(L, -2, "port");
    lua_pushlstring(L, p->url + u->auth_off, u->auth_len);
    lua_setfield(L, -2, "authority");
    if (u->target_len == 0)
        lua_pushliteral(L, "/");
    else
        lua_pushlstring(L, p->url + u->target_off, u->target_len);
    lua_setfield(L, -2, "target");
    if (p->send_body) {
        lua_pushlstring(L, p->body ? p->body : "", p->body_len);
        lua_setfield(L, -2, "body");
    }
    lua_pushboolean(L, p->raw);
    lua_setfield(L, -2, "raw");
    lua_pushboolean(L, p->allow_empty);
    lua_setfield(L, -2, "allow_empty");
    if (p->timeout > 0) {
        lua_pushnumber(L, p->timeout);
        lua_setfield(L, -2, "timeout");
    }
    if (p->sink) {
        lua_getfield(L, p->ropts_idx, "sink");
        lua_setfield(L, -2, "sink");
        lua_pushstring(L, p->stream_type);
        lua_setfield(L, -2, "stream_type");
    }
}

/* Leaves (plan, nil) or (nil, err) from what a plan function pushed. */
static int sfr_plan_result(lua_State *L, int ok, const sfr_plan *p)
{
    if (ok)
        sfr_push_plan_table(L, p);
    return ok ? 1 : 2;
}

static sfr_conf *sfr_check_conf(lua_State *L, int i)
{
    return luaL_checkudata(L, i, SFR_CONF_MT);
}

/* core.request_conf(opts) -> conf: the engine options checked once (as core.session
 * reads them), for the cosocket transport. */
static int sfr_conf_new(lua_State *L)
{
    sfr_conf *c;
    luaL_checktype(L, 1, LUA_TTABLE);
    c = sfr_newuserdata(L, sizeof(*c));
    memset(c, 0, sizeof(*c));
    luaL_getmetatable(L, SFR_CONF_MT);
    lua_setmetatable(L, -2);
    sfr_conf_read(L, 1, c);
    return 1;
}

/* core.plan_request(conf, method, path, body?, headers?, ropts?) -> plan | nil, err */
static int sfr_core_plan_request(lua_State *L)
{
    sfr_conf *c = sfr_check_conf(L, 1);
    sfr_plan p;
    const char *method = sfr_check_method(L, 2);
    lua_settop(L, 6);
    sfr_read_ropts(L, 6, &p);
    return sfr_plan_result(L, sfr_plan_make(L, c, method, 3, 4, 5, &p), &p);
}

/* core.plan_run(conf, "sync"|"async", report_id, metadata_json?, include_details?, ropts?)
 *   -> plan | nil, err */
static int sfr_core_plan_run(lua_State *L)
{
    static const char *const kinds[] = { "sync", "async", NULL };
    sfr_conf *c = sfr_check_conf(L, 1);
    int async = luaL_checkoption(L, 2, NULL, kinds);
    sfr_plan p;
    lua_settop(L, 6);
    sfr_read_ropts(L, 6, &p);
    p.raw = 0;
    return sfr_plan_result(L, sfr_plan_run(L, c, async, 3, 4, 5, &p), &p);
}

/* core.plan_instance(conf, report_id, instance_id, ropts?) -> plan | nil, err */
static int sfr_core_plan_instance(lua_State *L)
{
    sfr_conf *c = sfr_check_conf(L, 1);
    sfr_plan p;
    lua_settop(L, 4);
    sfr_read_ropts(L, 4, &p);
    p.raw = 0;
    return sfr_plan_result(L, sfr_plan_instance(L, c, 2, 3, &p), &p);
}

/* core.streams(stream_type, status, content_type) -> boolean: whether an answer goes to
 * the sink of a request that asked for stream_type (the cosocket engine's decision, made
 * by the same rule as the libcurl engine's). */
static int sfr_core_streams(lua_State *L)
{
    const char *want = luaL_checkstring(L, 1);
    double st = luaL_checknumber(L, 2);
    const char *ctype = lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : NULL;
    lua_pushboolean(L, sfr_in_range(st, 0, 999) && sfr_streams((long)st, ctype, want));
    return 1;
}

/* conf:options() -> the checked options with defaults (no token; has_token says if one is set) */
static int sfr_conf_options(lua_State *L)
{
    sfr_push_conf_options(L, sfr_check_conf(L, 1));
    return 1;
}

/* conf:set_token(token) */
static int sfr_conf_set_token_lua(lua_State *L)
{
    sfr_conf *c = sfr_check_conf(L, 1);
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "sfreports: set_token expects a string");
    sfr_conf_set_token(L, c, 2);
    return 0;
}

/* conf:clear_token(): forgets the token (a closed transport keeps none). */
static int sfr_conf_clear_token(lua_State *L)
{
    sfr_free_secret(&sfr_check_conf(L, 1)->auth_header);
    return 0;
}

static int sfr_conf_gc(lua_State *L)
{
    sfr_conf_free(sfr_check_conf(L, 1));
    return 0;
}

static const luaL_Reg sfr_conf_methods[] = {
    { "options", sfr_conf_options },
    { "set_token", sfr_conf_set_token_lua },
    { "clear_token", sfr_conf_clear_token },
    { "plan", sfr_core_plan_request },
    { "plan_run", sfr_core_plan_run },
    { "plan_instance", sfr_core_plan_instance },
    { NULL, NULL }
};

static const luaL_Reg sfr_request_plan_funcs[] = {
    { "request_conf", sfr_conf_new },
    { "plan_request", sfr_core_plan_request },
    { "plan_run", sfr_core_plan_run },
    { "plan_instance", sfr_core_plan_instance },
    { "streams", sfr_core_streams },
    { NULL, NULL }
};

/* Registers the conf type and the functions above into the table on top; sets DEFAULTS. */
static void sfr_request_register(lua_State *L)
{
    luaL_newmetatable(L, SFR_CONF_MT);
    lua_newtable(L);
    sfr_setfuncs(L, sfr_conf_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sfr_conf_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, SFR_CONF_MT);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    sfr_setfuncs(L, sfr_request_plan_funcs, 0);
    sfr_push_defaults(L);
    lua_setfield(L, -2, "DEFAULTS");
}
