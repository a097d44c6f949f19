"""Tracks to motion in scene units: velocities, the free-flight vertical acceleration, and the
events (sudden velocity changes) with what each happened at.

Scene units (docs/world.md): the view is 1 unit high, y points up from the floor (the frame's bottom
edge), x runs from the view's left edge. Pixels become units by dividing by the frame height, so a
clip's acceleration compares directly with `vocab.GRAVITY` at any resolution. A camera pan moves
the view sideways only: vertical motion is the same in the frame and in the scene, horizontal
motion in the frame is the scene's minus the camera's (see `camera_velocity`).

Only clean frames (the whole object in view, see `track.Track.clean`) enter velocities and
accelerations: a centroid of a partly hidden object is displaced toward its visible part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spacetime.eval.track import TOUCH_PX, ClipTrack
from spacetime.world import vocab

# A second difference of the centroid (over 1/8 s, see `motions`) this far (pixels) from the
# object's own free flight is an event. Coverage centroids are within 0.25 px (p99) of the truth
# through H.264 4:2:0, so noise stays near 1 px; the gentlest wall bounce (0.25 units/s at 64 px)
# changes the second difference by 4 px in all (split over two triples when it falls between
# frames: an event too small to see is simply not judged).
EVENT_PX = 3.0
STILL_SPEED = 0.1  # units/s: slower is still; the slowest prompted motion, a drift, is 0.25
MAX_SIDEWAYS_SPEED = 1.5  # horizontal units/s: throws <= 0.6, drifts <= 0.5, x1.5 in a collision, + the pan
REACH_PX = 3.0  # slack when asking whether a wall or an object was within reach (a triangle's thin corners fade in 4:2:0)


@dataclass
class Event:
    """A sudden change of one object's velocity around frame `frame`."""

    frame: int
    dv: tuple[float, float]  # the change beyond free flight, units/s (x right, y up)
    at: list[str] = field(default_factory=list)  # what was within reach: "left wall", "floor", "blue object"

    @property
    def explained(self) -> bool:
        return bool(self.at)


@dataclass
class Motion:
    """One tracked object's motion in scene units. Arrays (T,) or (T, 2); NaN where unusable."""

    colour: str
    xy: np.ndarray  # (T, 2) centroid, units: x from the view's left edge, y up; NaN where absent
    clean: np.ndarray  # (T,) bool
    extent: float  # median half-extent over clean frames, pixels
    accel_y: float | None  # median free-flight vertical acceleration, units/s^2 (None: < 3 triples)
    free_triples: int
    scene_accel_y: float | None  # the same over every object's free-flight triples (gravity is one law)
    contact: np.ndarray  # (T-1,) bool: another object within reach during interval j (frames j, j+1)
    events: list[Event]


def edge_gaps(ct: ClipTrack, colour: str) -> np.ndarray:
    """(T, 4) pixels from the object's box to the left, right, top (ceiling) and bottom (floor)
    frame edges; NaN where absent."""
    x0, y0, x1, y1 = ct.tracks[colour].bbox.T
    return np.stack([x0, ct.width - x1, y0, ct.height - y1], -1)


def camera_velocity(ct: ClipTrack) -> float | None:
    """The camera's horizontal velocity (units/s, + = pans right) from the bar's drift in the frame
    (the bar stands still in the scene), or None with the bar in fewer than 2 frames."""
    ok = ~np.isnan(ct.bar[:, 0])
    if ok.sum() < 2:
        return None
    t = np.flatnonzero(ok) / ct.fps
    centre = ct.bar[ok].mean(1) / ct.height  # (n,) units from the view's left edge
    slope = np.polyfit(t, centre, 1)[0]
    return float(-slope)


