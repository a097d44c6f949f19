"""Read a world-style video by its palette: per frame and colour, the object's mask, area, centroid,
bounding box and shape; the background; the occluder bar.

The world's conventions make this a lookup, not a learned detector (docs/world.md): object colours
are saturated and far from each other and from every neutral (backgrounds, occluder greys), and a
colour names one object. Each pixel takes the nearest of all reference colours; an object pixel is
one whose nearest colour is an object colour within `COLOUR_TOL`. Anti-aliased edges are blends of
two reference colours, and every such blend is nearer one of its ends (or a neutral) than any third
object colour, so edges never read as another object (the one exception, red + yellow = orange,
occurs only where two objects touch, as a 1-pixel line that the area floor drops). Video codecs
shift colours by a few tens at most in an object's interior (H.264 4:2:0 smears chroma at edges
only), far inside the tolerance.

Blobs are connected components; the bar (full-height, neutral) bridges them, so an object cut in two
by the bar is one object. Position and shape come from coverage, not from the hard mask: each pixel
near the object is weighted by where its colour lies between the background's and the object's,
which anti-aliasing makes exact and full-resolution luma keeps through 4:2:0 chroma. The shape is
the world shape whose anti-aliased rendering (the renderer's own `shape_sdf`) best matches that
coverage. Pixel coordinates: (column, row) from the top-left corner with pixel
centres at +0.5, the same frame as `render.scene_to_pixel`, so scene units are pixel / height with
y = 1 - row / height (the view is 1 unit high; x is relative to the view's left edge).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from spacetime.world import vocab

# RGB distance within which a pixel counts as a palette colour. Object colours are >= 127 apart and
# >= 180 from every neutral, so 80 leaves room for codec error and still rejects half-blended edges
# (a 50/50 red-on-white pixel is 128 from orange).
COLOUR_TOL = 80.0
NEUTRAL_TOL = 60.0  # background and bar greys: neutrals are >= 95 apart
BAR_COLUMN_FILL = 0.8  # a column is bar if this fraction of its rows is occluder grey
# An object is present in a frame from a quarter of the smallest object's area (a small ball): less
# is a sliver at the frame edge or the bar, or codec/noise specks, which never reach it.
MIN_AREA_OF_SMALLEST = 0.15
SPECK_PX = 3  # smaller blobs are dust: random pixels near a palette colour (noise), codec ringing
TOUCH_PX = 1.0  # a bounding box within this of the frame edge or another object touches it
BAR_MARGIN = 2.5  # the bar's blended edge, widened by 4:2:0 chroma, hides this much more

_OBJECT_NAMES = tuple(vocab.COLOURS)
_NEUTRAL_NAMES = tuple(vocab.BACKGROUNDS) + tuple(vocab.OCCLUDER_COLOURS)
_REFS = np.array(
    [*vocab.COLOURS.values(), *vocab.BACKGROUNDS.values(), *vocab.OCCLUDER_COLOURS.values()], np.float32
)
_N_OBJ, _N_BG = len(_OBJECT_NAMES), len(vocab.BACKGROUNDS)

SHAPES = vocab.SHAPES  # ball, square, triangle: the columns of `Track.shape_err`
# area of each shape of half-extent r, over r^2: a coverage area gives r for each hypothesis
_AREA_PER_R2 = {"ball": np.pi, "square": 4.0, "triangle": 2.0}


@dataclass
class Track:
    """One colour's object through a clip. Arrays have one entry per frame; absent frames hold 0 /
    NaN / False."""

    colour: str
    area: np.ndarray  # (T,) pixels in the object's mask
    coverage: np.ndarray  # (T,) summed coverage near the object: its area with sub-pixel edges
    centroid: np.ndarray  # (T, 2) (column, row), pixels, coverage-weighted; NaN where absent
    bbox: np.ndarray  # (T, 4) (col0, row0, col1, row1) of the mask, exclusive ends, NaN where absent
    parts: np.ndarray  # (T,) separate blobs of this colour (> 1: a second object of one colour)
    shape_err: np.ndarray  # (T, 3) mismatch of the coverage with each rendered world shape (SHAPES)
    clean: np.ndarray  # (T,) bool: whole and not overlapping another object's box
    whole: np.ndarray  # (T,) bool: present, not cut by a frame edge, not partly behind the bar
    cut_x: np.ndarray  # (T,) bool: cut by the left or right frame edge (box narrowed where it touches it)
    cut_y: np.ndarray  # (T,) bool: cut by the top or bottom frame edge

    @property
    def present(self) -> np.ndarray:
        return self.area > 0

    @property
    def extent(self) -> np.ndarray:
        """(T,) half-extent in pixels: half the larger side of the bounding box (every world shape
        fills a square box of side 2r)."""
        return np.maximum(self.bbox[:, 2] - self.bbox[:, 0], self.bbox[:, 3] - self.bbox[:, 1]) / 2

    def best_frames(self) -> np.ndarray:
        """(T,) bool: the frames that show the object whole — clean ones, else whole ones touching
        another object; none if it is never whole (its shape and size are then not judged: a
        sliver beside the bar or the frame edge says little about either)."""
        return self.clean if self.clean.any() else self.whole

    def shape(self, frames: np.ndarray | None = None) -> str | None:
        """The world shape that best matches the object over `frames` (default `best_frames`), by
        the median mismatch: one frame of a small object through 4:2:0 chroma may mislead, the
        median over a clip does not. None without frames."""
        frames = self.best_frames() if frames is None else frames
        if not frames.any():
            return None
        return SHAPES[int(np.argmin(np.median(self.shape_err[frames], 0)))]

    def radius(self, frames: np.ndarray | None = None) -> float | None:
        """Half-extent r in pixels from the median coverage area and the shape."""
        frames = self.best_frames() if frames is None else frames
        shape = self.shape(frames)
        if shape is None:
            return None
        return float(np.sqrt(np.median(self.coverage[frames]) / _AREA_PER_R2[shape]))

    def size(self, height: int) -> str | None:
        """The world size (vocab.SIZES, in view heights) nearest the object's, in log scale."""
        r = self.radius()
        if r is None:
            return None
        return min(vocab.SIZES, key=lambda s: abs(np.log(r / height / vocab.SIZES[s])))


