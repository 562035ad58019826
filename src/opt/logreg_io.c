/*
 * Logistic regression I/O: LIBSVM and CSV data readers, LIBLINEAR model
 * files.  The data readers make two passes over the file in big blocks read
 * with pread(2): the first counts rows, entries and the largest feature
 * index, the second parses straight into arrays of the exact size.  The
 * file is never mapped nor held whole, so peak memory is the data plus a
 * block (the whole point for a 100 MB file), and no array is ever grown by
 * copying.  Big LIBSVM files are split at the line start after their middle
 * and the halves read by two threads: pass 1 gives each half its first row,
 * entry and line number, so pass 2 writes both halves in place.
 */
#include "opt/logreg_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Error detail                                                         */
/* ------------------------------------------------------------------ */

static _Thread_local char lr_errbuf[512];

void lr_seterr(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lr_errbuf, sizeof lr_errbuf, fmt, ap);
    va_end(ap);
}

void lr_clearerr(void) { lr_errbuf[0] = '\0'; }

const char *ad_logreg_errmsg(void) { return lr_errbuf; }

/* ------------------------------------------------------------------ */
/* Numbers                                                              */
/* ------------------------------------------------------------------ */

static const double lr_pow10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static inline int lr_isdigit(char c) { return (unsigned)(c - '0') < 10u; }

/* SWAR digit runs (the trick of simdjson / fast_float, Lemire 2021): the 8
 * bytes at p hold how many leading digits, and their value.  Readers keep
 * LR_SLACK defined bytes after their data so that the 8-byte loads stay in
 * bounds; the bytes after the first non-digit do not affect the result. */
#define LR_SLACK 16

static inline int lr_digits8(const char *p, uint64_t *x)
{
    uint64_t v;
    memcpy(&v, p, 8);
    /* byte − '0': a digit gives 0..9; anything else sets its high bit
     * either here (below '0', wrapped) or after adding 0x76 (above '9');
     * borrows only run into the bytes after the first non-digit */
    uint64_t d = v - UINT64_C(0x3030303030303030);
    uint64_t t = (d | (d + UINT64_C(0x7676767676767676))) & UINT64_C(0x8080808080808080);
    *x = d;
    return t ? __builtin_ctzll(t) >> 3 : 8;
}

/* The value of the first len (1..8) digits of a lr_digits8 word. */
static inline uint64_t lr_value8(uint64_t d, int len)
{
    d <<= 8 * (8 - len); /* leading zero digits in the first bytes */
    d = d * 10 + (d >> 8);
    d = (((d & UINT64_C(0x000000FF000000FF)) * UINT64_C(0x000F424000000064)) +
         (((d >> 16) & UINT64_C(0x000000FF000000FF)) * UINT64_C(0x0000271000000001))) >> 32;
    return d & 0xffffffffu;
}

static const uint64_t lr_pow10u[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                      100000000};

/* Parses a decimal number at p and returns the first byte after it, or
 * NULL when there is none.  Clinger's fast path: a mantissa of at most 19
 * digits below 2^53 and a power of ten up to 10^22 are both exact doubles,
 * so one multiplication or division gives the correctly rounded result,
 * the same as strtod's.  Everything else (long mantissas, big exponents,
 * nan, inf, hex) goes to strtod, which stops at the line's '\n' or the
 * sentinel every buffer ends with. */
static const char *lr_parse_double(const char *p, double *out)
{
    const char *s = p;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    } else if (*p == '+') {
        p++;
    }
    uint64_t mant = 0;
    int nd = 0, exp10 = 0;
    const char *d0 = p;
    {
        /* the common case: at most 7 digits before and after the point */
        uint64_t x;
        int li = lr_digits8(p, &x);
        if (li < 8) {
            uint64_t ip = li ? lr_value8(x, li) : 0;
            const char *q = p + li;
            int lf = 0;
            uint64_t fp = 0;
            if (*q == '.') {
                lf = lr_digits8(q + 1, &x);
                if (lf < 8) {
                    fp = lf ? lr_value8(x, lf) : 0;
                    q += 1 + lf;
                }
            }
            if (lf < 8 && li + lf > 0) {
                mant = ip * lr_pow10u[lf] + fp;
                nd = li + lf;
                exp10 = -lf;
                p = q;
                goto exponent;
            }
        }
    }
    while (lr_isdigit(*p)) {
        mant = mant * 10u + (uint64_t)(*p - '0');
        nd++;
        p++;
    }
    int ndig = (int)(p - d0);
    if (*p == '.') {
        p++;
        const char *f0 = p;
        while (lr_isdigit(*p)) {
            mant = mant * 10u + (uint64_t)(*p - '0');
            nd++;
            p++;
        }
        exp10 = -(int)(p - f0);
        ndig += (int)(p - f0);
    }
    if (ndig == 0 || nd > 19)
        goto slow;
exponent:
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        int eneg = 0, e = 0;
        if (*q == '-') {
            eneg = 1;
            q++;
        } else if (*q == '+') {
            q++;
        }
        if (!lr_isdigit(*q))
            goto slow;
        while (lr_isdigit(*q)) {
            if (e < 10000)
                e = e * 10 + (*q - '0');
            q++;
        }
        exp10 += eneg ? -e : e;
        p = q;
    }
    if (mant > (UINT64_C(1) << 53) || exp10 < -22 || exp10 > 22)
        goto slow;
    {
        double v = (double)mant;
        v = exp10 < 0 ? v / lr_pow10[-exp10] : v * lr_pow10[exp10];
        *out = neg ? -v : v;
        return p;
    }
