/*
 * Line searches along a descent direction d from x0:
 *
 * - ls_more_thuente: J. J. Moré and D. J. Thuente, "Line search algorithms
 *   with guaranteed sufficient decrease", ACM TOMS 20(3), 1994 — the
 *   strong-Wolfe search of MINPACK-2's dcsrch/dcstep, restated here.  It
 *   keeps an interval of uncertainty [stx, sty] that is known to contain a
 *   point satisfying the Wolfe conditions once it is bracketed, and picks the
 *   next trial by safeguarded cubic/quadratic/secant steps.
 * - ls_backtrack: Armijo backtracking (Nocedal & Wright 2006, Alg. 3.1) with
 *   quadratic interpolation (§3.5), the fallback when the above fails and the
 *   line search of the truncated Newton and dense Newton methods.
 *
 * Both treat a trial where f or g is not finite as "too far": the step is cut
 * back toward the best point so far, never used.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "opt_internal.h"

/* The trial point x = x0 + stp d. */
static void ls_point(const ls_state *s, double stp, double *x)
{
    opt_copy(s->n, s->x0, x);
    opt_axpy(s->n, stp, s->d, x);
}

/* Leaves x, f, g at the best point met (the start when nothing was better). */
static void ls_restore_best(const ls_state *s, double stpbest, double fbest,
                            double *x, double *f, double *g, double *stp)
{
    if (stpbest == 0.0) {
        opt_copy(s->n, s->x0, x);
        opt_copy(s->n, s->g0, g);
        *f = s->f0;
    } else {
        ls_point(s, stpbest, x);
        opt_copy(s->n, s->gbest, g);
        *f = fbest;
    }
    *stp = stpbest;
}

static double max3(double a, double b, double c)
{
    double m = a > b ? a : b;
    return m > c ? m : c;
}

/*
 * One step of the interval update, Moré & Thuente (1994) §4 (dcstep).
 * (stx, fx, dx): the best step so far; (sty, fy, dy): the other end of the
 * interval; (stp, fp, dp): the trial just evaluated.  Chooses the next trial
 * in [stpmin, stpmax] by the four cases of the paper and updates the
 * interval so that it keeps containing a Wolfe point once bracketed.
 */
static void ls_dcstep(double *stx, double *fx, double *dx,
                      double *sty, double *fy, double *dy,
                      double *stp, double fp, double dp,
                      int *brackt, double stpmin, double stpmax)
{
    double sgnd = dp * (*dx / fabs(*dx));
    double stpf, stpc, stpq, theta, s, gamma, p, q, r;

    if (fp > *fx) {
        /* Case 1: a higher f.  The minimum is bracketed; take the cubic step
         * when it is closer to stx, else the average of cubic and quadratic. */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = max3(fabs(theta), fabs(*dx), fabs(dp));
        gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp < *stx)
            gamma = -gamma;
        p = (gamma - *dx) + theta;
        q = ((gamma - *dx) + gamma) + dp;
        r = p / q;
        stpc = *stx + r * (*stp - *stx);
        stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2.0) * (*stp - *stx);
        if (fabs(stpc - *stx) < fabs(stpq - *stx))
            stpf = stpc;
        else
            stpf = stpc + (stpq - stpc) / 2.0;
        *brackt = 1;
    } else if (sgnd < 0.0) {
        /* Case 2: lower f, derivatives of opposite sign: bracketed; the step
         * farther from stp among cubic and secant. */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = max3(fabs(theta), fabs(*dx), fabs(dp));
        gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp > *stx)
            gamma = -gamma;
        p = (gamma - dp) + theta;
        q = ((gamma - dp) + gamma) + *dx;
        r = p / q;
        stpc = *stp + r * (*stx - *stp);
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if (fabs(stpc - *stp) > fabs(stpq - *stp))
            stpf = stpc;
        else
            stpf = stpq;
        *brackt = 1;
    } else if (fabs(dp) < fabs(*dx)) {
        /* Case 3: lower f, same sign, |derivative| decreases.  The cubic is
         * used only when it tends to infinity in the step's direction or its
         * minimum lies beyond stp; otherwise the secant step. */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = max3(fabs(theta), fabs(*dx), fabs(dp));
        double disc = (theta / s) * (theta / s) - (*dx / s) * (dp / s);
        gamma = s * sqrt(disc > 0.0 ? disc : 0.0);
        if (*stp > *stx)
            gamma = -gamma;
        p = (gamma - dp) + theta;
        q = (gamma + (*dx - dp)) + gamma;
        r = p / q;
        if (r < 0.0 && gamma != 0.0)
            stpc = *stp + r * (*stx - *stp);
        else if (*stp > *stx)
            stpc = stpmax;
        else
            stpc = stpmin;
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if (*brackt) {
            /* Closer of cubic and secant, but no farther than 0.66 of the
             * way to sty, so the interval shrinks geometrically. */
            stpf = fabs(stpc - *stp) < fabs(stpq - *stp) ? stpc : stpq;
            if (*stp > *stx)
                stpf = fmin(*stp + 0.66 * (*sty - *stp), stpf);
            else
                stpf = fmax(*stp + 0.66 * (*sty - *stp), stpf);
        } else {
            stpf = fabs(stpc - *stp) > fabs(stpq - *stp) ? stpc : stpq;
            stpf = fmin(stpmax, stpf);
            stpf = fmax(stpmin, stpf);
        }
    } else {
        /* Case 4: lower f, same sign, |derivative| does not decrease: the
         * cubic through stp and sty when bracketed, else the bound. */
        if (*brackt) {
            theta = 3.0 * (fp - *fy) / (*sty - *stp) + *dy + dp;
            s = max3(fabs(theta), fabs(*dy), fabs(dp));
            gamma = s * sqrt((theta / s) * (theta / s) - (*dy / s) * (dp / s));
            if (*stp > *sty)
                gamma = -gamma;
            p = (gamma - dp) + theta;
            q = ((gamma - dp) + gamma) + *dy;
            r = p / q;
            stpc = *stp + r * (*sty - *stp);
            stpf = stpc;
        } else if (*stp > *stx) {
            stpf = stpmax;
        } else {
            stpf = stpmin;
        }
    }

    /* The new interval keeps stx as the lowest f and a Wolfe point inside. */
    if (fp > *fx) {
        *sty = *stp;
        *fy = fp;
        *dy = dp;
    } else {
        if (sgnd < 0.0) {
            *sty = *stx;
            *fy = *fx;
            *dy = *dx;
        }
        *stx = *stp;
        *fx = fp;
        *dx = dp;
    }
    *stp = stpf;
}

