/*
 * Recording: the thread's active tape and every op constructor.
 *
 * Each op checks its arguments against the active recording (a var carries
 * the id of the recording that made it), evaluates its value with the rule
 * of src/dual, and appends one node.  Structural errors are sticky: the
 * first is kept, later ops return an invalid var and append nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dual/rules.h"
#include "tape/tape_internal.h"

/* initial-exec: one TLS load per op instead of a __tls_get_addr call. */
__attribute__((tls_model("initial-exec"))) _Thread_local ad_tape *tape_active;

static const ad_var BAD = {NAN, 0, 0};

/* A var's handle as one word, rec in the high half: one compare checks both
 * parts (ARG_OK), and a new var's is base + index. */
static inline uint64_t var_bits(ad_var v) { return (uint64_t)v.rec << 32 | v.idx; }
static inline ad_var bits_var(double y, uint64_t u)
{
    return (ad_var){y, (uint32_t)u, (uint32_t)(u >> 32)};
}

/* ---- errors ----------------------------------------------------------- */

/* Slow paths are cold and out of line so the ops' fast path stays small. */
#define COLD __attribute__((cold, noinline))

COLD static void fail(ad_tape *t, ad_status s, const char *what, const char *why)
{
    if (t->err)
        return;
    t->err = s;
    t->lim = 0;   /* every op's fast path now fails at its one bound check */
    tape_set_error(t, s, "%s: %s", what, why);
}

COLD static void domain(ad_tape *t, tape_op op, size_t node, double y)
{
    if (t->dom)
        return;
    t->dom = AD_EDOMAIN;
    if (!t->err)
        tape_set_error(t, AD_EDOMAIN, "%s: value %g is not finite at node %zu (recording point)",
                       tape_op_name(op), y, node);
}

/* ---- storage ---------------------------------------------------------- */

/* The node count push() may reach without the slow path: the storage's
 * capacity, capped by the user's limit. */
static void set_limit(ad_tape *t)
{
    size_t lim = t->rec->cap < t->capval ? t->rec->cap : t->capval;
    t->lim = lim < t->max_ops ? lim : t->max_ops;
}

COLD static int grow_nodes(ad_tape *t, size_t need, tape_op op)
{
    tape_rec *r = t->rec;
    if (need > t->max_ops) {
        fail(t, AD_ELIMIT, tape_op_name(op), "the tape would exceed its node limit (ad_tape_set_max_ops)");
        return 0;
    }
    size_t c1 = r->cap, c2 = r->cap, c3 = r->cap;
    if (!tape_grow((void **)&r->op, &c1, need, 1) || !tape_grow((void **)&r->a, &c2, need, 4)
        || !tape_grow((void **)&r->b, &c3, need, 4) || !tape_buf(&t->val, &t->capval, need)) {
        fail(t, AD_ENOMEM, tape_op_name(op), "out of memory growing the tape");
        return 0;
    }
    r->cap = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);
    set_limit(t);
    return 1;
}

ad_status ad_tape_reserve(ad_tape *t, size_t nodes, size_t vec_args)
{
    if (!t)
        return AD_EINVAL;
    if (t->recording)
        return tape_set_error(t, AD_ESTATE, "ad_tape_reserve: the tape is being recorded");
    if (nodes > t->max_ops)
        return tape_set_error(t, AD_ELIMIT, "ad_tape_reserve: %zu nodes exceed the limit of %zu",
                              nodes, t->max_ops);
    if (atomic_load(&t->rec->refs) > 1)
        return AD_OK;   /* shared with other handles: never written again */
    tape_rec *r = t->rec;
    size_t c1 = r->cap, c2 = r->cap, c3 = r->cap;
    /* each op may bring a constant (addc, mulc, …); vector ops a pool entry
     * per argument (ad_dot) and an index each */
    size_t cst = nodes + vec_args, ext = vec_args + nodes;
    int ok = tape_grow((void **)&r->op, &c1, nodes, 1) && tape_grow((void **)&r->a, &c2, nodes, 4)
             && tape_grow((void **)&r->b, &c3, nodes, 4) && tape_buf(&t->val, &t->capval, nodes)
             && tape_grow((void **)&r->ext, &r->capext, ext, sizeof(uint32_t))
             && tape_grow((void **)&r->cst, &r->capcst, cst, sizeof(double));
    r->cap = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);   /* what did grow stays */
    return ok ? AD_OK : tape_set_error(t, AD_ENOMEM, "ad_tape_reserve: out of memory");
}

