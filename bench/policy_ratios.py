#!/usr/bin/env python3
"""The cost of safety as ratios, with their spread across runs.

Runs bench/updater_benchmark RUNS times back to back. Within each run the
policies' repetitions are interleaved at random
(--benchmark_enable_random_interleaving), so a slow stretch of a noisy
machine hits every policy alike. For each run and pCPU count it takes each
policy's median ops/s and forms the ratios the performance issue sets
goals for: rcu / unsafe (goal >= 0.90) and rcu / force-ipi (goal >= 1).
It prints every run's ratios, then per ratio the median and the spread
(min..max, and the largest deviation from the median in percent: the
issue asks that five runs agree within +-10%), and the guests' walk rate
under rcu against unsafe, since walkers and updater share the host's cores.

  bazel build -c opt //bench:updater_benchmark
  bench/policy_ratios.py --runs=5 --repetitions=3 --pcpus=2,8 [--json=OUT]

With --chart=FILE.svg it also draws updater throughput against pCPUs per
policy (the median over runs; log scales; a policy's point is marked where
the oracle counted violations) with gnuplot (Debian's gnuplot-nox).
--from-json=FILE redraws a chart from a --json file without running:

  bench/policy_ratios.py --runs=3 --pcpus=1,2,4,8,16 \
      --json=docs/perf/updater_throughput.json \
      --chart=docs/perf/updater_throughput.svg

Only the figures of one invocation compare with each other.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

POLICIES = {0: "ipi", 1: "unsafe", 2: "force-ipi", 3: "rcu"}
FULL_NAMES = {"ipi": "ipi", "unsafe": "assisted-unsafe",
              "force-ipi": "assisted+force-ipi", "rcu": "assisted+rcu"}
RATIOS = [("rcu", "unsafe", 0.90), ("rcu", "force-ipi", 1.0)]
TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def run_once(binary, pcpus, repetitions, min_time):
    pattern = "BM_UpdaterOps/policy:[0-9]+/pcpus:(%s)/scrape:0/" % "|".join(
        str(p) for p in pcpus)
    out = subprocess.run(
        [binary, f"--benchmark_filter={pattern}",
         f"--benchmark_repetitions={repetitions}",
         "--benchmark_enable_random_interleaving=true",
         f"--benchmark_min_time={min_time}",
         "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    samples = {}  # (policy, pcpus) -> [ops/s], violations
    walks = {}  # (policy, pcpus) -> [guest walks/s]
    violations = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        fields = dict(part.split(":", 1) for part in b["name"].split("/")[1:]
                      if ":" in part)
        key = (POLICIES[int(fields["policy"])], int(fields["pcpus"]))
        samples.setdefault(key, []).append(b["items_per_second"])
        seconds = b["real_time"] * TIME_UNITS[b["time_unit"]] * b["iterations"]
        walks.setdefault(key, []).append(b["walks"] / seconds)
        violations[key] = violations.get(key, 0) + b.get("violations", 0)
    return ({k: statistics.median(v) for k, v in samples.items()},
            violations, {k: statistics.median(v) for k, v in walks.items()})


def draw_chart(runs, pcpus, path, title):
    """Median ops/s over runs, per policy and pCPU count, as an SVG."""
    policies = list(POLICIES.values())
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "ops.dat")
        marks = os.path.join(tmp, "violations.dat")
        with open(data, "w") as f, open(marks, "w") as m:
            f.write("# pcpus " + " ".join(policies) + "\n")
            for p in pcpus:
                row = [p]
                for policy in policies:
                    ops = statistics.median(r["medians"][(policy, p)]
                                            for r in runs)
                    row.append(ops)
                    if sum(r["violations"].get((policy, p), 0) for r in runs):
                        m.write(f"{p} {ops}\n")
                f.write(" ".join(str(v) for v in row) + "\n")
            m.write("\n")
        plots = [f"'{data}' using 1:{i + 2} with linespoints lw 2 pt 7 "
                 f"title '{FULL_NAMES[policy]}'" for i, policy in enumerate(policies)]
        plots.append(f"'{marks}' using 1:2 with points pt 2 ps 3 lw 2 "
                     "lc rgb 'red' title 'oracle counted violations'")
        script = "\n".join([
            "set terminal svg size 820,520 dynamic font 'sans,12'",
            f"set output '{path}'",
            f"set title '{title}'",
            "set logscale x 2", "set logscale y 10",
            f"set xrange [{min(pcpus) * 0.8}:{max(pcpus) * 1.25}]",
            "set xtics (" + ", ".join(str(p) for p in pcpus) + ")",
            "set xlabel 'simulated pCPUs'",
            "set ylabel 'updater ops/s (log scale)'",
            "set key top right", "set grid",
            "plot " + ", ".join(plots), ""])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def load_json(path):
    """The runs a --json file holds, as run_once returns them."""
    runs = []
    for r in json.load(open(path)):
        medians, violations = {}, {}
        for key, v in r["medians"].items():
            policy, p = key.rsplit("@", 1)
            medians[(policy, int(p))] = v
        for key, v in r.get("violations", {}).items():
            policy, p = key.rsplit("@", 1)
            violations[(policy, int(p))] = v
        runs.append({"medians": medians, "violations": violations})
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="bazel-bin/bench/updater_benchmark")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--pcpus", default="2,8")
    ap.add_argument("--json", help="write every run's medians here")
    ap.add_argument("--chart", help="draw the throughput chart (SVG) here")
    ap.add_argument("--from-json", help="read runs from a --json file")
    ap.add_argument("--title", default="hvmm updater throughput by policy")
    args = ap.parse_args()
    pcpus = [int(p) for p in args.pcpus.split(",")]

    if args.from_json:
        runs = load_json(args.from_json)
        pcpus = sorted({p for r in runs for (_, p) in r["medians"]})
        draw_chart(runs, pcpus, args.chart, args.title)
        return 0

    runs = []
    for i in range(args.runs):
        medians, violations, walks = run_once(args.binary, pcpus,
                                              args.repetitions, args.min_time)
        runs.append({"medians": medians, "violations": violations,
                     "walks": walks})
        line = []
        for p in pcpus:
            for num, den, _ in RATIOS:
                r = medians[(num, p)] / medians[(den, p)]
                line.append(f"{p} pCPUs {num}/{den} {r:.2f}")
        print(f"run {i + 1}: " + "  ".join(line), flush=True)
        for (policy, p), v in sorted(violations.items()):
            if policy != "unsafe" and v:
                print(f"  VIOLATIONS: {policy} at {p} pCPUs: {v:.0f}")

    print("\nratio                    goal   median  min..max     spread")
    for p in pcpus:
        for num, den, goal in RATIOS:
            values = [r["medians"][(num, p)] / r["medians"][(den, p)] for r in runs]
            med = statistics.median(values)
            spread = max(abs(v - med) for v in values) / med * 100
            print(f"{p:>2} pCPUs {num}/{den:<10} {goal:>5.2f}  {med:>6.2f}  "
                  f"{min(values):.2f}..{max(values):.2f}  +-{spread:.0f}%")
    # The pCPUs' guest walks share the host's cores with the updater, so a
    # policy could buy updater speed with guest time: show both.
    print("\nguest walks/s, rcu/unsafe (per run):")
    for p in pcpus:
        values = [r["walks"][("rcu", p)] / r["walks"][("unsafe", p)]
                  for r in runs]
        print(f"{p:>2} pCPUs  median {statistics.median(values):.2f}  " +
              " ".join(f"{v:.2f}" for v in values))
    print("\nops/s medians (per run):")
    for p in pcpus:
        for policy in POLICIES.values():
            values = [r["medians"][(policy, p)] for r in runs]
            print(f"{p:>2} pCPUs {policy:<10} " +
                  " ".join(f"{v:>9.0f}" for v in values))
    if args.json:
        json.dump([{"medians": {f"{k[0]}@{k[1]}": v
                                for k, v in r["medians"].items()},
                    "violations": {f"{k[0]}@{k[1]}": v
                                   for k, v in r["violations"].items()},
                    "walks": {f"{k[0]}@{k[1]}": v
                              for k, v in r["walks"].items()}}
                   for r in runs], open(args.json, "w"), indent=1)
    if args.chart:
        draw_chart(runs, pcpus, args.chart, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
