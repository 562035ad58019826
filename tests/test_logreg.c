/*
 * Logistic regression: the recorded objective against closed forms, dense
 * and sparse paths, the optimum, agreement with LIBLINEAR, model files and
 * every kind of bad input.  Runs in tests/ (meson's workdir).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hyperad.h"
#include "opt/logreg_internal.h"

#define BC_DATA "../data/breast_cancer.svm"
#define LIBLINEAR_TRAIN "/usr/bin/liblinear-train"
#define LIBLINEAR_PREDICT "/usr/bin/liblinear-predict"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static uint64_t rng_state;

static double urand(void) /* U(0,1), splitmix64 */
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

/* A dense m×n set with about a third of the entries zero, labels ±1 from a
 * noisy linear rule, and its CSR twin. */
typedef struct twin {
    size_t m, n;
    double *X, *y, *val;
    size_t *rowptr;
    uint32_t *colind;
    ad_logreg_data dense, sparse;
} twin;

static void twin_make(twin *t, size_t m, size_t n, uint64_t seed, int nclass)
{
    rng_state = seed;
    t->m = m;
    t->n = n;
    t->X = calloc(m * n, sizeof *t->X);
    t->y = malloc(m * sizeof *t->y);
    t->val = malloc(m * n * sizeof *t->val);
    t->colind = malloc(m * n * sizeof *t->colind);
    t->rowptr = malloc((m + 1) * sizeof *t->rowptr);
    assert_non_null(t->X);
    assert_non_null(t->val);
    size_t k = 0;
    t->rowptr[0] = 0;
    for (size_t i = 0; i < m; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++) {
            double v = urand() < 0.33 ? 0.0 : 4.0 * urand() - 2.0;
            t->X[i * n + j] = v;
            s += v * (double)((int)(j % 3) - 1);
            if (v != 0.0) {
                t->colind[k] = (uint32_t)j;
                t->val[k++] = v;
            }
        }
        s += 0.7 * (urand() - 0.5);
        if (nclass == 2)
            t->y[i] = s > 0 ? 1.0 : -1.0;
        else
            t->y[i] = s > 0.8 ? 3.0 : s > -0.8 ? 7.0 : 5.0;
        t->rowptr[i + 1] = k;
    }
    memset(&t->dense, 0, sizeof t->dense);
    t->dense.m = m;
    t->dense.n = n;
    t->dense.nnz = m * n;
    t->dense.X = t->X;
    t->dense.y = t->y;
    t->sparse = t->dense;
    t->sparse.X = NULL;
    t->sparse.nnz = k;
    t->sparse.csr.rowptr = t->rowptr;
    t->sparse.csr.colind = t->colind;
    t->sparse.csr.val = t->val;
}

static void twin_free(twin *t)
{
    free(t->X);
    free(t->y);
    free(t->val);
    free(t->colind);
    free(t->rowptr);
}

static double sigmoid(double t) { return 1.0 / (1.0 + exp(-t)); }

/* Closed forms of the binary objective with y_i = +1 for label `pos`:
 * f = ½‖w‖² + Σ C_i log(1+e^{−y z}), g = w + Xᵀ(C (σ(y z) − 1) y),
 * Hv = v + Xᵀ D X v, D_i = C_i σ(z)(1−σ(z)); the bias is a last column B. */
static void closed_forms(const twin *t, double pos, double C, double Cpos, double B,
                         const double *w, const double *v, double *f, double *g, double *hv)
{
    size_t n = t->n, nw = n + (B >= 0 ? 1 : 0);
    double fs = 0.0;
    for (size_t j = 0; j < nw; j++) {
        fs += 0.5 * w[j] * w[j];
        g[j] = w[j];
        hv[j] = v[j];
    }
    for (size_t i = 0; i < t->m; i++) {
        const double *x = t->X + i * n;
        double z = 0.0, xv = 0.0;
        for (size_t j = 0; j < n; j++) {
            z += x[j] * w[j];
            xv += x[j] * v[j];
        }
        if (B >= 0) {
            z += B * w[n];
            xv += B * v[n];
        }
        double y = t->y[i] == pos ? 1.0 : -1.0;
        double Ci = y > 0 ? Cpos : C;
        fs += Ci * log1p(exp(-y * z));
        double gi = Ci * (sigmoid(y * z) - 1.0) * y;
        double Di = Ci * sigmoid(z) * (1.0 - sigmoid(z));
        for (size_t j = 0; j < n; j++) {
            g[j] += gi * x[j];
            hv[j] += Di * xv * x[j];
        }
        if (B >= 0) {
            g[n] += gi * B;
            hv[n] += Di * xv * B;
        }
    }
    *f = fs;
}

static double max_rel_diff(const double *a, const double *b, size_t n)
{
    double d = 0.0, s = 1e-300;
    for (size_t j = 0; j < n; j++) {
        d = fmax(d, fabs(a[j] - b[j]));
        s = fmax(s, fabs(b[j]));
    }
    return d / s;
}

/* ------------------------------------------------------------------ */
/* The recorded objective                                               */
/* ------------------------------------------------------------------ */

static void check_tape_against_closed_forms(const ad_logreg_data *d, const twin *t,
                                            double B, double weight)
{
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    prm.C = 0.7;
    prm.bias = B;
    int wl = 1;
    double wv = weight;
    prm.nr_weight = 1;
    prm.weight_label = &wl;
    prm.weight = &wv;
    ad_tape *tape = ad_tape_new();
    assert_non_null(tape);
    lr_objective *o = NULL;
    assert_int_equal(lr_objective_record(tape, d, &prm, &o), AD_OK);
    size_t nw = t->n + (B >= 0 ? 1 : 0);
    double w[64], v[64], g[64], hv[64], gc[64], hvc[64], f, fc;
    rng_state = 99;
    for (int trial = 0; trial < 3; trial++) {
        for (size_t j = 0; j < nw; j++) {
            w[j] = trial ? 2.0 * urand() - 1.0 : 0.0;
            v[j] = 2.0 * urand() - 1.0;
        }
        assert_int_equal(ad_gradient(tape, w, &f, g), AD_OK);
        assert_int_equal(ad_hvp(tape, w, v, hv), AD_OK);
        /* label 1 is label[0] in LIBLINEAR's order ({-1,+1} is swapped) */
        closed_forms(t, 1.0, prm.C, prm.C * weight, B, w, v, &fc, gc, hvc);
        assert_true(fabs(f - fc) <= 1e-12 * fabs(fc));
        assert_true(max_rel_diff(g, gc, nw) <= 1e-12);
        assert_true(max_rel_diff(hv, hvc, nw) <= 1e-12);
    }
    ad_tape_free(tape);
    lr_objective_free(o);
}

static void tape_gradient_and_hvp_match_closed_forms_dense(void **state)
{
    (void)state;
    twin t;
    twin_make(&t, 40, 6, 1, 2);
    check_tape_against_closed_forms(&t.dense, &t, -1, 1.0);
    check_tape_against_closed_forms(&t.dense, &t, 1.5, 2.5);
    twin_free(&t);
}

static void tape_gradient_and_hvp_match_closed_forms_sparse(void **state)
{
    (void)state;
    twin t;
    twin_make(&t, 40, 6, 2, 2);
    check_tape_against_closed_forms(&t.sparse, &t, -1, 1.0);
    check_tape_against_closed_forms(&t.sparse, &t, 1.0, 0.5);
    twin_free(&t);
}

