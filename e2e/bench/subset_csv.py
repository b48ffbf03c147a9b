"""Writes the first N cells of an h5ad (CSR X of raw counts, anndata >= 0.7 layout) as a
cells x genes CSV: the benchmark's input, small enough for a software WebGPU adapter.

    python3 subset_csv.py IN.h5ad N OUT.csv
"""
import sys

import h5py
import numpy as np


def names(group):
    index = group.attrs["_index"]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in group[index][:]]


def main():
    path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with h5py.File(path, "r") as f:
        x = f["X"]
        if x.attrs.get("encoding-type") != "csr_matrix":
            sys.exit(f"{path}: X must be a CSR matrix")
        genes = names(f["var"])
        cells = names(f["obs"])[:n]
        indptr = x["indptr"][: n + 1]
        data = x["data"][: indptr[-1]]
        indices = x["indices"][: indptr[-1]]
    dense = np.zeros((len(cells), len(genes)), dtype=np.int64)
    for i in range(len(cells)):
        lo, hi = indptr[i], indptr[i + 1]
        dense[i, indices[lo:hi]] = np.rint(data[lo:hi]).astype(np.int64)
    with open(out, "w") as w:
        w.write("cell," + ",".join(genes) + "\n")
        for name, row in zip(cells, dense):
            w.write(name + "," + ",".join(map(str, row)) + "\n")
    print(f"{out}: {len(cells)} cells x {len(genes)} genes", file=sys.stderr)


if __name__ == "__main__":
    main()
