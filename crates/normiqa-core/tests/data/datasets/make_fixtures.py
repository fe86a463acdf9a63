"""Generates the tiny dataset fixtures in this folder, each in its dataset's official layout.

Run: /tmp/venv-data/bin/python make_fixtures.py   (needs pillow, numpy; deterministic)
MAT v5 files are written by hand below (an independent writer, to cross-check the reader).
"""
import os, struct, zlib, shutil
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))

def img(seed, w=8, h=8):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))

def save(im, path, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im.save(path, **kw)

def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="\n") as f:
        f.write(text)

# ---- MAT v5 writer (little endian) ----
def element(ty, data):
    pad = (-len(data)) % 8
    return struct.pack("<II", ty, len(data)) + data + b"\0" * pad

def matrix(cls, dims, name, body):
    flags = element(6, struct.pack("<II", cls, 0))
    d = element(5, struct.pack("<%di" % len(dims), *dims))
    n = element(1, name.encode())
    return element(14, flags + d + n + body)

def char_array(s, name=""):
    return matrix(4, [1, len(s)], name, element(4, struct.pack("<%dH" % len(s), *map(ord, s))))

def double_array(vals, name, dims):
    return matrix(6, dims, name, element(9, struct.pack("<%dd" % len(vals), *vals)))

def cell_of_strings(strs, name):
    return matrix(1, [len(strs), 1], name, b"".join(char_array(s) for s in strs))

def matfile(path, var, compress):
    hdr = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by make_fixtures.py".ljust(116, b" ")
    hdr += b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    body = struct.pack("<II", 15, len(z := zlib.compress(var))) + z if compress else var
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(hdr + body)

# ---- CLIVE, official release layout ----
root = os.path.join(HERE, "clive_official")
shutil.rmtree(root, ignore_errors=True)
names = [f"t{i}.bmp" for i in range(1, 8)] + ["100.bmp", "101.bmp", "1000.JPG", "1001.JPG", "102.bmp"]
mos = [50.0 + i for i in range(7)] + [32.561075, 66.359549, 10.5, 90.25, 45.0]
std = [10.0 + i for i in range(7)] + [19.124726, 20.219786, 5.5, 7.25, 12.0]
matfile(os.path.join(root, "Data/AllImages_release.mat"), cell_of_strings(names, "AllImages_release"), True)
matfile(os.path.join(root, "Data/AllMOS_release.mat"), double_array(mos, "AllMOS_release", [1, len(mos)]), True)
matfile(os.path.join(root, "Data/AllStdDev_release.mat"), double_array(std, "AllStdDev_release", [1, len(std)]), False)
save(img(100), os.path.join(root, "Images/100.bmp"))
save(img(101), os.path.join(root, "Images/101.webp"), lossless=True)   # a BMP re-encoded as WebP
save(img(1000, 12, 10), os.path.join(root, "Images/1000.JPG"), quality=90)
save(img(1001), os.path.join(root, "Images/1001.JPG"), quality=90)
save(img(102), os.path.join(root, "Images/102.png"))                   # a BMP re-encoded as PNG
# splits in the normiqa naming: matched by stem
write(os.path.join(root, "splits.csv"),
      "image,order_0,order_1\n100.webp,4,0\n101.webp,3,1\n1000.JPG,2,2\n1001.JPG,1,3\n102.webp,0,4\n")

# ---- CLIVE, normiqa layout (mos.csv + images/ + splits.csv), 10 images ----
root = os.path.join(HERE, "clive_normiqa")
shutil.rmtree(root, ignore_errors=True)
rows, split_rows = [], []
perm0 = [3, 7, 0, 9, 1, 5, 8, 2, 6, 4]  # order_0 value of image i
for i in range(10):
    n = f"{200 + i}.webp" if i % 2 == 0 else f"{200 + i}.JPG"
    if i % 2 == 0:
        save(img(200 + i), os.path.join(root, "images", n), lossless=True)
    else:
        save(img(200 + i), os.path.join(root, "images", n), quality=90)
    rows.append(f"{n},{10 + 7.5 * i:.6f},{5 + i:.6f}")
    split_rows.append(f"{n},{perm0[i]},{9 - i}")
write(os.path.join(root, "mos.csv"), "image,mos,mos_std\n" + "\n".join(rows) + "\n")
write(os.path.join(root, "splits.csv"), "image,order_0,order_1\n" + "\n".join(split_rows) + "\n")

# ---- KonIQ-10k: labels csv + 1024x768/ ----
root = os.path.join(HERE, "koniq10k")
shutil.rmtree(root, ignore_errors=True)
kon = [("10004473376.jpg", "77.3836206897", "0.527277894494", "training"),
       ("10007357496.jpg", "68.7285714286", "0.580003024795", "test"),
       ("10007903636.jpg", "62.0", "0.6", "validation"),
       ("10009096245.jpg", "55.5", "0.5", "training"),
       ("100117038.jpg", "40.25", "0.7", "test")]
lines = ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set"]
for i, (n, m, s, st) in enumerate(kon):
    lines.append(f"{n},0.0,0.1,0.2,0.3,0.4,100,{m},{s},{st}")
    save(img(300 + i), os.path.join(root, "1024x768", n), quality=90)
write(os.path.join(root, "koniq10k_distributions_sets.csv"), "\n".join(lines) + "\n")

# ---- KADID-10k: dmos.csv + images/ ----
root = os.path.join(HERE, "kadid10k")
shutil.rmtree(root, ignore_errors=True)
kad = [("I01_01_01.png", "I01.png", "4.57", "0.496"), ("I01_25_05.png", "I01.png", "2.10", "0.8281"),
       ("I02_10_03.png", "I02.png", "3.00", "0.25"), ("I03_19_02.png", "I03.png", "3.50", "0.0")]
write(os.path.join(root, "dmos.csv"), "dist_img,ref_img,dmos,var\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in kad))
for i, (n, r, _, _) in enumerate(kad):
    save(img(400 + i), os.path.join(root, "images", n))
    save(img(500 + int(r[1:3])), os.path.join(root, "images", r))

# ---- TID2013: mos_with_names.txt + mos_std.txt + distorted_images/ ----
root = os.path.join(HERE, "tid2013")
shutil.rmtree(root, ignore_errors=True)
tid = [("5.51429", "i01_01_1.bmp", "I01_01_1.bmp"), ("4.13158", "i03_08_4.bmp", "I03_08_4.BMP"),
       ("3.0", "I25_24_5.bmp", "i25_24_5.bmp")]
write(os.path.join(root, "mos_with_names.txt"), "".join(f"{m} {n}\n" for m, n, _ in tid))
write(os.path.join(root, "mos_std.txt"), "0.13\n0.2\n0.35\n")
for i, (_, _, f) in enumerate(tid):
    save(img(600 + i), os.path.join(root, "distorted_images", f), format="BMP")
save(img(700), os.path.join(root, "reference_images", "I01.BMP"), format="BMP")
