/*
 * Threads: several threads record and replay their own tapes at once;
 * ad_tape_share gives each thread a handle on one recording, with results
 * bit-for-bit equal to a single thread's; handles are freed in any order; a
 * shared handle of an ad_record tape that re-records after a branch flip
 * gets a recording of its own while the others keep the old one.
 *
 * Worker threads never call cmocka (its failures longjmp); they count
 * mismatches and the main thread asserts on the counts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>

#include "testutil.h"

#define NPTS(a) (sizeof(a) / sizeof((a)[0]))
enum { NTHREADS = 4 };

/* f = Σ_i exp(c x_i) x_{i+1 mod n} + Σ_i sin(x_i) */
typedef struct cyc_ctx { double c; } cyc_ctx;

static ad_var cyc_fn(const ad_var *x, size_t n, void *vctx)
{
    const cyc_ctx *c = vctx;
    ad_var terms[64];
    for (size_t i = 0; i < n; i++)
        terms[i] = ad_add(ad_mul(ad_exp(ad_mulc(x[i], c->c)), x[(i + 1) % n]), ad_sin(x[i]));
    return ad_sum(n, terms);
}

/* closed form: g and Hv of cyc_fn; returns the number of mismatches */
static int cyc_check(double c, const double *x, size_t n, double f, const double *g,
                     const double *v, const double *hv)
{
    int bad = 0;
    double fw = 0, fs = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ip = (i + 1) % n, im = (i + n - 1) % n;
        double e = exp(c * x[i]), em = exp(c * x[im]);
        fw += e * x[ip] + sin(x[i]);
        fs += fabs(e * x[ip]) + fabs(sin(x[i]));
        double gw = c * e * x[ip] + em + cos(x[i]);
        double gs = fabs(c * e * x[ip]) + em + fabs(cos(x[i]));
        if (!tu_close(g[i], gw, 1e-13, gs))
            bad++;
        /* (Hv)_i = (c² e x_{i+1} − sin x_i) v_i + c e v_{i+1} + c em v_{i−1} */
        double hw = (c * c * e * x[ip] - sin(x[i])) * v[i] + c * e * v[ip] + c * em * v[im];
        double hs = (fabs(c * c * e * x[ip]) + fabs(sin(x[i]))) * fabs(v[i]) + fabs(c * e * v[ip]) +
                    fabs(c * em * v[im]);
        if (!tu_close(hv[i], hw, 1e-13, hs))
            bad++;
    }
    if (!tu_close(f, fw, 1e-13, fs))
        bad++;
    return bad;
}

/* ===================================================================== */
/* Each thread its own tape                                              */
/* ===================================================================== */

typedef struct own_job {
    int id;
    int bad;      /* mismatches against the closed form */
    int errors;   /* statuses other than AD_OK */
} own_job;

static void *own_worker(void *arg)
{
    own_job *j = arg;
    tu_rng r = {1000 + (uint64_t)j->id};
    cyc_ctx c = {0.1 * (j->id + 1)};
    size_t n = 8 + 3 * (size_t)j->id;
    double x[64], g[64], v[64], hv[64], f;
    ad_tape *t = ad_tape_new();
    for (int rec = 0; rec < 40; rec++) {
        for (size_t i = 0; i < n; i++) x[i] = tu_range(&r, -2, 2);
        /* alternate the two recording routes */
        if (rec % 2) {
            if (ad_record(t, cyc_fn, n, x, &c) != AD_OK) { j->errors++; continue; }
        } else {
            ad_var in[64];
            if (ad_record_begin(t) != AD_OK) { j->errors++; continue; }
            for (size_t i = 0; i < n; i++) in[i] = ad_input(x[i]);
            ad_output(cyc_fn(in, n, &c));
            if (ad_record_end(t) != AD_OK) { j->errors++; continue; }
        }
        for (int p = 0; p < 10; p++) {
            for (size_t i = 0; i < n; i++) {
                x[i] = tu_range(&r, -2, 2);
                v[i] = tu_range(&r, -1, 1);
            }
            if (ad_gradient(t, x, &f, g) != AD_OK || ad_hvp(t, x, v, hv) != AD_OK) {
                j->errors++;
                continue;
            }
            j->bad += cyc_check(c.c, x, n, f, g, v, hv);
        }
    }
    ad_tape_free(t);
    return NULL;
}

