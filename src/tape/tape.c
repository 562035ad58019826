/* Tape storage: growth, handles, sharing, and the facts a user can ask. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tape/tape_internal.h"

/* Grows *p (capacity *cap elements of size elem) to hold need elements,
 * geometrically; on failure leaves the old block intact and returns 0.
 * Big blocks ask for transparent huge pages: on this VM a first touch of a
 * 4 KiB page costs ~10 µs, so a 2 MiB page saves ~500 faults. */
int tape_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 1;
    /* ×1.5: at most half the block is slack (×2 left up to 2× the tape's
     * size resident, and glibc keeps freed blocks under the benchmark's
     * malloc settings). */
    /* A first block is exact (sweep buffers after the optimizer); growth
     * from there is geometric. */
    size_t nc = *cap ? *cap : (need > 64 ? need : 64);
    while (nc < need) {
        if (nc > SIZE_MAX / 3)
            return 0;
        nc += nc / 2;
    }
    if (nc > SIZE_MAX / elem)
        return 0;
    size_t bytes = nc * elem;
    void *q;
    if (bytes >= (4u << 20)) {
        q = NULL;
        if (posix_memalign(&q, (size_t)2 << 20, bytes) != 0)
            return 0;
        madvise(q, bytes, MADV_HUGEPAGE);
        if (*p && *cap)
            memcpy(q, *p, *cap * elem);
        free(*p);
    } else {
        q = realloc(*p, bytes);
        if (!q)
            return 0;
    }
    *p = q;
    *cap = nc;
    return 1;
}

/* A block for a big one-off array (optimizer, statements): huge pages for
 * blocks of 4 MiB and more, like tape_grow.  zero: cleared.  Freed by free(). */
void *tape_alloc(size_t bytes, int zero)
{
    if (bytes < (4u << 20))
        return zero ? calloc(1, bytes) : malloc(bytes);
    void *q = NULL;
    if (posix_memalign(&q, (size_t)2 << 20, bytes) != 0)
        return NULL;
    madvise(q, bytes, MADV_HUGEPAGE);
    if (zero)
        memset(q, 0, bytes);
    return q;
}

int tape_buf(double **p, size_t *cap, size_t need)
{
    return tape_grow((void **)p, cap, need, sizeof(double));
}

/* A sweep buffer: scratch sized exactly to the recording (contents are not
 * kept when it grows, so no slack and no copy). */
int tape_scratch(double **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 1;
    if (need > SIZE_MAX / sizeof(double))
        return 0;
    double *q = tape_alloc(need * sizeof *q, 0);
    if (!q)
        return 0;
    free(*p);
    *p = q;
    *cap = need;
    return 1;
}

ad_status tape_set_error(ad_tape *t, ad_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
    return s;
}

uint32_t tape_next_id(void)
{
    static atomic_uint next = 1;
    uint32_t id;
    do
        id = atomic_fetch_add(&next, 1u);
    while (id == 0);   /* 0 marks an invalid var */
    return id;
}

tape_rec *tape_rec_new(void)
{
    tape_rec *r = calloc(1, sizeof *r);
    if (r)
        atomic_init(&r->refs, 1);
    return r;
}

static void rec_free(tape_rec *r)
{
    free(r->op); free(r->a); free(r->b);
    free(r->cst); free(r->ext); free(r->mat); free(r->cmp); free(r->in); free(r->cf);
    free(r);
}

void tape_rec_release(tape_rec *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        rec_free(r);
}

/* The tangent and adjoint-tangent buffers, one block of 2·need doubles:
 * scratch between calls, so growth does not copy, and the statement builder
 * borrows the block (16 bytes per node) for its leaf sets. */
int tape_dots(ad_tape *t, size_t need)
{
    if (need <= t->capdot)
        return 1;
    size_t cap = need;   /* exact: sized to the recording, no growth slack */
    if (cap > SIZE_MAX / 16)
        return 0;
    double *p = tape_alloc(2 * cap * sizeof *p, 0);
    if (!p)
        return 0;
    free(t->dot);
    t->dot = p;
    t->adot = p + cap;
    t->capdot = cap;
    return 1;
}

/* Sets the sweep range once a recording is complete: the output, every
 * input and every compared node. */