/* Appends a node; returns its var (invalid when the tape is full). */
static inline ad_var push(ad_tape *t, tape_op op, uint32_t a, uint32_t b, double v)
{
    tape_rec *r = t->rec;
    size_t i = r->n;
    if (__builtin_expect(i >= t->lim, 0) && !grow_nodes(t, i + 1, op))
        return BAD;
    r->op[i] = (uint8_t)op;
    r->a[i] = a;
    r->b[i] = b;
    t->val[i] = v;
    r->n = i + 1;
    if (__builtin_expect(!isfinite(v), 0))
        domain(t, op, i, v);
    return (ad_var){v, (uint32_t)i, r->id};
}

static int push_const(ad_tape *t, double c, uint32_t *k, tape_op op)
{
    tape_rec *r = t->rec;
    if (r->ncst >= UINT32_MAX) {
        fail(t, AD_ELIMIT, tape_op_name(op), "constant pool exceeds 2^32 entries");
        return 0;
    }
    if (!tape_grow((void **)&r->cst, &r->capcst, r->ncst + 1, sizeof(double))) {
        fail(t, AD_ENOMEM, tape_op_name(op), "out of memory growing the constant pool");
        return 0;
    }
    *k = (uint32_t)r->ncst;
    r->cst[r->ncst++] = c;
    return 1;
}

/* The active tape, if it can take another op. */
static inline ad_tape *active(void)
{
    ad_tape *t = tape_active;
    return (t && !t->err) ? t : NULL;
}

COLD static void arg_error(ad_tape *t, ad_var v, const char *what)
{
    fail(t, AD_EINVAL, what,
         v.rec == 0 ? "argument is an invalid var (made without an active tape, or by a failed op)"
                    : "argument is a var of another tape or of an earlier recording");
}

static inline int arg(ad_tape *t, ad_var v, uint32_t *i, const char *what)
{
    if (__builtin_expect(v.rec == t->rec->id && v.idx < t->rec->n, 1)) {
        *i = v.idx;
        return 1;
    }
    arg_error(t, v, what);
    return 0;
}

static int finite_arg(ad_tape *t, double c, tape_op op)
{
    if (isfinite(c))
        return 1;
    fail(t, AD_EINVAL, tape_op_name(op), "constant argument is not finite");
    return 0;
}

/* ---- recording -------------------------------------------------------- */

ad_status ad_record_begin(ad_tape *t)
{
    if (!t)
        return AD_EINVAL;
    if (tape_active && tape_active != t)
        return tape_set_error(t, AD_ESTATE, "ad_record_begin: another tape is being recorded on this thread");
    tape_rec *r = t->rec;
    if (atomic_load(&r->refs) > 1) {
        /* Other handles replay this recording: leave it to them. */
        tape_rec *nr = tape_rec_new();
        if (!nr)
            return tape_set_error(t, AD_ENOMEM, "ad_record_begin: out of memory");
        tape_rec_release(r);
        t->rec = r = nr;
    }
    r->n = r->ncst = r->next = r->nmat = r->ncmp = r->nin = r->ndc = 0;
    free(r->cf);   /* the last recording's carry flags */
    r->cf = NULL;
    r->cf_done = 0;
    r->out = 0;
    r->has_out = 0;
    r->complete = 0;
    r->optimized = 0;
    r->max_scratch = 0;
    r->id = tape_next_id();
    t->err = AD_OK;
    t->dom = AD_OK;
    t->msg[0] = '\0';
    t->val_ok = t->adj_ok = 0;
    t->dc_ok = 0;   /* recorded values come without cached partials */
    t->fn = NULL;
    t->fn_ctx = NULL;
    t->recording = 1;
    set_limit(t);
    tape_active = t;
    return AD_OK;
}

