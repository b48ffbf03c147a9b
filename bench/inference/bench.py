"""Runs the four inference modes on one model shape and prints a markdown table.

(a) peer padded  : PyTorch peer, every cell padded to 2048 (the official layout)
(b) peer dynamic : PyTorch peer, length-sorted batches padded to the batch max
(c) rust folded  : `genecompass-train embed --cls-only` (dynamic padding, folded embedding; the
                   CLS cell embedding only, as the peer writes, so the last layer runs one row
                   per cell)
(d) rust unfolded: the same with `--unfolded`
(e) rust again   : (c) run a second time (on a GPU: warm kernel and autotune caches)
(f) rust, no rounding: (c) with `--pad-multiple 1` (the GPU default rounds lengths up to 64)
(g) rust, stored : (c) with `--padding stored` (every cell padded to 2048, one shape)
(h) rust + mean  : (c) with `--cells-only` instead: the mean over genes is written too, so the
                   last layer runs every gene's row

`--device cuda` runs the peer on the GPU and the Rust CLI with `--backend cuda`.

Each mode is a separate process under `/usr/bin/time -v` (peak RSS = its max resident set).
cells/s is the forward-loop time each program reports (model loading excluded; the Rust time
includes folding the embedding tables). CLS embeddings of every mode are compared with (b).

usage: bench.py SHAPE MODEL_DIR CELLS OUT_DIR BIN [--batch-size B] [--threads T] [--modes abcdh]
                [--device cpu|cuda] [--rounds R]

The modes run interleaved, R rounds of a, b, c, d, ...: the machine's speed drifts by ±20 %
over minutes (a shared VM), so each ratio is taken within one round, and the tables report
the median over rounds with the range.
"""

import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))


TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run(name, cmd, env):
    full = ([TIME, "-v"] if TIME else []) + cmd
    print(f"[{name}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    p = subprocess.run(full, env=env, capture_output=True, text=True)
    text = p.stdout + p.stderr
    if p.returncode != 0:
        raise SystemExit(f"{name} failed ({p.returncode}):\n{text[-4000:]}")
    m = re.search(r"embedded (\d+) cells in ([\d.]+)s", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    n, secs = int(m.group(1)), float(m.group(2))
    rss_mib = int(rss.group(1)) / 1024 if rss else float("nan")
    print(f"[{name}] {n} cells in {secs:.2f}s, peak RSS {rss_mib:.0f} MiB", file=sys.stderr, flush=True)
    gpu = re.search(r"peak GPU memory (\d+) MiB", text)
    return {"cells": n, "secs": secs, "rss_mib": rss_mib, "wall": wall.group(1) if wall else "",
            "gpu_mib": int(gpu.group(1)) if gpu else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape")
    ap.add_argument("model_dir")
    ap.add_argument("cells")
    ap.add_argument("out_dir")
    ap.add_argument("bin")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="abcdh")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (peer on torch's GPU, Rust --backend cuda)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every mode")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads),
               MKL_NUM_THREADS=str(a.threads), RUST_LOG="warn")
    py = sys.executable
    out = lambda m: os.path.join(a.out_dir, f"{a.shape}_{m}.safetensors")  # noqa: E731
    peer = [py, os.path.join(HERE, "peer.py"), a.model_dir, a.cells]
    rust = [a.bin, "embed", "--checkpoint", a.model_dir, "--input", a.cells,
            "--batch-size", str(a.batch_size), "--backend", a.device]
    dev = ["--device", a.device]
    modes = {
        "a": ("(a) peer, padded to 2048", peer + [out("a"), "--mode", "padded", "--batch-size", str(a.batch_size),
                                                 "--threads", str(a.threads)] + dev),
        "b": ("(b) peer, dynamic padding", peer + [out("b"), "--mode", "dynamic", "--batch-size", str(a.batch_size),
                                                  "--threads", str(a.threads)] + dev),
        "c": ("(c) rust, dynamic + folded", rust + ["--output", out("c"), "--cls-only"]),
        "d": ("(d) rust, dynamic, unfolded", rust + ["--output", out("d"), "--cls-only", "--unfolded"]),
        "e": ("(e) rust, (c) again", rust + ["--output", out("e"), "--cls-only"]),
        "f": ("(f) rust, lengths not rounded", rust + ["--output", out("f"), "--cls-only", "--pad-multiple", "1"]),
        "g": ("(g) rust, padded to 2048", rust + ["--output", out("g"), "--cls-only", "--padding", "stored"]),
        "h": ("(h) rust, (c) + mean over genes", rust + ["--output", out("h"), "--cells-only"]),
    }
    rounds = []
    for i in range(max(a.rounds, 1)):
        print(f"== round {i + 1} of {a.rounds}", file=sys.stderr, flush=True)
        rounds.append({key: run(modes[key][0], modes[key][1], env) for key in a.modes})
    results = {}
    for key in a.modes:
        secs = [r[key]["secs"] for r in rounds]
        results[key] = dict(rounds[0][key], label=modes[key][0], secs=float(np.median(secs)),
                            secs_all=secs, rss_mib=max(r[key]["rss_mib"] for r in rounds))
    ref = load_file(out("b"))["cell_embedding"] if "b" in results else None
    for key, r in results.items():
        emb = load_file(out(key))["cell_embedding"]
        r["max_abs_diff_vs_b"] = float(np.abs(emb - ref).max()) if ref is not None else float("nan")
    cells = load_file(a.cells)
    lengths = cells["attention_mask"].sum(1)
    print(f"\n### {a.shape}: {len(lengths)} cells, genes/cell median {int(np.median(lengths))}, "
          f"mean {lengths.mean():.0f}, max {lengths.max()}; batch size {a.batch_size}; "
          f"{'GPU (cuda)' if a.device == 'cuda' else f'{a.threads} threads'}; {len(rounds)} rounds\n")
    print("| mode | cells/s (median) | forward s, median (min–max) | peak RSS MiB | peak GPU MiB (torch) "
          "| max abs diff of CLS vs (b) |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, r in results.items():
        gpu = "—" if r["gpu_mib"] is None else str(r["gpu_mib"])
        print(f"| {r['label']} | {r['cells'] / r['secs']:.3f} | {r['secs']:.2f} ({min(r['secs_all']):.2f}–"
              f"{max(r['secs_all']):.2f}) | {r['rss_mib']:.0f} | {gpu} | {r['max_abs_diff_vs_b']:.2e} |")
    print("\nRatios (Rust cells/s ÷ peer cells/s), each taken within one round: median (per round)")
    for rk in "cdefgh":
        for pk in "ab":
            if rk in results and pk in results:
                per = [r[pk]["secs"] / r[rk]["secs"] for r in rounds]
                each = ", ".join(f"{x:.2f}" for x in per)
                print(f"\nratio {rk}/{pk}: {float(np.median(per)):.2f} ({each})", end="")
    print("\n")
    with open(os.path.join(a.out_dir, f"{a.shape}_results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
