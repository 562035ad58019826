#!/usr/bin/env python3
"""benchmarks/report.py — the report of benchmarks/run (issue 5).

  report.py --run DIR --template RESULTS.md --results OUT.md --plots PLOTDIR [--quick]

Reads what benchmarks/run left in DIR (run_ad.sh logs and report, bench_opt,
bench_conv traces, bench_scipy, logreg traces and results, meta.txt), fits
the scaling laws, writes gnuplot data and scripts under DIR/plots-src, draws
the SVGs into PLOTDIR with gnuplot, checks them (non-empty, well-formed XML),
and writes OUT.md: the template with every "<!-- BEGIN run: NAME -->" …
"<!-- END run: NAME -->" block replaced by this run's figures (a block the
template lacks is appended at the end).  Text outside the blocks is kept as
written by hand.  Exit status 1 when a piece is missing or a plot failed.
"""
import glob
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

args = sys.argv[1:]


def arg(name, default=None):
    if name in args:
        return args[args.index(name) + 1]
    return default


RUN = arg("--run")
TEMPLATE = arg("--template")
OUT = arg("--results")
PLOTS = arg("--plots")
QUICK = "--quick" in args
if not (RUN and TEMPLATE and OUT and PLOTS):
    print(__doc__, file=sys.stderr)
    sys.exit(2)
problems = []  # what went wrong: printed, and exit status 1


def problem(msg):
    problems.append(msg)
    print(f"report.py: {msg}", file=sys.stderr)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


meta = {}
for line in (read(os.path.join(RUN, "meta.txt")) or "").splitlines():
    if "=" in line:
        k, v = line.split("=", 1)
        meta[k.strip()] = v.strip()

# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------


def ft(s):
    if s is None or s != s:
        return "–"
    if s < 1e-6:
        return f"{s*1e9:.0f} ns"
    if s < 1e-3:
        return f"{s*1e6:.3g} µs"
    if s < 1:
        return f"{s*1e3:.3g} ms"
    return f"{s:.3g} s"


def fx(r):
    if r is None or r != r:
        return "–"
    return f"{r:.3g}×" if r < 1000 else f"{r:,.0f}×".replace(",", " ")


def fspread(v):
    """(med, min, max) -> 'med (min–max)'."""
    if not v:
        return "–"
    return f"{ft(v[0])} ({ft(v[1])}–{ft(v[2])})"


# ---------------------------------------------------------------------------
# bench_ad logs (run_ad.sh)
# ---------------------------------------------------------------------------
AD = os.path.join(RUN, "ad-logs")
res, info, rss = {}, {}, {}
for path in sorted(glob.glob(os.path.join(AD, "*.txt"))):
    base = os.path.basename(path)
    m = re.match(r"rss_(\w+?)_(\w+?)_(\d+)\.txt$", base)
    for line in open(path, errors="replace"):
        p = line.rstrip("\n").split("\t")
        if p[0] == "RESULT" and len(p) == 10:
            key = (p[1], int(p[2]))
            res.setdefault(key, {}).setdefault(p[3], {})[p[4]] = tuple(float(v) for v in p[5:8])
        elif p[0] == "INFO" and len(p) == 6:
            if p[1] == "-" and p[4] == "peak_rss_kib" and m:
                rss.setdefault((m.group(2), int(m.group(3))), {})[m.group(1)] = int(p[5])
            elif p[1] != "-":
                info.setdefault((p[1], int(p[2])), {}).setdefault(p[3], {})[p[4]] = p[5]
if not res:
    problem(f"no bench_ad results in {AD}")

fref = {}
for k, r in res.items():
    p0 = r.get("plain", {})
    c = [v[0] for v in (p0.get("f"), p0.get("f_end")) if v and v[0] == v[0] and v[0] > 0]
    fref[k] = min(c) if c else float("nan")


def t_of(k, tool, metric):
    v = res.get(k, {}).get(tool, {}).get(metric)
    return v[0] if v and v[0] == v[0] else None


def ratio(k, tool, metric):
    t = t_of(k, tool, metric)
    return t / fref[k] if t is not None and fref.get(k, 0) > 0 else None


def speedup(k, metric, metric_a=None):
    h, a = t_of(k, "hyperad", metric), t_of(k, "adolc", metric_a or metric)
    return a / h if h and a else None


def sizes(fn):
    return sorted(n for f, n in res if f == fn)


def nodes(k, tool):
    v = info.get(k, {}).get(tool, {}).get("nodes")
    return int(v) if v else None


def label(k):
    fn, n = k
    if fn == "logreg":
        m = info.get(k, {}).get("all", {}).get("m", "?")
        return f"logreg m={m} d={n}"
    return f"{fn} n={n}"


def case_size(k):
    """The size the issue-5 targets speak of: n, or tape ops for logreg."""
    fn, n = k
    if fn == "logreg":
        return nodes(k, "adolc") or int(info.get(k, {}).get("all", {}).get("m", 0)) * (2 * n + 2)
    return n


