// ADOL-C twins of the benchmark functions of bench_ad.c, behind the C
// interface of bench_adolc.h.  Each twin is the plain C function with double
// replaced by adouble, written the way an ADOL-C user writes it: every
// multiply-add is a scalar operation on the tape.
//
// Drivers: function() (zos_forward), gradient() (zos_forward keep=1 +
// fos_reverse), hess_vec() (fos_forward keep=2 + hos_reverse, at every call:
// ADOL-C has no cache of the point), hessian() (n hess_vec-like sweeps).
#include "bench_adolc.h"

#include <adolc/adolc.h>

#include <cstdio>
#include <exception>
#include <vector>

namespace {

char g_err[256];
std::vector<double *> g_rows;   // row pointers into the caller's H
const double *g_rows_base = nullptr;

short tag_of(const bench_problem *p) { return static_cast<short>(1 + static_cast<int>(p->fn)); }

void set_err(const char *what, int rc)
{
    std::snprintf(g_err, sizeof g_err, "ADOL-C %s returned %d", what, rc);
}

// Chained Rosenbrock: sum_{i<n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2.
adouble rosen(const adouble *x, size_t n)
{
    adouble f = 0.0;
    for (size_t i = 0; i + 1 < n; i++) {
        adouble t = x[i + 1] - x[i] * x[i];
        adouble u = 1.0 - x[i];
        f += 100.0 * (t * t) + u * u;
    }
    return f;
}

// Logistic loss: sum_i log(1 + exp(-y_i x_i^T w)) + lambda/2 |w|^2.
adouble logreg(const adouble *w, const bench_problem *p)
{
    const size_t d = p->n;
    adouble loss = 0.0;
    for (size_t i = 0; i < p->m; i++) {
        const double *xi = p->X + i * d;
        adouble z = xi[0] * w[0];
        for (size_t j = 1; j < d; j++)
            z += xi[j] * w[j];
        loss += log(1.0 + exp(-p->y[i] * z));
    }
    adouble r = w[0] * w[0];
    for (size_t j = 1; j < d; j++)
        r += w[j] * w[j];
    return loss + (0.5 * p->lambda) * r;
}

// Dense Hessian: sum_{i<n-1} sin(x_i) x_{i+1}^2 + exp(mean(x)).
adouble dense(const adouble *x, size_t n)
{
    adouble s = 0.0;
    for (size_t i = 0; i + 1 < n; i++)
        s += sin(x[i]) * (x[i + 1] * x[i + 1]);
    adouble sum = x[0];
    for (size_t i = 1; i < n; i++)
        sum += x[i];
    return s + exp(sum * (1.0 / static_cast<double>(n)));
}

// Deep chain: sum_i phi^D(x_i), phi(x) = sin(x) exp(-x^2) + tanh(x).
adouble chain(const adouble *x, size_t n)
{
    adouble f = 0.0;
    for (size_t i = 0; i < n; i++) {
        adouble z = x[i];
        for (int k = 0; k < BENCH_CHAIN_DEPTH; k++)
            z = sin(z) * exp(-(z * z)) + tanh(z);
        f += z;
    }
    return f;
}

} // namespace

extern "C" {

const char *bench_adolc_errmsg(void) { return g_err; }

int bench_adolc_record(const bench_problem *p, const double *x, double *f)
{
    if (!p || !x || !f || p->n == 0 || p->n > 2000000000u) {
        std::snprintf(g_err, sizeof g_err, "bench_adolc_record: bad argument");
        return -100;
    }
    try {
        const short tag = tag_of(p);
        const size_t n = p->n;
        trace_on(tag);
        adouble *ax = new adouble[n];
        for (size_t i = 0; i < n; i++)
            ax[i] <<= x[i];
        adouble af;
        switch (p->fn) {
        case BENCH_ROSEN: af = rosen(ax, n); break;
        case BENCH_LOGREG: af = logreg(ax, p); break;
        case BENCH_DENSE: af = dense(ax, n); break;
        case BENCH_CHAIN: af = chain(ax, n); break;
        }
        af >>= *f;
        delete[] ax;
        trace_off();
    } catch (const std::exception &e) {
        std::snprintf(g_err, sizeof g_err, "ADOL-C record: exception: %s", e.what());
        return -100;
    }
    return 0;
}

int bench_adolc_eval(const bench_problem *p, const double *x, double *f)
{
    int rc = function(tag_of(p), 1, static_cast<int>(p->n), const_cast<double *>(x), f);
    if (rc < 0) { set_err("function()", rc); return rc; }
    return 0;
}

int bench_adolc_gradient(const bench_problem *p, const double *x, double *g)
{
    int rc = gradient(tag_of(p), static_cast<int>(p->n), x, g);
    if (rc < 0) { set_err("gradient()", rc); return rc; }
    return 0;
}

int bench_adolc_hvp(const bench_problem *p, const double *x, const double *v, double *hv)
{
    int rc = hess_vec(tag_of(p), static_cast<int>(p->n), const_cast<double *>(x),
                      const_cast<double *>(v), hv);
    if (rc < 0) { set_err("hess_vec()", rc); return rc; }
    return 0;
}

int bench_adolc_hessian(const bench_problem *p, const double *x, double *H)
{
    const size_t n = p->n;
    if (g_rows_base != H || g_rows.size() != n) {
        try {
            g_rows.assign(n, nullptr);
        } catch (const std::exception &e) {
            std::snprintf(g_err, sizeof g_err, "bench_adolc_hessian: %s", e.what());
            return -100;
        }
        for (size_t i = 0; i < n; i++)
            g_rows[i] = H + i * n;
        g_rows_base = H;
    }
    int rc = hessian(tag_of(p), static_cast<int>(n), const_cast<double *>(x), g_rows.data());
    if (rc < 0) { set_err("hessian()", rc); return rc; }
    return 0;
}

int bench_adolc_get_stats(const bench_problem *p, bench_adolc_stats *s)
{
    size_t st[STAT_SIZE];
    tapestats(tag_of(p), st);
    s->num_ops = st[NUM_OPERATIONS];
    s->num_locs = st[NUM_LOCATIONS];
    s->num_vals = st[NUM_VALUES];
    s->max_lives = st[NUM_MAX_LIVES];
    s->tay_stack = st[TAY_STACK_SIZE];
    s->op_file = static_cast<int>(st[OP_FILE_ACCESS]);
    s->loc_file = static_cast<int>(st[LOC_FILE_ACCESS]);
    s->val_file = static_cast<int>(st[VAL_FILE_ACCESS]);
    s->op_buf = st[OP_BUFFER_SIZE];
    s->loc_buf = st[LOC_BUFFER_SIZE];
    s->val_buf = st[VAL_BUFFER_SIZE];
    return 0;
}

void bench_adolc_cleanup(void)
{
    std::vector<double *>().swap(g_rows);
    g_rows_base = nullptr;
}

} // extern "C"
