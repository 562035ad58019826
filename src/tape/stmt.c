/*
 * Preaccumulated statements, for repeated HVPs at one x (the CG regime).
 *
 * A statement is a maximal tree of single-use scalar nodes: its root is a
 * scalar node used more than once, used by a vector node, or the output;
 * its leaves are the nodes it reads that are not inside it (inputs, other
 * roots, vector nodes), at most STMT_K of them (a tree with more is cut at
 * its root's arguments, which become roots of their own).  At a point x
 * each statement gets its local gradient g (k values) and local Hessian H
 * (k(k+1)/2 values) with respect to its leaves, so an HVP at the same x
 * sweeps statements, not ops:
 *   forward:  ṙ = Σ g_j L̇_j
 *   reverse:  L̄̇_j += ṙ̄ g_j + r̄ Σ_k H_jk L̇_k       (r̄ cached from the gradient)
 * whatever the number of ops inside a statement.  Vector nodes and inputs
 * are entries of their own, swept by the ordinary per-node code.
 *
 * Groups: consecutive terms of one sum or dot whose leaves together number
 * at most STMT_K share one g and H over the union of their leaves (a sum's
 * local derivatives are the sums of its terms'), so the sweeps read one
 * entry where there were several: on Rosenbrock the four terms of two
 * consecutive i (leaves x_i, x_i+1, x_i+2) become one entry of 9 values
 * instead of four of 14.  A statement that is not such a term is a group of
 * its own.
 *
 * Memory (per handle): the structure takes 12 bytes per interior node (its
 * index and two argument codes), 5 bytes per entry, 14 per statement, 4 per
 * leaf of a statement and of a group; the values 8·(k + k(k+1)/2) bytes per
 * group (≤ 72 for k = 3).
 * Griewank & Walther, "Evaluating Derivatives", 2nd ed., §10.2 (statement-
 * level preaccumulation).
 */
#include <stdlib.h>
#include <string.h>

#include "dual/dual.h"
#include "tape/partials.h"
#include "tape/tape_internal.h"

static int is_scalar(tape_op op)
{
    return op > OP_CONST && op < OP_SUM;
}

/* Arguments of a scalar op that are nodes: 1 or 2 of them. */
static int scalar_args(const tape_rec *r, size_t i, uint32_t arg[2])
{
    tape_op op = (tape_op)r->op[i];
    arg[0] = r->a[i];
    arg[1] = r->b[i];
    switch (op) {
#define SA_U(N, n, K, C) case OP_##N:
    TAPE_UNARY_OPS(SA_U)
        return 1;
    default:
        return 2;
    }
}

void tape_stmts_free(tape_stmts *s)
{
    free(s->node); free(s->k); free(s->tk); free(s->tn); free(s->sk); free(s->sfirst); free(s->sc);
    if (s->gleaf != s->leaf)
        free(s->gleaf);
    free(s->cspan); free(s->leaf); free(s->gk);
    free(s->inner_n); free(s->inner); free(s->acode); free(s->gh); free(s->work);
    memset(s, 0, sizeof *s);
}

static int add_leaf(uint32_t *ls, uint8_t *cnt, uint32_t a)
{
    for (uint8_t j = 0; j < *cnt; j++)
        if (ls[j] == a)
            return 1;
    if (*cnt >= STMT_K + 1)
        return 0;                  /* one past STMT_K: the caller cuts */
    ls[(*cnt)++] = a;
    return 1;
}

#define GH_SIZE(k) ((k) + (k) * ((k) + 1u) / 2)   /* g and upper H of k leaves */

enum { U_SCALAR = 1, U_VEC = 2 };   /* who uses a node */

/* Calls use(node, kind) for each argument of node i. */
#define FOR_ARGS(r, i, USE)                                                  \
    do {                                                                     \
        tape_op op_ = (tape_op)(r)->op[i];                                   \
        if (is_scalar(op_)) {                                                \
            uint32_t arg_[2];                                                \
            int na_ = scalar_args(r, i, arg_);                               \
            for (int q_ = 0; q_ < na_; q_++) USE(arg_[q_], U_SCALAR);        \
        } else if (op_ == OP_SUM || op_ == OP_DOT) {                         \
            vec_args g_ = vec_view(r, op_ == OP_DOT, (r)->a[i], (r)->b[i]);  \
            for (uint32_t q_ = 0; q_ < g_.n; q_++) USE(vec_arg(&g_, q_), U_VEC); \
        } else if (op_ == OP_DOTV) {                                         \
            for (size_t q_ = 0; q_ < 2 * (size_t)(r)->b[i]; q_++)            \
                USE((r)->ext[(r)->a[i] + q_], 0);                            \
        } else if (op_ == OP_MATVEC || op_ == OP_SPMV) {                     \
            const tape_mat *d_ = &(r)->mat[(r)->a[i]];                       \
            for (size_t q_ = 0; q_ < d_->n; q_++) USE((r)->ext[d_->xoff + q_], 0); \
        }                                                                    \
    } while (0)

