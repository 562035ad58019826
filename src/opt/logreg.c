/*
 * L2-regularized logistic regression, LIBLINEAR's `train -s 0`:
 *
 *   f(w) = ½‖w‖² + Σ_i C_i log(1 + exp(−y_i wᵀx_i)),  y_i = ±1,
 *
 * recorded once per binary sub-problem as a short tape (one ad_matvec or
 * ad_spmv node for Xw, a softplus per row, one ad_dot) and minimized on its
 * HVPs by LIBLINEAR 2.3.0's TRON (logreg_tron.c), or by ad_newton_cg's line
 * search: the Hessian Xᵀ D X + I is never formed.  The stopping rule, label
 * order, one-vs-rest split and class weights follow LIBLINEAR 2.3.0
 * (linear.cpp: train, train_one, group_classes) so that the two trainers
 * can be compared at equal -c and -e.
 */
#include "opt/logreg_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

static double lr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ad_logreg_params_init(ad_logreg_params *prm)
{
    if (!prm)
        return;
    memset(prm, 0, sizeof *prm);
    prm->C = 1.0;
    prm->eps = 0.01; /* LIBLINEAR's default for -s 0 */
    prm->bias = -1.0;
    prm->max_iter = 1000;
    prm->precond = 1;
    prm->globalization = AD_TRUST_REGION;
}

/* log(1 + exp(t)) without overflow or cancellation. */
static double lr_softplus(double t)
{
    return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t));
}

static double lr_sigmoid(double t)
{
    if (t >= 0)
        return 1.0 / (1.0 + exp(-t));
    double e = exp(t);
    return e / (1.0 + e);
}

/* ------------------------------------------------------------------ */
/* Classes                                                              */
/* ------------------------------------------------------------------ */

/* Labels in LIBLINEAR's order (group_classes): order of first appearance,
 * except that a binary problem seen as {−1, +1} is turned into {+1, −1} so
 * that the model scores +1.  cls[i] gets the class index of row i. */
static ad_status lr_group(const ad_logreg_data *d, int **label_out, size_t *nclass_out,
                          uint32_t *cls)
{
    size_t cap = 8, nc = 0;
    int *label = malloc(cap * sizeof *label);
    if (!label)
        return AD_ENOMEM;
    size_t last = 0;
    for (size_t i = 0; i < d->m; i++) {
        int y = (int)d->y[i];
        size_t k;
        /* rows of one class often come in runs: try the last one first */
        if (nc && label[last] == y) {
            k = last;
        } else {
            for (k = 0; k < nc && label[k] != y; k++)
                ;
            if (k == nc) {
                if (nc == cap) {
                    int *nl = realloc(label, 2 * cap * sizeof *nl);
                    if (!nl) {
                        free(label);
                        return AD_ENOMEM;
                    }
                    label = nl;
                    cap *= 2;
                }
                label[nc++] = y;
            }
        }
        last = k;
        if (cls)
            cls[i] = (uint32_t)k;
    }
    if (nc == 2 && label[0] == -1 && label[1] == 1) {
        label[0] = 1;
        label[1] = -1;
        if (cls)
            for (size_t i = 0; i < d->m; i++)
                cls[i] = 1 - cls[i];
    }
    *label_out = label;
    *nclass_out = nc;
    return AD_OK;
}

static ad_status lr_check_data(const ad_logreg_data *d)
{
    if (!d || !d->y || d->m == 0 || d->n == 0 ||
        (!d->X && (!d->csr.rowptr || !d->csr.colind || !d->csr.val))) {
        lr_seterr("logreg: empty or incomplete data set");
        return AD_EINVAL;
    }
    if (d->m > UINT32_MAX / 4 || d->n > UINT32_MAX / 2) {
        lr_seterr("logreg: %zu x %zu exceeds the tape's index range", d->m, d->n);
        return AD_ELIMIT;
    }
    for (size_t i = 0; i < d->m; i++) {
        double y = d->y[i];
        if (!isfinite(y) || y != floor(y) || fabs(y) > 2147483647.0) {
            lr_seterr("logreg: label of row %zu is not an integer", i + 1);
            return AD_EINVAL;
        }
    }
    if (d->owner) /* read by ad_logreg_read, which checks all of this */
        return AD_OK;
    if (!d->X) {
        /* the loops here index by colind before any tape sees the matrix */
        const size_t *rp = d->csr.rowptr;
        if (rp[0] != 0) {
            lr_seterr("logreg: csr.rowptr[0] != 0");
            return AD_EINVAL;
        }
        for (size_t i = 0; i < d->m; i++) {
            if (rp[i + 1] < rp[i]) {
                lr_seterr("logreg: csr.rowptr decreases at row %zu", i + 1);
                return AD_EINVAL;
            }
            for (size_t k = rp[i]; k < rp[i + 1]; k++)
                if (d->csr.colind[k] >= d->n ||
                    (k > rp[i] && d->csr.colind[k] <= d->csr.colind[k - 1])) {
                    lr_seterr("logreg: row %zu: column indices not increasing or >= n", i + 1);
                    return AD_EINVAL;
                }
        }
    }
    size_t len = d->X ? d->m * d->n : d->csr.rowptr[d->m];
    const double *v = d->X ? d->X : d->csr.val;
    for (size_t k = 0; k < len; k++)
        if (!isfinite(v[k])) {
            lr_seterr("logreg: a feature value is not finite");
            return AD_EINVAL;
        }
    return AD_OK;
}