static void threads_record_and_replay_own_tapes(void **state)
{
    (void)state;
    pthread_t th[NTHREADS];
    own_job jobs[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        jobs[k] = (own_job){k, 0, 0};
        assert_int_equal(pthread_create(&th[k], NULL, own_worker, &jobs[k]), 0);
    }
    /* the main thread records meanwhile too */
    own_job mine = {NTHREADS, 0, 0};
    own_worker(&mine);
    for (int k = 0; k < NTHREADS; k++) {
        assert_int_equal(pthread_join(th[k], NULL), 0);
        assert_int_equal(jobs[k].errors, 0);
        assert_int_equal(jobs[k].bad, 0);
    }
    assert_int_equal(mine.errors, 0);
    assert_int_equal(mine.bad, 0);
}

/* ===================================================================== */
/* One recording, shared handles                                         */
/* ===================================================================== */

enum { SN = 24, SP = 12 };

typedef struct shared_ref {
    double x[SP][SN], v[SP][SN], w[SP][SN];
    double f[SP], g[SP][SN], hv[SP][SN], vhw[SP], H0[SN * SN];
} shared_ref;

typedef struct share_job {
    ad_tape *h;
    const shared_ref *ref;
    int id;
    int rounds;
    int mismatches;
    int errors;
    const char *first;   /* the first result that differed */
} share_job;

static int same(const double *a, const double *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

static void *share_worker(void *arg)
{
    share_job *j = arg;
    const shared_ref *R = j->ref;
    double f, g[SN], hv[SN], vhw;
    static _Thread_local double H[SN * SN];
    static const double elsewhere[SN] = {0};
    for (int round = 0; round < j->rounds; round++) {
        /* Leave the last point of the previous round (or of an earlier run on
         * this handle): each point is met first by ad_gradient, as in the
         * reference.  (A second HVP at one x takes the preaccumulated route,
         * equal only up to rounding, as the header says.) */
        double fe;
        if (ad_eval(j->h, elsewhere, &fe) != AD_OK) j->errors++;
        for (int q = 0; q < SP; q++) {
            /* each thread walks the points in its own order */
            int p = (q * (2 * j->id + 1) + j->id + round) % SP;
            if (ad_gradient(j->h, R->x[p], &f, g) != AD_OK) { j->errors++; continue; }
            if (f != R->f[p] || !same(g, R->g[p], SN)) { j->mismatches++; if (!j->first) j->first = "gradient"; }
            if (ad_hvp(j->h, R->x[p], R->v[p], hv) != AD_OK) { j->errors++; continue; }
            if (!same(hv, R->hv[p], SN)) { j->mismatches++; if (!j->first) j->first = "hvp"; }
            if (ad_hess_form(j->h, R->x[p], R->v[p], R->w[p], &vhw) != AD_OK) { j->errors++; continue; }
            if (vhw != R->vhw[p]) { j->mismatches++; if (!j->first) j->first = "hess_form"; }
            if (p == 0 && (round + j->id) % 3 == 0) {
                if (ad_hessian(j->h, R->x[0], H) != AD_OK) { j->errors++; continue; }
                if (!same(H, R->H0, SN * SN)) { j->mismatches++; if (!j->first) j->first = "hessian"; }
            }
        }
    }
    return NULL;
}

static void make_reference(ad_tape *t, shared_ref *R, uint64_t seed)
{
    tu_rng r = {seed};
    for (int p = 0; p < SP; p++) {
        for (int i = 0; i < SN; i++) {
            R->x[p][i] = tu_range(&r, -1.5, 1.5);
            R->v[p][i] = tu_range(&r, -1, 1);
            R->w[p][i] = tu_range(&r, -1, 1);
        }
        assert_ok(ad_gradient(t, R->x[p], &R->f[p], R->g[p]));
        assert_ok(ad_hvp(t, R->x[p], R->v[p], R->hv[p]));
        assert_ok(ad_hess_form(t, R->x[p], R->v[p], R->w[p], &R->vhw[p]));
    }
    assert_ok(ad_hessian(t, R->x[0], R->H0));
}

static void run_share_jobs(ad_tape **handles, int nh, const shared_ref *R, int rounds)
{
    pthread_t th[8];
    share_job jobs[8];
    for (int k = 0; k < nh; k++) {
        jobs[k] = (share_job){handles[k], R, k, rounds, 0, 0, NULL};
        assert_int_equal(pthread_create(&th[k], NULL, share_worker, &jobs[k]), 0);
    }
    for (int k = 0; k < nh; k++) {
        assert_int_equal(pthread_join(th[k], NULL), 0);
        if (jobs[k].errors || jobs[k].mismatches) {
            print_error("handle %d: %d errors, %d results differing from the single thread's "
                        "(first: %s)\n", k, jobs[k].errors, jobs[k].mismatches,
                        jobs[k].first ? jobs[k].first : "-");
            fail();
        }
    }
}

static void shared_handles_match_single_thread_bit_for_bit(void **state)
{
    (void)state;
    static shared_ref R;
    cyc_ctx c = {0.3};
    double x0[SN];
    for (int i = 0; i < SN; i++) x0[i] = 0.01 * i;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, cyc_fn, SN, x0, &c));
    /* the reference on a separate handle, before any sharing */
    ad_tape *s0 = ad_tape_share(t);
    assert_non_null(s0);
    make_reference(s0, &R, 5);
    /* the reference is right */
    for (int p = 0; p < SP; p++)
        assert_int_equal(cyc_check(c.c, R.x[p], SN, R.f[p], R.g[p], R.v[p], R.hv[p]), 0);
    ad_tape *h[NTHREADS + 1];
    for (int k = 0; k < NTHREADS; k++) {
        h[k] = ad_tape_share(t);
        assert_non_null(h[k]);
        assert_int_equal(ad_tape_ninputs(h[k]), SN);
        assert_int_equal(ad_tape_nops(h[k]), ad_tape_nops(t));
    }
    h[NTHREADS] = t; /* the original takes part too */
    run_share_jobs(h, NTHREADS + 1, &R, 6);
    for (int k = 0; k < NTHREADS; k++) ad_tape_free(h[k]);
    ad_tape_free(s0);
    /* the original still works alone */
    run_share_jobs(&t, 1, &R, 1);
    ad_tape_free(t);
}

