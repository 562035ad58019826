/*
 * The unconstrained test problems of J. J. Moré, B. S. Garbow and
 * K. E. Hillstrom, "Testing unconstrained optimization software", ACM TOMS
 * 7(1), 1981, written with hyperad ops: each is f = Σ r_i(x)², recorded
 * through ad_record.  Numbers in comments are the paper's problem numbers.
 *
 * Header-only (static functions and one static table) because the test and
 * benchmark programs are built from one source file each; include it once per
 * program.  Every function is reachable from mgh_problems[], so none is
 * unused.
 */
#ifndef HYPERAD_TESTS_MGH_H
#define HYPERAD_TESTS_MGH_H

#include <math.h>
#include <stdlib.h>

#include "hyperad.h"

typedef struct mgh_problem {
    const char *name;
    size_t n;                          /* dimension used here              */
    ad_fn f;                           /* records f with hyperad ops       */
    void (*x0)(size_t n, double *x);   /* the standard starting point      */
    double fmin[2];                    /* known minimum values (paper)      */
    int nmin;                          /* how many of fmin are meaningful  */
} mgh_problem;

/* Σ r_i² as one vector node. */
static ad_var mgh_sumsq(size_t m, const ad_var *r)
{
    return ad_dotv(m, r, r);
}

/* ---- (1) Rosenbrock and (21) extended Rosenbrock ------------------------ */
static ad_var mgh_ext_rosenbrock(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var *r = malloc(n * sizeof *r);
    if (r == NULL)
        return ad_const(NAN);
    for (size_t i = 0; i + 1 < n; i += 2) {
        r[i] = ad_mulc(ad_sub(x[i + 1], ad_sqr(x[i])), 10.0);
        r[i + 1] = ad_csub(1.0, x[i]);
    }
    ad_var f = mgh_sumsq(n, r);
    free(r);
    return f;
}
static void mgh_x0_rosenbrock(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = i % 2 ? 1.0 : -1.2;
}

/* ---- (2) Freudenstein and Roth -------------------------------------------- */
static ad_var mgh_freudenstein_roth(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[2];
    /* ((5 − x2) x2 − 2) x2 and ((x2 + 1) x2 − 14) x2 */
    ad_var a = ad_mul(ad_addc(ad_mul(ad_csub(5.0, x[1]), x[1]), -2.0), x[1]);
    ad_var b = ad_mul(ad_addc(ad_mul(ad_addc(x[1], 1.0), x[1]), -14.0), x[1]);
    r[0] = ad_add(ad_addc(x[0], -13.0), a);
    r[1] = ad_add(ad_addc(x[0], -29.0), b);
    return mgh_sumsq(2, r);
}
static void mgh_x0_freudenstein_roth(size_t n, double *x)
{
    (void)n;
    x[0] = 0.5;
    x[1] = -2.0;
}

/* ---- (3) Powell badly scaled ------------------------------------------------ */
static ad_var mgh_powell_badly(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[2];
    r[0] = ad_addc(ad_mulc(ad_mul(x[0], x[1]), 1e4), -1.0);
    r[1] = ad_addc(ad_add(ad_exp(ad_neg(x[0])), ad_exp(ad_neg(x[1]))), -1.0001);
    return mgh_sumsq(2, r);
}
static void mgh_x0_powell_badly(size_t n, double *x)
{
    (void)n;
    x[0] = 0.0;
    x[1] = 1.0;
}

/* ---- (4) Brown badly scaled ------------------------------------------------- */
static ad_var mgh_brown_badly(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[3];
    r[0] = ad_addc(x[0], -1e6);
    r[1] = ad_addc(x[1], -2e-6);
    r[2] = ad_addc(ad_mul(x[0], x[1]), -2.0);
    return mgh_sumsq(3, r);
}
static void mgh_x0_ones(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0;
}

/* ---- (5) Beale ----------------------------------------------------------------- */
static ad_var mgh_beale(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    static const double y[3] = { 1.5, 2.25, 2.625 };
    ad_var r[3];
    for (int i = 0; i < 3; i++)
        r[i] = ad_csub(y[i], ad_mul(x[0], ad_csub(1.0, ad_powi(x[1], i + 1))));
    return mgh_sumsq(3, r);
}

/* ---- (6) Jennrich and Sampson, m = 10 -------------------------------------- */
static ad_var mgh_jennrich_sampson(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[10];
    for (int i = 1; i <= 10; i++)
        r[i - 1] = ad_csub(2.0 + 2.0 * i,
                           ad_add(ad_exp(ad_mulc(x[0], i)), ad_exp(ad_mulc(x[1], i))));
    return mgh_sumsq(10, r);
}
static void mgh_x0_jennrich_sampson(size_t n, double *x)
{
    (void)n;
    x[0] = 0.3;
    x[1] = 0.4;
}

