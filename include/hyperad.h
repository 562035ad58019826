/*
 * hyperad — second derivatives for C.
 *
 * One public header, in sections: status, tape, ops, drivers, curvature,
 * optimizers, logistic regression.  Every fallible function returns an
 * ad_status; ad_strerror() turns it into words and ad_tape_errmsg() gives the
 * detail of the last error on a tape (which op, which node, which argument).
 *
 * Ownership in one sentence: the library owns what it allocates (tapes and
 * their buffers), the caller owns every array it passes in, and arrays are
 * only read during the call unless a comment says "borrowed" (then they must
 * outlive the tape).
 */
#ifndef HYPERAD_H
#define HYPERAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AD_API __attribute__((visibility("default")))
#else
#define AD_API
#endif

/* ===================================================================== */
/* Status                                                                */
/* ===================================================================== */

typedef enum ad_status {
    AD_OK = 0,
    AD_ENOMEM,   /* an allocation failed; the tape keeps its old storage     */
    AD_EINVAL,   /* a bad argument: NULL, size mismatch, NaN input, foreign var */
    AD_ESTATE,   /* wrong state: no active tape, driver on an unrecorded tape */
    AD_ERETAPE,  /* a recorded comparison flips at this x: record again       */
    AD_EDOMAIN,  /* a value or derivative is not finite (log of a negative…)  */
    AD_ELIMIT,   /* a size exceeds the index type or a limit set by the user  */
    AD_EIO,      /* a file could not be opened, read or written               */
    AD_EFORMAT,  /* a file is malformed (the message names file and line)     */
    AD_ECALLBACK /* a user callback returned an error or asked to stop        */
} ad_status;

/* A static English sentence for a status; never NULL (unknown codes get a
 * generic sentence).  Thread-safe. */
AD_API const char *ad_strerror(ad_status s);

/* ===================================================================== */
/* Tape and recording                                                    */
/* ===================================================================== */

/* Opaque.  A tape holds one recording (shared, read-only once recorded) and
 * the sweep buffers of this handle. */
typedef struct ad_tape ad_tape;

/* A handle on a node of the active tape: an index plus the id of the
 * recording it belongs to.  A small value: copy it freely.  A var of another
 * tape, of an earlier recording or made without an active tape is detected
 * and reported (AD_EINVAL / AD_ESTATE), never dereferenced. */
typedef struct ad_var {
    uint32_t idx;
    uint32_t rec;
} ad_var;

/* New empty tape, or NULL when out of memory.  Cost: O(1), no sweep buffers
 * are allocated until they are needed; after that they are reused by every
 * driver call (grown, never shrunk, until ad_tape_free). */
AD_API ad_tape *ad_tape_new(void);

/* Frees the handle and, when it was the last handle on its recording, the
 * recording.  NULL is a no-op.  Freeing the active tape ends the recording. */
AD_API void ad_tape_free(ad_tape *t);

/* A new handle on the same recording (read-only, reference-counted, no copy
 * of the ops) with sweep buffers of its own: give one to each thread that
 * replays the recording.  Handles are freed independently, in any order.
 * Returns NULL when t is NULL, has no complete recording, or memory runs out.
 * A handle made by ad_record keeps the function: when a branch flips it
 * re-records into a recording of its own and stops sharing. */
AD_API ad_tape *ad_tape_share(const ad_tape *t);

/* Clears t and makes it the calling thread's active tape; every ad_* op on
 * this thread appends to it until ad_record_end.  Errors: AD_EINVAL (NULL),
 * AD_ESTATE (another tape is already being recorded on this thread).
 * Any sticky error of an earlier recording is cleared. */
AD_API ad_status ad_record_begin(ad_tape *t);

/* The next independent variable, with value x at the recording point.
 * Inputs are numbered in the order of the calls. */
AD_API ad_var ad_input(double x);

/* Marks y as the scalar dependent variable (the last call wins). */
AD_API void ad_output(ad_var y);

