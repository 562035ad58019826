/*
 * Every op of the header: value, first and second derivatives against closed
 * forms evaluated in long double, at many points including domain edges and
 * the accuracy cases of issue 9 (sigmoid/softplus far out, log1p/expm1 near
 * 0, powi at 0, asin/acos near ±1, tanh at 20).
 *
 * Routes: the value through ad_value (recording), ad_eval and ad_gradient;
 * the first derivative through ad_gradient; the second through ad_hessian,
 * ad_hess_form (hyper-dual, no reverse sweep) and ad_hvp, each checked on its
 * own against the closed form.  Each op is checked on a fresh recording at
 * every point and on one recording replayed at every point.  Central finite
 * differences are only a loose second opinion.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"

/* Values: libm and the long double reference are each within about an ulp. */
#define VAL_TOL (4 * TU_ULP)
/* Derivatives: a few roundings of products and quotients of libm values. */
#define DER_TOL (16 * TU_ULP)

/* ===================================================================== */
/* Unary ops                                                             */
/* ===================================================================== */

typedef void (*ref_fn)(long double x, long double out[3]);
typedef int (*dom_fn)(double x);

typedef struct unary_case {
    const char *name;
    tu_unary op;
    ref_fn ref;          /* f, f', f'' at x in long double */
    dom_fn dom;          /* open domain for finite differences; NULL: all reals */
    const double *pts;
    size_t npts;
    double xrec;         /* one recording point for the replay test */
    double val_tol;
} unary_case;

static void ref_neg(long double x, long double o[3]) { o[0] = -x; o[1] = -1; o[2] = 0; }
static void ref_sqr(long double x, long double o[3]) { o[0] = x * x; o[1] = 2 * x; o[2] = 2; }
static void ref_sqrt(long double x, long double o[3])
{
    long double s = sqrtl(x);
    o[0] = s; o[1] = 0.5L / s; o[2] = -0.25L / (x * s);
}
static void ref_cbrt(long double x, long double o[3])
{
    long double c = cbrtl(x);
    o[0] = c; o[1] = 1.0L / (3 * c * c); o[2] = -2.0L / (9 * x * c * c);
}
static void ref_exp(long double x, long double o[3]) { o[0] = o[1] = o[2] = expl(x); }
static void ref_expm1(long double x, long double o[3]) { o[0] = expm1l(x); o[1] = o[2] = expl(x); }
static void ref_log(long double x, long double o[3]) { o[0] = logl(x); o[1] = 1 / x; o[2] = -1 / (x * x); }
static void ref_log1p(long double x, long double o[3])
{
    long double u = 1 + x; /* exact in long double for the points used */
    o[0] = log1pl(x); o[1] = 1 / u; o[2] = -1 / (u * u);
}
static void ref_sin(long double x, long double o[3]) { o[0] = sinl(x); o[1] = cosl(x); o[2] = -sinl(x); }
static void ref_cos(long double x, long double o[3]) { o[0] = cosl(x); o[1] = -sinl(x); o[2] = -cosl(x); }
static void ref_tan(long double x, long double o[3])
{
    long double t = tanl(x);
    o[0] = t; o[1] = 1 + t * t; o[2] = 2 * t * (1 + t * t);
}
static void ref_asin(long double x, long double o[3])
{
    long double d = (1 - x) * (1 + x); /* no cancellation near ±1 */
    o[0] = asinl(x); o[1] = 1 / sqrtl(d); o[2] = x / (d * sqrtl(d));
}
static void ref_acos(long double x, long double o[3])
{
    long double d = (1 - x) * (1 + x);
    o[0] = acosl(x); o[1] = -1 / sqrtl(d); o[2] = -x / (d * sqrtl(d));
}
static void ref_atan(long double x, long double o[3])
{
    long double d = 1 + x * x;
    o[0] = atanl(x); o[1] = 1 / d; o[2] = -2 * x / (d * d);
}
static void ref_sinh(long double x, long double o[3]) { o[0] = sinhl(x); o[1] = coshl(x); o[2] = sinhl(x); }
static void ref_cosh(long double x, long double o[3]) { o[0] = coshl(x); o[1] = sinhl(x); o[2] = coshl(x); }
static void ref_tanh(long double x, long double o[3])
{
    long double t = tanhl(x), c = coshl(x), s2 = 1 / (c * c); /* sech², no 1 − t² */
    o[0] = t; o[1] = s2; o[2] = -2 * t * s2;
}
static void ref_erf(long double x, long double o[3])
{
    long double k = 2 / sqrtl(3.14159265358979323846264338327950288L) * expl(-x * x);
    o[0] = erfl(x); o[1] = k; o[2] = -2 * x * k;
}
static void ref_abs(long double x, long double o[3])
{
    o[0] = fabsl(x); o[1] = x > 0 ? 1 : (x < 0 ? -1 : 0); o[2] = 0;
}
/* sigmoid with e = exp(−|x|) so nothing cancels or overflows. */
static void sigmoid_parts(long double x, long double *s, long double *d1, long double *d2)
{
    long double e = expl(-fabsl(x)), q = 1 + e, em1 = expm1l(-fabsl(x)); /* e − 1, no cancellation */
    if (x >= 0) {
        *s = 1 / q;
        *d2 = e * em1 / (q * q * q);
    } else {
        *s = e / q;
        *d2 = -e * em1 / (q * q * q);
    }
    *d1 = e / (q * q);
}
static void ref_sigmoid(long double x, long double o[3]) { sigmoid_parts(x, &o[0], &o[1], &o[2]); }
static void ref_softplus(long double x, long double o[3])
{
    long double s, d1, d2;
    sigmoid_parts(x, &s, &d1, &d2);
    o[0] = (x > 0 ? x : 0) + log1pl(expl(-fabsl(x)));
    o[1] = s;
    o[2] = d1;
}

static int dom_pos(double x) { return x > 0; }
static int dom_nonzero(double x) { return x != 0; }
static int dom_gtm1(double x) { return x > -1; }
static int dom_unit(double x) { return x > -1 && x < 1; }
static int dom_tan(double x) { return fabs(x) < 1.5707963; }