/* ---- (7) Helical valley ----------------------------------------------------- */
/* θ = atan2(x2, x1)/2π, plus 1 in the third quadrant: the paper's
 * (1/2π) arctan(x2/x1) (+ 1/2 for x1 < 0) without the division.  The
 * branch is a recorded comparison; ad_record re-records when it flips. */
static ad_var mgh_helical_valley(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    const double twopi = 6.283185307179586;
    ad_var zero = ad_const(0.0);
    ad_var theta = ad_mulc(ad_atan2(x[1], x[0]), 1.0 / twopi);
    if (ad_lt(x[0], zero) && ad_lt(x[1], zero))
        theta = ad_addc(theta, 1.0);
    ad_var r[3];
    r[0] = ad_mulc(ad_sub(x[2], ad_mulc(theta, 10.0)), 10.0);
    r[1] = ad_mulc(ad_addc(ad_hypot(x[0], x[1]), -1.0), 10.0);
    r[2] = x[2];
    return mgh_sumsq(3, r);
}
static void mgh_x0_helical_valley(size_t n, double *x)
{
    (void)n;
    x[0] = -1.0;
    x[1] = 0.0;
    x[2] = 0.0;
}

/* ---- (8) Bard -------------------------------------------------------------------- */
static ad_var mgh_bard(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    static const double y[15] = { 0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39,
                                  0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39 };
    ad_var r[15];
    for (int i = 1; i <= 15; i++) {
        double u = i, v = 16 - i, w = u < v ? u : v;
        ad_var den = ad_add(ad_mulc(x[1], v), ad_mulc(x[2], w));
        r[i - 1] = ad_csub(y[i - 1], ad_add(x[0], ad_cdiv(u, den)));
    }
    return mgh_sumsq(15, r);
}

/* ---- (9) Gaussian ------------------------------------------------------------------ */
static ad_var mgh_gaussian(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    static const double y[15] = { 0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420,
                                  0.3521, 0.3989, 0.3521, 0.2420, 0.1295, 0.0540,
                                  0.0175, 0.0044, 0.0009 };
    ad_var r[15];
    for (int i = 1; i <= 15; i++) {
        double t = (8.0 - i) / 2.0;
        ad_var d = ad_csub(t, x[2]);
        ad_var e = ad_exp(ad_mulc(ad_mul(x[1], ad_sqr(d)), -0.5));
        r[i - 1] = ad_addc(ad_mul(x[0], e), -y[i - 1]);
    }
    return mgh_sumsq(15, r);
}
static void mgh_x0_gaussian(size_t n, double *x)
{
    (void)n;
    x[0] = 0.4;
    x[1] = 1.0;
    x[2] = 0.0;
}

/* ---- (10) Meyer, m = 16 -------------------------------------------------------------- */
/* y_i as printed in the paper; the same table is in public copies such as
 * JuliaSmoothOptimizers/NLSProblems.jl (src/mgh10.jl).  Checked here: f(x0)
 * = 1.693608e9 (the 1.69361e9 usually quoted) and f = 87.945855 at Meyer and
 * Roth's minimizer (0.00560964, 6181.35, 345.224), the paper's 87.9458. */
static ad_var mgh_meyer(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    static const double y[16] = { 34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0,
                                  11540.0, 9744.0, 8261.0, 7030.0, 6005.0, 5147.0,
                                  4427.0, 3820.0, 3307.0, 2872.0 };
    ad_var r[16];
    for (int i = 1; i <= 16; i++) {
        double t = 45.0 + 5.0 * i;
        ad_var e = ad_exp(ad_div(x[1], ad_addc(x[2], t)));
        r[i - 1] = ad_addc(ad_mul(x[0], e), -y[i - 1]);
    }
    return mgh_sumsq(16, r);
}
static void mgh_x0_meyer(size_t n, double *x)
{
    (void)n;
    x[0] = 0.02;
    x[1] = 4000.0;
    x[2] = 250.0;
}

/* ---- (11) Gulf research and development, m = 99 ------------------------------ */
static ad_var mgh_gulf(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[99];
    for (int i = 1; i <= 99; i++) {
        double t = i / 100.0;
        double y = 25.0 + pow(-50.0 * log(t), 2.0 / 3.0);
        /* |y − x2|^x3 as exp(x3 log|y − x2|) keeps the power differentiable
         * in both arguments. */
        ad_var a = ad_abs(ad_csub(y, x[1]));
        ad_var p = ad_exp(ad_mul(x[2], ad_log(a)));
        r[i - 1] = ad_addc(ad_exp(ad_neg(ad_div(p, x[0]))), -t);
    }
    return mgh_sumsq(99, r);
}
static void mgh_x0_gulf(size_t n, double *x)
{
    (void)n;
    x[0] = 5.0;
    x[1] = 2.5;
    x[2] = 0.15;
}