/* Ends the recording of t (which must be the active tape) and returns the
 * first error met while recording, or AD_OK.  Structural errors (AD_EINVAL,
 * AD_ENOMEM, AD_ELIMIT, AD_ESTATE) are sticky: ops after them were no-ops and
 * the tape cannot be replayed until it is recorded again.  AD_EDOMAIN (a value
 * was not finite at the recording point) is reported but the recording is
 * complete and can be replayed at other points.  No output: AD_ESTATE. */
AD_API ad_status ad_record_end(ad_tape *t);

/* The value of a at the recording point, while its tape is being recorded on
 * this thread; NaN for an invalid var or outside a recording. */
AD_API double ad_value(ad_var a);

/* Number of inputs (0 for NULL or an unrecorded tape). */
AD_API size_t ad_tape_ninputs(const ad_tape *t);

/* Number of nodes in the recording (inputs, constants and ops). */
AD_API size_t ad_tape_nops(const ad_tape *t);

/* Bytes the recording takes per node: op code, argument indices, constants,
 * vector-node argument lists, and the value array of one handle. */
AD_API double ad_tape_bytes_per_op(const ad_tape *t);

/* Bytes allocated by this handle (recording share included, counted in full
 * even when shared) and sweep buffers. */
AD_API size_t ad_tape_memory(const ad_tape *t);

/* Caps the number of nodes a recording may hold (default and maximum:
 * 2^32 - 2, the index type's limit).  A recording that would exceed it stops
 * with the sticky error AD_ELIMIT.  Errors: AD_EINVAL (NULL or 0). */
AD_API ad_status ad_tape_set_max_ops(ad_tape *t, size_t max_ops);

/* The detail of the last error met on this tape (recording or driver), e.g.
 * "log: argument -1 outside the domain at node 17"; "" when none.  The string
 * is owned by the tape and valid until the next call on it. */
AD_API const char *ad_tape_errmsg(const ad_tape *t);

/* The user function of ad_record: build f from the n inputs x with ad_* ops
 * and return it.  ctx is passed through untouched. */
typedef ad_var (*ad_fn)(const ad_var *x, size_t n, void *ctx);

/* Records f at x (n entries) on t: ad_record_begin, n inputs, f, ad_output,
 * ad_record_end.  The tape keeps f, n and ctx (ctx is borrowed: it must
 * outlive the tape): when a replay meets a recorded comparison that comes out
 * the other way, the tape records itself again at the new point instead of
 * returning AD_ERETAPE.  f must not record on another tape meanwhile.
 * Errors: those of ad_record_end; AD_EINVAL for NULL t/f/x or n = 0. */
AD_API ad_status ad_record(ad_tape *t, ad_fn f, size_t n, const double *x, void *ctx);

/* ===================================================================== */
/* Ops: each appends one node to the active tape and returns its var.     */
/* On any error (no active tape, foreign var, …) they return an invalid   */
/* var and leave the error on the tape: check once, at ad_record_end.     */
/* Each op is evaluated at the recording point; its derivatives are       */
/* computed by the sweeps from rules defined once per op (src/dual).      */
/* ===================================================================== */

AD_API ad_var ad_const(double c);

AD_API ad_var ad_add(ad_var a, ad_var b);
AD_API ad_var ad_sub(ad_var a, ad_var b);
AD_API ad_var ad_mul(ad_var a, ad_var b);
AD_API ad_var ad_div(ad_var a, ad_var b);
AD_API ad_var ad_pow(ad_var a, ad_var b);     /* a > 0, or a = 0 with b > 0 */
AD_API ad_var ad_atan2(ad_var a, ad_var b);   /* atan2(a, b): a is y, b is x */
AD_API ad_var ad_hypot(ad_var a, ad_var b);
AD_API ad_var ad_fmax(ad_var a, ad_var b);    /* ties pick a; chosen at replay */
AD_API ad_var ad_fmin(ad_var a, ad_var b);    /* ties pick a; chosen at replay */

