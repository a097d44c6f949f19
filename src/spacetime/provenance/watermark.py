"""An invisible watermark in the pixels: spread spectrum over the clip's time axis.

Each frame's luma gets a faint, smooth field: a combination of the K = 3x3 lowest 2D cosines (in
coordinates normalised to the frame, so resizing leaves the field where it was). What is keyed is
how the field changes from one frame to the next: between consecutive frames of one VAE chunk
(frame 0 alone, then frames 1-4, 5-8, ...: the decoder's temporal groups), the change of each
cosine's coefficient is +-GAIN, its sign a keyed pseudo-random chip. Changes across chunk
boundaries carry no chips, because generated videos jump most there (measured: a frame-to-frame
change of ~50 luma levels across a boundary, ~15 within). Content mostly moves smoothly, so the
detector

1. takes the within-chunk frame differences per pixel, which remove the static picture and most motion,
2. clips each pixel's residual at +-TAU luma levels: moving edges and codec noise are large and
   sparse, the mark is small and everywhere, so clipping removes the content's energy and keeps
   the mark's,
3. fits the K cosines to each frame's residual by least squares, over a few crop hypotheses (the
   clip may show only the centre 80-90% of the marked frame),
4. removes each coefficient's slow drift over the steps (its projection on 1 + S // 8 slow
   cosines in time): fades, pans across gradients and lighting changes live there, the mark
   (white over steps) barely, and
5. correlates the coefficients with the chips: score = <chips, f> / |f|, f a clipped copy of them.

Why a threshold of 4: for a key drawn at random, independently of the content, the chips are
independent +-1 given f, so P(score > s) <= exp(-s^2 / 2) (Hoeffding), <= 19 * 3.4e-4 = 0.6%
over the 19 crop hypotheses. The key is fixed and public, though, so this is no guarantee for a
given clip: content whose coefficients happen to follow the chips scores high (before step 4, a
grey sawtooth panning scored 5.5, as the constant cosine's chips are +1 in 11 of the first 12
steps). The measured false-positive rates (world clips, camera footage, fades and pans) are in
docs/provenance.md, as are PSNR and the detection rates after H.264 CRF 28, resizing and cropping.

The embedder adds the smallest field (least squares, by dual ascent) whose differenced
projections equal GAIN * chips, within 0..255 per pixel, so black and white backgrounds, where a
plain additive field would clip, still carry the full mark.

A still (one frame: a PNG from text->image) has no frame steps, so it gets a second, spatial
mark: a keyed +-1 pattern per pixel (from SHA-256 of the key and the image size) added to luma,
inside 0..255. The detector removes the picture's smooth part (the 3x3 local mean), clips the
residual at +-STILL_TAU, and correlates it with the pattern: score = <P, r> / |r|, again
sub-Gaussian on any unmarked image (P(score > s) <= exp(-s^2 / 2), one hypothesis). Stills are
written losslessly (PNG); this mark is not meant to survive re-encoding, resizing or cropping.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

DEFAULT_KEY = "spacetime-watermark-v1"  # public: anyone can check a file, as with C2PA
ORDERS = 3  # cosines 0..2 per axis: K = 9 patterns, smooth enough to survive codecs and crops
MAX_GAIN = 2.0  # luma levels of change per frame step and cosine, at the strongest
_SCALES = np.geomspace(0.2, 1.0, 8)  # strengths tried, weakest first (0.4 .. 2.0 levels)
TARGET_SCORE = 8.0  # strength stops rising once the clip's own score reaches this
PSNR_FLOOR = 40.5  # dB against the unmarked clip: the 40, with a margin
TAU = 2.0  # luma levels: per-pixel residual clip in the detector
THRESHOLD = 4.0  # score above which a clip is called marked (see the bound above)
CHUNK = 4  # frames per VAE latent frame after the first (the shipped VAE's temporal factor)
MIN_FRAMES = 8  # the statistic needs frame steps: a shorter clip is not judged (a still has its own mark)
STILL_GAINS = (1.0, 1.5, 2.0, 2.5)  # luma levels per pixel, weakest first
STILL_TAU = 6.0  # luma levels: residual clip of the still detector
_ITERS = 100
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_MAX_SIDE = 256  # the detector block-averages bigger frames first: the mark is low-frequency
SMOOTH_STEPS = 8  # the detector removes 1 slow temporal component per this many steps (see _smooth)


def _crop_hypotheses() -> list[tuple[float, float, float, float]]:
    # (u0, v0, su, sv): the clip shows [u0, u0+su] x [v0, v0+sv] of the marked frame
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    for s in (0.9, 0.8):
        for u0 in (0.0, (1 - s) / 2, 1 - s):
            for v0 in (0.0, (1 - s) / 2, 1 - s):
                boxes.append((u0, v0, s, s))
    return boxes


BOXES = _crop_hypotheses()


@dataclass(frozen=True)
class WatermarkResult:
    detected: bool
    score: float | None  # None when the clip is too short to judge
    threshold: float
    frames: int

    def as_dict(self) -> dict:
        return {"detected": self.detected, "score": self.score, "threshold": self.threshold, "frames": self.frames}


def _basis(height: int, width: int, box=(0.0, 0.0, 1.0, 1.0)) -> np.ndarray:
    """(K, H*W) cosines of unit RMS over the full frame, sampled on the part `box` shows."""
    u0, v0, su, sv = box
    u = u0 + su * (np.arange(width) + 0.5) / width
    v = v0 + sv * (np.arange(height) + 0.5) / height
    norm = [1.0] + [np.sqrt(2.0)] * (ORDERS - 1)
    bx = np.stack([norm[i] * np.cos(np.pi * i * u) for i in range(ORDERS)])  # (k, W)
    by = np.stack([norm[i] * np.cos(np.pi * i * v) for i in range(ORDERS)])  # (k, H)
    return np.einsum("ay,bx->abyx", by, bx).reshape(ORDERS * ORDERS, height * width)  # (K, H*W)


def _steps(num_frames: int) -> np.ndarray:
    """(S, T) differences y[t] - y[t-1] for consecutive frames of one VAE chunk (1-4, 5-8, ...)."""
    rows = [t for t in range(2, num_frames) if (t - 1) % CHUNK != 0]
    d = np.zeros((len(rows), num_frames))
    for i, t in enumerate(rows):
        d[i, t], d[i, t - 1] = 1.0, -1.0
    return d


def chips(key: str, num_steps: int) -> np.ndarray:
    """(S, K) keyed +-1 chips; step s's chips depend only on (key, s), so any length works."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"watermark key must be a non-empty string, got {key!r}")
    k = ORDERS * ORDERS
    out = np.empty((num_steps, k))
    for s in range(num_steps):
        bits = np.unpackbits(np.frombuffer(hashlib.sha256(f"{key}:{s}".encode()).digest(), np.uint8))
        out[s] = bits[:k] * 2.0 - 1.0
    return out


