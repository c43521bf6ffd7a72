/* session.c: the libcurl engine. A session owns one curl multi handle (and so one
 * connection pool, reused by every request of a client); a request owns one easy handle,
 * its header list and its response buffers. Part of the sfreports.core unity build.
 *
 * Ownership: every C resource hangs off a userdata and is released by its __gc (also
 * __close and :close()), which tolerate half-built objects and being called twice.
 * A request in flight is kept alive by the session's uservalue table (active[req] = obj)
 * so Lua cannot collect it while curl still points at it. No libcurl callback calls
 * into Lua, so no Lua error can longjmp through libcurl. */

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SFR_SESSION_MT "sfreports.session"
#define SFR_REQUEST_MT "sfreports.request"

typedef struct sfr_request sfr_request;

typedef struct {
    CURLM *multi;
    char *base_url;        /* scheme://host[:port], no trailing slash */
    char *api_version;     /* "66.0" */
    char *auth_header;     /* "Authorization: Bearer ..." (a secret: never printed) */
    char *user_agent;
    char *cafile, *capath, *proxy;
    long timeout_ms, connect_timeout_ms;
    double stall_s;        /* no byte in or out for this long: a `timeout` (0: off) */
    size_t max_response;
    int verify;
    long requests, connects;
    sfr_request *active;   /* doubly linked list of requests added to the multi */
} sfr_session;

struct sfr_request {
    CURL *easy;
    struct curl_slist *headers;
    sfr_session *session;  /* NULL once detached (done, or session closed) */
    sfr_request *prev, *next;
    char *body; size_t body_len, body_cap;
    char *head; size_t head_len, head_cap;
    int in_multi, done, too_large, allow_empty, stalled;
    int raw;               /* a 2xx JSON answer is returned as text, not decoded */
    double last_io;        /* monotonic time of the last byte in or out */
    curl_off_t io_total;   /* bytes up + down as of last_io */
    double stall_s;        /* copied from the session: it outlives a detach */
    size_t max_response;   /* likewise, for the error message */
    CURLcode result;
    long status;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---------- buffers (owned by the request userdata) ---------- */

static int sfr_buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 16384;
        char *nb;
        while (ncap < *len + n + 1)
            ncap *= 2;
        nb = realloc(*buf, ncap);
        if (nb == NULL)
            return 0;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 1;
}

static double sfr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Progress callback: aborts a transfer that moved no byte for stall_s seconds. curl's own
 * low-speed check averages over a window of several seconds, so after a first burst
 * of data it notices a stall only ~5 s late; this one is exact to a poll turn. */
