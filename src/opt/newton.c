/*
 * Newton-CG on Hessian-vector products: the Hessian is never formed.
 *
 * - Trust region (default): Steihaug (1983) / Toint (1981) truncated CG on
 *   the model m(s) = gᵀs + ½ sᵀHs inside ‖s‖_M ≤ Δ (Nocedal & Wright 2006,
 *   Alg. 7.2; with a preconditioner M the region is measured in the M-norm,
 *   Conn, Gould & Toint 2000, Alg. 7.5.1), and the radius update of N&W
 *   Alg. 4.1 refined as in TRON.  The CG tolerance is η‖g‖ with
 *   η = min(η_max, ‖g‖/‖g₀‖), which gives quadratic local convergence.
 * - Line search: truncated Newton (N&W Alg. 7.1), CG stopped at the
 *   Eisenstat & Walker (1996) forcing term (their choice 2, γ = 0.9, α = 2,
 *   with their safeguard), a negative-curvature direction added to the step
 *   when CG meets one, and Armijo backtracking.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "opt_internal.h"

void ad_newton_params_init(ad_newton_params *prm)
{
    if (prm == NULL)
        return;
    prm->max_iter = 200;
    prm->max_cg = 0;     /* 0: min(max(n, 10), 250), resolved at the start */
    prm->max_eval = 0;   /* 0: 10·max_iter */
    prm->gtol = 1e-6;
    prm->gtol_rel = 0.0;
    prm->globalization = AD_TRUST_REGION;
    prm->eta_max = 0.5;
    prm->radius0 = 0.0;
    prm->precond = NULL;
    prm->precond_ctx = NULL;
    prm->progress = NULL;
    prm->progress_ctx = NULL;
}

typedef struct nt_ws {
    double *g, *gt, *xt, *s, *r, *z, *d, *hd, *gbest;
} nt_ws;

static void nt_ws_free(nt_ws *w)
{
    free(w->g);
    free(w->gt);
    free(w->xt);
    free(w->s);
    free(w->r);
    free(w->z);
    free(w->d);
    free(w->hd);
    free(w->gbest);
}

static int nt_ws_alloc(nt_ws *w, size_t n)
{
    double **v[] = { &w->g, &w->gt, &w->xt, &w->s, &w->r, &w->z, &w->d,
                     &w->hd, &w->gbest };
    int ok = 1;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        *v[i] = malloc(n * sizeof(double));
        ok = ok && *v[i] != NULL;
    }
    return ok;
}

typedef struct nt_run {
    opt_eval e;
    const ad_newton_params *prm;
    nt_ws w;
    size_t n, max_cg;
} nt_run;

/* z = M⁻¹ r.  A failing or non-finite preconditioner is the caller's error
 * (OPT_ERR), not a domain problem. */
static int nt_precond(nt_run *c, const double *x, const double *r, double *z)
{
    ad_status st = c->prm->precond(c->prm->precond_ctx, x, r, z);
    if (st == AD_OK && !opt_all_finite(c->n, z))
        st = AD_EDOMAIN;
    if (st != AD_OK) {
        c->e.err = st;
        return OPT_ERR;
    }
    return OPT_GOOD;
}

/*
 * The CG start shared by both globalizations: s = 0, r = g, z = M⁻¹r (z is
 * r itself without a preconditioner, which saves a copy and a pass per
 * iteration), d = −z.  Returns rᵀz in *rz.
 */
static int nt_cg_start(nt_run *c, const double *x, const double *g,
                       double **z, double *rz)
{
    const size_t n = c->n;
    nt_ws *w = &c->w;
    memset(w->s, 0, n * sizeof(double));
    opt_copy(n, g, w->r);
    *z = w->r;
    if (c->prm->precond) {
        *z = w->z;
        if (nt_precond(c, x, w->r, w->z) != OPT_GOOD)
            return OPT_ERR;
    }
    *rz = opt_dot(n, w->r, *z);
    opt_copy(n, *z, w->d);
    opt_scal(n, -1.0, w->d);
    return OPT_GOOD;
}

/*
 * One CG update after the step α along d: r += α Hd, then the stopping test
 * ‖r‖ ≤ tol (1: converged), else z = M⁻¹r, β = rᵀz/previous rᵀz and
 * d = −z + β d.  Without a preconditioner rᵀz = ‖r‖² serves both.
 */