#define PTS(name, ...) static const double name[] = {__VA_ARGS__}
PTS(p_all, -3.7, -2.0, -1.25, -0.5, -1e-3, 0.0, 1e-3, 0.3, 0.5, 1.0, 1.7, 2.5, 4.0, 1e5, -1e5);
PTS(p_sqrt, 1e-100, 1e-10, 0.01, 0.5, 1.0, 2.0, 3.7, 100.0, 1e100);
PTS(p_cbrt, -1e5, -8.0, -0.3, -1e-10, 1e-10, 0.3, 1.0, 2.0, 27.0, 1e100);
PTS(p_exp, -700.0, -30.0, -1.0, -1e-10, 0.0, 1e-10, 1.0, 2.5, 30.0, 700.0);
PTS(p_expm1, -40.0, -1.0, -1e-5, -1e-10, -1e-300, 0.0, 1e-300, 1e-10, 1e-5, 0.5, 3.0, 700.0);
PTS(p_log, 1e-100, 1e-5, 0.5, 1.0, 1.0 + 0x1p-40, 2.0, 3.7, 1e100);
PTS(p_log1p, -0.99, -0.5, -1e-5, -1e-10, -1e-300, 0.0, 1e-300, 1e-10, 1e-5, 0.5, 3.0, 1e10);
PTS(p_trig, -10.0, -3.0, -1.0, -1e-10, 0.0, 1e-10, 0.5, 1.0, 2.0, 3.0, 100.0);
PTS(p_tan, -1.5, -1.0, -0.3, 0.0, 1e-10, 0.5, 1.0, 1.5);
PTS(p_unit, -1.0 + 1e-12, -0.999, -0.5, -1e-10, 0.0, 0.3, 0.9, 0.999999, 1.0 - 1e-12);
PTS(p_atan, -1e10, -3.0, -1.0, 0.0, 1e-10, 0.5, 2.0, 1e10);
PTS(p_hyp, -700.0, -30.0, -1.0, -1e-10, 0.0, 1e-10, 1.0, 30.0, 700.0);
PTS(p_tanh, -20.0, -5.0, -1.0, -1e-10, 0.0, 1e-10, 0.5, 1.0, 5.0, 20.0, 30.0);
PTS(p_erf, -6.0, -3.0, -1.0, -1e-10, 0.0, 1e-10, 0.5, 1.0, 3.0, 6.0);
PTS(p_abs, -3.0, -1e-300, 0.0, 1e-300, 0.5, 2.0);
PTS(p_sig, -700.0, -40.0, -30.0, -5.0, -1.0, -0.5, -1e-3, -1e-10, 0.0, 1e-10, 1e-3, 0.5, 1.0, 5.0, 30.0,
    40.0, 700.0);

#define NPTS(a) (sizeof(a) / sizeof((a)[0]))
#define UCASE(nm, dom, pts, xrec, vt) \
    static const unary_case case_##nm = {#nm, ad_##nm, ref_##nm, dom, pts, NPTS(pts), xrec, vt}

UCASE(neg, NULL, p_all, 0.7, VAL_TOL);
UCASE(sqr, NULL, p_all, 0.7, VAL_TOL);
UCASE(sqrt, dom_pos, p_sqrt, 0.7, VAL_TOL);
UCASE(cbrt, dom_nonzero, p_cbrt, 0.7, VAL_TOL);
UCASE(exp, NULL, p_exp, 0.7, VAL_TOL);
UCASE(expm1, NULL, p_expm1, 0.7, VAL_TOL);
UCASE(log, dom_pos, p_log, 0.7, VAL_TOL);
UCASE(log1p, dom_gtm1, p_log1p, 0.7, VAL_TOL);
UCASE(sin, NULL, p_trig, 0.7, VAL_TOL);
UCASE(cos, NULL, p_trig, 0.7, VAL_TOL);
UCASE(tan, dom_tan, p_tan, 0.7, VAL_TOL);
UCASE(asin, dom_unit, p_unit, 0.7, VAL_TOL);
UCASE(acos, dom_unit, p_unit, 0.7, VAL_TOL);
UCASE(atan, NULL, p_atan, 0.7, VAL_TOL);
UCASE(sinh, NULL, p_hyp, 0.7, VAL_TOL);
UCASE(cosh, NULL, p_hyp, 0.7, VAL_TOL);
UCASE(tanh, NULL, p_tanh, 0.7, VAL_TOL);
UCASE(erf, NULL, p_erf, 0.7, VAL_TOL);
UCASE(abs, NULL, p_abs, 0.7, 0.0);
UCASE(sigmoid, NULL, p_sig, 0.7, 8 * TU_ULP);
UCASE(softplus, NULL, p_sig, 0.7, 8 * TU_ULP);

/* Checks one tape (one input, already recorded) at x against c's reference. */
static void check_unary_at(ad_tape *t, const unary_case *c, double x)
{
    long double r[3];
    c->ref(x, r);
    double f0 = (double)r[0], f1 = (double)r[1], f2 = (double)r[2];
    double f = NAN, g = NAN, H = NAN, vhw = NAN, hv = NAN;
    double one = 1.0, two = 2.0, m3 = -3.0;

    assert_ok(ad_eval(t, &x, &f));
    assert_close_ctx(f, f0, c->val_tol, 0.0, "%s value (ad_eval) at x=%.17g\n", c->name, x);
    f = NAN;
    assert_ok(ad_gradient(t, &x, &f, &g));
    assert_close_ctx(f, f0, c->val_tol, 0.0, "%s value (ad_gradient) at x=%.17g\n", c->name, x);
    assert_close_ctx(g, f1, DER_TOL, 0.0, "%s first derivative (ad_gradient) at x=%.17g\n", c->name, x);
    assert_ok(ad_hessian(t, &x, &H));
    assert_close_ctx(H, f2, DER_TOL, 0.0, "%s second derivative (ad_hessian) at x=%.17g\n", c->name, x);
    assert_ok(ad_hess_form(t, &x, &one, &one, &vhw));
    assert_close_ctx(vhw, f2, DER_TOL, 0.0, "%s second derivative (ad_hess_form) at x=%.17g\n", c->name, x);
    assert_ok(ad_hess_form(t, &x, &two, &m3, &vhw));
    assert_close_ctx(vhw, -6.0 * f2, DER_TOL, 0.0, "%s 2·f''·(−3) (ad_hess_form) at x=%.17g\n", c->name, x);
    assert_ok(ad_hvp(t, &x, &one, &hv));
    assert_close_ctx(hv, f2, DER_TOL, 0.0, "%s second derivative (ad_hvp) at x=%.17g\n", c->name, x);
}

static void run_unary(void **state)
{
    const unary_case *c = *state;
    ad_tape *t = ad_tape_new();
    assert_non_null(t);

    /* A fresh recording at each point; ad_value sees the recording value. */
    for (size_t i = 0; i < c->npts; i++) {
        double x = c->pts[i];
        long double r[3];
        c->ref(x, r);
        assert_ok(ad_record_begin(t));
        ad_var y = c->op(ad_input(x));
        double v = ad_value(y);
        ad_output(y);
        assert_ok(ad_record_end(t));
        assert_close_ctx(v, (double)r[0], c->val_tol, 0.0, "%s ad_value at x=%.17g\n", c->name, x);
        check_unary_at(t, c, x);
    }

    /* One recording replayed at every point. */
    assert_ok(tu_record_unary(t, c->op, c->xrec));
    for (size_t i = 0; i < c->npts; i++)
        check_unary_at(t, c, c->pts[i]);

    /* Second opinion: central differences of f and of f' (loose). */
    for (size_t i = 0; i < c->npts; i++) {
        double x = c->pts[i];
        if (fabs(x) < 0.1 || fabs(x) > 10)
            continue;
        double h = 1e-5 * fabs(x);
        if (c->dom && !(c->dom(x - 5000 * h) && c->dom(x + 5000 * h))) /* far from edges */
            continue;
        double xp = x + h, xm = x - h, fp, fm, gp, gm, g, f2;
        assert_ok(ad_gradient(t, &xp, &fp, &gp));
        assert_ok(ad_gradient(t, &xm, &fm, &gm));
        assert_ok(ad_gradient(t, &x, NULL, &g));
        assert_ok(ad_hessian(t, &x, &f2));
        /* truncation (relative 1e-6) plus the rounding of f and g over 2h */
        double f0;
        assert_ok(ad_eval(t, &x, &f0));
        double sc1 = fabs(g) + fabs(f2) + 1e-3 + 1e-4 * fabs(f0) / h;
        double sc2 = fabs(g) + fabs(f2) + 1e-3 + 1e-4 * fabs(g) / h;
        assert_close_ctx((fp - fm) / (2 * h), g, 1e-6, sc1, "%s fd f' at %g\n", c->name, x);
        assert_close_ctx((gp - gm) / (2 * h), f2, 1e-6, sc2, "%s fd f'' at %g\n", c->name, x);
    }
    ad_tape_free(t);
}

