/*
 * hyperad-logreg: L2-regularized logistic regression trained by LIBLINEAR
 * 2.3.0's trust-region Newton method (TRON) on Hessian-vector products of a
 * hyperad tape; a drop-in for LIBLINEAR's `train -s 0` and `predict` (same
 * option names, same model files).
 *
 *   hyperad-logreg train [options] data_file [model_file]
 *   hyperad-logreg predict [-b 1] [-q] data_file model_file output_file
 */
#include <hyperad.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *fp)
{
    fputs(
        "Usage: hyperad-logreg train [options] data_file [model_file]\n"
        "       hyperad-logreg predict [-b 1] [-q] data_file model_file output_file\n"
        "       hyperad-logreg objective [-c cost] [-B bias] [-w label weight] [-S] data_file model_file\n"
        "\n"
        "L2-regularized logistic regression, min_w 0.5 w'w + C sum log(1 + exp(-y w'x)),\n"
        "by LIBLINEAR 2.3.0's trust-region Newton method (TRON) on Hessian-vector\n"
        "products (LIBLINEAR's train -s 0: same steps, same iterates up to rounding).\n"
        "\n"
        "train options:\n"
        "  -s 0         solver type (only 0, L2-regularized logistic regression)\n"
        "  -c cost      C (default 1)\n"
        "  -e epsilon   stop when |g| <= eps*max(min(pos,neg),1)/l*|g0| (default 0.01)\n"
        "  -B bias      if bias >= 0, each row gets a last feature of this value (default -1)\n"
        "  -w label weight  C of class label is weight*C (repeatable; LIBLINEAR's\n"
        "               -wlabel weight is accepted too)\n"
        "  -v n         n-fold cross validation: prints the accuracy, writes no model\n"
        "  -q           quiet: no per-iteration progress (one line per trial step;\n"
        "               with -g tr numbered as LIBLINEAR's, f and |g| after the step)\n"
        "  -S           scale features by 1/max|x_j| while training (the saved model\n"
        "               applies to raw data); helps badly scaled data\n"
        "  -P 0|1       diagonal preconditioner for CG, 0.99 I + 0.01 diag(H) (default 1)\n"
        "  -g tr|ls     Newton globalization: tr = LIBLINEAR 2.3.0's TRON (default),\n"
        "               ls = truncated Newton with a line search (as LIBLINEAR >= 2.40)\n"
        "  -f auto|libsvm|csv   input format (default auto: CSV if a ',' comes first)\n"
        "  -m auto|dense|sparse in-memory layout (default auto)\n"
        "  -n iters     maximum Newton iterations per class (default 1000; -g tr counts\n"
        "               accepted steps, as LIBLINEAR)\n"
        "predict options:\n"
        "  -b 1         write probability estimates\n"
        "  -q           quiet\n",
        fp);
}

