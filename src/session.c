/* session.c: the libcurl engine. A session owns one curl multi handle (and so one
 * connection pool, reused by every request of a client); a request owns one easy handle,
 * its header list and its response buffers. Part of the sfreports.core unity build.
 *
 * Ownership: every C resource hangs off a userdata and is released by its __gc (also
 * __close and :close()), which tolerate half-built objects and being called twice.
 * A request in flight is kept alive by the session's uservalue table (active[req] = obj)
 * so Lua cannot collect it while curl still points at it. No libcurl callback calls
 * into Lua, so no Lua error can longjmp through libcurl.
 *
 * A request with a sink (ropts.sink, see request.c) that gets a 2xx of the type it asked
 * for does not collect its body: the write callback keeps what arrives in a bounded
 * buffer (SFR_SINK_BUFFER) and pauses the transfer (CURL_WRITEFUNC_PAUSE) when the
 * buffer is full; between curl turns (sfr_turn, in the blocking wait and in perform)
 * and when its result is taken, the buffer is handed to the Lua sink under lua_pcall and
 * the transfer resumed (curl_easy_pause). So memory stays at one buffer whatever the
 * size of the file, and the sink runs only where a Lua error is harmless. */

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SFR_SESSION_MT "sfreports.session"
#define SFR_REQUEST_MT "sfreports.request"
#define SFR_MAX_HEADER_BYTES (256 * 1024)
#define SFR_SINK_BUFFER (256 * 1024) /* bytes held for a sink between two curl turns */

typedef struct sfr_request sfr_request;

