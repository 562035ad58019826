/*
 * The benchmark functions shared by bench_ad.c (plain C and hyperad twins) and
 * bench_adolc.cpp (ADOL-C twins), and the C interface of the ADOL-C side.
 * Plain C11 and C++ both include this header.
 */
#ifndef BENCH_ADOLC_H
#define BENCH_ADOLC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The functions of ../shared/ANCHORS.md. */
typedef enum bench_fn {
    BENCH_ROSEN = 0,  /* chained Rosenbrock                                   */
    BENCH_LOGREG,     /* logistic loss written element by element              */
    BENCH_DENSE,      /* sum sin(x_i) x_{i+1}^2 + exp(mean(x)): dense Hessian   */
    BENCH_CHAIN       /* sum_i c(x_i), c = phi^D, phi(x) = sin(x) exp(-x^2)     */
                      /* + tanh(x), D = BENCH_CHAIN_DEPTH: deep transcendental  */
} bench_fn;

/* BENCH_CHAIN: applications of phi per element (7 tape ops each). */
#define BENCH_CHAIN_DEPTH 100

/* One benchmark problem: the function and its data (borrowed). */
typedef struct bench_problem {
    bench_fn fn;
    size_t n;          /* number of inputs (d for BENCH_LOGREG)                */
    size_t m;          /* BENCH_LOGREG: rows                                   */
    const double *X;   /* BENCH_LOGREG: m x n row-major                        */
    const double *y;   /* BENCH_LOGREG: labels +-1                             */
    double lambda;     /* BENCH_LOGREG: L2 weight                              */
} bench_problem;

/* What ADOL-C's tapestats() reports for the recorded tape. */
typedef struct bench_adolc_stats {
    size_t num_ops;        /* NUM_OPERATIONS                                  */
    size_t num_locs;       /* NUM_LOCATIONS (4-byte locint each)              */
    size_t num_vals;       /* NUM_VALUES (8-byte double each)                 */
    size_t max_lives;      /* NUM_MAX_LIVES (live adoubles, Taylor slots)     */
    size_t tay_stack;      /* TAY_STACK_SIZE                                  */
    int op_file, loc_file, val_file; /* 1 when that part went to a file       */
    size_t op_buf, loc_buf, val_buf; /* buffer sizes (entries)                */
} bench_adolc_stats;

/* All return 0 on success, or a negative ADOL-C return code / -100 for an
 * exception or bad argument; bench_adolc_errmsg() says which. */
int bench_adolc_record(const bench_problem *p, const double *x, double *f);
int bench_adolc_eval(const bench_problem *p, const double *x, double *f);
int bench_adolc_gradient(const bench_problem *p, const double *x, double *g);
int bench_adolc_hvp(const bench_problem *p, const double *x, const double *v, double *hv);
/* H: n*n row-major; ADOL-C's hessian() fills the lower triangle only. */
int bench_adolc_hessian(const bench_problem *p, const double *x, double *H);
int bench_adolc_get_stats(const bench_problem *p, bench_adolc_stats *s);
const char *bench_adolc_errmsg(void);
/* Frees what the ADOL-C side allocated (row pointers, scratch). */
void bench_adolc_cleanup(void);

#ifdef __cplusplus
}
#endif

#endif