static int sfr_on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                           curl_off_t ultotal, curl_off_t ulnow)
{
    sfr_request *r = ud;
    double now = sfr_now();
    curl_off_t total = dlnow + ulnow;
    (void)dltotal;
    (void)ultotal;
    if (total != r->io_total) {
        r->io_total = total;
        r->last_io = now;
        return 0;
    }
    if (r->stall_s > 0 && now - r->last_io >= r->stall_s) {
        r->stalled = 1;
        return 1; /* CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

static size_t sfr_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    sfr_request *r = ud;
    size_t n = size * nmemb;
    size_t max = r->session ? r->session->max_response : 0;
    if (max > 0 && r->body_len + n > max) {
        r->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return sfr_buf_append(&r->body, &r->body_len, &r->body_cap, data, n) ? n : 0;
}

static size_t sfr_on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    sfr_request *r = ud;
    size_t n = size * nmemb;
    r->last_io = sfr_now();
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
        r->head_len = 0; /* a new response (after 100-continue or a redirect) */
    if (r->head_len + n > 256 * 1024)
        return 0;
    return sfr_buf_append(&r->head, &r->head_len, &r->head_cap, data, n) ? n : 0;
}

static void sfr_request_reset_buffers(sfr_request *r)
{
    free(r->body); r->body = NULL; r->body_len = r->body_cap = 0;
    free(r->head); r->head = NULL; r->head_len = r->head_cap = 0;
}

/* ---------- session bookkeeping ---------- */

static void sfr_link(sfr_session *s, sfr_request *r)
{
    r->session = s;
    r->prev = NULL;
    r->next = s->active;
    if (s->active)
        s->active->prev = r;
    s->active = r;
}

/* Removes r from its session's multi and list. Safe to call on a detached request. */
static void sfr_detach(sfr_request *r)
{
    sfr_session *s = r->session;
    if (s == NULL)
        return;
    if (r->in_multi && s->multi && r->easy)
        curl_multi_remove_handle(s->multi, r->easy);
    r->in_multi = 0;
    if (r->prev) r->prev->next = r->next;
    else s->active = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->session = NULL;
}

static void sfr_request_free(sfr_request *r)
{
    sfr_detach(r);
    if (r->easy) { curl_easy_cleanup(r->easy); r->easy = NULL; }
    if (r->headers) { curl_slist_free_all(r->headers); r->headers = NULL; }
    sfr_request_reset_buffers(r);
}

static int sfr_request_gc(lua_State *L)
{
    sfr_request *r = luaL_checkudata(L, 1, SFR_REQUEST_MT);
    sfr_request_free(r);
    return 0;
}

static void sfr_session_free(sfr_session *s)
{
    while (s->active)
        sfr_detach(s->active);
    if (s->multi) { curl_multi_cleanup(s->multi); s->multi = NULL; }
    free(s->base_url); s->base_url = NULL;
    free(s->api_version); s->api_version = NULL;
    if (s->auth_header) {
        memset(s->auth_header, 0, strlen(s->auth_header));
        free(s->auth_header);
        s->auth_header = NULL;
    }
    free(s->user_agent); s->user_agent = NULL;
    free(s->cafile); s->cafile = NULL;
    free(s->capath); s->capath = NULL;
    free(s->proxy); s->proxy = NULL;
}

static int sfr_session_gc(lua_State *L)
{
    sfr_session *s = luaL_checkudata(L, 1, SFR_SESSION_MT);
    sfr_session_free(s);
    return 0;
}

static sfr_session *sfr_check_session(lua_State *L, int i)
{
    sfr_session *s = luaL_checkudata(L, i, SFR_SESSION_MT);
    if (s->multi == NULL)
        luaL_error(L, "sfreports: session is closed");
    return s;
}

/* ---------- options ---------- */

static char *sfr_strdup_opt(lua_State *L, int t, const char *name, const char *dflt)
{
    const char *v;
    char *copy;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (dflt == NULL)
            return NULL;
        v = dflt;
    } else {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "sfreports: option '%s' must be a string", name);
        v = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    copy = strdup(v);
    if (copy == NULL)
        luaL_error(L, "sfreports: out of memory");
    return copy;
}

static double sfr_num_opt(lua_State *L, int t, const char *name, double dflt)
{
    double v = dflt;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "sfreports: option '%s' must be a number", name);
        v = lua_tonumber(L, -1);
        if (v < 0)
            luaL_error(L, "sfreports: option '%s' must not be negative", name);
    }
    lua_pop(L, 1);
    return v;
}

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

static char *sfr_make_auth_header(const char *token)
{
    static const char prefix[] = "Authorization: Bearer ";
    char *h = malloc(sizeof(prefix) + strlen(token));
    if (h != NULL) {
        memcpy(h, prefix, sizeof(prefix) - 1);
        strcpy(h + sizeof(prefix) - 1, token);
    }
    return h;
}

/* core.session{ base_url=, token=, api_version=, ... } -> session.
 * Every malloc'd field is stored in the (already GC-managed) userdata before the next
 * call that can raise, so a Lua error never leaks it. */