typedef struct {
    CURLM *multi;
    sfr_conf conf;         /* the options, read and checked by request.c */
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
    int head_too_large;    /* the header block passed SFR_MAX_HEADER_BYTES */
    int failed;            /* never sent: its error is the userdata's user value */
    int raw;               /* a 2xx JSON answer is returned as text, not decoded */
    double last_io;        /* monotonic time of the last byte in or out */
    curl_off_t io_total;   /* bytes up + down as of last_io */
    double stall_s;        /* copied from the session: it outlives a detach */
    size_t max_response;   /* likewise, for the error message */
    CURLcode result;
    long status;
    char errbuf[CURL_ERROR_SIZE];
    /* a request with a sink (its function is in the user value table, field sink) */
    int sink;
    char *stream_type;     /* the media type that streams (the Accept header), owned */
    int streaming;         /* 0: not decided yet; 1: the body goes to the sink; -1: collected */
    int paused;            /* the write callback paused the transfer (buffer full) */
    int sink_failed;       /* the sink failed: its error replaced the user value */
    int headers_given;     /* the sink's first call (with the headers) was made */
    double streamed;       /* bytes taken for the sink (counted against max_response) */
    double sunk;           /* bytes handed to the sink */
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
    size_t max = r->max_response;
    if (r->sink && r->streaming == 0) {
        /* the first byte of the body: the status and the headers decide (request.c) */
        long status = 0;
        char *ctype = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
        r->streaming = sfr_streams(status, ctype, r->stream_type) ? 1 : -1;
    }
    if (r->streaming == 1) {
        if (max > 0 && r->streamed + (double)n > (double)max) {
            r->too_large = 1;
            return 0;
        }
        if (r->body_len > 0 && r->body_len + n > SFR_SINK_BUFFER) {
            r->paused = 1; /* curl gives the same bytes again once resumed */
            return CURL_WRITEFUNC_PAUSE;
        }
        if (!sfr_buf_append(&r->body, &r->body_len, &r->body_cap, data, n))
            return 0;
        r->streamed += (double)n;
        return n;
    }
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
    if (r->head_len + n > SFR_MAX_HEADER_BYTES) {
        r->head_too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
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
    free(r->stream_type);
    r->stream_type = NULL;
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
    sfr_conf_free(&s->conf);
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

/* ---------- making a session ---------- */

/* True when the value at index i is a userdata with metatable `name`. */
static int sfr_is_udata(lua_State *L, int i, const char *name)
{
    int same = 0;
    if (lua_type(L, i) == LUA_TUSERDATA && lua_getmetatable(L, i)) {
        luaL_getmetatable(L, name);
        same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    return same;
}

/* core.session{ base_url=, token=, api_version=, ... } -> session, or
 * core.session(conf) with a core.request_conf: the same options (and token), copied.
 * The options are read by request.c (sfr_conf_read), into the GC-managed userdata, so
 * a Lua error never leaks what was already copied. */
static int sfr_session_new(lua_State *L)
{
    sfr_session *s;
    int from_conf = sfr_is_udata(L, 1, SFR_CONF_MT);
    if (!from_conf)
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
    if (from_conf)
        sfr_conf_copy(L, &s->conf, lua_touserdata(L, 1));
    else
        sfr_conf_read(L, 1, &s->conf);
    s->multi = curl_multi_init();
    if (s->multi == NULL)
        return luaL_error(L, "sfreports: curl_multi_init failed");
    return 1;
}

static int sfr_session_set_token(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "sfreports: set_token expects a string");
    sfr_conf_set_token(L, &s->conf, 2);
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
    lua_pushfstring(L, "sfreports.session (%s)", s->conf.base_url ? s->conf.base_url : "closed");
    return 1;
}

/* ---------- starting a request ---------- */

static void sfr_add_header(lua_State *L, sfr_request *r, const char *h)
{
    struct curl_slist *n = curl_slist_append(r->headers, h);
    if (n == NULL)
        luaL_error(L, "sfreports: out of memory");
    r->headers = n;
}

/* The total time cap of one request in seconds (0: none): the session's timeout, or the
 * request's own (ropts.timeout) when that is shorter. */
static double sfr_request_timeout(const sfr_session *s, const sfr_plan *p)
{
    double t = s->conf.timeout;
    if (p->timeout > 0 && (t <= 0 || p->timeout < t))
        t = p->timeout;
    return t;
}

static void sfr_setup_stall(sfr_request *r, double stall_s)
{
    /* the exact check is sfr_on_progress; curl's coarse one (whole seconds, rounded
     * up) stays as a backstop and keeps curl waking up while nothing arrives */
    long coarse = (long)ceil(stall_s);
    r->stall_s = stall_s;
    r->last_io = sfr_now();
    curl_easy_setopt(r->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(r->easy, CURLOPT_LOW_SPEED_TIME, coarse);
    curl_easy_setopt(r->easy, CURLOPT_XFERINFOFUNCTION, sfr_on_progress);
    curl_easy_setopt(r->easy, CURLOPT_XFERINFODATA, (void *)r);
    curl_easy_setopt(r->easy, CURLOPT_NOPROGRESS, 0L);
}

/* The method and body of the description, as curl options. */
static void sfr_setup_method(sfr_request *r, const sfr_plan *p)
{
    if (strcmp(p->method, "GET") == 0) {
        curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(p->method, "HEAD") == 0) {
        curl_easy_setopt(r->easy, CURLOPT_NOBODY, 1L);
        return;
    }
    if (strcmp(p->method, "POST") != 0)
        curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, p->method);
    if (p->send_body) {
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_len);
        curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, p->body ? p->body : "");
    }
}

static sfr_request *sfr_push_request_udata(lua_State *L)
{
    sfr_request *r = sfr_newuserdata(L, sizeof(*r));
    memset(r, 0, sizeof(*r));
    luaL_getmetatable(L, SFR_REQUEST_MT);
    lua_setmetatable(L, -2);
    return r;
}

/* Turns the description sfr_plan_make left on top (url, header lines) into a new request
 * userdata (not yet submitted), which replaces them on the stack. Everything about the
 * request itself (URL, headers, body) comes from the description; what is set here is
 * libcurl's mechanism: callbacks, timeouts, TLS, proxy. */
