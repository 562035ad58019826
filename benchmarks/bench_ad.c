/*
 * bench_ad — hyperad's drivers beside ADOL-C's on the functions of
 * ../shared/ANCHORS.md, in one process style and one run (issue 9; reused
 * by the suite of issue 5).  run_ad.sh drives it; RESULTS.md has figures.
 *
 *   bench_ad [--tool plain|hyperad|adolc|all] [--fn rosen|logreg|dense|chain|all]
 *            [--n N] [--m M] [--quick] [--batches B] [--min-time S]
 *            [--logexp] [--rss-only] [--allow-default-malloc]
 *
 * Per function it prints the plain C function's time (this file, compiled at
 * -O2 in the same process), the hand-coded gradient and HVP (the floor), then
 * for each tool: record, record + ad_tape_optimize (hyperad), record + first
 * gradient (a fresh tape), eval, gradient, HVP at a new x, HVP at the same x,
 * 10 HVPs per point (the Newton-CG pattern; time per HVP), and the dense
 * Hessian (dense function only; there also hyperad's central finite
 * differences of ad_gradient, "hessian_fd", for speed, and its error against
 * the exact Hessian, INFO fd_hessian_err), each as a median and as a ratio to f; tape
 * bytes per op; peak RSS at the end (ru_maxrss: run one tool and one case per
 * process to read it per tool, as run_ad.sh does with --rss-only).  Every
 * driver of both tools is checked against the hand-coded derivatives first.
 *
 * Timing (ANCHORS.md): one warm-up call, then batches of back-to-back calls
 * lasting >= min-time (0.2 s), the median over B (5) batches of the time per
 * call, CLOCK_MONOTONIC.  "New x" alternates between two points x0, x1 on
 * every call, so no cache of the point can help; "same x" is x0 every call.
 * Each metric is timed for hyperad and ADOL-C back to back (order alternating
 * by metric), and f again at the end, because the machine's load drifts.
 * Run one case per process: ADOL-C's location store is process-wide, and
 * after a big tape its hess_vec on small tapes is ~100x slower.
 *
 * Lines starting with "RESULT" and "INFO" are tab-separated, for scripts:
 *   RESULT fn n tool metric median_s min_s max_s ratio_to_f calls_per_batch
 *   INFO   fn n tool key value
 */
#include "hyperad.h"
#include "bench_adolc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifndef BENCH_HAVE_ADOLC
#define BENCH_HAVE_ADOLC 0
#endif
#ifndef BENCH_ADOLC_VERSION
#define BENCH_ADOLC_VERSION "none"
#endif
#ifndef BENCH_HYPERAD_VERSION
#define BENCH_HYPERAD_VERSION "unknown"
#endif

#define MALLOC_MMAP_MAX_WANT "0"
#define MALLOC_TRIM_WANT "68719476736"
#define CHECK_TOL 1e-9

/* ===================================================================== */
/* Options                                                               */
/* ===================================================================== */

enum { TOOL_PLAIN = 1, TOOL_HYPERAD = 2, TOOL_ADOLC = 4 };
enum { FN_ROSEN = 1, FN_LOGREG = 2, FN_DENSE = 4, FN_CHAIN = 8 };

typedef struct opts {
    int tools, fns;
    size_t n, m;        /* 0: the default sizes */
    int quick;
    int batches;
    double min_time;
    int logexp;         /* hyperad logreg: log(1+exp(s)) as 3 ops, not ad_softplus */
    int allow_malloc;
    int rss_only;       /* record, check and call each driver once: no timing */
} opts;

static int g_failures; /* checks or drivers that failed: exit status */

/* ===================================================================== */
/* Random numbers: splitmix64, fixed seeds                               */
/* ===================================================================== */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unif(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static double rng_sym(uint64_t *s) /* U(-1, 1) */
{
    return 2.0 * rng_unif(s) - 1.0;
}

static double rng_normal(uint64_t *s) /* N(0,1), Box-Muller */
{
    double u1 = rng_unif(s), u2 = rng_unif(s);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ===================================================================== */
/* The benchmark cases                                                   */
/* ===================================================================== */

typedef struct bench_case {
    bench_problem p;
    const char *fname;  /* rosen, logreg, dense, chain */
    double *x0, *x1, *v;
    double *X, *y;      /* logreg data */
} bench_case;

static void *xmalloc(size_t nmemb, size_t size)
{
    if (nmemb != 0 && size > SIZE_MAX / nmemb) {
        fprintf(stderr, "bench_ad: allocation of %zu x %zu bytes overflows\n", nmemb, size);
        exit(3);
    }
    size_t bytes = nmemb * size;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "bench_ad: out of memory (%zu x %zu bytes)\n", nmemb, size);
        exit(3);
    }
    return p;
}

static void case_free(bench_case *c)
{
    free(c->x0);
    free(c->x1);
    free(c->v);
    free(c->X);
    free(c->y);
    memset(c, 0, sizeof *c);
}

/* n: inputs (d for logreg); m: logreg rows. */
static void case_make(bench_case *c, bench_fn fn, size_t n, size_t m)
{
    memset(c, 0, sizeof *c);
    c->p.fn = fn;
    c->p.n = n;
    c->x0 = xmalloc(n, sizeof(double));
    c->x1 = xmalloc(n, sizeof(double));
    c->v = xmalloc(n, sizeof(double));
    uint64_t s;
    switch (fn) {
    case BENCH_ROSEN:
        c->fname = "rosen";
        s = 0x524f53454e42ULL;
        for (size_t i = 0; i < n; i++) {
            c->x0[i] = (i % 2 == 0) ? -1.2 : 1.0;
            c->x1[i] = c->x0[i] + 1e-2 * rng_sym(&s);
        }
        break;
    case BENCH_LOGREG: {
        c->fname = "logreg";
        s = 0x4c4f47524547ULL;
        const size_t d = n;
        c->p.m = m;
        c->p.lambda = 1.0;
        c->X = xmalloc(m, d * sizeof(double));
        c->y = xmalloc(m, sizeof(double));
        double *wtrue = xmalloc(d, sizeof(double));
        for (size_t j = 0; j < d; j++)
            wtrue[j] = rng_normal(&s);
        for (size_t i = 0; i < m; i++) {
            double z = 0.0;
            for (size_t j = 0; j < d; j++) {
                c->X[i * d + j] = rng_normal(&s);
                z += c->X[i * d + j] * wtrue[j];
            }
            z += 0.5 * rng_normal(&s);
            c->y[i] = (z >= 0.0) ? 1.0 : -1.0;
        }
        free(wtrue);
        for (size_t j = 0; j < d; j++) {
            c->x0[j] = 0.1 * rng_normal(&s);
            c->x1[j] = 0.1 * rng_normal(&s);
        }
        c->p.X = c->X;
        c->p.y = c->y;
        break;
    }
    case BENCH_DENSE:
        c->fname = "dense";
        s = 0x44454e5345ULL;
        for (size_t i = 0; i < n; i++)
            c->x0[i] = rng_sym(&s);
        for (size_t i = 0; i < n; i++)
            c->x1[i] = rng_sym(&s);
        break;
    case BENCH_CHAIN:
        c->fname = "chain";
        s = 0x434841494eULL;
        for (size_t i = 0; i < n; i++)
            c->x0[i] = rng_sym(&s);
        for (size_t i = 0; i < n; i++)
            c->x1[i] = rng_sym(&s);
        break;
    }
    uint64_t sv = 0x5645435452ULL + (uint64_t)fn;
    for (size_t i = 0; i < n; i++)
        c->v[i] = rng_sym(&sv);
}