static int sfr_session_new(lua_State *L)
{
    sfr_session *s;
    size_t n;
    luaL_checktype(L, 1, LUA_TTABLE);
    s = sfr_newuserdata(L, sizeof(*s));
    memset(s, 0, sizeof(*s));
    luaL_getmetatable(L, SFR_SESSION_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L); /* uservalue: active requests and finished-but-unreported ones */
    lua_newtable(L);
    lua_setfield(L, -2, "active");
    lua_newtable(L);
    lua_setfield(L, -2, "finished");
    sfr_setuservalue(L, -2);

    s->base_url = sfr_strdup_opt(L, 1, "base_url", NULL);
    if (s->base_url == NULL)
        return luaL_argerror(L, 1, "option 'base_url' is required");
    n = strlen(s->base_url);
    while (n > 0 && s->base_url[n - 1] == '/')
        s->base_url[--n] = '\0';
    s->api_version = sfr_strdup_opt(L, 1, "api_version", "66.0");
    s->user_agent = sfr_strdup_opt(L, 1, "user_agent", "sfreports/" SFR_VERSION);
    s->cafile = sfr_strdup_opt(L, 1, "cafile", NULL);
    s->capath = sfr_strdup_opt(L, 1, "capath", NULL);
    s->proxy = sfr_strdup_opt(L, 1, "proxy", NULL);
    s->timeout_ms = (long)(sfr_num_opt(L, 1, "timeout", 150) * 1000);
    s->connect_timeout_ms = (long)(sfr_num_opt(L, 1, "connect_timeout", 10) * 1000);
    s->stall_s = sfr_num_opt(L, 1, "stall_timeout", 130);
    s->max_response = (size_t)sfr_num_opt(L, 1, "max_response", 256.0 * 1024 * 1024);
    lua_getfield(L, 1, "verify");
    s->verify = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "token");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "sfreports: option 'token' must be a string");
        s->auth_header = sfr_make_auth_header(sfr_check_header_value(L, -1, "token"));
        if (s->auth_header == NULL)
            return luaL_error(L, "sfreports: out of memory");
    }
    lua_pop(L, 1);
    s->multi = curl_multi_init();
    if (s->multi == NULL)
        return luaL_error(L, "sfreports: curl_multi_init failed");
    return 1;
}

static int sfr_session_set_token(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    const char *tok;
    char *h;
    luaL_checkstring(L, 2);
    tok = sfr_check_header_value(L, 2, "token");
    h = sfr_make_auth_header(tok);
    if (h == NULL)
        return luaL_error(L, "sfreports: out of memory");
    if (s->auth_header) {
        memset(s->auth_header, 0, strlen(s->auth_header));
        free(s->auth_header);
    }
    s->auth_header = h;
    return 0;
}

static int sfr_session_stats(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)s->requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, (lua_Integer)s->connects);
    lua_setfield(L, -2, "connects");
    return 1;
}

static int sfr_session_tostring(lua_State *L)
{
    sfr_session *s = luaL_checkudata(L, 1, SFR_SESSION_MT);
    lua_pushfstring(L, "sfreports.session (%s)", s->base_url ? s->base_url : "closed");
    return 1;
}

/* ---------- starting a request ---------- */

static int sfr_is_absolute(const char *p)
{
    return strncmp(p, "https://", 8) == 0 || strncmp(p, "http://", 7) == 0;
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

static void sfr_add_header(lua_State *L, sfr_request *r, const char *h)
{
    struct curl_slist *n = curl_slist_append(r->headers, h);
    if (n == NULL)
        luaL_error(L, "sfreports: out of memory");
    r->headers = n;
}

/* Pushes a new request userdata configured for (method, path, body); it is not yet
 * added to the multi. Raises on misuse. The token goes only to the session's own host:
 * an absolute URL (the OAuth endpoint) never receives the Authorization header. */
/* Raises on a bad path or bad headers. Runs before anything is allocated, so that misuse
 * costs no curl handle waiting for the collector. */
static void sfr_request_check(lua_State *L, const char *path, int headers_idx)
{
    if (!sfr_is_absolute(path)) {
        const char *why;
        if (path[0] != '/')
            luaL_error(L, "sfreports: request path must start with '/' or be an http(s) URL");
        if ((why = sfr_path_problem(path)) != NULL)
            luaL_error(L, "sfreports: request path must not contain %s", why);
    }
    if (headers_idx) {
        lua_pushnil(L);
        while (lua_next(L, headers_idx)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "sfreports: request headers must map strings to strings");
            sfr_check_header_value(L, -2, "a request header name");
            sfr_check_header_value(L, -1, "a request header value");
            lua_pop(L, 1);
        }
    }
}

