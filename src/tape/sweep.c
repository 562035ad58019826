/*
 * The sweeps: tight loops over the op array with a switch on the op code,
 * reading structure-of-arrays storage.  No allocation, no function pointer
 * per op.  Each sweep is written once as an always-inline template with
 * compile-time flags and instantiated for the combinations the drivers use,
 * so a value-only sweep carries no derivative code and a gradient sweep no
 * second-order code (the rules' unused partials are dead code: libm is
 * built with -fno-math-errno, so its calls are pure).
 *
 * Cases come from the op table (TAPE_UNARY_OPS / TAPE_BINARY_OPS) and the
 * rules of src/dual; the vector nodes are written out by hand.  There is no
 * default label: -Wswitch makes every sweep handle every op.
 *
 * For y = φ(a, b) (DESIGN.md, "The sweeps"):
 *   value:        y = φ(a, b)
 *   tangent:      ẏ = φa ȧ + φb ḃ
 *   reverse:      ā += ȳ φa,  b̄ += ȳ φb
 *   dual-adjoint: ā̇ += ẏ̄ φa + ȳ (φaa ȧ + φab ḃ),  likewise for b
 *   hyper-dual:   the ε1ε2 part follows hdual_chain2 (src/dual/dual.h)
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dual/dual.h"
#include "tape/partials.h"
#include "tape/tape_internal.h"

#define INLINE static inline __attribute__((always_inline))
#define L TAPE_LANES

/* The argument nodes of matrix node d: a pointer into `base` when they are
 * contiguous, else gathered into scr (stride `lanes`). */
INLINE const double *mat_args(const tape_rec *r, const tape_mat *d, const double *base,
                              double *scr, size_t lanes)
{
    if (d->contiguous)
        return base + (size_t)d->x0 * lanes;
    const uint32_t *e = r->ext + d->xoff;
    for (size_t k = 0; k < d->n; k++)
        for (size_t l = 0; l < lanes; l++)
            scr[k * lanes + l] = base[(size_t)e[k] * lanes + l];
    return scr;
}

/* y[0..m) = A x (lanes = 1) or Y (m×lanes) = A X (n×lanes). */
INLINE void mat_apply(const tape_mat *d, const double *x, double *y, size_t lanes)
{
    const int m = (int)d->m, n = (int)d->n, ls = (int)lanes;
    if (d->A) {
        if (lanes == 1)
            cblas_dgemv(CblasRowMajor, CblasNoTrans, m, n, 1.0, d->A, n, x, 1, 0.0, y, 1);
        else
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, ls, n, 1.0, d->A, n,
                        x, ls, 0.0, y, ls);
        return;
    }
    const size_t *rp = d->csr.rowptr;
    const uint32_t *ci = d->csr.colind;
    const double *av = d->csr.val;
    for (size_t row = 0; row < d->m; row++) {
        double *yr = y + row * lanes;
        for (size_t l = 0; l < lanes; l++)
            yr[l] = 0.0;
        for (size_t k = rp[row]; k < rp[row + 1]; k++)
            for (size_t l = 0; l < lanes; l++)
                yr[l] += av[k] * x[(size_t)ci[k] * lanes + l];
    }
}

/* xbar (adjoints of the argument nodes, stride lanes) += Aᵀ ybar. */
INLINE void mat_apply_t(const tape_rec *r, const tape_mat *d, const double *ybar, double *xbar,
                        double *scr, size_t lanes)
{
    const int m = (int)d->m, n = (int)d->n, ls = (int)lanes;
    double *t = d->contiguous ? xbar + (size_t)d->x0 * lanes : scr;
    double beta = d->contiguous ? 1.0 : 0.0;
    if (d->A) {
        if (lanes == 1)
            cblas_dgemv(CblasRowMajor, CblasTrans, m, n, 1.0, d->A, n, ybar, 1, beta, t, 1);
        else
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, ls, m, 1.0, d->A, n,
                        ybar, ls, beta, t, ls);
    } else {
        if (!d->contiguous)
            memset(t, 0, (size_t)d->n * lanes * sizeof *t);
        const size_t *rp = d->csr.rowptr;
        const uint32_t *ci = d->csr.colind;
        const double *av = d->csr.val;
        for (size_t row = 0; row < d->m; row++) {
            const double *yr = ybar + row * lanes;
            for (size_t k = rp[row]; k < rp[row + 1]; k++)
                for (size_t l = 0; l < lanes; l++)
                    t[(size_t)ci[k] * lanes + l] += av[k] * yr[l];
        }
    }
    if (!d->contiguous) {
        const uint32_t *e = r->ext + d->xoff;
        for (size_t k = 0; k < d->n; k++)
            for (size_t l = 0; l < lanes; l++)
                xbar[(size_t)e[k] * lanes + l] += scr[k * lanes + l];
    }
}

