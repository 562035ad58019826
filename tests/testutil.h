/*
 * Shared helpers for the hyperad tests: a fixed-seed RNG, tolerance checks
 * that print both numbers when they fail, and small recording helpers.
 * Include after <cmocka.h>.  Everything is static inline: each test file is
 * its own program.
 */
#ifndef HYPERAD_TESTUTIL_H
#define HYPERAD_TESTUTIL_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hyperad.h"

/* ---- RNG: splitmix64, fixed seeds everywhere ------------------------- */

typedef struct tu_rng { uint64_t s; } tu_rng;

static inline uint64_t tu_next(tu_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double tu_unif(tu_rng *r)
{
    return (double)(tu_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [a, b). */
static inline double tu_range(tu_rng *r, double a, double b)
{
    return a + (b - a) * tu_unif(r);
}

/* Uniform integer in [0, n). */
static inline size_t tu_index(tu_rng *r, size_t n)
{
    return (size_t)(tu_next(r) % (uint64_t)n);
}

/* ---- tolerance checks ------------------------------------------------- */

#define TU_ULP DBL_EPSILON

/* |got − want| <= rtol·max(|want|, scale).  scale lets a check that sums or
 * cancels terms be measured against the size of those terms. */
static inline int tu_close(double got, double want, double rtol, double scale)
{
    double ref = fabs(want) > scale ? fabs(want) : scale;
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    if (!isfinite(got))
        return 0;
    return fabs(got - want) <= rtol * ref;
}

#define assert_close_s(got, want, rtol, scale)                                       \
    do {                                                                             \
        double tu_g_ = (got), tu_w_ = (want), tu_s_ = (scale);                       \
        if (!tu_close(tu_g_, tu_w_, (rtol), tu_s_)) {                                \
            double tu_r_ = fabs(tu_w_) > tu_s_ ? fabs(tu_w_) : tu_s_;                \
            print_error("%s: got %.17g want %.17g (rel err %.3g, tol %.3g)\n",       \
                        #got, tu_g_, tu_w_,                                          \
                        tu_r_ > 0 ? fabs(tu_g_ - tu_w_) / tu_r_ : fabs(tu_g_ - tu_w_), \
                        (double)(rtol));                                             \
            fail();                                                                  \
        }                                                                            \
    } while (0)

#define assert_close(got, want, rtol) assert_close_s(got, want, rtol, 0.0)

/* A context line printed only when the next check fails. */
#define assert_close_ctx(got, want, rtol, scale, ...)                                \
    do {                                                                             \
        double tu_g2_ = (got), tu_w2_ = (want);                                      \
        if (!tu_close(tu_g2_, tu_w2_, (rtol), (scale))) {                            \
            print_error(__VA_ARGS__);                                                \
            assert_close_s(tu_g2_, tu_w2_, rtol, scale);                             \
        }                                                                            \
    } while (0)

#define assert_status(expr, want)                                                    \
    do {                                                                             \
        ad_status tu_st_ = (expr);                                                   \
        if (tu_st_ != (want)) {                                                      \
            print_error("%s returned %d (%s), want %d (%s)\n", #expr, (int)tu_st_,   \
                        ad_strerror(tu_st_), (int)(want), ad_strerror(want));        \
            fail();                                                                  \
        }                                                                            \
    } while (0)

#define assert_ok(expr) assert_status(expr, AD_OK)

/* ---- recording helpers ------------------------------------------------ */

typedef ad_var (*tu_unary)(ad_var);
typedef ad_var (*tu_binary)(ad_var, ad_var);

/* Records y = op(x) at x0 on t by the manual route; returns ad_record_end's status. */
static inline ad_status tu_record_unary(ad_tape *t, tu_unary op, double x0)
{
    ad_status s = ad_record_begin(t);
    if (s != AD_OK)
        return s;
    ad_var x = ad_input(x0);
    ad_output(op(x));
    return ad_record_end(t);
}

static inline ad_status tu_record_binary(ad_tape *t, tu_binary op, double a0, double b0)
{
    ad_status s = ad_record_begin(t);
    if (s != AD_OK)
        return s;
    ad_var a = ad_input(a0);
    ad_var b = ad_input(b0);
    ad_output(op(a, b));
    return ad_record_end(t);
}

/* Dense Hessian by n single HVPs on unit vectors (an independent route to
 * ad_hessian's vector mode).  H is n×n row-major; column j = H e_j. */
static inline ad_status tu_hessian_by_hvp(ad_tape *t, const double *x, size_t n, double *H)
{
    double *e = calloc(n, sizeof *e), *hv = malloc(n * sizeof *hv);
    ad_status s = (e && hv) ? AD_OK : AD_ENOMEM;
    for (size_t j = 0; s == AD_OK && j < n; j++) {
        e[j] = 1.0;
        s = ad_hvp(t, x, e, hv);
        e[j] = 0.0;
        for (size_t i = 0; s == AD_OK && i < n; i++)
            H[i * n + j] = hv[i];
    }
    free(e);
    free(hv);
    return s;
}

static inline double tu_maxabs(const double *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m)
            m = fabs(a[i]);
    return m;
}

#endif /* HYPERAD_TESTUTIL_H */
