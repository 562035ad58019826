/* Elementary functions that need more than one line to be accurate. */
#include <math.h>
#include "dual/rules.h"

/* x^n by binary powering: exact for small n, 0^0 = 1, 0^(−n) = +inf
 * (a pole, reported by the caller as a domain error). */
double dual_powi(double x, int n)
{
    unsigned long long k = n < 0 ? -(unsigned long long)(long long)n : (unsigned long long)n;
    double r = 1.0, p = x;
    while (k) {
        if (k & 1u)
            r *= p;
        k >>= 1;
        if (k)
            p *= p;
    }
    return n < 0 ? 1.0 / r : r;
}

/* 1/(1+e^−x) without overflow, and without 1 − tiny rounding on the far
 * side: for x < 0 use e^x/(1+e^x). */
double dual_sigmoid(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* log(1+e^x) = max(x, 0) + log1p(e^−|x|): no overflow for large x, full
 * relative accuracy for very negative x (where it is ≈ e^x). */
double dual_softplus(double x)
{
    double e = log1p(exp(-fabs(x)));
    return x > 0.0 ? x + e : e;
}
