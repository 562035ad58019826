/*
 * The rule of every elementary function, defined once: its value, and its
 * first and second derivatives.  Every sweep (value, tangent, reverse,
 * dual-adjoint reverse, hyper-dual, vector lanes) is built from these.
 *
 * Unary rules:  dual_NAME_f(x, c)                 -> y = f(x)
 *               dual_NAME_d(x, y, c, &d1, &d2)    -> f'(x), f''(x), given y
 * c is the op's constant (addc, mulc, powc, csub, cdiv; powi's exponent),
 * ignored by the others.  Taking y lets a rule reuse the value (exp, tanh)
 * instead of recomputing it in the reverse sweep.
 *
 * Binary rules: dual_NAME_f(a, b) -> y;  dual_NAME_d(a, b, y, &r) -> the five
 * partials fa, fb, faa, fab, fbb.
 *
 * Accuracy: no formula here cancels where the true value is representable.
 * sigmoid'/softplus'' use e = exp(-|x|) (never 1 - σ), tanh' uses
 * 4e/(1+e)² with e = exp(-2|x|) (never 1 - y²), asin'/acos' use (1-x)(1+x)
 * (exact for |x| ≥ 1/2 by Sterbenz), expm1' calls exp, and zero
 * coefficients of powc/powi are kept exact so 0·∞ never appears at x = 0.
 *
 * This header knows numbers only, nothing about tapes.
 */
#ifndef HYPERAD_DUAL_RULES_H
#define HYPERAD_DUAL_RULES_H

#include <math.h>

/* 2/sqrt(pi) */
#define DUAL_2_SQRTPI 1.12837916709551257389615890312154517

typedef struct dual_rule2 {
    double fa, fb, faa, fab, fbb;
} dual_rule2;

double dual_powi(double x, int n);
double dual_sigmoid(double x);
double dual_softplus(double x);

/* ---- unary ------------------------------------------------------------ */

static inline double dual_neg_f(double x, double c) { (void)c; return -x; }
static inline void dual_neg_d(double x, double y, double c, double *d1, double *d2)
{ (void)x; (void)y; (void)c; *d1 = -1.0; *d2 = 0.0; }

static inline double dual_sqr_f(double x, double c) { (void)c; return x * x; }
static inline void dual_sqr_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; *d1 = 2.0 * x; *d2 = 2.0; }

static inline double dual_sqrt_f(double x, double c) { (void)c; return sqrt(x); }
static inline void dual_sqrt_d(double x, double y, double c, double *d1, double *d2)
{ (void)c; *d1 = 0.5 / y; *d2 = -0.5 * *d1 / x; }

static inline double dual_cbrt_f(double x, double c) { (void)c; return cbrt(x); }
static inline void dual_cbrt_d(double x, double y, double c, double *d1, double *d2)
{ (void)c; (void)x; double y2 = y * y; *d1 = 1.0 / (3.0 * y2); *d2 = -2.0 / (9.0 * y2 * y2 * y); }

static inline double dual_exp_f(double x, double c) { (void)c; return exp(x); }
static inline void dual_exp_d(double x, double y, double c, double *d1, double *d2)
{ (void)x; (void)c; *d1 = y; *d2 = y; }

static inline double dual_expm1_f(double x, double c) { (void)c; return expm1(x); }
static inline void dual_expm1_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; double e = exp(x); *d1 = e; *d2 = e; }

static inline double dual_log_f(double x, double c) { (void)c; return log(x); }
static inline void dual_log_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; double r = 1.0 / x; *d1 = r; *d2 = -r * r; }

static inline double dual_log1p_f(double x, double c) { (void)c; return log1p(x); }
static inline void dual_log1p_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; double r = 1.0 / (1.0 + x); *d1 = r; *d2 = -r * r; }

static inline double dual_sin_f(double x, double c) { (void)c; return sin(x); }
static inline void dual_sin_d(double x, double y, double c, double *d1, double *d2)
{ (void)c; *d1 = cos(x); *d2 = -y; }

static inline double dual_cos_f(double x, double c) { (void)c; return cos(x); }
static inline void dual_cos_d(double x, double y, double c, double *d1, double *d2)
{ (void)c; *d1 = -sin(x); *d2 = -y; }

static inline double dual_tan_f(double x, double c) { (void)c; return tan(x); }
static inline void dual_tan_d(double x, double y, double c, double *d1, double *d2)
{ (void)x; (void)c; double s = 1.0 + y * y; *d1 = s; *d2 = 2.0 * y * s; }

static inline double dual_asin_f(double x, double c) { (void)c; return asin(x); }
static inline void dual_asin_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; double r = 1.0 / sqrt((1.0 - x) * (1.0 + x)); *d1 = r; *d2 = x * r * r * r; }

static inline double dual_acos_f(double x, double c) { (void)c; return acos(x); }
static inline void dual_acos_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; double r = 1.0 / sqrt((1.0 - x) * (1.0 + x)); *d1 = -r; *d2 = -x * r * r * r; }

