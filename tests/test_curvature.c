/*
 * Curvature: ad_hess_extremes on quadratics ½xᵀAx with A = Q diag(λ) Qᵀ for
 * chosen λ (so the extreme eigenvalues are known exactly), dense against
 * Lanczos, and ad_classify_point on points of known kind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"

#define NPTS(a) (sizeof(a) / sizeof((a)[0]))

/* ===================================================================== */
/* Quadratics with known spectrum                                        */
/* ===================================================================== */

typedef struct quad {
    size_t n;
    double *A;      /* n×n, borrowed by the tape */
    double lmin, lmax;
} quad;

/* A = Q diag(lam) Qᵀ, Q a product of 4 random Householder reflections. */
static void quad_init(quad *q, size_t n, const double *lam, uint64_t seed)
{
    tu_rng r = {seed};
    q->n = n;
    q->A = calloc(n * n, sizeof *q->A);
    double *u = malloc(n * sizeof *u), *Au = malloc(n * sizeof *Au);
    assert_non_null(q->A);
    q->lmin = INFINITY;
    q->lmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        q->A[i * n + i] = lam[i];
        if (lam[i] < q->lmin) q->lmin = lam[i];
        if (lam[i] > q->lmax) q->lmax = lam[i];
    }
    for (int h = 0; h < 4; h++) {
        double nn = 0;
        for (size_t i = 0; i < n; i++) {
            u[i] = tu_range(&r, -1, 1);
            nn += u[i] * u[i];
        }
        nn = sqrt(nn);
        for (size_t i = 0; i < n; i++) u[i] /= nn;
        /* A ← (I − 2uuᵀ) A (I − 2uuᵀ) = A − 2u(Au)ᵀ − 2(Au)uᵀ + 4(uᵀAu) uuᵀ */
        double uAu = 0;
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (size_t j = 0; j < n; j++) s += q->A[i * n + j] * u[j];
            Au[i] = s;
            uAu += u[i] * s;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                q->A[i * n + j] += -2 * u[i] * Au[j] - 2 * Au[i] * u[j] + 4 * uAu * u[i] * u[j];
    }
    /* exact symmetry */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            double s = 0.5 * (q->A[i * n + j] + q->A[j * n + i]);
            q->A[i * n + j] = q->A[j * n + i] = s;
        }
    free(u);
    free(Au);
}

static ad_var quad_fn(const ad_var *x, size_t n, void *ctx)
{
    const quad *q = ctx;
    ad_var *y = malloc(n * sizeof *y);
    ad_matvec(n, n, q->A, x, y);
    ad_var f = ad_mulc(ad_dotv(n, x, y), 0.5);
    free(y);
    return f;
}

/* λ: one isolated minimum lo, one isolated maximum hi, the rest in [a, b]. */
static void spectrum(double *lam, size_t n, double lo, double hi, double a, double b, uint64_t seed)
{
    tu_rng r = {seed};
    for (size_t i = 0; i < n; i++) lam[i] = tu_range(&r, a, b);
    lam[n / 3] = lo;
    lam[(2 * n) / 3] = hi;
}

static void check_extremes(ad_tape *t, const quad *q, const double *x, ad_curv_method m,
                           ad_curv_method want_route)
{
    ad_curv_params prm;
    ad_curv_params_init(&prm);
    prm.method = m;
    ad_curvature c;
    memset(&c, 0xff, sizeof c);
    assert_ok(ad_hess_extremes(t, x, &prm, &c));
    if (!tu_close(c.lambda_min, q->lmin, 1e-6, 0) || !tu_close(c.lambda_max, q->lmax, 1e-6, 0)) {
        print_error("n=%zu method %d: lambda_min %.17g (want %.17g), lambda_max %.17g (want %.17g)\n",
                    q->n, (int)m, c.lambda_min, q->lmin, c.lambda_max, q->lmax);
        fail();
    }
    assert_close(c.cond, fabs(q->lmax) / fabs(q->lmin), 2e-6);
    assert_int_equal(c.method, want_route);
    assert_true(c.converged);
    double big = fmax(fabs(q->lmin), fabs(q->lmax));
    assert_true(c.resid_min >= 0 && c.resid_min <= 1e-6 * big);
    assert_true(c.resid_max >= 0 && c.resid_max <= 1e-6 * big);
    if (want_route == AD_CURV_LANCZOS) {
        assert_true(c.iters > 0 && c.iters <= 200 && c.iters <= q->n);
        assert_true(c.nhvp >= c.iters);
    }
}

