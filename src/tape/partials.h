/*
 * The partials of one scalar node from the rules of src/dual, as an inline
 * switch generated from the op table: for code that needs them node by node
 * (statement preaccumulation, error diagnosis) rather than inside a sweep.
 */
#ifndef HYPERAD_TAPE_PARTIALS_H
#define HYPERAD_TAPE_PARTIALS_H

#include "dual/rules.h"
#include "tape/tape_internal.h"

/* Kind 1 (unary: d[0] = f', d[1] = f''), 2 (binary: *q), 0 (not a scalar op). */
static inline __attribute__((always_inline)) int
tape_partials(const tape_rec *r, const double *val, size_t i, double d[2], dual_rule2 *q)
{
    const uint32_t a = r->a[i], b = r->b[i];
    switch ((tape_op)r->op[i]) {
#define PT_U(N, n, K, C)                                                \
    case OP_##N:                                                        \
        dual_##n##_d(val[a], val[i], TAPE_ARG_##K(r, i), &d[0], &d[1]); \
        return 1;
    TAPE_UNARY_OPS(PT_U)
#undef PT_U
#define PT_B(N, n, C)                                                   \
    case OP_##N:                                                        \
        dual_##n##_d(val[a], val[b], val[i], q);                        \
        return 2;
    TAPE_BINARY_OPS(PT_B)
#undef PT_B
    case OP_INPUT: case OP_CONST: case OP_SUM: case OP_DOT: case OP_DOTV:
    case OP_MATVEC: case OP_SPMV: case OP_VOUT: case OP_COUNT:
        break;
    }
    return 0;
}

#endif