/* Σ c_k x[arg_k] (c NULL: Σ x[arg_k]); the contiguous case reads no index. */
INLINE double vsum(const double *restrict x, const vec_args *g)
{
    double s = 0.0;
    if (g->contig) {
        const double *p = x + g->x0;
        if (g->c)
            for (uint32_t k = 0; k < g->n; k++) s += g->c[k] * p[k];
        else
            for (uint32_t k = 0; k < g->n; k++) s += p[k];
    } else {
        if (g->c)
            for (uint32_t k = 0; k < g->n; k++) s += g->c[k] * x[g->e[k]];
        else
            for (uint32_t k = 0; k < g->n; k++) s += x[g->e[k]];
    }
    return s;
}

/* x[arg_k] += y c_k (c NULL: += y).  Descending k: the reverse sweep walks
 * the tape backwards, and reading each list backwards too makes the whole
 * sweep one descending stream the prefetcher follows (forward lists inside
 * a backward walk measured 2–3× slower on the logistic loss). */
INLINE void vaxpy(double *restrict x, const vec_args *g, double y)
{
    if (g->contig) {
        double *p = x + g->x0;
        if (g->c)
            for (uint32_t k = g->n; k-- > 0;) p[k] += y * g->c[k];
        else
            for (uint32_t k = g->n; k-- > 0;) p[k] += y;
    } else {
        if (g->c)
            for (uint32_t k = g->n; k-- > 0;) x[g->e[k]] += y * g->c[k];
        else
            for (uint32_t k = g->n; k-- > 0;) x[g->e[k]] += y;
    }
}

/* ---- forward: values (DV) and/or tangents (DD) over nodes [from, to) --- */

INLINE void fwd(const tape_rec *restrict r, double *restrict val, double *restrict dot,
                const double *restrict x, const double *restrict v, double *restrict scr,
                double *restrict dc, size_t from, size_t to, const int DV, const int DD)
{
    const uint8_t *op = r->op;
    const uint32_t *A = r->a, *B = r->b;
    for (size_t i = from; i < to; i++) {
        const uint32_t a = A[i], b = B[i];
        switch ((tape_op)op[i]) {
        case OP_INPUT:
            if (DV) val[i] = x[a];
            if (DD) dot[i] = v[a];
            break;
        case OP_CONST:
            if (DV) val[i] = r->cst[a];
            if (DD) dot[i] = 0.0;
            break;
#define FWD_U(N, n, K, C)                                               \
        case OP_##N: {                                                  \
            double xa = val[a], c = TAPE_ARG_##K(r, i), y, d1, d2;      \
            if (DV) val[i] = y = dual_##n##_f(xa, c); else y = val[i];  \
            if (DV && TAPE_CACHED(N) && dc) {                           \
                dual_##n##_d(xa, y, c, &d1, &d2);                       \
                dc[b] = d1;   /* b: the node's dc slot */             \
            }                                                           \
            if (DD) {                                                   \
                if (!DV && TAPE_CACHED(N) && dc)                        \
                    d1 = dc[b];                                         \
                else                                                    \
                    dual_##n##_d(xa, y, c, &d1, &d2);                   \
                dot[i] = dual_chain1(d1, dot[a]);                       \
            }                                                           \
            break;                                                      \
        }
        TAPE_UNARY_OPS(FWD_U)
#define FWD_B(N, n, C)                                                  \
        case OP_##N: {                                                  \
            double va = val[a], vb = val[b], y;                         \
            if (DV) val[i] = y = dual_##n##_f(va, vb); else y = val[i]; \
            if (DD) {                                                   \
                dual_rule2 q;                                           \
                dual_##n##_d(va, vb, y, &q);                            \
                dot[i] = dual_chain2(&q, dot[a], dot[b]);               \
            }                                                           \
            break;                                                      \
        }
        TAPE_BINARY_OPS(FWD_B)
        case OP_SUM:
        case OP_DOT: {
            vec_args g = vec_view(r, op[i] == OP_DOT, a, b);
            if (DV) val[i] = vsum(val, &g);
            if (DD) dot[i] = vsum(dot, &g);
            break;
        }
        case OP_DOTV: {
            const uint32_t *ex = r->ext + a, *ey = ex + b;
            double s = 0.0, sd = 0.0;
            for (uint32_t k = 0; k < b; k++) {
                if (DV) s += val[ex[k]] * val[ey[k]];
                if (DD) sd += dot[ex[k]] * val[ey[k]] + val[ex[k]] * dot[ey[k]];
            }
            if (DV) val[i] = s;
            if (DD) dot[i] = sd;
            break;
        }
        case OP_MATVEC:
        case OP_SPMV: {
            const tape_mat *d = &r->mat[a];
            if (DV) mat_apply(d, mat_args(r, d, val, scr, 1), val + i + 1, 1);
            if (DD) mat_apply(d, mat_args(r, d, dot, scr, 1), dot + i + 1, 1);
            break;
        }
        case OP_VOUT:
            break;
        case OP_COUNT:
            break;
        }
    }
}

