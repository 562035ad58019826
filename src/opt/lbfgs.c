/*
 * L-BFGS: the limited-memory BFGS method of Nocedal (1980) and Liu & Nocedal
 * (1989), as in Nocedal & Wright 2006, Alg. 7.4 (two-loop recursion) and
 * Alg. 7.5, with the Moré–Thuente strong-Wolfe line search.  The first step
 * has length 1 along −g/‖g‖ and later ones start at the unit step, with the
 * initial matrix H0 = (sᵀy / yᵀy) I (N&W eq. 7.20): the same choices as
 * liblbfgs, so the two are comparable evaluation for evaluation.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "opt_internal.h"

void ad_lbfgs_params_init(ad_lbfgs_params *prm)
{
    if (prm == NULL)
        return;
    prm->m = 6;
    prm->max_iter = 1000;
    prm->max_eval = 0;   /* 0: 10·max_iter, resolved when the run starts */
    prm->gtol = 1e-6;
    prm->ftol = 0.0;
    prm->past = 0;
    prm->c1 = 1e-4;
    prm->c2 = 0.9;
    prm->max_linesearch = 40;
    prm->progress = NULL;
    prm->progress_ctx = NULL;
}

static int lbfgs_params_ok(const ad_lbfgs_params *prm)
{
    /* c1 < 1/2 keeps the unit quasi-Newton step acceptable near a minimum;
     * c1 < c2 < 1 makes the Wolfe set non-empty (N&W §3.1). */
    return prm->m > 0 && prm->gtol >= 0.0 && prm->ftol >= 0.0 &&
           prm->c1 > 0.0 && prm->c1 < 0.5 && prm->c2 > prm->c1 &&
           prm->c2 < 1.0 && prm->max_linesearch > 0;
}

typedef struct lbfgs_ws {
    double *s, *y;         /* m×n history, a ring: pair j at row j          */
    double *rho, *alpha;   /* m each                                          */
    double *xp, *gp, *d, *gbest, *pf;
} lbfgs_ws;

static void lbfgs_ws_free(lbfgs_ws *w)
{
    free(w->s);
    free(w->y);
    free(w->rho);
    free(w->alpha);
    free(w->xp);
    free(w->gp);
    free(w->d);
    free(w->gbest);
    free(w->pf);
}

static int lbfgs_ws_alloc(lbfgs_ws *w, size_t n, size_t m, size_t past)
{
    w->s = NULL;
    w->y = NULL;
    if (m <= SIZE_MAX / sizeof(double) / n) {
        w->s = malloc(m * n * sizeof(double));
        w->y = malloc(m * n * sizeof(double));
    }
    w->rho = malloc(m * sizeof(double));
    w->alpha = malloc(m * sizeof(double));
    w->xp = malloc(n * sizeof(double));
    w->gp = malloc(n * sizeof(double));
    w->d = malloc(n * sizeof(double));
    w->gbest = malloc(n * sizeof(double));
    w->pf = malloc((past ? past : 1) * sizeof(double));
    return w->s && w->y && w->rho && w->alpha && w->xp && w->gp && w->d &&
           w->gbest && w->pf;
}

/* d = −H g by the two-loop recursion over the k newest pairs, the newest at
 * row `newest` (N&W Alg. 7.4). */
static void lbfgs_direction(const lbfgs_ws *w, size_t n, size_t m, size_t k,
                            size_t newest, double gamma, const double *g,
                            double *d)
{
    opt_copy(n, g, d);
    opt_scal(n, -1.0, d);
    size_t j = newest;
    for (size_t i = 0; i < k; i++) {
        w->alpha[j] = w->rho[j] * opt_dot(n, w->s + j * n, d);
        opt_axpy(n, -w->alpha[j], w->y + j * n, d);
        j = (j + m - 1) % m;
    }
    opt_scal(n, gamma, d);
    for (size_t i = 0; i < k; i++) {
        j = (j + 1) % m;
        double beta = w->rho[j] * opt_dot(n, w->y + j * n, d);
        opt_axpy(n, w->alpha[j] - beta, w->s + j * n, d);
    }
}