static void handles_free_in_any_order(void **state)
{
    (void)state;
    static shared_ref R;
    cyc_ctx c = {-0.2};
    double x0[SN];
    for (int i = 0; i < SN; i++) x0[i] = 0.5 - 0.02 * i;
    for (int order = 0; order < 3; order++) {
        ad_tape *t = ad_tape_new();
        assert_ok(ad_record(t, cyc_fn, SN, x0, &c));
        make_reference(t, &R, 9 + (uint64_t)order);
        ad_tape *a = ad_tape_share(t), *b = ad_tape_share(t);
        assert_non_null(a);
        assert_non_null(b);
        ad_tape *cc = ad_tape_share(a); /* a share of a share */
        assert_non_null(cc);
        ad_tape *hs[3] = {a, b, cc};
        if (order == 0) {
            /* original first, while the others still replay afterwards */
            ad_tape_free(t);
            run_share_jobs(hs, 3, &R, 2);
            ad_tape_free(a);
            run_share_jobs(&b, 1, &R, 1);
            ad_tape_free(b);
            run_share_jobs(&cc, 1, &R, 1);
            ad_tape_free(cc);
        } else if (order == 1) {
            /* shares first, the original last */
            ad_tape_free(cc);
            ad_tape_free(b);
            run_share_jobs(&a, 1, &R, 1);
            ad_tape_free(a);
            run_share_jobs(&t, 1, &R, 1);
            ad_tape_free(t);
        } else {
            /* freed concurrently with replays on other handles */
            ad_tape *both[2] = {b, cc};
            ad_tape_free(a);
            run_share_jobs(both, 2, &R, 1);
            ad_tape_free(t);
            run_share_jobs(both, 2, &R, 1);
            ad_tape_free(b);
            ad_tape_free(cc);
        }
    }
}

/* A shared handle can be recorded again: it then has its own recording and
 * the other handles keep the old one. */
static void rerecording_a_shared_handle_leaves_others_alone(void **state)
{
    (void)state;
    static shared_ref R;
    cyc_ctx c = {0.25}, c2 = {-0.4};
    double x0[SN];
    for (int i = 0; i < SN; i++) x0[i] = 0.03 * i - 0.2;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, cyc_fn, SN, x0, &c));
    make_reference(t, &R, 21);
    ad_tape *s = ad_tape_share(t), *u = ad_tape_share(t);
    assert_ok(ad_record(s, cyc_fn, SN, x0, &c2));
    double f, g[SN], v[SN], hv[SN];
    for (int i = 0; i < SN; i++) v[i] = 1.0;
    assert_ok(ad_gradient(s, R.x[1], &f, g));
    assert_ok(ad_hvp(s, R.x[1], v, hv));
    assert_int_equal(cyc_check(c2.c, R.x[1], SN, f, g, v, hv), 0);
    ad_tape *both[2] = {t, u};
    run_share_jobs(both, 2, &R, 1);
    ad_tape_free(t);
    run_share_jobs(&u, 1, &R, 1);
    ad_tape_free(u);
    assert_ok(ad_gradient(s, R.x[2], &f, g));
    assert_ok(ad_hvp(s, R.x[2], v, hv));
    assert_int_equal(cyc_check(c2.c, R.x[2], SN, f, g, v, hv), 0);
    ad_tape_free(s);
}

