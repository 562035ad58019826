#!/usr/bin/python3
"""SciPy's Newton-CG, trust-ncg and L-BFGS-B with exact gradients and
Hessian-vector products (NumPy, vectorized) on the problems of bench_opt.c and
bench_conv.c, for the tables of benchmarks/RESULTS.md (issue 5):

  ext. Rosenbrock  f = sum_{i even} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2,
                   x0 = (-1.2, 1, ...), n = 10^3 and 10^5 (as tests/mgh.h)
  quad1000         f = 1/2 sum_i l_i (x_i - 1)^2, l_i = 1000^(i/(n-1)),
                   x0 = 0, n = 1000 (as bench_conv.c; condition number 1000)

Stopping: gtol 1e-8 (trust-ncg: ||g||_2; L-BFGS-B: projected ||g||_inf, ftol
0), Newton-CG: xtol 1e-10 (it has no gradient test).  Counts come from
wrappers around f/g and hessp.  Prints one tab-separated line per run:
  SCIPY problem n method iters nfev ngev nhvp f gnorm_inf median_s min_s success message

  /usr/bin/python3 benchmarks/bench_scipy.py [--quick] [--reps R]
"""
import sys
import time

import numpy as np
import scipy
from scipy.optimize import minimize


def rosen_fg(x):
    a, b = x[0::2], x[1::2]
    t = b - a * a
    u = 1.0 - a
    f = float(100.0 * t @ t + u @ u)
    g = np.empty_like(x)
    g[1::2] = 200.0 * t
    g[0::2] = -400.0 * a * t - 2.0 * u
    return f, g


def rosen_hessp(x, v):
    a, b = x[0::2], x[1::2]
    va, vb = v[0::2], v[1::2]
    h11 = 1200.0 * a * a - 400.0 * b + 2.0
    h12 = -400.0 * a
    hv = np.empty_like(x)
    hv[0::2] = h11 * va + h12 * vb
    hv[1::2] = h12 * va + 200.0 * vb
    return hv


def make_quad(n, kappa):
    lam = kappa ** (np.arange(n) / (n - 1.0))

    def fg(x):
        d = x - 1.0
        return float(0.5 * (lam * d) @ d), lam * d

    def hessp(x, v):
        return lam * v

    return fg, hessp


def run(fg, hessp, x0, method):
    cnt = {"fg": 0, "hvp": 0}

    def f(x):
        cnt["fg"] += 1
        return fg(x)

    def hp(x, v):
        cnt["hvp"] += 1
        return hessp(x, v)

    if method == "L-BFGS-B":
        opts = {"gtol": 1e-8, "ftol": 0.0, "maxiter": 100000, "maxfun": 1000000}
        kw = {}
    elif method == "trust-ncg":
        opts = {"gtol": 1e-8, "maxiter": 100000}
        kw = {"hessp": hp}
    else:  # Newton-CG
        opts = {"xtol": 1e-10, "maxiter": 100000}
        kw = {"hessp": hp}
    t0 = time.perf_counter()
    r = minimize(f, x0.copy(), jac=True, method=method, options=opts, **kw)
    el = time.perf_counter() - t0
    _, g = fg(r.x)
    return el, r, cnt, float(np.max(np.abs(g)))


def main():
    quick = "--quick" in sys.argv
    reps = 1 if quick else 5
    if "--reps" in sys.argv:
        reps = max(1, int(sys.argv[sys.argv.index("--reps") + 1]))
    print(f"command: /usr/bin/python3 {' '.join(sys.argv)}")
    print(f"versions: Python {sys.version.split()[0]}, NumPy {np.__version__}, SciPy {scipy.__version__}; "
          f"median of {reps} runs")
    probs = []
    for n in ([100] if quick else [1000, 100000]):
        x0 = np.array([-1.2 if i % 2 == 0 else 1.0 for i in range(n)])
        probs.append(("rosen", n, rosen_fg, rosen_hessp, x0))
    nq = 100 if quick else 1000
    qfg, qhp = make_quad(nq, 1000.0)
    probs.append(("quad1000", nq, qfg, qhp, np.zeros(nq)))
    for name, n, fg, hp, x0 in probs:
        for method in ("Newton-CG", "trust-ncg", "L-BFGS-B"):
            times = []
            for _ in range(reps):
                el, r, cnt, gi = run(fg, hp, x0, method)
                times.append(el)
            times.sort()
            msg = str(r.message).replace("\t", " ").replace("\n", " ")
            print(f"SCIPY\t{name}\t{n}\t{method}\t{r.nit}\t{cnt['fg']}\t{cnt['fg']}\t{cnt['hvp']}\t"
                  f"{r.fun:.6e}\t{gi:.3e}\t{times[len(times) // 2]:.6e}\t{times[0]:.6e}\t{int(bool(r.success))}\t{msg}",
                  flush=True)


if __name__ == "__main__":
    main()
