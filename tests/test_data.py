"""wconv.data on fabricated files in the real on-disk formats, and on the offline stand-ins."""

import hashlib
import http.server
import itertools
import json
import pickle
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torchvision.datasets import CIFAR100

from wconv.data import DATA_NAMES, DataError, build
from wconv.data.augment import random_crop_flip, random_dihedral
from wconv.data.cifar import CIFAR100_MEAN, CIFAR100_STD
from wconv.data.div2k import Archive, download_div2k
from wconv.data.download import main as download_main
from wconv.data.fetch import fetch
from wconv.data.splits import split_indices

N_TRAIN, N_TEST, TEST_OFFSET = 300, 50, 1000
SIGMA = 25 / 255


# ---------------------------------------------------------------- CIFAR-100 in torchvision's python layout


def _cifar_pickle(indices):
    """A CIFAR-100 batch dict as in the real pickles; image i is constant per channel: (i % 256, i // 256 + 1, 200),
    so an index survives cropping with zero padding and flipping (read it back with a per-channel max)."""
    data = np.zeros((len(indices), 3, 1024), dtype=np.uint8)
    data[:, 0] = np.array(indices)[:, None] % 256
    data[:, 1] = np.array(indices)[:, None] // 256 + 1
    data[:, 2] = 200
    return {
        "filenames": [f"image_{i}.png" for i in indices],
        "batch_label": "training batch 1 of 1",
        "fine_labels": [i % 100 for i in indices],
        "coarse_labels": [i % 20 for i in indices],
        "data": data.reshape(len(indices), 3072),
    }


def _write_cifar(root):
    folder = root / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    contents = {
        "train": _cifar_pickle(list(range(N_TRAIN))),
        "test": _cifar_pickle(list(range(TEST_OFFSET, TEST_OFFSET + N_TEST))),
        "meta": {
            "fine_label_names": [f"class{i}" for i in range(100)],
            "coarse_label_names": [f"super{i}" for i in range(20)],
        },
    }
    md5 = {}
    for name, content in contents.items():
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    return md5


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """A small CIFAR-100 archive; torchvision's md5 lists point at the written files so its real check passes."""
    md5 = _write_cifar(tmp_path)
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": md5["meta"]})
    return tmp_path


def _indices(batch):
    """The fabricated indices of a normalised CIFAR batch."""
    mean = torch.tensor(CIFAR100_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR100_STD).view(1, 3, 1, 1)
    pixels = ((batch * std + mean) * 255).round().long().amax(dim=(2, 3))
    return (pixels[:, 0] + 256 * (pixels[:, 1] - 1)).tolist()


