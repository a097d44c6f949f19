"""Video IO with PyAV (FFmpeg bundled): decode anything FFmpeg opens, write H.264 MP4, GIF or PNG.

Frames at this boundary are uint8 (T, H, W, 3) RGB. Writes are atomic: the file is encoded to a
temporary name in the target folder and renamed into place, so a failed or interrupted write
leaves whatever was at the path before.
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from spacetime.atomic import atomic_path

log = logging.getLogger(__name__)

DEFAULT_CRF = 18
# 4:2:0 halves chroma resolution, which blurs the colour of every edge of a saturated object: on
# 64x64 world clips it alone caps the round trip near 33 dB PSNR, whatever the bitrate. 4:4:4 keeps
# full chroma (about 45 dB at CRF 18) and allows odd sizes, at the cost of some players (browsers
# play 4:2:0 only). Generated videos default to 4:2:0 for players; training data to 4:4:4.
PIX_FMTS = ("yuv420p", "yuv444p")


class VideoReadError(ValueError):
    """A file that is missing, empty, corrupt or holds no decodable video; names the file."""


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode the first video stream of `path` to uint8 (T, H, W, 3) RGB and its frame rate.

    A truncated file yields the frames that decode before the damage (FFmpeg's behaviour, like a
    player); a file with no decodable frame raises `VideoReadError` naming the file and the reason.
    """
    import av

    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"{path}: no such file")
    if path.is_dir():
        raise VideoReadError(f"{path}: is a directory, not a video")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: empty file (0 bytes)")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = _stream_fps(stream)
            try:
                for frame in container.decode(stream):
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if max_frames is not None and len(frames) >= max_frames:
                        break
            except (av.error.FFmpegError, ValueError) as e:
                if not frames:
                    raise VideoReadError(f"{path}: cannot decode video ({e})") from None
                log.warning("%s: decoding stopped after %d frames (%s)", path, len(frames), e)
    except VideoReadError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, UnicodeDecodeError) as e:
        raise VideoReadError(f"{path}: not a readable video ({type(e).__name__}: {e})") from None
    if not frames:
        raise VideoReadError(f"{path}: no decodable frames")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:  # a stream that changes size mid-way: keep the first size's frames
        frames = [f for f in frames if f.shape == frames[0].shape]
    return np.stack(frames), fps


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 25.0  # FFmpeg's own fallback for streams that declare no rate


def to_uint8_frames(video: Any) -> np.ndarray:
    """What a diffusers user may pass -> uint8 (T, H, W, 3): a list of PIL images or arrays, an
    array or tensor (T, H, W, 3) or (T, 3, H, W), uint8 or float in [0, 1]; one image is 1 frame."""
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError("video is empty: no frames")
        video = np.stack([to_uint8_frames(f)[0] for f in video])
    if hasattr(video, "convert") and hasattr(video, "size"):  # a PIL image
        video = np.asarray(video.convert("RGB"))
    if hasattr(video, "detach"):  # a torch tensor
        video = video.detach().cpu()
        video = video.float().numpy() if video.is_floating_point() else video.numpy()
    arr = np.asarray(video)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"video must be (T, H, W, 3) or (T, 3, H, W), got shape {arr.shape}")
    if arr.shape[-1] not in (1, 3, 4) and arr.shape[1] in (1, 3, 4):
        arr = arr.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, -1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.shape[-1] != 3:
        raise ValueError(f"video must have 1, 3 or 4 channels, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"video is empty: shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"video must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError("integer video values must lie in 0..255")
        return arr.astype(np.uint8)
    if not np.isfinite(arr).all():
        raise ValueError("video holds NaN or infinite values")
    return np.rint(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)


def frames_to_tensor(frames: np.ndarray):
    """uint8 (T, H, W, 3) -> float tensor (3, T, H, W) in [-1, 1], the model's convention."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1.0


def tensor_to_frames(video) -> np.ndarray:
    """float tensor (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"expected a (3, T, H, W) tensor, got shape {tuple(video.shape)}")
    x = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(dtype=__import__("torch").uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def _check_fps(fps: float) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    return Fraction(float(fps)).limit_denominator(1001)


def write_video(
    frames: Any, path: str | os.PathLike, fps: float = 8.0, *, crf: int = DEFAULT_CRF, pix_fmt: str = "yuv420p"
) -> Path:
    """Write frames (anything `to_uint8_frames` takes) as H.264 MP4 or GIF, by extension.

    `pix_fmt` "yuv420p" plays everywhere; "yuv444p" keeps full colour resolution (see PIX_FMTS).
    4:2:0 needs even sizes, so a frame with an odd height or width is written in 4:4:4, which keeps
    its exact size.
    """
    path = Path(path)
    rate = _check_fps(fps)
    ext = path.suffix.lower()
    if ext not in (".mp4", ".gif"):
        raise ValueError(f"{path}: unsupported video extension {ext!r}; use .mp4 or .gif (or .png for one frame)")
    if pix_fmt not in PIX_FMTS:
        raise ValueError(f"pix_fmt must be one of {PIX_FMTS}, got {pix_fmt!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an integer 0..51, got {crf!r}")
    arr = to_uint8_frames(frames)
    if ext == ".mp4" and pix_fmt == "yuv420p" and (arr.shape[1] % 2 or arr.shape[2] % 2):
        log.info("%s: odd size %dx%d (WxH) is written as yuv444p", path, arr.shape[2], arr.shape[1])
        pix_fmt = "yuv444p"
    with atomic_path(path) as tmp:
        if ext == ".mp4":
            _write_mp4(arr, tmp, rate, crf, pix_fmt)
        else:
            _write_gif(arr, tmp, rate)
    return path


def _write_mp4(arr: np.ndarray, tmp: str, rate: Fraction, crf: int, pix_fmt: str) -> None:
    import av

    with av.open(tmp, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = pix_fmt
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in arr:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))


def _write_gif(arr: np.ndarray, tmp: str, rate: Fraction) -> None:
    # Pillow merges identical consecutive frames into one longer frame: playback timing is
    # kept, the decoded frame count is not. GIF is for previews; MP4 is the exact format.
    from PIL import Image

    images = [Image.fromarray(f) for f in arr]
    duration_ms = max(10, round(1000 / float(rate)))
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def export_to_video(video_frames: Any, output_video_path: str | os.PathLike, fps: float = 8) -> str:
    """diffusers' `export_to_video`: frames (list of PIL images or arrays, float in [0, 1] or
    uint8; arrays or tensors (T, H, W, 3)) to an MP4 or GIF; a `.png` path takes a single frame."""
    path = Path(output_video_path)
    if path.suffix.lower() == ".png":
        arr = to_uint8_frames(video_frames)
        if arr.shape[0] != 1:
            raise ValueError(f"{path}: a PNG holds one frame, got {arr.shape[0]}; use .mp4 or .gif")
        from PIL import Image

        with atomic_path(path) as tmp:
            Image.fromarray(arr[0]).save(tmp, format="PNG")
        return str(path)
    write_video(video_frames, path, fps=fps)
    return str(path)