/* ===================================================================== */
/* Branch flips on shared handles of an ad_record tape                   */
/* ===================================================================== */

/* x0 < x1 ? x0² x1 + Σ_{i≥2} x_i : sin(x0) + x1 + Σ_{i≥2} x_i² */
static ad_var branch_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)ctx;
    ad_var rest[16];
    if (ad_lt(x[0], x[1])) {
        for (size_t i = 2; i < n; i++) rest[i - 2] = x[i];
        return ad_add(ad_mul(ad_sqr(x[0]), x[1]), ad_sum(n - 2, rest));
    }
    for (size_t i = 2; i < n; i++) rest[i - 2] = ad_sqr(x[i]);
    return ad_add(ad_add(ad_sin(x[0]), x[1]), ad_sum(n - 2, rest));
}

static void branch_ref(const double *x, size_t n, double *f, double *g)
{
    if (x[0] < x[1]) {
        *f = x[0] * x[0] * x[1];
        g[0] = 2 * x[0] * x[1];
        g[1] = x[0] * x[0];
        for (size_t i = 2; i < n; i++) { *f += x[i]; g[i] = 1; }
    } else {
        *f = sin(x[0]) + x[1];
        g[0] = cos(x[0]);
        g[1] = 1;
        for (size_t i = 2; i < n; i++) { *f += x[i] * x[i]; g[i] = 2 * x[i]; }
    }
}

static int branch_mismatch(const double *x, size_t n, double f, const double *g)
{
    double fw, gw[16];
    branch_ref(x, n, &fw, gw);
    int bad = !tu_close(f, fw, 1e-14, 1.0);
    for (size_t i = 0; i < n; i++) bad += !tu_close(g[i], gw[i], 1e-14, 1.0);
    return bad;
}

static void flipped_share_gets_own_recording(void **state)
{
    (void)state;
    enum { N = 5 };
    double xa[N] = {0.5, 1.5, 0.1, 0.2, 0.3};   /* x0 < x1: branch A */
    double xa2[N] = {-1.0, 2.0, 1.0, -1.0, 0.5}; /* branch A */
    double xb[N] = {2.0, 1.0, 0.4, -0.6, 0.8};  /* branch B */
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, branch_fn, N, xa, NULL));
    ad_tape *s1 = ad_tape_share(t), *s2 = ad_tape_share(t);
    assert_non_null(s1);
    assert_non_null(s2);
    double f0, g0[N], f, g[N];
    assert_ok(ad_gradient(t, xa2, &f0, g0));
    assert_int_equal(branch_mismatch(xa2, N, f0, g0), 0);
    /* s1 flips: re-records into its own recording */
    assert_ok(ad_gradient(s1, xb, &f, g));
    assert_int_equal(branch_mismatch(xb, N, f, g), 0);
    /* the others still have the old recording and give its results */
    assert_ok(ad_gradient(t, xa2, &f, g));
    assert_true(f == f0);
    assert_memory_equal(g, g0, sizeof g);
    assert_ok(ad_gradient(s2, xa2, &f, g));
    assert_true(f == f0);
    assert_memory_equal(g, g0, sizeof g);
    /* s1 on its own recording at branch B, t and s2 freed in between */
    ad_tape_free(t);
    assert_ok(ad_gradient(s1, xb, &f, g));
    assert_int_equal(branch_mismatch(xb, N, f, g), 0);
    assert_ok(ad_gradient(s2, xa, &f, g));
    assert_int_equal(branch_mismatch(xa, N, f, g), 0);
    /* s2 flips too; s1 goes back to A */
    assert_ok(ad_gradient(s2, xb, &f, g));
    assert_int_equal(branch_mismatch(xb, N, f, g), 0);
    assert_ok(ad_gradient(s1, xa2, &f, g));
    assert_int_equal(branch_mismatch(xa2, N, f, g), 0);
    ad_tape_free(s2);
    assert_ok(ad_gradient(s1, xb, &f, g));
    assert_int_equal(branch_mismatch(xb, N, f, g), 0);
    ad_tape_free(s1);
}