static void dense_and_sparse_fits_agree(void **state)
{
    (void)state;
    twin t;
    twin_make(&t, 300, 12, 3, 2);
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    prm.bias = 1;
    prm.eps = 1e-8;
    ad_logreg_model md, ms;
    ad_logreg_result rd, rs;
    assert_int_equal(ad_logreg_fit(&t.dense, &prm, &md, &rd), AD_OK);
    assert_int_equal(ad_logreg_fit(&t.sparse, &prm, &ms, &rs), AD_OK);
    assert_true(fabs(rd.f - rs.f) <= 1e-12 * rd.f);
    assert_true(max_rel_diff(md.w, ms.w, 13) <= 1e-7);
    ad_logreg_model_free(&md);
    ad_logreg_model_free(&ms);
    twin_free(&t);
}

/* The returned point satisfies LIBLINEAR's rule, checked with the closed
 * form gradient (an independent route to ∇f). */
static void fit_meets_liblinear_stopping_rule(void **state)
{
    (void)state;
    twin t;
    twin_make(&t, 500, 10, 4, 2);
    const double eps[] = {1e-2, 1e-4, 1e-8};
    for (int q = 0; q < 6; q++) { /* trust region, then line search */
        ad_logreg_params prm;
        ad_logreg_params_init(&prm);
        prm.C = 2.0;
        prm.eps = eps[q % 3];
        prm.globalization = q < 3 ? AD_TRUST_REGION : AD_LINE_SEARCH;
        ad_logreg_model md;
        ad_logreg_result r;
        assert_int_equal(ad_logreg_fit(&t.dense, &prm, &md, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_GTOL);
        double w0[16] = {0}, v[16] = {0}, g0[16], g[16], hv[16], f;
        closed_forms(&t, md.label[0], prm.C, prm.C, -1, w0, v, &f, g0, hv);
        closed_forms(&t, md.label[0], prm.C, prm.C, -1, md.w, v, &f, g, hv);
        size_t pos = 0;
        for (size_t i = 0; i < t.m; i++)
            pos += t.y[i] == md.label[0];
        size_t mn = pos < t.m - pos ? pos : t.m - pos;
        double tol = eps[q % 3] * (double)mn / (double)t.m;
        double gn = 0, g0n = 0;
        for (size_t j = 0; j < t.n; j++) {
            gn += g[j] * g[j];
            g0n += g0[j] * g0[j];
        }
        assert_true(sqrt(gn) <= tol * sqrt(g0n) * (1 + 1e-9));
        assert_true(fabs(f - r.f) <= 1e-12 * f);
        ad_logreg_model_free(&md);
    }
    twin_free(&t);
}

static void objective_of_model_equals_fit_objective(void **state)
{
    (void)state;
    twin t;
    twin_make(&t, 200, 5, 5, 3);
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    prm.bias = 2.0;
    int wl = 7;
    double wv = 3.0;
    prm.nr_weight = 1;
    prm.weight_label = &wl;
    prm.weight = &wv;
    ad_logreg_model md;
    ad_logreg_result r;
    assert_int_equal(ad_logreg_fit(&t.sparse, &prm, &md, &r), AD_OK);
    assert_int_equal(md.nr_class, 3);
    assert_int_equal(md.nr_w, 3);
    double f;
    assert_int_equal(ad_logreg_objective(&t.dense, &prm, &md, &f), AD_OK);
    assert_true(fabs(f - r.f) <= 1e-10 * f);
    ad_logreg_model_free(&md);
    twin_free(&t);
}

/* One-vs-rest: each column of the model is the binary fit of label[k]
 * against the rest with plain C for the rest. */
static void one_vs_rest_columns_are_binary_fits(void **state)
{
    (void)state;
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read("data/lr_multi.svm", AD_LOGREG_FMT_AUTO,
                                     AD_LOGREG_STORE_AUTO, &d), AD_OK);
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    prm.eps = 1e-10;
    ad_logreg_model mm;
    assert_int_equal(ad_logreg_fit(&d, &prm, &mm, NULL), AD_OK);
    assert_int_equal(mm.nr_class, 3);
    /* order of first appearance: 2 1 3 */
    assert_int_equal(mm.label[0], 2);
    assert_int_equal(mm.label[1], 1);
    assert_int_equal(mm.label[2], 3);
    double *yb = malloc(d.m * sizeof *yb);
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < d.m; i++)
            yb[i] = d.y[i] == mm.label[k] ? 1.0 : -1.0;
        ad_logreg_data b = d;
        b.owner = NULL;
        b.y = yb;
        ad_logreg_model mb;
        assert_int_equal(ad_logreg_fit(&b, &prm, &mb, NULL), AD_OK);
        double s = mb.label[0] == 1 ? 1.0 : -1.0;
        for (size_t j = 0; j < d.n; j++)
            assert_true(fabs(mm.w[j * 3 + k] - s * mb.w[j]) <= 1e-7);
        ad_logreg_model_free(&mb);
    }
    free(yb);
    ad_logreg_model_free(&mm);
    ad_logreg_data_free(&d);
}

static void binary_labels_minus_one_first_become_plus_one_first(void **state)
{
    (void)state;
    double X[] = {1, 0, 2, 1, -1, 0.5, -2, 1};
    double y1[] = {-1, 1, -1, 1};
    double y2[] = {4, 2, 4, 2};
    ad_logreg_data d = {4, 2, 8, X, {NULL, NULL, NULL}, y1, NULL};
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    ad_logreg_model m;
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, NULL), AD_OK);
    assert_int_equal(m.label[0], 1);
    assert_int_equal(m.label[1], -1);
    ad_logreg_model_free(&m);
    d.y = y2;
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, NULL), AD_OK);
    assert_int_equal(m.label[0], 4);
    assert_int_equal(m.label[1], 2);
    ad_logreg_model_free(&m);
}

/* ------------------------------------------------------------------ */
/* LIBLINEAR                                                            */
/* ------------------------------------------------------------------ */