/* ------------------------------------------------------------------ */
/* One binary sub-problem                                               */
/* ------------------------------------------------------------------ */

typedef struct lr_sub {
    const ad_logreg_data *d;
    const uint32_t *cls; /* class index of each row                    */
    size_t pos;          /* the class scored +1                        */
    double cp, cn;       /* C of the positives and of the negatives    */
    double *cw;          /* C_i per row, only while recording          */
    ad_var *z;           /* scratch: m vars                            */
    size_t n, nw;        /* features, weights (n + bias)               */
    double bias;
    const double *sc;    /* column scale factors (prm->scale) or NULL   */
    ad_var *u;           /* scratch: n vars, the scaled weights         */
    ad_var *lv;          /* scratch: nw vars of the linear term         */
    double *cpos;        /* −Σ_{i positive} C_i x_i (bias: −B Σ C_i)     */
    double *wu;          /* scratch: n doubles                          */
    /* preconditioner: the diagonal of the Hessian at xd, mixed with I */
    double *diag, *xd;
    int have_diag;
    int diag_off;        /* the diagonal at w = 0 was nearly uniform      */
    /* progress */
    const ad_logreg_params *prm;
    size_t k;
} lr_sub;

/* f(w) on the tape: z = Xw (+ b·w_n), Σ C_i softplus(z_i) in one dot node,
 * the positives' −Σ C_i z_i as the linear term cposᵀw, + ½ wᵀw in one dotv
 * node.  Per row: one softplus node (two with a bias); the O(nnz) work is
 * all in the one matvec/spmv node. */
static ad_var lr_tape_fn(const ad_var *w, size_t nw, void *ctx)
{
    lr_sub *s = ctx;
    const ad_logreg_data *d = s->d;
    const ad_var *wx = w;
    if (s->sc) { /* X S w' without touching X: n scalar nodes */
        for (size_t j = 0; j < s->n; j++)
            s->u[j] = ad_mulc(w[j], s->sc[j]);
        wx = s->u;
    }
    if (d->X)
        ad_matvec(d->m, d->n, d->X, wx, s->z);
    else
        ad_spmv(d->m, d->n, &d->csr, wx, s->z);
    int has_bias = s->bias >= 0;
    ad_var bw = has_bias ? ad_mulc(w[s->n], s->bias) : w[0];
    for (size_t i = 0; i < d->m; i++)
        s->z[i] = ad_softplus(has_bias ? ad_add(s->z[i], bw) : s->z[i]); /* z_i is used once */
    /* log(1 + e^{−z}) = log(1 + e^{z}) − z, so the positives' −C_i z_i
     * add up to one linear term cposᵀw: one node per row (a softplus)
     * instead of two, which halves the tape and its sweep buffers. */
    for (size_t j = 0; j < s->n; j++)
        s->lv[j] = wx[j];
    if (has_bias)
        s->lv[s->n] = w[s->n];
    ad_var data = ad_add(ad_dot(d->m, s->z, s->cw), ad_dot(nw, s->lv, s->cpos));
    ad_var reg = ad_mulc(ad_dotv(nw, w, w), 0.5);
    return ad_add(reg, data);
}

/* z_i = w·x_i (+ bias·w_n) for row i. */
static double lr_row_dot(const ad_logreg_data *d, size_t i, const double *w, size_t ncols,
                         size_t stride)
{
    double z = 0.0;
    if (d->X) {
        size_t nn = d->n < ncols ? d->n : ncols;
        const double *x = d->X + i * d->n;
        if (stride == 1)
            return cblas_ddot((int)nn, x, 1, w, 1);
        for (size_t j = 0; j < nn; j++)
            z += x[j] * w[j * stride];
    } else {
        for (size_t k = d->csr.rowptr[i]; k < d->csr.rowptr[i + 1]; k++) {
            size_t j = d->csr.colind[k];
            if (j < ncols)
                z += d->csr.val[k] * w[j * stride];
        }
    }
    return z;
}

/* h = diag ∇²f(x) = 1 + Σ_i C_i σ_i(1−σ_i) x_ij² (LIBLINEAR's
 * get_diag_preconditioner), in one pass over X, row by row while the row is
 * in cache. */
