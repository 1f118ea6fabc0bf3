/*
 * internal.h — declarations shared between library files (sluice__ prefix),
 * never installed.
 */
#ifndef SLUICE_INTERNAL_H
#define SLUICE_INTERNAL_H

#include "sluice.h"

/* Allocation through the pool's allocator hook, not counted as objects
 * (for arrays owned by objects). sluice__free keeps errno and ignores NULL. */
void *sluice__alloc(sluice_pool *p, size_t n);
void sluice__free(sluice_pool *p, void *ptr, size_t n);

/* Grows *arr (element size `elem`) to hold at least `need` elements,
 * doubling. Returns 0 or SLUICE_ENOMEM (then *arr is unchanged). */
int sluice__grow(sluice_pool *p, void **arr, size_t *cap, size_t need, size_t elem);

#define SLUICE__UNUSED(x) ((void)(x))

#endif
