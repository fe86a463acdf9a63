"""Dataset loaders with the splits ``normiqa train`` uses: CLIVE's reference permutations
(``splits.csv``, the ``exp_id`` of LinearityIQA), KonIQ-10k's official sets, seeded random or
by-reference splits for KADID-10k, TID2013 and any CSV. Paths and MOS only: no decoding."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from . import _normiqa

#: The seed of the random splits when none is given (the reference's, a run's default ``seed``).
DEFAULT_SEED: int = _normiqa.DEFAULT_SEED


@dataclass(frozen=True)
class Subset:
    """One set of a split: indices into the dataset, with their names, paths and MOS."""

    indices: np.ndarray
    names: List[str]
    paths: List[str]
    mos: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: every sample in the dataset's order, and the split's three sets."""

    name: str
    higher_is_better: bool
    names: List[str]
    paths: List[str]
    mos: np.ndarray
    train: Subset
    val: Subset
    test: Subset

    def __len__(self) -> int:
        return len(self.names)


def _subset(d: Dict[str, Any], key: str) -> Subset:
    idx = np.asarray(d[key], dtype=np.int64)
    return Subset(idx, [d["names"][i] for i in idx], [d["paths"][i] for i in idx], np.asarray(d["mos"])[idx])


def load(config: Dict[str, Any], seed: int = DEFAULT_SEED) -> Dataset:
    """Loads the dataset of a ``[data]`` table of a run's config.toml, as a dict: e.g.
    ``{"dataset": {"kind": "clive", "root": "../shared/data/clive"}, "exp_id": 3}``.
    Keys: ``dataset`` (``kind``: clive / koniq / kadid / tid2013 / csv, with their paths),
    ``split`` (default / random / by-reference / all-test), ``exp_id``, ``train_ratio``,
    ``train_val_ratio``, ``allow_outside_root``, ``drop_duplicates``. Unknown keys are refused.
    ``seed`` seeds the random splits (split seed = seed + exp_id), as a run's ``seed``."""
    d = _normiqa.load_data(json.dumps(config, default=os.fspath), int(seed))
    return Dataset(
        d["name"], d["higher_is_better"], list(d["names"]), list(d["paths"]), np.asarray(d["mos"], dtype=np.float64),
        _subset(d, "train"), _subset(d, "val"), _subset(d, "test"),
    )


def _config(dataset: Dict[str, Any], split: str, exp_id: int, train_ratio: Optional[float],
            train_val_ratio: Optional[float]) -> Dict[str, Any]:
    """A ``[data]`` table; ratios left as None take normiqa train's defaults (0.6, 0.8)."""
    cfg: Dict[str, Any] = {"dataset": dataset, "split": split, "exp_id": exp_id}
    if train_ratio is not None:
        cfg["train_ratio"] = train_ratio
    if train_val_ratio is not None:
        cfg["train_val_ratio"] = train_val_ratio
    return cfg


def clive(root: "os.PathLike[str] | str", exp_id: int = 0, split: str = "default",
          train_ratio: Optional[float] = None, train_val_ratio: Optional[float] = None) -> Dataset:
    """LIVE In the Wild (CLIVE) at ``root`` (normiqa's layout ``mos.csv``, ``images/``,
    ``splits.csv``, or the official release); split ``exp_id`` 0..9 of the reference."""
    return load(_config({"kind": "clive", "root": os.fspath(root)}, split, exp_id, train_ratio, train_val_ratio))


def koniq(labels: "os.PathLike[str] | str", images: "os.PathLike[str] | str", split: str = "default") -> Dataset:
    """KonIQ-10k: ``koniq10k_distributions_sets.csv`` and the image folder; the official sets."""
    cfg = _config({"kind": "koniq", "labels": os.fspath(labels), "images": os.fspath(images)}, split, 0, None, None)
    return load(cfg)


def kadid(root: "os.PathLike[str] | str", exp_id: int = 0, seed: int = DEFAULT_SEED,
          train_ratio: Optional[float] = None, train_val_ratio: Optional[float] = None) -> Dataset:
    """KADID-10k in its official layout (``dmos.csv``): split by reference image."""
    return load(_config({"kind": "kadid", "root": os.fspath(root)}, "default", exp_id, train_ratio, train_val_ratio), seed)


def tid2013(root: "os.PathLike[str] | str", exp_id: int = 0, seed: int = DEFAULT_SEED,
            train_ratio: Optional[float] = None, train_val_ratio: Optional[float] = None) -> Dataset:
    """TID2013 in its official layout (``mos_with_names.txt``): split by reference image."""
    return load(_config({"kind": "tid2013", "root": os.fspath(root)}, "default", exp_id, train_ratio, train_val_ratio), seed)


def csv(labels: "os.PathLike[str] | str", images: "os.PathLike[str] | str", image_column: str = "image",
        mos_column: str = "mos", split: str = "random", exp_id: int = 0, seed: int = DEFAULT_SEED,
        train_ratio: Optional[float] = None, train_val_ratio: Optional[float] = None) -> Dataset:
    """Any CSV of image names and MOS (``image_column``, ``mos_column``) with an image folder;
    ``split`` random (by image) or by-reference (needs a ``reference`` column).

    Ratios left as None are those of ``normiqa train`` (``train_ratio`` 0.6 of the images for
    training, ``train_val_ratio`` 0.8 for training and validation, the rest for test)."""
    ds = {"kind": "csv", "csv": os.fspath(labels), "images": os.fspath(images),
          "image_column": image_column, "mos_column": mos_column}
    return load(_config(ds, split, exp_id, train_ratio, train_val_ratio), seed)