int ls_more_thuente(opt_eval *e, const ls_state *s, const ls_params *prm,
                    double *x, double *f, double *g, double *stp)
{
    /* Extrapolation factors of dcsrch: the next unbracketed trial lies in
     * [stp + 1.1 (stp − stx), stp + 4 (stp − stx)]. */
    const double xtrapl = 1.1, xtrapu = 4.0;
    const double finit = s->f0, ginit = s->dg0;
    const double gtest = prm->c1 * ginit;
    double width = prm->stpmax - prm->stpmin, width1 = 2.0 * width;
    double stx = 0.0, fx = finit, gx = ginit;
    double sty = 0.0, fy = finit, gy = ginit;
    double stmin = 0.0, stmax = *stp + xtrapu * *stp;
    double fbest = finit, stpbest = 0.0;
    double bad = INFINITY;   /* smallest step seen with a non-finite f or g */
    int brackt = 0, stage = 1, out = LS_FAIL;

    if (!(*stp > 0.0) || !(ginit < 0.0))
        return LS_FAIL;
    *stp = fmin(fmax(*stp, prm->stpmin), prm->stpmax);

    for (size_t trial = 0; trial < prm->max_trials; trial++) {
        if (opt_budget_spent(e)) {
            out = LS_MAXEVAL;
            break;
        }
        ls_point(s, *stp, x);
        int c = opt_fg(e, x, f, g);
        if (c == OPT_ERR) {
            out = LS_ERR;
            break;
        }
        if (c == OPT_BAD) {
            /* Outside the domain: halve the distance to the best step and
             * never again try beyond this one. */
            bad = *stp;
            *stp = stx + 0.5 * (*stp - stx);
            if (*stp <= prm->stpmin || *stp == stx)
                break;
            continue;
        }
        double dg = opt_dot(s->n, g, s->d);
        if (*f < fbest) {
            fbest = *f;
            stpbest = *stp;
            opt_copy(s->n, g, s->gbest);
        }

        double ftest = finit + *stp * gtest;
        /* Strong Wolfe: sufficient decrease and |φ'(stp)| ≤ c2 |φ'(0)|.
         * When the decrease asked for is below the rounding level of f,
         * f cannot tell the steps apart: then f within rounding of f(x0)
         * and the curvature condition suffice (the "approximate Wolfe"
         * conditions of Hager & Zhang 2005, with their ε at a few ulps),
         * so the last steps to a tight gtol are not refused for an ulp. */
        double noise = 4.0 * DBL_EPSILON * fabs(finit);
        int flat = -(*stp * gtest) <= noise;
        if (fabs(dg) <= prm->c2 * (-ginit) &&
            (*f <= ftest || (flat && *f <= finit + noise)))
            return LS_OK;

        /* Stage 1 uses the modified function ψ(α) = φ(α) − φ(0) − c1 α φ'(0)
         * until a step with ψ ≤ 0 and φ' ≥ 0 is found (Moré–Thuente §3). */
        if (stage == 1 && *f <= ftest && dg >= fmin(prm->c1, prm->c2) * ginit)
            stage = 2;

        /* No further progress possible: rounding, a bracket narrower than
         * xtol, or a step at a bound that still fails the tests. */
        if (brackt && (*stp <= stmin || *stp >= stmax))
            break;
        if (brackt && stmax - stmin <= prm->xtol * stmax)
            break;
        if (*stp == prm->stpmax && *f <= ftest && dg <= gtest)
            break;
        if (*stp == prm->stpmin && (*f > ftest || dg >= gtest))
            break;

        if (stage == 1 && *f <= fx && *f > ftest) {
            double fm = *f - *stp * gtest, fxm = fx - stx * gtest, fym = fy - sty * gtest;
            double gm = dg - gtest, gxm = gx - gtest, gym = gy - gtest;
            ls_dcstep(&stx, &fxm, &gxm, &sty, &fym, &gym, stp, fm, gm,
                      &brackt, stmin, stmax);
            fx = fxm + stx * gtest;
            fy = fym + sty * gtest;
            gx = gxm + gtest;
            gy = gym + gtest;
        } else {
            ls_dcstep(&stx, &fx, &gx, &sty, &fy, &gy, stp, *f, dg,
                      &brackt, stmin, stmax);
        }

        /* Bisect when the interval did not shrink by 2/3 in two trials. */
        if (brackt) {
            if (fabs(sty - stx) >= 0.66 * width1)
                *stp = stx + 0.5 * (sty - stx);
            width1 = width;
            width = fabs(sty - stx);
        }
        if (brackt) {
            stmin = fmin(stx, sty);
            stmax = fmax(stx, sty);
        } else {
            stmin = *stp + xtrapl * (*stp - stx);
            stmax = *stp + xtrapu * (*stp - stx);
        }
        *stp = fmin(fmax(*stp, prm->stpmin), prm->stpmax);
        if ((brackt && (*stp <= stmin || *stp >= stmax)) ||
            (brackt && stmax - stmin <= prm->xtol * stmax))
            *stp = stx;
        if (*stp >= bad)
            *stp = stx + 0.5 * (bad - stx);
    }
    ls_restore_best(s, stpbest, fbest, x, f, g, stp);
    return out;
}

