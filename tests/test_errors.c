/*
 * Every misuse the header names returns its status (never a crash), errors
 * while recording are sticky, and a tape stays freeable and re-recordable
 * after any error.  Meant to run clean under valgrind --leak-check=full.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define NPTS(a) (sizeof(a) / sizeof((a)[0]))

/* f = x0² x1 + sin(x1) */
static ad_var good_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    return ad_add(ad_mul(ad_sqr(x[0]), x[1]), ad_sin(x[1]));
}

static void check_good(ad_tape *t, const double *x)
{
    double f, g[2];
    assert_ok(ad_gradient(t, x, &f, g));
    assert_close(f, x[0] * x[0] * x[1] + sin(x[1]), 4 * TU_ULP);
    assert_close(g[0], 2 * x[0] * x[1], 4 * TU_ULP);
    assert_close(g[1], x[0] * x[0] + cos(x[1]), 4 * TU_ULP);
}

static ad_tape *good_tape(void)
{
    double x[2] = {1.5, 0.5};
    ad_tape *t = ad_tape_new();
    assert_non_null(t);
    assert_ok(ad_record(t, good_fn, 2, x, NULL));
    return t;
}

/* ===================================================================== */
/* NULL arguments                                                        */
/* ===================================================================== */

static void null_arguments_to_drivers_return_einval(void **state)
{
    (void)state;
    ad_tape *t = good_tape();
    double x[2] = {1, 2}, v[2] = {1, 0}, f, g[2], hv[2], q, H[4], V[4] = {1, 0, 0, 1}, HV[4];
    assert_status(ad_eval(NULL, x, &f), AD_EINVAL);
    assert_status(ad_eval(t, NULL, &f), AD_EINVAL);
    assert_status(ad_eval(t, x, NULL), AD_EINVAL);
    assert_status(ad_gradient(NULL, x, &f, g), AD_EINVAL);
    assert_status(ad_gradient(t, NULL, &f, g), AD_EINVAL);
    assert_status(ad_gradient(t, x, &f, NULL), AD_EINVAL);
    assert_ok(ad_gradient(t, x, NULL, g)); /* f may be NULL */
    assert_status(ad_hvp(NULL, x, v, hv), AD_EINVAL);
    assert_status(ad_hvp(t, NULL, v, hv), AD_EINVAL);
    assert_status(ad_hvp(t, x, NULL, hv), AD_EINVAL);
    assert_status(ad_hvp(t, x, v, NULL), AD_EINVAL);
    assert_status(ad_hvp_batch(NULL, x, 2, V, HV), AD_EINVAL);
    assert_status(ad_hvp_batch(t, NULL, 2, V, HV), AD_EINVAL);
    assert_status(ad_hvp_batch(t, x, 2, NULL, HV), AD_EINVAL);
    assert_status(ad_hvp_batch(t, x, 2, V, NULL), AD_EINVAL);
    assert_status(ad_hess_form(NULL, x, v, v, &q), AD_EINVAL);
    assert_status(ad_hess_form(t, NULL, v, v, &q), AD_EINVAL);
    assert_status(ad_hess_form(t, x, NULL, v, &q), AD_EINVAL);
    assert_status(ad_hess_form(t, x, v, NULL, &q), AD_EINVAL);
    assert_status(ad_hess_form(t, x, v, v, NULL), AD_EINVAL);
    assert_status(ad_hessian(NULL, x, H), AD_EINVAL);
    assert_status(ad_hessian(t, NULL, H), AD_EINVAL);
    assert_status(ad_hessian(t, x, NULL), AD_EINVAL);
    ad_curvature c;
    assert_status(ad_hess_extremes(NULL, x, NULL, &c), AD_EINVAL);
    assert_status(ad_hess_extremes(t, NULL, NULL, &c), AD_EINVAL);
    assert_status(ad_hess_extremes(t, x, NULL, NULL), AD_EINVAL);
    assert_status(ad_classify_point(NULL, x, NULL, &c), AD_EINVAL);
    assert_status(ad_classify_point(t, NULL, NULL, &c), AD_EINVAL);
    assert_status(ad_classify_point(t, x, NULL, NULL), AD_EINVAL);
    /* the tape is unharmed */
    check_good(t, x);
    ad_tape_free(t);
}

static void null_arguments_to_recording_return_einval(void **state)
{
    (void)state;
    double x[2] = {1, 2};
    ad_tape *t = ad_tape_new();
    assert_status(ad_record(NULL, good_fn, 2, x, NULL), AD_EINVAL);
    assert_status(ad_record(t, NULL, 2, x, NULL), AD_EINVAL);
    assert_status(ad_record(t, good_fn, 2, NULL, NULL), AD_EINVAL);
    assert_status(ad_record(t, good_fn, 0, x, NULL), AD_EINVAL);
    assert_status(ad_record_begin(NULL), AD_EINVAL);
    assert_status(ad_tape_set_max_ops(NULL, 10), AD_EINVAL);
    assert_status(ad_tape_set_max_ops(t, 0), AD_EINVAL);
    assert_null(ad_tape_share(NULL));
    ad_tape_free(NULL);
    assert_int_equal(ad_tape_ninputs(NULL), 0);
    assert_non_null(ad_tape_errmsg(t));
    /* nothing was left active by the failed calls: a normal recording works */
    assert_ok(ad_record(t, good_fn, 2, x, NULL));
    check_good(t, x);
    ad_tape_free(t);
}

/* ad_tape_reserve: bad calls are refused with a status and a message, and
 * leave the tape as it was. */
static void reserve_misuse_is_reported(void **state)
{
    (void)state;
    double x[2] = {1, 2};
    ad_tape *t = ad_tape_new();
    assert_status(ad_tape_reserve(NULL, 10, 0), AD_EINVAL);
    assert_ok(ad_tape_set_max_ops(t, 100));
    assert_status(ad_tape_reserve(t, 101, 0), AD_ELIMIT);
    assert_non_null(strstr(ad_tape_errmsg(t), "ad_tape_reserve"));
    assert_ok(ad_tape_reserve(t, 100, 10));
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(1.0);
    assert_status(ad_tape_reserve(t, 50, 0), AD_ESTATE);
    ad_output(ad_sqr(a));
    assert_ok(ad_record_end(t));
    /* a recording shared with another handle is left alone */
    assert_ok(ad_record(t, good_fn, 2, x, NULL));
    ad_tape *s = ad_tape_share(t);
    assert_non_null(s);
    assert_ok(ad_tape_reserve(t, 100, 0));
    check_good(t, x);
    check_good(s, x);
    ad_tape_free(s);
    ad_tape_free(t);
}