slow:
    {
        char *end;
        double v = strtod(s, &end);
        if (end == s)
            return NULL;
        *out = v;
        return end;
    }
}

/* ------------------------------------------------------------------ */
/* Block reader: hands out whole lines from a file read in big blocks    */
/* ------------------------------------------------------------------ */

#define LR_BLOCK ((size_t)2 << 20)

/* The arrays that grow with the data, and the read buffer, are anonymous
 * mappings advised to use 2 MiB pages: a first touch of a 4 KiB page costs
 * about 10 µs on the VMs this runs on (ANCHORS.md), 0.2 s for an 80 MB
 * matrix, against 40 faults with huge pages.  Fresh mappings read as zero,
 * like calloc.  Mapping the read buffer ourselves also keeps it away from
 * malloc: freeing a 4 MiB malloc block raises glibc's mmap threshold to
 * 4 MiB, and the tape's later geometric growth then happens in the brk heap
 * by copying, which cost 1.5 MB of peak memory on the sparse benchmark. */
typedef struct lr_big {
    void *p;
    size_t len;
} lr_big;

static void *lr_big_alloc(lr_big *b, size_t bytes)
{
    size_t len = (bytes + 4095) & ~(size_t)4095;
    if (len == 0)
        len = 4096;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (len >= ((size_t)4 << 20))
        (void)madvise(p, len, MADV_HUGEPAGE);
#endif
    b->p = p;
    b->len = len;
    return p;
}

static void lr_big_free(lr_big *b)
{
    if (b->p)
        munmap(b->p, b->len);
    b->p = NULL;
}


typedef struct lr_reader {
    const char *path;
    int fd;
    int own_fd;   /* close fd with the reader (the part readers share one) */
    off_t begin;  /* the byte range read: [begin, end), end < 0: to EOF */
    off_t end;
    off_t off;    /* next byte to read */
    lr_big map;   /* holds buf */
    char *buf;
    size_t cap;   /* bytes usable; one more is kept for a sentinel '\n' */
    size_t len;   /* bytes held */
    size_t pos;   /* start of the next line */
    int eof;
    size_t lineno;
} lr_reader;

static ad_status lr_reader_open(lr_reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->end = -1;
    r->own_fd = 1;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        lr_seterr("%s: cannot open: %s", path, strerror(errno));
        return AD_EIO;
    }
    struct stat st;
    if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        lr_seterr("%s: is a directory", path);
        close(r->fd);
        r->fd = -1;
        return AD_EIO;
    }
    (void)posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    r->cap = LR_BLOCK;
    r->buf = lr_big_alloc(&r->map, r->cap + 1 + LR_SLACK); /* zeroed slack: lr_digits8 */
    if (!r->buf) {
        close(r->fd);
        r->fd = -1;
        lr_seterr("%s: out of memory", path);
        return AD_ENOMEM;
    }
    return AD_OK;
}

/* A reader of bytes [begin, end) of the file open in `of`, with a buffer
 * of its own: one part of a file parsed by two threads (pread on a shared
 * descriptor is thread-safe). */
static ad_status lr_reader_part(lr_reader *r, const lr_reader *of, off_t begin, off_t end)
{
    memset(r, 0, sizeof *r);
    r->path = of->path;
    r->fd = of->fd;
    r->begin = r->off = begin;
    r->end = end;
    r->cap = LR_BLOCK;
    r->buf = lr_big_alloc(&r->map, r->cap + 1 + LR_SLACK);
    if (!r->buf) {
        lr_seterr("%s: out of memory", r->path);
        return AD_ENOMEM;
    }
    return AD_OK;
}

static void lr_reader_close(lr_reader *r)
{
    if (r->fd >= 0 && r->own_fd)
        close(r->fd);
    lr_big_free(&r->map);
    r->fd = -1;
    r->buf = NULL;
}

static ad_status lr_reader_rewind(lr_reader *r)
{
    r->off = r->begin;
    r->len = r->pos = 0;
    r->eof = 0;
    r->lineno = 0;
    return AD_OK;
}

/* The next line: *line points at its first byte, *n is its length without
 * the '\n', and line[*n] == '\n' always (a last line without one gets the
 * sentinel), so parsers stop there without a bounds check.  *line = NULL
 * at the end of the file. */