/* Builds the structure for t's recording.
 *
 * Stream order: entries in node order; a sum/dot node is a compound entry
 * whose terms follow it in argument order, each a statement (a single-use
 * root feeding it) or a plain node.  Leaves, values and interior lists of
 * the statements are stored in that same order, so every sweep reads them
 * as streams, forwards or backwards. */
static ad_status build(ad_tape *t)
{
    const tape_rec *r = t->rec;
    tape_stmts *s = &t->st;
    tape_stmts_free(s);
    const size_t n = r->end;
    const size_t LS = STMT_K + 1;
    uint8_t *uses = tape_alloc(n + 1, 1), *user = tape_alloc(n + 1, 1);
    uint8_t *role = tape_alloc(n + 1, 1), *lc = tape_alloc(n + 1, 1);
    /* Leaf sets: LS u32 per node, in the dot block (scratch until the
     * sweeps that follow the build). */
    _Static_assert((STMT_K + 1) * sizeof(uint32_t) <= 2 * sizeof(double), "leaf sets fit");
    uint32_t *ls = tape_dots(t, n + 1) ? (uint32_t *)t->dot : NULL;
    uint32_t *owner = tape_alloc((n + 1) * sizeof *owner, 0);
    uint32_t *stmt_of = tape_alloc((n + 1) * sizeof *stmt_of, 0);
    size_t *base = NULL;
    uint32_t *fill = NULL;
    ad_status st = AD_ENOMEM;
    if (!uses || !user || !role || !lc || !ls || !owner || !stmt_of)
        goto out;
    enum { R_INNER = 1, R_ROOT = 2, R_TERM = 3 };

    /* 1. Use counts (saturating at 2) and the kind of user. */
#define COUNT_USE(a, kind)                                                   \
    do {                                                                     \
        if (uses[a] < 2) uses[a]++;                                          \
        user[a] |= (kind);                                                   \
    } while (0)
    for (size_t i = 0; i < n; i++)
        FOR_ARGS(r, i, COUNT_USE);
    uses[r->out] = 2;

    /* 2. Interior nodes: single use, by a scalar op. */
    for (size_t i = 0; i < n; i++)
        if (is_scalar((tape_op)r->op[i]))
            role[i] = uses[i] == 1 && user[i] == U_SCALAR ? R_INNER : R_ROOT;

    /* 3. Leaf sets bottom-up; a tree with too many leaves is cut at its
     *    root's arguments, which become roots themselves. */
    for (size_t i = 0; i < n; i++) {
        if (!is_scalar((tape_op)r->op[i]))
            continue;
        uint32_t arg[2], *li = ls + i * LS;
        int na = scalar_args(r, i, arg), ok = 1;
        lc[i] = 0;
        for (int q = 0; q < na && ok; q++) {
            uint32_t a = arg[q];
            if (r->op[a] == OP_CONST)
                continue;
            if (role[a] == R_INNER) {
                for (uint8_t j = 0; j < lc[a] && ok; j++)
                    ok = add_leaf(li, &lc[i], ls[a * LS + j]);
            } else {
                ok = add_leaf(li, &lc[i], a);
            }
        }
        if (!ok || lc[i] > STMT_K) {
            lc[i] = 0;
            for (int q = 0; q < na; q++) {
                uint32_t a = arg[q];
                if (r->op[a] == OP_CONST)
                    continue;
                if (role[a] == R_INNER)
                    role[a] = R_ROOT;
                add_leaf(li, &lc[i], a);
            }
        }
    }
    /* A root used once, by a sum or dot, is swept inside it (a term). */
    for (size_t i = 0; i < n; i++)
        if (role[i] == R_ROOT && uses[i] == 1 && user[i] == U_VEC)
            role[i] = R_TERM;

    /* A sum/dot is a compound entry when at least one argument is a term;
     * otherwise the plain node code (contiguous, vectorized) sweeps it. */
    enum { R_COMP = 4 };
    for (size_t i = 0; i < n; i++) {
        tape_op op = (tape_op)r->op[i];
        if (op != OP_SUM && op != OP_DOT)
            continue;
        vec_args g = vec_view(r, op == OP_DOT, r->a[i], r->b[i]);
        for (uint32_t m = 0; m < g.n; m++)
            if (role[vec_arg(&g, m)] == R_TERM) {
                role[i] = R_COMP;
                break;
            }
    }

    /* Temporaries go as soon as they are dead: the build's peak memory is
     * the handle's (the statements come on top of the sweep buffers). */
#define DROP(p) do { free(p); (p) = NULL; } while (0)
    DROP(uses); DROP(user);

    /* 4. Owners top-down: an interior node belongs to its user's tree. */
    for (size_t i = n; i-- > 0;) {
        if (!role[i] || role[i] == R_COMP)
            continue;
        if (role[i] != R_INNER)
            owner[i] = (uint32_t)i;
        uint32_t arg[2];
        int na = scalar_args(r, i, arg);
        for (int q = 0; q < na; q++)
            if (role[arg[q]] == R_INNER)
                owner[arg[q]] = owner[i];
    }

    /* 5. Sizes of the streams. */
    size_t nent = 0, ntm = 0, nst = 0, nleaf = 0, ngh = 0, ninner = 0, ncomp = 0;
    for (size_t i = 0; i < n; i++) {
        tape_op op = (tape_op)r->op[i];
        if (role[i] && role[i] != R_COMP)
            ninner++;
        if (op == OP_VOUT || op == OP_INPUT || role[i] == R_INNER || role[i] == R_TERM)
            continue;
        nent++;
        if (role[i] == R_ROOT) {
            nst++;
            nleaf += lc[i];
            ngh += lc[i] + lc[i] * (lc[i] + 1u) / 2;
        } else if (role[i] == R_COMP) {
            vec_args g = vec_view(r, op == OP_DOT, r->a[i], r->b[i]);
            ntm += g.n;
            ncomp++;
            for (uint32_t q = 0; q < g.n; q++) {
                uint32_t a = vec_arg(&g, q);
                if (role[a] == R_TERM) {
                    nst++;
                    nleaf += lc[a];
                    ngh += lc[a] + lc[a] * (lc[a] + 1u) / 2;
                }
            }
        }
    }
    s->node = tape_alloc((nent + 1) * sizeof *s->node, 0);
    s->k = tape_alloc(nent + 1, 0);
    s->tk = tape_alloc(ntm + 1, 0);
    s->tn = tape_alloc((ntm + 1) * sizeof *s->tn, 0);
    s->sk = tape_alloc(nst + 1, 0);
    s->sfirst = tape_alloc(nst + 1, 0);
    s->gk = tape_alloc(nst + 1, 0);                          /* groups <= statements */
    s->gleaf = tape_alloc((nleaf + 1) * sizeof *s->gleaf, 0);
    s->sc = tape_alloc((nst + 1) * sizeof *s->sc, 0);
    s->cspan = tape_alloc((2 * ncomp + 2) * sizeof *s->cspan, 0);
    s->leaf = tape_alloc((nleaf + 1) * sizeof *s->leaf, 0);
    s->inner_n = tape_alloc((nst + 1) * sizeof *s->inner_n, 1);
    s->inner = tape_alloc((ninner + 1) * sizeof *s->inner, 0);
    s->gh = tape_alloc((ngh + 1) * sizeof *s->gh, 0);
    base = tape_alloc((nst + 1) * sizeof *base, 0);
    fill = tape_alloc((nst + 1) * sizeof *fill, 1);
    if (!s->node || !s->k || !s->tk || !s->tn || !s->sk || !s->sc || !s->cspan || !s->leaf || !s->inner_n || !s->inner
        || !s->gh || !base || !fill || !s->sfirst || !s->gk || !s->gleaf)
        goto out;

    /* 6. Fill the streams in stream order.  Statements are grouped as they
     *    come: a term joins the open group of its compound when the union
     *    of their leaves stays within STMT_K. */
    size_t e = 0, tp = 0, q = 0, lf = 0, nc = 0, ng = 0, glf = 0, ghn = 0;
    uint32_t U[STMT_K];   /* the open group's leaves */
    uint8_t uk = 0;
#define ADD_STMT(root, coef)                                                 \
    do {                                                                     \
        stmt_of[root] = (uint32_t)q;                                         \
        s->sc[q] = (coef);                                                   \
        s->sfirst[q] = 1;                                                    \
        s->sk[q++] = lc[root];                                               \
        memcpy(s->leaf + lf, ls + (size_t)(root) * LS, lc[root] * sizeof *s->leaf); \
        lf += lc[root];                                                      \
    } while (0)
#define CLOSE_GROUP()                                                        \
    do {                                                                     \
        memcpy(s->gleaf + glf, U, uk * sizeof *U);                           \
        glf += uk;                                                           \
        ghn += GH_SIZE(uk);                                                  \
        s->gk[ng++] = uk;                                                    \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        tape_op op = (tape_op)r->op[i];
        if (op == OP_VOUT || op == OP_INPUT || role[i] == R_INNER || role[i] == R_TERM)
            continue;
        s->node[e] = (uint32_t)i;
        if (role[i] == R_ROOT) {
            s->k[e++] = lc[i];
            ADD_STMT(i, 1.0);
            uk = lc[i];
            memcpy(U, ls + i * LS, uk * sizeof *U);
            CLOSE_GROUP();
        } else if (role[i] == R_COMP) {
            s->k[e++] = STMT_COMP;
            vec_args g = vec_view(r, op == OP_DOT, r->a[i], r->b[i]);
            size_t gh0 = ghn, gl0 = glf, lead = 0;
            int open = 0;
            for (uint32_t m = 0; m < g.n; m++, tp++) {
                uint32_t a = vec_arg(&g, m);
                s->tn[tp] = a;
                if (role[a] != R_TERM) {
                    s->tk[tp] = STMT_NODE;
                    continue;
                }
                ADD_STMT(a, g.c ? g.c[m] : 1.0);
                const uint32_t *la = ls + (size_t)a * LS;
                uint32_t W2[2 * STMT_K];
                uint8_t wk = uk;
                memcpy(W2, U, uk * sizeof *U);
                for (uint8_t j = 0; open && j < lc[a] && wk <= STMT_K; j++) {
                    uint8_t h = 0;
                    while (h < wk && W2[h] != la[j])
                        h++;
                    if (h == wk)
                        W2[wk++] = la[j];
                }
                /* Merge only when it stores no more: sqr(x0) and sqr(x1)
                 * stay apart (2 + 2 values, not 5). */
                if (open && wk <= STMT_K && GH_SIZE(wk) <= GH_SIZE(uk) + GH_SIZE(lc[a])) {
                    memcpy(U, W2, wk * sizeof *U);
                    uk = wk;
                    s->tk[tp] = STMT_MERGED;
                    s->sfirst[q - 1] = 0;
                } else {
                    if (open) {
                        s->tk[lead] = uk;
                        CLOSE_GROUP();
                    }
                    open = 1;
                    lead = tp;
                    uk = lc[a];
                    memcpy(U, la, uk * sizeof *U);
                }
            }
            if (open) {
                s->tk[lead] = uk;
                CLOSE_GROUP();
            }
            s->cspan[2 * nc] = ghn - gh0;
            s->cspan[2 * nc + 1] = glf - gl0;
            nc++;
        } else {
            s->k[e++] = STMT_NODE;
        }
    }
#undef ADD_STMT
#undef CLOSE_GROUP
    s->ngrp = ng;
    s->ngleaf = glf;
    ngh = ghn;
    if (ng == nst) {   /* no term merged: the groups' leaves are the statements' */
        free(s->gleaf);
        s->gleaf = s->leaf;
    }

    /* 7. Interior lists by statement, each in node order (root last). */
    for (size_t i = 0; i < n; i++)
        if (role[i] && role[i] != R_COMP)
            s->inner_n[stmt_of[owner[i]]]++;
    size_t acc = 0, maxin = 1;
    for (size_t m = 0; m < nst; m++) {
        base[m] = acc;
        acc += s->inner_n[m];
        if (s->inner_n[m] > maxin)
            maxin = s->inner_n[m];
    }
    for (size_t i = 0; i < n; i++) {
        if (!role[i] || role[i] == R_COMP)
            continue;
        uint32_t m = stmt_of[owner[i]];
        s->inner[base[m] + fill[m]++] = (uint32_t)i;
    }
    DROP(owner); DROP(stmt_of); DROP(base); DROP(fill); DROP(role); DROP(lc);
    /* 8. Argument codes of the interior nodes, for preaccumulation: an
     *    earlier interior node of the statement (its place, found by
     *    bisection: the list is in node order), leaf j, or nothing (a
     *    constant, or a unary op's second slot).  Every temporary is gone
     *    by now, so the codes reuse their memory. */
    s->acode = tape_alloc((2 * acc + 1) * sizeof *s->acode, 0);
    if (!s->acode)
        goto out;
    {
        const uint32_t *Lm = s->leaf, *nodes = s->inner;
        uint32_t *code = s->acode;
        for (size_t m = 0; m < nst; m++) {
            size_t ni = s->inner_n[m];
            for (size_t qq = 0; qq < ni; qq++) {
                uint32_t arg[2];
                int na = scalar_args(r, nodes[qq], arg);
                for (int c = 0; c < 2; c++) {
                    uint32_t a = arg[c], v = STMT_ARG_NONE;
                    if (c < na && r->op[a] != OP_CONST) {
                        size_t lo = 0, hi = qq;   /* a < nodes[qq]: search before it */
                        while (lo < hi) {
                            size_t mid = lo + (hi - lo) / 2;
                            if (nodes[mid] < a)
                                lo = mid + 1;
                            else
                                hi = mid;
                        }
                        if (lo < qq && nodes[lo] == a) {
                            v = (uint32_t)lo;
                        } else {
                            uint32_t j = 0;
                            while (j + 1 < s->sk[m] && Lm[j] != a)
                                j++;   /* not interior: one of the leaves */
                            v = STMT_ARG_LEAF + j;
                        }
                    }
                    *code++ = v;
                }
            }
            nodes += ni;
            Lm += s->sk[m];
        }
    }
    s->work = tape_alloc(maxin * STMT_W * sizeof *s->work, 0);
    if (!s->work)
        goto out;
    s->nent = nent;
    s->ntm = ntm;
    s->nst = nst;
    s->nleaf = nleaf;
    s->ninner = acc;
    s->ngh = ngh;
    s->rec_id = r->id;
    s->rec = r;
    s->built = 1;
    st = AD_OK;
out:
    free(uses); free(user); free(role); free(lc); free(owner); free(stmt_of);
    free(base); free(fill);
#undef DROP
    if (st)
        tape_stmts_free(s);   /* the caller falls back to the plain sweeps */
    return st;
}