blocks = {}

# ---- issue 5 targets --------------------------------------------------------
rows = []
verdicts = []
order = {"rosen": 0, "logreg": 1, "dense": 2, "chain": 3}
keys = sorted(res, key=lambda k: (order.get(k[0], 9), k[1]))
for k in keys:
    if "hyperad" not in res[k] or "adolc" not in res[k]:
        continue
    big = case_size(k) >= 1000
    for metric, name, bar in (("gradient", "gradient (new x)", 2.0), ("hvp_newx", "HVP (new x)", 2.0),
                              ("hvp_samex", "HVP (same x, as in CG)", None), ("hessian", "dense Hessian", 3.0)):
        s = speedup(k, metric)
        if s is None:
            continue
        h, a = res[k]["hyperad"][metric], res[k]["adolc"][metric]
        if bar is None:
            verdict = "(not a target)"
        elif not big:
            verdict = f"(size < 10³: not judged) {'≥' if s >= bar else '<'} {bar:g}×"
        else:
            ok = s >= bar
            verdict = "**met**" if ok else "**MISSED**"
            verdicts.append(ok)
        rows.append(f"| {label(k)} | {name} | ≥ {bar:g}× |" if bar else f"| {label(k)} | {name} | – |")
        rows[-1] += f" {fspread(h)} | {fspread(a)} | **{s:.2f}×** | {verdict} |"
b = []
b.append("Issue 5: hyperad ≥ 2× faster than ADOL-C on gradient and on HVP, ≥ 3× on the dense Hessian, "
         "at every size above 10³ — judged here from n = 10³ up, so the dense Hessian at n = 1000 counts (the logistic "
         "loss counts by its 2·10⁶ tape ops; the deep chain by n). Speed-up = ADOL-C's median "
         "time / hyperad's, both timed back to back in one process (bench_ad; median (min–max) of the batches).")
if QUICK:
    b.append("")
    b.append("**QUICK run: tiny sizes and one short batch — the verdicts below are not citable.**")
b.append("")
b.append("| case | driver | bar | hyperad | ADOL-C | speed-up | verdict |")
b.append("|---|---|---|---|---|---|---|")
b += rows
b.append("")
if verdicts:
    b.append(f"**{sum(verdicts)} of {len(verdicts)} judged rows met**" +
             ("." if all(verdicts) else " — see the MISSED rows."))
blocks["targets5"] = "\n".join(b)

# ---- issue 10 targets, computed ----------------------------------------------
b = []
if QUICK:
    b.append("**QUICK run: the sizes differ from the targets' (largest Rosenbrock, small logistic and dense "
             "cases); the verdicts only prove the computation runs.**")
    b.append("")
rmax = ("rosen", max(sizes("rosen"))) if sizes("rosen") else None
lg = ("logreg", max(sizes("logreg"))) if sizes("logreg") else None
dmax = ("dense", max(sizes("dense"))) if sizes("dense") else None
b.append("| target | bar | measured | verdict |")
b.append("|---|---|---|---|")


def t10(name, value, bar, unit="×"):
    if value is None:
        b.append(f"| {name} | ≤ {bar:g}{unit} | – | not measured |")
        return
    b.append(f"| {name} | ≤ {bar:g}{unit} | {value:.3g}{unit} | {'**met**' if value <= bar else '**MISSED**'} |")


if rmax:
    t10(f"Rosenbrock n={rmax[1]} gradient / f", ratio(rmax, "hyperad", "gradient"), 30)
    t10(f"Rosenbrock n={rmax[1]} HVP new x / f", ratio(rmax, "hyperad", "hvp_newx"), 50)
    t10(f"Rosenbrock n={rmax[1]} HVP same x / f", ratio(rmax, "hyperad", "hvp_samex"), 10)
if lg:
    t10(f"{label(lg)} gradient / f", ratio(lg, "hyperad", "gradient"), 3)
    t10(f"{label(lg)} HVP (new x) / f", ratio(lg, "hyperad", "hvp_newx"), 4)
if dmax:
    hh, hv = t_of(dmax, "hyperad", "hessian"), t_of(dmax, "hyperad", "hvp_newx")
    t10(f"dense n={dmax[1]} Hessian / HVP (new x)", hh / hv if hh and hv else None, 250, " HVPs")
for k in keys:
    r = rss.get(k, {})
    if "hyperad" in r and "adolc" in r:
        t10(f"peak RSS {label(k)}: hyperad {r['hyperad']/1024:.0f} MiB / ADOL-C {r['adolc']/1024:.0f} MiB",
            r["hyperad"] / r["adolc"], 1.5)