COLD static ad_var slow_input(double x)
{
    ad_tape *t = active();
    if (!t || !finite_arg(t, x, OP_INPUT))
        return BAD;
    tape_rec *r = t->rec;
    if (!tape_grow((void **)&r->in, &r->capin, r->nin + 1, sizeof(uint32_t))) {
        fail(t, AD_ENOMEM, "input", "out of memory");
        return BAD;
    }
    ad_var v = push(t, OP_INPUT, (uint32_t)r->nin, 0, x);
    if (v.rec)
        r->in[r->nin++] = v.idx;
    return v;
}

ad_var ad_input(double x)
{
    ad_tape *t = tape_active;
    if (__builtin_expect(t != NULL, 1)) {
        tape_rec *r = t->rec;
        size_t i = r->n, j = r->nin;
        if (__builtin_expect(i < t->lim && j < r->capin && isfinite(x), 1)) {   /* lim: 0 after an error */
            r->op[i] = (uint8_t)OP_INPUT;
            r->a[i] = (uint32_t)j;
            r->b[i] = 0;
            t->val[i] = x;
            r->n = i + 1;
            r->in[j] = (uint32_t)i;
            r->nin = j + 1;
            return (ad_var){x, (uint32_t)i, r->id};
        }
    }
    return slow_input(x);
}

void ad_inputs(size_t n, const double *x, ad_var *v)
{
    ad_tape *t = active();
    if (v)
        for (size_t j = 0; j < n; j++)
            v[j] = BAD;
    if (!t || n == 0)
        return;
    if (!x || !v) {
        fail(t, AD_EINVAL, "inputs", "NULL array");
        return;
    }
    for (size_t j = 0; j < n; j++)
        if (!isfinite(x[j])) {
            char why[64];
            snprintf(why, sizeof why, "x[%zu] is not finite", j);
            fail(t, AD_EINVAL, "inputs", why);
            return;
        }
    tape_rec *r = t->rec;
    size_t i0 = r->n, j0 = r->nin;
    if (n > UINT32_MAX - j0) {
        fail(t, AD_ELIMIT, "inputs", "more than 2^32 inputs");
        return;
    }
    if (i0 + n > t->lim && !grow_nodes(t, i0 + n, OP_INPUT))
        return;   /* grow_nodes reported it */
    if (!tape_grow((void **)&r->in, &r->capin, j0 + n, sizeof(uint32_t))) {
        fail(t, AD_ENOMEM, "inputs", "out of memory");
        return;
    }
    /* The nodes ad_input would make one by one, as a few array fills. */
    uint64_t base = (uint64_t)r->id << 32 | i0;
    memset(r->op + i0, OP_INPUT, n);
    memset(r->b + i0, 0, n * sizeof *r->b);
    memcpy(t->val + i0, x, n * sizeof *x);
    for (size_t j = 0; j < n; j++) {
        r->a[i0 + j] = (uint32_t)(j0 + j);
        r->in[j0 + j] = (uint32_t)(i0 + j);
        v[j] = bits_var(x[j], base + j);
    }
    r->n = i0 + n;
    r->nin = j0 + n;
}

void ad_output(ad_var y)
{
    ad_tape *t = active();
    uint32_t i;
    if (!t || !arg(t, y, &i, "ad_output"))
        return;
    t->rec->out = i;
    t->rec->has_out = 1;
}

ad_status ad_record_end(ad_tape *t)
{
    if (!t)
        return AD_EINVAL;
    if (tape_active != t || !t->recording)
        return tape_set_error(t, AD_ESTATE, "ad_record_end: this tape is not being recorded on this thread");
    tape_active = NULL;
    t->recording = 0;
    tape_rec *r = t->rec;
    if (!t->err && !r->has_out)
        fail(t, AD_ESTATE, "ad_record_end", "no output: call ad_output before ending the recording");
    if (!t->err && !tape_buf(&t->scr, &t->capscr, r->max_scratch + 1))
        fail(t, AD_ENOMEM, "ad_record_end", "out of memory");
    if (!t->err && !tape_buf(&t->xc, &t->capxc, r->nin + 1))
        fail(t, AD_ENOMEM, "ad_record_end", "out of memory");
    if (t->err) {
        r->complete = 0;
        return t->err;
    }
    r->complete = 1;
    tape_rec_finish(r, 1);   /* nodes are appended in call order */
    t->xc_lazy = 1;   /* the cached point is the inputs' values: no copy */
    /* The recording point is the cached point, unless a value there was not
     * finite: then the first driver call at it recomputes and reports. */
    t->val_ok = !t->dom;
    t->adj_ok = 0;
    t->epoch++;
    t->hvps_here = 0;
    return t->dom;
}