/* ---- (12) Box three-dimensional, m = 10 --------------------------------------- */
static ad_var mgh_box3d(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[10];
    for (int i = 1; i <= 10; i++) {
        double t = 0.1 * i;
        ad_var a = ad_sub(ad_exp(ad_mulc(x[0], -t)), ad_exp(ad_mulc(x[1], -t)));
        r[i - 1] = ad_sub(a, ad_mulc(x[2], exp(-t) - exp(-10.0 * t)));
    }
    return mgh_sumsq(10, r);
}
static void mgh_x0_box3d(size_t n, double *x)
{
    (void)n;
    x[0] = 0.0;
    x[1] = 10.0;
    x[2] = 20.0;
}

/* ---- (13) Powell singular and (22) extended Powell singular ------------------ */
static ad_var mgh_ext_powell(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var *r = malloc(n * sizeof *r);
    if (r == NULL)
        return ad_const(NAN);
    for (size_t i = 0; i + 3 < n; i += 4) {
        r[i] = ad_add(x[i], ad_mulc(x[i + 1], 10.0));
        r[i + 1] = ad_mulc(ad_sub(x[i + 2], x[i + 3]), sqrt(5.0));
        r[i + 2] = ad_sqr(ad_sub(x[i + 1], ad_mulc(x[i + 2], 2.0)));
        r[i + 3] = ad_mulc(ad_sqr(ad_sub(x[i], x[i + 3])), sqrt(10.0));
    }
    ad_var f = mgh_sumsq(n, r);
    free(r);
    return f;
}
static void mgh_x0_powell(size_t n, double *x)
{
    static const double p[4] = { 3.0, -1.0, 0.0, 1.0 };
    for (size_t i = 0; i < n; i++)
        x[i] = p[i % 4];
}

/* ---- (14) Wood ------------------------------------------------------------------ */
static ad_var mgh_wood(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[6];
    r[0] = ad_mulc(ad_sub(x[1], ad_sqr(x[0])), 10.0);
    r[1] = ad_csub(1.0, x[0]);
    r[2] = ad_mulc(ad_sub(x[3], ad_sqr(x[2])), sqrt(90.0));
    r[3] = ad_csub(1.0, x[2]);
    r[4] = ad_mulc(ad_addc(ad_add(x[1], x[3]), -2.0), sqrt(10.0));
    r[5] = ad_mulc(ad_sub(x[1], x[3]), 1.0 / sqrt(10.0));
    return mgh_sumsq(6, r);
}
static void mgh_x0_wood(size_t n, double *x)
{
    (void)n;
    x[0] = -3.0;
    x[1] = -1.0;
    x[2] = -3.0;
    x[3] = -1.0;
}

/* ---- (15) Kowalik and Osborne -------------------------------------------------- */
static ad_var mgh_kowalik_osborne(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    static const double y[11] = { 0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627,
                                  0.0456, 0.0342, 0.0323, 0.0235, 0.0246 };
    static const double u[11] = { 4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1,
                                  0.0833, 0.0714, 0.0625 };
    ad_var r[11];
    for (int i = 0; i < 11; i++) {
        ad_var num = ad_mul(x[0], ad_addc(ad_mulc(x[1], u[i]), u[i] * u[i]));
        ad_var den = ad_add(ad_addc(ad_mulc(x[2], u[i]), u[i] * u[i]), x[3]);
        r[i] = ad_csub(y[i], ad_div(num, den));
    }
    return mgh_sumsq(11, r);
}
static void mgh_x0_kowalik_osborne(size_t n, double *x)
{
    (void)n;
    x[0] = 0.25;
    x[1] = 0.39;
    x[2] = 0.415;
    x[3] = 0.39;
}

/* ---- (16) Brown and Dennis, m = 20 -------------------------------------------- */
static ad_var mgh_brown_dennis(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[20];
    for (int i = 1; i <= 20; i++) {
        double t = i / 5.0;
        ad_var a = ad_addc(ad_add(x[0], ad_mulc(x[1], t)), -exp(t));
        ad_var b = ad_addc(ad_add(x[2], ad_mulc(x[3], sin(t))), -cos(t));
        r[i - 1] = ad_add(ad_sqr(a), ad_sqr(b));
    }
    return mgh_sumsq(20, r);
}
static void mgh_x0_brown_dennis(size_t n, double *x)
{
    (void)n;
    x[0] = 25.0;
    x[1] = 5.0;
    x[2] = -5.0;
    x[3] = -1.0;
}

