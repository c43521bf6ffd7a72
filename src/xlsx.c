/* xlsx.c: sfreports.xlsx (luaopen_sfreports_xlsx), the C half of the native .xlsx
 * writer (sfreports.writers.xlsx), over libxlsxwriter in its constant-memory mode: each
 * row goes to a temporary file as soon as the next one starts, so a workbook of any
 * length is written in the memory of one row. A second small module, built apart from
 * sfreports.core so that only programs writing .xlsx need libxlsxwriter.
 *
 *   local xlsx = require "sfreports.xlsx"
 *   local book, err = xlsx.open(path, { tmpdir =, zip64 = })  -- nothing is written yet
 *   local bold = book:format{ bold = true }                    -- a format handle (integer)
 *   local money = book:format{ num_format = "#,##0.00" }
 *   local sheet, err = book:sheet("Report")                    -- checked name
 *   sheet:write(0, 0, "Amount", bold)                          -- string | number | boolean | nil
 *   local layout = xlsx.layout({ "text", "currency" }, { 0, money }, raw)
 *   sheet:row(1, 0, cells, layout)   -- cells[i] = { value =, label = [, currency =] } or a bare value
 *   sheet:freeze(1, 0); sheet:autofilter(0, 0, 1, 1); sheet:fit(8, 60)
 *   local ok, err = book:close()     -- writes the file; book:discard() drops it (also __gc, __close)
 *
 * Kinds (one per column, chosen by the Lua writer from the column's data type):
 *   text      label mode: the cell's label when it is text, else its value
 *   raw       the value: strings as text, numbers as numbers, booleans as booleans,
 *             a currency object as its amount
 *   number    a number (a numeric string is read as one), with the column's format
 *   percent   a number / 100, with a percent format (Salesforce sends 45 for 45 %)
 *   currency  the amount, formatted with the symbol or ISO code of the cell's own
 *             currency (value.currency, or cell.currency for typed cells)
 *   date, datetime, time   ISO text (2026-01-15, 2026-01-15T10:20:30.000Z with Z or an
 *             offset: written in UTC, 10:20:30.000Z) as a real Excel date/time serial
 *   boolean   true/false (or the strings "true"/"false") as an Excel boolean
 * A value of the wrong type for its kind is written as text (the label in label mode),
 * never dropped; JSON null (a light userdata) and nil leave the cell blank. Text is
 * always a string cell (never a formula: no injection), valid UTF-8 (a bad byte or a
 * control character other than TAB/LF/CR becomes U+FFFD) and cut at Excel's 32,767
 * characters. Widths: the longest text written per column is kept for fit().
 *
 * Ownership: the book userdata owns the lxw_workbook (and its formats); a sheet userdata
 * keeps its book alive through its user value and refuses to work once the book is
 * closed. No memory is malloc'd across a call that can raise except what a userdata
 * owns; misuse raises naming the argument; libxlsxwriter's failures are nil, message. */

#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xlsxwriter.h>

#include "compat.h"

#define SFR_BOOK_MT "sfreports.xlsx.book"
#define SFR_SHEET_MT "sfreports.xlsx.sheet"
#define SFR_LAYOUT_MT "sfreports.xlsx.layout"
#define SFR_MAX_FORMATS 65536
#define SFR_MAX_CURRENCIES 512
#define SFR_MAX_CHARS 32767     /* Excel's limit of one cell's text (UTF-16 units) */
#define SFR_WIDTH_CAP 255

typedef struct {
    char code[4];
    lxw_format *fmt;
} sfr_currency;

typedef struct {
    lxw_workbook *wb;          /* NULL once closed or discarded */
    char *tmpdir;              /* owned; libxlsxwriter keeps the pointer */
    lxw_format **formats;      /* handle h is formats[h - 1]; owned by wb */
    int nformats, capformats;
    sfr_currency *currencies;  /* a format per currency code, made on first use */
    int ncur, capcur;
    lxw_worksheet **sheets;    /* the worksheets added (owned by wb), for discarding */
    int nsheets, capsheets;
} sfr_book;

typedef struct {
    sfr_book *book;            /* alive: the sheet's user value holds the book */
    lxw_worksheet *ws;         /* owned by the workbook */
    long row;                  /* the last row written (-1: none): rows only go down */
    unsigned short *widths;    /* the widest text per column, owned */
    int nwidths;
} sfr_sheet;

enum { K_TEXT, K_RAW, K_NUMBER, K_PERCENT, K_CURRENCY, K_DATE, K_DATETIME, K_TIME, K_BOOLEAN };
static const char *const sfr_kind_names[] = {
    "text", "raw", "number", "percent", "currency", "date", "datetime", "time", "boolean", NULL
};

typedef struct {
    int n, raw;
    int cells[1];              /* n kinds, then n format handles (allocated with the userdata) */
} sfr_layout;

/* ---------- the book ---------- */

static sfr_book *sfr_check_book(lua_State *L, int i)
{
    sfr_book *b = luaL_checkudata(L, i, SFR_BOOK_MT);
    if (b->wb == NULL)
        luaL_error(L, "sfreports.xlsx: the workbook is closed");
    return b;
}

