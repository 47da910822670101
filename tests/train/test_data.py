from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imgan.errors import TrainingError, UsageError
from imgan.train.data import (
    ImageFolderCrops,
    bicubic_downscale,
    list_images,
    make_loader,
    seed_everything,
)


def _save(path, pixels: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _noise(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "photos"
    _save(root / "b.png", _noise(40, 30, 1))
    _save(root / "a.png", _noise(20, 50, 2))
    _save(root / "sub" / "c.png", _noise(33, 33, 3))
    (root / "notes.txt").write_text("not an image")
    return root


def _found_in(patch: torch.Tensor, image: np.ndarray) -> bool:
    """Whether the (3,c,c) patch is a window of the (H,W,3) uint8 image."""
    size = patch.shape[-1]
    window = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))  # (H',W',3,c,c)
    target = (patch.numpy() * 255).round().astype(np.uint8)
    return bool(np.any(np.all(window == target, axis=(2, 3, 4))))


def test_list_images_sorted_recursive_and_flat(folder):
    assert [p.name for p in list_images(folder)] == ["a.png", "b.png", "c.png"]
    assert [p.name for p in list_images(folder, recursive=False)] == ["a.png", "b.png"]


def test_empty_or_missing_folder_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="no training images") as caught:
        list_images(tmp_path / "empty")
    assert caught.value.path == tmp_path / "empty"
    with pytest.raises(TrainingError, match="not found"):
        ImageFolderCrops(tmp_path / "absent", 8)


def test_crops_are_windows_of_the_images(folder):
    dataset = ImageFolderCrops(folder, 16, flips=False, repeats=2)
    assert len(dataset) == 6
    torch.manual_seed(0)
    for index in range(len(dataset)):
        patch = dataset[index]
        assert patch.shape == (3, 16, 16) and patch.dtype == torch.float32
        assert 0.0 <= patch.min() and patch.max() <= 1.0
        source = np.asarray(Image.open(dataset.files[index % 3]).convert("RGB"))
        assert _found_in(patch, source)
    with pytest.raises(IndexError):
        dataset[6]


def test_same_seed_same_crops_other_seed_differs(folder):
    dataset = ImageFolderCrops(folder, 12, rotations=True)

    def draw(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return torch.stack([dataset[i] for i in range(len(dataset))])

    assert torch.equal(draw(5), draw(5))
    assert not torch.equal(draw(5), draw(6))


def test_small_image_is_upscaled_and_grayscale_has_one_channel(tmp_path):
    small = _save(tmp_path / "small.png", _noise(10, 6, 4))
    patch = ImageFolderCrops([small], 16)[0]
    assert patch.shape == (3, 16, 16)
    grey = ImageFolderCrops([small], 8, grayscale=True)[0]
    assert grey.shape == (1, 8, 8)


def test_rotations_and_flips_give_symmetries_of_the_image(tmp_path):
    pixels = _noise(8, 8, 5)
    dataset = ImageFolderCrops([_save(tmp_path / "square.png", pixels)], 8, flips=True, rotations=True, repeats=40)
    base = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    symmetries = [torch.rot90(img, k, dims=(1, 2)) for img in (base, base.flip(-1)) for k in range(4)]
    torch.manual_seed(0)
    seen = set()
    for index in range(len(dataset)):
        patch = dataset[index]
        matches = [i for i, candidate in enumerate(symmetries) if torch.equal(patch, candidate)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 4  # 40 draws reach most of the 8 symmetries


def test_unreadable_image_names_the_file(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(TrainingError) as caught:
        ImageFolderCrops([broken], 8)[0]
    assert caught.value.path == broken


def test_loader_is_reproducible_from_its_seed(folder):
    dataset = ImageFolderCrops(folder, 8, repeats=4)

    def first_batches(seed: int, workers: int) -> list[torch.Tensor]:
        seed_everything(seed)
        loader = make_loader(dataset, 4, seed=seed, workers=workers)
        return [batch for batch, _ in zip(loader, range(2))]

    same = zip(first_batches(1, 0), first_batches(1, 0))
    assert all(torch.equal(x, y) for x, y in same)
    assert not torch.equal(first_batches(1, 0)[0], first_batches(2, 0)[0])
    with_workers = zip(first_batches(3, 2), first_batches(3, 2))
    assert all(torch.equal(x, y) for x, y in with_workers)


def test_loader_refuses_to_drop_every_batch(folder):
    with pytest.raises(TrainingError, match="only 3 samples"):
        make_loader(ImageFolderCrops(folder, 8), 4, seed=0)
    loader = make_loader(ImageFolderCrops(folder, 8), 4, seed=0, drop_last=False)
    assert [batch.shape[0] for batch in loader] == [3]


def test_distributed_loader_uses_a_seeded_distributed_sampler(folder, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        loader = make_loader(ImageFolderCrops(folder, 8, repeats=4), 4, seed=7, distributed=True)
    finally:
        dist.destroy_process_group()
    assert isinstance(loader.sampler, torch.utils.data.DistributedSampler)
    assert loader.sampler.seed == 7 and loader.sampler.shuffle
    assert len(loader) == 3  # 12 samples, one replica, batches of 4


def test_bicubic_downscale_matches_pil_and_stays_in_range():
    pixels = _noise(32, 48, 6)
    hr = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    low = bicubic_downscale(hr, 4)
    assert low.shape == (3, 8, 12)
    assert 0.0 <= low.min() and low.max() <= 1.0  # noise overshoots without the clamp
    pil = np.asarray(Image.fromarray(pixels).resize((12, 8), Image.Resampling.BICUBIC)).astype(np.float32) / 255
    assert np.abs(low.permute(1, 2, 0).numpy() - pil).max() < 3 / 255
    assert bicubic_downscale(torch.full((2, 3, 8, 8), 0.25), 2).sub(0.25).abs().max() < 1e-6
    with pytest.raises(UsageError, match="multiple of 4"):
        bicubic_downscale(torch.rand(1, 3, 30, 32), 4)
