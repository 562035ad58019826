/*
 * Curvature of f at x without forming ∇²f: extreme eigenvalues by Lanczos
 * on HVPs (all at one x, so every HVP after the first is the cheap same-x
 * kind), the condition number, and the kind of stationary point.  For small
 * n a dense route (ad_hessian + LAPACK dsyevd) gives every eigenvalue and
 * serves as the cross-check.
 *
 * Lanczos with full reorthogonalization (Golub & Van Loan, 4th ed., §10.1;
 * Parlett, "The Symmetric Eigenvalue Problem", ch. 13): the residual of a
 * Ritz pair (θ, Qs) is |β_j s_j|, the last component of s scaled by the
 * next off-diagonal, so convergence is checked without another HVP.
 */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tape/tape_internal.h"

void ad_curv_params_init(ad_curv_params *prm)
{
    if (!prm)
        return;
    prm->method = AD_CURV_AUTO;
    prm->max_iter = 200;
    prm->tol = 1e-8;
    prm->gtol = 1e-6;
    prm->zero_tol = 1e-8;
    prm->dense_max = 200;
    prm->seed = 1;
}

const char *ad_point_kind_str(ad_point_kind k)
{
    switch (k) {
    case AD_POINT_NOT_STATIONARY: return "not stationary";
    case AD_POINT_MINIMUM:        return "minimum";
    case AD_POINT_MAXIMUM:        return "maximum";
    case AD_POINT_SADDLE:         return "saddle";
    case AD_POINT_DEGENERATE:     return "degenerate";
    }
    return "unknown";
}

static double dotp(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* splitmix64: a reproducible start vector from the seed. */
static double uniform(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1p-53 - 0.5;
}

static ad_status dense(ad_tape *t, const double *x, size_t n, ad_curvature *res)
{
    if (n > SIZE_MAX / n / sizeof(double))
        return tape_set_error(t, AD_ELIMIT, "ad_hess_extremes: n·n overflows size_t");
    double *H = malloc(n * n * sizeof *H), *w = malloc(n * sizeof *w);
    ad_status s = AD_OK;
    if (!H || !w)
        s = tape_set_error(t, AD_ENOMEM, "ad_hess_extremes: out of memory");
    else if (!(s = ad_hessian(t, x, H))
             && LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)n, H, (lapack_int)n, w) != 0)
        s = tape_set_error(t, AD_EDOMAIN, "ad_hess_extremes: dsyevd did not converge");
    if (!s) {
        res->lambda_min = w[0];
        res->lambda_max = w[n - 1];
        res->resid_min = res->resid_max = 0.0;
        res->nhvp = n;
        res->iters = 0;
        res->converged = 1;
        res->method = AD_CURV_DENSE;
    }
    free(H);
    free(w);
    return s;
}

static ad_status lanczos(ad_tape *t, const double *x, size_t n, const ad_curv_params *prm,
                         ad_curvature *res)
{
    size_t m = prm->max_iter < n ? prm->max_iter : n;
    if (m == 0)
        m = 1;
    if (m + 1 > SIZE_MAX / n / sizeof(double))
        return tape_set_error(t, AD_ELIMIT, "ad_hess_extremes: basis size overflows");
    double *Q = malloc((m + 1) * n * sizeof *Q), *w = malloc(n * sizeof *w);
    double *al = malloc(m * sizeof *al), *be = malloc(m * sizeof *be);
    double *d = malloc(m * sizeof *d), *e = malloc(m * sizeof *e), *Z = malloc(m * m * sizeof *Z);
    ad_status s = AD_OK;
    if (!Q || !w || !al || !be || !d || !e || !Z) {
        s = tape_set_error(t, AD_ENOMEM, "ad_hess_extremes: out of memory");
        goto out;
    }
    uint64_t seed = prm->seed;
    for (size_t i = 0; i < n; i++)
        Q[i] = uniform(&seed);
    double nq = sqrt(dotp(Q, Q, n));
    for (size_t i = 0; i < n; i++)
        Q[i] /= nq;

    res->converged = 0;
    for (size_t j = 0; j < m; j++) {
        const double *qj = Q + j * n;
        if ((s = ad_hvp(t, x, qj, w)))
            goto out;
        res->nhvp++;
        al[j] = dotp(qj, w, n);
        for (size_t i = 0; i < n; i++)
            w[i] -= al[j] * qj[i] + (j ? be[j - 1] * Q[(j - 1) * n + i] : 0.0);
        /* Twice is enough (Parlett's "twice is enough"). */
        for (int pass = 0; pass < 2; pass++)
            for (size_t k = 0; k <= j; k++) {
                double c = dotp(Q + k * n, w, n);
                for (size_t i = 0; i < n; i++)
                    w[i] -= c * Q[k * n + i];
            }
        be[j] = sqrt(dotp(w, w, n));

        size_t k = j + 1;
        memcpy(d, al, k * sizeof *d);
        memcpy(e, be, k * sizeof *e);
        if (LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', (lapack_int)k, d, e, Z, (lapack_int)k) != 0) {
            s = tape_set_error(t, AD_EDOMAIN, "ad_hess_extremes: dstev did not converge");
            goto out;
        }
        res->lambda_min = d[0];
        res->lambda_max = d[k - 1];
        res->resid_min = fabs(be[j] * Z[(k - 1) + 0 * k]);
        res->resid_max = fabs(be[j] * Z[(k - 1) + (k - 1) * k]);
        res->iters = k;
        double scale = fmax(fabs(d[0]), fabs(d[k - 1]));
        double eps = prm->tol * (scale > 0.0 ? scale : 1.0);
        if ((res->resid_min <= eps && res->resid_max <= eps) || k == n) {
            res->converged = 1;
            break;
        }
        if (be[j] <= 1e-14 * (scale > 0.0 ? scale : 1.0)) {
            /* An invariant subspace: its Ritz values are exact. */
            res->converged = 1;
            break;
        }
        double *qn = Q + (j + 1) * n;
        for (size_t i = 0; i < n; i++)
            qn[i] = w[i] / be[j];
    }
    res->method = AD_CURV_LANCZOS;
out:
    free(Q); free(w); free(al); free(be); free(d); free(e); free(Z);
    return s;
}

