/*
 * Dense Newton for small n: x ← x − α (H + μI)⁻¹ ∇f.  H comes from p->hess or
 * from n HVPs with the unit vectors; μ is found by "Cholesky with added
 * multiple of the identity" (Nocedal & Wright 2006, Alg. 3.3): start at 0
 * when diag(H) > 0, else just above −min diag(H), and double until LAPACK's
 * dpotrf succeeds.  The step α comes from Armijo backtracking.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lapacke.h>

#include "opt_internal.h"

typedef struct dn_ws {
    double *H, *A, *g, *d, *xp, *gp, *gbest, *ei;
} dn_ws;

static void dn_ws_free(dn_ws *w)
{
    free(w->H);
    free(w->A);
    free(w->g);
    free(w->d);
    free(w->xp);
    free(w->gp);
    free(w->gbest);
    free(w->ei);
}

/* H at x.  A Hessian from p->hess counts as n HVPs in the counters: that is
 * what ad_hessian costs.  HVP columns are symmetrized, (H + Hᵀ)/2, so
 * rounding cannot make dpotrf see a non-symmetric matrix. */
static int dn_hessian(opt_eval *e, dn_ws *w, const double *x)
{
    const size_t n = e->n;
    if (e->p->hess) {
        e->nhvp += n;
        ad_status st = e->p->hess(e->p->ctx, x, w->H);
        if (st == AD_EDOMAIN)
            return OPT_BAD;
        if (st != AD_OK) {
            e->err = st;
            return OPT_ERR;
        }
    } else {
        memset(w->ei, 0, n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            w->ei[i] = 1.0;
            int c = opt_hvp(e, x, w->ei, w->H + i * n);
            w->ei[i] = 0.0;
            if (c != OPT_GOOD)
                return c;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < i; j++) {
                double m = 0.5 * (w->H[i * n + j] + w->H[j * n + i]);
                w->H[i * n + j] = w->H[j * n + i] = m;
            }
    }
    return opt_all_finite(n * n, w->H) ? OPT_GOOD : OPT_BAD;
}

/* d = −(H + μI)⁻¹ g with the smallest μ of the doubling sequence that makes
 * the Cholesky factorization succeed (N&W Alg. 3.3, β = 10⁻³ scaled by the
 * size of diag(H) so the shift is relative).  0 when no μ works. */
static int dn_newton_dir(dn_ws *w, size_t n)
{
    double dmin = INFINITY, dmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        dmin = fmin(dmin, w->H[i * n + i]);
        dmax = fmax(dmax, fabs(w->H[i * n + i]));
    }
    const double beta = 1e-3 * fmax(dmax, 1e-8);
    double mu = dmin > 0.0 ? 0.0 : -dmin + beta;
    for (int tries = 0; tries < 100; tries++) {
        memcpy(w->A, w->H, n * n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            w->A[i * n + i] += mu;
        /* H is symmetric, so row- and column-major agree: column-major
         * spares LAPACKE its transposed copy. */
        lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)n,
                                         w->A, (lapack_int)n);
        if (info == 0) {
            opt_copy(n, w->g, w->d);
            opt_scal(n, -1.0, w->d);
            info = LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', (lapack_int)n, 1,
                                  w->A, (lapack_int)n, w->d, (lapack_int)n);
            return info == 0 && opt_all_finite(n, w->d);
        }
        if (info < 0)
            return 0;
        mu = fmax(2.0 * mu, beta);
    }
    return 0;
}