static ad_status lr_diag(void *ctx, const double *x, double *h)
{
    lr_sub *s = ctx;
    const ad_logreg_data *d = s->d;
    size_t nw = s->nw;
    const double *wx = x;
    if (s->sc) {
        for (size_t j = 0; j < s->n; j++)
            s->wu[j] = s->sc[j] * x[j];
        wx = s->wu;
    }
    for (size_t j = 0; j < nw; j++)
        h[j] = 0.0;
    double bw = s->bias >= 0 ? s->bias * x[s->n] : 0.0;
    for (size_t i = 0; i < d->m; i++) {
        double t = lr_row_dot(d, i, wx, s->n, 1) + bw;
        double sg = lr_sigmoid(t);
        double Di = (s->cls[i] == s->pos ? s->cp : s->cn) * sg * (1.0 - sg);
        if (d->X) {
            const double *xi = d->X + i * d->n;
            for (size_t j = 0; j < d->n; j++)
                h[j] += Di * xi[j] * xi[j];
        } else {
            for (size_t k = d->csr.rowptr[i]; k < d->csr.rowptr[i + 1]; k++) {
                double v = d->csr.val[k];
                h[d->csr.colind[k]] += Di * v * v;
            }
        }
        if (s->bias >= 0)
            h[s->n] += Di * s->bias * s->bias;
    }
    if (s->sc)
        for (size_t j = 0; j < s->n; j++)
            h[j] *= s->sc[j] * s->sc[j];
    for (size_t j = 0; j < nw; j++)
        h[j] = 1.0 + h[j];
    return AD_OK;
}

/* For ad_newton_cg (-g ls): M⁻¹r with M = (1 − α) I + α diag(∇²f(x)),
 * α = 0.01, the mix of LIBLINEAR's TRON and Newton (Hsia, Chiang, Lin,
 * "Preconditioned conjugate gradient methods in truncated Newton
 * frameworks", ACML 2018): the raw diagonal alone over-trusts badly scaled
 * features.  One pass over X per new x. */
static ad_status lr_precond(void *ctx, const double *x, const double *r, double *zout)
{
    lr_sub *s = ctx;
    size_t nw = s->nw;
    if (s->diag_off) {
        memcpy(zout, r, nw * sizeof *r);
        return AD_OK;
    }
    if (!s->have_diag || memcmp(x, s->xd, nw * sizeof *x) != 0) {
        memcpy(s->xd, x, nw * sizeof *x);
        double *h = s->diag;
        lr_diag(s, x, h);
        double hmin = HUGE_VAL, hmax = 0.0;
        for (size_t j = 0; j < nw; j++) {
            h[j] = 0.99 + 0.01 * h[j];
            hmin = fmin(hmin, h[j]);
            hmax = fmax(hmax, h[j]);
        }
        /* A diagonal within a factor 2 of c·I barely changes CG (c·I not
         * at all) but costs a pass over X per Newton step: decided once,
         * at the first call (w = 0), M = I for this sub-problem. */
        if (!s->have_diag && hmax < 2.0 * hmin) {
            s->diag_off = 1;
            memcpy(zout, r, nw * sizeof *r);
            return AD_OK;
        }
        s->have_diag = 1;
    }
    for (size_t j = 0; j < nw; j++)
        zout[j] = r[j] / s->diag[j];
    return AD_OK;
}

static int lr_progress(void *ctx, const ad_opt_progress *p)
{
    lr_sub *s = ctx;
    return s->prm->progress ? s->prm->progress(s->prm->progress_ctx, s->k, p) : 0;
}

/* This tape is already minimal (one vector node for Xw, a softplus per
 * row, three dot nodes): the tape optimizer finds nothing to collapse
 * (120 007 → 120 003 nodes on the 50000 × 20000 sparse set) and
 * preaccumulation has single-leaf statements only, yet together they took
 * 7.5 MB more peak memory there (1.72× instead of 1.47× the data) for no
 * speed-up.  Both off. */
static void lr_tape_setup(ad_tape *t)
{
    (void)ad_tape_set_optimize(t, 0);
    (void)ad_tape_set_preaccumulate(t, 0);
}

/* Room for lr_tape_fn's recording, asked for at once: no growth steps
 * while recording (their copies and freed blocks would raise the peak
 * memory).  Nodes: the inputs, the scaled weights, the matrix node and
 * its m outputs, the bias adds, m softplus, and a few more. */
static void lr_reserve(ad_tape *t, const lr_sub *s)
{
    size_t m = s->d->m, n = s->n, nw = s->nw, bias = s->bias >= 0;
    /* best effort: without the room the recording grows as usual */
    (void)ad_tape_reserve(t, nw + (s->sc ? n : 0) + 1 + m + bias * (m + 1) + m + 16,
                          n + m + nw + 2 * nw + 16);
}

