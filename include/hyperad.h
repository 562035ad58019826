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

/* A handle on a node of the active tape: its value at the recording point,
 * its index and the id of the recording it belongs to.  A small value (16
 * bytes): copy it freely, but leave its fields to the library (read the value
 * with ad_value).  The value rides along so that an op reads its arguments
 * from registers, not back from the tape the previous op just wrote (that
 * store-to-load wait was a sixth of Rosenbrock's recording time).  A var of
 * another tape, of an earlier recording or made without an active tape is
 * detected and reported (AD_EINVAL / AD_ESTATE), never dereferenced. */
typedef struct ad_var {
    double val;
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

/* n inputs at once: v[j] is the input with value x[j], numbered after any
 * earlier ones, exactly as n calls of ad_input would make them; a few array
 * fills instead of n calls (ad_record uses it).  v is written in full: the
 * inputs, or invalid vars when the op fails.  Errors (sticky, reported by
 * ad_record_end): x or v NULL, or a non-finite x[j]: AD_EINVAL naming j;
 * more than 2^32 inputs or the node limit: AD_ELIMIT; AD_ENOMEM.  Without
 * an active tape v gets invalid vars.  Cost O(n). */
AD_API void ad_inputs(size_t n, const double *x, ad_var *v);

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

/* Makes room in t for a recording of `nodes` ops (inputs and constants
 * included) whose vector ops (ad_sum, ad_dot, ad_dotv, ad_matvec, ad_spmv)
 * take `vec_args` arguments in all, so the next recording does not grow its
 * storage step by step: when the size is known, this lowers the peak memory
 * (no ×1.5 growth copies) and the first recording's time.  Call it between
 * recordings (the current recording stays usable); room the recording does
 * not use costs address space, not memory.  A recording shared with other
 * handles (ad_tape_share) is left alone.  Errors: AD_EINVAL (NULL),
 * AD_ESTATE (t is being recorded), AD_ELIMIT (nodes above
 * ad_tape_set_max_ops), AD_ENOMEM (what could be had is kept). */
AD_API ad_status ad_tape_reserve(ad_tape *t, size_t nodes, size_t vec_args);

/* Switches the tape optimizer for the next recordings of t (default on,
 * or off when the environment variable HYPERAD_OPTIMIZE is "0" when the tape
 * is made).  The optimizer runs once per recording, before its first sweep:
 * it removes dead nodes, turns mul(a, a) into sqr(a) and mul by a constant
 * node into mulc, collapses each tree of single-use linear ops (add, sub,
 * neg, addc, mulc, csub, sum, dot) into one sum or dot node, and fuses a
 * squared residual, sqr(sub(a, b)) or sqr(a ± c), into one node.  Exact for
 * derivatives; values may differ from the raw tape in the last bit where a
 * sum is reassociated.  Errors: AD_EINVAL (NULL). */
AD_API ad_status ad_tape_set_optimize(ad_tape *t, int on);

/* Switches preaccumulated statements for repeated HVPs at one x (default
 * on, or off when the environment variable HYPERAD_PREACC is "0" when the
 * tape is made).  Each tree of single-use scalar ops (at most 3 leaves) is
 * swept as one entry holding its local gradient and Hessian at x, and terms
 * of one sum whose leaves together number at most 3 share one entry, so an
 * HVP there costs time independent of the ops inside a statement (≈ 1/4 of
 * a plain HVP on Rosenbrock), after one preaccumulation pass per point (≈ 2
 * plain same-x HVPs).  Used by ad_hessian and ad_hvp_batch (more than 8
 * directions), and by ad_hvp from the third call at one x, or from the first
 * at a cached x when earlier points had 3 or more HVPs each on average (CG).
 * Extra memory per handle: about 9 bytes per node plus 8·(k + k(k+1)/2)
 * bytes per statement of k leaves.  Same results as the plain sweeps up to
 * rounding (a few ulps).  Errors: AD_EINVAL (NULL). */
AD_API ad_status ad_tape_set_preaccumulate(ad_tape *t, int on);

/* Lets ad_hessian and ad_hvp_batch split their directions across up to
 * nthreads threads (0: one per online CPU; at most 64), each replaying the
 * recording through a shared handle (ad_tape_share) that t keeps and
 * reuses.  Results are the same bit for bit as on one thread.  Default 1,
 * or the environment variable HYPERAD_THREADS when the tape is made.
 * Extra memory: one set of sweep buffers per helper thread.
 * Errors: AD_EINVAL (NULL). */
AD_API ad_status ad_tape_set_threads(ad_tape *t, unsigned nthreads);

/* Runs the optimizer now (it otherwise runs at the first driver call), so
 * that ad_tape_nops and ad_tape_bytes_per_op describe the optimized tape.
 * Cost: O(nodes), once per recording.  Errors: AD_EINVAL, AD_ESTATE (no
 * complete recording), the recording's sticky error. */
AD_API ad_status ad_tape_optimize(ad_tape *t);

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
AD_API ad_var ad_tanh(ad_var a);              /* value and derivative from one exp: within 3 ulp */
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
    size_t max_eval;          /* f/g evaluations; 0 (default): 10·max_iter  */
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
    size_t max_cg;            /* CG iterations per step; 0 (default): max(n, 10) capped at 250 */
    size_t max_eval;          /* f/g evaluations; 0 (default): 10·max_iter  */
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
 * backtracking line search.  Uses p->hess, or n HVPs when it is NULL;
 * either way res->nhvp counts n per Hessian.
 * Memory: n² doubles.  AD_ELIMIT when n² overflows. */
AD_API ad_status ad_newton_dense(const ad_problem *p, double *x, const ad_newton_params *prm, ad_opt_result *res);

/* ===================================================================== */
/* Logistic regression (the engine of hyperad-logreg)                     */
/* ===================================================================== */
/* L2-regularized logistic regression as LIBLINEAR's `train -s 0`:        */
/*   min_w  ½‖w‖² + Σ_i C_i log(1 + exp(−y_i wᵀx_i)),  y_i ∈ {−1, +1},     */
/* minimized by LIBLINEAR 2.3.0's trust-region Newton method (TRON) on    */
/* HVPs of a tape built from vector nodes (ad_matvec for dense rows,       */
/* ad_spmv for sparse); the Hessian is never formed.  Multi-class:         */
/* one-vs-rest like LIBLINEAR.                                             */
/* Errors carry a detail string: ad_logreg_errmsg().                       */
/* ===================================================================== */

/* A labelled data set of m rows (samples) and n features.  Feature j
 * (0-based here) is index j+1 in LIBSVM files.  Exactly one of X (dense,
 * row-major m×n) and csr (sparse rows, column indices sorted ascending) is
 * used: X != NULL means dense.  Labels are integer-valued doubles.
 * Built by hand, every array is the caller's (borrowed by the calls that
 * take it, only for their duration) and owner is NULL.  Filled by
 * ad_logreg_read, the arrays belong to the library (owner != NULL) until
 * ad_logreg_data_free. */
typedef struct ad_logreg_data {
    size_t m, n;
    size_t nnz;             /* stored entries (m·n when dense)             */
    const double *X;        /* dense row-major m×n, or NULL                */
    ad_csr csr;             /* sparse rows when X == NULL                  */
    const double *y;        /* m labels                                    */
    void *owner;            /* library storage, NULL for caller-built data */
} ad_logreg_data;

typedef enum ad_logreg_format {
    AD_LOGREG_FMT_AUTO = 0, /* CSV when the first data line has a ',' before any ':' */
    AD_LOGREG_FMT_LIBSVM,   /* "label idx:val idx:val …", idx from 1, strictly increasing */
    AD_LOGREG_FMT_CSV       /* "label,x1,x2,…" (every column, empty = 0); header line optional */
} ad_logreg_format;

typedef enum ad_logreg_storage {
    AD_LOGREG_STORE_AUTO = 0, /* dense when 8·m·n bytes <= 2× the CSR bytes (12·nnz + 8·m) */
    AD_LOGREG_STORE_DENSE,
    AD_LOGREG_STORE_SPARSE
} ad_logreg_storage;

/* Reads a data file into d (zeroed first).  Two passes over the file in
 * 2 MiB blocks (no mmap of the file, no whole-file buffer): the first
 * counts rows, entries and the largest index, the second parses numbers
 * straight into arrays of the exact size, so peak memory is the data plus
 * one block per thread (path must be a regular file, not a pipe).  LIBSVM
 * files of 16 MiB or more are read by two threads, one per half.
 * Cost: O(file size); about 0.15-0.2 s per 100 MB (numbers of up to 7+7
 * digits are converted 8 bytes at a time, exactly as strtod).  CSV: a first
 * line whose first field is not a number is a header and is skipped.
 * Errors (nothing is kept in d on error; ad_logreg_errmsg() names the file
 * and, for content errors, the line): AD_EIO (cannot open or read),
 * AD_EFORMAT (malformed line, bad number, index 0 or above INT_MAX,
 * unsorted or repeated indices, NaN/Inf, non-integer label, no data rows,
 * ragged CSV), AD_ENOMEM, AD_EINVAL (NULL). */
AD_API ad_status ad_logreg_read(const char *path, ad_logreg_format fmt,
                                ad_logreg_storage store, ad_logreg_data *d);

/* Frees what ad_logreg_read allocated and zeroes *d.  Data built by the
 * caller (owner NULL) is only zeroed.  NULL is a no-op. */
AD_API void ad_logreg_data_free(ad_logreg_data *d);

/* Progress of one Newton iteration of sub-problem k (k = 0 for binary, the
 * class index in one-vs-rest).  Return non-zero to stop the fit. */
typedef int (*ad_logreg_progress_fn)(void *ctx, size_t k, const ad_opt_progress *p);

typedef struct ad_logreg_params {
    double C;                   /* -c, default 1                                 */
    double eps;                 /* -e, default 0.01: stop when ‖∇f‖2 <=
                                   eps·max(min(#pos,#neg),1)/m·‖∇f(0)‖2 (LIBLINEAR) */
    double bias;                /* -B, default −1 (none); >= 0: a last feature of
                                   this constant value, regularized like LIBLINEAR */
    size_t nr_weight;           /* -w label weight pairs: C of class label[i] is   */
    const int *weight_label;    /* C·weight[i] (borrowed during ad_logreg_fit)     */
    const double *weight;
    size_t max_iter;            /* Newton iterations per sub-problem (TRON: accepted
                                   steps, as LIBLINEAR), default 1000               */
    int precond;                /* diagonal preconditioner M = 0.99 I + 0.01 diag(∇²f)
                                   as LIBLINEAR 2.3.0's, default 1; 0: M = I        */
    ad_globalization globalization; /* AD_TRUST_REGION (default): LIBLINEAR 2.3.0's
                                   TRON step for step, so at equal eps both land on
                                   the same w up to rounding; AD_LINE_SEARCH:
                                   ad_newton_cg's truncated Newton with a line
                                   search (like LIBLINEAR >= 2.40)                  */
    int scale;                  /* 1: solve in features x_j / max_i |x_ij| (sparsity
                                   kept, no copy of the data: w = S w' on the tape)
                                   and return w = S w', a model for raw data; the
                                   objective is then the scaled problem's.  Default 0 */
    ad_logreg_progress_fn progress; /* per Newton iteration, may be NULL          */
    void *progress_ctx;
} ad_logreg_params;

/* Sets the defaults above. */
AD_API void ad_logreg_params_init(ad_logreg_params *prm);

/* A trained model, laid out as LIBLINEAR's model file: labels in LIBLINEAR's
 * order (order of first appearance, except that a binary problem seen as
 * {−1, +1} becomes {+1, −1}); w has (nr_feature + (bias >= 0)) rows of nr_w
 * entries, row-major; nr_w = 1 for two classes (w scores label[0]), else
 * nr_class (column k scores label[k] against the rest).  Owned by the
 * library: free with ad_logreg_model_free. */
typedef struct ad_logreg_model {
    size_t nr_class;
    int *label;
    size_t nr_feature;
    double bias;
    size_t nr_w;
    double *w;
} ad_logreg_model;

/* Frees the arrays of m and zeroes it.  NULL is a no-op. */
AD_API void ad_logreg_model_free(ad_logreg_model *m);

typedef struct ad_logreg_result {
    double f;                 /* objective, summed over sub-problems          */
    double gnorm;             /* ‖∇f‖2 at the end (largest over sub-problems) */
    size_t newton_iters, cg_iters, nfev, nhvp; /* summed over sub-problems;
                                 TRON's newton_iters counts rejected steps too,
                                 one per line LIBLINEAR prints                 */
    size_t nsub;              /* binary sub-problems solved                   */
    ad_stop_reason reason;    /* AD_STOP_GTOL unless a sub-problem stopped otherwise */
    double elapsed;           /* seconds, monotonic clock                     */
} ad_logreg_result;

/* Trains on d into *model (zeroed first; freed again on error).  res may be
 * NULL.  Per binary sub-problem: one tape (ad_record with one ad_matvec or
 * ad_spmv node over d's borrowed arrays, a softplus per row, the positives'
 * −C_i y_i z_i folded into one linear ad_dot term), minimized from w = 0.
 * AD_TRUST_REGION: TRON as in LIBLINEAR 2.3.0 (tron.cpp): radius ‖g₀‖_M,
 * preconditioned CG to ‖r‖_{M⁻¹} <= 0.1‖g‖_{M⁻¹} or the boundary ‖s‖_M = Δ,
 * steps accepted at actred > 1e-4·prered, LIBLINEAR's radius rules and
 * stopping tests, so the iterates are LIBLINEAR's up to rounding.
 * AD_LINE_SEARCH: ad_newton_cg with gtol_rel set to LIBLINEAR's tolerance.
 * The progress callback runs once per trial step; for TRON with
 * p->iter = LIBLINEAR's iteration number (a rejected step repeats it), f and
 * ‖g‖∞ after the step, step = ‖s‖_M and radius = the updated Δ.
 * Memory: the tape (about 2 nodes per row, 40 bytes each with its sweep
 * buffers) plus O(m + n) doubles; d is never copied.  Cost per Newton
 * iteration: a value sweep at the trial point, a reverse sweep once it is
 * accepted (2 passes over X in all), 1 pass for the preconditioner, 2
 * passes per CG step.
 * Errors: AD_EINVAL (NULL, C <= 0, eps <= 0, m or n = 0, non-finite data,
 * a bad caller-built CSR, a weight label not in the data, fewer than two
 * classes; see ad_logreg_errmsg), AD_ELIMIT (m or n beyond the tape's
 * index range), AD_ENOMEM, the status of the tape or of the solver. */
AD_API ad_status ad_logreg_fit(const ad_logreg_data *d, const ad_logreg_params *prm,
                               ad_logreg_model *model, ad_logreg_result *res);

/* Predicts the m rows of d: labels[i] (may be NULL) and, when prob is not
 * NULL, prob[i·nr_class + k] = probability of model->label[k] (binary:
 * σ(wᵀx) and 1 − σ; several classes: the σ of each score, normalized), as
 * liblinear-predict -b 1.  Features beyond model->nr_feature are ignored.
 * Cost O(nnz·nr_w).  Errors: AD_EINVAL (NULL, empty model). */
AD_API ad_status ad_logreg_predict(const ad_logreg_model *model, const ad_logreg_data *d,
                                   double *labels, double *prob);

/* The training objective of model on d under prm's C, weights, scale and
 * one-vs-rest split (summed over sub-problems), computed directly (no
 * tape): compares models from different trainers at equal -c.
 * model->bias must match prm->bias (both < 0 or equal).  Cost O(nnz·nr_w).
 * Errors: AD_EINVAL, AD_ENOMEM. */
AD_API ad_status ad_logreg_objective(const ad_logreg_data *d, const ad_logreg_params *prm,
                                     const ad_logreg_model *model, double *f);

/* nfold-fold cross-validation (LIBLINEAR -v): rows are shuffled with a
 * fixed-seed generator (seed), split into nfold folds, each predicted by a
 * model trained on the others; target[i] gets the prediction of row i.
 * nfold > m is lowered to m.  Memory: a copy of the training rows of one
 * fold at a time.  Errors: those of ad_logreg_fit (a fold whose training
 * rows hold one class only fails), AD_EINVAL (nfold < 2). */
AD_API ad_status ad_logreg_cross_validation(const ad_logreg_data *d, const ad_logreg_params *prm,
                                            size_t nfold, uint64_t seed, double *target);

/* Writes model in LIBLINEAR's text format (solver_type L2R_LR, %.17g
 * weights) to a temporary file next to path, then renames it over path, so
 * a failure never leaves a partial file.  Errors: AD_EIO, AD_EINVAL. */
AD_API ad_status ad_logreg_model_save(const ad_logreg_model *model, const char *path);

/* Reads a LIBLINEAR model file (any solver_type is read; only L2R_LR is
 * produced by this library) into *model (zeroed first, untouched memory
 * freed on error).  Errors: AD_EIO (missing), AD_EFORMAT (unknown keyword,
 * truncated weights, bad numbers; the message names file and line). */
AD_API ad_status ad_logreg_model_load(const char *path, ad_logreg_model *model);

/* The detail of the last logreg error on this thread ("" when none), e.g.
 * "data.svm:17: feature indices not increasing (5 after 7)".  Thread-local,
 * valid until the next logreg call on this thread. */
AD_API const char *ad_logreg_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif /* HYPERAD_H */