int ls_backtrack(opt_eval *e, const ls_state *s, const ls_params *prm,
                 double *x, double *f, double *g, double *stp)
{
    double fbest = s->f0, stpbest = 0.0;
    int out = LS_FAIL;

    if (!(*stp > 0.0) || !(s->dg0 < 0.0))
        return LS_FAIL;
    for (size_t trial = 0; trial < prm->max_trials; trial++) {
        if (*stp < prm->stpmin)
            break;
        if (opt_budget_spent(e)) {
            out = LS_MAXEVAL;
            break;
        }
        ls_point(s, *stp, x);
        int c = opt_fg(e, x, f, g);
        if (c == OPT_ERR) {
            out = LS_ERR;
            break;
        }
        if (c == OPT_BAD) {
            *stp *= 0.5;
            continue;
        }
        if (*f < fbest) {
            fbest = *f;
            stpbest = *stp;
            opt_copy(s->n, g, s->gbest);
        }
        /* Strict decrease as well: once c1·stp·φ'(0) is below the rounding
         * level of f, the Armijo test alone would accept a null step.  In
         * that flat regime the slope decides instead, as in the
         * Moré–Thuente search above. */
        if (*f <= s->f0 + prm->c1 * *stp * s->dg0 && *f < s->f0)
            return LS_OK;
        double noise = 4.0 * DBL_EPSILON * fabs(s->f0);
        if (-(prm->c1 * *stp * s->dg0) <= noise && *f <= s->f0 + noise &&
            fabs(opt_dot(s->n, g, s->d)) <= prm->c2 * -s->dg0)
            return LS_OK;
        /* Minimizer of the quadratic through φ(0), φ'(0), φ(stp), kept in
         * [0.1, 0.5]·stp so the search neither stalls nor crawls. */
        double den = 2.0 * (*f - s->f0 - s->dg0 * *stp);
        double next = den > 0.0 ? -s->dg0 * *stp * *stp / den : 0.5 * *stp;
        *stp = fmin(fmax(next, 0.1 * *stp), 0.5 * *stp);
    }
    ls_restore_best(s, stpbest, fbest, x, f, g, stp);
    return out;
}