/* Leading input nodes of [from, to) are copies: memcpy, not the switch
 * (inputs are usually recorded first: one node in six on Rosenbrock). */
static size_t lead(const tape_rec *r, size_t from, size_t to)
{
    if (from != 0)
        return 0;
    return r->nlead < to ? r->nlead : to;
}

void sweep_forward(const tape_rec *r, double *val, double *dot, const double *x,
                   const double *v, double *scr, double *dc, size_t from, size_t to)
{
    size_t p = lead(r, from, to);
    memcpy(val, x, p * sizeof *val);
    memcpy(dot, v, p * sizeof *dot);
    fwd(r, val, dot, x, v, scr, dc, from + p, to, 1, 1);
}

void sweep_value_only(const tape_rec *r, double *val, const double *x, double *scr,
                      double *dc, size_t from, size_t to)
{
    size_t p = x ? lead(r, from, to) : 0;
    if (p)
        memcpy(val, x, p * sizeof *val);
    fwd(r, val, NULL, x, NULL, scr, dc, from + p, to, 1, 0);
}

void sweep_tangent(const tape_rec *r, const double *val, double *dot, const double *v,
                   double *scr, const double *dc)
{
    size_t p = lead(r, 0, r->end);
    memcpy(dot, v, p * sizeof *dot);
    fwd(r, (double *)val, dot, NULL, v, scr, (double *)dc, p, r->end, 0, 1);
}

/* f'' of a TAPE_CACHED op from its value y and its kept f' (no libm call):
 * sin'' = −sin, cos'' = −cos, tanh'' = −2 tanh · tanh'. */
INLINE double cached_d2(tape_op op, double y, double d1)
{
    return op == OP_TANH ? -2.0 * y * d1 : -y;
}

/* ---- reverse: adjoints (WA) and/or adjoint tangents (WD) --------------- */

/* Carried adjoints (CF): when node i's argument is node i − 1 and i is its
 * only user (r->cf, made by tape_carry_flags), what node i adds to that
 * argument is all it will get, so it goes to node i − 1 in a register as
 * well as to memory.  Node i − 1 then starts from the register instead of
 * loading what was just stored: chains of single-use ops (the usual shape
 * of an expression) stop waiting on a store-to-load forward at every node.
 * The register holds the very sum the memory holds (0 + contribution), so
 * results are the same bits.  YB/YBD: node i's adjoint and adjoint tangent. */
#define YB (CF && have ? cya : adj[i])
#define YBD (CF && have ? cyd : adot[i])
#define ADD_ADJ(x, v, bit)                                              \
    do {                                                                \
        double t_ = adj[x] + (v);                                       \
        adj[x] = t_;                                                    \
        if (CF && (cfl & (bit))) ncya = t_;                             \
    } while (0)
#define ADD_ADOT(x, v, bit)                                             \
    do {                                                                \
        double t_ = adot[x] + (v);                                      \
        adot[x] = t_;                                                   \
        if (CF && (cfl & (bit))) ncyd = t_;                             \
    } while (0)

