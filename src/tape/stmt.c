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
 * Memory (per handle): the structure takes 4 bytes per node (the position
 * of each interior node), 5 bytes per entry, 4 per leaf and 4 per interior
 * node; the values 8·(k + k(k+1)/2) bytes per statement (≤ 112 for k = 4).
 * Griewank & Walther, "Evaluating Derivatives", 2nd ed., §10.2 (statement-
 * level preaccumulation).
 */
#include <stdlib.h>
#include <string.h>

#include "dual/dual.h"
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
    free(s->node); free(s->k); free(s->leaf); free(s->inner_n); free(s->inner);
    free(s->pos); free(s->gh); free(s->work);
    memset(s, 0, sizeof *s);
}

static int add_leaf(uint32_t *ls, uint8_t *cnt, uint32_t a)
{
    for (uint8_t j = 0; j < *cnt; j++)
        if (ls[j] == a)
            return 1;
    if (*cnt >= STMT_K + 2)
        return 0;
    ls[(*cnt)++] = a;
    return 1;
}

/* Builds the structure for t's recording: entries, leaves, interior lists. */
static ad_status build(ad_tape *t)
{
    const tape_rec *r = t->rec;
    tape_stmts *s = &t->st;
    tape_stmts_free(s);
    size_t n = r->end;
    uint8_t *uses = tape_alloc(n + 1, 1);   /* saturating at 2 */
    uint8_t *inner = tape_alloc(n + 1, 1);         /* 1: interior candidate */
    uint32_t *ls = tape_alloc((n + 1) * (STMT_K + 2) * sizeof *ls, 0);
    uint8_t *lc = tape_alloc(n + 1, 1);
    uint32_t *owner = tape_alloc((n + 1) * sizeof *owner, 0);
    uint32_t *ent_of = NULL, *ent_fill = NULL;
    size_t *base = NULL;
    s->pos = tape_alloc((n + 1) * sizeof *s->pos, 0);
    ad_status st = AD_OK;
    if (!uses || !inner || !ls || !lc || !owner || !s->pos) {
        st = AD_ENOMEM;
        goto out;
    }
    /* Use counts; a node is an interior candidate when its single user is
     * a scalar op. */
    for (size_t i = 0; i < n; i++) {
        tape_op op = (tape_op)r->op[i];
        uint32_t arg[2];
        if (is_scalar(op)) {
            int na = scalar_args(r, i, arg);
            for (int q = 0; q < na; q++) {
                if (uses[arg[q]] < 2) uses[arg[q]]++;
                inner[arg[q]] = 1;
            }
        } else if (op == OP_SUM || op == OP_DOT) {
            vec_args g = vec_view(r, op == OP_DOT, r->a[i], r->b[i]);
            for (uint32_t k = 0; k < g.n; k++)
                uses[vec_arg(&g, k)] = 2;    /* a vector node's argument is a root */
        } else if (op == OP_DOTV || op == OP_MATVEC || op == OP_SPMV) {
            size_t off, cnt;
            if (op == OP_DOTV) { off = r->a[i]; cnt = 2 * (size_t)r->b[i]; }
            else { off = r->mat[r->a[i]].xoff; cnt = r->mat[r->a[i]].n; }
            for (size_t k = 0; k < cnt; k++)
                uses[r->ext[off + k]] = 2;
        }
    }
    uses[r->out] = 2;
    for (size_t i = 0; i < n; i++)
        inner[i] = inner[i] && uses[i] == 1 && is_scalar((tape_op)r->op[i]);

    /* Leaf sets bottom-up; a tree with too many leaves is cut at its root's
     * arguments. */
    for (size_t i = 0; i < n; i++) {
        if (!is_scalar((tape_op)r->op[i]))
            continue;
        uint32_t arg[2], *li = ls + i * (STMT_K + 2);
        int na = scalar_args(r, i, arg), ok = 1;
        lc[i] = 0;
        for (int q = 0; q < na; q++) {
            uint32_t a = arg[q];
            if (r->op[a] == OP_CONST)
                continue;
            if (inner[a]) {
                const uint32_t *la = ls + (size_t)a * (STMT_K + 2);
                for (uint8_t j = 0; j < lc[a] && ok; j++)
                    ok = add_leaf(li, &lc[i], la[j]);
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
                inner[a] = 0;
                add_leaf(li, &lc[i], a);
            }
        }
    }

    /* Owners top-down: each interior node belongs to its user's statement. */
    for (size_t i = n; i-- > 0;) {
        if (!is_scalar((tape_op)r->op[i]))
            continue;
        if (!inner[i])
            owner[i] = (uint32_t)i;
        uint32_t arg[2];
        int na = scalar_args(r, i, arg);
        for (int q = 0; q < na; q++)
            if (inner[arg[q]])
                owner[arg[q]] = owner[i];
    }
    /* Entries in node order: every non-interior node but matrix outputs. */
    size_t nent = 0, nleaf = 0, ninner = 0, ngh = 0;
    for (size_t i = 0; i < n; i++) {
        tape_op op = (tape_op)r->op[i];
        if (op == OP_VOUT)
            continue;
        if (is_scalar(op)) {
            ninner++;
            if (inner[i])
                continue;
            size_t k = lc[i];
            nleaf += k;
            ngh += k + k * (k + 1) / 2;
        }
        nent++;
    }
    s->node = tape_alloc((nent + 1) * sizeof *s->node, 0);
    s->k = tape_alloc(nent + 1, 0);
    s->leaf = tape_alloc((nleaf + 1) * sizeof *s->leaf, 0);
    s->inner_n = tape_alloc((nent + 1) * sizeof *s->inner_n, 1);
    s->inner = tape_alloc((ninner + 1) * sizeof *s->inner, 0);
    s->gh = tape_alloc((ngh + 1) * sizeof *s->gh, 0);
    ent_of = tape_alloc((n + 1) * sizeof *ent_of, 0);
    base = tape_alloc((nent + 1) * sizeof *base, 0);
    ent_fill = tape_alloc((nent + 1) * sizeof *ent_fill, 0);
    if (!s->node || !s->k || !s->leaf || !s->inner_n || !s->inner || !s->gh || !ent_of || !base
        || !ent_fill) {
        st = AD_ENOMEM;
        goto out;
    }
    size_t e = 0, lf = 0;
    for (size_t i = 0; i < n; i++) {
        tape_op op = (tape_op)r->op[i];
        if (op == OP_VOUT || (is_scalar(op) && inner[i]))
            continue;
        s->node[e] = (uint32_t)i;
        s->k[e] = STMT_NODE;
        if (is_scalar(op)) {
            s->k[e] = lc[i];
            memcpy(s->leaf + lf, ls + i * (STMT_K + 2), lc[i] * sizeof *s->leaf);
            lf += lc[i];
            ent_of[i] = (uint32_t)e;
        }
        e++;
    }
    /* Interior lists, grouped by statement, each in node order (root last);
     * pos[i] = i's place in its list (the preaccumulation's scratch slot). */
    for (size_t i = 0; i < n; i++)
        if (is_scalar((tape_op)r->op[i]))
            s->inner_n[ent_of[owner[i]]]++;
    size_t acc = 0, maxin = 1;
    for (size_t q = 0; q < nent; q++) {
        base[q] = acc;
        acc += s->inner_n[q];
        if (s->inner_n[q] > maxin)
            maxin = s->inner_n[q];
    }
    /* Fill in node order, so each list comes out sorted with its root last. */
    memset(ent_fill, 0, (nent + 1) * sizeof *ent_fill);
    for (size_t i = 0; i < n; i++) {
        if (!is_scalar((tape_op)r->op[i]))
            continue;
        uint32_t q = ent_of[owner[i]];
        s->pos[i] = ent_fill[q]++;
        s->inner[base[q] + s->pos[i]] = (uint32_t)i;
    }
    s->work = tape_alloc(maxin * STMT_W * sizeof *s->work, 0);
    if (!s->work) {
        st = AD_ENOMEM;
        goto out;
    }
    s->nent = nent;
    s->nleaf = nleaf;
    s->ngh = ngh;
    s->rec_id = r->id;
    s->rec = r;
    s->built = 1;
out:
    free(uses); free(inner); free(ls); free(lc); free(owner); free(ent_of); free(base); free(ent_fill);
    if (st)
        tape_stmts_free(s);   /* the caller falls back to the plain sweeps */
    return st;
}

