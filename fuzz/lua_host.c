/* lua_host.c: a minimal Lua 5.4 interpreter (`lua_host SCRIPT [ARGS...]`) for `make sanitize`.
 *
 * Linked with -fsanitize=address,undefined, it starts with the sanitizer runtime as its
 * first library, so the instrumented sfreports core it loads is checked without
 * LD_PRELOAD. That matters: LD_PRELOAD would be inherited by every child the specs start
 * (nginx for the fake org, curl(1) for its control API), and an uninstrumented curl with
 * the ASan runtime preloaded hangs. The interpreter itself (liblua5.4) and lua-cjson stay
 * uninstrumented; their allocations still go through the ASan allocator.
 *
 * It does what `lua5.4 [-e CODE]... [SCRIPT [ARGS...]]` does: the global `arg` (arg[0] =
 * SCRIPT, arg[-1] = this program, as specs that start a child interpreter expect), the
 * arguments as `...`, a traceback on error, exit status 1 on error. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Runs the chunk on top with n arguments under the traceback handler; reports errors. */
static int run(lua_State *L, int n)
{
    int base = lua_gettop(L) - n;
    int status;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    status = lua_pcall(L, n, 0, base);
    if (status != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_remove(L, base);
    return status;
}

int main(int argc, char **argv)
{
    lua_State *L;
    int i, script = 1, status = LUA_OK;
    while (script + 1 < argc && strcmp(argv[script], "-e") == 0)
        script += 2;
    if (argc < 2) {
        fprintf(stderr, "usage: %s [-e CODE]... [SCRIPT [ARGS...]]\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    luaL_openlibs(L);
    {
        int at = script < argc ? script : 0; /* like lua.c: no script, arg[0] = program */
        lua_createtable(L, argc - at, at + 1);
        for (i = 0; i < argc; i++) {
            lua_pushstring(L, argv[i]);
            lua_rawseti(L, -2, i - at);
        }
    }
    lua_setglobal(L, "arg");
    for (i = 1; i < script && status == LUA_OK; i += 2) {
        status = luaL_loadbuffer(L, argv[i + 1], strlen(argv[i + 1]), "=(command line)");
        if (status == LUA_OK)
            status = run(L, 0);
        else
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
    }
    if (status == LUA_OK && script < argc) {
        status = luaL_loadfile(L, argv[script]);
        if (status == LUA_OK) {
            for (i = script + 1; i < argc; i++)
                lua_pushstring(L, argv[i]);
            status = run(L, argc - script - 1);
        } else {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
        }
    }
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
