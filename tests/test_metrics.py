"""wconv.metrics against known values and scikit-image's independent implementations."""

import math

import pytest
import skimage.data
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from wconv.metrics import per_image_psnr, per_image_ssim, topk_accuracy


def psnr(pred, target, clamp=True):
    return per_image_psnr(pred, target, clamp).mean().item()


def ssim(pred, target, clamp=True):
    return per_image_ssim(pred, target, clamp).mean().item()


def _photo(name):
    image = torch.from_numpy(getattr(skimage.data, name)()).float() / 255
    return (image.permute(2, 0, 1) if image.ndim == 3 else image[None])[None]


def test_identical_images():
    image = _photo("camera")
    assert math.isinf(psnr(image, image)) and ssim(image, image) == pytest.approx(1.0, abs=1e-6)


def test_sigma_25_noise_gives_20_17_db_unclipped():
    clean = _photo("camera")
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * 25 / 255
    assert psnr(noisy, clean, clamp=False) == pytest.approx(20 * math.log10(255 / 25), abs=0.02)  # 20.17 dB
    assert psnr(noisy, clean) > 20.4  # clamping to [0, 1] removes part of the noise on dark and bright pixels


def test_per_image_values_match_scikit_image():
    clean = torch.cat([_photo("camera"), _photo("moon")])
    pred = (clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    psnrs, ssims = per_image_psnr(pred, clean), per_image_ssim(pred, clean)
    assert psnrs.shape == ssims.shape == (2,)
    for i in range(2):
        p, c = pred[i, 0].double().numpy(), clean[i, 0].double().numpy()
        assert psnrs[i].item() == pytest.approx(peak_signal_noise_ratio(c, p, data_range=1), abs=1e-3)
        reference = structural_similarity(
            c, p, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert ssims[i].item() == pytest.approx(reference, abs=5e-3)


def test_predictions_are_clamped_and_shapes_checked():
    clean = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    overshoot = torch.where(clean > 0.5, torch.ones_like(clean) * 1.5, torch.zeros_like(clean) - 0.5)
    assert torch.equal(per_image_psnr(overshoot, clean), per_image_psnr(overshoot.clamp(0, 1), clean))
    assert per_image_psnr(clean[0], clean[0]).shape == (1,)
    with pytest.raises(ValueError, match="differs"):
        psnr(clean, clean[:1])


def test_topk_accuracy_on_handmade_logits():
    logits = torch.tensor(
        [
            [0.9, 0.1, 0.0, 0.0],  # class 0 first
            [0.1, 0.2, 0.7, 0.0],  # class 1 second
            [0.0, 0.1, 0.2, 0.7],  # class 0 fourth
            [0.3, 0.2, 0.4, 0.1],  # class 2 first
        ]
    )
    target = torch.tensor([0, 1, 0, 2])
    assert topk_accuracy(logits, target, ks=(1, 2, 4)) == pytest.approx({"acc1": 50.0, "acc2": 75.0, "acc4": 100.0})
