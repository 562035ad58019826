/* Internal glue shared by logreg.c and logreg_io.c (not installed). */
#ifndef HYPERAD_OPT_LOGREG_INTERNAL_H
#define HYPERAD_OPT_LOGREG_INTERNAL_H

#include "hyperad.h"

/* Sets the thread's logreg error detail (printf-style). */
void lr_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lr_clearerr(void);

/* LIBSVM files of at least this many bytes are parsed by two threads
 * (default 16 MiB); tests set it to 0 to split small files. */
extern size_t lr_parallel_min;

/* For tests: records on t the objective of the first binary sub-problem
 * of d under prm (label[0] in LIBLINEAR's order scored +1; for two classes
 * this is the whole problem) exactly as ad_logreg_fit does, at w = 0.  The
 * returned context is borrowed by t: free it with lr_objective_free after
 * the tape. */
typedef struct lr_objective lr_objective;
ad_status lr_objective_record(ad_tape *t, const ad_logreg_data *d, const ad_logreg_params *prm,
                              lr_objective **out);
void lr_objective_free(lr_objective *o);

#endif