static void fit_matches_liblinear_train_objective(void **state)
{
    (void)state;
    if (access(LIBLINEAR_TRAIN, X_OK) != 0) {
        print_message("liblinear-train not installed: skipping the comparison\n");
        skip();
    }
    /* At a tight -e both trainers sit within 1e-6 of the optimum, so the
     * objectives must agree both ways.  (At a loose -e where each stops is
     * path luck, a benchmark figure, not a property: bench_logreg.sh.) */
    const struct {
        const char *opts;
        double C, eps, bias;
        int weighted, two_sided;
    } cfg[] = {
        {"-c 1 -e 0.000001", 1, 1e-6, -1, 0, 1},
        {"-c 0.5 -e 0.000001 -B 1", 0.5, 1e-6, 1, 0, 1},
        {"-c 4 -e 0.000001 -w-1 2", 4, 1e-6, -1, 1, 1},
        {"-c 0.01 -e 0.000001 -B 0.5 -w1 3", 0.01, 1e-6, 0.5, 2, 1},
    };
    for (int q = 0; q < 4; q++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -s 0 -q %s %s lr_tmp_liblinear.model >/dev/null",
                 LIBLINEAR_TRAIN, cfg[q].opts, BC_DATA);
        assert_int_equal(system(cmd), 0);
        ad_logreg_model lib, ours;
        assert_int_equal(ad_logreg_model_load("lr_tmp_liblinear.model", &lib), AD_OK);
        unlink("lr_tmp_liblinear.model");
        ad_logreg_data d;
        assert_int_equal(ad_logreg_read(BC_DATA, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d),
                         AD_OK);
        ad_logreg_params prm;
        ad_logreg_params_init(&prm);
        int wl = cfg[q].weighted == 2 ? 1 : -1;
        double wv = cfg[q].weighted == 2 ? 3 : 2;
        prm.C = cfg[q].C;
        prm.eps = cfg[q].eps;
        prm.bias = cfg[q].bias;
        if (cfg[q].weighted) {
            prm.nr_weight = 1;
            prm.weight_label = &wl;
            prm.weight = &wv;
        }
        ad_logreg_result r;
        assert_int_equal(ad_logreg_fit(&d, &prm, &ours, &r), AD_OK);
        double flib, fours;
        assert_int_equal(ad_logreg_objective(&d, &prm, &lib, &flib), AD_OK);
        assert_int_equal(ad_logreg_objective(&d, &prm, &ours, &fours), AD_OK);
        assert_int_equal(lib.label[0], ours.label[0]);
        assert_true(fabs(fours - r.f) <= 1e-10 * r.f);
        /* not worse than LIBLINEAR by more than 1e-6 relative, and close */
        if (!(fours <= flib * (1 + 1e-6)) ||
            (cfg[q].two_sided && !(fabs(fours - flib) <= 1e-6 * flib)))
            print_error("%s: ours %.12g, liblinear %.12g\n", cfg[q].opts, fours, flib);
        assert_true(fours <= flib * (1 + 1e-6));
        if (cfg[q].two_sided)
            assert_true(fabs(fours - flib) <= 1e-6 * flib);
        /* same predictions on the training data */
        double *p1 = malloc(d.m * sizeof *p1), *p2 = malloc(d.m * sizeof *p2);
        assert_int_equal(ad_logreg_predict(&lib, &d, p1, NULL), AD_OK);
        assert_int_equal(ad_logreg_predict(&ours, &d, p2, NULL), AD_OK);
        size_t diff = 0;
        for (size_t i = 0; i < d.m; i++)
            diff += p1[i] != p2[i];
        assert_true(diff <= 1);
        free(p1);
        free(p2);
        ad_logreg_model_free(&lib);
        ad_logreg_model_free(&ours);
        ad_logreg_data_free(&d);
    }
}

/* liblinear-predict reads our model file and predicts what we predict. */
static void liblinear_predict_reads_our_model(void **state)
{
    (void)state;
    if (access(LIBLINEAR_PREDICT, X_OK) != 0) {
        print_message("liblinear-predict not installed: skipping\n");
        skip();
    }
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read("data/lr_multi.svm", AD_LOGREG_FMT_AUTO,
                                     AD_LOGREG_STORE_AUTO, &d), AD_OK);
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    prm.bias = 1;
    ad_logreg_model m;
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, NULL), AD_OK);
    assert_int_equal(ad_logreg_model_save(&m, "lr_tmp_ours.model"), AD_OK);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -b 1 -q data/lr_multi.svm lr_tmp_ours.model lr_tmp_pred.txt",
             LIBLINEAR_PREDICT);
    assert_int_equal(system(cmd), 0);
    double *lab = malloc(d.m * sizeof *lab), *pr = malloc(3 * d.m * sizeof *pr);
    assert_int_equal(ad_logreg_predict(&m, &d, lab, pr), AD_OK);
    FILE *fp = fopen("lr_tmp_pred.txt", "r");
    assert_non_null(fp);
    char head[64];
    assert_non_null(fgets(head, sizeof head, fp));
    char want[64];
    snprintf(want, sizeof want, "labels %d %d %d\n", m.label[0], m.label[1], m.label[2]);
    assert_string_equal(head, want);
    for (size_t i = 0; i < d.m; i++) {
        double l, p[3];
        assert_int_equal(fscanf(fp, "%lf %lf %lf %lf", &l, &p[0], &p[1], &p[2]), 4);
        assert_true(l == lab[i]);
        for (int k = 0; k < 3; k++)
            assert_true(fabs(p[k] - pr[3 * i + k]) <= 1e-5);
    }
    fclose(fp);
    unlink("lr_tmp_pred.txt");
    unlink("lr_tmp_ours.model");
    free(lab);
    free(pr);
    ad_logreg_model_free(&m);
    ad_logreg_data_free(&d);
}

/* One TRON line: LIBLINEAR's "iter K act A pre P delta D f F |g| G CG C",
 * with f the value before the step; ours rebuilt from the progress calls. */
typedef struct tron_line {
    int iter, cg;
    double f, delta;
} tron_line;

typedef struct tron_log {
    size_t n;
    double f_before;
    tron_line l[64];
} tron_log;

static int log_tron_line(void *ctx, size_t k, const ad_opt_progress *p)
{
    tron_log *t = ctx;
    (void)k;
    if (t->n < sizeof t->l / sizeof *t->l)
        t->l[t->n++] = (tron_line){(int)p->iter, (int)p->cg_iters, t->f_before, p->radius};
    t->f_before = p->f; /* our f is the value after the step */
    return 0;
}

/* Runs liblinear-train -s 0 with opts on data and parses its TRON lines. */
static size_t liblinear_tron_lines(const char *opts, const char *data, tron_line *out,
                                   size_t max)
{
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "%s -s 0 %s %s lr_tmp_trace.model", LIBLINEAR_TRAIN, opts, data);
    FILE *fp = popen(cmd, "r");
    assert_non_null(fp);
    size_t n = 0;
    while (fgets(line, sizeof line, fp)) {
        tron_line t;
        double act, pre, g;
        if (sscanf(line, "iter %d act %lf pre %lf delta %lf f %lf |g| %lf CG %d", &t.iter, &act,
                   &pre, &t.delta, &t.f, &g, &t.cg) == 7 &&
            n < max)
            out[n++] = t;
    }
    assert_int_equal(pclose(fp), 0);
    unlink("lr_tmp_trace.model");
    return n;
}

/* LIBLINEAR prints %5.3e: four digits, so half a unit of the last one is
 * at most 5e-4 of the value. */
static int same_printed(double ours, double printed)
{
    return fabs(ours - printed) <= 6e-4 * fabs(printed);
}

/* The default solver is LIBLINEAR 2.3.0's TRON: against liblinear-train's
 * own verbose output, the same lines (a rejected step repeats its number),
 * the same CG iterations in each, the same radius and f to the four digits
 * LIBLINEAR prints.  The breast-cancer data covers ill-conditioning and
 * boundary steps; lr_tron_reject.svm (five rows, a large C) rejected steps
 * and the radius rules after them. */