/* cpos = −Σ_{i positive} C_i (x_i, B): the linear part of the loss. */
static void lr_linear_term(lr_sub *s)
{
    const ad_logreg_data *d = s->d;
    double *c = s->cpos;
    for (size_t j = 0; j < s->nw; j++)
        c[j] = 0.0;
    for (size_t i = 0; i < d->m; i++) {
        if (s->cls[i] != s->pos)
            continue;
        double ci = s->cp;
        if (d->X) {
            cblas_daxpy((int)d->n, -ci, d->X + i * d->n, 1, c, 1);
        } else {
            for (size_t k = d->csr.rowptr[i]; k < d->csr.rowptr[i + 1]; k++)
                c[d->csr.colind[k]] -= ci * d->csr.val[k];
        }
        if (s->bias >= 0)
            c[s->n] -= ci * s->bias;
    }
}

/* Solves one sub-problem from w = 0 into w (nw entries). */
static ad_status lr_solve(lr_sub *s, ad_tape *tape, double *w, ad_opt_result *ores,
                          double *gnorm_out)
{
    const ad_logreg_data *d = s->d;
    size_t npos = 0;
    for (size_t i = 0; i < d->m; i++)
        npos += s->cls[i] == s->pos;
    size_t nneg = d->m - npos;
    size_t mn = npos < nneg ? npos : nneg;
    /* LIBLINEAR's tolerance (train_one): eps scaled by the share of the
     * smaller class, relative to ‖∇f(0)‖2 (tron / newton). */
    double tol = s->prm->eps * (double)(mn > 1 ? mn : 1) / (double)d->m;

    memset(w, 0, s->nw * sizeof *w);
    lr_linear_term(s);
    /* C_i per row and the m vars of z live only while recording (ad_dot
     * copies C); the tape would call lr_tape_fn again only after a recorded
     * comparison flips, and it records none. */
    s->cw = malloc(d->m * sizeof *s->cw);
    s->z = malloc(d->m * sizeof *s->z);
    if (!s->cw || !s->z) {
        free(s->cw);
        free(s->z);
        s->cw = NULL;
        s->z = NULL;
        return AD_ENOMEM;
    }
    for (size_t i = 0; i < d->m; i++)
        s->cw[i] = s->cls[i] == s->pos ? s->cp : s->cn;
    lr_reserve(tape, s);
    ad_status st = ad_record(tape, lr_tape_fn, s->nw, w, s);
    free(s->cw);
    free(s->z);
    s->cw = NULL;
    s->z = NULL;
    if (st) {
        lr_seterr("logreg: recording the objective failed: %s (%s)", ad_strerror(st),
                  ad_tape_errmsg(tape));
        return st;
    }
    ad_problem prob = ad_problem_tape(tape);
    if (s->prm->globalization == AD_TRUST_REGION) {
        /* LIBLINEAR 2.3.0's own solver, step for step */
        lr_tron_params tp;
        tp.eps = tol;
        tp.eps_cg = 0.1; /* train_one's eps_cg without an initial solution */
        tp.max_iter = s->prm->max_iter;
        tp.diag = s->prm->precond ? lr_diag : NULL;
        tp.diag_ctx = s;
        tp.progress = lr_progress;
        tp.progress_ctx = s;
        st = lr_tron(&prob, w, &tp, ores);
    } else {
        ad_newton_params np;
        ad_newton_params_init(&np);
        np.globalization = AD_LINE_SEARCH;
        np.gtol = 0.0; /* only the relative test: LIBLINEAR has no absolute one */
        np.gtol_rel = tol;
        /* CG stops at ‖r‖ <= 0.1‖g‖, TRON's eps_cg: looser steps make
         * more, cheaper Newton iterations but land further inside the
         * tolerance. */
        np.eta_max = 0.1;
        np.max_iter = s->prm->max_iter;
        np.max_eval = 10 * s->prm->max_iter + 10;
        if (s->prm->precond) {
            np.precond = lr_precond;
            np.precond_ctx = s;
            s->have_diag = 0;
            s->diag_off = 0;
        }
        np.progress = lr_progress;
        np.progress_ctx = s;
        memset(w, 0, s->nw * sizeof *w);
        st = ad_newton_cg(&prob, w, &np, ores);
    }
    if (st) {
        lr_seterr("logreg: Newton-CG failed on class %zu: %s (%s)", s->k, ad_strerror(st),
                  ad_tape_errmsg(tape));
        return st;
    }
    /* ‖∇f‖2 at the result, the quantity of the stopping rule (the solver
     * reports the ∞-norm). */
    double *g = malloc(s->nw * sizeof *g);
    if (!g)
        return AD_ENOMEM;
    double f;
    st = ad_gradient(tape, w, &f, g);
    if (!st)
        *gnorm_out = cblas_dnrm2((int)s->nw, g, 1);
    free(g);
    return st;
}

static void lr_result_add(ad_logreg_result *res, const ad_opt_result *o, double gn)
{
    res->f += o->f;
    if (gn > res->gnorm)
        res->gnorm = gn;
    res->newton_iters += o->iters;
    res->cg_iters += o->cg_iters;
    res->nfev += o->nfev;
    res->nhvp += o->nhvp;
    res->nsub++;
    if (o->reason != AD_STOP_GTOL)
        res->reason = o->reason;
}

