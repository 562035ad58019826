/*
 * The tape optimizer, run once per recording before its first sweep.
 *
 *  1. Peephole rewrites that expose linear structure:
 *       mul(a, a) → sqr(a);  mul(a, c), mul(c, a) → mulc;  add(a, c) → addc;
 *       sub(a, c) → addc(a, −c);  sub(c, a) → csub   (c a constant node).
 *  2. Liveness from the output and the recorded comparisons: dead nodes go.
 *  3. Every maximal tree of single-use linear nodes (add, sub, neg, addc,
 *     mulc, csub, sum, dot) becomes one sum or dot node over its leaves,
 *     constants folded into one constant leaf.  The logistic loss written
 *     op by op (≈ 2·10⁶ nodes) becomes ≈ 4·10⁴, and its sweeps dot products.
 *  5. Deep tapes are emitted level by level (schedule below).
 *  4. Squared residuals fuse: sqr(sub(a, b)) → sqdiff(a, b); sqr(addc(a, c))
 *     → sqaddc(a, c); sqr(csub(c, a)) → sqaddc(a, −c); sqr(neg(a)) → sqr(a)
 *     (the inner node single-use, its arguments not collapsed).  Same bits
 *     in every sweep; one node instead of two (Rosenbrock: 4 nodes a term
 *     instead of 6).
 *
 * Exact for derivatives of every order: a linear tree's partials are
 * products of its coefficients.  Values may differ from the raw tape in the
 * last bit where the rewrite reassociates a sum or multiplies two
 * coefficients (the tests compare both tapes).
 */
#include <stdlib.h>
#include <string.h>

#include "tape/tape_internal.h"

enum { F_LIVE = 1, F_EXT = 2, F_LINUSER = 4, F_ABSORB = 8, F_FUSED = 16 };

static int is_linear(tape_op op)
{
    switch (op) {
    case OP_ADD: case OP_SUB: case OP_NEG: case OP_ADDC: case OP_MULC:
    case OP_CSUB: case OP_SUM: case OP_DOT:
        return 1;
    default:
        return 0;
    }
}

/* Appends c to the pool; UINT32_MAX on failure. */
static uint32_t pool_add(tape_rec *r, double c)
{
    if (r->ncst >= UINT32_MAX - 1 || !tape_grow((void **)&r->cst, &r->capcst, r->ncst + 1, sizeof(double)))
        return UINT32_MAX;
    r->cst[r->ncst] = c;
    return (uint32_t)r->ncst++;
}

/* 1. Peephole rewrites, in place on the raw recording (each keeps it valid). */
static int rewrite(tape_rec *r)
{
    uint8_t *op = r->op;
    uint32_t *A = r->a, *B = r->b;
    for (size_t i = 0; i < r->n; i++) {
        tape_op o = (tape_op)op[i];
        if (o != OP_MUL && o != OP_ADD && o != OP_SUB)
            continue;
        uint32_t a = A[i], b = B[i];
        int ca = op[a] == OP_CONST, cb = op[b] == OP_CONST;
        switch (o) {
        case OP_MUL:
            if (a == b) {
                op[i] = OP_SQR;
            } else if (cb) {
                op[i] = OP_MULC; B[i] = A[b];
            } else if (ca) {
                op[i] = OP_MULC; A[i] = b; B[i] = A[a];
            }
            break;
        case OP_ADD:
            if (cb) {
                op[i] = OP_ADDC; B[i] = A[b];
            } else if (ca) {
                op[i] = OP_ADDC; A[i] = b; B[i] = A[a];
            }
            break;
        case OP_SUB:
            if (cb) {
                uint32_t k = pool_add(r, -r->cst[A[b]]);
                if (k == UINT32_MAX)
                    return 0;
                op[i] = OP_ADDC; B[i] = k;
            } else if (ca) {
                op[i] = OP_CSUB; A[i] = b; B[i] = A[a];
            }
            break;
        default:
            break;
        }
    }
    return 1;
}