static void tron_steps_match_liblinear_line_by_line(void **state)
{
    (void)state;
    if (access(LIBLINEAR_TRAIN, X_OK) != 0) {
        print_message("liblinear-train not installed: skipping the comparison\n");
        skip();
    }
    const struct {
        const char *data, *opts;
        double C, eps;
        int rejects;
    } cfg[] = {
        {BC_DATA, "-c 1 -e 0.01", 1, 0.01, 0},
        {BC_DATA, "-c 1 -e 0.0001", 1, 1e-4, 0},
        {"data/lr_tron_reject.svm", "-c 2562.54 -e 0.0001", 2562.54, 1e-4, 1},
    };
    for (size_t q = 0; q < sizeof cfg / sizeof *cfg; q++) {
        tron_line lib[64];
        size_t nlib = liblinear_tron_lines(cfg[q].opts, cfg[q].data, lib, 64);
        assert_true(nlib > 0 && nlib < 64);
        ad_logreg_data d;
        assert_int_equal(ad_logreg_read(cfg[q].data, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO,
                                         &d), AD_OK);
        ad_logreg_params prm;
        ad_logreg_params_init(&prm);
        prm.C = cfg[q].C;
        prm.eps = cfg[q].eps;
        tron_log t = {0, (double)d.m * cfg[q].C * log(2.0), {{0, 0, 0, 0}}}; /* f(0) */
        prm.progress = log_tron_line;
        prm.progress_ctx = &t;
        ad_logreg_model m;
        ad_logreg_result r;
        assert_int_equal(ad_logreg_fit(&d, &prm, &m, &r), AD_OK);
        assert_int_equal(r.reason, AD_STOP_GTOL);
        if (t.n != nlib)
            print_error("%s %s: %zu lines, liblinear-train %zu\n", cfg[q].data, cfg[q].opts,
                        t.n, nlib);
        assert_int_equal(t.n, nlib);
        assert_int_equal(r.newton_iters, nlib);
        size_t cg = 0, repeats = 0;
        for (size_t k = 0; k < nlib; k++) {
            if (t.l[k].iter != lib[k].iter || t.l[k].cg != lib[k].cg ||
                !same_printed(t.l[k].delta, lib[k].delta) || !same_printed(t.l[k].f, lib[k].f))
                print_error("%s %s line %zu: ours iter %d CG %d delta %.4e f %.4e, "
                            "liblinear iter %d CG %d delta %.4e f %.4e\n",
                            cfg[q].data, cfg[q].opts, k + 1, t.l[k].iter, t.l[k].cg,
                            t.l[k].delta, t.l[k].f, lib[k].iter, lib[k].cg, lib[k].delta,
                            lib[k].f);
            assert_int_equal(t.l[k].iter, lib[k].iter);
            assert_int_equal(t.l[k].cg, lib[k].cg);
            assert_true(same_printed(t.l[k].delta, lib[k].delta));
            assert_true(same_printed(t.l[k].f, lib[k].f));
            cg += (size_t)lib[k].cg;
            repeats += k > 0 && lib[k].iter == lib[k - 1].iter;
        }
        assert_int_equal(r.cg_iters, cg);
        if (cfg[q].rejects)
            assert_true(repeats >= 1);
        ad_logreg_model_free(&m);
        ad_logreg_data_free(&d);
    }
}

/* Issue 4's targets on the bundled data: at equal -c and -e, the objective
 * within 1e-6 of LIBLINEAR's (both ways) and the same training accuracy,
 * at LIBLINEAR's default -e and at a tight one. */
static void breast_cancer_objective_and_accuracy_equal_liblinear(void **state)
{
    (void)state;
    if (access(LIBLINEAR_TRAIN, X_OK) != 0) {
        print_message("liblinear-train not installed: skipping the comparison\n");
        skip();
    }
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read(BC_DATA, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d),
                     AD_OK);
    const char *opts[] = {"-e 0.01", "-e 0.0001"};
    const double eps[] = {0.01, 1e-4};
    double *p1 = malloc(d.m * sizeof *p1), *p2 = malloc(d.m * sizeof *p2);
    assert_non_null(p1);
    assert_non_null(p2);
    for (int q = 0; q < 2; q++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -s 0 -q -c 1 %s %s lr_tmp_liblinear.model >/dev/null",
                 LIBLINEAR_TRAIN, opts[q], BC_DATA);
        assert_int_equal(system(cmd), 0);
        ad_logreg_model lib, ours;
        assert_int_equal(ad_logreg_model_load("lr_tmp_liblinear.model", &lib), AD_OK);
        unlink("lr_tmp_liblinear.model");
        ad_logreg_params prm;
        ad_logreg_params_init(&prm);
        prm.eps = eps[q];
        assert_int_equal(ad_logreg_fit(&d, &prm, &ours, NULL), AD_OK);
        double flib, fours;
        assert_int_equal(ad_logreg_objective(&d, &prm, &lib, &flib), AD_OK);
        assert_int_equal(ad_logreg_objective(&d, &prm, &ours, &fours), AD_OK);
        assert_int_equal(ad_logreg_predict(&lib, &d, p1, NULL), AD_OK);
        assert_int_equal(ad_logreg_predict(&ours, &d, p2, NULL), AD_OK);
        size_t ok1 = 0, ok2 = 0;
        for (size_t i = 0; i < d.m; i++) {
            ok1 += p1[i] == d.y[i];
            ok2 += p2[i] == d.y[i];
        }
        if (!(fabs(fours - flib) <= 1e-6 * flib) || ok1 != ok2)
            print_error("%s: ours f %.12g, %zu correct; liblinear f %.12g, %zu correct\n",
                        opts[q], fours, ok2, flib, ok1);
        assert_true(fabs(fours - flib) <= 1e-6 * flib);
        assert_int_equal(ok2, ok1);
        ad_logreg_model_free(&lib);
        ad_logreg_model_free(&ours);
    }
    free(p1);
    free(p2);
    ad_logreg_data_free(&d);
}

/* A committed model written by liblinear-train 2.3.0 (-B 1, 3 classes). */
static void reads_liblinear_model_file(void **state)
{
    (void)state;
    ad_logreg_model m;
    assert_int_equal(ad_logreg_model_load("data/liblinear_multi.model", &m), AD_OK);
    assert_int_equal(m.nr_class, 3);
    assert_int_equal(m.nr_w, 3);
    assert_int_equal(m.nr_feature, 2);
    assert_true(m.bias == 1.0);
    assert_int_equal(m.label[0], 2);
    assert_true(m.w[0] == 1.2476054543422221);
    assert_true(m.w[8] == -0.40382562932742339);
    ad_logreg_model_free(&m);
    assert_int_equal(ad_logreg_model_load("data/liblinear_bc.model", &m), AD_OK);
    assert_int_equal(m.nr_class, 2);
    assert_int_equal(m.nr_w, 1);
    assert_int_equal(m.nr_feature, 30);
    assert_true(m.bias < 0);
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read(BC_DATA, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d),
                     AD_OK);
    double *p = malloc(d.m * sizeof *p);
    assert_int_equal(ad_logreg_predict(&m, &d, p, NULL), AD_OK);
    size_t ok = 0;
    for (size_t i = 0; i < d.m; i++)
        ok += p[i] == d.y[i];
    assert_int_equal(ok, 546); /* liblinear-predict: 95.9578% (546/569) */
    free(p);
    ad_logreg_data_free(&d);
    ad_logreg_model_free(&m);
}

/* ------------------------------------------------------------------ */
/* Model files                                                          */
/* ------------------------------------------------------------------ */

