"""The small denoising sets' downloader, on a fake GitHub raw tree of tiny images in the real formats."""

import functools
import hashlib
import http.server
import os
import re
import threading

import numpy as np
import pytest
from PIL import Image
from tqdm import tqdm

from wconv.data import DataError, build
from wconv.data import denoise_sets as denoise_sets_module
from wconv.data import download as download_module
from wconv.data.denoise_manifest import DENOISE_SETS, RemoteFile, RemoteSet
from wconv.data.denoise_sets import GITHUB_RAW, download_denoise_set, file_url
from wconv.data.download import main as download_main

# Per real set name: a few of its real file names, PIL format, and whether the manifest checksums them (grey sets).
FAKE_SETS = {
    "train400": (["test_001.png", "test_002.png"], "PNG", True),
    "set12": (["01.png", "02.png", "03.png"], "PNG", True),
    "bsd68": (["test001.png", "test002.png"], "PNG", True),
    "cbsd68": (["101085.png", "3096.png"], "PNG", False),
    "kodak24": (["kodim01.png", "kodim02.png"], "PNG", False),
    "mcmaster": (["1.tif", "2.tif"], "TIFF", False),
}


@pytest.fixture
def remote(tmp_path):
    """(manifest, tree): every set as ``tree/<repo>/<commit>/<folder>/<file>``, grey 48x48 with sizes and SHA-256 in
    the manifest, colour 40x40 without, as the real manifest has them."""
    rng, tree, manifest = np.random.default_rng(0), tmp_path / "remote", {}
    for name, (files, image_format, checked) in FAKE_SETS.items():
        repo, commit, folder = f"author/{name}-repo", hashlib.sha1(name.encode()).hexdigest(), f"testsets/{name}"
        entries = []
        for file in files:
            path = tree / repo / commit / folder / file
            path.parent.mkdir(parents=True, exist_ok=True)
            shape = (48, 48) if checked else (40, 40, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path, format=image_format)
            content = path.read_bytes()
            size, sha256 = (len(content), hashlib.sha256(content).hexdigest()) if checked else (None, None)
            entries.append(RemoteFile(file, size, sha256))
        manifest[name] = RemoteSet(repo, commit, folder, tuple(entries))
    return manifest, tree


@pytest.fixture
def served(remote):
    """(manifest, base URL, requested paths): the fake tree behind a local HTTP server that records each GET."""
    manifest, tree = remote
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tree)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield manifest, f"http://127.0.0.1:{httpd.server_address[1]}", requested
    httpd.shutdown()
    thread.join()


def _path(manifest, name, file):
    """The URL path of one file of the fake tree."""
    remote_set = manifest[name]
    return f"/{remote_set.repo}/{remote_set.commit}/{remote_set.folder}/{file}"


def _source(tree, manifest, name, file):
    """The remote copy of one file in the fake tree."""
    return tree / _path(manifest, name, file).lstrip("/")


def _tamper(path):
    """Flip the last byte: same size, another SHA-256."""
    content = path.read_bytes()
    path.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))


def test_full_fetch_lands_every_file_in_the_layout(remote, tmp_path):
    manifest, tree = remote
    root = tmp_path / "data"
    for name, (files, _, _) in FAKE_SETS.items():
        folder = download_denoise_set(root, name, manifest, tree.as_uri())
        assert folder == root / "denoise" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # no .part left
        for file in files:
            assert (folder / file).read_bytes() == _source(tree, manifest, name, file).read_bytes()
    with pytest.raises(ValueError, match="unknown denoising set 'set14'; valid: train400, set12"):
        download_denoise_set(root, "set14", manifest, tree.as_uri())
    data = build("train400", root=root, test_sets=["set12", "bsd68"], val_fraction=0.5, patch_size=16)
    assert data.sizes == {"train": 1, "val": 1, "test": 5}


def test_second_call_downloads_nothing(served, tmp_path):
    manifest, url, requested = served
    for name in FAKE_SETS:
        download_denoise_set(tmp_path, name, manifest, url)
    assert len(requested) == sum(len(files) for files, _, _ in FAKE_SETS.values())
    requested.clear()
    for name in FAKE_SETS:
        assert download_denoise_set(tmp_path, name, manifest, url) == tmp_path / "denoise" / name
    assert requested == []


def test_partial_set_fetches_only_the_missing_files(served, tmp_path):
    manifest, url, requested = served
    folder = download_denoise_set(tmp_path, "set12", manifest, url)
    content = {file: (folder / file).read_bytes() for file in FAKE_SETS["set12"][0]}
    (folder / "01.png").unlink()
    (folder / "03.png").rename(folder / "03.png.part")  # an interrupted download of 03.png
    (folder / "03.png.part").write_bytes(content["03.png"][:100])
    requested.clear()
    download_denoise_set(tmp_path, "set12", manifest, url)
    assert requested == [_path(manifest, "set12", "01.png"), _path(manifest, "set12", "03.png")]
    assert {file: (folder / file).read_bytes() for file in content} == content
    assert not list(folder.glob("*.part"))