/* ad_inputs: a NULL array, a non-finite entry (named) or the node limit
 * fail the recording; every var written is invalid; without a tape, too. */
static void bulk_inputs_misuse_is_reported(void **state)
{
    (void)state;
    const double x[4] = {1.0, 2.0, NAN, 4.0};
    ad_var v[4];
    ad_inputs(2, x, v);   /* no active tape */
    assert_int_equal(v[0].rec, 0);
    assert_int_equal(v[1].rec, 0);
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record_begin(t));
    ad_inputs(0, NULL, NULL);   /* nothing to do */
    ad_inputs(2, NULL, v);
    assert_int_equal(v[0].rec, 0);
    ad_output(ad_input(1.0));
    assert_status(ad_record_end(t), AD_EINVAL);
    assert_non_null(strstr(ad_tape_errmsg(t), "NULL"));
    assert_ok(ad_record_begin(t));
    ad_inputs(4, x, v);
    for (int j = 0; j < 4; j++)
        assert_int_equal(v[j].rec, 0);
    ad_output(ad_input(1.0));
    assert_status(ad_record_end(t), AD_EINVAL);
    assert_non_null(strstr(ad_tape_errmsg(t), "x[2]"));
    assert_ok(ad_tape_set_max_ops(t, 3));
    assert_ok(ad_record_begin(t));
    ad_inputs(2, x, v);
    assert_int_not_equal(v[1].rec, 0);
    ad_inputs(2, x, v);   /* 4 nodes > 3 */
    assert_int_equal(v[0].rec, 0);
    ad_output(ad_input(1.0));
    assert_status(ad_record_end(t), AD_ELIMIT);
    ad_tape_free(t);
}

/* ===================================================================== */
/* Ops without a tape, foreign vars                                      */
/* ===================================================================== */

static void ops_without_active_tape_are_harmless(void **state)
{
    (void)state;
    ad_var a = ad_input(1.0);
    ad_var b = ad_const(2.0);
    ad_var c = ad_add(a, b);
    ad_var d = ad_sin(ad_mul(c, c));
    ad_var v[3] = {a, b, c}, y[2];
    double A[6] = {1, 2, 3, 4, 5, 6};
    (void)ad_sum(3, v);
    ad_matvec(2, 3, A, v, y);
    assert_int_equal(ad_lt(a, b), 0);
    ad_output(d);
    assert_true(isnan(ad_value(d)));
    assert_true(isnan(ad_value(a)));
    ad_tape *t = ad_tape_new();
    /* ad_record_end on a tape that is not recording */
    assert_status(ad_record_end(t), AD_ESTATE);
    /* a later recording is unaffected */
    double x[2] = {0.5, 2.0};
    assert_ok(ad_record(t, good_fn, 2, x, NULL));
    check_good(t, x);
    ad_tape_free(t);
}

static void var_of_another_tape_is_einval(void **state)
{
    (void)state;
    ad_tape *t1 = ad_tape_new(), *t2 = ad_tape_new();
    assert_ok(ad_record_begin(t1));
    ad_var a = ad_input(1.0);
    ad_output(ad_sqr(a));
    assert_ok(ad_record_end(t1));
    /* use a (of t1) while recording t2 */
    assert_ok(ad_record_begin(t2));
    ad_var b = ad_input(2.0);
    ad_var c = ad_add(b, a);
    assert_true(isnan(ad_value(c)));
    ad_output(ad_mul(c, b));
    assert_status(ad_record_end(t2), AD_EINVAL);
    assert_true(ad_tape_errmsg(t2)[0] != '\0');
    /* t1 is unaffected */
    double x = 3.0, f, g;
    assert_ok(ad_gradient(t1, &x, &f, &g));
    assert_true(f == 9.0 && g == 6.0);
    ad_tape_free(t2);
    ad_tape_free(t1);
}

/* ad_output and the recorded comparisons check their vars too. */
static void foreign_var_in_output_or_comparison_is_einval(void **state)
{
    (void)state;
    ad_tape *o = good_tape(), *t = ad_tape_new();
    ad_var fo;
    {
        ad_tape *tmp = ad_tape_new();
        assert_ok(ad_record_begin(tmp));
        fo = ad_input(1.0);
        ad_output(fo);
        assert_ok(ad_record_end(tmp));
        ad_tape_free(tmp);
    }
    ad_var forged = {.val = 1.0, .idx = 12345, .rec = 0};
    /* output: forged, foreign, foreign then a good one (the error stays) */
    assert_ok(ad_record_begin(t));
    (void)ad_input(1.0);
    ad_output(forged);
    assert_status(ad_record_end(t), AD_EINVAL);
    assert_ok(ad_record_begin(t));
    ad_var x = ad_input(1.0);
    ad_output(fo);
    ad_output(x);
    assert_status(ad_record_end(t), AD_EINVAL);
    /* comparison with a foreign var: 0 and the sticky error */
    assert_ok(ad_record_begin(t));
    x = ad_input(1.0);
    assert_int_equal(ad_lt(x, fo), 0);
    assert_int_equal(ad_ge(fo, x), 0);
    ad_output(x);
    assert_status(ad_record_end(t), AD_EINVAL);
    ad_tape_free(t);
    ad_tape_free(o);
}

static void var_of_an_earlier_recording_is_einval(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(1.0);
    ad_var old = ad_exp(a);
    ad_output(old);
    assert_ok(ad_record_end(t));
    assert_ok(ad_record_begin(t));
    ad_var b = ad_input(2.0);
    /* b and old may well have the same index: only the recording id differs */
    ad_output(ad_add(b, old));
    assert_status(ad_record_end(t), AD_EINVAL);
    double x = 1.0, f;
    assert_status(ad_eval(t, &x, &f), AD_EINVAL);
    /* the same index through a var of this recording is fine */
    assert_ok(ad_record_begin(t));
    b = ad_input(2.0);
    ad_output(ad_add(b, ad_exp(b)));
    assert_ok(ad_record_end(t));
    assert_ok(ad_eval(t, &x, &f));
    assert_close(f, 1.0 + exp(1.0), 2 * TU_ULP);
    ad_tape_free(t);
}

static void forged_var_is_rejected(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(1.0);
    ad_var bad = {.val = a.val, .idx = a.idx + 1000000u, .rec = a.rec};
    ad_output(ad_add(a, bad));
    ad_status s = ad_record_end(t);
    assert_true(s == AD_EINVAL || s == AD_ESTATE);
    ad_var bad2 = {.val = a.val, .idx = a.idx, .rec = a.rec ^ 0x5a5a5a5au};
    assert_ok(ad_record_begin(t));
    a = ad_input(1.0);
    bad2.idx = a.idx;
    ad_output(ad_mul(a, bad2));
    s = ad_record_end(t);
    assert_true(s == AD_EINVAL || s == AD_ESTATE);
    ad_tape_free(t);
}

