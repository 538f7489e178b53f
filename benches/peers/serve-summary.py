#!/usr/bin/env python3
"""Sums up serve-compare.sh rounds: per server and client count, the median over rounds of
generated tokens/s, TTFT p50 and inter-token latency p50/p99; per round, each server's last level
against its first (tokens/s and p99 ITL) and each server's last-level tokens/s against the other
servers' in the same round (ratios of the same round, so a slower machine in one round cancels).

Usage: serve-summary.py OUT_DIR LABEL [LABEL ...]   (reads OUT_DIR/LABEL.rN.json)
"""

import glob
import json
import os
import re
import statistics
import sys


def load(out, label):
    """Round number -> {"levels": [...]} of `label` (one JSON per level: LABEL.rN.cC.json, with
    the foreign CPU % of that level beside it in LABEL.rN.cC.load)."""
    runs = {}
    for path in glob.glob(os.path.join(out, f"{glob.escape(label)}.r*.json")):
        m = re.search(r"\.r(\d+)(?:\.c\d+)?\.json$", path)
        if not m:
            continue
        with open(path) as f:
            rep = json.load(f)
        load_path = path[: -len(".json")] + ".load"
        foreign = None
        if os.path.exists(load_path):
            with open(load_path) as f:
                foreign = float(f.read().strip() or "nan")
        for lv in rep["levels"]:
            lv["foreign"] = foreign
        runs.setdefault(int(m.group(1)), {"levels": []})["levels"].extend(rep["levels"])
    return runs


def level(report, clients):
    for lv in report["levels"]:
        if lv["concurrency"] == clients:
            return lv
    return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    return "–" if x is None else format(x, spec)


def main():
    out, labels = sys.argv[1], sys.argv[2:]
    runs = {label: load(out, label) for label in labels}
    levels = sorted({lv["concurrency"] for r in runs.values() for rep in r.values() for lv in rep["levels"]})
    if not levels:
        print("no results")
        return
    lo, hi = levels[0], levels[-1]
    rounds = sorted({k for r in runs.values() for k in r})
    print(f"Median over {len(rounds)} round(s):\n")
    print("| server | clients | errors | gen tok/s | TTFT p50 | ITL p50 | ITL p99 | other CPU use (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label in labels:
        for c in levels:
            lvs = [level(rep, c) for rep in runs[label].values()]
            lvs = [lv for lv in lvs if lv]
            if not lvs:
                continue
            errors = sum(lv["errors"] for lv in lvs)
            tps = med([lv["tokens_per_s"] for lv in lvs])
            ttft = med([(lv["ttft_ms"] or {}).get("p50") for lv in lvs])
            p50 = med([(lv["itl_ms"] or {}).get("p50") for lv in lvs])
            p99 = med([(lv["itl_ms"] or {}).get("p99") for lv in lvs])
            foreign = [lv["foreign"] for lv in lvs if lv.get("foreign") is not None]
            print(
                f"| {label} | {c} | {errors} | {fmt(tps, '.1f')} | {fmt(ttft, '.1f')} ms "
                f"| {fmt(p50, '.1f')} ms | {fmt(p99, '.1f')} ms "
                f"| {fmt(max(foreign) if foreign else None, '.0f')} % |"
            )
    print(f"\nPer round ({hi} vs {lo} clients: tokens/s ×, p99 ITL ×; then {hi}-client tokens/s against each other server):\n")
    for k in rounds:
        parts = []
        for label in labels:
            rep = runs[label].get(k)
            if not rep:
                continue
            a, b = level(rep, lo), level(rep, hi)
            if not a or not b:
                continue
            t = b["tokens_per_s"] / a["tokens_per_s"] if a["tokens_per_s"] else None
            p = (b["itl_ms"] or {}).get("p99"), (a["itl_ms"] or {}).get("p99")
            r = p[0] / p[1] if p[0] and p[1] else None
            parts.append(f"{label} ×{fmt(t, '.2f')} tok/s, ×{fmt(r, '.2f')} p99 ITL")
        for i, x in enumerate(labels):
            for y in labels[i + 1:]:
                rx, ry = runs[x].get(k), runs[y].get(k)
                if rx and ry and level(rx, hi) and level(ry, hi) and level(ry, hi)["tokens_per_s"]:
                    q = level(rx, hi)["tokens_per_s"] / level(ry, hi)["tokens_per_s"]
                    parts.append(f"{x}/{y} {q:.2f}")
        print(f"- round {k}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