/* ---- (17) Osborne 1 ---------------------------------------------------------- */
static ad_var mgh_osborne1(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    static const double y[33] = {
        0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
        0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
        0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406 };
    ad_var r[33];
    for (int i = 0; i < 33; i++) {
        double t = 10.0 * i;
        ad_var m = ad_add(ad_add(x[0], ad_mul(x[1], ad_exp(ad_mulc(x[3], -t)))),
                          ad_mul(x[2], ad_exp(ad_mulc(x[4], -t))));
        r[i] = ad_csub(y[i], m);
    }
    return mgh_sumsq(33, r);
}
static void mgh_x0_osborne1(size_t n, double *x)
{
    (void)n;
    x[0] = 0.5;
    x[1] = 1.5;
    x[2] = -1.0;
    x[3] = 0.01;
    x[4] = 0.02;
}

/* ---- (18) Biggs EXP6, m = 13 ---------------------------------------------------- */
static ad_var mgh_biggs_exp6(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var r[13];
    for (int i = 1; i <= 13; i++) {
        double t = 0.1 * i;
        double y = exp(-t) - 5.0 * exp(-10.0 * t) + 3.0 * exp(-4.0 * t);
        ad_var a = ad_mul(x[2], ad_exp(ad_mulc(x[0], -t)));
        ad_var b = ad_mul(x[3], ad_exp(ad_mulc(x[1], -t)));
        ad_var c = ad_mul(x[5], ad_exp(ad_mulc(x[4], -t)));
        r[i - 1] = ad_addc(ad_add(ad_sub(a, b), c), -y);
    }
    return mgh_sumsq(13, r);
}
static void mgh_x0_biggs_exp6(size_t n, double *x)
{
    static const double p[6] = { 1.0, 2.0, 1.0, 1.0, 1.0, 1.0 };
    for (size_t i = 0; i < n; i++)
        x[i] = p[i];
}

/* ---- (19) Osborne 2, m = 65 ---------------------------------------------------------- */
/* y_i as printed in the paper and in most public copies.  One copy,
 * NLSProblems.jl (src/mgh19.jl), has y_18 = 0.625 for 0.626; checked here:
 * with 0.626, f = 4.0137736e-2 at the known minimizer (1.30998, 0.431554,
 * 0.633662, 0.599431, 0.754183, 0.904289, 1.36581, 4.82370, 2.39868,
 * 4.56887, 5.67534), the paper's 4.01377e-2 (0.625 gives 4.01687e-2), and
 * f(x0) = 2.093420. */
static ad_var mgh_osborne2(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    static const double y[65] = {
        1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746,
        0.679, 0.608, 0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649,
        0.694, 0.644, 0.624, 0.661, 0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395,
        0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429, 0.523, 0.562, 0.607, 0.653,
        0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559, 0.597, 0.625, 0.739,
        0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054 };
    ad_var r[65];
    for (int i = 0; i < 65; i++) {
        double t = i / 10.0;
        /* x1 e^{−t x5} + Σ_{k=2..4} x_k e^{−(t − x_{k+7})² x_{k+4}} */
        ad_var m = ad_mul(x[0], ad_exp(ad_mulc(x[4], -t)));
        for (int k = 1; k <= 3; k++) {
            ad_var d = ad_csub(t, x[k + 7]);
            m = ad_add(m, ad_mul(x[k], ad_exp(ad_neg(ad_mul(ad_sqr(d), x[k + 4])))));
        }
        r[i] = ad_csub(y[i], m);
    }
    return mgh_sumsq(65, r);
}
static void mgh_x0_osborne2(size_t n, double *x)
{
    static const double p[11] = { 1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5 };
    for (size_t i = 0; i < n; i++)
        x[i] = p[i];
}

/* ---- (20) Watson --------------------------------------------------------------- */
static ad_var mgh_watson(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var r[31];
    double c1[31], c2[31];
    for (int i = 1; i <= 29; i++) {
        double t = i / 29.0, p = 1.0;
        for (size_t j = 0; j < n; j++) {
            c2[j] = p;                          /* t^j for x_{j+1}       */
            if (j + 1 < n)
                c1[j] = (double)(j + 1) * p;    /* (j+1) t^j for x_{j+2} */
            p *= t;
        }
        ad_var s1 = ad_dot(n - 1, x + 1, c1);
        ad_var s2 = ad_dot(n, x, c2);
        r[i - 1] = ad_addc(ad_sub(s1, ad_sqr(s2)), -1.0);
    }
    r[29] = x[0];
    r[30] = ad_addc(ad_sub(x[1], ad_sqr(x[0])), -1.0);
    return mgh_sumsq(31, r);
}
static void mgh_x0_zeros(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.0;
}

