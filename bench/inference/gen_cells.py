"""Benchmark cells with realistic lengths.

Per-cell gene counts are the numbers of expressed genes (nonzeros per row of X) of real
h5ad files, capped at 2048 like the tokenizer. Ids and values are random: ids are distinct
gene tokens (2..V-1; 0 = <pad>, 1 = <mask>), values positive and sorted descending (rank
order), species alternates human / mouse. Written as the cells safetensors both the Rust CLI
and peer.py read: input_ids [N, 2048] int64, values [N, 2048] f32, species [N, 1] int64,
attention_mask [N, 2048] int64.

usage: gen_cells.py OUT.safetensors N SEED H5AD [H5AD ...]
"""

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
    out, n, seed, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    rng = np.random.default_rng(seed)
    pool = np.concatenate([expressed_genes(f) for f in files])
    lengths = np.minimum(rng.choice(pool, size=n, replace=True), MAX_LEN).astype(np.int64)
    lengths = np.maximum(lengths, 1)
    ids = np.zeros((n, MAX_LEN), np.int64)
    values = np.zeros((n, MAX_LEN), np.float32)
    mask = np.zeros((n, MAX_LEN), np.int64)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.choice(np.arange(2, VOCAB), size=length, replace=False)
        values[i, :length] = np.sort(rng.lognormal(0.5, 0.8, size=length))[::-1]
        mask[i, :length] = 1
    species = (np.arange(n) % 2).reshape(n, 1).astype(np.int64)
    save_file(
        {"input_ids": ids, "values": values, "species": species, "attention_mask": mask},
        out,
        metadata={"source": ",".join(f.rsplit("/", 1)[-1] for f in files), "seed": str(seed)},
    )
    print(
        f"{out}: {n} cells, genes per cell min {lengths.min()} median {int(np.median(lengths))} "
        f"mean {lengths.mean():.0f} max {lengths.max()} (padded tokens 2048*N = {2048 * n}, "
        f"real {int(lengths.sum())})"
    )


if __name__ == "__main__":
    main()
