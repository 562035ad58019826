/*
 * The tape: storage, recording and the sweeps' shared definitions.
 *
 * Layout (structure of arrays, grown geometrically): node i has an op code
 * op[i] (1 byte), two 32-bit arguments a[i], b[i], and, per handle, a value
 * val[i].  What a and b mean depends on the op's kind:
 *   INPUT      a = input number
 *   CONST      a = index of the value in the constant pool cst
 *   unary      a = argument node; b = pool index of the constant (CST ops)
 *              or the exponent (POWI)
 *   binary     a, b = argument nodes
 *   SUM/DOT/DOTV  a = offset in ext of the argument list, b = its length
 *              (DOT: ext[a] is the pool offset of the coefficients, the
 *              node list follows; DOTV: the x list then the y list)
 *   MATVEC/SPMV   a = index of the matrix descriptor; the m outputs are
 *              the m nodes that follow, with op VOUT (no-ops in sweeps)
 * Comparisons are not nodes: they sit in a side list checked after each
 * value sweep.
 *
 * A recording (tape_rec) is immutable once ended and may be shared by
 * several handles (ad_tape), each with its own sweep buffers.
 */
#ifndef HYPERAD_TAPE_INTERNAL_H
#define HYPERAD_TAPE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hyperad.h"

/* The one table of ops.  Unary ops: X(NAME, name, ARG, CURV) where ARG says
 * where the rule's constant comes from (NOC: none, CST: the pool, INT: b
 * itself) and CURV is 0 when the op's second derivative is identically zero
 * (then the reverse HVP sweep need not read the argument's tangent: fewer
 * bytes).  Binary ops: X(NAME, name, CURV).  The rules are dual_<name>_f /
 * dual_<name>_d in src/dual/rules.h.  Sweeps switch on the op with no
 * default label, so -Wswitch flags any sweep that forgets an op. */
#define TAPE_UNARY_OPS(X)                                                  \
    X(NEG, neg, NOC, 0) X(SQR, sqr, NOC, 1) X(SQRT, sqrt, NOC, 1)          \
    X(CBRT, cbrt, NOC, 1) X(EXP, exp, NOC, 1) X(EXPM1, expm1, NOC, 1)      \
    X(LOG, log, NOC, 1) X(LOG1P, log1p, NOC, 1) X(SIN, sin, NOC, 1)        \
    X(COS, cos, NOC, 1) X(TAN, tan, NOC, 1) X(ASIN, asin, NOC, 1)          \
    X(ACOS, acos, NOC, 1) X(ATAN, atan, NOC, 1) X(SINH, sinh, NOC, 1)      \
    X(COSH, cosh, NOC, 1) X(TANH, tanh, NOC, 1) X(ERF, erf, NOC, 1)        \
    X(ABS, abs, NOC, 0) X(SIGMOID, sigmoid, NOC, 1)                        \
    X(SOFTPLUS, softplus, NOC, 1) X(ADDC, addc, CST, 0)                    \
    X(MULC, mulc, CST, 0) X(POWC, powc, CST, 1) X(CSUB, csub, CST, 0)      \
    X(CDIV, cdiv, CST, 1) X(POWI, powi, INT, 1) X(SQADDC, sqaddc, CST, 1)

/* Binary ops users record (each has its ad_<name> constructor), then the
 * fused ops only the optimizer emits: sqdiff(a, b) = (a − b)², from
 * sqr(sub(a, b)), the residual of every least-squares objective (like
 * sqaddc(a, c) = (a + c)² above, from sqr(addc) and sqr(csub)). */
#define TAPE_BINARY_USER_OPS(X)                                            \
    X(ADD, add, 0) X(SUB, sub, 0) X(MUL, mul, 1) X(DIV, div, 1)            \
    X(POW, pow, 1) X(ATAN2, atan2, 1) X(HYPOT, hypot, 1) X(FMAX, fmax, 0)  \
    X(FMIN, fmin, 0)
#define TAPE_BINARY_OPS(X) TAPE_BINARY_USER_OPS(X) X(SQDIFF, sqdiff, 1)

typedef enum tape_op {
    OP_INPUT,
    OP_CONST,
#define X_ENUM1(N, n, k, c) OP_##N,
#define X_ENUM2(N, n, c) OP_##N,
    TAPE_UNARY_OPS(X_ENUM1)
    TAPE_BINARY_OPS(X_ENUM2)
#undef X_ENUM1
#undef X_ENUM2
    OP_SUM,
    OP_DOT,
    OP_DOTV,
    OP_MATVEC,
    OP_SPMV,
    OP_VOUT,
    OP_COUNT
} tape_op;

