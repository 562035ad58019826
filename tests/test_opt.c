/*
 * Tests of the optimizers (src/opt): the Moré–Garbow–Hillstrom problems,
 * written with hyperad ops and solved from their standard starting points by
 * L-BFGS, Newton-CG (trust region and line search) and dense Newton, checked
 * against the paper's minimum values (a listed shortfall is asserted for what
 * it is); counters checked against a counting wrapper (an independent route);
 * stop reasons; an indefinite Hessian at the start; a domain with NaN; bad
 * input; the progress callback; failing callbacks; the line search on the
 * functions of Moré & Thuente (1994).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hyperad.h"
#include "mgh.h"
#include "opt/opt_internal.h"

/* ---- a counting wrapper around any problem --------------------------------- */

typedef struct counted {
    ad_problem inner;
    size_t nfg, ng, nhvp, nhess, nbad;  /* calls, and non-OK/non-finite results */
    int fail;                           /* calls after fail_after calls fail     */
    size_t fail_after;
    ad_status fail_status;
    int fail_hvp_only;
} counted;

static int counted_failing(counted *c)
{
    return c->fail && c->nfg + c->nhvp > c->fail_after;
}

static ad_status counted_fg(void *ctx, const double *x, double *f, double *g)
{
    counted *c = ctx;
    c->nfg++;
    if (g)
        c->ng++;
    if (counted_failing(c) && !c->fail_hvp_only)
        return c->fail_status;
    ad_status st = c->inner.fg(c->inner.ctx, x, f, g);
    if (st != AD_OK || !isfinite(*f))
        c->nbad++;
    return st;
}

static ad_status counted_hvp(void *ctx, const double *x, const double *v, double *hv)
{
    counted *c = ctx;
    c->nhvp++;
    if (counted_failing(c))
        return c->fail_status;
    return c->inner.hvp(c->inner.ctx, x, v, hv);
}

static ad_status counted_hess(void *ctx, const double *x, double *H)
{
    counted *c = ctx;
    c->nhess++;
    return c->inner.hess(c->inner.ctx, x, H);
}

static ad_problem counted_problem(counted *c, ad_problem inner)
{
    memset(c, 0, sizeof *c);
    c->inner = inner;
    ad_problem p = { inner.n, c, counted_fg, inner.hvp ? counted_hvp : NULL,
                     inner.hess ? counted_hess : NULL };
    return p;
}

/* ---- the four optimizers behind one switch ------------------------------------ */

enum { OPT_LBFGS, OPT_NEWTON_TR, OPT_NEWTON_LS, OPT_DENSE, OPT_NKINDS };
static const char *const kind_name[OPT_NKINDS] = { "lbfgs", "newton-tr", "newton-ls", "dense" };

typedef struct run_opts {
    double gtol;
    size_t max_iter, max_eval;
    ad_progress_fn progress;
    void *progress_ctx;
} run_opts;

static ad_status run(int kind, const ad_problem *p, double *x, const run_opts *o,
                     ad_opt_result *res)
{
    if (kind == OPT_LBFGS) {
        ad_lbfgs_params prm;
        ad_lbfgs_params_init(&prm);
        prm.gtol = o->gtol;
        if (o->max_iter)
            prm.max_iter = o->max_iter;
        prm.max_eval = o->max_eval;
        prm.progress = o->progress;
        prm.progress_ctx = o->progress_ctx;
        return ad_lbfgs(p, x, &prm, res);
    }
    ad_newton_params prm;
    ad_newton_params_init(&prm);
    prm.gtol = o->gtol;
    if (o->max_iter)
        prm.max_iter = o->max_iter;
    prm.max_eval = o->max_eval;
    prm.progress = o->progress;
    prm.progress_ctx = o->progress_ctx;
    prm.globalization = kind == OPT_NEWTON_LS ? AD_LINE_SEARCH : AD_TRUST_REGION;
    if (kind == OPT_DENSE)
        return ad_newton_dense(p, x, &prm, res);
    return ad_newton_cg(p, x, &prm, res);
}

/* Counters in the result agree with what the callbacks saw. */
static void check_counters(int kind, const counted *c, const ad_opt_result *r)
{
    assert_int_equal(r->nfev, c->nfg);
    assert_int_equal(r->ngev, c->ng);
    assert_true(r->nfev >= r->iters);
    if (kind == OPT_LBFGS) {
        assert_int_equal(r->nhvp, 0);
        assert_int_equal(c->nhvp, 0);
    } else if (kind == OPT_DENSE) {
        /* A Hessian counts as n HVPs. */
        assert_int_equal(r->nhvp, c->nhvp + c->nhess * c->inner.n);
    } else {
        assert_int_equal(r->nhvp, c->nhvp);
        assert_true(r->cg_iters <= r->nhvp);
    }
}

/* ---- MGH problems against their known minima ------------------------------------ */

static int near_known_minimum(const mgh_problem *pr, double f)
{
    for (int k = 0; k < pr->nmin; k++) {
        double fm = pr->fmin[k];
        /* The paper lists 6 significant digits; zero minima to 1e-9. */
        if (fabs(f - fm) <= 1e-5 * fm + 1e-9)
            return 1;
    }
    return 0;
}

/* The exceptions: an optimizer that does not reach the minimum from the
 * standard start within the set's budget (5000 iterations), with the stop
 * reason it ends with instead.  The set then asserts that reason and that f
 * fell by more than a factor 100 from f(x0), and fails if the optimizer
 * reaches the minimum after all (the entry would be stale). */
typedef struct mgh_shortfall {
    int kind;
    const char *problem;
    ad_stop_reason reason;
} mgh_shortfall;