double ad_value(ad_var a)
{
    ad_tape *t = tape_active;
    if (!t || a.rec != t->rec->id || a.idx >= t->rec->n)
        return NAN;
    return t->val[a.idx];
}

ad_status ad_record(ad_tape *t, ad_fn f, size_t n, const double *x, void *ctx)
{
    if (!t || !f || !x || n == 0)
        return t ? tape_set_error(t, AD_EINVAL, "ad_record: NULL tape, function or x, or n = 0") : AD_EINVAL;
    if (n > UINT32_MAX)
        return tape_set_error(t, AD_ELIMIT, "ad_record: n exceeds 2^32");
    ad_var *xs = malloc(n * sizeof *xs);
    if (!xs)
        return tape_set_error(t, AD_ENOMEM, "ad_record: out of memory");
    ad_status s = ad_record_begin(t);
    if (s) {
        free(xs);
        return s;
    }
    t->fn = f;
    t->fn_ctx = ctx;
    ad_inputs(n, x, xs);
    ad_var y = f(xs, n, ctx);
    ad_output(y);
    free(xs);
    if (tape_active != t) {
        /* f ended our recording or started another one. */
        t->recording = 0;
        t->rec->complete = 0;
        return tape_set_error(t, AD_ESTATE, "ad_record: the function changed the active tape");
    }
    return ad_record_end(t);
}

/* Records t's function again at x (a comparison flipped during a replay).
 * The caller's own recording, if any, is set aside meanwhile. */
ad_status tape_rerecord(ad_tape *t, const double *x)
{
    ad_tape *saved = tape_active;
    size_t n = t->rec->nin;
    tape_active = NULL;
    ad_status s = ad_record(t, t->fn, n, x, t->fn_ctx);
    tape_active = saved;
    if (s == AD_OK && t->rec->nin != n) {
        t->rec->complete = 0;
        s = tape_set_error(t, AD_ESTATE, "re-recording gave %zu inputs instead of %zu", t->rec->nin, n);
    }
    return s;
}

/* ---- ops -------------------------------------------------------------- */

ad_var ad_const(double c)
{
    ad_tape *t = active();
    uint32_t k;
    if (!t || !finite_arg(t, c, OP_CONST) || !push_const(t, c, &k, OP_CONST))
        return BAD;
    return push(t, OP_CONST, k, 0, c);
}

/* Every op has a fast path and a slow one.  The fast path appends the node
 * when nothing can go wrong (an active tape with room: fail() zeroes the
 * bound lim, so a tape with an error has none; arguments of this recording;
 * a finite value; room in the pool): a few loads and four stores, and no
 * call but the rule's libm one, so the cheap ops need no saved registers.
 * Anything else takes the slow path, which checks and reports (and
 * evaluates again: the rules are pure). */
#define FAST_BEGIN(cond)                                                \
    ad_tape *t = tape_active;                                           \
    if (__builtin_expect(t != NULL, 1)) {                               \
        tape_rec *r = t->rec;                                           \
        size_t i = r->n;                                                \
        uint64_t base = (uint64_t)r->id << 32;                          \
        if (__builtin_expect(i < t->lim && (cond), 1)) {   /* lim: 0 after an error */ \
            double *val = t->val;                                       \
            uint8_t *opp = r->op;                                       \
            uint32_t *ap = r->a, *bp = r->b;
/* The stores come last, the byte one after the rest: a char store may
 * alias anything, so nothing is loaded after it. */
#define FAST_END(N, xa, xb, y, ON_OK)                                   \
            if (__builtin_expect(isfinite(y), 1)) {                     \
                ON_OK                                                   \
                val[i] = (y);                                           \
                ap[i] = (xa);                                           \
                bp[i] = (xb);                                           \
                r->n = i + 1;                                           \
                opp[i] = (uint8_t)OP_##N;                               \
                return bits_var(y, base + i);                           \
            }                                                           \
        }                                                               \
    }