AD_API ad_var ad_addc(ad_var a, double c);    /* a + c */
AD_API ad_var ad_mulc(ad_var a, double c);    /* a * c */
AD_API ad_var ad_powc(ad_var a, double c);    /* a^c  */
AD_API ad_var ad_csub(double c, ad_var a);    /* c - a */
AD_API ad_var ad_cdiv(double c, ad_var a);    /* c / a */
AD_API ad_var ad_powi(ad_var a, int n);       /* a^n by multiplication; 0^0 = 1 */

AD_API ad_var ad_neg(ad_var a);
AD_API ad_var ad_sqr(ad_var a);
AD_API ad_var ad_sqrt(ad_var a);
AD_API ad_var ad_cbrt(ad_var a);
AD_API ad_var ad_exp(ad_var a);
AD_API ad_var ad_expm1(ad_var a);
AD_API ad_var ad_log(ad_var a);
AD_API ad_var ad_log1p(ad_var a);
AD_API ad_var ad_sin(ad_var a);
AD_API ad_var ad_cos(ad_var a);
AD_API ad_var ad_tan(ad_var a);
AD_API ad_var ad_asin(ad_var a);
AD_API ad_var ad_acos(ad_var a);
AD_API ad_var ad_atan(ad_var a);
AD_API ad_var ad_sinh(ad_var a);
AD_API ad_var ad_cosh(ad_var a);
AD_API ad_var ad_tanh(ad_var a);
AD_API ad_var ad_erf(ad_var a);
AD_API ad_var ad_abs(ad_var a);               /* derivative at 0 taken as 0 */
AD_API ad_var ad_sigmoid(ad_var a);           /* 1/(1+exp(-a)), accurate for any a */
AD_API ad_var ad_softplus(ad_var a);          /* log(1+exp(a)), accurate for any a */

/* Vector nodes: one node however long the vector, so long sums and linear
 * algebra stay off the scalar tape.  Cost per sweep: O(n) (sum, dot, dotv),
 * O(mn) through CBLAS dgemv (matvec), O(nnz) (spmv). */
AD_API ad_var ad_sum(size_t n, const ad_var *x);                    /* Σ x_i          */
AD_API ad_var ad_dot(size_t n, const ad_var *x, const double *c);  /* Σ c_i x_i, c copied */
AD_API ad_var ad_dotv(size_t n, const ad_var *x, const ad_var *y); /* Σ x_i y_i      */

/* y = A x for a dense row-major m×n matrix A, written to y[0..m).
 * A is BORROWED: it is read by every sweep, so it must stay valid and
 * unchanged until the tape is freed or recorded again. */
AD_API void ad_matvec(size_t m, size_t n, const double *A, const ad_var *x, ad_var *y);

/* A sparse matrix in compressed sparse row form: row i holds the entries
 * val[k], column colind[k], for k in [rowptr[i], rowptr[i+1]).  Column
 * indices are zero-based; rowptr has m+1 entries with rowptr[0] = 0. */
typedef struct ad_csr {
    const size_t   *rowptr;
    const uint32_t *colind;
    const double   *val;
} ad_csr;

/* y = A x for an m×n CSR matrix, written to y[0..m).  The struct is copied,
 * its three arrays are BORROWED (valid and unchanged while the tape lives).
 * Checked once at recording: rowptr monotone, colind < n (AD_EINVAL). */
AD_API void ad_spmv(size_t m, size_t n, const ad_csr *A, const ad_var *x, ad_var *y);

/* Recorded comparisons: return the comparison of the values at the recording
 * point and remember it, so that a replay where it comes out the other way
 * returns AD_ERETAPE (or re-records, for tapes made by ad_record).
 * Return 0 (and set the sticky error) on an invalid var. */
AD_API int ad_lt(ad_var a, ad_var b);
AD_API int ad_le(ad_var a, ad_var b);
AD_API int ad_gt(ad_var a, ad_var b);
AD_API int ad_ge(ad_var a, ad_var b);

