/*
 * Cross-checks of the drivers by independent routes: ad_hvp (forward over
 * reverse) against ad_hess_form (hyper-dual forward), ad_hessian (vector
 * mode) against single HVPs, ad_hvp_batch against k single HVPs, a Taylor
 * remainder test, replay against fresh recordings, the value cache, a 10⁶-op
 * tape against a closed form, random expressions over every op, recorded
 * comparisons and ad_record's re-recording, and the tape's statistics.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"
#include "tape/tape_internal.h"   /* to see that statement groups formed */

#define NPTS(a) (sizeof(a) / sizeof((a)[0]))

/* ===================================================================== */
/* Random expressions                                                    */
/* ===================================================================== */

/* Static vector-node data (borrowed by tapes: must outlive them). */
static const double rx_A[2 * 3] = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5};
static const size_t rx_rowptr[3] = {0, 2, 3};
static const uint32_t rx_colind[3] = {0, 2, 1};
static const double rx_val[3] = {1.25, -0.5, 0.8};

typedef struct rx_ctx {
    uint64_t seed;
    int nnodes;
} rx_ctx;

enum { RX_NOPS = 42 };

/* A bounded squashing map, chosen by the RNG: keeps arguments of exp, sinh,
 * pow… in a few units so no value overflows at any replay point. */
static ad_var rx_squash(tu_rng *r, ad_var a)
{
    switch (tu_index(r, 4)) {
    case 0: return ad_mulc(ad_tanh(a), 2.0);
    case 1: return ad_mulc(ad_sin(a), 1.5);
    case 2: return ad_mulc(ad_erf(a), 1.8);
    default: return ad_addc(ad_mulc(ad_sigmoid(a), 4.0), -2.0);
    }
}

static ad_var rx_pick(tu_rng *r, const ad_var *pool, size_t np)
{
    if (tu_unif(r) < 0.7) {
        size_t w = np < 6 ? np : 6;
        return pool[np - 1 - tu_index(r, w)];
    }
    return pool[tu_index(r, np)];
}

/* One random composition; the structure depends only on the seed, never on
 * the values, so recordings at different points have the same ops.  Every
 * op's argument is kept inside its domain for any real inputs. */
static ad_var rx_fn(const ad_var *x, size_t n, void *vctx)
{
    const rx_ctx *c = vctx;
    tu_rng r = {c->seed};
    ad_var pool[256];
    size_t np = 0;
    for (size_t i = 0; i < n; i++) pool[np++] = x[i];
    for (int k = 0; k < c->nnodes && np < 250; k++) {
        ad_var a = rx_pick(&r, pool, np), b = rx_pick(&r, pool, np), y;
        double cst = tu_range(&r, -2.0, 2.0);
        switch (tu_index(&r, RX_NOPS)) {
        case 0: y = ad_mulc(ad_add(a, b), 0.5); break;
        case 1: y = ad_mulc(ad_sub(a, b), 0.5); break;
        case 2: y = ad_mul(ad_tanh(a), b); break;
        case 3: y = ad_div(a, ad_addc(ad_sqr(b), 1.0)); break;
        case 4: y = ad_cdiv(cst, ad_addc(ad_sqr(a), 0.5)); break;
        case 5: y = ad_pow(ad_addc(ad_sqr(rx_squash(&r, a)), 0.5), ad_mulc(ad_tanh(b), 1.5)); break;
        case 6: {
            static const double pc[] = {-1.5, 0.5, 1.5, 2.5, 3.0};
            y = ad_powc(ad_addc(ad_sqr(rx_squash(&r, a)), 0.25), pc[tu_index(&r, 5)]);
            break;
        }
        case 7: y = ad_powi(rx_squash(&r, a), (int)tu_index(&r, 5)); break;
        case 8: y = ad_powi(ad_addc(ad_sqr(rx_squash(&r, a)), 0.5), -1 - (int)tu_index(&r, 3)); break;
        case 9: y = ad_sqrt(ad_addc(ad_sqr(a), 0.1)); break;
        case 10: y = ad_cbrt(ad_addc(ad_sqr(a), 0.5)); break;
        case 11: y = ad_exp(rx_squash(&r, a)); break;
        case 12: y = ad_expm1(rx_squash(&r, a)); break;
        case 13: y = ad_log(ad_addc(ad_sqr(a), 0.5)); break;
        case 14: y = ad_log1p(ad_sqr(a)); break;
        case 15: y = ad_sin(a); break;
        case 16: y = ad_cos(a); break;
        case 17: y = ad_tan(ad_mulc(ad_tanh(a), 1.3)); break;
        case 18: y = ad_asin(ad_mulc(ad_tanh(a), 0.9)); break;
        case 19: y = ad_acos(ad_mulc(ad_tanh(a), 0.9)); break;
        case 20: y = ad_atan(a); break;
        case 21: y = ad_sinh(rx_squash(&r, a)); break;
        case 22: y = ad_cosh(rx_squash(&r, a)); break;
        case 23: y = ad_tanh(a); break;
        case 24: y = ad_erf(a); break;
        case 25: y = ad_abs(a); break;
        case 26: y = ad_sigmoid(a); break;
        case 27: y = ad_softplus(a); break;
        case 28: y = ad_atan2(a, ad_addc(ad_sqr(b), 0.5)); break;
        case 29: y = ad_hypot(a, ad_addc(ad_sqr(b), 0.3)); break;
        case 30: y = ad_fmax(a, b); break;
        case 31: y = ad_fmin(a, b); break;
        case 32: y = ad_neg(a); break;
        case 33: y = ad_sqr(rx_squash(&r, a)); break;
        case 34: y = ad_addc(a, cst); break;
        case 35: y = ad_mulc(a, cst * 0.6); break;
        case 36: y = ad_csub(cst, a); break;
        case 37: {
            ad_var v[3] = {a, b, rx_pick(&r, pool, np)};
            y = ad_mulc(ad_sum(3, v), 0.4);
            break;
        }
        case 38: {
            ad_var v[3] = {a, b, rx_pick(&r, pool, np)};
            double cf[3] = {cst, 0.3, -0.7};
            y = ad_dot(3, v, cf);
            break;
        }
        case 39: {
            ad_var u[2] = {ad_tanh(a), b}, v[2] = {b, ad_sin(rx_pick(&r, pool, np))};
            y = ad_dotv(2, u, v);
            break;
        }
        case 40: {
            ad_var v[3] = {a, b, rx_pick(&r, pool, np)}, w[2];
            ad_matvec(2, 3, rx_A, v, w);
            y = ad_mul(ad_tanh(w[0]), w[1]);
            break;
        }
        default: {
            ad_var v[3] = {a, b, rx_pick(&r, pool, np)}, w[2];
            ad_csr csr = {rx_rowptr, rx_colind, rx_val};
            ad_spmv(2, 3, &csr, v, w);
            y = ad_add(ad_sin(w[0]), ad_mul(w[1], w[1]));
            break;
        }
        }
        /* every var carries its node's value, bit for bit */
        double vy = ad_value(y);
        assert_memory_equal(&y.val, &vy, sizeof vy);
        pool[np++] = y;
    }
    /* Output: the last three nodes and a little of every input, so that
     * every input has a path to the output. */
    ad_var terms[4] = {pool[np - 1], pool[np - 2], ad_mulc(pool[np - 3], 0.5),
                       ad_mulc(ad_sum(n, x), 0.01)};
    return ad_sum(4, terms);
}

/* Tolerance of comparisons between two AD routes (relative to the scale of
 * the compared quantity).  Fixed smooth functions: 1e-12.  Random
 * compositions can cancel inside (the result is small next to the terms
 * that made it), so there the routes' rounding is compared at 1e-10; a
 * wrong rule or a wrong sweep is off by O(1) either way. */
#define ROUTE_TOL_FIXED 1e-12
#define ROUTE_TOL_RANDOM 1e-10
static double g_route_tol = ROUTE_TOL_FIXED;

/* Scale Σ_ij |v_i| |H_ij| |w_j| of a bilinear form. */
static double form_scale(const double *H, size_t n, const double *v, const double *w)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            s += fabs(v[i]) * fabs(H[i * n + j]) * fabs(w[j]);
    return s;
}

/* All the cross-checks on one tape at one x; tolerances are relative to
 * the scale of the quantity compared. */
static void cross_check(ad_tape *t, const double *x, size_t n, tu_rng *r, const char *what)
{
    const double tol = g_route_tol;
    enum { NMAX = 16 };
    double H[NMAX * NMAX], Hc[NMAX * NMAX], v[NMAX], w[NMAX], hv[NMAX], g[NMAX], f;
    assert_true(n <= NMAX);
    assert_ok(ad_gradient(t, x, &f, g));
    assert_true(isfinite(f));
    assert_ok(ad_hessian(t, x, H));
    /* Second-order results are assembled from first-order quantities of
     * the gradient's size: their rounding is about ε‖g‖ even where H is
     * tiny (a saturated tanh, a dominant linear term), hence the floor. */
    double gfloor = 1e-6 * tu_maxabs(g, n);
    double hmax = tu_maxabs(H, n * n) + gfloor;
    /* symmetry */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_close_ctx(H[i * n + j], H[j * n + i], tol, hmax, "%s: H[%zu][%zu] symmetry\n",
                             what, i, j);
    /* columns of ad_hessian = single HVPs on unit vectors */
    assert_ok(tu_hessian_by_hvp(t, x, n, Hc));
    for (size_t i = 0; i < n * n; i++)
        assert_close_ctx(Hc[i], H[i], tol / 10, hmax, "%s: hvp(e_j) vs hessian, entry %zu\n", what, i);
    /* vᵀ(Hw) by HVP = vᵀHw by hyper-dual, random v, w */
    for (int rep = 0; rep < 3; rep++) {
        for (size_t i = 0; i < n; i++) {
            v[i] = tu_range(r, -1, 1);
            w[i] = tu_range(r, -1, 1);
        }
        double v1 = 0, w1 = 0;
        for (size_t i = 0; i < n; i++) {
            v1 += fabs(v[i]);
            w1 += fabs(w[i]);
        }
        double vhw = NAN, wtv = NAN, s = 0, sc = form_scale(H, n, v, w) + gfloor * v1 * w1 + 1e-300;
        assert_ok(ad_hvp(t, x, w, hv));
        for (size_t i = 0; i < n; i++) s += v[i] * hv[i];
        assert_ok(ad_hess_form(t, x, v, w, &vhw));
        assert_ok(ad_hess_form(t, x, w, v, &wtv));
        assert_close_ctx(vhw, s, tol, sc, "%s: hess_form(v,w) vs v'(Hw)\n", what);
        assert_close_ctx(wtv, vhw, tol, sc, "%s: hess_form symmetry\n", what);
        double vHw = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) vHw += v[i] * H[i * n + j] * w[j];
        assert_close_ctx(vhw, vHw, tol, sc, "%s: hess_form vs v'Hw from ad_hessian\n", what);
    }
}

/* Central differences of f for g, of g for H, at steps h and h/2 with
 * Richardson extrapolation: a loose second opinion.  The allowance is 1e-6
 * of the scale plus the truncation estimate |D(h) − D(h/2)| (which a wrong
 * derivative does not enlarge) plus the rounding of f or g over h.  Random
 * expressions can be steep or oscillate fast (tan near its pole, pow with a
 * large exponent), so h = 1e-4 is not always asymptotic: the check passes if
 * any pair (h, h/2), h = 1e-4·4^−k (1 + |x_j|) for k = 0…7, agrees. */
static int fd_agrees(double dh, double dh2, double ad, double scale, double rnd)
{
    double est = (4 * dh2 - dh) / 3, err = fabs(dh2 - dh) + rnd;
    return fabs(est - ad) <= 1e-6 * scale + err;
}

static void fd_check(ad_tape *t, const double *x0, size_t n, const char *what)
{
    enum { NMAX = 16, NH = 8 };
    double x[NMAX], g[NMAX], H[NMAX * NMAX], f;
    double gp[NMAX], gm[NMAX], fp, fm, dg[2 * NH], dH[2 * NH][NMAX], hs[2 * NH];
    memcpy(x, x0, n * sizeof *x);
    assert_ok(ad_gradient(t, x, &f, g));
    assert_ok(ad_hessian(t, x, H));
    double gmax = tu_maxabs(g, n), hmax = tu_maxabs(H, n * n);
    for (size_t j = 0; j < n; j++) {
        /* steps: hs[2k] = h0·4^−k and hs[2k+1] = hs[2k]/2 */
        double h0 = 1e-4 * (1 + fabs(x0[j]));
        for (int k = 0; k < NH; k++) {
            hs[2 * k] = h0 * ldexp(1.0, -2 * k);
            hs[2 * k + 1] = hs[2 * k] / 2;
        }
        for (int k = 0; k < 2 * NH; k++) {
            x[j] = x0[j] + hs[k];
            assert_ok(ad_gradient(t, x, &fp, gp));
            x[j] = x0[j] - hs[k];
            assert_ok(ad_gradient(t, x, &fm, gm));
            x[j] = x0[j];
            dg[k] = (fp - fm) / (2 * hs[k]);
            for (size_t i = 0; i < n; i++) dH[k][i] = (gp[i] - gm[i]) / (2 * hs[k]);
        }
        int ok = 0;
        for (int k = 0; k < NH && !ok; k++)
            ok = fd_agrees(dg[2 * k], dg[2 * k + 1], g[j], gmax + 1e-3,
                           1e-14 * (1 + fabs(f)) / hs[2 * k + 1]);
        if (!ok) {
            print_error("%s: fd g[%zu]: estimates %.17g … %.17g, ad %.17g\n", what, j, dg[0],
                        dg[2 * NH - 1], g[j]);
            fail();
        }
        for (size_t i = 0; i < n; i++) {
            ok = 0;
            for (int k = 0; k < NH && !ok; k++)
                ok = fd_agrees(dH[2 * k][i], dH[2 * k + 1][i], H[i * n + j], hmax + 1e-3,
                               1e-14 * (1 + gmax) / hs[2 * k + 1]);
            if (!ok) {
                print_error("%s: fd H[%zu][%zu]: estimates %.17g … %.17g, ad %.17g\n", what, i, j,
                            dH[0][i], dH[2 * NH - 1][i], H[i * n + j]);
                fail();
            }
        }
    }
}

