/*
 * TRON as LIBLINEAR 2.3.0 runs it for `train -s 0` (tron.cpp, TRON::tron
 * and TRON::trpcg): the trust-region Newton method of Lin & Moré (1999),
 * as used for logistic regression by Lin, Weng & Keerthi (JMLR 9, 2008),
 * with the preconditioned CG of Hsia, Chiang & Lin (ACML 2018):
 *
 *   M = (1 − α) I + α diag(∇²f(w)),  α = 0.01, recomputed after every
 *   accepted step; the trust region is ‖s‖_M ≤ Δ, Δ₀ = ‖g₀‖_M;
 *   CG stops at ‖r‖_{M⁻¹} ≤ 0.1 ‖g‖_{M⁻¹} or on the boundary, after at
 *   most max(n, 5) iterations;
 *   a step is accepted when actred > η₀ prered; Δ is updated from
 *   ρ = actred/prered with η = (1e-4, 0.25, 0.75), σ = (0.25, 0.5, 4) and
 *   the minimizer α of the quadratic through f, gᵀs and f(w + s); after
 *   the first step Δ ≤ ‖s₁‖_M (once); a very good step that ended on the
 *   boundary multiplies Δ by σ₃.
 *
 * Same iterates as LIBLINEAR in exact arithmetic, hence the same w at
 * equal -e up to rounding: the same operations in the same order, vector
 * ones through the same BLAS routines; only f, ∇f and ∇²f·v come from the
 * tape (whose sums round differently from LIBLINEAR's loops).
 */
#include <stdlib.h>
#include <string.h>

#include "opt/logreg_internal.h"
#include "opt_internal.h"

/* TRON's constants (tron.cpp): acceptance and radius thresholds on
 * ρ = actred/prered, and the radius factors. */
#define TRON_ETA0 1e-4
#define TRON_ETA1 0.25
#define TRON_ETA2 0.75
#define TRON_SIGMA1 0.25
#define TRON_SIGMA2 0.5
#define TRON_SIGMA3 4.0
/* weight of the Hessian diagonal in the mixed preconditioner */
#define TRON_ALPHA_PCG 0.01

typedef struct tron_ws {
    size_t n;
    double *g, *s, *r, *wt, *M, *d, *hd, *z;
} tron_ws;

static void tron_ws_free(tron_ws *ws)
{
    free(ws->g);
    free(ws->s);
    free(ws->r);
    free(ws->wt);
    free(ws->M);
    free(ws->d);
    free(ws->hd);
    free(ws->z);
}

static int tron_ws_alloc(tron_ws *ws, size_t n)
{
    memset(ws, 0, sizeof *ws);
    ws->n = n;
    double **v[] = {&ws->g, &ws->s, &ws->r, &ws->wt, &ws->M, &ws->d, &ws->hd, &ws->z};
    for (size_t k = 0; k < sizeof v / sizeof *v; k++)
        if (!(*v[k] = malloc(n * sizeof(double)))) {
            tron_ws_free(ws);
            return 0;
        }
    return 1;
}

/* uᵀ diag(M) v, five terms per step and summed in LIBLINEAR's order
 * (tron.cpp's uTMv), so that Δ and ‖s‖_M round as they do there. */
static double tron_utmv(size_t n, const double *u, const double *M, const double *v)
{
    double res = 0.0;
    size_t i = 0;
    for (; i + 4 < n; i += 5)
        res += u[i] * M[i] * v[i] + u[i + 1] * M[i + 1] * v[i + 1] +
               u[i + 2] * M[i + 2] * v[i + 2] + u[i + 3] * M[i + 3] * v[i + 3] +
               u[i + 4] * M[i + 4] * v[i + 4];
    for (; i < n; i++)
        res += u[i] * M[i] * v[i];
    return res;
}

/* M at w: the mixed diagonal, or I without a diagonal callback. */
static ad_status tron_precond(const lr_tron_params *prm, const double *w, double *M, size_t n)
{
    if (!prm->diag) {
        for (size_t i = 0; i < n; i++)
            M[i] = 1.0;
        return AD_OK;
    }
    ad_status st = prm->diag(prm->diag_ctx, w, M);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        M[i] = (1.0 - TRON_ALPHA_PCG) + TRON_ALPHA_PCG * M[i];
    return AD_OK;
}

