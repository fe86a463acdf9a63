"""Fixtures of the wheel's tests. They run against the installed wheel from another folder
(``./run test-python``); ``NORMIQA_REPO`` names the checkout (for the bundled CLIVE sample,
``assets/clive-sample``) and ``NORMIQA_CLI`` the ``normiqa`` binary whose numbers the package
must reproduce."""

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import normiqa


def _repo() -> Path:
    repo = os.environ.get("NORMIQA_REPO")
    if not repo:
        pytest.exit("set NORMIQA_REPO to the normiqa checkout (./run test-python does)", returncode=2)
    return Path(repo)


@pytest.fixture(scope="session")
def sample() -> Path:
    """The bundled CLIVE sample: mos.csv, splits.csv, images/ (120 photos)."""
    return _repo() / "assets" / "clive-sample"


@pytest.fixture(scope="session")
def photos(sample):
    """Four photos of the sample, as paths."""
    return sorted((sample / "images").iterdir())[:4]


@pytest.fixture(scope="session")
def cli():
    """Runs the normiqa binary; returns its standard output."""
    exe = os.environ.get("NORMIQA_CLI") or str(_repo() / "target" / "release" / "normiqa")

    def run(*args: str) -> str:
        r = subprocess.run([exe, *args], capture_output=True, text=True)
        assert r.returncode == 0, f"normiqa {' '.join(args)} failed:\n{r.stderr}"
        return r.stdout

    return run


@pytest.fixture(scope="session")
def predict(cli):
    """``normiqa predict --format json`` of files with options: {path: score}."""

    def run(files, *options: str):
        out = cli("predict", "--format", "json", *options, *map(str, files))
        return {row["image"]: row["score"] for row in json.loads(out)}

    return run


@pytest.fixture(scope="session")
def model():
    """The shipped default model (the ensemble of three EfficientNet-Lite models)."""
    m = normiqa.Model.load()
    yield m
    m.close()


@pytest.fixture(scope="session")
def lite0():
    """The shipped Lite0 model alone (a third of the ensemble's work: the option tests)."""
    m = normiqa.Model.load(normiqa.default_model_dir().parent / "clive-efficientnet-lite0")
    yield m
    m.close()


@pytest.fixture(scope="session")
def lite0_option():
    """`normiqa predict` options naming the same Lite0 model (the repository's copy)."""
    return ("--model", str(_repo() / "models" / "clive-efficientnet-lite0"))


def write_bmp(path: Path, img: np.ndarray) -> None:
    """An HxWx3 uint8 array as a 24-bit BMP (lossless, so the file decodes to the array)."""
    h, w, _ = img.shape
    row = w * 3
    pad = (4 - row % 4) % 4
    size = 54 + (row + pad) * h
    header = b"BM" + struct.pack("<IHHI", size, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, (row + pad) * h, 2835, 2835, 0, 0)
    rows = [img[y, :, ::-1].tobytes() + b"\0" * pad for y in range(h - 1, -1, -1)]
    path.write_bytes(header + info + b"".join(rows))


@pytest.fixture
def random_image():
    """A deterministic 256x320 RGB image with structure (gradients plus noise)."""

    def make(seed: int = 0, h: int = 256, w: int = 320) -> np.ndarray:
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], axis=-1)
        return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)

    return make