/* ===================================================================== */
/* Plain C functions (the reference: ratios are to these) and hand-coded */
/* gradients and HVPs (the floor, and the reference of the checks)       */
/* ===================================================================== */

__attribute__((noinline)) static double plain_rosen(const double *x, size_t n)
{
    double f = 0.0;
    for (size_t i = 0; i + 1 < n; i++) {
        double t = x[i + 1] - x[i] * x[i];
        double u = 1.0 - x[i];
        f += 100.0 * (t * t) + u * u;
    }
    return f;
}

__attribute__((noinline)) static double plain_logreg(const bench_problem *p, const double *w)
{
    const size_t d = p->n;
    double loss = 0.0;
    for (size_t i = 0; i < p->m; i++) {
        const double *xi = p->X + i * d;
        double z = xi[0] * w[0];
        for (size_t j = 1; j < d; j++)
            z += xi[j] * w[j];
        loss += log(1.0 + exp(-p->y[i] * z));
    }
    double r = w[0] * w[0];
    for (size_t j = 1; j < d; j++)
        r += w[j] * w[j];
    return loss + (0.5 * p->lambda) * r;
}

__attribute__((noinline)) static double plain_dense(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i + 1 < n; i++)
        s += sin(x[i]) * (x[i + 1] * x[i + 1]);
    double sum = x[0];
    for (size_t i = 1; i < n; i++)
        sum += x[i];
    return s + exp(sum * (1.0 / (double)n));
}

/* The chain's step phi(z) = sin(z) exp(-z^2) + tanh(z) and its first two
 * derivatives (the hand-coded chain rule carries them along the chain). */
static double chain_phi(double z, double *d1, double *d2)
{
    double s = sin(z), c = cos(z), e = exp(-z * z), t = tanh(z), sech2 = 1.0 - t * t;
    *d1 = e * (c - 2.0 * z * s) + sech2;
    *d2 = e * (-3.0 * s - 4.0 * z * c + 4.0 * z * z * s) - 2.0 * t * sech2;
    return s * e + t;
}

__attribute__((noinline)) static double plain_chain(const double *x, size_t n)
{
    double f = 0.0;
    for (size_t i = 0; i < n; i++) {
        double z = x[i];
        for (int k = 0; k < BENCH_CHAIN_DEPTH; k++)
            z = sin(z) * exp(-(z * z)) + tanh(z);
        f += z;
    }
    return f;
}

/* c(x) = phi^D(x): value, c'(x), c''(x) by forward propagation. */
static void hand_chain_elem(double x, double *c1, double *c2)
{
    double z = x, d = 1.0, dd = 0.0, p1, p2;
    for (int k = 0; k < BENCH_CHAIN_DEPTH; k++) {
        double zn = chain_phi(z, &p1, &p2);
        dd = p2 * d * d + p1 * dd;
        d = p1 * d;
        z = zn;
    }
    *c1 = d;
    *c2 = dd;
}

static double plain_f(const bench_problem *p, const double *x)
{
    switch (p->fn) {
    case BENCH_ROSEN: return plain_rosen(x, p->n);
    case BENCH_LOGREG: return plain_logreg(p, x);
    case BENCH_DENSE: return plain_dense(x, p->n);
    case BENCH_CHAIN: return plain_chain(x, p->n);
    }
    return NAN;
}

static double sigmoid(double s)
{
    return s >= 0 ? 1.0 / (1.0 + exp(-s)) : exp(s) / (1.0 + exp(s));
}

/* g = grad f(x). */
__attribute__((noinline)) static void hand_gradient(const bench_problem *p, const double *x, double *g)
{
    const size_t n = p->n;
    memset(g, 0, n * sizeof *g);
    switch (p->fn) {
    case BENCH_ROSEN:
        for (size_t i = 0; i + 1 < n; i++) {
            double t = x[i + 1] - x[i] * x[i];
            g[i] += -400.0 * x[i] * t - 2.0 * (1.0 - x[i]);
            g[i + 1] += 200.0 * t;
        }
        break;
    case BENCH_LOGREG:
        for (size_t i = 0; i < p->m; i++) {
            const double *xi = p->X + i * n;
            double z = 0.0;
            for (size_t j = 0; j < n; j++)
                z += xi[j] * x[j];
            double c = -p->y[i] * sigmoid(-p->y[i] * z);
            for (size_t j = 0; j < n; j++)
                g[j] += c * xi[j];
        }
        for (size_t j = 0; j < n; j++)
            g[j] += p->lambda * x[j];
        break;
    case BENCH_DENSE: {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += x[i];
        double e = exp(sum / (double)n) / (double)n;
        for (size_t i = 0; i + 1 < n; i++) {
            g[i] += cos(x[i]) * x[i + 1] * x[i + 1];
            g[i + 1] += 2.0 * sin(x[i]) * x[i + 1];
        }
        for (size_t i = 0; i < n; i++)
            g[i] += e;
        break;
    }
    case BENCH_CHAIN:
        for (size_t i = 0; i < n; i++) {
            double c2;
            hand_chain_elem(x[i], &g[i], &c2);
        }
        break;
    }
}

/* hv = H(x) v. */
__attribute__((noinline)) static void hand_hvp(const bench_problem *p, const double *x, const double *v, double *hv)
{
    const size_t n = p->n;
    memset(hv, 0, n * sizeof *hv);
    switch (p->fn) {
    case BENCH_ROSEN:
        for (size_t i = 0; i + 1 < n; i++) {
            double a = 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0, b = -400.0 * x[i];
            hv[i] += a * v[i] + b * v[i + 1];
            hv[i + 1] += b * v[i] + 200.0 * v[i + 1];
        }
        break;
    case BENCH_LOGREG:
        for (size_t i = 0; i < p->m; i++) {
            const double *xi = p->X + i * n;
            double z = 0.0, xv = 0.0;
            for (size_t j = 0; j < n; j++) {
                z += xi[j] * x[j];
                xv += xi[j] * v[j];
            }
            double sg = sigmoid(-p->y[i] * z);
            double c = sg * (1.0 - sg) * xv;
            for (size_t j = 0; j < n; j++)
                hv[j] += c * xi[j];
        }
        for (size_t j = 0; j < n; j++)
            hv[j] += p->lambda * v[j];
        break;
    case BENCH_DENSE: {
        double sum = 0.0, sv = 0.0;
        for (size_t i = 0; i < n; i++) {
            sum += x[i];
            sv += v[i];
        }
        double e = exp(sum / (double)n) / ((double)n * (double)n) * sv;
        for (size_t i = 0; i + 1 < n; i++) {
            double a = -sin(x[i]) * x[i + 1] * x[i + 1], b = 2.0 * cos(x[i]) * x[i + 1],
                   c = 2.0 * sin(x[i]);
            hv[i] += a * v[i] + b * v[i + 1];
            hv[i + 1] += b * v[i] + c * v[i + 1];
        }
        for (size_t i = 0; i < n; i++)
            hv[i] += e;
        break;
    }
    case BENCH_CHAIN:
        for (size_t i = 0; i < n; i++) {
            double c1, c2;
            hand_chain_elem(x[i], &c1, &c2);
            hv[i] = c2 * v[i];
        }
        break;
    }
}

/* Dense function only: H (n x n row-major, full). */
static void hand_hessian_dense(const bench_problem *p, const double *x, double *H)
{
    const size_t n = p->n;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    double e = exp(sum / (double)n) / ((double)n * (double)n);
    for (size_t i = 0; i < n * n; i++)
        H[i] = e;
    for (size_t i = 0; i + 1 < n; i++) {
        H[i * n + i] += -sin(x[i]) * x[i + 1] * x[i + 1];
        H[i * n + i + 1] += 2.0 * cos(x[i]) * x[i + 1];
        H[(i + 1) * n + i] += 2.0 * cos(x[i]) * x[i + 1];
        H[(i + 1) * n + i + 1] += 2.0 * sin(x[i]);
    }
}

