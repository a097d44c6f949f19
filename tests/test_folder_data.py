"""Folder data: the world's own folders load; time resampling and the resize/crop policy."""

import json

import numpy as np
import pytest
import torch

from spacetime.data.folder import FolderVideoDataset, resize_and_crop, sample_frame_indices
from spacetime.data.video import write_video
from spacetime.world.dataset import write_world


def test_frame_indices_resample_by_time():
    # 30 fps source sampled at 8 fps: frames at 0, 1/8, 2/8 ... s -> source 0, 3, 7, 11, 15
    np.testing.assert_array_equal(sample_frame_indices(100, 30.0, 5, 8.0, 0.0), [0, 3, 7, 11, 15])
    np.testing.assert_array_equal(sample_frame_indices(100, 30.0, 3, None, 1.0), [30, 31, 32])
    # too short: the last frame repeats
    np.testing.assert_array_equal(sample_frame_indices(4, 8.0, 6, 8.0, 0.0), [0, 1, 2, 3, 3, 3])


def test_resize_covers_then_centre_crops():
    video = -torch.ones(3, 2, 60, 120)
    video[:, :, :, 50:70] = 1.0  # a bright vertical band in the middle
    out = resize_and_crop(video, (32, 32))
    assert out.shape == (3, 2, 32, 32)
    # scaled by 32/60 (to cover the height), then the centre 32 columns: the band stays centred
    col = out[0, 0].mean(0)
    assert col[16] > 0.9 and col[0] < -0.9 and col[-1] < -0.9
    native = resize_and_crop(torch.zeros(3, 1, 70, 45), None)
    assert native.shape == (3, 1, 64, 40)


def test_world_folder_loads_as_folder_dataset(tmp_path):
    out = write_world(tmp_path / "w", 4, num_frames=9, height=32, width=48, fps=8, seed=2, progress=False)
    ds = FolderVideoDataset(out, num_frames=9, fps=8, size=None, random_start=False, caption="detailed")
    assert len(ds) == 4
    item = ds[1]
    assert item["video"].shape == (3, 9, 32, 48)
    row = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()][1]
    assert item["caption"] == row["captions"]["detailed"]


def ramp_folder(tmp_path, n, step):
    """A folder with one 24-fps video whose frame k is a flat grey of value step * k."""
    d = tmp_path / "d"
    d.mkdir()
    frames = np.stack([np.full((16, 16, 3), step * k, np.uint8) for k in range(n)])
    write_video(frames, d / "ramp.mp4", fps=24, pix_fmt="yuv444p")
    (d / "captions.jsonl").write_text(json.dumps({"path": "ramp.mp4", "caption": "a ramp"}) + "\n")
    return d


def test_fps_resampling_reads_the_right_frames(tmp_path):
    d = ramp_folder(tmp_path, 24, 10)
    ds = FolderVideoDataset(d, num_frames=4, fps=6, size=(16, 16), random_start=False)
    v = ds[0]["video"]  # frames 0, 4, 8, 12 of the source
    levels = ((v[0, :, 8, 8] + 1) * 127.5).numpy()
    np.testing.assert_allclose(levels, [0, 40, 80, 120], atol=3)


def test_random_start_is_seeded(tmp_path):
    d = ramp_folder(tmp_path, 48, 5)
    a = FolderVideoDataset(d, num_frames=3, fps=8, size=(16, 16), seed=1)[0]["video"]
    b = FolderVideoDataset(d, num_frames=3, fps=8, size=(16, 16), seed=1)[0]["video"]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="num_frames"):
        FolderVideoDataset(d, num_frames=0)