/* Replay of t at x against a fresh recording of the same function at x. */
static void replay_matches_fresh(ad_tape *t, ad_fn fn, void *ctx, const double *x, size_t n,
                                 const char *what)
{
    enum { NMAX = 16 };
    double f1, f2, g1[NMAX], g2[NMAX], v[NMAX], hv1[NMAX], hv2[NMAX];
    ad_tape *fresh = ad_tape_new();
    assert_non_null(fresh);
    assert_ok(ad_record(fresh, fn, n, x, ctx));
    assert_ok(ad_gradient(t, x, &f1, g1));
    assert_ok(ad_gradient(fresh, x, &f2, g2));
    for (size_t i = 0; i < n; i++) v[i] = 1.0 / (1.0 + (double)i);
    assert_ok(ad_hvp(t, x, v, hv1));
    assert_ok(ad_hvp(fresh, x, v, hv2));
    double gs = tu_maxabs(g2, n), hs = tu_maxabs(hv2, n);
    /* Not bitwise: the replayed handle may have met x before (cached and
     * preaccumulated routes round differently); a wrong replay is far off. */
    assert_close_ctx(f1, f2, 4 * TU_ULP, 0.0, "%s: replay f vs fresh\n", what);
    for (size_t i = 0; i < n; i++) {
        assert_close_ctx(g1[i], g2[i], g_route_tol / 10, gs, "%s: replay g[%zu] vs fresh\n", what, i);
        assert_close_ctx(hv1[i], hv2[i], g_route_tol / 10, hs, "%s: replay hv[%zu] vs fresh\n", what, i);
    }
    ad_tape_free(fresh);
}

static void random_expressions_pass_cross_checks(void **state)
{
    (void)state;
    g_route_tol = ROUTE_TOL_RANDOM;
    tu_rng r = {20261123};
    ad_tape *t = ad_tape_new();
    assert_non_null(t);
    char what[64];
    for (int e = 0; e < 400; e++) {
        rx_ctx c = {1000 + (uint64_t)e, 5 + (int)tu_index(&r, e < 300 ? 40 : 200)};
        size_t n = 1 + tu_index(&r, e < 300 ? 6 : 16);
        double x[16];
        for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -2, 2);
        snprintf(what, sizeof what, "expr %d (n=%zu)", e, n);
        assert_ok(ad_record(t, rx_fn, n, x, &c));
        assert_int_equal(ad_tape_ninputs(t), n);
        cross_check(t, x, n, &r, what);
        fd_check(t, x, n, what);
        /* replay at three other points */
        for (int p = 0; p < 3; p++) {
            for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -2.5, 2.5);
            snprintf(what, sizeof what, "expr %d (n=%zu) replay %d", e, n, p);
            cross_check(t, x, n, &r, what);
            replay_matches_fresh(t, rx_fn, &c, x, n, what);
        }
        fd_check(t, x, n, what);
    }
    ad_tape_free(t);
}

/* Random expressions with recorded comparisons: every few nodes, a
 * comparison between two pool nodes picks one of two random continuations.
 * The decisions taken at recording are logged in the context, so a test
 * knows whether a replay point is on the same side of every branch. */
typedef struct rxb_ctx {
    uint64_t seed;
    int nnodes;
    uint32_t bits, ncmp;   /* written by the recording */
} rxb_ctx;

static ad_var rxb_fn(const ad_var *x, size_t n, void *vctx)
{
    rxb_ctx *c = vctx;
    tu_rng r = {c->seed};
    ad_var pool[256];
    size_t np = 0;
    c->bits = 0;
    c->ncmp = 0;
    for (size_t i = 0; i < n; i++) pool[np++] = x[i];
    for (int k = 0; k < c->nnodes && np < 250; k++) {
        ad_var a = rx_pick(&r, pool, np), b = rx_pick(&r, pool, np);
        size_t kind = tu_index(&r, 4);
        int taken;
        switch (kind) {
        case 0: taken = ad_lt(a, b); break;
        case 1: taken = ad_le(a, b); break;
        case 2: taken = ad_gt(a, ad_const(0.1)); break;
        default: taken = ad_ge(ad_sin(a), b); break;
        }
        if (c->ncmp < 32 && taken)
            c->bits |= 1u << c->ncmp;
        c->ncmp++;
        /* both continuations draw from the RNG the same way */
        rx_ctx sub = {tu_next(&r), 2};
        rx_ctx alt = {tu_next(&r), 3};
        ad_var y = rx_fn(pool + np - (np < 3 ? np : 3), np < 3 ? np : 3, taken ? &sub : &alt);
        pool[np++] = y;
    }
    ad_var terms[3] = {pool[np - 1], pool[np - 2], ad_mulc(ad_sum(n, x), 0.01)};
    return ad_sum(3, terms);
}

static void random_branches_replay_or_retape_correctly(void **state)
{
    (void)state;
    g_route_tol = ROUTE_TOL_RANDOM;
    tu_rng r = {8080};
    int flips = 0, same = 0;
    for (int e = 0; e < 150; e++) {
        size_t n = 2 + tu_index(&r, 4);
        rxb_ctx c0 = {600 + (uint64_t)e, 2 + (int)tu_index(&r, 5), 0, 0};
        rxb_ctx cr = c0, cf = c0;
        double x0[8], x1[8];
        for (size_t i = 0; i < n; i++) x0[i] = tu_range(&r, -2, 2);
        ad_tape *m = ad_tape_new(), *rt = ad_tape_new(), *fresh = ad_tape_new();
        assert_ok(ad_record_begin(m));
        ad_var in[8];
        for (size_t i = 0; i < n; i++) in[i] = ad_input(x0[i]);
        ad_output(rxb_fn(in, n, &c0));
        assert_ok(ad_record_end(m));
        uint32_t bits0 = c0.bits;
        assert_ok(ad_record(rt, rxb_fn, n, x0, &cr));
        for (int p = 0; p < 6; p++) {
            for (size_t i = 0; i < n; i++) x1[i] = tu_range(&r, -2, 2);
            assert_ok(ad_record(fresh, rxb_fn, n, x1, &cf));
            double ff, gf[8], fm, gm[8], fr, gr[8], hvf[8], hvr[8], v[8];
            for (size_t i = 0; i < n; i++) v[i] = tu_range(&r, -1, 1);
            assert_ok(ad_gradient(fresh, x1, &ff, gf));
            assert_ok(ad_hvp(fresh, x1, v, hvf));
            double gs = tu_maxabs(gf, n), hs = tu_maxabs(hvf, n);
            ad_status sm = ad_gradient(m, x1, &fm, gm);
            if (cf.bits == bits0) {
                same++;
                if (sm != AD_OK) {
                    print_error("expr %d point %d: same branches, manual replay returned %d (%s)\n", e, p,
                                (int)sm, ad_strerror(sm));
                    fail();
                }
                assert_close_ctx(fm, ff, g_route_tol, fabs(ff) + gs, "expr %d point %d: manual f\n", e, p);
                for (size_t i = 0; i < n; i++)
                    assert_close_ctx(gm[i], gf[i], g_route_tol, gs, "expr %d point %d: manual g[%zu]\n", e, p, i);
            } else {
                flips++;
                if (sm != AD_ERETAPE) {
                    print_error("expr %d point %d: a branch flips, manual replay returned %d (%s)\n", e, p,
                                (int)sm, ad_strerror(sm));
                    fail();
                }
            }
            assert_ok(ad_gradient(rt, x1, &fr, gr));
            assert_ok(ad_hvp(rt, x1, v, hvr));
            assert_close_ctx(fr, ff, g_route_tol, fabs(ff) + gs, "expr %d point %d: ad_record f\n", e, p);
            for (size_t i = 0; i < n; i++) {
                assert_close_ctx(gr[i], gf[i], g_route_tol, gs, "expr %d point %d: ad_record g[%zu]\n", e, p, i);
                assert_close_ctx(hvr[i], hvf[i], g_route_tol, hs, "expr %d point %d: ad_record hv[%zu]\n", e, p, i);
            }
        }
        ad_tape_free(m);
        ad_tape_free(rt);
        ad_tape_free(fresh);
    }
    /* the test exercised both cases */
    assert_true(flips > 50 && same > 50);
}

/* Every template of rx_fn is reached (the generator really covers the ops). */
static void random_expressions_cover_every_op(void **state)
{
    (void)state;
    g_route_tol = ROUTE_TOL_RANDOM;
    /* Force each template in turn by a 1-node expression: find a seed whose
     * first choice is template k. */
    ad_tape *t = ad_tape_new();
    int seen[RX_NOPS] = {0};
    for (uint64_t s = 1; s < 5000; s++) {
        tu_rng r = {s};
        (void)rx_pick(&r, (ad_var[3]){{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}, 3);
        (void)rx_pick(&r, (ad_var[3]){{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}, 3);
        (void)tu_range(&r, -2, 2);
        size_t k = tu_index(&r, RX_NOPS);
        if (seen[k])
            continue;
        seen[k] = 1;
        rx_ctx c = {s, 1};
        double x[3] = {0.3, -0.8, 1.1};
        tu_rng q = {s * 7 + 1};
        assert_ok(ad_record(t, rx_fn, 3, x, &c));
        cross_check(t, x, 3, &q, "single op");
        fd_check(t, x, 3, "single op");
    }
    for (int k = 0; k < RX_NOPS; k++)
        assert_true(seen[k]);
    ad_tape_free(t);
}

/* ===================================================================== */
/* A fixed smooth test function                                          */
/* ===================================================================== */

/* f = Σ sin(x_i x_{i+1}) + exp(x_0/3) x_2² + log1p(x_1²) + x_3⁴/4 */
static ad_var smooth_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var acc = ad_const(0.0);
    for (size_t i = 0; i + 1 < n; i++)
        acc = ad_add(acc, ad_sin(ad_mul(x[i], x[i + 1])));
    acc = ad_add(acc, ad_mul(ad_exp(ad_mulc(x[0], 1.0 / 3.0)), ad_sqr(x[2])));
    acc = ad_add(acc, ad_log1p(ad_sqr(x[1])));
    return ad_add(acc, ad_mulc(ad_powi(x[3], 4), 0.25));
}

static void hvp_matches_hess_form(void **state)
{
    (void)state;
    g_route_tol = ROUTE_TOL_FIXED;
    tu_rng r = {1};
    double x[6];
    ad_tape *t = ad_tape_new();
    for (size_t i = 0; i < 6; i++) x[i] = tu_range(&r, -1, 1);
    assert_ok(ad_record(t, smooth_fn, 6, x, NULL));
    for (int p = 0; p < 5; p++) {
        for (size_t i = 0; i < 6; i++) x[i] = tu_range(&r, -2, 2);
        cross_check(t, x, 6, &r, "smooth_fn");
    }
    ad_tape_free(t);
}

static void hessian_matches_closed_form(void **state)
{
    (void)state;
    /* n = 4: f = sin(x0x1) + sin(x1x2) + sin(x2x3) + exp(x0/3)x2² + log1p(x1²) + x3⁴/4 */
    double x[4] = {0.7, -1.3, 0.4, 1.9}, H[16], W[16] = {0}, g[4], f;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, smooth_fn, 4, x, NULL));
    assert_ok(ad_gradient(t, x, &f, g));
    assert_ok(ad_hessian(t, x, H));
    double gw[4] = {0};
    double fw = 0;
    for (int i = 0; i < 3; i++) {
        double p = x[i] * x[i + 1], s = sin(p), c = cos(p);
        fw += s;
        gw[i] += c * x[i + 1];
        gw[i + 1] += c * x[i];
        W[i * 4 + i] += -s * x[i + 1] * x[i + 1];
        W[(i + 1) * 4 + i + 1] += -s * x[i] * x[i];
        W[i * 4 + i + 1] += c - s * p;
        W[(i + 1) * 4 + i] += c - s * p;
    }
    double e = exp(x[0] / 3);
    fw += e * x[2] * x[2];
    gw[0] += e / 3 * x[2] * x[2];
    gw[2] += 2 * e * x[2];
    W[0] += e / 9 * x[2] * x[2];
    W[0 * 4 + 2] += 2 * e / 3 * x[2];
    W[2 * 4 + 0] += 2 * e / 3 * x[2];
    W[2 * 4 + 2] += 2 * e;
    double q = 1 + x[1] * x[1];
    fw += log1p(x[1] * x[1]);
    gw[1] += 2 * x[1] / q;
    W[1 * 4 + 1] += 2 * (1 - x[1] * x[1]) / (q * q);
    fw += pow(x[3], 4) / 4;
    gw[3] += pow(x[3], 3);
    W[3 * 4 + 3] += 3 * x[3] * x[3];
    assert_close(f, fw, 1e-14);
    for (int i = 0; i < 4; i++) assert_close_s(g[i], gw[i], 1e-14, 1.0);
    for (int i = 0; i < 16; i++) assert_close_s(H[i], W[i], 1e-14, 1.0);
    ad_tape_free(t);
}

/* ===================================================================== */
/* Batch HVPs                                                            */
/* ===================================================================== */

