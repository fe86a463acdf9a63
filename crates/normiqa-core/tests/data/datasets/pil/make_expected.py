"""Provenance of resize_expected.json (PIL reference values for tests/data_decode.rs).

Run: python3 -m venv /tmp/venv-data && /tmp/venv-data/bin/pip install pillow numpy
     /tmp/venv-data/bin/python make_expected.py [SHARED_DATA_DIR] [DUMP_DIR]
With DUMP_DIR, also writes PIL's decode (and CLIVE-rule resize) of every CLIVE image as PNG
there, for the ignored test `clive_matches_pil` (env NORMIQA_PIL_DUMP=DUMP_DIR).

Resizing as torchvision.transforms.functional.resize(pil_img, (h, w)) does on PIL images:
pil_img.resize((w, h), Image.BILINEAR).
"""
import json, os, sys
import numpy as np
import PIL
from PIL import Image

def synth(w, h):
    # Same formula as synth() in tests/data_decode.rs.
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 50 + (x * y) % 17 + (x * x * 3 + y) % 29) % 256).astype(np.uint8)

def resize(a, h, w):
    return np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR))

shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 7, "shared", "data")
dump = sys.argv[2] if len(sys.argv) > 2 else None
out = {"provenance": f"make_expected.py, Pillow {PIL.__version__}, numpy {np.__version__}; "
       "PIL Image.resize((w, h), Image.BILINEAR) == torchvision resize(img, (h, w)) on PIL images",
       "synthetic": [], "clive": []}
for (sw, sh, h, w) in [(40, 30, 15, 20), (40, 30, 11, 17), (13, 9, 21, 29), (40, 30, 30, 23)]:
    r = resize(synth(sw, sh), h, w)
    out["synthetic"].append({"src_w": sw, "src_h": sh, "h": h, "w": w, "pixels": r.reshape(-1).tolist()})
grid = [int(v) for v in np.linspace(3, 496, 8)]
for name in ["1024.JPG", "1113.JPG"]:
    im = Image.open(os.path.join(shared, "clive/images", name)).convert("RGB")
    r = np.asarray(im.resize((500, 500), Image.BILINEAR))
    out["clive"].append({"image": name, "src_w": im.width, "src_h": im.height, "h": 500, "w": 500,
                         "mean_rgb": r.reshape(-1, 3).mean(0).tolist(), "grid": grid,
                         "grid_pixels": r[np.ix_(grid, grid)].reshape(-1).tolist()})
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "resize_expected.json"), "w") as f:
    json.dump(out, f, separators=(",", ":"))
if dump:
    os.makedirs(dump, exist_ok=True)
    d = os.path.join(shared, "clive/images")
    for n in sorted(os.listdir(d)):
        im = Image.open(os.path.join(d, n)).convert("RGB")
        if im.size != (500, 500):
            im = im.resize((500, 500), Image.BILINEAR)
        im.save(os.path.join(dump, os.path.splitext(n)[0] + ".png"), compress_level=1)