/* ===================================================================== */
/* Binary ops                                                            */
/* ===================================================================== */

/* out: f, fa, fb, faa, fab, fbb; *fab_scale: scale for the fab check when
 * the closed form cancels (atan2), else 0. */
typedef void (*ref2_fn)(long double a, long double b, long double out[6], double *fab_scale);

typedef struct binary_case {
    const char *name;
    tu_binary op;
    ref2_fn ref;
    const double (*pts)[2];
    size_t npts;
} binary_case;

static void ref2_add(long double a, long double b, long double o[6], double *sc)
{
    o[0] = a + b; o[1] = 1; o[2] = 1; o[3] = o[4] = o[5] = 0; *sc = 0;
}
static void ref2_sub(long double a, long double b, long double o[6], double *sc)
{
    o[0] = a - b; o[1] = 1; o[2] = -1; o[3] = o[4] = o[5] = 0; *sc = 0;
}
static void ref2_mul(long double a, long double b, long double o[6], double *sc)
{
    o[0] = a * b; o[1] = b; o[2] = a; o[3] = 0; o[4] = 1; o[5] = 0; *sc = 0;
}
static void ref2_div(long double a, long double b, long double o[6], double *sc)
{
    o[0] = a / b; o[1] = 1 / b; o[2] = -a / (b * b);
    o[3] = 0; o[4] = -1 / (b * b); o[5] = 2 * a / (b * b * b); *sc = 0;
}
static void ref2_pow(long double a, long double b, long double o[6], double *sc)
{
    long double p = powl(a, b), l = logl(a);
    o[0] = p; o[1] = b * powl(a, b - 1); o[2] = p * l;
    o[3] = b * (b - 1) * powl(a, b - 2);
    o[4] = powl(a, b - 1) * (1 + b * l);
    o[5] = p * l * l; *sc = 0;
}
static void ref2_atan2(long double a, long double b, long double o[6], double *sc)
{
    long double r2 = a * a + b * b, r4 = r2 * r2;
    o[0] = atan2l(a, b); o[1] = b / r2; o[2] = -a / r2;
    o[3] = -2 * a * b / r4; o[4] = (a * a - b * b) / r4; o[5] = 2 * a * b / r4;
    *sc = (double)(1 / r2); /* a² − b² cancels when |a| ≈ |b| */
}
static void ref2_hypot(long double a, long double b, long double o[6], double *sc)
{
    long double h = hypotl(a, b), h3 = h * h * h;
    o[0] = h; o[1] = a / h; o[2] = b / h;
    o[3] = b * b / h3; o[4] = -a * b / h3; o[5] = a * a / h3; *sc = 0;
}
static void ref2_fmax(long double a, long double b, long double o[6], double *sc)
{
    int pa = a >= b; /* ties pick a */
    o[0] = pa ? a : b; o[1] = pa; o[2] = !pa; o[3] = o[4] = o[5] = 0; *sc = 0;
}
static void ref2_fmin(long double a, long double b, long double o[6], double *sc)
{
    int pa = a <= b;
    o[0] = pa ? a : b; o[1] = pa; o[2] = !pa; o[3] = o[4] = o[5] = 0; *sc = 0;
}

static const double p2_all[][2] = {
    {1.5, 2.5}, {-0.7, 3.1}, {2.0, -0.25}, {-3.0, -4.5}, {1e-10, 2.0},
    {1e5, -1e-3}, {0.3, 0.3}, {-2.0, 7.0}, {0.0, 1.0}, {1e-300, 1.0}};
static const double p2_pow[][2] = {
    {1.5, 2.5}, {0.7, 3.1}, {2.0, -0.25}, {3.0, -4.5}, {1e-3, 2.0},
    {1e5, -1e-3}, {0.3, 0.3}, {2.0, 7.0}, {5.0, 0.0}, {1.0, 3.0}, {0.5, -1.0}};
static const double p2_minmax[][2] = {
    {1.5, 2.5}, {2.5, 1.5}, {-1.0, -1.0}, {0.0, 0.0}, {-3.0, 4.0}, {4.0, -3.0}};
/* atan2 all around the circle, including the axes. */
static const double p2_atan2[][2] = {
    {1.0, 2.0}, {2.0, 1.0}, {-1.0, 2.0}, {1.0, -2.0}, {-2.0, -1.0}, {0.0, 1.0},
    {0.0, -1.0}, {1.0, 0.0}, {-1.0, 0.0}, {1e-10, 1.0}, {3.0, 3.0 + 1e-9}, {1e5, 3.0}};

#define BCASE(nm, pts) \
    static const binary_case bcase_##nm = {#nm, ad_##nm, ref2_##nm, pts, NPTS(pts)}
BCASE(add, p2_all);
BCASE(sub, p2_all);
BCASE(mul, p2_all);
BCASE(div, p2_all);
BCASE(pow, p2_pow);
BCASE(atan2, p2_atan2);
BCASE(hypot, p2_all);
BCASE(fmax, p2_minmax);
BCASE(fmin, p2_minmax);

static void check_binary_at(ad_tape *t, const binary_case *c, double a, double b)
{
    long double r[6];
    double sc;
    c->ref(a, b, r, &sc);
    double x[2] = {a, b}, f = NAN, g[2], H[4], hv[2], vhw;
    static const double e[2][2] = {{1, 0}, {0, 1}};
    double want_H[4] = {(double)r[3], (double)r[4], (double)r[4], (double)r[5]};
    double scale[4] = {0, sc, sc, 0};

    assert_ok(ad_eval(t, x, &f));
    assert_close_ctx(f, (double)r[0], VAL_TOL, 0.0, "%s value at (%.17g, %.17g)\n", c->name, a, b);
    assert_ok(ad_gradient(t, x, &f, g));
    for (int i = 0; i < 2; i++)
        assert_close_ctx(g[i], (double)r[1 + i], DER_TOL, 0.0, "%s g[%d] at (%.17g, %.17g)\n",
                         c->name, i, a, b);
    assert_ok(ad_hessian(t, x, H));
    for (int i = 0; i < 4; i++)
        assert_close_ctx(H[i], want_H[i], DER_TOL, scale[i], "%s ad_hessian[%d] at (%.17g, %.17g)\n",
                         c->name, i, a, b);
    for (int i = 0; i < 2; i++) {
        assert_ok(ad_hvp(t, x, e[i], hv));
        for (int j = 0; j < 2; j++)
            assert_close_ctx(hv[j], want_H[2 * j + i], DER_TOL, scale[2 * j + i],
                             "%s ad_hvp e%d [%d] at (%.17g, %.17g)\n", c->name, i, j, a, b);
        for (int j = 0; j < 2; j++) {
            assert_ok(ad_hess_form(t, x, e[i], e[j], &vhw));
            assert_close_ctx(vhw, want_H[2 * i + j], DER_TOL, scale[2 * i + j],
                             "%s ad_hess_form e%d,e%d at (%.17g, %.17g)\n", c->name, i, j, a, b);
        }
    }
}