static inline double dual_atan_f(double x, double c) { (void)c; return atan(x); }
static inline void dual_atan_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; double r = 1.0 / (1.0 + x * x); *d1 = r; *d2 = -2.0 * x * r * r; }

static inline double dual_sinh_f(double x, double c) { (void)c; return sinh(x); }
static inline void dual_sinh_d(double x, double y, double c, double *d1, double *d2)
{ (void)c; *d1 = cosh(x); *d2 = y; }

static inline double dual_cosh_f(double x, double c) { (void)c; return cosh(x); }
static inline void dual_cosh_d(double x, double y, double c, double *d1, double *d2)
{ (void)c; *d1 = sinh(x); *d2 = y; }

/* tanh and sech² from one exponential of −2|x|: expm1 below |x| = 0.55
 * (tanh = −em/(2 + em): no cancellation), exp above (tanh = (1 − e)/(1 + e),
 * e ≤ 1/3); sech² = 4e/(1 + e)², never 1 − tanh² (which cancels where tanh
 * nears ±1: tanh'(20) would be 0).  Within 3 ulp of the exact values, and
 * one libm call for both, so a value sweep keeps sech² for the sweeps after
 * it (TAPE_CACHED) at no extra call. */
static inline double dual_tanh_fd(double x, double *d1)
{
    double ax = fabs(x), t;
    if (ax < 0.55) {
        double em = expm1(-2.0 * ax), s = 2.0 + em;
        t = -em / s;
        *d1 = 4.0 * (1.0 + em) / (s * s);
    } else {
        double e = exp(-2.0 * ax), s = 1.0 + e;
        t = (1.0 - e) / s;
        *d1 = 4.0 * e / (s * s);
    }
    return copysign(t, x);
}
static inline double dual_tanh_f(double x, double c) { (void)c; double d; return dual_tanh_fd(x, &d); }
static inline void dual_tanh_d(double x, double y, double c, double *d1, double *d2)
{
    (void)c;
    (void)dual_tanh_fd(x, d1);
    *d2 = -2.0 * y * *d1;
}

static inline double dual_erf_f(double x, double c) { (void)c; return erf(x); }
static inline void dual_erf_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; double g = DUAL_2_SQRTPI * exp(-x * x); *d1 = g; *d2 = -2.0 * x * g; }

static inline double dual_abs_f(double x, double c) { (void)c; return fabs(x); }
static inline void dual_abs_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; (void)c; *d1 = x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0); *d2 = 0.0; }

static inline double dual_sigmoid_f(double x, double c) { (void)c; return dual_sigmoid(x); }
static inline void dual_sigmoid_d(double x, double y, double c, double *d1, double *d2)
{
    (void)y; (void)c;
    double e = exp(-fabs(x)), s = 1.0 + e;
    double g = e / (s * s);                 /* σ(x)σ(−x) */
    double t = -expm1(-fabs(x)) / s;        /* tanh(|x|/2) = 1 − 2σ(−|x|) */
    *d1 = g;
    *d2 = x > 0.0 ? -t * g : t * g;         /* σ'' = σ'(1 − 2σ) */
}

static inline double dual_softplus_f(double x, double c) { (void)c; return dual_softplus(x); }
static inline void dual_softplus_d(double x, double y, double c, double *d1, double *d2)
{
    (void)y; (void)c;
    double e = exp(-fabs(x)), s = 1.0 + e;
    *d1 = x >= 0.0 ? 1.0 / s : e / s;       /* σ(x) */
    *d2 = e / (s * s);                      /* σ'(x) */
}

static inline double dual_addc_f(double x, double c) { return x + c; }
static inline void dual_addc_d(double x, double y, double c, double *d1, double *d2)
{ (void)x; (void)y; (void)c; *d1 = 1.0; *d2 = 0.0; }

static inline double dual_mulc_f(double x, double c) { return x * c; }
static inline void dual_mulc_d(double x, double y, double c, double *d1, double *d2)
{ (void)x; (void)y; *d1 = c; *d2 = 0.0; }

static inline double dual_sqaddc_f(double x, double c) { double t = x + c; return t * t; }
static inline void dual_sqaddc_d(double x, double y, double c, double *d1, double *d2)
{ (void)y; *d1 = 2.0 * (x + c); *d2 = 2.0; }

static inline double dual_csub_f(double x, double c) { return c - x; }
static inline void dual_csub_d(double x, double y, double c, double *d1, double *d2)
{ (void)x; (void)y; (void)c; *d1 = -1.0; *d2 = 0.0; }

static inline double dual_cdiv_f(double x, double c) { return c / x; }
static inline void dual_cdiv_d(double x, double y, double c, double *d1, double *d2)
{ (void)c; *d1 = -y / x; *d2 = 2.0 * y / (x * x); }

static inline double dual_powc_f(double x, double c) { return pow(x, c); }
static inline void dual_powc_d(double x, double y, double c, double *d1, double *d2)
{
    (void)y;
    *d1 = c == 0.0 ? 0.0 : c * pow(x, c - 1.0);
    *d2 = (c == 0.0 || c == 1.0) ? 0.0 : c * (c - 1.0) * pow(x, c - 2.0);
}