/* ---- (23) Penalty I ------------------------------------------------------------ */
static ad_var mgh_penalty1(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var *r = malloc((n + 1) * sizeof *r);
    if (r == NULL)
        return ad_const(NAN);
    for (size_t i = 0; i < n; i++)
        r[i] = ad_mulc(ad_addc(x[i], -1.0), sqrt(1e-5));
    r[n] = ad_addc(ad_dotv(n, x, x), -0.25);
    ad_var f = mgh_sumsq(n + 1, r);
    free(r);
    return f;
}
static void mgh_x0_iota(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (double)(i + 1);
}

/* ---- (24) Penalty II ------------------------------------------------------------ */
static ad_var mgh_penalty2(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    const double sa = sqrt(1e-5);
    ad_var *r = malloc(2 * n * sizeof *r);
    double *w = malloc(n * sizeof *w);
    if (r == NULL || w == NULL) {
        free(r);
        free(w);
        return ad_const(NAN);
    }
    r[0] = ad_addc(x[0], -0.2);
    for (size_t i = 2; i <= n; i++) {
        double y = exp(i / 10.0) + exp((i - 1) / 10.0);
        ad_var e = ad_add(ad_exp(ad_mulc(x[i - 1], 0.1)), ad_exp(ad_mulc(x[i - 2], 0.1)));
        r[i - 1] = ad_mulc(ad_addc(e, -y), sa);
    }
    for (size_t i = n + 1; i <= 2 * n - 1; i++)
        r[i - 1] = ad_mulc(ad_addc(ad_exp(ad_mulc(x[i - n], 0.1)), -exp(-0.1)), sa);
    for (size_t j = 0; j < n; j++)
        w[j] = (double)(n - j);
    ad_var *sq = malloc(n * sizeof *sq);
    if (sq == NULL) {
        free(r);
        free(w);
        return ad_const(NAN);
    }
    for (size_t j = 0; j < n; j++)
        sq[j] = ad_sqr(x[j]);
    r[2 * n - 1] = ad_addc(ad_dot(n, sq, w), -1.0);
    ad_var f = mgh_sumsq(2 * n, r);
    free(sq);
    free(r);
    free(w);
    return f;
}
static void mgh_x0_half(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5;
}

/* ---- (25) Variably dimensioned --------------------------------------------------- */
static ad_var mgh_variably_dim(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var *r = malloc((n + 2) * sizeof *r);
    double *w = malloc(n * sizeof *w);
    if (r == NULL || w == NULL) {
        free(r);
        free(w);
        return ad_const(NAN);
    }
    double wsum = 0.0;
    for (size_t i = 0; i < n; i++) {
        r[i] = ad_addc(x[i], -1.0);
        w[i] = (double)(i + 1);
        wsum += w[i];
    }
    ad_var s = ad_addc(ad_dot(n, x, w), -wsum);   /* Σ j (x_j − 1) */
    r[n] = s;
    r[n + 1] = ad_sqr(s);
    ad_var f = mgh_sumsq(n + 2, r);
    free(r);
    free(w);
    return f;
}
static void mgh_x0_variably_dim(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0 - (double)(i + 1) / (double)n;
}

/* ---- (26) Trigonometric ----------------------------------------------------------- */
static ad_var mgh_trigonometric(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var *r = malloc(n * sizeof *r), *c = calloc(n, sizeof *c);
    if (r == NULL || c == NULL) {
        free(r);
        free(c);
        return ad_const(NAN);
    }
    for (size_t j = 0; j < n; j++)
        c[j] = ad_cos(x[j]);
    ad_var sc = ad_sum(n, c);
    for (size_t i = 0; i < n; i++) {
        ad_var t = ad_mulc(ad_csub(1.0, c[i]), (double)(i + 1));
        r[i] = ad_sub(ad_add(ad_csub((double)n, sc), t), ad_sin(x[i]));
    }
    ad_var f = mgh_sumsq(n, r);
    free(r);
    free(c);
    return f;
}
static void mgh_x0_inv_n(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0 / (double)n;
}

/* ---- (27) Brown almost-linear ------------------------------------------------------- */
static ad_var mgh_brown_almost_linear(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var *r = malloc(n * sizeof *r);
    if (r == NULL)
        return ad_const(NAN);
    ad_var s = ad_sum(n, x), p = x[0];
    for (size_t j = 1; j < n; j++)
        p = ad_mul(p, x[j]);
    for (size_t i = 0; i + 1 < n; i++)
        r[i] = ad_addc(ad_add(x[i], s), -(double)(n + 1));
    r[n - 1] = ad_addc(p, -1.0);
    ad_var f = mgh_sumsq(n, r);
    free(r);
    return f;
}

