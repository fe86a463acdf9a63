"""The reference LinearityIQA's CLIVE splits for any --exp_id, as a normiqa splits file.

The authors' code (github.com/lidq92/LinearityIQA, IQAdataset.py) takes split `exp_id` from
`data/CLIVEinfo.mat`: `index = Info['index'][:, exp_id % index.shape[1]]` (a 1162 x 1000 matrix
of random permutations of the images' `ref_ids`); the first `train_ratio` of the permutation
is the training set, the next part validation, the rest test. An image's position in column k
is its `order_k` in normiqa's splits format (`image,order_0,...`, sorted by order_k, then cut).

    python reference/clive_splits.py CLIVEinfo.mat clive-splits-1000.csv [--check ../shared/data/clive/splits.csv]
    normiqa train --dataset clive --splits clive-splits-1000.csv --exp-id 12 ...

Needs h5py (the .mat is MATLAB v7.3, i.e. HDF5). --check compares the first columns with an
existing splits file (the shared one holds the first 10) by image stem and exits 1 on a mismatch.
"""
import argparse
import csv
import os
import sys

import h5py
import numpy as np


def read_mat(path):
    with h5py.File(path, "r") as f:
        index = np.asarray(f["index"], dtype=np.int64)  # (1162, K)
        ref_ids = np.asarray(f["ref_ids"][0, :], dtype=np.int64)
        names = ["".join(chr(c) for c in f[r][()].flatten()) for r in f["im_names"][0, :]]
    return index, ref_ids, names


def orders(index, ref_ids):
    """orders[i, k] = position of image i (its ref_id) in permutation k."""
    n, k = index.shape
    pos = np.empty((int(index.max()) + 1, k), dtype=np.int64)
    for col in range(k):
        pos[index[:, col], col] = np.arange(n)
    return pos[ref_ids, :]


def stem(name):
    return os.path.splitext(os.path.basename(name))[0]


def check(path, names, order):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = [c for c in rows[0] if c.startswith("order_")]
    mine = {stem(n): order[i] for i, n in enumerate(names)}
    bad = [(r["image"], c) for r in rows for c in cols if int(r[c]) != mine[stem(r["image"])][int(c[6:])]]
    print(f"--check {path}: {len(rows)} images x {len(cols)} permutations, {len(bad)} differ")
    return not bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mat", help="the reference's data/CLIVEinfo.mat")
    ap.add_argument("out", help="the splits CSV to write")
    ap.add_argument("--check", help="an existing splits file whose columns must agree")
    a = ap.parse_args()
    index, ref_ids, names = read_mat(a.mat)
    order = orders(index, ref_ids)
    if a.check and not check(a.check, names, order):
        sys.exit(1)
    tmp = a.out + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image"] + [f"order_{k}" for k in range(order.shape[1])])
        for i, n in enumerate(names):
            w.writerow([n] + order[i].tolist())
    os.replace(tmp, a.out)
    print(f"{a.out}: {len(names)} images x {order.shape[1]} permutations")


if __name__ == "__main__":
    main()
