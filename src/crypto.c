/* crypto.c: RS256 signatures for the OAuth JWT bearer flow (OpenSSL libcrypto) and
 * base64url. Part of the sfreports.core unity build (gzip is in inflate.c).
 *
 * Scratch memory is Lua userdata (collected even if a Lua call raises); OpenSSL state is
 * freed before any Lua call that can raise. */

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/err.h>

static const char sfr_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding (RFC 7515), into out (room for 4*ceil(n/3) bytes). */
static size_t sfr_base64url(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = sfr_b64url[(v >> 18) & 63];
        out[o++] = sfr_b64url[(v >> 12) & 63];
        out[o++] = sfr_b64url[(v >> 6) & 63];
        out[o++] = sfr_b64url[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = sfr_b64url[(v >> 18) & 63];
        out[o++] = sfr_b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = sfr_b64url[(v >> 18) & 63];
        out[o++] = sfr_b64url[(v >> 12) & 63];
        out[o++] = sfr_b64url[(v >> 6) & 63];
    }
    return o;
}

static int sfr_b64url_value(int c)
{
    const char *p = c ? strchr(sfr_b64url, c) : NULL;
    return p ? (int)(p - sfr_b64url) : -1;
}

/* Decodes base64url (padding optional) into out; returns the length or -1. */
static long sfr_base64url_decode(const char *in, size_t n, unsigned char *out)
{
    size_t i;
    long o = 0;
    unsigned acc = 0;
    int bits = 0;
    while (n > 0 && in[n - 1] == '=')
        n--;
    for (i = 0; i < n; i++) {
        int v = sfr_b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)((acc >> bits) & 0xFF);
        }
    }
    return o;
}

/* core.base64url(s) -> string */
static int sfr_core_base64url(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    char *out = lua_newuserdata(L, 4 * (n / 3 + 1) + 1);
    lua_pushlstring(L, out, sfr_base64url(s, n, out));
    return 1;
}

/* Pushes an auth error naming what failed, with OpenSSL's reason but never key bytes. */
static int sfr_crypto_fail(lua_State *L, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256];
    ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    lua_pushnil(L);
    lua_pushfstring(L, "%s (%s)", what, e ? reason : "no detail");
    sfr_push_error(L, "auth", lua_tostring(L, -1), 0, NULL, 0);
    lua_remove(L, -2);
    return 2;
}

#define SFR_MAX_SIG 2048 /* a 16384-bit RSA key; larger keys are refused */

/* core.sign_rs256(pem_private_key, data) -> base64url signature | nil, err(auth)
 * Scratch space is allocated (as userdata) before any OpenSSL object exists, so nothing
 * OpenSSL owns is held across a Lua call that can raise. */
static int sfr_core_sign_rs256(lua_State *L)
{
    size_t klen, dlen, siglen = SFR_MAX_SIG;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *data = luaL_checklstring(L, 2, &dlen);
    unsigned char *sig = lua_newuserdata(L, SFR_MAX_SIG);
    char *out = lua_newuserdata(L, 4 * (SFR_MAX_SIG / 3 + 1) + 1);
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *pkey;
    const char *problem = NULL;
    BIO *bio = BIO_new_mem_buf(key, (int)klen);
    pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL)
        problem = "private key is not a readable unencrypted PEM key";
    else if (EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA)
        problem = "private key is not an RSA key (RS256 needs RSA)";
    else if ((size_t)EVP_PKEY_size(pkey) > SFR_MAX_SIG)
        problem = "RSA key is larger than 16384 bits";
    else {
        ctx = EVP_MD_CTX_new();
        if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1
            || EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data, dlen) != 1)
            problem = "RS256 signing failed";
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    if (problem)
        return sfr_crypto_fail(L, problem);
    lua_pushlstring(L, out, sfr_base64url(sig, siglen, out));
    return 1;
}

/* core.verify_rs256(pem_public_key, data, base64url_signature) -> boolean
 * (used by the fake org to check JWT assertions). */
static int sfr_core_verify_rs256(lua_State *L)
{
    size_t klen, dlen, slen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *data = luaL_checklstring(L, 2, &dlen);
    const char *sig64 = luaL_checklstring(L, 3, &slen);
    unsigned char *sig = lua_newuserdata(L, slen + 1);
    long siglen = sfr_base64url_decode(sig64, slen, sig);
    BIO *bio;
    EVP_PKEY *pkey;
    EVP_MD_CTX *ctx;
    int ok;
    if (siglen < 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    bio = BIO_new_mem_buf(key, (int)klen);
    pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ctx = EVP_MD_CTX_new();
    ok = pkey != NULL && ctx != NULL
        && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1
        && EVP_DigestVerify(ctx, sig, (size_t)siglen, (const unsigned char *)data, dlen) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    lua_pushboolean(L, ok);
    return 1;
}