@dataclass
class ClipTrack:
    """Everything the tracker reads from one video."""

    height: int
    width: int
    fps: float
    tracks: dict[str, Track]  # colours seen in at least one frame
    background: str | None  # the neutral covering most of the frame, or None
    background_fraction: float  # median per-frame fraction of pixels of that background
    bar: np.ndarray  # (T, 2) (col0, col1) of the occluder bar per frame, NaN where none
    bar_colour: str | None

    @property
    def num_frames(self) -> int:
        return self.bar.shape[0]

    def world_xy(self, colour: str) -> np.ndarray:
        """(T, 2) centroid in scene units: x from the view's left edge, y up from the floor."""
        c = self.tracks[colour].centroid
        return np.stack([c[:, 0] / self.height, 1.0 - c[:, 1] / self.height], -1)


def box_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,) Chebyshev gap in pixels between boxes (..., 4) (col0, row0, col1, row1): <= 0 when
    they touch or overlap, NaN where either is absent."""
    gx = np.maximum(a[..., 0] - b[..., 2], b[..., 0] - a[..., 2])
    gy = np.maximum(a[..., 1] - b[..., 3], b[..., 1] - a[..., 3])
    return np.maximum(gx, gy)


def min_area(height: int) -> float:
    """Pixels from which an object counts as present in a frame `height` pixels high."""
    return max(3.0, MIN_AREA_OF_SMALLEST * np.pi * (vocab.SIZES["small"] * height) ** 2)


def classify_pixels(frames: np.ndarray, chunk: int = 8) -> np.ndarray:
    """uint8 (T, H, W, 3) -> int8 (T, H, W): index into COLOURS for object pixels, -1 for none,
    -2 - k for neutral k (backgrounds, then occluder greys). Chunked so memory stays flat."""
    out = np.empty(frames.shape[:3], np.int8)
    for s in range(0, frames.shape[0], chunk):
        x = frames[s : s + chunk].astype(np.float32)  # (t, H, W, 3)
        d = np.sqrt(((x[..., None, :] - _REFS) ** 2).sum(-1))  # (t, H, W, R)
        k = d.argmin(-1)
        near = np.take_along_axis(d, k[..., None], -1)[..., 0]
        lab = np.full(k.shape, -1, np.int8)
        is_obj = k < _N_OBJ
        lab[is_obj & (near <= COLOUR_TOL)] = k[is_obj & (near <= COLOUR_TOL)]
        neutral = ~is_obj & (near <= NEUTRAL_TOL)
        lab[neutral] = (-2 - (k[neutral] - _N_OBJ)).astype(np.int8)
        out[s : s + chunk] = lab
    return out


def label_components(mask: np.ndarray) -> np.ndarray:
    """8-connected components of each frame of a bool (T, H, W) mask: int64 labels (T, H, W), -1
    off the mask, otherwise the smallest flat index in the component. Min-label propagation with
    pointer jumping (label = label[label]), which converges in a few dozen passes on blobs; numpy
    only, so the tracker needs no scipy."""
    t, h, w = mask.shape
    flat = np.arange(t * h * w, dtype=np.int64).reshape(t, h, w)
    big = np.int64(t * h * w)
    lab = np.where(mask, flat, big)
    while True:
        new = lab.copy()
        p = np.pad(lab, ((0, 0), (1, 1), (1, 1)), constant_values=big)  # (T, H+2, W+2)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                np.minimum(new, p[:, dy : dy + h, dx : dx + w], out=new)
        new = np.where(mask, new, big)
        # pointer jumping: a label is a pixel of the same component; follow it to that pixel's label
        for _ in range(4):
            idx = np.where(new < big, new, 0)
            jumped = np.where(new < big, new.reshape(-1)[idx.reshape(-1)].reshape(t, h, w), big)
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, lab):
            return np.where(mask, lab, -1)
        lab = new


def _dilate(mask: np.ndarray) -> np.ndarray:
    """bool (T, H, W) grown by one pixel in the 8 directions, within each frame."""
    h, w = mask.shape[1:]
    p = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    return np.any([p[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=0)


def _find_bar(labels: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(T, 2) bar columns per frame (NaN where none) and the bar's grey: the widest run of columns
    filled with one occluder grey, at least half the world's bar width unless at a frame edge."""
    t, h, w = labels.shape
    bar = np.full((t, 2), np.nan)
    best_colour, best_count = None, 0
    for g, name in enumerate(vocab.OCCLUDER_COLOURS):
        code = -2 - (_N_BG + g)
        cols = (labels == code).mean(1) >= BAR_COLUMN_FILL  # (T, W)
        if cols.sum() > best_count:
            best_colour, best_count = name, int(cols.sum())
            runs = cols
    if best_colour is None:
        return bar, None
    min_width = 0.5 * vocab.OCCLUDER_WIDTH * h
    for k in range(t):
        edges = np.flatnonzero(np.diff(np.r_[0, runs[k].astype(np.int8), 0]))
        # a bar entering or leaving the view is narrower where the frame edge cuts it
        spans = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_width or a == 0 or b == w]
        if spans:
            a, b = max(spans, key=lambda s: s[1] - s[0])
            bar[k] = (a, b)
    if np.isnan(bar[:, 0]).all():
        return bar, None
    return bar, best_colour