static void record_begin_while_recording_is_estate(void **state)
{
    (void)state;
    ad_tape *t1 = ad_tape_new(), *t2 = ad_tape_new();
    assert_ok(ad_record_begin(t1));
    ad_var a = ad_input(2.0);
    assert_status(ad_record_begin(t2), AD_ESTATE);
    double x[2] = {1, 2};
    assert_status(ad_record(t2, good_fn, 2, x, NULL), AD_ESTATE);
    /* t1's recording goes on */
    ad_output(ad_sqr(a));
    assert_ok(ad_record_end(t1));
    double v = 3.0, f;
    assert_ok(ad_eval(t1, &v, &f));
    assert_true(f == 9.0);
    /* now t2 can record */
    assert_ok(ad_record(t2, good_fn, 2, x, NULL));
    check_good(t2, x);
    ad_tape_free(t1);
    ad_tape_free(t2);
}

static void freeing_the_active_tape_ends_the_recording(void **state)
{
    (void)state;
    ad_tape *t1 = ad_tape_new();
    assert_ok(ad_record_begin(t1));
    ad_var a = ad_input(2.0);
    (void)ad_sqr(a);
    ad_tape_free(t1);
    /* no active tape now: ops are harmless, a new recording can start */
    (void)ad_sin(a);
    ad_tape *t2 = ad_tape_new();
    double x[2] = {1, 2};
    assert_ok(ad_record(t2, good_fn, 2, x, NULL));
    check_good(t2, x);
    ad_tape_free(t2);
}

static void driver_on_unrecorded_tape_is_estate(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    double x[2] = {1, 2}, v[2] = {1, 0}, f, g[2], hv[2], q, H[4], V[2] = {1, 0}, HV[2];
    assert_status(ad_eval(t, x, &f), AD_ESTATE);
    assert_status(ad_gradient(t, x, &f, g), AD_ESTATE);
    assert_status(ad_hvp(t, x, v, hv), AD_ESTATE);
    assert_status(ad_hvp_batch(t, x, 1, V, HV), AD_ESTATE);
    assert_status(ad_hess_form(t, x, v, v, &q), AD_ESTATE);
    assert_status(ad_hessian(t, x, H), AD_ESTATE);
    ad_curvature c;
    assert_status(ad_hess_extremes(t, x, NULL, &c), AD_ESTATE);
    assert_status(ad_classify_point(t, x, NULL, &c), AD_ESTATE);
    assert_null(ad_tape_share(t));
    assert_int_equal(ad_tape_ninputs(t), 0);
    /* also while it is being recorded */
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(1.0);
    assert_status(ad_eval(t, x, &f), AD_ESTATE);
    ad_output(a);
    assert_ok(ad_record_end(t));
    assert_ok(ad_eval(t, x, &f));
    assert_true(f == 1.0);
    ad_tape_free(t);
}

static void no_output_is_estate(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(1.0);
    (void)ad_exp(a);
    assert_status(ad_record_end(t), AD_ESTATE);
    double x = 1.0, f;
    assert_true(ad_eval(t, &x, &f) != AD_OK);
    /* no active tape left behind */
    ad_tape *t2 = good_tape();
    ad_tape_free(t2);
    /* and an empty recording */
    assert_ok(ad_record_begin(t));
    assert_status(ad_record_end(t), AD_ESTATE);
    ad_tape_free(t);
}

/* ===================================================================== */
/* Sticky errors                                                         */
/* ===================================================================== */

static void recording_errors_are_sticky(void **state)
{
    (void)state;
    ad_tape *other = good_tape();
    ad_var foreign;
    {
        ad_tape *tmp = ad_tape_new();
        assert_ok(ad_record_begin(tmp));
        foreign = ad_input(1.0);
        ad_output(foreign);
        assert_ok(ad_record_end(tmp));
        ad_tape_free(tmp);
    }
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(1.0), b = ad_input(2.0);
    ad_var c = ad_add(a, b);
    assert_true(ad_value(c) == 3.0);
    ad_var bad = ad_mul(c, foreign);     /* first error: foreign var (EINVAL) */
    assert_true(isnan(ad_value(bad)));
    /* later ops are harmless no-ops, including a second kind of error */
    ad_var d = ad_log(ad_neg(c));        /* would be EDOMAIN */
    ad_var e = ad_add(a, b);
    assert_true(isnan(ad_value(d)));
    (void)e;
    size_t rowptr[2] = {0, 1};
    uint32_t colind[1] = {7};
    double val[1] = {1.0};
    ad_csr csr = {rowptr, colind, val};
    ad_var y[1], xs[2] = {a, b};
    ad_spmv(1, 2, &csr, xs, y);           /* would be EINVAL too */
    (void)ad_lt(a, b);
    ad_output(ad_add(c, d));
    assert_status(ad_record_end(t), AD_EINVAL);
    const char *msg = ad_tape_errmsg(t);
    assert_non_null(msg);
    assert_true(msg[0] != '\0');
    /* drivers return the sticky error */
    double x[2] = {1, 2}, f, g[2], v[2] = {1, 1}, hv[2], H[4], q;
    assert_status(ad_eval(t, x, &f), AD_EINVAL);
    assert_status(ad_gradient(t, x, &f, g), AD_EINVAL);
    assert_status(ad_hvp(t, x, v, hv), AD_EINVAL);
    assert_status(ad_hessian(t, x, H), AD_EINVAL);
    assert_status(ad_hess_form(t, x, v, v, &q), AD_EINVAL);
    assert_null(ad_tape_share(t));
    ad_curvature cv;
    ad_status se = ad_hess_extremes(t, x, NULL, &cv), sc = ad_classify_point(t, x, NULL, &cv);
    /* the sticky AD_EINVAL, as every driver returns */
    assert_status(se, AD_EINVAL);
    assert_status(sc, AD_EINVAL);
    /* the next ad_record_begin clears it */
    assert_ok(ad_record_begin(t));
    a = ad_input(1.0);
    b = ad_input(2.0);
    ad_output(good_fn((ad_var[2]){a, b}, 2, NULL));
    assert_ok(ad_record_end(t));
    check_good(t, x);
    assert_true(ad_tape_errmsg(t)[0] == '\0');
    /* other tape untouched all along */
    check_good(other, x);
    ad_tape_free(other);
    ad_tape_free(t);
}

/* ===================================================================== */
/* Bad inputs to drivers                                                 */
/* ===================================================================== */