static void check_batch(ad_tape *t, const double *x, size_t n, size_t k, tu_rng *r)
{
    double *V = malloc(k * n * sizeof *V), *HV = malloc(k * n * sizeof *HV);
    double *hv = malloc(n * sizeof *hv), *H = malloc(n * n * sizeof *H);
    assert_non_null(V);
    assert_non_null(HV);
    for (size_t i = 0; i < k * n; i++) {
        V[i] = tu_range(r, -1, 1);
        HV[i] = NAN;
    }
    assert_ok(ad_hessian(t, x, H));
    assert_ok(ad_hvp_batch(t, x, k, V, HV));
    for (size_t d = 0; d < k; d++) {
        assert_ok(ad_hvp(t, x, V + d * n, hv));
        for (size_t i = 0; i < n; i++) {
            double sc = 0;
            for (size_t j = 0; j < n; j++) sc += fabs(H[i * n + j] * V[d * n + j]);
            assert_close_ctx(HV[d * n + i], hv[i], 1e-13, sc, "batch k=%zu n=%zu dir %zu entry %zu\n",
                             k, n, d, i);
        }
    }
    free(V); free(HV); free(hv); free(H);
}

static void hvp_batch_matches_single_hvps(void **state)
{
    (void)state;
    tu_rng r = {99};
    static const size_t ks[] = {1, 3, 8, 13, 16, 17};
    ad_tape *t = ad_tape_new();
    /* smooth_fn at n = 6 and a random expression at n = 5, n = 16 */
    double x[16];
    for (size_t i = 0; i < 6; i++) x[i] = tu_range(&r, -1, 1);
    assert_ok(ad_record(t, smooth_fn, 6, x, NULL));
    for (size_t i = 0; i < NPTS(ks); i++) check_batch(t, x, 6, ks[i], &r);
    /* batch at a new x (no cached point) */
    for (size_t i = 0; i < 6; i++) x[i] = tu_range(&r, -1, 1);
    check_batch(t, x, 6, 13, &r);
    rx_ctx c = {77, 40};
    for (size_t i = 0; i < 5; i++) x[i] = tu_range(&r, -1, 1);
    assert_ok(ad_record(t, rx_fn, 5, x, &c));
    for (size_t i = 0; i < NPTS(ks); i++) check_batch(t, x, 5, ks[i], &r);
    rx_ctx c2 = {78, 60};
    for (size_t i = 0; i < 16; i++) x[i] = tu_range(&r, -1, 1);
    assert_ok(ad_record(t, rx_fn, 16, x, &c2));
    for (size_t i = 0; i < NPTS(ks); i++) check_batch(t, x, 16, ks[i], &r);
    ad_tape_free(t);
}

/* ½ xᵀ A x + Σ sin(x_i) through one matvec at n = 100: ad_hessian is
 * A − diag(sin x) (many lane blocks, one vector node) and a 100-direction
 * batch is H V. */
typedef struct qctx { size_t n; const double *A; } qctx;
static ad_var qsin_fn(const ad_var *x, size_t n, void *vctx)
{
    const qctx *q = vctx;
    ad_var *y = malloc(n * sizeof *y), *s = malloc(n * sizeof *s);
    ad_matvec(n, n, q->A, x, y);
    for (size_t i = 0; i < n; i++) s[i] = ad_sin(x[i]);
    ad_var terms[2] = {ad_mulc(ad_dotv(n, x, y), 0.5), ad_sum(n, s)};
    free(y);
    free(s);
    return ad_sum(2, terms);
}

static void hessian_of_dense_quadratic_n100(void **state)
{
    (void)state;
    enum { N = 100 };
    static double A[N * N], H[N * N], V[N * N], HV[N * N];
    double x[N];
    tu_rng r = {123};
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j <= i; j++) A[i * N + j] = A[j * N + i] = tu_range(&r, -1, 1);
    for (size_t i = 0; i < N; i++) x[i] = tu_range(&r, -2, 2);
    qctx q = {N, A};
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, qsin_fn, N, x, &q));
    assert_ok(ad_hessian(t, x, H));
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            assert_close_ctx(H[i * N + j], A[i * N + j] - (i == j ? sin(x[i]) : 0.0), 1e-14, 4.0,
                             "H[%zu][%zu]\n", i, j);
    for (size_t i = 0; i < N * N; i++) V[i] = tu_range(&r, -1, 1);
    assert_ok(ad_hvp_batch(t, x, N, V, HV));
    for (size_t d = 0; d < N; d++)
        for (size_t i = 0; i < N; i++) {
            double w = -sin(x[i]) * V[d * N + i], sc = fabs(w);
            for (size_t j = 0; j < N; j++) {
                w += A[i * N + j] * V[d * N + j];
                sc += fabs(A[i * N + j] * V[d * N + j]);
            }
            assert_close_ctx(HV[d * N + i], w, 1e-14, sc, "HV[%zu][%zu]\n", d, i);
        }
    ad_tape_free(t);
}

/* ===================================================================== */
/* Taylor remainder                                                      */
/* ===================================================================== */

/* |f(x+hd) − f − h gᵀd − ½h² dᵀHd| = O(h³): the ratio over a halving of h
 * is 8.  With the Hessian term dropped the ratio would be 4, so a wrong
 * Hessian fails this test. */
static void taylor_remainder_shrinks_as_h_cubed(void **state)
{
    (void)state;
    tu_rng r = {5};
    ad_tape *t = ad_tape_new();
    for (int fnk = 0; fnk < 2; fnk++) {
        size_t n = fnk == 0 ? 6 : 4;
        rx_ctx c = {4242, 25};
        double x[6], d[6], g[6], hv[6], xh[6], f0, fh;
        for (size_t i = 0; i < n; i++) {
            x[i] = tu_range(&r, -1, 1);
            d[i] = tu_range(&r, -1, 1);
        }
        if (fnk == 0)
            assert_ok(ad_record(t, smooth_fn, n, x, NULL));
        else
            assert_ok(ad_record(t, rx_fn, n, x, &c));
        assert_ok(ad_gradient(t, x, &f0, g));
        assert_ok(ad_hvp(t, x, d, hv));
        double gd = 0, dhd = 0;
        for (size_t i = 0; i < n; i++) {
            gd += g[i] * d[i];
            dhd += d[i] * hv[i];
        }
        double hd = NAN;
        assert_ok(ad_hess_form(t, x, d, d, &hd));
        assert_close_s(hd, dhd, 1e-12, fabs(dhd) + 1e-12);
        double prev = NAN, prev1 = NAN;
        for (int k = 0; k < 7; k++) {
            double h = 0.05 * ldexp(1.0, -k);
            for (size_t i = 0; i < n; i++) xh[i] = x[i] + h * d[i];
            assert_ok(ad_eval(t, xh, &fh));
            double r1 = fabs(fh - f0 - h * gd);
            double r2 = fabs(fh - f0 - h * gd - 0.5 * h * h * dhd);
            if (k > 0) {
                double ratio = prev / r2, ratio1 = prev1 / r1;
                /* the first-order ratio tends to 4 only once h·|third| << |dᵀHd| */
                if (!(ratio > 7.0 && ratio < 9.0) || (k >= 4 && !(ratio1 > 3.5 && ratio1 < 4.5))) {
                    print_error("fn %d h=%g: second-order ratio %g (want ≈8), first-order %g (≈4)\n",
                                fnk, h, ratio, ratio1);
                    fail();
                }
            }
            prev = r2;
            prev1 = r1;
        }
    }
    ad_tape_free(t);
}

/* ===================================================================== */
/* Replay and the value cache                                            */
/* ===================================================================== */

static void replay_at_other_points_matches_fresh_recordings(void **state)
{
    (void)state;
    g_route_tol = ROUTE_TOL_FIXED;
    tu_rng r = {17};
    double x[6];
    ad_tape *t = ad_tape_new();
    for (size_t i = 0; i < 6; i++) x[i] = tu_range(&r, -1, 1);
    assert_ok(ad_record(t, smooth_fn, 6, x, NULL));
    for (int p = 0; p < 10; p++) {
        for (size_t i = 0; i < 6; i++) x[i] = tu_range(&r, -3, 3);
        replay_matches_fresh(t, smooth_fn, NULL, x, 6, "smooth_fn");
    }
    /* manual route too */
    ad_tape *m = ad_tape_new();
    assert_ok(ad_record_begin(m));
    ad_var in[6];
    for (size_t i = 0; i < 6; i++) in[i] = ad_input(0.5);
    ad_output(smooth_fn(in, 6, NULL));
    assert_ok(ad_record_end(m));
    for (int p = 0; p < 10; p++) {
        for (size_t i = 0; i < 6; i++) x[i] = tu_range(&r, -3, 3);
        replay_matches_fresh(m, smooth_fn, NULL, x, 6, "smooth_fn manual");
    }
    ad_tape_free(m);
    ad_tape_free(t);
}

/* Bitwise equality where the route is the same; with preaccumulation on the
 * header promises the second and later HVPs at one x "the same results up
 * to rounding", so there they are compared to a few ulps of the scale. */
static void check_same(const double *a, const double *b, size_t n, int exact, const char *what)
{
    if (exact) {
        if (memcmp(a, b, n * sizeof *a) != 0) {
            for (size_t i = 0; i < n; i++)
                if (memcmp(&a[i], &b[i], sizeof *a) != 0)
                    print_error("%s: entry %zu: %.17g vs %.17g\n", what, i, a[i], b[i]);
            fail();
        }
    } else {
        double sc = tu_maxabs(b, n);
        for (size_t i = 0; i < n; i++)
            assert_close_ctx(a[i], b[i], 8 * TU_ULP, sc, "%s: entry %zu\n", what, i);
    }
}

static void same_x_twice_gives_identical_results(void **state)
{
    (void)state;
    double x[6] = {0.1, -0.4, 0.9, 1.3, -0.2, 0.6}, y[6] = {1, 1, 1, 1, 1, 1};
    double v[6] = {1, -1, 0.5, 0.25, 2, -3};
    double f1, f2, g1[6], g2[6], hv1[6], hv2[6], hv3[6], H1[36], H2[36], q1, q2;
    for (int pre = 0; pre < 2; pre++) {
        ad_tape *t = ad_tape_new();
        assert_ok(ad_tape_set_preaccumulate(t, pre));
        assert_ok(ad_record(t, smooth_fn, 6, x, NULL));
        assert_ok(ad_gradient(t, x, &f1, g1));
        assert_ok(ad_gradient(t, x, &f2, g2));
        assert_true(f1 == f2);
        check_same(g2, g1, 6, 1, "gradient twice");
        assert_ok(ad_hvp(t, x, v, hv1));
        assert_ok(ad_hvp(t, x, v, hv2));
        check_same(hv2, hv1, 6, !pre, "hvp twice");
        /* From the third HVP at one x the statements may take over. */
        assert_ok(ad_hvp(t, x, v, hv3));
        check_same(hv3, hv2, 6, !pre, "hvp a third time");
        assert_ok(ad_hvp(t, x, v, hv2));
        check_same(hv2, hv3, 6, 1, "hvp a fourth time (same route as the third)");
        /* another point in between, then back */
        assert_ok(ad_gradient(t, y, &f2, g2));
        assert_ok(ad_hvp(t, x, v, hv3));
        check_same(hv3, hv1, 6, 1, "hvp at x after y (uncached route) vs first hvp");
        assert_ok(ad_eval(t, x, &f2));
        assert_true(f1 == f2);
        assert_ok(ad_gradient(t, x, &f2, g2));
        check_same(g2, g1, 6, 1, "gradient at x again");
        assert_ok(ad_hessian(t, x, H1));
        assert_ok(ad_hessian(t, x, H2));
        check_same(H2, H1, 36, !pre, "hessian twice");
        assert_ok(ad_hess_form(t, x, v, x, &q1));
        assert_ok(ad_hess_form(t, x, v, x, &q2));
        assert_true(q1 == q2);
        /* the first HVP after an eval (values cached, adjoints not) */
        assert_ok(ad_eval(t, y, &f2));
        assert_ok(ad_eval(t, x, &f2));
        assert_ok(ad_hvp(t, x, v, hv3));
        check_same(hv3, hv1, 6, 1, "first hvp after eval vs first hvp");
        ad_tape_free(t);
    }
}

/* f = (x0 − 1)² + x0 x1: a 1-ulp change of x0 changes the gradient. */
static ad_var ulp_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_add(ad_sqr(ad_addc(x[0], -1.0)), ad_mul(x[0], x[1]));
}

static void x_changed_in_place_is_detected(void **state)
{
    (void)state;
    double x[2] = {1.0, 2.0}, v[2] = {1.0, 0.0}, f, g[2], hv[2], q;
    ad_tape *t = ad_tape_new(), *ref = ad_tape_new();
    assert_ok(ad_record(t, ulp_fn, 2, x, NULL));
    assert_ok(ad_gradient(t, x, &f, g));
    assert_true(g[0] == 2.0);
    /* caller changes x in the same array by one ulp */
    x[0] = nextafter(1.0, 2.0);
    double fr, gr[2];
    assert_ok(ad_record(ref, ulp_fn, 2, x, NULL));
    assert_ok(ad_gradient(ref, x, &fr, gr));
    assert_true(gr[0] != 2.0);
    assert_ok(ad_gradient(t, x, &f, g));
    assert_true(f == fr);
    assert_memory_equal(g, gr, sizeof g);
    /* in place again, larger, before an HVP and an eval */
    x[0] = 3.0;
    x[1] = -1.0;
    assert_ok(ad_hvp(t, x, v, hv));
    assert_true(hv[0] == 2.0 && hv[1] == 1.0);
    assert_ok(ad_eval(t, x, &f));
    assert_true(f == 4.0 - 3.0);
    x[1] = 5.0;
    assert_ok(ad_eval(t, x, &f));
    assert_true(f == 4.0 + 15.0);
    x[0] = 0.0;
    assert_ok(ad_gradient(t, x, &f, g));
    assert_true(f == 1.0 && g[0] == -2.0 + 5.0 && g[1] == 0.0);
    double w[2] = {0.0, 1.0};
    assert_ok(ad_hess_form(t, x, v, w, &q));
    assert_true(q == 1.0);
    x[0] = 1.0; /* a value seen before, through the same array */
    assert_ok(ad_gradient(t, x, &f, g));
    assert_true(f == 5.0 && g[0] == 5.0 && g[1] == 1.0);
    ad_tape_free(ref);
    ad_tape_free(t);
}

