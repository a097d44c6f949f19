"""Video IO: round trips, odd sizes, every input kind of export_to_video, atomic writes."""

import numpy as np
import pytest
import torch
from PIL import Image

import spacetime
from spacetime.data.video import (
    VideoReadError,
    frames_to_tensor,
    read_video,
    tensor_to_frames,
    to_uint8_frames,
    write_video,
)
from spacetime.world.captions import parse_prompt
from spacetime.world.clip import make_clip


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("pix_fmt,bound", [("yuv444p", 38.0), ("yuv420p", 26.0)])
def test_mp4_round_trip_of_world_clips(tmp_path, pix_fmt, bound):
    for seed in range(4):
        clip = make_clip(seed)
        path = write_video(clip.frames, tmp_path / f"{seed}.mp4", fps=8, pix_fmt=pix_fmt)
        back, fps = read_video(path)
        assert back.shape == clip.frames.shape and fps == pytest.approx(8.0)
        assert psnr(clip.frames, back) > bound


@pytest.mark.parametrize("h,w", [(33, 47), (64, 96), (96, 64), (17, 16)])
def test_any_size_round_trips_with_its_size(tmp_path, h, w):
    clip = make_clip(3, num_frames=5, height=h, width=w)
    back, _ = read_video(write_video(clip.frames, tmp_path / "v.mp4", fps=12))
    assert back.shape == (5, h, w, 3)
    # odd sizes are written 4:4:4 (full colour); even ones 4:2:0, whose half-resolution chroma
    # blurs the colour of small saturated objects' edges
    assert psnr(clip.frames, back) > (30 if h % 2 or w % 2 else 25)


def test_fractional_fps_and_gif(tmp_path):
    frames = make_clip(9, num_frames=6, spec=parse_prompt("a red ball moves to the right")).frames
    _, fps = read_video(write_video(frames, tmp_path / "a.mp4", fps=30000 / 1001))
    assert fps == pytest.approx(29.97, abs=0.01)
    back, fps = read_video(write_video(frames, tmp_path / "a.gif", fps=10))
    assert back.shape == frames.shape and fps == pytest.approx(10, rel=0.05)
    assert psnr(frames, back) > 40  # the world has few colours: the GIF palette holds them


def test_export_to_video_accepts_diffusers_inputs(tmp_path):
    frames = make_clip(2, num_frames=4, height=32, width=32).frames  # uint8 (T, H, W, 3)
    as_float = frames.astype(np.float32) / 255
    inputs = {
        "uint8": frames,
        "float": as_float,
        "list_pil": [Image.fromarray(f) for f in frames],
        "list_np": list(as_float),
        "tensor_thwc": torch.from_numpy(as_float),
        "tensor_tchw": torch.from_numpy(as_float).permute(0, 3, 1, 2),
        "tensor_uint8": torch.from_numpy(frames),
    }
    for name, value in inputs.items():
        path = spacetime.export_to_video(value, str(tmp_path / f"{name}.mp4"), fps=8)
        back, _ = read_video(path)
        assert back.shape == frames.shape, name
        assert psnr(frames, back) > 22, name  # 4:2:0 at 32x32
    png = spacetime.export_to_video(frames[:1], tmp_path / "still.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), frames[0])
    with pytest.raises(ValueError, match="one frame"):
        spacetime.export_to_video(frames, tmp_path / "many.png")


def test_tensor_conversions_round_trip():
    frames = make_clip(4, num_frames=3).frames
    t = frames_to_tensor(frames)
    assert t.shape == (3, 3, 64, 64) and t.min() >= -1 and t.max() <= 1
    np.testing.assert_array_equal(tensor_to_frames(t), frames)


def test_bad_frames_and_arguments_are_named(tmp_path):
    good = make_clip(0, num_frames=2).frames
    with pytest.raises(ValueError, match="fps"):
        write_video(good, tmp_path / "a.mp4", fps=0)
    with pytest.raises(ValueError, match="fps"):
        write_video(good, tmp_path / "a.mp4", fps=float("nan"))
    with pytest.raises(ValueError, match="extension"):
        write_video(good, tmp_path / "a.avi2")
    with pytest.raises(ValueError, match="shape"):
        to_uint8_frames(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="channels"):
        to_uint8_frames(np.zeros((2, 8, 8, 5)))
    with pytest.raises(ValueError, match="NaN"):
        to_uint8_frames(np.full((1, 4, 4, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="empty"):
        to_uint8_frames([])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.mp4"
    write_video(make_clip(0, num_frames=3).frames, path, fps=8)
    before = path.read_bytes()
    import spacetime.data.video as video

    def broken(arr, tmp, rate, crf, pix_fmt):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("encoder died")

    monkeypatch.setattr(video, "_write_mp4", broken)
    with pytest.raises(RuntimeError):
        write_video(make_clip(1, num_frames=3).frames, path, fps=8)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(VideoReadError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty.mp4.*0 bytes"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(VideoReadError, match="directory"):
        read_video(tmp_path / "dir.mp4")


@pytest.mark.parametrize(
    "name,fmt,codec,pix",
    [("a.mkv", "matroska", "mpeg4", "yuv420p"), ("a.webm", "webm", "libvpx-vp9", "yuv420p"),
     ("a.avi", "avi", "mjpeg", "yuvj420p"), ("a.mov", "mov", "libx264", "yuv420p")],
)
def test_reads_other_containers(tmp_path, name, fmt, codec, pix):
    from fractions import Fraction

    import av

    levels = [20, 70, 120, 170, 220]
    with av.open(str(tmp_path / name), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 32, 32, pix
        for v in levels:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), v, np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    frames, fps = read_video(tmp_path / name)
    assert frames.shape == (5, 32, 32, 3) and fps == pytest.approx(10)
    np.testing.assert_allclose(frames.mean((1, 2, 3)), levels, atol=4)
