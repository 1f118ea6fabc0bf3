/* harness.c — registry, runner and allocator helpers for harness.h. */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>

#define MAX_TESTS 2048

static struct {
    const char *name, *file;
    test_fn fn;
} tests[MAX_TESTS];
static int ntests, failed_now;
static sluice_pool *pool;

void harness_register(const char *name, test_fn fn, const char *file)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "harness: too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].file = file;
    tests[ntests++].fn = fn;
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    if (failed_now++ > 20)
        return; /* a broken loop should not flood the log */
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int harness_failed_now(void)
{
    return failed_now;
}

sluice_pool *harness_pool(void)
{
    return pool;
}

void harness_expect_mem(const char *file, int line, const char *what, const void *a,
                        size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    size_t n = alen < blen ? alen : blen, i = 0;
    while (i < n && x[i] == y[i])
        i++;
    if (i == n && alen == blen)
        return;
    harness_fail(file, line, "%s: lengths %zu vs %zu, first difference at %zu (0x%02x vs 0x%02x)",
                 what, alen, blen, i, i < alen ? x[i] : 0, i < blen ? y[i] : 0);
}

static void *fa_alloc(void *ud, size_t n)
{
    t_failalloc *fa = ud;
    fa->calls++;
    if (fa->fail_at && fa->calls == fa->fail_at) {
        fa->failed = 1;
        return NULL;
    }
    void *p = malloc(n);
    if (p) {
        fa->live++;
        fa->bytes_live += n;
    }
    return p;
}

static void fa_free(void *ud, void *p, size_t n)
{
    t_failalloc *fa = ud;
    fa->live--;
    fa->bytes_live -= n;
    free(p);
}

sluice_allocator t_failalloc_hook(t_failalloc *fa)
{
    return (sluice_allocator){fa_alloc, fa_free, fa};
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < ntests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]))
            continue;
        failed_now = 0;
        if (sluice_pool_new(NULL, &pool) < 0) {
            fprintf(stderr, "harness: no pool\n");
            return 2;
        }
        tests[i].fn();
        sluice_pool_counters st;
        sluice_pool_stats(pool, &st);
        if (st.blocks_live || st.objects_live)
            harness_fail(tests[i].file, 0, "leak: %zu blocks, %zu objects still live",
                         st.blocks_live, st.objects_live);
        sluice_pool_close(pool);
        pool = NULL;
        if (failed_now) {
            failed++;
            fprintf(stderr, "FAIL %s (%s)\n", tests[i].name, tests[i].file);
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