/* (g, H) of a leaf argument: the unit vector e_j, and zero for none. */
static const double stmt_unit[STMT_K + 1][STMT_W] = {{1.0}, {0.0, 1.0}, {0.0, 0.0, 1.0}, {0.0}};
_Static_assert(STMT_K == 3, "stmt_unit lists STMT_K unit vectors");

/* Local gradient g and Hessian H of one statement of K leaves (a
 * compile-time constant) w.r.t. its leaves, forward through its interior
 * nodes (root last), packed into out: g, then the upper triangle of H.
 * Each node carries (g, H) in w; its arguments' (g, H) come from their
 * codes (an earlier node's entry in w, or stmt_unit). */
static inline __attribute__((always_inline)) void
preacc_stmt(const tape_rec *r, const double *val, const uint32_t *nodes, size_t ni,
            const uint32_t *code, double *w, double *out, double sc, const unsigned K)
{
    enum { W = STMT_W };
    for (size_t q = 0; q < ni; q++) {
        uint32_t i = nodes[q], c0 = code[2 * q], c1 = code[2 * q + 1];
        double *g = w + q * W, *H = g + STMT_K;
        double d[2] = {0.0, 0.0};
        dual_rule2 p = {0.0, 0.0, 0.0, 0.0, 0.0};
        int kind = tape_partials(r, val, i, d, &p);
        const double *ga0 = c0 < STMT_ARG_LEAF ? w + (size_t)c0 * W
                                               : stmt_unit[c0 == STMT_ARG_NONE ? STMT_K : c0 - STMT_ARG_LEAF];
        const double *Ha0 = ga0 + STMT_K;
        if (kind == 1) {
            for (unsigned j = 0; j < K; j++)
                g[j] = d[0] * ga0[j];
            for (unsigned j = 0; j < K; j++)
                for (unsigned l = j; l < K; l++)
                    H[j * STMT_K + l] = d[0] * Ha0[j * STMT_K + l] + d[1] * ga0[j] * ga0[l];
        } else {
            const double *ga1 = c1 < STMT_ARG_LEAF ? w + (size_t)c1 * W
                                                   : stmt_unit[c1 == STMT_ARG_NONE ? STMT_K : c1 - STMT_ARG_LEAF];
            const double *Ha1 = ga1 + STMT_K;
            for (unsigned j = 0; j < K; j++)
                g[j] = p.fa * ga0[j] + p.fb * ga1[j];
            for (unsigned j = 0; j < K; j++)
                for (unsigned l = j; l < K; l++)
                    H[j * STMT_K + l] = p.fa * Ha0[j * STMT_K + l] + p.fb * Ha1[j * STMT_K + l]
                        + p.faa * ga0[j] * ga0[l] + p.fbb * ga1[j] * ga1[l]
                        + p.fab * (ga0[j] * ga1[l] + ga1[j] * ga0[l]);
        }
    }
    const double *g = w + (ni - 1) * W, *H = g + STMT_K;
    for (unsigned j = 0; j < K; j++)
        *out++ = sc * g[j];
    for (unsigned j = 0; j < K; j++)
        for (unsigned l = j; l < K; l++)
            *out++ = sc * H[j * STMT_K + l];
}