static ad_status lr_next_line(lr_reader *r, char **line, size_t *n)
{
    for (;;) {
        char *start = r->buf + r->pos;
        char *nl = r->pos < r->len ? memchr(start, '\n', r->len - r->pos) : NULL;
        if (nl) {
            *line = start;
            *n = (size_t)(nl - start);
            r->pos = (size_t)(nl - r->buf) + 1;
            r->lineno++;
            return AD_OK;
        }
        if (r->eof) {
            if (r->pos < r->len) {
                r->buf[r->len] = '\n';
                *line = start;
                *n = r->len - r->pos;
                r->pos = r->len;
                r->lineno++;
                return AD_OK;
            }
            *line = NULL;
            *n = 0;
            return AD_OK;
        }
        /* Keep the partial line, then fill the rest of the buffer; a line
         * longer than the buffer doubles it. */
        size_t keep = r->len - r->pos;
        if (r->pos > 0 && keep > 0)
            memmove(r->buf, r->buf + r->pos, keep);
        r->len = keep;
        r->pos = 0;
        if (r->len == r->cap) {
            lr_big nm;
            char *nb = lr_big_alloc(&nm, 2 * r->cap + 1 + LR_SLACK);
            if (!nb) {
                lr_seterr("%s:%zu: line too long: out of memory", r->path, r->lineno + 1);
                return AD_ENOMEM;
            }
            memcpy(nb, r->buf, r->len);
            lr_big_free(&r->map);
            r->map = nm;
            r->buf = nb;
            r->cap *= 2;
        }
        size_t want = r->cap - r->len;
        if (r->end >= 0 && (off_t)want > r->end - r->off)
            want = (size_t)(r->end - r->off);
        ssize_t got = 0;
        if (want > 0) {
            do {
                got = pread(r->fd, r->buf + r->len, want, r->off);
            } while (got < 0 && errno == EINTR);
        }
        if (got < 0) {
            lr_seterr("%s: read error: %s", r->path, strerror(errno));
            return AD_EIO;
        }
        if (got == 0)
            r->eof = 1;
        r->len += (size_t)got;
        r->off += got;
    }
}

static int lr_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

static inline const char *lr_skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

/* ------------------------------------------------------------------ */
/* Storage of a read data set                                           */
/* ------------------------------------------------------------------ */

typedef struct lr_store {
    double *X;
    size_t *rowptr;
    uint32_t *colind;
    double *val;
    double *y;
    lr_big bx, bcol, bval;
    int heap_csr; /* colind and val come from malloc (sparse CSV) */
} lr_store;

static void lr_store_free(lr_store *s)
{
    if (!s)
        return;
    lr_big_free(&s->bx);
    lr_big_free(&s->bcol);
    lr_big_free(&s->bval);
    if (s->heap_csr) {
        free(s->colind);
        free(s->val);
    }
    free(s->rowptr);
    free(s->y);
    free(s);
}

void ad_logreg_data_free(ad_logreg_data *d)
{
    if (!d)
        return;
    lr_store_free(d->owner);
    memset(d, 0, sizeof *d);
}

/* A label: finite and integer-valued (LIBLINEAR casts labels to int). */
static const char *lr_parse_label(lr_reader *r, const char *p, double *y, char sep)
{
    p = lr_skip_ws(p);
    const char *e = lr_parse_double(p, y);
    if (!e || !(*e == ' ' || *e == '\t' || *e == '\r' || *e == '\n' || *e == sep)) {
        lr_seterr("%s:%zu: the label is not a number", r->path, r->lineno);
        return NULL;
    }
    if (!isfinite(*y) || *y != floor(*y) || fabs(*y) > (double)INT_MAX) {
        lr_seterr("%s:%zu: the label must be an integer (LIBLINEAR casts labels to int)",
                  r->path, r->lineno);
        return NULL;
    }
    return e;
}

/* ------------------------------------------------------------------ */
/* LIBSVM                                                               */
/* ------------------------------------------------------------------ */

/* Pass 1: rows, entries (':' count) and the largest index (the last of
 * each line: pass 2 rejects lines whose indices are not increasing). */
static ad_status lr_libsvm_count(lr_reader *r, size_t *m, size_t *nnz, size_t *n)
{
    size_t rows = 0, ent = 0, maxidx = 0;
    for (;;) {
        char *line;
        size_t len;
        ad_status st = lr_next_line(r, &line, &len);
        if (st)
            return st;
        if (!line)
            break;
        if (lr_blank(line, len))
            continue;
        rows++;
        size_t c = 0;
        for (size_t i = 0; i < len; i++)
            c += line[i] == ':';
        ent += c;
        if (c) {
            const char *colon = memrchr(line, ':', len);
            const char *q = colon;
            size_t idx = 0, mul = 1;
            while (q > line && lr_isdigit(q[-1]) && mul <= 1000000000u) {
                q--;
                idx += (size_t)(q[0] - '0') * mul;
                mul *= 10;
            }
            if (idx > maxidx)
                maxidx = idx;
        }
    }
    *m = rows;
    *nnz = ent;
    *n = maxidx;
    return AD_OK;
}

/* Pass 2 of one line.  Writes the row's entries either into the dense row
 * xrow (n wide, zeroed) or at colind/val[*k...]; cap bounds *k so that a
 * file changed between the passes cannot overrun. */