/* max |a - b| / max |b| over n entries (stride-free); lower: compare the
 * lower triangle only of n x n matrices (ADOL-C's hessian()). */
static double rel_err(const double *a, const double *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= num))
            num = d; /* NaN propagates */
        if (fabs(b[i]) > den)
            den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}

static double rel_err_lower(const double *A, const double *B, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= i; j++) {
            double d = fabs(A[i * n + j] - B[i * n + j]);
            if (!(d <= num))
                num = d;
            if (fabs(B[i * n + j]) > den)
                den = fabs(B[i * n + j]);
        }
    return den > 0 ? num / den : num;
}

static void report_check(const bench_case *c, const char *tool, const char *what, double err)
{
    int ok = err <= CHECK_TOL;
    printf("  check %-8s %-22s rel. error %.2e  %s\n", tool, what, err,
           ok ? "ok" : "WRONG (tolerance 1e-9)");
    printf("INFO\t%s\t%zu\t%s\tcheck_%s\t%.3e\n", c->fname, c->p.n, tool, what, err);
    if (!ok)
        g_failures++;
}

/* ===================================================================== */
/* Timing                                                                */
/* ===================================================================== */

typedef int (*bench_call)(void *ctx, uint64_t k); /* 0: ok */

typedef struct timing {
    double med, min, max; /* seconds per call */
    uint64_t reps;        /* calls per batch (at least) */
    int ok;
} timing;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One warm-up call, then batches of back-to-back calls of >= min_time:
 * the first batch long enough (reps calibrated by growing) counts as batch
 * 1, the next ones run reps calls and go on call by call until min_time. */
static timing measure(bench_call call, void *ctx, const opts *o)
{
    timing t = {0, 0, 0, 0, 0};
    double per[64];
    int nb = o->batches < 64 ? o->batches : 64;
    uint64_t k = 0;
    if (call(ctx, k++))
        return t;
    uint64_t reps = 1;
    int b = 0;
    for (;;) {
        double t0 = now_s();
        for (uint64_t r = 0; r < reps; r++)
            if (call(ctx, k++))
                return t;
        double el = now_s() - t0;
        if (el >= o->min_time) {
            per[b++] = el / (double)reps;
            break;
        }
        double grow = el > 0 ? 1.25 * o->min_time / el : 100.0;
        if (grow < 2.0)
            grow = 2.0;
        if (grow > 100.0)
            grow = 100.0;
        reps = (uint64_t)ceil((double)reps * grow);
    }
    for (; b < nb; b++) {
        uint64_t calls = 0;
        double t0 = now_s(), el;
        for (uint64_t r = 0; r < reps; r++)
            if (call(ctx, k++))
                return t;
        calls = reps;
        while ((el = now_s() - t0) < o->min_time) {
            if (call(ctx, k++))
                return t;
            calls++;
        }
        per[b] = el / (double)calls;
    }
    qsort(per, (size_t)nb, sizeof per[0], cmp_double);
    t.med = (nb % 2) ? per[nb / 2] : 0.5 * (per[nb / 2 - 1] + per[nb / 2]);
    t.min = per[0];
    t.max = per[nb - 1];
    t.reps = reps;
    t.ok = 1;
    return t;
}

static void fmt_time(char *buf, size_t sz, double s)
{
    if (s < 1e-6)
        snprintf(buf, sz, "%7.1f ns", s * 1e9);
    else if (s < 1e-3)
        snprintf(buf, sz, "%7.2f us", s * 1e6);
    else if (s < 1.0)
        snprintf(buf, sz, "%7.2f ms", s * 1e3);
    else
        snprintf(buf, sz, "%7.3f s ", s);
}

static void report(const bench_case *c, const char *tool, const char *metric, timing t, double tf)
{
    if (!t.ok) {
        printf("  %-8s %-10s FAILED\n", tool, metric);
        printf("RESULT\t%s\t%zu\t%s\t%s\tnan\tnan\tnan\tnan\t0\n", c->fname, c->p.n, tool, metric);
        g_failures++;
        return;
    }
    char a[32], b[32], d[32];
    fmt_time(a, sizeof a, t.med);
    fmt_time(b, sizeof b, t.min);
    fmt_time(d, sizeof d, t.max);
    double ratio = tf > 0 ? t.med / tf : NAN;
    printf("  %-8s %-10s %s  [%s .. %s]  %9.2fx f   (%llu calls/batch)\n", tool, metric, a, b, d,
           ratio, (unsigned long long)t.reps);
    printf("RESULT\t%s\t%zu\t%s\t%s\t%.6e\t%.6e\t%.6e\t%.4f\t%llu\n", c->fname, c->p.n, tool, metric,
           t.med, t.min, t.max, ratio, (unsigned long long)t.reps);
    fflush(stdout);
}

/* ===================================================================== */
/* The metrics shared by both tools                                      */
/* ===================================================================== */

enum { M_RECORD, M_RECOPT, M_RECGRAD, M_EVAL, M_GRAD, M_HVP_NEW, M_HVP_SAME, M_HVP_CG, M_HESSIAN, M_FDHESS, M_COUNT };
static const char *const metric_name[M_COUNT] = {"record",   "rec+opt",   "rec+grad", "eval",    "gradient",
                                                 "hvp_newx", "hvp_samex", "hvp_cg10", "hessian", "hessian_fd"};
/* hvp_cg10: the Newton-CG pattern, CG_HVPS HVPs at one point then a new
 * point; reported per HVP (the call's time divided by CG_HVPS). */
#define CG_HVPS 10

static volatile double g_sink;

/* ---- plain f and the hand-coded floor ------------------------------- */

typedef struct plain_ctx {
    const bench_case *c;
    double *g, *hv;
} plain_ctx;

static int call_plain_f(void *ctx, uint64_t k)
{
    plain_ctx *h = ctx;
    const double *x = (k & 1) ? h->c->x1 : h->c->x0;
    __asm__ volatile("" : : "r"(x) : "memory");
    g_sink = plain_f(&h->c->p, x);
    return 0;
}

static int call_hand_grad(void *ctx, uint64_t k)
{
    plain_ctx *h = ctx;
    const double *x = (k & 1) ? h->c->x1 : h->c->x0;
    __asm__ volatile("" : : "r"(x) : "memory");
    hand_gradient(&h->c->p, x, h->g);
    __asm__ volatile("" : : "r"(h->g) : "memory");
    return 0;
}

static int call_hand_hvp(void *ctx, uint64_t k)
{
    plain_ctx *h = ctx;
    const double *x = (k & 1) ? h->c->x1 : h->c->x0;
    __asm__ volatile("" : : "r"(x) : "memory");
    hand_hvp(&h->c->p, x, h->c->v, h->hv);
    __asm__ volatile("" : : "r"(h->hv) : "memory");
    return 0;
}

/* ---- hyperad twins -------------------------------------------------- */

static ad_var hy_rosen(const ad_var *x, size_t n)
{
    ad_var f = ad_const(0.0);
    for (size_t i = 0; i + 1 < n; i++) {
        ad_var t = ad_sub(x[i + 1], ad_sqr(x[i]));
        ad_var u = ad_csub(1.0, x[i]);
        f = ad_add(f, ad_add(ad_mulc(ad_sqr(t), 100.0), ad_sqr(u)));
    }
    return f;
}