static void run_binary(void **state)
{
    const binary_case *c = *state;
    ad_tape *t = ad_tape_new();
    assert_non_null(t);
    for (size_t i = 0; i < c->npts; i++) {
        double a = c->pts[i][0], b = c->pts[i][1];
        long double r[6];
        double sc;
        c->ref(a, b, r, &sc);
        assert_ok(ad_record_begin(t));
        ad_var ia = ad_input(a); /* inputs in order: argument order is unspecified */
        ad_var ib = ad_input(b);
        ad_var y = c->op(ia, ib);
        double v = ad_value(y);
        ad_output(y);
        assert_ok(ad_record_end(t));
        assert_close_ctx(v, (double)r[0], VAL_TOL, 0.0, "%s ad_value at (%g, %g)\n", c->name, a, b);
        check_binary_at(t, c, a, b);
    }
    /* One recording replayed everywhere (fmax/fmin choose at replay). */
    assert_ok(tu_record_binary(t, c->op, c->pts[0][0], c->pts[0][1]));
    for (size_t i = 0; i < c->npts; i++)
        check_binary_at(t, c, c->pts[i][0], c->pts[i][1]);
    ad_tape_free(t);
}

/* pow(0, b) with b > 0 is in the domain: its value is 0. */
static void pow_at_zero_base_has_value_zero(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_non_null(t);
    static const double bs[] = {0.5, 1.0, 2.0, 3.5};
    for (size_t i = 0; i < NPTS(bs); i++) {
        double x[2] = {0.0, bs[i]}, f = NAN;
        assert_ok(tu_record_binary(t, ad_pow, x[0], x[1]));
        assert_ok(ad_eval(t, x, &f));
        assert_true(f == 0.0);
    }
    ad_tape_free(t);
}

/* ===================================================================== */
/* Constant-argument ops                                                 */
/* ===================================================================== */

static double g_c;
static int g_n;
static ad_var op_addc(ad_var a) { return ad_addc(a, g_c); }
static ad_var op_mulc(ad_var a) { return ad_mulc(a, g_c); }
static ad_var op_powc(ad_var a) { return ad_powc(a, g_c); }
static ad_var op_csub(ad_var a) { return ad_csub(g_c, a); }
static ad_var op_cdiv(ad_var a) { return ad_cdiv(g_c, a); }
static ad_var op_powi(ad_var a) { return ad_powi(a, g_n); }
static ad_var op_addconst(ad_var a) { return ad_add(a, ad_const(g_c)); }
static ad_var op_mulconst(ad_var a) { return ad_mul(ad_const(g_c), a); }

static void ref_addc(long double x, long double o[3]) { o[0] = x + g_c; o[1] = 1; o[2] = 0; }
static void ref_mulc(long double x, long double o[3]) { o[0] = x * g_c; o[1] = g_c; o[2] = 0; }
static void ref_powc(long double x, long double o[3])
{
    long double c = g_c;
    o[0] = powl(x, c); o[1] = c * powl(x, c - 1); o[2] = c * (c - 1) * powl(x, c - 2);
}
static void ref_csub(long double x, long double o[3]) { o[0] = g_c - x; o[1] = -1; o[2] = 0; }
static void ref_cdiv(long double x, long double o[3])
{
    long double c = g_c;
    o[0] = c / x; o[1] = -c / (x * x); o[2] = 2 * c / (x * x * x);
}
/* x^k for any integer k with x^0 = 1 (also at x = 0). */
static long double ipowl(long double x, int k)
{
    long double r = 1;
    for (int i = 0; i < (k < 0 ? -k : k); i++)
        r *= x;
    return k < 0 ? 1 / r : r;
}
static void ref_powi(long double x, long double o[3])
{
    int n = g_n;
    o[0] = ipowl(x, n);
    o[1] = n == 0 ? 0 : n * ipowl(x, n - 1);
    o[2] = (n == 0 || n == 1) ? 0 : (long double)n * (n - 1) * ipowl(x, n - 2);
}

static void check_const_op(const char *name, tu_unary op, ref_fn ref, const double *pts,
                           size_t npts, double vtol)
{
    unary_case c = {name, op, ref, NULL, pts, npts, pts[0], vtol};
    void *st = &c;
    run_unary(&st);
}

static void constant_ops_match_closed_form(void **state)
{
    (void)state;
    static const double cs[] = {0.0, 1.0, -2.5, 3e10, 1e-7};
    for (size_t i = 0; i < NPTS(cs); i++) {
        g_c = cs[i];
        check_const_op("addc", op_addc, ref_addc, p_all, NPTS(p_all), VAL_TOL);
        check_const_op("mulc", op_mulc, ref_mulc, p_all, NPTS(p_all), VAL_TOL);
        check_const_op("csub", op_csub, ref_csub, p_all, NPTS(p_all), VAL_TOL);
        check_const_op("add(x, const)", op_addconst, ref_addc, p_all, NPTS(p_all), VAL_TOL);
        check_const_op("mul(const, x)", op_mulconst, ref_mulc, p_all, NPTS(p_all), VAL_TOL);
        if (cs[i] != 0.0) {
            static const double p_nz[] = {-3.7, -0.5, -1e-3, 1e-3, 0.3, 1.0, 2.5, 1e5};
            check_const_op("cdiv", op_cdiv, ref_cdiv, p_nz, NPTS(p_nz), VAL_TOL);
        }
    }
    static const double pc[] = {0.5, -0.5, 1.5, 2.0, 3.0, -1.0, 0.0, 1.0, 7.25};
    for (size_t i = 0; i < NPTS(pc); i++) {
        g_c = pc[i];
        check_const_op("powc", op_powc, ref_powc, p_sqrt, NPTS(p_sqrt) - 1 /* no 1e100 */, VAL_TOL);
    }
}

static void powi_matches_closed_form(void **state)
{
    (void)state;
    static const double p_nz[] = {-3.7, -2.0, -0.5, -1e-3, 1e-3, 0.3, 1.0, 1.7, 2.5};
    static const double p_z[] = {-3.7, -2.0, -0.5, -1e-3, 0.0, 1e-3, 0.3, 1.0, 1.7, 2.5};
    static const int ns[] = {-5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 12};
    for (size_t i = 0; i < NPTS(ns); i++) {
        g_n = ns[i];
        /* Products of up to 12 roundings. */
        if (g_n >= 0)
            check_const_op("powi", op_powi, ref_powi, p_z, NPTS(p_z), 16 * TU_ULP);
        else
            check_const_op("powi", op_powi, ref_powi, p_nz, NPTS(p_nz), 16 * TU_ULP);
    }
}