/* ---- (28) Discrete boundary value and (29) discrete integral equation ----------- */
static ad_var mgh_boundary_value(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    const double h = 1.0 / (double)(n + 1);
    ad_var *r = malloc(n * sizeof *r);
    if (r == NULL)
        return ad_const(NAN);
    for (size_t i = 0; i < n; i++) {
        double t = (double)(i + 1) * h;
        ad_var v = ad_mulc(x[i], 2.0);
        if (i > 0)
            v = ad_sub(v, x[i - 1]);
        if (i + 1 < n)
            v = ad_sub(v, x[i + 1]);
        r[i] = ad_add(v, ad_mulc(ad_powi(ad_addc(x[i], t + 1.0), 3), 0.5 * h * h));
    }
    ad_var f = mgh_sumsq(n, r);
    free(r);
    return f;
}
static void mgh_x0_boundary(size_t n, double *x)
{
    const double h = 1.0 / (double)(n + 1);
    for (size_t i = 0; i < n; i++) {
        double t = (double)(i + 1) * h;
        x[i] = t * (t - 1.0);
    }
}

static ad_var mgh_integral_equation(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    const double h = 1.0 / (double)(n + 1);
    ad_var *r = malloc(n * sizeof *r), *c = malloc(n * sizeof *c);
    if (r == NULL || c == NULL) {
        free(r);
        free(c);
        return ad_const(NAN);
    }
    for (size_t j = 0; j < n; j++)
        c[j] = ad_powi(ad_addc(x[j], (double)(j + 1) * h + 1.0), 3);
    /* r_i = x_i + h/2 [(1 − t_i) Σ_{j≤i} t_j c_j + t_i Σ_{j>i} (1 − t_j) c_j],
     * the two sums built as running prefix and suffix sums. */
    ad_var *suf = malloc((n + 1) * sizeof *suf);
    if (suf == NULL) {
        free(r);
        free(c);
        return ad_const(NAN);
    }
    suf[n] = ad_const(0.0);
    for (size_t j = n; j-- > 0;)
        suf[j] = ad_add(suf[j + 1], ad_mulc(c[j], 1.0 - (double)(j + 1) * h));
    ad_var pre = ad_const(0.0);
    for (size_t i = 0; i < n; i++) {
        double t = (double)(i + 1) * h;
        pre = ad_add(pre, ad_mulc(c[i], t));
        ad_var in = ad_add(ad_mulc(pre, 1.0 - t), ad_mulc(suf[i + 1], t));
        r[i] = ad_add(x[i], ad_mulc(in, 0.5 * h));
    }
    ad_var f = mgh_sumsq(n, r);
    free(suf);
    free(r);
    free(c);
    return f;
}

/* ---- (30) Broyden tridiagonal and (31) Broyden banded --------------------------- */
static ad_var mgh_broyden_tridiagonal(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var *r = malloc(n * sizeof *r);
    if (r == NULL)
        return ad_const(NAN);
    for (size_t i = 0; i < n; i++) {
        ad_var v = ad_addc(ad_mul(ad_csub(3.0, ad_mulc(x[i], 2.0)), x[i]), 1.0);
        if (i > 0)
            v = ad_sub(v, x[i - 1]);
        if (i + 1 < n)
            v = ad_sub(v, ad_mulc(x[i + 1], 2.0));
        r[i] = v;
    }
    ad_var f = mgh_sumsq(n, r);
    free(r);
    return f;
}
static void mgh_x0_minus_ones(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = -1.0;
}

static ad_var mgh_broyden_banded(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var *r = malloc(n * sizeof *r);
    if (r == NULL)
        return ad_const(NAN);
    for (size_t i = 0; i < n; i++) {
        ad_var v = ad_addc(ad_mul(x[i], ad_addc(ad_mulc(ad_sqr(x[i]), 5.0), 2.0)), 1.0);
        size_t lo = i >= 5 ? i - 5 : 0, hi = i + 1 < n ? i + 1 : n - 1;
        for (size_t j = lo; j <= hi; j++)
            if (j != i)
                v = ad_sub(v, ad_mul(x[j], ad_addc(x[j], 1.0)));
        r[i] = v;
    }
    ad_var f = mgh_sumsq(n, r);
    free(r);
    return f;
}

/* ---- (32) Linear function, full rank, m = 2n ------------------------------------ */
static ad_var mgh_linear_full_rank(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    const size_t m = 2 * n;
    ad_var *r = malloc(m * sizeof *r);
    if (r == NULL)
        return ad_const(NAN);
    ad_var s = ad_mulc(ad_sum(n, x), 2.0 / (double)m);
    for (size_t i = 0; i < m; i++)
        r[i] = i < n ? ad_addc(ad_sub(x[i], s), -1.0) : ad_addc(ad_neg(s), -1.0);
    ad_var f = mgh_sumsq(m, r);
    free(r);
    return f;
}