INLINE void rev(const tape_rec *restrict r, const double *restrict val,
                const double *restrict dot, double *restrict adj, double *restrict adot,
                double *restrict scr, const double *restrict dc, size_t lo, size_t hi,
                const int WA, const int WD, const int CF)
{
    const uint8_t *op = r->op, *cf = r->cf;
    const uint32_t *A = r->a, *B = r->b;
    double cya = 0.0, cyd = 0.0, ncya = 0.0, ncyd = 0.0;
    int have = 0, hnext = 0;
    for (size_t i = hi; i-- > lo;) {
        const uint32_t a = A[i], b = B[i];
        const uint8_t cfl = CF ? cf[i] : 0;
        if (CF) {
            /* the carry the node above left for this node, if any */
            have = hnext;
            hnext = (cfl & 3) != 0;
            cya = ncya;
            cyd = ncyd;
        }
        switch ((tape_op)op[i]) {
        case OP_INPUT:
        case OP_CONST:
        case OP_VOUT:
        case OP_COUNT:
            break;
#define REV_U(N, n, K, C)                                               \
        case OP_##N: {                                                  \
            double d1, d2, yb = WA ? YB : adj[i];                       \
            if (TAPE_CACHED(N) && dc) {                                 \
                d1 = dc[b];                                             \
                d2 = cached_d2(OP_##N, val[i], d1);                     \
            } else {                                                    \
                dual_##n##_d(val[a], val[i], TAPE_ARG_##K(r, i), &d1, &d2); \
            }                                                           \
            if (WA) ADD_ADJ(a, yb * d1, 1);                             \
            if (WD) ADD_ADOT(a, C ? dual_adjdot1(d1, d2, yb, YBD, dot[a]) \
                                  : YBD * d1, 1);                       \
            break;                                                      \
        }
        TAPE_UNARY_OPS(REV_U)
#define REV_B(N, n, C)                                                  \
        case OP_##N: {                                                  \
            dual_rule2 q;                                               \
            double yb = WA ? YB : adj[i];                               \
            dual_##n##_d(val[a], val[b], val[i], &q);                   \
            if (WA) {                                                   \
                ADD_ADJ(a, yb * q.fa, 1);                               \
                ADD_ADJ(b, yb * q.fb, 2);                               \
            }                                                           \
            if (WD) {                                                   \
                double ybd = YBD;                                       \
                if (C) {                                                \
                    double da = dot[a], db = dot[b];                    \
                    ADD_ADOT(a, ybd * q.fa + yb * (q.faa * da + q.fab * db), 1); \
                    ADD_ADOT(b, ybd * q.fb + yb * (q.fab * da + q.fbb * db), 2); \
                } else {                                                \
                    ADD_ADOT(a, ybd * q.fa, 1);                         \
                    ADD_ADOT(b, ybd * q.fb, 2);                         \
                }                                                       \
            }                                                           \
            break;                                                      \
        }
        TAPE_BINARY_OPS(REV_B)
        case OP_SUM:
        case OP_DOT: {
            vec_args g = vec_view(r, op[i] == OP_DOT, a, b);
            if (WA) vaxpy(adj, &g, adj[i]);
            if (WD) vaxpy(adot, &g, adot[i]);
            break;
        }
        case OP_DOTV: {
            const uint32_t *ex = r->ext + a, *ey = ex + b;
            double yb = adj[i], ybd = WD ? adot[i] : 0.0;
            for (uint32_t k = 0; k < b; k++) {
                uint32_t p = ex[k], q = ey[k];
                if (WA) {
                    adj[p] += yb * val[q];
                    adj[q] += yb * val[p];
                }
                if (WD) {
                    adot[p] += ybd * val[q] + yb * dot[q];
                    adot[q] += ybd * val[p] + yb * dot[p];
                }
            }
            break;
        }
        case OP_MATVEC:
        case OP_SPMV: {
            const tape_mat *d = &r->mat[a];
            if (WA) mat_apply_t(r, d, adj + i + 1, adj, scr, 1);
            if (WD) mat_apply_t(r, d, adot + i + 1, adot, scr, 1);
            break;
        }
        }
    }
}

void sweep_reverse(const tape_rec *r, const double *val, double *adj, double *scr,
                   const double *dc)
{
    memset(adj, 0, r->end * sizeof *adj);
    adj[r->out] = 1.0;
    /* Input nodes are no-ops in reverse: stop above the leading ones. */
    size_t lo = lead(r, 0, r->out), hi = (size_t)r->out + 1;
    if (r->cf)
        rev(r, val, NULL, adj, NULL, scr, dc, lo, hi, 1, 0, 1);
    else
        rev(r, val, NULL, adj, NULL, scr, dc, lo, hi, 1, 0, 0);
}