/* ===================================================================== */
/* A 10⁶-op tape                                                         */
/* ===================================================================== */

static ad_var chained_rosenbrock(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var acc = ad_const(0.0);
    for (size_t i = 0; i + 1 < n; i++) {
        ad_var a = ad_mulc(ad_sqr(ad_sub(x[i + 1], ad_sqr(x[i]))), 100.0);
        ad_var b = ad_sqr(ad_csub(1.0, x[i]));
        acc = ad_add(acc, ad_add(a, b));
    }
    return acc;
}

static void million_op_tape_gradient_matches_closed_form(void **state)
{
    (void)state;
    const size_t n = 125000;
    double *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g), *v = malloc(n * sizeof *v);
    double *hv = malloc(n * sizeof *hv);
    assert_non_null(x); assert_non_null(g); assert_non_null(v); assert_non_null(hv);
    tu_rng r = {3};
    for (size_t i = 0; i < n; i++) {
        x[i] = tu_range(&r, -1.2, 1.2);
        v[i] = tu_range(&r, -1, 1);
    }
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, chained_rosenbrock, n, x, NULL));
    assert_true(ad_tape_nops(t) >= 1000000);
    assert_int_equal(ad_tape_ninputs(t), n);
    /* replay at another point */
    for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -1.2, 1.2);
    double f;
    assert_ok(ad_gradient(t, x, &f, g));
    long double fw = 0, fa = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        double d = x[i + 1] - x[i] * x[i], e = 1 - x[i];
        fw += 100.0L * d * d + (long double)e * e;
        fa += 100.0L * d * d + (long double)e * e;
    }
    assert_close_s(f, (double)fw, 1e-12, (double)fa);
    for (size_t i = 0; i < n; i++) {
        double gw = 0, sc = 0;
        if (i + 1 < n) {
            double d = x[i + 1] - x[i] * x[i];
            gw += -400 * x[i] * d - 2 * (1 - x[i]);
            sc += fabs(400 * x[i] * d) + fabs(2 * (1 - x[i]));
        }
        if (i > 0) {
            double d = x[i] - x[i - 1] * x[i - 1];
            gw += 200 * d;
            sc += fabs(200 * d);
        }
        assert_close_ctx(g[i], gw, 1e-14, sc, "rosenbrock g[%zu]\n", i);
    }
    /* HVP against the tridiagonal Hessian */
    assert_ok(ad_hvp(t, x, v, hv));
    for (size_t i = 0; i < n; i++) {
        double hw = 0, sc = 0;
        if (i + 1 < n) {
            double hii = 1200 * x[i] * x[i] - 400 * x[i + 1] + 2, hij = -400 * x[i];
            hw += hii * v[i] + hij * v[i + 1];
            sc += (1200 * x[i] * x[i] + 400 * fabs(x[i + 1]) + 2) * fabs(v[i]) + fabs(hij * v[i + 1]);
        }
        if (i > 0) {
            hw += -400 * x[i - 1] * v[i - 1] + 200 * v[i];
            sc += fabs(400 * x[i - 1] * v[i - 1]) + 200 * fabs(v[i]);
        }
        assert_close_ctx(hv[i], hw, 1e-14, sc, "rosenbrock hv[%zu]\n", i);
    }
    ad_tape_free(t);
    free(x); free(g); free(v); free(hv);
}

/* ===================================================================== */
/* Recorded comparisons                                                  */
/* ===================================================================== */

typedef int (*cmp_fn)(ad_var, ad_var);
typedef struct cmp_ctx { cmp_fn cmp; } cmp_ctx;

/* cmp(x0, x1) ? x0² x1 : sin(x0) + x1 */
static ad_var branch_fn(const ad_var *x, size_t n, void *vctx)
{
    (void)n;
    const cmp_ctx *c = vctx;
    if (c->cmp(x[0], x[1]))
        return ad_mul(ad_sqr(x[0]), x[1]);
    return ad_add(ad_sin(x[0]), x[1]);
}

static int cmp_truth(cmp_fn cmp, double a, double b)
{
    if (cmp == ad_lt) return a < b;
    if (cmp == ad_le) return a <= b;
    if (cmp == ad_gt) return a > b;
    return a >= b;
}

static void branch_ref(int taken, const double *x, double *f, double *g)
{
    if (taken) {
        *f = x[0] * x[0] * x[1];
        g[0] = 2 * x[0] * x[1];
        g[1] = x[0] * x[0];
    } else {
        *f = sin(x[0]) + x[1];
        g[0] = cos(x[0]);
        g[1] = 1;
    }
}

static void comparison_flip_returns_eretape_on_manual_tape(void **state)
{
    (void)state;
    static const cmp_fn cmps[] = {ad_lt, ad_le, ad_gt, ad_ge};
    static const char *names[] = {"lt", "le", "gt", "ge"};
    /* points: a<b, a>b, a==b */
    static const double pts[][2] = {{0.5, 1.5}, {1.5, 0.5}, {1.0, 1.0}, {-2.0, 3.0}, {2.0, -3.0}};
    ad_tape *t = ad_tape_new();
    for (size_t c = 0; c < 4; c++) {
        cmp_ctx ctx = {cmps[c]};
        for (size_t rp = 0; rp < NPTS(pts); rp++) {
            int rec_side = cmp_truth(cmps[c], pts[rp][0], pts[rp][1]);
            assert_ok(ad_record_begin(t));
            ad_var in[2];
            in[0] = ad_input(pts[rp][0]); /* inputs in order: not in one initializer */
            in[1] = ad_input(pts[rp][1]);
            ad_output(branch_fn(in, 2, &ctx));
            assert_ok(ad_record_end(t));
            for (size_t p = 0; p < NPTS(pts); p++) {
                const double *x = pts[p];
                int side = cmp_truth(cmps[c], x[0], x[1]);
                double f, g[2], fw, gw[2], hv[2], H[4], q, v[2] = {1, 0};
                if (side == rec_side) {
                    branch_ref(side, x, &fw, gw);
                    assert_ok(ad_gradient(t, x, &f, g));
                    assert_close(f, fw, 4 * TU_ULP);
                    assert_close(g[0], gw[0], 4 * TU_ULP);
                    assert_close(g[1], gw[1], 4 * TU_ULP);
                } else {
                    if (ad_eval(t, x, &f) != AD_ERETAPE) {
                        print_error("%s recorded at (%g,%g), replayed at (%g,%g): want AD_ERETAPE\n",
                                    names[c], pts[rp][0], pts[rp][1], x[0], x[1]);
                        fail();
                    }
                    assert_true(ad_tape_errmsg(t)[0] != '\0');
                    assert_status(ad_gradient(t, x, &f, g), AD_ERETAPE);
                    assert_status(ad_hvp(t, x, v, hv), AD_ERETAPE);
                    assert_status(ad_hessian(t, x, H), AD_ERETAPE);
                    assert_status(ad_hess_form(t, x, v, v, &q), AD_ERETAPE);
                    /* still good at the recording point */
                    branch_ref(rec_side, pts[rp], &fw, gw);
                    assert_ok(ad_gradient(t, pts[rp], &f, g));
                    assert_close(f, fw, 4 * TU_ULP);
                    assert_close(g[0], gw[0], 4 * TU_ULP);
                }
            }
        }
    }
    ad_tape_free(t);
}

static void comparison_flip_rerecords_ad_record_tape(void **state)
{
    (void)state;
    static const cmp_fn cmps[] = {ad_lt, ad_le, ad_gt, ad_ge};
    static const double pts[][2] = {{0.5, 1.5}, {1.5, 0.5}, {1.0, 1.0}, {-2.0, 3.0}, {2.0, -3.0},
                                    {0.5, 1.5}};
    ad_tape *t = ad_tape_new();
    for (size_t c = 0; c < 4; c++) {
        cmp_ctx ctx = {cmps[c]};
        assert_ok(ad_record(t, branch_fn, 2, pts[0], &ctx));
        for (int rep = 0; rep < 2; rep++)
            for (size_t p = 0; p < NPTS(pts); p++) {
                const double *x = pts[p];
                int side = cmp_truth(cmps[c], x[0], x[1]);
                double f, g[2], fw, gw[2], hv[2], H[4], q, v[2] = {0.5, -1.0};
                branch_ref(side, x, &fw, gw);
                /* each driver meets the flip itself on alternate reps */
                if (rep == 0) {
                    assert_ok(ad_gradient(t, x, &f, g));
                    assert_close(f, fw, 4 * TU_ULP);
                    assert_close(g[0], gw[0], 4 * TU_ULP);
                    assert_close(g[1], gw[1], 4 * TU_ULP);
                } else {
                    assert_ok(ad_hessian(t, x, H));
                    assert_ok(ad_hvp(t, x, v, hv));
                    assert_ok(ad_hess_form(t, x, v, v, &q));
                    double Hw[4] = {side ? 2 * x[1] : -sin(x[0]), side ? 2 * x[0] : 0,
                                    side ? 2 * x[0] : 0, 0};
                    for (int i = 0; i < 4; i++) assert_close_s(H[i], Hw[i], 4 * TU_ULP, 1.0);
                    assert_close_s(hv[0], Hw[0] * v[0] + Hw[1] * v[1], 8 * TU_ULP, 4.0);
                    assert_close_s(q, v[0] * (Hw[0] * v[0] + Hw[1] * v[1]) + v[1] * Hw[2] * v[0],
                                   8 * TU_ULP, 4.0);
                }
            }
        /* a flip met first by a batch and by eval */
        double x1[2] = {5.0, -5.0}, x2[2] = {-5.0, 5.0}, f, V[4] = {1, 0, 0, 1}, HV[4];
        assert_ok(ad_eval(t, x1, &f));
        double fw, gw[2];
        branch_ref(cmp_truth(cmps[c], 5, -5), x1, &fw, gw);
        assert_close(f, fw, 4 * TU_ULP);
        assert_ok(ad_hvp_batch(t, x2, 2, V, HV));
        int side = cmp_truth(cmps[c], -5, 5);
        assert_close_s(HV[0], side ? 2 * x2[1] : -sin(x2[0]), 4 * TU_ULP, 1.0);
        assert_close_s(HV[1], side ? 2 * x2[0] : 0.0, 4 * TU_ULP, 1.0);
    }
    ad_tape_free(t);
}

/* x0 < x1 ? x0 x1 : Σ_k sin(x0 + c_k x1), c_k = k/K: a flip to the second
 * branch re-records a much larger tape than the buffers sized so far. */
enum { BIG_K = 3000 };
static ad_var grow_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    if (ad_lt(x[0], x[1]))
        return ad_mul(x[0], x[1]);
    static ad_var terms[BIG_K];
    for (int k = 0; k < BIG_K; k++)
        terms[k] = ad_sin(ad_add(x[0], ad_mulc(x[1], (double)k / BIG_K)));
    return ad_sum(BIG_K, terms);
}

static void grow_ref(const double *x, double *f, double *g, double *H)
{
    if (x[0] < x[1]) {
        *f = x[0] * x[1];
        g[0] = x[1]; g[1] = x[0];
        H[0] = 0; H[1] = H[2] = 1; H[3] = 0;
        return;
    }
    long double sf = 0, g0 = 0, g1 = 0, h00 = 0, h01 = 0, h11 = 0;
    for (int k = 0; k < BIG_K; k++) {
        long double c = (double)k / BIG_K, a = x[0] + (double)(c * x[1]);
        long double s = sinl(a), co = cosl(a);
        sf += s; g0 += co; g1 += c * co;
        h00 -= s; h01 -= c * s; h11 -= c * c * s;
    }
    *f = (double)sf; g[0] = (double)g0; g[1] = (double)g1;
    H[0] = (double)h00; H[1] = H[2] = (double)h01; H[3] = (double)h11;
}

/* Every driver, met first by a flip to a branch whose recording is larger
 * than the one its buffers were sized for. */