/* sc[j] = 1 / max_i |x_ij| (1 for an all-zero column). */
static void lr_col_scale(const ad_logreg_data *d, double *sc)
{
    for (size_t j = 0; j < d->n; j++)
        sc[j] = 0.0;
    if (d->X) {
        for (size_t i = 0; i < d->m; i++) {
            const double *x = d->X + i * d->n;
            for (size_t j = 0; j < d->n; j++)
                sc[j] = fmax(sc[j], fabs(x[j]));
        }
    } else {
        size_t nnz = d->csr.rowptr[d->m];
        for (size_t k = 0; k < nnz; k++) {
            uint32_t j = d->csr.colind[k];
            if (j < d->n)
                sc[j] = fmax(sc[j], fabs(d->csr.val[k]));
        }
    }
    for (size_t j = 0; j < d->n; j++)
        sc[j] = sc[j] > 0 ? 1.0 / sc[j] : 1.0;
}

ad_status ad_logreg_fit(const ad_logreg_data *d, const ad_logreg_params *prm,
                        ad_logreg_model *model, ad_logreg_result *res)
{
    lr_clearerr();
    double t0 = lr_now();
    ad_logreg_result rtmp;
    if (!res)
        res = &rtmp;
    memset(res, 0, sizeof *res);
    res->reason = AD_STOP_GTOL;
    if (!prm || !model) {
        lr_seterr("ad_logreg_fit: NULL argument");
        return AD_EINVAL;
    }
    memset(model, 0, sizeof *model);
    if (!(prm->C > 0) || !isfinite(prm->C) || !(prm->eps > 0) || !isfinite(prm->bias) ||
        (prm->globalization != AD_TRUST_REGION && prm->globalization != AD_LINE_SEARCH) ||
        prm->max_iter == 0 || (prm->nr_weight && (!prm->weight_label || !prm->weight))) {
        lr_seterr("ad_logreg_fit: need C > 0, eps > 0, finite bias, max_iter > 0");
        return AD_EINVAL;
    }
    ad_status st = lr_check_data(d);
    if (st)
        return st;

    size_t m = d->m, n = d->n, nw = n + (prm->bias >= 0 ? 1 : 0);
    uint32_t *cls = malloc(m * sizeof *cls);
    int *label = NULL;
    size_t nc = 0;
    double *wC = NULL, *w = NULL, *mw = NULL, *sc = NULL;
    lr_sub s;
    memset(&s, 0, sizeof s);
    ad_tape *tape = NULL;
    if (!cls) {
        st = AD_ENOMEM;
        goto out;
    }
    if ((st = lr_group(d, &label, &nc, cls)))
        goto out;
    if (nc < 2) {
        lr_seterr("logreg: the data has one class only (label %d); need at least two", label[0]);
        st = AD_EINVAL;
        goto out;
    }
    /* weighted_C: C times the -w weight of each class */
    wC = malloc(nc * sizeof *wC);
    if (!wC) {
        st = AD_ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < nc; k++)
        wC[k] = prm->C;
    for (size_t q = 0; q < prm->nr_weight; q++) {
        size_t k;
        for (k = 0; k < nc && label[k] != prm->weight_label[q]; k++)
            ;
        if (k == nc) {
            lr_seterr("logreg: class label %d of a weight is not in the data",
                      prm->weight_label[q]);
            st = AD_EINVAL;
            goto out;
        }
        if (!(prm->weight[q] > 0) || !isfinite(prm->weight[q])) {
            lr_seterr("logreg: the weight of class %d must be positive", prm->weight_label[q]);
            st = AD_EINVAL;
            goto out;
        }
        wC[k] = prm->C * prm->weight[q];
    }

    size_t nr_w = nc == 2 ? 1 : nc;
    s.d = d;
    s.cls = cls;
    s.n = n;
    s.nw = nw;
    s.bias = prm->bias;
    s.prm = prm;
    s.diag = malloc(nw * sizeof *s.diag);
    s.xd = malloc(nw * sizeof *s.xd);
    s.lv = malloc(nw * sizeof *s.lv);
    s.cpos = malloc(nw * sizeof *s.cpos);
    w = malloc(nw * sizeof *w);
    mw = calloc(nw * nr_w, sizeof *mw);
    tape = ad_tape_new();
    if (tape)
        lr_tape_setup(tape);
    if (!s.diag || !s.xd || !s.lv || !s.cpos || !w || !mw || !tape) {
        st = AD_ENOMEM;
        goto out;
    }
    if (prm->scale) {
        sc = malloc(n * sizeof *sc);
        s.u = malloc(n * sizeof *s.u);
        s.wu = malloc(n * sizeof *s.wu);
        if (!sc || !s.u || !s.wu) {
            st = AD_ENOMEM;
            goto out;
        }
        lr_col_scale(d, sc);
        s.sc = sc;
    }
    for (size_t k = 0; k < nr_w; k++) {
        /* binary: +1 = label[0] with C_p = wC[0], C_n = wC[1]; one-vs-rest:
         * +1 = label[k] with wC[k], the rest with plain C (LIBLINEAR). */
        s.pos = k;
        s.k = k;
        s.cp = wC[k];
        s.cn = nc == 2 ? wC[1] : prm->C;
        ad_opt_result o;
        double gn = 0.0;
        if ((st = lr_solve(&s, tape, w, &o, &gn)))
            goto out;
        lr_result_add(res, &o, gn);
        for (size_t j = 0; j < nw; j++) /* w = S w' for raw features */
            mw[j * nr_w + k] = sc && j < n ? sc[j] * w[j] : w[j];
        if (o.reason == AD_STOP_CALLBACK)
            break;
    }
    model->nr_class = nc;
    model->label = label;
    model->nr_feature = n;
    model->bias = prm->bias >= 0 ? prm->bias : -1.0;
    model->nr_w = nr_w;
    model->w = mw;
    label = NULL;
    mw = NULL;
out:
    ad_tape_free(tape);
    free(cls);
    free(label);
    free(wC);
    free(w);
    free(mw);
    free(s.diag);
    free(s.xd);
    free(s.lv);
    free(s.cpos);
    free(sc);
    free(s.u);
    free(s.wu);
    res->elapsed = lr_now() - t0;
    return st;
}