static ad_status lr_libsvm_line(lr_reader *r, const char *p, size_t n, double *y,
                                double *xrow, uint32_t *colind, double *val, size_t *k,
                                size_t cap)
{
    p = lr_parse_label(r, p, y, '\0');
    if (!p)
        return AD_EFORMAT;
    size_t prev = 0;
    for (;;) {
        p = lr_skip_ws(p);
        if (*p == '\n')
            return AD_OK;
        if (!lr_isdigit(*p)) {
            int shown = 0;
            while (shown < 20 && p[shown] != '\n' && p[shown] != '\r')
                shown++;
            lr_seterr("%s:%zu: expected index:value, found '%.*s'", r->path, r->lineno, shown, p);
            return AD_EFORMAT;
        }
        size_t idx = 0;
        while (lr_isdigit(*p)) {
            idx = idx * 10 + (size_t)(*p - '0');
            if (idx > (size_t)INT_MAX) {
                lr_seterr("%s:%zu: feature index too large", r->path, r->lineno);
                return AD_EFORMAT;
            }
            p++;
        }
        if (*p != ':') {
            lr_seterr("%s:%zu: expected ':' after feature index %zu", r->path, r->lineno, idx);
            return AD_EFORMAT;
        }
        p++;
        if (idx == 0) {
            lr_seterr("%s:%zu: feature index 0 (indices start at 1)", r->path, r->lineno);
            return AD_EFORMAT;
        }
        if (idx <= prev) {
            lr_seterr("%s:%zu: feature indices not increasing (%zu after %zu)", r->path,
                      r->lineno, idx, prev);
            return AD_EFORMAT;
        }
        double v;
        const char *e = lr_parse_double(p, &v);
        if (!e || !(*e == ' ' || *e == '\t' || *e == '\r' || *e == '\n')) {
            lr_seterr("%s:%zu: bad value for feature %zu", r->path, r->lineno, idx);
            return AD_EFORMAT;
        }
        if (!isfinite(v)) {
            lr_seterr("%s:%zu: value of feature %zu is not finite", r->path, r->lineno, idx);
            return AD_EFORMAT;
        }
        /* n is at least this line's last index, so an index above it means
         * a smaller one follows. */
        if (idx > n) {
            lr_seterr("%s:%zu: feature indices not increasing", r->path, r->lineno);
            return AD_EFORMAT;
        }
        if (xrow) {
            xrow[idx - 1] = v;
        } else {
            if (*k >= cap) {
                lr_seterr("%s:%zu: file changed while reading", r->path, r->lineno);
                return AD_EIO;
            }
            colind[*k] = (uint32_t)(idx - 1);
            val[*k] = v;
            (*k)++;
        }
        prev = idx;
        p = e;
    }
}

static int lr_choose_dense(ad_logreg_storage store, size_t m, size_t n, size_t nnz)
{
    if (store == AD_LOGREG_STORE_DENSE)
        return 1;
    if (store == AD_LOGREG_STORE_SPARSE)
        return 0;
    /* Dense when it costs at most twice the CSR bytes: dgemv streams its
     * matrix several times faster per entry than a CSR product. */
    double dense = 8.0 * (double)m * (double)n;
    double sparse = 12.0 * (double)nnz + 8.0 * (double)(m + 1);
    return dense <= 2.0 * sparse;
}

/* Pass 2 over one part: rows [row0, row0 + rows) and entries from k0,
 * never beyond kend (a file changed between the passes cannot overrun). */
static ad_status lr_libsvm_fill(lr_reader *r, size_t n, int dense, lr_store *s, size_t row0,
                                size_t rows, size_t k0, size_t kend)
{
    size_t i = row0, k = k0;
    ad_status st;
    if (!dense && row0 == 0)
        s->rowptr[0] = 0;
    for (;;) {
        char *line;
        size_t len;
        if ((st = lr_next_line(r, &line, &len)))
            return st;
        if (!line)
            break;
        if (lr_blank(line, len))
            continue;
        if (i >= row0 + rows) {
            lr_seterr("%s:%zu: file changed while reading", r->path, r->lineno);
            return AD_EIO;
        }
        st = lr_libsvm_line(r, line, n, &s->y[i], dense ? s->X + i * n : NULL, s->colind,
                            s->val, &k, kend);
        if (st)
            return st;
        i++;
        if (!dense)
            s->rowptr[i] = k;
    }
    if (i != row0 + rows || (!dense && k != kend)) {
        lr_seterr("%s: file changed while reading", r->path);
        return AD_EIO;
    }
    return AD_OK;
}

/* Files at least this big are parsed by two threads, one per half (the
 * tests lower it to run the split on small files). */
size_t lr_parallel_min = (size_t)16 << 20;

/* One half of a LIBSVM file, run by lr_part_run on its own thread. */
typedef struct lr_part {
    lr_reader *r;
    int fill;                       /* 0: pass 1 (count), 1: pass 2 (fill) */
    size_t rows, ent, maxidx, lines; /* pass 1 results                      */
    size_t n, row0, k0, line0;      /* pass 2: where this part's rows go    */
    int dense;
    lr_store *s;
    ad_status st;
    char err[512];                  /* the detail, from the thread's own errmsg */
} lr_part;

static void *lr_part_run(void *arg)
{
    lr_part *p = arg;
    if (!p->fill) {
        p->st = lr_libsvm_count(p->r, &p->rows, &p->ent, &p->maxidx);
        p->lines = p->r->lineno;
    } else {
        p->st = lr_reader_rewind(p->r);
        p->r->lineno = p->line0;
        if (!p->st)
            p->st = lr_libsvm_fill(p->r, p->n, p->dense, p->s, p->row0, p->rows, p->k0,
                                   p->k0 + p->ent);
    }
    if (p->st)
        snprintf(p->err, sizeof p->err, "%s", ad_logreg_errmsg());
    return NULL;
}

