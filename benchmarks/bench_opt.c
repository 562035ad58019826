/*
 * bench_opt: hyperad's optimizers side by side with liblbfgs (Debian's
 * liblbfgs-dev, when found at build time) on extended Rosenbrock
 * (n = 10³, 10⁵) and a few Moré–Garbow–Hillstrom problems.
 *
 * Every solver runs on the same f/g source (a hyperad tape, or hand-coded C
 * for "rosenbrock-c"), with the same stopping test ‖g‖∞ ≤ gtol: liblbfgs's
 * own test (‖g‖₂/max(1,‖x‖₂) < ε) is switched off (ε = 0) and its progress
 * callback stops it instead.  Both L-BFGS runs use m = 6 and the Moré–Thuente
 * line search with c1 = 1e-4, c2 = 0.9.
 *
 * Reported: iterations, f and g evaluations, HVPs, final f and ‖g‖∞, and
 * the median wall time of --reps runs (monotonic clock), each run from the
 * standard starting point on an already recorded tape.  OpenBLAS is set to
 * one thread and glibc malloc to never return memory (the equivalent of
 * MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=huge, see ANCHORS.md).
 *
 *   bench_opt [--reps N] [--gtol G] [--quick]
 */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "hyperad.h"
#include "mgh.h"

#ifdef BENCH_HAVE_LIBLBFGS
#include <lbfgs.h>
#endif

#define NSTARTS 20

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

/* ---- hand-coded extended Rosenbrock (no tape) ------------------------------ */

static ad_status rosen_fg(void *ctx, const double *x, double *f, double *g)
{
    size_t n = *(const size_t *)ctx;
    double s = 0.0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        double t1 = 1.0 - x[i], t2 = 10.0 * (x[i + 1] - x[i] * x[i]);
        s += t1 * t1 + t2 * t2;
        if (g) {
            g[i + 1] = 20.0 * t2;
            g[i] = -2.0 * (x[i] * g[i + 1] + t1);
        }
    }
    *f = s;
    return AD_OK;
}

static ad_status rosen_hvp(void *ctx, const double *x, const double *v, double *hv)
{
    size_t n = *(const size_t *)ctx;
    for (size_t i = 0; i + 1 < n; i += 2) {
        double h11 = 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0, h12 = -400.0 * x[i];
        hv[i] = h11 * v[i] + h12 * v[i + 1];
        hv[i + 1] = h12 * v[i] + 200.0 * v[i + 1];
    }
    return AD_OK;
}

/* ---- one solver run ------------------------------------------------------------- */

enum { S_LBFGS, S_LIBLBFGS, S_NEWTON_TR, S_NEWTON_LS, S_NSOLVERS };
static const char *const solver_name[S_NSOLVERS] = {
    "hyperad L-BFGS", "liblbfgs", "hyperad Newton-CG TR", "hyperad Newton-CG LS" };

typedef struct outcome {
    int ok;                      /* ran (liblbfgs may be absent) */
    const char *why;
    size_t iters, nfev, ngev, nhvp;
    double f, gnorm, ms, ms_min; /* median and fastest time */
} outcome;

#ifdef BENCH_HAVE_LIBLBFGS
typedef struct lb_ctx {
    const ad_problem *p;
    size_t nfev;
    int iters;
    double gtol;
    ad_status err;
} lb_ctx;

static lbfgsfloatval_t lb_evaluate(void *inst, const lbfgsfloatval_t *x,
                                   lbfgsfloatval_t *g, const int n,
                                   const lbfgsfloatval_t step)
{
    (void)n;
    (void)step;
    lb_ctx *c = inst;
    double f = NAN;
    c->nfev++;
    ad_status st = c->p->fg(c->p->ctx, x, &f, g);
    if (st != AD_OK)
        c->err = st;
    return f;
}

static int lb_progress(void *inst, const lbfgsfloatval_t *x, const lbfgsfloatval_t *g,
                       const lbfgsfloatval_t fx, const lbfgsfloatval_t xnorm,
                       const lbfgsfloatval_t gnorm, const lbfgsfloatval_t step,
                       int n, int k, int ls)
{
    (void)x; (void)fx; (void)xnorm; (void)gnorm; (void)step; (void)ls;
    lb_ctx *c = inst;
    c->iters = k;
    /* The same stopping test as hyperad's: ‖g‖∞ ≤ gtol. */
    return gnorm_inf((size_t)n, g) <= c->gtol;
}
#endif