static void sfr_book_release(sfr_book *b)
{
    if (b->wb != NULL) {
        int i;
        /* In constant-memory mode each worksheet keeps its rows in a temporary file
         * (unlinked, open) until workbook_close assembles the file; lxw_workbook_free
         * does not close it (libxlsxwriter 1.1), which would keep the descriptor and the
         * disk space of the rows until the process ends. */
        for (i = 0; i < b->nsheets; i++) {
            if (b->sheets[i]->optimize_tmpfile != NULL) {
                fclose(b->sheets[i]->optimize_tmpfile);
                b->sheets[i]->optimize_tmpfile = NULL;
            }
        }
        lxw_workbook_free(b->wb); /* discards: no file is written */
        b->wb = NULL;
    }
    free(b->sheets);
    b->sheets = NULL;
    b->nsheets = b->capsheets = 0;
    free(b->formats);
    b->formats = NULL;
    b->nformats = b->capformats = 0;
    free(b->currencies);
    b->currencies = NULL;
    b->ncur = b->capcur = 0;
    free(b->tmpdir);
    b->tmpdir = NULL;
}

static int sfr_book_gc(lua_State *L)
{
    sfr_book_release(luaL_checkudata(L, 1, SFR_BOOK_MT));
    return 0;
}

/* xlsx.open(path, { tmpdir =, zip64 = }?) -> book | nil, err */
static int sfr_xlsx_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lxw_workbook_options o;
    sfr_book *b;
    memset(&o, 0, sizeof(o));
    o.constant_memory = LXW_TRUE;
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    b = sfr_newuserdata(L, sizeof(*b));
    memset(b, 0, sizeof(*b));
    luaL_getmetatable(L, SFR_BOOK_MT);
    lua_setmetatable(L, -2);
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "tmpdir");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "sfreports.xlsx: option 'tmpdir' must be a string");
            b->tmpdir = strdup(lua_tostring(L, -1));
            if (b->tmpdir == NULL)
                luaL_error(L, "sfreports.xlsx: out of memory");
        }
        lua_getfield(L, 2, "zip64");
        o.use_zip64 = lua_toboolean(L, -1) ? LXW_TRUE : LXW_FALSE;
        lua_pop(L, 2);
    }
    o.tmpdir = b->tmpdir;
    b->wb = workbook_new_opt(path, &o);
    if (b->wb == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot start a workbook for %s (out of memory, or no temporary file)", path);
        return 2;
    }
    return 1;
}

/* Stores a new format, returning its handle; raises past SFR_MAX_FORMATS. */
static int sfr_book_keep_format(lua_State *L, sfr_book *b, lxw_format *f)
{
    if (f == NULL)
        luaL_error(L, "sfreports.xlsx: out of memory");
    if (b->nformats == b->capformats) {
        int ncap = b->capformats ? b->capformats * 2 : 16;
        lxw_format **nf;
        if (ncap > SFR_MAX_FORMATS)
            luaL_error(L, "sfreports.xlsx: more than %d formats", SFR_MAX_FORMATS);
        nf = realloc(b->formats, (size_t)ncap * sizeof(*nf));
        if (nf == NULL)
            luaL_error(L, "sfreports.xlsx: out of memory");
        b->formats = nf;
        b->capformats = ncap;
    }
    b->formats[b->nformats++] = f;
    return b->nformats;
}

/* book:format{ bold = bool, num_format = string } -> handle */
static int sfr_book_format(lua_State *L)
{
    sfr_book *b = sfr_check_book(L, 1);
    lxw_format *f;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "num_format");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "sfreports.xlsx: format option 'num_format' must be a string");
    f = workbook_add_format(b->wb);
    lua_pushinteger(L, sfr_book_keep_format(L, b, f));
    if (lua_type(L, -2) == LUA_TSTRING)
        format_set_num_format(f, lua_tostring(L, -2));
    lua_getfield(L, 2, "bold");
    if (lua_toboolean(L, -1))
        format_set_bold(f);
    lua_pop(L, 1);
    return 1;
}

/* The format of handle h (0: none); raises for a handle this book never gave. */
static lxw_format *sfr_book_fmt(lua_State *L, sfr_book *b, lua_Integer h)
{
    if (h == 0)
        return NULL;
    if (h < 0 || h > b->nformats)
        luaL_error(L, "sfreports.xlsx: unknown format handle %d", (int)h);
    return b->formats[h - 1];
}

/* The number format of a currency: its symbol for a few, else its ISO code. */
static void sfr_currency_format(char *out, size_t size, const char *code)
{
    static const struct { const char *code, *fmt; } known[] = {
        { "USD", "\"$\"#,##0.00" }, { "EUR", "\"\xE2\x82\xAC\"#,##0.00" },
        { "GBP", "\"\xC2\xA3\"#,##0.00" }, { "JPY", "\"\xC2\xA5\"#,##0" },
        { "INR", "\"\xE2\x82\xB9\"#,##0.00" }, { NULL, NULL }
    };
    int i;
    for (i = 0; known[i].code != NULL; i++)
        if (strcmp(known[i].code, code) == 0) {
            snprintf(out, size, "%s", known[i].fmt);
            return;
        }
    snprintf(out, size, "\"%s \"#,##0.00", code);
}