/* Ops whose first derivative value sweeps keep (in the handle's dc array)
 * for the sweeps after them: sin and cos, whose derivative is the other one
 * (one sincos in the value sweep instead of a second call in the reverse),
 * and tanh, whose value and sech² come from one exponential (rules.h).
 * Cheap ops recompute theirs: storing would only move more bytes.  Such a
 * node's b (unused by unary ops without a constant) is its slot in dc,
 * given when the node is made (by its constructor or the optimizer), so
 * dc holds one double per sin or cos node, not one per node. */
#define TAPE_CACHED(N) (OP_##N == OP_SIN || OP_##N == OP_COS || OP_##N == OP_TANH)
#define TAPE_CACHED_OP(op) ((op) == OP_SIN || (op) == OP_COS || (op) == OP_TANH)

/* The constant a unary rule receives. */
#define TAPE_ARG_NOC(r, i) 0.0
#define TAPE_ARG_CST(r, i) ((r)->cst[(r)->b[i]])
#define TAPE_ARG_INT(r, i) ((double)(int32_t)(r)->b[i])

/* SUM/DOT argument lists: when bit 31 of b is set the arguments are the
 * consecutive nodes ext[first], ext[first]+1, … and only ext[first] is
 * stored (the optimizer sets it: such sums read no index array and
 * vectorize).  Counts are below 2^31. */
#define VEC_CONTIG 0x80000000u

typedef struct vec_args {
    const uint32_t *e;   /* the index list (not contiguous)          */
    uint32_t x0, n;      /* first node (contiguous), count            */
    const double *c;     /* DOT coefficients, NULL for SUM            */
    int contig;
} vec_args;

static inline uint32_t vec_arg(const vec_args *v, uint32_t k)
{
    return v->contig ? v->x0 + k : v->e[k];
}

/* A dense (A != NULL) or CSR matrix node: y[0..m) = A x[0..n). */
typedef struct tape_mat {
    const double *A;
    ad_csr csr;
    uint32_t m, n;
    size_t xoff;      /* ext offset of the n argument nodes */
    uint32_t x0;      /* first argument node when contiguous */
    int contiguous;   /* argument nodes are x0, x0+1, …, x0+n−1 */
} tape_mat;

typedef enum tape_cmp_kind { CMP_LT, CMP_LE } tape_cmp_kind;

/* A recorded comparison, normalized so it held at recording: val[a] < val[b]
 * (LT) or val[a] <= val[b] (LE). */
typedef struct tape_cmp {
    uint32_t a, b;
    uint8_t kind;
} tape_cmp;

typedef struct tape_rec {
    atomic_int refs;
    uint32_t id;            /* unique per recording: checked against vars */
    size_t n, cap;          /* nodes */
    uint8_t *op;
    uint32_t *a, *b;
    double *cst;   size_t ncst, capcst;
    uint32_t *ext; size_t next, capext;
    tape_mat *mat; size_t nmat, capmat;
    tape_cmp *cmp; size_t ncmp, capcmp;
    uint32_t *in;  size_t nin, capin;   /* node of each input */
    int in_contig;                      /* inputs are nodes in[0], in[0]+1, … */
    size_t ndc;                         /* dc slots given (TAPE_CACHED nodes)  */
    uint8_t *cf;                        /* carry flags of the reverse sweeps
                                           (sweep_carry_flags), or NULL      */
    int cf_done;                        /* cf was made (or could not be)      */
    size_t nlead;                       /* nodes 0..nlead−1 are inputs 0..nlead−1
                                           (the usual order: inputs first):
                                           sweeps copy them, not interpret   */
    uint32_t out;
    int has_out;
    int complete;           /* ended without a structural error */
    int optimized;          /* tape_optimize made it (or it needs none)    */
    size_t end;             /* sweeps cover nodes [0, end): the output and
                               every input                                   */
    size_t max_scratch;     /* doubles of gather space a matrix node needs,
                               per lane (vector mode: TAPE_LANES times it)  */
} tape_rec;

static inline vec_args vec_view(const tape_rec *r, int is_dot, uint32_t a, uint32_t b)
{
    vec_args v;
    const uint32_t *e = r->ext + a;
    v.c = NULL;
    if (is_dot) {
        v.c = r->cst + e[0];
        e++;
    }
    v.e = e;
    v.x0 = e[0];
    v.n = b & ~VEC_CONTIG;
    v.contig = (b & VEC_CONTIG) != 0;
    return v;
}

