/*
 * hyperad quick start: record the Rosenbrock function once, then ask for
 * its value, gradient, a Hessian-vector product, the Hessian, and what kind
 * of point (1, 1) is.
 *
 *   f(x, y) = (1 − x)² + 100 (y − x²)²
 */
#include <stdio.h>

#include "hyperad.h"

static ad_var rosenbrock(const ad_var *x, size_t n, void *ctx)
{
    (void)n;
    (void)ctx;
    ad_var a = ad_csub(1.0, x[0]);                 /* 1 − x      */
    ad_var b = ad_sub(x[1], ad_sqr(x[0]));         /* y − x²     */
    return ad_add(ad_sqr(a), ad_mulc(ad_sqr(b), 100.0));
}

static int check(ad_tape *t, ad_status s, const char *what)
{
    if (s == AD_OK)
        return 1;
    fprintf(stderr, "%s: %s (%s)\n", what, ad_strerror(s), ad_tape_errmsg(t));
    return 0;
}

int main(void)
{
    double x[2] = {-1.2, 1.0}, f, g[2], hv[2], H[4];
    double v[2] = {1.0, 0.0};
    ad_tape *t = ad_tape_new();
    if (!t)
        return 1;

    /* Record once at x; every call below replays the tape. */
    if (!check(t, ad_record(t, rosenbrock, 2, x, NULL), "record"))
        return 1;
    printf("tape: %zu nodes, %.1f bytes per node\n", ad_tape_nops(t), ad_tape_bytes_per_op(t));

    if (!check(t, ad_gradient(t, x, &f, g), "gradient"))
        return 1;
    printf("f(-1.2, 1)   = %.6f\n", f);
    printf("grad f       = (%.6f, %.6f)\n", g[0], g[1]);

    if (!check(t, ad_hvp(t, x, v, hv), "hvp"))
        return 1;
    printf("H (1, 0)     = (%.6f, %.6f)\n", hv[0], hv[1]);

    if (!check(t, ad_hessian(t, x, H), "hessian"))
        return 1;
    printf("H            = [%.3f %.3f; %.3f %.3f]\n", H[0], H[1], H[2], H[3]);

    double xs[2] = {1.0, 1.0};
    ad_curvature c;
    if (!check(t, ad_classify_point(t, xs, NULL, &c), "classify"))
        return 1;
    printf("at (1, 1): %s (|grad|inf = %.1e, eigenvalues %.4f .. %.4f, condition %.1f)\n",
           ad_point_kind_str(c.kind), c.gnorm, c.lambda_min, c.lambda_max, c.cond);

    ad_tape_free(t);
    return 0;
}