/* Pushes a new request userdata (not yet submitted). raw: a 2xx JSON answer will be
 * returned as its text, undecoded. */
static sfr_request *sfr_request_build(lua_State *L, sfr_session *s, const char *method,
                                      const char *path, const char *body, size_t body_len,
                                      int headers_idx, int raw)
{
    sfr_request *r;
    int absolute = sfr_is_absolute(path);
    int has_ctype = 0;
    sfr_request_check(L, path, headers_idx);
    r = sfr_newuserdata(L, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->raw = raw;
    luaL_getmetatable(L, SFR_REQUEST_MT);
    lua_setmetatable(L, -2);
    r->easy = curl_easy_init();
    if (r->easy == NULL)
        luaL_error(L, "sfreports: curl_easy_init failed");
    if (absolute) {
        curl_easy_setopt(r->easy, CURLOPT_URL, path);
    } else {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addstring(&b, s->base_url);
        luaL_addstring(&b, path);
        luaL_pushresult(&b);
        curl_easy_setopt(r->easy, CURLOPT_URL, lua_tostring(L, -1)); /* curl copies */
        lua_pop(L, 1);
    }
    r->max_response = s->max_response;
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, (void *)r);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, sfr_on_body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, (void *)r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, sfr_on_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, (void *)r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(r->easy, CURLOPT_USERAGENT, s->user_agent);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    if (s->stall_s > 0) {
        /* the exact check is sfr_on_progress; curl's coarse one (whole seconds, rounded
         * up) stays as a backstop and keeps curl waking up while nothing arrives */
        long coarse = (long)s->stall_s;
        if ((double)coarse < s->stall_s)
            coarse++;
        r->stall_s = s->stall_s;
        r->last_io = sfr_now();
        curl_easy_setopt(r->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(r->easy, CURLOPT_LOW_SPEED_TIME, coarse);
        curl_easy_setopt(r->easy, CURLOPT_XFERINFOFUNCTION, sfr_on_progress);
        curl_easy_setopt(r->easy, CURLOPT_XFERINFODATA, (void *)r);
        curl_easy_setopt(r->easy, CURLOPT_NOPROGRESS, 0L);
    }
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, s->verify ? 1L : 0L);
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, s->verify ? 2L : 0L);
    if (s->cafile) curl_easy_setopt(r->easy, CURLOPT_CAINFO, s->cafile);
    if (s->capath) curl_easy_setopt(r->easy, CURLOPT_CAPATH, s->capath);
    if (s->proxy) curl_easy_setopt(r->easy, CURLOPT_PROXY, s->proxy);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);

    sfr_add_header(L, r, "Accept: application/json");
    sfr_add_header(L, r, "Expect:");
    if (!absolute && s->auth_header)
        sfr_add_header(L, r, s->auth_header);
    if (headers_idx) {
        lua_pushnil(L);
        while (lua_next(L, headers_idx)) {
            if (strcasecmp(lua_tostring(L, -2), "content-type") == 0)
                has_ctype = 1;
            lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
            sfr_add_header(L, r, lua_tostring(L, -1));
            lua_pop(L, 2);
        }
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
        if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0
            || strcmp(method, "PUT") == 0) {
            if (!has_ctype)
                sfr_add_header(L, r, "Content-Type: application/json");
            curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
            curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, body ? body : "");
        } else if (strcmp(method, "DELETE") == 0) {
            r->allow_empty = 1;
        }
    }
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    return r;
}