/* out (a group's g and upper H over its kG leaves GL) += the statement's
 * (g, H) in its own leaves L (k of them; packed like out). */
static void group_add(double *restrict out, const uint32_t *GL, unsigned kG,
                      const double *restrict in, const uint32_t *L, unsigned k)
{
    unsigned map[STMT_K];
    for (unsigned j = 0; j < k; j++) {
        unsigned h = 0;
        while (GL[h] != L[j])
            h++;   /* the group's leaves hold the statement's */
        map[j] = h;
    }
    double *H = out + kG;
    for (unsigned j = 0; j < k; j++)
        out[map[j]] += in[j];
    const double *Hs = in + k;
    for (unsigned j = 0; j < k; j++)
        for (unsigned l = j; l < k; l++) {
            unsigned a = map[j] < map[l] ? map[j] : map[l], b = map[j] ^ map[l] ^ a;
            /* upper triangle packed by rows: row a starts at a·kG − a(a−1)/2 */
            H[a * kG - a * (a - 1u) / 2 + (b - a)] += *Hs++;
        }
}

/* Local derivatives of every statement at the cached x, summed by group. */
static void preaccumulate(ad_tape *t)
{
    const tape_rec *r = t->rec;
    tape_stmts *s = &t->st;
    const double *val = t->val;
    const uint32_t *L = s->leaf, *GL = s->gleaf, *nodes = s->inner, *code = s->acode;
    double *gh = s->gh, *w = s->work;
    double tmp[GH_SIZE(STMT_K)];
    size_t grp = 0;
    unsigned kG = 0;
    for (size_t m = 0; m < s->nst; m++) {
        unsigned k = s->sk[m];
        size_t ni = s->inner_n[m];
        int alone = s->sfirst[m] && (m + 1 == s->nst || s->sfirst[m + 1]);
        if (s->sfirst[m]) {
            if (m) {
                gh += GH_SIZE(kG);
                GL += kG;
            }
            kG = s->gk[grp++];
            if (!alone)
                memset(gh, 0, GH_SIZE(kG) * sizeof *gh);
        }
        /* A statement alone in its group writes its values in place. */
        double *out = alone ? gh : tmp;
        switch (k) {
        case 0: break;
        case 1: preacc_stmt(r, val, nodes, ni, code, w, out, s->sc[m], 1); break;
        case 2: preacc_stmt(r, val, nodes, ni, code, w, out, s->sc[m], 2); break;
        default: preacc_stmt(r, val, nodes, ni, code, w, out, s->sc[m], 3); break;   /* STMT_K */
        }
        if (!alone)
            group_add(gh, GL, kG, tmp, L, k);
        L += k;
        nodes += ni;
        code += 2 * ni;
    }
}