static ad_var hy_logreg(const ad_var *w, const bench_problem *p, int logexp)
{
    const size_t d = p->n;
    ad_var loss = ad_const(0.0);
    for (size_t i = 0; i < p->m; i++) {
        const double *xi = p->X + i * d;
        ad_var z = ad_mulc(w[0], xi[0]);
        for (size_t j = 1; j < d; j++)
            z = ad_add(z, ad_mulc(w[j], xi[j]));
        ad_var s = ad_mulc(z, -p->y[i]);
        ad_var l = logexp ? ad_log(ad_addc(ad_exp(s), 1.0)) : ad_softplus(s);
        loss = ad_add(loss, l);
    }
    ad_var r = ad_sqr(w[0]);
    for (size_t j = 1; j < d; j++)
        r = ad_add(r, ad_sqr(w[j]));
    return ad_add(loss, ad_mulc(r, 0.5 * p->lambda));
}

static ad_var hy_chain(const ad_var *x, size_t n)
{
    ad_var f = ad_const(0.0);
    for (size_t i = 0; i < n; i++) {
        ad_var z = x[i];
        for (int k = 0; k < BENCH_CHAIN_DEPTH; k++)
            z = ad_add(ad_mul(ad_sin(z), ad_exp(ad_neg(ad_sqr(z)))), ad_tanh(z));
        f = ad_add(f, z);
    }
    return f;
}

static ad_var hy_dense(const ad_var *x, size_t n)
{
    ad_var s = ad_const(0.0);
    for (size_t i = 0; i + 1 < n; i++)
        s = ad_add(s, ad_mul(ad_sin(x[i]), ad_sqr(x[i + 1])));
    ad_var sum = x[0];
    for (size_t i = 1; i < n; i++)
        sum = ad_add(sum, x[i]);
    return ad_add(s, ad_exp(ad_mulc(sum, 1.0 / (double)n)));
}

typedef struct hy_ctx {
    const bench_case *c;
    ad_tape *t;
    int logexp;
    double f;
    double *g, *hv, *H, *ref;
    double *xs, *gm; /* finite differences: shifted point, g(x - h e_j) */
    ad_status st;
    const char *where;
} hy_ctx;

static int hy_fail(hy_ctx *h, ad_status st, const char *where)
{
    if (st == AD_OK)
        return 0;
    if (h->st == AD_OK) {
        h->st = st;
        h->where = where;
        printf("  ERROR hyperad %s: %s (%s)\n", where, ad_strerror(st), ad_tape_errmsg(h->t));
        fflush(stdout);
    }
    return 1;
}

static int hy_env_off(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "0");
}

/* The manual route, as a user writes it: inputs, the twin, output. */
static ad_status hy_record_at(hy_ctx *h, const double *x)
{
    const bench_problem *p = &h->c->p;
    ad_status st = ad_record_begin(h->t);
    if (st != AD_OK)
        return st;
    ad_var *xv = malloc(p->n * sizeof *xv);
    if (!xv) {
        ad_output(ad_const(0.0));
        (void)ad_record_end(h->t);
        return AD_ENOMEM;
    }
    ad_inputs(p->n, x, xv);   /* as ad_record does */
    ad_var y = ad_const(0.0);
    switch (p->fn) {
    case BENCH_ROSEN: y = hy_rosen(xv, p->n); break;
    case BENCH_LOGREG: y = hy_logreg(xv, p, h->logexp); break;
    case BENCH_DENSE: y = hy_dense(xv, p->n); break;
    case BENCH_CHAIN: y = hy_chain(xv, p->n); break;
    }
    ad_output(y);
    free(xv);
    return ad_record_end(h->t);
}

static int hy_call_record(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    (void)k;
    return hy_fail(h, hy_record_at(h, h->c->x0), "record");
}

/* Record, then run the tape optimizer now (it otherwise runs lazily at the
 * first sweep, inside the first driver call). */
static int hy_call_recopt(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    (void)k;
    if (hy_fail(h, hy_record_at(h, h->c->x0), "record"))
        return 1;
    return hy_fail(h, ad_tape_optimize(h->t), "ad_tape_optimize after record");
}

static int hy_call_recgrad(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    (void)k;
    if (hy_fail(h, hy_record_at(h, h->c->x0), "record"))
        return 1;
    return hy_fail(h, ad_gradient(h->t, h->c->x0, &h->f, h->g), "ad_gradient after record");
}

static int hy_call_eval(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    return hy_fail(h, ad_eval(h->t, (k & 1) ? h->c->x1 : h->c->x0, &h->f), "ad_eval");
}

static int hy_call_grad(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    return hy_fail(h, ad_gradient(h->t, (k & 1) ? h->c->x1 : h->c->x0, &h->f, h->g), "ad_gradient");
}

static int hy_call_hvp_new(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    return hy_fail(h, ad_hvp(h->t, (k & 1) ? h->c->x1 : h->c->x0, h->c->v, h->hv), "ad_hvp (new x)");
}

static int hy_call_hvp_same(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    (void)k;
    return hy_fail(h, ad_hvp(h->t, h->c->x0, h->c->v, h->hv), "ad_hvp (same x)");
}

static int hy_call_hvp_cg(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    const double *x = (k & 1) ? h->c->x1 : h->c->x0;
    for (int j = 0; j < CG_HVPS; j++)
        if (hy_fail(h, ad_hvp(h->t, x, h->c->v, h->hv), "ad_hvp (CG pattern)"))
            return 1;
    return 0;
}

static int hy_call_hess(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    return hy_fail(h, ad_hessian(h->t, (k & 1) ? h->c->x1 : h->c->x0, h->H), "ad_hessian");
}

/* The numerical Hessian of the seeds: central differences of the gradient
 * (ad_gradient), H e_j = (g(x + h_j e_j) - g(x - h_j e_j)) / (2 h_j) with
 * h_j = cbrt(DBL_EPSILON) max(1, |x_j|); 2n gradients, row-major H with
 * column j written from the two gradients (not symmetrized). */
static ad_status hy_fd_hessian(hy_ctx *h, const double *x, double *H)
{
    const size_t n = h->c->p.n;
    const double eps3 = 6.0554544523933395e-06; /* cbrt(2^-52) */
    memcpy(h->xs, x, n * sizeof *x);
    for (size_t j = 0; j < n; j++) {
        double hj = eps3 * (fabs(x[j]) > 1.0 ? fabs(x[j]) : 1.0);
        double xp = x[j] + hj, xm = x[j] - hj;
        double f;
        h->xs[j] = xp;
        ad_status st = ad_gradient(h->t, h->xs, &f, h->g);
        if (st != AD_OK)
            return st;
        h->xs[j] = xm;
        st = ad_gradient(h->t, h->xs, &f, h->gm);
        h->xs[j] = x[j];
        if (st != AD_OK)
            return st;
        double inv = 1.0 / (xp - xm);
        for (size_t i = 0; i < n; i++)
            H[i * n + j] = (h->g[i] - h->gm[i]) * inv;
    }
    return AD_OK;
}

static int hy_call_fdhess(void *ctx, uint64_t k)
{
    hy_ctx *h = ctx;
    return hy_fail(h, hy_fd_hessian(h, (k & 1) ? h->c->x1 : h->c->x0, h->H), "finite-difference Hessian");
}

/* ---- ADOL-C twins (bench_adolc.cpp) --------------------------------- */

#if BENCH_HAVE_ADOLC
typedef struct ac_ctx {
    const bench_case *c;
    double f;
    double *g, *hv, *H, *ref;
    int failed;
} ac_ctx;