/* 2. Liveness, use counts (saturating at 2) and who uses single-use nodes. */
static void mark(const tape_rec *r, uint8_t *fl, uint8_t *uses)
{
    fl[r->out] |= F_LIVE | F_EXT;
    for (size_t j = 0; j < r->nin; j++)
        fl[r->in[j]] |= F_LIVE | F_EXT;   /* inputs stay, used or not */
    for (size_t k = 0; k < r->ncmp; k++) {
        fl[r->cmp[k].a] |= F_LIVE | F_EXT;
        fl[r->cmp[k].b] |= F_LIVE | F_EXT;
    }
#define USE(j, lin)                                                     \
    do {                                                                \
        uint32_t j_ = (j);                                              \
        fl[j_] |= F_LIVE | ((lin) ? F_LINUSER : 0);                     \
        if (uses[j_] < 2) uses[j_]++;                                   \
    } while (0)
    for (size_t i = r->n; i-- > 0;) {
        if (!(fl[i] & F_LIVE))
            continue;
        tape_op op = (tape_op)r->op[i];
        int lin = is_linear(op);
        uint32_t a = r->a[i], b = r->b[i];
        switch (op) {
        case OP_INPUT: case OP_CONST: case OP_COUNT:
            break;
#define MK_U(N, n, K, C) case OP_##N:
        TAPE_UNARY_OPS(MK_U)
            USE(a, lin);
            break;
#define MK_B(N, n, C) case OP_##N:
        TAPE_BINARY_OPS(MK_B)
            USE(a, lin);
            USE(b, lin);
            break;
        case OP_SUM:
        case OP_DOT: {
            vec_args g = vec_view(r, op == OP_DOT, a, b);
            for (uint32_t k = 0; k < g.n; k++) USE(vec_arg(&g, k), 1);
            break;
        }
        case OP_DOTV:
            for (uint32_t k = 0; k < 2 * b; k++) USE(r->ext[a + k], 0);
            break;
        case OP_MATVEC: case OP_SPMV: {
            const tape_mat *d = &r->mat[a];
            for (uint32_t k = 0; k < d->n; k++) USE(r->ext[d->xoff + k], 0);
            break;
        }
        case OP_VOUT:
            fl[a] |= F_LIVE;   /* the header writes every output */
            break;
        }
    }
#undef USE
    for (size_t i = 0; i < r->n; i++)
        if ((fl[i] & (F_LIVE | F_EXT | F_LINUSER)) == (F_LIVE | F_LINUSER) && uses[i] == 1
            && is_linear((tape_op)r->op[i]))
            fl[i] |= F_ABSORB;
    /* 4. The argument of a sqr that the sqr may swallow. */
    for (size_t i = 0; i < r->n; i++) {
        if (r->op[i] != OP_SQR || !(fl[i] & F_LIVE))
            continue;
        uint32_t a = r->a[i];
        tape_op oa = (tape_op)r->op[a];
        if (uses[a] != 1 || (fl[a] & F_EXT)
            || (oa != OP_SUB && oa != OP_ADDC && oa != OP_CSUB && oa != OP_NEG)
            || (fl[r->a[a]] & F_ABSORB) || (oa == OP_SUB && (fl[r->b[a]] & F_ABSORB)))
            continue;
        fl[a] |= F_FUSED;
    }
}

typedef struct opt_state {
    const tape_rec *r;
    const uint8_t *fl;
    uint32_t *map;          /* old node -> new node */
    tape_rec *o;
    /* term buffers for one linear tree */
    uint32_t *tn; double *tc; size_t nt, capt;
    uint32_t *sn; double *sc; size_t ns, caps;
    int oom;
} opt_state;

static uint32_t emit(opt_state *s, tape_op op, uint32_t a, uint32_t b)
{
    tape_rec *o = s->o;
    size_t c1 = o->cap, c2 = o->cap, c3 = o->cap;
    if (o->n >= o->cap
        && (!tape_grow((void **)&o->op, &c1, o->n + 1, 1) || !tape_grow((void **)&o->a, &c2, o->n + 1, 4)
            || !tape_grow((void **)&o->b, &c3, o->n + 1, 4))) {
        s->oom = 1;
        return 0;
    }
    if (o->n >= o->cap)
        o->cap = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);
    o->op[o->n] = (uint8_t)op;
    o->a[o->n] = a;
    o->b[o->n] = b;
    return (uint32_t)o->n++;
}

