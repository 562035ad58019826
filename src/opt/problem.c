/*
 * The problem interface: a tape as an ad_problem, the stop reasons in words,
 * and the bookkeeping every optimizer shares (counted evaluations, entry
 * checks, results, progress reports).
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "opt_internal.h"

/* ---- a tape as a problem ---------------------------------------------- */

static ad_status tape_fg(void *ctx, const double *x, double *f, double *g)
{
    if (g == NULL)
        return ad_eval((ad_tape *)ctx, x, f);
    return ad_gradient((ad_tape *)ctx, x, f, g);
}

static ad_status tape_hvp(void *ctx, const double *x, const double *v, double *hv)
{
    return ad_hvp((ad_tape *)ctx, x, v, hv);
}

static ad_status tape_hess(void *ctx, const double *x, double *H)
{
    return ad_hessian((ad_tape *)ctx, x, H);
}

ad_problem ad_problem_tape(ad_tape *t)
{
    ad_problem p;
    p.n = ad_tape_ninputs(t);
    p.ctx = t;
    p.fg = tape_fg;
    p.hvp = tape_hvp;
    p.hess = tape_hess;
    return p;
}

const char *ad_stop_reason_str(ad_stop_reason r)
{
    switch (r) {
    case AD_STOP_NONE:       return "did not run (bad input)";
    case AD_STOP_GTOL:       return "gradient norm below gtol";
    case AD_STOP_FTOL:       return "relative decrease of f below ftol";
    case AD_STOP_MAX_ITER:   return "maximum number of iterations reached";
    case AD_STOP_MAX_EVAL:   return "maximum number of evaluations reached";
    case AD_STOP_CALLBACK:   return "stopped by the progress callback";
    case AD_STOP_LINESEARCH: return "line search found no acceptable step";
    case AD_STOP_TR_RADIUS:  return "trust region radius below its minimum";
    case AD_STOP_ERROR:      return "a callback returned an error";
    }
    return "unknown stop reason";
}

/* ---- counted evaluations ------------------------------------------------ */

void opt_eval_init(opt_eval *e, const ad_problem *p, size_t max_eval)
{
    e->p = p;
    e->n = p->n;
    e->nfev = e->ngev = e->nhvp = 0;
    e->max_eval = max_eval;
    e->err = AD_OK;
    e->t0 = opt_now();
}

/* A tape reports a non-finite result as AD_EDOMAIN; hand-written callbacks
 * may do the same or just return NaN.  Both are a point outside the domain,
 * which a step can back away from; anything else is the caller's error. */
static int classify(opt_eval *e, ad_status st)
{
    if (st == AD_OK)
        return OPT_GOOD;
    if (st == AD_EDOMAIN)
        return OPT_BAD;
    e->err = st;
    return OPT_ERR;
}

int opt_fg(opt_eval *e, const double *x, double *f, double *g)
{
    *f = NAN;
    e->nfev++;
    if (g)
        e->ngev++;
    int c = classify(e, e->p->fg(e->p->ctx, x, f, g));
    if (c != OPT_GOOD)
        return c;
    if (!isfinite(*f) || (g && !opt_all_finite(e->n, g)))
        return OPT_BAD;
    return OPT_GOOD;
}

int opt_hvp(opt_eval *e, const double *x, const double *v, double *hv)
{
    e->nhvp++;
    return classify(e, e->p->hvp(e->p->ctx, x, v, hv));
}

/* ---- entry checks, results, progress -------------------------------------- */

ad_status opt_check_input(const ad_problem *p, const double *x)
{
    if (p == NULL || x == NULL || p->fg == NULL)
        return AD_EINVAL;
    /* CBLAS indexes with int. */
    if (p->n == 0 || p->n > (size_t)INT_MAX)
        return AD_EINVAL;
    if (!opt_all_finite(p->n, x))
        return AD_EINVAL;
    return AD_OK;
}

void opt_result_clear(ad_opt_result *r)
{
    memset(r, 0, sizeof *r);
    r->f = NAN;
    r->gnorm = NAN;
    r->reason = AD_STOP_NONE;
}

void opt_result_finish(ad_opt_result *r, const opt_eval *e, size_t iters,
                       double f, double gnorm, ad_stop_reason why)
{
    r->f = f;
    r->gnorm = gnorm;
    r->iters = iters;
    r->nfev = e->nfev;
    r->ngev = e->ngev;
    r->nhvp = e->nhvp;
    r->reason = why;
    r->elapsed = opt_now() - e->t0;
}

int opt_report(ad_progress_fn fn, void *ctx, const opt_eval *e, size_t iter,
               double f, double gnorm, double step, double radius,
               size_t cg_iters)
{
    if (fn == NULL)
        return 0;
    ad_opt_progress pr;
    pr.iter = iter;
    pr.f = f;
    pr.gnorm = gnorm;
    pr.step = step;
    pr.radius = radius;
    pr.cg_iters = cg_iters;
    pr.nfev = e->nfev;
    pr.ngev = e->ngev;
    pr.nhvp = e->nhvp;
    pr.elapsed = opt_now() - e->t0;
    return fn(ctx, &pr) != 0;
}