static int nt_cg_update(nt_run *c, const double *x, double *z, double alpha,
                        double tol, double *rz, double *beta)
{
    const size_t n = c->n;
    nt_ws *w = &c->w;
    opt_axpy(n, alpha, w->hd, w->r);
    double rz1;
    if (c->prm->precond == NULL) {
        rz1 = opt_dot(n, w->r, w->r);
        if (sqrt(rz1) <= tol)
            return 1;
    } else {
        if (opt_nrm2(n, w->r) <= tol)
            return 1;
        if (nt_precond(c, x, w->r, z) != OPT_GOOD)
            return -1;
        rz1 = opt_dot(n, w->r, z);
    }
    *beta = rz1 / *rz;
    *rz = rz1;
    opt_axpby(n, -1.0, z, *beta, w->d);
    return 0;
}

typedef struct nt_step {
    double pred;     /* m(s) − m(0) = gᵀs + ½ sᵀHs, negative for a useful s */
    double snorm;    /* ‖s‖_M                                             */
    size_t iters;    /* CG iterations (HVPs)                              */
    int boundary;    /* s reached the trust-region boundary                */
} nt_step;

/* Step τ ≥ 0 with ‖s + τ d‖_M = Δ, from sᵀMs, sᵀMd, dᵀMd; the form without
 * cancellation (Δ² − sᵀMs ≥ 0 since s is inside). */
static double nt_to_boundary(double sMs, double sMd, double dMd, double radius)
{
    double rest = fmax(radius * radius - sMs, 0.0);
    double root = sqrt(sMd * sMd + dMd * rest);
    return sMd > 0.0 ? rest / (sMd + root) : (root - sMd) / dMd;
}

/*
 * Steihaug–Toint CG for min m(s) in ‖s‖_M ≤ Δ (N&W Alg. 7.2).  The M-norms
 * of the iterate and direction follow from the CG recurrences (Conn, Gould &
 * Toint 2000, §7.5.1), so no product with M itself is needed:
 *   sᵀMs' = sᵀMs + 2α sᵀMd + α² dᵀMd,  sᵀMd' = β(sᵀMd + α dᵀMd),
 *   dᵀMd' = rᵀz + β² dᵀMd.
 * *radius = 0 on entry sets it to ‖M⁻¹g‖_M = √(gᵀM⁻¹g) (‖g‖₂ unpreconditioned).
 */
static int nt_steihaug(nt_run *c, const double *x, const double *g,
                       double *radius, double tol, nt_step *out)
{
    const size_t n = c->n;
    nt_ws *w = &c->w;
    double *z, rz;
    out->pred = 0.0;
    out->snorm = 0.0;
    out->iters = 0;
    out->boundary = 0;
    if (nt_cg_start(c, x, g, &z, &rz) != OPT_GOOD)
        return OPT_ERR;
    if (*radius <= 0.0)
        *radius = sqrt(rz);
    double sMs = 0.0, sMd = 0.0, dMd = rz, mval = 0.0;
    const double rad2 = *radius * *radius;

    for (size_t j = 0; j < c->max_cg; j++) {
        int h = opt_hvp(&c->e, x, w->d, w->hd);
        if (h == OPT_ERR)
            return OPT_ERR;
        double kappa = opt_dot(n, w->d, w->hd);
        /* dᵀr = −rᵀz: d_{j−1}ᵀ r_j = 0 in CG. */
        double dr = -rz;
        if (h == OPT_BAD || !isfinite(kappa)) {
            /* No curvature information: the Cauchy-like step to the boundary
             * along the current direction, judged by the linear model. */
            if (j == 0) {
                double tau = nt_to_boundary(sMs, sMd, dMd, *radius);
                opt_axpy(n, tau, w->d, w->s);
                mval += tau * dr;
                sMs = rad2;
                out->boundary = 1;
            }
            break;
        }
        out->iters++;
        double alpha = kappa > 0.0 ? rz / kappa : 0.0;
        if (kappa <= 0.0 || sMs + alpha * (2.0 * sMd + alpha * dMd) >= rad2) {
            /* Negative curvature, or the CG step leaves the region: follow
             * d to the boundary, where the model is lowest along it. */
            double tau = nt_to_boundary(sMs, sMd, dMd, *radius);
            opt_axpy(n, tau, w->d, w->s);
            mval += tau * dr + 0.5 * tau * tau * kappa;
            sMs = rad2;
            out->boundary = 1;
            break;
        }
        opt_axpy(n, alpha, w->d, w->s);
        mval += alpha * dr + 0.5 * alpha * alpha * kappa;
        sMs += alpha * (2.0 * sMd + alpha * dMd);
        double beta = 0.0;
        int u = nt_cg_update(c, x, z, alpha, tol, &rz, &beta);
        if (u < 0)
            return OPT_ERR;
        if (u > 0)
            break;
        sMd = beta * (sMd + alpha * dMd);
        dMd = rz + beta * beta * dMd;
    }
    out->pred = mval;
    out->snorm = sqrt(sMs);
    return OPT_GOOD;
}