/* Runs the parts, the second on a thread of its own (or after the first
 * when no thread can be made); the first part's error wins, being earlier
 * in the file. */
static ad_status lr_run_parts(lr_part *pt, int np)
{
    pthread_t th;
    int threaded = np == 2 && pthread_create(&th, NULL, lr_part_run, &pt[1]) == 0;
    lr_part_run(&pt[0]);
    if (threaded)
        pthread_join(th, NULL);
    else if (np == 2)
        lr_part_run(&pt[1]);
    for (int q = 0; q < np; q++)
        if (pt[q].st) {
            lr_seterr("%s", pt[q].err);
            return pt[q].st;
        }
    return AD_OK;
}

/* The first line start after the middle of a big regular file, or 0 for
 * no split. */
static off_t lr_split_point(const lr_reader *r)
{
    struct stat st;
    if (fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 2 ||
        (size_t)st.st_size < lr_parallel_min)
        return 0;
    off_t off = st.st_size / 2;
    char buf[4096];
    for (;;) {
        ssize_t got = pread(r->fd, buf, sizeof buf, off);
        if (got <= 0)
            return 0;
        const char *nl = memchr(buf, '\n', (size_t)got);
        if (nl) {
            off += (off_t)(nl - buf) + 1;
            return off < st.st_size ? off : 0;
        }
        off += got;
    }
}

static ad_status lr_read_libsvm(lr_reader *r, ad_logreg_storage store, ad_logreg_data *d,
                                lr_store *s)
{
    lr_reader r1;
    lr_part pt[2];
    memset(pt, 0, sizeof pt);
    memset(&r1, 0, sizeof r1);
    r1.fd = -1;
    int np = 1;
    ad_status st;
    off_t split = lr_split_point(r);
    if (split > 0) {
        if ((st = lr_reader_part(&r1, r, split, -1)))
            return st;
        r->end = split;
        np = 2;
    }
    pt[0].r = r;
    pt[1].r = &r1;
    if ((st = lr_reader_rewind(r)) || (st = lr_run_parts(pt, np)))
        goto out;
    size_t m = pt[0].rows + pt[1].rows, nnz = pt[0].ent + pt[1].ent;
    size_t n = pt[0].maxidx > pt[1].maxidx ? pt[0].maxidx : pt[1].maxidx;
    if (m == 0) {
        lr_seterr("%s: no data rows", r->path);
        st = AD_EFORMAT;
        goto out;
    }
    if (n == 0)
        n = 1; /* rows with no features at all: one all-zero column */
    int dense = lr_choose_dense(store, m, n, nnz);
    if (dense && n > SIZE_MAX / 8 / m) {
        lr_seterr("%s: %zu x %zu is too large for a dense matrix", r->path, m, n);
        st = AD_ENOMEM;
        goto out;
    }
    s->y = malloc(m * sizeof *s->y);
    if (dense) {
        s->X = lr_big_alloc(&s->bx, m * n * sizeof *s->X);
    } else {
        s->rowptr = malloc((m + 1) * sizeof *s->rowptr);
        s->colind = lr_big_alloc(&s->bcol, nnz * sizeof *s->colind);
        s->val = lr_big_alloc(&s->bval, nnz * sizeof *s->val);
    }
    if (!s->y || (dense ? !s->X : (!s->rowptr || !s->colind || !s->val))) {
        lr_seterr("%s: out of memory for %zu rows, %zu entries", r->path, m, nnz);
        st = AD_ENOMEM;
        goto out;
    }
    for (int q = 0; q < np; q++) {
        pt[q].fill = 1;
        pt[q].n = n;
        pt[q].dense = dense;
        pt[q].s = s;
    }
    pt[1].row0 = pt[0].rows;
    pt[1].k0 = pt[0].ent;
    pt[1].line0 = pt[0].lines;
    if ((st = lr_run_parts(pt, np)))
        goto out;
    d->m = m;
    d->n = n;
    d->nnz = dense ? m * n : nnz;
    d->X = s->X;
    d->csr.rowptr = s->rowptr;
    d->csr.colind = s->colind;
    d->csr.val = s->val;
    d->y = s->y;
out:
    if (np == 2)
        lr_reader_close(&r1);
    return st;
}

/* ------------------------------------------------------------------ */
/* CSV: label first, then every feature; an optional header line        */
/* ------------------------------------------------------------------ */

static size_t lr_count_fields(const char *p, size_t len)
{
    size_t c = 1;
    for (size_t i = 0; i < len; i++)
        c += p[i] == ',';
    return c;
}

/* A header is a first line whose first field does not parse as a number. */
static int lr_csv_is_header(const char *p)
{
    double v;
    p = lr_skip_ws(p);
    const char *e = lr_parse_double(p, &v);
    if (!e)
        return 1;
    e = lr_skip_ws(e);
    return !(*e == ',' || *e == '\n');
}