/* ---- (33) Linear function, rank 1, m = 2n ----------------------------------------- */
/* r_i = i Σ_j j x_j − 1, i = 1..m: f* = m(m − 1)/(2(2m + 1)) on a whole
 * hyperplane of minimizers. */
static ad_var mgh_linear_rank1(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    const size_t m = 2 * n;
    ad_var *r = malloc(m * sizeof *r);
    double *w = calloc(n, sizeof *w);    /* calloc: no -Wmaybe-uninitialized */
    if (r == NULL || w == NULL) {
        free(r);
        free(w);
        return ad_const(NAN);
    }
    for (size_t j = 0; j < n; j++)
        w[j] = (double)(j + 1);
    ad_var s = ad_dot(n, x, w);
    for (size_t i = 0; i < m; i++)
        r[i] = ad_addc(ad_mulc(s, (double)(i + 1)), -1.0);
    ad_var f = mgh_sumsq(m, r);
    free(r);
    free(w);
    return f;
}

/* ---- (34) Linear function, rank 1 with zero columns and rows, m = 2n -------------- */
/* r_1 = r_m = −1, r_i = (i − 1) Σ_{j=2}^{n−1} j x_j − 1 for 1 < i < m
 * (x_1 and x_n do not enter): f* = (m² + 3m − 6)/(2(2m − 3)). */
static ad_var mgh_linear_rank1_zero(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    const size_t m = 2 * n;
    if (n < 3)
        return ad_const(NAN);
    ad_var *r = malloc(m * sizeof *r);
    double *w = calloc(n, sizeof *w);
    if (r == NULL || w == NULL) {
        free(r);
        free(w);
        return ad_const(NAN);
    }
    for (size_t j = 0; j + 2 < n; j++)
        w[j] = (double)(j + 2);                     /* j = 2..n−1, x_2..x_{n−1} */
    ad_var s = ad_dot(n - 2, x + 1, w);
    r[0] = ad_const(-1.0);
    for (size_t i = 2; i < m; i++)
        r[i - 1] = ad_addc(ad_mulc(s, (double)(i - 1)), -1.0);
    r[m - 1] = ad_const(-1.0);
    ad_var f = mgh_sumsq(m, r);
    free(r);
    free(w);
    return f;
}

/* ---- (35) Chebyquad, m = n -------------------------------------------------------- */
static ad_var mgh_chebyquad(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var r[16], tcur[16];
    if (n > 16)
        return ad_const(NAN);
    for (size_t j = 0; j < n; j++) {
        /* Shifted Chebyshev polynomials T_i(2x − 1) by the three-term
         * recurrence. */
        ad_var y = ad_addc(ad_mulc(x[j], 2.0), -1.0);
        ad_var tm = ad_const(1.0), t = y;
        for (size_t i = 0; i < n; i++) {
            tcur[i] = t;
            ad_var tn = ad_sub(ad_mul(ad_mulc(y, 2.0), t), tm);
            tm = t;
            t = tn;
        }
        for (size_t i = 0; i < n; i++)
            r[i] = j == 0 ? tcur[i] : ad_add(r[i], tcur[i]);
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = i + 1;
        double integral = k % 2 ? 0.0 : -1.0 / ((double)(k * k) - 1.0);
        r[i] = ad_addc(ad_mulc(r[i], 1.0 / (double)n), -integral);
    }
    return mgh_sumsq(n, r);
}
static void mgh_x0_chebyquad(size_t n, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (double)(i + 1) / (double)(n + 1);
}

/* The problem set with the minimum values listed by Moré, Garbow and
 * Hillstrom (a second value where the paper names another local minimum a
 * good method may find). */