static void model_file_round_trip_is_exact(void **state)
{
    (void)state;
    int labels[] = {5, -3, 9};
    double w[] = {0.1, -1e-300, 3.0 / 7.0, 1e300, -0.0, 2.5, 1.0 / 3.0, -7e-5, 42};
    ad_logreg_model m = {3, labels, 2, 0.75, 3, w};
    assert_int_equal(ad_logreg_model_save(&m, "lr_tmp_rt.model"), AD_OK);
    ad_logreg_model r;
    assert_int_equal(ad_logreg_model_load("lr_tmp_rt.model", &r), AD_OK);
    assert_int_equal(r.nr_class, 3);
    assert_int_equal(r.nr_feature, 2);
    assert_int_equal(r.nr_w, 3);
    assert_true(r.bias == 0.75);
    assert_memory_equal(r.label, labels, sizeof labels);
    for (int i = 0; i < 9; i++)
        assert_true(r.w[i] == w[i]);
    ad_logreg_model_free(&r);
    /* binary, no bias */
    int l2[] = {1, -1};
    double w2[] = {0.5, -0.25, 1e-17};
    ad_logreg_model m2 = {2, l2, 3, -1, 1, w2};
    assert_int_equal(ad_logreg_model_save(&m2, "lr_tmp_rt.model"), AD_OK);
    assert_int_equal(ad_logreg_model_load("lr_tmp_rt.model", &r), AD_OK);
    assert_int_equal(r.nr_w, 1);
    assert_true(r.bias < 0);
    for (int i = 0; i < 3; i++)
        assert_true(r.w[i] == w2[i]);
    ad_logreg_model_free(&r);
    unlink("lr_tmp_rt.model");
}

static void model_save_failure_leaves_no_file(void **state)
{
    (void)state;
    int l2[] = {1, -1};
    double w2[] = {0.5};
    ad_logreg_model m = {2, l2, 1, -1, 1, w2};
    assert_int_equal(ad_logreg_model_save(&m, "no_such_dir/x.model"), AD_EIO);
    assert_int_equal(access("no_such_dir", F_OK), -1);
    /* an existing file is replaced whole, never truncated by a failure */
    FILE *fp = fopen("lr_tmp_keep.model", "w");
    fputs("old", fp);
    fclose(fp);
    ad_logreg_model bad = {2, l2, 1, -1, 1, NULL};
    assert_int_equal(ad_logreg_model_save(&bad, "lr_tmp_keep.model"), AD_EINVAL);
    fp = fopen("lr_tmp_keep.model", "r");
    char buf[8] = {0};
    assert_non_null(fgets(buf, sizeof buf, fp));
    fclose(fp);
    assert_string_equal(buf, "old");
    unlink("lr_tmp_keep.model");
}

static void bad_model_files_are_rejected_with_line(void **state)
{
    (void)state;
    ad_logreg_model m;
    assert_int_equal(ad_logreg_model_load("data/no_such.model", &m), AD_EIO);
    assert_non_null(strstr(ad_logreg_errmsg(), "no_such.model"));
    assert_int_equal(ad_logreg_model_load("data/model_truncated.model", &m), AD_EFORMAT);
    assert_non_null(strstr(ad_logreg_errmsg(), "truncated"));
    assert_int_equal(ad_logreg_model_load("data/model_noweights.model", &m), AD_EFORMAT);
    assert_int_equal(ad_logreg_model_load("data/model_badkey.model", &m), AD_EFORMAT);
    assert_non_null(strstr(ad_logreg_errmsg(), "model_badkey.model:3:"));
    assert_int_equal(ad_logreg_model_load("data/model_badweight.model", &m), AD_EFORMAT);
    assert_non_null(strstr(ad_logreg_errmsg(), "model_badweight.model:8:"));
    assert_int_equal(ad_logreg_model_load("data/lr_tiny.svm", &m), AD_EFORMAT);
    assert_null(m.w);
}

/* ------------------------------------------------------------------ */
/* Data files                                                           */
/* ------------------------------------------------------------------ */

static void csv_and_libsvm_read_the_same_data(void **state)
{
    (void)state;
    ad_logreg_data a, b, c, s;
    assert_int_equal(ad_logreg_read("data/lr_tiny.svm", AD_LOGREG_FMT_AUTO,
                                     AD_LOGREG_STORE_DENSE, &a), AD_OK);
    assert_int_equal(ad_logreg_read("data/lr_tiny.csv", AD_LOGREG_FMT_AUTO,
                                     AD_LOGREG_STORE_DENSE, &b), AD_OK);
    assert_int_equal(ad_logreg_read("data/lr_tiny_noheader.csv", AD_LOGREG_FMT_CSV,
                                     AD_LOGREG_STORE_DENSE, &c), AD_OK);
    assert_int_equal(ad_logreg_read("data/lr_tiny.csv", AD_LOGREG_FMT_CSV,
                                     AD_LOGREG_STORE_SPARSE, &s), AD_OK);
    assert_int_equal(a.m, 6);
    assert_int_equal(a.n, 4);
    assert_int_equal(b.m, 6);
    assert_int_equal(b.n, 4);
    assert_memory_equal(a.X, b.X, 24 * sizeof(double));
    assert_memory_equal(a.X, c.X, 24 * sizeof(double));
    assert_memory_equal(a.y, b.y, 6 * sizeof(double));
    assert_null(s.X);
    assert_int_equal(s.nnz, 16);
    for (size_t i = 0; i < s.m; i++)
        for (size_t k = s.csr.rowptr[i]; k < s.csr.rowptr[i + 1]; k++)
            assert_true(s.csr.val[k] == a.X[i * 4 + s.csr.colind[k]]);
    ad_logreg_data_free(&a);
    ad_logreg_data_free(&b);
    ad_logreg_data_free(&c);
    ad_logreg_data_free(&s);
}

/* Sparse CSV storage counts entries while parsing and grows its arrays:
 * a file with more entries than the first guess (max(m, 1024)). */
static void sparse_csv_grows_and_matches_dense(void **state)
{
    (void)state;
    const char *path = "lr_tmp_grow.csv";
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("y,a,b,c,d,e\n", fp);
    rng_state = 5;
    for (int i = 0; i < 3000; i++) {
        fprintf(fp, "%d", i % 2 ? 1 : -1);
        for (int j = 0; j < 5; j++)
            fprintf(fp, ",%s", urand() < 0.2 ? "0" : urand() < 0.5 ? "" : "1.5");
        fputc('\n', fp);
    }
    fclose(fp);
    ad_logreg_data a, b;
    assert_int_equal(ad_logreg_read(path, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_SPARSE, &a), AD_OK);
    assert_int_equal(ad_logreg_read(path, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_DENSE, &b), AD_OK);
    assert_int_equal(a.m, 3000);
    assert_int_equal(a.n, 5);
    assert_true(a.nnz > 3000);
    size_t cnt = 0;
    for (size_t i = 0; i < b.m * b.n; i++)
        cnt += b.X[i] != 0.0;
    assert_int_equal(cnt, a.nnz);
    for (size_t i = 0; i < a.m; i++)
        for (size_t k = a.csr.rowptr[i]; k < a.csr.rowptr[i + 1]; k++)
            assert_true(a.csr.val[k] == b.X[i * 5 + a.csr.colind[k]]);
    ad_logreg_data_free(&a);
    ad_logreg_data_free(&b);
    unlink(path);
}

/* The hand-written number parser gives strtod's bits, on the fast path
 * (short mantissas, small exponents) and off it. */
