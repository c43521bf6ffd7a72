/* shape.c: core.scan_facts, the fast path of sfreports.report.shape over a report
 * result's fact map on PUC Lua (LuaJIT compiles the Lua version of the same scan into
 * faster code than any C over the Lua API, so it keeps that one).
 *
 * core.scan_facts(factMap, null) -> true when every entry is an object whose `rows`
 * (absent, null or an array) hold objects with a `dataCells` array of objects with a text
 * `label`, and whose `aggregates` (absent, null or an array) hold objects with a text
 * `label`: what Salesforce sends. false when anything else is there: then the careful
 * check in Lua (sfreports.report.careful) looks, and it alone states the rules and their
 * messages. Raw access only (no metamethod runs), no allocation but the four key strings
 * pushed first, nothing held across a call: nothing here can raise after the arguments
 * are checked. Each API call costs 30-60 instructions on Lua 5.4, so the keys are pushed
 * once and fetched with lua_rawget, never lua_getfield (which hashes its key each time). */

/* lua_rawgeti and lua_rawget that say the type of what they pushed (5.3 and later return
 * it; 5.1 and LuaJIT return nothing, so ask). */
#if LUA_VERSION_NUM >= 503
#define sfr_geti_type(L, idx, n) lua_rawgeti((L), (idx), (lua_Integer)(n))
static int sfr_getk_type(lua_State *L, int idx, int key_idx)
{
    lua_pushvalue(L, key_idx);
    return lua_rawget(L, idx);
}
#else
static int sfr_geti_type(lua_State *L, int idx, lua_Integer n)
{
    lua_rawgeti(L, idx, (int)n);
    return lua_type(L, -1);
}

/* t[key] (key at key_idx) pushed, and its type. */
static int sfr_getk_type(lua_State *L, int idx, int key_idx)
{
    lua_pushvalue(L, key_idx);
    lua_rawget(L, idx);
    return lua_type(L, -1);
}
#endif

/* Whether the table at idx is an array as JSON decodes them: [1] is set, or it is empty. */
static int sfr_arrayish(lua_State *L, int idx)
{
    int set = sfr_geti_type(L, idx, 1) != LUA_TNIL;
    lua_pop(L, 1);
    if (set)
        return 1;
    lua_pushnil(L);
    if (lua_next(L, idx)) {
        lua_pop(L, 2);
        return 0;
    }
    return 1;
}

/* Whether every element of the array at idx is a table with a string label. */
static int sfr_labels_ok(lua_State *L, int idx, int label_key)
{
    lua_Integer n = (lua_Integer)sfr_rawlen(L, idx), j;
    int top = lua_gettop(L);
    for (j = 1; j <= n; j++) {
        int ok = sfr_geti_type(L, idx, j) == LUA_TTABLE && sfr_getk_type(L, top + 1, label_key) == LUA_TSTRING;
        lua_settop(L, top);
        if (!ok)
            return 0;
    }
    return 1;
}

/* Whether the optional array at idx (on top) is absent, null, or an array. */
static int sfr_optional_array(lua_State *L, int idx, int null_idx, int *present)
{
    int t = lua_type(L, idx);
    *present = 0;
    if (t == LUA_TNIL || lua_rawequal(L, idx, null_idx))
        return 1;
    if (t != LUA_TTABLE || !sfr_arrayish(L, idx))
        return 0;
    *present = 1;
    return 1;
}

/* The rows of one entry (the array at idx). */
static int sfr_rows_ok(lua_State *L, int idx, int cells_key, int label_key)
{
    lua_Integer n = (lua_Integer)sfr_rawlen(L, idx), i;
    for (i = 1; i <= n; i++) {
        int ok = 0, row = lua_gettop(L) + 1;
        if (sfr_geti_type(L, idx, i) == LUA_TTABLE && sfr_getk_type(L, row, cells_key) == LUA_TTABLE)
            ok = sfr_arrayish(L, row + 1) && sfr_labels_ok(L, row + 1, label_key);
        lua_settop(L, row - 1);
        if (!ok)
            return 0;
    }
    return 1;
}

static int sfr_core_scan_facts(lua_State *L)
{
    int fm = 1, null_idx = 2, k_label, k_cells, k_rows, k_aggs;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    lua_pushliteral(L, "label");
    k_label = 3;
    lua_pushliteral(L, "dataCells");
    k_cells = 4;
    lua_pushliteral(L, "rows");
    k_rows = 5;
    lua_pushliteral(L, "aggregates");
    k_aggs = 6;
    lua_pushnil(L);
    while (lua_next(L, fm)) {
        int e = lua_gettop(L), present, ok;
        /* an entry is an object: a table without [1] */
        ok = lua_type(L, e) == LUA_TTABLE && sfr_geti_type(L, e, 1) == LUA_TNIL;
        lua_settop(L, e);
        if (ok) {
            sfr_getk_type(L, e, k_rows);
            ok = sfr_optional_array(L, e + 1, null_idx, &present)
                 && (!present || sfr_rows_ok(L, e + 1, k_cells, k_label));
            lua_settop(L, e);
        }
        if (ok) {
            sfr_getk_type(L, e, k_aggs);
            ok = sfr_optional_array(L, e + 1, null_idx, &present) && (!present || sfr_labels_ok(L, e + 1, k_label));
            lua_settop(L, e);
        }
        if (!ok) {
            lua_pushboolean(L, 0);
            return 1;
        }
        lua_pop(L, 1); /* the value; the key stays for lua_next */
    }
    lua_pushboolean(L, 1);
    return 1;
}