/* ------------------------------------------------------------------ */
/* Prediction and the objective of a given model                        */
/* ------------------------------------------------------------------ */

static ad_status lr_check_model(const ad_logreg_model *model)
{
    if (!model || model->nr_class < 2 || !model->label || !model->w ||
        !(model->nr_w == model->nr_class || (model->nr_class == 2 && model->nr_w == 1))) {
        lr_seterr("logreg: empty or inconsistent model");
        return AD_EINVAL;
    }
    return AD_OK;
}

/* Decision values of row i: dec[k] for k < nr_w. */
static void lr_decision(const ad_logreg_model *model, const ad_logreg_data *d, size_t i,
                        double *dec)
{
    size_t nr_w = model->nr_w, nf = model->nr_feature;
    for (size_t k = 0; k < nr_w; k++) {
        double z = lr_row_dot(d, i, model->w + k, nf, nr_w);
        if (model->bias >= 0)
            z += model->bias * model->w[nf * nr_w + k];
        dec[k] = z;
    }
}

ad_status ad_logreg_predict(const ad_logreg_model *model, const ad_logreg_data *d,
                            double *labels, double *prob)
{
    lr_clearerr();
    ad_status st = lr_check_model(model);
    if (st)
        return st;
    if (!d || (d->m && (!d->X && !d->csr.rowptr))) {
        lr_seterr("ad_logreg_predict: NULL data");
        return AD_EINVAL;
    }
    size_t nc = model->nr_class, nr_w = model->nr_w;
    double *dec = malloc(nr_w * sizeof *dec);
    if (!dec)
        return AD_ENOMEM;
    for (size_t i = 0; i < d->m; i++) {
        lr_decision(model, d, i, dec);
        size_t best = 0;
        if (nr_w == 1) {
            best = dec[0] > 0 ? 0 : 1;
        } else { /* one-vs-rest (or a Crammer–Singer model read from a file) */
            for (size_t k = 1; k < nc; k++)
                if (dec[k] > dec[best])
                    best = k;
        }
        if (labels)
            labels[i] = model->label[best];
        if (prob) {
            double *p = prob + i * nc;
            if (nr_w == 1) {
                p[0] = lr_sigmoid(dec[0]);
                p[1] = 1.0 - p[0];
            } else {
                double sum = 0.0;
                for (size_t k = 0; k < nc; k++)
                    sum += p[k] = lr_sigmoid(dec[k]);
                for (size_t k = 0; k < nc; k++)
                    p[k] /= sum;
            }
        }
    }
    free(dec);
    return AD_OK;
}

