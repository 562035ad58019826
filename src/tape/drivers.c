/*
 * Drivers: replay the recording at x.  They own the caching rules:
 *   - val holds the values at xc when val_ok (x compared by value, so an
 *     array the caller changed in place is seen as a new point);
 *   - adj holds the adjoints at xc when adj_ok, so HVPs at one x (as inside
 *     CG) run a tangent sweep and a reverse sweep of tangents only;
 *   - buffers grow to the recording's size once and are reused.
 * Every entry point validates before touching a buffer and leaves the tape
 * usable after any error.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tape/tape_internal.h"

/* x·0 is 0 for a finite x and NaN for ±∞ or NaN: a branch-free scan the
 * compiler vectorizes (it runs on every x, v and result of every call). */
static int all_finite(const double *x, size_t n)
{
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += x[i] * 0.0;
        a1 += x[i + 1] * 0.0;
        a2 += x[i + 2] * 0.0;
        a3 += x[i + 3] * 0.0;
    }
    for (; i < n; i++)
        a0 += x[i] * 0.0;
    return (a0 + a1 + a2 + a3) == 0.0;
}

/* The cached partials, when they belong to the current values. */
#define DC(t) ((t)->dc_ok ? (const double *)(t)->dc : NULL)

/* Whether x is the cached point, bit for bit.  Right after a recording the
 * point is the recorded inputs' values (xc_lazy): compared in val, where
 * they are, instead of copied at ad_record_end. */
static int at_cache(const ad_tape *t, const double *x)
{
    const tape_rec *r = t->rec;
    if (!t->val_ok)
        return 0;
    if (!t->xc_lazy)
        return memcmp(x, t->xc, r->nin * sizeof *x) == 0;
    if (r->in_contig)
        return memcmp(x, t->val + r->in[0], r->nin * sizeof *x) == 0;
    for (size_t j = 0; j < r->nin; j++)
        if (memcmp(&x[j], &t->val[r->in[j]], sizeof *x) != 0)
            return 0;
    return 1;
}

/* Checks t and x; the tape must hold a complete recording. */
static ad_status check(ad_tape *t, const double *x, const char *fn)
{
    if (!t)
        return AD_EINVAL;
    if (t->recording)
        return tape_set_error(t, AD_ESTATE, "%s: the tape is still being recorded", fn);
    if (t->err)
        return t->err;   /* sticky error of the recording; its message stays */
    if (!t->rec->complete)
        return tape_set_error(t, AD_ESTATE, "%s: the tape holds no complete recording", fn);
    if (!x)
        return tape_set_error(t, AD_EINVAL, "%s: x is NULL", fn);
    /* The cached point was finite: one pass over x, not two.  The answer
     * holds for this call (ready() below only drops the cache). */
    t->hit = at_cache(t, x);
    if (!t->hit && !all_finite(x, t->rec->nin))
        return tape_set_error(t, AD_EINVAL, "%s: x has a NaN or infinite entry", fn);
    return tape_ready(t);
}

static ad_status buffers(ad_tape *t, int need_adj, int need_dot)
{
    size_t n = t->rec->n + 1;
    if (!tape_buf(&t->val, &t->capval, n) || !tape_buf(&t->scr, &t->capscr, t->rec->max_scratch + 1)
        || !tape_scratch(&t->dc, &t->capdc, t->rec->ndc + 1)
        || !tape_buf(&t->xc, &t->capxc, t->rec->nin + 1)
        || (need_adj && !tape_scratch(&t->adj, &t->capadj, n))
        || (need_dot && !tape_dots(t, n)))
        return tape_set_error(t, AD_ENOMEM, "out of memory for sweep buffers");
    return AD_OK;
}

/* Names the first op whose value (derivs = 0) or partials went wrong. */
static ad_status domain_error(ad_tape *t, int derivs, const char *what)
{
    const tape_rec *r = t->rec;
    long i = sweep_first_bad(r, t->val, derivs);
    t->val_ok = 0;
    t->adj_ok = 0;
    if (i < 0)
        return tape_set_error(t, AD_EDOMAIN, "%s is not finite", what);
    tape_op op = (tape_op)r->op[i];
    double arg = op == OP_INPUT || op == OP_CONST || op >= OP_SUM ? NAN : t->val[r->a[i]];
    return tape_set_error(t, AD_EDOMAIN, "%s is not finite: %s at node %ld (argument %g, value %g)",
                          what, tape_op_name(op), i, arg, t->val[i]);
}