static int parse_double(const char *s, double *out)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (!*s || *e || errno || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (!*s || *e || errno || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static void die_status(ad_status st, const char *what)
{
    const char *detail = ad_logreg_errmsg();
    if (detail && *detail)
        fprintf(stderr, "hyperad-logreg: %s\n", detail);
    else
        fprintf(stderr, "hyperad-logreg: %s: %s\n", what, ad_strerror(st));
}

typedef struct progress_ctx {
    int multi;
    size_t cg_cap;   /* TRON's CG step limit, max(weights, 5); 0: none */
} progress_ctx;

static int on_progress(void *ctx, size_t k, const ad_opt_progress *p)
{
    const progress_ctx *pc = ctx;
    if (pc->multi)
        fprintf(stderr, "class %zu ", k);
    fprintf(stderr,
            "iter %3zu  f %.8e  |g|inf %.3e  CG %3zu  step %.3e  radius %.3e  %8.3fs\n",
            p->iter, p->f, p->gnorm, p->cg_iters, p->step, p->radius, p->elapsed);
    if (pc->cg_cap && p->cg_iters >= pc->cg_cap)   /* as LIBLINEAR warns */
        fprintf(stderr, "warning: CG reached its limit of %zu steps (the step may be poor)\n",
                pc->cg_cap);
    return 0;
}

static size_t count_correct(const ad_logreg_data *d, const double *pred)
{
    size_t c = 0;
    for (size_t i = 0; i < d->m; i++)
        c += pred[i] == d->y[i];
    return c;
}

/* LIBLINEAR names the model after the data file, in the current directory. */
static char *default_model_name(const char *data)
{
    const char *base = strrchr(data, '/');
    base = base ? base + 1 : data;
    size_t n = strlen(base);
    char *s = malloc(n + 7);
    if (s) {
        memcpy(s, base, n);
        memcpy(s + n, ".model", 7);
    }
    return s;
}

static int cmd_train(int argc, char **argv)
{
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    ad_logreg_format fmt = AD_LOGREG_FMT_AUTO;
    ad_logreg_storage store = AD_LOGREG_STORE_AUTO;
    int quiet = 0;
    long nfold = 0;
    size_t nw = 0;
    int wl[256];
    double wv[256];
    int i;
    for (i = 0; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *o = argv[i];
        if (o[1] == 'w' && o[2]) { /* LIBLINEAR's spelling: -wLABEL weight */
            long lv = 0;
            if (nw == sizeof wl / sizeof *wl || i + 1 >= argc ||
                !parse_long(o + 2, INT_MIN, INT_MAX, &lv) || !parse_double(argv[i + 1], &wv[nw]) ||
                !(wv[nw] > 0)) {
                fprintf(stderr, "hyperad-logreg: bad class weight %s\n", o);
                return 1;
            }
            wl[nw++] = (int)lv;
            i++;
            continue;
        }
        if (o[2]) {
            fprintf(stderr, "hyperad-logreg: unknown option %s\n", o);
            usage(stderr);
            return 1;
        }
        if (o[1] == 'q') {
            quiet = 1;
            continue;
        }
        if (o[1] == 'S') {
            prm.scale = 1;
            continue;
        }
        if (o[1] == 'h') {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "hyperad-logreg: option %s needs a value\n", o);
            return 1;
        }
        const char *a = argv[++i];
        long lv = 0;
        int ok = 1;
        switch (o[1]) {
        case 's':
            ok = parse_long(a, 0, 0, &lv);
            if (!ok)
                fprintf(stderr, "hyperad-logreg: only -s 0 (L2-regularized logistic "
                                "regression) is implemented\n");
            break;
        case 'c':
            ok = parse_double(a, &prm.C) && prm.C > 0;
            break;
        case 'e':
            ok = parse_double(a, &prm.eps) && prm.eps > 0;
            break;
        case 'B':
            ok = parse_double(a, &prm.bias);
            break;
        case 'v':
            ok = parse_long(a, 2, LONG_MAX, &nfold);
            break;
        case 'P':
            ok = parse_long(a, 0, 1, &lv);
            prm.precond = (int)lv;
            break;
        case 'n':
            ok = parse_long(a, 1, LONG_MAX, &lv);
            prm.max_iter = (size_t)lv;
            break;
        case 'w':
            if (nw == sizeof wl / sizeof *wl || i + 1 >= argc) {
                ok = 0;
                break;
            }
            ok = parse_long(a, INT_MIN, INT_MAX, &lv) && parse_double(argv[i + 1], &wv[nw]) &&
                 wv[nw] > 0;
            wl[nw++] = (int)lv;
            i++;
            break;
        case 'g':
            if (!strcmp(a, "tr"))
                prm.globalization = AD_TRUST_REGION;
            else if (!strcmp(a, "ls"))
                prm.globalization = AD_LINE_SEARCH;
            else
                ok = 0;
            break;
        case 'f':
            if (!strcmp(a, "auto"))
                fmt = AD_LOGREG_FMT_AUTO;
            else if (!strcmp(a, "libsvm"))
                fmt = AD_LOGREG_FMT_LIBSVM;
            else if (!strcmp(a, "csv"))
                fmt = AD_LOGREG_FMT_CSV;
            else
                ok = 0;
            break;
        case 'm':
            if (!strcmp(a, "auto"))
                store = AD_LOGREG_STORE_AUTO;
            else if (!strcmp(a, "dense"))
                store = AD_LOGREG_STORE_DENSE;
            else if (!strcmp(a, "sparse"))
                store = AD_LOGREG_STORE_SPARSE;
            else
                ok = 0;
            break;
        default:
            fprintf(stderr, "hyperad-logreg: unknown option %s\n", o);
            usage(stderr);
            return 1;
        }
        if (!ok) {
            fprintf(stderr, "hyperad-logreg: bad value '%s' for option %s\n", a, o);
            return 1;
        }
    }
    if (i >= argc || argc - i > 2) {
        usage(stderr);
        return 1;
    }
    const char *data_path = argv[i];
    char *model_path = i + 1 < argc ? strdup(argv[i + 1]) : default_model_name(data_path);
    if (!model_path)
        return 1;
    prm.nr_weight = nw;
    prm.weight_label = wl;
    prm.weight = wv;

    double t0 = now();
    ad_logreg_data d;
    ad_status st = ad_logreg_read(data_path, fmt, store, &d);
    if (st) {
        die_status(st, data_path);
        free(model_path);
        return 1;
    }
    double t_read = now() - t0;
    if (!quiet)
        fprintf(stderr, "read %s: %zu rows, %zu features, %zu entries (%s) in %.3f s\n",
                data_path, d.m, d.n, d.nnz, d.X ? "dense" : "sparse", t_read);

    progress_ctx pc = {0};
    int rc = 0;
    double *pred = NULL;
    if (nfold) {
        if (!(pred = malloc(d.m * sizeof *pred))) {
            fprintf(stderr, "hyperad-logreg: out of memory\n");
            rc = 1;
            goto done;
        }
        st = ad_logreg_cross_validation(&d, &prm, (size_t)nfold, 1, pred);
        if (st) {
            die_status(st, "cross validation");
            rc = 1;
            goto done;
        }
        size_t ok = count_correct(&d, pred);
        printf("Cross Validation Accuracy = %g%%\n", 100.0 * (double)ok / (double)d.m);
        goto done;
    }
    if (!quiet) {
        prm.progress = on_progress;
        prm.progress_ctx = &pc;
        if (prm.globalization == AD_TRUST_REGION) {
            size_t nw = d.n + (prm.bias >= 0 ? 1 : 0);
            pc.cg_cap = nw > 5 ? nw : 5;
        }
        /* name the class in the progress lines only for one-vs-rest */
        size_t distinct = 0;
        double first = d.y[0], second = first;
        for (size_t r = 0; r < d.m && distinct < 3; r++) {
            if (distinct == 0) {
                distinct = 1;
            } else if (d.y[r] != first && distinct == 1) {
                second = d.y[r];
                distinct = 2;
            } else if (distinct == 2 && d.y[r] != first && d.y[r] != second) {
                distinct = 3;
            }
        }
        pc.multi = distinct > 2;
    }
    ad_logreg_model model;
    ad_logreg_result res;
    double t1 = now();
    st = ad_logreg_fit(&d, &prm, &model, &res);
    double t_train = now() - t1;
    if (st) {
        fprintf(stderr, "hyperad-logreg: %s: %s\n", data_path,
                *ad_logreg_errmsg() ? ad_logreg_errmsg() : ad_strerror(st));
        rc = 1;
        goto done;
    }
    st = ad_logreg_model_save(&model, model_path);
    if (st) {
        die_status(st, model_path);
        ad_logreg_model_free(&model);
        rc = 1;
        goto done;
    }
    /* allocated only now: the training peak is the program's peak */
    pred = malloc(d.m * sizeof *pred);
    st = pred ? ad_logreg_predict(&model, &d, pred, NULL) : AD_ENOMEM;
    if (st) {
        die_status(st, "prediction");
        ad_logreg_model_free(&model);
        rc = 1;
        goto done;
    }
    size_t ok = count_correct(&d, pred);
    printf("objective %.10g  training accuracy %.4f%% (%zu/%zu)  classes %zu  Newton %zu  CG %zu"
           "  |g|2 %.3e  read %.3f s  train %.3f s  total %.3f s  model %s\n",
           res.f, 100.0 * (double)ok / (double)d.m, ok, d.m, model.nr_class, res.newton_iters,
           res.cg_iters, res.gnorm, t_read, t_train, now() - t0, model_path);
    if (res.reason != AD_STOP_GTOL)
        fprintf(stderr, "hyperad-logreg: warning: stopped before the tolerance: %s\n",
                ad_stop_reason_str(res.reason));
    ad_logreg_model_free(&model);
done:
    free(pred);
    ad_logreg_data_free(&d);
    free(model_path);
    return rc;
}

/* Writes the predictions through a temporary file renamed at the end, so
 * an error never leaves a partial output. */
static int cmd_predict(int argc, char **argv)
{
    int prob = 0, quiet = 0, i;
    for (i = 0; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (!strcmp(argv[i], "-q")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "-b") && i + 1 < argc) {
            long v;
            if (!parse_long(argv[++i], 0, 1, &v)) {
                fprintf(stderr, "hyperad-logreg: -b takes 0 or 1\n");
                return 1;
            }
            prob = (int)v;
        } else {
            usage(stderr);
            return 1;
        }
    }
    if (argc - i != 3) {
        usage(stderr);
        return 1;
    }
    const char *data_path = argv[i], *model_path = argv[i + 1], *out_path = argv[i + 2];
    ad_logreg_model model;
    ad_status st = ad_logreg_model_load(model_path, &model);
    if (st) {
        die_status(st, model_path);
        return 1;
    }
    ad_logreg_data d;
    st = ad_logreg_read(data_path, AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d);
    if (st) {
        die_status(st, data_path);
        ad_logreg_model_free(&model);
        return 1;
    }
    int rc = 1;
    size_t nc = model.nr_class;
    double *pred = malloc(d.m * sizeof *pred);
    double *pr = prob ? malloc(d.m * nc * sizeof *pr) : NULL;
    size_t plen = strlen(out_path);
    char *tmp = malloc(plen + 16);
    FILE *fp = NULL;
    if (!pred || (prob && !pr) || !tmp) {
        fprintf(stderr, "hyperad-logreg: out of memory\n");
        goto out;
    }
    if ((st = ad_logreg_predict(&model, &d, pred, pr))) {
        die_status(st, "prediction");
        goto out;
    }
    memcpy(tmp, out_path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0 || !(fp = fdopen(fd, "w"))) {
        fprintf(stderr, "hyperad-logreg: %s: %s\n", out_path, strerror(errno));
        goto out;
    }
    if (prob) {
        fputs("labels", fp);
        for (size_t k = 0; k < nc; k++)
            fprintf(fp, " %d", model.label[k]);
        fputc('\n', fp);
    }
    for (size_t r = 0; r < d.m; r++) {
        fprintf(fp, "%g", pred[r]);
        if (prob)
            for (size_t k = 0; k < nc; k++)
                fprintf(fp, " %g", pr[r * nc + k]);
        fputc('\n', fp);
    }
    int bad = ferror(fp) | (fclose(fp) != 0);
    fp = NULL;
    if (bad || rename(tmp, out_path) != 0) {
        fprintf(stderr, "hyperad-logreg: %s: cannot write: %s\n", out_path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    size_t ok = count_correct(&d, pred);
    if (!quiet)
        printf("Accuracy = %g%% (%zu/%zu)\n", 100.0 * (double)ok / (double)d.m, ok, d.m);
    rc = 0;
out:
    if (fp) {
        fclose(fp);
        unlink(tmp);
    }
    free(tmp);
    free(pred);
    free(pr);
    ad_logreg_data_free(&d);
    ad_logreg_model_free(&model);
    return rc;
}

/* The training objective and accuracy of any LIBLINEAR-format model (ours
 * or liblinear-train's) on a data set: how the benchmark compares the two
 * trainers at equal -c. */
static int cmd_objective(int argc, char **argv)
{
    ad_logreg_params prm;
    ad_logreg_params_init(&prm);
    size_t nw = 0;
    int wl[256];
    double wv[256];
    int i;
    for (i = 0; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *o = argv[i];
        long lv = 0;
        int ok = 1;
        if (!strcmp(o, "-S")) {
            prm.scale = 1;
        } else if (!strcmp(o, "-c") && i + 1 < argc) {
            ok = parse_double(argv[++i], &prm.C) && prm.C > 0;
        } else if (!strcmp(o, "-B") && i + 1 < argc) {
            ok = parse_double(argv[++i], &prm.bias);
        } else if (o[1] == 'w' && o[2] && i + 1 < argc && nw < 256) { /* -wLABEL weight */
            ok = parse_long(o + 2, INT_MIN, INT_MAX, &lv) && parse_double(argv[i + 1], &wv[nw]) &&
                 wv[nw] > 0;
            wl[nw++] = (int)lv;
            i++;
        } else if (!strcmp(o, "-w") && i + 2 < argc && nw < 256) {
            ok = parse_long(argv[i + 1], INT_MIN, INT_MAX, &lv) &&
                 parse_double(argv[i + 2], &wv[nw]) && wv[nw] > 0;
            wl[nw++] = (int)lv;
            i += 2;
        } else {
            usage(stderr);
            return 1;
        }
        if (!ok) {
            fprintf(stderr, "hyperad-logreg: bad value for option %s\n", o);
            return 1;
        }
    }
    if (argc - i != 2) {
        usage(stderr);
        return 1;
    }
    prm.nr_weight = nw;
    prm.weight_label = wl;
    prm.weight = wv;
    ad_logreg_model model;
    ad_status st = ad_logreg_model_load(argv[i + 1], &model);
    if (st) {
        die_status(st, argv[i + 1]);
        return 1;
    }
    ad_logreg_data d;
    st = ad_logreg_read(argv[i], AD_LOGREG_FMT_AUTO, AD_LOGREG_STORE_AUTO, &d);
    if (st) {
        die_status(st, argv[i]);
        ad_logreg_model_free(&model);
        return 1;
    }
    int rc = 1;
    double f;
    double *pred = malloc(d.m * sizeof *pred);
    if (!pred) {
        fprintf(stderr, "hyperad-logreg: out of memory\n");
    } else if ((st = ad_logreg_objective(&d, &prm, &model, &f)) ||
               (st = ad_logreg_predict(&model, &d, pred, NULL))) {
        die_status(st, "objective");
    } else {
        size_t ok = count_correct(&d, pred);
        printf("objective %.12g  accuracy %.4f%% (%zu/%zu)\n", f,
               100.0 * (double)ok / (double)d.m, ok, d.m);
        rc = 0;
    }
    free(pred);
    ad_logreg_data_free(&d);
    ad_logreg_model_free(&model);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "train"))
        return cmd_train(argc - 2, argv + 2);
    if (!strcmp(argv[1], "predict"))
        return cmd_predict(argc - 2, argv + 2);
    if (!strcmp(argv[1], "objective"))
        return cmd_objective(argc - 2, argv + 2);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "hyperad-logreg: unknown command '%s' (train or predict)\n", argv[1]);
    usage(stderr);
    return 1;
}