static ad_status lr_read_csv(lr_reader *r, ad_logreg_storage store, ad_logreg_data *d,
                             lr_store *s)
{
    size_t m = 0, nf = 0, header_line = 0;
    ad_status st;
    for (;;) {
        char *line;
        size_t len;
        if ((st = lr_next_line(r, &line, &len)))
            return st;
        if (!line)
            break;
        if (lr_blank(line, len))
            continue;
        if (nf == 0 && header_line == 0 && m == 0 && lr_csv_is_header(line)) {
            header_line = r->lineno;
            continue;
        }
        size_t c = lr_count_fields(line, len);
        if (nf == 0) {
            nf = c;
        } else if (c != nf) {
            lr_seterr("%s:%zu: %zu fields, the first data line has %zu", r->path, r->lineno,
                      c, nf);
            return AD_EFORMAT;
        }
        m++;
    }
    if (m == 0) {
        lr_seterr("%s: no data rows", r->path);
        return AD_EFORMAT;
    }
    if (nf < 2) {
        lr_seterr("%s: a CSV line needs a label and at least one feature", r->path);
        return AD_EFORMAT;
    }
    size_t n = nf - 1;
    /* CSV spells out every entry: size the storage as if all were non-zero. */
    int dense = lr_choose_dense(store, m, n, m * n);
    if (n > SIZE_MAX / 16 / m) {
        lr_seterr("%s: %zu x %zu is too large", r->path, m, n);
        return AD_ENOMEM;
    }
    s->y = malloc(m * sizeof *s->y);
    size_t cap = 0;
    if (dense) {
        s->X = lr_big_alloc(&s->bx, m * n * sizeof *s->X);
    } else {
        /* sparse CSV: the entries are counted while parsing, so these two
         * grow by realloc (heap_csr tells lr_store_free) */
        s->heap_csr = 1;
        cap = m < 1024 ? 1024 : m;
        s->rowptr = malloc((m + 1) * sizeof *s->rowptr);
        s->colind = malloc(cap * sizeof *s->colind);
        s->val = malloc(cap * sizeof *s->val);
    }
    if (!s->y || (dense ? !s->X : (!s->rowptr || !s->colind || !s->val))) {
        lr_seterr("%s: out of memory", r->path);
        return AD_ENOMEM;
    }
    if ((st = lr_reader_rewind(r)))
        return st;
    size_t i = 0, k = 0;
    if (!dense)
        s->rowptr[0] = 0;
    for (;;) {
        char *line;
        size_t len;
        if ((st = lr_next_line(r, &line, &len)))
            return st;
        if (!line)
            break;
        if (lr_blank(line, len) || r->lineno == header_line)
            continue;
        if (i >= m) {
            lr_seterr("%s:%zu: file changed while reading", r->path, r->lineno);
            return AD_EIO;
        }
        const char *p = lr_parse_label(r, line, &s->y[i], ',');
        if (!p)
            return AD_EFORMAT;
        p = lr_skip_ws(p);
        for (size_t j = 0; j < n; j++) {
            if (*p != ',') {
                lr_seterr("%s:%zu: expected ',' before field %zu", r->path, r->lineno, j + 2);
                return AD_EFORMAT;
            }
            p = lr_skip_ws(p + 1);
            double v = 0.0;
            if (*p != ',' && *p != '\n') {
                const char *e = lr_parse_double(p, &v);
                if (!e) {
                    lr_seterr("%s:%zu: field %zu is not a number", r->path, r->lineno, j + 2);
                    return AD_EFORMAT;
                }
                p = lr_skip_ws(e);
                if (*p != ',' && *p != '\n') {
                    lr_seterr("%s:%zu: field %zu is not a number", r->path, r->lineno, j + 2);
                    return AD_EFORMAT;
                }
                if (!isfinite(v)) {
                    lr_seterr("%s:%zu: field %zu is not finite", r->path, r->lineno, j + 2);
                    return AD_EFORMAT;
                }
            }
            if (dense) {
                s->X[i * n + j] = v;
            } else if (v != 0.0) {
                if (k == cap) {
                    size_t nc = 2 * cap;
                    uint32_t *ci = realloc(s->colind, nc * sizeof *ci);
                    if (ci)
                        s->colind = ci;
                    double *vv = ci ? realloc(s->val, nc * sizeof *vv) : NULL;
                    if (!vv) {
                        lr_seterr("%s: out of memory", r->path);
                        return AD_ENOMEM;
                    }
                    s->val = vv;
                    cap = nc;
                }
                s->colind[k] = (uint32_t)j;
                s->val[k] = v;
                k++;
            }
        }
        if (*p != '\n') {
            lr_seterr("%s:%zu: trailing characters", r->path, r->lineno);
            return AD_EFORMAT;
        }
        i++;
        if (!dense)
            s->rowptr[i] = k;
    }
    if (i != m) {
        lr_seterr("%s: file changed while reading", r->path);
        return AD_EIO;
    }
    d->m = m;
    d->n = n;
    d->nnz = dense ? m * n : k;
    d->X = s->X;
    d->csr.rowptr = s->rowptr;
    d->csr.colind = s->colind;
    d->csr.val = s->val;
    d->y = s->y;
    return AD_OK;
}

/* The format of the first non-blank line: CSV when a ',' comes before any
 * ':'. */
