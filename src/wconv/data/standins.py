"""Offline stand-ins that ship with installed packages, for smoke runs and tests: ``digits`` (classification,
scikit-learn) and ``photos`` (denoising, scikit-image)."""

from __future__ import annotations

import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

from wconv.data.classification import ClassificationData
from wconv.data.denoising import DenoisingData
from wconv.data.images import pil_to_tensor
from wconv.data.splits import split_indices, take

DIGITS_SIZE = 32
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0

# scikit-image's bundled photographs (all load offline), split by name: the classic test images (cameraman,
# astronaut, coffee) are kept for testing. ``cat`` is ``chelsea`` again, so it is left out.
PHOTO_SPLITS = {
    "train": ("brick", "chelsea", "clock", "grass", "gravel", "page", "rocket", "text"),
    "val": ("coins", "moon"),
    "test": ("camera", "astronaut", "coffee"),
}


def build_digits(
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    augment: bool = True,
    grey: bool = False,
) -> ClassificationData:
    """scikit-learn's 1,797 8x8 digits (10 classes) upsampled bilinearly to 32x32 so CIFAR models run unchanged;
    3 channels (grey repeated) unless ``grey``. A fixed 20 % is the test split, a ``val_fraction`` of the rest
    (by ``split_seed``) validation. Augmentation is the CIFAR crop without flips (mirrored digits are other
    symbols); normalisation uses the training split's mean and std."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn takes a second to import

    digits = load_digits()
    small = torch.from_numpy(digits.images).float().div(16).unsqueeze(1)
    large = F.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    images = large.mul(255).round().clamp(0, 255).to(torch.uint8).repeat(1, 1 if grey else 3, 1, 1)
    labels = torch.from_numpy(digits.target).long()
    rest, test = split_indices(len(labels), DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    kept, held = split_indices(len(rest), val_fraction, split_seed)
    train, val = [rest[i] for i in kept], [rest[i] for i in held]
    train_pixels = images[train].float().div(255)
    mean, std = train_pixels.mean(dim=(0, 2, 3)).tolist(), train_pixels.std(dim=(0, 2, 3)).tolist()
    chosen = {"train": take(train, limit_train), "val": take(val, limit_eval), "test": take(test, limit_eval)}
    splits = {name: (images[indices], labels[indices]) for name, indices in chosen.items()}
    return ClassificationData(splits, num_classes=10, mean=mean, std=std, augment=augment, flip=False)


def build_photos(
    *,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    augment: bool = True,
    sigma: float = 25.0,
    patch_size: int = 40,
    patches_per_epoch: int | None = None,
    grey: bool = True,
    eval_max_size: int | None = None,
    val_max_size: int | None = None,
) -> DenoisingData:
    """Denoising on scikit-image's photographs, split by name (``PHOTO_SPLITS``), grey by default (PIL's luma, as
    for image files). Options as in ``build_image_folder``."""
    limits = {"train": limit_train, "val": limit_eval, "test": limit_eval}
    names = {split: take(split_names, limits[split]) for split, split_names in PHOTO_SPLITS.items()}
    images = {
        split: [pil_to_tensor(Image.fromarray(getattr(skimage.data, name)()), grey) for name in split_names]
        for split, split_names in names.items()
    }
    return DenoisingData(
        images,
        names,
        sigma=sigma,
        patch_size=patch_size,
        patches_per_epoch=patches_per_epoch,
        augment=augment,
        eval_max_size=eval_max_size,
        val_max_size=val_max_size,
    )
