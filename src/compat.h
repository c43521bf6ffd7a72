/* compat.h: one C source for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT.
 * Every shim is prefixed sfr_ so none can clash with a real lua_* / luaL_* symbol
 * (LuaJIT already defines some 5.2 functions that a same-named shim would shadow). */
#ifndef SFR_COMPAT_H
#define SFR_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define sfr_rawlen(L, i) lua_objlen((L), (i))
#define sfr_setuservalue(L, i) lua_setfenv((L), (i))
#define sfr_getuservalue(L, i) lua_getfenv((L), (i))
#else
#define sfr_rawlen(L, i) lua_rawlen((L), (i))
#define sfr_setuservalue(L, i) lua_setuservalue((L), (i))
#define sfr_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#endif

#if LUA_VERSION_NUM >= 504
#define sfr_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#else
#define sfr_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

/* luaL_setfuncs for 5.1/LuaJIT: registers l into the table on top, sharing nup upvalues. */
static void sfr_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

static int sfr_absindex(lua_State *L, int i)
{
    return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}

#endif