/* After a value sweep at x: branch check (re-record or AD_ERETAPE), then
 * cache x.  *rerecorded tells the caller the old tangents are stale. */
static ad_status settle(ad_tape *t, const double *x, int *rerecorded)
{
    const tape_rec *r = t->rec;
    *rerecorded = 0;
    if (r->ncmp && sweep_cmp_flipped(r, t->val)) {
        t->val_ok = t->adj_ok = 0;
        if (!t->fn)
            return tape_set_error(t, AD_ERETAPE,
                                  "a recorded comparison comes out the other way at this x");
        ad_status s = tape_rerecord(t, x);
        if (s != AD_OK && s != AD_EDOMAIN)
            return s;
        *rerecorded = 1;
        if (s == AD_EDOMAIN)
            return domain_error(t, 0, "f");
        if ((s = tape_ready(t)) || (s = buffers(t, 1, 1)))
            return s;
        if (!t->val_ok)   /* optimized: values again, in the new numbering */
            sweep_value_only(t->rec, t->val, x, t->scr, NULL, 0, t->rec->end);
    }
    memcpy(t->xc, x, t->rec->nin * sizeof *x);
    t->xc_lazy = 0;
    t->val_ok = 1;
    t->adj_ok = 0;
    t->epoch++;
    /* Running mean of HVPs per point: decides whether statements pay. */
    t->hvp_mean = 0.75 * t->hvp_mean + 0.25 * (double)t->hvps_here;
    t->hvps_here = 0;
    t->hit = 1;
    if (!isfinite(t->val[t->rec->out]))
        return domain_error(t, 0, "f");
    return AD_OK;
}

/* Values at x, from the cache or a value sweep. */
static ad_status values(ad_tape *t, const double *x)
{
    if (t->hit && t->val_ok)
        return AD_OK;
    t->val_ok = t->adj_ok = 0;
    sweep_value_only(t->rec, t->val, x, t->scr, t->dc, 0, t->rec->end);
    t->dc_ok = 1;
    int re;
    return settle(t, x, &re);
}

/* Adjoints at x, from the cache or a reverse sweep. */
static ad_status adjoints(ad_tape *t)
{
    if (t->adj_ok)
        return AD_OK;
    sweep_reverse(t->rec, t->val, t->adj, t->scr, DC(t));
    t->adj_ok = 1;
    return AD_OK;
}

/* g[j] = src[input j], returning whether every entry is finite: one pass
 * (the check runs on every result of every call). */
static int gather_inputs(const tape_rec *r, const double *src, double *g)
{
    double a0 = 0.0, a1 = 0.0;
    size_t n = r->nin, j = 0;
    if (r->in_contig) {
        const double *p = src + r->in[0];
        for (; j + 2 <= n; j += 2) {
            g[j] = p[j];
            g[j + 1] = p[j + 1];
            a0 += p[j] * 0.0;
            a1 += p[j + 1] * 0.0;
        }
        for (; j < n; j++) {
            g[j] = p[j];
            a0 += p[j] * 0.0;
        }
    } else {
        for (; j < n; j++) {
            g[j] = src[r->in[j]];
            a0 += g[j] * 0.0;
        }
    }
    return a0 + a1 == 0.0;
}

ad_status ad_eval(ad_tape *t, const double *x, double *f)
{
    ad_status s = check(t, x, "ad_eval");
    if (s)
        return s;
    if (!f)
        return tape_set_error(t, AD_EINVAL, "ad_eval: f is NULL");
    if ((s = buffers(t, 0, 0)) || (s = values(t, x)))
        return s;
    *f = t->val[t->rec->out];
    return AD_OK;
}

ad_status ad_gradient(ad_tape *t, const double *x, double *f, double *g)
{
    ad_status s = check(t, x, "ad_gradient");
    if (s)
        return s;
    if (!g)
        return tape_set_error(t, AD_EINVAL, "ad_gradient: g is NULL");
    if ((s = buffers(t, 1, 0)) || (s = values(t, x)) || (s = adjoints(t)))
        return s;
    if (f)
        *f = t->val[t->rec->out];
    if (!gather_inputs(t->rec, t->adj, g)) {
        t->adj_ok = 0;
        return domain_error(t, 1, "the gradient");
    }
    return AD_OK;
}