ad_status tape_stmts_ready(ad_tape *t)
{
    tape_stmts *s = &t->st;
    if (!s->built || s->rec != t->rec || s->rec_id != t->rec->id) {
        ad_status st = build(t);
        if (st)
            return st;
    }
    if (s->epoch != t->epoch || !s->valid) {
        preaccumulate(t);
        s->epoch = t->epoch;
        s->valid = 1;
    }
    return AD_OK;
}

/* ṙ = g·L̇ for a statement of K leaves (K a compile-time constant). */
static inline __attribute__((always_inline)) double
fwd_stmt(const double *restrict g, const uint32_t *restrict L, const double *restrict dot,
         const unsigned K)
{
    double d = 0.0;
    for (unsigned j = 0; j < K; j++)
        d += g[j] * dot[L[j]];
    return d;
}

/* The tangent of the statement at (gh, L), advancing both. */
static inline __attribute__((always_inline)) double stmt_tangent(const double **gh, const uint32_t **L, const double *dot,
                                  unsigned k)
{
    double d;
    switch (k) {
    case 0: d = 0.0; break;
    case 1: d = fwd_stmt(*gh, *L, dot, 1); break;
    case 2: d = fwd_stmt(*gh, *L, dot, 2); break;
    case 3: d = fwd_stmt(*gh, *L, dot, 3); break;
    default: d = fwd_stmt(*gh, *L, dot, 4); break;
    }
    *gh += GH_SIZE(k);
    *L += k;
    return d;
}