typedef struct flip_job {
    ad_tape *h;
    int id;
    int bad;
    int errors;
} flip_job;

static void *flip_worker(void *arg)
{
    flip_job *j = arg;
    enum { N = 6 };
    tu_rng r = {500 + (uint64_t)j->id};
    double x[N], f, g[N];
    for (int it = 0; it < 300; it++) {
        for (size_t i = 0; i < N; i++) x[i] = tu_range(&r, -2, 2);
        if (ad_gradient(j->h, x, &f, g) != AD_OK) { j->errors++; continue; }
        j->bad += branch_mismatch(x, N, f, g);
    }
    return NULL;
}

/* Every thread flips its own shared handle back and forth at once. */
static void concurrent_flips_on_shared_handles(void **state)
{
    (void)state;
    enum { N = 6 };
    double x0[N] = {0.1, 0.9, 0.3, 0.4, 0.5, 0.6};
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, branch_fn, N, x0, NULL));
    pthread_t th[NTHREADS];
    flip_job jobs[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        jobs[k] = (flip_job){ad_tape_share(t), k, 0, 0};
        assert_non_null(jobs[k].h);
    }
    for (int k = 0; k < NTHREADS; k++)
        assert_int_equal(pthread_create(&th[k], NULL, flip_worker, &jobs[k]), 0);
    flip_job mine = {t, NTHREADS, 0, 0};
    flip_worker(&mine);
    for (int k = 0; k < NTHREADS; k++) {
        assert_int_equal(pthread_join(th[k], NULL), 0);
        assert_int_equal(jobs[k].errors, 0);
        assert_int_equal(jobs[k].bad, 0);
    }
    assert_int_equal(mine.errors, 0);
    assert_int_equal(mine.bad, 0);
    /* free in a scrambled order */
    ad_tape_free(jobs[2].h);
    ad_tape_free(t);
    ad_tape_free(jobs[0].h);
    ad_tape_free(jobs[3].h);
    ad_tape_free(jobs[1].h);
}

/* Recording the original handle again (manually) leaves the shares on the
 * old recording; a share of a manual tape returns AD_ERETAPE on a flip
 * without disturbing the others. */
static void rerecording_the_original_leaves_shares_alone(void **state)
{
    (void)state;
    static shared_ref R;
    cyc_ctx c = {0.15};
    double x0[SN];
    for (int i = 0; i < SN; i++) x0[i] = 0.02 * i;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, cyc_fn, SN, x0, &c));
    make_reference(t, &R, 33);
    ad_tape *s1 = ad_tape_share(t), *s2 = ad_tape_share(t);
    /* manual re-recording of t: a different function with one input */
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(1.0);
    ad_output(ad_sqr(a));
    assert_ok(ad_record_end(t));
    assert_int_equal(ad_tape_ninputs(t), 1);
    double x = 3.0, f;
    assert_ok(ad_eval(t, &x, &f));
    assert_true(f == 9.0);
    ad_tape *both[2] = {s1, s2};
    run_share_jobs(both, 2, &R, 1);
    assert_int_equal(ad_tape_ninputs(s1), SN);
    ad_tape_free(t);
    run_share_jobs(both, 2, &R, 1);
    ad_tape_free(s1);
    ad_tape_free(s2);

    /* a share of a manually recorded tape with a comparison */
    enum { N = 4 };
    double xa[N] = {0.5, 1.5, 0.1, 0.2}, xb[N] = {2.0, 1.0, 0.3, 0.4}, g[N];
    ad_tape *m = ad_tape_new();
    assert_ok(ad_record_begin(m));
    ad_var in[N];
    for (int i = 0; i < N; i++) in[i] = ad_input(xa[i]);
    ad_output(branch_fn(in, N, NULL));
    assert_ok(ad_record_end(m));
    ad_tape *ms = ad_tape_share(m);
    assert_non_null(ms);
    assert_status(ad_gradient(ms, xb, &f, g), AD_ERETAPE);
    assert_ok(ad_gradient(ms, xa, &f, g));
    assert_int_equal(branch_mismatch(xa, N, f, g), 0);
    assert_ok(ad_gradient(m, xa, &f, g));
    assert_int_equal(branch_mismatch(xa, N, f, g), 0);
    ad_tape_free(m);
    assert_status(ad_gradient(ms, xb, &f, g), AD_ERETAPE);
    ad_tape_free(ms);
}