/* Adds the request at index ri to the multi and pins it in the session's active table. */
static void sfr_request_submit(lua_State *L, sfr_session *s, int si, int ri)
{
    sfr_request *r = lua_touserdata(L, ri);
    CURLMcode mc;
    si = sfr_absindex(L, si);
    ri = sfr_absindex(L, ri);
    sfr_getuservalue(L, si);
    lua_getfield(L, -1, "active");
    lua_pushlightuserdata(L, r);
    lua_pushvalue(L, ri);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    mc = curl_multi_add_handle(s->multi, r->easy);
    if (mc != CURLM_OK)
        luaL_error(L, "sfreports: curl_multi_add_handle: %s", curl_multi_strerror(mc));
    r->in_multi = 1;
    sfr_link(s, r);
    s->requests++;
}

static const char *sfr_check_method(lua_State *L, int i)
{
    static const char *const methods[] = { "GET", "POST", "DELETE", "PATCH", "PUT", "HEAD", NULL };
    return methods[luaL_checkoption(L, i, NULL, methods)];
}

/* Builds a request from the arguments of session:request and session:start
 * (self, method, path, body?, headers?, raw?) and pushes it; returns its stack index. */
static int sfr_request_from_args(lua_State *L, sfr_session *s)
{
    const char *method = sfr_check_method(L, 2);
    const char *path = luaL_checkstring(L, 3);
    size_t blen = 0;
    const char *body = luaL_optlstring(L, 4, NULL, &blen);
    int has_headers = !lua_isnoneornil(L, 5);
    int raw = lua_toboolean(L, 6); /* read before the request userdata is pushed */
    if (has_headers)
        luaL_checktype(L, 5, LUA_TTABLE);
    sfr_request_build(L, s, method, path, body, blen, has_headers ? 5 : 0, raw);
    return lua_gettop(L);
}

/* session:start(method, path, body?, headers?, raw?) -> request (in flight) */
static int sfr_session_start(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    sfr_request_submit(L, s, 1, sfr_request_from_args(L, s));
    return 1;
}

/* ---------- driving the multi ---------- */

/* Moves every transfer curl reports as finished from active to finished. */
static void sfr_collect(lua_State *L, sfr_session *s, int si)
{
    CURLMsg *msg;
    int left;
    sfr_getuservalue(L, si);
    lua_getfield(L, -1, "active");
    lua_getfield(L, -2, "finished");
    while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
        sfr_request *r = NULL;
        long connects = 0;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r == NULL)
            continue;
        r->result = msg->data.result;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
        s->connects += connects;
        r->done = 1;
        sfr_detach(r); /* msg is invalid after this; r->result was copied */
        lua_pushlightuserdata(L, r);
        lua_rawget(L, -3);          /* the request object, from active */
        lua_pushlightuserdata(L, r);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);          /* finished[r] = obj */
        lua_pop(L, 1);
        lua_pushlightuserdata(L, r);
        lua_pushnil(L);
        lua_rawset(L, -4);          /* active[r] = nil */
    }
    lua_pop(L, 3);
}

/* One turn of the engine: run transfers, wait up to wait_ms for activity when nothing
 * finished yet, run them again, collect finished transfers. */
static void sfr_turn(lua_State *L, sfr_session *s, int si, int wait_ms)
{
    int running = 0;
    curl_multi_perform(s->multi, &running);
    sfr_collect(L, s, si);
    if (running > 0 && wait_ms > 0) {
        curl_multi_poll(s->multi, NULL, 0, wait_ms, NULL);
        curl_multi_perform(s->multi, &running);
        sfr_collect(L, s, si);
    }
}

/* session:perform(wait_seconds?) -> array of requests finished since the last call */
static int sfr_session_perform(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    double wait = luaL_optnumber(L, 2, 0);
    int n = 0;
    sfr_turn(L, s, 1, (int)(wait * 1000));
    sfr_getuservalue(L, 1);
    lua_getfield(L, -1, "finished");
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_rawseti(L, -3, ++n);
    }
    lua_newtable(L);
    lua_setfield(L, -4, "finished");
    return 1;
}