def test_checksum_mismatch_fails_with_one_line_and_leaves_no_file(remote, tmp_path):
    manifest, tree = remote
    _tamper(_source(tree, manifest, "set12", "02.png"))
    with pytest.raises(DataError) as error:
        download_denoise_set(tmp_path, "set12", manifest, tree.as_uri())
    message = str(error.value)
    assert "\n" not in message and "02.png has SHA-256" in message and "download again" in message
    assert sorted(p.name for p in (tmp_path / "denoise" / "set12").iterdir()) == ["01.png"]


def test_colour_file_that_does_not_decode_is_refused(remote, tmp_path):
    manifest, tree = remote
    _source(tree, manifest, "mcmaster", "2.tif").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"2\.tif failed its check \(cannot read image") as error:
        download_denoise_set(tmp_path, "mcmaster", manifest, tree.as_uri())
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in (tmp_path / "denoise" / "mcmaster").iterdir()) == ["1.tif"]


@pytest.fixture
def cli(remote, monkeypatch):
    """The real command line, its downloads served from the fake tree, without progress bars on stderr."""
    manifest, tree = remote
    monkeypatch.setattr(denoise_sets_module, "tqdm", functools.partial(tqdm, disable=True))
    patched = functools.partial(download_denoise_set, manifest=manifest, base_url=tree.as_uri())
    monkeypatch.setattr(download_module, "download_denoise_set", patched)
    return manifest, tree


def test_cli_fetches_every_set_with_one_line_each(cli, tmp_path, capsys):
    root = tmp_path / "data"
    assert download_main(["denoise-sets", "--root", str(root)]) == 0
    expected = [f"{name}: {len(FAKE_SETS[name][0])} images under {root / 'denoise' / name}" for name in DENOISE_SETS]
    assert capsys.readouterr().out.splitlines() == expected
    assert download_main(["kodak24", "--root", str(root)]) == 0
    assert capsys.readouterr().out == f"kodak24: 2 images under {root / 'denoise' / 'kodak24'}\n"


def test_cli_exit_codes_and_one_line_errors(cli, tmp_path, capsys, monkeypatch):
    manifest, tree = cli
    with pytest.raises(SystemExit) as exited:
        download_main(["set13", "--root", str(tmp_path)])
    assert exited.value.code == 2
    capsys.readouterr()

    _tamper(_source(tree, manifest, "bsd68", "test002.png"))
    assert download_main(["bsd68", "--root", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "SHA-256" in err

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert download_main(["set12", "--root", str(not_a_folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot create {not_a_folder / 'denoise' / 'set12'}") and err.count("\n") == 1

    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root ignores permission bits: stand in for the answer a user gets
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert download_main(["set12", "--root", str(read_only)]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: .*read-only/denoise/set12.*: choose a writable --root\n", err)


def test_committed_manifest_is_well_formed():
    expected = {
        "train400": [f"test_{i:03d}.png" for i in range(1, 401)],
        "set12": [f"{i:02d}.png" for i in range(1, 13)],
        "bsd68": [f"test{i:03d}.png" for i in range(1, 69)],
        "kodak24": [f"kodim{i:02d}.png" for i in range(1, 25)],
        "mcmaster": [f"{i}.tif" for i in range(1, 19)],
    }
    assert list(DENOISE_SETS) == ["train400", "set12", "bsd68", "cbsd68", "kodak24", "mcmaster"]
    for name, remote_set in DENOISE_SETS.items():
        names = [file.name for file in remote_set.files]
        assert names == expected.get(name, names) and len(set(names)) == len(names)
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", remote_set.repo) and re.fullmatch(r"[0-9a-f]{40}", remote_set.commit)
        url = file_url(remote_set, names[0])
        assert url == f"{GITHUB_RAW}/{remote_set.repo}/{remote_set.commit}/{remote_set.folder}/{names[0]}"
        for file in remote_set.files:
            if name in ("train400", "set12", "bsd68"):
                assert file.size > 0 and re.fullmatch(r"[0-9a-f]{64}", file.sha256)
            else:
                assert file.size is None and file.sha256 is None
    cbsd68 = [file.name for file in DENOISE_SETS["cbsd68"].files]
    assert len(cbsd68) == 68 and all(re.fullmatch(r"\d+\.png", n) for n in cbsd68) and cbsd68 == sorted(cbsd68)