static void sfr_request_build(lua_State *L, sfr_session *s, const sfr_plan *p)
{
    int lines = lua_gettop(L);
    int i, n = (int)sfr_rawlen(L, lines);
    sfr_request *r = sfr_push_request_udata(L);
    r->raw = p->raw;
    r->allow_empty = p->allow_empty;
    r->max_response = (size_t)s->conf.max_response;
    if (p->sink) {
        lua_createtable(L, 0, 1); /* the user value: { sink = function } */
        lua_getfield(L, p->ropts_idx, "sink");
        lua_setfield(L, -2, "sink");
        sfr_setuservalue(L, -2);
        r->sink = 1;
        r->stream_type = strdup(p->stream_type); /* owned by the userdata from here */
        if (r->stream_type == NULL)
            luaL_error(L, "sfreports: out of memory");
    }
    r->easy = curl_easy_init();
    if (r->easy == NULL)
        luaL_error(L, "sfreports: curl_easy_init failed");
    curl_easy_setopt(r->easy, CURLOPT_URL, p->url); /* curl copies */
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, (void *)r);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, sfr_on_body);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, (void *)r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, sfr_on_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, (void *)r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    /* decodes what the description's Accept-Encoding asked for; the header itself is the
     * description's line (a custom header replaces curl's own) */
    curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, sfr_ms(sfr_request_timeout(s, p)));
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, sfr_ms(s->conf.connect_timeout));
    if (s->conf.stall_timeout > 0)
        sfr_setup_stall(r, s->conf.stall_timeout);
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, s->conf.verify ? 1L : 0L);
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, s->conf.verify ? 2L : 0L);
    if (s->conf.cafile) curl_easy_setopt(r->easy, CURLOPT_CAINFO, s->conf.cafile);
    if (s->conf.capath) curl_easy_setopt(r->easy, CURLOPT_CAPATH, s->conf.capath);
    if (s->conf.proxy) curl_easy_setopt(r->easy, CURLOPT_PROXY, s->conf.proxy);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
    sfr_add_header(L, r, "Expect:"); /* no 100-continue round trip */
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, lines, i);
        sfr_add_header(L, r, lua_tostring(L, -1)); /* curl copies */
        lua_pop(L, 1);
    }
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    sfr_setup_method(r, p);
    lua_replace(L, lines - 1); /* the request over the URL */
    lua_settop(L, lines - 1);
}

/* Replaces the (nil, err) on top with a request that is already finished with that error
 * and waits in the session's finished table (so perform reports it): start and the
 * start form of the runs always give a handle. */