/* Forward: tangents of the entries; zeroes their adjoint tangents.  Inputs
 * are seeded first, in one plain loop.  The output's own tangent is never
 * read, so a compound output only advances over its terms. */
void tape_stmts_tangent(ad_tape *t, const double *v)
{
    const tape_rec *r = t->rec;
    const tape_stmts *s = &t->st;
    const double *restrict val = t->val, *gh = s->gh;
    const uint32_t *L = s->gleaf, *restrict node = s->node, *restrict in = r->in;
    const uint32_t *restrict tn = s->tn;
    const uint8_t *restrict kk = s->k, *restrict tk = s->tk;
    double *restrict dot = t->dot, *restrict adot = t->adot;
    const size_t nent = s->nent, nin = r->nin;
    size_t tp = 0, nc = 0;
    if (r->in_contig) {
        memcpy(dot + in[0], v, nin * sizeof *dot);
        memset(adot + in[0], 0, nin * sizeof *adot);
    } else {
        for (size_t j = 0; j < nin; j++) {
            dot[in[j]] = v[j];
            adot[in[j]] = 0.0;
        }
    }
    for (size_t e = 0; e < nent; e++) {
        const uint32_t i = node[e];
        const unsigned k = kk[e];
        if (k <= STMT_K) {
            dot[i] = stmt_tangent(&gh, &L, dot, k);
            adot[i] = 0.0;
        } else if (k == STMT_COMP) {
            vec_args g = vec_view(r, r->op[i] == OP_DOT, r->a[i], r->b[i]);
            double sum = 0.0;
            if (i == r->out) {
                gh += s->cspan[2 * nc];
                L += s->cspan[2 * nc + 1];
                tp += g.n;
            } else {
                /* A term statement's g and H carry its coefficient already. */
                for (uint32_t m = 0; m < g.n; m++, tp++)
                    if (tk[tp] == STMT_NODE)
                        sum += (g.c ? g.c[m] : 1.0) * dot[tn[tp]];
                    else if (tk[tp] != STMT_MERGED)
                        sum += stmt_tangent(&gh, &L, dot, tk[tp]);
            }
            dot[i] = sum;
            adot[i] = 0.0;
            nc++;
        } else {
            tape_op op = (tape_op)r->op[i];
            if (op == OP_CONST)
                dot[i] = 0.0;
            else
                sweep_node_tangent(r, val, dot, v, t->scr, i);
            adot[i] = 0.0;
            if (op == OP_MATVEC || op == OP_SPMV)
                memset(adot + i + 1, 0, r->mat[r->a[i]].m * sizeof *adot);
        }
    }
}

/* One statement of the reverse sweep with K leaves (a compile-time constant
 * in each instantiation): L̄̇_j += ṙ̄ g_j + r̄ Σ_m H_jm L̇_m. */
static inline __attribute__((always_inline)) void
rev_stmt(const double *restrict g, const uint32_t *restrict L, double yb, double ybd,
         const double *restrict dot, double *restrict adot, const unsigned K)
{
    const double *H = g + K;
    double ld[STMT_K], acc[STMT_K];
    for (unsigned j = 0; j < K; j++) {
        ld[j] = dot[L[j]];
        acc[j] = ybd * g[j];
    }
    for (unsigned j = 0; j < K; j++) {
        double hs = H[0] * ld[j];
        for (unsigned m = j + 1; m < K; m++) {
            hs += H[m - j] * ld[m];
            acc[m] += yb * H[m - j] * ld[j];
        }
        acc[j] += yb * hs;
        H += K - j;
    }
    for (unsigned j = 0; j < K; j++)
        adot[L[j]] += acc[j];
}