/* Lanes of the vector-mode sweeps: directions carried per pass. */
#define TAPE_LANES 8

/* Preaccumulated statements (stmt.c). */
#define STMT_K 3                         /* leaves per statement at most:
                                            STMT_K + 1 leaf slots per node
                                            fit the dot block (16 bytes)    */
#define STMT_W (STMT_K + STMT_K * STMT_K) /* scratch doubles per inner node  */
#define STMT_NODE 255                    /* entry k: a plain node           */
#define STMT_COMP 254                    /* entry k: a compound sum/dot     */
#define STMT_ARG_NONE 0xFFFFFFFFu          /* argument codes (acode)          */
#define STMT_ARG_LEAF 0xFFFFFFF0u
#define STMT_MERGED 253                  /* term: its g, H are in the group
                                            of the term before it           */

typedef struct tape_stmts {
    const tape_rec *rec;   /* built for this recording (and rec_id)         */
    uint32_t rec_id;
    int built, valid;
    uint64_t epoch;        /* gh holds the values at the point of this epoch */
    size_t nent, ntm, nst, nleaf, ngrp, ngleaf, ngh, ninner;
    uint32_t *node;        /* entry -> node                                  */
    uint8_t *k;            /* entry: statement of k leaves, STMT_NODE, or
                              STMT_COMP (a sum/dot sweeping its terms)      */
    uint8_t *tk;           /* term of a compound: k leaves (its group's),
                              STMT_MERGED, or STMT_NODE                      */
    uint32_t *tn;          /* term -> its argument node                      */
    uint8_t *sk;           /* statement -> its leaf count (stream order)     */
    uint8_t *sfirst;       /* statement -> 1 when it starts a group          */
    double *sc;            /* statement -> the coefficient its g, H carry (a
                              dot term's; 1 otherwise)                      */
    size_t *cspan;         /* compound -> values and leaves its terms span   */
    uint32_t *leaf;        /* the statements' own leaves, in stream order    */
    uint8_t *gk;           /* group -> its leaf count                        */
    uint32_t *gleaf;       /* the groups' leaves (the sweeps read these)     */
    uint32_t *inner_n;     /* nodes inside each statement                    */
    uint32_t *inner;       /* those nodes, grouped by statement, root last   */
    uint32_t *acode;       /* interior node -> its 2 argument codes: an
                              earlier interior node's place, STMT_ARG_LEAF + j,
                              or STMT_ARG_NONE                               */
    double *gh;            /* per group: Σ sc·g (k), then Σ sc·upper H       */
    double *work;          /* preaccumulation scratch                        */
} tape_stmts;

struct ad_tape {
    tape_rec *rec;
    size_t max_ops;
    size_t lim;             /* nodes push() may reach without growing      */
    int recording;
    ad_status err;          /* sticky structural error of this recording */
    ad_status dom;          /* first domain error met while recording     */
    char msg[256];

    int optimize;           /* run tape_optimize before the first sweep   */
    unsigned nthreads;      /* threads ad_hessian / ad_hvp_batch may use  */
    struct ad_tape **workers;   /* their shared handles, kept between calls */
    unsigned nworkers;

    ad_fn fn;               /* set by ad_record: re-record on a branch flip */
    void *fn_ctx;

    /* Sweep buffers, grown to the recording's size and then reused. */
    double *val;  size_t capval;
    double *adj;  size_t capadj;
    double *dot;  size_t capdot;
    double *adot;                   /* adjoint tangents: in dot's block      */
    double *e12;  size_t cape12;    /* hyper-dual ε₁ε₂ parts                  */
    double *dotk; size_t capdotk;   /* TAPE_LANES tangents per node           */
    double *adotk; size_t capadotk;
    double *scr;  size_t capscr;    /* gather/scatter space of matrix nodes  */
    double *xc;   size_t capxc;     /* the cached point                       */
    int xc_lazy;                    /* ... is val at the inputs, not xc (set
                                     * by ad_record_end, until the next point) */
    double *dc;   size_t capdc;     /* f' of TAPE_CACHED nodes at xc          */
    int dc_ok;                      /* dc belongs to the values in val        */
    int val_ok;                     /* val holds the values at xc             */
    int hit;                        /* this call's x equals xc (set by check) */
    uint64_t epoch;                 /* counts the points cached so far        */
    int preacc;                     /* use statements for same-x HVPs         */
    unsigned hvps_here;             /* HVPs at xc since it was cached         */
    double hvp_mean;                /* running mean of HVPs per cached point  */
    tape_stmts st;
    int adj_ok;                     /* adj holds the adjoints at xc           */
};