static void non_finite_x_or_direction_is_einval(void **state)
{
    (void)state;
    ad_tape *t = good_tape();
    const double bads[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < NPTS(bads); i++) {
        double x[2] = {1, bads[i]}, ok[2] = {1, 2}, v[2] = {1, bads[i]}, e[2] = {1, 0};
        double f, g[2], hv[2], q, H[4], V[4] = {1, 0, 0, bads[i]}, HV[4];
        assert_status(ad_eval(t, x, &f), AD_EINVAL);
        assert_status(ad_gradient(t, x, &f, g), AD_EINVAL);
        assert_status(ad_hvp(t, x, e, hv), AD_EINVAL);
        assert_status(ad_hvp_batch(t, x, 1, e, HV), AD_EINVAL);
        assert_status(ad_hess_form(t, x, e, e, &q), AD_EINVAL);
        assert_status(ad_hessian(t, x, H), AD_EINVAL);
        ad_curvature c;
        assert_status(ad_hess_extremes(t, x, NULL, &c), AD_EINVAL);
        assert_status(ad_classify_point(t, x, NULL, &c), AD_EINVAL);
        /* directions */
        assert_status(ad_hvp(t, ok, v, hv), AD_EINVAL);
        assert_status(ad_hvp_batch(t, ok, 2, V, HV), AD_EINVAL);
        assert_status(ad_hess_form(t, ok, v, e, &q), AD_EINVAL);
        assert_status(ad_hess_form(t, ok, e, v, &q), AD_EINVAL);
        /* NaN at the first entry too */
        x[0] = bads[i];
        x[1] = 2;
        assert_status(ad_eval(t, x, &f), AD_EINVAL);
        check_good(t, ok);
    }
    /* the NaN check is not fooled by the value cache */
    double ok[2] = {1, 2}, f;
    assert_ok(ad_eval(t, ok, &f));
    ok[1] = NAN;
    assert_status(ad_eval(t, ok, &f), AD_EINVAL);
    ok[1] = 2;
    check_good(t, ok);
    ad_tape_free(t);
}

/* V and HV end exactly at a PROT_NONE page, so a driver that reads or
 * writes past the 4 entries the caller owns faults.  Run in a child so a
 * fault is reported, not fatal. */
static int batch_overflow_child(size_t k)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, 4 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return 2;
    if (mprotect(mem + pg, (size_t)pg, PROT_NONE) || mprotect(mem + 3 * pg, (size_t)pg, PROT_NONE))
        return 2;
    double *V = (double *)(mem + pg) - 4, *HV = (double *)(mem + 3 * pg) - 4;
    V[0] = 1; V[1] = 0; V[2] = 0; V[3] = 1;
    for (int i = 0; i < 4; i++) HV[i] = -1;
    double x[2] = {1, 2};
    ad_tape *t = ad_tape_new();
    if (ad_record(t, good_fn, 2, x, NULL) != AD_OK)
        return 3;
    ad_status s = ad_hvp_batch(t, x, k, V, HV);
    if (s != AD_ELIMIT && s != AD_EINVAL)
        return 10 + (int)s;
    for (int i = 0; i < 4; i++)
        if (HV[i] != -1)
            return 4;
    double f, g[2];
    if (ad_gradient(t, x, &f, g) != AD_OK || g[0] != 4.0)
        return 5;
    ad_tape_free(t);
    return 0;
}

static void hvp_batch_with_overflowing_k_is_rejected(void **state)
{
    (void)state;
    /* k·n·sizeof(double) overflows size_t for each k (n = 2); for
     * SIZE_MAX/2 and SIZE_MAX/3, k·n alone does not. */
    const size_t ks[] = {SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX / 2, SIZE_MAX / 3};
    int nbad = 0;
    for (size_t i = 0; i < NPTS(ks); i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            signal(SIGSEGV, SIG_DFL); /* not cmocka's handler: die, let the parent report */
            signal(SIGBUS, SIG_DFL);
            _exit(batch_overflow_child(ks[i]));
        }
        int st = 0;
        assert_true(waitpid(pid, &st, 0) == pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            nbad++;
            print_error("ad_hvp_batch(k = %#zx, n = 2): child %s %d (a signal: it read or wrote "
                        "past V/HV; 10+s: it returned status s instead of AD_ELIMIT/AD_EINVAL)\n",
                        ks[i], WIFEXITED(st) ? "exit" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        }
    }
    assert_int_equal(nbad, 0);
}

/* ===================================================================== */
/* Limits                                                                */
/* ===================================================================== */

static ad_var long_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n;
    int len = *(const int *)ctx;
    ad_var a = x[0];
    for (int i = 0; i < len; i++) a = ad_sin(ad_addc(a, 0.1));
    return a;
}

static void max_ops_limit_is_elimit_and_tape_recovers(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_tape_set_max_ops(t, 50));
    int len = 100;
    double x = 0.3, f;
    assert_status(ad_record(t, long_fn, 1, &x, &len), AD_ELIMIT);
    assert_true(ad_tape_errmsg(t)[0] != '\0');
    assert_status(ad_eval(t, &x, &f), AD_ELIMIT);
    /* within the limit */
    len = 10;
    assert_ok(ad_record(t, long_fn, 1, &x, &len));
    assert_ok(ad_eval(t, &x, &f));
    double w = x;
    for (int i = 0; i < len; i++) w = sin(w + 0.1);
    assert_close(f, w, 8 * TU_ULP);
    /* manual route */
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(1.0);
    for (int i = 0; i < 200; i++) a = ad_exp(ad_mulc(a, 0.5));
    ad_output(a);
    assert_status(ad_record_end(t), AD_ELIMIT);
    /* raise the limit: re-recordable */
    assert_ok(ad_tape_set_max_ops(t, 100000));
    len = 100;
    assert_ok(ad_record(t, long_fn, 1, &x, &len));
    assert_ok(ad_eval(t, &x, &f));
    ad_tape_free(t);

    /* freed while over the limit, without ending the recording */
    t = ad_tape_new();
    assert_ok(ad_tape_set_max_ops(t, 5));
    assert_ok(ad_record_begin(t));
    a = ad_input(1.0);
    for (int i = 0; i < 20; i++) a = ad_sin(a);
    ad_tape_free(t);
    ad_tape *t2 = good_tape();
    ad_tape_free(t2);
}

/* The limit holds whatever storage the tape already has: below the initial
 * capacity, and after a larger earlier recording. */