ad_status ad_hvp(ad_tape *t, const double *x, const double *v, double *hv)
{
    ad_status s = check(t, x, "ad_hvp");
    if (s)
        return s;
    if (!v || !hv)
        return tape_set_error(t, AD_EINVAL, "ad_hvp: v or hv is NULL");
    if (!all_finite(v, t->rec->nin))
        return tape_set_error(t, AD_EINVAL, "ad_hvp: v has a NaN or infinite entry");
    if ((s = buffers(t, 1, 1)))
        return s;
    const tape_rec *r = t->rec;
    if (t->hit && t->val_ok) {
        if ((s = adjoints(t)))
            return s;
        /* Statements cost a preaccumulation pass per point (≈ 1.5 plain
         * same-x HVPs at Rosenbrock 10⁶) and then ≈ 1/3 of a plain HVP each:
         * they pay from about 3 HVPs per point.  So: from the first HVP at a
         * cached point when points have had 3 or more on average (CG), from
         * the third at this point otherwise (Lanczos, repeated calls); the
         * plain sweeps else, or when the statements cannot be had. */
        int use = t->preacc && (t->hvps_here >= 2 || t->hvp_mean >= 3.0
                                || (t->st.valid && t->st.epoch == t->epoch));
        if (use && tape_stmts_ready(t) == AD_OK) {
            tape_stmts_tangent(t, v);
            tape_stmts_reverse(t);
        } else {
            sweep_tangent(r, t->val, t->dot, v, t->scr, DC(t));
            sweep_reverse_hvp(r, t->val, t->dot, t->adj, t->adot, 0, t->scr, DC(t));
        }
    } else {
        /* New point: values and tangents in one forward pass, adjoints and
         * their tangents in one reverse pass. */
        t->val_ok = t->adj_ok = 0;
        sweep_forward(r, t->val, t->dot, x, v, t->scr, t->dc, 0, r->end);
        t->dc_ok = 1;
        int re;
        if ((s = settle(t, x, &re)))
            return s;
        r = t->rec;
        if (re)
            sweep_tangent(r, t->val, t->dot, v, t->scr, DC(t));
        sweep_reverse_hvp(r, t->val, t->dot, t->adj, t->adot, 1, t->scr, DC(t));
        t->adj_ok = 1;
    }
    t->hvps_here++;
    if (!gather_inputs(r, t->adot, hv) || !isfinite(t->adj[r->out]))
        return domain_error(t, 1, "the Hessian-vector product");
    return AD_OK;
}

/* Directions l0..l0+k of V through the lanes; HV rows likewise. */
static int lanes_block(ad_tape *t, const double *V, size_t k, double *HV, int stmts)
{
    const tape_rec *r = t->rec;
    size_t n = r->nin;
    if (stmts) {
        tape_stmts_tangent_lanes(t, V, k, n);
        tape_stmts_reverse_lanes(t);
    } else {
        sweep_tangent_lanes(r, t->val, t->dotk, V, k, n, t->scr);
        sweep_reverse_lanes(r, t->val, t->dotk, t->adj, t->adotk, t->scr);
    }
    int finite = 1;
    for (size_t j = 0; j < n; j++) {
        const double *src = t->adotk + (size_t)r->in[j] * TAPE_LANES;
        for (size_t l = 0; l < k; l++) {
            HV[l * n + j] = src[l];
            finite &= isfinite(src[l]);
        }
    }
    return finite;
}

/* k directions of V through the lanes; `total` directions will be asked at
 * this x in all (ad_hessian asks n, a block at a time). */
static ad_status batch(ad_tape *t, const double *x, size_t k, const double *V, double *HV,
                       size_t total, const char *fn)
{
    ad_status s;
    if ((s = buffers(t, 1, 0)) || (s = values(t, x)) || (s = adjoints(t)))
        return s;
    /* Sized after the value sweep: it may have re-recorded a larger tape. */
    const tape_rec *r = t->rec;
    size_t n = r->nin, nodes = r->n + 1;
    if (nodes > SIZE_MAX / TAPE_LANES)
        return tape_set_error(t, AD_ELIMIT, "%s: lane buffers would overflow size_t", fn);
    if (!tape_scratch(&t->dotk, &t->capdotk, nodes * TAPE_LANES)
        || !tape_scratch(&t->adotk, &t->capadotk, nodes * TAPE_LANES)
        || !tape_buf(&t->scr, &t->capscr, r->max_scratch * TAPE_LANES + 1))
        return tape_set_error(t, AD_ENOMEM, "%s: out of memory for lane buffers", fn);
    /* More than one pass at this x: preaccumulated statements pay for
     * themselves (no partials recomputed per pass, no ops inside them). */
    int stmts = t->preacc && (total > TAPE_LANES || (t->st.valid && t->st.epoch == t->epoch))
                && tape_stmts_ready(t) == AD_OK;
    int finite = 1;
    for (size_t l0 = 0; l0 < k; l0 += TAPE_LANES) {
        size_t kk = k - l0 < TAPE_LANES ? k - l0 : TAPE_LANES;
        finite &= lanes_block(t, V + l0 * n, kk, HV + l0 * n, stmts);
    }
    if (!finite)
        return domain_error(t, 1, "a Hessian-vector product");
    return AD_OK;
}

