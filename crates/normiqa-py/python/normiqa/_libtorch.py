"""Loading libtorch: the extension links the shared libraries of the PyPI ``torch`` wheel
(``torch/lib``), as the normiqa CLI does. They are preloaded here, found without importing
``torch`` (the slim install of ``pip install --no-deps torch`` cannot be imported, and
importing the full one costs seconds), so the extension finds them wherever ``torch`` is
installed; the extension also has the run path ``$ORIGIN/../torch/lib`` for a venv.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import sys

TORCH_VERSION = "2.13.0"
INSTALL_HINT = (
    f"pip install --no-deps torch=={TORCH_VERSION} nvidia-cuda-runtime==13.0.96 "
    f"nvidia-cuda-cupti==13.0.85 (the CPU libraries only), or pip install torch=={TORCH_VERSION}"
)
# What the extension links (readelf -d), in dependency order; each finds its own dependencies
# (libgomp, the CUDA runtime) through its run paths. Not libtorch.so: in the full torch it needs
# the CUDA libraries that the slim install lacks.
_LIBRARIES = ("libc10.so", "libtorch_cpu.so")


def torch_lib_dir() -> str:
    """The ``torch/lib`` folder of the installed torch wheel (checked: its version)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"normiqa needs the libtorch libraries of the torch {TORCH_VERSION} wheel: {INSTALL_HINT}")
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is not None and version.split("+")[0] != TORCH_VERSION:
        raise ImportError(
            f"normiqa was built against libtorch {TORCH_VERSION} but torch {version} is installed: {INSTALL_HINT}"
        )
    lib = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    missing = [n for n in _LIBRARIES if not os.path.exists(os.path.join(lib, n))]
    if missing:
        raise ImportError(f"{lib} lacks {', '.join(missing)}: reinstall torch ({INSTALL_HINT})")
    return lib


def preload() -> None:
    """Loads libtorch's libraries into the process (no-op when ``torch`` is imported already)."""
    if "torch" in sys.modules:
        return
    lib = torch_lib_dir()
    for name in _LIBRARIES:
        ctypes.CDLL(os.path.join(lib, name), mode=ctypes.RTLD_GLOBAL)