void sweep_reverse_hvp(const tape_rec *r, const double *val, const double *dot,
                       double *adj, double *adot, int with_adj, double *scr, const double *dc)
{
    memset(adot, 0, r->end * sizeof *adot);
    if (with_adj) {
        memset(adj, 0, r->end * sizeof *adj);
        adj[r->out] = 1.0;
        if (r->cf)
            rev(r, val, dot, adj, adot, scr, dc, lead(r, 0, r->out), (size_t)r->out + 1, 1, 1, 1);
        else
            rev(r, val, dot, adj, adot, scr, dc, lead(r, 0, r->out), (size_t)r->out + 1, 1, 1, 0);
    } else {
        if (r->cf)
            rev(r, val, dot, adj, adot, scr, dc, lead(r, 0, r->out), (size_t)r->out + 1, 0, 1, 1);
        else
            rev(r, val, dot, adj, adot, scr, dc, lead(r, 0, r->out), (size_t)r->out + 1, 0, 1, 0);
    }
}

/* One node of the tangent sweep, and one of the reverse sweep of adjoint
 * tangents at cached adjoints: the statement sweeps (stmt.c) use them for
 * the nodes they do not preaccumulate (vector nodes). */
void sweep_node_tangent(const tape_rec *r, const double *val, double *dot, const double *v,
                        double *scr, size_t i)
{
    fwd(r, (double *)val, dot, NULL, v, scr, NULL, i, i + 1, 0, 1);
}

void sweep_node_reverse_hvp(const tape_rec *r, const double *val, const double *dot,
                            double *adj, double *adot, double *scr, size_t i)
{
    rev(r, val, dot, adj, adot, scr, NULL, i, i + 1, 0, 1, 0);
}

int sweep_partials(const tape_rec *r, const double *val, size_t i, double d[2], dual_rule2 *q)
{
    return tape_partials(r, val, i, d, q);
}

/* ---- vector mode: L tangent lanes per node ---------------------------- */

INLINE void lanes_fwd(const tape_rec *restrict r, const double *restrict val,
                      double *restrict dotk, const double *restrict V, size_t k,
                      size_t n, double *restrict scr, size_t from, size_t to)
{
    const uint8_t *op = r->op;
    const uint32_t *A = r->a, *B = r->b;
    for (size_t i = from; i < to; i++) {
        const uint32_t a = A[i], b = B[i];
        double *y = dotk + i * L;
        switch ((tape_op)op[i]) {
        case OP_INPUT:
            for (size_t l = 0; l < L; l++)
                y[l] = l < k ? V[l * n + a] : 0.0;
            break;
        case OP_CONST:
            for (size_t l = 0; l < L; l++)
                y[l] = 0.0;
            break;
#define TL_U(N, n, K, C)                                                \
        case OP_##N: {                                                  \
            double d1, d2;                                              \
            dual_##n##_d(val[a], val[i], TAPE_ARG_##K(r, i), &d1, &d2); \
            const double *da = dotk + (size_t)a * L;                    \
            for (size_t l = 0; l < L; l++)                              \
                y[l] = d1 * da[l];                                      \
            break;                                                      \
        }
        TAPE_UNARY_OPS(TL_U)
#define TL_B(N, n, C)                                                   \
        case OP_##N: {                                                  \
            dual_rule2 q;                                               \
            dual_##n##_d(val[a], val[b], val[i], &q);                   \
            const double *da = dotk + (size_t)a * L, *db = dotk + (size_t)b * L; \
            for (size_t l = 0; l < L; l++)                              \
                y[l] = q.fa * da[l] + q.fb * db[l];                     \
            break;                                                      \
        }
        TAPE_BINARY_OPS(TL_B)
        case OP_SUM:
        case OP_DOT: {
            vec_args g = vec_view(r, op[i] == OP_DOT, a, b);
            double s[L] = {0};
            for (uint32_t j = 0; j < g.n; j++) {
                const double *d = dotk + (size_t)vec_arg(&g, j) * L;
                double c = g.c ? g.c[j] : 1.0;
                for (size_t l = 0; l < L; l++)
                    s[l] += c * d[l];
            }
            memcpy(y, s, sizeof s);
            break;
        }
        case OP_DOTV: {
            const uint32_t *ex = r->ext + a, *ey = ex + b;
            double s[L] = {0};
            for (uint32_t j = 0; j < b; j++) {
                const double *dx = dotk + (size_t)ex[j] * L, *dy = dotk + (size_t)ey[j] * L;
                double vx = val[ex[j]], vy = val[ey[j]];
                for (size_t l = 0; l < L; l++)
                    s[l] += dx[l] * vy + vx * dy[l];
            }
            memcpy(y, s, sizeof s);
            break;
        }
        case OP_MATVEC:
        case OP_SPMV: {
            const tape_mat *d = &r->mat[a];
            mat_apply(d, mat_args(r, d, dotk, scr, L), dotk + (i + 1) * L, L);
            break;
        }
        case OP_VOUT:
        case OP_COUNT:
            break;
        }
    }
}