t10v = [l for l in b if l.endswith("**met** |") or l.endswith("**MISSED** |")]
b.append("")
b.append(f"**{sum(l.endswith('**met** |') for l in t10v)} of {len(t10v)} rows met.** Ratios to f use the lower of "
         "the two medians of the plain f in the same process (run_ad.sh's rule); the dense Hessian is counted in "
         "hyperad's own HVPs at a new x.")

# "Every row faster than ADOL-C, CppAD and CoDiPack's figures in ANCHORS.md":
# their ratios to f as ANCHORS.md quotes them (low–high), against ours.
ANCHORS = [
    # (case key, metric, row name, ADOL-C, CppAD, CoDiPack)
    (rmax, "record", "record", (150, 160), (100, 110), (26, 38)),
    (rmax, "gradient", "gradient", (49, 58), (75, 84), (32, 40)),
    (rmax, "hvp_newx", "HVP (new x)", (133, 149), (176, 182), (52, 70)),
    (lg, "gradient", "gradient", (13, 16), (19, 21), (15.7, 15.7)),
    (lg, "hvp_newx", "HVP (new x)", (26, 32), (36, 39), (19, 19)),
    (dmax, "gradient", "gradient", (4.8, 4.8), (4.2, 5.4), (4.4, 4.4)),
    (dmax, "hvp_newx", "HVP (new x)", (9.0, 9.0), (8, 9), (5.6, 5.6)),
    (dmax, "hessian", "dense Hessian", (6100, 7100), (5300, 6000), (4500, 4500)),
]
b.append("")
b.append("Against the peer tools' figures in ANCHORS.md (ratios to f measured on this machine class; "
         "the bar is the lowest figure quoted for any of them):")
b.append("")
b.append("| case | driver | hyperad | ADOL-C | CppAD | CoDiPack | verdict |")
b.append("|---|---|---|---|---|---|---|")
nmet = ntot = 0
for k, m, name, ad, cp, co in ANCHORS:
    if not k:
        continue
    v = ratio(k, "hyperad", m)
    rng = lambda p: f"{p[0]:g}×" if p[0] == p[1] else f"{p[0]:g}–{p[1]:g}×"
    best = min(ad[0], cp[0], co[0])
    if v is None:
        verdict = "not measured"
    elif v < best:
        verdict = "**faster than all**"
        nmet += 1
    elif v < min(ad[0], cp[0]):
        verdict = f"**MISSED by {v / best:.2f}×** (faster than ADOL-C and CppAD; inside CoDiPack's {rng(co)})" \
            if v <= co[1] else f"**MISSED by {v / best:.2f}×**"
    else:
        verdict = f"**MISSED by {v / best:.2f}×**"
    ntot += v is not None
    b.append(f"| {label(k)} | {name} | {v:.3g}× | {rng(ad)} | {rng(cp)} | {rng(co)} | {verdict} |"
             if v is not None else f"| {label(k)} | {name} | – | {rng(ad)} | {rng(cp)} | {rng(co)} | {verdict} |")
b.append("")
b.append(f"**{nmet} of {ntot} rows faster than every peer figure.**")
blocks["targets10"] = "\n".join(b)

# ---- finite-difference Hessian ------------------------------------------------
b = ["Central differences of `ad_gradient` (2n gradients, h_j = ∛ε·max(1,|x_j|)), the seeds' numerical "
     "Hessian, against `ad_hessian` and ADOL-C's `hessian()` on the dense function; error against the exact "
     "(hand-coded) Hessian: max|H̃ − H| / max|H| and the largest entrywise relative error. Times: median (min–max).",
     "",
     "| n | ad_hessian | its error | central differences of ad_gradient | its error (norm / entrywise) | "
     "FD / ad_hessian | ADOL-C hessian() |",
     "|---|---|---|---|---|---|---|"]
for n in sizes("dense"):
    k = ("dense", n)
    hi = info.get(k, {}).get("hyperad", {})
    h, fd = res[k].get("hyperad", {}).get("hessian"), res[k].get("hyperad", {}).get("hessian_fd")
    a = res[k].get("adolc", {}).get("hessian")
    rr = f"{fd[0]/h[0]:.0f}×" if h and fd else "–"
    b.append(f"| {n} | {fspread(h)} | {float(hi.get('check_hessian', 'nan')):.1e} | {fspread(fd)} | "
             f"{float(hi.get('fd_hessian_err', 'nan')):.1e} / {float(hi.get('fd_hessian_err_entrywise', 'nan')):.1e}"
             f" | {rr} | {fspread(a)} |")
    if not fd:
        problem(f"no finite-difference Hessian timing for dense n={n}")
blocks["fd"] = "\n".join(b)

