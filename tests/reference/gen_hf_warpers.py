#!/usr/bin/env python3
"""Generate reference vectors for the sampling stages from the REAL HuggingFace
``transformers`` logits warpers (``transformers.generation.logits_process``).

Nothing here is a re-implementation of the warpers: every expected output is
produced by calling the HF classes on float32 CPU torch tensors.  (A small
float64 numpy port of the same rules is used *only* as a cross-check, to flag
cases whose outcome sits on a numerical knife edge; it never feeds the output.)

Run by hand (deterministic: seeded numpy RNG, torch pinned to 1 CPU thread):

    python3 tests/reference/gen_hf_warpers.py            # writes the files
    python3 tests/reference/gen_hf_warpers.py --check    # regenerate in memory and
                                                         # compare with committed files
    python3 tests/reference/gen_hf_warpers.py --vocabs 49152   # only some vocab sizes

Requirements: numpy, safetensors, torch, transformers (``pip install ...``).

Outputs (in tests/data/hf_warpers/):

* ``inputs_v{V}.safetensors``   -- tensor ``logits``: F16 [R=6, V].
* ``cases.json``                -- list of {"name", "processors": [{"name", "params"}]}.
* ``expected_v{V}.safetensors`` -- per case ``c`` (applied as a chain, in order, to
  every row of ``logits`` converted exactly f16 -> f32):
    - ``{c}.mask``      U8  [R, ceil(V/8)]  kept tokens (output != -inf), packbits little
    - ``{c}.kept_sum``  F64 [R]  sum of output values over kept tokens (f64 accumulate)
    - ``{c}.kept_max``  F32 [R]  max output value
    - ``{c}.count``     I64 [R]  number of kept tokens
    - ``{c}.tie_split`` U8  [R]  (extra) 1 if some stage of the chain kept some but
      not all tokens of a group of EQUAL stage-input values.  HF decides such splits by
      the order of torch's (unstable) sort / topk, so for those rows only count,
      kept_sum and kept_max are implementation-independent; the mask is exact except
      for tokens whose value equals the split value.
    - ``{c}.sensitive`` U8  [R]  (extra) 1 if the row's outcome sits within float noise
      of a cut-off: re-running some stage with its threshold moved by 2e-6 (absolute,
      top_p/typical mass) or 1e-5 (relative, min_p/epsilon/eta) changes its kept count,
      or a float64 evaluation of the same rule disagrees with HF's float32 result.
      Compare such rows with a tolerance (count within a few tokens / 0.1%).

The safetensors metadata of every file records the versions used.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers.generation import logits_process as lp

# Chosen among seeds 0..11 as the one giving fewest "sensitive" (knife-edge) rows
# for top_p / typical on the non-flat rows (see run_case_hf).
SEED = 10
VOCABS = (49152, 128256)
ROW_NAMES = (
    "heavy_tailed",
    "dominant",
    "flat",
    "premasked",
    "ties_grid",
    "mixed_scale",
)
R = len(ROW_NAMES)

OUT_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "hf_warpers"

NEG_INF = float("-inf")


# --------------------------------------------------------------------------
# Input rows
# --------------------------------------------------------------------------

def _heavy_tailed(rng: np.random.Generator, V: int, boost_mass: float = 0.88, n_boost: int = 20) -> np.ndarray:
    """LM-like logits: N(0, 2^2) body, a long low tail (35% of tokens pushed down by
    Exp(6)), and ``n_boost`` boosted tokens spread over 7 nats which together hold
    ~``boost_mass`` of the softmax mass (they end up ~+7..+14 above the body mean)."""
    x = 2.0 * rng.standard_normal(V)
    tail = rng.random(V) < 0.35
    x[tail] -= rng.exponential(6.0, int(tail.sum()))
    boosted = rng.choice(V, n_boost, replace=False)
    u = rng.uniform(0.0, 7.0, n_boost)
    body_mass = np.exp(x).sum()
    c = math.log(boost_mass / (1.0 - boost_mass) * body_mass / np.exp(u).sum())
    x[boosted] = c + u
    return x


def _to_f16(x: np.ndarray) -> np.ndarray:
    y = x.astype(np.float16)
    assert not np.isnan(y).any()
    assert not np.isposinf(y).any()
    return y


def build_rows(V: int) -> np.ndarray:
    rows = []

    # 0. heavy-tailed, realistic LM-like
    rng = np.random.default_rng([SEED, V, 0])
    rows.append(_to_f16(_heavy_tailed(rng, V)))

    # 1. one dominant token, +25 above the max of the rest (rest ~ N(0, 1.5^2))
    rng = np.random.default_rng([SEED, V, 1])
    x = 1.5 * rng.standard_normal(V)
    d = int(rng.integers(V))
    x[d] = x.max() + 25.0
    rows.append(_to_f16(x))

    # 2. flat / near-uniform (f16 quantisation makes many exact ties here)
    rng = np.random.default_rng([SEED, V, 2])
    rows.append(_to_f16(0.01 * rng.standard_normal(V)))

    # 3. pre-masked: heavy-tailed with ~30% exact -inf, never on the argmax
    rng = np.random.default_rng([SEED, V, 3])
    x = _to_f16(_heavy_tailed(rng, V))
    m = rng.random(V) < 0.30
    m[x == x.max()] = False
    x[m] = np.float16(NEG_INF)
    rows.append(x)

    # 4. ties for top_k: heavy-tailed rounded to multiples of 0.25, plus forced
    #    equal-value groups straddling sorted positions k = 1, 8, 40, 50, 60
    rng = np.random.default_rng([SEED, V, 4])
    x = np.round(_heavy_tailed(rng, V) * 4.0) / 4.0
    order = np.argsort(-x, kind="stable")
    top = x[order[:70]].copy()
    # 0-based sorted index groups; k-th largest is index k-1
    for lo, hi in ((0, 1), (6, 9), (37, 41), (47, 51), (57, 61)):
        top[lo : hi + 1] = top[lo]
    x[order[:70]] = top
    x = _to_f16(x)
    assert np.array_equal(x.astype(np.float64), np.round(x.astype(np.float64) * 4) / 4)
    rows.append(x)

    # 5. mixed scale: N(0, 6^2) (very peaked softmax, many tiny probs) plus five
    #    near-tied top tokens (steps of 1/16 nat), built exactly in f16
    rng = np.random.default_rng([SEED, V, 5])
    x = _to_f16(6.0 * rng.standard_normal(V))
    M = float(x.astype(np.float64).max())
    near = rng.choice(V, 5, replace=False)
    vals = M + 0.5 - np.array([0.0, 1.0, 2.0, 3.0, 5.0]) / 16.0
    x[near] = vals.astype(np.float16)
    assert np.array_equal(x[near].astype(np.float64), vals), "near-tied values not exact in f16"
    rows.append(x)

    out = np.stack(rows)
    assert out.shape == (R, V) and out.dtype == np.float16
    return out


# --------------------------------------------------------------------------
# Cases (stage and param names are the Rust library's YAML names)
# --------------------------------------------------------------------------

def _st(name: str, **params) -> dict:
    if name != "temperature":
        params.setdefault("min_tokens_to_keep", 1)
    return {"name": name, "params": params}


def build_cases() -> list[dict]:
    c = []

    def add(name, *stages):
        c.append({"name": name, "processors": list(stages)})

    add("temperature_0.7", _st("temperature", temperature=0.7))
    add("temperature_1.3", _st("temperature", temperature=1.3))
    for k in (1, 8, 40, 50):
        add(f"top_k_{k}", _st("top_k", top_k=k))
    add("top_k_40_mtk60", _st("top_k", top_k=40, min_tokens_to_keep=60))
    for p in (0.5, 0.9, 0.95, 1.0):
        add(f"top_p_{p}", _st("top_p", top_p=p))
    add("top_p_0.9_mtk5", _st("top_p", top_p=0.9, min_tokens_to_keep=5))
    for p in (0.05, 0.1, 0.0, 1.0):
        add(f"min_p_{p}", _st("min_p", min_p=p))
    for m in (0.2, 0.9, 0.95):
        add(f"typical_{m}", _st("typical", mass=m))
    for e in (0.0003, 0.001):
        add(f"epsilon_{e}", _st("epsilon", epsilon=e))
    for e in (0.0002, 0.001):
        add(f"eta_{e}", _st("eta", epsilon=e))
    add("chain_temp0.8_topp0.95",
        _st("temperature", temperature=0.8), _st("top_p", top_p=0.95))
    add("chain_topk40_topp0.95_minp0.05_temp0.8",
        _st("top_k", top_k=40), _st("top_p", top_p=0.95), _st("min_p", min_p=0.05),
        _st("temperature", temperature=0.8))
    add("chain_temp0.7_minp0.05",
        _st("temperature", temperature=0.7), _st("min_p", min_p=0.05))
    add("chain_topk50_topp0.9_temp0.7",
        _st("top_k", top_k=50), _st("top_p", top_p=0.9), _st("temperature", temperature=0.7))
    add("chain_temp1.5_typical0.9_eps0.001",
        _st("temperature", temperature=1.5), _st("typical", mass=0.9), _st("epsilon", epsilon=0.001))

    for case in c:
        assert all(ch.isalnum() or ch in "_." for ch in case["name"]), case["name"]
    assert len({case["name"] for case in c}) == len(c)
    return c


# --------------------------------------------------------------------------
# HF warpers
# --------------------------------------------------------------------------

def make_warper(stage: dict):
    n, p = stage["name"], stage["params"]
    mtk = int(p.get("min_tokens_to_keep", 1))
    if n == "temperature":
        return lp.TemperatureLogitsWarper(float(p["temperature"]))
    if n == "top_k":
        return lp.TopKLogitsWarper(int(p["top_k"]), min_tokens_to_keep=mtk)
    if n == "top_p":
        return lp.TopPLogitsWarper(float(p["top_p"]), min_tokens_to_keep=mtk)
    if n == "min_p":
        return lp.MinPLogitsWarper(float(p["min_p"]), min_tokens_to_keep=mtk)
    if n == "typical":
        return lp.TypicalLogitsWarper(mass=float(p["mass"]), min_tokens_to_keep=mtk)
    if n == "epsilon":
        return lp.EpsilonLogitsWarper(epsilon=float(p["epsilon"]), min_tokens_to_keep=mtk)
    if n == "eta":
        kw = {}
        if "device" in inspect.signature(lp.EtaLogitsWarper.__init__).parameters:
            kw["device"] = "cpu"
        return lp.EtaLogitsWarper(epsilon=float(p["epsilon"]), min_tokens_to_keep=mtk, **kw)
    raise KeyError(n)


def _tie_split_rows(x_in: np.ndarray, x_out: np.ndarray) -> np.ndarray:
    """Per row: did this stage keep some but not all tokens sharing one input value?"""
    res = np.zeros(x_in.shape[0], dtype=bool)
    for r in range(x_in.shape[0]):
        finite_in = x_in[r] != NEG_INF
        kept = x_out[r] != NEG_INF
        removed = finite_in & ~kept
        if removed.any() and kept.any():
            res[r] = np.intersect1d(x_in[r][kept], x_in[r][removed]).size > 0
    return res


NUDGE_MASS = 2e-6  # absolute, on cumulative-mass thresholds (top_p, typical)
NUDGE_REL = 1e-5   # relative, on per-token probability thresholds (min_p, epsilon, eta)


def _nudged(stage: dict, sign: float) -> dict | None:
    """Same stage with its threshold parameter moved a little (kept in HF's valid range)."""
    n, p = stage["name"], dict(stage["params"])
    if n == "top_p":
        if p["top_p"] >= 1.0:  # threshold 1-p == 0 exactly: nothing to nudge
            return None
        p["top_p"] = min(max(p["top_p"] + sign * NUDGE_MASS, 0.0), 1.0)
    elif n == "typical":
        p["mass"] = min(max(p["mass"] + sign * NUDGE_MASS, 1e-9), 1 - 1e-9)
    elif n == "min_p":
        p["min_p"] = min(max(p["min_p"] * (1 + sign * NUDGE_REL), 0.0), 1.0)
    elif n in ("epsilon", "eta"):
        p["epsilon"] = p["epsilon"] * (1 + sign * NUDGE_REL)
    else:  # temperature, top_k: no probability threshold
        return None
    return {"name": n, "params": p}


def run_case_hf(logits_f32: np.ndarray, case: dict):
    """Apply the chain with HF warpers. Returns (final f32 output, list of
    (stage, input f32, output f32) per stage, tie_split per row, nudge-sensitive per row).

    nudge-sensitive: re-running a stage (on the same input) with its threshold
    parameter moved by NUDGE_MASS (absolute) / NUDGE_REL (relative) changes the number of kept tokens,
    i.e. the outcome sits within float noise of a cut-off."""
    scores = torch.from_numpy(logits_f32.copy())
    input_ids = torch.zeros((logits_f32.shape[0], 1), dtype=torch.long)
    trace = []
    tie = np.zeros(logits_f32.shape[0], dtype=bool)
    sens = np.zeros(logits_f32.shape[0], dtype=bool)
    for stage in case["processors"]:
        w = make_warper(stage)
        out = w(input_ids, scores)
        assert out.dtype == torch.float32 and out.shape == scores.shape
        x_in, x_out = scores.numpy(), out.numpy()
        tie |= _tie_split_rows(x_in, x_out)
        cnt = (x_out != NEG_INF).sum(axis=1)
        for sign in (-1.0, 1.0):
            ns = _nudged(stage, sign)
            if ns is not None:
                o2 = make_warper(ns)(input_ids, scores).numpy()
                sens |= (o2 != NEG_INF).sum(axis=1) != cnt
        trace.append((stage, x_in.copy(), x_out.copy()))
        scores = out
    return scores.numpy().copy(), trace, tie, sens


# --------------------------------------------------------------------------
# Float64 cross-check port (NOT used to produce expected outputs)
# --------------------------------------------------------------------------

def _softmax64(x):
    m = x.max()
    e = np.exp(x - m)
    return e / e.sum()


def port_stage(stage: dict, x: np.ndarray) -> np.ndarray:
    """One row, float64 in/out, same rules as HF (stable sorts)."""
    n, p = stage["name"], stage["params"]
    mtk = int(p.get("min_tokens_to_keep", 1))
    V = x.size
    y = x.copy()
    if n == "temperature":
        return x / float(p["temperature"])
    if n == "top_k":
        k = min(max(int(p["top_k"]), mtk), V)
        thr = np.partition(x, V - k)[V - k]
        y[x < thr] = NEG_INF
        return y
    if n == "top_p":
        order = np.argsort(x, kind="stable")
        cum = np.cumsum(_softmax64(x[order]))
        rm = cum <= 1.0 - float(p["top_p"])
        rm[V - mtk:] = False
        y[order[rm]] = NEG_INF
        return y
    if n == "min_p":
        pr = _softmax64(x)
        rm = pr < float(p["min_p"]) * pr.max()
        rm[np.argsort(-pr, kind="stable")[:min(mtk, V)]] = False
        y[rm] = NEG_INF
        return y
    if n == "typical":
        pr = _softmax64(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.log(pr)
            ent = -np.nansum(logp * pr)
        shifted = np.abs(-logp - ent)
        order = np.argsort(shifted, kind="stable")
        ss = shifted[order]
        cum = np.cumsum(_softmax64(x[order]))
        last = min(int((cum < float(p["mass"])).sum()), V - 1)
        rm = ss > ss[last]
        rm[:mtk] = False
        y[order[rm]] = NEG_INF
        return y
    if n in ("epsilon", "eta"):
        pr = _softmax64(x)
        eps = float(p["epsilon"])
        if n == "eta":
            nz = pr > 0
            ent = -np.sum(pr[nz] * np.log(pr[nz]))
            eps = min(eps, math.sqrt(eps) * math.exp(-ent))
        k = min(mtk, V)
        kth = np.partition(x, V - k)[V - k]
        rm = (pr < eps) & (x < kth)
        y[rm] = NEG_INF
        return y
    raise KeyError(n)


def cross_check(trace, sens: np.ndarray) -> list[str]:
    """Feed each HF stage's own f32 input (as f64) to the port and compare masks.
    Rows that disagree are also marked in ``sens``."""
    problems = []
    for stage, x_in, x_out in trace:
        if stage["name"] == "temperature":
            continue
        for r in range(x_in.shape[0]):
            y = port_stage(stage, x_in[r].astype(np.float64))
            kh = x_out[r] != NEG_INF
            kp = y != NEG_INF
            if np.array_equal(kh, kp):
                continue
            # tie split decided by sort order: same count, differing only on tied values
            diff = kh != kp
            vals = np.unique(x_in[r][diff])
            if kh.sum() == kp.sum() and vals.size == 1:
                continue
            sens[r] = True
            problems.append(
                f"{stage['name']}{stage['params']} row {r}: hf={int(kh.sum())} port={int(kp.sum())}"
            )
    return problems


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def versions() -> dict:
    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def generate(vocabs=VOCABS):
    cases = build_cases()
    dropped = []
    for case in list(cases):
        try:
            for st in case["processors"]:
                make_warper(st)
        except ValueError as e:  # HF rejects this parameter: drop the case
            dropped.append((case["name"], str(e)))
            cases.remove(case)

    files = {}
    summary = {}
    problems = []
    meta = {k: str(v) for k, v in versions().items()}
    meta["rows"] = ",".join(ROW_NAMES)
    meta["seed"] = str(SEED)
    for V in vocabs:
        x16 = build_rows(V)
        x32 = x16.astype(np.float32)  # exact
        files[f"inputs_v{V}.safetensors"] = ({"logits": x16}, meta)
        exp = {}
        for case in cases:
            out, trace, tie, sens = run_case_hf(x32, case)
            for pmsg in cross_check(trace, sens):
                problems.append(f"v{V} {case['name']}: {pmsg}")
            kept = out != NEG_INF
            c = case["name"]
            exp[f"{c}.mask"] = np.packbits(kept, axis=1, bitorder="little")
            exp[f"{c}.kept_sum"] = np.array(
                [out[r][kept[r]].astype(np.float64).sum() for r in range(R)], dtype=np.float64)
            exp[f"{c}.kept_max"] = out.max(axis=1).astype(np.float32)
            exp[f"{c}.count"] = kept.sum(axis=1).astype(np.int64)
            exp[f"{c}.tie_split"] = tie.astype(np.uint8)
            exp[f"{c}.sensitive"] = sens.astype(np.uint8)
            summary[(V, c)] = (exp[f"{c}.count"].copy(), tie.copy(), sens.copy())
        files[f"expected_v{V}.safetensors"] = (exp, meta)
    cases_json = json.dumps(cases, indent=1) + "\n"
    return files, cases_json, cases, summary, dropped, problems


def sanity(out_dir: Path, cases: list[dict], vocabs=VOCABS):
    """Reload the written files and check invariants."""
    loaded_cases = json.loads((out_dir / "cases.json").read_text())
    assert loaded_cases == cases
    names = [c["name"] for c in cases]
    for V in vocabs:
        x = load_file(str(out_dir / f"inputs_v{V}.safetensors"))["logits"]
        assert x.dtype == np.float16 and x.shape == (R, V)
        x32 = x.astype(np.float32)
        finite = x32 != NEG_INF
        e = load_file(str(out_dir / f"expected_v{V}.safetensors"))
        nb = (V + 7) // 8
        for c in names:
            m = e[f"{c}.mask"]
            assert m.dtype == np.uint8 and m.shape == (R, nb), (c, m.shape)
            kept = np.unpackbits(m, axis=1, bitorder="little", count=V).astype(bool)
            cnt = e[f"{c}.count"]
            assert cnt.dtype == np.int64 and cnt.shape == (R,)
            assert e[f"{c}.kept_sum"].dtype == np.float64
            assert e[f"{c}.kept_max"].dtype == np.float32
            assert (cnt > 0).all(), (V, c, cnt)
            assert np.array_equal(kept.sum(axis=1), cnt), (V, c)
            assert not (kept & ~finite).any(), (V, c)  # never resurrects -inf
            # argmax survives every stage except typical (which may drop it)
            if "typical" not in c:
                for r in range(R):
                    assert kept[r, int(np.argmax(x32[r]))], (V, c, r)

        def cnt_of(name):
            return e[f"{name}.count"]

        # targeted checks
        nfin = finite.sum(axis=1)
        for c in ("temperature_0.7", "temperature_1.3", "top_p_1.0", "min_p_0.0"):
            assert np.array_equal(cnt_of(c), nfin), (V, c, cnt_of(c), nfin)
        assert np.allclose(e["temperature_0.7.kept_max"], x32.max(axis=1) / np.float32(0.7))
        r4 = x32[4]
        srt = np.sort(r4)[::-1]
        for k in (1, 8, 40, 50):
            assert srt[k - 1] == srt[k] and srt[k - 1] == srt[k - 2 if k > 1 else 0], (V, k)
            assert cnt_of(f"top_k_{k}")[4] > k, (V, k)
            assert cnt_of(f"top_k_{k}")[4] == (r4 >= srt[k - 1]).sum()
        assert srt[38] == srt[39] == srt[40], "40th largest not tied on both sides"
        assert cnt_of("top_k_40_mtk60")[4] > 60
        assert cnt_of("top_k_1")[1] == 1 and cnt_of("top_p_0.95")[1] == 1
        assert cnt_of("top_k_1")[4] >= 2 and cnt_of("min_p_1.0")[4] >= 2
        assert 100 <= cnt_of("top_p_0.95")[0] <= 5000, cnt_of("top_p_0.95")[0]
        assert cnt_of("epsilon_0.0003")[2] == (x32[2] == x32[2].max()).sum()
        assert (cnt_of("top_p_0.9_mtk5") >= 5).all()
        assert (cnt_of("top_k_40_mtk60") >= 60).all()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="regenerate in memory and compare with the files on disk")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--vocabs", type=int, nargs="+", default=list(VOCABS),
                    help="vocab sizes to generate (default: %(default)s)")
    args = ap.parse_args()
    vocabs = tuple(args.vocabs)

    torch.set_num_threads(1)  # fixed reduction order
    v = versions()
    print("versions: " + " ".join(f"{k}={val}" for k, val in v.items()))

    files, cases_json, cases, summary, dropped, problems = generate(vocabs)
    out_dir: Path = args.out

    if args.check:
        ok = (out_dir / "cases.json").read_text() == cases_json
        for fname, (tensors, _meta) in files.items():
            on_disk = load_file(str(out_dir / fname))
            if set(on_disk) != set(tensors):
                ok = False
                print(f"{fname}: tensor names differ")
                continue
            for k, t in tensors.items():
                if not np.array_equal(on_disk[k], t):
                    ok = False
                    print(f"{fname}: {k} differs")
        print("check:", "OK (files match)" if ok else "MISMATCH")
        sys.exit(0 if ok else 1)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cases.json").write_text(cases_json)
    for fname, (tensors, meta) in files.items():
        save_file(tensors, str(out_dir / fname), metadata=meta)
        (out_dir / fname).chmod(0o644)
    sanity(out_dir, cases, vocabs)

    # summary
    for V in vocabs:
        print(f"\nV={V}: kept-token counts per case x row ('*' tie split, '~' sensitive)")
        print(f"{'case':42s}" + "".join(f"{n[:11]:>12s}" for n in ROW_NAMES))
        for case in cases:
            cnt, tie, sens = summary[(V, case["name"])]
            cells = "".join(f"{str(int(n)) + ('*' if t else '') + ('~' if s else ''):>12s}"
                            for n, t, s in zip(cnt, tie, sens))
            print(f"{case['name']:42s}{cells}")
    if dropped:
        print("\nDROPPED (HF raised):")
        for n, msg in dropped:
            print(f"  {n}: {msg}")
    print(f"\n{len(cases)} cases written to {out_dir}")
    if problems:
        print("\nfloat64 cross-check disagreements (knife-edge cases):")
        for p in problems:
            print("  " + p)
    else:
        print("float64 cross-check: all stage masks agree with HF (up to tie order)")
    total = sum(f.stat().st_size for f in out_dir.iterdir() if f.is_file())
    print(f"total size of {out_dir.name}/: {total} bytes")


if __name__ == "__main__":
    main()