/* Local gradient and Hessian of every statement at the cached x. */
static void preaccumulate(ad_tape *t)
{
    const tape_rec *r = t->rec;
    tape_stmts *s = &t->st;
    const double *val = t->val;
    const uint32_t *L = s->leaf, *nodes = s->inner;
    double *gh = s->gh, *w = s->work;
    static const double zero[STMT_W];
    for (size_t e = 0; e < s->nent; e++) {
        unsigned k = s->k[e];
        if (k == STMT_NODE)
            continue;
        size_t ni = s->inner_n[e];
        for (size_t q = 0; q < ni; q++) {
            uint32_t i = nodes[q], arg[2];
            double *g = w + q * STMT_W, *H = g + STMT_K;
            double d[2] = {0.0, 0.0};
            dual_rule2 p = {0.0, 0.0, 0.0, 0.0, 0.0};
            int kind = sweep_partials(r, val, i, d, &p);
            int na = scalar_args(r, i, arg);
            const double *ga[2], *Ha[2];
            double unit[2][STMT_K];
            for (int c = 0; c < na; c++) {
                uint32_t a = arg[c];
                size_t pa = s->pos[a];
                if (r->op[a] == OP_CONST) {
                    ga[c] = zero; Ha[c] = zero;
                } else if (is_scalar((tape_op)r->op[a]) && pa < ni && nodes[pa] == a) {
                    ga[c] = w + pa * STMT_W; Ha[c] = ga[c] + STMT_K;
                } else {
                    for (unsigned j = 0; j < STMT_K; j++)
                        unit[c][j] = j < k && L[j] == a ? 1.0 : 0.0;
                    ga[c] = unit[c]; Ha[c] = zero;
                }
            }
            if (kind == 1) {
                for (unsigned j = 0; j < k; j++)
                    g[j] = d[0] * ga[0][j];
                for (unsigned j = 0; j < k; j++)
                    for (unsigned l = 0; l < k; l++)
                        H[j * STMT_K + l] = d[0] * Ha[0][j * STMT_K + l] + d[1] * ga[0][j] * ga[0][l];
            } else {
                for (unsigned j = 0; j < k; j++)
                    g[j] = p.fa * ga[0][j] + p.fb * ga[1][j];
                for (unsigned j = 0; j < k; j++)
                    for (unsigned l = 0; l < k; l++)
                        H[j * STMT_K + l] = p.fa * Ha[0][j * STMT_K + l] + p.fb * Ha[1][j * STMT_K + l]
                            + p.faa * ga[0][j] * ga[0][l] + p.fbb * ga[1][j] * ga[1][l]
                            + p.fab * (ga[0][j] * ga[1][l] + ga[1][j] * ga[0][l]);
            }
        }
        /* The root is last: pack its g and upper H. */
        const double *g = w + (ni - 1) * STMT_W, *H = g + STMT_K;
        for (unsigned j = 0; j < k; j++)
            *gh++ = g[j];
        for (unsigned j = 0; j < k; j++)
            for (unsigned l = j; l < k; l++)
                *gh++ = H[j * STMT_K + l];
        L += k;
        nodes += ni;
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

/* Forward: tangents of the entries; zeroes their adjoint tangents.  Inputs
 * are seeded first, in one plain loop: they are not entries' work. */
void tape_stmts_tangent(ad_tape *t, const double *v)
{
    const tape_rec *r = t->rec;
    const tape_stmts *s = &t->st;
    const double *restrict val = t->val, *restrict gh = s->gh;
    const uint32_t *restrict L = s->leaf, *restrict node = s->node, *restrict in = r->in;
    const uint8_t *restrict kk = s->k;
    double *restrict dot = t->dot, *restrict adot = t->adot;
    const size_t nent = s->nent, nin = r->nin;
    for (size_t j = 0; j < nin; j++) {
        dot[in[j]] = v[j];
        adot[in[j]] = 0.0;
    }
    for (size_t e = 0; e < nent; e++) {
        const uint32_t i = node[e];
        double d;
        switch (kk[e]) {
        case 0:
            d = 0.0;
            break;
        case 1:
            d = gh[0] * dot[L[0]];
            gh += 2; L += 1;
            break;
        case 2:
            d = gh[0] * dot[L[0]] + gh[1] * dot[L[1]];
            gh += 5; L += 2;
            break;
        case 3:
            d = gh[0] * dot[L[0]] + gh[1] * dot[L[1]] + gh[2] * dot[L[2]];
            gh += 9; L += 3;
            break;
        case 4:
            d = gh[0] * dot[L[0]] + gh[1] * dot[L[1]] + gh[2] * dot[L[2]] + gh[3] * dot[L[3]];
            gh += 14; L += 4;
            break;
        default: {   /* STMT_NODE */
            tape_op op = (tape_op)r->op[i];
            if (op == OP_INPUT)
                continue;
            if (op == OP_CONST)
                dot[i] = 0.0;
            else
                sweep_node_tangent(r, val, dot, v, t->scr, i);
            adot[i] = 0.0;
            if (op == OP_MATVEC || op == OP_SPMV)
                memset(adot + i + 1, 0, r->mat[r->a[i]].m * sizeof *adot);
            continue;
        }
        }
        dot[i] = d;
        adot[i] = 0.0;
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

/* Reverse: adjoint tangents through the entries, at cached adjoints. */
void tape_stmts_reverse(ad_tape *t)
{
    const tape_rec *r = t->rec;
    const tape_stmts *s = &t->st;
    const double *restrict val = t->val, *restrict dot = t->dot, *restrict gh = s->gh + s->ngh;
    const uint32_t *restrict L = s->leaf + s->nleaf, *restrict node = s->node;
    const uint8_t *restrict kk = s->k;
    double *restrict adj = t->adj, *restrict adot = t->adot;
    for (size_t e = s->nent; e-- > 0;) {
        const uint32_t i = node[e];
        switch (kk[e]) {
        case 0:
            break;
        case 1:
            L -= 1; gh -= 2;
            rev_stmt(gh, L, adj[i], adot[i], dot, adot, 1);
            break;
        case 2:
            L -= 2; gh -= 5;
            rev_stmt(gh, L, adj[i], adot[i], dot, adot, 2);
            break;
        case 3:
            L -= 3; gh -= 9;
            rev_stmt(gh, L, adj[i], adot[i], dot, adot, 3);
            break;
        case 4:
            L -= 4; gh -= 14;
            rev_stmt(gh, L, adj[i], adot[i], dot, adot, 4);
            break;
        default: {
            tape_op op = (tape_op)r->op[i];
            if (op != OP_INPUT && op != OP_CONST)
                sweep_node_reverse_hvp(r, val, dot, adj, adot, t->scr, i);
            break;
        }
        }
    }
}

/* Vector mode: TAPE_LANES directions per pass, V (k×n) seeding the inputs. */
void tape_stmts_tangent_lanes(ad_tape *t, const double *V, size_t k, size_t n)
{
    enum { LN = TAPE_LANES };
    const tape_rec *r = t->rec;
    const tape_stmts *s = &t->st;
    const double *val = t->val, *gh = s->gh;
    const uint32_t *L = s->leaf;
    double *dotk = t->dotk, *adotk = t->adotk;
    for (size_t e = 0; e < s->nent; e++) {
        uint32_t i = s->node[e];
        unsigned k2 = s->k[e];
        double *y = dotk + (size_t)i * LN;
        if (k2 == STMT_NODE) {
            tape_op op = (tape_op)r->op[i];
            if (op == OP_INPUT)
                for (size_t l = 0; l < LN; l++)
                    y[l] = l < k ? V[l * n + r->a[i]] : 0.0;
            else if (op == OP_CONST)
                memset(y, 0, LN * sizeof *y);
            else
                sweep_node_tangent_lanes(r, val, dotk, t->scr, i);
            memset(adotk + (size_t)i * LN, 0, LN * sizeof *adotk);
            if (op == OP_MATVEC || op == OP_SPMV)
                memset(adotk + ((size_t)i + 1) * LN, 0, (size_t)r->mat[r->a[i]].m * LN * sizeof *adotk);
            continue;
        }
        double acc[LN] = {0};
        for (unsigned j = 0; j < k2; j++) {
            const double *d = dotk + (size_t)L[j] * LN;
            for (size_t l = 0; l < LN; l++)
                acc[l] += gh[j] * d[l];
        }
        memcpy(y, acc, sizeof acc);
        memset(adotk + (size_t)i * LN, 0, LN * sizeof *adotk);
        gh += k2 + k2 * (k2 + 1) / 2;
        L += k2;
    }
}

/* One statement of the lane reverse sweep; K is a compile-time constant in
 * each instantiation so the lane loops vectorize. */
static inline __attribute__((always_inline)) void
rev_lanes_stmt(const double *g, const double *H, const uint32_t *L, double yb,
               const double *ybd, const double *dotk, double *adotk, const unsigned K)
{
    enum { LN = TAPE_LANES };
    double acc[STMT_K][LN];
    for (unsigned j = 0; j < K; j++)
        for (size_t l = 0; l < LN; l++)
            acc[j][l] = ybd[l] * g[j];
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

void tape_stmts_reverse_lanes(ad_tape *t)
{
    enum { LN = TAPE_LANES };
    const tape_rec *r = t->rec;
    const tape_stmts *s = &t->st;
    const double *val = t->val, *dotk = t->dotk, *gh = s->gh + s->ngh;
    const uint32_t *L = s->leaf + s->nleaf;
    const double *adj = t->adj;
    double *adotk = t->adotk;
    for (size_t e = s->nent; e-- > 0;) {
        uint32_t i = s->node[e];
        unsigned k = s->k[e];
        if (k == STMT_NODE) {
            tape_op op = (tape_op)r->op[i];
            if (op != OP_INPUT && op != OP_CONST)
                sweep_node_reverse_lanes(r, val, dotk, adj, adotk, t->scr, i);
            continue;
        }
        L -= k;
        gh -= k + k * (k + 1) / 2;
        const double *ybd = adotk + (size_t)i * LN;
        switch (k) {
        case 0: break;
        case 1: rev_lanes_stmt(gh, gh + 1, L, adj[i], ybd, dotk, adotk, 1); break;
        case 2: rev_lanes_stmt(gh, gh + 2, L, adj[i], ybd, dotk, adotk, 2); break;
        case 3: rev_lanes_stmt(gh, gh + 3, L, adj[i], ybd, dotk, adotk, 3); break;
        default: rev_lanes_stmt(gh, gh + 4, L, adj[i], ybd, dotk, adotk, 4); break;
        }
    }
}