static void max_ops_limit_holds_within_existing_capacity(void **state)
{
    (void)state;
    double x = 0.3;
    int len;
    ad_tape *t = ad_tape_new();
    /* a small limit on a fresh tape: 1 input + 2·10 ops > 5 */
    assert_ok(ad_tape_set_max_ops(t, 5));
    len = 10;
    ad_status s1 = ad_record(t, long_fn, 1, &x, &len);
    /* a big recording first, then a limit below the next recording's size */
    assert_ok(ad_tape_set_max_ops(t, 100000));
    len = 5000;
    assert_ok(ad_record(t, long_fn, 1, &x, &len));
    assert_ok(ad_tape_set_max_ops(t, 100));
    len = 1000;
    ad_status s2 = ad_record(t, long_fn, 1, &x, &len);
    /* the limit holds even where the tape already has the storage */
    assert_status(s1, AD_ELIMIT);
    assert_status(s2, AD_ELIMIT);
    /* within the limit it records */
    len = 10;
    assert_ok(ad_record(t, long_fn, 1, &x, &len));
    ad_tape_free(t);
}

/* ===================================================================== */
/* Sparse matrices                                                       */
/* ===================================================================== */

static ad_status record_spmv(ad_tape *t, const size_t *rowptr, const uint32_t *colind,
                             const double *val, size_t m, size_t n)
{
    ad_csr csr = {rowptr, colind, val};
    ad_var x[4], y[4];
    ad_status s = ad_record_begin(t);
    if (s != AD_OK)
        return s;
    for (size_t i = 0; i < n; i++) x[i] = ad_input(1.0 + (double)i);
    ad_spmv(m, n, &csr, x, y);
    ad_output(ad_sum(m, y));
    return ad_record_end(t);
}

static void spmv_bad_csr_is_einval(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    const double val[4] = {1, 2, 3, 4};
    /* good: 2×3 */
    const size_t rp_ok[3] = {0, 2, 4};
    const uint32_t ci_ok[4] = {0, 2, 1, 2};
    assert_ok(record_spmv(t, rp_ok, ci_ok, val, 2, 3));
    double x[3] = {1, 2, 3}, f;
    assert_ok(ad_eval(t, x, &f));
    assert_true(f == 1 * 1 + 2 * 3 + 3 * 2 + 4 * 3);
    /* column index = n */
    const uint32_t ci_n[4] = {0, 3, 1, 2};
    assert_status(record_spmv(t, rp_ok, ci_n, val, 2, 3), AD_EINVAL);
    /* column index huge */
    const uint32_t ci_big[4] = {0, 1, UINT32_MAX, 2};
    assert_status(record_spmv(t, rp_ok, ci_big, val, 2, 3), AD_EINVAL);
    /* non-monotone rowptr */
    const size_t rp_bad[3] = {0, 3, 2};
    assert_status(record_spmv(t, rp_bad, ci_ok, val, 2, 3), AD_EINVAL);
    /* NULL arrays */
    assert_status(record_spmv(t, NULL, ci_ok, val, 2, 3), AD_EINVAL);
    assert_status(record_spmv(t, rp_ok, NULL, val, 2, 3), AD_EINVAL);
    assert_status(record_spmv(t, rp_ok, ci_ok, NULL, 2, 3), AD_EINVAL);
    /* the tape records fine again */
    assert_ok(record_spmv(t, rp_ok, ci_ok, val, 2, 3));
    assert_ok(ad_eval(t, x, &f));
    assert_true(f == 25.0);
    ad_tape_free(t);
}

/* ===================================================================== */
/* Domain errors                                                         */
/* ===================================================================== */

static void log_of_negative_at_recording_is_edomain_and_replays(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_status(tu_record_unary(t, ad_log, -1.0), AD_EDOMAIN);
    assert_true(ad_tape_errmsg(t)[0] != '\0');
    /* the recording is complete: it replays at a good point */
    double x = 2.0, f, g, H;
    assert_ok(ad_gradient(t, &x, &f, &g));
    assert_close(f, log(2.0), 2 * TU_ULP);
    assert_close(g, 0.5, 2 * TU_ULP);
    assert_ok(ad_hessian(t, &x, &H));
    assert_close(H, -0.25, 2 * TU_ULP);
    /* shareable too */
    ad_tape *s = ad_tape_share(t);
    assert_non_null(s);
    assert_ok(ad_eval(s, &x, &f));
    ad_tape_free(s);
    ad_tape_free(t);
}

static void log_of_negative_at_replay_is_edomain_then_recovers(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    /* f = x1 · log(x0) */
    assert_ok(ad_record_begin(t));
    ad_var a = ad_input(2.0), b = ad_input(3.0);
    ad_output(ad_mul(b, ad_log(a)));
    assert_ok(ad_record_end(t));
    assert_true(ad_tape_errmsg(t)[0] == '\0');
    double bad[2] = {-1.0, 3.0}, good[2] = {4.0, 0.5}, f, g[2], v[2] = {1, 1}, hv[2], H[4], q;
    assert_status(ad_eval(t, bad, &f), AD_EDOMAIN);
    const char *msg = ad_tape_errmsg(t);
    if (!strstr(msg, "log")) {
        print_error("ad_tape_errmsg after log(-1) at replay: \"%s\" (want it to name 'log')\n", msg);
        fail();
    }
    ad_status s;
    assert_ok(ad_gradient(t, good, &f, g));
    assert_close(f, 0.5 * log(4.0), 2 * TU_ULP);
    assert_close(g[0], 0.125, 2 * TU_ULP);
    assert_close(g[1], log(4.0), 2 * TU_ULP);
    /* every driver reports it, and every one recovers */
    assert_status(ad_gradient(t, bad, &f, g), AD_EDOMAIN);
    assert_ok(ad_gradient(t, good, &f, g));
    assert_status(ad_hvp(t, bad, v, hv), AD_EDOMAIN);
    assert_ok(ad_hvp(t, good, v, hv));
    assert_close(hv[0], -0.5 / 16 + 0.25, 4 * TU_ULP);
    assert_status(ad_hessian(t, bad, H), AD_EDOMAIN);
    assert_ok(ad_hessian(t, good, H));
    assert_status(ad_hess_form(t, bad, v, v, &q), AD_EDOMAIN);
    assert_ok(ad_hess_form(t, good, v, v, &q));
    assert_close(q, -0.5 / 16 + 2 * 0.25, 4 * TU_ULP);
    double V[2] = {1, 0}, HV[2];
    assert_status(ad_hvp_batch(t, bad, 1, V, HV), AD_EDOMAIN);
    assert_ok(ad_hvp_batch(t, good, 1, V, HV));
    /* the bad point again right after a good one (the cache must not hide it) */
    s = ad_eval(t, bad, &f);
    assert_status(s, AD_EDOMAIN);
    assert_ok(ad_eval(t, good, &f));
    assert_close(f, 0.5 * log(4.0), 2 * TU_ULP);
    ad_tape_free(t);
}