static void extremes_of_known_spectrum_n50(void **state)
{
    (void)state;
    enum { N = 50 };
    double lam[N], x[N];
    tu_rng r = {3};
    for (size_t i = 0; i < N; i++) x[i] = tu_range(&r, -1, 1);
    /* indefinite and positive definite spectra */
    static const double cases[][4] = {{-3, 50, 1, 10}, {0.5, 100, 1, 20}, {-40, -0.25, -20, -1}};
    for (size_t k = 0; k < NPTS(cases); k++) {
        quad q;
        spectrum(lam, N, cases[k][0], cases[k][1], cases[k][2], cases[k][3], 10 + k);
        quad_init(&q, N, lam, 20 + k);
        ad_tape *t = ad_tape_new();
        assert_ok(ad_record(t, quad_fn, N, x, &q));
        check_extremes(t, &q, x, AD_CURV_AUTO, AD_CURV_DENSE); /* n <= dense_max */
        check_extremes(t, &q, x, AD_CURV_DENSE, AD_CURV_DENSE);
        check_extremes(t, &q, x, AD_CURV_LANCZOS, AD_CURV_LANCZOS);
        /* prm = NULL is AUTO with defaults */
        ad_curvature c;
        assert_ok(ad_hess_extremes(t, x, NULL, &c));
        assert_int_equal(c.method, AD_CURV_DENSE);
        assert_close(c.lambda_min, q.lmin, 1e-6);
        ad_tape_free(t);
        free(q.A);
    }
}

static void extremes_of_known_spectrum_n500(void **state)
{
    (void)state;
    enum { N = 500 };
    static double lam[N], x[N];
    tu_rng r = {4};
    for (size_t i = 0; i < N; i++) x[i] = tu_range(&r, -1, 1);
    static const double cases[][4] = {{-3, 50, 1, 10}, {0.5, 100, 1, 20}};
    for (size_t k = 0; k < NPTS(cases); k++) {
        quad q;
        spectrum(lam, N, cases[k][0], cases[k][1], cases[k][2], cases[k][3], 30 + k);
        quad_init(&q, N, lam, 40 + k);
        ad_tape *t = ad_tape_new();
        assert_ok(ad_record(t, quad_fn, N, x, &q));
        check_extremes(t, &q, x, AD_CURV_AUTO, AD_CURV_LANCZOS); /* n > dense_max */
        check_extremes(t, &q, x, AD_CURV_DENSE, AD_CURV_DENSE);
        check_extremes(t, &q, x, AD_CURV_LANCZOS, AD_CURV_LANCZOS);
        ad_tape_free(t);
        free(q.A);
    }
}

/* dense_max moves the AUTO switch. */
static void dense_max_selects_the_route(void **state)
{
    (void)state;
    enum { N = 30 };
    double lam[N], x[N];
    for (size_t i = 0; i < N; i++) x[i] = 0.1 * (double)i;
    spectrum(lam, N, 0.5, 9, 1, 5, 50);
    quad q;
    quad_init(&q, N, lam, 51);
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, quad_fn, N, x, &q));
    ad_curv_params prm;
    ad_curv_params_init(&prm);
    ad_curvature c;
    prm.dense_max = 10;
    assert_ok(ad_hess_extremes(t, x, &prm, &c));
    assert_int_equal(c.method, AD_CURV_LANCZOS);
    assert_close(c.lambda_min, 0.5, 1e-6);
    assert_close(c.lambda_max, 9.0, 1e-6);
    prm.dense_max = 30;
    assert_ok(ad_hess_extremes(t, x, &prm, &c));
    assert_int_equal(c.method, AD_CURV_DENSE);
    assert_close(c.lambda_min, 0.5, 1e-6);
    assert_close(c.lambda_max, 9.0, 1e-6);
    ad_tape_free(t);
    free(q.A);
}