/* Handles of one recording freed by several threads at the same moment:
 * the reference count must not race (run under valgrind/helgrind too). */
typedef struct free_job {
    ad_tape *h;
    pthread_barrier_t *bar;
    const shared_ref *ref;
    int bad;
} free_job;

static void *free_worker(void *arg)
{
    free_job *j = arg;
    double f, g[SN];
    if (ad_gradient(j->h, j->ref->x[3], &f, g) != AD_OK || f != j->ref->f[3] ||
        memcmp(g, j->ref->g[3], sizeof g) != 0)
        j->bad++;
    pthread_barrier_wait(j->bar);
    ad_tape_free(j->h);
    return NULL;
}

static void concurrent_frees_of_shared_handles(void **state)
{
    (void)state;
    static shared_ref R;
    cyc_ctx c = {0.35};
    double x0[SN];
    for (int i = 0; i < SN; i++) x0[i] = 0.01 * i;
    for (int rep = 0; rep < 20; rep++) {
        ad_tape *t = ad_tape_new();
        assert_ok(ad_record(t, cyc_fn, SN, x0, &c));
        if (rep == 0)
            make_reference(t, &R, 44);
        pthread_barrier_t bar;
        assert_int_equal(pthread_barrier_init(&bar, NULL, NTHREADS + 1), 0);
        pthread_t th[NTHREADS];
        free_job jobs[NTHREADS];
        for (int k = 0; k < NTHREADS; k++) {
            jobs[k] = (free_job){ad_tape_share(t), &bar, &R, 0};
            assert_non_null(jobs[k].h);
        }
        for (int k = 0; k < NTHREADS; k++)
            assert_int_equal(pthread_create(&th[k], NULL, free_worker, &jobs[k]), 0);
        pthread_barrier_wait(&bar);
        ad_tape_free(t);
        for (int k = 0; k < NTHREADS; k++) {
            assert_int_equal(pthread_join(th[k], NULL), 0);
            assert_int_equal(jobs[k].bad, 0);
        }
        pthread_barrier_destroy(&bar);
    }
}

/* Shared handles of a recording dominated by dense and sparse matrix
 * nodes (CBLAS dgemv in every sweep, called from several threads at once):
 * HVPs and gradients equal the single thread's bit for bit. */
enum { MN = 300, MP = 6 };
typedef struct mat_ctx { const double *A; ad_csr csr; } mat_ctx;

static ad_var mat_fn(const ad_var *x, size_t n, void *vctx)
{
    const mat_ctx *c = vctx;
    ad_var *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z), *t = malloc(n * sizeof *t);
    ad_matvec(n, n, c->A, x, y);
    ad_spmv(n, n, &c->csr, x, z);
    for (size_t i = 0; i < n; i++) t[i] = ad_mul(ad_tanh(y[i]), z[i]);
    ad_var f = ad_add(ad_sum(n, t), ad_mulc(ad_dotv(n, x, y), 0.5));
    free(y); free(z); free(t);
    return f;
}

typedef struct mat_ref {
    double x[MP][MN], v[MP][MN], g[MP][MN], hv[MP][MN], f[MP];
} mat_ref;

typedef struct mat_job { ad_tape *h; const mat_ref *R; int id, bad, errors; } mat_job;

static void *mat_worker(void *arg)
{
    mat_job *j = arg;
    static _Thread_local double g[MN], hv[MN];
    static const double elsewhere[MN] = {0};
    double f;
    for (int round = 0; round < 3; round++)
        for (int q = 0; q < MP; q++) {
            int p = (q + j->id + round) % MP;
            if (ad_eval(j->h, elsewhere, &f) != AD_OK) { j->errors++; continue; }
            if (ad_gradient(j->h, j->R->x[p], &f, g) != AD_OK || ad_hvp(j->h, j->R->x[p], j->R->v[p], hv) != AD_OK) {
                j->errors++;
                continue;
            }
            if (f != j->R->f[p] || memcmp(g, j->R->g[p], sizeof g) || memcmp(hv, j->R->hv[p], sizeof hv))
                j->bad++;
        }
    return NULL;
}

typedef struct curv_job {
    ad_tape *h;
    const ad_curv_params *prm;
    const double *x;
    ad_curvature res;
    ad_status status;
} curv_job;