static size_t ext_add(opt_state *s, size_t k)
{
    tape_rec *o = s->o;
    if (!tape_grow((void **)&o->ext, &o->capext, o->next + k, sizeof(uint32_t))) {
        s->oom = 1;
        return 0;
    }
    size_t off = o->next;
    o->next += k;
    return off;
}

/* Grows two parallel arrays to one capacity. */
static int grow_pair(void **p, void **q, size_t *cap, size_t need, size_t ep, size_t eq)
{
    if (need <= *cap)
        return 1;
    size_t c1 = *cap, c2 = *cap;
    if (!tape_grow(p, &c1, need, ep) || !tape_grow(q, &c2, need, eq))
        return 0;
    *cap = c1 < c2 ? c1 : c2;
    return 1;
}

static void add_term(opt_state *s, uint32_t newnode, double c)
{
    if (!grow_pair((void **)&s->tn, (void **)&s->tc, &s->capt, s->nt + 1, sizeof *s->tn, sizeof *s->tc)) {
        s->oom = 1;
        return;
    }
    s->tn[s->nt] = newnode;
    s->tc[s->nt] = c;
    s->nt++;
}

static void term(opt_state *s, uint32_t node, double c, double *k0)
{
    if (s->r->op[node] == OP_CONST)
        *k0 += c * s->r->cst[s->r->a[node]];
    else
        add_term(s, s->map[node], c);
}

static void push(opt_state *s, uint32_t node, double c)
{
    if (!grow_pair((void **)&s->sn, (void **)&s->sc, &s->caps, s->ns + 1, sizeof *s->sn, sizeof *s->sc)) {
        s->oom = 1;
        return;
    }
    s->sn[s->ns] = node;
    s->sc[s->ns] = c;
    s->ns++;
}

/* Children of linear node j (coefficient c), pushed right to left so they
 * pop left to right: the collapsed sum keeps the recorded order. */
static void children(opt_state *s, uint32_t j, double c, double *k0)
{
    const tape_rec *r = s->r;
    uint32_t a = r->a[j], b = r->b[j];
    switch ((tape_op)r->op[j]) {
    case OP_ADD:  push(s, b, c); push(s, a, c); break;
    case OP_SUB:  push(s, b, -c); push(s, a, c); break;
    case OP_NEG:  push(s, a, -c); break;
    case OP_ADDC: *k0 += c * r->cst[b]; push(s, a, c); break;
    case OP_MULC: push(s, a, c * r->cst[b]); break;
    case OP_CSUB: *k0 += c * r->cst[b]; push(s, a, -c); break;
    case OP_SUM:
    case OP_DOT: {
        vec_args g = vec_view(r, r->op[j] == OP_DOT, a, b);
        for (uint32_t k = g.n; k-- > 0;) push(s, vec_arg(&g, k), g.c ? c * g.c[k] : c);
        break;
    }
    default:
        break;
    }
}