/* A non-quadratic function: dense and Lanczos agree with each other. */
static ad_var wavy_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var terms[64];
    for (size_t i = 0; i < n; i++) {
        ad_var a = ad_mul(x[i], x[(i + 1) % n]);
        terms[i] = ad_add(ad_sin(a), ad_mulc(ad_sqr(ad_addc(x[i], -0.3 * (double)(i % 5))), 1.0 + 0.1 * (double)i));
    }
    return ad_sum(n, terms);
}

static void dense_and_lanczos_agree(void **state)
{
    (void)state;
    enum { N = 40 };
    tu_rng r = {8};
    double x[N];
    ad_tape *t = ad_tape_new();
    for (int rep = 0; rep < 4; rep++) {
        for (size_t i = 0; i < N; i++) x[i] = tu_range(&r, -1.5, 1.5);
        if (rep == 0) assert_ok(ad_record(t, wavy_fn, N, x, NULL));
        ad_curv_params prm;
        ad_curv_params_init(&prm);
        ad_curvature d, l;
        prm.method = AD_CURV_DENSE;
        assert_ok(ad_hess_extremes(t, x, &prm, &d));
        prm.method = AD_CURV_LANCZOS;
        assert_ok(ad_hess_extremes(t, x, &prm, &l));
        double big = fmax(fabs(d.lambda_min), fabs(d.lambda_max));
        assert_close_s(l.lambda_min, d.lambda_min, 1e-6, big);
        assert_close_s(l.lambda_max, d.lambda_max, 1e-6, big);
        /* and both bracket the Rayleigh quotients of the Hessian's columns */
        double H[N * N];
        assert_ok(ad_hessian(t, x, H));
        for (size_t i = 0; i < N; i++) {
            assert_true(H[i * N + i] >= d.lambda_min - 1e-9 * big);
            assert_true(H[i * N + i] <= d.lambda_max + 1e-9 * big);
        }
    }
    ad_tape_free(t);
}

/* ===================================================================== */
/* Classification                                                        */
/* ===================================================================== */

static ad_var rosen_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_add(ad_mulc(ad_sqr(ad_sub(x[1], ad_sqr(x[0]))), 100.0), ad_sqr(ad_csub(1.0, x[0])));
}
static ad_var saddle_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_sub(ad_sqr(x[0]), ad_sqr(x[1]));
}
static ad_var max_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_neg(ad_add(ad_sqr(x[0]), ad_sqr(x[1])));
}
static ad_var quartic_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_add(ad_powi(x[0], 4), ad_sqr(x[1]));
}

static void classify(ad_fn fn, const double *x, ad_curv_method m, ad_curvature *c)
{
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, fn, 2, x, NULL));
    ad_curv_params prm;
    ad_curv_params_init(&prm);
    prm.method = m;
    memset(c, 0xff, sizeof *c);
    assert_ok(ad_classify_point(t, x, &prm, c));
    ad_tape_free(t);
}