void tape_rec_finish(tape_rec *r, int in_order)
{
    size_t end = (size_t)r->out + 1;
    uint32_t in0 = r->nin ? r->in[0] : 0, hi = 0, gap = 0;
    if (in_order && r->nin) {
        /* in[] increases: its last entry is the highest, and it is
         * consecutive exactly when it spans nin nodes.  No pass over it. */
        hi = r->in[r->nin - 1];
        gap = hi - in0 != (uint32_t)(r->nin - 1);
    } else {
        /* One branch-free pass: the last input node, and whether the
         * inputs are consecutive nodes. */
        for (size_t j = 0; j < r->nin; j++) {
            uint32_t v = r->in[j];
            gap |= v ^ (in0 + (uint32_t)j);
            hi = v > hi ? v : hi;
        }
    }
    if (r->nin && (size_t)hi + 1 > end)
        end = (size_t)hi + 1;
    /* Compared nodes may come after the output: replays must value them. */
    for (size_t k = 0; k < r->ncmp; k++) {
        size_t m = (r->cmp[k].a > r->cmp[k].b ? r->cmp[k].a : r->cmp[k].b) + (size_t)1;
        if (m > end)
            end = m;
    }
    /* A matrix node writes and reads its whole output block: when the last
     * node swept is one of its outputs, the block's end is the sweep's. */
    if (end > 0 && r->op[end - 1] == OP_VOUT) {
        uint32_t h = r->a[end - 1];
        size_t m = (size_t)h + 1 + r->mat[r->a[h]].m;
        if (m > end)
            end = m;
    }
    r->end = end;
    r->in_contig = r->nin > 0 && gap == 0;
    /* Leading inputs: nodes 0, 1, … holding inputs 0, 1, … in order.  Input
     * j's node has a = j (record and optimizer alike), so consecutive inputs
     * from node 0 lead, all of them. */
    size_t p = 0;
    if (r->in_contig && in0 == 0)
        p = r->nin < end ? r->nin : end;
    else
        while (p < end && r->op[p] == OP_INPUT && r->a[p] == p)
            p++;
    r->nlead = p;
}

const char *tape_op_name(tape_op op)
{
    switch (op) {
    case OP_INPUT: return "input";
    case OP_CONST: return "const";
#define X_NAME1(N, n, k, c) case OP_##N: return #n;
#define X_NAME2(N, n, c) case OP_##N: return #n;
    TAPE_UNARY_OPS(X_NAME1)
    TAPE_BINARY_OPS(X_NAME2)
#undef X_NAME1
#undef X_NAME2
    case OP_SUM: return "sum";
    case OP_DOT: return "dot";
    case OP_DOTV: return "dotv";
    case OP_MATVEC: return "matvec";
    case OP_SPMV: return "spmv";
    case OP_VOUT: return "matrix output";
    case OP_COUNT: break;
    }
    return "?";
}

ad_tape *ad_tape_new(void)
{
    ad_tape *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->rec = tape_rec_new();
    if (!t->rec) {
        free(t);
        return NULL;
    }
    t->max_ops = (size_t)UINT32_MAX - 1;
    const char *e = getenv("HYPERAD_OPTIMIZE");
    t->optimize = !(e && e[0] == '0');
    e = getenv("HYPERAD_PREACC");
    t->preacc = !(e && e[0] == '0');
    e = getenv("HYPERAD_THREADS");
    t->nthreads = 1;
    if (e && *e)
        ad_tape_set_threads(t, (unsigned)strtoul(e, NULL, 10));
    return t;
}

/* Optimizes t's recording if it is due: once per recording, before its first
 * sweep.  Shared recordings were optimized before they were shared.  Out of
 * memory leaves the raw recording in place (slower, still right). */
/* Carry flags for the reverse sweeps (sweep.c), made once per recording
 * before its first sweep (and before it is shared: a shared recording is
 * never written).  Without memory for them the sweeps carry nothing. */
static void carry_ready(tape_rec *r)
{
    if (r->complete && !r->cf_done) {
        r->cf = sweep_carry_flags(r);
        r->cf_done = 1;   /* tried: never written again once shared */
    }
}

ad_status tape_ready(ad_tape *t)
{
    tape_rec *r = t->rec;
    if (r->optimized || !t->optimize || !r->complete) {
        carry_ready(r);
        return AD_OK;
    }
    /* The value buffer is dropped below anyway: lend it as scratch. */
    tape_rec *o = tape_optimize(r, t->val, t->capval * sizeof *t->val);
    if (!o) {
        r->optimized = 1;
        t->val_ok = t->adj_ok = 0;   /* its scratch was the value buffer */
        carry_ready(r);
        return AD_OK;
    }
    o->id = r->id;
    t->rec = o;
    tape_rec_release(r);
    t->val_ok = t->adj_ok = 0;
    t->dc_ok = 0;
    /* The value buffer grew with the raw recording and holds nothing of use
     * now: let the sweeps allocate it at the optimized size (peak memory). */
    free(t->val);
    t->val = NULL;
    t->capval = 0;
    carry_ready(o);
    return AD_OK;
}