# ---- deep chain -----------------------------------------------------------------
b = ["x_{k+1} = sin(x_k)·exp(−x_k²) + tanh(x_k), 100 steps per element, f = Σ_i x_100(i) (`bench_ad --fn chain`): "
     "7 tape ops per step in hyperad (nodes: after the tape optimizer; ADOL-C: its NUM_OPERATIONS). Ratio to the "
     "plain C function (time in parentheses, medians). Most of the time goes to sin, exp and tanh themselves, "
     "which every tool must evaluate: the plain f already costs ≈ 5 ns per op.",
     "",
     "| case | f | tool | nodes | gradient | HVP new x | HVP same x | HVP, 10 per x |",
     "|---|---|---|---|---|---|---|---|"]
for n in sizes("chain"):
    k = ("chain", n)
    for tool, name in (("hyperad", "hyperad"), ("adolc", "ADOL-C")):
        if tool not in res[k]:
            continue
        cells = [f"{fx(ratio(k, tool, m))} ({ft(t_of(k, tool, m))})" for m in
                 ("gradient", "hvp_newx", "hvp_samex", "hvp_cg10")]
        b.append(f"| chain n={n} | {ft(fref[k])} | {name} | {nodes(k, tool) or '–'} | " + " | ".join(cells) + " |")
    cells = [f"**{speedup(k, m):.2f}×**" if speedup(k, m) else "–" for m in
             ("gradient", "hvp_newx", "hvp_samex", "hvp_cg10")]
    b.append("| | | hyperad speed-up | | " + " | ".join(cells) + " |")
if not sizes("chain"):
    problem("no deep-chain case in the bench_ad logs")
blocks["chain"] = "\n".join(b)

# ---- scaling laws ------------------------------------------------------------------


def fit(xs, ys):
    """Least squares of log y = a + b log x: (b, a, r^2)."""
    if len(xs) < 2:
        return None
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    sxy = sum((x - mx) * (y - my) for x, y in zip(lx, ly))
    syy = sum((y - my) ** 2 for y in ly)
    if sxx == 0:
        return None
    bb = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 1.0
    return bb, my - bb * mx, r2


fits = {}
b = ["Stated: one HVP costs a constant number of passes over the tape, so **HVP time ∝ tape length**; a full "
     "Hessian is n HVPs (in blocks of 8 directions), so **Hessian time ∝ n × tape length**. Checked by the "
     "least-squares slope of log(time) against log(size), medians of this run (a slope of 1 is linear; "
     "cache effects bend it upward once the tape leaves the caches).",
     "",
     "| law | tool | points (size → time) | fitted exponent | r² | verdict (0.8–1.25) |",
     "|---|---|---|---|---|---|"]
for tool in ("hyperad", "adolc"):
    for metric, mname in (("hvp_newx", "HVP (new x) vs nodes, Rosenbrock"), ("gradient", "gradient vs nodes, Rosenbrock")):
        pts = [(nodes(("rosen", n), tool), t_of(("rosen", n), tool, metric)) for n in sizes("rosen")]
        pts = [(x, y) for x, y in pts if x and y]
        f_ = fit([p[0] for p in pts], [p[1] for p in pts])
        if f_:
            fits[(tool, metric)] = f_
            b.append(f"| {mname} | {tool} | " + ", ".join(f"{x:.3g} → {ft(y)}" for x, y in pts) +
                     f" | **{f_[0]:.3f}** | {f_[2]:.4f} | {'linear' if 0.8 <= f_[0] <= 1.25 else 'NOT linear'} |")
    pts = [(n * (nodes(("dense", n), tool) or 0), t_of(("dense", n), tool, "hessian")) for n in sizes("dense")]
    pts = [(x, y) for x, y in pts if x and y]
    f_ = fit([p[0] for p in pts], [p[1] for p in pts])
    if f_:
        fits[(tool, "hessian")] = f_
        b.append(f"| Hessian vs n × nodes, dense function | {tool} | " +
                 ", ".join(f"{x:.3g} → {ft(y)}" for x, y in pts) +
                 f" | **{f_[0]:.3f}** | {f_[2]:.4f} | {'linear' if 0.8 <= f_[0] <= 1.25 else 'NOT linear'} |")
if not fits:
    problem("no scaling fit possible (too few sizes)")
print("fitted exponents: " + ", ".join(f"{k[0]} {k[1]} {v[0]:.3f}" for k, v in fits.items()))
blocks["scaling"] = "\n".join(b)

# ---- the run_ad.sh report (its own markers) --------------------------------------------
adrep = read(os.path.join(RUN, "ad_report.md"))
if adrep is None:
    problem("run_ad.sh wrote no report")
    adrep = "(run_ad.sh wrote no report)"
adrep = "\n".join(("##" + l) if l.startswith("#") else l for l in adrep.rstrip("\n").splitlines())

# ---- bench_opt -----------------------------------------------------------------
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/"
opt = read(os.path.join(RUN, "opt.txt"))
if opt is not None:
    opt = opt.replace(ROOT, "")
optrows = {}
if opt is None:
    problem("no bench_opt output")
    blocks["opt"] = "(bench_opt did not run)"