/* ===================================================================== */
/* Drivers: replay the recording at x (ad_tape_ninputs(t) entries).       */
/* Matrices are row-major.  Errors common to all: AD_EINVAL (NULL, x or a */
/* direction not finite), AD_ESTATE (no complete recording), AD_ERETAPE,  */
/* AD_EDOMAIN (a result is not finite; ad_tape_errmsg names the first op  */
/* that went wrong), AD_ENOMEM, and the sticky error of the recording.    */
/* The values at the last x are cached (compared by value): calls at the  */
/* same x skip the value sweep, and HVPs there reuse the adjoints too.    */
/* A handle is used by one thread at a time; share it for more threads.   */
/* ===================================================================== */

/* f(x).  Cost: one value sweep (none when x is the cached point). */
AD_API ad_status ad_eval(ad_tape *t, const double *x, double *f);

/* f(x) (f may be NULL) and ∇f(x).  Cost: value sweep + one reverse sweep. */
AD_API ad_status ad_gradient(ad_tape *t, const double *x, double *f, double *g);

/* hv = ∇²f(x) v by forward over reverse.  Cost at a new x: a value+tangent
 * forward sweep and one reverse sweep carrying adjoints and their tangents;
 * at the cached x: a tangent sweep and a reverse sweep of tangents only. */
AD_API ad_status ad_hvp(ad_tape *t, const double *x, const double *v, double *hv);

/* HV (k×n) = V (k×n) times ∇²f(x): k HVPs, several directions per sweep
 * (vector mode), so the tape is read about k/8 times instead of k.
 * Extra memory: 16 bytes per node per lane (at most 8 lanes). */
AD_API ad_status ad_hvp_batch(ad_tape *t, const double *x, size_t k, const double *V, double *HV);

/* vhw = vᵀ ∇²f(x) w by one hyper-dual forward sweep: an independent route
 * to second derivatives (no reverse sweep).  Cost: about 2 forward sweeps. */
AD_API ad_status ad_hess_form(ad_tape *t, const double *x, const double *v, const double *w, double *vhw);

/* The full n×n Hessian (symmetric, both triangles written).  Cost: n HVPs
 * in vector mode, about n/8 sweeps of the tape.  AD_ELIMIT when n·n
 * overflows size_t. */
AD_API ad_status ad_hessian(ad_tape *t, const double *x, double *H);

/* ===================================================================== */
/* Curvature: matrix-free analysis of ∇²f(x) from HVPs                    */
/* ===================================================================== */

typedef enum ad_point_kind {
    AD_POINT_NOT_STATIONARY = 0, /* ‖∇f‖∞ > gtol                          */
    AD_POINT_MINIMUM,            /* stationary, λmin > +zero_tol·scale     */
    AD_POINT_MAXIMUM,            /* stationary, λmax < −zero_tol·scale     */
    AD_POINT_SADDLE,             /* stationary, λmin < 0 < λmax clearly    */
    AD_POINT_DEGENERATE          /* stationary, an eigenvalue near zero    */
} ad_point_kind;

/* A static name: "minimum", "saddle", … */
AD_API const char *ad_point_kind_str(ad_point_kind k);

typedef enum ad_curv_method {
    AD_CURV_AUTO = 0, /* dense (LAPACK dsyevd) when n <= dense_max, else Lanczos */
    AD_CURV_LANCZOS,  /* Lanczos on HVPs with full reorthogonalization           */
    AD_CURV_DENSE     /* ad_hessian + LAPACK dsyevd: all eigenvalues             */
} ad_curv_method;

typedef struct ad_curv_params {
    ad_curv_method method; /* default AD_CURV_AUTO                              */
    size_t max_iter;       /* Lanczos steps (HVPs), default min(n, 200)         */
    double tol;            /* relative residual of the Ritz pairs, default 1e-8 */
    double gtol;           /* stationarity, ‖∇f‖∞ <= gtol, default 1e-6        */
    double zero_tol;       /* |λ| <= zero_tol·max|λ| counts as 0, default 1e-8 */
    size_t dense_max;      /* AUTO goes dense up to this n, default 200         */
    uint64_t seed;         /* start vector of Lanczos, default 1                */
} ad_curv_params;

AD_API void ad_curv_params_init(ad_curv_params *prm);