/* powi at 0: 0^0 = 1 and the derivatives of x, x², x³ at 0 are exact. */
static void powi_at_zero_is_exact(void **state)
{
    (void)state;
    static const struct { int n; double f, d1, d2; } cs[] = {
        {0, 1, 0, 0}, {1, 0, 1, 0}, {2, 0, 0, 2}, {3, 0, 0, 0}, {4, 0, 0, 0}};
    ad_tape *t = ad_tape_new();
    assert_non_null(t);
    for (size_t i = 0; i < NPTS(cs); i++) {
        g_n = cs[i].n;
        for (int rec = 0; rec < 2; rec++) {
            /* recorded at 0, and recorded at 1 then replayed at 0 */
            assert_ok(tu_record_unary(t, op_powi, rec ? 1.0 : 0.0));
            double x = 0.0, f = NAN, g = NAN, H = NAN, one = 1.0, vhw = NAN, hv = NAN;
            assert_ok(ad_gradient(t, &x, &f, &g));
            assert_ok(ad_hessian(t, &x, &H));
            assert_ok(ad_hess_form(t, &x, &one, &one, &vhw));
            assert_ok(ad_hvp(t, &x, &one, &hv));
            if (f != cs[i].f || g != cs[i].d1 || H != cs[i].d2 || vhw != cs[i].d2 || hv != cs[i].d2) {
                print_error("powi(x,%d) at 0: f=%g g=%g H=%g hess_form=%g hvp=%g; want %g %g %g\n",
                            cs[i].n, f, g, H, vhw, hv, cs[i].f, cs[i].d1, cs[i].d2);
                fail();
            }
        }
    }
    ad_tape_free(t);
}

/* powc with an integer-valued exponent at 0 behaves like powi: exact. */
static void powc_integer_exponent_at_zero_is_exact(void **state)
{
    (void)state;
    static const struct { double c, f, d1, d2; } cs[] = {
        {0, 1, 0, 0}, {1, 0, 1, 0}, {2, 0, 0, 2}, {3, 0, 0, 0}};
    ad_tape *t = ad_tape_new();
    for (size_t i = 0; i < NPTS(cs); i++) {
        g_c = cs[i].c;
        assert_ok(tu_record_unary(t, op_powc, 1.0));
        double x = 0.0, f = NAN, g = NAN, H = NAN, one = 1.0, vhw = NAN, hv = NAN;
        ad_status s1 = ad_gradient(t, &x, &f, &g), s2 = ad_hessian(t, &x, &H);
        ad_status s3 = ad_hess_form(t, &x, &one, &one, &vhw), s4 = ad_hvp(t, &x, &one, &hv);
        if (s1 || s2 || s3 || s4 || f != cs[i].f || g != cs[i].d1 || H != cs[i].d2 || vhw != cs[i].d2 ||
            hv != cs[i].d2) {
            print_error("powc(x,%g) at 0: status %d %d %d %d, f=%g g=%g H=%g hess_form=%g hvp=%g; "
                        "want %g %g %g\n", cs[i].c, s1, s2, s3, s4, f, g, H, vhw, hv, cs[i].f,
                        cs[i].d1, cs[i].d2);
            fail();
        }
    }
    ad_tape_free(t);
}

/* pow(a, b) at a = 0, b > 0 (in the header's domain): the derivatives are
 * the limits a → 0+, finite where the limits are. */
static void pow_at_zero_base_derivatives_are_limits(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    double f, g[2], H[4];
    /* b = 2: f = 0, g = (0, 0), H = [[2, 0], [0, 0]] */
    double x2[2] = {0.0, 2.0};
    assert_ok(tu_record_binary(t, ad_pow, 0.5, 2.0));
    assert_ok(ad_gradient(t, x2, &f, g));
    assert_true(f == 0 && g[0] == 0 && g[1] == 0);
    assert_ok(ad_hessian(t, x2, H));
    assert_true(H[0] == 2 && H[1] == 0 && H[2] == 0 && H[3] == 0);
    /* b = 3: all zero */
    double x3[2] = {0.0, 3.0};
    assert_ok(ad_hessian(t, x3, H));
    assert_true(H[0] == 0 && H[1] == 0 && H[2] == 0 && H[3] == 0);
    /* b = 1.5: gradient (0, 0); ∂²/∂a² = 0.75 a^−0.5 → ∞: not finite */
    double x15[2] = {0.0, 1.5};
    assert_ok(ad_gradient(t, x15, &f, g));
    assert_true(f == 0 && g[0] == 0 && g[1] == 0);
    assert_status(ad_hessian(t, x15, H), AD_EDOMAIN);
    /* b = 1: gradient (1, 0); ∂²/∂a∂b = 1 + log a → −∞ */
    double x1[2] = {0.0, 1.0};
    assert_ok(ad_gradient(t, x1, &f, g));
    assert_true(f == 0 && g[0] == 1 && g[1] == 0);
    assert_status(ad_hessian(t, x1, H), AD_EDOMAIN);
    ad_tape_free(t);
}

/* ===================================================================== */
/* Named accuracy cases (also covered by the tables, stated explicitly)  */
/* ===================================================================== */

static void expect_unary(tu_unary op, double x, double f0, double f1, double f2, double tol,
                         const char *what)
{
    ad_tape *t = ad_tape_new();
    assert_non_null(t);
    assert_ok(tu_record_unary(t, op, x));
    double f, g, H, one = 1.0, vhw;
    assert_ok(ad_gradient(t, &x, &f, &g));
    assert_ok(ad_hessian(t, &x, &H));
    assert_ok(ad_hess_form(t, &x, &one, &one, &vhw));
    assert_close_ctx(f, f0, tol, 0.0, "%s: value\n", what);
    assert_close_ctx(g, f1, tol, 0.0, "%s: first derivative\n", what);
    assert_close_ctx(H, f2, tol, 0.0, "%s: second derivative (hessian)\n", what);
    assert_close_ctx(vhw, f2, tol, 0.0, "%s: second derivative (hess_form)\n", what);
    ad_tape_free(t);
}

static void sigmoid_tails_do_not_underflow(void **state)
{
    (void)state;
    /* sigmoid'(40) = e^-40/(1+e^-40)^2 = 4.2483542552915889e-18 */
    double e40 = exp(-40.0);
    expect_unary(ad_sigmoid, 40.0, 1.0, e40, -e40, 1e-14, "sigmoid(40)");
    expect_unary(ad_sigmoid, -40.0, e40, e40, e40, 1e-14, "sigmoid(-40)");
    double e700 = exp(-700.0);
    expect_unary(ad_sigmoid, 700.0, 1.0, e700, -e700, 1e-14, "sigmoid(700)");
    expect_unary(ad_sigmoid, -700.0, e700, e700, e700, 1e-14, "sigmoid(-700)");
    assert_close(e40, 4.2483542552915889e-18, 1e-15);
}

static void softplus_tails_are_accurate(void **state)
{
    (void)state;
    double e40 = exp(-40.0), e700 = exp(-700.0);
    expect_unary(ad_softplus, 40.0, 40.0, 1.0, e40, 1e-14, "softplus(40)");
    expect_unary(ad_softplus, -40.0, e40, e40, e40, 1e-14, "softplus(-40)");
    expect_unary(ad_softplus, 700.0, 700.0, 1.0, e700, 1e-14, "softplus(700)");
    expect_unary(ad_softplus, -700.0, e700, e700, e700, 1e-14, "softplus(-700)");
    /* at 30: 30 + log1p(e^-30), and the curvature e^-30 (1e-13), not 0 */
    double e30 = exp(-30.0);
    expect_unary(ad_softplus, 30.0, 30.0 + e30, 1.0 / (1.0 + e30), e30 / ((1 + e30) * (1 + e30)),
                 1e-14, "softplus(30)");
}