/* Emits the collapsed tree rooted at j; returns its new node. */
static uint32_t collapse(opt_state *s, uint32_t j)
{
    double k0 = 0.0;
    s->nt = s->ns = 0;
    children(s, j, 1.0, &k0);
    while (s->ns && !s->oom) {
        s->ns--;
        uint32_t u = s->sn[s->ns];
        double c = s->sc[s->ns];
        if (s->fl[u] & F_ABSORB)
            children(s, u, c, &k0);
        else
            term(s, u, c, &k0);
    }
    if (s->oom)
        return 0;
    tape_rec *o = s->o;
    if (k0 != 0.0 || s->nt == 0) {
        uint32_t k = pool_add(o, k0);
        if (k == UINT32_MAX) {
            s->oom = 1;
            return 0;
        }
        uint32_t cn = emit(s, OP_CONST, k, 0);
        if (s->nt == 0)
            return cn;
        add_term(s, cn, 1.0);
        if (s->oom)
            return 0;
    }
    if (s->nt == 1 && s->tc[0] == 1.0)
        return s->tn[0];      /* the tree was the identity on one leaf */
    /* a + b and a − b: a binary node sweeps faster than a sum of two */
    if (s->nt == 2 && s->tc[0] == 1.0 && s->tc[1] == 1.0)
        return emit(s, OP_ADD, s->tn[0], s->tn[1]);
    if (s->nt == 2 && s->tc[0] == 1.0 && s->tc[1] == -1.0)
        return emit(s, OP_SUB, s->tn[0], s->tn[1]);
    if (s->nt == 2 && s->tc[0] == -1.0 && s->tc[1] == 1.0)
        return emit(s, OP_SUB, s->tn[1], s->tn[0]);
    int unit = 1;
    for (size_t k = 0; k < s->nt; k++)
        unit &= s->tc[k] == 1.0;
    if (s->nt >= VEC_CONTIG) {
        s->oom = 1;
        return 0;
    }
    int contig = 1;
    for (size_t k = 1; k < s->nt && contig; k++)
        contig = s->tn[k] == s->tn[0] + k;
    size_t nidx = contig ? 1 : s->nt;
    uint32_t cnt = (uint32_t)s->nt | (contig ? VEC_CONTIG : 0u);
    size_t off = ext_add(s, nidx + (unit ? 0 : 1));
    if (s->oom)
        return 0;
    if (unit) {
        memcpy(o->ext + off, s->tn, nidx * sizeof *s->tn);
        return emit(s, OP_SUM, (uint32_t)off, cnt);
    }
    if (o->ncst + s->nt >= UINT32_MAX
        || !tape_grow((void **)&o->cst, &o->capcst, o->ncst + s->nt, sizeof(double))) {
        s->oom = 1;
        return 0;
    }
    o->ext[off] = (uint32_t)o->ncst;
    memcpy(o->cst + o->ncst, s->tc, s->nt * sizeof *s->tc);
    o->ncst += s->nt;
    memcpy(o->ext + off + 1, s->tn, nidx * sizeof *s->tn);
    return emit(s, OP_DOT, (uint32_t)off, cnt);
}

/* Unary ops whose b is an index into the constant pool. */
static int has_cst(tape_op op)
{
    switch (op) {
#define HC_NOC 0
#define HC_CST 1
#define HC_INT 0
#define X_HC(N, n, K, C) case OP_##N: return HC_##K;
    TAPE_UNARY_OPS(X_HC)
#undef X_HC
    default:
        return 0;
    }
}

/* c in the new pool; its index. */
static uint32_t new_const(opt_state *s, double c)
{
    uint32_t k = pool_add(s->o, c);
    if (k == UINT32_MAX)
        s->oom = 1;
    return k;
}

/* Copies a list of k old nodes into the new ext, remapped. */
static size_t copy_list(opt_state *s, const uint32_t *src, size_t k)
{
    size_t off = ext_add(s, k);
    if (!s->oom)
        for (size_t q = 0; q < k; q++)
            s->o->ext[off + q] = s->map[src[q]];
    return off;
}

/* 5. The emission order.  A tape whose longest dependency path is long
 * (a chain of ops, each waiting on the one before, as in a time-stepping
 * loop or a deep recurrence run from many starting points) sweeps at the
 * latency of one op per node, whatever the CPU could overlap.  Emitting
 * nodes by depth (the longest path from an input; stable within a depth)
 * puts independent chains side by side: a level's nodes do not depend on
 * each other, so the CPU overlaps them, and they repeat one op, which the
 * branch predictor likes.  Any depth order is topological, so nothing else
 * changes.  Shallow tapes (sums of short expressions: Rosenbrock has depth
 * 3) keep the recorded order, which keeps a sum's terms next to each other.
 * Returns the order (NULL: the recorded one; or out of memory). */
enum { SCHED_MIN_DEPTH = 64 };