def test_cifar_split_labels_and_augmentation(cifar_root):
    data = build("cifar100", root=str(cifar_root), val_fraction=0.2)
    assert (data.task.name, data.in_channels, data.num_classes) == ("classification", 3, 100)
    assert data.sizes == {"train": 240, "val": 60, "test": N_TEST}
    seen = {}
    for split in ("val", "test"):
        seen[split] = []
        for images, labels in data.eval_batches(split, 32, "cpu"):
            assert images.dtype == torch.float32 and images.shape[1:] == (3, 32, 32)
            assert [i % 100 for i in _indices(images)] == labels.tolist()
            seen[split] += _indices(images)
    assert seen["test"] == list(range(TEST_OFFSET, TEST_OFFSET + N_TEST))
    train, padded = [], 0
    for images, labels in data.train_batches(64, seed=0, epoch=0, device="cpu"):
        assert images.shape[1:] == (3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
        assert [i % 100 for i in _indices(images)] == labels.tolist()
        padded += int((images[:, 2] < 0).any(dim=(1, 2)).sum())  # zero padding shows where blue (200) was cropped
        train += _indices(images)
    assert len(train) == 240 == len(set(train)) and data.steps_per_epoch(64) == 4
    assert not set(train) & set(seen["val"]) and set(train) | set(seen["val"]) == set(range(N_TRAIN))
    assert padded > 0
    again = build("cifar100", root=str(cifar_root), val_fraction=0.2)
    assert [_indices(x) for x, _ in again.eval_batches("val", 32, "cpu")] == [
        _indices(x) for x, _ in data.eval_batches("val", 32, "cpu")
    ]


def test_cifar_train_batches_follow_seed_and_epoch(cifar_root):
    data = build("cifar100", root=cifar_root, limit_train=100, limit_eval=10)
    assert data.sizes == {"train": 100, "val": 10, "test": 10}

    def epoch(seed, number):
        return torch.cat([x for x, _ in data.train_batches(32, seed, number, "cpu")])

    assert torch.equal(epoch(0, 1), epoch(0, 1))
    assert not torch.equal(epoch(0, 1), epoch(0, 2))
    assert not torch.equal(epoch(0, 1), epoch(1, 1))


def test_cifar_integrity_is_checked_by_torchvision(tmp_path):
    _write_cifar(tmp_path)  # files whose md5s differ from the real archive's
    with pytest.raises(DataError, match="failed torchvision's check"):
        build("cifar100", root=tmp_path)


def test_missing_roots_name_path_and_command(tmp_path):
    for name, folder in (("cifar100", "cifar100"), ("div2k", "DIV2K")):
        with pytest.raises(DataError) as error:
            build(name, root=tmp_path / "nowhere")
        message = str(error.value)
        assert "\n" not in message and str(tmp_path / "nowhere" / folder) in message
        assert f"python -m wconv.data.download {name} --root {tmp_path / 'nowhere'}" in message


def test_download_command_with_data_present(cifar_root, capsys):
    assert download_main(["cifar100", "--root", str(cifar_root)]) == 0
    assert "ready" in capsys.readouterr().out


# ---------------------------------------------------------------- options and splits


def test_build_rejects_unknown_names_and_options(tmp_path):
    with pytest.raises(ValueError, match="valid: " + ", ".join(DATA_NAMES)):
        build("imagenet")
    with pytest.raises(ValueError, match=r"unknown option\(s\) sigma for dataset cifar100; valid: root, download"):
        build("cifar100", sigma=25)
    with pytest.raises(ValueError, match="needs option"):
        build("image_folder")


def test_split_indices_deterministic_disjoint():
    kept, held = split_indices(1000, 0.1, seed=3)
    assert len(held) == 100 and not set(kept) & set(held) and set(kept) | set(held) == set(range(1000))
    assert (kept, held) == split_indices(1000, 0.1, seed=3)
    assert held != split_indices(1000, 0.1, seed=4)[1]
    with pytest.raises(ValueError):
        split_indices(10, 1.0, seed=0)


# ---------------------------------------------------------------- augmentation


def test_random_crop_flip_is_a_padded_crop_per_image():
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, pad=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    flips = []
    for i in range(len(images)):
        matches = [
            mirrored
            for top, left, mirrored in itertools.product(range(5), range(5), (False, True))
            if torch.equal(
                out[i], (lambda c: c.flip(-1) if mirrored else c)(padded[i, :, top : top + 8, left : left + 8])
            )
        ]
        assert matches
        flips.append(matches[0])
    assert any(flips) and not all(flips)


def test_random_dihedral_picks_each_symmetry():
    patches = torch.rand(64, 1, 5, 5)
    out = random_dihedral(patches, torch.Generator().manual_seed(0))
    found = set()
    for before, after in zip(patches, out, strict=True):
        variants = [torch.rot90(before.flip(-1) if f else before, k, (-2, -1)) for f in (0, 1) for k in range(4)]
        found.add(next(i for i, v in enumerate(variants) if torch.equal(v, after)))
    assert len(found) == 8


# ---------------------------------------------------------------- stand-ins


def test_digits_stand_in():
    data = build("digits", val_fraction=0.1)
    assert (data.task.name, data.in_channels, data.num_classes) == ("classification", 3, 10)
    assert sum(data.sizes.values()) == 1797 and data.sizes["test"] == 359
    images, labels = next(data.eval_batches("test", 400, "cpu"))
    assert images.shape == (359, 3, 32, 32) and set(labels.tolist()) == set(range(10))
    assert torch.equal(images[:, 0], images[:, 1]) and images.std() > 0.5
    x, y = next(build("digits", val_fraction=0.1).train_batches(16, 0, 0, "cpu"))
    assert torch.equal(x, next(data.train_batches(16, 0, 0, "cpu"))[0])
    assert build("digits", grey=True).in_channels == 1


def test_photos_stand_in():
    data = build("photos")
    assert (data.task.name, data.in_channels, data.num_classes) == ("denoising", 1, None)
    assert data.image_names["test"][0] == "camera"
    assert not set(data.image_names["train"]) & set(data.image_names["test"] + data.image_names["val"])
    noisy, clean = next(data.eval_batches("test", 1, "cpu"))
    assert torch.equal(clean[0, 0], torch.from_numpy(skimage.data.camera()).float() / 255)
    assert build("photos", grey=False, limit_train=1, limit_eval=1).in_channels == 3


# ---------------------------------------------------------------- image folders and DIV2K


def _write_pngs(folder, names, rng, shape=(48, 64, 3)):
    folder.mkdir(parents=True)
    for name in names:
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / name)


