#!/usr/bin/env python3
"""bench/config: how long `cotangent check` takes on a large config.

Generates a seeded mass-action network (N species, 3N reactions, one rate
constant and one assignment per reaction) as YAML, then times
`cotangent check` (wall clock, median of --reps runs) three ways:

  interpreter    check FILE
  jit_cold       check FILE --jit, each run with a fresh, empty COTANGENT_CACHE
  jit_warm       check FILE --jit, the cache filled by a run before timing

Writes OUT (rows {case, metric, value, unit}, like the other benchmarks) and
OUT with .md instead of .json (a table). Exits 1 when a check fails or the
summary it prints does not name N states: the smoke test (--species 50
--reps 1) checks that, never the timings.

usage: bench_config.py --cotangent EXE [--species N] [--reps R] [--seed S]
                       [--out build/bench/config.json]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def network_yaml(n_species, seed):
    """The YAML text of a seeded mass-action network: 3 reactions per species,
    each A (+ B) -> C (+ D) with rate k_j * [A] (* [B])."""
    rng = random.Random(seed)
    n_react = 3 * n_species
    species = [f"s{i}" for i in range(n_species)]
    terms = {s: [] for s in species}
    params, rates = [], []
    for j in range(n_react):
        reactants = rng.sample(species, rng.choice((1, 2)))
        products = rng.sample(species, rng.choice((1, 2)))
        params.append(f"    k{j}: {rng.uniform(0.1, 1.0):.6f}")
        rates.append(f"    r{j}: k{j}*" + "*".join(reactants))
        for s in reactants:
            terms[s].append(f"- r{j}")
        for s in products:
            terms[s].append(f"+ r{j}")
    states = [f"    {s}: {rng.uniform(0.5, 1.5):.6f}" for s in species]
    eqs = []
    for s in species:
        rhs = " ".join(terms[s]) if terms[s] else "0"
        rhs = rhs[2:] if rhs.startswith("+ ") else rhs
        eqs.append(f'    {s}: "{rhs}"')
    return "\n".join(
        [f"# bench/config: mass-action network, {n_species} species, "
         f"{n_react} reactions, seed {seed}",
         "model:",
         f"  name: mass_action_{n_species}",
         "  parameters:", *params,
         "  states:", *states,
         "  assignments:", *rates,
         "  equations:", *eqs,
         "solver: {method: bdf, rtol: 1.0e-6, atol: 1.0e-8}",
         "time: {start: 0, end: 1, output: {linspace: [0, 1, 11]}}",
         "analyses:",
         "  - {type: simulate}",
         ""])


def run_check(exe, config, jit, cache):
    """Runs `cotangent check`; returns (seconds, stdout). Raises on failure."""
    cmd = [exe, "check", config] + (["--jit"] if jit else [])
    env = dict(os.environ, COTANGENT_CACHE=cache)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    return dt, p.stdout


def measure(exe, config, n_species, reps, work):
    """The three cases' times (a list of reps seconds each)."""
    times = {"interpreter": [], "jit_cold": [], "jit_warm": []}
    warm = os.path.join(work, "warm-cache")
    for r in range(reps):
        dt, out = run_check(exe, config, False, os.path.join(work, "unused-cache"))
        if f"states              {n_species}" not in out:
            raise RuntimeError(f"the summary does not name {n_species} states:\n{out}")
        times["interpreter"].append(dt)
        cold = os.path.join(work, f"cold-cache-{r}")
        times["jit_cold"].append(run_check(exe, config, True, cold)[0])
        shutil.rmtree(cold, ignore_errors=True)
    run_check(exe, config, True, warm)  # fills the warm cache
    for _ in range(reps):
        times["jit_warm"].append(run_check(exe, config, True, warm)[0])
    return times


def write_results(out, n_species, reps, yaml_bytes, times):
    """OUT (JSON rows) and its .md table."""
    case = f"mass_action_{n_species}"
    rows = [{"case": case, "metric": "config_bytes", "value": yaml_bytes, "unit": "bytes"}]
    for name, ts in times.items():
        rows.append({"case": case, "metric": f"check.{name}",
                     "value": statistics.median(ts), "unit": "s"})
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write("[\n" + ",\n".join("  " + json.dumps(r) for r in rows) + "\n]\n")
    md = os.path.splitext(out)[0] + ".md"
    with open(md, "w") as f:
        f.write(f"`cotangent check` of a mass-action network: {n_species} species, "
                f"{3 * n_species} reactions ({yaml_bytes} bytes of YAML); "
                f"wall time, median of {reps}.\n\n")
        f.write("| case | median | runs |\n|---|---:|---|\n")
        for name, ts in times.items():
            runs = ", ".join(f"{t:.2f}" for t in ts)
            f.write(f"| {name} | {statistics.median(ts):.2f} s | {runs} |\n")
    with open(md) as f:
        sys.stdout.write(f.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cotangent", required=True, help="the cotangent command")
    ap.add_argument("--species", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--out", default="build/bench/config.json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ct-bench-config-")
    try:
        config = os.path.join(work, f"mass_action_{a.species}.yaml")
        text = network_yaml(a.species, a.seed)
        with open(config, "w") as f:
            f.write(text)
        times = measure(a.cotangent, config, a.species, a.reps, work)
        write_results(a.out, a.species, a.reps, len(text.encode()), times)
    except (RuntimeError, OSError) as e:
        print(f"bench_config: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