/*
 * Truncated CG for H d = −g (N&W Alg. 7.1), stopped when ‖r‖ ≤ tol, at
 * max_cg, or at non-positive curvature along a CG direction d_j.  There the
 * step is the iterate so far plus d_j scaled by rᵀz/|d_jᵀHd_j|, the step a
 * model with curvature |d_jᵀHd_j| would take (for j = 0: the scaled
 * preconditioned steepest descent direction).  *negcurv reports it.
 */
static int nt_truncated_cg(nt_run *c, const double *x, const double *g,
                           double tol, size_t *iters, int *negcurv)
{
    const size_t n = c->n;
    nt_ws *w = &c->w;
    double *z, rz;
    *iters = 0;
    *negcurv = 0;
    if (nt_cg_start(c, x, g, &z, &rz) != OPT_GOOD)
        return OPT_ERR;

    for (size_t j = 0; j < c->max_cg; j++) {
        int h = opt_hvp(&c->e, x, w->d, w->hd);
        if (h == OPT_ERR)
            return OPT_ERR;
        double kappa = opt_dot(n, w->d, w->hd);
        if (h == OPT_BAD || !isfinite(kappa)) {
            if (j == 0)
                opt_copy(n, w->d, w->s);
            break;
        }
        (*iters)++;
        if (kappa <= 0.0) {
            /* Add the direction of non-positive curvature to the iterate,
             * scaled by rᵀz/|dᵀHd|: both are descent directions (dᵀg =
             * dᵀr = −rᵀz < 0 by conjugacy), and stopping at the iterate
             * alone, as N&W Alg. 7.1 does for j > 0, zigzags on
             * indefinite stretches. */
            *negcurv = 1;
            opt_axpy(n, kappa < 0.0 ? rz / -kappa : 1.0, w->d, w->s);
            break;
        }
        double alpha = rz / kappa, beta;
        opt_axpy(n, alpha, w->d, w->s);
        int u = nt_cg_update(c, x, z, alpha, tol, &rz, &beta);
        if (u < 0)
            return OPT_ERR;
        if (u > 0)
            break;
    }
    return OPT_GOOD;
}

static int newton_params_ok(const ad_newton_params *prm)
{
    return prm->max_iter > 0 && prm->gtol >= 0.0 && prm->gtol_rel >= 0.0 &&
           prm->eta_max > 0.0 && prm->eta_max < 1.0 && prm->radius0 >= 0.0 &&
           isfinite(prm->radius0) &&
           (prm->globalization == AD_TRUST_REGION ||
            prm->globalization == AD_LINE_SEARCH);
}

/* Shared stopping tests at the top of an iteration; AD_STOP_NONE: go on. */
static ad_stop_reason nt_should_stop(const nt_run *c, size_t iter,
                                     double gnorm, double g2, double g2_0)
{
    if (gnorm <= c->prm->gtol ||
        (c->prm->gtol_rel > 0.0 && g2 <= c->prm->gtol_rel * g2_0))
        return AD_STOP_GTOL;
    if (iter >= c->prm->max_iter)
        return AD_STOP_MAX_ITER;
    if (opt_budget_spent(&c->e))
        return AD_STOP_MAX_EVAL;
    return AD_STOP_NONE;
}