/* session:pending() -> number of requests in flight */
static int sfr_session_pending(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    int n = 0;
    sfr_request *r;
    for (r = s->active; r; r = r->next)
        n++;
    lua_pushinteger(L, n);
    return 1;
}

/* ---------- results ---------- */

static double sfr_header_number(const char *v)
{
    char *end;
    double d = strtod(v, &end);
    return end == v ? -1 : d;
}

/* Pushes { ["lower-case-name"] = value } from the raw header block. */
static void sfr_push_headers(lua_State *L, const char *head, size_t len)
{
    size_t i = 0;
    lua_newtable(L);
    while (i < len) {
        size_t eol = i, colon = 0, a, b, k;
        while (eol < len && head[eol] != '\n')
            eol++;
        for (k = i; k < eol; k++)
            if (head[k] == ':') { colon = k; break; }
        if (colon > i) {
            luaL_Buffer nb;
            luaL_buffinit(L, &nb);
            for (k = i; k < colon; k++)
                luaL_addchar(&nb, (char)tolower((unsigned char)head[k]));
            luaL_pushresult(&nb);
            a = colon + 1;
            while (a < eol && (head[a] == ' ' || head[a] == '\t'))
                a++;
            b = eol;
            while (b > a && (head[b - 1] == '\r' || head[b - 1] == ' '))
                b--;
            lua_pushlstring(L, head + a, b - a);
            lua_rawset(L, -3);
        }
        i = eol + 1;
    }
}

static const char *sfr_curl_kind(const sfr_request *r, int *retryable, int *sent)
{
    *retryable = 1;
    *sent = 1;
    if (r->result == CURLE_ABORTED_BY_CALLBACK && r->stalled)
        return "timeout";
    switch (r->result) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        *sent = 0;
        return "network";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
        *retryable = 0;
        *sent = 0;
        return "network";
    case CURLE_BAD_CONTENT_ENCODING:
        return "decode";
    case CURLE_WRITE_ERROR:
        if (r->too_large) {
            *retryable = 0;
            return "limit";
        }
        return "network";
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        *retryable = 0;
        *sent = 0;
        return "invalid";
    default:
        return "network";
    }
}

/* Pushes (value, meta) or (nil, err) for a finished request at index ri. decode_idx is the
 * cjson decode function. Frees the response buffers once they are no longer needed. */
