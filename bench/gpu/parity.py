"""Compares the CLI's outputs on the reference-tiny fixture with the official golden tensors.

Run by bench/gpu/run.sh after `genecompass-train embed|classify` wrote, for each backend B:
  emb_B      embed, stored padding, folded embedding      vs bert_last_hidden_state_masked
  embu_B     the same, unfolded embedding                 vs bert_last_hidden_state_masked
  embn_B     embed --no-attention-mask                    vs bert_last_hidden_state_nomask
  cls_B      classify (official collator: int values)     vs cls_logits_official_collator
  clsf_B     classify --truncate-values false             vs cls_logits

usage: parity.py OUTPUTS.safetensors WORK_DIR BACKEND [BACKEND ...]
Prints one row per (output, backend) and exits 1 if any difference exceeds 1e-4.
"""

import os
import sys

import numpy as np
from safetensors.numpy import load_file

CHECKS = [
    ("emb", "last_hidden_state", "bert_last_hidden_state_masked"),
    ("embu", "last_hidden_state", "bert_last_hidden_state_masked"),
    ("embn", "last_hidden_state", "bert_last_hidden_state_nomask"),
    ("cls", "logits", "cls_logits_official_collator"),
    ("clsf", "logits", "cls_logits"),
]
TOL = 1e-4


def main():
    golden = load_file(sys.argv[1])
    work, backends = sys.argv[2], sys.argv[3:]
    worst = 0.0
    print("| output | golden tensor | " + " | ".join(f"max abs diff ({b})" for b in backends) + " |")
    print("|---|---|" + "---:|" * len(backends))
    for stem, key, gold in CHECKS:
        cells = []
        for b in backends:
            path = os.path.join(work, f"{stem}_{b}.safetensors")
            if not os.path.exists(path):
                cells.append("missing")
                worst = float("inf")
                continue
            got, want = load_file(path)[key], golden[gold]
            if got.shape != want.shape:
                cells.append(f"shape {got.shape} != {want.shape}")
                worst = float("inf")
                continue
            d = float(np.abs(got - want).max())
            worst = max(worst, d)
            cells.append(f"{d:.2e}")
        print(f"| {stem} | {gold} | " + " | ".join(cells) + " |")
    print(f"\nworst {worst:.2e} (tolerance {TOL:g}): {'PASS' if worst <= TOL else 'FAIL'}")
    sys.exit(0 if worst <= TOL else 1)


if __name__ == "__main__":
    main()
