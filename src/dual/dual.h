/*
 * Dual (2-part) and hyper-dual (4-part) numbers.
 *
 * A dual number x + ẋ ε (ε² = 0) carries one directional derivative; a
 * hyper-dual number x + x₁ε₁ + x₂ε₂ + x₁₂ε₁ε₂ (ε₁² = ε₂² = 0) carries two
 * and their mixed second derivative, so the ε₁ε₂ part of f's output is
 * vᵀ∇²f w when the inputs are seeded with v in ε₁ and w in ε₂
 * (Fike & Alonso 2011).  The chain rules below take an op's partials from
 * rules.h and apply them to the parts; the tape's sweeps use them so every
 * op's second-order algebra is written once.
 */
#ifndef HYPERAD_DUAL_H
#define HYPERAD_DUAL_H

#include "dual/rules.h"

typedef struct dual { double v, d; } dual;
typedef struct hdual { double v, e1, e2, e12; } hdual;

/* y = f(a) for a unary f with partials d1, d2 (the value is set by the caller). */
static inline double dual_chain1(double d1, double ad) { return d1 * ad; }

static inline void hdual_chain1(double d1, double d2, const hdual *a, hdual *y)
{
    y->e1 = d1 * a->e1;
    y->e2 = d1 * a->e2;
    y->e12 = d1 * a->e12 + d2 * a->e1 * a->e2;
}

/* y = f(a, b) for a binary f with partials r. */
static inline double dual_chain2(const dual_rule2 *r, double ad, double bd)
{
    return r->fa * ad + r->fb * bd;
}

static inline void hdual_chain2(const dual_rule2 *r, const hdual *a, const hdual *b, hdual *y)
{
    y->e1 = r->fa * a->e1 + r->fb * b->e1;
    y->e2 = r->fa * a->e2 + r->fb * b->e2;
    y->e12 = r->fa * a->e12 + r->fb * b->e12
           + r->faa * a->e1 * a->e2
           + r->fab * (a->e1 * b->e2 + a->e2 * b->e1)
           + r->fbb * b->e1 * b->e2;
}

/* The reverse-mode counterpart (dual-adjoint): with ȳ the adjoint of y and
 * ẏ̄ its tangent, a unary op adds ā̇ += ẏ̄ f' + ȳ f'' ȧ. */
static inline double dual_adjdot1(double d1, double d2, double yb, double ybd, double ad)
{
    return ybd * d1 + yb * d2 * ad;
}

#endif