static void libsvm_numbers_parse_exactly_like_strtod(void **state)
{
    (void)state;
    const char *path = "lr_tmp_numbers.svm";
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    rng_state = 7;
    enum { ROWS = 400, COLS = 25 };
    static char txt[ROWS][COLS][40];
    for (int i = 0; i < ROWS; i++) {
        fprintf(fp, "%d", i % 2 ? 1 : -1);
        for (int j = 0; j < COLS; j++) {
            double v = (urand() - 0.5) * pow(10.0, (int)(urand() * 40) - 20);
            int kind = (int)(urand() * 5);
            if (kind == 0)
                snprintf(txt[i][j], 40, "%.17g", v);
            else if (kind == 1)
                snprintf(txt[i][j], 40, "%.6g", v);
            else if (kind == 2)
                snprintf(txt[i][j], 40, "%.3f", v);
            else if (kind == 3)
                snprintf(txt[i][j], 40, "%.25e", v);
            else
                snprintf(txt[i][j], 40, "%+.4E", v);
            fprintf(fp, " %d:%s", j + 1, txt[i][j]);
        }
        fputs(i % 3 ? "\n" : " \r\n", fp);
    }
    fclose(fp);
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read(path, AD_LOGREG_FMT_LIBSVM, AD_LOGREG_STORE_DENSE, &d),
                     AD_OK);
    assert_int_equal(d.m, ROWS);
    assert_int_equal(d.n, COLS);
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) {
            double want = strtod(txt[i][j], NULL);
            if (memcmp(&want, &d.X[i * COLS + j], sizeof want) != 0)
                fail_msg("'%s' parsed as %.17g", txt[i][j], d.X[i * COLS + j]);
        }
    ad_logreg_data_free(&d);
    unlink(path);
}

/* A line longer than the reader's 4 MiB block grows the buffer; the lines
 * around it still parse. */
static void lines_longer_than_the_read_block_parse(void **state)
{
    (void)state;
    const char *path = "lr_tmp_long.svm";
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    enum { N = 450000 };
    fputs("-1 3:0.5\n+1", fp);
    for (int j = 1; j <= N; j++)
        fprintf(fp, " %d:%d.25", j, j % 7);
    fputs("\n-1 2:-1.5 450000:2\n", fp);
    fclose(fp);
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read(path, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_SPARSE, &d),
                     AD_OK);
    assert_int_equal(d.m, 3);
    assert_int_equal(d.n, N);
    assert_int_equal(d.nnz, 1 + N + 2);
    assert_true(d.y[1] == 1.0);
    for (int j = 0; j < N; j += 9973)
        assert_true(d.csr.val[1 + j] == (double)((j + 1) % 7) + 0.25);
    assert_true(d.csr.val[1 + N + 1] == 2.0);
    assert_int_equal(d.csr.colind[1 + N + 1], N - 1);
    ad_logreg_data_free(&d);
    unlink(path);
}

/* Big files are parsed by two threads, one per half: forced here on small
 * files, the result is the single-threaded one, and errors in either half
 * name their true line (blank lines included in the count). */
static void two_thread_parse_equals_one_thread(void **state)
{
    (void)state;
    size_t saved = lr_parallel_min;
    const char *path = "lr_tmp_split.svm";
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    rng_state = 11;
    for (int i = 0; i < 301; i++) {
        fprintf(fp, "%d", i % 3 ? 1 : -1);
        for (int j = 1; j <= 40; j++)
            if (urand() < 0.5)
                fprintf(fp, " %d:%.9g", j, urand() * 4 - 2);
        fputs(i == 17 ? "\n\n" : "\n", fp); /* a blank line in the first half */
    }
    fclose(fp);
    for (int store = 1; store <= 2; store++) {
        ad_logreg_data a, b;
        lr_parallel_min = SIZE_MAX;
        assert_int_equal(ad_logreg_read(path, AD_LOGREG_FMT_LIBSVM, (ad_logreg_storage)store, &a),
                         AD_OK);
        lr_parallel_min = 0;
        assert_int_equal(ad_logreg_read(path, AD_LOGREG_FMT_LIBSVM, (ad_logreg_storage)store, &b),
                         AD_OK);
        assert_int_equal(a.m, 301);
        assert_int_equal(b.m, a.m);
        assert_int_equal(b.n, a.n);
        assert_int_equal(b.nnz, a.nnz);
        assert_memory_equal(a.y, b.y, a.m * sizeof(double));
        if (a.X) {
            assert_memory_equal(a.X, b.X, a.m * a.n * sizeof(double));
        } else {
            assert_memory_equal(a.csr.rowptr, b.csr.rowptr, (a.m + 1) * sizeof(size_t));
            assert_memory_equal(a.csr.colind, b.csr.colind, a.nnz * sizeof(uint32_t));
            assert_memory_equal(a.csr.val, b.csr.val, a.nnz * sizeof(double));
        }
        ad_logreg_data_free(&a);
        ad_logreg_data_free(&b);
    }
    /* errors at line 290 (second half) and then also at line 5 */
    const char *bad = "lr_tmp_split_bad.svm";
    for (int both = 0; both < 2; both++) {
        fp = fopen(bad, "w");
        for (int i = 1; i <= 300; i++)
            fprintf(fp, "%s\n", i == 290 ? "1 2:1 1:1" : both && i == 5 ? "1 1:x" : "-1 1:0.5 2:1");
        fclose(fp);
        ad_logreg_data d;
        assert_int_equal(ad_logreg_read(bad, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d),
                         AD_EFORMAT);
        assert_non_null(strstr(ad_logreg_errmsg(), both ? "split_bad.svm:5:" : "split_bad.svm:290:"));
        assert_null(d.y);
    }
    lr_parallel_min = saved;
    unlink(path);
    unlink(bad);
}

static int stop_at_second(void *ctx, size_t k, const ad_opt_progress *p)
{
    size_t *calls = ctx;
    (*calls)++;
    (void)k;
    return p->iter >= 2;
}

static void progress_callback_sees_iterations_and_can_stop(void **state)
{
    (void)state;
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read(BC_DATA, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d),
                     AD_OK);
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    prm.eps = 1e-8;
    size_t calls = 0;
    prm.progress = stop_at_second;
    prm.progress_ctx = &calls;
    ad_logreg_model m;
    ad_logreg_result r;
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, &r), AD_OK);
    assert_int_equal(r.reason, AD_STOP_CALLBACK);
    assert_int_equal(calls, 2);
    assert_true(r.newton_iters <= 2);
    /* binary probabilities: p0 + p1 = 1, the label follows p0 > 1/2 */
    double *lab = malloc(d.m * sizeof *lab), *pr = malloc(2 * d.m * sizeof *pr);
    assert_int_equal(ad_logreg_predict(&m, &d, lab, pr), AD_OK);
    for (size_t i = 0; i < d.m; i++) {
        assert_true(fabs(pr[2 * i] + pr[2 * i + 1] - 1.0) <= 1e-15);
        assert_true(lab[i] == (pr[2 * i] > 0.5 ? m.label[0] : m.label[1]));
    }
    free(lab);
    free(pr);
    ad_logreg_model_free(&m);
    ad_logreg_data_free(&d);
}