static uint32_t *schedule(const tape_rec *r, const uint8_t *fl)
{
    size_t n = r->n;
    uint32_t *depth = tape_alloc((n + 1) * sizeof *depth, 0), maxd = 0;
    if (!depth)
        return NULL;
    /* Depth of the tape the optimizer emits: a node collapsed or fused into
     * its user adds no level (the linear chain f = f + term of a recorded
     * sum is one dot node once emitted, not 10⁶ levels). */
#define DEP(j) do { if (depth[j] + inc > d) d = depth[j] + inc; } while (0)
    for (size_t i = 0; i < n; i++) {
        uint32_t a = r->a[i], b = r->b[i], d = 0;
        uint32_t inc = (fl[i] & (F_ABSORB | F_FUSED)) ? 0 : 1;
        switch ((tape_op)r->op[i]) {
        case OP_INPUT: case OP_CONST: case OP_COUNT:
            break;
        case OP_VOUT:
            d = depth[a];   /* an output of the matrix node a, emitted with it */
            break;
#define SD_U(N, n_, K, C) case OP_##N:
        TAPE_UNARY_OPS(SD_U)
#undef SD_U
            DEP(a);
            break;
#define SD_B(N, n_, C) case OP_##N:
        TAPE_BINARY_OPS(SD_B)
#undef SD_B
            DEP(a);
            DEP(b);
            break;
        case OP_SUM:
        case OP_DOT: {
            vec_args g = vec_view(r, r->op[i] == OP_DOT, a, b);
            for (uint32_t k = 0; k < g.n; k++) DEP(vec_arg(&g, k));
            break;
        }
        case OP_DOTV:
            for (size_t k = 0; k < 2 * (size_t)b; k++) DEP(r->ext[a + k]);
            break;
        case OP_MATVEC:
        case OP_SPMV: {
            const tape_mat *m = &r->mat[a];
            for (size_t k = 0; k < m->n; k++) DEP(r->ext[m->xoff + k]);
            break;
        }
        }
#undef DEP
        depth[i] = d;
        if (d > maxd)
            maxd = d;
    }
    if (maxd < SCHED_MIN_DEPTH) {
        free(depth);
        return NULL;
    }
    /* counting sort by depth, stable */
    size_t *start = calloc((size_t)maxd + 2, sizeof *start);
    uint32_t *order = start ? tape_alloc((n + 1) * sizeof *order, 0) : NULL;
    if (!order) {
        free(start);
        free(depth);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        start[depth[i] + 1]++;
    for (uint32_t d = 0; d <= maxd; d++)
        start[d + 1] += start[d];
    for (size_t i = 0; i < n; i++)
        order[start[depth[i]]++] = (uint32_t)i;
    free(start);
    free(depth);
    return order;
}

/* sqr of the swallowed node u (see mark): one fused node. */
static uint32_t emit_fused(opt_state *s, uint32_t u)
{
    const tape_rec *r = s->r;
    uint32_t a = s->map[r->a[u]];
    switch ((tape_op)r->op[u]) {
    case OP_SUB:  return emit(s, OP_SQDIFF, a, s->map[r->b[u]]);
    case OP_ADDC: return emit(s, OP_SQADDC, a, new_const(s, r->cst[r->b[u]]));
    case OP_CSUB: return emit(s, OP_SQADDC, a, new_const(s, -r->cst[r->b[u]]));
    default:      return emit(s, OP_SQR, a, 0);   /* OP_NEG */
    }
}

tape_rec *tape_optimize(const tape_rec *raw_const, void *scratch, size_t scratch_bytes)
{
    tape_rec *r = (tape_rec *)raw_const;
    size_t n = r->n;
    /* flags (2 bytes a node) and the renumbering (4): in the caller's dead
     * scratch when it is big enough (peak memory), else our own. */
    size_t need = 6 * (n ? n : 1) + 4;   /* + the map's alignment */
    int own = !scratch || scratch_bytes < need;
    uint8_t *fl = own ? tape_alloc(2 * (n ? n : 1), 1) : memset(scratch, 0, 2 * (n ? n : 1));
    uint32_t *map = own ? tape_alloc((n ? n : 1) * sizeof *map, 0)
                        : (uint32_t *)((char *)scratch + 2 * (n ? n : 1) + (4 - (2 * (n ? n : 1)) % 4) % 4);
    tape_rec *o = tape_rec_new();
    opt_state s = {0};
    if (!fl || !map || !o || !rewrite(r))
        goto fail;
    uint8_t *uses = fl + n;
    mark(r, fl, uses);
    s.r = r; s.fl = fl; s.map = map; s.o = o;
    o->id = r->id;
    /* The new pool holds only what emitted ops use (constants a collapse
     * folded away, e.g. every mulc of the logistic loss, stay behind). */

    uint32_t *order = schedule(r, fl);
    for (size_t q = 0; q < n && !s.oom; q++) {
        size_t i = order ? order[q] : q;
        if (!(fl[i] & F_LIVE) || (fl[i] & (F_ABSORB | F_FUSED)))
            continue;
        tape_op op = (tape_op)r->op[i];
        uint32_t a = r->a[i], b = r->b[i];
        switch (op) {
        case OP_VOUT:
        case OP_COUNT:
            break;   /* emitted with their header */
        case OP_INPUT:
            map[i] = emit(&s, op, a, 0);
            break;
        case OP_CONST:
            map[i] = emit(&s, op, new_const(&s, r->cst[a]), 0);
            break;
#define EM_U(N, n, K, C) case OP_##N:
        TAPE_UNARY_OPS(EM_U)
            if (op == OP_SQR && (fl[a] & F_FUSED))
                map[i] = emit_fused(&s, a);
            else if (is_linear(op) && (fl[a] & F_ABSORB))
                map[i] = collapse(&s, (uint32_t)i);
            else
                map[i] = emit(&s, op, map[a], has_cst(op) ? new_const(&s, r->cst[b])
                                              : TAPE_CACHED_OP(op) ? (uint32_t)o->ndc++ : b);
            break;
#define EM_B(N, n, C) case OP_##N:
        TAPE_BINARY_OPS(EM_B)
            if (is_linear(op) && ((fl[a] | fl[b]) & F_ABSORB))
                map[i] = collapse(&s, (uint32_t)i);
            else
                map[i] = emit(&s, op, map[a], map[b]);
            break;
        case OP_SUM:
        case OP_DOT:
            /* Absorbing or not, re-emit through collapse(): it folds
             * constant arguments and marks consecutive arguments. */
            map[i] = collapse(&s, (uint32_t)i);
            break;
        case OP_DOTV:
            map[i] = emit(&s, OP_DOTV, (uint32_t)copy_list(&s, r->ext + a, 2 * (size_t)b), b);
            break;
        case OP_MATVEC:
        case OP_SPMV: {
            const tape_mat *d = &r->mat[a];
            if (!tape_grow((void **)&o->mat, &o->capmat, o->nmat + 1, sizeof(tape_mat))) {
                s.oom = 1;
                break;
            }
            tape_mat *nd = &o->mat[o->nmat];
            *nd = *d;
            nd->xoff = copy_list(&s, r->ext + d->xoff, d->n);
            if (s.oom)
                break;
            nd->x0 = o->ext[nd->xoff];
            nd->contiguous = 1;
            for (uint32_t k = 1; k < d->n; k++)
                if (o->ext[nd->xoff + k] != nd->x0 + k) {
                    nd->contiguous = 0;
                    break;
                }
            map[i] = emit(&s, op, (uint32_t)o->nmat++, 0);
            for (uint32_t k = 0; k < d->m; k++)
                map[i + 1 + k] = emit(&s, OP_VOUT, map[i], k);
            break;
        }
        }
    }
    free(order);
    if (s.oom)
        goto fail;
    if (!tape_grow((void **)&o->in, &o->capin, r->nin + 1, sizeof(uint32_t))
        || (r->ncmp && !tape_grow((void **)&o->cmp, &o->capcmp, r->ncmp, sizeof(tape_cmp))))
        goto fail;
    for (size_t j = 0; j < r->nin; j++)
        o->in[j] = map[r->in[j]];
    o->nin = r->nin;
    for (size_t k = 0; k < r->ncmp; k++)
        o->cmp[k] = (tape_cmp){map[r->cmp[k].a], map[r->cmp[k].b], r->cmp[k].kind};
    o->ncmp = r->ncmp;
    o->out = map[r->out];
    o->has_out = 1;
    o->complete = 1;
    o->optimized = 1;
    tape_rec_finish(o, 0);
    o->max_scratch = r->max_scratch;
    if (own) {
        free(fl);
        free(map);
    }
    free(s.tn); free(s.tc); free(s.sn); free(s.sc);
    return o;
fail:
    if (own) {
        free(fl);
        free(map);
    }
    free(s.tn); free(s.tc); free(s.sn); free(s.sc);
    tape_rec_release(o);
    return NULL;
}