/* Preconditioned CG on g + ∇²f(w) s = 0 inside ‖s‖_M ≤ Δ (TRON::trpcg):
 * s gets the step, r the residual −g − ∇²f s.  *boundary says whether the
 * step was cut at the boundary.  Returns OPT_GOOD or the HVP's outcome. */
static int tron_cg(opt_eval *e, tron_ws *ws, const double *w, double delta, double eps_cg,
                   size_t *cg_iter, int *boundary)
{
    size_t n = ws->n;
    double *g = ws->g, *s = ws->s, *r = ws->r, *M = ws->M, *d = ws->d, *hd = ws->hd,
           *z = ws->z;
    *boundary = 0;
    for (size_t i = 0; i < n; i++) {
        s[i] = 0.0;
        r[i] = -g[i];
        z[i] = r[i] / M[i];
        d[i] = z[i];
    }
    double zTr = opt_dot(n, z, r);
    double cgtol = eps_cg * sqrt(zTr);
    size_t k = 0, max_cg = n > 5 ? n : 5;
    while (k < max_cg) {
        if (sqrt(zTr) <= cgtol)
            break;
        k++;
        int h = opt_hvp(e, w, d, hd);
        if (h != OPT_GOOD) {
            *cg_iter = k;
            return h;
        }
        double alpha = zTr / opt_dot(n, d, hd);
        opt_axpy(n, alpha, d, s);
        if (sqrt(tron_utmv(n, s, M, s)) > delta) {
            /* back to the last s inside, then along d to ‖s‖_M = Δ: the
             * positive root of ‖s + τd‖²_M = Δ², in the form that avoids
             * cancellation for either sign of sᵀMd */
            *boundary = 1;
            opt_axpy(n, -alpha, d, s);
            double sTMd = tron_utmv(n, s, M, d);
            double sTMs = tron_utmv(n, s, M, s);
            double dTMd = tron_utmv(n, d, M, d);
            double dsq = delta * delta;
            double rad = sqrt(sTMd * sTMd + dTMd * (dsq - sTMs));
            if (sTMd >= 0)
                alpha = (dsq - sTMs) / (sTMd + rad);
            else
                alpha = (rad - sTMd) / dTMd;
            opt_axpy(n, alpha, d, s);
            opt_axpy(n, -alpha, hd, r);
            break;
        }
        opt_axpy(n, -alpha, hd, r);
        for (size_t i = 0; i < n; i++)
            z[i] = r[i] / M[i];
        double znewTrnew = opt_dot(n, z, r);
        double beta = znewTrnew / zTr;
        opt_scal(n, beta, d);
        opt_axpy(n, 1.0, z, d);
        zTr = znewTrnew;
    }
    *cg_iter = k;
    return OPT_GOOD;
}

double lr_tron_radius(double delta, double f, double fnew, double gs, double prered,
                      double snorm, int boundary)
{
    double actred = f - fnew;
    /* α minimizes the quadratic through f(w), gᵀs and f(w + s) along s */
    double alpha;
    if (fnew - f - gs <= 0)
        alpha = TRON_SIGMA3;
    else
        alpha = fmax(TRON_SIGMA1, -0.5 * (gs / (fnew - f - gs)));
    if (actred < TRON_ETA0 * prered)
        return fmin(alpha * snorm, TRON_SIGMA2 * delta);
    if (actred < TRON_ETA1 * prered)
        return fmax(TRON_SIGMA1 * delta, fmin(alpha * snorm, TRON_SIGMA2 * delta));
    if (actred < TRON_ETA2 * prered)
        return fmax(TRON_SIGMA1 * delta, fmin(alpha * snorm, TRON_SIGMA3 * delta));
    if (boundary)
        return TRON_SIGMA3 * delta;
    return fmax(delta, fmin(alpha * snorm, TRON_SIGMA3 * delta));
}