static void sqrt_at_zero_gradient_is_edomain(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_ok(tu_record_unary(t, ad_sqrt, 1.0));
    double x = 0.0, f = -1, g, one = 1, hv;
    assert_ok(ad_eval(t, &x, &f));
    assert_true(f == 0.0);
    assert_status(ad_gradient(t, &x, &f, &g), AD_EDOMAIN);
    assert_true(ad_tape_errmsg(t)[0] != '\0');
    assert_status(ad_hvp(t, &x, &one, &hv), AD_EDOMAIN);
    x = 4.0;
    assert_ok(ad_gradient(t, &x, &f, &g));
    assert_true(f == 2.0 && g == 0.25);
    ad_tape_free(t);
}

static void domain_error_does_not_poison_next_recording(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_status(tu_record_unary(t, ad_log, -1.0), AD_EDOMAIN);
    assert_status(tu_record_unary(t, ad_sqrt, -4.0), AD_EDOMAIN);
    assert_status(tu_record_unary(t, ad_asin, 2.0), AD_EDOMAIN);
    double x[2] = {1.5, -0.5};
    assert_ok(ad_record(t, good_fn, 2, x, NULL));
    assert_true(ad_tape_errmsg(t)[0] == '\0');
    check_good(t, x);
    ad_tape_free(t);
}

/* x0 < x1 ? x0 + x1 : log(x0 + 2) x1: the flip to the log branch at a
 * point where its argument is negative. */
static ad_var flip_log_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    if (ad_lt(x[0], x[1]))
        return ad_add(x[0], x[1]);
    return ad_mul(ad_log(ad_addc(x[0], 2.0)), x[1]);
}

static void rerecord_at_a_domain_error_point_recovers(void **state)
{
    (void)state;
    const double a[2] = {-5.0, 1.0};   /* branch 1 */
    const double bad[2] = {-3.0, -4.0}; /* branch 2, log(−1) */
    const double good[2] = {1.0, 0.5};  /* branch 2, log(3) */
    double f, g[2];
    ad_tape *t = ad_tape_new();
    assert_ok(ad_record(t, flip_log_fn, 2, a, NULL));
    assert_status(ad_gradient(t, bad, &f, g), AD_EDOMAIN);
    assert_non_null(strstr(ad_tape_errmsg(t), "log"));
    assert_ok(ad_gradient(t, good, &f, g));
    assert_close(f, log(3.0) * 0.5, 2 * TU_ULP);
    assert_close(g[0], 0.5 / 3.0, 2 * TU_ULP);
    assert_close(g[1], log(3.0), 2 * TU_ULP);
    assert_ok(ad_gradient(t, a, &f, g));
    assert_true(f == -4.0 && g[0] == 1.0 && g[1] == 1.0);
    /* the same with the bad point met first by an HVP and a Hessian */
    double v[2] = {1, 0}, hv[2], H[4];
    assert_status(ad_hvp(t, bad, v, hv), AD_EDOMAIN);
    assert_ok(ad_hvp(t, good, v, hv));
    assert_close(hv[0], -0.5 / 9.0, 2 * TU_ULP);
    assert_ok(ad_gradient(t, a, &f, g));
    assert_status(ad_hessian(t, bad, H), AD_EDOMAIN);
    assert_ok(ad_hessian(t, good, H));
    assert_close(H[1], 1.0 / 3.0, 2 * TU_ULP);
    ad_tape_free(t);
}

/* Misuse inside an ad_record function: returning a foreign var, and
 * starting another recording. */
static ad_var tu_invalid_var(void)
{
    ad_var v = {.val = 0.0, .idx = UINT32_MAX, .rec = UINT32_MAX};
    return v;
}

static ad_var g_foreign;
static ad_var returns_foreign_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)x; (void)n; (void)ctx;
    return g_foreign;
}
static ad_var records_elsewhere_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n;
    ad_tape *other = ctx;
    ad_status s = ad_record_begin(other);
    return s == AD_ESTATE ? ad_sqr(x[0]) : tu_invalid_var();
}

static void misuse_inside_record_function(void **state)
{
    (void)state;
    ad_tape *src = ad_tape_new(), *t = ad_tape_new(), *other = ad_tape_new();
    assert_ok(ad_record_begin(src));
    g_foreign = ad_exp(ad_input(1.0));
    ad_output(g_foreign);
    assert_ok(ad_record_end(src));
    double x[1] = {2.0}, f;
    assert_status(ad_record(t, returns_foreign_fn, 1, x, NULL), AD_EINVAL);
    assert_status(ad_eval(t, x, &f), AD_EINVAL);
    /* ad_record_begin inside f is refused (AD_ESTATE) and t's recording goes on */
    assert_ok(ad_record(t, records_elsewhere_fn, 1, x, other));
    assert_ok(ad_eval(t, x, &f));
    assert_true(f == 4.0);
    assert_status(ad_eval(other, x, &f), AD_ESTATE);
    ad_tape_free(other);
    ad_tape_free(t);
    ad_tape_free(src);
}

static void null_arrays_to_vector_ops_are_einval(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    const double A[6] = {1, 2, 3, 4, 5, 6}, c[3] = {1, 2, 3};
    for (int k = 0; k < 6; k++) {
        assert_ok(ad_record_begin(t));
        ad_var x[3], y[2] = {{0, 0, 0}, {0, 0, 0}};
        for (int i = 0; i < 3; i++) x[i] = ad_input(1.0 + i);
        ad_var out = x[0];
        switch (k) {
        case 0: out = ad_sum(3, NULL); break;
        case 1: out = ad_dot(3, NULL, c); break;
        case 2: out = ad_dot(3, x, NULL); break;
        case 3: out = ad_dotv(3, x, NULL); break;
        case 4: ad_matvec(2, 3, NULL, x, y); out = ad_add(y[0], y[1]); break;
        default: ad_matvec(2, 3, A, NULL, y); out = ad_add(y[0], y[1]); break;
        }
        ad_output(out);
        ad_status s = ad_record_end(t);
        if (s != AD_EINVAL) {
            print_error("case %d: ad_record_end returned %d (%s), want AD_EINVAL\n", k, (int)s,
                        ad_strerror(s));
            fail();
        }
    }
    ad_tape_free(t);
}