static void log1p_expm1_near_zero_are_accurate(void **state)
{
    (void)state;
    expect_unary(ad_log1p, 1e-10, 9.9999999995000000e-11, 1.0 / (1.0 + 1e-10),
                 -1.0 / ((1.0 + 1e-10) * (1.0 + 1e-10)), 4 * TU_ULP, "log1p(1e-10)");
    expect_unary(ad_log1p, 1e-300, 1e-300, 1.0, -1.0, 4 * TU_ULP, "log1p(1e-300)");
    expect_unary(ad_expm1, 1e-10, 1.00000000005e-10, exp(1e-10), exp(1e-10), 4 * TU_ULP, "expm1(1e-10)");
    expect_unary(ad_expm1, 1e-300, 1e-300, 1.0, 1.0, 4 * TU_ULP, "expm1(1e-300)");
}

static void asin_acos_near_one_do_not_cancel(void **state)
{
    (void)state;
    double x = 1.0 - 1e-12;
    long double d = (1.0L - x) * (1.0L + x);
    double d1 = (double)(1 / sqrtl(d)), d2 = (double)(x / (d * sqrtl(d)));
    expect_unary(ad_asin, x, (double)asinl(x), d1, d2, 8 * TU_ULP, "asin(1-1e-12)");
    expect_unary(ad_acos, x, (double)acosl(x), -d1, -d2, 8 * TU_ULP, "acos(1-1e-12)");
    expect_unary(ad_asin, -x, (double)asinl(-x), d1, -d2, 8 * TU_ULP, "asin(-1+1e-12)");
    expect_unary(ad_acos, -x, (double)acosl(-x), -d1, d2, 8 * TU_ULP, "acos(-1+1e-12)");
}

static void tanh_derivative_at_20_is_not_zero(void **state)
{
    (void)state;
    long double c = coshl(20.0L), s2 = 1 / (c * c);
    /* sech²(20) ≈ 1.7e-17 */
    assert_true(s2 > 1.6e-17 && s2 < 1.8e-17);
    expect_unary(ad_tanh, 20.0, 1.0, (double)s2, (double)(-2 * tanhl(20.0L) * s2), 8 * TU_ULP,
                 "tanh(20)");
    expect_unary(ad_tanh, -20.0, -1.0, (double)s2, (double)(2 * tanhl(20.0L) * s2), 8 * TU_ULP,
                 "tanh(-20)");
}

/* ===================================================================== */
/* Vector nodes                                                          */
/* ===================================================================== */

typedef struct vec_ctx {
    int kind;            /* 0 sum, 1 dot, 2 dotv, 3 matvec, 4 spmv */
    size_t m, n;
    const double *c;     /* dot coefficients / dense A (m×n) */
    const ad_csr *csr;
} vec_ctx;

/* kind 0: f = (Σx)²;  kind 1: f = sin(cᵀx);  kind 2: f = Σ x_i x_{n/2+i} (n even);
 * kinds 3, 4: y = A x, f = ½‖y‖² + Σ exp(y_i/4). */
static ad_var vec_fn(const ad_var *x, size_t n, void *vctx)
{
    const vec_ctx *c = vctx;
    switch (c->kind) {
    case 0: return ad_sqr(ad_sum(n, x));
    case 1: return ad_sin(ad_dot(n, x, c->c));
    case 2: return ad_dotv(n / 2, x, x + n / 2);
    default: {
        ad_var y[64], terms[128];
        if (c->kind == 3)
            ad_matvec(c->m, n, c->c, x, y);
        else
            ad_spmv(c->m, n, c->csr, x, y);
        for (size_t i = 0; i < c->m; i++) {
            terms[i] = ad_mulc(ad_sqr(y[i]), 0.5);
            terms[c->m + i] = ad_exp(ad_mulc(y[i], 0.25));
        }
        return ad_sum(2 * c->m, terms);
    }
    }
}

/* Hand formulas for f, g, H of vec_fn (A dense, m×n, in Ad for kinds 3, 4),
 * in long double, with the scale of each entry: the sum of the absolute
 * values of the terms it adds (what summation order can change). */
enum { VMAX = 96 };
static void vec_ref(const vec_ctx *c, const double *Ad, const double *x, size_t n, double *f,
                    double *fsc, double *g, double *gsc, double *H, double *hsc)
{
    memset(H, 0, n * n * sizeof *H);
    memset(hsc, 0, n * n * sizeof *hsc);
    switch (c->kind) {
    case 0: {
        long double s = 0, sa = 0;
        for (size_t i = 0; i < n; i++) { s += x[i]; sa += fabs(x[i]); }
        *f = (double)(s * s); *fsc = (double)(sa * sa);
        for (size_t i = 0; i < n; i++) {
            g[i] = (double)(2 * s); gsc[i] = (double)(2 * sa);
            for (size_t j = 0; j < n; j++) H[i * n + j] = 2;
        }
        break;
    }
    case 1: {
        long double s = 0, sa = 0, cm = 0;
        for (size_t i = 0; i < n; i++) {
            s += (long double)c->c[i] * x[i];
            sa += fabsl((long double)c->c[i] * x[i]);
            if (fabs(c->c[i]) > cm) cm = fabs(c->c[i]);
        }
        /* an error δ in s moves sin(s), cos(s) by about δ */
        *f = (double)sinl(s); *fsc = (double)(fabsl(sinl(s)) + sa);
        for (size_t i = 0; i < n; i++) {
            g[i] = (double)(cosl(s) * c->c[i]);
            gsc[i] = (double)((fabsl(cosl(s)) + sa) * cm);
            for (size_t j = 0; j < n; j++) {
                H[i * n + j] = (double)(-sinl(s) * c->c[i] * c->c[j]);
                hsc[i * n + j] = (double)((fabsl(sinl(s)) + sa) * cm * cm);
            }
        }
        break;
    }
    case 2: {
        size_t h = n / 2;
        long double s = 0, sa = 0;
        for (size_t i = 0; i < h; i++) {
            s += (long double)x[i] * x[h + i];
            sa += fabsl((long double)x[i] * x[h + i]);
        }
        *f = (double)s; *fsc = (double)sa;
        for (size_t i = 0; i < h; i++) {
            g[i] = x[h + i]; g[h + i] = x[i];
            gsc[i] = gsc[h + i] = 0;
            H[i * n + h + i] = 1; H[(h + i) * n + i] = 1;
        }
        break;
    }
    default: {
        long double fs = 0, w1[64], w2[64], ya[64];
        for (size_t i = 0; i < c->m; i++) {
            long double s = 0, sa = 0;
            for (size_t j = 0; j < n; j++) {
                s += (long double)Ad[i * n + j] * x[j];
                sa += fabsl((long double)Ad[i * n + j] * x[j]);
            }
            long double e = expl(s / 4);
            fs += s * s / 2 + e;
            w1[i] = s + e / 4;       /* d f / d y_i   */
            w2[i] = 1 + e / 16;      /* d² f / d y_i² */
            ya[i] = sa;
        }
        *f = (double)fs; *fsc = (double)fs;
        for (size_t j = 0; j < n; j++) {
            long double gj = 0, gs = 0;
            for (size_t i = 0; i < c->m; i++) {
                gj += (long double)Ad[i * n + j] * w1[i];
                gs += fabsl((long double)Ad[i * n + j]) * (fabsl(w1[i]) + ya[i] * w2[i]);
            }
            g[j] = (double)gj; gsc[j] = (double)gs;
            for (size_t k = 0; k < n; k++) {
                long double hjk = 0, hs = 0;
                for (size_t i = 0; i < c->m; i++) {
                    hjk += (long double)Ad[i * n + j] * w2[i] * Ad[i * n + k];
                    hs += fabsl((long double)Ad[i * n + j] * w2[i] * Ad[i * n + k]) * (1 + ya[i]);
                }
                H[j * n + k] = (double)hjk; hsc[j * n + k] = (double)hs;
            }
        }
        break;
    }
    }
}

