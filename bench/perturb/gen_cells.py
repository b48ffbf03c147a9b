"""Benchmark cells for `genecompass-train perturb`, and a token dictionary for the random model.

Like bench/inference/gen_cells.py: per-cell gene counts are the numbers of expressed genes of
real h5ad files (capped at 2048), ids and values random, species alternating. In addition the
TARGETS genes (tokens 2 .. 2+TARGETS-1) are placed at random ranks in every cell, so that
perturbing G of them gives exactly G x N perturbed cells.

The dictionary maps fake Ensembl ids ENSG%011d (the token id) to every token of the 50,558-token
vocabulary (`<pad>` = 0, `<mask>` = 1), which is all the CLI needs to resolve --genes.

usage: gen_cells.py OUT.safetensors DICT.json N SEED TARGETS H5AD [H5AD ...]
"""

import json
import sys

import h5py
import numpy as np
from safetensors.numpy import save_file

VOCAB = 50558
MAX_LEN = 2048


def expressed_genes(path):
    with h5py.File(path, "r") as h:
        x = h["X"]
        if isinstance(x, h5py.Group):
            return np.diff(x["indptr"][:])
        return (x[:] != 0).sum(1)


def main():
    out, dict_path = sys.argv[1], sys.argv[2]
    n, seed, targets = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    files = sys.argv[6:]
    rng = np.random.default_rng(seed)
    pool = np.concatenate([expressed_genes(f) for f in files])
    lengths = np.minimum(rng.choice(pool, size=n, replace=True), MAX_LEN).astype(np.int64)
    lengths = np.maximum(lengths, targets + 1)
    ids = np.zeros((n, MAX_LEN), np.int64)
    values = np.zeros((n, MAX_LEN), np.float32)
    mask = np.zeros((n, MAX_LEN), np.int64)
    target_ids = np.arange(2, 2 + targets)
    for i, length in enumerate(lengths):
        others = rng.choice(np.arange(2 + targets, VOCAB), size=length - targets, replace=False)
        row = np.concatenate([target_ids, others])
        rng.shuffle(row)
        ids[i, :length] = row
        values[i, :length] = np.sort(rng.lognormal(0.5, 0.8, size=length))[::-1]
        mask[i, :length] = 1
    species = (np.arange(n) % 2).reshape(n, 1).astype(np.int64)
    save_file(
        {"input_ids": ids, "values": values, "species": species, "attention_mask": mask},
        out,
        metadata={"source": ",".join(f.rsplit("/", 1)[-1] for f in files), "seed": str(seed)},
    )
    vocab = {"<pad>": 0, "<mask>": 1}
    vocab.update({f"ENSG{t:011d}": t for t in range(2, VOCAB)})
    with open(dict_path, "w") as f:
        json.dump(vocab, f)
    print(
        f"{out}: {n} cells, genes per cell min {lengths.min()} median {int(np.median(lengths))} "
        f"mean {lengths.mean():.0f} max {lengths.max()}; {targets} target genes in every cell"
    )


if __name__ == "__main__":
    main()
