/* Internal glue shared by logreg.c and logreg_io.c (not installed). */
#ifndef HYPERAD_OPT_LOGREG_INTERNAL_H
#define HYPERAD_OPT_LOGREG_INTERNAL_H

#include "hyperad.h"

/* Sets the thread's logreg error detail (printf-style). */
void lr_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lr_clearerr(void);

/* LIBSVM files of at least this many bytes are parsed by two threads
 * (default 16 MiB); tests set it to 0 to split small files. */
extern size_t lr_parallel_min;

/* For tests: records on t the objective of the first binary sub-problem
 * of d under prm (label[0] in LIBLINEAR's order scored +1; for two classes
 * this is the whole problem) exactly as ad_logreg_fit does, at w = 0.  The
 * returned context is borrowed by t: free it with lr_objective_free after
 * the tape. */
typedef struct lr_objective lr_objective;
ad_status lr_objective_record(ad_tape *t, const ad_logreg_data *d, const ad_logreg_params *prm,
                              lr_objective **out);
void lr_objective_free(lr_objective *o);

/* TRON, the trust-region Newton method of LIBLINEAR 2.3.0 (logreg_tron.c).
 * Minimizes p from w = 0 (w is overwritten) and stops when ‖∇f(w)‖2 <=
 * eps·‖∇f(0)‖2, as LIBLINEAR's TRON::tron with eps_cg.  diag, when not NULL,
 * writes the Hessian diagonal at w (n entries), from which the preconditioner
 * (1 − 0.01) + 0.01·diag is made; NULL gives M = I.  max_iter bounds the
 * accepted steps (TRON's iter); res->iters counts every trial step, accepted
 * or not, as LIBLINEAR prints them.  The progress callback runs once per
 * trial with iter = TRON's iteration number (a rejected step repeats it), f
 * and ‖g‖∞ after the trial, step = ‖s‖_M and radius = the updated Δ.
 * Returns AD_OK with res->reason (AD_STOP_GTOL, AD_STOP_MAX_ITER,
 * AD_STOP_MAX_EVAL after 10·max_iter + 10 evaluations, AD_STOP_TR_RADIUS
 * when the model predicts no decrease, AD_STOP_FTOL when both reductions
 * are below 1e-12·|f|, AD_STOP_CALLBACK), or the failing callback's status. */
typedef struct lr_tron_params {
    double eps;      /* relative gradient tolerance                      */
    double eps_cg;   /* CG stops at ‖r‖_{M⁻¹} <= eps_cg·‖g‖_{M⁻¹} (LIBLINEAR: 0.1) */
    size_t max_iter; /* accepted steps                                    */
    ad_status (*diag)(void *ctx, const double *w, double *h);
    void *diag_ctx;
    ad_progress_fn progress;
    void *progress_ctx;
} lr_tron_params;

ad_status lr_tron(const ad_problem *p, double *w, const lr_tron_params *prm,
                  ad_opt_result *res);

/* TRON's new radius after a trial step s from w (tron.cpp): f = f(w),
 * fnew = f(w + s), gs = gᵀs, prered the model's predicted reduction, snorm
 * = ‖s‖_M, boundary whether CG stopped on the trust region's boundary.
 * With α the minimizer of the quadratic through f, gᵀs and fnew along s
 * (σ3 when that quadratic has no minimum), and ρ = (f − fnew)/prered:
 * ρ < η0: min(α‖s‖, σ2Δ); ρ < η1: max(σ1Δ, min(α‖s‖, σ2Δ)); ρ < η2:
 * max(σ1Δ, min(α‖s‖, σ3Δ)); else σ3Δ on the boundary, max(Δ, min(α‖s‖,
 * σ3Δ)) inside.  η = (1e-4, 0.25, 0.75), σ = (0.25, 0.5, 4). */
double lr_tron_radius(double delta, double f, double fnew, double gs, double prered,
                      double snorm, int boundary);

#endif