static int sfr_push_result(lua_State *L, int decode_idx, int ri)
{
    sfr_request *r = lua_touserdata(L, ri);
    if (!r->done)
        return luaL_error(L, "sfreports: request has not finished (drive it with session:perform)");
    if (r->result != CURLE_OK) {
        int retryable, sent;
        const char *kind = sfr_curl_kind(r, &retryable, &sent);
        char num[48];
        lua_pushnil(L);
        if (r->too_large) {
            snprintf(num, sizeof(num), "%.0f", (double)r->max_response);
            lua_pushfstring(L, "response larger than max_response (%s bytes); raise max_response to accept it",
                            num);
        } else if (r->stalled) {
            snprintf(num, sizeof(num), "%g", r->stall_s);
            lua_pushfstring(L, "no data received for %s seconds (stall_timeout)", num);
        } else
            lua_pushfstring(L, "%s: %s", curl_easy_strerror(r->result),
                            r->errbuf[0] ? r->errbuf : "no detail");
        sfr_push_error(L, kind, lua_tostring(L, -1), r->status > 0 ? r->status : 0, NULL, retryable);
        lua_remove(L, -2);
        lua_pushboolean(L, sent);
        lua_setfield(L, -2, "request_sent");
        lua_pushinteger(L, (lua_Integer)r->result);
        lua_setfield(L, -2, "curl_code");
        return 2;
    }
    {
        const char *ctype = NULL;
        double retry_after = -1;
        int meta_idx, ok;
        sfr_push_headers(L, r->head ? r->head : "", r->head_len);
        meta_idx = lua_gettop(L);
        lua_getfield(L, meta_idx, "content-type");
        ctype = lua_tostring(L, -1);
        lua_getfield(L, meta_idx, "retry-after");
        if (lua_isstring(L, -1))
            retry_after = sfr_header_number(lua_tostring(L, -1));
        lua_pop(L, 1);
        /* The body moves into a Lua string and the C copy is freed before decoding, so a
         * large report is held once, not twice, while its decoded tree is built. */
        lua_pushlstring(L, r->body ? r->body : "", r->body_len);
        sfr_request_reset_buffers(r);
        sfr_classify(L, decode_idx, r->status, ctype, -1, r->allow_empty, r->raw, retry_after);
        lua_remove(L, -3); /* the body string */
        /* stack: headers, ctype, value|nil, nil|err */
        ok = !lua_isnil(L, -2);
        if (ok) {
            lua_pop(L, 1);
            lua_createtable(L, 0, 4);
            lua_pushinteger(L, (lua_Integer)r->status);
            lua_setfield(L, -2, "status");
            lua_pushvalue(L, meta_idx);
            lua_setfield(L, -2, "headers");
            lua_getfield(L, meta_idx, "sforce-limit-info");
            lua_setfield(L, -2, "limit_info");
        }
        return 2;
    }
}

/* request:result() -> value, meta | nil, err */
static int sfr_request_result(lua_State *L)
{
    luaL_checkudata(L, 1, SFR_REQUEST_MT);
    return sfr_push_result(L, lua_upvalueindex(1), 1);
}

static int sfr_request_done(lua_State *L)
{
    sfr_request *r = luaL_checkudata(L, 1, SFR_REQUEST_MT);
    lua_pushboolean(L, r->done);
    return 1;
}

/* request:close(): cancels a transfer in flight and releases everything. Idempotent. */
static int sfr_request_close(lua_State *L)
{
    sfr_request *r = luaL_checkudata(L, 1, SFR_REQUEST_MT);
    sfr_request_free(r);
    return 0;
}

