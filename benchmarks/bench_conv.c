/*
 * bench_conv: convergence traces of gradient descent, L-BFGS, Newton-CG and
 * dense Newton (issue 5's condition-number picture), for the plots of
 * benchmarks/run, and a summary row per run for the tables beside SciPy.
 *
 * Problems (f* = 0 for all):
 *   rosen      extended Rosenbrock (tests/mgh.h), n = 1000 (--quick: 100),
 *              x0 = (-1.2, 1, -1.2, 1, ...)
 *   quadK      f = ½ Σ λ_i (x_i − 1)², λ_i = K^(i/(n−1)), K = 10, 100, 1000,
 *              n = 1000 (--quick: 100), x0 = 0 (condition number K; the same
 *              function as bench_scipy.py's "quad")
 * All on a hyperad tape recorded once; the solvers stop at ‖g‖∞ ≤ 1e-8.
 * Gradient descent is written here (not in the library): steepest descent
 * with an Armijo backtracking line search (c1 = 1e-4, halving; the first
 * trial step is twice the last accepted one), capped at --gd-iters.
 *
 *   bench_conv [--quick] [--out DIR] [--reps R] [--gd-iters N]
 *
 * Writes DIR/trace_<problem>_<solver>.dat (iter, seconds since the start,
 * f − f*, ‖g‖∞, f/g evaluations, HVPs: one line per iteration, iteration 0
 * at x0) from the last of R runs, and prints on stdout, tab-separated:
 *   SUMMARY problem n solver stop iters nfev ngev nhvp f gnorm median_s min_s
 * Exit status 1 when a solver returns an error status.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "hyperad.h"
#include "mgh.h"

#define GTOL 1e-8

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double gnorm_inf(size_t n, const double *g)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(g[i]));
    return m;
}

/* ---- the quadratic ------------------------------------------------------- */

typedef struct quad_ctx {
    double kappa;
} quad_ctx;

static ad_var quad_f(const ad_var *x, size_t n, void *ctx)
{
    const quad_ctx *q = ctx;
    ad_var f = ad_const(0.0);
    for (size_t i = 0; i < n; i++) {
        double lam = n > 1 ? pow(q->kappa, (double)i / (double)(n - 1)) : 1.0;
        f = ad_add(f, ad_mulc(ad_sqr(ad_addc(x[i], -1.0)), 0.5 * lam));
    }
    return f;
}

/* ---- traces -------------------------------------------------------------- */

typedef struct trace_pt {
    size_t iter, nfev, nhvp;
    double t, f, g;
} trace_pt;

typedef struct trace {
    trace_pt *p;
    size_t len, cap;
    double t0;
} trace;

static int trace_add(trace *tr, size_t iter, double t, double f, double g, size_t nfev, size_t nhvp)
{
    if (tr->len == tr->cap) {
        size_t cap = tr->cap ? 2 * tr->cap : 1024;
        trace_pt *np = realloc(tr->p, cap * sizeof *np);
        if (np == NULL)
            return -1;
        tr->p = np;
        tr->cap = cap;
    }
    tr->p[tr->len++] = (trace_pt){iter, nfev, nhvp, t, f, g};
    return 0;
}

static int on_progress(void *ctx, const ad_opt_progress *p)
{
    trace *tr = ctx;
    /* Our own clock (the same for every solver, gradient descent too). */
    return trace_add(tr, p->iter, now() - tr->t0, p->f, p->gnorm, p->nfev, p->nhvp) != 0;
}

/* ---- gradient descent (the baseline; Armijo backtracking) ------------------ */