/* Rows r0..r1 of the Hessian (V NULL: unit seeds, block by block) or of
 * HV = V·∇²f, on handle h, which check() has prepared at x.  `total` is the
 * whole job's direction count, so every handle takes the same route. */
static ad_status rows(ad_tape *h, const double *x, size_t r0, size_t r1, const double *V,
                      double *HV, size_t total)
{
    size_t n = h->rec->nin;
    if (V)
        return batch(h, x, r1 - r0, V + r0 * n, HV + r0 * n, total, "ad_hvp_batch");
    double *E = calloc(TAPE_LANES * n, sizeof *E);
    if (!E)
        return tape_set_error(h, AD_ENOMEM, "ad_hessian: out of memory");
    ad_status st = AD_OK;
    for (size_t l0 = r0; l0 < r1 && !st; l0 += TAPE_LANES) {
        size_t kk = r1 - l0 < TAPE_LANES ? r1 - l0 : TAPE_LANES;
        for (size_t l = 0; l < kk; l++)
            E[l * n + l0 + l] = 1.0;
        st = batch(h, x, kk, E, HV + l0 * n, total, "ad_hessian");
        for (size_t l = 0; l < kk; l++)
            E[l * n + l0 + l] = 0.0;
    }
    free(E);
    return st;
}

typedef struct split_job {
    ad_tape *h;
    const double *x, *V;
    double *HV;
    size_t r0, r1, total;
    ad_status st;
} split_job;

static void *split_run(void *arg)
{
    split_job *j = arg;
    j->st = check(j->h, j->x, "ad_hessian");
    if (!j->st)
        j->st = rows(j->h, j->x, j->r0, j->r1, j->V, j->HV, j->total);
    return NULL;
}

/* Shared handles for the helper threads, kept between calls (their buffers
 * are reused) and renewed when t holds a new recording. */
static ad_status workers(ad_tape *t, unsigned nw)
{
    if (nw > t->nworkers) {
        ad_tape **w = realloc(t->workers, nw * sizeof *w);
        if (!w)
            return AD_ENOMEM;
        for (unsigned k = t->nworkers; k < nw; k++)
            w[k] = NULL;
        t->workers = w;
        t->nworkers = nw;
    }
    for (unsigned k = 0; k < nw; k++) {
        ad_tape *h = t->workers[k];
        if (h && h->rec == t->rec)
            continue;
        ad_tape_free(h);
        t->workers[k] = h = ad_tape_share(t);
        if (!h)
            return AD_ENOMEM;
        h->nthreads = 1;
    }
    return AD_OK;
}

/* k directions (V, or the unit vectors when V is NULL) split by blocks of
 * TAPE_LANES across t and up to t->nthreads − 1 shared handles, one thread
 * each.  Lanes do not mix and every handle takes the same route, so the
 * result is the same bit for bit as on one thread. */