def motions(ct: ClipTrack, expected_ay: float | None = None) -> dict[str, Motion]:
    """Every tracked object's motion, with its events located. `expected_ay` (units/s^2, the
    prompt's gravity: -g or 0) is the free flight events are measured against when the clip shows
    too little free flight to measure it; None tries both of the world's laws."""
    fps, h = ct.fps, ct.height
    g_px = vocab.GRAVITY * h / fps**2  # how much gravity can add to a step, pixels

    def contacts(colour: str, j: int, slack: float = 1.0) -> list[str]:
        """Objects `colour` could touch during interval j (frames j, j+1): along each axis, a gap at
        either end that the relative motion around then (the relative step in the neighbouring
        intervals, plus what gravity adds vertically) could close."""
        a = ct.tracks[colour]
        hits = []
        for o, b in ct.tracks.items():
            if o == colour:
                continue
            rel = np.abs(np.diff(a.centroid - b.centroid, axis=0))[max(j - 1, 0) : j + 2]  # (<=3, 2) pixels
            reach = (
                slack * (np.nanmax(np.vstack([rel, np.zeros((1, 2))]), 0) + [0.0, g_px]) + REACH_PX
            )  # (2,)
            for f in (j, j + 1):
                gx = max(a.bbox[f, 0] - b.bbox[f, 2], b.bbox[f, 0] - a.bbox[f, 2])
                gy = max(a.bbox[f, 1] - b.bbox[f, 3], b.bbox[f, 1] - a.bbox[f, 3])
                if gx <= reach[0] and gy <= reach[1]:  # False with NaN: absent at that frame
                    hits.append(f"{o} object")
                    break
        return hits

    # Second differences over frames k-s, k, k+s, with s/fps near 1/8 s: at 8 fps consecutive
    # frames, at 24 fps every third one, so that gravity moves a centroid by the same few pixels
    # (g (s/fps)^2 H = 4 px at 64 px high) and tracking noise weighs the same at any frame rate.
    s = max(1, int(round(fps / 8.0)))
    dt = s / fps
    # free flight: clean frames across the span, no floor or ceiling bounce possible in any of its
    # intervals (a bounce inside one needs a path, down to the wall and back, that the object's
    # speed around then could cover) and no other object within reach
    xys, acc, triples, contact = {}, {}, {}, {}
    for colour, tr in ct.tracks.items():
        xy = xys[colour] = ct.world_xy(colour)
        gaps = edge_gaps(ct, colour)  # (T, 4)
        dy = np.abs(np.diff(tr.centroid[:, 1]))  # (T-1,) vertical steps, pixels
        wall_possible = np.zeros(max(len(xy) - 1, 0), bool)  # (T-1,) per interval
        for j in range(len(xy) - 1):
            path = np.nanmax(np.r_[dy[max(j - 1, 0) : j + 2], 0.0]) + g_px + 2 * TOUCH_PX
            wall_possible[j] = (gaps[j, 2] + gaps[j + 1, 2] <= path) or (gaps[j, 3] + gaps[j + 1, 3] <= path)
        contact[colour] = np.array([bool(contacts(colour, j)) for j in range(len(xy) - 1)], bool)
        acc[colour], triples[colour] = [], []
        for k in range(s, len(xy) - s):
            if not tr.clean[k - s : k + s + 1].all():
                continue
            triples[colour].append(k)
            if wall_possible[k - s : k + s].any() or contact[colour][k - s : k + s].any():
                continue
            acc[colour].append((xy[k + s, 1] - 2 * xy[k, 1] + xy[k - s, 1]) / dt**2)
    # gravity is one law for the scene: an object too briefly in free flight to measure its own
    # (one resting on the floor) is judged against the others'
    pooled = [a for v in acc.values() for a in v]
    scene_ay = float(np.median(pooled)) if len(pooled) >= 2 else None
    if scene_ay is not None:
        clip_ay = [scene_ay]
    else:  # unmeasured: the prompt's law, or either of the world's
        clip_ay = [expected_ay] if expected_ay is not None else [0.0, -vocab.GRAVITY]

    out: dict[str, Motion] = {}
    thr = EVENT_PX / h  # units
    for colour, tr in ct.tracks.items():
        xy, gaps = xys[colour], edge_gaps(ct, colour)
        accel_y = float(np.median(acc[colour])) if len(acc[colour]) >= 3 else None
        # events: departures from free flight under the measured gravity (so an upside-down world is
        # judged by where its objects bounce, not flagged at every frame)
        expected = [accel_y] if accel_y is not None else clip_ay
        events = []
        for k in triples[colour]:
            second = xy[k + s] - 2 * xy[k] + xy[k - s]  # (2,) units
            dev = min((second - np.array([0.0, ay * dt**2]) for ay in expected), key=lambda d: np.hypot(*d))
            if np.hypot(*dev) <= thr:
                continue
            ev = Event(k, (float(dev[0] / dt), float(dev[1] / dt)))
            window = slice(k - s, k + s + 1)
            for axis, (neg, pos) in ((0, ("right wall", "left wall")), (1, ("ceiling", "floor"))):
                if abs(dev[axis]) <= thr / 2:
                    continue
                wall = pos if dev[axis] > 0 else neg  # pushed right by the left wall, up by the floor
                col = {"left wall": 0, "right wall": 1, "ceiling": 2, "floor": 3}[wall]
                reach = (
                    np.nanmax(np.abs(np.diff(tr.centroid[window, axis]))) + (g_px if axis else 0.0) + REACH_PX
                )
                if (gaps[window, col] <= reach).any():
                    ev.at.append(wall)
            for j in range(k - s, k + s):
                ev.at += [o for o in contacts(colour, j, slack=2.0) if o not in ev.at]
            events.append(ev)
        clean = tr.clean
        extent = float(np.median(tr.extent[clean])) if clean.any() else float(np.nanmedian(tr.extent))
        out[colour] = Motion(
            colour, xy, clean.copy(), extent, accel_y, len(acc[colour]), scene_ay, contact[colour], events
        )
    return out