static void expect_read_error(const char *path, ad_status want, const char *in_msg)
{
    ad_logreg_data d;
    memset(&d, 0xab, sizeof d);
    ad_status st = ad_logreg_read(path, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d);
    if (st != want || !strstr(ad_logreg_errmsg(), in_msg))
        fail_msg("%s: status %d, message '%s', wanted %d and '%s'", path, (int)st,
                 ad_logreg_errmsg(), (int)want, in_msg);
    assert_null(d.owner);
    assert_null(d.y);
}

static void bad_data_files_name_file_and_line(void **state)
{
    (void)state;
    expect_read_error("data/no_such_file.svm", AD_EIO, "no_such_file.svm: cannot open");
    expect_read_error("data/bad_malformed.svm", AD_EFORMAT, "bad_malformed.svm:3:");
    expect_read_error("data/bad_unsorted.svm", AD_EFORMAT, "bad_unsorted.svm:2: feature indices not increasing");
    expect_read_error("data/bad_repeated.svm", AD_EFORMAT, "bad_repeated.svm:2: feature indices not increasing (2 after 2)");
    expect_read_error("data/bad_empty.svm", AD_EFORMAT, "bad_empty.svm: no data rows");
    expect_read_error("data/bad_blank.svm", AD_EFORMAT, "no data rows");
    expect_read_error("data/bad_nan.svm", AD_EFORMAT, "bad_nan.svm:2: value of feature 1 is not finite");
    expect_read_error("data/bad_inf.svm", AD_EFORMAT, "bad_inf.svm:2: value of feature 2 is not finite");
    expect_read_error("data/bad_overflow.svm", AD_EFORMAT, "bad_overflow.svm:1:");
    expect_read_error("data/bad_index0.svm", AD_EFORMAT, "bad_index0.svm:1: feature index 0");
    expect_read_error("data/bad_label.svm", AD_EFORMAT, "bad_label.svm:2: the label");
    expect_read_error("data/bad_label_frac.svm", AD_EFORMAT, "bad_label_frac.svm:2: the label must be an integer");
    expect_read_error("data/bad_ragged.csv", AD_EFORMAT, "bad_ragged.csv:2:");
    expect_read_error("data/bad_field.csv", AD_EFORMAT, "bad_field.csv:2: field 3");
    expect_read_error("data", AD_EIO, "directory");
}

static void one_class_data_is_rejected(void **state)
{
    (void)state;
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read("data/bad_oneclass.svm", AD_LOGREG_FMT_AUTO,
                                     AD_LOGREG_STORE_AUTO, &d), AD_OK);
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    ad_logreg_model m;
    memset(&m, 0x5a, sizeof m);
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, NULL), AD_EINVAL);
    assert_non_null(strstr(ad_logreg_errmsg(), "one class"));
    assert_null(m.w);
    ad_logreg_data_free(&d);
}

static void bad_parameters_and_caller_data_are_rejected(void **state)
{
    (void)state;
    double X[] = {1, 0, 2, 1, NAN, 0.5, -2, 1};
    double y[] = {-1, 1, -1, 1};
    ad_logreg_data d = {4, 2, 8, X, {NULL, NULL, NULL}, y, NULL};
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    ad_logreg_model m;
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, NULL), AD_EINVAL); /* NaN */
    X[4] = 0.5;
    prm.C = 0;
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, NULL), AD_EINVAL);
    prm.C = 1;
    int wl = 3;
    double wv = 2;
    prm.nr_weight = 1;
    prm.weight_label = &wl;
    prm.weight = &wv;
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, NULL), AD_EINVAL); /* label 3 absent */
    prm.nr_weight = 0;
    assert_int_equal(ad_logreg_fit(&d, &prm, &m, NULL), AD_OK);
    ad_logreg_model_free(&m);
    assert_int_equal(ad_logreg_fit(NULL, &prm, &m, NULL), AD_EINVAL);
    /* caller-built CSR: a column index >= n, then unsorted indices */
    size_t rp[] = {0, 2, 3, 4, 5};
    uint32_t ci[] = {0, 2, 1, 0, 1};
    double v[] = {1, 2, 3, 4, 5};
    ad_logreg_data sp = {4, 2, 5, NULL, {rp, ci, v}, y, NULL};
    assert_int_equal(ad_logreg_fit(&sp, &prm, &m, NULL), AD_EINVAL);
    ci[1] = 1;
    ci[0] = 1;
    assert_int_equal(ad_logreg_fit(&sp, &prm, &m, NULL), AD_EINVAL);
    ci[0] = 0;
    assert_int_equal(ad_logreg_fit(&sp, &prm, &m, NULL), AD_OK);
    ad_logreg_model_free(&m);
}

/* ------------------------------------------------------------------ */
/* Whole runs on the bundled data                                       */
/* ------------------------------------------------------------------ */

static void breast_cancer_trains_to_high_accuracy(void **state)
{
    (void)state;
    ad_logreg_data d;
    assert_int_equal(ad_logreg_read(BC_DATA, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d),
                     AD_OK);
    assert_int_equal(d.m, 569);
    assert_int_equal(d.n, 30);
    assert_non_null(d.X);
    for (int scale = 0; scale < 2; scale++) {
        ad_logreg_params prm;
        ad_logreg_params_init(&prm);
        prm.scale = scale;
        prm.bias = scale ? 1 : -1;
        ad_logreg_model m;
        ad_logreg_result r;
        assert_int_equal(ad_logreg_fit(&d, &prm, &m, &r), AD_OK);
        double *p = malloc(d.m * sizeof *p);
        assert_int_equal(ad_logreg_predict(&m, &d, p, NULL), AD_OK);
        size_t ok = 0;
        for (size_t i = 0; i < d.m; i++)
            ok += p[i] == d.y[i];
        assert_true(ok >= (scale ? 540u : 540u));
        /* the objective of a scaled fit is that of the scaled problem */
        double f;
        assert_int_equal(ad_logreg_objective(&d, &prm, &m, &f), AD_OK);
        assert_true(fabs(f - r.f) <= 1e-9 * f);
        free(p);
        ad_logreg_model_free(&m);
    }
    double *t = malloc(d.m * sizeof *t);
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    prm.scale = 1;
    assert_int_equal(ad_logreg_cross_validation(&d, &prm, 5, 1, t), AD_OK);
    size_t ok = 0;
    for (size_t i = 0; i < d.m; i++)
        ok += t[i] == d.y[i];
    assert_true(ok >= 520); /* 5-fold accuracy of a scaled fit: about 93 % */
    /* a fixed seed gives the same folds, hence the same predictions */
    double *t2 = malloc(d.m * sizeof *t2);
    assert_int_equal(ad_logreg_cross_validation(&d, &prm, 5, 1, t2), AD_OK);
    assert_memory_equal(t, t2, d.m * sizeof *t);
    free(t2);
    free(t);
    ad_logreg_data_free(&d);
}

/* |got − want| <= tol·max(1, |want|), printing both when it fails. */
#define assert_near(got, want, tol) assert_near_at(got, want, tol, __FILE__, __LINE__)
static void assert_near_at(double got, double want, double tol, const char *file, int line)
{
    if (!(fabs(got - want) <= tol * fmax(1.0, fabs(want)))) {
        print_error("%s:%d: got %.17g, want %.17g\n", file, line, got, want);
        fail();
    }
}