static int ac_fail(ac_ctx *h, int rc, const char *where)
{
    if (rc == 0)
        return 0;
    if (!h->failed) {
        h->failed = 1;
        printf("  ERROR adolc %s: %s\n", where, bench_adolc_errmsg());
        fflush(stdout);
    }
    return 1;
}

static int ac_call_record(void *ctx, uint64_t k)
{
    ac_ctx *h = ctx;
    (void)k;
    return ac_fail(h, bench_adolc_record(&h->c->p, h->c->x0, &h->f), "record");
}

static int ac_call_recgrad(void *ctx, uint64_t k)
{
    ac_ctx *h = ctx;
    (void)k;
    if (ac_fail(h, bench_adolc_record(&h->c->p, h->c->x0, &h->f), "record"))
        return 1;
    return ac_fail(h, bench_adolc_gradient(&h->c->p, h->c->x0, h->g), "gradient after record");
}

static int ac_call_eval(void *ctx, uint64_t k)
{
    ac_ctx *h = ctx;
    return ac_fail(h, bench_adolc_eval(&h->c->p, (k & 1) ? h->c->x1 : h->c->x0, &h->f), "function");
}

static int ac_call_grad(void *ctx, uint64_t k)
{
    ac_ctx *h = ctx;
    return ac_fail(h, bench_adolc_gradient(&h->c->p, (k & 1) ? h->c->x1 : h->c->x0, h->g), "gradient");
}

static int ac_call_hvp_new(void *ctx, uint64_t k)
{
    ac_ctx *h = ctx;
    return ac_fail(h, bench_adolc_hvp(&h->c->p, (k & 1) ? h->c->x1 : h->c->x0, h->c->v, h->hv),
                   "hess_vec (new x)");
}

static int ac_call_hvp_same(void *ctx, uint64_t k)
{
    ac_ctx *h = ctx;
    (void)k;
    return ac_fail(h, bench_adolc_hvp(&h->c->p, h->c->x0, h->c->v, h->hv), "hess_vec (same x)");
}

static int ac_call_hvp_cg(void *ctx, uint64_t k)
{
    ac_ctx *h = ctx;
    const double *x = (k & 1) ? h->c->x1 : h->c->x0;
    for (int j = 0; j < CG_HVPS; j++)
        if (ac_fail(h, bench_adolc_hvp(&h->c->p, x, h->c->v, h->hv), "hess_vec (CG pattern)"))
            return 1;
    return 0;
}

static int ac_call_hess(void *ctx, uint64_t k)
{
    ac_ctx *h = ctx;
    return ac_fail(h, bench_adolc_hessian(&h->c->p, (k & 1) ? h->c->x1 : h->c->x0, h->H), "hessian");
}
#endif

/* ===================================================================== */
/* One case                                                              */
/* ===================================================================== */

static size_t case_nodes_hint(const bench_case *c)
{
    switch (c->p.fn) {
    case BENCH_ROSEN: return 8 * c->p.n;
    case BENCH_LOGREG: return c->p.m * (2 * c->p.n + 2);
    case BENCH_DENSE: return 6 * c->p.n;
    case BENCH_CHAIN: return 7 * BENCH_CHAIN_DEPTH * c->p.n;
    }
    return 0;
}

static void run_plain(const bench_case *c, const opts *o, double tf)
{
    const size_t n = c->p.n;
    plain_ctx pc = {c, xmalloc(n, sizeof(double)), xmalloc(n, sizeof(double))};
    report(c, "hand", "gradient", measure(call_hand_grad, &pc, o), tf);
    report(c, "hand", "hvp_newx", measure(call_hand_hvp, &pc, o), tf);
    free(pc.g);
    free(pc.hv);
}

/* Times per HVP for the metric that makes several HVPs per call. */
static timing per_call(timing t, int mi)
{
    if (mi == M_HVP_CG) {
        t.med /= CG_HVPS;
        t.min /= CG_HVPS;
        t.max /= CG_HVPS;
    }
    return t;
}

/* Every hyperad driver against the hand-coded derivatives, in an order that
 * reaches each code path: new points, the cached point (repeated same-x HVPs
 * reach the preaccumulated statements), the Hessian at a new and at the
 * cached point.  when: "" before the timing, " (after timing)" after it. */
static void hy_check(hy_ctx *h, const char *when)
{
    const bench_case *c = h->c;
    const bench_problem *p = &c->p;
    const size_t n = p->n;
    const int dense = p->fn == BENCH_DENSE;
    double *ref = h->ref, fa = NAN, fr, err;
    char what[64];
#define HY_REPORT(name, e)                                          \
    do {                                                            \
        snprintf(what, sizeof what, "%s%s", name, when);            \
        report_check(c, "hyperad", what, e);                        \
    } while (0)
    if (!hy_fail(h, ad_eval(h->t, c->x1, &fa), "ad_eval (check)")) {
        fr = plain_f(p, c->x1);
        HY_REPORT("eval", rel_err(&fa, &fr, 1));
    }
    if (!hy_fail(h, ad_gradient(h->t, c->x1, &fa, h->g), "ad_gradient (check)")) {
        hand_gradient(p, c->x1, ref);
        HY_REPORT("gradient", rel_err(h->g, ref, n));
    }
    hand_hvp(p, c->x0, c->v, ref);
    if (!hy_fail(h, ad_hvp(h->t, c->x0, c->v, h->hv), "ad_hvp (check, new x)"))
        HY_REPORT("hvp_newx", rel_err(h->hv, ref, n));
    err = 0.0;
    for (int j = 0; j < 5 && h->st == AD_OK; j++) /* cached point, statements built on the way */
        if (!hy_fail(h, ad_hvp(h->t, c->x0, c->v, h->hv), "ad_hvp (check, same x)")) {
            double e = rel_err(h->hv, ref, n);
            if (!(e <= err))
                err = e;
        }
    if (h->st == AD_OK)
        HY_REPORT("hvp_samex", err);
    if (!hy_fail(h, ad_gradient(h->t, c->x0, &fa, h->g), "ad_gradient (check, cached x)")) {
        hand_gradient(p, c->x0, ref);
        HY_REPORT("gradient_cached", rel_err(h->g, ref, n));
    }
    if (!hy_fail(h, ad_hvp(h->t, c->x1, c->v, h->hv), "ad_hvp (check, x1)")) {
        hand_hvp(p, c->x1, c->v, ref);
        HY_REPORT("hvp_x1", rel_err(h->hv, ref, n));
    }
    if (dense) {
        hand_hessian_dense(p, c->x0, ref);
        if (!hy_fail(h, ad_hessian(h->t, c->x0, h->H), "ad_hessian (check, new x)"))
            HY_REPORT("hessian", rel_err(h->H, ref, n * n));
        if (!hy_fail(h, ad_hessian(h->t, c->x0, h->H), "ad_hessian (check, same x)"))
            HY_REPORT("hessian_samex", rel_err(h->H, ref, n * n));
        /* Central differences: an approximation, reported, not checked. */
        if (!hy_fail(h, hy_fd_hessian(h, c->x0, h->H), "finite-difference Hessian (accuracy)")) {
            double e = rel_err(h->H, ref, n * n), emax = 0.0;
            for (size_t i = 0; i < n * n; i++)
                if (fabs(ref[i]) > 1e-300) {
                    double r = fabs(h->H[i] - ref[i]) / fabs(ref[i]);
                    if (!(r <= emax))
                        emax = r;
                }
            printf("  hyperad finite-difference Hessian%s: max|H_fd - H| / max|H| %.2e, max entrywise rel. error %.2e\n",
                   when, e, emax);
            printf("INFO\t%s\t%zu\thyperad\tfd_hessian_err%s\t%.3e\n", c->fname, n, when[0] ? "_after" : "", e);
            printf("INFO\t%s\t%zu\thyperad\tfd_hessian_err_entrywise%s\t%.3e\n", c->fname, n,
                   when[0] ? "_after" : "", emax);
        }
    }
#undef HY_REPORT
}

