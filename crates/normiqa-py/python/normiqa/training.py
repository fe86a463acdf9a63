"""Training from Python: the ``train``, ``distill`` and ``run`` configurations of the CLI, given
as a dict or a TOML file, run by the same Rust code (``normiqa train --config``, ``normiqa
distill --config``, ``normiqa run``), with the GIL released. The run folder's results are read
back and returned.

Progress: every log line the CLI prints (epochs, losses, validation and test metrics, warnings)
is passed to ``progress(level, message)`` if given (level: "info", "warn", "error"), else to the
``logging`` logger ``"normiqa"``. The callback runs on normiqa's threads, holding the GIL while
it runs; an exception it raises does not stop the run midway (there is no cancellation point)
but is raised when the run ends. One progress callback is active at a time in a process.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple, Union

from . import _normiqa

Config = Union[Dict[str, Any], str, "os.PathLike[str]"]
Progress = Callable[[str, str], None]


def _text(config: Config) -> Tuple[str, bool, str]:
    """(text, is_json, name): a dict as JSON, a path's TOML text and its stem."""
    if isinstance(config, dict):
        return json.dumps(config, default=os.fspath), True, "experiment"
    path = Path(config)
    try:
        return path.read_text(encoding="utf-8"), False, path.stem
    except OSError as e:
        raise _normiqa.NormiqaError(f"reading the config {path}: {e.strerror or e}") from None


@contextlib.contextmanager
def _reporting(progress: Optional[Progress]) -> Iterator[None]:
    if progress is not None and not callable(progress):
        raise TypeError("progress: expected a callable progress(level, message) or None")
    _normiqa.set_progress(progress)
    failed = True
    try:
        yield
        failed = False
    finally:
        try:
            _normiqa.set_progress(None)
        except BaseException:
            if not failed:
                raise


def _json(path: Path) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def train(config: Config, out: "os.PathLike[str] | str", overwrite: bool = False,
          device: Optional[str] = None, progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Trains a configuration (the keys of a run's ``config.toml``; ``data`` is required, the
    rest defaults as in ``normiqa train``) into the run folder ``out``.

    As the CLI: a folder holding a run of another configuration is refused unless
    ``overwrite``; an unfinished run of this configuration is resumed; a finished one is left
    as it is. ``device`` overrides the config's. Returns ``{"dir", "already_finished",
    "run"}``, ``run`` being the run folder's ``run.json`` (best epoch, mapping, val and test
    metrics per head, timings)."""
    text, is_json, _ = _text(config)
    with _reporting(progress):
        folder, finished = _normiqa.train(text, is_json, os.fspath(out), overwrite, device)
    folder = Path(folder)
    return {"dir": folder, "already_finished": finished, "run": _json(folder / "run.json")}


def distill(config: Config, out: "os.PathLike[str] | str", overwrite: bool = False,
            progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Runs a Multi-Rate Knowledge Distillation experiment (what ``normiqa distill --config``
    reads, e.g. experiments/mrkd/*.toml) into ``out``. Returns ``{"dir",
    "already_finished", "results"}``, ``results`` being ``out/results.json``."""
    text, is_json, _ = _text(config)
    with _reporting(progress):
        finished = _normiqa.distill(text, is_json, os.fspath(out), overwrite)
    folder = Path(out)
    return {"dir": folder, "already_finished": finished, "results": _json(folder / "results.json")}


def run(experiment: Config, out: "os.PathLike[str] | str" = "runs", only: Optional[Iterable[int]] = None,
        device: Optional[str] = None, overwrite: bool = False, name: Optional[str] = None,
        progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Runs an experiment (a base configuration plus ``[sweep]`` tables, as ``normiqa run``)
    under ``out/<name>/``: every combination, skipping finished ones; ``only`` picks runs by
    index. ``name`` defaults to the experiment's ``[experiment] name``, else the file's stem
    (``"experiment"`` for a dict). Returns ``{"dir", "runs"}``, ``runs`` mapping each run
    folder's name to its ``run.json``."""
    text, is_json, stem = _text(experiment)
    with _reporting(progress):
        folder = Path(_normiqa.run(text, is_json, name or stem, os.fspath(out),
                                   None if only is None else [int(i) for i in only], device, overwrite))
    runs = {p.parent.name: _json(p) for p in sorted(folder.glob("*/run.json"))}
    return {"dir": folder, "runs": runs}