/* Trust-region Newton-CG.  x, f and c->w.g hold the current (best) point. */
static ad_status newton_tr(nt_run *c, double *x, double *fx, ad_opt_result *res)
{
    const size_t n = c->n;
    nt_ws *w = &c->w;
    double f = *fx, radius = c->prm->radius0;
    double gnorm = opt_nrminf(n, w->g), g2 = opt_nrm2(n, w->g), g2_0 = g2;
    size_t iter = 0;
    ad_status st = AD_OK;
    ad_stop_reason why;

    for (;;) {
        why = nt_should_stop(c, iter, gnorm, g2, g2_0);
        if (why != AD_STOP_NONE)
            break;
        /* Radius below rounding level of x: no representable progress. */
        if (radius > 0.0 && radius < DBL_EPSILON * fmax(1.0, opt_nrm2(n, x))) {
            why = AD_STOP_TR_RADIUS;
            break;
        }
        /* Forcing term η = min(η_max, ‖g‖/‖g₀‖): η = O(‖g‖) gives quadratic
         * local convergence (N&W §7.1, Thm. 7.2), and measuring ‖g‖
         * relative to ‖g₀‖ keeps the rule independent of the scale of f.
         * On a tape, HVPs at one x cost less than new gradients, so solving
         * accurately once close to the solution pays. */
        double tol = fmin(c->prm->eta_max, g2 / g2_0) * g2;
        nt_step step;
        if (nt_steihaug(c, x, w->g, &radius, tol, &step) != OPT_GOOD) {
            why = AD_STOP_ERROR;
            st = c->e.err;
            break;
        }
        res->cg_iters += step.iters;

        opt_copy(n, x, w->xt);
        opt_axpy(n, 1.0, w->s, w->xt);
        double ft;
        int h = opt_fg(&c->e, w->xt, &ft, w->gt);
        if (h == OPT_ERR) {
            why = AD_STOP_ERROR;
            st = c->e.err;
            break;
        }
        /* ρ = actual / predicted reduction (N&W eq. 4.4).  A trial outside
         * the domain counts as a failed model (ρ = −∞).  When both
         * reductions are at rounding level of f, ρ is noise: take any
         * non-increase as a middling step (ρ = 1/2). */
        double rho, noise = 16.0 * DBL_EPSILON * fmax(1.0, fabs(f));
        if (h == OPT_BAD)
            rho = -INFINITY;
        else if (-step.pred <= noise && fabs(f - ft) <= noise)
            rho = ft <= f ? 0.5 : -INFINITY;
        else if (!(step.pred < 0.0))
            rho = -INFINITY;
        else
            rho = (f - ft) / -step.pred;

        /* Radius update of TRON (Lin & Moré 1999, §2, also LIBLINEAR):
         * N&W Alg. 4.1's thresholds 1/4 and 3/4, with the new radius set
         * from the minimizer α of the quadratic through f, gᵀs and f(x+s)
         * along s, so a badly failed step shrinks Δ at once instead of by
         * repeated quarterings; and Δ ≤ ‖s₁‖ after the first step, which
         * corrects a poor initial Δ.  Growth is capped at 2Δ as in N&W
         * (TRON's 4Δ caused a rejected step after most expansions on
         * Rosenbrock-like valleys). */
        if (iter == 0)
            radius = fmin(radius, step.snorm);
        double gs = opt_dot(n, w->g, w->s), alpha = 2.0;
        if (h != OPT_BAD && ft - f - gs > 0.0)
            alpha = fmax(0.25, -0.5 * gs / (ft - f - gs));
        if (h == OPT_BAD || rho < 1e-4)
            radius = fmin(fmax(alpha, 0.25) * step.snorm, 0.5 * radius);
        else if (rho < 0.25)
            radius = fmax(0.25 * radius, fmin(alpha * step.snorm, 0.5 * radius));
        else if (rho < 0.75)
            radius = fmax(0.25 * radius, fmin(alpha * step.snorm, 2.0 * radius));
        else
            radius = fmax(radius, fmin(alpha * step.snorm, 2.0 * radius));
        /* Accept any step that the model predicted reasonably (TRON's η0). */
        if (rho > 1e-4 && ft <= f) {
            opt_copy(n, w->xt, x);
            f = ft;
            double *t = w->g;
            w->g = w->gt;
            w->gt = t;
            gnorm = opt_nrminf(n, w->g);
            g2 = opt_nrm2(n, w->g);
        }
        iter++;
        if (opt_report(c->prm->progress, c->prm->progress_ctx, &c->e, iter,
                       f, gnorm, step.snorm, radius, step.iters)) {
            why = AD_STOP_CALLBACK;
            break;
        }
    }
    *fx = f;
    opt_result_finish(res, &c->e, iter, f, opt_nrminf(n, w->g), why);
    return st;
}