INLINE void lanes_rev(const tape_rec *restrict r, const double *restrict val,
                      const double *restrict dotk, const double *restrict adj,
                      double *restrict adotk, double *restrict scr, size_t lo, size_t hi)
{
    const uint8_t *op = r->op;
    const uint32_t *A = r->a, *B = r->b;
    for (size_t i = hi; i-- > lo;) {
        const uint32_t a = A[i], b = B[i];
        const double *ybd = adotk + i * L;
        switch ((tape_op)op[i]) {
        case OP_INPUT:
        case OP_CONST:
        case OP_VOUT:
        case OP_COUNT:
            break;
#define RL_U(N, n, K, C)                                                \
        case OP_##N: {                                                  \
            double d1, d2, yb = adj[i];                                 \
            dual_##n##_d(val[a], val[i], TAPE_ARG_##K(r, i), &d1, &d2); \
            double *xa = adotk + (size_t)a * L;                         \
            const double *da = dotk + (size_t)a * L;                    \
            double s = yb * d2;                                         \
            for (size_t l = 0; l < L; l++)                              \
                xa[l] += C ? ybd[l] * d1 + s * da[l] : ybd[l] * d1;     \
            break;                                                      \
        }
        TAPE_UNARY_OPS(RL_U)
#define RL_B(N, n, C)                                                   \
        case OP_##N: {                                                  \
            dual_rule2 q;                                               \
            double yb = adj[i];                                         \
            dual_##n##_d(val[a], val[b], val[i], &q);                   \
            double *xa = adotk + (size_t)a * L, *xb = adotk + (size_t)b * L; \
            const double *da = dotk + (size_t)a * L, *db = dotk + (size_t)b * L; \
            double saa = yb * q.faa, sab = yb * q.fab, sbb = yb * q.fbb; \
            double ta[L], tb[L];                                        \
            for (size_t l = 0; l < L; l++) {                            \
                ta[l] = C ? ybd[l] * q.fa + saa * da[l] + sab * db[l] : ybd[l] * q.fa; \
                tb[l] = C ? ybd[l] * q.fb + sab * da[l] + sbb * db[l] : ybd[l] * q.fb; \
            }                                                           \
            for (size_t l = 0; l < L; l++)                              \
                xa[l] += ta[l];                                         \
            for (size_t l = 0; l < L; l++)                              \
                xb[l] += tb[l];                                         \
            break;                                                      \
        }
        TAPE_BINARY_OPS(RL_B)
        case OP_SUM:
        case OP_DOT: {
            vec_args g = vec_view(r, op[i] == OP_DOT, a, b);
            for (uint32_t j = g.n; j-- > 0;) {
                double *d = adotk + (size_t)vec_arg(&g, j) * L;
                double c = g.c ? g.c[j] : 1.0;
                for (size_t l = 0; l < L; l++)
                    d[l] += c * ybd[l];
            }
            break;
        }
        case OP_DOTV: {
            const uint32_t *ex = r->ext + a, *ey = ex + b;
            double yb = adj[i];
            for (uint32_t j = 0; j < b; j++) {
                size_t p = ex[j], q = ey[j];
                double vp = val[p], vq = val[q];
                for (size_t l = 0; l < L; l++) {
                    double tp = ybd[l] * vq + yb * dotk[q * L + l];
                    double tq = ybd[l] * vp + yb * dotk[p * L + l];
                    adotk[p * L + l] += tp;
                    adotk[q * L + l] += tq;
                }
            }
            break;
        }
        case OP_MATVEC:
        case OP_SPMV:
            mat_apply_t(r, &r->mat[a], adotk + (i + 1) * L, adotk, scr, L);
            break;
        }
    }
}

void sweep_tangent_lanes(const tape_rec *r, const double *val, double *dotk, const double *V,
                         size_t k, size_t n, double *scr)
{
    lanes_fwd(r, val, dotk, V, k, n, scr, 0, r->end);
}

