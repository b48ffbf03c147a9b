#!/usr/bin/env python3
"""Python reference for `genecompass-train tokenize`: the same official steps with
anndata + scanpy + numpy, for the speed / memory comparison in bench/tokenize/run.sh.

  reference.py tokenize IN.h5ad --token-dict D.json --species mouse --output OUT.safetensors
  reference.py synth OUT.h5ad --target-bytes 1e9 [--gzip] IN1.h5ad [IN2.h5ad ...]

Steps (preprocess.py, spec section 3): symbols -> Ensembl ids (HGNC / MGI table of shared/data/genes:
current symbol, then a unique previous / alias symbol), drop unmapped genes; cell QC (total > 0,
z-scores of total and mito fraction inside (-3, 3), > 6 expressed protein-coding/miRNA genes);
vocabulary filter; divide by gene medians (1 when none given); log2(1 + x) with scanpy; rank
non-zero genes by value (descending), truncate to 2048; write padded arrays as safetensors.
"""
import argparse
import gzip
import json
import sys
import os
import time

import numpy as np

GENES = os.environ.get("GC_SHARED_GENES", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/data/genes"))


def gene_table(species, genes_dir):
    name = "mgi_mouse_gene_table.tsv.gz" if species == "mouse" else "hgnc_human_gene_table.tsv.gz"
    cur, other, bio = {}, {}, {}
    with gzip.open(f"{genes_dir}/{name}", "rt") as f:
        header = f.readline().rstrip("\n").split("\t")
        col = {h: i for i, h in enumerate(header)}
        for line in f:
            r = line.rstrip("\n").split("\t")
            ens, sym = r[col["ensembl_id"]], r[col["symbol"]]
            if not ens:
                continue
            cur.setdefault(sym, ens)
            bio.setdefault(ens, r[col["canonical_biotype"]])
            for key in ("prev_symbols", "alias_symbols"):
                for a in filter(None, r[col[key]].split("|")):
                    other.setdefault(a, set()).add(ens)
    return cur, other, bio


def tokenize(args):
    import anndata as ad
    import scanpy as sc
    import scipy.sparse as sp

    t0 = time.time()
    adata = ad.read_h5ad(args.input)
    X = adata.X if sp.issparse(adata.X) else sp.csr_matrix(adata.X)
    X = sp.csr_matrix(X, dtype=np.float32)
    sample = X.data[:200_000]
    if (sample < 0).any() or (sample != np.round(sample)).any():
        sys.exit(f"{args.input}: X does not hold raw counts")
    cur, other, bio = gene_table(args.species, args.genes_dir)
    vocab = json.load(open(args.token_dict))
    medians = json.load(open(args.medians)) if args.medians else {}
    names = list(adata.var_names)
    ens = []
    for g in names:
        e = cur.get(g)
        if e is None and len(other.get(g, ())) == 1:
            e = next(iter(other[g]))
        ens.append(e)
    mapped = np.array([e is not None for e in ens])
    cols = np.flatnonzero(mapped)
    Xm = X[:, cols]
    ens_m = [ens[j] for j in cols]
    sym_m = [names[j] for j in cols]
    # Step 2: QC.
    total = np.asarray(Xm.sum(axis=1)).ravel()
    prefix = "mt-" if args.species == "mouse" else "MT-"
    mito_cols = np.array([s.startswith(prefix) for s in sym_m])
    mito = np.asarray(Xm[:, np.flatnonzero(mito_cols)].sum(axis=1)).ravel()
    keep = total > 0

    def z(x):
        sd = x.std()
        return np.zeros_like(x) if sd == 0 else (x - x.mean()) / sd

    idx = np.flatnonzero(keep)
    zt, zf = z(total[idx]), z(mito[idx] / total[idx])
    keep[idx] = (np.abs(zt) < 3) & (np.abs(zf) < 3)
    # Step 4: > 6 expressed protein-coding / miRNA genes.
    counted = np.array([bio.get(e) in ("protein_coding", "miRNA") for e in ens_m])
    n_counted = np.asarray((Xm[:, np.flatnonzero(counted)] > 0).sum(axis=1)).ravel()
    keep &= n_counted > 6
    # Step 5: vocabulary filter.
    in_vocab = np.array([e in vocab for e in ens_m])
    vcols = np.flatnonzero(in_vocab)
    tokens = np.array([vocab[ens_m[j]] for j in vcols], dtype=np.int64)
    med = np.array([medians.get(ens_m[j], 1.0) or 1.0 for j in vcols], dtype=np.float64)
    sub = ad.AnnData(X=Xm[np.flatnonzero(keep)][:, vcols].astype(np.float64))
    # Step 6-7: median division, log2(1 + x) as scanpy does it.
    sub.X = sp.csr_matrix(sub.X.multiply(1.0 / med[None, :]))
    sc.pp.log1p(sub, base=2)
    V = sp.csr_matrix(sub.X)
    # Step 8: rank, truncate, pad.
    n = V.shape[0]
    rows_ids, rows_vals = [], []
    for i in range(n):
        a, b = V.indptr[i], V.indptr[i + 1]
        v, c = V.data[a:b], V.indices[a:b]
        nz = v != 0
        v, c = v[nz], c[nz]
        order = np.argsort(-v, kind="stable")[: args.max_genes]
        if len(order) == 0:
            continue
        rows_ids.append(tokens[c[order]])
        rows_vals.append(v[order].astype(np.float32))
    n = len(rows_ids)
    L = max((len(r) for r in rows_ids), default=1)
    ids = np.zeros((n, L), dtype=np.int64)
    vals = np.zeros((n, L), dtype=np.float32)
    lens = np.zeros(n, dtype=np.int64)
    for i, (r, v) in enumerate(zip(rows_ids, rows_vals)):
        ids[i, : len(r)] = r
        vals[i, : len(v)] = v
        lens[i] = len(r)
    from safetensors.numpy import save_file

    save_file(
        {
            "input_ids": ids,
            "values": vals,
            "attention_mask": (ids != 0).astype(np.int64),
            "species": np.full((n, 1), 1 if args.species == "mouse" else 0, dtype=np.int64),
            "lengths": lens,
        },
        args.output,
    )
    secs = time.time() - t0
    print(
        json.dumps(
            {"cells_in": int(X.shape[0]), "cells_out": n, "seconds_after_import": round(secs, 3)}
        )
    )


def synth(args):
    """Stacks the input files' cells with Poisson-resampled counts (rows of each file in turn;
    all inputs must share the first file's genes, in any order) until the CSR arrays reach
    --target-bytes; written uncompressed, or gzip-compressed (anndata's `compression="gzip"`,
    level 4) with --gzip."""
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    base = ad.read_h5ad(args.inputs[0])
    genes = base.var_names
    srcs = []
    for p in args.inputs:
        a = base if p == args.inputs[0] else ad.read_h5ad(p)[:, genes]
        srcs.append(sp.csr_matrix(a.X, dtype=np.float32))
    blocks, nbytes, k = [], 0, 0
    while nbytes < args.target_bytes:
        X = srcs[k % len(srcs)].copy()
        X.data = rng.poisson(X.data).astype(np.float32)
        X.eliminate_zeros()
        blocks.append(X)
        nbytes += X.data.nbytes + X.indices.nbytes
        k += 1
    X = sp.vstack(blocks, format="csr")
    out = ad.AnnData(X=X)
    out.var_names = genes
    out.obs_names = [f"c{i}" for i in range(X.shape[0])]
    out.write_h5ad(args.output, compression="gzip" if args.gzip else None)
    print(json.dumps({"cells": int(X.shape[0]), "genes": int(X.shape[1]), "nnz": int(X.nnz)}))


def main():
    p = argparse.ArgumentParser()
    s = p.add_subparsers(dest="cmd", required=True)
    t = s.add_parser("tokenize")
    t.add_argument("input")
    t.add_argument("--token-dict", required=True)
    t.add_argument("--medians")
    t.add_argument("--species", choices=["human", "mouse"], required=True)
    t.add_argument("--output", required=True)
    t.add_argument("--max-genes", type=int, default=2048)
    t.add_argument("--genes-dir", default=GENES)
    y = s.add_parser("synth")
    y.add_argument("output")
    y.add_argument("inputs", nargs="+")
    y.add_argument("--target-bytes", type=float, default=1e9)
    y.add_argument("--gzip", action="store_true")
    a = p.parse_args()
    tokenize(a) if a.cmd == "tokenize" else synth(a)


if __name__ == "__main__":
    main()
