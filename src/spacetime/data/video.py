"""Video IO with PyAV (FFmpeg bundled): decode anything FFmpeg opens, write H.264 MP4, GIF or PNG.

Frames at this boundary are uint8 (T, H, W, 3) RGB. Writes are atomic: the file is encoded to a
temporary name in the target folder and renamed into place, so a failed or interrupted write
leaves whatever was at the path before and no temporary file.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from spacetime.atomic import atomic_path
from spacetime.data.decode import VideoReadError, decode, over_black, video_info

__all__ = [  # VideoReadError and video_info live with the decoder; here is where users look for them
    "DEFAULT_CRF",
    "PIX_FMTS",
    "VideoReadError",
    "export_to_video",
    "frames_to_tensor",
    "read_video",
    "tensor_to_frames",
    "to_uint8_frames",
    "video_info",
    "write_video",
]

log = logging.getLogger(__name__)

# CRF 18 keeps 4:4:4 round trips of 64x64 saturated discs on flat backgrounds at 40.6 dB mean,
# 39.0 dB worst (20 clips; 4:4:4 CRF 23 gives 37.5/36.1), with margin over the 35 dB the world
# data needs. 4:2:0 is capped near 31 dB on that content by its half-resolution chroma whatever
# the CRF (31.4 dB with no codec at all), so training data is written 4:4:4.
DEFAULT_CRF = 18
# "yuv420p" plays everywhere (browsers too); "yuv444p" keeps full colour resolution and any size.
PIX_FMTS = ("yuv420p", "yuv444p")


def read_video(
    path: str | os.PathLike, max_frames: int | None = None, *, start: float = 0.0, end: float | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, float]:
    """Decode the main video stream of `path` to uint8 (T, H, W, 3) RGB and its frame rate.

    `start`/`end` (seconds) keep the frames shown in [start, end); `max_frames` stops early.
    Rotation metadata (phone videos) is applied, as players do; transparency is composited over
    black (a cover picture track is not the video). A damaged file (truncated,
    corrupt packets) yields the frames FFmpeg decodes, with a logged warning; a file with none
    raises `VideoReadError` naming the file and the reason. `size` (height, width): each frame
    scaled to it as it is decoded, so a long 4K file costs the memory of its small frames.
    """
    d = decode_video(path, max_frames, start=start, end=end, size=size)
    return np.stack(d.frames), d.fps


def decode_video(
    path: str | os.PathLike, max_frames: int | None = None, *, start: float = 0.0, end: float | None = None,
    size: tuple[int, int] | None = None,
):
    """`read_video` as the decoder's `Decoded` (frames, fps, and the file's own height and width
    even when `size` scaled the frames), damage warned of as there."""
    d = decode(path, start=start, end=end, max_frames=max_frames, size=size)
    if d.damage:
        log.warning("%s: damaged, %d frames decoded (%s)", path, len(d.frames), d.damage)
    return d


def _pil_to_rgb(im: Any) -> np.ndarray:
    """A PIL image -> uint8 (H, W, 3), upright as viewers show it (EXIF orientation applied),
    transparency composited over black, high-bit-depth greyscale scaled to 8 bits.

    PIL's convert("RGB") clips 16-bit and 32-bit values at 255 instead of scaling them, so a
    16-bit PNG (mode "I;16", or "I" from older Pillow) would come out nearly all white; and it
    drops alpha, showing whatever colour the file keeps under transparent pixels. Premultiplied
    alpha ("La", which PIL converts to nothing but "LA"; "RGBa") is unpremultiplied first.
    """
    from PIL import ImageOps

    try:
        im.load()
    except AssertionError:  # PIL's own check, message-less: Image.open's lazy file closed by its `with`
        raise ValueError("the PIL image's file was closed before its pixels were read (an Image.open used after its "
                         "`with` block): call .load() or .copy() on it inside the block") from None
    if im.getexif().get(0x0112, 1) != 1:  # EXIF orientation: phone photos are stored sideways
        im = ImageOps.exif_transpose(im)  # (a copy; without the tag it would copy for nothing)
    if im.mode in ("La", "RGBa"):
        im = im.convert("LA" if im.mode == "La" else "RGBA")
    if "transparency" in im.info and (im.mode in ("I", "F") or im.mode.startswith("I;16")):
        # a deep grey with a transparent value (a 16-bit PNG's tRNS): PIL's RGBA conversion would
        # clip it to white or black, so it is scaled as without it, and that value made black
        plain = im.copy()
        plain.info.pop("transparency", None)
        alpha = np.where(np.asarray(im) == im.info["transparency"], 0, 255).astype(np.uint8)  # (H, W)
        return over_black(_pil_to_rgb(plain), alpha[..., None])
    if "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"))
        return over_black(rgba[..., :3], rgba[..., 3:])
    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return np.array(im.convert("RGB"))  # a writable copy: torch.from_numpy warns on read-only
    grey = np.asarray(im, dtype=np.float64)  # any byte order ("I;16B") to native floats
    if grey.size == 0:
        pass  # to_uint8_frames says it is empty
    elif im.mode == "F":
        if not np.isfinite(grey).all():
            raise ValueError("image (PIL mode F) holds NaN or infinite values")
        if grey.min() >= 0.0 and grey.max() <= 1.0:  # a [0, 1] float image; else taken as 0..255
            grey = grey * 255.0
    elif im.mode.startswith("I;16") or grey.max() > 255:  # "I" above 255: 16-bit data widened by PIL
        grey = grey / 257.0  # 65535 -> 255 exactly
    grey = np.rint(np.clip(grey, 0.0, 255.0)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)  # (H, W) -> (H, W, 3)


def to_uint8_frames(video: Any) -> np.ndarray:
    """What a diffusers user may pass -> uint8 (T, H, W, 3): a list of PIL images or arrays, an
    array or tensor (T, H, W, 3) or (T, 3, H, W), uint8 or float in [0, 1] (floats reaching past 2
    are taken as 0..255, with a warning), or this project's (3, T, H, W) float in [-1, 1]
    (`frames_to_tensor`'s); nested Python lists as an array; one image is 1 frame."""
    if isinstance(video, (list, tuple)) and video and all(isinstance(f, (list, tuple, int, float)) for f in video):
        video = np.asarray(video)  # nested Python lists of numbers: an image or frames, not a list of frames
    if isinstance(video, (list, tuple)):
        frames = [to_uint8_frames(f) for f in video]
        if frames and all(len(f) > 1 for f in frames):
            raise ValueError(f"got a list of {len(frames)} videos (shapes {[f.shape for f in frames][:4]}); pass one "
                             "video, e.g. frames[0]")
        if not frames or {f.shape for f in frames} != {(1, *frames[0].shape[1:])}:
            raise ValueError(
                f"a list must hold one or more frames of one size; got shapes {[f.shape for f in frames]}"
            )
        video = np.concatenate(frames)
    if hasattr(video, "convert") and hasattr(video, "size"):  # a PIL image
        video = _pil_to_rgb(video)
    if hasattr(video, "detach"):  # a torch tensor, on any device, in any float type
        video = video.detach().cpu()
        video = video.float().numpy() if video.is_floating_point() else video.numpy()
    arr = np.asarray(video)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim == 5:
        raise ValueError(f"got a batch of videos, shape {arr.shape}; pass one video, e.g. frames[0]")
    if arr.ndim != 4:
        raise ValueError(f"video must be (T, H, W, 3) or (T, 3, H, W), got shape {arr.shape}")
    # this project's own layout, (3, T, H, W) in [-1, 1] (`frames_to_tensor`): told from (T, C, H, W)
    # by T not being a channel count, or, where it could be, by values below 0
    ours = arr.shape[0] == 3 and arr.shape[-1] not in (1, 3, 4) and (
        arr.shape[1] not in (1, 3, 4) or (np.issubdtype(arr.dtype, np.floating) and float(np.nanmin(arr)) < -0.01))
    if ours:
        if arr.shape[1] in (1, 3, 4):  # 3 frames of (C, H, W) in [-1, 1] look the same: say which was taken
            log.warning("a (3, %d, H, W) video in [-1, 1] is read as this project's (3, T, H, W); a (T, C, H, W) one "
                        "should be given in [0, 1] (x / 2 + 0.5)", arr.shape[1])
        arr = arr.transpose(1, 2, 3, 0)  # (3, T, H, W) -> (T, H, W, 3)
        if np.issubdtype(arr.dtype, np.floating):
            arr = (arr + 1) / 2  # [-1, 1] -> [0, 1]; integer frames are 0..255 in either layout
    elif arr.shape[-1] not in (1, 3, 4) and arr.shape[1] in (1, 3, 4):
        arr = arr.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, -1)
    elif arr.shape[-1] == 4:  # RGBA: video has no alpha, so composited over black (docs/data.md)
        return over_black(to_uint8_frames(arr[..., :3]), to_uint8_frames(arr[..., 3:])[..., :1])
    if arr.shape[-1] != 3:
        raise ValueError(f"video must have 1, 3 or 4 channels, got shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"video is empty: shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"video must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"integer video values must lie in 0..255, got {arr.min()}..{arr.max()}")
        return arr.astype(np.uint8)
    if not np.isfinite(arr).all():
        raise ValueError("video holds NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= -0.01 and 2.0 < hi <= 255.5:  # 0..255 in a float type (a [0, 1] video overshoots by far less)
        log.warning("float video values span %.3g..%.3g: read as 0..255 (floats are expected in [0, 1])", lo, hi)
        return np.rint(np.clip(arr, 0.0, 255.0)).astype(np.uint8)
    if lo < -0.01 or hi > 1.01:  # likely [-1, 1]: say so rather than clip silently
        log.warning(
            "float video values span %.3g..%.3g; clipped to [0, 1] (from [-1, 1] use (x + 1) / 2)", lo, hi
        )
    return np.rint(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)


def frames_to_tensor(frames: np.ndarray):
    """uint8 (T, H, W, 3) -> float tensor (3, T, H, W) in [-1, 1], the model's convention."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1.0


def tensor_to_frames(video) -> np.ndarray:
    """float tensor (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    import torch

    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"expected a (3, T, H, W) tensor, got shape {tuple(video.shape)}")
    x = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()  # (3, T, H, W) -> (T, H, W, 3)


MIN_FPS = 0.001  # one frame in 1,000 s: slower rates have no exact MP4 time base below (1/1001 s units)


def _check_fps(fps: float) -> Fraction:
    if (
        isinstance(fps, bool)
        or not isinstance(fps, (int, float, np.number))
        or not math.isfinite(fps)
        or fps < MIN_FPS
    ):
        raise ValueError(f"fps must be a finite number of at least {MIN_FPS:g}, got {fps!r}")
    return Fraction(float(fps)).limit_denominator(1001)  # 29.97 -> 30000/1001


def write_video(
    frames: Any,
    path: str | os.PathLike,
    fps: float = 8.0,
    *,
    crf: int = DEFAULT_CRF,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Write frames (anything `to_uint8_frames` takes) as H.264 MP4 or GIF, by extension.

    H.264 4:2:0 can only crop its coded size to even numbers (the SPS crop unit is 2 pixels), so
    a frame with an odd height or width is written 4:4:4, whose crop unit is 1: the file keeps
    the exact size, but browsers (which play 4:2:0 only) may refuse it.
    """
    path = Path(path)
    rate = _check_fps(fps)
    ext = path.suffix.lower()
    if ext not in (".mp4", ".gif"):
        raise ValueError(
            f"{path}: unsupported video extension {ext!r}; use .mp4 or .gif (or .png for one frame)"
        )
    if pix_fmt not in PIX_FMTS:
        raise ValueError(f"pix_fmt must be one of {PIX_FMTS}, got {pix_fmt!r}")
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an integer 0..51, got {crf!r}")
    arr = to_uint8_frames(frames)
    if ext == ".mp4" and pix_fmt == "yuv420p" and (arr.shape[1] % 2 or arr.shape[2] % 2):
        log.warning(
            "%s: odd size %dx%d (WxH) cannot be 4:2:0; written as 4:4:4, which browsers may not play",
            path,
            arr.shape[2],
            arr.shape[1],
        )
        pix_fmt = "yuv444p"
    with atomic_path(path) as tmp:
        if ext == ".mp4":
            _write_mp4(arr, tmp, rate, int(crf), pix_fmt)
        else:
            _write_gif(arr, tmp, rate)
    return path


def _write_mp4(arr: np.ndarray, tmp: str, rate: Fraction, crf: int, pix_fmt: str) -> None:
    import av

    with av.open(tmp, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = pix_fmt
        # x264's macroblock tree made the same frames into different files from run to run (after
        # other FFmpeg work in the process, at sizes up to ~100 pixels: 4 encodings of one 32x32
        # clip in 12 writes); without it a seed's video is the same file every time, and world
        # clips keep more detail in ~40% more bytes (docs/benchmarks.md, bench/world.py)
        stream.options = {"crf": str(crf), "preset": "medium", "x264-params": "mbtree=0"}
        for frame in arr:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))


def _write_gif(arr: np.ndarray, tmp: str, rate: Fraction) -> None:
    # Pillow merges identical consecutive frames into one longer frame: the timing is kept, the
    # decoded frame count is not. GIF delays are in 1/100 s, so fps is rounded. For previews.
    from PIL import Image

    images = [Image.fromarray(f) for f in arr]
    duration_ms = max(20, round(1000 / float(rate)))  # browsers slow delays under 20 ms to 100 ms
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def export_to_video(
    video_frames: Any, output_video_path: str | os.PathLike | None = None, fps: float = 8, *, provenance=None
) -> str:
    """diffusers' `export_to_video`: frames (see `to_uint8_frames`) to an MP4 (4:2:0, plays
    everywhere) or GIF by extension; a `.png` path takes a single frame. Returns the path; with
    no path, a new temporary `.mp4`, as diffusers does.

    With `provenance` (a `spacetime.provenance.Provenance`), the frames are watermarked and the
    file is signed with C2PA Content Credentials (docs/provenance.md).

    >>> export_to_video(np.zeros((8, 64, 64, 3), np.uint8), "black.mp4", fps=8)
    'black.mp4'
    """
    if output_video_path is None:
        fd, output_video_path = tempfile.mkstemp(suffix=".mp4")
        os.close(fd)
    path = Path(output_video_path)
    if provenance is not None:
        from spacetime.provenance import write_output

        write_output(video_frames, path, fps, provenance)
        return str(output_video_path)
    if path.suffix.lower() == ".png":
        arr = to_uint8_frames(video_frames)
        if arr.shape[0] != 1:
            raise ValueError(f"{path}: a PNG holds one frame, got {arr.shape[0]}; use .mp4 or .gif")
        from PIL import Image

        with atomic_path(path) as tmp:
            Image.fromarray(arr[0]).save(tmp, format="PNG")
    else:
        write_video(video_frames, path, fps=fps)
    return str(output_video_path)
