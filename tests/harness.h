/*
 * harness.h — a tiny, loud test harness.
 *
 *   TEST(name) { ... }        defines and registers a test
 *   EXPECT(cond)              records a failure, goes on
 *   EXPECT_EQ(a, b)           integers; prints both values on failure
 *   EXPECT_MEM(a, alen, b, blen)  bytes; prints the first difference
 *   REQUIRE(cond)             like EXPECT, but returns from the test
 *
 * Tests run in registration order; `unit [substring]` runs the matching
 * ones. Each test gets a fresh pool (`T_POOL`) whose counters must be back to
 * zero when it ends, so a leaked view fails the test that leaked it.
 */
#ifndef SLUICE_TEST_HARNESS_H
#define SLUICE_TEST_HARNESS_H

#include "sluice.h"
#include "../lib/testing.h"

#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
void harness_register(const char *name, test_fn fn, const char *file);
void harness_fail(const char *file, int line, const char *fmt, ...);
int harness_failed_now(void);
sluice_pool *harness_pool(void);

#define TEST(name)                                                            \
    static void test_##name(void);                                           \
    __attribute__((constructor)) static void register_##name(void)           \
    {                                                                        \
        harness_register(#name, test_##name, __FILE__);                      \
    }                                                                        \
    static void test_##name(void)

#define T_POOL harness_pool()

#define EXPECT(c)                                                             \
    do {                                                                     \
        if (!(c))                                                            \
            harness_fail(__FILE__, __LINE__, "expected %s", #c);             \
    } while (0)

#define REQUIRE(c)                                                            \
    do {                                                                     \
        if (!(c)) {                                                          \
            harness_fail(__FILE__, __LINE__, "required %s", #c);             \
            return;                                                          \
        }                                                                    \
    } while (0)

#define EXPECT_EQ(a, b)                                                       \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ != b_)                                                        \
            harness_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
    } while (0)

/* Error codes: prints names, e.g. SLUICE_ETRUNCATED != 0. */
#define EXPECT_ERR(a, b)                                                      \
    do {                                                                     \
        int a_ = (int)(a), b_ = (int)(b);                                    \
        if (a_ != b_)                                                        \
            harness_fail(__FILE__, __LINE__, "%s == %s: %s(%d) != %s(%d)", #a, #b, \
                         sluice_err_name(a_), a_, sluice_err_name(b_), b_);  \
    } while (0)

#define EXPECT_MEM(a, alen, b, blen)                                          \
    harness_expect_mem(__FILE__, __LINE__, #a, (const void *)(a), (size_t)(alen), \
                       (const void *)(b), (size_t)(blen))

#define EXPECT_STR(a, b)                                                      \
    do {                                                                     \
        const char *a_ = (a), *b_ = (b);                                     \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                               \
            harness_fail(__FILE__, __LINE__, "%s: \"%s\" != \"%s\"", #a,     \
                         a_ ? a_ : "(null)", b_ ? b_ : "(null)");            \
    } while (0)

void harness_expect_mem(const char *file, int line, const char *what, const void *a,
                        size_t alen, const void *b, size_t blen);

/* Deterministic PRNG for property tests (xorshift64*). */
static inline unsigned long long t_rand(unsigned long long *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/*
 * Allocation-failure mode: an allocator that fails its k-th call (1-based;
 * 0 = never) and counts what is outstanding, so a test can assert that a
 * failed call leaked nothing.
 */
typedef struct t_failalloc {
    long calls, fail_at, live;
    size_t bytes_live;
    int failed;
} t_failalloc;
sluice_allocator t_failalloc_hook(t_failalloc *fa);

#endif