static const mgh_problem mgh_problems[] = {
    { "rosenbrock",           2, mgh_ext_rosenbrock,      mgh_x0_rosenbrock,        { 0.0 }, 1 },
    { "freudenstein_roth",    2, mgh_freudenstein_roth,   mgh_x0_freudenstein_roth, { 0.0, 48.9842453 }, 2 },
    { "powell_badly_scaled",  2, mgh_powell_badly,        mgh_x0_powell_badly,      { 0.0 }, 1 },
    { "brown_badly_scaled",   2, mgh_brown_badly,         mgh_x0_ones,              { 0.0 }, 1 },
    { "beale",                2, mgh_beale,               mgh_x0_ones,              { 0.0 }, 1 },
    { "jennrich_sampson",     2, mgh_jennrich_sampson,    mgh_x0_jennrich_sampson,  { 124.362182 }, 1 },
    { "helical_valley",       3, mgh_helical_valley,      mgh_x0_helical_valley,    { 0.0 }, 1 },
    { "bard",                 3, mgh_bard,                mgh_x0_ones,              { 8.21487730e-3, 17.4286 }, 2 },
    { "gaussian",             3, mgh_gaussian,            mgh_x0_gaussian,          { 1.12793277e-8 }, 1 },
    { "meyer",                3, mgh_meyer,               mgh_x0_meyer,             { 87.9458 }, 1 },
    { "gulf",                 3, mgh_gulf,                mgh_x0_gulf,              { 0.0 }, 1 },
    { "box_3d",               3, mgh_box3d,               mgh_x0_box3d,             { 0.0 }, 1 },
    { "powell_singular",      4, mgh_ext_powell,          mgh_x0_powell,            { 0.0 }, 1 },
    { "wood",                 4, mgh_wood,                mgh_x0_wood,              { 0.0 }, 1 },
    { "kowalik_osborne",      4, mgh_kowalik_osborne,     mgh_x0_kowalik_osborne,   { 3.07505604e-4, 1.02734e-3 }, 2 },
    { "brown_dennis",         4, mgh_brown_dennis,        mgh_x0_brown_dennis,      { 85822.2016 }, 1 },
    { "osborne1",             5, mgh_osborne1,            mgh_x0_osborne1,          { 5.46489469e-5 }, 1 },
    { "biggs_exp6",           6, mgh_biggs_exp6,          mgh_x0_biggs_exp6,        { 0.0, 5.65565e-3 }, 2 },
    { "osborne2",            11, mgh_osborne2,            mgh_x0_osborne2,          { 4.01377e-2 }, 1 },
    { "watson6",              6, mgh_watson,              mgh_x0_zeros,             { 2.28767005e-3 }, 1 },
    { "watson9",              9, mgh_watson,              mgh_x0_zeros,             { 1.39976e-6 }, 1 },
    { "ext_rosenbrock10",    10, mgh_ext_rosenbrock,      mgh_x0_rosenbrock,        { 0.0 }, 1 },
    { "ext_powell12",        12, mgh_ext_powell,          mgh_x0_powell,            { 0.0 }, 1 },
    { "penalty1_4",           4, mgh_penalty1,            mgh_x0_iota,              { 2.24997612e-5 }, 1 },
    { "penalty1_10",         10, mgh_penalty1,            mgh_x0_iota,              { 7.08765146e-5 }, 1 },
    { "penalty2_4",           4, mgh_penalty2,            mgh_x0_half,              { 9.37629300e-6 }, 1 },
    { "penalty2_10",         10, mgh_penalty2,            mgh_x0_half,              { 2.93660499e-4 }, 1 },
    { "variably_dim10",      10, mgh_variably_dim,        mgh_x0_variably_dim,      { 0.0 }, 1 },
    { "trigonometric10",     10, mgh_trigonometric,       mgh_x0_inv_n,             { 0.0, 2.79506e-5 }, 2 },
    { "brown_almost_linear10", 10, mgh_brown_almost_linear, mgh_x0_half,            { 0.0, 1.0 }, 2 },
    { "boundary_value10",    10, mgh_boundary_value,      mgh_x0_boundary,          { 0.0 }, 1 },
    { "integral_equation10", 10, mgh_integral_equation,   mgh_x0_boundary,          { 0.0 }, 1 },
    { "broyden_tridiagonal10", 10, mgh_broyden_tridiagonal, mgh_x0_minus_ones,      { 0.0 }, 1 },
    { "broyden_banded10",    10, mgh_broyden_banded,      mgh_x0_minus_ones,        { 0.0 }, 1 },
    { "linear_full_rank5",    5, mgh_linear_full_rank,    mgh_x0_ones,              { 5.0 }, 1 },
    /* m = 20: f* = 380/82 and 454/74 by the paper's formulas. */
    { "linear_rank1_10",     10, mgh_linear_rank1,        mgh_x0_ones,              { 4.63414634 }, 1 },
    { "linear_rank1_zero10", 10, mgh_linear_rank1_zero,   mgh_x0_ones,              { 6.13513514 }, 1 },
    { "chebyquad8",           8, mgh_chebyquad,           mgh_x0_chebyquad,         { 3.51687372e-3 }, 1 },
    { "chebyquad9",           9, mgh_chebyquad,           mgh_x0_chebyquad,         { 0.0 }, 1 },
};

#define MGH_NPROBLEMS (sizeof mgh_problems / sizeof mgh_problems[0])

#endif /* HYPERAD_TESTS_MGH_H */