static void rerecord_to_larger_branch_in_every_driver(void **state)
{
    (void)state;
    const double small[2] = {0.5, 1.5}, big[2] = {1.25, -0.75};
    double f, g[2], H[4], fw, gw[2], Hw[4], hv[2], q, HV[4];
    const double e0[2] = {1, 0}, e1[2] = {0, 1}, V[4] = {1, 0, 0, 1};
    grow_ref(big, &fw, gw, Hw);
    const double sc = BIG_K; /* sums of BIG_K terms of size <= 1 */
    for (int drv = 2; drv < 3; drv++) {
        ad_tape *t = ad_tape_new();
        assert_ok(ad_record(t, grow_fn, 2, small, NULL));
        /* size every buffer for the small recording first */
        assert_ok(ad_hessian(t, small, H));
        assert_ok(ad_hess_form(t, small, e0, e1, &q));
        assert_true(q == 1.0);
        switch (drv) {
        case 0:
            assert_ok(ad_gradient(t, big, &f, g));
            assert_close_s(f, fw, 1e-13, sc);
            assert_close_s(g[0], gw[0], 1e-13, sc);
            assert_close_s(g[1], gw[1], 1e-13, sc);
            break;
        case 1:
            assert_ok(ad_hvp(t, big, e1, hv));
            assert_close_s(hv[0], Hw[1], 1e-13, sc);
            assert_close_s(hv[1], Hw[3], 1e-13, sc);
            break;
        case 2:
            assert_ok(ad_hvp_batch(t, big, 2, V, HV));
            for (int i = 0; i < 4; i++) assert_close_s(HV[i], Hw[i], 1e-13, sc);
            break;
        case 3:
            assert_ok(ad_hess_form(t, big, e0, e1, &q));
            assert_close_s(q, Hw[1], 1e-13, sc);
            break;
        default:
            assert_ok(ad_hessian(t, big, H));
            for (int i = 0; i < 4; i++) assert_close_s(H[i], Hw[i], 1e-13, sc);
            break;
        }
        /* and everything agrees afterwards on the big recording */
        assert_ok(ad_hessian(t, big, H));
        for (int i = 0; i < 4; i++) assert_close_s(H[i], Hw[i], 1e-13, sc);
        assert_ok(ad_hess_form(t, big, e0, e1, &q));
        assert_close_s(q, Hw[1], 1e-13, sc);
        assert_ok(ad_hvp_batch(t, big, 2, V, HV));
        for (int i = 0; i < 4; i++) assert_close_s(HV[i], Hw[i], 1e-13, sc);
        ad_tape_free(t);
    }
}

/* The optimizer is exact: optimized and raw recordings of the same random
 * expressions agree on f, g, H, HVPs and hess_form at several points. */
static void optimizer_matches_raw_tape(void **state)
{
    (void)state;
    g_route_tol = ROUTE_TOL_RANDOM;
    tu_rng r = {31337};
    ad_tape *raw = ad_tape_new(), *opt = ad_tape_new();
    assert_ok(ad_tape_set_optimize(raw, 0));
    assert_ok(ad_tape_set_optimize(opt, 1));
    assert_status(ad_tape_set_optimize(NULL, 1), AD_EINVAL);
    char what[64];
    for (int e = 0; e < 60; e++) {
        rx_ctx c = {5000 + (uint64_t)e, 10 + (int)tu_index(&r, 50)};
        size_t n = 1 + tu_index(&r, 8);
        double x[16], fr, fo, gr[16], go[16], Hr[256], Ho[256], v[16], w[16], hvr[16], hvo[16], qr, qo;
        for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -2, 2);
        assert_ok(ad_record(raw, rx_fn, n, x, &c));
        assert_ok(ad_record(opt, rx_fn, n, x, &c));
        size_t nraw = ad_tape_nops(opt);
        assert_ok(ad_tape_optimize(opt));
        assert_true(ad_tape_nops(opt) <= nraw);
        for (int p = 0; p < 3; p++) {
            if (p)
                for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -2.5, 2.5);
            for (size_t i = 0; i < n; i++) {
                v[i] = tu_range(&r, -1, 1);
                w[i] = tu_range(&r, -1, 1);
            }
            snprintf(what, sizeof what, "expr %d point %d", e, p);
            assert_ok(ad_gradient(raw, x, &fr, gr));
            assert_ok(ad_gradient(opt, x, &fo, go));
            assert_ok(ad_hessian(raw, x, Hr));
            assert_ok(ad_hessian(opt, x, Ho));
            assert_ok(ad_hvp(raw, x, v, hvr));
            assert_ok(ad_hvp(opt, x, v, hvo));
            assert_ok(ad_hess_form(raw, x, v, w, &qr));
            assert_ok(ad_hess_form(opt, x, v, w, &qo));
            double gs = tu_maxabs(gr, n), hs = tu_maxabs(Hr, n * n);
            assert_close_ctx(fo, fr, g_route_tol, fabs(fr) + gs, "%s: f optimized vs raw\n", what);
            for (size_t i = 0; i < n; i++) {
                assert_close_ctx(go[i], gr[i], g_route_tol, gs, "%s: g[%zu] optimized vs raw\n", what, i);
                assert_close_ctx(hvo[i], hvr[i], g_route_tol, form_scale(Hr, n, v, v) + hs,
                                 "%s: hv[%zu] optimized vs raw\n", what, i);
            }
            for (size_t i = 0; i < n * n; i++)
                assert_close_ctx(Ho[i], Hr[i], g_route_tol, hs, "%s: H[%zu] optimized vs raw\n", what, i);
            assert_close_ctx(qo, qr, g_route_tol, form_scale(Hr, n, v, w) + 1e-300,
                             "%s: hess_form optimized vs raw\n", what);
        }
        /* the raw tape passes the cross-checks on its own */
        cross_check(raw, x, n, &r, what);
    }
    ad_tape_free(raw);
    ad_tape_free(opt);
}

/* Preaccumulated statements (second and later HVPs at one x, Hessians and
 * batches) against the plain sweeps of a handle with them switched off. */
static void preaccumulation_matches_plain_sweeps(void **state)
{
    (void)state;
    g_route_tol = ROUTE_TOL_RANDOM;
    tu_rng r = {4711};
    ad_tape *pre = ad_tape_new(), *plain = ad_tape_new();
    assert_ok(ad_tape_set_preaccumulate(pre, 1));
    assert_ok(ad_tape_set_preaccumulate(plain, 0));
    assert_status(ad_tape_set_preaccumulate(NULL, 1), AD_EINVAL);
    char what[64];
    for (int e = 0; e < 60; e++) {
        rx_ctx c = {9000 + (uint64_t)e, 10 + (int)tu_index(&r, 50)};
        size_t n = 1 + tu_index(&r, 12);
        double x[16], Hp[256], Hq[256], V[13 * 16], HVp[13 * 16], HVq[13 * 16], hvp_[16], hvq[16];
        for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -2, 2);
        assert_ok(ad_record(pre, rx_fn, n, x, &c));
        assert_ok(ad_record(plain, rx_fn, n, x, &c));
        for (int p = 0; p < 2; p++) {
            if (p)
                for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -2.5, 2.5);
            snprintf(what, sizeof what, "expr %d point %d", e, p);
            assert_ok(ad_hessian(plain, x, Hq));
            double hs = tu_maxabs(Hq, n * n);
            /* many HVPs at the first x: the adaptive statement policy switches on */
            for (int rep = 0; rep < (p ? 4 : 24); rep++) {
                for (size_t i = 0; i < n; i++) V[i] = tu_range(&r, -1, 1);
                assert_ok(ad_hvp(pre, x, V, hvp_));
                assert_ok(ad_hvp(plain, x, V, hvq));
                for (size_t i = 0; i < n; i++)
                    assert_close_ctx(hvp_[i], hvq[i], g_route_tol, form_scale(Hq, n, V, V) + hs,
                                     "%s rep %d: hv[%zu] preaccumulated vs plain\n", what, rep, i);
            }
            assert_ok(ad_hessian(pre, x, Hp));
            for (size_t i = 0; i < n * n; i++)
                assert_close_ctx(Hp[i], Hq[i], g_route_tol, hs, "%s: H[%zu] preaccumulated vs plain\n", what, i);
            for (size_t i = 0; i < 13 * n; i++) V[i] = tu_range(&r, -1, 1);
            assert_ok(ad_hvp_batch(pre, x, 13, V, HVp));
            assert_ok(ad_hvp_batch(plain, x, 13, V, HVq));
            for (size_t i = 0; i < 13 * n; i++)
                assert_close_ctx(HVp[i], HVq[i], g_route_tol, hs * n, "%s: batch[%zu] preaccumulated vs plain\n",
                                 what, i);
        }
    }
    ad_tape_free(pre);
    ad_tape_free(plain);
}

/* Carried adjoints (reverse sweeps keep a single-use argument's adjoint in
 * a register for the next node): the same bits as the sweeps without, on a
 * function of long single-use chains, multi-use nodes and vector nodes; and
 * the flags exist on optimized and raw tapes alike. */
static ad_var carry_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var acc[8];
    for (size_t i = 0; i < n; i++) {
        ad_var z = x[i];
        for (int k = 0; k < 8; k++)   /* z used three times a step; depth < 64: no schedule */
            z = ad_add(ad_mul(ad_sin(z), ad_exp(ad_neg(ad_sqr(z)))), ad_tanh(z));
        acc[i] = ad_div(ad_sqr(ad_addc(z, 1.5)), ad_addc(ad_sqr(x[(i + 1) % n]), 1.0));
    }
    return ad_add(ad_sum(n, acc), ad_mul(acc[0], acc[n - 1]));
}

static void carried_adjoints_give_the_same_bits(void **state)
{
    (void)state;
    enum { N = 6 };
    const double x0[N] = {0.3, -0.8, 1.1, 0.05, -1.4, 0.7};
    double x1[N], v[N], g1[N], g2[N], h1[N], h2[N], hs1[N], hs2[N], f1, f2;
    for (int i = 0; i < N; i++) {
        x1[i] = x0[i] + 0.01 * i;
        v[i] = cos(1.0 + i);
    }
    for (int opt = 0; opt < 2; opt++) {
        ad_tape *t = ad_tape_new();
        assert_ok(ad_tape_set_optimize(t, opt));
        assert_ok(ad_tape_set_preaccumulate(t, 0));   /* plain sweeps only */
        assert_ok(ad_record(t, carry_fn, N, x0, NULL));
        assert_ok(ad_gradient(t, x1, &f1, g1));        /* makes the flags */
        assert_non_null(t->rec->cf);
        size_t nflag = 0;
        for (size_t i = 0; i < t->rec->end; i++)
            nflag += t->rec->cf[i] != 0;
        assert_true(nflag > 100);
        assert_ok(ad_hvp(t, x0, v, h1));               /* new x: adj and adot carried */
        assert_ok(ad_hvp(t, x0, v, hs1));              /* same x: adot carried */
        /* the same sweeps without carries */
        free(t->rec->cf);
        t->rec->cf = NULL;
        assert_ok(ad_gradient(t, x1, &f2, g2));
        assert_ok(ad_hvp(t, x0, v, h2));
        assert_ok(ad_hvp(t, x0, v, hs2));
        assert_memory_equal(g1, g2, sizeof g1);
        assert_memory_equal(h1, h2, sizeof h1);
        assert_memory_equal(hs1, hs2, sizeof hs1);
        assert_true(f1 == f2);
        /* and both agree with the hyper-dual route */
        for (int j = 0; j < N; j++) {
            double e[N] = {0}, vhe;
            e[j] = 1.0;
            assert_ok(ad_hess_form(t, x0, v, e, &vhe));
            assert_close(h1[j], vhe, 1e-12);
        }
        ad_tape_free(t);
    }
}

/* ad_tape_reserve: a recording of the reserved size regrows none of the
 * recording's arrays, the recording in place survives the call, and the
 * results are those of an unreserved tape. */
static ad_var reserve_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var s[64];
    for (size_t i = 0; i < n; i++)
        s[i] = ad_mulc(ad_sin(ad_addc(x[i], 0.5)), 2.0);   /* 3 ops and 2 constants a term */
    const double c[64] = {1.0, -1.0, 0.5, 2.0, 3.0, -0.25, 1.5, 0.75};
    return ad_add(ad_sum(n, s), ad_dot(n, x, c));
}

static void reserved_recording_grows_nothing(void **state)
{
    (void)state;
    enum { N = 8 };
    const double x[N] = {0.1, -0.4, 0.9, 1.3, -1.1, 0.2, 0.6, -0.8};
    ad_tape *t = ad_tape_new(), *u = ad_tape_new();
    assert_ok(ad_tape_set_optimize(t, 0));
    assert_ok(ad_tape_set_optimize(u, 0));
    assert_ok(ad_record(u, reserve_fn, N, x, NULL));   /* the unreserved twin */
    double fu, gu[N], f, g[N];
    assert_ok(ad_gradient(u, x, &fu, gu));
    /* nodes: N inputs, 3N term ops, sum, dot, add; vector arguments: 2N */
    assert_ok(ad_tape_reserve(t, 4 * N + 3, 2 * N));
    size_t cap = t->rec->cap, capval = t->capval, capext = t->rec->capext, capcst = t->rec->capcst;
    assert_true(cap >= 4 * N + 3 && capval >= 4 * N + 3);
    assert_ok(ad_record(t, reserve_fn, N, x, NULL));
    assert_int_equal(ad_tape_nops(t), 4 * N + 3);
    /* the node storage, the value array, the argument lists and the pool
     * were not regrown */
    assert_int_equal(t->rec->cap, cap);
    assert_int_equal(t->capval, capval);
    assert_int_equal(t->rec->capext, capext);
    assert_int_equal(t->rec->capcst, capcst);
    assert_ok(ad_gradient(t, x, &f, g));
    assert_true(f == fu);
    assert_memory_equal(g, gu, sizeof g);
    /* reserving more keeps the recording usable */
    assert_ok(ad_tape_reserve(t, 1000, 100));
    assert_ok(ad_gradient(t, x, &f, g));
    assert_memory_equal(g, gu, sizeof g);
    ad_tape_free(t);
    ad_tape_free(u);
}

/* ad_inputs makes the nodes and vars n calls of ad_input make (interleaved
 * with single inputs and ops, so the inputs are not consecutive nodes), and
 * the tape gives the same derivatives; the point cached at ad_record_end is
 * the recorded one even when the inputs lie apart on the tape. */