static const mgh_shortfall mgh_shortfalls[] = {
    /* Meyer (10) is badly scaled: along the path from x0 = (0.02, 4000, 250)
     * H is indefinite (H22 = −8.7e3 and H33 = −1.9e6 at x0; smallest
     * eigenvalue ≈ −5 later on) while H11 ≈ 2.2e12, so the shift of N&W
     * Alg. 3.3 is at least β = 1e-3·max diag(H) ≈ 2.2e9, which swamps the
     * curvature in x2 and x3 (|H22|, |H33| ≤ 1.4e7 there): the steps in x2
     * and x3 shrink to about |g|/2e9 and dense Newton crawls.  From
     * f(x0) = 1.69361e9 it is at f ≈ 4.9e6 after 5000 iterations; it does
     * reach 87.9458 after about 54 000 (dense_newton_crawls_to_meyer_minimum).
     * L-BFGS (≈ 420 iterations) and Newton-CG with trust region (≈ 415) or
     * line search (≈ 810) reach it within the budget. */
    { OPT_DENSE, "meyer", AD_STOP_MAX_ITER },
};

static const mgh_shortfall *mgh_find_shortfall(int kind, const char *problem)
{
    for (size_t i = 0; i < sizeof mgh_shortfalls / sizeof mgh_shortfalls[0]; i++)
        if (mgh_shortfalls[i].kind == kind && strcmp(mgh_shortfalls[i].problem, problem) == 0)
            return &mgh_shortfalls[i];
    return NULL;
}

static void solve_mgh_set(int kind)
{
    int failures = 0;
    for (size_t i = 0; i < MGH_NPROBLEMS; i++) {
        const mgh_problem *pr = &mgh_problems[i];
        const mgh_shortfall *sf = mgh_find_shortfall(kind, pr->name);
        double x[16], f0;
        assert_true(pr->n <= sizeof x / sizeof x[0]);
        pr->x0(pr->n, x);
        ad_tape *t = ad_tape_new();
        assert_non_null(t);
        ad_status st = ad_record(t, pr->f, pr->n, x, NULL);
        assert_true(st == AD_OK || st == AD_EDOMAIN);
        st = ad_eval(t, x, &f0);
        assert_true(st == AD_OK || st == AD_EDOMAIN);
        counted c;
        ad_problem p = counted_problem(&c, ad_problem_tape(t));
        run_opts o = { .gtol = 1e-10, .max_iter = 5000 };
        ad_opt_result r;
        st = run(kind, &p, x, &o, &r);
        int ok;
        if (sf != NULL)
            ok = st == AD_OK && r.reason == sf->reason && r.f < 1e-2 * f0 &&
                 !near_known_minimum(pr, r.f);
        else
            ok = st == AD_OK && near_known_minimum(pr, r.f) &&
                 r.reason != AD_STOP_ERROR && r.reason != AD_STOP_NONE &&
                 r.reason != AD_STOP_CALLBACK;
        if (!ok) {
            failures++;
            print_message("%s on %s%s: status %s, f = %.9g (known %.9g, f(x0) = %.9g), |g| = %.3g, %s, %zu iterations\n",
                          kind_name[kind], pr->name,
                          sf ? " (expected to stop short of the minimum)" : "",
                          ad_strerror(st), r.f, pr->fmin[0], f0,
                          r.gnorm, ad_stop_reason_str(r.reason), r.iters);
        }
        check_counters(kind, &c, &r);
        /* The reported f is f at the returned x. */
        double fx;
        assert_int_equal(ad_eval(t, x, &fx), AD_OK);
        assert_true(fabs(fx - r.f) <= 1e-12 * fmax(1.0, fabs(fx)));
        ad_tape_free(t);
    }
    assert_int_equal(failures, 0);
}

static void mgh_lbfgs_reaches_known_minima(void **state)
{
    (void)state;
    solve_mgh_set(OPT_LBFGS);
}

static void mgh_newton_tr_reaches_known_minima(void **state)
{
    (void)state;
    solve_mgh_set(OPT_NEWTON_TR);
}

static void mgh_newton_ls_reaches_known_minima(void **state)
{
    (void)state;
    solve_mgh_set(OPT_NEWTON_LS);
}

static void mgh_dense_newton_reaches_known_minima(void **state)
{
    (void)state;
    solve_mgh_set(OPT_DENSE);
}

/* ---- f at the standard start of the problems added last ------------------------------ */

/* The data tables and starting points checked at x0 (f* is checked by the
 * four solves above): Meyer's 1.69361e9 as usually quoted; Osborne 2's
 * 2.093420 as computed from the paper's y table (the table that gives the
 * paper's f* = 4.01377e-2 at the known minimizer, see mgh.h); the two rank-1
 * linear functions (m = 20, x0 = 1) against their closed forms. */
static void mgh_added_problems_have_their_start_values(void **state)
{
    (void)state;
    double lin1 = 0.0, lin0 = 2.0;        /* Σ_j j = 55; Σ_{j=2}^{9} j = 44 */
    for (int i = 1; i <= 20; i++)
        lin1 += (55.0 * i - 1.0) * (55.0 * i - 1.0);
    for (int i = 2; i <= 19; i++)
        lin0 += (44.0 * (i - 1) - 1.0) * (44.0 * (i - 1) - 1.0);
    const struct { const char *name; double f0, rtol; } want[] = {
        { "meyer", 1.69361e9, 1e-5 },
        { "osborne2", 2.09342, 1e-5 },
        { "linear_rank1_10", lin1, 1e-14 },
        { "linear_rank1_zero10", lin0, 1e-14 },
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const mgh_problem *pr = NULL;
        for (size_t i = 0; i < MGH_NPROBLEMS; i++)
            if (strcmp(mgh_problems[i].name, want[k].name) == 0)
                pr = &mgh_problems[i];
        assert_non_null(pr);
        double x[16], f;
        pr->x0(pr->n, x);
        ad_tape *t = ad_tape_new();
        assert_int_equal(ad_record(t, pr->f, pr->n, x, NULL), AD_OK);
        assert_int_equal(ad_eval(t, x, &f), AD_OK);
        if (!(fabs(f - want[k].f0) <= want[k].rtol * want[k].f0))
            print_message("%s: f(x0) = %.9g, want %.9g\n", pr->name, f, want[k].f0);
        assert_true(fabs(f - want[k].f0) <= want[k].rtol * want[k].f0);
        ad_tape_free(t);
    }
}

/* ---- dense Newton on Meyer: slow, not lost ------------------------------------------ */