ad_status ad_newton_dense(const ad_problem *p, double *x,
                          const ad_newton_params *prm, ad_opt_result *res)
{
    ad_opt_result local;
    ad_newton_params defaults;
    if (res == NULL)
        res = &local;
    opt_result_clear(res);
    if (prm == NULL) {
        ad_newton_params_init(&defaults);
        prm = &defaults;
    }
    ad_status st = opt_check_input(p, x);
    if (st != AD_OK)
        return st;
    if ((p->hvp == NULL && p->hess == NULL) || prm->max_iter == 0 ||
        !(prm->gtol >= 0.0) || !(prm->gtol_rel >= 0.0))
        return AD_EINVAL;
    const size_t n = p->n;
    if (n > SIZE_MAX / sizeof(double) / n)
        return AD_ELIMIT;

    dn_ws w = { 0 };
    w.H = malloc(n * n * sizeof(double));
    w.A = malloc(n * n * sizeof(double));
    w.g = malloc(n * sizeof(double));
    w.d = malloc(n * sizeof(double));
    w.xp = malloc(n * sizeof(double));
    w.gp = malloc(n * sizeof(double));
    w.gbest = malloc(n * sizeof(double));
    w.ei = malloc(n * sizeof(double));
    if (!w.H || !w.A || !w.g || !w.d || !w.xp || !w.gp || !w.gbest || !w.ei) {
        dn_ws_free(&w);
        return AD_ENOMEM;
    }

    opt_eval e;
    opt_eval_init(&e, p, prm->max_eval ? prm->max_eval : 10 * prm->max_iter);
    const ls_params lsp = { .c1 = 1e-4, .c2 = 0.9, .xtol = 1e-16,
                            .stpmin = 1e-20, .stpmax = 1e20, .max_trials = 40 };
    double f;
    size_t iter = 0;
    ad_stop_reason why = AD_STOP_NONE;
    int c = opt_fg(&e, x, &f, w.g);
    if (c != OPT_GOOD) {
        st = c == OPT_ERR ? e.err : AD_EDOMAIN;
        opt_result_finish(res, &e, 0, f, NAN, AD_STOP_ERROR);
        dn_ws_free(&w);
        return st;
    }
    double gnorm = opt_nrminf(n, w.g), g2 = opt_nrm2(n, w.g), g2_0 = g2;

    for (;;) {
        if (gnorm <= prm->gtol || (prm->gtol_rel > 0.0 && g2 <= prm->gtol_rel * g2_0)) {
            why = AD_STOP_GTOL;
            break;
        }
        if (iter >= prm->max_iter) {
            why = AD_STOP_MAX_ITER;
            break;
        }
        if (opt_budget_spent(&e)) {
            why = AD_STOP_MAX_EVAL;
            break;
        }
        c = dn_hessian(&e, &w, x);
        if (c == OPT_ERR) {
            why = AD_STOP_ERROR;
            st = e.err;
            break;
        }
        /* No usable Hessian or factorization: a steepest-descent step. */
        if (c == OPT_BAD || !dn_newton_dir(&w, n)) {
            opt_copy(n, w.g, w.d);
            opt_scal(n, -1.0, w.d);
        }
        opt_copy(n, x, w.xp);
        opt_copy(n, w.g, w.gp);
        double fp = f, stp = 1.0;
        ls_state ls = { .n = n, .x0 = w.xp, .g0 = w.gp, .d = w.d, .f0 = fp,
                        .gbest = w.gbest };
        ls.dg0 = opt_dot(n, w.g, w.d);
        int rc = LS_FAIL;
        if (ls.dg0 < 0.0)
            rc = ls_backtrack(&e, &ls, &lsp, x, &f, w.g, &stp);
        if (rc == LS_FAIL && !(f < fp)) {
            opt_copy(n, w.gp, w.d);
            opt_scal(n, -1.0, w.d);
            ls.dg0 = -g2 * g2;
            stp = 1.0 / g2;
            rc = ls_backtrack(&e, &ls, &lsp, x, &f, w.g, &stp);
        }
        if (rc == LS_ERR) {
            why = AD_STOP_ERROR;
            st = e.err;
            break;
        }
        if (!(f < fp)) {
            why = rc == LS_MAXEVAL ? AD_STOP_MAX_EVAL : AD_STOP_LINESEARCH;
            break;
        }
        iter++;
        gnorm = opt_nrminf(n, w.g);
        g2 = opt_nrm2(n, w.g);
        if (opt_report(prm->progress, prm->progress_ctx, &e, iter, f, gnorm,
                       stp, 0.0, 0)) {
            why = AD_STOP_CALLBACK;
            break;
        }
    }
    opt_result_finish(res, &e, iter, f, opt_nrminf(n, w.g), why);
    dn_ws_free(&w);
    return st;
}