static int run_once(int solver, const ad_problem *p, const double *x0, double *x,
                    double gtol, size_t max_iter, outcome *o)
{
    const size_t n = p->n;
    memcpy(x, x0, n * sizeof *x);
    ad_opt_result r;
    ad_status st = AD_OK;
    if (solver == S_LBFGS) {
        ad_lbfgs_params prm;
        ad_lbfgs_params_init(&prm);
        prm.m = 6;
        prm.gtol = gtol;
        prm.max_iter = max_iter;
        st = ad_lbfgs(p, x, &prm, &r);
    } else if (solver == S_NEWTON_TR || solver == S_NEWTON_LS) {
        ad_newton_params prm;
        ad_newton_params_init(&prm);
        prm.gtol = gtol;
        prm.max_iter = max_iter;
        prm.globalization = solver == S_NEWTON_TR ? AD_TRUST_REGION : AD_LINE_SEARCH;
        st = ad_newton_cg(p, x, &prm, &r);
    } else {
#ifdef BENCH_HAVE_LIBLBFGS
        lbfgs_parameter_t prm;
        lbfgs_parameter_init(&prm);
        prm.m = 6;
        prm.epsilon = 0.0;
        prm.max_iterations = (int)max_iter;
        prm.linesearch = LBFGS_LINESEARCH_MORETHUENTE;
        prm.ftol = 1e-4;     /* c1 */
        prm.gtol = 0.9;      /* c2 */
        lb_ctx c = { p, 0, 0, gtol, AD_OK };
        lbfgsfloatval_t fx;
        int ret = lbfgs((int)n, x, &fx, lb_evaluate, lb_progress, &c, &prm);
        double *g = malloc(n * sizeof *g);
        if (g == NULL)
            return 0;
        p->fg(p->ctx, x, &o->f, g);
        o->gnorm = gnorm_inf(n, g);
        free(g);
        o->iters = (size_t)c.iters;
        o->nfev = o->ngev = c.nfev;
        o->nhvp = 0;
        o->why = ret == 1 ? "gtol (callback)" : ret == LBFGS_SUCCESS ? "converged"
               : ret == LBFGSERR_MAXIMUMITERATION ? "max iterations"
               : ret == LBFGSERR_ROUNDING_ERROR ? "rounding error"
               : ret == LBFGSERR_MAXIMUMLINESEARCH ? "max line search" : "error";
        o->ok = 1;
        return 1;
#else
        return 0;
#endif
    }
    o->ok = st == AD_OK;
    o->why = st == AD_OK ? ad_stop_reason_str(r.reason) : ad_strerror(st);
    o->iters = r.iters;
    o->nfev = r.nfev;
    o->ngev = r.ngev;
    o->nhvp = r.nhvp;
    o->f = r.f;
    o->gnorm = r.gnorm;
    return 1;
}