/* The shortfall listed above, seen through: the cause (a negative diagonal
 * entry at x0 beside one of 2e12, so the identity shift must exceed 2e9) and
 * that with a budget of 100 000 iterations dense Newton does reach the
 * paper's 87.9458 (it takes about 54 000). */
static void dense_newton_crawls_to_meyer_minimum(void **state)
{
    (void)state;
    const mgh_problem *pr = NULL;
    for (size_t i = 0; i < MGH_NPROBLEMS; i++)
        if (strcmp(mgh_problems[i].name, "meyer") == 0)
            pr = &mgh_problems[i];
    assert_non_null(pr);
    double x[3], H[9];
    pr->x0(pr->n, x);
    ad_tape *t = ad_tape_new();
    assert_int_equal(ad_record(t, pr->f, pr->n, x, NULL), AD_OK);
    assert_int_equal(ad_hessian(t, x, H), AD_OK);
    assert_true(H[4] < 0.0);
    assert_true(H[0] > 1e12);

    ad_problem p = ad_problem_tape(t);
    run_opts o = { .gtol = 1e-10, .max_iter = 100000 };
    ad_opt_result r;
    assert_int_equal(run(OPT_DENSE, &p, x, &o, &r), AD_OK);
    if (!near_known_minimum(pr, r.f) || r.iters <= 5000)
        print_message("dense on meyer: f = %.9g, %s, %zu iterations\n", r.f,
                      ad_stop_reason_str(r.reason), r.iters);
    assert_true(near_known_minimum(pr, r.f));
    assert_true(r.reason != AD_STOP_MAX_ITER && r.reason != AD_STOP_MAX_EVAL &&
                r.reason != AD_STOP_ERROR);
    /* Beyond the set's budget: why the set lists it as a shortfall. */
    assert_true(r.iters > 5000);
    ad_tape_free(t);
}

/* ---- extended Rosenbrock, n = 1000, through the tape --------------------------- */

static void ext_rosenbrock_1000_converges_to_gtol_1e8(void **state)
{
    (void)state;
    const size_t n = 1000;
    double *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (int kind = OPT_LBFGS; kind <= OPT_NEWTON_LS; kind++) {
        mgh_x0_rosenbrock(n, x);
        ad_tape *t = ad_tape_new();
        assert_int_equal(ad_record(t, mgh_ext_rosenbrock, n, x, NULL), AD_OK);
        ad_problem p = ad_problem_tape(t);
        run_opts o = { .gtol = 1e-8 };
        ad_opt_result r;
        assert_int_equal(run(kind, &p, x, &o, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_GTOL);
        assert_true(r.gnorm <= 1e-8);
        assert_true(r.f < 1e-12);
        for (size_t i = 0; i < n; i++)
            assert_true(fabs(x[i] - 1.0) < 1e-6);
        ad_tape_free(t);
    }
    free(x);
}

/* ---- an indefinite Hessian at the start ------------------------------------------- */

/* f = Σ x_i⁴/4 − x_i²/2 + ½ Σ (x_i − x_{i+1})²·0.1: at x = 0.1 every
 * ∂²f/∂x_i² = 3x_i² − 1 + … < 0, so H is negative definite there; the
 * minima have f = −n/4 (x = ±1, all the same sign). */
static ad_var double_well(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var f = ad_const(0.0);
    for (size_t i = 0; i < n; i++) {
        f = ad_add(f, ad_sub(ad_mulc(ad_powi(x[i], 4), 0.25), ad_mulc(ad_sqr(x[i]), 0.5)));
        if (i + 1 < n)
            f = ad_add(f, ad_mulc(ad_sqr(ad_sub(x[i], x[i + 1])), 0.05));
    }
    return f;
}

static void indefinite_start_reaches_a_minimum_not_the_saddle(void **state)
{
    (void)state;
    const size_t n = 20;
    double x[20];
    for (int kind = 0; kind < OPT_NKINDS; kind++) {
        for (size_t i = 0; i < n; i++)
            x[i] = 0.1 + 0.001 * (double)i;
        ad_tape *t = ad_tape_new();
        assert_int_equal(ad_record(t, double_well, n, x, NULL), AD_OK);
        /* The start really is indefinite: eᵀHe < 0 along e = 1. */
        double e[20], He[20];
        for (size_t i = 0; i < n; i++)
            e[i] = 1.0;
        assert_int_equal(ad_hvp(t, x, e, He), AD_OK);
        double eHe = 0.0;
        for (size_t i = 0; i < n; i++)
            eHe += e[i] * He[i];
        assert_true(eHe < 0.0);

        ad_problem p = ad_problem_tape(t);
        run_opts o = { .gtol = 1e-8 };
        ad_opt_result r;
        assert_int_equal(run(kind, &p, x, &o, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_GTOL);
        if (fabs(r.f + 0.25 * (double)n) > 1e-9)
            print_message("%s: f = %.12g\n", kind_name[kind], r.f);
        assert_true(fabs(r.f + 0.25 * (double)n) <= 1e-9);
        ad_tape_free(t);
    }
}

/* ---- NaN in part of the domain ------------------------------------------------------ */

/* f = Σ (x_i + 1)² − 0.001 log x_i: defined for x > 0 only, minimum near 0
 * where a full Newton or quasi-Newton step from x = 1 lands at x < 0. */
static ad_var barrier(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var f = ad_const(0.0);
    for (size_t i = 0; i < n; i++)
        f = ad_add(f, ad_sub(ad_sqr(ad_addc(x[i], 1.0)), ad_mulc(ad_log(x[i]), 1e-3)));
    return f;
}

/* The same by hand, returning NaN with AD_OK outside the domain (as a user
 * callback that does not check might). */
static ad_status barrier_fg(void *ctx, const double *x, double *f, double *g)
{
    size_t n = *(const size_t *)ctx;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += (x[i] + 1.0) * (x[i] + 1.0) - 1e-3 * log(x[i]);
        if (g)
            g[i] = 2.0 * (x[i] + 1.0) - 1e-3 / x[i];
    }
    *f = s;
    return AD_OK;
}

static ad_status barrier_hvp(void *ctx, const double *x, const double *v, double *hv)
{
    size_t n = *(const size_t *)ctx;
    for (size_t i = 0; i < n; i++)
        hv[i] = (2.0 + 1e-3 / (x[i] * x[i])) * v[i];
    return AD_OK;
}

static void nan_region_is_backed_away_from(void **state)
{
    (void)state;
    size_t n = 4;
    /* 2(x + 1) = 0.001/x */
    const double xs = (-2.0 + sqrt(4.0 + 8e-3)) / 4.0;
    const double fstar = (double)n * ((xs + 1.0) * (xs + 1.0) - 1e-3 * log(xs));
    for (int route = 0; route < 2; route++) {
        for (int kind = 0; kind < OPT_NKINDS; kind++) {
            double x[4] = { 1.0, 1.0, 1.0, 1.0 };
            ad_tape *t = NULL;
            ad_problem inner;
            if (route == 0) {
                t = ad_tape_new();
                assert_int_equal(ad_record(t, barrier, n, x, NULL), AD_OK);
                inner = ad_problem_tape(t);
            } else {
                inner = (ad_problem){ n, &n, barrier_fg, barrier_hvp, NULL };
            }
            counted c;
            ad_problem p = counted_problem(&c, inner);
            run_opts o = { .gtol = 1e-8 };
            ad_opt_result r;
            assert_int_equal(run(kind, &p, x, &o, &r), AD_OK);
            if (!(r.reason == AD_STOP_GTOL && fabs(r.f - fstar) <= 1e-10 * fabs(fstar)))
                print_message("%s route %d: %s f = %.15g want %.15g bad = %zu\n",
                              kind_name[kind], route, ad_stop_reason_str(r.reason),
                              r.f, fstar, c.nbad);
            assert_int_equal(r.reason, AD_STOP_GTOL);
            assert_true(fabs(r.f - fstar) <= 1e-10 * fabs(fstar));
            for (size_t i = 0; i < n; i++)
                assert_true(x[i] > 0.0);
            /* The test is only worth something if the domain was left. */
            if (kind != OPT_LBFGS)
                assert_true(c.nbad > 0);
            check_counters(kind, &c, &r);
            ad_tape_free(t);
        }
    }
}

/* ---- bad input ------------------------------------------------------------------- */

static ad_status quad_fg(void *ctx, const double *x, double *f, double *g)
{
    size_t n = *(const size_t *)ctx;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += 0.5 * (double)(i + 1) * (x[i] - 1.0) * (x[i] - 1.0);
        if (g)
            g[i] = (double)(i + 1) * (x[i] - 1.0);
    }
    *f = s;
    return AD_OK;
}