static ad_status lr_detect(lr_reader *r, ad_logreg_format *fmt)
{
    ad_status st;
    for (;;) {
        char *line;
        size_t len;
        if ((st = lr_next_line(r, &line, &len)))
            return st;
        if (!line) {
            *fmt = AD_LOGREG_FMT_LIBSVM; /* empty: reported by the reader */
            break;
        }
        if (lr_blank(line, len))
            continue;
        const char *comma = memchr(line, ',', len);
        const char *colon = memchr(line, ':', len);
        *fmt = comma && (!colon || comma < colon) ? AD_LOGREG_FMT_CSV : AD_LOGREG_FMT_LIBSVM;
        break;
    }
    return lr_reader_rewind(r);
}

ad_status ad_logreg_read(const char *path, ad_logreg_format fmt, ad_logreg_storage store,
                         ad_logreg_data *d)
{
    lr_clearerr();
    if (!d || !path) {
        lr_seterr("ad_logreg_read: NULL argument");
        return AD_EINVAL;
    }
    memset(d, 0, sizeof *d);
    lr_reader r;
    ad_status st = lr_reader_open(&r, path);
    if (st)
        return st;
    lr_store *s = calloc(1, sizeof *s);
    if (!s) {
        lr_reader_close(&r);
        lr_seterr("%s: out of memory", path);
        return AD_ENOMEM;
    }
    if (fmt == AD_LOGREG_FMT_AUTO)
        st = lr_detect(&r, &fmt);
    if (!st)
        st = fmt == AD_LOGREG_FMT_CSV ? lr_read_csv(&r, store, d, s)
                                       : lr_read_libsvm(&r, store, d, s);
    lr_reader_close(&r);
    if (st) {
        lr_store_free(s);
        memset(d, 0, sizeof *d);
        return st;
    }
    d->owner = s;
    return AD_OK;
}

/* ------------------------------------------------------------------ */
/* LIBLINEAR model files                                                */
/* ------------------------------------------------------------------ */

void ad_logreg_model_free(ad_logreg_model *m)
{
    if (!m)
        return;
    free(m->label);
    free(m->w);
    memset(m, 0, sizeof *m);
}

static size_t lr_model_rows(const ad_logreg_model *m)
{
    return m->nr_feature + (m->bias >= 0 ? 1 : 0);
}