static void print_header(void)
{
    printf("| problem | n | solver | stop | iters | f evals | g evals | HVPs | final f | ‖g‖∞ | ms median | ms min | µs/iter (median) |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void print_row(const char *prob, size_t n, int solver, const outcome *o)
{
    printf("| %s | %zu | %s | %s | %zu | %zu | %zu | %zu | %.3e | %.2e | %.2f | %.2f | %.1f |\n",
           prob, n, solver_name[solver], o->why, o->iters, o->nfev, o->ngev, o->nhvp,
           o->f, o->gnorm, o->ms, o->ms_min, o->iters ? 1e3 * o->ms / (double)o->iters : 0.0);
}

/* Runs every solver on p, the solvers interleaved run by run (a shared,
 * noisy machine then slows all of them alike), and prints the rows with the
 * median times; out[s] keeps the outcomes. */
static void bench_problem(const char *name, const ad_problem *p, const double *x0,
                          double gtol, size_t max_iter, int reps, outcome out[S_NSOLVERS])
{
    double *x = malloc(p->n * sizeof *x);
    double *t = malloc((size_t)reps * S_NSOLVERS * sizeof *t);
    int ran[S_NSOLVERS] = { 0 };
    if (x == NULL || t == NULL)
        exit(1);
    for (int k = 0; k < reps; k++)
        for (int s = 0; s < S_NSOLVERS; s++) {
            if (k == 0)
                memset(&out[s], 0, sizeof out[s]);
            double t0 = now();
            ran[s] = run_once(s, p, x0, x, gtol, max_iter, &out[s]);
            t[s * reps + k] = now() - t0;
        }
    for (int s = 0; s < S_NSOLVERS; s++) {
        if (!ran[s])
            continue;
        qsort(t + s * reps, (size_t)reps, sizeof *t, cmp_double);
        out[s].ms = 1e3 * t[s * reps + reps / 2];
        out[s].ms_min = 1e3 * t[s * reps];
        print_row(name, p->n, s, &out[s]);
    }
    fflush(stdout);
    free(x);
    free(t);
}

int main(int argc, char **argv)
{
    int reps = 5, quick = 0;
    double gtol = 1e-8;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--gtol") == 0 && i + 1 < argc)
            gtol = atof(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fprintf(stderr, "usage: %s [--reps N] [--gtol G] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    openblas_set_num_threads(1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);

    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\nsettings: gtol %.1e (‖g‖∞), median of %d runs (solvers interleaved), OpenBLAS 1 thread, "
           "mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=1GiB)%s\n\n", gtol, reps,
#ifdef BENCH_HAVE_LIBLBFGS
           ""
#else
           ", liblbfgs NOT FOUND at build time"
#endif
    );
    print_header();

    /* Extended Rosenbrock: tape and hand-coded, n = 10³ and 10⁵. */
    const size_t sizes[2] = { 1000, 100000 };
    outcome big_tape[S_NSOLVERS], big_c[S_NSOLVERS], o[S_NSOLVERS];
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        if (quick && n > 1000)
            continue;
        double *x0 = malloc(n * sizeof *x0);
        if (x0 == NULL)
            return 1;
        mgh_x0_rosenbrock(n, x0);
        ad_tape *t = ad_tape_new();
        if (t == NULL || ad_record(t, mgh_ext_rosenbrock, n, x0, NULL) != AD_OK) {
            fprintf(stderr, "recording failed\n");
            return 1;
        }
        ad_problem pt = ad_problem_tape(t);
        bench_problem("ext. Rosenbrock (tape)", &pt, x0, gtol, 100000, reps,
                      k == 1 ? big_tape : o);
        ad_problem pc = { n, &n, rosen_fg, rosen_hvp, NULL };
        bench_problem("ext. Rosenbrock (C)", &pc, x0, gtol, 100000, reps,
                      k == 1 ? big_c : o);
        ad_tape_free(t);
        free(x0);
    }

    /* A few MGH problems, by tape; the scalable ones at n = 1000. */
    static const struct { const char *name; size_t n; } picks[] = {
        { "helical_valley", 0 }, { "wood", 0 }, { "biggs_exp6", 0 }, { "watson9", 0 },
        { "powell_singular", 1000 }, { "broyden_tridiagonal10", 1000 },
        { "trigonometric10", 100 },
    };
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
        const mgh_problem *pr = NULL;
        for (size_t j = 0; j < MGH_NPROBLEMS; j++)
            if (strcmp(mgh_problems[j].name, picks[i].name) == 0)
                pr = &mgh_problems[j];
        if (pr == NULL)
            continue;
        size_t n = picks[i].n ? picks[i].n : pr->n;
        double *x0 = malloc(n * sizeof *x0);
        if (x0 == NULL)
            return 1;
        pr->x0(n, x0);
        ad_tape *t = ad_tape_new();
        ad_status st = ad_record(t, pr->f, n, x0, NULL);
        if (st != AD_OK && st != AD_EDOMAIN) {
            fprintf(stderr, "%s: recording failed: %s\n", pr->name, ad_strerror(st));
            return 1;
        }
        ad_problem p = ad_problem_tape(t);
        char label[64];
        snprintf(label, sizeof label, "MGH %s", pr->name);
        bench_problem(label, &p, x0, gtol, 100000, reps, o);
        ad_tape_free(t);
        free(x0);
    }

#ifdef BENCH_HAVE_LIBLBFGS
    /* Past a few dozen iterations the two L-BFGS runs part ways by rounding
     * alone (CBLAS and liblbfgs's loops sum in different orders), so a
     * single start says little about evaluations: compare totals over
     * starts perturbed by ±1% (fixed seed). */
    printf("\nL-BFGS evaluations over %d perturbed starts (x0_i·(1 + 0.01·u), u ~ U(-1,1), seed 1):\n",
           NSTARTS);
    printf("| problem | n | hyperad total f/g evals | liblbfgs total | ratio | hyperad fails | liblbfgs fails |\n");
    printf("|---|---|---|---|---|---|---|\n");
    static const struct { const char *name; size_t n; } spread[] = {
        { "rosenbrock", 1000 }, { "powell_singular", 1000 }, { "wood", 0 },
        { "trigonometric10", 100 }, { "helical_valley", 0 }, { "biggs_exp6", 0 },
    };
    size_t all_h = 0, all_l = 0;
    for (size_t i = 0; i < sizeof spread / sizeof spread[0]; i++) {
        const mgh_problem *pr = NULL;
        for (size_t j = 0; j < MGH_NPROBLEMS; j++)
            if (strcmp(mgh_problems[j].name, spread[i].name) == 0)
                pr = &mgh_problems[j];
        if (pr == NULL)
            continue;
        size_t n = spread[i].n ? spread[i].n : pr->n;
        double *x0 = malloc(n * sizeof *x0), *xs = malloc(n * sizeof *xs);
        if (x0 == NULL || xs == NULL)
            return 1;
        pr->x0(n, x0);
        ad_tape *t = ad_tape_new();
        ad_status st = ad_record(t, pr->f, n, x0, NULL);
        if (st != AD_OK && st != AD_EDOMAIN)
            return 1;
        ad_problem p = ad_problem_tape(t);
        uint64_t seed = 1;
        size_t tot[2] = { 0, 0 }, fails[2] = { 0, 0 };
        for (int k = 0; k < NSTARTS; k++) {
            for (size_t j = 0; j < n; j++) {
                /* splitmix64 */
                uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
                z ^= z >> 31;
                double u = 2.0 * ((double)(z >> 11) * 0x1.0p-53) - 1.0;
                xs[j] = x0[j] * (1.0 + 0.01 * u);
            }
            for (int sv = 0; sv < 2; sv++) {
                outcome oc;
                memset(&oc, 0, sizeof oc);
                double *x = malloc(n * sizeof *x);
                if (x == NULL)
                    return 1;
                run_once(sv == 0 ? S_LBFGS : S_LIBLBFGS, &p, xs, x, gtol, 100000, &oc);
                free(x);
                tot[sv] += oc.nfev;
                if (!(oc.gnorm <= gtol))
                    fails[sv]++;
            }
        }
        all_h += tot[0];
        all_l += tot[1];
        printf("| %s | %zu | %zu | %zu | %.3f | %zu | %zu |\n", pr->name, n, tot[0], tot[1],
               (double)tot[0] / (double)tot[1], fails[0], fails[1]);
        ad_tape_free(t);
        free(x0);
        free(xs);
    }
    printf("| all | | %zu | %zu | %.3f | | |\n", all_h, all_l, (double)all_h / (double)all_l);
#endif

    if (!quick) {
        printf("\nTargets (issue 3), extended Rosenbrock n = 100000:\n");
        for (int src = 0; src < 2; src++) {
            const outcome *b = src ? big_c : big_tape;
            const char *sname = src ? "C" : "tape";
            if (!b[S_LIBLBFGS].ok) {
                printf("  [%s] liblbfgs not available: no comparison\n", sname);
                continue;
            }
            double ev = (double)b[S_LBFGS].nfev / (double)b[S_LIBLBFGS].nfev;
            double it_h = b[S_LBFGS].ms / (double)b[S_LBFGS].iters;
            double it_l = b[S_LIBLBFGS].ms / (double)b[S_LIBLBFGS].iters;
            double mi_h = b[S_LBFGS].ms_min / (double)b[S_LBFGS].iters;
            double mi_l = b[S_LIBLBFGS].ms_min / (double)b[S_LIBLBFGS].iters;
            printf("  [%s] L-BFGS evaluations / liblbfgs: %.3f (target 0.85..1.15): %s\n",
                   sname, ev, ev >= 0.85 && ev <= 1.15 ? "met" : "NOT met");
            printf("  [%s] L-BFGS time per iteration / liblbfgs: median %.3f, min %.3f (target <= 1): %s\n",
                   sname, it_h / it_l, mi_h / mi_l, it_h <= it_l ? "met" : "NOT met");
            double best = fmin(b[S_LBFGS].ms, b[S_LIBLBFGS].ms);
            double best_min = fmin(b[S_LBFGS].ms_min, b[S_LIBLBFGS].ms_min);
            printf("  [%s] Newton-CG TR vs faster L-BFGS: median %.2f vs %.2f ms, min %.2f vs %.2f ms: %s\n",
                   sname, b[S_NEWTON_TR].ms, best, b[S_NEWTON_TR].ms_min, best_min,
                   b[S_NEWTON_TR].ms < best ? "met" : "NOT met");
        }
    }
    return 0;
}