static void check_vec(vec_ctx *c, const double *Ad, size_t n, uint64_t seed)
{
    tu_rng r = {seed};
    static double H[VMAX * VMAX], Hr[VMAX * VMAX], hsc[VMAX * VMAX];
    double x[VMAX], f, g[VMAX], gr[VMAX], gsc[VMAX], fr, fsc, hv[VMAX], v[VMAX], vhw;
    assert_true(n <= VMAX);
    ad_tape *t = ad_tape_new();
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -1.5, 1.5);
    assert_ok(ad_record(t, vec_fn, n, x, c));
    assert_int_equal(ad_tape_ninputs(t), n);
    for (int rep = 0; rep < 3; rep++) {
        if (rep)
            for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -1.5, 1.5);
        vec_ref(c, Ad, x, n, &fr, &fsc, gr, gsc, Hr, hsc);
        assert_ok(ad_gradient(t, x, &f, g));
        assert_close_ctx(f, fr, 1e-14, fsc, "vector kind %d n=%zu: f\n", c->kind, n);
        for (size_t i = 0; i < n; i++)
            assert_close_ctx(g[i], gr[i], 1e-14, gsc[i], "vector kind %d n=%zu: g[%zu]\n", c->kind, n, i);
        assert_ok(ad_hessian(t, x, H));
        for (size_t i = 0; i < n * n; i++)
            assert_close_ctx(H[i], Hr[i], 1e-14, hsc[i], "vector kind %d n=%zu: H[%zu]\n", c->kind, n, i);
        for (size_t i = 0; i < n; i++) v[i] = tu_range(&r, -1, 1);
        assert_ok(ad_hvp(t, x, v, hv));
        double want_vhv = 0, sc = 0;
        for (size_t i = 0; i < n; i++) {
            double hvr = 0, hs = 0;
            for (size_t j = 0; j < n; j++) {
                hvr += Hr[i * n + j] * v[j];
                hs += (fabs(Hr[i * n + j]) + hsc[i * n + j]) * fabs(v[j]);
            }
            assert_close_ctx(hv[i], hvr, 1e-14, hs, "vector kind %d n=%zu: hvp[%zu]\n", c->kind, n, i);
            want_vhv += v[i] * hvr;
            sc += fabs(v[i]) * hs;
        }
        assert_ok(ad_hess_form(t, x, v, v, &vhw));
        assert_close_ctx(vhw, want_vhv, 1e-14, sc, "vector kind %d n=%zu: hess_form\n", c->kind, n);
    }
    ad_tape_free(t);
}

static void sum_dot_dotv_match_hand_formulas(void **state)
{
    (void)state;
    tu_rng r = {42};
    double cf[48];
    for (size_t i = 0; i < 48; i++) cf[i] = tu_range(&r, -1, 1);
    static const size_t ns[] = {1, 2, 7, 40};
    for (size_t k = 0; k < NPTS(ns); k++) {
        vec_ctx c0 = {0, 0, 0, NULL, NULL};
        check_vec(&c0, NULL, ns[k], 100 + k);
        vec_ctx c1 = {1, 0, 0, cf, NULL};
        check_vec(&c1, NULL, ns[k], 200 + k);
        vec_ctx c2 = {2, 0, 0, NULL, NULL};
        check_vec(&c2, NULL, 2 * ns[k], 300 + k);
    }
}

/* ad_dot copies c: changing the caller's array after recording does not
 * change the tape. */
static void dot_copies_its_coefficients(void **state)
{
    (void)state;
    double cf[3] = {1, 2, 3}, x[3] = {1, 1, 1}, f, g[3];
    vec_ctx c = {1, 0, 0, cf, NULL};
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, vec_fn, 3, x, &c));
    cf[0] = 100; cf[1] = 200; cf[2] = 300;
    x[0] = 0.1; x[1] = 0.2; x[2] = 0.3;
    assert_ok(ad_gradient(t, x, &f, g));
    double s = 0.1 + 0.4 + 0.9;
    assert_close(f, sin(s), 4 * TU_ULP);
    assert_close(g[2], 3 * cos(s), 4 * TU_ULP);
    ad_tape_free(t);
}

static void matvec_spmv_match_hand_formulas(void **state)
{
    (void)state;
    tu_rng r = {7};
    enum { M = 9, N = 12 };
    double A[M * N];
    size_t rowptr[M + 1];
    uint32_t colind[M * N];
    double val[M * N];
    /* Sparse pattern: about a third of the entries, one row empty. */
    size_t k = 0;
    rowptr[0] = 0;
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            double a = 0.0;
            if (i != 4 && tu_unif(&r) < 0.35) {
                a = tu_range(&r, -1, 1);
                colind[k] = (uint32_t)j;
                val[k++] = a;
            }
            A[i * N + j] = a;
        }
        rowptr[i + 1] = k;
    }
    ad_csr csr = {rowptr, colind, val};
    vec_ctx cs = {4, M, N, NULL, &csr};
    check_vec(&cs, A, N, 11);

    /* Dense: a full random matrix, and an m = 1 and a square case. */
    double Ad[M * N];
    for (size_t i = 0; i < M * N; i++) Ad[i] = tu_range(&r, -1, 1);
    vec_ctx cd = {3, M, N, Ad, NULL};
    check_vec(&cd, Ad, N, 12);
    vec_ctx c1 = {3, 1, N, Ad, NULL};
    check_vec(&c1, Ad, N, 13);
    vec_ctx cq = {3, M, M, Ad, NULL};
    check_vec(&cq, Ad, M, 14);
}

/* CSR rows with a repeated column index and unsorted columns act as the
 * dense matrix with the entries summed. */
static void spmv_with_repeated_columns_sums_them(void **state)
{
    (void)state;
    enum { M = 3, N = 4 };
    const size_t rowptr[M + 1] = {0, 3, 4, 7};
    const uint32_t colind[7] = {1, 3, 1, 0, 3, 0, 3};
    const double val[7] = {2.0, -1.0, 3.0, 0.5, 1.5, -2.0, 0.25};
    double Ad[M * N] = {0};
    for (size_t i = 0; i < M; i++)
        for (size_t k = rowptr[i]; k < rowptr[i + 1]; k++) Ad[i * N + colind[k]] += val[k];
    ad_csr csr = {rowptr, colind, val};
    vec_ctx cs = {4, M, N, NULL, &csr};
    check_vec(&cs, Ad, N, 21);
}

/* Vector nodes mixed with scalar ops that reuse the inputs several times. */
static ad_var mixed_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var sq[8];
    for (size_t i = 0; i < n; i++) sq[i] = ad_mul(x[i], x[(i + 1) % n]);
    ad_var a = ad_sum(n, sq);               /* Σ x_i x_{i+1}          */
    ad_var b = ad_dotv(n, x, sq);           /* Σ x_i² x_{i+1}         */
    return ad_add(ad_mul(a, b), ad_sin(a));
}