/* hyperad: a tape recorded at x0, optimized, and every driver checked
 * against the hand-coded derivatives.  0 when the drivers ran (a wrong value
 * is counted in g_failures but the timing goes on). */
static int hy_setup(hy_ctx *h, const bench_case *c, const opts *o)
{
    const bench_problem *p = &c->p;
    const size_t n = p->n;
    const int dense = p->fn == BENCH_DENSE;
    memset(h, 0, sizeof *h);
    h->c = c;
    h->logexp = o->logexp;
    h->g = xmalloc(n, sizeof(double));
    h->hv = xmalloc(n, sizeof(double));
    h->H = dense ? xmalloc(n, n * sizeof(double)) : NULL;
    h->ref = xmalloc(dense ? n * n : n, sizeof(double));
    h->xs = xmalloc(n, sizeof(double));
    h->gm = xmalloc(n, sizeof(double));
    h->t = ad_tape_new();
    if (!h->t) {
        printf("  ERROR hyperad: ad_tape_new returned NULL\n");
        return -1;
    }

    if (p->fn == BENCH_LOGREG)
        printf("  hyperad logreg: per row %s\n",
               o->logexp ? "ad_log(ad_addc(ad_exp(s), 1)) (3 ops, as ADOL-C)"
                         : "ad_softplus(s) (1 op; ADOL-C uses log(1+exp(s)), 3 ops)");
    /* Record once, then check every driver against the hand-coded derivatives. */
    if (hy_fail(h, hy_record_at(h, c->x0), "record"))
        return -1;
    printf("  hyperad tape as recorded: %zu nodes, %.2f bytes/op (ad_tape_bytes_per_op), %zu bytes (ad_tape_memory)\n",
           ad_tape_nops(h->t), ad_tape_bytes_per_op(h->t), ad_tape_memory(h->t));
    printf("INFO\t%s\t%zu\thyperad\tnodes_recorded\t%zu\n", c->fname, n, ad_tape_nops(h->t));
    printf("INFO\t%s\t%zu\thyperad\tbytes_per_op_recorded\t%.3f\n", c->fname, n, ad_tape_bytes_per_op(h->t));
    if (hy_fail(h, ad_tape_optimize(h->t), "ad_tape_optimize"))
        return -1;
    printf("  hyperad tape after ad_tape_optimize: %zu nodes, %.2f bytes/op, %zu bytes%s\n", ad_tape_nops(h->t),
           ad_tape_bytes_per_op(h->t), ad_tape_memory(h->t),
           hy_env_off("HYPERAD_OPTIMIZE") ? " (optimizer switched off by HYPERAD_OPTIMIZE=0)" : "");
    printf("INFO\t%s\t%zu\thyperad\tnodes\t%zu\n", c->fname, n, ad_tape_nops(h->t));
    printf("INFO\t%s\t%zu\thyperad\tbytes_per_op\t%.3f\n", c->fname, n, ad_tape_bytes_per_op(h->t));
    hy_check(h, "");
    return h->st != AD_OK ? -1 : 0;
}

static void hy_teardown(hy_ctx *h)
{
    ad_tape_free(h->t);
    free(h->xs);
    free(h->gm);
    free(h->g);
    free(h->hv);
    free(h->H);
    free(h->ref);
    memset(h, 0, sizeof *h);
}

static const bench_call hy_calls[M_COUNT] = {hy_call_record,   hy_call_recopt, hy_call_recgrad,
                                             hy_call_eval,     hy_call_grad,   hy_call_hvp_new,
                                             hy_call_hvp_same, hy_call_hvp_cg, hy_call_hess,
                                             hy_call_fdhess};

#if BENCH_HAVE_ADOLC
/* ADOL-C: the same, with its tape statistics. */
static int ac_setup(ac_ctx *h, const bench_case *c)
{
    const bench_problem *p = &c->p;
    const size_t n = p->n;
    const int dense = p->fn == BENCH_DENSE;
    memset(h, 0, sizeof *h);
    h->c = c;
    h->g = xmalloc(n, sizeof(double));
    h->hv = xmalloc(n, sizeof(double));
    h->H = dense ? xmalloc(n, n * sizeof(double)) : NULL;
    h->ref = xmalloc(dense ? n * n : n, sizeof(double));
    double *ref = h->ref;

    if (ac_fail(h, bench_adolc_record(p, c->x0, &h->f), "record"))
        return -1;
    bench_adolc_stats s;
    bench_adolc_get_stats(p, &s);
    {
        double ops = (double)s.num_ops;
        double tape = (double)s.num_ops * 1.0 + (double)s.num_locs * 4.0 + (double)s.num_vals * 8.0;
        printf("  adolc tape: %zu operations, %zu locations, %zu values, %zu max live (Taylor slots);"
               " %.2f bytes/op (1-byte op + 4-byte locint + 8-byte value), %.2f with the value array"
               " (8 bytes x max live);%s%s%s\n",
               s.num_ops, s.num_locs, s.num_vals, s.max_lives, tape / ops,
               (tape + 8.0 * (double)s.max_lives) / ops, s.op_file ? " ops" : "", s.loc_file ? " locs" : "",
               s.val_file ? " vals" : "");
        if (s.op_file || s.loc_file || s.val_file)
            printf("  adolc: the parts above were written to tape FILES (buffers %zu/%zu/%zu entries)\n", s.op_buf,
                   s.loc_buf, s.val_buf);
        else
            printf("  adolc: the tape stayed in memory buffers\n");
        printf("INFO\t%s\t%zu\tadolc\tnodes\t%zu\n", c->fname, n, s.num_ops);
        printf("INFO\t%s\t%zu\tadolc\tbytes_per_op\t%.3f\n", c->fname, n, tape / ops);
        printf("INFO\t%s\t%zu\tadolc\tbytes_per_op_with_values\t%.3f\n", c->fname, n,
               (tape + 8.0 * (double)s.max_lives) / ops);
        printf("INFO\t%s\t%zu\tadolc\tlocations\t%zu\n", c->fname, n, s.num_locs);
        printf("INFO\t%s\t%zu\tadolc\tvalues\t%zu\n", c->fname, n, s.num_vals);
        printf("INFO\t%s\t%zu\tadolc\tmax_lives\t%zu\n", c->fname, n, s.max_lives);
        printf("INFO\t%s\t%zu\tadolc\ttape_files\t%d\n", c->fname, n, s.op_file || s.loc_file || s.val_file);
    }
    {
        double fa = NAN, fr;
        if (!ac_fail(h, bench_adolc_eval(p, c->x1, &fa), "function (check)")) {
            fr = plain_f(p, c->x1);
            report_check(c, "adolc", "eval", rel_err(&fa, &fr, 1));
        }
        if (!ac_fail(h, bench_adolc_gradient(p, c->x1, h->g), "gradient (check)")) {
            hand_gradient(p, c->x1, ref);
            report_check(c, "adolc", "gradient", rel_err(h->g, ref, n));
        }
        hand_hvp(p, c->x0, c->v, ref);
        if (!ac_fail(h, bench_adolc_hvp(p, c->x0, c->v, h->hv), "hess_vec (check)"))
            report_check(c, "adolc", "hvp", rel_err(h->hv, ref, n));
        if (dense && !ac_fail(h, bench_adolc_hessian(p, c->x0, h->H), "hessian (check)")) {
            hand_hessian_dense(p, c->x0, ref);
            report_check(c, "adolc", "hessian", rel_err_lower(h->H, ref, n));
        }
    }
    return h->failed ? -1 : 0;
}