else:
    blocks["opt"] = "```\n" + "\n".join(l for l in opt.splitlines() if l.startswith(("command", "settings"))) + \
        "\n```\n\n" + "\n".join(l for l in opt.splitlines() if not l.startswith(("command", "settings")))
    for l in opt.splitlines():
        c = [x.strip() for x in l.strip().strip("|").split("|")]
        if len(c) == 13 and c[0].startswith("ext. Rosenbrock (tape)"):
            optrows[(int(c[1]), c[2])] = c

# ---- bench_conv + SciPy ----------------------------------------------------------------
conv = read(os.path.join(RUN, "conv.txt")) or ""
csum = {}
for l in conv.splitlines():
    p = l.split("\t")
    if p[0] == "SUMMARY" and len(p) == 13:
        csum[(p[1], int(p[2]), p[3])] = p
    elif p[0] == "ERROR":
        problem("bench_conv: " + l)
if not csum:
    problem("no bench_conv summary")
sci = read(os.path.join(RUN, "scipy.txt")) or ""
srows = [l.split("\t") for l in sci.splitlines() if l.startswith("SCIPY\t")]
if not srows:
    problem("no SciPy results")
sver = next((l for l in sci.splitlines() if l.startswith("versions:")), "versions: ?")
b = [f"SciPy ({sver[len('versions: '):]}) with exact gradient and `hessp` in NumPy (vectorized, "
     "`benchmarks/bench_scipy.py`) beside hyperad's optimizers on a hyperad tape (extended Rosenbrock: "
     "bench_opt's rows; the quadratic: bench_conv's). Stopping: ‖g‖∞ ≤ 1e-8 for hyperad; SciPy trust-ncg "
     "‖g‖₂ ≤ 1e-8, L-BFGS-B projected ‖g‖∞ ≤ 1e-8 (ftol 0), Newton-CG xtol 1e-10 (it has no gradient test). "
     "HVPs of dense Newton count a Hessian as n HVPs. Times: median (min).",
     "",
     "| problem | n | tool | method | iters | f/g evals | HVPs | final f | ‖g‖∞ | time median (min) |",
     "|---|---|---|---|---|---|---|---|---|---|"]
probs = sorted({(r[1], int(r[2])) for r in srows} | {("rosen", n) for n, _ in optrows} |
               {(k[0], k[1]) for k in csum if k[0] == "quad1000"})
for pr, n in probs:
    pname = "ext. Rosenbrock" if pr == "rosen" else "quadratic κ=1000"
    for r in srows:
        if r[1] == pr and int(r[2]) == n:
            b.append(f"| {pname} | {n} | SciPy | {r[3]} | {r[4]} | {r[5]} | {r[7]} | {float(r[8]):.3e} | "
                     f"{float(r[9]):.2e} | {ft(float(r[10]))} ({ft(float(r[11]))}) |")
    if pr == "rosen":
        for (nn, solver), c in sorted(optrows.items()):
            if nn == n:
                b.append(f"| {pname} | {n} | {'liblbfgs' if solver == 'liblbfgs' else 'hyperad'} | {solver.replace('hyperad ', '')} | "
                         f"{c[4]} | {c[5]} | {c[7]} | {c[8]} | {c[9]} | {float(c[10]):.3g} ms ({float(c[11]):.3g} ms) |")
    else:
        for (p_, nn, solver), c in sorted(csum.items()):
            if p_ == pr and nn == n:
                b.append(f"| {pname} | {n} | hyperad | {solver} | {c[5]} | {c[6]} | {c[8]} | {float(c[9]):.3e} | "
                         f"{float(c[10]):.2e} | {ft(float(c[11]))} ({ft(float(c[12]))}) |")
blocks["scipy"] = "\n".join(b)

b = ["Every solver from the same start on a hyperad tape, stopping at ‖g‖∞ ≤ 1e-8 (`bench_conv`); gradient "
     "descent (Armijo backtracking, written in the benchmark) is capped. Quadratics: f = ½ Σ λ_i (x_i − 1)², "
     "λ_i = κ^{i/(n−1)}, x0 = 0. Times: median (min) of the runs.",
     "",
     "| problem | n | solver | stop | iters | f evals | g evals | HVPs | final f − f* | ‖g‖∞ | time median (min) |",
     "|---|---|---|---|---|---|---|---|---|---|---|"]
for (pr, n, s), c in csum.items():
    b.append(f"| {pr} | {n} | {s} | {c[4]} | {c[5]} | {c[6]} | {c[7]} | {c[8]} | {float(c[9]):.2e} | {float(c[10]):.2e} | "
             f"{ft(float(c[11]))} ({ft(float(c[12]))}) |")
b.append("")
b.append("Plots (f − f* and ‖g‖∞ against iterations and against time; an exact 0 is drawn at 1e-30): " +
         ", ".join(f"[{p}](plots/conv_{p}.svg)" for p in sorted({k[0] for k in csum}, key=lambda s: (len(s), s))))