static void *curv_worker(void *arg)
{
    curv_job *j = arg;
    static const double elsewhere[MN] = {0};
    double f;
    /* start from another point, as the single-thread run did */
    j->status = ad_eval(j->h, elsewhere, &f);
    if (j->status == AD_OK)
        j->status = ad_hess_extremes(j->h, j->x, j->prm, &j->res);
    return NULL;
}

static void shared_matrix_tapes_match_single_thread_bit_for_bit(void **state)
{
    (void)state;
    static double A[MN * MN], val[MN * 8];
    static size_t rowptr[MN + 1];
    static uint32_t colind[MN * 8];
    static mat_ref R;
    tu_rng r = {77};
    for (size_t i = 0; i < MN * MN; i++) A[i] = tu_range(&r, -0.1, 0.1);
    size_t k = 0;
    for (size_t i = 0; i < MN; i++) {
        rowptr[i] = k;
        for (int e = 0; e < 8; e++) {
            colind[k] = (uint32_t)tu_index(&r, MN);
            val[k++] = tu_range(&r, -1, 1);
        }
    }
    rowptr[MN] = k;
    mat_ctx c = {A, {rowptr, colind, val}};
    double x0[MN];
    for (size_t i = 0; i < MN; i++) x0[i] = tu_range(&r, -1, 1);
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, mat_fn, MN, x0, &c));
    ad_tape *ref = ad_tape_share(t);
    for (int p = 0; p < MP; p++) {
        for (size_t i = 0; i < MN; i++) {
            R.x[p][i] = tu_range(&r, -1, 1);
            R.v[p][i] = tu_range(&r, -1, 1);
        }
        assert_ok(ad_gradient(ref, R.x[p], &R.f[p], R.g[p]));
        assert_ok(ad_hvp(ref, R.x[p], R.v[p], R.hv[p]));
    }
    pthread_t th[NTHREADS];
    mat_job jobs[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        jobs[i] = (mat_job){ad_tape_share(t), &R, i, 0, 0};
        assert_non_null(jobs[i].h);
        assert_int_equal(pthread_create(&th[i], NULL, mat_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (jobs[i].errors || jobs[i].bad) {
            print_error("handle %d: %d errors, %d results differing from the single thread's\n", i,
                        jobs[i].errors, jobs[i].bad);
            fail();
        }
    }
    /* Lanczos on every handle at once: the same Ritz values as alone */
    ad_curv_params prm;
    ad_curv_params_init(&prm);
    prm.method = AD_CURV_LANCZOS;
    prm.max_iter = 40;
    curv_job cj[NTHREADS];
    ad_curvature alone;
    assert_ok(ad_hess_extremes(ref, R.x[1], &prm, &alone));
    for (int i = 0; i < NTHREADS; i++) {
        memset(&cj[i], 0, sizeof cj[i]);
        cj[i].h = jobs[i].h;
        cj[i].prm = &prm;
        cj[i].x = R.x[1];
        assert_int_equal(pthread_create(&th[i], NULL, curv_worker, &cj[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_ok(cj[i].status);
        assert_true(cj[i].res.lambda_min == alone.lambda_min && cj[i].res.lambda_max == alone.lambda_max);
        assert_int_equal(cj[i].res.iters, alone.iters);
        ad_tape_free(jobs[i].h);
    }
    ad_tape_free(ref);
    ad_tape_free(t);
}

/* A thread can record on its own tape while another thread's tape is
 * mid-recording: the active tape is per thread. */
typedef struct interleave_job {
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *phase;
    int ok;
} interleave_job;

static void *interleave_worker(void *arg)
{
    interleave_job *j = arg;
    pthread_mutex_lock(j->mu);
    while (*j->phase != 1) pthread_cond_wait(j->cv, j->mu);
    pthread_mutex_unlock(j->mu);
    /* the main thread is in the middle of a recording now */
    ad_tape *t = ad_tape_new();
    double x[2] = {0.5, 2.0}, f;
    cyc_ctx c = {1.0};
    j->ok = ad_record(t, cyc_fn, 2, x, &c) == AD_OK && ad_eval(t, x, &f) == AD_OK &&
            tu_close(f, exp(0.5) * 2.0 + exp(2.0) * 0.5 + sin(0.5) + sin(2.0), 1e-14, 0.0);
    ad_tape_free(t);
    pthread_mutex_lock(j->mu);
    *j->phase = 2;
    pthread_cond_broadcast(j->cv);
    pthread_mutex_unlock(j->mu);
    return NULL;
}

static void active_tape_is_per_thread(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int phase = 0;
    interleave_job j = {&mu, &cv, &phase, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, interleave_worker, &j), 0);
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(3.0);
    ad_var b = ad_sqr(a);
    pthread_mutex_lock(&mu);
    phase = 1;
    pthread_cond_broadcast(&cv);
    while (phase != 2) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    ad_output(ad_mul(b, a));
    assert_ok(ad_record_end(t));
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(j.ok);
    double x = 2.0, f;
    assert_ok(ad_eval(t, &x, &f));
    assert_true(f == 8.0);
    assert_int_equal(ad_tape_ninputs(t), 1);
    ad_tape_free(t);
}

/* ===================================================================== */
/* ad_hessian and ad_hvp_batch split across threads (ad_tape_set_threads) */
/* ===================================================================== */

/* Bit for bit the one-thread result, for thread counts that do and do not
 * divide the lane blocks, on optimized and raw tapes, after a re-record. */
static void threaded_hessian_and_batch_match_one_thread(void **state)
{
    (void)state;
    enum { N = 61, K = 29 };
    static double H1[N * N], Ht[N * N], V[K * N], HV1[K * N], HVt[K * N];
    cyc_ctx c = {0.7};
    tu_rng r = {77};
    double x[N], x2[N];
    for (size_t i = 0; i < N; i++) {
        x[i] = tu_range(&r, -1, 1);
        x2[i] = tu_range(&r, -1, 1);
    }
    for (size_t i = 0; i < K * N; i++)
        V[i] = tu_range(&r, -1, 1);
    for (int opt = 0; opt < 2; opt++) {
        ad_tape *one = ad_tape_new();
        assert_ok(ad_tape_set_optimize(one, opt));
        assert_ok(ad_tape_set_threads(one, 1));
        assert_ok(ad_record(one, cyc_fn, N, x, &c));
        assert_ok(ad_hessian(one, x, H1));
        assert_ok(ad_hvp_batch(one, x, K, V, HV1));
        const unsigned counts[] = {2, 3, 4, 7, 0};
        for (size_t q = 0; q < NPTS(counts); q++) {
            ad_tape *t = ad_tape_new();
            assert_ok(ad_tape_set_optimize(t, opt));
            assert_ok(ad_tape_set_threads(t, counts[q]));
            assert_ok(ad_record(t, cyc_fn, N, x, &c));
            for (int rep = 0; rep < 2; rep++) {   /* helpers are reused */
                assert_ok(ad_hessian(t, x, Ht));
                assert_memory_equal(Ht, H1, sizeof H1);
                assert_ok(ad_hvp_batch(t, x, K, V, HVt));
                assert_memory_equal(HVt, HV1, sizeof HV1);
            }
            /* a new recording: the helpers follow it */
            cyc_ctx c2 = {-0.4};
            assert_ok(ad_record(one, cyc_fn, N, x2, &c2));
            assert_ok(ad_record(t, cyc_fn, N, x2, &c2));
            assert_ok(ad_hessian(one, x2, H1));
            assert_ok(ad_hessian(t, x2, Ht));
            assert_memory_equal(Ht, H1, sizeof H1);
            assert_ok(ad_record(one, cyc_fn, N, x, &c));
            assert_ok(ad_hessian(one, x, H1));
            assert_ok(ad_hvp_batch(one, x, K, V, HV1));
            ad_tape_free(t);
        }
        ad_tape_free(one);
    }
    assert_status(ad_tape_set_threads(NULL, 2), AD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threads_record_and_replay_own_tapes),
        cmocka_unit_test(active_tape_is_per_thread),
        cmocka_unit_test(shared_handles_match_single_thread_bit_for_bit),
        cmocka_unit_test(handles_free_in_any_order),
        cmocka_unit_test(rerecording_a_shared_handle_leaves_others_alone),
        cmocka_unit_test(flipped_share_gets_own_recording),
        cmocka_unit_test(concurrent_flips_on_shared_handles),
        cmocka_unit_test(rerecording_the_original_leaves_shares_alone),
        cmocka_unit_test(concurrent_frees_of_shared_handles),
        cmocka_unit_test(shared_matrix_tapes_match_single_thread_bit_for_bit),
        cmocka_unit_test(threaded_hessian_and_batch_match_one_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