static void classify_finds_kind_of_point(void **state)
{
    (void)state;
    static const ad_curv_method ms[] = {AD_CURV_AUTO, AD_CURV_DENSE, AD_CURV_LANCZOS};
    for (size_t k = 0; k < NPTS(ms); k++) {
        ad_curvature c;
        /* Rosenbrock at (1, 1): H = [[802, −400], [−400, 200]] */
        const double one[2] = {1, 1};
        classify(rosen_fn, one, ms[k], &c);
        double tr = 1002, det = 400, disc = sqrt(tr * tr - 4 * det);
        double l1 = 2 * det / (tr + disc), l2 = (tr + disc) / 2; /* no cancellation */
        assert_int_equal(c.kind, AD_POINT_MINIMUM);
        assert_close(c.lambda_min, l1, 1e-6);
        assert_close(c.lambda_max, l2, 1e-6);
        assert_close(c.cond, l2 / l1, 2e-6);
        assert_true(c.gnorm == 0.0);
        assert_true(c.f == 0.0);

        const double zero[2] = {0, 0};
        classify(saddle_fn, zero, ms[k], &c);
        assert_int_equal(c.kind, AD_POINT_SADDLE);
        assert_close(c.lambda_min, -2.0, 1e-6);
        assert_close(c.lambda_max, 2.0, 1e-6);
        assert_close(c.cond, 1.0, 1e-6);

        classify(max_fn, zero, ms[k], &c);
        assert_int_equal(c.kind, AD_POINT_MAXIMUM);
        assert_close(c.lambda_min, -2.0, 1e-6);
        assert_close(c.lambda_max, -2.0, 1e-6);

        classify(quartic_fn, zero, ms[k], &c);
        assert_int_equal(c.kind, AD_POINT_DEGENERATE);
        assert_true(fabs(c.lambda_min) <= 1e-8 * 2.0);
        assert_close(c.lambda_max, 2.0, 1e-6);
        assert_true(isinf(c.cond) || c.cond > 1e8);

        /* a random point of Rosenbrock is not stationary */
        const double xr[2] = {-1.2, 1.0};
        classify(rosen_fn, xr, ms[k], &c);
        assert_int_equal(c.kind, AD_POINT_NOT_STATIONARY);
        double g0 = -400 * xr[0] * (xr[1] - xr[0] * xr[0]) - 2 * (1 - xr[0]);
        double g1 = 200 * (xr[1] - xr[0] * xr[0]);
        assert_close(c.gnorm, fmax(fabs(g0), fabs(g1)), 1e-14);
        assert_close(c.f, 100 * 0.44 * 0.44 + 2.2 * 2.2, 1e-14);
    }
}

/* gtol decides stationarity: a point with ‖g‖∞ = 1e-4 is stationary for
 * gtol = 1e-3 and not for the default 1e-6. */
static void classify_respects_gtol(void **state)
{
    (void)state;
    const double x[2] = {5e-5, 0.0}; /* f = x² − y²: g = (1e-4, 0) */
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, saddle_fn, 2, x, NULL));
    ad_curv_params prm;
    ad_curv_params_init(&prm);
    ad_curvature c;
    assert_ok(ad_classify_point(t, x, &prm, &c));
    assert_int_equal(c.kind, AD_POINT_NOT_STATIONARY);
    assert_close(c.gnorm, 1e-4, 1e-14);
    prm.gtol = 1e-3;
    assert_ok(ad_classify_point(t, x, &prm, &c));
    assert_int_equal(c.kind, AD_POINT_SADDLE);
    ad_tape_free(t);
}

/* A 500-dimensional stationary point through Lanczos. */
static void classify_large_quadratic_by_lanczos(void **state)
{
    (void)state;
    enum { N = 500 };
    static double lam[N], x[N];
    static const double cases[][4] = {{-3, 50, 1, 10}, {0.5, 100, 1, 20}, {-50, -0.5, -20, -1}};
    static const ad_point_kind want[] = {AD_POINT_SADDLE, AD_POINT_MINIMUM, AD_POINT_MAXIMUM};
    for (size_t k = 0; k < NPTS(cases); k++) {
        quad q;
        spectrum(lam, N, cases[k][0], cases[k][1], cases[k][2], cases[k][3], 60 + k);
        quad_init(&q, N, lam, 70 + k);
        ad_tape *t = ad_tape_new();
        for (size_t i = 0; i < N; i++) x[i] = 0.0;
        assert_ok(ad_record(t, quad_fn, N, x, &q));
        ad_curvature c;
        assert_ok(ad_classify_point(t, x, NULL, &c));
        assert_int_equal(c.method, AD_CURV_LANCZOS);
        assert_int_equal(c.kind, want[k]);
        assert_close(c.lambda_min, q.lmin, 1e-6);
        assert_close(c.lambda_max, q.lmax, 1e-6);
        assert_true(c.gnorm == 0.0);
        ad_tape_free(t);
        free(q.A);
    }
}

