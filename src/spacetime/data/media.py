"""The inputs of the prompting modes — an image to animate, a video to extend, edit or connect —
read from whatever a user hands over: a path, an array, a tensor, a PIL image or a list of frames,
-> uint8 (T, H, W, 3), and fitted to the output's size with a warning that says what changed.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# files read with PIL (EXIF orientation, 16-bit greys, animated PNG and WebP); the rest with FFmpeg
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def load_media(x: Any, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """An image or video (a path, array, tensor, PIL image or list of frames) -> uint8 (T, H, W, 3).
    `name` ("image", "video", "video2") is the argument errors and warnings name; an "image" is one
    frame (a file's first). `size` (height, width): a video file's frames are scaled to it as they
    are decoded (with the warning `fit_media` gives), so a long 4K input costs the memory of the
    frames made."""
    from spacetime.data.video import to_uint8_frames

    if isinstance(x, (bytes, bytearray, memoryview)):
        raise ValueError(f"{name}: give a file path, a PIL image, an array or a tensor, not the file's bytes "
                         "(e.g. PIL.Image.open(io.BytesIO(data)))")
    if isinstance(x, (str, os.PathLike)):  # any path object (os.fspath's), not Path alone
        return _load_file(Path(x), name, size)
    if name == "image" and hasattr(x, "ndim") and hasattr(x, "shape") and x.ndim == 2:  # grayscale (H, W)
        x = x[..., None]
    try:
        frames = to_uint8_frames(x)
    except ValueError as e:  # its message says "video" whatever the argument: named here
        given = f" (given shape {tuple(x.shape)})" if hasattr(x, "ndim") and hasattr(x, "shape") else ""
        raise ValueError(f"{name}: {e}{given}") from None
    if name == "image" and len(frames) > 1:  # else its first frame for every prompt, silently
        raise ValueError(f"image: got {len(frames)} frames {frames.shape}; give one image (a video goes in "
                         "video=; for one image per prompt, call once per image)")
    return frames


def _load_file(path: Path, name: str, size: tuple[int, int] | None) -> np.ndarray:
    from spacetime.data.video import decode_video, to_uint8_frames

    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a directory, not a file")
    if not path.exists():
        raise ValueError(f"{name}: no such file {str(path)!r}")
    if not path.is_file():  # a device or a pipe: FFmpeg would block on it, or seek in vain
        raise ValueError(f"{name}: {str(path)!r} is not a regular file (a device or a pipe); save it to a file first")
    not_image = None
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                if name != "image" and getattr(im, "n_frames", 1) > 1:  # an animated PNG or WebP: all of it
                    return to_uint8_frames([f.copy() for f in ImageSequence.Iterator(im)])
                return to_uint8_frames(im)
        except UnidentifiedImageError as e:  # perhaps a video under an image's name: FFmpeg tries
            not_image = e
        except Image.DecompressionBombError as e:
            raise ValueError(f"{name}: {str(path)!r} is too large to read ({e}); scale it down first") from None
        except OSError as e:
            raise ValueError(f"{name}: cannot read image {str(path)!r}: {e}") from None
    try:  # an image's first frame is all it uses
        d = decode_video(path, max_frames=1 if name == "image" else None, size=size)
    except Exception as e:  # noqa: BLE001 - any decoder failure is the file's fault here
        what, why = ("image", not_image) if not_image else ("image" if name == "image" else "video", e)
        raise ValueError(f"{name}: cannot read {what} {str(path)!r}: {why}") from None
    if size is not None and (d.height, d.width) != tuple(size):
        warn_resized(name, d.height, d.width, *size)
    return np.stack(d.frames)


def fit_media(frames: np.ndarray, name: str, height: int, width: int) -> np.ndarray:
    """uint8 (T, H, W, 3) resized to height x width (antialiased bilinear), with a warning, when
    they are another size."""
    if frames.shape[1:3] == (height, width):
        return frames
    import torch
    import torch.nn.functional as F

    warn_resized(name, *frames.shape[1:3], height, width)
    t = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def warn_resized(name: str, h: int, w: int, height: int, width: int) -> None:
    """The warning for an input resized to the output's size; one whose shape changes is said to be
    stretched, not only resized (a portrait video at a landscape size)."""
    aspect, out = w / h, width / height
    stretched = (f"; stretched, as its aspect ratio ({aspect:.2f}) is not the output's ({out:.2f}): give a size of its "
                 "aspect ratio, or crop it first") if abs(math.log(aspect / out)) > 0.02 else ""
    log.warning("%s is %dx%d (WxH); resized to %dx%d%s", name, w, h, width, height, stretched)