@pytest.fixture
def div2k_root(tmp_path):
    rng = np.random.default_rng(0)
    _write_pngs(tmp_path / "DIV2K" / "DIV2K_train_HR", [f"{i:04d}.png" for i in range(1, 11)], rng)
    _write_pngs(tmp_path / "DIV2K" / "DIV2K_valid_HR", [f"{i:04d}.png" for i in range(801, 804)], rng)
    return tmp_path


def _div2k(root, **options):
    return build("div2k", root=root, patch_size=16, patches_per_epoch=20, val_fraction=0.2, **options)


def test_div2k_split(div2k_root):
    data = _div2k(div2k_root)
    assert (data.task.name, data.in_channels, data.num_classes) == ("denoising", 1, None)
    assert data.sizes == {"train": 8, "val": 2, "test": 3}
    names = data.image_names
    assert not set(names["train"]) & set(names["val"])
    assert sorted(names["train"] + names["val"]) == [f"{i:04d}.png" for i in range(1, 11)]
    assert names["test"] == ["0801.png", "0802.png", "0803.png"]
    assert _div2k(div2k_root).image_names == names
    assert _div2k(div2k_root, split_seed=1).image_names["val"] != names["val"]


def test_div2k_train_batches(div2k_root):
    data = _div2k(div2k_root, augment=False)
    batches = list(data.train_batches(8, seed=0, epoch=0, device="cpu"))
    assert data.steps_per_epoch(8) == 3 == len(batches) and [len(c) for _, c in batches] == [8, 8, 4]
    noisy, clean = (torch.cat(parts) for parts in zip(*batches, strict=True))
    assert noisy.shape == (20, 1, 16, 16) and noisy.dtype == torch.float32
    assert 0 <= clean.min() and clean.max() <= 1 and (noisy < 0).any() and (noisy > 1).any()
    assert abs((noisy - clean).std().item() - SIGMA) < 0.05 * SIGMA
    windows = [
        image.float().unfold(1, 16, 1).unfold(2, 16, 1).reshape(-1, 16, 16) / 255 for image in data._images["train"]
    ]
    for patch in clean:
        assert any((torch.abs(w - patch[0]).amax(dim=(1, 2)) < 1e-6).any() for w in windows)
    again = list(data.train_batches(8, seed=0, epoch=0, device="cpu"))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    other = torch.cat([n for n, _ in data.train_batches(8, seed=0, epoch=1, device="cpu")])
    assert not torch.equal(noisy, other)