static void ac_teardown(ac_ctx *h)
{
    bench_adolc_cleanup();
    free(h->g);
    free(h->hv);
    free(h->H);
    free(h->ref);
    memset(h, 0, sizeof *h);
}

/* ADOL-C has no separate optimize step. */
static const bench_call ac_calls[M_COUNT] = {ac_call_record,   NULL,           ac_call_recgrad,
                                             ac_call_eval,     ac_call_grad,   ac_call_hvp_new,
                                             ac_call_hvp_same, ac_call_hvp_cg, ac_call_hess,
                                             NULL};
#endif

/* One case: f, the hand-coded floor, then each metric for hyperad and
 * ADOL-C back to back (their order alternating from metric to metric), so
 * that a change in the machine's load hits both tools alike; f again at the
 * end (the report's ratios use the lower of the two medians of f). */
static void run_case(bench_fn fn, size_t n, size_t m, const opts *o)
{
    bench_case c;
    case_make(&c, fn, n, m);
    const int dense = fn == BENCH_DENSE;
    if (fn == BENCH_LOGREG)
        printf("\n== logreg m=%zu d=%zu (about %zu scalar ops) ==\n", m, n, case_nodes_hint(&c));
    else
        printf("\n== %s n=%zu (about %zu scalar ops) ==\n", c.fname, n, case_nodes_hint(&c));
    if (fn == BENCH_LOGREG)
        printf("INFO\t%s\t%zu\tall\tm\t%zu\n", c.fname, n, m);

    plain_ctx pc = {&c, NULL, NULL};
    timing tf = {1.0, 1.0, 1.0, 1, 1};
    if (o->rss_only) {
        g_sink = plain_f(&c.p, c.x0);
    } else {
        tf = measure(call_plain_f, &pc, o);
        report(&c, "plain", "f", tf, tf.med);
    }
    if (!tf.ok || !(tf.med > 0)) {
        printf("  ERROR: the plain function could not be timed\n");
        g_failures++;
        case_free(&c);
        return;
    }
    if ((o->tools & TOOL_PLAIN) && !o->rss_only)
        run_plain(&c, o, tf.med);

    timing rh[M_COUNT], ra[M_COUNT];
    memset(rh, 0, sizeof rh);
    memset(ra, 0, sizeof ra);
    hy_ctx hy;
    int hy_ok = 0;
    memset(&hy, 0, sizeof hy);
    if (o->tools & TOOL_HYPERAD)
        if (!(hy_ok = hy_setup(&hy, &c, o) == 0))
            g_failures++;
#if BENCH_HAVE_ADOLC
    ac_ctx ac;
    int ac_ok = 0;
    memset(&ac, 0, sizeof ac);
    if (o->tools & TOOL_ADOLC)
        if (!(ac_ok = ac_setup(&ac, &c) == 0))
            g_failures++;
#endif
    if (!o->rss_only) {
        for (int mi = 0; mi < M_COUNT; mi++) {
            if ((mi == M_HESSIAN || mi == M_FDHESS) && !dense)
                continue;
            for (int turn = 0; turn < 2; turn++) {
                int adolc_turn = (turn + mi) % 2; /* alternate who goes first */
                if (!adolc_turn && hy_ok && hy_calls[mi]) {
                    hy.st = AD_OK;
                    rh[mi] = per_call(measure(hy_calls[mi], &hy, o), mi);
                    report(&c, "hyperad", metric_name[mi], rh[mi], tf.med);
                }
#if BENCH_HAVE_ADOLC
                if (adolc_turn && ac_ok && ac_calls[mi]) {
                    ac.failed = 0;
                    ra[mi] = per_call(measure(ac_calls[mi], &ac, o), mi);
                    report(&c, "adolc", metric_name[mi], ra[mi], tf.med);
                }
#endif
            }
        }
        if (hy_ok) {
            hy.st = AD_OK;
            hy_check(&hy, " (after timing)");
            printf("  hyperad memory after the sweeps: %zu bytes (ad_tape_memory)\n", ad_tape_memory(hy.t));
            printf("INFO\t%s\t%zu\thyperad\ttape_memory\t%zu\n", c.fname, n, ad_tape_memory(hy.t));
        }
        timing tf2 = measure(call_plain_f, &pc, o);
        report(&c, "plain", "f_end", tf2, tf.med);
        if (tf2.ok && tf2.med < tf.med)
            printf("  (f ran faster at the end: the report's ratios use %.4g s)\n", tf2.med);
    }
    if (o->tools & TOOL_HYPERAD)
        hy_teardown(&hy);
#if BENCH_HAVE_ADOLC
    if (o->tools & TOOL_ADOLC)
        ac_teardown(&ac);
#endif
    if ((o->tools & TOOL_HYPERAD) && (o->tools & TOOL_ADOLC) && !o->rss_only) {
        printf("  speed-up hyperad over ADOL-C (ADOL-C time / hyperad time):");
        for (int mi = 0; mi < M_COUNT; mi++)
            if (rh[mi].ok && ra[mi].ok)
                printf(" %s %.2fx", metric_name[mi], ra[mi].med / rh[mi].med);
        printf("\n");
    }
    case_free(&c);
}

/* ===================================================================== */
/* main                                                                  */
/* ===================================================================== */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_ad [--tool plain|hyperad|adolc|all] [--fn rosen|logreg|dense|chain|all]\n"
            "                [--n N] [--m M] [--quick] [--batches B] [--min-time S]\n"
            "                [--logexp] [--rss-only] [--allow-default-malloc]\n"
            "  --tool   plain: f and the hand-coded gradient/HVP; all (default): every tool built\n"
            "  --fn     one function (default all at the ANCHORS.md sizes)\n"
            "  --n      size (rosen, dense: n; logreg: d), needs a single --fn\n"
            "  --m      logreg rows (default 10000)\n"
            "  --quick  small sizes, 1 batch of >= 0.02 s (CI: proves it runs)\n"
            "  --logexp hyperad logreg rows as log(1+exp(s)) (3 ops) instead of ad_softplus\n"
            "  --rss-only  no timing: record, check and call each driver once, then print\n"
            "           the peak RSS (run one tool per process to read it per tool)\n"
            "  Needs MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 in the environment\n"
            "  (refuses without them unless --quick or --allow-default-malloc).\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    double d = strtod(s, &end); /* accepts 1e6 */
    if (end == s || *end != '\0' || !(d >= 1.0) || d > 4e9 || d != floor(d))
        return -1;
    *out = (size_t)d;
    return 0;
}

/* The machine is shared: say how busy it was (Linux /proc/loadavg). */
static void print_loadavg(const char *when)
{
    char buf[128] = "";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    printf("load average at %s: %s\n", when, buf[0] ? buf : "(unknown)");
    printf("INFO\t-\t0\tall\tloadavg_%s\t%s\n", when, buf[0] ? buf : "?");
}

