"""Video IO: round trips and their fidelity, odd sizes, every input kind of export_to_video,
reading windows and other containers, atomic writes."""

import logging
import os
import stat
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import spacetime
from spacetime.data import video as video_mod
from spacetime.data.video import (
    DEFAULT_CRF,
    VideoReadError,
    decode,
    frames_to_tensor,
    read_video,
    tensor_to_frames,
    to_uint8_frames,
    write_video,
)

PALETTE = [(230, 25, 25), (25, 200, 40), (30, 60, 230), (240, 220, 20), (220, 30, 220), (20, 220, 220)]
BACKGROUNDS = [(0, 0, 0), (255, 255, 255), (128, 128, 128)]


def disc_clip(seed: int, t: int = 17, h: int = 64, w: int = 64, n: int = 3) -> np.ndarray:
    """Saturated anti-aliased discs moving over a flat background: the world's kind of content."""
    rng = np.random.default_rng(seed)
    bg = np.array(BACKGROUNDS[seed % 3], np.float64)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    colours = rng.choice(len(PALETTE), n, replace=False)
    pos, vel = rng.uniform(0.2, 0.8, (n, 2)) * (h, w), rng.uniform(-2, 2, (n, 2))
    radius = rng.uniform(0.07, 0.15, n) * min(h, w)
    out = np.empty((t, h, w, 3), np.uint8)
    for k in range(t):
        img = np.broadcast_to(bg, (h, w, 3)).copy()
        for i in range(n):
            cy, cx = pos[i] + vel[i] * k
            a = np.clip(radius[i] - np.hypot(ys - cy, xs - cx) + 0.5, 0, 1)[..., None]
            img = img * (1 - a) + np.array(PALETTE[colours[i]]) * a
        out[k] = np.rint(img)
    return out


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def stream_pix_fmt(path) -> str:
    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.pix_fmt


def test_mp4_round_trip_fidelity_at_the_default_crf(tmp_path):
    # measured over 20 such clips: 4:4:4 CRF 18 40.6 dB mean, 39.0 worst; 4:2:0 ~31 (its chroma
    # subsampling alone costs that: 31.4 dB without any codec)
    p444, p420 = [], []
    for seed in range(3):
        clip = disc_clip(seed)
        back, fps = read_video(write_video(clip, tmp_path / f"a{seed}.mp4", fps=8, pix_fmt="yuv444p"))
        assert back.shape == clip.shape and fps == pytest.approx(8.0)
        p444.append(psnr(clip, back))
        back, _ = read_video(write_video(clip, tmp_path / f"b{seed}.mp4", fps=8))
        p420.append(psnr(clip, back))
    assert min(p444) >= 38.0 and np.mean(p444) >= 39.0, p444  # the world needs >= 35 dB
    assert min(p420) >= 28.0, p420
    assert (
        stream_pix_fmt(tmp_path / "a0.mp4") == "yuv444p" and stream_pix_fmt(tmp_path / "b0.mp4") == "yuv420p"
    )
    # the CRF is honoured: a coarser one costs fidelity and bytes
    coarse = write_video(disc_clip(0), tmp_path / "coarse.mp4", fps=8, crf=40, pix_fmt="yuv444p")
    assert psnr(disc_clip(0), read_video(coarse)[0]) < p444[0] - 5
    assert coarse.stat().st_size < (tmp_path / "a0.mp4").stat().st_size
    assert DEFAULT_CRF == 18


@pytest.mark.parametrize("h,w", [(33, 47), (17, 16), (16, 17), (64, 96), (96, 64)])
def test_any_size_round_trips_with_its_size(tmp_path, caplog, h, w):
    clip = disc_clip(3, t=5, h=h, w=w)
    with caplog.at_level(logging.WARNING):
        path = write_video(clip, tmp_path / "v.mp4", fps=12)
    back, fps = read_video(path)
    assert back.shape == (5, h, w, 3) and fps == pytest.approx(12)
    odd = bool(h % 2 or w % 2)
    # H.264 4:2:0 crops the coded size in steps of 2 pixels only: odd sizes are written 4:4:4
    assert stream_pix_fmt(path) == ("yuv444p" if odd else "yuv420p")
    assert ("cannot be 4:2:0" in caplog.text) == odd
    assert psnr(clip, back) > (31 if odd else 28)  # 16-pixel frames are mostly edges


@pytest.mark.parametrize("fps", [8, 12.5, 24, 30000 / 1001, 60])
def test_fps_is_preserved(tmp_path, fps):
    frames = disc_clip(1, t=4, h=16, w=16)
    assert read_video(write_video(frames, tmp_path / "a.mp4", fps=fps))[1] == pytest.approx(fps, rel=1e-4)