def test_div2k_eval_is_whole_images_with_fixed_noise(div2k_root):
    data = _div2k(div2k_root)
    first = list(data.eval_batches("test", 2, "cpu"))
    assert [n.shape for n, _ in first] == [(2, 1, 48, 64), (1, 1, 48, 64)]
    single = list(data.eval_batches("test", 1, "cpu"))
    assert torch.equal(torch.cat([n for n, _ in first]), torch.cat([n for n, _ in single]))
    expected = np.array(Image.open(div2k_root / "DIV2K" / "DIV2K_valid_HR" / "0801.png").convert("L"))
    assert torch.equal(first[0][1][0, 0], torch.from_numpy(expected).float() / 255)
    assert abs((first[0][0] - first[0][1]).std().item() - SIGMA) < 0.05 * SIGMA
    cropped = _div2k(div2k_root, eval_max_size=32, grey=False)
    assert cropped.in_channels == 3 and next(cropped.eval_batches("val", 4, "cpu"))[0].shape == (2, 3, 32, 32)
    val_only = _div2k(div2k_root, val_max_size=32)  # the per-epoch validation bounded, the test images whole
    assert next(val_only.eval_batches("val", 4, "cpu"))[0].shape[-2:] == (32, 32)
    assert [n.shape for n, _ in val_only.eval_batches("test", 2, "cpu")] == [(2, 1, 48, 64), (1, 1, 48, 64)]


def test_image_folder_formats_and_sizes(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "train").mkdir()
    for i, suffix in enumerate(("png", "jpg", "bmp", "tif")):
        Image.fromarray(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)).save(
            tmp_path / "train" / f"{i}.{suffix}"
        )
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    _write_pngs(tmp_path / "val", ["a.png"], rng, shape=(30, 30))
    _write_pngs(tmp_path / "test", ["b.png", "c.png"], rng, shape=(30, 30))
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(tmp_path / "test" / "d.png")
    folders = {"folder": tmp_path / "train", "val_folder": tmp_path / "val", "test_folder": tmp_path / "test"}
    data = build("image_folder", **folders, patch_size=32, sigma=50)
    assert data.sizes == {"train": 4, "val": 1, "test": 3} and data.image_names["train"] == [
        "0.png",
        "1.jpg",
        "2.bmp",
        "3.tif",
    ]
    assert [n.shape[0] for n, _ in data.eval_batches("test", 8, "cpu")] == [2, 1]
    noisy, clean = next(data.train_batches(4, 0, 0, "cpu"))
    assert abs((noisy - clean).std().item() - 50 / 255) < 0.1 * 50 / 255
    with pytest.raises(DataError, match="smaller than patch_size"):
        build("image_folder", folder=tmp_path / "val", patch_size=40)
    with pytest.raises(ValueError, match="test split .* is empty"):
        next(build("image_folder", folder=tmp_path / "train", patch_size=32).eval_batches("test", 1, "cpu"))