int main(int argc, char **argv)
{
    opts o = {0, 0, 0, 0, 0, 5, 0.2, 0, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tool") && val) {
            i++;
            if (!strcmp(val, "plain"))
                o.tools |= TOOL_PLAIN;
            else if (!strcmp(val, "hyperad"))
                o.tools |= TOOL_HYPERAD;
            else if (!strcmp(val, "adolc"))
                o.tools |= TOOL_ADOLC;
            else if (!strcmp(val, "all"))
                o.tools |= TOOL_PLAIN | TOOL_HYPERAD | TOOL_ADOLC;
            else {
                fprintf(stderr, "bench_ad: unknown tool '%s'\n", val);
                return 2;
            }
        } else if (!strcmp(a, "--fn") && val) {
            i++;
            if (!strcmp(val, "rosen"))
                o.fns |= FN_ROSEN;
            else if (!strcmp(val, "logreg"))
                o.fns |= FN_LOGREG;
            else if (!strcmp(val, "dense"))
                o.fns |= FN_DENSE;
            else if (!strcmp(val, "chain"))
                o.fns |= FN_CHAIN;
            else if (!strcmp(val, "all"))
                o.fns |= FN_ROSEN | FN_LOGREG | FN_DENSE | FN_CHAIN;
            else {
                fprintf(stderr, "bench_ad: unknown function '%s'\n", val);
                return 2;
            }
        } else if (!strcmp(a, "--n") && val) {
            i++;
            if (parse_size(val, &o.n)) {
                fprintf(stderr, "bench_ad: bad --n '%s'\n", val);
                return 2;
            }
        } else if (!strcmp(a, "--m") && val) {
            i++;
            if (parse_size(val, &o.m)) {
                fprintf(stderr, "bench_ad: bad --m '%s'\n", val);
                return 2;
            }
        } else if (!strcmp(a, "--batches") && val) {
            i++;
            o.batches = atoi(val);
            if (o.batches < 1 || o.batches > 64) {
                fprintf(stderr, "bench_ad: --batches must be 1..64\n");
                return 2;
            }
        } else if (!strcmp(a, "--min-time") && val) {
            i++;
            o.min_time = strtod(val, NULL);
            if (!(o.min_time > 0 && o.min_time < 100)) {
                fprintf(stderr, "bench_ad: bad --min-time\n");
                return 2;
            }
        } else if (!strcmp(a, "--quick")) {
            o.quick = 1;
        } else if (!strcmp(a, "--rss-only")) {
            o.rss_only = 1;
        } else if (!strcmp(a, "--logexp")) {
            o.logexp = 1;
        } else if (!strcmp(a, "--allow-default-malloc")) {
            o.allow_malloc = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_ad: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o.quick) {
        int explicit_b = 0;
        for (int i = 1; i < argc; i++)
            if (!strcmp(argv[i], "--batches") || !strcmp(argv[i], "--min-time"))
                explicit_b = 1;
        if (!explicit_b) {
            o.batches = 1;
            o.min_time = 0.02;
        }
    }
    if (o.tools == 0)
        o.tools = TOOL_PLAIN | TOOL_HYPERAD | TOOL_ADOLC;
    if (o.fns == 0)
        o.fns = FN_ROSEN | FN_LOGREG | FN_DENSE | FN_CHAIN;
    if (o.n && o.fns != FN_ROSEN && o.fns != FN_LOGREG && o.fns != FN_DENSE && o.fns != FN_CHAIN) {
        fprintf(stderr, "bench_ad: --n needs exactly one --fn\n");
        return 2;
    }
#if !BENCH_HAVE_ADOLC
    if (o.tools == TOOL_ADOLC) {
        fprintf(stderr, "bench_ad: built without ADOL-C (libadolc-dev not found at configure time)\n");
        return 2;
    }
    o.tools &= ~TOOL_ADOLC;
#endif

    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    const char *mm = getenv("MALLOC_MMAP_MAX_"), *mt = getenv("MALLOC_TRIM_THRESHOLD_");
    printf("malloc environment: MALLOC_MMAP_MAX_=%s MALLOC_TRIM_THRESHOLD_=%s\n", mm ? mm : "(unset)",
           mt ? mt : "(unset)");
    int malloc_ok = mm && !strcmp(mm, MALLOC_MMAP_MAX_WANT) && mt && !strcmp(mt, MALLOC_TRIM_WANT);
    if (!malloc_ok) {
        const char *msg =
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            "!! WARNING: the malloc environment of ANCHORS.md is NOT set.  Run with\n"
            "!!   MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736\n"
            "!! (glibc returns big freed blocks to the kernel otherwise, and a fresh page\n"
            "!! costs ~10 us on this VM: ADOL-C's HVP gets ~7x slower).  These timings are\n"
            "!! NOT comparable with ANCHORS.md.\n"
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n";
        fputs(msg, stderr);
        fputs(msg, stdout);
        if (!o.quick && !o.allow_malloc) {
            fprintf(stderr, "bench_ad: refusing to time without them (--allow-default-malloc overrides)\n");
            return 2;
        }
    }
    {
        const char *ho = getenv("HYPERAD_OPTIMIZE"), *hp = getenv("HYPERAD_PREACC");
        printf("hyperad switches: HYPERAD_OPTIMIZE=%s HYPERAD_PREACC=%s\n", ho ? ho : "(unset: on)",
               hp ? hp : "(unset: on)");
    }
    print_loadavg("start");
    printf("versions: hyperad %s, ADOL-C %s, compiler %s\n", BENCH_HYPERAD_VERSION,
           BENCH_HAVE_ADOLC ? BENCH_ADOLC_VERSION : "(not built)", __VERSION__);
    printf("timing: one warm-up call, then %d batch(es) of back-to-back calls >= %.3g s, median per call;"
           " CLOCK_MONOTONIC; new x alternates x0/x1 each call\n",
           o.batches, o.min_time);
    printf("INFO\t-\t0\tall\tmalloc_env_ok\t%d\n", malloc_ok);
    fflush(stdout);

    if (o.fns & FN_ROSEN) {
        static const size_t full[] = {1000, 10000, 100000, 1000000}, quick[] = {1000, 10000};
        const size_t *sz = o.quick ? quick : full;
        size_t cnt = o.quick ? 2 : 4;
        if (o.n) {
            sz = &o.n;
            cnt = 1;
        }
        for (size_t i = 0; i < cnt; i++)
            run_case(BENCH_ROSEN, sz[i], 0, &o);
    }
    if (o.fns & FN_LOGREG) {
        size_t d = o.n ? o.n : (o.quick ? 20 : 100);
        size_t m = o.m ? o.m : (o.quick ? 500 : 10000);
        run_case(BENCH_LOGREG, d, m, &o);
    }
    if (o.fns & FN_DENSE) {
        static const size_t full[] = {100, 1000}, quick[] = {20, 100};
        const size_t *sz = o.quick ? quick : full;
        size_t cnt = 2;
        if (o.n) {
            sz = &o.n;
            cnt = 1;
        }
        for (size_t i = 0; i < cnt; i++)
            run_case(BENCH_DENSE, sz[i], 0, &o);
    }

    if (o.fns & FN_CHAIN) {
        size_t n = o.n ? o.n : (o.quick ? 10 : 1000);
        run_case(BENCH_CHAIN, n, 0, &o);
    }

    print_loadavg("end");
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        printf("\npeak RSS of this process: %.1f MiB (ru_maxrss; tools run here:%s%s%s)\n",
               (double)ru.ru_maxrss / 1024.0, (o.tools & TOOL_PLAIN) ? " plain" : "",
               (o.tools & TOOL_HYPERAD) ? " hyperad" : "", (o.tools & TOOL_ADOLC) ? " adolc" : "");
        printf("INFO\t-\t0\tall\tpeak_rss_kib\t%ld\n", ru.ru_maxrss);
    } else {
        perror("getrusage");
    }
    if (g_failures)
        printf("\n%d FAILURE(S): see the ERROR / WRONG / FAILED lines above\n", g_failures);
    return g_failures ? 1 : 0;
}