static ad_status quad_hvp(void *ctx, const double *x, const double *v, double *hv)
{
    (void)x;
    size_t n = *(const size_t *)ctx;
    for (size_t i = 0; i < n; i++)
        hv[i] = (double)(i + 1) * v[i];
    return AD_OK;
}

static void expect_refused(int kind, const ad_problem *p, double *x,
                           const counted *c, ad_status want)
{
    ad_opt_result r;
    run_opts o = { .gtol = 1e-6 };
    r.reason = AD_STOP_GTOL;   /* must be overwritten */
    assert_int_equal(run(kind, p, x, &o, &r), want);
    assert_int_equal(r.reason, AD_STOP_NONE);
    assert_int_equal(r.nfev, 0);
    if (c)
        assert_int_equal(c->nfg + c->nhvp, 0);
}

static void bad_input_is_refused_with_einval(void **state)
{
    (void)state;
    size_t n = 3;
    for (int kind = 0; kind < OPT_NKINDS; kind++) {
        double x[3] = { 0.0, 0.0, 0.0 };
        counted c;
        ad_problem p = counted_problem(&c, (ad_problem){ n, &n, quad_fg, quad_hvp, NULL });

        expect_refused(kind, NULL, x, NULL, AD_EINVAL);
        expect_refused(kind, &p, NULL, &c, AD_EINVAL);
        ad_problem q = p;
        q.n = 0;
        expect_refused(kind, &q, x, &c, AD_EINVAL);
        q = p;
        q.fg = NULL;
        expect_refused(kind, &q, x, &c, AD_EINVAL);
        x[1] = NAN;
        expect_refused(kind, &p, x, &c, AD_EINVAL);
        x[1] = INFINITY;
        expect_refused(kind, &p, x, &c, AD_EINVAL);
        assert_true(isinf(x[1]));   /* x untouched */
        x[1] = 0.0;
        if (kind != OPT_LBFGS) {
            q = p;
            q.hvp = NULL;           /* Newton needs curvature */
            expect_refused(kind, &q, x, &c, AD_EINVAL);
        }
    }
    /* Parameters out of range. */
    double x[3] = { 0.0, 0.0, 0.0 };
    ad_problem p = { n, &n, quad_fg, quad_hvp, NULL };
    ad_opt_result r;
    ad_lbfgs_params lp;
    ad_lbfgs_params_init(&lp);
    lp.m = 0;
    assert_int_equal(ad_lbfgs(&p, x, &lp, &r), AD_EINVAL);
    ad_lbfgs_params_init(&lp);
    lp.c2 = 1e-5;                   /* c2 < c1 */
    assert_int_equal(ad_lbfgs(&p, x, &lp, &r), AD_EINVAL);
    ad_lbfgs_params_init(&lp);
    lp.gtol = NAN;
    assert_int_equal(ad_lbfgs(&p, x, &lp, &r), AD_EINVAL);
    ad_newton_params np;
    ad_newton_params_init(&np);
    np.eta_max = 1.5;
    assert_int_equal(ad_newton_cg(&p, x, &np, &r), AD_EINVAL);
    ad_newton_params_init(&np);
    np.globalization = (ad_globalization)7;
    assert_int_equal(ad_newton_cg(&p, x, &np, &r), AD_EINVAL);
    /* NULL params and result mean defaults and "not wanted". */
    assert_int_equal(ad_lbfgs(&p, x, NULL, NULL), AD_OK);
    assert_true(fabs(x[2] - 1.0) < 1e-5);
}