blocks["conv"] = "\n".join(b)

# ---- logistic regression ---------------------------------------------------------------
lr = read(os.path.join(RUN, "results_logreg.md"))
b = []
if lr:
    b.append("`benchmarks/bench_logreg.sh` (hyperfine; whole commands):")
    b.append("")
    b += ["#" + l if l.startswith("#") else l for l in lr.rstrip("\n").splitlines()[1:]]
elif not QUICK:
    problem("no logistic-regression results (bench_logreg.sh)")
else:
    b.append("(bench_logreg.sh is not run by --quick: it generates 150 MB of data; the traces below exercise both tools.)")
traces = {}
for path in sorted(glob.glob(os.path.join(RUN, "logreg", "*.dat"))):
    m = re.match(r"(.+)_(hyperad|liblinear)\.dat$", os.path.basename(path))
    if not m:
        continue
    pts, total = [], None
    for l in open(path):
        if l.startswith("# total"):
            total = float(l.split()[2])
        elif l.strip():
            t, it, obj = l.split()
            pts.append((float(t), int(it), float(obj)))
    traces.setdefault(m.group(1), {})[m.group(2)] = (pts, total)
if not traces:
    problem("no logistic-regression traces")
b.append("")
b.append("Objective against wall time (one run per tool, `-s 0 -c 1 -e 0.0001`, time since the process started, "
         "so reading the file comes first; LIBLINEAR's objective after an iteration is its printed f − act, "
         "which has 4 significant digits, so its curve steps at about 1e-4; f* = the lower final objective of the two, "
         "from `hyperad-logreg objective` on both models — points at f* itself are left off the log-scale plot):")
b.append("")
b.append("| data | tool | iterations | first iteration done | last iteration done | whole command | final objective |")
b.append("|---|---|---|---|---|---|---|")
fstar = {}
for d, tt in sorted(traces.items()):
    fin = {}
    for tool in ("hyperad", "liblinear"):
        objf = read(os.path.join(RUN, "logreg", f"{d}_{tool}.obj")) or ""
        m = re.search(r"objective (\S+)", objf)
        if m:
            fin[tool] = float(m.group(1))
    fstar[d] = min(fin.values()) if fin else min(p[2] for v in tt.values() for p in v[0])
    for tool, (pts, total) in sorted(tt.items()):
        if pts:
            b.append(f"| {d} | {'hyperad-logreg' if tool == 'hyperad' else 'liblinear-train'} | {pts[-1][1]} | "
                     f"{ft(pts[0][0])} | {ft(pts[-1][0])} | {ft(total)} | {fin.get(tool, float('nan')):.10g} |")
b.append("")
b.append("Plot: " + ", ".join(f"[{d}](plots/logreg_{d}.svg)" for d in sorted(traces)))
blocks["logreg"] = "\n".join(b)

# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------
SRC = os.path.join(RUN, "plots-src")
os.makedirs(SRC, exist_ok=True)
os.makedirs(PLOTS, exist_ok=True)
svgs = []
TERM = "set terminal svg size 900,650 dynamic enhanced font 'Helvetica,12' background rgb 'white'"


def gp(name, script):
    out = os.path.join(PLOTS, name + ".svg")
    path = os.path.join(SRC, name + ".gp")
    with open(path, "w") as f:
        f.write(f"{TERM}\nset output '{out}'\n{script}\nunset output\n")
    r = subprocess.run(["gnuplot", path], capture_output=True, text=True)
    if r.returncode != 0:
        problem(f"gnuplot {path} failed: {r.stderr.strip()[:500]}")
        return
    svgs.append(out)