def track(frames: np.ndarray, fps: float) -> ClipTrack:
    """Track every palette object in uint8 (T, H, W, 3) frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < float(fps) <= 1000:
        raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")  # gravity is px/s^2: it divides by fps
    t, h, w, _ = frames.shape
    labels = classify_pixels(frames)  # (T, H, W)

    bg_frac = np.stack([(labels == -2 - b).mean((1, 2)) for b in range(_N_BG)], -1)  # (T, B)
    b = int(np.median(bg_frac, 0).argmax())
    background_fraction = float(np.median(bg_frac[:, b]))
    background = _NEUTRAL_NAMES[b] if background_fraction > 0 else None

    bar, bar_colour = _find_bar(labels)
    on_bar = np.zeros((t, h, w), bool)  # the bar, widened past its blended edges: it bridges blobs it cuts
    for k in np.flatnonzero(~np.isnan(bar[:, 0])):
        on_bar[k, :, max(0, int(bar[k, 0]) - 2) : min(w, int(bar[k, 1]) + 2)] = True

    floor = min_area(h)
    bg_code = -2 - b
    bg_rgb = np.asarray(vocab.BACKGROUNDS[background], np.float32) if background else None
    tracks: dict[str, Track] = {}
    for c, name in enumerate(_OBJECT_NAMES):
        mask = labels == c
        if mask.sum() < floor:
            continue
        # Specks first: blobs under SPECK_PX pixels are codec or noise dust and are dropped. The
        # rest merge when a pixel apart (a row lost to the codec must not split an object in two);
        # dropping dust first keeps that bridge from joining random specks into an object.
        comp = label_components(mask | on_bar)
        ids, counts = np.unique(comp[mask], return_counts=True)
        mask &= np.isin(comp, ids[counts >= SPECK_PX])
        comp = label_components(_dilate(mask) | on_bar)
        comp = np.where(mask, comp, -1)
        area = np.zeros(t)
        centroid = np.full((t, 2), np.nan)
        bbox = np.full((t, 4), np.nan)
        parts = np.zeros(t, np.int64)
        coverage = np.zeros(t)
        shape_err = np.full((t, len(SHAPES)), np.nan)
        for k in range(t):
            ids, counts = np.unique(comp[k][comp[k] >= 0], return_counts=True)
            big = ids[counts >= floor]
            if big.size == 0:
                continue
            parts[k] = big.size
            m = np.isin(comp[k], big)  # (H, W) the object: every blob of its colour large enough
            rr, cc = np.nonzero(m)
            area[k] = rr.size
            bbox[k] = (cc.min(), rr.min(), cc.max() + 1, rr.max() + 1)
            centroid[k] = (cc.mean() + 0.5, rr.mean() + 0.5)
            coverage[k] = area[k]
            if bg_rgb is not None:
                coverage[k], centroid[k], shape_err[k] = _measure(
                    frames[k], labels[k], c, bbox[k], bg_rgb, bg_code
                )
        if not (area > 0).any():
            continue
        none = np.zeros(t, bool)
        tracks[name] = Track(name, area, coverage, centroid, bbox, parts, shape_err, none, none, none, none)

    # clean frames: the whole object in view. An object touching a frame edge is whole unless its
    # box is narrowed there (every world shape fills a square box): the floor and ceiling are frame
    # edges that objects touch whole, and so are the walls under a static camera.
    for name, tr in tracks.items():
        x0, y0, x1, y1 = tr.bbox.T
        bw, bh = x1 - x0, y1 - y0
        with np.errstate(invalid="ignore"):
            narrow_x = bw < bh - np.maximum(1.5, 0.15 * bh)
            narrow_y = bh < bw - np.maximum(1.5, 0.15 * bw)
            tr.cut_x = tr.present & ((x0 <= TOUCH_PX) | (x1 >= w - TOUCH_PX)) & narrow_x
            tr.cut_y = tr.present & ((y0 <= TOUCH_PX) | (y1 >= h - TOUCH_PX)) & narrow_y
            near_bar = (x1 >= bar[:, 0] - BAR_MARGIN) & (x0 <= bar[:, 1] + BAR_MARGIN)
            over_bar = (x1 > bar[:, 0]) & (x0 < bar[:, 1])
            # beside the bar and narrower than tall by 2 px or more (world shapes fill a square box):
            # partly behind it
            behind_bar = over_bar | near_bar & (bw < bh - 1.5)
        tr.whole = tr.present & ~tr.cut_x & ~tr.cut_y & ~behind_bar
        ok = tr.whole & ~near_bar
        for other, ot in tracks.items():
            if other != name:  # overlapping boxes: one may be drawn over the other
                ok &= ~(box_gap(tr.bbox, ot.bbox) < 0)
        tr.clean = ok
    return ClipTrack(h, w, float(fps), tracks, background, background_fraction, bar, bar_colour)


def _measure(
    frame: np.ndarray, lab: np.ndarray, c: int, box: np.ndarray, bg: np.ndarray, bg_code: int
) -> tuple[float, tuple[float, float], np.ndarray]:
    """Coverage area, coverage centroid (column, row) and the mismatch with each world shape, for
    one object in one frame. Coverage is read off the line from the background colour to the
    object's; pixels of other objects and of the bar count as uncovered. Each shape hypothesis is
    rendered anti-aliased (the renderer's signed distance) with the area and centroid measured, and
    scored by the summed |coverage - rendered| over the area; a triangle is tried both ways up."""
    from spacetime.world.render import shape_sdf

    h, w = lab.shape
    c0, r0 = max(0, int(box[0]) - 2), max(0, int(box[1]) - 2)
    c1, r1 = min(w, int(box[2]) + 2), min(h, int(box[3]) + 2)
    pix = frame[r0:r1, c0:c1].astype(np.float32)  # (h', w', 3)
    d = _REFS[c] - bg  # (3,)
    alpha = np.clip((pix - bg) @ d / float(d @ d), 0.0, 1.0)  # (h', w')
    sub = lab[r0:r1, c0:c1]
    alpha *= (sub == c) | (sub == -1) | (sub == bg_code)
    total = float(alpha.sum())
    rows, cols = np.mgrid[r0:r1, c0:c1].astype(np.float32) + 0.5  # pixel centres
    cx, cy = float((alpha * cols).sum() / total), float((alpha * rows).sum() / total)
    dx, dy = cols - cx, cy - rows  # (h', w') from the centroid, y up
    err = np.empty(len(SHAPES))
    for i, shape in enumerate(SHAPES):
        r = np.sqrt(total / _AREA_PER_R2[shape])
        if shape == "triangle":  # the area centroid is r/3 below the box centre (apex up)
            fits = [np.clip(0.5 - shape_sdf(shape, dx, s * dy - r / 3, r), 0, 1) for s in (1.0, -1.0)]
        else:
            fits = [np.clip(0.5 - shape_sdf(shape, dx, dy, r), 0, 1)]
        err[i] = min(float(np.abs(alpha - f).sum()) for f in fits) / total
    return total, (cx, cy), err