ad_status ad_logreg_model_save(const ad_logreg_model *model, const char *path)
{
    lr_clearerr();
    if (!model || !path || !model->label || !model->w || model->nr_class < 2 ||
        model->nr_w == 0) {
        lr_seterr("ad_logreg_model_save: NULL or empty model");
        return AD_EINVAL;
    }
    /* A temporary in the same directory, renamed over path at the end:
     * rename is atomic within a file system, so readers see the old file
     * or the whole new one, never a partial one. */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return AD_ENOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        lr_seterr("%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return AD_EIO;
    }
    (void)fchmod(fd, 0644);
    FILE *fp = fdopen(fd, "w");
    if (!fp) {
        close(fd);
        unlink(tmp);
        free(tmp);
        lr_seterr("%s: %s", path, strerror(errno));
        return AD_EIO;
    }
    fprintf(fp, "solver_type L2R_LR\nnr_class %zu\nlabel", model->nr_class);
    for (size_t k = 0; k < model->nr_class; k++)
        fprintf(fp, " %d", model->label[k]);
    fprintf(fp, "\nnr_feature %zu\nbias %.17g\nw\n", model->nr_feature, model->bias);
    size_t rows = lr_model_rows(model);
    for (size_t i = 0; i < rows; i++) {
        for (size_t k = 0; k < model->nr_w; k++)
            fprintf(fp, "%.17g ", model->w[i * model->nr_w + k]);
        fputc('\n', fp);
    }
    int bad = ferror(fp);
    bad |= fflush(fp) != 0;
    bad |= fclose(fp) != 0;
    if (bad || rename(tmp, path) != 0) {
        lr_seterr("%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return AD_EIO;
    }
    free(tmp);
    return AD_OK;
}

/* The model file as a token stream with line numbers. */
typedef struct lr_tok {
    const char *path;
    char *p;
    size_t line;      /* line of the token last returned */
    int pending_nl;   /* that token ended at a '\n' (now overwritten) */
} lr_tok;

/* The next whitespace-separated token, NUL-terminated in place, or NULL at
 * the end of the text. */
static char *lr_token(lr_tok *t)
{
    if (t->pending_nl) {
        t->line++;
        t->pending_nl = 0;
    }
    while (*t->p == ' ' || *t->p == '\t' || *t->p == '\r' || *t->p == '\n') {
        if (*t->p == '\n')
            t->line++;
        t->p++;
    }
    if (!*t->p)
        return NULL;
    char *s = t->p;
    while (*t->p && *t->p != ' ' && *t->p != '\t' && *t->p != '\r' && *t->p != '\n')
        t->p++;
    if (*t->p) {
        if (*t->p == '\n')
            t->pending_nl = 1;
        *t->p++ = '\0';
    }
    return s;
}

static int lr_tok_long(char *s, long lo, long hi, long *out)
{
    if (!s)
        return 0;
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

ad_status ad_logreg_model_load(const char *path, ad_logreg_model *model)
{
    lr_clearerr();
    if (!path || !model) {
        lr_seterr("ad_logreg_model_load: NULL argument");
        return AD_EINVAL;
    }
    memset(model, 0, sizeof *model);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        lr_seterr("%s: cannot open: %s", path, strerror(errno));
        return AD_EIO;
    }
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap + 1);
    while (text) {
        size_t got = fread(text + len, 1, cap - len, fp);
        len += got;
        if (len < cap)
            break;
        char *nt = realloc(text, 2 * cap + 1);
        if (!nt) {
            free(text);
            text = NULL;
            break;
        }
        text = nt;
        cap *= 2;
    }
    int rerr = ferror(fp);
    fclose(fp);
    if (!text) {
        lr_seterr("%s: out of memory", path);
        return AD_ENOMEM;
    }
    if (rerr) {
        free(text);
        lr_seterr("%s: read error", path);
        return AD_EIO;
    }
    text[len] = '\0';
    if (memchr(text, '\0', len)) {
        free(text);
        lr_seterr("%s: not a text file", path);
        return AD_EFORMAT;
    }

    lr_tok t = {path, text, 1, 0};
    ad_status st = AD_EFORMAT;
    long nr_class = -1, nr_feature = -1;
    double bias = -1;
    int have_bias = 0, have_w = 0, mcsvm = 0;
    int *label = NULL;
    double *w = NULL;
    char *tok;
    while (!have_w && (tok = lr_token(&t))) {
        if (!strcmp(tok, "solver_type")) {
            char *v = lr_token(&t);
            if (!v) {
                lr_seterr("%s:%zu: solver_type without a value", path, t.line);
                goto out;
            }
            /* Crammer–Singer keeps a column per class even for two */
            mcsvm = !strcmp(v, "MCSVM_CS");
        } else if (!strcmp(tok, "nr_class")) {
            if (!lr_tok_long(lr_token(&t), 1, INT_MAX, &nr_class)) {
                lr_seterr("%s:%zu: bad nr_class", path, t.line);
                goto out;
            }
        } else if (!strcmp(tok, "label")) {
            if (nr_class < 1) {
                lr_seterr("%s:%zu: label before nr_class", path, t.line);
                goto out;
            }
            free(label);
            label = malloc((size_t)nr_class * sizeof *label);
            if (!label) {
                st = AD_ENOMEM;
                goto out;
            }
            for (long k = 0; k < nr_class; k++) {
                long v;
                if (!lr_tok_long(lr_token(&t), INT_MIN, INT_MAX, &v)) {
                    lr_seterr("%s:%zu: bad or missing label %ld of %ld", path, t.line, k + 1,
                              nr_class);
                    goto out;
                }
                label[k] = (int)v;
            }
        } else if (!strcmp(tok, "nr_feature")) {
            if (!lr_tok_long(lr_token(&t), 0, INT_MAX, &nr_feature)) {
                lr_seterr("%s:%zu: bad nr_feature", path, t.line);
                goto out;
            }
        } else if (!strcmp(tok, "bias")) {
            char *b = lr_token(&t);
            char *e = NULL;
            if (b)
                bias = strtod(b, &e);
            if (!b || e == b || *e || !isfinite(bias)) {
                lr_seterr("%s:%zu: bad bias", path, t.line);
                goto out;
            }
            have_bias = 1;
        } else if (!strcmp(tok, "rho")) {
            if (!lr_token(&t)) { /* one-class SVM models (LIBLINEAR 2.4x) */
                lr_seterr("%s:%zu: rho without a value", path, t.line);
                goto out;
            }
        } else if (!strcmp(tok, "w")) {
            have_w = 1;
        } else {
            lr_seterr("%s:%zu: unknown keyword '%.40s' (not a LIBLINEAR model file?)", path,
                      t.line, tok);
            goto out;
        }
    }
    if (!have_w || nr_class < 1 || nr_feature < 0 || !label || !have_bias) {
        lr_seterr("%s:%zu: truncated model header (need nr_class, label, nr_feature, bias, w;"
                  " regression models have no labels)",
                  path, t.line);
        goto out;
    }
    {
        size_t nr_w = nr_class == 2 && !mcsvm ? 1 : (size_t)nr_class;
        size_t rows = (size_t)nr_feature + (bias >= 0 ? 1 : 0);
        size_t total = rows * nr_w;
        w = malloc((total ? total : 1) * sizeof *w);
        if (!w) {
            st = AD_ENOMEM;
            lr_seterr("%s: out of memory", path);
            goto out;
        }
        for (size_t i = 0; i < total; i++) {
            char *s = lr_token(&t);
            if (!s) {
                lr_seterr("%s:%zu: truncated: %zu of %zu weights", path, t.line, i, total);
                goto out;
            }
            char *e;
            w[i] = strtod(s, &e);
            if (e == s || *e || !isfinite(w[i])) {
                lr_seterr("%s:%zu: bad weight '%.40s'", path, t.line, s);
                goto out;
            }
        }
        if ((tok = lr_token(&t))) {
            lr_seterr("%s:%zu: trailing data after %zu weights", path, t.line, total);
            goto out;
        }
        model->nr_class = (size_t)nr_class;
        model->label = label;
        model->nr_feature = (size_t)nr_feature;
        model->bias = bias;
        model->nr_w = nr_w;
        model->w = w;
        label = NULL;
        w = NULL;
        st = AD_OK;
    }
out:
    free(label);
    free(w);
    free(text);
    return st;
}