static void vector_nodes_compose_with_scalar_ops(void **state)
{
    (void)state;
    enum { N = 5 };
    double x[N] = {0.3, -0.7, 1.1, 0.5, -0.2}, g[N], H[N * N], Hh[N * N], f;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, mixed_fn, N, x, NULL));
    /* closed form: a = Σ x_i x_{i+1}, b = Σ x_i² x_{i+1}, f = a b + sin a */
    double a = 0, b = 0, da[N] = {0}, db[N] = {0};
    for (int i = 0; i < N; i++) {
        int j = (i + 1) % N;
        a += x[i] * x[j];
        b += x[i] * x[i] * x[j];
        da[i] += x[j]; da[j] += x[i];
        db[i] += 2 * x[i] * x[j]; db[j] += x[i] * x[i];
    }
    assert_ok(ad_gradient(t, x, &f, g));
    assert_close(f, a * b + sin(a), 1e-14);
    for (int i = 0; i < N; i++)
        assert_close_s(g[i], da[i] * b + a * db[i] + cos(a) * da[i], 1e-14, 1.0);
    /* Hessian: H = da dbᵀ + db daᵀ + b Haa + a Hbb − sin(a) da daᵀ + cos(a) Haa */
    double Haa[N * N] = {0}, Hbb[N * N] = {0};
    for (int i = 0; i < N; i++) {
        int j = (i + 1) % N;
        Haa[i * N + j] += 1; Haa[j * N + i] += 1;
        Hbb[i * N + i] += 2 * x[j];
        Hbb[i * N + j] += 2 * x[i]; Hbb[j * N + i] += 2 * x[i];
    }
    assert_ok(ad_hessian(t, x, H));
    assert_ok(tu_hessian_by_hvp(t, x, N, Hh));
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double w = da[i] * db[j] + db[i] * da[j] + b * Haa[i * N + j] + a * Hbb[i * N + j]
                       - sin(a) * da[i] * da[j] + cos(a) * Haa[i * N + j];
            assert_close_s(H[i * N + j], w, 1e-13, 1.0);
            assert_close_s(Hh[i * N + j], w, 1e-13, 1.0);
        }
    ad_tape_free(t);
}

/* The output is itself one output y_i of a matvec or spmv node (linear:
 * the gradient is row i, the Hessian zero), or a dot node, with every
 * driver, optimizer on and off. */
static const double vo_A[3 * 4] = {1, -2, 0.5, 3, 0.25, 0, -1, 2, 4, 1, 1, -0.5};
static const size_t vo_rp[4] = {0, 2, 2, 5};
static const uint32_t vo_ci[5] = {1, 3, 0, 2, 3};
static const double vo_v[5] = {2, -1, 0.5, 1.5, -3};
typedef struct vout_case { int kind, row; } vout_case; /* kind 0 matvec, 1 spmv, 2 dot */
static ad_var vout_fn(const ad_var *x, size_t n, void *ctx)
{
    const vout_case *c = ctx;
    ad_var y[3];
    if (c->kind == 0) {
        ad_matvec(3, n, vo_A, x, y);
        return y[c->row];
    }
    if (c->kind == 1) {
        ad_csr csr = {vo_rp, vo_ci, vo_v};
        ad_spmv(3, n, &csr, x, y);
        return y[c->row];
    }
    return ad_dot(n, x, vo_A);
}

static void vector_node_output_is_function_output(void **state)
{
    (void)state;
    const double x[4] = {0.5, -1.0, 2.0, 0.25};
    /* dense rows of the CSR matrix */
    const double sp[3][4] = {{0, 2, 0, -1}, {0, 0, 0, 0}, {0.5, 0, 1.5, -3}};
    const vout_case cs[] = {{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}, {2, 0}};
    for (size_t k = 0; k < NPTS(cs); k++) {
        /* y_i with i < m−1 as the output once read stale adjoints of
         * y_{i+1..m−1}: every case is checked. */
        const double *row = cs[k].kind == 0 ? vo_A + 4 * cs[k].row : cs[k].kind == 1 ? sp[cs[k].row] : vo_A;
        for (int opt = 0; opt < 2; opt++) {
            ad_tape *t = ad_tape_new();
            assert_ok(ad_tape_set_optimize(t, opt));
            assert_ok(ad_record(t, vout_fn, 4, x, (void *)&cs[k]));
            double f, g[4], H[16], hv[4], q, V[8] = {1, 2, 3, 4, -1, 0, 1, 0}, HV[8];
            assert_ok(ad_gradient(t, x, &f, g));
            double fw = 0;
            for (int j = 0; j < 4; j++) fw += row[j] * x[j];
            assert_close_s(f, fw, 4 * TU_ULP, 4.0);
            for (int j = 0; j < 4; j++)
                if (g[j] != row[j]) {
                    print_error("kind %d row %d opt %d: g = (%g, %g, %g, %g); want (%g, %g, %g, %g)\n",
                                cs[k].kind, cs[k].row, opt, g[0], g[1], g[2], g[3], row[0], row[1],
                                row[2], row[3]);
                    fail();
                }
            assert_ok(ad_hessian(t, x, H));
            for (int j = 0; j < 16; j++) assert_true(H[j] == 0.0);
            assert_ok(ad_hvp(t, x, V, hv));
            assert_ok(ad_hvp(t, x, V, hv));
            for (int j = 0; j < 4; j++) assert_true(hv[j] == 0.0);
            assert_ok(ad_hvp_batch(t, x, 2, V, HV));
            for (int j = 0; j < 8; j++) assert_true(HV[j] == 0.0);
            assert_ok(ad_hess_form(t, x, V, V + 4, &q));
            assert_true(q == 0.0);
            ad_tape_free(t);
        }
    }
}

/* ===================================================================== */

#define UT(nm) {#nm "_matches_closed_form", run_unary, NULL, NULL, (void *)&case_##nm}
#define BT(nm) {#nm "_matches_closed_form", run_binary, NULL, NULL, (void *)&bcase_##nm}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UT(neg), UT(sqr), UT(sqrt), UT(cbrt), UT(exp), UT(expm1), UT(log), UT(log1p),
        UT(sin), UT(cos), UT(tan), UT(asin), UT(acos), UT(atan), UT(sinh), UT(cosh),
        UT(tanh), UT(erf), UT(abs), UT(sigmoid), UT(softplus),
        BT(add), BT(sub), BT(mul), BT(div), BT(pow), BT(atan2), BT(hypot), BT(fmax), BT(fmin),
        cmocka_unit_test(pow_at_zero_base_has_value_zero),
        cmocka_unit_test(constant_ops_match_closed_form),
        cmocka_unit_test(powi_matches_closed_form),
        cmocka_unit_test(powi_at_zero_is_exact),
        cmocka_unit_test(powc_integer_exponent_at_zero_is_exact),
        cmocka_unit_test(pow_at_zero_base_derivatives_are_limits),
        cmocka_unit_test(sigmoid_tails_do_not_underflow),
        cmocka_unit_test(softplus_tails_are_accurate),
        cmocka_unit_test(log1p_expm1_near_zero_are_accurate),
        cmocka_unit_test(asin_acos_near_one_do_not_cancel),
        cmocka_unit_test(tanh_derivative_at_20_is_not_zero),
        cmocka_unit_test(sum_dot_dotv_match_hand_formulas),
        cmocka_unit_test(dot_copies_its_coefficients),
        cmocka_unit_test(matvec_spmv_match_hand_formulas),
        cmocka_unit_test(spmv_with_repeated_columns_sums_them),
        cmocka_unit_test(vector_nodes_compose_with_scalar_ops),
        cmocka_unit_test(vector_node_output_is_function_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