/* Edge cases of Lanczos: n = 1, a zero Hessian (the first step breaks
 * down), H = c·I (an invariant subspace after one step), max_iter = 1. */
static ad_var cube_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var t[8];
    for (size_t i = 0; i < n; i++) t[i] = ad_powi(x[i], 3);
    return ad_sum(n, t);
}
static ad_var scaled_sphere_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    return ad_mulc(ad_dotv(n, x, x), 1.5); /* H = 3 I */
}
static ad_var one_d_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_sub(ad_cos(x[0]), ad_mulc(ad_sqr(x[0]), 0.1)); /* f'' = −cos x − 0.2 */
}

static void lanczos_edge_cases(void **state)
{
    (void)state;
    static const ad_curv_method ms[] = {AD_CURV_LANCZOS, AD_CURV_DENSE};
    for (size_t k = 0; k < NPTS(ms); k++) {
        ad_curv_params prm;
        ad_curv_params_init(&prm);
        prm.method = ms[k];
        ad_curvature c;
        ad_tape *t = ad_tape_new();
        /* n = 1 */
        double x1 = 0.7;
        assert_ok(ad_record(t, one_d_fn, 1, &x1, NULL));
        assert_ok(ad_hess_extremes(t, &x1, &prm, &c));
        assert_close(c.lambda_min, -cos(0.7) - 0.2, 1e-12);
        assert_close(c.lambda_max, -cos(0.7) - 0.2, 1e-12);
        assert_true(c.converged);
        /* zero Hessian at 0, stationary: degenerate, both eigenvalues 0 */
        double x5[5] = {0};
        assert_ok(ad_record(t, cube_fn, 5, x5, NULL));
        assert_ok(ad_classify_point(t, x5, &prm, &c));
        assert_true(c.lambda_min == 0.0 && c.lambda_max == 0.0);
        assert_int_equal(c.kind, AD_POINT_DEGENERATE);
        assert_true(isinf(c.cond));
        assert_true(c.converged);
        /* H = 3 I: every start vector is an eigenvector */
        double x6[6] = {0.1, 0.2, 0.3, -0.4, 0.5, -0.6};
        assert_ok(ad_record(t, scaled_sphere_fn, 6, x6, NULL));
        assert_ok(ad_hess_extremes(t, x6, &prm, &c));
        assert_close(c.lambda_min, 3.0, 1e-12);
        assert_close(c.lambda_max, 3.0, 1e-12);
        assert_close(c.cond, 1.0, 1e-12);
        assert_true(c.converged);
        ad_tape_free(t);
    }
    /* max_iter = 1: one HVP, a Rayleigh quotient, not converged in general */
    enum { N = 30 };
    double lam[N], x[N];
    for (size_t i = 0; i < N; i++) { lam[i] = 1.0 + (double)i; x[i] = 0.0; }
    quad q;
    quad_init(&q, N, lam, 81);
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, quad_fn, N, x, &q));
    ad_curv_params prm;
    ad_curv_params_init(&prm);
    prm.method = AD_CURV_LANCZOS;
    prm.max_iter = 1;
    ad_curvature c;
    assert_ok(ad_hess_extremes(t, x, &prm, &c));
    assert_int_equal(c.iters, 1);
    assert_true(c.lambda_min >= 1.0 - 1e-12 && c.lambda_max <= 30.0 + 1e-12);
    assert_false(c.converged);
    /* different seeds, same answer once converged */
    prm.max_iter = 200;
    for (uint64_t seed = 1; seed < 5; seed++) {
        prm.seed = seed;
        assert_ok(ad_hess_extremes(t, x, &prm, &c));
        assert_close(c.lambda_min, 1.0, 1e-6);
        assert_close(c.lambda_max, 30.0, 1e-6);
    }
    ad_tape_free(t);
    free(q.A);
}