static ad_status gd(const ad_problem *p, double *x, size_t max_iter, trace *tr, ad_opt_result *r)
{
    const size_t n = p->n;
    double *g = malloc(n * sizeof *g), *xt = malloc(n * sizeof *xt);
    ad_status st = AD_ENOMEM;
    memset(r, 0, sizeof *r);
    if (g == NULL || xt == NULL)
        goto out;
    double f, step = 1.0;
    st = p->fg(p->ctx, x, &f, g);
    r->nfev = r->ngev = 1;
    if (st != AD_OK)
        goto out;
    r->reason = AD_STOP_MAX_ITER;
    size_t k;
    for (k = 0; k < max_iter; k++) {
        double gi = gnorm_inf(n, g);
        if (gi <= GTOL) {
            r->reason = AD_STOP_GTOL;
            break;
        }
        double gg = cblas_ddot((int)n, g, 1, g, 1), ft = f;
        int ok = 0;
        step *= 2.0;
        for (int ls = 0; ls < 80; ls++) {
            for (size_t i = 0; i < n; i++)
                xt[i] = x[i] - step * g[i];
            st = p->fg(p->ctx, xt, &ft, NULL);
            r->nfev++;
            if (st != AD_OK && st != AD_EDOMAIN)
                goto out;
            if (st == AD_OK && ft <= f - 1e-4 * step * gg) {
                ok = 1;
                break;
            }
            step *= 0.5;
        }
        if (!ok) {
            r->reason = AD_STOP_LINESEARCH;
            st = AD_OK;
            break;
        }
        memcpy(x, xt, n * sizeof *x);
        st = p->fg(p->ctx, x, &f, g);
        r->nfev++;
        r->ngev++;
        if (st != AD_OK)
            goto out;
        if (tr && trace_add(tr, k + 1, now() - tr->t0, f, gnorm_inf(n, g), r->nfev, 0) != 0) {
            st = AD_ENOMEM;
            goto out;
        }
    }
    r->iters = k;
    r->f = f;
    r->gnorm = gnorm_inf(n, g);
    st = AD_OK;
out:
    free(g);
    free(xt);
    return st;
}

/* ---- one problem, every solver --------------------------------------------- */

enum { S_GD, S_LBFGS, S_NEWTON_CG, S_NEWTON_DENSE, S_N };
static const char *const sname[S_N] = {"gd", "lbfgs", "newton_cg", "newton_dense"};

static int run_problem(const char *name, ad_tape *t, const double *x0, const char *outdir, int reps,
                       size_t gd_iters)
{
    ad_problem p = ad_problem_tape(t);
    const size_t n = p.n;
    double *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g);
    double *times = malloc((size_t)reps * sizeof *times);
    int fails = 0;
    if (x == NULL || g == NULL || times == NULL) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(3);
    }
    for (int s = 0; s < S_N; s++) {
        trace tr = {NULL, 0, 0, 0.0};
        ad_opt_result r;
        ad_status st = AD_OK;
        memset(&r, 0, sizeof r);
        for (int k = 0; k < reps; k++) {
            memcpy(x, x0, n * sizeof *x);
            tr.len = 0;
            double f0;
            tr.t0 = now();
            st = p.fg(p.ctx, x, &f0, g);
            if (st != AD_OK || trace_add(&tr, 0, now() - tr.t0, f0, gnorm_inf(n, g), 1, 0) != 0) {
                fprintf(stderr, "bench_conv: %s: f at x0 failed: %s\n", name, ad_strerror(st));
                exit(1);
            }
            if (s == S_GD) {
                st = gd(&p, x, gd_iters, &tr, &r);
            } else if (s == S_LBFGS) {
                ad_lbfgs_params prm;
                ad_lbfgs_params_init(&prm);
                prm.gtol = GTOL;
                prm.max_iter = 100000;
                prm.progress = on_progress;
                prm.progress_ctx = &tr;
                st = ad_lbfgs(&p, x, &prm, &r);
            } else {
                ad_newton_params prm;
                ad_newton_params_init(&prm);
                prm.gtol = GTOL;
                prm.max_iter = 10000;
                prm.progress = on_progress;
                prm.progress_ctx = &tr;
                st = s == S_NEWTON_CG ? ad_newton_cg(&p, x, &prm, &r) : ad_newton_dense(&p, x, &prm, &r);
            }
            times[k] = now() - tr.t0;
            if (st != AD_OK)
                break;
        }
        if (st != AD_OK) {
            printf("ERROR\t%s\t%zu\t%s\t%s\n", name, n, sname[s], ad_strerror(st));
            fails++;
            free(tr.p);
            continue;
        }
        qsort(times, (size_t)reps, sizeof *times, cmp_double);
        const char *why = s == S_GD ? (r.reason == AD_STOP_GTOL       ? "gradient norm below gtol"
                                       : r.reason == AD_STOP_MAX_ITER ? "max iterations"
                                                                      : "line search failed")
                                    : ad_stop_reason_str(r.reason);
        printf("SUMMARY\t%s\t%zu\t%s\t%s\t%zu\t%zu\t%zu\t%zu\t%.6e\t%.3e\t%.6e\t%.6e\n", name, n, sname[s], why,
               r.iters, r.nfev, r.ngev, r.nhvp, r.f, r.gnorm, times[reps / 2], times[0]);
        fflush(stdout);
        char path[4096];
        snprintf(path, sizeof path, "%s/trace_%s_%s.dat", outdir, name, sname[s]);
        FILE *f = fopen(path, "w");
        if (f == NULL) {
            perror(path);
            exit(1);
        }
        fprintf(f, "# %s n=%zu %s: iter seconds f-f* |g|inf nfev nhvp\n", name, n, sname[s]);
        for (size_t i = 0; i < tr.len; i++)
            fprintf(f, "%zu %.6e %.6e %.6e %zu %zu\n", tr.p[i].iter, tr.p[i].t, tr.p[i].f, tr.p[i].g,
                    tr.p[i].nfev, tr.p[i].nhvp);
        if (fclose(f) != 0) {
            perror(path);
            exit(1);
        }
        free(tr.p);
    }
    free(x);
    free(g);
    free(times);
    return fails;
}