def reversals(ct: ClipTrack, colour: str, min_px: float = 0.5) -> list[tuple[int, str]]:
    """(frame, wall) for every reversal of the object's horizontal or vertical motion with that wall
    within reach: moving left then right near the left edge is a "left wall" bounce, down then up
    near the bottom edge a "floor" bounce. Reversals see a bounce that falls between two frames,
    where the second difference (`Event`) is split in two and may stay under its threshold. Walls
    are the frame edges: the view never extends past the box (docs/world.md), so a wall the object
    meets is at, or beyond, the edge on its side."""
    tr = ct.tracks[colour]
    c, gaps = tr.centroid, edge_gaps(ct, colour)
    d = np.diff(c, axis=0)  # (T-1, 2) steps in pixels (rows grow downward)
    found: list[tuple[int, str]] = []
    for axis, (toward_neg, toward_pos) in ((0, ("left wall", "right wall")), (1, ("ceiling", "floor"))):
        col_neg, col_pos = (0, 1) if axis == 0 else (2, 3)
        for a in range(len(d)):
            if not abs(d[a, axis]) > min_px:  # also False for NaN (absent)
                continue
            for b in (a + 1, a + 2):  # a still interval between may hold the bounce itself
                if b >= len(d) or np.isnan(d[b, axis]) or (abs(d[b, axis]) <= min_px and b == a + 2):
                    break
                if abs(d[b, axis]) <= min_px:
                    continue
                if np.sign(d[b, axis]) != np.sign(d[a, axis]):
                    wall, col = (toward_neg, col_neg) if d[a, axis] < 0 else (toward_pos, col_pos)
                    reach = max(abs(d[a, axis]), abs(d[b, axis])) + REACH_PX
                    near = any(gaps[f, col] <= reach for f in range(a, b + 2))
                    if near and not any(w == wall and abs(f - (a + 1)) <= 1 for f, w in found):
                        found.append((a + 1, wall))
                break
    return sorted(set(found))


def initial_velocity(m: Motion, fps: float, span: float = 0.25, within: float = 0.3) -> np.ndarray | None:
    """(2,) frame velocity (units/s) at the object's start, what a motion word describes: a line fit
    over consecutive clean frames from its first appearance, up to `span` seconds (and at least
    1/8 s, so that tracking noise stays small at any frame rate), stopped before an event. None when the start is not seen cleanly: first seen after `within` seconds (or 3
    frames), not whole in its first two frames (entering the view, at the bar, touching another
    object: a collision may be hiding there), or with an event at its second frame (the first step
    may already hold it)."""
    present = np.flatnonzero(~np.isnan(m.xy[:, 0]))
    if present.size < 2:
        return None
    k = int(present[0])
    event_frames = {e.frame for e in m.events}
    if (
        k > max(2, int(round(within * fps)))
        or not (m.clean[k] and m.clean[k + 1])
        or k + 1 in event_frames
        or m.contact[k]
    ):
        return None
    idx = [k, k + 1]
    max_frames = max(3, int(round(span * fps)) + 1)
    while len(idx) < max_frames and idx[-1] + 1 < len(m.xy) and m.clean[idx[-1] + 1]:
        j = idx[-1]
        if j + 1 in event_frames or m.contact[j]:
            break
        idx.append(j + 1)
    if len(idx) - 1 < max(1, int(round(fps / 8.0))):  # under 1/8 s: tracking noise would dominate
        return None
    t = np.asarray(idx, np.float64) / fps
    return np.array([np.polyfit(t, m.xy[idx, a], 1)[0] for a in (0, 1)])


def reaches(ct: ClipTrack, colour: str, wall: str) -> bool:
    """Does the object come within a step (plus slack) of `wall` ("left wall", "right wall",
    "ceiling", "floor") in some frame? A bounce between two frames leaves the object that close on
    one side of it; a bounce too early or too gentle to show as a reversal still does."""
    tr = ct.tracks[colour]
    col = {"left wall": 0, "right wall": 1, "ceiling": 2, "floor": 3}[wall]
    axis = 0 if col < 2 else 1
    gaps = edge_gaps(ct, colour)[:, col]
    d = np.abs(np.diff(tr.centroid[:, axis]))  # (T-1,)
    step = np.fmax(np.r_[np.nan, d], np.r_[d, np.nan])  # (T,) the larger neighbouring step
    step = np.where(np.isnan(step), 0.0, step)
    with np.errstate(invalid="ignore"):  # + 1.5: a triangle's apex pixel, faint, is often dropped
        return bool((gaps - step <= REACH_PX + 1.5).any())