typedef struct ad_curvature {
    double lambda_min, lambda_max; /* extreme eigenvalues of ∇²f(x)              */
    double resid_min, resid_max;   /* ‖Hu − λu‖ of their Ritz vectors (0 dense)  */
    double cond;                   /* |λmax|/|λmin|, +inf when λmin = 0          */
    double f, gnorm;               /* f(x) and ‖∇f(x)‖∞                          */
    ad_point_kind kind;            /* set by ad_classify_point                    */
    ad_curv_method method;         /* the route taken                             */
    size_t iters, nhvp;            /* Lanczos steps and HVPs spent                */
    int converged;                 /* both Ritz residuals <= tol·max|λ|          */
} ad_curvature;

/* Extreme eigenvalues and condition number of ∇²f(x) without forming it
 * (Lanczos), or densely for small n.  prm may be NULL (defaults).  Cost:
 * max_iter HVPs at one x (the cached, same-x regime) plus O(n·max_iter²)
 * for reorthogonalization; memory n·max_iter doubles.  Errors: those of the
 * drivers, AD_ENOMEM. */
AD_API ad_status ad_hess_extremes(ad_tape *t, const double *x, const ad_curv_params *prm, ad_curvature *res);

/* ad_hess_extremes plus the gradient, and the kind of point x is, with the
 * evidence in res (gnorm, λmin, λmax, residuals). */
AD_API ad_status ad_classify_point(ad_tape *t, const double *x, const ad_curv_params *prm, ad_curvature *res);

/* ===================================================================== */
/* Optimizers: callbacks, so any code can supply f, g and Hv.             */
/* ===================================================================== */

typedef struct ad_problem {
    size_t n;
    void *ctx;
    /* f(x) and ∇f(x); g may be NULL when only f is wanted. */
    ad_status (*fg)(void *ctx, const double *x, double *f, double *g);
    /* ∇²f(x) v; may be NULL for ad_lbfgs. */
    ad_status (*hvp)(void *ctx, const double *x, const double *v, double *hv);
    /* Optional dense n×n Hessian for ad_newton_dense; NULL: built from n HVPs. */
    ad_status (*hess)(void *ctx, const double *x, double *H);
} ad_problem;

/* A problem whose callbacks are ad_gradient, ad_hvp and ad_hessian on t
 * (borrowed: t must outlive the problem).  n = ad_tape_ninputs(t). */
AD_API ad_problem ad_problem_tape(ad_tape *t);

typedef enum ad_stop_reason {
    AD_STOP_NONE = 0,      /* did not run (bad input)                      */
    AD_STOP_GTOL,          /* ‖g‖∞ <= gtol (or the relative test for logreg) */
    AD_STOP_FTOL,          /* relative decrease of f over the window small  */
    AD_STOP_MAX_ITER,      /* max_iter iterations                          */
    AD_STOP_MAX_EVAL,      /* max_eval function evaluations                */
    AD_STOP_CALLBACK,      /* the progress callback asked to stop          */
    AD_STOP_LINESEARCH,    /* the line search found no acceptable step     */
    AD_STOP_TR_RADIUS,     /* the trust region shrank below its minimum    */
    AD_STOP_ERROR          /* a callback returned an error status          */
} ad_stop_reason;

AD_API const char *ad_stop_reason_str(ad_stop_reason r);

typedef struct ad_opt_result {
    double f, gnorm;          /* at the returned x; gnorm is ‖g‖∞           */
    size_t iters, nfev, ngev, nhvp;
    size_t cg_iters;          /* total inner CG iterations (Newton)         */
    ad_stop_reason reason;
    double elapsed;           /* seconds, monotonic clock                   */
} ad_opt_result;

/* What a progress callback sees once per iteration. */
typedef struct ad_opt_progress {
    size_t iter;
    double f, gnorm;          /* ‖g‖∞ */
    double step;              /* step length (line search) or ‖s‖ (trust region) */
    double radius;            /* trust-region radius, 0 otherwise           */
    size_t cg_iters;          /* CG iterations of this Newton step          */
    size_t nfev, ngev, nhvp;
    double elapsed;
} ad_opt_progress;