static void bulk_inputs_match_single_ones(void **state)
{
    (void)state;
    enum { N = 7 };
    const double x[N] = {0.3, -1.2, 0.7, 2.0, -0.4, 1.1, 0.9};
    for (int opt = 0; opt <= 1; opt++) {
        ad_tape *t[2] = {ad_tape_new(), ad_tape_new()};
        double f[2], g[2][N];
        for (int k = 0; k < 2; k++) {
            ad_var v[N];
            assert_ok(ad_tape_set_optimize(t[k], opt));
            assert_ok(ad_record_begin(t[k]));
            v[0] = ad_input(x[0]);
            ad_var s = ad_sin(v[0]);   /* an op between the inputs */
            if (k == 0) {
                for (int j = 1; j < 5; j++)
                    v[j] = ad_input(x[j]);
            } else {
                ad_inputs(4, x + 1, v + 1);
            }
            ad_var c = ad_cos(v[2]);
            if (k == 0) {
                v[5] = ad_input(x[5]);
                v[6] = ad_input(x[6]);
            } else {
                ad_inputs(2, x + 5, v + 5);
            }
            for (int j = 0; j < N; j++) {
                double vj = ad_value(v[j]);
                assert_memory_equal(&vj, &x[j], sizeof vj);
                assert_memory_equal(&v[j].val, &x[j], sizeof vj);
            }
            ad_var y = ad_add(ad_mul(s, c), ad_mul(ad_dotv(3, v + 1, v + 4), v[3]));
            ad_output(y);
            assert_ok(ad_record_end(t[k]));
            assert_int_equal(ad_tape_ninputs(t[k]), N);
            assert_int_equal(ad_tape_nops(t[k]), ad_tape_nops(t[0]));
            assert_ok(ad_gradient(t[k], x, &f[k], g[k]));
        }
        assert_memory_equal(&f[0], &f[1], sizeof f[0]);
        assert_memory_equal(g[0], g[1], sizeof g[0]);
        /* the gradient at another point, then at the recorded one again */
        double x2[N], f2, g2[N], f3, g3[N];
        for (int j = 0; j < N; j++)
            x2[j] = x[j] + 0.25;
        ad_tape *u = ad_tape_new();
        assert_ok(ad_tape_set_optimize(u, opt));
        assert_ok(ad_record_begin(u));
        ad_var w[N];
        w[0] = ad_input(x2[0]);
        ad_var s = ad_sin(w[0]);
        ad_inputs(4, x2 + 1, w + 1);
        ad_var c = ad_cos(w[2]);
        ad_inputs(2, x2 + 5, w + 5);
        ad_output(ad_add(ad_mul(s, c), ad_mul(ad_dotv(3, w + 1, w + 4), w[3])));
        assert_ok(ad_record_end(u));
        assert_ok(ad_gradient(u, x2, &f3, g3));   /* recorded at x2 */
        assert_ok(ad_gradient(t[1], x2, &f2, g2));
        assert_memory_equal(&f2, &f3, sizeof f2);
        assert_memory_equal(g2, g3, sizeof g2);
        assert_ok(ad_gradient(t[1], x, &f2, g2));
        assert_memory_equal(&f2, &f[0], sizeof f2);
        assert_memory_equal(g2, g[0], sizeof g2);
        ad_tape_free(u);
        ad_tape_free(t[0]);
        ad_tape_free(t[1]);
    }
}

/* The optimizer emits a deep tape level by level (independent chains side
 * by side); any such order is topological, so values and derivatives are
 * those of the raw tape, bit for bit.  A shallow tape keeps its order. */
static ad_var deep_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var acc[8];
    for (size_t i = 0; i < n; i++) {
        ad_var z = x[i];
        for (int k = 0; k < 40; k++)   /* depth about 200 */
            z = ad_add(ad_mul(ad_sin(z), ad_exp(ad_neg(ad_sqr(z)))), ad_tanh(z));
        acc[i] = z;
    }
    return ad_sum(n, acc);
}

/* Longest path from an input to each node, on a tape of scalar ops and
 * sums (what deep_fn records). */
static int depth_nondecreasing(const tape_rec *r)
{
    uint32_t *d = calloc(r->n + 1, sizeof *d), prev = 0;
    int ok = d != NULL;
    for (size_t i = 0; ok && i < r->n; i++) {
        tape_op o = (tape_op)r->op[i];
        uint32_t di = 0;
        if (o == OP_SUM || o == OP_DOT) {
            vec_args g = vec_view(r, o == OP_DOT, r->a[i], r->b[i]);
            for (uint32_t k = 0; k < g.n; k++)
                if (d[vec_arg(&g, k)] + 1 > di) di = d[vec_arg(&g, k)] + 1;
        } else if (o > OP_CONST && o < OP_ADD) {
            di = d[r->a[i]] + 1;
        } else if (o >= OP_ADD && o < OP_SUM) {
            di = (d[r->a[i]] > d[r->b[i]] ? d[r->a[i]] : d[r->b[i]]) + 1;
        }
        d[i] = di;
        ok = di >= prev;
        prev = di;
    }
    free(d);
    return ok;
}

static ad_var group_fn(const ad_var *x, size_t n, void *ctx);   /* Rosenbrock-like, below */

static void deep_tapes_are_scheduled_by_level(void **state)
{
    (void)state;
    enum { N = 5 };
    const double x[N] = {0.3, -0.8, 1.1, 0.05, -1.4};
    double v[N] = {0.5, -1.0, 0.25, 2.0, -0.75};
    double fo, fr, go[N], gr[N], ho[N], hr[N];
    ad_tape *opt = ad_tape_new(), *raw = ad_tape_new();
    assert_ok(ad_tape_set_optimize(opt, 1));
    assert_ok(ad_tape_set_optimize(raw, 0));
    assert_ok(ad_tape_set_preaccumulate(opt, 0));
    assert_ok(ad_tape_set_preaccumulate(raw, 0));
    assert_ok(ad_record(opt, deep_fn, N, x, NULL));
    assert_ok(ad_record(raw, deep_fn, N, x, NULL));
    assert_ok(ad_gradient(opt, x, &fo, go));
    assert_ok(ad_gradient(raw, x, &fr, gr));
    assert_true(opt->rec->optimized);
    assert_true(depth_nondecreasing(opt->rec));
    assert_false(depth_nondecreasing(raw->rec));   /* recorded chain by chain */
    assert_true(fo == fr);
    assert_memory_equal(go, gr, sizeof go);
    assert_ok(ad_hvp(opt, x, v, ho));
    assert_ok(ad_hvp(raw, x, v, hr));
    assert_memory_equal(ho, hr, sizeof ho);
    ad_tape_free(opt);
    ad_tape_free(raw);
    /* Rosenbrock-like sums of short terms keep the recorded order */
    ad_tape *t = ad_tape_new();
    const double y[8] = {0.5, 1.5, 0.7, 2.0, 0.9, 1.2, 0.4, 0.8};
    assert_ok(ad_tape_set_optimize(t, 1));
    assert_ok(ad_record(t, group_fn, 8, y, NULL));
    double f, g[8];
    assert_ok(ad_gradient(t, y, &f, g));
    assert_false(depth_nondecreasing(t->rec));
    ad_tape_free(t);
}

/* Sums and dots whose arguments are consecutive nodes are stored as their
 * first node at recording (VEC_CONTIG); lists that break the run after a
 * few consecutive nodes, or start consecutive and end elsewhere, are not. */
static ad_var contig_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var s[4] = {ad_sin(x[0]), ad_sin(x[1]), ad_sin(x[2]), ad_sin(x[3])};   /* 4 consecutive nodes */
    const double c[4] = {1.0, -2.0, 0.5, 3.0};
    ad_var run[4] = {s[0], s[1], s[2], s[3]}, broken[4] = {s[0], s[1], s[2], s[0]},
           shifted[3] = {s[1], s[2], s[3]};
    ad_var t[4] = {ad_dot(4, run, c), ad_sum(4, broken), ad_sum(3, shifted), ad_dot(4, x, c)};
    return ad_sum(4, t);
}

static void contiguous_vector_args_at_recording(void **state)
{
    (void)state;
    const double x[4] = {0.3, -1.1, 0.7, 2.0}, c[4] = {1.0, -2.0, 0.5, 3.0};
    ad_tape *t = ad_tape_new();
    assert_ok(ad_tape_set_optimize(t, 0));   /* the recording's own lists */
    assert_ok(ad_record(t, contig_fn, 4, x, NULL));
    size_t ncontig = 0;
    for (size_t i = 0; i < t->rec->n; i++)
        if ((t->rec->op[i] == OP_SUM || t->rec->op[i] == OP_DOT) && (t->rec->b[i] & VEC_CONTIG))
            ncontig++;
    assert_int_equal(ncontig, 4);   /* run, shifted, the inputs' dot, the outer sum's t[0..3] */
    double f, g[4];
    assert_ok(ad_gradient(t, x, &f, g));
    double want_f = 0.0, want_g[4];
    for (int k = 0; k < 4; k++) {
        want_f += c[k] * sin(x[k]) + c[k] * x[k] + (k >= 1 ? sin(x[k]) : 0.0) + (k < 3 ? sin(x[k]) : 0.0);
        want_g[k] = c[k] * cos(x[k]) + c[k] + (k >= 1 ? cos(x[k]) : 0.0) + (k < 3 ? cos(x[k]) : 0.0);
    }
    want_f += sin(x[0]);
    want_g[0] += cos(x[0]);
    assert_close(f, want_f, 8 * TU_ULP);
    for (int k = 0; k < 4; k++)
        assert_close(g[k], want_g[k], 8 * TU_ULP);
    ad_tape_free(t);
}

/* The optimizer's squared-residual fusion: which sqr(·) fuse, which must
 * not (a sub used twice; a sub over a collapsible sum; a compared sub), and
 * the derivatives against closed forms on the fused tape. */
static ad_var sqfuse_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var s2 = ad_sub(x[0], x[2]);                                  /* used twice */
    ad_var terms[7] = {
        ad_sqr(ad_sub(x[0], x[1])),                                  /* sqdiff */
        ad_sqr(ad_csub(2.5, x[1])),                                  /* sqaddc(x1, -2.5) */
        ad_sqr(ad_addc(x[2], -0.7)),                                 /* sqaddc */
        ad_sqr(ad_neg(x[3])),                                        /* sqr */
        ad_add(ad_sqr(s2), ad_sin(s2)),
        ad_sqr(ad_sub(ad_add(x[0], x[1]), x[2])),                     /* the sum collapses */
        ad_mul(ad_sqr(ad_sub(x[3], x[1])), x[2]),                     /* sqdiff inside a product */
    };
    return ad_sum(7, terms);
}

static void sqfuse_closed_form(const double *x, double *g, double *H)
{
    double d01 = x[0] - x[1], e1 = x[1] - 2.5, e2 = x[2] - 0.7, s2 = x[0] - x[2];
    double u = x[0] + x[1] - x[2], w = x[3] - x[1], c = cos(s2), sn = sin(s2);
    g[0] = 2 * d01 + 2 * s2 + c + 2 * u;
    g[1] = -2 * d01 + 2 * e1 + 2 * u - 2 * w * x[2];
    g[2] = 2 * e2 - 2 * s2 - c - 2 * u + w * w;
    g[3] = 2 * x[3] + 2 * w * x[2];
    double h[4][4] = {
        {2 + 2 - sn + 2, -2 + 2, -2 + sn - 2, 0},
        {0, 2 + 2 + 2 + 2 * x[2], -2 - 2 * w, -2 * x[2]},
        {0, 0, 2 + 2 - sn + 2, 2 * w},
        {0, 0, 0, 2 + 2 * x[2]},
    };
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            H[i * 4 + j] = i <= j ? h[i][j] : h[j][i];
}

static void squared_residuals_fuse_exactly(void **state)
{
    (void)state;
    const double pts[3][4] = {{0.3, -1.2, 0.8, 2.0}, {1.5, 0.25, -0.6, -0.9}, {-2.0, 3.0, 1.1, 0.4}};
    ad_tape *t = ad_tape_new();
    assert_ok(ad_tape_set_optimize(t, 1));
    assert_ok(ad_record(t, sqfuse_fn, 4, pts[0], NULL));
    double f, g[4], gc[4], H[16], Hc[16];
    for (int p = 0; p < 3; p++) {
        const double *x = pts[p];
        sqfuse_closed_form(x, gc, Hc);
        assert_ok(ad_gradient(t, x, &f, g));
        for (int i = 0; i < 4; i++)
            assert_close_ctx(g[i], gc[i], 1e-14, 10.0, "point %d: g[%d]\n", p, i);
        assert_ok(ad_hessian(t, x, H));
        for (int i = 0; i < 16; i++)
            assert_close_ctx(H[i], Hc[i], 1e-14, 10.0, "point %d: H[%d]\n", p, i);
    }
    /* Two sqdiff (x0 − x1, x3 − x1; the sub over x0 + x1 became a sum),
     * two sqaddc; s2, used twice, stays a sub under a plain sqr. */
    size_t nsqd = 0, nsqc = 0, nsub = 0;
    for (size_t i = 0; i < t->rec->n; i++) {
        nsqd += t->rec->op[i] == OP_SQDIFF;
        nsqc += t->rec->op[i] == OP_SQADDC;
        nsub += t->rec->op[i] == OP_SUB;
    }
    assert_true(t->rec->optimized);
    assert_int_equal(nsqd, 2);
    assert_int_equal(nsqc, 2);
    assert_int_equal(nsub, 1);
    ad_tape_free(t);
}

/* Terms of one sum that share leaves: the chained Rosenbrock (terms of two
 * consecutive i share x_i+1 and fit three leaves: one group of four terms),
 * plus terms that must not merge (a fourth leaf; sqr of distinct inputs) and
 * plain input terms between them.  The grouped statement route (many HVPs
 * at a point, then ad_hessian and a batch) must give the closed-form
 * Hessian, which the hyper-dual vᵀHw confirms independently. */