ad_status ad_logreg_objective(const ad_logreg_data *d, const ad_logreg_params *prm,
                              const ad_logreg_model *model, double *f)
{
    lr_clearerr();
    ad_status st = lr_check_model(model);
    if (st)
        return st;
    if (!prm || !f) {
        lr_seterr("ad_logreg_objective: NULL argument");
        return AD_EINVAL;
    }
    if ((st = lr_check_data(d)))
        return st;
    if ((prm->bias >= 0) != (model->bias >= 0) ||
        (prm->bias >= 0 && prm->bias != model->bias)) {
        lr_seterr("ad_logreg_objective: the model's bias %g differs from -B %g", model->bias,
                  prm->bias);
        return AD_EINVAL;
    }
    size_t nc = model->nr_class, nr_w = model->nr_w;
    size_t rows = model->nr_feature + (model->bias >= 0 ? 1 : 0);
    double *dec = malloc(nr_w * sizeof *dec);
    double *wC = malloc(nc * sizeof *wC);
    if (!dec || !wC) {
        free(dec);
        free(wC);
        return AD_ENOMEM;
    }
    for (size_t k = 0; k < nc; k++) {
        wC[k] = prm->C;
        for (size_t q = 0; q < prm->nr_weight; q++)
            if (prm->weight_label[q] == model->label[k])
                wC[k] = prm->C * prm->weight[q];
    }
    double *sc = NULL;
    if (prm->scale) {
        if (model->nr_feature != d->n) {
            free(dec);
            free(wC);
            lr_seterr("ad_logreg_objective: scale needs nr_feature == n");
            return AD_EINVAL;
        }
        sc = malloc(d->n * sizeof *sc);
        if (!sc) {
            free(dec);
            free(wC);
            return AD_ENOMEM;
        }
        lr_col_scale(d, sc);
    }
    double total = 0.0;
    for (size_t k = 0; k < nr_w; k++) {
        double reg = 0.0;
        for (size_t j = 0; j < rows; j++) {
            /* the scaled problem regularizes w' = S⁻¹ w */
            double wj = model->w[j * nr_w + k];
            if (sc && j < d->n)
                wj /= sc[j];
            reg += wj * wj;
        }
        total += 0.5 * reg;
    }
    free(sc);
    for (size_t i = 0; i < d->m; i++) {
        lr_decision(model, d, i, dec);
        int y = (int)d->y[i];
        size_t c;
        for (c = 0; c < nc && model->label[c] != y; c++)
            ;
        for (size_t k = 0; k < nr_w; k++) {
            int pos = c == k;
            double Ci = pos ? wC[k] : (nc == 2 ? wC[1] : prm->C);
            total += Ci * lr_softplus(pos ? -dec[k] : dec[k]);
        }
    }
    free(dec);
    free(wC);
    *f = total;
    return AD_OK;
}

/* ------------------------------------------------------------------ */
/* Cross-validation                                                     */
/* ------------------------------------------------------------------ */

