"""Anti-aliased rasterizer for the procedural world, vectorized over frames.

The view is 1 scene unit high and width/height units wide, centred on the camera, so one scene
renders at any size and aspect ratio (a wider frame shows more of the scene). Coverage of a pixel
is clip(0.5 - signed_distance_in_pixels, 0, 1), the usual one-pixel analytic anti-aliasing, so a
pixel well inside an object has exactly the palette colour.
"""

from __future__ import annotations

import numpy as np

from spacetime.world import vocab
from spacetime.world.physics import Trajectory
from spacetime.world.scene import Scene

_SQRT5 = np.sqrt(5.0)


def view_left(scene: Scene, times: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scene x of the view's left edge per frame (T,): the camera offset."""
    return scene.camera_centre(times) - 0.5 * width / height


def shape_sdf(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (scene units, < 0 inside) from the shape centred at the origin."""
    if shape == "ball":
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        qx = np.abs(dx) - r
        qy = np.abs(dy) - r
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        return outside + np.minimum(np.maximum(qx, qy), 0)
    if shape == "triangle":
        # apex (0, r), base corners (-r, -r) and (r, -r); the max of the edges' half-plane distances
        base = -r - dy
        side = (2 * np.abs(dx) + dy - r) / _SQRT5
        return np.maximum(base, side)
    raise ValueError(f"unknown shape {shape!r}; expected one of {vocab.SHAPES}")


# pixels drawn at once (frames x H x W): at 1024x1024 whole 32-frame chunks peaked at 1.6 GB for a
# 100 MB clip, ~6 GB at 2048x2048. Pixels are drawn alike in any chunking: the output is the same.
PIXEL_BUDGET = 1 << 22


def _frames_per_chunk(chunk: int, height: int, width: int) -> int:
    return max(1, min(int(chunk), PIXEL_BUDGET // (height * width)))


def render(scene: Scene, traj: Trajectory, height: int, width: int, chunk: int = 32) -> np.ndarray:
    """Frames uint8 (T, H, W, 3). Objects are drawn in order, the occluder over all of them.
    Frames are drawn `chunk` at a time (fewer for large frames), so memory stays flat however long
    and however large the clip."""
    if not (isinstance(height, (int, np.integer)) and isinstance(width, (int, np.integer))) or height < 1 or width < 1:
        raise ValueError(f"height and width must be positive integers, got {height}x{width} (HxW)")
    chunk = _frames_per_chunk(chunk, height, width)
    out = np.empty((traj.times.size, height, width, 3), np.uint8)
    for s in range(0, traj.times.size, chunk):
        out[s : s + chunk] = _render_frames(scene, traj.times[s : s + chunk], traj.positions[s : s + chunk], height, width)
    return out


def _render_frames(scene: Scene, times: np.ndarray, positions: np.ndarray, height: int, width: int) -> np.ndarray:
    s = float(height)  # pixels per scene unit
    left = view_left(scene, times, height, width)  # (T,)
    # pixel centres in scene units: x (T, 1, W) moves with the camera, y (1, H, 1) is fixed
    xs = left[:, None, None] + (np.arange(width, dtype=np.float32)[None, None, :] + 0.5) / s
    ys = (1.0 - (np.arange(height, dtype=np.float32) + 0.5) / s)[None, :, None]
    xs = xs.astype(np.float32)
    canvas = np.empty((times.size, height, width, 3), np.float32)
    canvas[:] = np.asarray(vocab.BACKGROUNDS[scene.background], np.float32)
    for i, obj in enumerate(scene.objects):
        px = positions[:, i, 0].astype(np.float32)[:, None, None]
        py = positions[:, i, 1].astype(np.float32)[:, None, None]
        r = obj.radius
        # only the object's bounding columns/rows can be covered: draw into that window
        x0 = max(0, int(np.floor((positions[:, i, 0].min() - r - left.max()) * s)) - 1)
        x1 = min(width, int(np.ceil((positions[:, i, 0].max() + r - left.min()) * s)) + 2)
        y0 = max(0, int(np.floor((1.0 - positions[:, i, 1].max() - r) * s)) - 1)
        y1 = min(height, int(np.ceil((1.0 - positions[:, i, 1].min() + r) * s)) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        sd = shape_sdf(obj.shape, xs[:, :, x0:x1] - px, ys[:, y0:y1] - py, r)
        alpha = np.clip(0.5 - sd * s, 0.0, 1.0)[..., None]
        win = canvas[:, y0:y1, x0:x1]
        win += alpha * (np.asarray(vocab.COLOURS[obj.colour], np.float32) - win)
    if scene.occluder is not None:
        oc = scene.occluder
        sd = np.abs(xs - oc.x) - oc.width / 2  # (T, 1, W): a full-height vertical bar
        alpha = np.clip(0.5 - sd * s, 0.0, 1.0)[..., None]
        canvas += alpha * (np.asarray(vocab.OCCLUDER_COLOURS[oc.colour], np.float32) - canvas)
    return np.rint(canvas).astype(np.uint8)


def render_view(scene: Scene, positions: np.ndarray, cams: np.ndarray, height: int, width: int, chunk: int = 32) -> np.ndarray:
    """Frames uint8 (T, H, W, 3) of object `positions` (T, N, 2) through per-frame cameras (T, 4):
    centre x, centre y, zoom, mirror
    (`shots.cameras`). Used for close-ups; the wide view is `render` (the single-shot path, kept
    bit for bit) and a reverse angle is the wide view mirrored."""
    chunk = _frames_per_chunk(chunk, height, width)
    out = np.empty((positions.shape[0], height, width, 3), np.uint8)
    for s in range(0, positions.shape[0], chunk):
        cx, cy, zoom, mirror = (c.astype(np.float32)[:, None, None] for c in cams[s : s + chunk].T)  # each (t, 1, 1)
        scale = zoom * np.float32(height)  # pixels per scene unit
        xs = cx + mirror * ((np.arange(width, dtype=np.float32) + 0.5) - width / 2)[None, None, :] / scale  # (t, 1, W)
        ys = cy - ((np.arange(height, dtype=np.float32) + 0.5) - height / 2)[None, :, None] / scale  # (t, H, 1)
        pos = positions[s : s + chunk].astype(np.float32)  # (t, N, 2)
        canvas = np.empty((pos.shape[0], height, width, 3), np.float32)
        canvas[:] = np.asarray(vocab.BACKGROUNDS[scene.background], np.float32)
        for i, obj in enumerate(scene.objects):
            sd = shape_sdf(obj.shape, xs - pos[:, i, 0, None, None], ys - pos[:, i, 1, None, None], obj.radius)  # (t, H, W)
            alpha = np.clip(0.5 - sd * scale, 0.0, 1.0)[..., None]
            canvas += alpha * (np.asarray(vocab.COLOURS[obj.colour], np.float32) - canvas)
        if scene.occluder is not None:
            oc = scene.occluder
            alpha = np.clip(0.5 - (np.abs(xs - oc.x) - oc.width / 2) * scale, 0.0, 1.0)[..., None]  # (t, 1, W, 1)
            canvas += alpha * (np.asarray(vocab.OCCLUDER_COLOURS[oc.colour], np.float32) - canvas)
        out[s : s + chunk] = np.rint(canvas).astype(np.uint8)
    return out


def _unit_samples(shape: str, n: int = 24) -> np.ndarray:
    """Points (P, 2) on an n x n grid inside the shape of half-extent 1."""
    g = (np.arange(n) + 0.5) / n * 2 - 1
    dx, dy = np.meshgrid(g, g)
    inside = shape_sdf(shape, dx, dy, 1.0) <= 0
    return np.stack([dx[inside], dy[inside]], -1)


_SAMPLES = {shape: _unit_samples(shape) for shape in vocab.SHAPES}


def visible_fraction(scene: Scene, traj: Trajectory, height: int, width: int, cams: np.ndarray | None = None) -> np.ndarray:
    """Fraction (T, N) of each object's area that is in view and not hidden by the occluder or by
    objects drawn after it. `cams` (T, 4) gives per-frame cameras (`shots.cameras`); None is the
    wide view."""
    if cams is None:
        left = view_left(scene, traj.times, height, width)[:, None]  # (T, 1)
        right, low, high = left + width / height, None, None
    else:  # the view window: width/height/zoom units wide, 1/zoom high, around the centre
        half_w, half_h = (0.5 * width / height / cams[:, 2])[:, None], (0.5 / cams[:, 2])[:, None]
        left, right = cams[:, :1] - half_w, cams[:, :1] + half_w
        low, high = cams[:, 1:2] - half_h, cams[:, 1:2] + half_h
    out = np.zeros(traj.positions.shape[:2])
    for i, obj in enumerate(scene.objects):
        pts = traj.positions[:, i, None, :] + obj.radius * _SAMPLES[obj.shape][None]  # (T, P, 2)
        vis = (pts[..., 0] >= left) & (pts[..., 0] <= right)
        if low is not None:
            vis &= (pts[..., 1] >= low) & (pts[..., 1] <= high)
        if scene.occluder is not None:
            vis &= np.abs(pts[..., 0] - scene.occluder.x) > scene.occluder.width / 2
        for j in range(i + 1, len(scene.objects)):
            other = scene.objects[j]
            d = pts - traj.positions[:, j, None, :]
            vis &= shape_sdf(other.shape, d[..., 0], d[..., 1], other.radius) > 0
        out[:, i] = vis.mean(-1)
    return out


def scene_to_pixel(scene: Scene, times: np.ndarray, xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scene points (T, ..., 2) to pixel coordinates (column, row) with (0, 0) the top-left corner."""
    left = view_left(scene, times, height, width).reshape(-1, *([1] * (xy.ndim - 2)))
    col = (xy[..., 0] - left) * height
    row = (1.0 - xy[..., 1]) * height
    return np.stack([col, row], -1)