ad_status ad_lbfgs(const ad_problem *p, double *x, const ad_lbfgs_params *prm,
                   ad_opt_result *res)
{
    ad_opt_result local;
    ad_lbfgs_params defaults;
    if (res == NULL)
        res = &local;
    opt_result_clear(res);
    if (prm == NULL) {
        ad_lbfgs_params_init(&defaults);
        prm = &defaults;
    }
    ad_status st = opt_check_input(p, x);
    if (st != AD_OK)
        return st;
    if (!lbfgs_params_ok(prm))
        return AD_EINVAL;

    const size_t n = p->n, m = prm->m;
    lbfgs_ws w;
    double *g = malloc(n * sizeof(double));
    if (!lbfgs_ws_alloc(&w, n, m, prm->past) || g == NULL) {
        lbfgs_ws_free(&w);
        free(g);
        return AD_ENOMEM;
    }

    opt_eval e;
    size_t max_eval = prm->max_eval ? prm->max_eval : 10 * prm->max_iter;
    opt_eval_init(&e, p, max_eval);
    const ls_params lsp = {
        .c1 = prm->c1, .c2 = prm->c2,
        /* xtol, stpmin, stpmax: liblbfgs's defaults, for a like-for-like run. */
        .xtol = 1e-16, .stpmin = 1e-20, .stpmax = 1e20,
        .max_trials = prm->max_linesearch,
    };

    double f;
    size_t iter = 0;
    ad_stop_reason why = AD_STOP_NONE;
    int c = opt_fg(&e, x, &f, g);
    if (c != OPT_GOOD) {
        st = c == OPT_ERR ? e.err : AD_EDOMAIN;
        opt_result_finish(res, &e, 0, f, NAN, AD_STOP_ERROR);
        goto out;
    }
    double gnorm = opt_nrminf(n, g);
    if (gnorm <= prm->gtol) {
        why = AD_STOP_GTOL;
        goto done;
    }
    if (prm->past)
        w.pf[0] = f;

    size_t k = 0, newest = m - 1;   /* stored pairs; row of the newest */
    double gamma = 1.0;
    /* First step: unit length along −g (liblbfgs does the same). */
    lbfgs_direction(&w, n, m, 0, newest, 1.0, g, w.d);
    double stp = 1.0 / opt_nrm2(n, w.d);

    for (;;) {
        opt_copy(n, x, w.xp);
        opt_copy(n, g, w.gp);
        double fp = f;
        ls_state ls = { .n = n, .x0 = w.xp, .g0 = w.gp, .d = w.d,
                        .f0 = fp, .gbest = w.gbest };
        ls.dg0 = opt_dot(n, g, w.d);
        int restarted = 0;
        int rc;
        for (;;) {
            if (!(ls.dg0 < 0.0)) {
                rc = LS_FAIL;   /* rounding made d uphill: restart below */
            } else {
                double stp0 = stp;
                rc = ls_more_thuente(&e, &ls, &lsp, x, &f, g, &stp);
                if (rc == LS_FAIL && !(f < fp)) {
                    stp = stp0;
                    rc = ls_backtrack(&e, &ls, &lsp, x, &f, g, &stp);
                }
            }
            /* A failed search that still lowered f is a step (x is at the
             * best trial); the curvature test below guards the update. */
            if (rc != LS_FAIL || f < fp || restarted)
                break;
            /* No decrease along d: forget the history and retry along −g,
             * once, before giving up. */
            restarted = 1;
            k = 0;
            gamma = 1.0;
            lbfgs_direction(&w, n, m, 0, newest, 1.0, g, w.d);
            ls.dg0 = opt_dot(n, g, w.d);
            stp = 1.0 / opt_nrm2(n, w.d);
        }
        if (rc == LS_ERR) {
            st = e.err;
            why = AD_STOP_ERROR;
            break;
        }
        if (rc == LS_MAXEVAL && !(f < fp)) {
            why = AD_STOP_MAX_EVAL;
            break;
        }
        if (rc == LS_FAIL && !(f < fp)) {
            why = AD_STOP_LINESEARCH;
            break;
        }

        iter++;
        gnorm = opt_nrminf(n, g);
        if (opt_report(prm->progress, prm->progress_ctx, &e, iter, f, gnorm,
                       stp, 0.0, 0)) {
            why = AD_STOP_CALLBACK;
            break;
        }
        if (gnorm <= prm->gtol) {
            why = AD_STOP_GTOL;
            break;
        }
        if (prm->past) {
            /* liblbfgs's delta test, relative to max(|f|, 1) so f → 0 is safe. */
            size_t slot = iter % prm->past;
            if (iter >= prm->past &&
                (w.pf[slot] - f) / fmax(fabs(f), 1.0) < prm->ftol) {
                why = AD_STOP_FTOL;
                break;
            }
            w.pf[slot] = f;
        }
        if (iter >= prm->max_iter) {
            why = AD_STOP_MAX_ITER;
            break;
        }
        if (rc == LS_MAXEVAL || opt_budget_spent(&e)) {
            why = AD_STOP_MAX_EVAL;
            break;
        }

        /* New pair s = x − xp, y = g − gp; kept only with positive
         * curvature sᵀy, which keeps H positive definite (N&W §6.1). */
        size_t row = (newest + 1) % m;
        double *sv = w.s + row * n, *yv = w.y + row * n;
        opt_copy(n, x, sv);
        opt_axpy(n, -1.0, w.xp, sv);
        opt_copy(n, g, yv);
        opt_axpy(n, -1.0, w.gp, yv);
        double ys = opt_dot(n, yv, sv), yy = opt_dot(n, yv, yv);
        if (ys > DBL_EPSILON * yy && yy > 0.0) {
            w.rho[row] = 1.0 / ys;
            gamma = ys / yy;
            newest = row;
            if (k < m)
                k++;
        } else if (k == m) {
            k--;   /* the row written over held the oldest pair */
        }
        lbfgs_direction(&w, n, m, k, newest, k ? gamma : 1.0, g, w.d);
        stp = k ? 1.0 : 1.0 / opt_nrm2(n, w.d);
    }

done:
    opt_result_finish(res, &e, iter, f, opt_nrminf(n, g), why);
out:
    lbfgs_ws_free(&w);
    free(g);
    return st;
}