static void bad_curv_params_are_einval(void **state)
{
    (void)state;
    double x[2] = {1, 1};
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, rosen_fn, 2, x, NULL));
    ad_curv_params prm;
    ad_curvature c;
    ad_curv_params_init(&prm);
    prm.tol = 0.0;
    assert_status(ad_hess_extremes(t, x, &prm, &c), AD_EINVAL);
    ad_curv_params_init(&prm);
    prm.tol = NAN;
    assert_status(ad_hess_extremes(t, x, &prm, &c), AD_EINVAL);
    ad_curv_params_init(&prm);
    prm.zero_tol = -1.0;
    assert_status(ad_classify_point(t, x, &prm, &c), AD_EINVAL);
    ad_curv_params_init(&prm);
    prm.method = (ad_curv_method)7;
    assert_status(ad_hess_extremes(t, x, &prm, &c), AD_EINVAL);
    /* the tape is fine afterwards */
    ad_curv_params_init(&prm);
    assert_ok(ad_classify_point(t, x, &prm, &c));
    assert_int_equal(c.kind, AD_POINT_MINIMUM);
    ad_tape_free(t);
}

static void point_kind_names(void **state)
{
    (void)state;
    static const struct { ad_point_kind k; const char *word; } names[] = {
        {AD_POINT_NOT_STATIONARY, "stationary"}, {AD_POINT_MINIMUM, "minimum"},
        {AD_POINT_MAXIMUM, "maximum"}, {AD_POINT_SADDLE, "saddle"},
        {AD_POINT_DEGENERATE, "degenerate"}};
    for (size_t i = 0; i < NPTS(names); i++) {
        const char *s = ad_point_kind_str(names[i].k);
        assert_non_null(s);
        if (!strstr(s, names[i].word)) {
            print_error("ad_point_kind_str(%d) = \"%s\", want it to contain \"%s\"\n",
                        (int)names[i].k, s, names[i].word);
            fail();
        }
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, ad_point_kind_str(names[j].k));
    }
    assert_non_null(ad_point_kind_str((ad_point_kind)99));
    assert_non_null(ad_point_kind_str((ad_point_kind)-1));
}

static void curv_params_defaults_are_documented(void **state)
{
    (void)state;
    ad_curv_params prm;
    memset(&prm, 0xab, sizeof prm);
    ad_curv_params_init(&prm);
    assert_int_equal(prm.method, AD_CURV_AUTO);
    assert_true(prm.tol == 1e-8);
    assert_true(prm.gtol == 1e-6);
    assert_true(prm.zero_tol == 1e-8);
    assert_int_equal(prm.dense_max, 200);
    assert_int_equal(prm.seed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(curv_params_defaults_are_documented),
        cmocka_unit_test(extremes_of_known_spectrum_n50),
        cmocka_unit_test(extremes_of_known_spectrum_n500),
        cmocka_unit_test(dense_max_selects_the_route),
        cmocka_unit_test(dense_and_lanczos_agree),
        cmocka_unit_test(classify_finds_kind_of_point),
        cmocka_unit_test(classify_respects_gtol),
        cmocka_unit_test(classify_large_quadratic_by_lanczos),
        cmocka_unit_test(lanczos_edge_cases),
        cmocka_unit_test(bad_curv_params_are_einval),
        cmocka_unit_test(point_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