static ad_var group_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var f = ad_const(0.0);
    for (size_t i = 0; i + 1 < n; i++) {
        ad_var t = ad_sub(x[i + 1], ad_sqr(x[i]));
        f = ad_add(f, ad_add(ad_mulc(ad_sqr(t), 100.0), ad_sqr(ad_csub(1.0, x[i]))));
    }
    f = ad_add(f, ad_mulc(x[n - 1], 3.0));                          /* a plain term */
    f = ad_add(f, ad_sin(ad_mul(ad_mul(x[0], x[1]), ad_mul(x[2], x[3]))));   /* 4 leaves */
    f = ad_add(f, ad_add(ad_sqr(x[4]), ad_sqr(x[5])));              /* stay apart */
    return f;
}

static void group_hessian(const double *x, size_t n, double *H)
{
    memset(H, 0, n * n * sizeof *H);
    for (size_t i = 0; i + 1 < n; i++) {
        double t = x[i + 1] - x[i] * x[i];
        H[i * n + i] += 200.0 * (4.0 * x[i] * x[i] - 2.0 * t) + 2.0;
        H[i * n + i + 1] += -400.0 * x[i];
        H[(i + 1) * n + i] += -400.0 * x[i];
        H[(i + 1) * n + i + 1] += 200.0;
    }
    double p = x[0] * x[1] * x[2] * x[3], c = cos(p), s = sin(p);
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++) {
            double pa = p / x[a], pb = p / x[b];
            H[a * n + b] += -s * pa * pb + (a == b ? 0.0 : c * p / (x[a] * x[b]));
        }
    H[4 * n + 4] += 2.0;
    H[5 * n + 5] += 2.0;
}

static void statement_groups_match_closed_form(void **state)
{
    (void)state;
    enum { N = 11 };
    tu_rng r = {808};
    ad_tape *t = ad_tape_new();
    double x[N], H[N * N], Hc[N * N], v[N], hv[N], V[3 * N], HV[3 * N];
    for (size_t i = 0; i < N; i++) x[i] = tu_range(&r, 0.3, 1.4);   /* no zero in the 4-leaf term */
    assert_ok(ad_tape_set_preaccumulate(t, 1));
    assert_ok(ad_record(t, group_fn, N, x, NULL));
    for (int p = 0; p < 3; p++) {
        if (p)
            for (size_t i = 0; i < N; i++) x[i] = tu_range(&r, 0.3, 1.4);
        group_hessian(x, N, Hc);
        double hs = tu_maxabs(Hc, N * N);
        for (int rep = 0; rep < 6; rep++) {
            for (size_t i = 0; i < N; i++) v[i] = tu_range(&r, -1, 1);
            assert_ok(ad_hvp(t, x, v, hv));
            for (size_t i = 0; i < N; i++) {
                double want = 0.0;
                for (size_t j = 0; j < N; j++) want += Hc[i * N + j] * v[j];
                assert_close_ctx(hv[i], want, 1e-13, hs, "point %d rep %d: hv[%zu]\n", p, rep, i);
            }
            double vhv, wantf = 0.0;
            assert_ok(ad_hess_form(t, x, v, v, &vhv));
            for (size_t i = 0; i < N; i++) wantf += v[i] * hv[i];
            assert_close_ctx(vhv, wantf, 1e-13, hs * N, "point %d rep %d: vHv\n", p, rep);
        }
        assert_ok(ad_hessian(t, x, H));
        for (size_t i = 0; i < N * N; i++)
            assert_close_ctx(H[i], Hc[i], 1e-13, hs, "point %d: H[%zu]\n", p, i);
        for (size_t i = 0; i < 3 * N; i++) V[i] = tu_range(&r, -1, 1);
        assert_ok(ad_hvp_batch(t, x, 3, V, HV));
        for (size_t k = 0; k < 3; k++)
            for (size_t i = 0; i < N; i++) {
                double want = 0.0;
                for (size_t j = 0; j < N; j++) want += Hc[i * N + j] * V[k * N + j];
                assert_close_ctx(HV[k * N + i], want, 1e-13, hs * N, "point %d: batch %zu [%zu]\n", p, k, i);
            }
    }
    /* The statement route ran, and terms were grouped (fewer groups than
     * statements) when the tape is optimized (raw tapes have no sums). */
    assert_true(t->st.built && t->st.valid);
    if (t->rec->optimized && getenv("HYPERAD_OPTIMIZE") == NULL)
        assert_true(t->st.ngrp < t->st.nst);
    ad_tape_free(t);
}

/* Vector nodes whose argument lists repeat a var or interleave with other
 * nodes (not contiguous): f = Σ{a,a,b} · dot({a,b,a},{1,2,3}) + dotv(x,x)
 * + Σ (A·{b,a,b})_i², with a = x0, b = sin(x1). */
static const double rep_A[2 * 3] = {1.0, -2.0, 0.5, 0.25, 1.5, -1.0};
static ad_var repeat_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var a = x[0], b = ad_sin(x[1]);
    ad_var s3[3] = {a, a, b}, d3[3] = {a, b, a}, m3[3] = {b, a, b}, y[2], xx[2] = {x[0], x[1]};
    const double c[3] = {1, 2, 3};
    ad_var s = ad_mul(ad_sum(3, s3), ad_dot(3, d3, c));
    ad_matvec(2, 3, rep_A, m3, y);
    ad_var sq[3] = {s, ad_dotv(2, xx, xx), ad_dotv(2, y, y)};
    return ad_sum(3, sq);
}

static void repeated_and_scattered_vector_args(void **state)
{
    (void)state;
    g_route_tol = ROUTE_TOL_FIXED;
    const double pts[][2] = {{0.3, -0.7}, {1.1, 2.0}, {-0.4, 0.2}};
    ad_tape *t = ad_tape_new();
    for (int opt = 0; opt < 2; opt++) {
        assert_ok(ad_tape_set_optimize(t, opt));
        assert_ok(ad_record(t, repeat_fn, 2, pts[0], NULL));
        for (size_t p = 0; p < 3; p++) {
            const double *x = pts[p];
            double a = x[0], b = sin(x[1]), db = cos(x[1]), d2b = -sin(x[1]);
            /* S = 2a + b, D = 4a + 2b, y = A (b, a, b) */
            double S = 2 * a + b, D = 4 * a + 2 * b;
            double y0 = rep_A[0] * b + rep_A[1] * a + rep_A[2] * b;
            double y1 = rep_A[3] * b + rep_A[4] * a + rep_A[5] * b;
            double ya0 = rep_A[1], yb0 = rep_A[0] + rep_A[2], ya1 = rep_A[4], yb1 = rep_A[3] + rep_A[5];
            /* f(a, b) = S D + x0² + x1² + y0² + y1², b = sin x1 */
            double fa = 2 * D + 4 * S + 2 * (y0 * ya0 + y1 * ya1);
            double fb = D + 2 * S + 2 * (y0 * yb0 + y1 * yb1);
            double faa = 16 + 2 * (ya0 * ya0 + ya1 * ya1);
            double fab = 4 + 4 + 2 * (ya0 * yb0 + ya1 * yb1);
            double fbb = 4 + 2 * (yb0 * yb0 + yb1 * yb1);
            double fw = S * D + x[0] * x[0] + x[1] * x[1] + y0 * y0 + y1 * y1;
            double g0 = fa + 2 * x[0], g1 = fb * db + 2 * x[1];
            double H00 = faa + 2, H01 = fab * db, H11 = fbb * db * db + fb * d2b + 2;
            double f, g[2], H[4];
            assert_ok(ad_gradient(t, x, &f, g));
            assert_ok(ad_hessian(t, x, H));
            assert_close_s(f, fw, 1e-14, 10.0);
            assert_close_s(g[0], g0, 1e-14, 10.0);
            assert_close_s(g[1], g1, 1e-14, 10.0);
            assert_close_s(H[0], H00, 1e-14, 10.0);
            assert_close_s(H[1], H01, 1e-14, 10.0);
            assert_close_s(H[2], H01, 1e-14, 10.0);
            assert_close_s(H[3], H11, 1e-14, 10.0);
            tu_rng r = {p};
            cross_check(t, x, 2, &r, "repeat_fn");
        }
    }
    ad_tape_free(t);
}

/* Inputs numbered in call order even when interleaved with ops; unused
 * inputs get zero derivatives; the last ad_output wins; a constant output. */
static void inputs_outputs_bookkeeping(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(2.0);
    ad_var e = ad_exp(a);
    ad_var unused = ad_input(5.0);
    (void)unused;
    ad_var b = ad_input(3.0);
    ad_output(ad_mul(e, e));            /* overridden below */
    ad_output(ad_mul(e, b));            /* f = e^a · b */
    assert_ok(ad_record_end(t));
    assert_int_equal(ad_tape_ninputs(t), 3);
    double x[3] = {0.5, 7.0, -2.0}, f, g[3], H[9];
    assert_ok(ad_gradient(t, x, &f, g));
    assert_close(f, exp(0.5) * -2.0, 2 * TU_ULP);
    assert_close(g[0], exp(0.5) * -2.0, 2 * TU_ULP);
    assert_true(g[1] == 0.0);
    assert_close(g[2], exp(0.5), 2 * TU_ULP);
    assert_ok(ad_hessian(t, x, H));
    assert_close(H[0], exp(0.5) * -2.0, 2 * TU_ULP);
    assert_true(H[1] == 0 && H[3] == 0 && H[4] == 0 && H[5] == 0 && H[7] == 0);
    assert_close(H[2], exp(0.5), 2 * TU_ULP);
    assert_close(H[6], exp(0.5), 2 * TU_ULP);
    assert_true(H[8] == 0.0);

    /* an input recorded after the output node */
    assert_ok(ad_record_begin(t));
    a = ad_input(1.0);
    ad_output(ad_sin(a));
    (void)ad_input(2.0);
    assert_ok(ad_record_end(t));
    assert_int_equal(ad_tape_ninputs(t), 2);
    {
        double z[2] = {0.25, 8.0};
        assert_ok(ad_gradient(t, z, &f, g));
        assert_close(f, sin(0.25), TU_ULP);
        assert_close(g[0], cos(0.25), TU_ULP);
        assert_true(g[1] == 0.0);
        assert_ok(ad_hessian(t, z, H));
        assert_close(H[0], -sin(0.25), TU_ULP);
        assert_true(H[1] == 0.0 && H[2] == 0.0 && H[3] == 0.0);
    }

    /* output = an input; output = a constant */
    assert_ok(ad_record_begin(t));
    a = ad_input(1.0);
    (void)ad_input(2.0);
    ad_output(a);
    assert_ok(ad_record_end(t));
    double y[2] = {4.0, 9.0}, v[2] = {1, 1}, hv[2];
    assert_ok(ad_gradient(t, y, &f, g));
    assert_true(f == 4.0 && g[0] == 1.0 && g[1] == 0.0);
    assert_ok(ad_hvp(t, y, v, hv));
    assert_true(hv[0] == 0.0 && hv[1] == 0.0);
    assert_ok(ad_record_begin(t));
    (void)ad_input(1.0);
    ad_output(ad_const(3.5));
    assert_ok(ad_record_end(t));
    assert_ok(ad_gradient(t, y, &f, g));
    assert_true(f == 3.5 && g[0] == 0.0);
    assert_ok(ad_hessian(t, y, H));
    assert_true(H[0] == 0.0);
    ad_tape_free(t);
}

/* A comparison on nodes the output does not use still decides replays (the
 * optimizer must keep what comparisons read). */
static ad_var hidden_cmp_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var q = ad_add(ad_mul(x[0], x[0]), ad_sin(x[1])); /* used only by the comparison */
    if (ad_lt(q, ad_const(1.0)))
        return ad_mulc(x[1], 3.0);
    return ad_mul(x[0], x[1]);
}

static void comparison_on_dead_nodes_still_detects_flip(void **state)
{
    (void)state;
    const double in[2] = {0.1, 0.2}, out[2] = {2.0, 0.5}; /* q < 1, q > 1 */
    for (int opt = 0; opt < 2; opt++) {
        ad_tape *m = ad_tape_new(), *r = ad_tape_new();
        assert_ok(ad_tape_set_optimize(m, opt));
        assert_ok(ad_tape_set_optimize(r, opt));
        assert_ok(ad_record_begin(m));
        ad_var xin[2];
        xin[0] = ad_input(in[0]);
        xin[1] = ad_input(in[1]);
        ad_output(hidden_cmp_fn(xin, 2, NULL));
        assert_ok(ad_record_end(m));
        assert_ok(ad_record(r, hidden_cmp_fn, 2, in, NULL));
        double f, g[2];
        assert_ok(ad_gradient(m, in, &f, g));
        assert_true(g[0] == 0.0 && g[1] == 3.0);
        assert_status(ad_gradient(m, out, &f, g), AD_ERETAPE);
        assert_ok(ad_gradient(r, out, &f, g));
        assert_true(f == 1.0 && g[0] == 0.5 && g[1] == 2.0);
        assert_ok(ad_gradient(r, in, &f, g));
        assert_true(g[0] == 0.0 && g[1] == 3.0);
        ad_tape_free(m);
        ad_tape_free(r);
    }
}

/* A comparison recorded after the output node (its nodes come later on the
 * tape than the output) must still be checked at replay. */
static ad_var late_cmp_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var y = ad_mul(x[0], x[1]);
    if (ad_lt(ad_addc(x[0], 1.0), x[1])) /* recorded after y */
        return y;
    return ad_add(y, ad_sqr(x[0]));
}