static void sfr_request_failed(lua_State *L, int si)
{
    sfr_request *r;
    int err = lua_gettop(L);
    si = sfr_absindex(L, si);
    r = sfr_push_request_udata(L);
    r->done = 1;
    r->failed = 1;
    lua_pushvalue(L, err);
    sfr_setuservalue(L, -2);
    sfr_getuservalue(L, si);
    lua_getfield(L, -1, "finished");
    lua_pushlightuserdata(L, r);
    lua_pushvalue(L, -4);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    lua_replace(L, err - 1);
    lua_settop(L, err - 1);
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

/* ---------- sinks ---------- */

static void sfr_push_headers(lua_State *L, const char *head, size_t len);

/* Ends the transfer of r (at index ri, in the session at si or 0) with the error on top,
 * which becomes its user value: out of the multi, finished, and (when it was active)
 * moved to the session's finished table so that perform reports it. Pops the error. */
static void sfr_request_fail_now(lua_State *L, int si, int ri, sfr_request *r)
{
    int was_active = r->session != NULL;
    ri = sfr_absindex(L, ri);
    sfr_setuservalue(L, ri);
    r->sink_failed = 1;
    r->done = 1;
    sfr_detach(r);
    if (was_active && si != 0) {
        sfr_getuservalue(L, si);
        lua_getfield(L, -1, "active");
        lua_pushlightuserdata(L, r);
        lua_pushnil(L);
        lua_rawset(L, -3);
        lua_getfield(L, -2, "finished");
        lua_pushlightuserdata(L, r);
        lua_pushvalue(L, ri);
        lua_rawset(L, -3);
        lua_pop(L, 3);
    }
}

/* Hands what the request at ri (a sink request) holds for its sink to the sink:
 * sink(chunk), sink(chunk, headers) the first time, under lua_pcall. A sink that raises
 * or returns false (or nil and an error) fails the request with an `io` error. Then
 * resumes a paused transfer. Returns 1, or 0 when the sink failed. */
static int sfr_sink_flush(lua_State *L, int si, int ri)
{
    sfr_request *r;
    int top = lua_gettop(L), nargs = 1, failed;
    ri = sfr_absindex(L, ri);
    r = lua_touserdata(L, ri);
    if (r->streaming != 1 || r->sink_failed || r->body_len == 0)
        return !r->sink_failed;
    sfr_getuservalue(L, ri);
    lua_getfield(L, -1, "sink");
    lua_pushlstring(L, r->body, r->body_len);
    r->sunk += (double)r->body_len;
    r->body_len = 0;
    if (!r->headers_given) {
        r->headers_given = 1;
        sfr_push_headers(L, r->head ? r->head : "", r->head_len);
        nargs = 2;
    }
    if (lua_pcall(L, nargs, 2, 0) != 0) {
        failed = 1;
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
            lua_pushfstring(L, "the sink raised a %s", luaL_typename(L, -1));
            lua_remove(L, -2);
        }
        lua_pushliteral(L, ""); /* two slots, as after a call */
    } else {
        failed = lua_type(L, -2) == LUA_TBOOLEAN ? !lua_toboolean(L, -2) : (lua_isnil(L, -2) && !lua_isnil(L, -1));
        if (failed) {
            if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
                lua_replace(L, -2);
                lua_pushliteral(L, "");
            } else {
                lua_pop(L, 2);
                lua_pushliteral(L, "the sink refused a chunk");
                lua_pushliteral(L, "");
            }
        }
    }
    if (failed) {
        lua_pop(L, 1);
        lua_pushfstring(L, "the sink failed: %s", lua_tostring(L, -1));
        sfr_push_error(L, "io", lua_tostring(L, -1), r->status, NULL, 0);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "request_sent");
        sfr_push_number(L, r->sunk);
        lua_setfield(L, -2, "streamed");
        sfr_request_fail_now(L, si, ri, r);
        lua_settop(L, top);
        return 0;
    }
    lua_settop(L, top);
    r->last_io = sfr_now(); /* time spent in the sink is not a stall of the server */
    if (r->paused && r->easy != NULL && r->in_multi) {
        r->paused = 0;
        curl_easy_pause(r->easy, CURLPAUSE_CONT);
    }
    return 1;
}

/* Hands every active request's buffered bytes to its sink. The sinks are Lua code: they
 * may close requests or the session, so the list is searched again after each call. */
static void sfr_flush_sinks(lua_State *L, sfr_session *s, int si)
{
    int top = lua_gettop(L);
    si = sfr_absindex(L, si);
    while (s->multi != NULL) {
        sfr_request *r;
        for (r = s->active; r != NULL; r = r->next)
            if (r->streaming == 1 && !r->sink_failed && r->body_len > 0)
                break;
        if (r == NULL)
            break;
        sfr_getuservalue(L, si);
        lua_getfield(L, -1, "active");
        lua_pushlightuserdata(L, r);
        lua_rawget(L, -2);          /* the request object, kept alive on the stack */
        if (!lua_isuserdata(L, -1)) {
            lua_settop(L, top);
            break;
        }
        sfr_sink_flush(L, si, -1);
        lua_settop(L, top);
    }
}

/* One turn of the engine: run transfers, wait up to wait_ms for activity when nothing
 * finished yet, run them again, collect finished transfers; sinks get what arrived. */
