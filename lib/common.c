/*
 * common.c — version and error strings. The tables are generated from
 * SLUICE_ERROR_MAP so a code, its name and its message cannot drift apart.
 */
#define _GNU_SOURCE /* strerrorname_np */
#include "internal.h"

#include <string.h>

const char *sluice_version(void)
{
    return SLUICE_VERSION_STRING;
}

const char *sluice_strerror(int code)
{
    switch (code) {
#define X(name, value, status, msg) case value: return msg;
        SLUICE_ERROR_MAP(X)
#undef X
    case 0:
        return "success";
    default:
        break;
    }
    if (code < 0 && code > -1000)
        return strerror(-code); /* glibc: static text for known errno values */
    return "unknown error";
}

const char *sluice_err_name(int code)
{
    switch (code) {
#define X(name, value, status, msg) case value: return "SLUICE_" #name;
        SLUICE_ERROR_MAP(X)
#undef X
    case 0:
        return "0";
    default:
        break;
    }
    if (code < 0 && code > -1000) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
        const char *n = strerrorname_np(-code);
        return n ? n : "unknown errno";
#else
        return "errno";
#endif
    }
    return "unknown error";
}

int sluice__grow(sluice_pool *p, void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return SLUICE_ENOMEM;
        ncap *= 2;
    }
    void *n = sluice__alloc(p, ncap * elem);
    if (!n)
        return SLUICE_ENOMEM;
    if (*cap)
        memcpy(n, *arr, *cap * elem);
    sluice__free(p, *arr, *cap * elem);
    *arr = n;
    *cap = ncap;
    return 0;
}