/* A var of this recording made before node i: with v as one word (rec in
 * the high half), v - base < i exactly when v.rec == id and v.idx < i. */
#define ARG_OK(v) (var_bits(v) - base < i)

/* Unary ops without a constant: generated from the op table. */
#define GEN_NOC(N, n)                                                   \
    COLD static ad_var slow_##n(ad_var x)                               \
    {                                                                   \
        ad_tape *t = active();                                          \
        uint32_t i;                                                     \
        if (!t || !arg(t, x, &i, #n))                                   \
            return BAD;                                                 \
        uint32_t slot = (uint32_t)t->rec->ndc;                          \
        ad_var v = push(t, OP_##N, i, TAPE_CACHED(N) ? slot : 0,        \
                        dual_##n##_f(t->val[i], 0.0));                  \
        if (TAPE_CACHED(N) && v.rec)                                    \
            t->rec->ndc = slot + 1u;                                    \
        return v;                                                       \
    }                                                                   \
    ad_var ad_##n(ad_var x)                                             \
    {                                                                   \
        FAST_BEGIN(ARG_OK(x))                                           \
            double y = dual_##n##_f(x.val, 0.0);                        \
            uint32_t slot = TAPE_CACHED(N) ? (uint32_t)r->ndc : 0u;     \
        FAST_END(N, x.idx, slot, y, if (TAPE_CACHED(N)) r->ndc = slot + 1u;) \
        return slow_##n(x);                                             \
    }
#define GEN_CST(N, n)
#define GEN_INT(N, n)
#define X_GEN1(N, n, k, c) GEN_##k(N, n)
TAPE_UNARY_OPS(X_GEN1)

#define X_GEN2(N, n, c)                                                 \
    COLD static ad_var slow_##n(ad_var x, ad_var y)                     \
    {                                                                   \
        ad_tape *t = active();                                          \
        uint32_t i, j;                                                  \
        if (!t || !arg(t, x, &i, #n) || !arg(t, y, &j, #n))             \
            return BAD;                                                 \
        return push(t, OP_##N, i, j, dual_##n##_f(t->val[i], t->val[j])); \
    }                                                                   \
    ad_var ad_##n(ad_var x, ad_var y)                                   \
    {                                                                   \
        FAST_BEGIN(ARG_OK(x) && ARG_OK(y))                              \
            double v = dual_##n##_f(x.val, y.val);                      \
        FAST_END(N, x.idx, y.idx, v, (void)0;)                          \
        return slow_##n(x, y);                                          \
    }
TAPE_BINARY_USER_OPS(X_GEN2)

/* Unary ops with a constant in the pool. */
#define GEN_CST_OP(N, n)                                                \
    COLD static ad_var slow_##n(ad_var x, double c)                     \
    {                                                                   \
        ad_tape *t = active();                                          \
        uint32_t i, k;                                                  \
        if (!t || !arg(t, x, &i, #n) || !finite_arg(t, c, OP_##N)       \
            || !push_const(t, c, &k, OP_##N))                           \
            return BAD;                                                 \
        return push(t, OP_##N, i, k, dual_##n##_f(t->val[i], c));       \
    }                                                                   \
    static inline ad_var rec_##n(ad_var x, double c)                    \
    {                                                                   \
        FAST_BEGIN(ARG_OK(x) && r->ncst < r->capcst                     \
                   && r->ncst < UINT32_MAX && isfinite(c))              \
            double y = dual_##n##_f(x.val, c);                          \
            uint32_t k = (uint32_t)r->ncst;                             \
        FAST_END(N, x.idx, k, y, r->cst[k] = c; r->ncst = k + 1u;)      \
        return slow_##n(x, c);                                          \
    }
GEN_CST_OP(ADDC, addc)
GEN_CST_OP(MULC, mulc)
GEN_CST_OP(POWC, powc)
GEN_CST_OP(CSUB, csub)
GEN_CST_OP(CDIV, cdiv)

ad_var ad_addc(ad_var a, double c) { return rec_addc(a, c); }
ad_var ad_mulc(ad_var a, double c) { return rec_mulc(a, c); }
ad_var ad_powc(ad_var a, double c) { return rec_powc(a, c); }
ad_var ad_csub(double c, ad_var a) { return rec_csub(a, c); }
ad_var ad_cdiv(double c, ad_var a) { return rec_cdiv(a, c); }

ad_var ad_powi(ad_var a, int n)
{
    ad_tape *t = active();
    uint32_t i;
    if (!t || !arg(t, a, &i, "powi"))
        return BAD;
    return push(t, OP_POWI, i, (uint32_t)(int32_t)n, dual_powi(t->val[i], n));
}

/* ---- vector nodes ----------------------------------------------------- */

static int ext_reserve(ad_tape *t, size_t more, tape_op op, size_t *off)
{
    tape_rec *r = t->rec;
    if (more > UINT32_MAX || r->next + more > UINT32_MAX) {
        fail(t, AD_ELIMIT, tape_op_name(op), "argument lists exceed 2^32 entries");
        return 0;
    }
    if (!tape_grow((void **)&r->ext, &r->capext, r->next + more, sizeof(uint32_t))) {
        fail(t, AD_ENOMEM, tape_op_name(op), "out of memory");
        return 0;
    }
    *off = r->next;
    return 1;
}

/* Copies the n nodes of x into ext at off; 0 on a bad var. */
static int put_args(ad_tape *t, size_t off, size_t n, const ad_var *x, tape_op op)
{
    uint32_t *e = t->rec->ext + off;
    const char *what = tape_op_name(op);
    for (size_t k = 0; k < n; k++)
        if (!arg(t, x[k], &e[k], what))
            return 0;
    return 1;
}

static int vec_check(ad_tape *t, size_t n, const void *x, const void *y, tape_op op)
{
    if (n > 0 && (!x || !y)) {
        fail(t, AD_EINVAL, tape_op_name(op), "NULL array");
        return 0;
    }
    if (n >= VEC_CONTIG) {
        fail(t, AD_ELIMIT, tape_op_name(op), "length exceeds 2^31 - 1");
        return 0;
    }
    return 1;
}

/* Whether x[0..n) are the consecutive nodes x[0], x[0]+1, … of this
 * recording (checked as arguments too: a bad var fails the tape).  Such a
 * list is stored as its first node (VEC_CONTIG): 4 bytes, not 4n, and
 * sweeps that read no index array. */
static int contiguous_args(ad_tape *t, size_t n, const ad_var *x, tape_op op)
{
    uint32_t i0;
    if (!arg(t, x[0], &i0, tape_op_name(op)))
        return -1;
    for (size_t k = 1; k < n; k++) {
        uint32_t i;
        if (!arg(t, x[k], &i, tape_op_name(op)))
            return -1;
        if (i != i0 + k) {
            for (k++; k < n; k++)   /* the rest must still be valid */
                if (!arg(t, x[k], &i, tape_op_name(op)))
                    return -1;
            return 0;
        }
    }
    return 1;
}

ad_var ad_sum(size_t n, const ad_var *x)
{
    ad_tape *t = active();
    size_t off;
    if (!t || !vec_check(t, n, x, x, OP_SUM))
        return BAD;
    if (n == 0)
        return ad_const(0.0);
    int contig = contiguous_args(t, n, x, OP_SUM);
    if (contig < 0)
        return BAD;
    size_t ne = contig ? 1 : n;
    if (!ext_reserve(t, ne, OP_SUM, &off) || !put_args(t, off, ne, x, OP_SUM))
        return BAD;
    const uint32_t *e = t->rec->ext + off;
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += t->val[contig ? e[0] + k : e[k]];
    t->rec->next = off + ne;
    return push(t, OP_SUM, (uint32_t)off, (uint32_t)n | (contig ? VEC_CONTIG : 0u), s);
}

ad_var ad_dot(size_t n, const ad_var *x, const double *c)
{
    ad_tape *t = active();
    size_t off;
    uint32_t k0 = 0;
    if (!t || !vec_check(t, n, x, c, OP_DOT))
        return BAD;
    if (n == 0)
        return ad_const(0.0);
    for (size_t k = 0; k < n; k++)
        if (!finite_arg(t, c[k], OP_DOT))
            return BAD;
    tape_rec *r = t->rec;
    if (r->ncst + n > UINT32_MAX) {
        fail(t, AD_ELIMIT, "dot", "constant pool exceeds 2^32 entries");
        return BAD;
    }
    if (!tape_grow((void **)&r->cst, &r->capcst, r->ncst + n, sizeof(double))) {
        fail(t, AD_ENOMEM, "dot", "out of memory");
        return BAD;
    }
    int contig = contiguous_args(t, n, x, OP_DOT);
    if (contig < 0)
        return BAD;
    size_t ne = contig ? 1 : n;
    if (!ext_reserve(t, ne + 1, OP_DOT, &off) || !put_args(t, off + 1, ne, x, OP_DOT))
        return BAD;
    k0 = (uint32_t)r->ncst;
    memcpy(r->cst + k0, c, n * sizeof *c);
    r->ncst += n;
    r->ext[off] = k0;
    const uint32_t *e = r->ext + off + 1;
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += c[k] * t->val[contig ? e[0] + k : e[k]];
    r->next = off + ne + 1;
    return push(t, OP_DOT, (uint32_t)off, (uint32_t)n | (contig ? VEC_CONTIG : 0u), s);
}

ad_var ad_dotv(size_t n, const ad_var *x, const ad_var *y)
{
    ad_tape *t = active();
    size_t off;
    if (!t || !vec_check(t, n, x, y, OP_DOTV))
        return BAD;
    if (n > UINT32_MAX / 2) {
        fail(t, AD_ELIMIT, "dotv", "length exceeds 2^31");
        return BAD;
    }
    if (n == 0)
        return ad_const(0.0);
    if (!ext_reserve(t, 2 * n, OP_DOTV, &off) || !put_args(t, off, n, x, OP_DOTV)
        || !put_args(t, off + n, n, y, OP_DOTV))
        return BAD;
    const uint32_t *e = t->rec->ext + off;
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += t->val[e[k]] * t->val[e[n + k]];
    t->rec->next = off + 2 * n;
    return push(t, OP_DOTV, (uint32_t)off, (uint32_t)n, s);
}

/* A matrix node: the header node, then m output nodes. */
static void rec_matrix(size_t m, size_t n, const double *A, const ad_csr *S,
                       const ad_var *x, ad_var *y, tape_op op)
{
    ad_tape *t = active();
    if (y)
        for (size_t i = 0; i < m; i++)
            y[i] = BAD;
    if (!t)
        return;
    if (!y || !x || (!A && !S) || m == 0 || n == 0) {
        fail(t, AD_EINVAL, tape_op_name(op), "NULL array or zero dimension");
        return;
    }
    if (m > UINT32_MAX || n > UINT32_MAX) {
        fail(t, AD_ELIMIT, tape_op_name(op), "dimension exceeds 2^32");
        return;
    }
    if (S) {
        if (!S->rowptr || !S->colind || !S->val || S->rowptr[0] != 0) {
            fail(t, AD_EINVAL, "spmv", "NULL CSR array or rowptr[0] != 0");
            return;
        }
        for (size_t i = 0; i < m; i++)
            if (S->rowptr[i + 1] < S->rowptr[i]) {
                fail(t, AD_EINVAL, "spmv", "rowptr is not monotone");
                return;
            }
        for (size_t k = 0; k < S->rowptr[m]; k++)
            if (S->colind[k] >= n) {
                fail(t, AD_EINVAL, "spmv", "a column index is >= n");
                return;
            }
    }
    tape_rec *r = t->rec;
    size_t off;
    if (!ext_reserve(t, n, op, &off) || !put_args(t, off, n, x, op))
        return;
    if (!tape_grow((void **)&r->mat, &r->capmat, r->nmat + 1, sizeof(tape_mat))) {
        fail(t, AD_ENOMEM, tape_op_name(op), "out of memory");
        return;
    }
    size_t need_nodes = r->n + m + 1;
    if (need_nodes > t->lim && !grow_nodes(t, need_nodes, op))
        return;
    r->next = off + n;
    tape_mat *d = &r->mat[r->nmat];
    memset(d, 0, sizeof *d);
    d->A = A;
    if (S)
        d->csr = *S;
    d->m = (uint32_t)m;
    d->n = (uint32_t)n;
    d->xoff = off;
    d->x0 = r->ext[off];
    d->contiguous = 1;
    for (size_t k = 1; k < n; k++)
        if (r->ext[off + k] != d->x0 + k) {
            d->contiguous = 0;
            break;
        }
    size_t need = S ? n + m : n;   /* gather x; spmv also stages y */
    if (need > r->max_scratch)
        r->max_scratch = need;   /* per lane: vector mode asks for more */
    if (!tape_buf(&t->scr, &t->capscr, r->max_scratch + 1)) {   /* as the drivers ask */
        fail(t, AD_ENOMEM, tape_op_name(op), "out of memory");
        return;
    }
    size_t h = r->n;
    ad_var hv = push(t, op, (uint32_t)r->nmat, 0, 0.0);
    if (!hv.rec)
        return;
    r->nmat++;
    for (size_t i = 0; i < m; i++) {
        ad_var v = push(t, OP_VOUT, (uint32_t)h, (uint32_t)i, 0.0);
        y[i] = v;
    }
    sweep_value_only(r, t->val, NULL, t->scr, NULL, h, h + 1);
    for (size_t i = 0; i < m; i++) {
        y[i].val = t->val[h + 1 + i];   /* pushed before the product was known */
        if (!isfinite(y[i].val))
            domain(t, op, h + 1 + i, y[i].val);
    }
}

void ad_matvec(size_t m, size_t n, const double *A, const ad_var *x, ad_var *y)
{
    rec_matrix(m, n, A, NULL, x, y, OP_MATVEC);
}

void ad_spmv(size_t m, size_t n, const ad_csr *A, const ad_var *x, ad_var *y)
{
    if (!A) {
        rec_matrix(m, n, NULL, NULL, x, y, OP_SPMV);
        return;
    }
    rec_matrix(m, n, NULL, A, x, y, OP_SPMV);
}

/* ---- recorded comparisons --------------------------------------------- */

static int rec_cmp(ad_var a, ad_var b, int le)
{
    ad_tape *t = active();
    uint32_t i, j;
    if (!t || !arg(t, a, &i, "comparison") || !arg(t, b, &j, "comparison"))
        return 0;
    double va = t->val[i], vb = t->val[j];
    int res = le ? va <= vb : va < vb;
    tape_rec *r = t->rec;
    if (!tape_grow((void **)&r->cmp, &r->capcmp, r->ncmp + 1, sizeof(tape_cmp))) {
        fail(t, AD_ENOMEM, "comparison", "out of memory");
        return res;
    }
    /* Store what held: a<b, or else b<=a; a<=b, or else b<a. */
    tape_cmp c;
    if (res)
        c = (tape_cmp){i, j, (uint8_t)(le ? CMP_LE : CMP_LT)};
    else
        c = (tape_cmp){j, i, (uint8_t)(le ? CMP_LT : CMP_LE)};
    r->cmp[r->ncmp++] = c;
    return res;
}

int ad_lt(ad_var a, ad_var b) { return rec_cmp(a, b, 0); }
int ad_le(ad_var a, ad_var b) { return rec_cmp(a, b, 1); }
int ad_gt(ad_var a, ad_var b) { return rec_cmp(b, a, 0); }
int ad_ge(ad_var a, ad_var b) { return rec_cmp(b, a, 1); }