/* Return 0 to go on, non-zero to stop (reason AD_STOP_CALLBACK). */
typedef int (*ad_progress_fn)(void *ctx, const ad_opt_progress *p);

typedef struct ad_lbfgs_params {
    size_t m;                 /* history pairs, default 6                   */
    size_t max_iter;          /* default 1000                               */
    size_t max_eval;          /* f/g evaluations, default 10·max_iter        */
    double gtol;              /* ‖g‖∞ <= gtol, default 1e-6                  */
    double ftol;              /* (f_{k-past} − f_k)/max(|f_k|,1) < ftol, default 0 (off) */
    size_t past;              /* window of the f test, default 0 (off)       */
    double c1, c2;            /* Wolfe constants, default 1e-4 and 0.9       */
    size_t max_linesearch;    /* trials per line search, default 40          */
    ad_progress_fn progress;  /* may be NULL                                 */
    void *progress_ctx;
} ad_lbfgs_params;

AD_API void ad_lbfgs_params_init(ad_lbfgs_params *prm);

/* Minimizes p from x (n entries, overwritten by the best point found) by
 * L-BFGS with a Moré–Thuente strong-Wolfe line search (backtracking as the
 * fallback).  res may be NULL.  Returns AD_OK when it stopped for a reason
 * in res->reason (even max_iter); AD_EINVAL for bad input (n = 0, NULL fg,
 * x not finite, m = 0); the callback's status when fg fails at the start.
 * Memory: 2·m·n + O(n) doubles. */
AD_API ad_status ad_lbfgs(const ad_problem *p, double *x, const ad_lbfgs_params *prm, ad_opt_result *res);

typedef enum ad_globalization {
    AD_TRUST_REGION = 0,      /* Steihaug–Toint CG in a trust region (default) */
    AD_LINE_SEARCH            /* truncated Newton, Eisenstat–Walker forcing,  */
                              /* backtracking Armijo line search               */
} ad_globalization;

typedef struct ad_newton_params {
    size_t max_iter;          /* Newton iterations, default 200              */
    size_t max_cg;            /* CG iterations per step, default max(n, 10)… capped 250 */
    size_t max_eval;          /* default 10·max_iter                         */
    double gtol;              /* ‖g‖∞ <= gtol, default 1e-6                   */
    double gtol_rel;          /* also stop when ‖g‖2 <= gtol_rel·‖g(x0)‖2, default 0 (off) */
    ad_globalization globalization;
    double eta_max;           /* forcing term cap, default 0.5               */
    double radius0;           /* initial radius, default 0 = ‖g(x0)‖2        */
    /* Optional preconditioner z = M⁻¹ r (M ≈ ∇²f(x), symmetric positive
     * definite), e.g. the inverse of a Hessian diagonal.  NULL: none. */
    ad_status (*precond)(void *ctx, const double *x, const double *r, double *z);
    void *precond_ctx;
    ad_progress_fn progress;
    void *progress_ctx;
} ad_newton_params;

AD_API void ad_newton_params_init(ad_newton_params *prm);

/* Minimizes p from x by Newton-CG on HVPs (never a matrix).  Same return
 * rules as ad_lbfgs; needs p->hvp.  Memory: O(n) doubles. */
AD_API ad_status ad_newton_cg(const ad_problem *p, double *x, const ad_newton_params *prm, ad_opt_result *res);

/* Dense Newton for small n: x ← x − (H + μI)⁻¹ ∇f by a Cholesky solve
 * (LAPACK), with μ raised until H + μI is positive definite, and a
 * backtracking line search.  Uses p->hess, or n HVPs when it is NULL.
 * Memory: n² doubles.  AD_ELIMIT when n² overflows. */
AD_API ad_status ad_newton_dense(const ad_problem *p, double *x, const ad_newton_params *prm, ad_opt_result *res);

/* ===================================================================== */
/* Logistic regression (the engine of hyperad-logreg)                     */
/* ===================================================================== */
/* (declared by the logistic-regression work; see README.md)             */

#ifdef __cplusplus
}
#endif

#endif /* HYPERAD_H */