/* ---- defaults -------------------------------------------------------------------- */

static void params_init_sets_documented_defaults(void **state)
{
    (void)state;
    ad_lbfgs_params lp;
    ad_lbfgs_params_init(&lp);
    assert_int_equal(lp.m, 6);
    assert_int_equal(lp.max_iter, 1000);
    assert_int_equal(lp.max_eval, 0);       /* 0: 10·max_iter */
    assert_true(lp.gtol == 1e-6 && lp.ftol == 0.0 && lp.past == 0);
    assert_true(lp.c1 == 1e-4 && lp.c2 == 0.9);
    assert_int_equal(lp.max_linesearch, 40);
    assert_null(lp.progress);
    ad_newton_params np;
    ad_newton_params_init(&np);
    assert_int_equal(np.max_iter, 200);
    assert_int_equal(np.max_eval, 0);       /* 0: 10·max_iter */
    assert_int_equal(np.max_cg, 0);         /* 0: max(n, 10) capped at 250 */
    assert_true(np.gtol == 1e-6 && np.gtol_rel == 0.0 && np.eta_max == 0.5);
    assert_true(np.radius0 == 0.0);
    assert_int_equal(np.globalization, AD_TRUST_REGION);
    assert_null(np.precond);
    assert_null(np.progress);
}

static void stop_reason_strings_are_distinct_and_never_null(void **state)
{
    (void)state;
    for (int a = AD_STOP_NONE; a <= AD_STOP_ERROR + 1; a++) {
        const char *sa = ad_stop_reason_str((ad_stop_reason)a);
        assert_non_null(sa);
        assert_true(strlen(sa) > 0);
        for (int b = AD_STOP_NONE; b < a; b++)
            assert_string_not_equal(sa, ad_stop_reason_str((ad_stop_reason)b));
    }
}

/* ---- the progress callback ----------------------------------------------------------- */

typedef struct progress_log {
    size_t calls, stop_at, last_iter, last_nfev;
    double last_elapsed;
    int monotone;
} progress_log;

static int log_progress(void *ctx, const ad_opt_progress *p)
{
    progress_log *l = ctx;
    l->calls++;
    if (p->iter != l->last_iter + 1 || p->nfev < l->last_nfev ||
        p->elapsed < l->last_elapsed || !(p->gnorm >= 0.0) || !isfinite(p->f))
        l->monotone = 0;
    l->last_iter = p->iter;
    l->last_nfev = p->nfev;
    l->last_elapsed = p->elapsed;
    return l->stop_at && p->iter >= l->stop_at;
}