static ad_status split(ad_tape *t, const double *x, size_t k, const double *V, double *HV, int hess)
{
    const char *fn = hess ? "ad_hessian" : "ad_hvp_batch";
    size_t blocks = (k + TAPE_LANES - 1) / TAPE_LANES;
    unsigned T = t->nthreads < blocks ? t->nthreads : (unsigned)blocks;
    ad_status st;
    /* Values at x first: a flipped branch re-records t before it is shared. */
    if (T <= 1 || (st = buffers(t, 1, 0)) || (st = values(t, x)) || (st = adjoints(t)))
        return T <= 1 ? rows(t, x, 0, k, V, HV, k) : st;
    if (workers(t, T - 1))
        return rows(t, x, 0, k, V, HV, k);   /* no helpers: one thread, same result */
    split_job job[64];
    pthread_t th[64];
    size_t per = (blocks + T - 1) / T * TAPE_LANES;
    for (unsigned q = 0; q < T; q++) {
        size_t r0 = q * per < k ? q * per : k, r1 = r0 + per < k ? r0 + per : k;
        job[q] = (split_job){q ? t->workers[q - 1] : t, x, V, HV, r0, r1, k, AD_OK};
    }
    int created[64] = {0};
    for (unsigned q = 1; q < T; q++)
        created[q] = pthread_create(&th[q], NULL, split_run, &job[q]) == 0;
    job[0].st = rows(t, x, job[0].r0, job[0].r1, V, HV, k);
    for (unsigned q = 1; q < T; q++) {
        if (created[q])
            pthread_join(th[q], NULL);
        else
            split_run(&job[q]);   /* no thread to be had: same work, here */
    }
    for (unsigned q = 0; q < T; q++)
        if (job[q].st) {
            if (job[q].h != t)
                tape_set_error(t, job[q].st, "%s: %s", fn, ad_tape_errmsg(job[q].h));
            return job[q].st;
        }
    return AD_OK;
}

ad_status ad_hvp_batch(ad_tape *t, const double *x, size_t k, const double *V, double *HV)
{
    ad_status s = check(t, x, "ad_hvp_batch");
    if (s)
        return s;
    size_t n = t->rec->nin;
    if (k == 0)
        return AD_OK;
    if (!V || !HV)
        return tape_set_error(t, AD_EINVAL, "ad_hvp_batch: V or HV is NULL");
    if (k > SIZE_MAX / n / sizeof(double))
        return tape_set_error(t, AD_ELIMIT, "ad_hvp_batch: k·n doubles overflow size_t");
    if (!all_finite(V, k * n))
        return tape_set_error(t, AD_EINVAL, "ad_hvp_batch: V has a NaN or infinite entry");
    return split(t, x, k, V, HV, 0);
}

ad_status ad_hess_form(ad_tape *t, const double *x, const double *v, const double *w, double *vhw)
{
    ad_status s = check(t, x, "ad_hess_form");
    if (s)
        return s;
    if (!v || !w || !vhw)
        return tape_set_error(t, AD_EINVAL, "ad_hess_form: v, w or vhw is NULL");
    size_t n = t->rec->nin;
    if (!all_finite(v, n) || !all_finite(w, n))
        return tape_set_error(t, AD_EINVAL, "ad_hess_form: v or w has a NaN or infinite entry");
    if ((s = buffers(t, 0, 1)) || (s = values(t, x)))
        return s;
    /* Sized after the value sweep: it may have re-recorded a larger tape
     * (settle() resizes the per-node buffers, not this one). */
    if (!tape_scratch(&t->e12, &t->cape12, t->rec->n + 1))
        return tape_set_error(t, AD_ENOMEM, "ad_hess_form: out of memory");
    const tape_rec *r = t->rec;
    /* dot and adot serve as the ε1 and ε2 parts: scratch between calls. */
    sweep_hyper(r, t->val, t->dot, t->adot, t->e12, v, w, t->scr);
    *vhw = t->e12[r->out];
    if (!isfinite(*vhw))
        return domain_error(t, 1, "vᵀHw");
    return AD_OK;
}

ad_status ad_hessian(ad_tape *t, const double *x, double *H)
{
    ad_status s = check(t, x, "ad_hessian");
    if (s)
        return s;
    if (!H)
        return tape_set_error(t, AD_EINVAL, "ad_hessian: H is NULL");
    size_t n = t->rec->nin;
    if (n > SIZE_MAX / n / sizeof(double))
        return tape_set_error(t, AD_ELIMIT, "ad_hessian: n·n overflows size_t");
    ad_status st = split(t, x, n, NULL, H, 1);
    if (st)
        return st;
    /* Exact arithmetic gives a symmetric H; rounding may not: average the
     * two triangles so users get the symmetric matrix the header promises. */
    enum { TILE = 64 };   /* tiles keep both triangles' lines in cache */
    for (size_t i0 = 0; i0 < n; i0 += TILE)
        for (size_t j0 = i0; j0 < n; j0 += TILE)
            for (size_t i = i0; i < i0 + TILE && i < n; i++)
                for (size_t j = j0 > i + 1 ? j0 : i + 1; j < j0 + TILE && j < n; j++) {
                    double m = 0.5 * (H[i * n + j] + H[j * n + i]);
                    H[i * n + j] = H[j * n + i] = m;
                }
    return AD_OK;
}