ad_status ad_tape_set_optimize(ad_tape *t, int on)
{
    if (!t)
        return AD_EINVAL;
    t->optimize = on != 0;
    return AD_OK;
}

ad_status ad_tape_set_threads(ad_tape *t, unsigned nthreads)
{
    if (!t)
        return AD_EINVAL;
    if (nthreads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = c > 0 ? (unsigned)c : 1u;
    }
    t->nthreads = nthreads < 64 ? nthreads : 64;   /* split()'s job table */
    return AD_OK;
}

ad_status ad_tape_set_preaccumulate(ad_tape *t, int on)
{
    if (!t)
        return AD_EINVAL;
    t->preacc = on != 0;
    return AD_OK;
}

ad_status ad_tape_optimize(ad_tape *t)
{
    if (!t)
        return AD_EINVAL;
    if (t->recording || !t->rec->complete)
        return tape_set_error(t, AD_ESTATE, "ad_tape_optimize: the tape holds no complete recording");
    if (t->err)
        return t->err;
    return tape_ready(t);
}

void ad_tape_free(ad_tape *t)
{
    if (!t)
        return;
    if (tape_active == t)
        tape_active = NULL;
    tape_rec_release(t->rec);
    free(t->val); free(t->adj); free(t->dot); free(t->e12);   /* adot lives in dot's block */
    free(t->dotk); free(t->adotk); free(t->scr); free(t->xc); free(t->dc);
    tape_stmts_free(&t->st);
    for (unsigned k = 0; k < t->nworkers; k++)
        ad_tape_free(t->workers[k]);
    free(t->workers);
    free(t);
}

ad_tape *ad_tape_share(const ad_tape *t)
{
    if (!t || t->recording || !t->rec || !t->rec->complete || t->err)
        return NULL;
    /* A shared recording is immutable: optimize it first.  t is logically
     * const (same function, same results). */
    tape_ready((ad_tape *)t);
    ad_tape *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_fetch_add(&t->rec->refs, 1);
    s->rec = t->rec;
    s->max_ops = t->max_ops;
    s->optimize = t->optimize;
    s->nthreads = 1;
    s->preacc = t->preacc;
    s->fn = t->fn;
    s->fn_ctx = t->fn_ctx;
    return s;
}

size_t ad_tape_ninputs(const ad_tape *t)
{
    return (t && t->rec && t->rec->complete) ? t->rec->nin : 0;
}

size_t ad_tape_nops(const ad_tape *t)
{
    return (t && t->rec) ? t->rec->n : 0;
}

double ad_tape_bytes_per_op(const ad_tape *t)
{
    if (!t || !t->rec || t->rec->n == 0)
        return 0.0;
    const tape_rec *r = t->rec;
    double bytes = (double)r->n * (1 + 4 + 4 + 8)   /* op, a, b, value */
                 + (double)r->ncst * 8 + (double)r->next * 4
                 + (double)r->nmat * sizeof(tape_mat) + (double)r->ncmp * sizeof(tape_cmp)
                 + (double)r->nin * 4;
    return bytes / (double)r->n;
}

size_t ad_tape_memory(const ad_tape *t)
{
    if (!t)
        return 0;
    size_t s = sizeof *t;
    const tape_rec *r = t->rec;
    if (r)
        s += sizeof *r + r->cap * 9 + r->capcst * 8 + r->capext * 4 + (r->cf ? r->end + 1 : 0)
           + r->capmat * sizeof(tape_mat) + r->capcmp * sizeof(tape_cmp) + r->capin * 4;
    const tape_stmts *st = &t->st;
    if (st->built)
        s += 5 * st->nent + 5 * st->ntm + 10 * st->nst + 4 * (st->nleaf + st->nst)
           + st->ngrp + 4 * st->ngleaf + 12 * st->ninner + 8 * st->ngh;
    s += 8 * (t->capval + t->capadj + 2 * t->capdot + t->cape12
              + t->capdotk + t->capadotk + t->capscr + t->capxc + t->capdc);
    return s;
}

ad_status ad_tape_set_max_ops(ad_tape *t, size_t max_ops)
{
    if (!t || max_ops == 0)
        return AD_EINVAL;
    t->max_ops = max_ops < (size_t)UINT32_MAX - 1 ? max_ops : (size_t)UINT32_MAX - 1;
    if (t->lim > t->max_ops)
        t->lim = t->max_ops;   /* takes effect within a running recording too */
    return AD_OK;
}

const char *ad_tape_errmsg(const ad_tape *t)
{
    return t ? t->msg : "";
}