static void progress_callback_reports_each_iteration_and_can_stop(void **state)
{
    (void)state;
    size_t n = 10;
    for (int kind = 0; kind < OPT_NKINDS; kind++) {
        double x[10];
        mgh_x0_rosenbrock(n, x);
        ad_tape *t = ad_tape_new();
        assert_int_equal(ad_record(t, mgh_ext_rosenbrock, n, x, NULL), AD_OK);
        ad_problem p = ad_problem_tape(t);

        /* Runs to the end: one call per iteration. */
        progress_log l = { .monotone = 1 };
        run_opts o = { .gtol = 1e-8, .progress = log_progress, .progress_ctx = &l };
        ad_opt_result r;
        assert_int_equal(run(kind, &p, x, &o, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_GTOL);
        assert_int_equal(l.calls, r.iters);
        assert_true(l.monotone);

        /* Asked to stop at iteration 3. */
        mgh_x0_rosenbrock(n, x);
        l = (progress_log){ .monotone = 1, .stop_at = 3 };
        assert_int_equal(run(kind, &p, x, &o, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_CALLBACK);
        assert_int_equal(r.iters, 3);
        assert_int_equal(l.calls, 3);
        ad_tape_free(t);
    }
}

/* ---- failing callbacks --------------------------------------------------------------- */

static void failing_callback_stops_with_its_status_at_the_best_point(void **state)
{
    (void)state;
    size_t n = 10;
    for (int kind = 0; kind < OPT_NKINDS; kind++) {
        for (int hvp_only = 0; hvp_only < (kind == OPT_LBFGS ? 1 : 2); hvp_only++) {
            double x[10], x0[10];
            mgh_x0_rosenbrock(n, x);
            memcpy(x0, x, sizeof x);
            ad_tape *t = ad_tape_new();
            assert_int_equal(ad_record(t, mgh_ext_rosenbrock, n, x, NULL), AD_OK);
            counted c;
            ad_problem inner = ad_problem_tape(t);
            inner.hess = NULL;   /* dense Newton through HVPs, so they can fail */
            ad_problem p = counted_problem(&c, inner);
            c.fail = 1;
            c.fail_after = 12;
            c.fail_status = AD_ECALLBACK;
            c.fail_hvp_only = hvp_only;
            run_opts o = { .gtol = 1e-8 };
            ad_opt_result r;
            assert_int_equal(run(kind, &p, x, &o, &r), AD_ECALLBACK);
            assert_int_equal(r.reason, AD_STOP_ERROR);
            /* x is a point the run evaluated, no worse than the start, and
             * f and ‖g‖ in the result belong to it. */
            double f0, fx, g[10];
            assert_int_equal(ad_eval(t, x0, &f0), AD_OK);
            assert_int_equal(ad_gradient(t, x, &fx, g), AD_OK);
            assert_true(fx <= f0);
            assert_true(fabs(fx - r.f) <= 1e-12 * fmax(1.0, fx));
            double gi = 0.0;
            for (size_t i = 0; i < n; i++)
                gi = fmax(gi, fabs(g[i]));
            assert_true(fabs(gi - r.gnorm) <= 1e-12 * fmax(1.0, gi));
            ad_tape_free(t);
        }
    }
}

static void failure_at_the_start_returns_the_status(void **state)
{
    (void)state;
    size_t n = 3;
    for (int kind = 0; kind < OPT_NKINDS; kind++) {
        double x[3] = { 0.0, 0.0, 0.0 };
        counted c;
        ad_problem p = counted_problem(&c, (ad_problem){ n, &n, quad_fg, quad_hvp, NULL });
        c.fail = 1;             /* the very first call fails */
        c.fail_status = AD_ENOMEM;
        ad_opt_result r;
        run_opts o = { .gtol = 1e-8 };
        assert_int_equal(run(kind, &p, x, &o, &r), AD_ENOMEM);
        assert_int_equal(r.reason, AD_STOP_ERROR);
        assert_int_equal(r.iters, 0);
        assert_int_equal(r.nfev, 1);

        /* NaN at the start: AD_EDOMAIN. */
        double y[3] = { -1.0, 1.0, 1.0 };
        ad_problem q = { n, &n, barrier_fg, barrier_hvp, NULL };
        assert_int_equal(run(kind, &q, y, &o, &r), AD_EDOMAIN);
        assert_int_equal(r.reason, AD_STOP_ERROR);
        assert_true(y[0] == -1.0);
    }
}

/* ---- limits --------------------------------------------------------------------------- */

static void max_iter_and_max_eval_are_honoured(void **state)
{
    (void)state;
    size_t n = 10;
    for (int kind = 0; kind < OPT_NKINDS; kind++) {
        double x[10];
        mgh_x0_rosenbrock(n, x);
        ad_tape *t = ad_tape_new();
        assert_int_equal(ad_record(t, mgh_ext_rosenbrock, n, x, NULL), AD_OK);
        ad_problem p = ad_problem_tape(t);
        ad_opt_result r;
        run_opts o = { .gtol = 1e-12, .max_iter = 5 };
        assert_int_equal(run(kind, &p, x, &o, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_MAX_ITER);
        assert_int_equal(r.iters, 5);

        mgh_x0_rosenbrock(n, x);
        o = (run_opts){ .gtol = 1e-12, .max_iter = 1000, .max_eval = 7 };
        assert_int_equal(run(kind, &p, x, &o, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_MAX_EVAL);
        assert_true(r.nfev <= 7);
        double f0;
        double x0[10];
        mgh_x0_rosenbrock(n, x0);
        assert_int_equal(ad_eval(t, x0, &f0), AD_OK);
        assert_true(r.f < f0);
        ad_tape_free(t);
    }
}

static void ftol_window_stops_lbfgs_on_slow_progress(void **state)
{
    (void)state;
    size_t n = 10;
    double x[10];
    mgh_x0_rosenbrock(n, x);
    ad_tape *t = ad_tape_new();
    assert_int_equal(ad_record(t, mgh_ext_rosenbrock, n, x, NULL), AD_OK);
    ad_problem p = ad_problem_tape(t);
    ad_lbfgs_params prm;
    ad_lbfgs_params_init(&prm);
    prm.gtol = 0.0;
    prm.past = 3;
    prm.ftol = 1e-2;
    ad_opt_result r;
    assert_int_equal(ad_lbfgs(&p, x, &prm, &r), AD_OK);
    assert_int_equal(r.reason, AD_STOP_FTOL);
    assert_true(r.iters >= 3);
    ad_tape_free(t);
}

/* ---- a gradient that lies: no step can be accepted ------------------------------- */

/* f = ½‖x‖² with g = −x: every "descent" direction goes uphill.  The line
 * searches must fail, the trust region must shrink to nothing, and x must
 * stay at the start, the best point seen. */
static ad_status liar_fg(void *ctx, const double *x, double *f, double *g)
{
    size_t n = *(const size_t *)ctx;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += 0.5 * x[i] * x[i];
        if (g)
            g[i] = -x[i];
    }
    *f = s;
    return AD_OK;
}

static ad_status liar_hvp(void *ctx, const double *x, const double *v, double *hv)
{
    (void)x;
    size_t n = *(const size_t *)ctx;
    for (size_t i = 0; i < n; i++)
        hv[i] = v[i];
    return AD_OK;
}

static void wrong_gradient_ends_in_linesearch_or_radius_stop_at_start(void **state)
{
    (void)state;
    size_t n = 5;
    const ad_stop_reason want[OPT_NKINDS] = { AD_STOP_LINESEARCH, AD_STOP_TR_RADIUS,
                                              AD_STOP_LINESEARCH, AD_STOP_LINESEARCH };
    for (int kind = 0; kind < OPT_NKINDS; kind++) {
        double x[5] = { 1.0, -2.0, 3.0, 0.5, 1.5 }, x0[5];
        memcpy(x0, x, sizeof x);
        ad_problem p = { n, &n, liar_fg, liar_hvp, NULL };
        ad_opt_result r;
        run_opts o = { .gtol = 1e-8, .max_iter = 1000, .max_eval = 100000 };
        assert_int_equal(run(kind, &p, x, &o, &r), AD_OK);
        if (r.reason != want[kind])
            print_message("%s: %s after %zu iterations, %zu evaluations\n", kind_name[kind],
                          ad_stop_reason_str(r.reason), r.iters, r.nfev);
        assert_int_equal(r.reason, want[kind]);
        assert_memory_equal(x, x0, sizeof x);
        assert_true(r.f == 0.5 * (1.0 + 4.0 + 9.0 + 0.25 + 2.25));
    }
}

/* ---- preconditioning ----------------------------------------------------------------- */

/* f = Σ d_i (x_i²/2 + x_i⁴/4) with d_i spread over 1..1e4: CG without a
 * preconditioner needs many iterations, with the exact diagonal one. */
typedef struct scaled_ctx { size_t n; double *d; } scaled_ctx;

static ad_status scaled_fg(void *ctx, const double *x, double *f, double *g)
{
    const scaled_ctx *s = ctx;
    double v = 0.0;
    for (size_t i = 0; i < s->n; i++) {
        double xi = x[i];
        v += s->d[i] * (0.5 * xi * xi + 0.25 * xi * xi * xi * xi);
        if (g)
            g[i] = s->d[i] * (xi + xi * xi * xi);
    }
    *f = v;
    return AD_OK;
}

static ad_status scaled_hvp(void *ctx, const double *x, const double *v, double *hv)
{
    const scaled_ctx *s = ctx;
    for (size_t i = 0; i < s->n; i++)
        hv[i] = s->d[i] * (1.0 + 3.0 * x[i] * x[i]) * v[i];
    return AD_OK;
}

static ad_status scaled_precond(void *ctx, const double *x, const double *r, double *z)
{
    const scaled_ctx *s = ctx;
    for (size_t i = 0; i < s->n; i++)
        z[i] = r[i] / (s->d[i] * (1.0 + 3.0 * x[i] * x[i]));
    return AD_OK;
}

static void diagonal_preconditioner_cuts_cg_iterations(void **state)
{
    (void)state;
    const size_t n = 200;
    scaled_ctx s = { n, malloc(n * sizeof(double)) };
    double *x = malloc(n * sizeof(double));
    assert_non_null(s.d);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        s.d[i] = pow(1e4, (double)i / (double)(n - 1));
    ad_problem p = { n, &s, scaled_fg, scaled_hvp, NULL };
    for (int g = 0; g < 2; g++) {
        size_t cg[2];
        for (int pc = 0; pc < 2; pc++) {
            for (size_t i = 0; i < n; i++)
                x[i] = 1.0;
            ad_newton_params prm;
            ad_newton_params_init(&prm);
            prm.gtol = 1e-8;
            prm.globalization = g ? AD_LINE_SEARCH : AD_TRUST_REGION;
            if (pc) {
                prm.precond = scaled_precond;
                prm.precond_ctx = &s;
            }
            ad_opt_result r;
            assert_int_equal(ad_newton_cg(&p, x, &prm, &r), AD_OK);
            assert_int_equal(r.reason, AD_STOP_GTOL);
            assert_true(r.f < 1e-12);
            cg[pc] = r.cg_iters;
        }
        /* Exact diagonal: one CG iteration per Newton step. */
        assert_true(cg[1] * 5 < cg[0]);
    }
    free(s.d);
    free(x);
}

/* ---- Newton parameters: max_cg and gtol_rel ------------------------------------- */

static double norm2(size_t n, const double *v)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += v[i] * v[i];
    return sqrt(s);
}

static void newton_max_cg_and_gtol_rel_are_honoured(void **state)
{
    (void)state;
    size_t n = 10;
    for (int g = 0; g < 2; g++) {
        double x[10], g0[10], gx[10], f;
        mgh_x0_rosenbrock(n, x);
        ad_tape *t = ad_tape_new();
        assert_int_equal(ad_record(t, mgh_ext_rosenbrock, n, x, NULL), AD_OK);
        assert_int_equal(ad_gradient(t, x, &f, g0), AD_OK);
        ad_problem p = ad_problem_tape(t);
        ad_newton_params prm;
        ad_newton_params_init(&prm);
        prm.globalization = g ? AD_LINE_SEARCH : AD_TRUST_REGION;
        prm.max_cg = 1;            /* one HVP per step: a scaled gradient step */
        prm.gtol = 0.0;
        prm.gtol_rel = 1e-3;
        prm.max_iter = 100000;
        prm.max_eval = 1000000;
        ad_opt_result r;
        assert_int_equal(ad_newton_cg(&p, x, &prm, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_GTOL);
        assert_true(r.cg_iters <= r.iters);
        assert_true(r.nhvp <= r.iters);
        assert_int_equal(ad_gradient(t, x, &f, gx), AD_OK);
        assert_true(norm2(n, gx) <= 1e-3 * norm2(n, g0));
        ad_tape_free(t);
    }
}

/* ---- dense Newton: Hessian callback and HVP columns agree -------------------------- */

static void dense_newton_same_path_from_hessian_or_hvps(void **state)
{
    (void)state;
    const mgh_problem *pr = NULL;
    for (size_t i = 0; i < MGH_NPROBLEMS; i++)
        if (strcmp(mgh_problems[i].name, "wood") == 0)
            pr = &mgh_problems[i];
    assert_non_null(pr);
    double x[2][4];
    ad_opt_result r[2];
    for (int route = 0; route < 2; route++) {
        pr->x0(pr->n, x[route]);
        ad_tape *t = ad_tape_new();
        assert_int_equal(ad_record(t, pr->f, pr->n, x[route], NULL), AD_OK);
        ad_problem p = ad_problem_tape(t);
        if (route)
            p.hess = NULL;
        run_opts o = { .gtol = 1e-10 };
        assert_int_equal(run(OPT_DENSE, &p, x[route], &o, &r[route]), AD_OK);
        assert_int_equal(r[route].reason, AD_STOP_GTOL);
        ad_tape_free(t);
    }
    assert_int_equal(r[0].iters, r[1].iters);
    assert_int_equal(r[0].nhvp, r[1].nhvp);
    for (int i = 0; i < 4; i++)
        assert_true(fabs(x[0][i] - x[1][i]) < 1e-8);
}

/* ---- the line search itself ----------------------------------------------------------- */

/* The first three test functions of Moré & Thuente (1994), §5:
 * φ1 = −α/(α² + β), β = 2;  φ2 = (α + β)⁵ − 2(α + β)⁴, β = 0.004;
 * φ3 = φ0(α) + 2(1 − β)/(lπ) sin(lπα/2), φ0 piecewise linear, β = 0.01,
 * l = 39.  Seen as 1-D problems with x0 = 0, d = 1. */
typedef struct mt_fn { int which; } mt_fn;

static ad_status mt_fg(void *ctx, const double *x, double *f, double *g)
{
    const mt_fn *m = ctx;
    double a = x[0], v, d;
    if (m->which == 1) {
        const double b = 2.0;
        v = -a / (a * a + b);
        d = (a * a - b) / ((a * a + b) * (a * a + b));
    } else if (m->which == 2) {
        const double b = 0.004;
        v = pow(a + b, 5) - 2.0 * pow(a + b, 4);
        d = 5.0 * pow(a + b, 4) - 8.0 * pow(a + b, 3);
    } else {
        const double b = 0.01, l = 39.0, pi = 3.141592653589793;
        double p0, dp0;
        if (a <= 1.0 - b) {
            p0 = 1.0 - a;
            dp0 = -1.0;
        } else if (a >= 1.0 + b) {
            p0 = a - 1.0;
            dp0 = 1.0;
        } else {
            p0 = (a - 1.0) * (a - 1.0) / (2.0 * b) + b / 2.0;
            dp0 = (a - 1.0) / b;
        }
        v = p0 + 2.0 * (1.0 - b) / (l * pi) * sin(l * pi * a / 2.0);
        d = dp0 + (1.0 - b) * cos(l * pi * a / 2.0);
    }
    *f = v;
    if (g)
        g[0] = d;
    return AD_OK;
}

static void more_thuente_search_meets_strong_wolfe(void **state)
{
    (void)state;
    /* (μ, η) of the paper's tables for each function. */
    const double c1s[3] = { 1e-3, 0.1, 0.1 }, c2s[3] = { 0.1, 0.1, 0.1 };
    const double starts[4] = { 1e-3, 1e-1, 1e1, 1e3 };
    const size_t nfev[3][4] = { { 6, 3, 1, 4 }, { 12, 8, 8, 11 }, { 12, 12, 10, 13 } };
    const double alpha[3][4] = { { 1.4, 1.4, 10.0, 37.0 }, { 1.6, 1.6, 1.6, 1.6 },
                                 { 1.0, 1.0, 1.0, 1.0 } };
    for (int fn = 1; fn <= 3; fn++) {
        for (int k = 0; k < 4; k++) {
            mt_fn m = { fn };
            ad_problem p = { 1, &m, mt_fg, NULL, NULL };
            opt_eval e;
            opt_eval_init(&e, &p, 0);
            double x0 = 0.0, g0, f0, x, f, g, gbest, d = 1.0;
            mt_fg(&m, &x0, &f0, &g0);
            ls_state s = { .n = 1, .x0 = &x0, .g0 = &g0, .d = &d, .f0 = f0,
                           .dg0 = g0, .gbest = &gbest };
            ls_params prm = { .c1 = c1s[fn - 1], .c2 = c2s[fn - 1], .xtol = 1e-16,
                              .stpmin = 1e-20, .stpmax = 1e20, .max_trials = 40 };
            double stp = starts[k];
            int rc = ls_more_thuente(&e, &s, &prm, &x, &f, &g, &stp);
            assert_int_equal(rc, LS_OK);
            assert_true(f <= f0 + prm.c1 * stp * g0);
            assert_true(fabs(g) <= prm.c2 * fabs(g0));
            assert_true(x == stp);
            /* The evaluations and steps of the paper's Tables 1-3. */
            assert_int_equal(e.nfev, nfev[fn - 1][k]);
            assert_true(fabs(stp - alpha[fn - 1][k]) <= 0.05 * alpha[fn - 1][k]);
        }
    }
}

/* A search that meets NaN beyond some step keeps its trials finite. */
static ad_status wall_fg(void *ctx, const double *x, double *f, double *g)
{
    (void)ctx;
    if (x[0] > 0.5) {
        *f = NAN;
        if (g)
            g[0] = NAN;
        return AD_OK;
    }
    *f = (x[0] - 0.4) * (x[0] - 0.4);
    if (g)
        g[0] = 2.0 * (x[0] - 0.4);
    return AD_OK;
}

static void line_searches_back_away_from_nan(void **state)
{
    (void)state;
    for (int which = 0; which < 2; which++) {
        ad_problem p = { 1, NULL, wall_fg, NULL, NULL };
        opt_eval e;
        opt_eval_init(&e, &p, 0);
        double x0 = 0.0, g0, f0, x, f, g, gbest, d = 1.0;
        wall_fg(NULL, &x0, &f0, &g0);
        ls_state s = { .n = 1, .x0 = &x0, .g0 = &g0, .d = &d, .f0 = f0,
                       .dg0 = g0 * d, .gbest = &gbest };
        ls_params prm = { .c1 = 1e-4, .c2 = 0.9, .xtol = 1e-16,
                          .stpmin = 1e-20, .stpmax = 1e20, .max_trials = 40 };
        double stp = 10.0;
        int rc = which ? ls_backtrack(&e, &s, &prm, &x, &f, &g, &stp)
                       : ls_more_thuente(&e, &s, &prm, &x, &f, &g, &stp);
        assert_int_equal(rc, LS_OK);
        assert_true(isfinite(f) && isfinite(g));
        assert_true(x <= 0.5 && f < f0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(params_init_sets_documented_defaults),
        cmocka_unit_test(stop_reason_strings_are_distinct_and_never_null),
        cmocka_unit_test(bad_input_is_refused_with_einval),
        cmocka_unit_test(more_thuente_search_meets_strong_wolfe),
        cmocka_unit_test(line_searches_back_away_from_nan),
        cmocka_unit_test(mgh_added_problems_have_their_start_values),
        cmocka_unit_test(mgh_lbfgs_reaches_known_minima),
        cmocka_unit_test(mgh_newton_tr_reaches_known_minima),
        cmocka_unit_test(mgh_newton_ls_reaches_known_minima),
        cmocka_unit_test(mgh_dense_newton_reaches_known_minima),
        cmocka_unit_test(dense_newton_crawls_to_meyer_minimum),
        cmocka_unit_test(ext_rosenbrock_1000_converges_to_gtol_1e8),
        cmocka_unit_test(indefinite_start_reaches_a_minimum_not_the_saddle),
        cmocka_unit_test(nan_region_is_backed_away_from),
        cmocka_unit_test(progress_callback_reports_each_iteration_and_can_stop),
        cmocka_unit_test(failing_callback_stops_with_its_status_at_the_best_point),
        cmocka_unit_test(failure_at_the_start_returns_the_status),
        cmocka_unit_test(max_iter_and_max_eval_are_honoured),
        cmocka_unit_test(ftol_window_stops_lbfgs_on_slow_progress),
        cmocka_unit_test(wrong_gradient_ends_in_linesearch_or_radius_stop_at_start),
        cmocka_unit_test(diagonal_preconditioner_cuts_cg_iterations),
        cmocka_unit_test(newton_max_cg_and_gtol_rel_are_honoured),
        cmocka_unit_test(dense_newton_same_path_from_hessian_or_hvps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