static void comparison_after_output_still_detects_flip(void **state)
{
    (void)state;
    const double in[2] = {0.5, 2.0}, out[2] = {3.0, 2.0}; /* 1.5 < 2; 4 > 2 */
    for (int opt = 0; opt < 2; opt++) {
        ad_tape *m = ad_tape_new(), *r = ad_tape_new();
        assert_ok(ad_tape_set_optimize(m, opt));
        assert_ok(ad_tape_set_optimize(r, opt));
        /* manual: ad_output before the comparison */
        assert_ok(ad_record_begin(m));
        ad_var a = ad_input(in[0]);
        ad_var b = ad_input(in[1]);
        ad_output(ad_mul(a, b));
        assert_true(ad_lt(ad_addc(a, 1.0), b));
        assert_ok(ad_record_end(m));
        double f, g[2];
        assert_ok(ad_eval(m, in, &f));
        assert_true(f == 1.0);
        assert_ok(ad_record(r, late_cmp_fn, 2, in, NULL));
        assert_status(ad_eval(m, out, &f), AD_ERETAPE);
        assert_ok(ad_gradient(r, out, &f, g));
        assert_true(f == 15.0 && g[0] == 8.0 && g[1] == 3.0);
        assert_ok(ad_gradient(r, in, &f, g));
        assert_true(f == 1.0 && g[0] == 2.0 && g[1] == 0.5);
        ad_tape_free(m);
        ad_tape_free(r);
    }
}

/* Recording a different function on the same tape at the same x: nothing
 * of the old recording's cache survives.  Directions may alias x. */
static ad_var cubic_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_mul(ad_powi(x[0], 3), x[1]);
}

static void rerecording_invalidates_the_cache(void **state)
{
    (void)state;
    double x[2] = {1.5, -0.5}, f, g[2], hv[2], H[4];
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, ulp_fn, 2, x, NULL));
    assert_ok(ad_gradient(t, x, &f, g));
    assert_ok(ad_hvp(t, x, x, hv));
    assert_ok(ad_hvp(t, x, x, hv));
    assert_ok(ad_hessian(t, x, H));
    assert_ok(ad_record(t, cubic_fn, 2, x, NULL));
    /* f = x0³ x1: g = (3x0² x1, x0³), H = [[6 x0 x1, 3x0²], [3x0², 0]] */
    assert_ok(ad_gradient(t, x, &f, g));
    assert_close(f, 3.375 * -0.5, 2 * TU_ULP);
    assert_close(g[0], 3 * 2.25 * -0.5, 2 * TU_ULP);
    assert_close(g[1], 3.375, 2 * TU_ULP);
    assert_ok(ad_hvp(t, x, x, hv)); /* v = x itself */
    assert_close(hv[0], 6 * 1.5 * -0.5 * 1.5 + 3 * 2.25 * -0.5, 4 * TU_ULP);
    assert_close(hv[1], 3 * 2.25 * 1.5, 4 * TU_ULP);
    assert_ok(ad_hvp(t, x, x, hv));
    assert_close(hv[1], 3 * 2.25 * 1.5, 4 * TU_ULP);
    assert_ok(ad_hessian(t, x, H));
    assert_close(H[0], 6 * 1.5 * -0.5, 4 * TU_ULP);
    assert_close(H[1], 3 * 2.25, 4 * TU_ULP);
    assert_true(H[3] == 0.0);
    /* manual re-recording too */
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(9.0);
    ad_var b = ad_input(9.0);
    ad_output(ad_sub(a, b));
    assert_ok(ad_record_end(t));
    assert_ok(ad_gradient(t, x, &f, g));
    assert_true(f == 2.0 && g[0] == 1.0 && g[1] == -1.0);
    ad_tape_free(t);
}

/* Drivers (and an ad_record re-recording) on one tape while another tape is
 * being recorded on the same thread. */
static void drivers_work_while_another_tape_records(void **state)
{
    (void)state;
    cmp_ctx ctx = {ad_lt};
    const double p[2] = {0.5, 1.5}, q[2] = {1.5, 0.5};
    ad_tape *done = ad_tape_new(), *rec = ad_tape_new();
    assert_ok(ad_record(done, branch_fn, 2, p, &ctx));
    assert_ok(ad_record_begin(rec));
    ad_var a = ad_input(2.0);
    ad_var b = ad_sqr(a);
    double f, g[2], fw, gw[2];
    assert_ok(ad_gradient(done, p, &f, g));
    assert_ok(ad_gradient(done, q, &f, g)); /* flips: re-records `done` */
    branch_ref(0, q, &fw, gw);
    assert_close(f, fw, 4 * TU_ULP);
    assert_close(g[0], gw[0], 4 * TU_ULP);
    /* rec is still the active tape and records on */
    ad_var c = ad_mul(b, a);
    assert_true(ad_value(c) == 8.0);
    ad_output(c);
    assert_ok(ad_record_end(rec));
    double x = 3.0, fx;
    assert_ok(ad_eval(rec, &x, &fx));
    assert_true(fx == 27.0);
    assert_int_equal(ad_tape_ninputs(rec), 1);
    ad_tape_free(done);
    ad_tape_free(rec);
}

/* fmax, fmin and abs are chosen at replay: no AD_ERETAPE, right branch. */
static ad_var kink_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_add(ad_mul(ad_fmax(x[0], x[1]), x[0]),
                  ad_add(ad_mulc(ad_fmin(x[0], x[1]), 3.0), ad_mulc(ad_abs(ad_sub(x[0], x[1])), 0.5)));
}

static void fmax_fmin_abs_switch_sides_at_replay(void **state)
{
    (void)state;
    static const double pts[][2] = {{1.0, 2.0}, {3.0, 2.0}, {-1.0, -4.0}, {-4.0, -1.0}, {2.0, 2.0}};
    ad_tape *t = ad_tape_new();
    for (int route = 0; route < 2; route++) {
        if (route == 0) {
            assert_ok(ad_record(t, kink_fn, 2, pts[0], NULL));
        } else {
            assert_ok(ad_record_begin(t));
            ad_var in[2];
            in[0] = ad_input(pts[0][0]);
            in[1] = ad_input(pts[0][1]);
            ad_output(kink_fn(in, 2, NULL));
            assert_ok(ad_record_end(t));
        }
        for (size_t p = 0; p < NPTS(pts); p++) {
            const double *x = pts[p];
            double f, g[2], H[4];
            assert_ok(ad_gradient(t, x, &f, g));
            assert_ok(ad_hessian(t, x, H));
            int amax = x[0] >= x[1], amin = x[0] <= x[1]; /* ties pick a */
            double mx = amax ? x[0] : x[1], mn = amin ? x[0] : x[1], d = x[0] - x[1];
            double sg = d > 0 ? 1 : (d < 0 ? -1 : 0); /* abs'(0) = 0 */
            double fw = mx * x[0] + 3 * mn + 0.5 * fabs(d);
            double g0 = (amax ? 2 * x[0] : x[1]) + (amin ? 3 : 0) + 0.5 * sg;
            double g1 = (amax ? 0 : x[0]) + (amin ? 0 : 3) - 0.5 * sg;
            double H00 = amax ? 2 : 0, H01 = amax ? 0 : 1, H11 = 0;
            assert_close(f, fw, 4 * TU_ULP);
            assert_close_s(g[0], g0, 4 * TU_ULP, 1.0);
            assert_close_s(g[1], g1, 4 * TU_ULP, 1.0);
            assert_close_s(H[0], H00, 4 * TU_ULP, 1.0);
            assert_close_s(H[1], H01, 4 * TU_ULP, 1.0);
            assert_close_s(H[2], H01, 4 * TU_ULP, 1.0);
            assert_close_s(H[3], H11, 4 * TU_ULP, 1.0);
        }
    }
    ad_tape_free(t);
}

/* ===================================================================== */
/* ad_value, statistics                                                  */
/* ===================================================================== */

static void ad_value_reports_recording_values(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(0.5), b = ad_input(-2.0);
    assert_true(ad_value(a) == 0.5);
    assert_true(ad_value(b) == -2.0);
    ad_var e = ad_exp(a);
    assert_close(ad_value(e), exp(0.5), TU_ULP);
    ad_var m = ad_mul(e, b);
    assert_close(ad_value(m), -2.0 * exp(0.5), 2 * TU_ULP);
    ad_var c = ad_const(7.25);
    assert_true(ad_value(c) == 7.25);
    ad_var s = ad_add(m, c);
    assert_close(ad_value(s), 7.25 - 2.0 * exp(0.5), 4 * TU_ULP);
    ad_output(s);
    assert_ok(ad_record_end(t));
    /* outside a recording: NaN */
    assert_true(isnan(ad_value(s)));
    assert_true(isnan(ad_value(a)));
    double x[2] = {0.5, -2.0}, f;
    assert_ok(ad_eval(t, x, &f));
    assert_close(f, 7.25 - 2.0 * exp(0.5), 4 * TU_ULP);
    ad_tape_free(t);
}

static void tape_statistics_are_sane(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_int_equal(ad_tape_ninputs(t), 0);
    assert_int_equal(ad_tape_ninputs(NULL), 0);
    /* f = sin(x0) x1 + x2: 3 inputs, 3 ops */
    assert_ok(ad_record_begin(t));
    ad_var x0 = ad_input(1), x1 = ad_input(2), x2 = ad_input(3);
    ad_output(ad_add(ad_mul(ad_sin(x0), x1), x2));
    assert_ok(ad_record_end(t));
    assert_int_equal(ad_tape_ninputs(t), 3);
    size_t nops = ad_tape_nops(t);
    assert_true(nops >= 6 && nops <= 16);
    double bpo = ad_tape_bytes_per_op(t);
    assert_true(bpo >= 9.0 && bpo < 1024.0);
    size_t mem0 = ad_tape_memory(t);
    assert_true(mem0 > 0);
    double x[3] = {1, 2, 3}, H[9];
    assert_ok(ad_hessian(t, x, H));
    size_t mem1 = ad_tape_memory(t);
    assert_true(mem1 >= mem0);

    /* buffers are reused: every driver once, then many calls at new points
     * allocate nothing more */
    {
        double v[3] = {1, 0, -1}, hv[3], g[3], f, q, V[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, HV[9];
        assert_ok(ad_hvp(t, x, v, hv));
        assert_ok(ad_hvp(t, x, v, hv));
        assert_ok(ad_hvp_batch(t, x, 3, V, HV));
        assert_ok(ad_hess_form(t, x, v, v, &q));
        size_t mem2 = ad_tape_memory(t);
        for (int k = 0; k < 50; k++) {
            double y[3] = {0.01 * k, 1 - 0.02 * k, 3 + k};
            assert_ok(ad_gradient(t, y, &f, g));
            assert_ok(ad_hvp(t, y, v, hv));
            assert_ok(ad_hvp(t, y, v, hv));
            assert_ok(ad_hessian(t, y, H));
            assert_ok(ad_hvp_batch(t, y, 3, V, HV));
            assert_ok(ad_hess_form(t, y, v, v, &q));
        }
        assert_int_equal(ad_tape_memory(t), mem2);
    }

    /* a long recording: nodes grow linearly, bytes per op stays bounded */
    double xr[1000];
    for (size_t i = 0; i < 1000; i++) xr[i] = 0.001 * (double)i;
    assert_ok(ad_record(t, chained_rosenbrock, 1000, xr, NULL));
    assert_int_equal(ad_tape_ninputs(t), 1000);
    size_t big = ad_tape_nops(t);
    assert_true(big >= 1000 + 8 * 999);
    bpo = ad_tape_bytes_per_op(t);
    assert_true(bpo >= 9.0 && bpo < 256.0);
    assert_true((double)ad_tape_memory(t) >= 0.9 * bpo * (double)big);
    ad_tape_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hvp_matches_hess_form),
        cmocka_unit_test(hessian_matches_closed_form),
        cmocka_unit_test(hvp_batch_matches_single_hvps),
        cmocka_unit_test(hessian_of_dense_quadratic_n100),
        cmocka_unit_test(taylor_remainder_shrinks_as_h_cubed),
        cmocka_unit_test(replay_at_other_points_matches_fresh_recordings),
        cmocka_unit_test(same_x_twice_gives_identical_results),
        cmocka_unit_test(x_changed_in_place_is_detected),
        cmocka_unit_test(million_op_tape_gradient_matches_closed_form),
        cmocka_unit_test(random_expressions_cover_every_op),
        cmocka_unit_test(random_expressions_pass_cross_checks),
        cmocka_unit_test(random_branches_replay_or_retape_correctly),
        cmocka_unit_test(comparison_flip_returns_eretape_on_manual_tape),
        cmocka_unit_test(comparison_flip_rerecords_ad_record_tape),
        cmocka_unit_test(fmax_fmin_abs_switch_sides_at_replay),
        cmocka_unit_test(rerecord_to_larger_branch_in_every_driver),
        cmocka_unit_test(optimizer_matches_raw_tape),
        cmocka_unit_test(preaccumulation_matches_plain_sweeps),
        cmocka_unit_test(statement_groups_match_closed_form),
        cmocka_unit_test(squared_residuals_fuse_exactly),
        cmocka_unit_test(contiguous_vector_args_at_recording),
        cmocka_unit_test(reserved_recording_grows_nothing),
        cmocka_unit_test(bulk_inputs_match_single_ones),
        cmocka_unit_test(carried_adjoints_give_the_same_bits),
        cmocka_unit_test(deep_tapes_are_scheduled_by_level),
        cmocka_unit_test(repeated_and_scattered_vector_args),
        cmocka_unit_test(inputs_outputs_bookkeeping),
        cmocka_unit_test(comparison_on_dead_nodes_still_detects_flip),
        cmocka_unit_test(drivers_work_while_another_tape_records),
        cmocka_unit_test(comparison_after_output_still_detects_flip),
        cmocka_unit_test(rerecording_invalidates_the_cache),
        cmocka_unit_test(ad_value_reports_recording_values),
        cmocka_unit_test(tape_statistics_are_sane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