ad_status lr_tron(const ad_problem *p, double *w, const lr_tron_params *prm,
                  ad_opt_result *res)
{
    opt_result_clear(res);
    if (!p || !w || !prm || !p->hvp)
        return AD_EINVAL;
    for (size_t i = 0; i < p->n; i++) /* TRON starts from w = 0 */
        w[i] = 0.0;
    ad_status st = opt_check_input(p, w);
    if (st)
        return st;
    size_t n = p->n;
    tron_ws ws;
    if (!tron_ws_alloc(&ws, n))
        return AD_ENOMEM;
    double *g = ws.g, *s = ws.s, *r = ws.r, *wt = ws.wt, *M = ws.M;
    /* A bound on trials, accepted or not, that TRON itself does not have:
     * its own tests end any run of rejections long before. */
    opt_eval e;
    opt_eval_init(&e, p, 10 * prm->max_iter + 10);

    double f;
    int h = opt_fg(&e, w, &f, g);
    if (h != OPT_GOOD) {
        st = h == OPT_ERR ? e.err : AD_EDOMAIN;
        tron_ws_free(&ws);
        return st;
    }
    double gnorm0 = opt_nrm2(n, g), gnorm = gnorm0;
    ad_stop_reason why = AD_STOP_NONE;
    if (gnorm <= prm->eps * gnorm0)
        why = AD_STOP_GTOL;
    double delta = 0.0;
    if (why == AD_STOP_NONE) {
        if ((st = tron_precond(prm, w, M, n)))
            why = AD_STOP_ERROR;
        else
            delta = sqrt(tron_utmv(n, g, M, g));
    }
    size_t iter = 1, trials = 0;
    int delta_adjusted = 0;

    while (why == AD_STOP_NONE) {
        if (iter > prm->max_iter) {
            why = AD_STOP_MAX_ITER;
            break;
        }
        if (opt_budget_spent(&e)) {
            why = AD_STOP_MAX_EVAL;
            break;
        }
        size_t cg;
        int boundary;
        h = tron_cg(&e, &ws, w, delta, prm->eps_cg, &cg, &boundary);
        res->cg_iters += cg;
        if (h != OPT_GOOD) {
            st = h == OPT_ERR ? e.err : AD_EDOMAIN;
            why = AD_STOP_ERROR;
            break;
        }
        trials++;

        memcpy(wt, w, n * sizeof *wt);
        opt_axpy(n, 1.0, s, wt);
        double gs = opt_dot(n, g, s);
        double prered = -0.5 * (gs - opt_dot(n, s, r));
        double fnew;
        h = opt_fg(&e, wt, &fnew, NULL);
        if (h == OPT_ERR) {
            st = e.err;
            why = AD_STOP_ERROR;
            break;
        }
        if (h == OPT_BAD) /* outside the domain: a failed step, Δ shrinks */
            fnew = HUGE_VAL;
        double actred = f - fnew;

        double sMnorm = sqrt(tron_utmv(n, s, M, s));
        if (iter == 1 && !delta_adjusted) {
            delta = fmin(delta, sMnorm);
            delta_adjusted = 1;
        }
        delta = lr_tron_radius(delta, f, fnew, gs, prered, sMnorm, boundary);

        size_t line = iter; /* TRON's numbering: a rejected step repeats it */
        if (actred > TRON_ETA0 * prered) {
            iter++;
            memcpy(w, wt, n * sizeof *w);
            f = fnew;
            h = opt_fg(&e, w, &f, g); /* at the cached point: one reverse sweep */
            if (h != OPT_GOOD) {
                st = h == OPT_ERR ? e.err : AD_EDOMAIN;
                why = AD_STOP_ERROR;
                break;
            }
            if ((st = tron_precond(prm, w, M, n))) {
                why = AD_STOP_ERROR;
                break;
            }
            gnorm = opt_nrm2(n, g);
            if (gnorm <= prm->eps * gnorm0)
                why = AD_STOP_GTOL;
        }
        /* TRON's other ends, in its order: f unbounded below, a model that
         * predicts no decrease (Δ has collapsed), and both reductions at
         * rounding level of f. */
        if (why == AD_STOP_NONE) {
            if (f < -1.0e+32)
                why = AD_STOP_FTOL;
            else if (prered <= 0)
                why = AD_STOP_TR_RADIUS;
            else if (fabs(actred) <= 1.0e-12 * fabs(f) && fabs(prered) <= 1.0e-12 * fabs(f))
                why = AD_STOP_FTOL;
        }
        if (opt_report(prm->progress, prm->progress_ctx, &e, line, f, opt_nrminf(n, g),
                       sMnorm, delta, cg) &&
            why == AD_STOP_NONE)
            why = AD_STOP_CALLBACK;
    }
    opt_result_finish(res, &e, trials, f, opt_nrminf(n, g), why);
    tron_ws_free(&ws);
    return why == AD_STOP_ERROR ? (st ? st : AD_EDOMAIN) : AD_OK;
}