def unexplained_presence(ct: ClipTrack, colour: str) -> list[str]:
    """Vanishings and appearances away from the left/right frame edges and the bar: an object can
    leave the view sideways (pans, wide boxes) or pass behind the bar, nothing else."""
    tr = ct.tracks[colour]
    p, c, gaps = tr.present, tr.centroid, edge_gaps(ct, colour)
    dx = np.abs(np.diff(c[:, 0]))
    default = MAX_SIDEWAYS_SPEED * ct.height / ct.fps

    def near_exit(k: int, step: float) -> bool:
        # its last step, with room to speed up (a collision), or the world's top sideways speed
        reach = (default if np.isnan(step) else 1.5 * step) + REACH_PX
        if min(gaps[k, 0], gaps[k, 1]) <= reach:
            return True
        b = ct.bar[k]
        return bool(not np.isnan(b[0]) and tr.bbox[k, 2] >= b[0] - reach and tr.bbox[k, 0] <= b[1] + reach)

    out = []
    for k in range(len(p) - 1):
        if p[k] and not p[k + 1] and not near_exit(k, dx[k - 1] if k > 0 else np.nan):
            out.append(f"vanishes after frame {k} in mid-view")
        if not p[k] and p[k + 1] and not near_exit(k + 1, dx[k + 1] if k + 1 < len(dx) else np.nan):
            out.append(f"appears at frame {k + 1} in mid-view")
    return out


def bounces_lose_height(ct: ClipTrack, colour: str, m: Motion) -> tuple[bool, str]:
    """Under gravity every floor bounce keeps e^2 < 1 of the height: the top of each arc between
    floor bounces is no higher than the one before. The first arc counts only if the object starts
    rising or at rest (else the clip may begin below that arc's top); arcs with a collision in them
    are skipped (a hit can lift an object)."""
    floor = [f for f, w in reversals(ct, colour) if w == "floor"]
    if not floor:
        return True, ""
    y = m.xy[:, 1]
    bounds = [0, *floor, len(y)]
    hit = {e.frame for e in m.events if any(a.endswith("object") for a in e.at)}
    v0 = initial_velocity(m, ct.fps)
    tops = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        seg = y[a:b]
        usable = not np.isnan(seg).all() and not any(a - 1 <= f <= b for f in hit)
        if i == 0 and (v0 is None or v0[1] < -STILL_SPEED):
            usable = False
        tops.append(float(np.nanmax(seg)) if usable else None)
    tol = 2.0 / ct.height
    for i in range(len(tops) - 1):
        if tops[i] is not None and tops[i + 1] is not None and tops[i + 1] > tops[i] * 1.05 + tol:
            return (
                False,
                f"bounces higher after the floor bounce at frame {bounds[i + 1]} ({tops[i]:.2f} -> {tops[i + 1]:.2f} units)",
            )
    return True, ""


def trajectory_features(m: Motion | None, fps: float, height: int) -> np.ndarray:
    """A fixed-length summary of one object's trajectory (FEATURE_NAMES), for the distance between
    distributions of generated and simulated trajectories. A missing object is all zeros (presence
    0 says it); an acceleration not measured (too little free flight) is NaN, not a value: 0 would
    read as "no gravity", and `evaluate.distribution_distance` imputes it."""
    f = np.zeros(len(FEATURE_NAMES))
    if m is None:
        return f
    ok = ~np.isnan(m.xy[:, 0])
    if not ok.any():
        return f
    v = np.diff(m.xy, axis=0) * fps  # (T-1, 2) NaN across absent frames
    v = v[~np.isnan(v[:, 0])]
    f[0] = ok.mean()
    f[1:3] = m.xy[ok].mean(0)
    f[3:5] = m.xy[ok].std(0)
    if len(v):
        f[5:7] = v.mean(0)
        f[7] = np.hypot(v[:, 0], v[:, 1]).mean()
    f[8] = m.accel_y if m.accel_y is not None else np.nan
    f[9] = m.extent / height
    return f


FEATURE_NAMES = (
    "presence",
    "mean_x",
    "mean_y",
    "std_x",
    "std_y",
    "mean_vx",
    "mean_vy",
    "mean_speed",
    "accel_y",
    "half_extent",
)
# The least spread (scene units, units/s, units/s^2) each feature is scaled by in the distance: a
# reference set whose objects all agree on a feature (a few clips, all falling at -4.00 +- 0.04)
# would otherwise blow a difference of tracking-noise size up into thousands. Well under the
# simulator's own spread over prompts at the default setting (presence 0.14, positions 0.17-0.22,
# position spreads 0.07-0.09, velocities 0.16-0.35, acceleration 1.8, half-extent 0.024), so there
# they change nothing.
FEATURE_SCALE_FLOOR = (0.05, 0.05, 0.05, 0.02, 0.02, 0.05, 0.05, 0.05, 1.0, 0.005)