ad_status ad_hess_extremes(ad_tape *t, const double *x, const ad_curv_params *prm, ad_curvature *res)
{
    ad_curv_params def;
    if (!prm) {
        ad_curv_params_init(&def);
        prm = &def;
    }
    if (!t || !x || !res)
        return t ? tape_set_error(t, AD_EINVAL, "ad_hess_extremes: NULL x or res") : AD_EINVAL;
    if (!(prm->tol > 0.0) || !(prm->zero_tol >= 0.0) || prm->method > AD_CURV_DENSE)
        return tape_set_error(t, AD_EINVAL, "ad_hess_extremes: bad parameters");
    memset(res, 0, sizeof *res);
    if (t->err)
        return t->err;   /* the recording's sticky error, as the drivers say */
    size_t n = ad_tape_ninputs(t);
    if (n == 0)
        return tape_set_error(t, AD_ESTATE, "ad_hess_extremes: the tape holds no complete recording");
    double *g = malloc(n * sizeof *g);
    if (!g)
        return tape_set_error(t, AD_ENOMEM, "ad_hess_extremes: out of memory");
    ad_status s = ad_gradient(t, x, &res->f, g);
    if (!s) {
        double gn = 0.0;
        for (size_t i = 0; i < n; i++)
            gn = fmax(gn, fabs(g[i]));
        res->gnorm = gn;
    }
    free(g);
    if (s)
        return s;
    int use_dense = prm->method == AD_CURV_DENSE
                 || (prm->method == AD_CURV_AUTO && n <= prm->dense_max);
    s = use_dense ? dense(t, x, n, res) : lanczos(t, x, n, prm, res);
    if (s)
        return s;
    res->cond = res->lambda_min != 0.0 ? fabs(res->lambda_max) / fabs(res->lambda_min) : INFINITY;
    return AD_OK;
}

ad_status ad_classify_point(ad_tape *t, const double *x, const ad_curv_params *prm, ad_curvature *res)
{
    ad_curv_params def;
    if (!prm) {
        ad_curv_params_init(&def);
        prm = &def;
    }
    ad_status s = ad_hess_extremes(t, x, prm, res);
    if (s)
        return s;
    double scale = fmax(fabs(res->lambda_min), fabs(res->lambda_max));
    double z = prm->zero_tol * scale;
    if (res->gnorm > prm->gtol)
        res->kind = AD_POINT_NOT_STATIONARY;
    else if (scale == 0.0)
        res->kind = AD_POINT_DEGENERATE;
    else if (res->lambda_min < -z && res->lambda_max > z)
        res->kind = AD_POINT_SADDLE;
    else if (res->lambda_min > z)
        res->kind = AD_POINT_MINIMUM;
    else if (res->lambda_max < -z)
        res->kind = AD_POINT_MAXIMUM;
    else
        res->kind = AD_POINT_DEGENERATE;
    return AD_OK;
}