/* Constants that are not finite: the recording reports an error. */
static void non_finite_constants_are_reported(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    for (int k = 0; k < 4; k++) {
        assert_ok(ad_record_begin(t));
        ad_var x = ad_input(1.0), y;
        switch (k) {
        case 0: y = ad_add(x, ad_const(NAN)); break;
        case 1: y = ad_addc(x, INFINITY); break;
        case 2: y = ad_mulc(x, NAN); break;
        default: y = ad_powc(x, -INFINITY); break;
        }
        ad_output(y);
        ad_status s = ad_record_end(t);
        if (s != AD_EINVAL && s != AD_EDOMAIN) {
            print_error("case %d: ad_record_end returned %d (%s), want AD_EINVAL or AD_EDOMAIN\n", k,
                        (int)s, ad_strerror(s));
            fail();
        }
    }
    ad_tape_free(t);
}

/* Each op's domain edge: recorded at a good point, replayed at a bad one:
 * AD_EDOMAIN from the driver that meets it, ad_tape_errmsg naming the op,
 * then the good point again works.  The same at recording: AD_EDOMAIN
 * from ad_record_end, and the recording replays at the good point. */
static double g_cst;
static ad_var e_div(ad_var a) { return ad_div(ad_const(1.0), a); }
static ad_var e_cdiv(ad_var a) { return ad_cdiv(2.0, a); }
static ad_var e_pow(ad_var a) { return ad_pow(a, ad_const(0.5)); }
static ad_var e_powc(ad_var a) { return ad_powc(a, g_cst); }
static ad_var e_powi(ad_var a) { return ad_powi(a, -2); }
static ad_var e_atan2(ad_var a) { return ad_atan2(a, a); }

static void domain_errors_name_the_op(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        tu_unary op;
        double good, bad;
        int derivs; /* 1: value finite, only a derivative is not (found by ad_gradient/hessian) */
    } cs[] = {
        {"log", ad_log, 2.0, -1.0, 0},     {"log", ad_log, 2.0, 0.0, 0},
        {"log1p", ad_log1p, 1.0, -2.0, 0}, {"log1p", ad_log1p, 1.0, -1.0, 0},
        {"sqrt", ad_sqrt, 4.0, -1.0, 0},   {"sqrt", ad_sqrt, 4.0, 0.0, 1},
        {"asin", ad_asin, 0.5, 1.5, 0},    {"asin", ad_asin, 0.5, 1.0, 1},
        {"acos", ad_acos, 0.5, -2.0, 0},   {"acos", ad_acos, 0.5, -1.0, 1},
        {"div", e_div, 2.0, 0.0, 0},       {"cdiv", e_cdiv, 2.0, 0.0, 0},
        {"pow", e_pow, 2.0, -1.0, 0},      {"powc", e_powc, 2.0, -1.0, 0},
        {"powi", e_powi, 2.0, 0.0, 0},     {"cbrt", ad_cbrt, 8.0, 0.0, 1},
        {"exp", ad_exp, 1.0, 800.0, 0},    {"sinh", ad_sinh, 1.0, 800.0, 0},
        {"atan2", e_atan2, 1.0, 0.0, 1},
    };
    g_cst = 0.5;
    ad_tape *t = ad_tape_new();
    for (size_t i = 0; i < NPTS(cs); i++) {
        double good = cs[i].good, bad = cs[i].bad, f, g, H;
        /* replay at the bad point */
        assert_ok(tu_record_unary(t, cs[i].op, good));
        ad_status s = cs[i].derivs ? ad_hessian(t, &bad, &H) : ad_eval(t, &bad, &f);
        const char *msg = ad_tape_errmsg(t);
        if (s != AD_EDOMAIN || !strstr(msg, cs[i].name)) {
            print_error("%s at %g (replay): status %d (%s), errmsg \"%s\"; want AD_EDOMAIN naming %s\n",
                        cs[i].name, bad, (int)s, ad_strerror(s), msg, cs[i].name);
            fail();
        }
        assert_ok(ad_gradient(t, &good, &f, &g));
        assert_ok(ad_hessian(t, &good, &H));
        /* recorded at the bad point */
        s = tu_record_unary(t, cs[i].op, bad);
        if (cs[i].derivs) {
            assert_ok(s);   /* the value is finite at the recording point */
            assert_status(ad_gradient(t, &bad, &f, &g) == AD_OK ? ad_hessian(t, &bad, &H)
                                                                 : AD_EDOMAIN, AD_EDOMAIN);
        } else if (s != AD_EDOMAIN) {
            print_error("%s recorded at %g: ad_record_end %d (%s), want AD_EDOMAIN\n", cs[i].name,
                        bad, (int)s, ad_strerror(s));
            fail();
        }
        assert_ok(ad_gradient(t, &good, &f, &g));
        assert_ok(ad_eval(t, &good, &f));
        assert_true(isfinite(f) && isfinite(g));
    }
    ad_tape_free(t);
}

/* A domain error followed by a structural one: ad_record_end must not
 * report the recording as complete (AD_EDOMAIN) when it is not; whatever
 * it returns, the drivers agree with it. */
static void structural_error_after_domain_error_is_not_hidden(void **state)
{
    (void)state;
    ad_tape *src = good_tape(), *t = ad_tape_new();
    ad_var foreign;
    {
        ad_tape *tmp = ad_tape_new();
        assert_ok(ad_record_begin(tmp));
        foreign = ad_input(1.0);
        ad_output(foreign);
        assert_ok(ad_record_end(tmp));
        ad_tape_free(tmp);
    }
    assert_ok(ad_record_begin(t));
    ad_var x = ad_input(-1.0);
    ad_var l = ad_log(x);
    ad_output(ad_add(l, foreign));
    ad_status s = ad_record_end(t);
    assert_true(s == AD_EINVAL);
    double xx = 2.0, f;
    assert_status(ad_eval(t, &xx, &f), s);
    /* domain error and no output: no output wins (nothing to replay) */
    assert_ok(ad_record_begin(t));
    (void)ad_log(ad_input(-1.0));
    assert_status(ad_record_end(t), AD_ESTATE);
    ad_tape_free(t);
    ad_tape_free(src);
}

/* A branch flip whose re-recording exceeds the tape's max_ops: the driver
 * reports AD_ELIMIT, and the user can record again. */
static ad_var flip_long_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    if (ad_lt(x[0], x[1]))
        return ad_mul(x[0], x[1]);
    ad_var a = x[0];
    for (int i = 0; i < 100; i++) a = ad_sin(ad_add(a, x[1]));
    return a;
}

