#!/usr/bin/env python3
"""Independent reference computation of the official GeneCompass tokenization steps
(xCompass-AI/GeneCompass preprocess/preprocess.py, spec §3), used to produce
core/tests/data/tokenize_baron_expected.json for tests/tokenize_pipeline.rs.

Written from the spec and the official script, not from the Rust code. Needs numpy, scipy, h5py.

    python3 core/tests/reference/tokenize_reference.py \
        /work/shared/data/h5ad/baron_mouse_pancreas_822.h5ad \
        /work/shared/data/genes/mgi_mouse_gene_table.tsv.gz core/tests/data

Inputs it derives (written to core/tests/data/tokenize_baron_inputs.json):
- rows: per library (mouse1_lib1/2/3) its first 15 cells plus its largest cell by
  total counts (45 distinct cells), sample = library;
- a small vocabulary: <pad>=0, <mask>=1, then every mapped mouse gene whose Ensembl number is
  divisible by 11, in DESCENDING Ensembl id order (so token order differs from column order), plus 3 human ids;
- medians: median of non-zero raw counts over all 822 cells divided by 1.5, for vocabulary genes;
  every 7th vocabulary gene left out (divisor 1) and one set to NaN (JSON null -> value 0).

Steps reproduced (official order):
1. symbol -> Ensembl via the MGI table (rows with an Ensembl id): current symbol, previous, alias,
   case-insensitive current; a name matching several genes at the first rule that hits is dropped.
   Unmapped genes are dropped.
2. cells with total counts > 0; scipy.stats.zscore (ddof 0) of total counts and of mito fraction
   (mito = file symbol starting with 'mt-'), within each sample; both strictly inside (-3, 3).
   A zero spread gives z = 0 (the Rust default ZeroVariance::Keep); config
   'official_scipy_zero_variance' keeps scipy's NaN, which drops every cell of this file.
3. gene filter: skipped (official list not shipped).
4. cells with > 6 expressed protein_coding/miRNA genes (MGI canonical biotype).
5. vocabulary filter. 6. x / median (missing -> 1; np.nan_to_num). [config b: counts first scaled
   to 1e4 per cell over the vocabulary genes]. 7. log2(1+x) = log1p(x)/log(2).
8. rank by value descending, ties by ascending token id; truncate. Values are compared as float32
   (what is stored): float64 values like 6/2 and 4/(4/3) differ in the last bit and numpy's log1p and
   libm's log1p round them differently, so ranking on float64 would order ties by platform noise.
"""
import gzip, json, sys
import numpy as np
import h5py
from scipy.stats import zscore

h5ad, mgi_path, out_dir = sys.argv[1:4]

# ---- data
f = h5py.File(h5ad, "r")
indptr, indices, data = f["X/indptr"][:], f["X/indices"][:], f["X/data"][:]
names = [s.decode() for s in f["var/_index"][:]]
cells = [s.decode() for s in f["obs/_index"][:]]
n_cells, n_genes = len(cells), len(names)
X = np.zeros((n_cells, n_genes), dtype=np.float64)
for i in range(n_cells):
    X[i, indices[indptr[i]:indptr[i + 1]]] = data[indptr[i]:indptr[i + 1]]
lib = [c.split(".")[0] for c in cells]
rows = []
tot_all = X.sum(axis=1)
for l in ["mouse1_lib1", "mouse1_lib2", "mouse1_lib3"]:
    in_lib = [i for i in range(n_cells) if lib[i] == l]
    top = max(in_lib, key=lambda i: tot_all[i])  # the library's largest cell: a total-count outlier
    rows += sorted(set(in_lib[:15]) | {top})

# ---- MGI table (rows with an Ensembl id, sorted like the embedded asset)
recs = []
with gzip.open(mgi_path, "rt") as fh:
    header = fh.readline().rstrip("\n").split("\t")
    c = {h: k for k, h in enumerate(header)}
    for line in fh:
        t = line.rstrip("\n").split("\t")
        e = t[c["ensembl_id"]].strip()
        if e:
            recs.append((e, t[c["symbol"]].strip(), t[c["prev_symbols"]].strip(),
                         t[c["alias_symbols"]].strip(), t[c["canonical_biotype"]].strip()))
recs.sort(key=lambda r: "\t".join(r))
def lst(s): return [x.strip() for x in s.split("|") if x.strip()]
maps = [{}, {}, {}, {}]
biotype = {}
for e, s, p, a, b in recs:
    biotype.setdefault(e, b)
    maps[0].setdefault(s, set()).add(e)
    for x in lst(p): maps[1].setdefault(x, set()).add(e)
    for x in lst(a): maps[2].setdefault(x, set()).add(e)
    maps[3].setdefault(s.upper(), set()).add(e)
def resolve(name):
    for k, m in enumerate(maps):
        key = name.upper() if k == 3 else name
        if key in m:
            return next(iter(m[key])) if len(m[key]) == 1 else None
    return None