def test_unreadable_images_are_named(tmp_path):
    folder = tmp_path / "images"
    _write_pngs(folder, ["good.png", "truncated.png"], np.random.default_rng(2))
    content = (folder / "truncated.png").read_bytes()
    (folder / "truncated.png").write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match="truncated.png"):
        build("image_folder", folder=folder, val_fraction=0)
    (folder / "truncated.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="truncated.png"):
        build("image_folder", folder=folder, val_fraction=0)
    with pytest.raises(DataError, match="does not exist"):
        build("image_folder", folder=tmp_path / "missing")


# ---------------------------------------------------------------- downloads


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``payload`` at any path, honouring ``Range: bytes=N-`` and recording the ranges asked for."""

    payload = b""
    ranges: list = []

    def do_GET(self):
        start = 0
        if header := self.headers.get("Range"):
            start = int(header.removeprefix("bytes=").removesuffix("-"))
            self.ranges.append(start)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload) - start))
        self.end_headers()
        self.wfile.write(self.payload[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.payload = np.random.default_rng(3).bytes(300_000)
    _RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/archive.zip", _RangeHandler
    httpd.shutdown()
    thread.join()


def test_fetch_resumes_with_a_range_request(server, tmp_path):
    url, handler = server
    payload = handler.payload
    dest = tmp_path / "archive.zip"
    (tmp_path / "archive.zip.part").write_bytes(payload[:100_000])
    fetch(url, dest, size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    assert handler.ranges == [100_000] and dest.read_bytes() == payload
    assert not (tmp_path / "archive.zip.part").exists()


def test_fetch_restarts_when_range_is_ignored_and_checks_sha256(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"0123456789" * 1000)
    dest = tmp_path / "out" / "copy.bin"
    dest.parent.mkdir()
    (dest.parent / "copy.bin.part").write_bytes(b"garbage")  # file:// ignores Range: the download starts over
    fetch(source.as_uri(), dest, size=10_000, sha256=hashlib.sha256(source.read_bytes()).hexdigest())
    assert dest.read_bytes() == source.read_bytes()
    with pytest.raises(DataError, match="SHA-256"):
        fetch(source.as_uri(), tmp_path / "bad.bin", sha256="0" * 64)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()
    with pytest.raises(DataError, match="run the same command again"):
        fetch((tmp_path / "missing.zip").as_uri(), tmp_path / "missing.zip")


def test_download_div2k_extracts_the_layout(tmp_path):
    rng = np.random.default_rng(4)
    _write_pngs(tmp_path / "src" / "DIV2K_valid_HR", ["0801.png", "0802.png"], rng, shape=(8, 8, 3))
    archive_path = tmp_path / "DIV2K_valid_HR.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for png in sorted((tmp_path / "src" / "DIV2K_valid_HR").iterdir()):
            archive.write(png, f"DIV2K_valid_HR/{png.name}")
    content = archive_path.read_bytes()
    entry = Archive(archive_path.as_uri(), len(content), hashlib.sha256(content).hexdigest(), "DIV2K_valid_HR", 2)
    target = download_div2k(tmp_path / "data", archives=(entry,))
    assert sorted(p.name for p in (target / "DIV2K_valid_HR").iterdir()) == ["0801.png", "0802.png"]
    assert not (target / "DIV2K_valid_HR.zip").exists()
    archive_path.unlink()  # a complete folder is not downloaded again
    assert download_div2k(tmp_path / "data", archives=(entry,)) == target


def _mapped_memory(folder: str, barrier, out) -> None:
    """A worker of the test below: read the folder's images, touch every pixel, report the cache mapping's
    resident and proportional memory (/proc/self/smaps) while the other worker holds it too."""
    from wconv.data.folder import build_image_folder

    data = build_image_folder(folder=folder, test_folder=folder, val_fraction=0.25, patch_size=16)
    total = sum(int(image.sum()) for split in ("train", "val", "test") for image in data._on("cpu", split))
    barrier.wait()
    rss = pss = 0
    lines = open("/proc/self/smaps").read().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(".u8") and "/cache/" in line:
            fields = dict(item.split(":") for item in lines[i + 1 : i + 20] if ":" in item and " kB" in item)
            rss, pss = rss + int(fields["Rss"].split()[0]), pss + int(fields["Pss"].split()[0])
    out.put((total, rss, pss))
    barrier.wait()


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/<pid>/smaps")
def test_two_processes_reading_the_same_images_hold_one_copy(tmp_path, monkeypatch):
    import multiprocessing

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (512, 512), dtype=np.uint8)).save(folder / f"{i}.png")
    monkeypatch.setenv("WCONV_DECODED_CACHE", str(tmp_path / "cache"))
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_mapped_memory, args=(str(folder), barrier, out)) for _ in range(2)]
    for w in workers:
        w.start()
    reports = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    pixels_kb = 8 * 512 * 512 / 1024
    assert reports[0][0] == reports[1][0]  # the same pixels
    for _, rss, pss in reports:  # each maps the decoded file; its pages are counted half to each process
        assert rss >= pixels_kb * 0.9 and pss <= rss * 0.6
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 3  # one file per split, built once


def test_a_torn_decoded_cache_index_is_rebuilt_not_a_crash(tmp_path):
    """A process killed while the node's decoded cache was written leaves a partial index: the next reader decodes
    again and writes a whole one (every write is a rename of a finished file)."""
    from wconv.data.images import decoded

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(folder / f"{i}.png")
        paths.append(folder / f"{i}.png")
    first = decoded(paths, True, tmp_path / "cache")
    (index,) = (tmp_path / "cache").glob("*.json")
    index.write_text(index.read_text()[:7])  # torn
    again = decoded(paths, True, tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert json.loads(index.read_text()) == [[1, 20, 30]] * 3
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())  # no temporary file left behind
    assert names == sorted([index.name, index.stem + ".u8", index.stem + ".lock"])