static void sfr_turn(lua_State *L, sfr_session *s, int si, int wait_ms)
{
    int running = 0;
    curl_multi_perform(s->multi, &running);
    sfr_collect(L, s, si);
    sfr_flush_sinks(L, s, si);
    if (s->multi == NULL)
        return;
    if (running > 0 && wait_ms > 0) {
        /* curl runs the progress callback (the stall check) only when it is driven, and
         * when idle it asks to be driven once a second: poll in slices of 1/20 of the
         * stall limit so that a stall is noticed within 5% of stall_timeout. */
        double stall_s = s->conf.stall_timeout;
        if (stall_s > 0) {
            int slice = stall_s * 50.0 < 5.0 ? 5 : (stall_s * 50.0 > 1000.0 ? 1000 : (int)(stall_s * 50.0));
            if (wait_ms > slice)
                wait_ms = slice;
        }
        curl_multi_poll(s->multi, NULL, 0, wait_ms, NULL);
        curl_multi_perform(s->multi, &running);
        sfr_collect(L, s, si);
        sfr_flush_sinks(L, s, si);
    }
}

/* session:perform(wait_seconds?) -> array of requests finished since the last call */
static int sfr_session_perform(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    double wait = luaL_optnumber(L, 2, 0);
    int n = 0;
    if (wait != wait || wait - wait != 0) /* NaN, or an infinity */
        return luaL_error(L, "sfreports: perform expects a finite number of seconds");
    sfr_turn(L, s, 1, wait <= 0 ? 0 : (int)sfr_ms(wait < SFR_MAX_SECONDS ? wait : SFR_MAX_SECONDS));
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

/* A Retry-After in seconds, or -1 when it is not a number of seconds this library can
 * wait (an HTTP date, NaN, an infinity, a negative or absurdly large number). */
static double sfr_header_number(const char *v)
{
    char *end;
    double d = strtod(v, &end);
    return (end == v || !sfr_in_range(d, 0, SFR_MAX_SECONDS)) ? -1 : d;
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

/* True when curl itself refused a response header line as too large: libcurl 7.x
 * reports a line over CURL_MAX_HTTP_HEADER as "out of memory" (without detail), later
 * versions as CURLE_TOO_LARGE (100). Headers had started to arrive, no body had. */
static int sfr_curl_header_limit(const sfr_request *r)
{
    return (r->result == CURLE_OUT_OF_MEMORY || r->result == (CURLcode)100)
        && r->head_len > 0 && r->body_len == 0;
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

/* Adds what the exchange cost to the table on top (a meta or an error): bytes_in (the
 * response's header block and body as received), bytes_out (request head and body),
 * elapsed (curl's total time, seconds), connection_reused (no new connection was made
 * and one was used), target (the request target: path and query, never the host). */
static void sfr_push_exchange(lua_State *L, sfr_request *r)
{
    curl_off_t down = 0, up = 0, total_us = 0;
    long head = 0, req = 0, connects = 0;
    char *url = NULL, *ip = NULL;
    const char *t;
    curl_easy_getinfo(r->easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
    curl_easy_getinfo(r->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(r->easy, CURLINFO_HEADER_SIZE, &head);
    curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &req);
    curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total_us);
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(r->easy, CURLINFO_PRIMARY_IP, &ip);
    curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
    lua_pushinteger(L, (lua_Integer)(down + head));
    lua_setfield(L, -2, "bytes_in");
    lua_pushinteger(L, (lua_Integer)(up + req));
    lua_setfield(L, -2, "bytes_out");
    lua_pushnumber(L, (lua_Number)total_us / 1e6);
    lua_setfield(L, -2, "elapsed");
    lua_pushboolean(L, connects == 0 && ip != NULL && ip[0] != '\0');
    lua_setfield(L, -2, "connection_reused");
    if (url != NULL && (t = strstr(url, "://")) != NULL) {
        t = strchr(t + 3, '/');
        lua_pushstring(L, t ? t : "/");
        lua_setfield(L, -2, "target");
    }
}

/* Pushes (value, meta) or (nil, err) for a finished request at index ri. decode_idx is the
 * cjson decode function. Frees the response buffers once they are no longer needed. */
static int sfr_push_result(lua_State *L, int decode_idx, int ri)
{
    sfr_request *r = lua_touserdata(L, ri);
    ri = sfr_absindex(L, ri);
    if (!r->done)
        return luaL_error(L, "sfreports: request has not finished (drive it with session:perform)");
    if (r->result == CURLE_OK && r->streaming == 1 && !r->failed)
        sfr_sink_flush(L, 0, ri); /* the last bytes; a failure makes sink_failed */
    if (r->failed || r->sink_failed) { /* never sent (a refused description), or a sink failed */
        lua_pushnil(L);
        sfr_getuservalue(L, ri);
        return 2;
    }
    if (r->result != CURLE_OK) {
        int retryable, sent;
        const char *kind = sfr_curl_kind(r, &retryable, &sent);
        char num[48];
        lua_pushnil(L);
        if (r->too_large) {
            snprintf(num, sizeof(num), "%.0f", (double)r->max_response);
            lua_pushfstring(L, "response larger than max_response (%s bytes); raise max_response to accept it",
                            num);
        } else if (r->head_too_large) {
            kind = "http";
            retryable = 0;
            lua_pushfstring(L, "response headers exceed %d bytes", SFR_MAX_HEADER_BYTES);
        } else if (sfr_curl_header_limit(r)) {
            kind = "http";
            retryable = 0;
            lua_pushfstring(L, "response headers too large (a line over libcurl's limit of %d bytes)",
                            (int)CURL_MAX_HTTP_HEADER);
        } else if (r->stalled) {
            snprintf(num, sizeof(num), "%g", r->stall_s);
            lua_pushfstring(L, "no data received for %s seconds (stall_timeout)", num);
        } else if (r->result == CURLE_SSL_CONNECT_ERROR && strstr(r->errbuf, "wrong version number")) {
            /* a TLS handshake answered in plain text: https:// to a port that speaks http */
            lua_pushfstring(L, "TLS handshake failed: the server answered without TLS (is it an http:// "
                            "address, or a plain-http port?): %s", r->errbuf);
        } else if (r->errbuf[0] && strstr(r->errbuf, curl_easy_strerror(r->result)))
            /* newer libcurl ends its detail with the error's own text: say it once */
            lua_pushstring(L, r->errbuf);
        else
            lua_pushfstring(L, "%s: %s", curl_easy_strerror(r->result),
                            r->errbuf[0] ? r->errbuf : "no detail");
        if (r->sunk > 0)
            retryable = 0; /* part of the answer is in the sink: trying again would repeat it */
        sfr_push_error(L, kind, lua_tostring(L, -1), r->status > 0 ? r->status : 0, NULL, retryable);
        lua_remove(L, -2);
        lua_pushboolean(L, sent);
        lua_setfield(L, -2, "request_sent");
        lua_pushinteger(L, (lua_Integer)r->result);
        lua_setfield(L, -2, "curl_code");
        sfr_push_exchange(L, r);
        if (r->sunk > 0) {
            sfr_push_number(L, r->sunk);
            lua_setfield(L, -2, "streamed");
        }
        return 2;
    }
    if (r->streaming == 1) {
        /* the body went to the sink: the value is the number of bytes it got */
        sfr_push_number(L, r->sunk);
        lua_createtable(L, 0, 5);
        lua_pushinteger(L, (lua_Integer)r->status);
        lua_setfield(L, -2, "status");
        sfr_push_headers(L, r->head ? r->head : "", r->head_len);
        lua_getfield(L, -1, "sforce-limit-info");
        lua_setfield(L, -3, "limit_info");
        lua_setfield(L, -2, "headers");
        sfr_push_number(L, r->sunk);
        lua_setfield(L, -2, "bytes");
        sfr_push_exchange(L, r);
        return 2;
    }
    {
        const char *ctype = NULL, *location;
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
        lua_getfield(L, meta_idx, "location");
        location = lua_tostring(L, -1); /* stays on the stack below the result */
        /* The body moves into a Lua string and the C copy is freed before decoding, so a
         * large report is held once, not twice, while its decoded tree is built. */
        lua_pushlstring(L, r->body ? r->body : "", r->body_len);
        sfr_request_reset_buffers(r);
        sfr_classify(L, decode_idx, r->status, ctype, -1, r->allow_empty, r->raw, retry_after, location,
                     r->sink ? r->stream_type : NULL);
        lua_remove(L, -3); /* the body string */
        /* stack: headers, ctype, location, value|nil, nil|err */
        ok = !lua_isnil(L, -2);
        if (ok) {
            lua_pop(L, 1);
            lua_createtable(L, 0, 9);
            lua_pushinteger(L, (lua_Integer)r->status);
            lua_setfield(L, -2, "status");
            lua_pushvalue(L, meta_idx);
            lua_setfield(L, -2, "headers");
        }
        if (lua_istable(L, -1)) { /* the meta, or the error: both tell the exchange */
            lua_getfield(L, meta_idx, "sforce-limit-info");
            lua_setfield(L, -2, "limit_info");
            sfr_push_exchange(L, r);
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
    while (!r->done) {
        sfr_turn(L, s, si, 1000);
        /* a sink (Lua code) may have closed the session or this request */
        if (s->multi == NULL)
            luaL_error(L, "sfreports: the session was closed while a request waited");
        if (!r->done && r->easy == NULL)
            luaL_error(L, "sfreports: the request was closed while it was waited for");
    }
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

/* Finishes what a plan function left on top: (url, lines) when ok, else (nil, err).
 * start: pushes a request handle in flight (or already failed); otherwise sends the
 * request, waits for it and pushes its result (2 values). Returns the count pushed. */
static int sfr_dispatch(lua_State *L, sfr_session *s, int ok, const sfr_plan *p, int start)
{
    if (!ok) {
        if (!start)
            return 2;
        sfr_request_failed(L, 1);
        return 1;
    }
    sfr_request_build(L, s, p);
    if (start) {
        sfr_request_submit(L, s, 1, -1);
        return 1;
    }
    return sfr_await(L, s, lua_gettop(L));
}

/* session:request(method, path, body?, headers?, ropts?) -> value, meta | nil, err
 * ropts: true (raw: a 2xx JSON answer is returned as its text; errors are classified as
 * usual) or { raw = bool, timeout = seconds } (timeout caps this request's total time
 * below the session's). */
static int sfr_session_request(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    sfr_plan p;
    const char *method = sfr_check_method(L, 2);
    lua_settop(L, 6);
    sfr_read_ropts(L, 6, &p);
    return sfr_dispatch(L, s, sfr_plan_make(L, &s->conf, method, 3, 4, 5, &p), &p, 0);
}

/* session:start(method, path, body?, headers?, ropts?) -> request (in flight) */
static int sfr_session_start(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    sfr_plan p;
    const char *method = sfr_check_method(L, 2);
    lua_settop(L, 6);
    sfr_read_ropts(L, 6, &p);
    return sfr_dispatch(L, s, sfr_plan_make(L, &s->conf, method, 3, 4, 5, &p), &p, 1);
}

/* A report run: (report_id, metadata_json?, include_details?, ropts?) at stack 2..5,
 * described by request.c. ropts = { timeout = seconds, start = true }: start returns a
 * request handle instead of waiting. */
static int sfr_run(lua_State *L, int async)
{
    sfr_session *s = sfr_check_session(L, 1);
    sfr_plan p;
    int start;
    lua_settop(L, 5);
    start = sfr_read_ropts(L, 5, &p);
    p.raw = 0;
    return sfr_dispatch(L, s, sfr_plan_run(L, &s->conf, async, 2, 3, 4, &p), &p, start);
}

/* session:run_sync(report_id, metadata_json?, include_details?, ropts?) */
static int sfr_session_run_sync(lua_State *L)
{
    return sfr_run(L, 0);
}

/* session:run_async(report_id, metadata_json?, include_details?, ropts?) */
static int sfr_session_run_async(lua_State *L)
{
    return sfr_run(L, 1);
}

/* session:fetch_instance(report_id, instance_id, ropts?) */
static int sfr_session_fetch_instance(lua_State *L)
{
    sfr_session *s = sfr_check_session(L, 1);
    sfr_plan p;
    int start;
    lua_settop(L, 4);
    start = sfr_read_ropts(L, 4, &p);
    p.raw = 0;
    return sfr_dispatch(L, s, sfr_plan_instance(L, &s->conf, 2, 3, &p), &p, start);
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