/* Line-search truncated Newton with Eisenstat–Walker forcing. */
static ad_status newton_ls(nt_run *c, double *x, double *fx, ad_opt_result *res)
{
    const size_t n = c->n;
    nt_ws *w = &c->w;
    const ls_params lsp = { .c1 = 1e-4, .c2 = 0.9, .xtol = 1e-16,
                            .stpmin = 1e-20, .stpmax = 1e20, .max_trials = 40 };
    double f = *fx;
    double gnorm = opt_nrminf(n, w->g), g2 = opt_nrm2(n, w->g), g2_0 = g2;
    double g2_prev = g2, eta = c->prm->eta_max;
    size_t iter = 0;
    ad_status st = AD_OK;
    ad_stop_reason why;

    for (;;) {
        why = nt_should_stop(c, iter, gnorm, g2, g2_0);
        if (why != AD_STOP_NONE)
            break;
        if (iter > 0) {
            /* Eisenstat & Walker (1996) choice 2 with its safeguard: η
             * follows the observed decrease of ‖g‖, but may not fall much
             * faster than the previous η. */
            double prev = eta;
            eta = 0.9 * (g2 / g2_prev) * (g2 / g2_prev);
            double guard = 0.9 * prev * prev;
            if (guard > 0.1)
                eta = fmax(eta, guard);
            eta = fmin(eta, c->prm->eta_max);
            /* Never looser than the quadratic rule of the trust-region
             * variant: choice 2 stays high while ‖g‖ oscillates, as it
             * does along curved valleys, and truncated steps then crawl. */
            eta = fmin(eta, g2 / g2_0);
            /* Kelley's floor: no oversolving below the final tolerance. */
            eta = fmax(eta, fmin(c->prm->eta_max, 0.5 * c->prm->gtol / g2));
        }
        size_t cg;
        int negcurv;
        if (nt_truncated_cg(c, x, w->g, eta * g2, &cg, &negcurv) != OPT_GOOD) {
            why = AD_STOP_ERROR;
            st = c->e.err;
            break;
        }
        res->cg_iters += cg;

        /* Line search from (xt, gt) = the current point, along d = w->s. */
        opt_copy(n, x, w->xt);
        opt_copy(n, w->g, w->gt);
        double fp = f, stp = 1.0;
        ls_state ls = { .n = n, .x0 = w->xt, .g0 = w->gt, .d = w->s, .f0 = fp,
                        .gbest = w->gbest };
        ls.dg0 = opt_dot(n, w->g, w->s);
        int rc = LS_FAIL;
        if (ls.dg0 < 0.0)
            rc = ls_backtrack(&c->e, &ls, &lsp, x, &f, w->g, &stp);
        if (rc == LS_FAIL && !(f < fp)) {
            /* The Newton direction failed: one try along −g. */
            opt_copy(n, w->gt, w->s);
            opt_scal(n, -1.0, w->s);
            ls.dg0 = -g2 * g2;
            stp = 1.0 / g2;
            rc = ls_backtrack(&c->e, &ls, &lsp, x, &f, w->g, &stp);
        }
        if (rc == LS_ERR) {
            why = AD_STOP_ERROR;
            st = c->e.err;
            break;
        }
        if (!(f < fp)) {
            why = rc == LS_MAXEVAL ? AD_STOP_MAX_EVAL : AD_STOP_LINESEARCH;
            break;
        }
        iter++;
        g2_prev = g2;
        gnorm = opt_nrminf(n, w->g);
        g2 = opt_nrm2(n, w->g);
        if (opt_report(c->prm->progress, c->prm->progress_ctx, &c->e, iter,
                       f, gnorm, stp, 0.0, cg)) {
            why = AD_STOP_CALLBACK;
            break;
        }
    }
    *fx = f;
    opt_result_finish(res, &c->e, iter, f, opt_nrminf(n, w->g), why);
    return st;
}

ad_status ad_newton_cg(const ad_problem *p, double *x,
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
    if (p->hvp == NULL || !newton_params_ok(prm))
        return AD_EINVAL;

    nt_run c;
    c.n = p->n;
    c.prm = prm;
    c.max_cg = prm->max_cg;
    if (c.max_cg == 0) {
        c.max_cg = c.n < 10 ? 10 : c.n;
        if (c.max_cg > 250)
            c.max_cg = 250;
    }
    if (!nt_ws_alloc(&c.w, c.n)) {
        nt_ws_free(&c.w);
        return AD_ENOMEM;
    }
    opt_eval_init(&c.e, p, prm->max_eval ? prm->max_eval : 10 * prm->max_iter);

    double f;
    int h = opt_fg(&c.e, x, &f, c.w.g);
    if (h != OPT_GOOD) {
        st = h == OPT_ERR ? c.e.err : AD_EDOMAIN;
        opt_result_finish(res, &c.e, 0, f, NAN, AD_STOP_ERROR);
    } else if (prm->globalization == AD_TRUST_REGION) {
        st = newton_tr(&c, x, &f, res);
    } else {
        st = newton_ls(&c, x, &f, res);
    }
    nt_ws_free(&c.w);
    return st;
}
