#!/usr/bin/env python3
"""SciPy peer of bench/ode: the same problems in solve_ivp(method="BDF").

    scipy_peer.py PROBLEMS.json ROWS.json [--reps N]

PROBLEMS.json is written by bench_ode (one object per case: kind, n, p, y0,
T, rtol, atol and, for networks, the reactions as [[reactants], [products]]).
Each case is integrated from 0 to T with the analytic Jacobian (dense for the
small cases, scipy.sparse CSC for the networks, vectorised with NumPy), same
tolerances, median of N runs. ROWS.json gets one row per line:
{"case", "metric", "value", "unit"}: scipy_sim_time (s), scipy_nfev,
scipy_njev, scipy_nlu, and y(T) as scipy_yT[i] (bench_ode compares it with
its own y(T) and keeps only the difference).
"""
import json
import statistics
import sys
import time

import numpy as np
import scipy
from scipy.integrate import solve_ivp
import scipy.sparse as sp


def robertson(p):
    k1, k2, k3 = p

    def f(t, y):
        r1, r2, r3 = k1 * y[0], k2 * y[1] * y[2], k3 * y[1] * y[1]
        return np.array([-r1 + r2, r1 - r2 - r3, r3])

    def jac(t, y):
        return np.array([[-k1, k2 * y[2], k2 * y[1]],
                         [k1, -k2 * y[2] - 2 * k3 * y[1], -k2 * y[1]],
                         [0.0, 2 * k3 * y[1], 0.0]])
    return f, jac


def lotka_volterra(p):
    a, b, c, d = p

    def f(t, y):
        return np.array([a * y[0] - b * y[0] * y[1], d * y[0] * y[1] - c * y[1]])

    def jac(t, y):
        return np.array([[a - b * y[1], -b * y[0]], [d * y[1], d * y[0] - c]])
    return f, jac


def van_der_pol(p):
    mu = p[0]

    def f(t, y):
        return np.array([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])

    def jac(t, y):
        return np.array([[0.0, 1.0], [-2 * mu * y[0] * y[1] - 1, mu * (1 - y[0] ** 2)]])
    return f, jac


def network(p, n, reactions):
    """Mass action: rate_r = k_r prod x[reactants]; f = S rate, with S the
    stoichiometric matrix; J = S D, D[r, s] = d rate_r / d x_s."""
    k = np.asarray(p, dtype=float)
    nr = len(reactions)
    r0 = np.array([rx[0][0] for rx in reactions])
    two = np.array([len(rx[0]) == 2 for rx in reactions])
    r1 = np.array([rx[0][1] if len(rx[0]) == 2 else rx[0][0] for rx in reactions])
    rows, cols, vals = [], [], []
    for r, (reac, prod) in enumerate(reactions):
        for s in reac:
            rows.append(s), cols.append(r), vals.append(-1.0)
        for s in prod:
            rows.append(s), cols.append(r), vals.append(1.0)
    S = sp.csr_matrix((vals, (rows, cols)), shape=(n, nr))
    # D's structure: one entry per reactant slot (two for bimolecular).
    d_rows = np.concatenate([np.arange(nr), np.nonzero(two)[0]])
    d_cols = np.concatenate([r0, r1[two]])

    def f(t, y):
        rate = k * y[r0] * np.where(two, y[r1], 1.0)
        return S @ rate

    def jac(t, y):
        d0 = k * np.where(two, y[r1], 1.0)  # d rate / d x[r0]
        d1 = (k * y[r0])[two]               # d rate / d x[r1]
        D = sp.csr_matrix((np.concatenate([d0, d1]), (d_rows, d_cols)), shape=(nr, n))
        return (S @ D).tocsc()
    return f, jac


def model(case):
    kind, p = case["kind"], case["p"]
    if kind == "robertson":
        return robertson(p)
    if kind == "lotka_volterra":
        return lotka_volterra(p)
    if kind == "van_der_pol":
        return van_der_pol(p)
    return network(p, case["n"], case["reactions"])


def run(case, reps):
    f, jac = model(case)
    y0 = np.asarray(case["y0"], dtype=float)
    times, sol = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        sol = solve_ivp(f, (0.0, case["T"]), y0, method="BDF", jac=jac,
                        rtol=case["rtol"], atol=case["atol"])
        times.append(time.perf_counter() - t0)
        if not sol.success:
            raise RuntimeError(f"{case['case']}: solve_ivp failed: {sol.message}")
        if times[0] > 20.0:  # keeps the whole benchmark within minutes
            break
    return statistics.median(times), sol


def row(out, case, metric, value, unit):
    out.write(json.dumps({"case": case, "metric": metric, "value": value, "unit": unit}) + "\n")


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else 3
    with open(argv[1]) as fh:
        cases = json.load(fh)
    with open(argv[2], "w") as out:
        row(out, "scipy", "scipy_version_major_minor",
            float(".".join(scipy.__version__.split(".")[:2])), "")
        for case in cases:
            secs, sol = run(case, reps)
            name = case["case"]
            row(out, name, "scipy_sim_time", secs, "s")
            row(out, name, "scipy_nfev", float(sol.nfev), "")
            row(out, name, "scipy_njev", float(sol.njev), "")
            row(out, name, "scipy_nlu", float(sol.nlu), "")
            for i, v in enumerate(sol.y[:, -1]):
                row(out, name, f"scipy_yT[{i}]", float(v), "")
            sys.stderr.write(f"scipy_peer: {name}: {secs * 1e3:.1f} ms, nfev {sol.nfev}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
