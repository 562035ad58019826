/*
 * Internal helpers shared by the optimizers (src/opt): clock, CBLAS vector
 * wrappers, counted evaluations with a three-way outcome, the line searches
 * and result/progress bookkeeping.  Nothing here is exported.
 */
#ifndef HYPERAD_OPT_INTERNAL_H
#define HYPERAD_OPT_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <time.h>

#include <cblas.h>

#include "hyperad.h"

/* ---- clock ------------------------------------------------------------ */

static inline double opt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- vectors: CBLAS, with the size_t → blasint narrowing in one place -- */
/* Vectors longer than INT_MAX are refused at the entry points
 * (opt_check_input), so the casts below cannot truncate. */

static inline double opt_dot(size_t n, const double *a, const double *b)
{
    return cblas_ddot((int)n, a, 1, b, 1);
}

static inline double opt_nrm2(size_t n, const double *a)
{
    return cblas_dnrm2((int)n, a, 1);
}

/* y += alpha x */
static inline void opt_axpy(size_t n, double alpha, const double *x, double *y)
{
    cblas_daxpy((int)n, alpha, x, 1, y, 1);
}

/* y = alpha x + beta y (OpenBLAS's extension of CBLAS); y must be finite
 * when beta is 0. */
static inline void opt_axpby(size_t n, double alpha, const double *x,
                             double beta, double *y)
{
    cblas_daxpby((int)n, alpha, x, 1, beta, y, 1);
}

static inline void opt_copy(size_t n, const double *x, double *y)
{
    cblas_dcopy((int)n, x, 1, y, 1);
}

static inline void opt_scal(size_t n, double alpha, double *x)
{
    cblas_dscal((int)n, alpha, x, 1);
}

/* ‖a‖∞ through idamax (one pass, no branch per entry in our code). */
static inline double opt_nrminf(size_t n, const double *a)
{
    return fabs(a[cblas_idamax((int)n, a, 1)]);
}

/* 1 when every entry is finite: 0·inf and 0·NaN are NaN, so one
 * vectorizable accumulation answers for the whole vector. */
static inline int opt_all_finite(size_t n, const double *a)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++)
        acc += 0.0 * a[i];
    return acc == 0.0;
}

/* ---- counted evaluations ------------------------------------------------ */

/* Outcome of one evaluation.  OPT_BAD (non-finite value, or AD_EDOMAIN from
 * the callback, as a tape reports it) is recoverable: the caller backtracks.
 * OPT_ERR is any other failed status and ends the run with AD_STOP_ERROR. */
enum { OPT_GOOD = 0, OPT_BAD = 1, OPT_ERR = 2 };

typedef struct opt_eval {
    const ad_problem *p;
    size_t n;
    size_t nfev, ngev, nhvp;
    size_t max_eval;   /* 0: unlimited */
    ad_status err;     /* status of the callback that failed (OPT_ERR) */
    double t0;         /* start of the run, opt_now() */
} opt_eval;

void opt_eval_init(opt_eval *e, const ad_problem *p, size_t max_eval);

/* f (and g unless NULL) at x.  Counts one f evaluation, and one gradient
 * when g is wanted. */
int opt_fg(opt_eval *e, const double *x, double *f, double *g);

/* hv = ∇²f(x) v.  Only the status is classified (AD_EDOMAIN: OPT_BAD): hv
 * is not scanned, callers check what they use (in CG, dᵀHd is non-finite
 * whenever an entry of Hd is, which saves a pass over n). */
int opt_hvp(opt_eval *e, const double *x, const double *v, double *hv);

/* 1 when the evaluation budget is spent. */
static inline int opt_budget_spent(const opt_eval *e)
{
    return e->max_eval != 0 && e->nfev >= e->max_eval;
}

/* ---- entry checks, results, progress -------------------------------------- */

/* AD_EINVAL unless p, its fg, n > 0 (and ≤ INT_MAX for CBLAS) and a finite
 * x are all there. */
ad_status opt_check_input(const ad_problem *p, const double *x);

/* Starts a result: zero counters, reason AD_STOP_NONE, f and gnorm NaN. */
void opt_result_clear(ad_opt_result *r);

/* Copies the counters and the clock of e into r. */
void opt_result_finish(ad_opt_result *r, const opt_eval *e, size_t iters,
                       double f, double gnorm, ad_stop_reason why);

/* Calls the progress callback (when there is one); 1 when it asks to stop. */
int opt_report(ad_progress_fn fn, void *ctx, const opt_eval *e, size_t iter,
               double f, double gnorm, double step, double radius,
               size_t cg_iters);

/* ---- line searches (linesearch.c) ----------------------------------------- */

typedef struct ls_params {
    double c1, c2;        /* sufficient decrease and curvature constants      */
    double xtol;          /* relative width of the bracket that ends the search */
    double stpmin, stpmax;
    size_t max_trials;
} ls_params;

/* Outcome of a line search.  On LS_OK, x/f/g hold the accepted point, whose
 * f is below f0 (or, once the decrease asked for is below the rounding level
 * of f, within a few ulps of it with a flatter slope).  On every other
 * outcome they hold the best point the search evaluated (which may be the
 * start point x0, f0, g0 itself), so callers never keep garbage. */
enum { LS_OK = 0, LS_FAIL, LS_MAXEVAL, LS_ERR };

/* The work space and the start of a search along d from x0. */
typedef struct ls_state {
    size_t n;
    const double *x0, *g0, *d;
    double f0, dg0;       /* f(x0) and g0·d (< 0)                           */
    double *gbest;        /* n doubles of scratch                            */
} ls_state;

/* Moré & Thuente (1994) search for a step satisfying the strong Wolfe
 * conditions, started at *stp.  A trial with a non-finite f or g shrinks the
 * step toward the best point so far instead of entering the bracket logic. */
int ls_more_thuente(opt_eval *e, const ls_state *s, const ls_params *prm,
                    double *x, double *f, double *g, double *stp);

/* Backtracking to the Armijo condition only (Nocedal & Wright 2006, Alg. 3.1,
 * with the cubic/quadratic interpolation of §3.5); non-finite trials halve
 * the step. */
int ls_backtrack(opt_eval *e, const ls_state *s, const ls_params *prm,
                 double *x, double *f, double *g, double *stp);

#endif /* HYPERAD_OPT_INTERNAL_H */
