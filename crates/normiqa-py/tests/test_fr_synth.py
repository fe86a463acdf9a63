"""normiqa.fr and normiqa.synth on numpy arrays."""

import numpy as np
import pytest

import normiqa
from normiqa import fr, synth


def test_psnr_matches_its_formula(random_image):
    ref = random_image(0)
    rng = np.random.default_rng(2)
    dist = np.clip(ref.astype(int) + rng.integers(-9, 10, ref.shape), 0, 255).astype(np.uint8)
    mse = np.mean((ref.astype(float) - dist) ** 2)
    assert fr.psnr(ref, dist) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)


def test_identical_images_are_perfect_for_every_metric(random_image):
    img = random_image(1)
    assert fr.ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert fr.ssim(img, img, mode="matlab") == pytest.approx(1.0, abs=1e-12)
    assert fr.ms_ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert fr.gmsd(img, img) == pytest.approx(0.0, abs=1e-12)


def test_stronger_blur_scores_worse_on_every_metric(random_image):
    img = random_image(2)
    mild, strong = synth.distort(img, "gaussian_blur", 1), synth.distort(img, "gaussian_blur", 5)
    assert fr.psnr(img, mild) > fr.psnr(img, strong)
    assert fr.ssim(img, mild) > fr.ssim(img, strong)
    assert fr.ms_ssim(img, mild) > fr.ms_ssim(img, strong)
    assert fr.gmsd(img, mild) < fr.gmsd(img, strong)


def test_fr_refuses_images_of_different_sizes(random_image):
    with pytest.raises(normiqa.NormiqaError, match="psnr"):
        fr.psnr(random_image(0), random_image(0, h=128, w=128))


def test_the_25_distortions_keep_the_size_and_change_the_image(random_image):
    """At level 5 (level 3 of mean_shift is KADID's shift by 0: the image itself)."""
    img = random_image(3)
    assert len(synth.DISTORTIONS) == 25 and synth.TYPES[9] == (10, "jpeg", "compression")
    for name in synth.DISTORTIONS:
        out = synth.distort(img, name, 5)
        assert out.shape == img.shape and out.dtype == np.uint8, name
        assert not np.array_equal(out, img), name


def test_random_distortions_are_deterministic_per_seed(random_image):
    img = random_image(4)
    a = synth.distort(img, "white_noise", 2, seed=1)
    assert np.array_equal(a, synth.distort(img, "white_noise", 2, seed=1))
    assert not np.array_equal(a, synth.distort(img, "white_noise", 2, seed=2))
    assert np.array_equal(synth.distort(img, 10, 2), synth.distort(img, "jpeg", 2))


def test_bad_distortion_names_and_levels_are_refused(random_image):
    img = random_image(5)
    with pytest.raises(normiqa.NormiqaError, match="unknown distortion 'blurry'"):
        synth.distort(img, "blurry", 1)
    with pytest.raises(normiqa.NormiqaError, match="level 6"):
        synth.distort(img, "jpeg", 6)