def test_gif_round_trip(tmp_path):
    frames = disc_clip(9, t=6, h=32, w=48)
    back, fps = read_video(write_video(frames, tmp_path / "a.gif", fps=10))
    assert back.shape == frames.shape and fps == pytest.approx(10)  # 10 fps = 10/100 s per frame
    assert psnr(frames, back) > 40  # few colours: the GIF palette holds them
    # GIF delays are in 1/100 s: 8 fps is stored as 12 or 13 hundredths
    assert read_video(write_video(frames, tmp_path / "b.gif", fps=8))[1] == pytest.approx(8, rel=0.05)


def test_export_to_video_accepts_diffusers_inputs(tmp_path):
    frames = disc_clip(2, t=4, h=32, w=32)  # uint8 (T, H, W, 3)
    as_float = frames.astype(np.float32) / 255
    inputs = {
        "uint8": frames,
        "float": as_float,
        "float64": as_float.astype(np.float64),
        "list_pil": [Image.fromarray(f) for f in frames],
        "list_pil_rgba": [Image.fromarray(f).convert("RGBA") for f in frames],
        "list_np_float": list(as_float),
        "list_np_uint8": list(frames),
        "tensor_thwc": torch.from_numpy(as_float),
        "tensor_tchw": torch.from_numpy(as_float).permute(0, 3, 1, 2),
        "tensor_bf16": torch.from_numpy(as_float).to(torch.bfloat16),
        "tensor_uint8": torch.from_numpy(frames),
        "array_tchw": frames.transpose(0, 3, 1, 2),
    }
    for name, value in inputs.items():
        np.testing.assert_array_equal(
            to_uint8_frames(value) if name != "tensor_bf16" else frames, frames, err_msg=name
        )
        out = spacetime.export_to_video(value, str(tmp_path / f"{name}.mp4"), fps=8)
        assert out == str(tmp_path / f"{name}.mp4")
        back, fps = read_video(out)
        assert back.shape == frames.shape and fps == pytest.approx(8), name
        assert psnr(frames, back) > 25, name  # 4:2:0 at 32x32
    # bfloat16 keeps 8 bits of mantissa: within one level of the uint8 frames
    assert np.abs(to_uint8_frames(inputs["tensor_bf16"]).astype(int) - frames).max() <= 1
    gif = spacetime.export_to_video(list(frames), tmp_path / "a.gif", fps=10)
    assert read_video(gif)[0].shape == frames.shape
    png = spacetime.export_to_video(frames[:1], tmp_path / "still.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), frames[0])
    png = spacetime.export_to_video(Image.fromarray(frames[1]), tmp_path / "still2.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), frames[1])
    with pytest.raises(ValueError, match="a PNG holds one frame, got 4"):
        spacetime.export_to_video(frames, tmp_path / "many.png")
    with pytest.raises(ValueError, match=r"got a list of 2 videos .*pass one video, e.g. frames\[0\]"):
        spacetime.export_to_video([frames, frames], tmp_path / "two.mp4")  # a pipeline's .frames, not .frames[0]
    assert not (tmp_path / "two.mp4").exists()
    tmp = spacetime.export_to_video(frames)  # no path: a new temporary .mp4, as in diffusers
    try:
        assert tmp.endswith(".mp4") and read_video(tmp)[0].shape == frames.shape
    finally:
        __import__("os").unlink(tmp)


def test_to_uint8_frames_reads_this_projects_own_tensor_layout():
    """(3, T, H, W) in [-1, 1], as `frames_to_tensor` makes, for every T — 1, 3 and 4 included,
    where the first two axes could also read as (T, C)."""
    rng = np.random.default_rng(0)
    for t in (1, 2, 3, 4, 5):
        frames = rng.integers(0, 256, (t, 8, 12, 3), dtype=np.uint8)
        np.testing.assert_array_equal(to_uint8_frames(frames_to_tensor(frames)), frames)
    frames = rng.integers(0, 256, (5, 8, 12, 3), dtype=np.uint8)  # uint8 channels-first: moved, not rescaled
    np.testing.assert_array_equal(to_uint8_frames(frames.transpose(3, 0, 1, 2)), frames)
    tc = rng.random((3, 4, 8, 12)).astype(np.float32)  # (T, C, H, W) in [0, 1]: RGBA frames, as before
    assert to_uint8_frames(tc).shape == (3, 8, 12, 3)


def test_to_uint8_frames_values_and_errors(caplog):
    np.testing.assert_array_equal(
        to_uint8_frames(np.array([0.0, 0.5, 1.0]).reshape(1, 1, 3, 1))[0, 0, :, 0], [0, 128, 255]
    )
    grey = to_uint8_frames(np.full((2, 4, 4, 1), 7, np.uint8))
    assert grey.shape == (2, 4, 4, 3) and (grey == 7).all()
    np.testing.assert_array_equal(
        to_uint8_frames(np.full((1, 2, 2, 3), 200, np.int64)), np.full((1, 2, 2, 3), 200)
    )
    with caplog.at_level(logging.WARNING):
        clipped = to_uint8_frames(np.full((1, 2, 2, 3), -0.5, np.float32))
    assert (clipped == 0).all() and "(x + 1) / 2" in caplog.text
    for bad, msg in [
        (np.zeros((4, 4)), "shape"),
        (np.zeros((2, 8, 8, 5)), "channels"),
        (np.full((1, 4, 4, 3), np.nan, np.float32), "NaN"),
        ([], "one or more frames of one size"),
        (
            [np.zeros((4, 4, 3)), np.zeros((4, 6, 3))],
            r"of one size; got shapes \[\(1, 4, 4, 3\), \(1, 4, 6, 3\)\]",
        ),
        (np.zeros((0, 4, 4, 3), np.uint8), "empty"),
        (np.zeros((1, 2, 4, 4, 3), np.uint8), "pass one video"),
        (np.full((1, 2, 2, 3), 300), "0..255"),
        (np.zeros((1, 2, 2, 3), bool), "dtype"),
    ]:
        with pytest.raises(ValueError, match=msg):
            to_uint8_frames(bad)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F", "F01"])
def test_high_bit_depth_images_are_scaled_not_clipped(tmp_path, mode):
    # a 16-bit greyscale PNG used to come out all white: convert("RGB") clips values above 255
    src = np.linspace(7, 65534, 48 * 64).reshape(48, 64).astype(np.uint16)
    want = (src / 257).mean()  # the source's brightness in 8-bit levels
    if mode == "I;16":  # as a user gets it: a 16-bit PNG read back through PIL
        Image.fromarray(src).save(tmp_path / "deep.png")
        im = Image.open(tmp_path / "deep.png")
        assert im.mode == "I;16"
    elif mode == "I;16B":
        im = Image.frombytes("I;16B", (64, 48), src.astype(">u2").tobytes())
    elif mode == "I":
        im = Image.fromarray(src.astype(np.int32))
    elif mode == "F":  # floats beyond [0, 1] are taken as 0..255 and clipped
        im, want = Image.fromarray(src.astype(np.float32) / 257), (src / 257).mean()
    else:  # floats in [0, 1]
        im = Image.fromarray((src / 65535).astype(np.float32))
    frame = to_uint8_frames(im)
    assert frame.shape == (1, 48, 64, 3) and frame.dtype == np.uint8
    assert abs(frame.mean() - want) <= 1, (frame.mean(), want)
    assert (frame[..., 0] == frame[..., 1]).all() and (frame[..., 0] == frame[..., 2]).all()  # still grey
    assert frame.min() <= 1 and frame.max() == 255  # the full range, not a band of it


def test_8_bit_images_in_wide_modes_keep_their_values():
    grey = np.arange(256, dtype=np.int32).reshape(16, 16)
    np.testing.assert_array_equal(to_uint8_frames(Image.fromarray(grey))[0, ..., 0], grey)  # "I" within 0..255
    over = Image.fromarray(np.array([[-5.0, 300.0]], np.float32))  # "F" outside [0, 1]: clipped to 0..255
    np.testing.assert_array_equal(to_uint8_frames(over)[0, 0, :, 0], [0, 255])
    with pytest.raises(ValueError, match="NaN"):
        to_uint8_frames(Image.fromarray(np.array([[np.nan, 1.0]], np.float32)))
    with pytest.raises(ValueError, match="0..255"):  # a uint16 array stays a clear error, as before
        to_uint8_frames(np.full((1, 2, 2, 3), 1000, np.uint16))


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    # mkstemp makes 0o600 files: every output used to be unreadable to group and others
    from spacetime.atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        new = tmp_path / "new.mp4"
        write_video(disc_clip(0, t=2, h=16, w=16), new, fps=8)
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        atomic_write_text(tmp_path / "new.json", "{}")
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644
        kept = tmp_path / "kept.mp4"  # an overwrite keeps the old file's mode
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        write_video(disc_clip(1, t=2, h=16, w=16), kept, fps=8)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and read_video(kept)[0].shape[0] == 2
        os.umask(0o077)  # the umask at the time of the write counts
        atomic_write_text(tmp_path / "private.json", "{}")
        assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_tensor_conversions_round_trip():
    frames = disc_clip(4, t=3)
    t = frames_to_tensor(frames)
    assert t.shape == (3, 3, 64, 64) and t.dtype == torch.float32
    assert float(frames_to_tensor(np.zeros((1, 1, 1, 3), np.uint8)).min()) == -1.0
    assert float(frames_to_tensor(np.full((1, 1, 1, 3), 255, np.uint8)).max()) == 1.0
    np.testing.assert_array_equal(tensor_to_frames(t), frames)
    with pytest.raises(ValueError, match=r"\(3, T, H, W\)"):
        tensor_to_frames(torch.zeros(3, 64, 64))


def test_bad_arguments_are_named_and_write_nothing(tmp_path):
    good = disc_clip(0, t=2, h=16, w=16)
    for fps in (0, -1, 1e-9, float("nan"), float("inf"), True, "8"):
        with pytest.raises(ValueError, match="fps must be a finite number of at least"):
            write_video(good, tmp_path / "a.mp4", fps=fps)
    for crf in (-1, 52, 1.5):
        with pytest.raises(ValueError, match="crf"):
            write_video(good, tmp_path / "a.mp4", crf=crf)
    with pytest.raises(ValueError, match=r"a\.avi.*unsupported video extension '\.avi'"):
        write_video(good, tmp_path / "a.avi")
    with pytest.raises(ValueError, match="pix_fmt"):
        write_video(good, tmp_path / "a.mp4", pix_fmt="rgb24")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.mp4"
    old = disc_clip(0, t=3, h=32, w=32)
    write_video(old, path, fps=8)
    before = path.read_bytes()
    new = disc_clip(1, t=6, h=32, w=32)

    with pytest.raises(ValueError, match="fps"):  # refused before anything is written
        write_video(new, path, fps=float("nan"))
    with pytest.raises(ValueError, match="shape"):
        write_video(np.zeros((6, 32, 32)), path, fps=8)

    noisy = np.random.default_rng(0).integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    written = []

    class DiesMidway:  # fails after 55 frames, when the real encoder has written bytes to the temp
        shape = noisy.shape

        def __iter__(self):
            yield from noisy[:55]
            raise RuntimeError("the frame source died")

    def write_then_die(arr, tmp, *args):
        try:
            real(DiesMidway(), tmp, *args)
        finally:
            written.append(Path(tmp).stat().st_size)

    real = video_mod._write_mp4
    monkeypatch.setattr(video_mod, "_write_mp4", write_then_die)
    with pytest.raises(RuntimeError, match="frame source died"):
        write_video(noisy, path, fps=8)
    assert written[0] > 1000  # a partial file existed; it is gone and the old file is intact
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]
    monkeypatch.undo()
    assert read_video(path)[0].shape == old.shape
    write_video(new, path, fps=8)  # a good write replaces it
    assert read_video(path)[0].shape == new.shape and [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_read_windows_and_max_frames(tmp_path):
    ramp = np.stack([np.full((16, 16, 3), 2 * k, np.uint8) for k in range(96)])  # frame k: level 2k
    path = write_video(ramp, tmp_path / "ramp.mp4", fps=24, pix_fmt="yuv444p")
    frames, fps = read_video(path, start=2.0, end=2.5)  # frames 48..59, found by seeking
    assert frames.shape[0] == 12 and fps == pytest.approx(24)
    np.testing.assert_allclose(frames[:, 8, 8, 0], 2 * np.arange(48, 60), atol=2)
    assert read_video(path, max_frames=5)[0].shape[0] == 5
    d = decode(path, start=3.0, rgb=False)
    assert d.frames == [] and len(d.times) == 24 and d.times[0] == pytest.approx(3.0) and d.damage is None
    with pytest.raises(VideoReadError, match=r"ramp\.mp4: no decodable frames after 5 s"):
        read_video(path, start=5.0)
    with pytest.raises(ValueError, match="start"):
        read_video(path, start=2.0, end=1.0)


def test_rotation_metadata_is_applied(tmp_path):
    img = np.zeros((32, 48, 3), np.uint8)
    img[:8, :8] = 255  # a marker in the top-left corner
    for degrees in (90, -90, 180):
        path = tmp_path / f"r{degrees}.mp4"
        with av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=Fraction(8))
            stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv444p"
            stream.set_display_rotation(degrees)  # counter-clockwise, as phones record it
            for _ in range(2):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            out.mux(stream.encode(None))
        frames, _ = read_video(path)
        assert np.abs(frames[0].astype(int) - np.rot90(img, degrees // 90)).max() < 8, degrees
        # scaled as decoded: upright at the size asked, the marker still in its corner
        upright = np.rot90(img, degrees // 90)
        small, _ = read_video(path, size=(upright.shape[0] // 2, upright.shape[1] // 2))
        assert small.shape[1:3] == (upright.shape[0] // 2, upright.shape[1] // 2), degrees
        assert np.abs(small[0].astype(int) - upright[::2, ::2]).mean() < 8, degrees


def test_frames_are_scaled_as_decoded_and_oversized_ones_refused_unread(tmp_path):
    """A file's frames scaled to the size wanted as they are decoded (its full-size frames are never
    all held: a 14 KB 2048x2048 upload took a server to 1.6 GB), and frames over a side limit
    refused from the header, before decoding (an 8000x8000 GIF screen took 15 s and 520 MB)."""
    import tracemalloc

    from spacetime.data.decode import VideoReadError, decode

    path = tmp_path / "big.mp4"
    write_video(np.zeros((24, 512, 512, 3), np.uint8), path, fps=8)
    tracemalloc.start()
    frames, _ = read_video(path, size=(32, 32))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert frames.shape == (24, 32, 32, 3) and peak < 4 * 2**20  # the full frames would be 18.9 MB
    gif = tmp_path / "screen.gif"
    tiny = [Image.new("P", (1, 1)) for _ in range(3)]
    tiny[0].save(gif, save_all=True, append_images=tiny[1:])
    data = bytearray(gif.read_bytes())
    data[6:10] = (4000).to_bytes(2, "little") * 2  # the logical screen: 4000x4000
    gif.write_bytes(bytes(data))
    with pytest.raises(VideoReadError, match="4000x4000 frames are over 2048 pixels a side"):
        decode(gif, rgb=False, max_side=2048)
    with pytest.raises(VideoReadError, match="512x512 frames are over 256 pixels a side"):
        decode(path, max_side=256)


def test_playlists_and_scripts_are_not_opened(tmp_path):
    """An ffconcat script that lists itself made FFmpeg open it until the file handles ran out;
    playlists (HLS) would fetch URLs. Only video and image demuxers read, local files only."""
    from spacetime.data.decode import VideoReadError, decode

    script = tmp_path / "x.mp4"
    script.write_text("ffconcat version 1.0\nfile x.mp4\n")
    with pytest.raises(VideoReadError, match="not a video or image format spacetime reads"):
        decode(script)
    playlist = tmp_path / "p.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/seg.ts\n#EXT-X-ENDLIST\n")
    with pytest.raises(VideoReadError):
        decode(playlist)


def test_an_image_file_reads_as_one_frame(tmp_path):
    img = disc_clip(5, t=1, h=24, w=40)[0]
    Image.fromarray(img).save(tmp_path / "a.png")
    frames, _ = read_video(tmp_path / "a.png")
    np.testing.assert_array_equal(frames, img[None])


@pytest.mark.parametrize(
    "name,fmt,codec,pix",
    [
        ("a.mkv", "matroska", "mpeg4", "yuv420p"),
        ("a.webm", "webm", "libvpx-vp9", "yuv420p"),
        ("a.avi", "avi", "mjpeg", "yuvj420p"),
        ("a.mov", "mov", "libx264", "yuv420p"),
    ],
)
def test_reads_other_containers(tmp_path, name, fmt, codec, pix):
    levels = [20, 70, 120, 170, 220]
    with av.open(str(tmp_path / name), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 32, 32, pix
        for v in levels:
            out.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), v, np.uint8), format="rgb24"))
            )
        out.mux(stream.encode(None))
    frames, fps = read_video(tmp_path / name)
    assert frames.shape == (5, 32, 32, 3) and fps == pytest.approx(10)
    np.testing.assert_allclose(frames.mean((1, 2, 3)), levels, atol=4)
    assert decode(tmp_path / name, rgb=False).damage is None  # an intact file is not called damaged


# --- found by the bug hunt: orientation, transparency, damage the timestamps show, stream choice ---


def _encode(path, fmt, codec, levels, rate=10, size=(32, 32), pix="yuv420p", times=None, opts=None):
    """A file of flat grey frames, one per level; `times` (s) places them at uneven times."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(rate))
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], pix
        stream.options = opts or {}
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for k, v in enumerate(levels):
            frame = av.VideoFrame.from_ndarray(np.full((*size, 3), v, np.uint8), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[k] * 1000), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_exif_orientation_is_applied_to_pil_images(tmp_path):
    img = np.zeros((32, 64, 3), np.uint8)  # stored 64 wide, 32 high; a marker top-left
    img[:8, :8] = 255
    ex = Image.Exif()
    ex[0x0112] = 6  # "rotate 90 clockwise to view", as phones write it
    Image.fromarray(img).save(tmp_path / "p.jpg", exif=ex.tobytes(), quality=95)
    with Image.open(tmp_path / "p.jpg") as im:
        frames = to_uint8_frames(im)
    assert frames.shape == (1, 64, 32, 3)  # upright, as viewers (and FFmpeg, below) show it
    assert frames[0, :8, -8:].mean() > 200 and frames[0, :8, :8].mean() < 50  # top-left went top-right
    assert read_video(tmp_path / "p.jpg")[0].shape == frames.shape


def test_every_reader_of_pil_images_takes_premultiplied_alpha_and_transparent_deep_greys(tmp_path):
    """to_uint8_frames, which the server's uploads, export_to_video and the pipeline all read PIL
    images through: "La" (which PIL converts to nothing but "LA") was an error, and a 16-bit grey PNG
    with a transparent value (tRNS) came out clipped white instead of scaled."""
    grey = np.array([[200, 0], [50, 255]], np.uint8)
    alpha = np.array([[255, 0], [255, 255]], np.uint8)
    la = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)])
    want = np.repeat((grey * (alpha > 0))[..., None], 3, -1)
    np.testing.assert_array_equal(to_uint8_frames(la.convert("La"))[0], want)
    np.testing.assert_array_equal(to_uint8_frames(la.convert("RGBA").convert("RGBa"))[0], want)
    Image.fromarray(np.array([[51400, 0], [1028, 65535]], np.uint16)).save(tmp_path / "g16.png", transparency=1028)
    with Image.open(tmp_path / "g16.png") as im:
        np.testing.assert_array_equal(to_uint8_frames(im)[0], np.repeat(np.array([[200, 0], [0, 255]], np.uint8)[..., None], 3, -1))
    with Image.open(tmp_path / "g16.png") as closed:
        pass
    with pytest.raises(ValueError, match="file was closed before its pixels were read"):
        to_uint8_frames(closed)


def test_transparency_is_composited_over_black(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = (255, 0, 255)  # magenta hidden under fully transparent pixels...
    rgba[4:12, 4:12] = (0, 200, 0, 255)  # ...around an opaque green square
    expected = np.zeros((16, 16, 3), np.uint8)
    expected[4:12, 4:12] = (0, 200, 0)
    np.testing.assert_array_equal(to_uint8_frames(rgba)[0], expected)  # an RGBA array
    np.testing.assert_array_equal(to_uint8_frames(rgba.astype(np.float32) / 255)[0], expected)
    np.testing.assert_array_equal(to_uint8_frames(Image.fromarray(rgba))[0], expected)  # a PIL image
    la = Image.fromarray(np.stack([np.full((16, 16), 200, np.uint8), rgba[..., 3]], -1), mode="LA")
    assert to_uint8_frames(la)[0, 0, 0].tolist() == [0, 0, 0] and to_uint8_frames(la)[0, 8, 8].tolist() == [200] * 3
    half = rgba.copy()
    half[..., 3] = 128
    assert to_uint8_frames(half)[0, 0, 0].tolist() == [128, 0, 128]  # partly: mixed with black
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_video(tmp_path / "a.png")[0][0], expected)  # FFmpeg's rgba PNG
    # a video with alpha (PNG in MOV, rgba): composited the same way
    with av.open(str(tmp_path / "a.mov"), "w", format="mov") as out:
        stream = out.add_stream("png", rate=Fraction(8))
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgba"
        for _ in range(2):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgba, format="rgba")))
        out.mux(stream.encode(None))
    frames, _ = read_video(tmp_path / "a.mov")
    assert frames.shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(frames[1], expected)


def test_damage_in_containers_without_a_frame_count_is_reported(tmp_path, caplog):
    from spacetime.data.probe import probe_video

    levels = [(10 + 2 * k) % 250 for k in range(100)]
    whole = _encode(tmp_path / "whole.mkv", "matroska", "libx264", levels, rate=8, opts={"g": "8"})
    data = whole.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])  # a download cut short
    row = probe_video(tmp_path / "cut.mkv")
    assert not row["ok"] and 40 < row["frames"] < 100 and "of the 12.500 s the container gives" in row["error"]
    with caplog.at_level(logging.WARNING, logger="spacetime.data.video"):
        assert 40 < len(read_video(tmp_path / "cut.mkv")[0]) < 100
    assert "damaged" in caplog.text
    webm = _encode(tmp_path / "whole.webm", "webm", "libvpx-vp9", levels[:60], rate=30)
    (tmp_path / "cut.webm").write_bytes(webm.read_bytes()[: webm.stat().st_size * 6 // 10])
    row = probe_video(tmp_path / "cut.webm")
    assert not row["ok"] and "the container gives" in row["error"]
    # frames lost in the middle (a gap in a steady rate), and timestamps that go back
    d = decode(whole, rgb=False)
    assert d.damage is None and len(d.times) == 100
    times = [k / 8 for k in range(100)]
    gap = _encode(tmp_path / "gap.mkv", "matroska", "libx264", levels[:40], rate=8, times=times[:20] + times[52:72])
    row = probe_video(gap)
    assert not row["ok"] and "a 4.125 s gap after 2.375 s (about 32 frames missing)" in row["error"]
    assert row["duration"] == pytest.approx(5.0)  # what decodes: the gap is not counted
    # two TS files joined end to end: the second's timestamps restart; it plays on after the first
    a = _encode(tmp_path / "a.ts", "mpegts", "libx264", levels[:25], rate=25)
    (tmp_path / "ab.ts").write_bytes(a.read_bytes() * 2)
    row = probe_video(tmp_path / "ab.ts")
    assert not row["ok"] and "timestamps restart" in row["error"]
    assert row["frames"] == 50 and row["duration"] == pytest.approx(2.0)
    # a frame size change part-way stops the read: the frames after it are counted as lost
    b = _encode(tmp_path / "b.ts", "mpegts", "libx264", levels[:25], rate=25, size=(48, 80))
    (tmp_path / "ab2.ts").write_bytes(a.read_bytes() + b.read_bytes())
    row = probe_video(tmp_path / "ab2.ts")
    assert not row["ok"] and "frame size changes from 32x32 to 80x48" in row["error"]


@pytest.mark.parametrize(
    "name,fmt,codec,pix,opts,times",
    [
        ("a.mp4", "mp4", "libx264", "yuv420p", None, None),
        ("a.mov", "mov", "libx264", "yuv420p", None, None),
        ("a.mkv", "matroska", "libx264", "yuv420p", None, None),
        ("b.mkv", "matroska", "mpeg4", "yuv420p", None, None),
        ("a.webm", "webm", "libvpx-vp9", "yuv420p", None, None),
        ("b.webm", "webm", "libvpx", "yuv420p", None, None),
        ("a.ts", "mpegts", "libx264", "yuv420p", None, None),
        ("b.ts", "mpegts", "mpeg2video", "yuv420p", {"bf": "2"}, None),
        ("a.avi", "avi", "mpeg4", "yuv420p", {"bf": "2"}, None),
        ("b.avi", "avi", "mjpeg", "yuvj420p", None, None),
        ("a.flv", "flv", "flv", "yuv420p", None, None),
        ("a.gif", "gif", "gif", "rgb8", None, None),
        ("vfr.mp4", "mp4", "libx264", "yuv420p", None, "vfr"),
        ("vfr.mkv", "matroska", "libx264", "yuv420p", None, "vfr"),
        ("vfr.webm", "webm", "libvpx-vp9", "yuv420p", None, "vfr"),
        ("vfr.ts", "mpegts", "libx264", "yuv420p", None, "vfr"),
    ],
)
def test_clean_files_of_every_container_are_not_called_damaged(tmp_path, name, fmt, codec, pix, opts, times):
    from spacetime.data.probe import probe_video

    n = 17 if times else 40
    if times:  # frames held for uneven times, as phones and screen recorders make
        times = [0, 0.04, 0.08, 0.3, 0.32, 0.7, 0.71, 0.72, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.5, 2.6, 2.7]
    path = _encode(tmp_path / name, fmt, codec, [(6 * k) % 250 for k in range(n)], pix=pix, opts=opts, times=times)
    row = probe_video(path)
    assert row["ok"] and row["error"] is None and row["frames"] == n, row


def test_a_cover_picture_track_is_not_taken_for_the_video(tmp_path):
    with av.open(str(tmp_path / "c.mkv"), "w", format="matroska") as out:
        cover = out.add_stream("mjpeg", rate=Fraction(1))  # first: a 1-frame thumbnail
        cover.width, cover.height, cover.pix_fmt = 16, 16, "yuvj420p"
        video = out.add_stream("libx264", rate=Fraction(8))
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        out.mux(cover.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")))
        out.mux(cover.encode(None))
        for k in range(9):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * k, np.uint8), format="rgb24")))
        out.mux(video.encode(None))
    frames, fps = read_video(tmp_path / "c.mkv")
    assert frames.shape == (9, 32, 32, 3) and fps == pytest.approx(8)


def test_pad_keeps_the_frames_either_side_of_a_window(tmp_path):
    times = [0.0, 0.05, 0.31, 0.4, 0.5, 0.9]
    path = _encode(tmp_path / "v.mp4", "mp4", "libx264", [0, 40, 80, 120, 160, 200], times=times)
    with pytest.raises(VideoReadError):  # no frame starts in [0.1, 0.3)...
        decode(path, start=0.1, end=0.3)
    # ...but the frame nearest 0.1 s (0.05) and the one nearest 0.3 s (0.31) lie either side of it
    assert decode(path, start=0.1, end=0.3, pad=True, rgb=False).times == pytest.approx([0.05, 0.31])
    assert decode(path, start=0.6, end=0.95, pad=True, rgb=False).times == pytest.approx([0.5, 0.9])
    # a TS seeks by timestamp, not to a keyframe, and may land past `start`: the frame before is still kept
    ts = _encode(tmp_path / "v.ts", "mpegts", "libx264", [(4 * k) % 250 for k in range(60)], rate=25)
    times = decode(ts, rgb=False).times
    d = decode(ts, start=times[38], end=times[45], pad=True, rgb=False)
    assert d.times[0] == pytest.approx(times[37]) and d.times[-1] == pytest.approx(times[45])


def test_a_matroska_clip_that_starts_late_is_not_called_damaged(tmp_path, caplog):
    """A clip cut from a longer one with its timestamps kept (ffmpeg's segment muxer) starts at 5 s;
    Matroska gives its duration as where it ends (6.25 s), so the whole clip read as cut short and
    a window drawn over 6.25 s mostly fell past its end."""
    from spacetime.data.decode import video_info
    from spacetime.data.probe import probe_video

    path = _encode(tmp_path / "late.mkv", "matroska", "libx264", [20 * k for k in range(10)], rate=8,
                   times=[5 + k / 8 for k in range(10)])
    row = probe_video(path)
    assert row["ok"] and row["error"] is None and row["frames"] == 10 and row["duration"] == pytest.approx(1.25)
    assert video_info(path)["duration"] == pytest.approx(1.25)
    with caplog.at_level(logging.WARNING):
        assert len(read_video(path)[0]) == 10
    assert "damaged" not in caplog.text
    # the check still sees a late-starting clip that is cut short
    whole = _encode(tmp_path / "whole.mkv", "matroska", "libx264", [(10 + 2 * k) % 250 for k in range(100)], rate=8,
                    times=[5 + k / 8 for k in range(100)], opts={"g": "8"})
    (tmp_path / "cut.mkv").write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    row = probe_video(tmp_path / "cut.mkv")
    assert not row["ok"] and "of the 12.500 s the container gives" in row["error"]


def test_a_transport_stream_cut_partway_through_a_packet_is_named_damaged(tmp_path, caplog):
    """A TS has no index or frame count, so a cut one read as a whole, shorter video: only its size,
    not a whole number of 188-byte packets, tells."""
    path = tmp_path / "whole.ts"
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for k in range(16):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * k, np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    data = path.read_bytes()
    assert len(data) % 188 == 0 and decode(path).damage is None
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2 + 50])
    d = decode(cut)
    assert 0 < len(d.frames) < 16 and "ends partway through a transport-stream packet" in d.damage
    with caplog.at_level(logging.WARNING):
        assert len(read_video(cut)[0]) == len(d.frames)
    assert "cut.ts: damaged" in caplog.text


def test_the_same_frames_make_the_same_file_every_time(tmp_path):
    """x264's macroblock tree made different files of the same frames after other decoding in the
    process (4 of 12 writes of a 32x32 clip differed): generate's output for a seed was not
    reproducible, and a CLI test comparing two such outputs failed now and then."""
    rng = np.random.default_rng(0)
    frames = (rng.random((9, 32, 32, 3)) * 255).astype(np.uint8)
    write_video(frames, tmp_path / "a.mp4")
    made = set()
    for k in range(12):
        read_video(tmp_path / "a.mp4")  # the FFmpeg work between writes that brought it out
        write_video(frames, tmp_path / f"b{k}.mp4")
        made.add((tmp_path / f"b{k}.mp4").read_bytes())
    assert len(made) == 1


def test_video_info_counts_an_image_file_as_one_frame(tmp_path):
    """video_info said 0 frames for a PNG or JPEG that read_video reads as 1."""
    from spacetime.data.decode import video_info

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "one.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "one.jpg")
    for name in ("one.png", "one.jpg"):
        info = video_info(tmp_path / name)
        assert info["still"] and info["frames"] == len(read_video(tmp_path / name)[0]) == 1, info


def test_float_frames_in_0_255_nested_lists_and_an_ambiguous_layout(caplog):
    """Float frames in 0..255 were clipped to [0, 1] (a near-white video, with a warning); an image
    as nested Python lists was 'got shape ()'; 3 frames of (C, H, W) in [-1, 1], which look like this
    project's (3, T, H, W), were taken as it without a word (scrambled frames)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(to_uint8_frames(frames.astype(np.float32)), frames)
    assert "read as 0..255" in caplog.text
    np.testing.assert_array_equal(to_uint8_frames(frames[0].tolist()), frames[:1])
    np.testing.assert_array_equal(to_uint8_frames(frames.tolist()), frames)
    np.testing.assert_array_equal(to_uint8_frames(np.full((1, 2, 2, 3), 1.5, np.float32)), 255)  # an overshoot: clipped
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        to_uint8_frames(torch.rand(3, 3, 8, 8) * 2 - 1)
    assert "is read as this project's (3, T, H, W)" in caplog.text