def _check_frames(frames: np.ndarray, name: str = "frames") -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise ValueError(f"{name} must be uint8 (T, H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


def _field(arr: np.ndarray, key: str, gain: float) -> np.ndarray | None:
    """(T, H, W) luma change whose within-chunk steps project to gain * chips; None: no steps."""
    t, h, w, _ = arr.shape
    d = _steps(t).astype(np.float32)  # (S, T)
    if d.shape[0] == 0:
        return None
    basis = _basis(h, w).astype(np.float32)  # (K, HW)
    target = gain * chips(key, d.shape[0]).astype(np.float32)  # (S, K) wanted changes of the projections
    lo = -arr.min(-1).reshape(t, -1).astype(np.float32)  # (T, HW) room below, all channels
    hi = 255.0 - arr.max(-1).reshape(t, -1).astype(np.float32)  # room above
    lam = np.zeros_like(target)
    # Dual ascent on min |delta|^2 s.t. D (delta B^T / HW) = target, lo <= delta <= hi. The step
    # 1/4 is under 2 / (largest eigenvalue of D D^T, at most 4), so it cannot diverge.
    for _ in range(_ITERS):
        delta = np.clip((d.T @ lam) @ basis, lo, hi)  # (T, HW)
        lam += 0.25 * (target - d @ (delta @ basis.T) / (h * w))
    return delta.reshape(t, h, w)


def _apply(arr: np.ndarray, field: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(arr.astype(np.float32) + field[..., None]), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _still_pattern(key: str, height: int, width: int) -> np.ndarray:
    if not isinstance(key, str) or not key:
        raise ValueError(f"watermark key must be a non-empty string, got {key!r}")
    seed = int.from_bytes(hashlib.sha256(f"{key}:still:{height}x{width}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).integers(0, 2, (height, width)).astype(np.float32) * 2 - 1


def _local_residual(y: np.ndarray) -> np.ndarray:
    """(H, W) luma minus its 3x3 local mean (edges reflected): the picture's smooth part removed."""
    pad = np.pad(y, 1, mode="reflect")
    h, w = y.shape
    mean = sum(pad[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    return y - mean


def still_score(frame: np.ndarray, key: str = DEFAULT_KEY) -> float:
    """The still detector's statistic for one uint8 (H, W, 3) frame: sub-Gaussian if unmarked."""
    arr = _check_frames(np.asarray(frame)[None], "frame")[0]
    y = arr.astype(np.float32) @ _LUMA
    if min(y.shape) < 2:
        return 0.0
    r = np.clip(_local_residual(y), -STILL_TAU, STILL_TAU)
    pattern = _still_pattern(key, *y.shape)
    return float((pattern * r).sum() / np.sqrt((r**2).sum() + 1e-12))


def _watermark_still(frame: np.ndarray, key: str, gain: float | None) -> np.ndarray:
    pattern = _still_pattern(key, *frame.shape[:2])
    lo = -frame.min(-1).astype(np.float32)  # room below and above, all channels
    hi = 255.0 - frame.max(-1).astype(np.float32)

    def mark(g: float) -> np.ndarray:
        return _apply(frame[None], np.clip(g * pattern, lo, hi)[None])[0]

    if gain is not None:
        return mark(gain)
    best = mark(STILL_GAINS[0])  # the weakest always; stronger ones while PSNR allows and the score asks
    for g in STILL_GAINS[1:]:
        if still_score(best, key) >= TARGET_SCORE:
            break
        out = mark(g)
        if psnr(frame, out) < PSNR_FLOOR:
            break
        best = out
    return best


def watermark(frames: np.ndarray, key: str = DEFAULT_KEY, gain: float | None = None) -> np.ndarray:
    """Return a marked copy of uint8 (T, H, W, 3) frames; the same luma change goes to R, G and B.

    By default the strength adapts to the clip: the weakest of a few strengths whose own score
    reaches TARGET_SCORE, never below PSNR_FLOOR dB. Calm clips (the world's flat backgrounds) need
    little (~46 dB); flickering ones get more, up to the floor. `gain` fixes the strength instead.
    A still (one frame) gets the spatial still mark instead; other clips without two consecutive
    frames in one chunk are returned unmarked.
    """
    arr = _check_frames(frames)
    if gain is not None and not (isinstance(gain, (int, float)) and 0 < gain <= 10):
        raise ValueError(f"gain must be in (0, 10], got {gain!r}")
    if arr.shape[0] == 1:
        return _watermark_still(arr[0], key, gain)[None]
    field = _field(arr, key, gain or MAX_GAIN)
    if field is None:
        return arr.copy()
    if gain is not None:
        return _apply(arr, field)
    # scaling the field down keeps it inside 0..255 (the box holds 0), so one solve serves all
    best = None
    for scale in _SCALES:
        out = _apply(arr, scale * field)
        if psnr(arr, out) < PSNR_FLOOR:
            break
        best = out
        if watermark_score(out, key, boxes=BOXES[:1]) >= TARGET_SCORE:
            break
    if best is None:  # even the weakest costs too much: scale to the floor exactly
        out = _apply(arr, _SCALES[0] * field)
        best = _apply(arr, _SCALES[0] * field * 10 ** ((psnr(arr, out) - PSNR_FLOOR - 0.1) / 20))
    return best


def _luma(arr: np.ndarray) -> np.ndarray:
    y = arr.astype(np.float32) @ _LUMA  # (T, H, W)
    f = max(1, -(-max(y.shape[1:]) // _MAX_SIDE))
    f = min(f, max(1, min(y.shape[1:]) // 8))  # a 2000x16 strip keeps 8 rows: 2 left the basis singular
    if f > 1:  # block mean: keeps the low frequencies the mark lives in, at a fraction of the cost
        t, h, w = y.shape
        y = y[:, : h // f * f, : w // f * f].reshape(t, h // f, f, w // f, f).mean((2, 4))
    return y


def _smooth(num_frames: int) -> np.ndarray:
    """(S, m) orthonormal slow cosines over the steps' times, m = 1 + S // SMOOTH_STEPS.

    The key is public and fixed, and its chips are not balanced over every stretch of steps (the
    constant cosine's are +1 in 11 of the first 12), so content whose coefficients drift smoothly
    (a fade, a pan across a gradient, a lighting change) could correlate with them. The detector
    removes these slow components before correlating; the mark, white over steps, loses ~m / S of
    its energy.
    """
    t = np.array([i for i in range(2, num_frames) if (i - 1) % CHUNK != 0], np.float64)  # as _steps
    m = 1 + len(t) // SMOOTH_STEPS
    x = np.stack([np.cos(np.pi * j * (t + 0.5) / num_frames) for j in range(m)], 1)  # (S, m)
    return np.linalg.qr(x)[0]


def watermark_score(frames: np.ndarray, key: str = DEFAULT_KEY, boxes=BOXES) -> float:
    """The detection statistic: ~N(0, 1) on unmarked clips (see above), ~7-10 on marked world clips."""
    return _luma_score(_luma(_check_frames(frames)), key, boxes)


def _luma_score(y: np.ndarray, key: str, boxes=BOXES) -> float:
    """`watermark_score` of the detector's luma (T, h, w), as `_luma` makes it."""
    t, h, w = y.shape
    d = _steps(t)
    r = np.clip(d @ y.reshape(t, -1), -TAU, TAU)  # (S, HW) content largely clipped away
    c = chips(key, d.shape[0])
    u = _smooth(t)  # (S, m)
    best = -np.inf
    for box in boxes:
        a = _basis(h, w, box)  # (K, HW)
        q = np.linalg.solve(a @ a.T, a @ r.T).T  # (S, K) least-squares cosine coefficients
        q = q - u @ (u.T @ q)  # (S, K) slow drifts of the content removed
        s = 2.0 * np.median(np.abs(q)) + 1e-9
        f = np.clip(q, -s, s)  # one outlier frame cannot carry or sink the score
        best = max(best, float((c * f).sum() / np.sqrt((f**2).sum() + 1e-12)))
    return best


def detect_watermark_stream(frames, key: str = DEFAULT_KEY, threshold: float = THRESHOLD) -> WatermarkResult:
    """`detect_watermark` of an iterable of uint8 (H, W, 3) frames, each reduced to the detector's
    luma as it arrives: memory is bounded by the reduced size (at most 256 a side), not by the
    clip's (240 frames of 1080p RGB are 1.5 GB). Stops at a change of frame size."""
    first, lumas = None, []
    for frame in frames:
        frame = _check_frames(np.asarray(frame)[None], "frame")[0]
        if first is None:
            first = frame  # kept whole: a one-frame file is judged by the still mark
        elif frame.shape != first.shape:
            break
        lumas.append(_luma(frame[None])[0])  # (h, w)
    if first is None:
        raise ValueError("no frames")
    if len(lumas) == 1:
        return detect_watermark(first[None], key, threshold)
    if len(lumas) < MIN_FRAMES:
        return WatermarkResult(False, None, threshold, len(lumas))
    score = _luma_score(np.stack(lumas), key)
    return WatermarkResult(score > threshold, round(score, 3), threshold, len(lumas))


def detect_watermark(frames: np.ndarray, key: str = DEFAULT_KEY, threshold: float = THRESHOLD) -> WatermarkResult:
    """Is spacetime's mark in these uint8 (T, H, W, 3) frames? A still (one frame) is judged by the
    still mark; other clips under MIN_FRAMES are not judged."""
    arr = _check_frames(frames)
    if arr.shape[0] == 1:
        score = still_score(arr[0], key)
        return WatermarkResult(score > threshold, round(score, 3), threshold, 1)
    if arr.shape[0] < MIN_FRAMES:
        return WatermarkResult(False, None, threshold, arr.shape[0])
    score = watermark_score(arr, key)
    return WatermarkResult(score > threshold, round(score, 3), threshold, arr.shape[0])