/* tape.c */
int tape_grow(void **p, size_t *cap, size_t need, size_t elem);
int tape_buf(double **p, size_t *cap, size_t need);
void *tape_alloc(size_t bytes, int zero);
int tape_dots(ad_tape *t, size_t need);
int tape_scratch(double **p, size_t *cap, size_t need);
ad_status tape_set_error(ad_tape *t, ad_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
tape_rec *tape_rec_new(void);
void tape_rec_release(tape_rec *r);
const char *tape_op_name(tape_op op);
uint32_t tape_next_id(void);

/* Sets end, in_contig and nlead once a recording is complete.  in_order: in[]
 * increases (any raw recording), which spares a pass over it. */
void tape_rec_finish(tape_rec *r, int in_order);

/* optimize.c: a new, optimized recording of r (NULL when out of memory).
 * Rewrites r's ops in place first (equivalent ops: r stays valid).  scratch
 * (may be NULL) is memory the caller no longer needs; with 6 bytes a node
 * or more it holds the optimizer's work arrays. */
tape_rec *tape_optimize(const tape_rec *r, void *scratch, size_t scratch_bytes);

ad_status tape_ready(ad_tape *t);

/* stmt.c */
void tape_stmts_free(tape_stmts *s);
ad_status tape_stmts_ready(ad_tape *t);
void tape_stmts_tangent(ad_tape *t, const double *v);
void tape_stmts_reverse(ad_tape *t);
void tape_stmts_tangent_lanes(ad_tape *t, const double *V, size_t k, size_t n);
void tape_stmts_reverse_lanes(ad_tape *t);

/* record.c */
extern _Thread_local ad_tape *tape_active;
ad_status tape_rerecord(ad_tape *t, const double *x);

/* sweep.c: the sweeps.  Buffers must be sized by the caller (drivers.c). */
/* dc: f' of the nodes TAPE_CACHED names, written by value sweeps (non-NULL)
 * and read instead of recomputed by tangent and reverse sweeps (non-NULL
 * only while it belongs to the current values). */
void sweep_forward(const tape_rec *r, double *val, double *dot, const double *x,
                   const double *v, double *scr, double *dc, size_t from, size_t to);
void sweep_value_only(const tape_rec *r, double *val, const double *x, double *scr,
                      double *dc, size_t from, size_t to);
void sweep_tangent(const tape_rec *r, const double *val, double *dot, const double *v,
                   double *scr, const double *dc);
void sweep_reverse(const tape_rec *r, const double *val, double *adj, double *scr,
                   const double *dc);
void sweep_reverse_hvp(const tape_rec *r, const double *val, const double *dot,
                       double *adj, double *adot, int with_adj, double *scr, const double *dc);
void sweep_tangent_lanes(const tape_rec *r, const double *val, double *dotk,
                         const double *V, size_t k, size_t n, double *scr);
void sweep_reverse_lanes(const tape_rec *r, const double *val, const double *dotk,
                         const double *adj, double *adotk, double *scr);
void sweep_hyper(const tape_rec *r, const double *val, double *e1, double *e2,
                 double *e12, const double *v, const double *w, double *scr);
void sweep_node_tangent(const tape_rec *r, const double *val, double *dot, const double *v,
                        double *scr, size_t i);
void sweep_node_reverse_hvp(const tape_rec *r, const double *val, const double *dot,
                            double *adj, double *adot, double *scr, size_t i);
void sweep_node_tangent_lanes(const tape_rec *r, const double *val, double *dotk,
                              double *scr, size_t i);
void sweep_node_reverse_lanes(const tape_rec *r, const double *val, const double *dotk,
                              const double *adj, double *adotk, double *scr, size_t i);
struct dual_rule2;
int sweep_partials(const tape_rec *r, const double *val, size_t i, double d[2],
                   struct dual_rule2 *q);   /* tape_partials, out of line */
long sweep_first_bad(const tape_rec *r, const double *val, int derivs);
int sweep_cmp_flipped(const tape_rec *r, const double *val);
uint8_t *sweep_carry_flags(const tape_rec *r);

#endif