void sweep_reverse_lanes(const tape_rec *r, const double *val, const double *dotk,
                         const double *adj, double *adotk, double *scr)
{
    memset(adotk, 0, r->end * L * sizeof *adotk);
    lanes_rev(r, val, dotk, adj, adotk, scr, 0, r->end);
}

/* Single nodes of the lane sweeps, for the statement sweeps (stmt.c). */
void sweep_node_tangent_lanes(const tape_rec *r, const double *val, double *dotk,
                              double *scr, size_t i)
{
    lanes_fwd(r, val, dotk, NULL, 0, 0, scr, i, i + 1);
}

void sweep_node_reverse_lanes(const tape_rec *r, const double *val, const double *dotk,
                              const double *adj, double *adotk, double *scr, size_t i)
{
    lanes_rev(r, val, dotk, adj, adotk, scr, i, i + 1);
}

/* ---- hyper-dual forward: e1 (direction v), e2 (w), e12 (vᵀ∇²y w) ------ */

void sweep_hyper(const tape_rec *restrict r, const double *restrict val, double *restrict e1,
                 double *restrict e2, double *restrict e12, const double *restrict v,
                 const double *restrict w, double *restrict scr)
{
    const uint8_t *op = r->op;
    const uint32_t *A = r->a, *B = r->b;
    const size_t to = r->end;
    for (size_t i = 0; i < to; i++) {
        const uint32_t a = A[i], b = B[i];
        switch ((tape_op)op[i]) {
        case OP_INPUT:
            e1[i] = v[a];
            e2[i] = w[a];
            e12[i] = 0.0;
            break;
        case OP_CONST:
            e1[i] = e2[i] = e12[i] = 0.0;
            break;
#define HY_U(N, n, K, C)                                                \
        case OP_##N: {                                                  \
            double d1, d2;                                              \
            dual_##n##_d(val[a], val[i], TAPE_ARG_##K(r, i), &d1, &d2); \
            hdual ha = {val[a], e1[a], e2[a], e12[a]}, hy;              \
            hdual_chain1(d1, d2, &ha, &hy);                             \
            e1[i] = hy.e1; e2[i] = hy.e2; e12[i] = hy.e12;              \
            break;                                                      \
        }
        TAPE_UNARY_OPS(HY_U)
#define HY_B(N, n, C)                                                   \
        case OP_##N: {                                                  \
            dual_rule2 q;                                               \
            dual_##n##_d(val[a], val[b], val[i], &q);                   \
            hdual ha = {val[a], e1[a], e2[a], e12[a]};                  \
            hdual hb = {val[b], e1[b], e2[b], e12[b]}, hy;              \
            hdual_chain2(&q, &ha, &hb, &hy);                            \
            e1[i] = hy.e1; e2[i] = hy.e2; e12[i] = hy.e12;              \
            break;                                                      \
        }
        TAPE_BINARY_OPS(HY_B)
        case OP_SUM:
        case OP_DOT: {
            vec_args g = vec_view(r, op[i] == OP_DOT, a, b);
            e1[i] = vsum(e1, &g);
            e2[i] = vsum(e2, &g);
            e12[i] = vsum(e12, &g);
            break;
        }
        case OP_DOTV: {
            const uint32_t *ex = r->ext + a, *ey = ex + b;
            double s1 = 0.0, s2 = 0.0, s12 = 0.0;
            for (uint32_t k = 0; k < b; k++) {
                uint32_t p = ex[k], q = ey[k];
                s1 += e1[p] * val[q] + val[p] * e1[q];
                s2 += e2[p] * val[q] + val[p] * e2[q];
                s12 += e12[p] * val[q] + val[p] * e12[q] + e1[p] * e2[q] + e2[p] * e1[q];
            }
            e1[i] = s1; e2[i] = s2; e12[i] = s12;
            break;
        }
        case OP_MATVEC:
        case OP_SPMV: {
            const tape_mat *d = &r->mat[a];
            mat_apply(d, mat_args(r, d, e1, scr, 1), e1 + i + 1, 1);
            mat_apply(d, mat_args(r, d, e2, scr, 1), e2 + i + 1, 1);
            mat_apply(d, mat_args(r, d, e12, scr, 1), e12 + i + 1, 1);
            break;
        }
        case OP_VOUT:
        case OP_COUNT:
            break;
        }
    }
}

/* ---- diagnostics (error paths only) ----------------------------------- */

/* The first node whose value (derivs = 0) or whose partials (derivs = 1)
 * are not finite, or −1. */