static inline double dual_powi_f(double x, double c) { return dual_powi(x, (int)c); }
static inline void dual_powi_d(double x, double y, double c, double *d1, double *d2)
{
    (void)y;
    int n = (int)c;
    *d1 = n == 0 ? 0.0 : c * dual_powi(x, n - 1);
    *d2 = (n == 0 || n == 1) ? 0.0 : c * (c - 1.0) * dual_powi(x, n - 2);
}

/* ---- binary ----------------------------------------------------------- */

static inline double dual_add_f(double a, double b) { return a + b; }
static inline void dual_add_d(double a, double b, double y, dual_rule2 *r)
{ (void)a; (void)b; (void)y; r->fa = 1.0; r->fb = 1.0; r->faa = r->fab = r->fbb = 0.0; }

static inline double dual_sub_f(double a, double b) { return a - b; }
static inline void dual_sub_d(double a, double b, double y, dual_rule2 *r)
{ (void)a; (void)b; (void)y; r->fa = 1.0; r->fb = -1.0; r->faa = r->fab = r->fbb = 0.0; }

/* Fused by the optimizer (never recorded): (a − b)² and (x + c)², the same
 * bits as sqr of the sub / addc / csub they replace ((c − x)² = (x − c)²). */
static inline double dual_sqdiff_f(double a, double b) { double t = a - b; return t * t; }
static inline void dual_sqdiff_d(double a, double b, double y, dual_rule2 *r)
{ (void)y; double t2 = 2.0 * (a - b); r->fa = t2; r->fb = -t2; r->faa = r->fbb = 2.0; r->fab = -2.0; }

static inline double dual_mul_f(double a, double b) { return a * b; }
static inline void dual_mul_d(double a, double b, double y, dual_rule2 *r)
{ (void)y; r->fa = b; r->fb = a; r->faa = 0.0; r->fab = 1.0; r->fbb = 0.0; }

static inline double dual_div_f(double a, double b) { return a / b; }
static inline void dual_div_d(double a, double b, double y, dual_rule2 *r)
{
    (void)a;
    double ib = 1.0 / b;
    r->fa = ib; r->fb = -y * ib;
    r->faa = 0.0; r->fab = -ib * ib; r->fbb = 2.0 * y * ib * ib;
}

static inline double dual_pow_f(double a, double b) { return pow(a, b); }
static inline void dual_pow_d(double a, double b, double y, dual_rule2 *r)
{
    if (a == 0.0 && b > 0.0) {
        /* Limits as a → 0+: a^b log a → 0 for b > 0; keep 0·∞ out. */
        r->fa = b == 1.0 ? 1.0 : (b > 1.0 ? 0.0 : INFINITY);
        r->fb = 0.0;
        r->faa = (b == 1.0 || b > 2.0) ? 0.0 : (b == 2.0 ? 2.0 : INFINITY);
        r->fab = b > 1.0 ? 0.0 : -INFINITY;
        r->fbb = 0.0;
        return;
    }
    double la = log(a), p1 = pow(a, b - 1.0);
    r->fa = b * p1;
    r->fb = y * la;
    r->faa = b * (b - 1.0) * pow(a, b - 2.0);
    r->fab = p1 * (1.0 + b * la);
    r->fbb = y * la * la;
}

static inline double dual_atan2_f(double a, double b) { return atan2(a, b); }
static inline void dual_atan2_d(double a, double b, double y, dual_rule2 *r)
{
    (void)y;
    double h = hypot(a, b), ua = a / h, ub = b / h, ih2 = 1.0 / (h * h);
    r->fa = ub / h; r->fb = -ua / h;
    r->faa = -2.0 * ua * ub * ih2;
    r->fab = (ua - ub) * (ua + ub) * ih2;   /* (a² − b²)/r⁴ */
    r->fbb = 2.0 * ua * ub * ih2;
}

static inline double dual_hypot_f(double a, double b) { return hypot(a, b); }
static inline void dual_hypot_d(double a, double b, double y, dual_rule2 *r)
{
    double ua = a / y, ub = b / y, iy = 1.0 / y;
    r->fa = ua; r->fb = ub;
    r->faa = ub * ub * iy; r->fab = -ua * ub * iy; r->fbb = ua * ua * iy;
}

static inline double dual_fmax_f(double a, double b) { return a >= b ? a : b; }
static inline void dual_fmax_d(double a, double b, double y, dual_rule2 *r)
{
    (void)y;
    int pa = a >= b;
    r->fa = pa ? 1.0 : 0.0; r->fb = pa ? 0.0 : 1.0;
    r->faa = r->fab = r->fbb = 0.0;
}

static inline double dual_fmin_f(double a, double b) { return a <= b ? a : b; }
static inline void dual_fmin_d(double a, double b, double y, dual_rule2 *r)
{
    (void)y;
    int pa = a <= b;
    r->fa = pa ? 1.0 : 0.0; r->fb = pa ? 0.0 : 1.0;
    r->faa = r->fab = r->fbb = 0.0;
}

#endif