# convergence: per problem a 2x2 multiplot
TR = os.path.join(RUN, "traces")
colors = {"gd": "#888888", "lbfgs": "#1f77b4", "newton_cg": "#d62728", "newton_dense": "#2ca02c"}
names = {"gd": "gradient descent", "lbfgs": "L-BFGS", "newton_cg": "Newton-CG", "newton_dense": "dense Newton"}
for pr in sorted({k[0] for k in csum}):
    files = [(s, os.path.join(TR, f"trace_{pr}_{s}.dat")) for s in ("gd", "lbfgs", "newton_cg", "newton_dense")]
    files = [(s, f) for s, f in files if os.path.exists(f)]
    thinned = []
    for s_, f_ in files:  # at most ~1500 points per curve (log-spaced), or the SVGs grow to megabytes
        lines = [l for l in open(f_) if not l.startswith("#")]
        if len(lines) > 1500:
            keep = sorted({int(round(math.exp(math.log(len(lines)) * i / 1200))) - 1 for i in range(1201)} |
                          set(range(0, len(lines), max(1, len(lines) // 300))) | {len(lines) - 1})
            lines = [lines[i] for i in keep if 0 <= i < len(lines)]
        tf = os.path.join(SRC, os.path.basename(f_))
        with open(tf, "w") as o:
            o.writelines(lines)
        thinned.append((s_, tf))
    files = thinned
    if not files:
        problem(f"no traces for {pr}")
        continue
    title = "extended Rosenbrock" if pr == "rosen" else f"quadratic, κ = {pr[4:]}"
    n = next(k[1] for k in csum if k[0] == pr)
    panels = []
    for col, xl, ycol, yl in ((1, "iteration", 3, "f − f*"), (1, "iteration", 4, "‖g‖_∞"),
                              (2, "seconds", 3, "f − f*"), (2, "seconds", 4, "‖g‖_∞")):
        plots = ", ".join(f"'{f}' using {col}:(${ycol} > 1e-30 ? ${ycol} : 1e-30) with lines lw 2 lc rgb '{colors[s]}' "
                          f"title '{names[s]}'" for s, f in files)
        xs = "set logscale x\n" if col == 1 else "set logscale x\n"
        if col == 1:
            xs = "set logscale x\nset xrange [0.8:*]\n"
            plots = plots.replace(f"using {col}:", "using ($1 + 1):")
            xl = "iteration + 1"
        else:
            xs = "set logscale x\nset xrange [*:*]\nset format x '10^{%L}'\n"
            plots = plots.replace("using 2:", "using ($2 > 1e-6 ? $2 : 1e-6):")
        panels.append(f"{xs}set xlabel '{xl}'\nset ylabel '{yl}'\nset logscale y\nset format y '10^{{%L}}'\n"
                      f"set key top right font ',9'\nplot {plots}\nunset logscale\nset format x '%g'\n")
    gp(f"conv_{pr}", f"set multiplot layout 2,2 title '{title}, n = {n}: convergence (hyperad tape)'\n" +
       "".join(panels) + "unset multiplot")

# HVP time against n, log-log
data = os.path.join(SRC, "hvp_vs_n.dat")
with open(data, "w") as f:
    f.write("# n nodes_hyperad hyperad_hvp_newx hyperad_hvp_samex hyperad_gradient adolc_hvp adolc_gradient plain_f\n")
    for n in sizes("rosen"):
        k = ("rosen", n)
        vals = [nodes(k, "hyperad"), t_of(k, "hyperad", "hvp_newx"), t_of(k, "hyperad", "hvp_samex"),
                t_of(k, "hyperad", "gradient"), t_of(k, "adolc", "hvp_newx"), t_of(k, "adolc", "gradient"), fref[k]]
        f.write(f"{n} " + " ".join("NaN" if v is None else f"{v:.6e}" for v in vals) + "\n")
if sizes("rosen"):
    gp("hvp_vs_n", f"""set title 'Chained Rosenbrock: time per call against n (log-log, median of the batches)'
set logscale xy
set format x '10^{{%L}}'
set format y '10^{{%L}}'
set xlabel 'n'
set ylabel 'seconds'
set key top left
set grid
plot '{data}' using 1:3 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'hyperad HVP (new x)', \\
     '' using 1:4 with linespoints lw 2 pt 5 lc rgb '#ff9896' title 'hyperad HVP (same x)', \\
     '' using 1:5 with linespoints lw 2 pt 9 lc rgb '#1f77b4' title 'hyperad gradient', \\
     '' using 1:6 with linespoints lw 2 pt 6 dt 2 lc rgb '#8c564b' title 'ADOL-C hess\\_vec', \\
     '' using 1:7 with linespoints lw 2 pt 8 dt 2 lc rgb '#17becf' title 'ADOL-C gradient', \\
     '' using 1:8 with linespoints lw 1 pt 1 lc rgb '#000000' title 'plain C f'""")

# Hessian against n (dense function)
data = os.path.join(SRC, "hessian_vs_n.dat")
with open(data, "w") as f:
    f.write("# n n*nodes hyperad_hessian adolc_hessian hyperad_fd\n")
    for n in sizes("dense"):
        k = ("dense", n)
        vals = [n * (nodes(k, "hyperad") or 0), t_of(k, "hyperad", "hessian"), t_of(k, "adolc", "hessian"),
                t_of(k, "hyperad", "hessian_fd")]
        f.write(f"{n} " + " ".join("NaN" if v is None else f"{v:.6e}" for v in vals) + "\n")
if sizes("dense"):
    gp("hessian_vs_n", f"""set title 'Dense-Hessian function: full Hessian against n (log-log)'
set logscale xy
set format y '10^{{%L}}'
set xlabel 'n'
set ylabel 'seconds'
set key top left
set grid
plot '{data}' using 1:3 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'hyperad ad\\_hessian', \\
     '' using 1:5 with linespoints lw 2 pt 5 lc rgb '#ff7f0e' title 'hyperad central differences of ad\\_gradient', \\
     '' using 1:4 with linespoints lw 2 pt 6 dt 2 lc rgb '#8c564b' title 'ADOL-C hessian()'""")

# logistic regression objective against time
for d, tt in sorted(traces.items()):
    parts = []
    for tool, col in (("hyperad", "#d62728"), ("liblinear", "#1f77b4")):
        if tool in tt and tt[tool][0]:
            p = os.path.join(SRC, f"logreg_{d}_{tool}.dat")
            with open(p, "w") as f:
                fs = fstar[d]
                for t, it, obj in tt[tool][0]:
                    if obj > fs:  # the point at f* itself has no place on a log scale
                        f.write(f"{t:.6e} {(obj - fs) / abs(fs):.6e} {obj:.12e}\n")
            parts.append(f"'{p}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{col}' title "
                         f"'{'hyperad-logreg' if tool == 'hyperad' else 'liblinear-train -s 0'}'")
    if parts:
        gp(f"logreg_{d}", f"""set title 'Logistic regression ({d.replace('_', ' ')}): objective against wall time (from process start)'
set logscale y
set format y '10^{{%L}}'
set xlabel 'seconds since the command started'
set ylabel '(f − f*) / f*'
set grid
set key top right
plot {', '.join(parts)}""")

# check the SVGs: non-empty, well-formed
for s in svgs:
    try:
        if os.path.getsize(s) < 500:
            raise ValueError("nearly empty")
        root = ET.parse(s).getroot()
        if not root.tag.endswith("svg"):
            raise ValueError(f"root element {root.tag}")
    except Exception as e:  # noqa: BLE001 — any failure is a bad plot
        problem(f"plot {s} is not a good SVG: {e}")
print(f"plots: {len(svgs)} SVG files checked in {PLOTS}")
rel = os.path.relpath(PLOTS, os.path.dirname(os.path.abspath(OUT)))
blocks["plots"] = "\n".join(f"- [{os.path.basename(s)}]({rel}/{os.path.basename(s)})" for s in svgs)

# ---------------------------------------------------------------------------
# Header and the file
# ---------------------------------------------------------------------------
b = []
if QUICK:
    b.append("**QUICK run (`benchmarks/run --quick`): tiny sizes, one short batch. Proves the suite runs; "
             "not for citing.**")
    b.append("")
b.append(f"- date: {meta.get('started', '?')} (UTC), total {meta.get('elapsed', '?')} s for `benchmarks/run{' --quick' if QUICK else ''}`"
         f" (build included); hyperad {meta.get('gitrev', '?')}")
b.append(f"- machine: {meta.get('machine', '?')}; {meta.get('mem', '')}; load average at start/end: "
         f"{meta.get('load_start', '?')} / {meta.get('load_end', '?')} (a shared VM: quote medians, trust ratios)")
b.append(f"- tools (Debian packages): {meta.get('versions', '?')}")
b.append(f"- compiler: {meta.get('cc', '?')}; meson {meta.get('meson', '?')}, build dir `{meta.get('build', '?')}` "
         "(`-Dbuildtype=release -Dwerror=true`; the library at -O3, the benchmark programs at -O2)")
b.append("- environment: `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 OPENBLAS_NUM_THREADS=1` for every program")
b.append("- commands, in order (each piece's raw output is kept in the run directory "
         f"`{meta.get('rundir', '?')}`):")
b.append("")
b.append("```sh")
b += [l for l in (read(os.path.join(RUN, "commands.txt")) or "").splitlines()]
b.append("```")
b.append("")
b.append("Steps and their wall time: " + (meta.get("steps", "?")))
blocks["header"] = "\n".join(b)

text = read(TEMPLATE) or "# Benchmark results\n"
all_blocks = [("header", blocks["header"]), ("targets5", blocks["targets5"]), ("targets10", blocks["targets10"]),
              ("chain", blocks["chain"]), ("fd", blocks["fd"]), ("scaling", blocks["scaling"]),
              ("opt", blocks["opt"]), ("scipy", blocks["scipy"]), ("conv", blocks["conv"]),
              ("logreg", blocks["logreg"]), ("plots", blocks["plots"])]
for name, body in all_blocks:
    begin, end = f"<!-- BEGIN run: {name} -->", f"<!-- END run: {name} -->"
    new = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        i, j = text.index(begin), text.index(end) + len(end)
        text = text[:i] + new + text[j:]
    else:
        text = text.rstrip("\n") + f"\n\n{new}\n"
begin, end = "<!-- BEGIN run_ad.sh report -->", "<!-- END run_ad.sh report -->"
if begin in text and end in text:
    i, j = text.index(begin), text.index(end) + len(end)
    text = text[:i] + f"{begin}\n{adrep}\n\n{end}" + text[j:]
else:
    text = text.rstrip("\n") + f"\n\n{begin}\n{adrep}\n\n{end}\n"
with open(OUT, "w") as f:
    f.write(text)
print(f"wrote {OUT}")
if problems:
    print(f"report.py: {len(problems)} problem(s):\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