static void rerecord_over_max_ops_is_elimit(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_ok(ad_tape_set_max_ops(t, 40));
    const double small[2] = {0.5, 1.5}, big[2] = {1.5, 0.5};
    double f, g[2];
    assert_ok(ad_record(t, flip_long_fn, 2, small, NULL));
    assert_ok(ad_gradient(t, small, &f, g));
    assert_status(ad_gradient(t, big, &f, g), AD_ELIMIT);
    assert_true(ad_tape_errmsg(t)[0] != '\0');
    assert_ok(ad_tape_set_max_ops(t, 1000));
    assert_ok(ad_record(t, flip_long_fn, 2, small, NULL));
    assert_ok(ad_gradient(t, big, &f, g));
    double a = big[0];
    for (int i = 0; i < 100; i++) a = sin(a + big[1]);
    assert_close(f, a, 1e-13);
    ad_tape_free(t);
}

/* ===================================================================== */
/* Strings                                                               */
/* ===================================================================== */

static void strerror_is_never_empty(void **state)
{
    (void)state;
    static const ad_status all[] = {AD_OK, AD_ENOMEM, AD_EINVAL, AD_ESTATE, AD_ERETAPE,
                                    AD_EDOMAIN, AD_ELIMIT, AD_EIO, AD_EFORMAT, AD_ECALLBACK};
    for (size_t i = 0; i < NPTS(all); i++) {
        const char *s = ad_strerror(all[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, ad_strerror(all[j]));
    }
    const int odd[] = {-1, 10, 11, 999, INT32_MAX};
    for (size_t i = 0; i < NPTS(odd); i++) {
        const char *s = ad_strerror((ad_status)odd[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
    }
}

static void errmsg_is_empty_on_fresh_and_good_tapes(void **state)
{
    (void)state;
    ad_tape *t = ad_tape_new();
    assert_non_null(ad_tape_errmsg(t));
    assert_true(ad_tape_errmsg(t)[0] == '\0');
    double x = 1.0, f;
    assert_status(ad_eval(t, &x, &f), AD_ESTATE);
    assert_non_null(ad_tape_errmsg(t));
    ad_tape_free(t);
    t = good_tape();
    assert_true(ad_tape_errmsg(t)[0] == '\0');
    ad_tape_free(t);
}

/* ===================================================================== */
/* Allocation failure: a child process under RLIMIT_AS                    */
/* ===================================================================== */

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif

#ifndef TU_ASAN
static ad_var huge_fn(const ad_var *x, size_t n, void *ctx)
{
    (void)n; (void)ctx;
    ad_var a = x[0];
    for (long i = 0; i < 200000000L; i++) a = ad_sin(a); /* far more than 64 MiB */
    return a;
}
#endif

/* In a child (so the limit does not leak into the other tests): record far
 * more nodes than the address-space limit allows; expect AD_ENOMEM (or
 * AD_ELIMIT), then free, then record a small function fine. */
static void allocation_failure_is_enomem_and_recoverable(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip(); /* ASan reserves terabytes of address space: RLIMIT_AS cannot be used */
#else
    if (RUNNING_ON_VALGRIND || getenv("LD_PRELOAD"))
        skip(); /* valgrind and preloaders manage the address space themselves */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        struct rlimit rl;
        unsigned long vsz_pages = 0;
        FILE *fp = fopen("/proc/self/statm", "r");
        if (!fp || fscanf(fp, "%lu", &vsz_pages) != 1)
            _exit(2);
        fclose(fp);
        getrlimit(RLIMIT_AS, &rl);
        /* the address space in use now + 256 MiB */
        rl.rlim_cur = vsz_pages * (unsigned long)sysconf(_SC_PAGESIZE) + (256ul << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(3);
        ad_tape *t = ad_tape_new();
        if (!t)
            _exit(4);
        double x = 0.5;
        ad_status s = ad_record(t, huge_fn, 1, &x, NULL);
        if (s != AD_ENOMEM)
            _exit(10 + (int)s);
        if (ad_tape_errmsg(t) == NULL)
            _exit(5);
        double f;
        if (ad_eval(t, &x, &f) == AD_OK)
            _exit(6);
        ad_tape_free(t);
        t = ad_tape_new();
        if (!t)
            _exit(7);
        s = ad_record(t, good_fn, 2, (double[2]){1, 2}, NULL);
        if (s != AD_OK)
            _exit(8);
        ad_tape_free(t);
        _exit(0);
    }
    int st = 0;
    assert_true(waitpid(pid, &st, 0) == pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        print_error("child: %s %d (10+status means ad_record returned that status instead of "
                    "AD_ENOMEM)\n", WIFEXITED(st) ? "exit" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        fail();
    }
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(null_arguments_to_drivers_return_einval),
        cmocka_unit_test(null_arguments_to_recording_return_einval),
        cmocka_unit_test(reserve_misuse_is_reported),
        cmocka_unit_test(bulk_inputs_misuse_is_reported),
        cmocka_unit_test(ops_without_active_tape_are_harmless),
        cmocka_unit_test(var_of_another_tape_is_einval),
        cmocka_unit_test(var_of_an_earlier_recording_is_einval),
        cmocka_unit_test(foreign_var_in_output_or_comparison_is_einval),
        cmocka_unit_test(forged_var_is_rejected),
        cmocka_unit_test(record_begin_while_recording_is_estate),
        cmocka_unit_test(freeing_the_active_tape_ends_the_recording),
        cmocka_unit_test(driver_on_unrecorded_tape_is_estate),
        cmocka_unit_test(no_output_is_estate),
        cmocka_unit_test(recording_errors_are_sticky),
        cmocka_unit_test(non_finite_x_or_direction_is_einval),
        cmocka_unit_test(hvp_batch_with_overflowing_k_is_rejected),
        cmocka_unit_test(max_ops_limit_is_elimit_and_tape_recovers),
        cmocka_unit_test(max_ops_limit_holds_within_existing_capacity),
        cmocka_unit_test(spmv_bad_csr_is_einval),
        cmocka_unit_test(log_of_negative_at_recording_is_edomain_and_replays),
        cmocka_unit_test(log_of_negative_at_replay_is_edomain_then_recovers),
        cmocka_unit_test(sqrt_at_zero_gradient_is_edomain),
        cmocka_unit_test(domain_error_does_not_poison_next_recording),
        cmocka_unit_test(rerecord_at_a_domain_error_point_recovers),
        cmocka_unit_test(misuse_inside_record_function),
        cmocka_unit_test(null_arrays_to_vector_ops_are_einval),
        cmocka_unit_test(non_finite_constants_are_reported),
        cmocka_unit_test(domain_errors_name_the_op),
        cmocka_unit_test(structural_error_after_domain_error_is_not_hidden),
        cmocka_unit_test(rerecord_over_max_ops_is_elimit),
        cmocka_unit_test(strerror_is_never_empty),
        cmocka_unit_test(errmsg_is_empty_on_fresh_and_good_tapes),
        cmocka_unit_test(allocation_failure_is_enomem_and_recoverable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