ens = [resolve(n) for n in names]
mapped = np.array([e is not None for e in ens])

# ---- vocabulary and medians (derived, deterministic)
vocab_genes = sorted({e for e in ens if e is not None and int(e[7:]) % 11 == 0}, reverse=True)
tokens = ["<pad>", "<mask>", "ENSG00000141510", "ENSG00000111640", "ENSG00000075624"] + vocab_genes
token_dict = {t: i for i, t in enumerate(tokens)}
medians = {}
for k, g in enumerate(vocab_genes):
    if k % 7 == 3:
        continue
    cols = [j for j, e in enumerate(ens) if e == g]
    v = X[:, cols].ravel()
    v = v[v > 0]
    if len(v):
        medians[g] = float(np.median(v)) / 1.5
nan_gene = vocab_genes[5] if vocab_genes[5] in medians else vocab_genes[6]
medians[nan_gene] = float("nan")

# ---- the official steps on the selected rows
def z(x, keep_zero_variance):
    """scipy.stats.zscore; with keep_zero_variance, a zero spread gives z = 0 instead of NaN."""
    if keep_zero_variance and np.std(x) == 0:
        return np.zeros(len(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        return zscore(x)

def run(normalize_total, max_len, sample_col, keep_zero_variance=True):
    A = X[rows][:, mapped]                      # step 1: unmapped genes dropped
    sym = [n for n, m in zip(names, mapped) if m]
    g_ens = [e for e in ens if e is not None]
    samples = np.array([lib[i] for i in rows]) if sample_col else np.array([""] * len(rows))
    total = A.sum(axis=1)
    keep = total > 0
    n_nonzero_total = int(keep.sum())
    mito = np.array([s.startswith("mt-") for s in sym])
    mito_frac = np.zeros(len(rows))
    mito_frac[keep] = A[keep][:, mito].sum(axis=1) / total[keep]
    for s in sorted(set(samples)):
        idx = np.where(keep & (samples == s))[0]
        zt, zf = z(total[idx], keep_zero_variance), z(mito_frac[idx], keep_zero_variance)
        ok = (zt > -3) & (zt < 3) & (zf > -3) & (zf < 3)
        keep[idx] = ok
    n_after_z = int(keep.sum())
    counted = np.array([biotype.get(e) in ("protein_coding", "miRNA") for e in g_ens])
    keep &= np.count_nonzero(A[:, counted], axis=1) > 6
    n_after_genes = int(keep.sum())
    in_vocab = np.array([e in token_dict for e in g_ens])
    B = A[:, in_vocab]
    b_ens = [e for e, v in zip(g_ens, in_vocab) if v]
    tok = np.array([token_dict[e] for e in b_ens])
    med = np.array([medians.get(e, 1.0) for e in b_ens])
    out = []
    for r in np.where(keep)[0]:
        x = B[r].copy()
        if normalize_total is not None:
            x = x / x.sum() * normalize_total
        x = np.nan_to_num(x / med)
        v = np.log1p(x) / np.log(2)
        nz = np.nonzero(v)[0]
        v32 = v[nz].astype(np.float32)  # the stored values; equal float32 values are ties
        order = np.lexsort((tok[nz], -v32))  # value descending, ties by ascending token id
        ids = tok[nz][order][:max_len]
        vals = v32[order][:max_len]
        out.append({"row": int(rows[r]), "input_ids": ids.tolist(),
                    "values": [float("%.8g" % x) for x in vals.tolist()]})
    return {"qc": {"cells_in": len(rows), "after_nonzero_total": n_nonzero_total,
                   "after_zscore": n_after_z, "after_min_genes": n_after_genes},
            "cells": out}

expected = {
    "official": run(None, 2048, True),
    "normalize_total_1e4_max64_no_sample": run(1e4, 64, False),
    # The official scipy behaviour: this file has no 'mt-' gene, the mito fraction has zero spread,
    # zscore gives NaN and every cell is dropped.
    "official_scipy_zero_variance": run(None, 2048, True, keep_zero_variance=False),
}
inputs = {
    "source": "baron_mouse_pancreas_822.h5ad (shared/data/h5ad), generated by tests/reference/tokenize_reference.py",
    "rows": rows,
    "token_dict": token_dict,
    "medians": {k: (None if np.isnan(v) else v) for k, v in medians.items()},
}
json.dump(inputs, open(f"{out_dir}/tokenize_baron_inputs.json", "w"), separators=(",", ":"))
json.dump(expected, open(f"{out_dir}/tokenize_baron_expected.json", "w"), separators=(",", ":"))
for k, v in expected.items():
    print(k, v["qc"], "tokens:", sum(len(c["input_ids"]) for c in v["cells"]))
print("vocab", len(tokens), "medians", len(medians), "mapped genes", int(mapped.sum()), "of", n_genes)