static uint64_t lr_rand(uint64_t *s)
{
    /* splitmix64: a fixed, portable sequence for the fold assignment */
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Copies rows idx[0..cnt) of d into a new caller-built data set. */
static ad_status lr_subset(const ad_logreg_data *d, const size_t *idx, size_t cnt,
                           ad_logreg_data *out, double **bufs)
{
    memset(out, 0, sizeof *out);
    out->m = cnt;
    out->n = d->n;
    double *y = malloc(cnt * sizeof *y);
    bufs[0] = y;
    if (!y)
        return AD_ENOMEM;
    for (size_t r = 0; r < cnt; r++)
        y[r] = d->y[idx[r]];
    out->y = y;
    if (d->X) {
        double *X = malloc(cnt * d->n * sizeof *X);
        bufs[1] = X;
        if (!X)
            return AD_ENOMEM;
        for (size_t r = 0; r < cnt; r++)
            memcpy(X + r * d->n, d->X + idx[r] * d->n, d->n * sizeof *X);
        out->X = X;
        out->nnz = cnt * d->n;
        return AD_OK;
    }
    size_t nnz = 0;
    for (size_t r = 0; r < cnt; r++)
        nnz += d->csr.rowptr[idx[r] + 1] - d->csr.rowptr[idx[r]];
    size_t *rp = malloc((cnt + 1) * sizeof *rp);
    uint32_t *ci = malloc((nnz ? nnz : 1) * sizeof *ci);
    double *v = malloc((nnz ? nnz : 1) * sizeof *v);
    bufs[1] = (double *)(void *)rp;
    bufs[2] = (double *)(void *)ci;
    bufs[3] = v;
    if (!rp || !ci || !v)
        return AD_ENOMEM;
    size_t k = 0;
    rp[0] = 0;
    for (size_t r = 0; r < cnt; r++) {
        size_t a = d->csr.rowptr[idx[r]], b = d->csr.rowptr[idx[r] + 1];
        memcpy(ci + k, d->csr.colind + a, (b - a) * sizeof *ci);
        memcpy(v + k, d->csr.val + a, (b - a) * sizeof *v);
        k += b - a;
        rp[r + 1] = k;
    }
    out->csr.rowptr = rp;
    out->csr.colind = ci;
    out->csr.val = v;
    out->nnz = nnz;
    return AD_OK;
}

ad_status ad_logreg_cross_validation(const ad_logreg_data *d, const ad_logreg_params *prm,
                                     size_t nfold, uint64_t seed, double *target)
{
    lr_clearerr();
    if (!d || !prm || !target || nfold < 2) {
        lr_seterr("ad_logreg_cross_validation: NULL argument or fewer than 2 folds");
        return AD_EINVAL;
    }
    ad_status st = lr_check_data(d);
    if (st)
        return st;
    size_t m = d->m;
    if (nfold > m)
        nfold = m;
    size_t *perm = malloc(m * sizeof *perm);
    size_t *train = malloc(m * sizeof *train);
    if (!perm || !train) {
        free(perm);
        free(train);
        return AD_ENOMEM;
    }
    for (size_t i = 0; i < m; i++)
        perm[i] = i;
    uint64_t rs = seed;
    for (size_t i = m - 1; i > 0; i--) { /* Fisher–Yates */
        size_t j = (size_t)(lr_rand(&rs) % (i + 1));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    ad_logreg_params p = *prm;
    p.progress = NULL;
    for (size_t f = 0; f < nfold && !st; f++) {
        size_t a = f * m / nfold, b = (f + 1) * m / nfold, cnt = 0;
        for (size_t i = 0; i < m; i++)
            if (i < a || i >= b)
                train[cnt++] = perm[i];
        double *bufs[4] = {NULL, NULL, NULL, NULL};
        ad_logreg_data tr, te;
        ad_logreg_model model;
        memset(&model, 0, sizeof model);
        st = lr_subset(d, train, cnt, &tr, bufs);
        if (!st)
            st = ad_logreg_fit(&tr, &p, &model, NULL);
        if (!st) {
            /* predict the held-out rows one by one through a one-row view */
            for (size_t i = a; i < b && !st; i++) {
                double *tb[4] = {NULL, NULL, NULL, NULL};
                st = lr_subset(d, &perm[i], 1, &te, tb);
                if (!st)
                    st = ad_logreg_predict(&model, &te, &target[perm[i]], NULL);
                for (int q = 0; q < 4; q++)
                    free(tb[q]);
            }
        }
        ad_logreg_model_free(&model);
        for (int q = 0; q < 4; q++)
            free(bufs[q]);
    }
    free(perm);
    free(train);
    return st;
}

/* ------------------------------------------------------------------ */
/* The recorded objective, for tests                                    */
/* ------------------------------------------------------------------ */

struct lr_objective {
    lr_sub s;
    uint32_t *cls;
    int *label;
    double *sc;
};

void lr_objective_free(lr_objective *o)
{
    if (!o)
        return;
    free(o->cls);
    free(o->label);
    free(o->sc);
    free(o->s.cw);
    free(o->s.z);
    free(o->s.u);
    free(o->s.wu);
    free(o->s.lv);
    free(o->s.cpos);
    free(o);
}

ad_status lr_objective_record(ad_tape *t, const ad_logreg_data *d, const ad_logreg_params *prm,
                              lr_objective **out)
{
    *out = NULL;
    ad_status st = lr_check_data(d);
    if (st)
        return st;
    lr_objective *o = calloc(1, sizeof *o);
    if (!o)
        return AD_ENOMEM;
    size_t m = d->m, n = d->n, nc = 0;
    o->cls = malloc(m * sizeof *o->cls);
    if (!o->cls || (st = lr_group(d, &o->label, &nc, o->cls))) {
        lr_objective_free(o);
        return st ? st : AD_ENOMEM;
    }
    lr_sub *s = &o->s;
    s->d = d;
    s->cls = o->cls;
    s->pos = 0;
    s->n = n;
    s->nw = n + (prm->bias >= 0 ? 1 : 0);
    s->bias = prm->bias;
    s->prm = prm;
    s->cw = malloc(m * sizeof *s->cw);
    s->z = malloc(m * sizeof *s->z);
    s->lv = malloc(s->nw * sizeof *s->lv);
    s->cpos = malloc(s->nw * sizeof *s->cpos);
    double *w = calloc(s->nw, sizeof *w);
    if (prm->scale) {
        o->sc = malloc(n * sizeof *o->sc);
        s->u = malloc(n * sizeof *s->u);
        s->wu = malloc(n * sizeof *s->wu);
    }
    if (!s->cw || !s->z || !s->lv || !s->cpos || !w ||
        (prm->scale && (!o->sc || !s->u || !s->wu))) {
        free(w);
        lr_objective_free(o);
        return AD_ENOMEM;
    }
    if (prm->scale) {
        lr_col_scale(d, o->sc);
        s->sc = o->sc;
    }
    /* C·weight of label[0] for the positives; the negatives get label[1]'s
     * for two classes, plain C in one-vs-rest, as in ad_logreg_fit */
    s->cp = s->cn = prm->C;
    for (size_t q = 0; q < prm->nr_weight; q++) {
        if (prm->weight_label[q] == o->label[0])
            s->cp = prm->C * prm->weight[q];
        if (nc == 2 && prm->weight_label[q] == o->label[1])
            s->cn = prm->C * prm->weight[q];
    }
    for (size_t i = 0; i < m; i++)
        s->cw[i] = o->cls[i] == 0 ? s->cp : s->cn;
    lr_linear_term(s);
    lr_tape_setup(t);
    lr_reserve(t, s);
    st = ad_record(t, lr_tape_fn, s->nw, w, s);
    free(w);
    if (st) {
        lr_objective_free(o);
        return st;
    }
    *out = o;
    return AD_OK;
}