/* The statement ending at (gh, L), walking both backwards. */
static inline __attribute__((always_inline)) void stmt_reverse(const double **gh, const uint32_t **L, double yb, double ybd,
                                const double *dot, double *adot, unsigned k)
{
    *gh -= GH_SIZE(k);
    *L -= k;
    switch (k) {
    case 0: break;
    case 1: rev_stmt(*gh, *L, yb, ybd, dot, adot, 1); break;
    case 2: rev_stmt(*gh, *L, yb, ybd, dot, adot, 2); break;
    default: rev_stmt(*gh, *L, yb, ybd, dot, adot, 3); break;   /* STMT_K */
    }
}

/* Reverse: adjoint tangents through the entries, at cached adjoints.  The
 * terms of a compound get r̄ = c ȳ and ṙ̄ = c ẏ̄ from it directly. */
void tape_stmts_reverse(ad_tape *t)
{
    const tape_rec *r = t->rec;
    const tape_stmts *s = &t->st;
    const double *restrict val = t->val, *restrict dot = t->dot, *gh = s->gh + s->ngh;
    const uint32_t *L = s->gleaf + s->ngleaf, *restrict node = s->node, *restrict tn = s->tn;
    const uint8_t *restrict kk = s->k, *restrict tk = s->tk;
    double *restrict adj = t->adj, *restrict adot = t->adot;
    size_t tp = s->ntm;
    for (size_t e = s->nent; e-- > 0;) {
        const uint32_t i = node[e];
        const unsigned k = kk[e];
        if (k <= STMT_K) {
            stmt_reverse(&gh, &L, adj[i], adot[i], dot, adot, k);
        } else if (k == STMT_COMP) {
            vec_args g = vec_view(r, r->op[i] == OP_DOT, r->a[i], r->b[i]);
            double yb = adj[i], ybd = adot[i];
            for (uint32_t m = g.n; m-- > 0;) {
                tp--;
                if (tk[tp] == STMT_NODE)
                    adot[tn[tp]] += (g.c ? g.c[m] : 1.0) * ybd;
                else if (tk[tp] != STMT_MERGED)   /* scaled g, H: no coefficient */
                    stmt_reverse(&gh, &L, yb, ybd, dot, adot, tk[tp]);
            }
        } else {
            tape_op op = (tape_op)r->op[i];
            if (op != OP_CONST)
                sweep_node_reverse_hvp(r, val, dot, adj, adot, t->scr, i);
        }
    }
}

/* ---- vector mode: TAPE_LANES directions per pass ----------------------- */

enum { LN = TAPE_LANES };

static inline __attribute__((always_inline)) void
fwd_lanes_stmt(const double *restrict g, const uint32_t *restrict L,
               const double *restrict dotk, double *restrict y, double c, const unsigned K)
{
    for (unsigned j = 0; j < K; j++) {
        const double *d = dotk + (size_t)L[j] * LN;
        double w = c * g[j];
        for (size_t l = 0; l < LN; l++)
            y[l] += w * d[l];
    }
}

/* y (LN lanes) += c · (statement tangent), advancing gh and L. */
static inline __attribute__((always_inline)) void stmt_tangent_lanes(const double **gh, const uint32_t **L, const double *dotk,
                                      double *y, double c, unsigned k)
{
    switch (k) {
    case 0: break;
    case 1: fwd_lanes_stmt(*gh, *L, dotk, y, c, 1); break;
    case 2: fwd_lanes_stmt(*gh, *L, dotk, y, c, 2); break;
    default: fwd_lanes_stmt(*gh, *L, dotk, y, c, 3); break;   /* STMT_K */
    }
    *gh += GH_SIZE(k);
    *L += k;
}

/* V (k×n) seeds the inputs; lanes past k are zero. */
void tape_stmts_tangent_lanes(ad_tape *t, const double *V, size_t k, size_t n)
{
    const tape_rec *r = t->rec;
    const tape_stmts *s = &t->st;
    const double *val = t->val, *gh = s->gh;
    const uint32_t *L = s->gleaf, *tn = s->tn;
    const uint8_t *tk = s->tk;
    double *dotk = t->dotk, *adotk = t->adotk;
    size_t tp = 0;
    for (size_t j = 0; j < r->nin; j++) {
        double *y = dotk + (size_t)r->in[j] * LN;
        for (size_t l = 0; l < LN; l++)
            y[l] = l < k ? V[l * n + j] : 0.0;
        memset(adotk + (size_t)r->in[j] * LN, 0, LN * sizeof *adotk);
    }
    for (size_t e = 0; e < s->nent; e++) {
        uint32_t i = s->node[e];
        unsigned k2 = s->k[e];
        double *y = dotk + (size_t)i * LN;
        if (k2 <= STMT_K) {
            double acc[LN] = {0};
            stmt_tangent_lanes(&gh, &L, dotk, acc, 1.0, k2);
            memcpy(y, acc, sizeof acc);
        } else if (k2 == STMT_COMP) {
            vec_args g = vec_view(r, r->op[i] == OP_DOT, r->a[i], r->b[i]);
            double acc[LN] = {0};
            for (uint32_t m = 0; m < g.n; m++, tp++) {
                double c = g.c ? g.c[m] : 1.0;
                if (tk[tp] == STMT_NODE) {
                    const double *d = dotk + (size_t)tn[tp] * LN;
                    for (size_t l = 0; l < LN; l++)
                        acc[l] += c * d[l];
                } else if (tk[tp] != STMT_MERGED) {
                    stmt_tangent_lanes(&gh, &L, dotk, acc, 1.0, tk[tp]);   /* scaled */
                }
            }
            memcpy(y, acc, sizeof acc);
        } else {
            tape_op op = (tape_op)r->op[i];
            if (op == OP_CONST)
                memset(y, 0, LN * sizeof *y);
            else
                sweep_node_tangent_lanes(r, val, dotk, t->scr, i);
            if (op == OP_MATVEC || op == OP_SPMV)
                memset(adotk + ((size_t)i + 1) * LN, 0, (size_t)r->mat[r->a[i]].m * LN * sizeof *adotk);
        }
        memset(adotk + (size_t)i * LN, 0, LN * sizeof *adotk);
    }
}