long sweep_first_bad(const tape_rec *r, const double *val, int derivs)
{
    for (size_t i = 0; i < r->end; i++) {
        if (!isfinite(val[i]))
            return (long)i;
        if (!derivs)
            continue;
        double d[2] = {0.0, 0.0};
        dual_rule2 q = {0.0, 0.0, 0.0, 0.0, 0.0};
        int kind = sweep_partials(r, val, i, d, &q);
        int ok = kind == 1 ? isfinite(d[0]) && isfinite(d[1])
               : kind == 2 ? isfinite(q.fa) && isfinite(q.fb) && isfinite(q.faa)
                             && isfinite(q.fab) && isfinite(q.fbb)
                           : 1;
        if (!ok)
            return (long)i;
    }
    return -1;
}

int sweep_cmp_flipped(const tape_rec *r, const double *val)
{
    for (size_t k = 0; k < r->ncmp; k++) {
        const tape_cmp *c = &r->cmp[k];
        double va = val[c->a], vb = val[c->b];
        int holds = c->kind == CMP_LT ? va < vb : va <= vb;
        if (!holds)
            return 1;
    }
    return 0;
}

/* Carry flags (see rev): cf[i] bit 0 when node i is a scalar op whose
 * argument a is node i − 1 and i its only user, bit 1 likewise for b.  The
 * output is never carried into (its adjoint is seeded).  Uses are counted
 * over the whole sweep range, so a node compared or read by a vector node
 * is never single-use here.  NULL when out of memory (no carries). */
uint8_t *sweep_carry_flags(const tape_rec *r)
{
    size_t n = r->end;
    uint8_t *u = calloc(n + 1, 1), *cf = calloc(n + 1, 1);
    if (!u || !cf) {
        free(u);
        free(cf);
        return NULL;
    }
#define USE1(j) do { if (u[j] < 2) u[j]++; } while (0)
    for (size_t i = 0; i < n; i++) {
        uint32_t a = r->a[i], b = r->b[i];
        switch ((tape_op)r->op[i]) {
        case OP_INPUT: case OP_CONST: case OP_VOUT: case OP_COUNT:
            break;
#define CU_U(N, n_, K, C) case OP_##N:
        TAPE_UNARY_OPS(CU_U)
#undef CU_U
            USE1(a);
            break;
#define CU_B(N, n_, C) case OP_##N:
        TAPE_BINARY_OPS(CU_B)
#undef CU_B
            USE1(a);
            USE1(b);
            break;
        case OP_SUM:
        case OP_DOT: {
            vec_args g = vec_view(r, r->op[i] == OP_DOT, a, b);
            for (uint32_t k = 0; k < g.n; k++) USE1(vec_arg(&g, k));
            break;
        }
        case OP_DOTV:
            for (size_t k = 0; k < 2 * (size_t)b; k++) USE1(r->ext[a + k]);
            break;
        case OP_MATVEC:
        case OP_SPMV: {
            const tape_mat *d = &r->mat[a];
            for (size_t k = 0; k < d->n; k++) USE1(r->ext[d->xoff + k]);
            break;
        }
        }
    }
#undef USE1
    for (size_t k = 0; k < r->ncmp; k++)
        u[r->cmp[k].a] = u[r->cmp[k].b] = 2;
    size_t nscalar = 0, ncarry = 0;
    for (size_t i = 1; i < n; i++) {
        tape_op o = (tape_op)r->op[i];
        if (o <= OP_CONST || o >= OP_SUM)
            continue;   /* scalar ops only */
        nscalar++;
        uint32_t p = (uint32_t)(i - 1);
        if (p == r->out || u[p] != 1)
            continue;
        if (r->a[i] == p)
            cf[i] |= 1;
        else if (o >= OP_ADD && r->b[i] == p)   /* binary ops: b is a node */
            cf[i] |= 2;
        ncarry += cf[i] != 0;
    }
    free(u);
    /* Carrying costs every node a little (the flag, the choice of source)
     * and saves a store-to-load wait only where the reverse sweep is a
     * chain of dependent nodes.  Measured: a deep chain of transcendental
     * ops (4 carries in 7 nodes) sweeps 34% faster, Rosenbrock (1 in 3,
     * independent terms the CPU overlaps anyway) 13% slower.  So: carry
     * when at least half the scalar nodes carry. */
    if (2 * ncarry < nscalar) {
        free(cf);
        return NULL;
    }
    return cf;
}