int main(int argc, char **argv)
{
    int quick = 0, reps = 3;
    const char *outdir = ".";
    size_t gd_iters = 20000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            outdir = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gd-iters") && i + 1 < argc)
            gd_iters = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--out DIR] [--reps R] [--gd-iters N]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    if (quick) {
        reps = 1;
        if (gd_iters > 2000)
            gd_iters = 2000;
    }
    openblas_set_num_threads(1);
    const size_t n = quick ? 100 : 1000;
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\nsettings: gtol %.0e (‖g‖∞), n = %zu, median of %d runs, gradient descent capped at %zu iterations\n",
           GTOL, n, reps, gd_iters);
    double *x0 = malloc(n * sizeof *x0);
    if (x0 == NULL)
        return 3;
    int fails = 0;

    ad_tape *t = ad_tape_new();
    mgh_x0_rosenbrock(n, x0);
    ad_status st = t ? ad_record(t, mgh_ext_rosenbrock, n, x0, NULL) : AD_ENOMEM;
    if (st != AD_OK) {
        fprintf(stderr, "bench_conv: recording Rosenbrock failed: %s\n", ad_strerror(st));
        return 1;
    }
    fails += run_problem("rosen", t, x0, outdir, reps, gd_iters);
    ad_tape_free(t);

    static const double kappas[] = {10.0, 100.0, 1000.0};
    for (size_t k = 0; k < 3; k++) {
        quad_ctx q = {kappas[k]};
        char name[32];
        snprintf(name, sizeof name, "quad%.0f", kappas[k]);
        memset(x0, 0, n * sizeof *x0);
        t = ad_tape_new();
        st = t ? ad_record(t, quad_f, n, x0, &q) : AD_ENOMEM;
        if (st != AD_OK) {
            fprintf(stderr, "bench_conv: recording %s failed: %s\n", name, ad_strerror(st));
            return 1;
        }
        fails += run_problem(name, t, x0, outdir, reps, gd_iters);
        ad_tape_free(t);
    }
    free(x0);
    return fails ? 1 : 0;
}