/* The format of currency `code` (three letters; anything else: NULL, the column's). */
static lxw_format *sfr_book_currency(lua_State *L, sfr_book *b, const char *code, size_t len)
{
    int i;
    char fmt[64];
    lxw_format *f;
    if (len != 3)
        return NULL;
    for (i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z')
            return NULL;
    for (i = 0; i < b->ncur; i++)
        if (memcmp(b->currencies[i].code, code, 3) == 0)
            return b->currencies[i].fmt;
    if (b->ncur >= SFR_MAX_CURRENCIES)
        return NULL;
    if (b->ncur == b->capcur) {
        int ncap = b->capcur ? b->capcur * 2 : 8;
        sfr_currency *nc = realloc(b->currencies, (size_t)ncap * sizeof(*nc));
        if (nc == NULL)
            luaL_error(L, "sfreports.xlsx: out of memory");
        b->currencies = nc;
        b->capcur = ncap;
    }
    f = workbook_add_format(b->wb);
    sfr_book_keep_format(L, b, f);
    sfr_currency_format(fmt, sizeof(fmt), code);
    format_set_num_format(f, fmt);
    memcpy(b->currencies[b->ncur].code, code, 3);
    b->currencies[b->ncur].code[3] = '\0';
    b->currencies[b->ncur].fmt = f;
    b->ncur++;
    return f;
}

/* book:sheet(name) -> sheet | nil, err */
static int sfr_book_sheet(lua_State *L)
{
    sfr_book *b = sfr_check_book(L, 1);
    const char *name = luaL_checkstring(L, 2);
    lxw_error e = workbook_validate_sheet_name(b->wb, name);
    sfr_sheet *sh;
    if (e != LXW_NO_ERROR) {
        lua_pushnil(L);
        lua_pushfstring(L, "bad sheet name '%s': %s", name, lxw_strerror(e));
        return 2;
    }
    sh = sfr_newuserdata(L, sizeof(*sh));
    memset(sh, 0, sizeof(*sh));
    sh->row = -1;
    luaL_getmetatable(L, SFR_SHEET_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "book");
    sfr_setuservalue(L, -2);
    sh->book = b;
    if (b->nsheets == b->capsheets) {
        int ncap = b->capsheets ? b->capsheets * 2 : 4;
        lxw_worksheet **ns = realloc(b->sheets, (size_t)ncap * sizeof(*ns));
        if (ns == NULL)
            luaL_error(L, "sfreports.xlsx: out of memory");
        b->sheets = ns;
        b->capsheets = ncap;
    }
    sh->ws = workbook_add_worksheet(b->wb, name);
    if (sh->ws == NULL)
        luaL_error(L, "sfreports.xlsx: cannot add worksheet '%s'", name);
    b->sheets[b->nsheets++] = sh->ws;
    return 1;
}

typedef struct {
    int fd;
    dev_t dev;
    ino_t ino;
} sfr_tmpfile_id;

/* book:close() -> true | nil, err: assembles and writes the file. */
static int sfr_book_close(lua_State *L)
{
    sfr_book *b = sfr_check_book(L, 1);
    sfr_tmpfile_id *ids;
    int i, n = b->nsheets;
    lxw_error e;
    /* workbook_close frees the workbook whatever happens, but when it fails (the file
     * cannot be created, the disk is full) it may leave worksheets' temporary files
     * open (libxlsxwriter 1.1): each is identified first, and closed afterwards if the
     * same unlinked file is still open on that descriptor. */
    ids = lua_newuserdata(L, sizeof(*ids) * (size_t)(n > 0 ? n : 1)); /* Lua-owned scratch */
    for (i = 0; i < n; i++) {
        struct stat st;
        FILE *f = b->sheets[i]->optimize_tmpfile;
        ids[i].fd = -1;
        if (f != NULL && fstat(fileno(f), &st) == 0) {
            ids[i].fd = fileno(f);
            ids[i].dev = st.st_dev;
            ids[i].ino = st.st_ino;
        }
    }
    e = workbook_close(b->wb);
    b->wb = NULL;
    sfr_book_release(b);
    if (e != LXW_NO_ERROR) {
        for (i = 0; i < n; i++) {
            struct stat st;
            if (ids[i].fd >= 0 && fstat(ids[i].fd, &st) == 0 && st.st_dev == ids[i].dev
                && st.st_ino == ids[i].ino && st.st_nlink == 0)
                close(ids[i].fd); /* its FILE was freed with the workbook, or is lost */
        }
    }
    if (e != LXW_NO_ERROR) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot write the workbook: %s", lxw_strerror(e));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* book:discard(): drops the workbook without writing anything (idempotent). */
static int sfr_book_discard(lua_State *L)
{
    sfr_book_release(luaL_checkudata(L, 1, SFR_BOOK_MT));
    return 0;
}

/* ---------- sheets ---------- */

static sfr_sheet *sfr_check_sheet(lua_State *L, int i)
{
    sfr_sheet *sh = luaL_checkudata(L, i, SFR_SHEET_MT);
    if (sh->book == NULL || sh->book->wb == NULL || sh->ws == NULL)
        luaL_error(L, "sfreports.xlsx: the workbook of this sheet is closed");
    return sh;
}

static int sfr_sheet_gc(lua_State *L)
{
    sfr_sheet *sh = luaL_checkudata(L, 1, SFR_SHEET_MT);
    free(sh->widths);
    sh->widths = NULL;
    sh->nwidths = 0;
    sh->ws = NULL;
    return 0;
}

/* A row or column argument: a whole number from 0 to max - 1. */
static long sfr_check_index(lua_State *L, int i, long max, const char *what)
{
    double v = luaL_checknumber(L, i);
    if (!(v >= 0 && v < (double)max) || v != floor(v))
        luaL_error(L, "sfreports.xlsx: %s must be a whole number from 0 to %d", what, (int)(max - 1));
    return (long)v;
}

/* Checks that row r may be written (rows only go down in constant-memory mode). */
static void sfr_sheet_at_row(lua_State *L, sfr_sheet *sh, long r)
{
    if (r < sh->row)
        luaL_error(L, "sfreports.xlsx: row %d was written after row %d (rows must go down)", (int)r, (int)sh->row);
    sh->row = r;
}

static void sfr_track(lua_State *L, sfr_sheet *sh, long col, size_t width)
{
    if (width > SFR_WIDTH_CAP)
        width = SFR_WIDTH_CAP;
    if (col >= sh->nwidths) {
        int ncap = sh->nwidths ? sh->nwidths : 32;
        unsigned short *nw;
        while (ncap <= col)
            ncap *= 2;
        if (ncap > LXW_COL_MAX)
            ncap = LXW_COL_MAX;
        nw = realloc(sh->widths, (size_t)ncap * sizeof(*nw));
        if (nw == NULL)
            luaL_error(L, "sfreports.xlsx: out of memory");
        memset(nw + sh->nwidths, 0, (size_t)(ncap - sh->nwidths) * sizeof(*nw));
        sh->widths = nw;
        sh->nwidths = ncap;
    }
    if (width > sh->widths[col])
        sh->widths[col] = (unsigned short)width;
}

/* Length in UTF-8 characters, or (size_t)-1 when s is not clean: bytes that are not
 * UTF-8, control characters other than TAB, LF and CR, or more than SFR_MAX_CHARS
 * UTF-16 units. */
static size_t sfr_clean_length(const unsigned char *s, size_t len)
{
    size_t i = 0, chars = 0, units = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned long cp;
        if (c < 0x80) {
            if ((c < 32 && c != 9 && c != 10 && c != 13) || c == 127)
                return (size_t)-1;
            n = 1;
            cp = c;
        } else if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
        else return (size_t)-1;
        if (i + n > len)
            return (size_t)-1;
        {
            size_t k;
            for (k = 1; k < n; k++) {
                if ((s[i + k] & 0xC0) != 0x80)
                    return (size_t)-1;
                cp = (cp << 6) | (s[i + k] & 0x3F);
            }
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return (size_t)-1;
        units += cp >= 0x10000 ? 2 : 1;
        if (units > SFR_MAX_CHARS)
            return (size_t)-1;
        chars++;
        i += n;
    }
    return chars;
}

/* Pushes s made clean (see sfr_clean_length): each bad byte or control character is
 * U+FFFD, and the text ends at SFR_MAX_CHARS UTF-16 units. Returns its length in chars. */
static size_t sfr_push_clean_text(lua_State *L, const unsigned char *s, size_t len)
{
    luaL_Buffer b;
    size_t i = 0, chars = 0, units = 0;
    luaL_buffinit(L, &b);
    while (i < len) {
        size_t n = 1, k;
        unsigned char c = s[i];
        int ok = 1;
        unsigned long cp = 0;
        if (c < 0x80) {
            ok = !((c < 32 && c != 9 && c != 10 && c != 13) || c == 127);
            cp = c;
        } else if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
        else ok = 0;
        if (ok && n > 1) {
            if (i + n > len)
                ok = 0;
            for (k = 1; ok && k < n; k++) {
                if ((s[i + k] & 0xC0) != 0x80)
                    ok = 0;
                else
                    cp = (cp << 6) | (s[i + k] & 0x3F);
            }
            if (ok && ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
                       || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
                ok = 0;
        }
        if (!ok) {
            n = 1;
            cp = 0xFFFD;
        }
        if (units + (cp >= 0x10000 ? 2 : 1) > SFR_MAX_CHARS)
            break;
        units += cp >= 0x10000 ? 2 : 1;
        if (ok)
            luaL_addlstring(&b, (const char *)s + i, n);
        else
            luaL_addstring(&b, "\xEF\xBF\xBD");
        chars++;
        i += n;
    }
    luaL_pushresult(&b);
    return chars;
}

/* Writes the string at index i as a text cell (cleaned if it must be). */
static lxw_error sfr_write_text(lua_State *L, sfr_sheet *sh, long r, long c, int i, lxw_format *f)
{
    size_t len, chars;
    const char *s = lua_tolstring(L, i, &len);
    lxw_error e;
    if (len == 0)
        return LXW_NO_ERROR; /* an empty text is a blank cell */
    chars = sfr_clean_length((const unsigned char *)s, len);
    if (chars != (size_t)-1) {
        sfr_track(L, sh, c, chars);
        return worksheet_write_string(sh->ws, (lxw_row_t)r, (lxw_col_t)c, s, f);
    }
    chars = sfr_push_clean_text(L, (const unsigned char *)s, len);
    sfr_track(L, sh, c, chars);
    e = worksheet_write_string(sh->ws, (lxw_row_t)r, (lxw_col_t)c, lua_tostring(L, -1), f);
    lua_pop(L, 1);
    return e;
}

/* Writes a finite number (a non-finite one is written as text: Excel has none). */
static lxw_error sfr_write_number(lua_State *L, sfr_sheet *sh, long r, long c, double v, lxw_format *f,
                                  size_t width)
{
    if (v != v || v - v != 0) {
        lua_pushstring(L, v != v ? "NaN" : (v > 0 ? "Infinity" : "-Infinity"));
        {
            lxw_error e = sfr_write_text(L, sh, r, c, -1, f);
            lua_pop(L, 1);
            return e;
        }
    }
    sfr_track(L, sh, c, width);
    return worksheet_write_number(sh->ws, (lxw_row_t)r, (lxw_col_t)c, v, f);
}

/* A number from the value at index i: a number, or a string that is wholly one. */
static int sfr_to_number(lua_State *L, int i, double *out)
{
    if (lua_type(L, i) == LUA_TNUMBER) {
        *out = lua_tonumber(L, i);
        return 1;
    }
    if (lua_type(L, i) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);
        char *end;
        double v;
        if (len == 0 || len > 64 || !(s[0] == '-' || s[0] == '+' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')))
            return 0;
        v = strtod(s, &end);
        if (end != s + len || v != v || v - v != 0)
            return 0;
        *out = v;
        return 1;
    }
    return 0;
}

/* ---------- dates ---------- */

static int sfr_digits(const char *s, int n, int *out)
{
    int i, v = 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int sfr_days_in_month(int y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* Parses "HH:MM[:SS[.fff]]" then an optional "Z" or "+HH:MM"/"-HH:MM" at s; returns the
 * seconds of the day and the offset in seconds, or 0 when s is not such a time. */
static int sfr_parse_time(const char *s, double *secs, double *offset)
{
    int h, mi, sec = 0;
    double frac = 0;
    const char *p = s;
    if (!sfr_digits(p, 2, &h) || p[2] != ':' || !sfr_digits(p + 3, 2, &mi))
        return 0;
    p += 5;
    if (*p == ':') {
        if (!sfr_digits(p + 1, 2, &sec))
            return 0;
        p += 3;
        if (*p == '.') {
            double scale = 0.1;
            p++;
            if (*p < '0' || *p > '9')
                return 0;
            while (*p >= '0' && *p <= '9') {
                frac += (*p - '0') * scale;
                scale /= 10;
                p++;
            }
        }
    }
    if (h > 23 || mi > 59 || sec > 60)
        return 0;
    *offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        const char *q = p + 1;
        if (!sfr_digits(q, 2, &oh))
            return 0;
        q += 2;
        if (*q == ':')
            q++;
        if (!sfr_digits(q, 2, &om) || oh > 23 || om > 59)
            return 0;
        *offset = (*p == '-' ? -1 : 1) * (oh * 3600.0 + om * 60.0);
        p = q + 2;
    }
    if (*p != '\0')
        return 0;
    *secs = h * 3600.0 + mi * 60.0 + sec + frac;
    return 1;
}

/* The Excel serial of an ISO date or date-time (kind K_DATE, K_DATETIME) or time (K_TIME);
 * 0 when the text is not one (or before 1900-03-01, where Excel's calendar is off). */
static int sfr_parse_serial(const char *s, size_t len, int kind, double *out)
{
    int y, m, d;
    double secs = 0, offset = 0;
    lxw_datetime dt;
    if (len > 40)
        return 0;
    if (kind == K_TIME) {
        if (!sfr_parse_time(s, &secs, &offset))
            return 0;
        secs -= offset;
        while (secs < 0)
            secs += 86400;
        while (secs >= 86400)
            secs -= 86400;
        *out = secs / 86400.0;
        return 1;
    }
    if (len < 10 || !sfr_digits(s, 4, &y) || s[4] != '-' || !sfr_digits(s + 5, 2, &m) || s[7] != '-'
        || !sfr_digits(s + 8, 2, &d))
        return 0;
    if (y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1 || d > sfr_days_in_month(y, m))
        return 0;
    if (y == 1900 && m < 3)
        return 0;
    if (len > 10) {
        if ((s[10] != 'T' && s[10] != ' ') || !sfr_parse_time(s + 11, &secs, &offset))
            return 0;
    }
    memset(&dt, 0, sizeof(dt));
    dt.year = y;
    dt.month = m;
    dt.day = d;
    *out = lxw_datetime_to_excel_datetime(&dt) + (secs - offset) / 86400.0;
    return *out >= 61; /* an offset may not push a date before 1900-03-01 */
}

/* ---------- cells ---------- */

/* Writes the value at index v as itself: text, number, boolean; a currency object as its
 * amount; other tables and userdata as nothing. */
static lxw_error sfr_write_value(lua_State *L, sfr_sheet *sh, long r, long c, int v, lxw_format *f)
{
    switch (lua_type(L, v)) {
    case LUA_TSTRING:
        return sfr_write_text(L, sh, r, c, v, f);
    case LUA_TNUMBER:
        return sfr_write_number(L, sh, r, c, lua_tonumber(L, v), f, 11);
    case LUA_TBOOLEAN:
        sfr_track(L, sh, c, 5);
        return worksheet_write_boolean(sh->ws, (lxw_row_t)r, (lxw_col_t)c, lua_toboolean(L, v), f);
    case LUA_TTABLE: {
        lxw_error e = LXW_NO_ERROR;
        double n;
        lua_pushliteral(L, "amount");
        lua_rawget(L, v);
        if (sfr_to_number(L, -1, &n))
            e = sfr_write_number(L, sh, r, c, n, f, 11);
        lua_pop(L, 1);
        return e;
    }
    default:
        return LXW_NO_ERROR;
    }
}

/* A value that does not fit its kind: the label (label mode) when it is text, else the
 * value as itself. */
static lxw_error sfr_write_fallback(lua_State *L, sfr_sheet *sh, long r, long c, int v, int label, int raw)
{
    if (!raw && lua_type(L, label) == LUA_TSTRING)
        return sfr_write_text(L, sh, r, c, label, NULL);
    return sfr_write_value(L, sh, r, c, v, NULL);
}

/* Width of a number shown by its label (label text when there is one). */
static size_t sfr_label_width(lua_State *L, int label, size_t dflt)
{
    if (lua_type(L, label) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, label, &len);
        size_t chars = sfr_clean_length((const unsigned char *)s, len);
        return chars == (size_t)-1 ? len : chars;
    }
    return dflt;
}

/* Writes one cell: the cell at index ci (a table { value, label [, currency] } or a bare
 * value) as kind `kind` with format f. */
static lxw_error sfr_write_cell(lua_State *L, sfr_sheet *sh, long r, long c, int ci, int kind, lxw_format *f,
                                int raw)
{
    int top = lua_gettop(L), v, label, t = lua_type(L, ci);
    lxw_error e = LXW_NO_ERROR;
    double n;
    if (t == LUA_TNIL || t == LUA_TLIGHTUSERDATA)
        return LXW_NO_ERROR;
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "value");
        lua_rawget(L, ci);
        lua_pushliteral(L, "label");
        lua_rawget(L, ci);
        v = top + 1;
        label = top + 2;
    } else {
        lua_pushvalue(L, ci);
        lua_pushnil(L);
        v = top + 1;
        label = top + 2;
    }
    t = lua_type(L, v);
    if (t == LUA_TLIGHTUSERDATA || (t == LUA_TNIL && (raw || kind != K_TEXT))) {
        lua_settop(L, top); /* JSON null: blank, as in CSV (whatever the label says) */
        return LXW_NO_ERROR;
    }
    switch (kind) {
    case K_TEXT:
        if (lua_type(L, label) == LUA_TSTRING)
            e = sfr_write_text(L, sh, r, c, label, f);
        else
            e = sfr_write_value(L, sh, r, c, v, f);
        break;
    case K_RAW:
        e = sfr_write_value(L, sh, r, c, v, f);
        break;
    case K_NUMBER:
    case K_PERCENT:
        if (sfr_to_number(L, v, &n))
            e = sfr_write_number(L, sh, r, c, kind == K_PERCENT ? n / 100.0 : n, f, sfr_label_width(L, label, 11));
        else
            e = sfr_write_fallback(L, sh, r, c, v, label, raw);
        break;
    case K_CURRENCY: {
        int amount = v, code;
        if (t == LUA_TTABLE) {
            lua_pushliteral(L, "amount");
            lua_rawget(L, v);
            lua_pushliteral(L, "currency");
            lua_rawget(L, v);
        } else {
            lua_pushvalue(L, v);
            if (lua_type(L, ci) == LUA_TTABLE) {
                lua_pushliteral(L, "currency"); /* a typed cell keeps the code beside the amount */
                lua_rawget(L, ci);
            } else
                lua_pushnil(L);
        }
        amount = top + 3;
        code = top + 4;
        if (lua_type(L, amount) == LUA_TLIGHTUSERDATA)
            break; /* a null amount: blank */
        if (sfr_to_number(L, amount, &n)) {
            lxw_format *cf = NULL;
            if (lua_type(L, code) == LUA_TSTRING) {
                size_t cl;
                const char *cs = lua_tolstring(L, code, &cl);
                cf = sfr_book_currency(L, sh->book, cs, cl);
            }
            e = sfr_write_number(L, sh, r, c, n, cf ? cf : f, sfr_label_width(L, label, 12));
        } else
            e = sfr_write_fallback(L, sh, r, c, v, label, raw);
        break;
    }
    case K_DATE:
    case K_DATETIME:
    case K_TIME:
        if (t == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, v, &len);
            if (sfr_parse_serial(s, len, kind, &n)) {
                e = sfr_write_number(L, sh, r, c, n, f, kind == K_DATE ? 10 : (kind == K_TIME ? 8 : 19));
                break;
            }
        }
        e = sfr_write_fallback(L, sh, r, c, v, label, raw);
        break;
    case K_BOOLEAN: {
        int b = -1;
        if (t == LUA_TBOOLEAN)
            b = lua_toboolean(L, v);
        else if (t == LUA_TSTRING) {
            const char *s = lua_tostring(L, v);
            if (strcmp(s, "true") == 0) b = 1;
            else if (strcmp(s, "false") == 0) b = 0;
        }
        if (b >= 0) {
            sfr_track(L, sh, c, 5);
            e = worksheet_write_boolean(sh->ws, (lxw_row_t)r, (lxw_col_t)c, b, f);
        } else
            e = sfr_write_fallback(L, sh, r, c, v, label, raw);
        break;
    }
    default:
        break;
    }
    lua_settop(L, top);
    return e;
}

static int sfr_push_lxw_error(lua_State *L, lxw_error e, long r, long c)
{
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write cell (row %d, column %d): %s", (int)r + 1, (int)c + 1, lxw_strerror(e));
    return 2;
}

/* sheet:write(row, col, value, format?) -> true | nil, err. value: string (text, never
 * a formula), number, boolean, or nil / JSON null (a blank cell when a format is given). */
static int sfr_sheet_write(lua_State *L)
{
    sfr_sheet *sh = sfr_check_sheet(L, 1);
    long r = sfr_check_index(L, 2, LXW_ROW_MAX, "row");
    long c = sfr_check_index(L, 3, LXW_COL_MAX, "column");
    lxw_format *f = NULL;
    lxw_error e = LXW_NO_ERROR;
    int t = lua_type(L, 4);
    if (!lua_isnoneornil(L, 5)) {
        double h = luaL_checknumber(L, 5);
        if (!(h >= 0 && h <= SFR_MAX_FORMATS) || h != floor(h))
            return luaL_error(L, "sfreports.xlsx: bad format handle");
        f = sfr_book_fmt(L, sh->book, (lua_Integer)h);
    }
    sfr_sheet_at_row(L, sh, r);
    if (t == LUA_TNIL || t == LUA_TNONE || t == LUA_TLIGHTUSERDATA) {
        if (f != NULL)
            e = worksheet_write_blank(sh->ws, (lxw_row_t)r, (lxw_col_t)c, f);
    } else if (t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN) {
        e = sfr_write_value(L, sh, r, c, 4, f);
    } else {
        return luaL_error(L, "sfreports.xlsx: write expects a string, number, boolean or nil, got %s",
                          luaL_typename(L, 4));
    }
    if (e != LXW_NO_ERROR)
        return sfr_push_lxw_error(L, e, r, c);
    lua_pushboolean(L, 1);
    return 1;
}

static sfr_layout *sfr_check_layout(lua_State *L, int i)
{
    return luaL_checkudata(L, i, SFR_LAYOUT_MT);
}

/* sheet:row(row, col0, cells, layout) -> true | nil, err: cells[1..layout.n] into the
 * columns col0, col0 + 1, ... of the row, each by its column's kind and format. */
static int sfr_sheet_row(lua_State *L)
{
    sfr_sheet *sh = sfr_check_sheet(L, 1);
    long r = sfr_check_index(L, 2, LXW_ROW_MAX, "row");
    long c0 = sfr_check_index(L, 3, LXW_COL_MAX, "column");
    sfr_layout *lay = sfr_check_layout(L, 5);
    int i, n = lay->n;
    luaL_checktype(L, 4, LUA_TTABLE);
    if (c0 + n > LXW_COL_MAX)
        return luaL_error(L, "sfreports.xlsx: a row of %d cells from column %d passes Excel's last column",
                          n, (int)c0);
    sfr_sheet_at_row(L, sh, r);
    lua_settop(L, 5);
    for (i = 0; i < n; i++) {
        lxw_format *f = sfr_book_fmt(L, sh->book, lay->cells[n + i]);
        lxw_error e;
        lua_rawgeti(L, 4, i + 1);
        e = sfr_write_cell(L, sh, r, c0 + i, 6, lay->cells[i], f, lay->raw);
        lua_pop(L, 1);
        if (e != LXW_NO_ERROR)
            return sfr_push_lxw_error(L, e, r, c0 + i);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* sheet:freeze(row, col): the rows above and columns left stay in view. */
static int sfr_sheet_freeze(lua_State *L)
{
    sfr_sheet *sh = sfr_check_sheet(L, 1);
    long r = sfr_check_index(L, 2, LXW_ROW_MAX, "row");
    long c = sfr_check_index(L, 3, LXW_COL_MAX, "column");
    worksheet_freeze_panes(sh->ws, (lxw_row_t)r, (lxw_col_t)c);
    return 0;
}

/* sheet:autofilter(first_row, first_col, last_row, last_col) */
static int sfr_sheet_autofilter(lua_State *L)
{
    sfr_sheet *sh = sfr_check_sheet(L, 1);
    long r1 = sfr_check_index(L, 2, LXW_ROW_MAX, "row");
    long c1 = sfr_check_index(L, 3, LXW_COL_MAX, "column");
    long r2 = sfr_check_index(L, 4, LXW_ROW_MAX, "row");
    long c2 = sfr_check_index(L, 5, LXW_COL_MAX, "column");
    if (r2 < r1 || c2 < c1)
        return luaL_error(L, "sfreports.xlsx: autofilter range ends before it starts");
    worksheet_autofilter(sh->ws, (lxw_row_t)r1, (lxw_col_t)c1, (lxw_row_t)r2, (lxw_col_t)c2);
    return 0;
}

/* sheet:fit(min, max): each column written to gets the width of its widest text (plus
 * a margin), between min and max characters. */
static int sfr_sheet_fit(lua_State *L)
{
    sfr_sheet *sh = sfr_check_sheet(L, 1);
    double lo = luaL_checknumber(L, 2), hi = luaL_checknumber(L, 3);
    int c;
    if (!(lo >= 0 && lo <= SFR_WIDTH_CAP && hi >= lo && hi <= SFR_WIDTH_CAP))
        return luaL_error(L, "sfreports.xlsx: fit expects widths from 0 to %d, min <= max", SFR_WIDTH_CAP);
    for (c = 0; c < sh->nwidths; c++) {
        double w;
        if (sh->widths[c] == 0)
            continue;
        w = sh->widths[c] + 2;
        if (w < lo) w = lo;
        if (w > hi) w = hi;
        worksheet_set_column(sh->ws, (lxw_col_t)c, (lxw_col_t)c, w, NULL);
    }
    return 0;
}

/* ---------- layouts ---------- */

/* xlsx.layout(kinds, formats, raw) -> layout: kinds = array of kind names, formats =
 * array of format handles (0 or nil: none), raw = whether fallbacks use values. */
static int sfr_xlsx_layout(lua_State *L)
{
    int i, n;
    sfr_layout *lay;
    luaL_checktype(L, 1, LUA_TTABLE);
    n = (int)sfr_rawlen(L, 1);
    if (n > LXW_COL_MAX)
        return luaL_error(L, "sfreports.xlsx: a layout of more than %d columns", (int)LXW_COL_MAX);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lay = sfr_newuserdata(L, sizeof(sfr_layout) + sizeof(int) * (size_t)(2 * n));
    lay->n = n;
    lay->raw = lua_toboolean(L, 3);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        lay->cells[i] = luaL_checkoption(L, -1, NULL, sfr_kind_names);
        lua_pop(L, 1);
        lay->cells[n + i] = 0;
        if (lua_istable(L, 2)) {
            lua_rawgeti(L, 2, i + 1);
            if (!lua_isnil(L, -1)) {
                double h = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
                if (!(h >= 0 && h <= SFR_MAX_FORMATS) || h != floor(h))
                    return luaL_error(L, "sfreports.xlsx: layout format %d is not a format handle", i + 1);
                lay->cells[n + i] = (int)h;
            }
            lua_pop(L, 1);
        }
    }
    luaL_getmetatable(L, SFR_LAYOUT_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* ---------- registration ---------- */

static const luaL_Reg sfr_book_methods[] = {
    { "format", sfr_book_format },
    { "sheet", sfr_book_sheet },
    { "close", sfr_book_close },
    { "discard", sfr_book_discard },
    { NULL, NULL }
};

static const luaL_Reg sfr_sheet_methods[] = {
    { "write", sfr_sheet_write },
    { "row", sfr_sheet_row },
    { "freeze", sfr_sheet_freeze },
    { "autofilter", sfr_sheet_autofilter },
    { "fit", sfr_sheet_fit },
    { NULL, NULL }
};

static const luaL_Reg sfr_xlsx_funcs[] = {
    { "open", sfr_xlsx_open },
    { "layout", sfr_xlsx_layout },
    { NULL, NULL }
};

static void sfr_xlsx_type(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc)
{
    luaL_newmetatable(L, name);
    if (methods != NULL) {
        lua_newtable(L);
        sfr_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    if (gc != NULL) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

#if defined(__GNUC__)
#define SFR_EXPORT __attribute__((visibility("default")))
#else
#define SFR_EXPORT
#endif

SFR_EXPORT int luaopen_sfreports_xlsx(lua_State *L);

SFR_EXPORT int luaopen_sfreports_xlsx(lua_State *L)
{
    sfr_xlsx_type(L, SFR_BOOK_MT, sfr_book_methods, sfr_book_gc);
    sfr_xlsx_type(L, SFR_SHEET_MT, sfr_sheet_methods, sfr_sheet_gc);
    sfr_xlsx_type(L, SFR_LAYOUT_MT, NULL, NULL);
    lua_newtable(L);
    sfr_setfuncs(L, sfr_xlsx_funcs, 0);
    lua_pushliteral(L, LXW_VERSION);
    lua_setfield(L, -2, "LIBXLSXWRITER_VERSION");
    lua_pushinteger(L, (lua_Integer)LXW_ROW_MAX);
    lua_setfield(L, -2, "MAX_ROWS");
    lua_pushinteger(L, (lua_Integer)LXW_COL_MAX);
    lua_setfield(L, -2, "MAX_COLUMNS");
    (void)sfr_absindex;
    return 1;
}
