/*
 * Synthetic logistic-regression data in LIBSVM format, from a fixed seed,
 * for bench_logreg.sh (the files are generated at benchmark time, never
 * committed):
 *
 *   gen_logreg_data dense  m n     seed > file   X ~ N(0,1), every entry written
 *   gen_logreg_data sparse m n nnz seed > file   nnz distinct columns per row, N(0,1)
 *
 * Labels: y = sign(xᵀw* + 0.5·N(0,1)) with w* ~ N(0,1)/√(nnz per row), so
 * the classes overlap and the problem is neither separable nor trivial.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state;

static uint64_t next(void) /* splitmix64 */
{
    uint64_t z = (state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double unif(void) { return ((double)(next() >> 11) + 0.5) * 0x1.0p-53; }

static double gauss(void) /* Box–Muller, one of the pair */
{
    return sqrt(-2.0 * log(unif())) * cos(6.283185307179586 * unif());
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int dense = argc == 5 && !strcmp(argv[1], "dense");
    int sparse = argc == 6 && !strcmp(argv[1], "sparse");
    if (!dense && !sparse) {
        fprintf(stderr, "usage: %s dense m n seed | sparse m n nnz seed\n", argv[0]);
        return 1;
    }
    size_t m = strtoull(argv[2], NULL, 10), n = strtoull(argv[3], NULL, 10);
    size_t k = dense ? n : strtoull(argv[4], NULL, 10);
    state = strtoull(argv[dense ? 4 : 5], NULL, 10);
    if (m == 0 || n == 0 || k == 0 || k > n)
        return 1;
    double *wt = malloc(n * sizeof *wt), *x = malloc(k * sizeof *x);
    uint32_t *col = malloc(k * sizeof *col);
    unsigned char *used = calloc(n, 1);
    if (!wt || !x || !col || !used)
        return 1;
    for (size_t j = 0; j < n; j++)
        wt[j] = gauss() / sqrt((double)k);
    static char buf[1 << 16];
    setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    for (size_t i = 0; i < m; i++) {
        if (dense) {
            for (size_t j = 0; j < n; j++)
                col[j] = (uint32_t)j;
        } else {
            for (size_t q = 0; q < k; q++) {
                uint32_t c;
                do
                    c = (uint32_t)(next() % n);
                while (used[c]);
                used[c] = 1;
                col[q] = c;
            }
            for (size_t q = 0; q < k; q++)
                used[col[q]] = 0;
            qsort(col, k, sizeof *col, cmp_u32);
        }
        double z = 0.5 * gauss();
        for (size_t q = 0; q < k; q++) {
            /* 6 significant digits: the text size of typical real data */
            char t[32];
            snprintf(t, sizeof t, "%.6g", gauss());
            x[q] = strtod(t, NULL);
            z += x[q] * wt[col[q]];
        }
        size_t len = (size_t)snprintf(buf, sizeof buf, "%s", z > 0 ? "+1" : "-1");
        for (size_t q = 0; q < k; q++) {
            if (len + 64 > sizeof buf) {
                fwrite(buf, 1, len, stdout);
                len = 0;
            }
            len += (size_t)snprintf(buf + len, sizeof buf - len, " %u:%.6g", col[q] + 1, x[q]);
        }
        buf[len++] = '\n';
        fwrite(buf, 1, len, stdout);
    }
    free(wt);
    free(x);
    free(col);
    free(used);
    return fflush(stdout) != 0;
}