/* TRON's radius rule, branch by branch, with values worked by hand from
 * tron.cpp's formulas: Δ = 2, ‖s‖_M = 1, prered = 1, gᵀs = −1.5, f = 10. */
static void tron_radius_rule_by_branch(void **state)
{
    (void)state;
    /* ρ < 1e-4 (rejected): α = max(¼, ½·1.5/2) = 0.375; min(α, ½Δ) */
    assert_near(lr_tron_radius(2.0, 10.0, 10.5, -1.5, 1.0, 1.0, 0), 0.375, 1e-15);
    /* ρ = 0.1: α = 0.75/1.4; max(¼Δ, min(α, ½Δ)) */
    assert_near(lr_tron_radius(2.0, 10.0, 9.9, -1.5, 1.0, 1.0, 0), 0.75 / 1.4, 1e-15);
    /* ρ = 0.1 with gᵀs = −0.15: α = 1.5, capped at ½Δ = 1 */
    assert_near(lr_tron_radius(2.0, 10.0, 9.9, -0.15, 1.0, 1.0, 0), 1.0, 1e-15);
    /* f went up by 10: α = max(¼, ½·1.5/11.5) = ¼ (its floor); min(¼, ½Δ) */
    assert_near(lr_tron_radius(2.0, 10.0, 20.0, -1.5, 1.0, 1.0, 0), 0.25, 1e-15);
    /* ρ = 0.5: α = 0.75; max(¼Δ, min(α, 4Δ)) */
    assert_near(lr_tron_radius(2.0, 10.0, 9.5, -1.5, 1.0, 1.0, 0), 0.75, 1e-15);
    /* ρ = 0.9 on the boundary: 4Δ */
    assert_near(lr_tron_radius(2.0, 10.0, 9.1, -1.5, 1.0, 1.0, 1), 8.0, 1e-15);
    /* ρ = 0.9 inside: α = 1.25; max(Δ, min(α, 4Δ)) = Δ */
    assert_near(lr_tron_radius(2.0, 10.0, 9.1, -1.5, 1.0, 1.0, 0), 2.0, 1e-15);
    /* the quadratic has no minimum (fnew − f − gᵀs ≤ 0): α = 4, inside: min(4, 8) */
    assert_near(lr_tron_radius(2.0, 10.0, 8.4, -1.5, 1.0, 1.0, 0), 4.0, 1e-15);
    /* a failed evaluation (fnew = ∞) shrinks: α = ¼ → min(¼, ½Δ) */
    assert_near(lr_tron_radius(2.0, 10.0, HUGE_VAL, -1.5, 1.0, 1.0, 0), 0.25, 1e-15);
}

/* A first step TRON rejects: f(w) = 50·√(1 + 100(w − 0.1)²) − 0.01·w from
 * w = 0 takes the Newton step s₁ ≈ 0.2 (inside Δ₀ = |g₀| ≈ 353.6) and lands
 * where f is barely lower (actred ≈ 0.002 < 1e-4·prered): rejected, with
 * α just above ½.  TRON first cuts Δ to ‖s₁‖ (once, at iteration 1), so the
 * new Δ is σ2·‖s₁‖ exactly (without the cut it would be α‖s₁‖).  The second
 * trial, on the boundary, lands next to the minimum (ρ ≥ η2): Δ = 4Δ.  Both
 * trials are TRON's iteration 1. */
static ad_status hub_fg(void *ctx, const double *x, double *f, double *g)
{
    (void)ctx;
    double u = x[0] - 0.1, q = sqrt(1.0 + 100.0 * u * u);
    *f = 50.0 * q - 0.01 * x[0];
    if (g)
        g[0] = 5000.0 * u / q - 0.01;
    return AD_OK;
}

static ad_status hub_hvp(void *ctx, const double *x, const double *v, double *hv)
{
    (void)ctx;
    double u = x[0] - 0.1, q2 = 1.0 + 100.0 * u * u;
    hv[0] = 5000.0 / (q2 * sqrt(q2)) * v[0];
    return AD_OK;
}

typedef struct hub_log {
    size_t n, iter[8];
    double radius[8], step[8];
} hub_log;

static int hub_progress(void *ctx, const ad_opt_progress *p)
{
    hub_log *l = ctx;
    if (l->n < 8) {
        l->iter[l->n] = p->iter;
        l->radius[l->n] = p->radius;
        l->step[l->n] = p->step;
        l->n++;
    }
    return 0;
}

static void tron_rejected_first_step(void **state)
{
    (void)state;
    ad_problem p = {1, NULL, hub_fg, hub_hvp, NULL};
    hub_log log = {0};
    lr_tron_params prm = {0.01, 0.1, 100, NULL, NULL, hub_progress, &log};
    ad_opt_result res;
    double w = 5.0;   /* overwritten: TRON starts from 0 */
    assert_int_equal(lr_tron(&p, &w, &prm, &res), AD_OK);
    assert_int_equal(res.reason, AD_STOP_GTOL);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.iter[0], 1);
    assert_int_equal(log.iter[1], 1);   /* a rejected step repeats its number */
    assert_near(log.step[0], 0.2, 1e-4);
    assert_near(log.radius[0], 0.5 * log.step[0], 1e-15);   /* σ2·‖s₁‖: the cut */
    assert_near(log.step[1], log.radius[0], 1e-14);          /* on the boundary */
    assert_near(log.radius[1], 4.0 * log.radius[0], 1e-15);
    assert_near(w, 0.1, 1e-4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tron_radius_rule_by_branch),
        cmocka_unit_test(tron_rejected_first_step),
        cmocka_unit_test(tape_gradient_and_hvp_match_closed_forms_dense),
        cmocka_unit_test(tape_gradient_and_hvp_match_closed_forms_sparse),
        cmocka_unit_test(dense_and_sparse_fits_agree),
        cmocka_unit_test(fit_meets_liblinear_stopping_rule),
        cmocka_unit_test(objective_of_model_equals_fit_objective),
        cmocka_unit_test(one_vs_rest_columns_are_binary_fits),
        cmocka_unit_test(binary_labels_minus_one_first_become_plus_one_first),
        cmocka_unit_test(fit_matches_liblinear_train_objective),
        cmocka_unit_test(liblinear_predict_reads_our_model),
        cmocka_unit_test(tron_steps_match_liblinear_line_by_line),
        cmocka_unit_test(breast_cancer_objective_and_accuracy_equal_liblinear),
        cmocka_unit_test(reads_liblinear_model_file),
        cmocka_unit_test(model_file_round_trip_is_exact),
        cmocka_unit_test(model_save_failure_leaves_no_file),
        cmocka_unit_test(bad_model_files_are_rejected_with_line),
        cmocka_unit_test(csv_and_libsvm_read_the_same_data),
        cmocka_unit_test(sparse_csv_grows_and_matches_dense),
        cmocka_unit_test(libsvm_numbers_parse_exactly_like_strtod),
        cmocka_unit_test(lines_longer_than_the_read_block_parse),
        cmocka_unit_test(two_thread_parse_equals_one_thread),
        cmocka_unit_test(progress_callback_sees_iterations_and_can_stop),
        cmocka_unit_test(bad_data_files_name_file_and_line),
        cmocka_unit_test(one_class_data_is_rejected),
        cmocka_unit_test(bad_parameters_and_caller_data_are_rejected),
        cmocka_unit_test(breast_cancer_trains_to_high_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