/* One statement of the lane reverse sweep (K a compile-time constant):
 * yb the statement's adjoint, ybd (lanes) its adjoint tangents times c. */
static inline __attribute__((always_inline)) void
rev_lanes_stmt(const double *restrict g, const uint32_t *restrict L, double yb,
               const double *restrict ybd, double c, const double *restrict dotk,
               double *restrict adotk, const unsigned K)
{
    const double *H = g + K;
    double acc[STMT_K][LN];
    for (unsigned j = 0; j < K; j++)
        for (size_t l = 0; l < LN; l++)
            acc[j][l] = c * ybd[l] * g[j];
    for (unsigned j = 0; j < K; j++) {
        const double *dj = dotk + (size_t)L[j] * LN;
        for (unsigned m = j; m < K; m++) {
            double h = yb * H[m - j];
            const double *dm = dotk + (size_t)L[m] * LN;
            for (size_t l = 0; l < LN; l++)
                acc[j][l] += h * dm[l];
            if (m != j)
                for (size_t l = 0; l < LN; l++)
                    acc[m][l] += h * dj[l];
        }
        H += K - j;
    }
    for (unsigned j = 0; j < K; j++) {
        double *a = adotk + (size_t)L[j] * LN;
        for (size_t l = 0; l < LN; l++)
            a[l] += acc[j][l];
    }
}

static inline __attribute__((always_inline)) void stmt_reverse_lanes(const double **gh, const uint32_t **L, double yb,
                                      const double *ybd, double c, const double *dotk,
                                      double *adotk, unsigned k)
{
    *gh -= GH_SIZE(k);
    *L -= k;
    switch (k) {
    case 0: break;
    case 1: rev_lanes_stmt(*gh, *L, yb, ybd, c, dotk, adotk, 1); break;
    case 2: rev_lanes_stmt(*gh, *L, yb, ybd, c, dotk, adotk, 2); break;
    default: rev_lanes_stmt(*gh, *L, yb, ybd, c, dotk, adotk, 3); break;   /* STMT_K */
    }
}

void tape_stmts_reverse_lanes(ad_tape *t)
{
    const tape_rec *r = t->rec;
    const tape_stmts *s = &t->st;
    const double *val = t->val, *dotk = t->dotk, *gh = s->gh + s->ngh;
    const uint32_t *L = s->gleaf + s->ngleaf, *tn = s->tn;
    const uint8_t *tk = s->tk;
    const double *adj = t->adj;
    double *adotk = t->adotk;
    size_t tp = s->ntm;
    for (size_t e = s->nent; e-- > 0;) {
        uint32_t i = s->node[e];
        unsigned k = s->k[e];
        const double *ybd = adotk + (size_t)i * LN;
        if (k <= STMT_K) {
            stmt_reverse_lanes(&gh, &L, adj[i], ybd, 1.0, dotk, adotk, k);
        } else if (k == STMT_COMP) {
            vec_args g = vec_view(r, r->op[i] == OP_DOT, r->a[i], r->b[i]);
            double yb = adj[i], yd[LN];
            memcpy(yd, ybd, sizeof yd);   /* terms may write near ybd */
            for (uint32_t m = g.n; m-- > 0;) {
                double c = g.c ? g.c[m] : 1.0;
                tp--;
                if (tk[tp] == STMT_NODE) {
                    double *a = adotk + (size_t)tn[tp] * LN;
                    for (size_t l = 0; l < LN; l++)
                        a[l] += c * yd[l];
                } else if (tk[tp] != STMT_MERGED) {
                    stmt_reverse_lanes(&gh, &L, yb, yd, 1.0, dotk, adotk, tk[tp]);   /* scaled */
                }
            }
        } else {
            tape_op op = (tape_op)r->op[i];
            if (op != OP_CONST)
                sweep_node_reverse_lanes(r, val, dotk, adj, adotk, t->scr, i);
        }
    }
}