/* Blocks until the request at ri finishes, driving every transfer of the session. */
static void sfr_wait(lua_State *L, sfr_session *s, int si, int ri)
{
    sfr_request *r = lua_touserdata(L, ri);
    si = sfr_absindex(L, si);
    while (!r->done)
        sfr_turn(L, s, si, 1000);
    /* finished[r] is ours to report, not perform's */
    sfr_getuservalue(L, si);
    lua_getfield(L, -1, "finished");
    lua_pushlightuserdata(L, r);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

/* Submits the built request at ri and waits for it; pushes its result (2 values). */
static int sfr_await(lua_State *L, sfr_session *s, int ri)
{
    sfr_request_submit(L, s, 1, ri);
    sfr_wait(L, s, 1, ri);
    return sfr_push_result(L, lua_upvalueindex(1), ri);
}

/* Builds, submits and waits for one request that is decoded; pushes its result. */
static int sfr_blocking(lua_State *L, sfr_session *s, const char *method, const char *path,
                        const char *body, size_t blen)
{
    sfr_request_build(L, s, method, path, body, blen, 0, 0);
    return sfr_await(L, s, lua_gettop(L));
}

/* session:request(method, path, body?, headers?, raw?) -> value, meta | nil, err
 * raw: a 2xx JSON answer is returned as its text; errors are classified as usual. */
static int sfr_session_request(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    return sfr_await(L, s, sfr_request_from_args(L, s));
}

/* Ids go into the URL path, so anything but 15/18 alphanumerics is refused here too
 * (the Lua layer also verifies the checksum and explains the problem). */
static int sfr_push_id_error(lua_State *L, int i, const char *what)
{
    size_t len, k;
    const char *id = luaL_checklstring(L, i, &len);
    int ok = (len == 15 || len == 18);
    for (k = 0; ok && k < len; k++)
        ok = isalnum((unsigned char)id[k]) != 0;
    if (ok)
        return 0;
    lua_pushnil(L);
    lua_pushfstring(L, "%s must be 15 or 18 letters and digits", what);
    sfr_push_error(L, "invalid", lua_tostring(L, -1), 0, NULL, 0);
    lua_remove(L, -2);
    return 2;
}

/* A report run: (report_id, metadata_json?, include_details?) at stack 2..4. async posts
 * an instance; a sync run is a GET without metadata and a POST with it. */
static int sfr_run(lua_State *L, int async)
{
    sfr_session *s = sfr_check_session(L, 1);
    size_t blen = 0;
    const char *md = luaL_optlstring(L, 3, NULL, &blen);
    int details = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
    if (sfr_push_id_error(L, 2, "report id"))
        return 2;
    lua_pushfstring(L, "/services/data/v%s/analytics/reports/%s%s?includeDetails=%s",
                    s->api_version, lua_tostring(L, 2), async ? "/instances" : "",
                    details ? "true" : "false");
    return sfr_blocking(L, s, (async || md) ? "POST" : "GET", lua_tostring(L, -1), md, blen);
}

/* session:run_sync(report_id, metadata_json?, include_details?) */
static int sfr_session_run_sync(lua_State *L)
{
    return sfr_run(L, 0);
}

/* session:run_async(report_id, metadata_json?, include_details?) */
static int sfr_session_run_async(lua_State *L)
{
    return sfr_run(L, 1);
}

/* session:fetch_instance(report_id, instance_id) */
static int sfr_session_fetch_instance(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    if (sfr_push_id_error(L, 2, "report id"))
        return 2;
    if (sfr_push_id_error(L, 3, "instance id"))
        return 2;
    lua_pushfstring(L, "/services/data/v%s/analytics/reports/%s/instances/%s",
                    s->api_version, lua_tostring(L, 2), lua_tostring(L, 3));
    return sfr_blocking(L, s, "GET", lua_tostring(L, -1), NULL, 0);
}

static int sfr_session_close(lua_State *L)
{
    sfr_session *s = luaL_checkudata(L, 1, SFR_SESSION_MT);
    sfr_session_free(s);
    return 0;
}

static const luaL_Reg sfr_session_methods[] = {
    { "request", sfr_session_request },
    { "run_sync", sfr_session_run_sync },
    { "run_async", sfr_session_run_async },
    { "fetch_instance", sfr_session_fetch_instance },
    { "start", sfr_session_start },
    { "perform", sfr_session_perform },
    { "pending", sfr_session_pending },
    { "set_token", sfr_session_set_token },
    { "stats", sfr_session_stats },
    { "close", sfr_session_close },
    { NULL, NULL }
};

static const luaL_Reg sfr_request_methods[] = {
    { "result", sfr_request_result },
    { "done", sfr_request_done },
    { "close", sfr_request_close },
    { NULL, NULL }
};

/* Registers one userdata metatable: methods share upvalue decode (a stack index), __gc
 * and __close are the same idempotent function, __metatable hides the table. */
static void sfr_register_type(lua_State *L, const char *name, const luaL_Reg *methods,
                              lua_CFunction gc, lua_CFunction tostring, int decode)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    lua_pushvalue(L, decode);
    sfr_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    if (tostring) {
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

/* Registers the session and request types; the decode function is on top of the stack
 * and becomes upvalue 1 of every method. Pops it. */
static void sfr_session_register(lua_State *L)
{
    int decode = lua_gettop(L);
    sfr_register_type(L, SFR_SESSION_MT, sfr_session_methods, sfr_session_gc, sfr_session_tostring, decode);
    sfr_register_type(L, SFR_REQUEST_MT, sfr_request_methods, sfr_request_gc, NULL, decode);
    lua_pop(L, 1); /* decode */
}
