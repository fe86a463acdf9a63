"""normiqa.data on the bundled CLIVE sample."""

import csv

import numpy as np
import pytest

import normiqa
from normiqa import data


def test_clive_sample_gives_paths_and_the_mos_of_mos_csv(sample):
    ds = data.clive(sample)
    with open(sample / "mos.csv", newline="") as f:
        rows = {r["image"]: float(r["mos"]) for r in csv.DictReader(f)}
    assert len(ds) == len(rows) == 120
    assert dict(zip(ds.names, ds.mos.tolist())) == pytest.approx(rows)
    assert all(p.endswith(n) for p, n in zip(ds.paths, ds.names))


def test_split_sets_are_disjoint_cover_the_sample_and_follow_the_exp_id(sample):
    ds = data.clive(sample, exp_id=0)
    sets = [set(ds.train.indices), set(ds.val.indices), set(ds.test.indices)]
    assert sum(map(len, sets)) == 120 and set.union(*sets) == set(range(120))
    assert len(ds.train) > len(ds.test) > 0
    np.testing.assert_array_equal(ds.test.mos, ds.mos[ds.test.indices])
    other = data.clive(sample, exp_id=1)
    assert set(other.test.indices) != sets[2]


def test_unknown_keys_and_bad_ratios_are_refused(sample):
    with pytest.raises(normiqa.NormiqaError, match="exp_idx"):
        data.load({"dataset": {"kind": "clive", "root": str(sample)}, "exp_idx": 3})
    with pytest.raises(normiqa.NormiqaError, match="train_ratio 0.9"):
        data.clive(sample, train_ratio=0.9, train_val_ratio=0.5)


def test_a_missing_root_is_named(tmp_path):
    with pytest.raises(normiqa.NormiqaError, match=str(tmp_path / "nowhere")):
        data.clive(tmp_path / "nowhere")


def test_csv_datasets_split_at_random_by_seed(sample, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text((sample / "mos.csv").read_text())
    a = data.csv(labels, sample / "images", seed=1)
    b = data.csv(labels, sample / "images", seed=2)
    assert len(a) == 120 and set(a.test.indices) != set(b.test.indices)
    assert data.csv(labels, sample / "images", seed=1).test.names == a.test.names
