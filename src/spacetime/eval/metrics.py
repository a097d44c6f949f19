"""The per-clip metrics: does a video show what its prompt asks, the way the world moves?

Each metric is a list of checks on one clip; its score is the fraction passed (in [0, 1]), and every
failed check leaves a reason in plain words. A metric with nothing to judge in a clip (motion in a
one-frame clip, physics with no object seen) scores None and is left out of the means. Objects are
named by colour: in the world a colour names one object (docs/world.md), so the prompt's "red ball"
is the video's red blob, whatever its shape turns out to be.

| metric | checks |
| --- | --- |
| adherence | each prompted object is seen, with the prompted shape and size; the object count; no extra objects; the background; the bar |
| motion | each object starts moving the prompted way (camera pans accounted for); walls it should bounce off; the camera |
| permanence | each prompted object is seen, and every object vanishes / appears only at the left or right frame edge or behind the bar |
| physics | per object: vertical acceleration vs the prompt's gravity; velocity jumps only at a wall, the floor or another object; no passing through floor, ceiling (or walls, static camera); floor bounces never gain height; per pair: no passing through each other |
| smoothness | per object: no teleport (a step beyond the world's top speed, or a lone step 3x its neighbours); size and shape stable |

Thresholds are calibrated on the simulator's own clips, raw and through H.264 (docs/eval.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spacetime.eval.kinematics import (
    FEATURE_NAMES,
    STILL_SPEED,
    Motion,
    bounces_lose_height,
    camera_velocity,
    initial_velocity,
    motions,
    reaches,
    trajectory_features,
    unexplained_presence,
)
from spacetime.eval.track import ClipTrack, box_gap, track
from spacetime.world import vocab
from spacetime.world.prompts import parse_prompt
from spacetime.world.scene import ObjectSpec, SceneSpec

METRICS = ("adherence", "motion", "permanence", "physics", "smoothness")

FALL_DRIFT = 0.15  # units/s of sideways speed a fall (dropped from rest) may show
GRAVITY_TOL = 0.3 * vocab.GRAVITY  # units/s^2 off the expected vertical acceleration (0 or -g)
# Fastest a world object moves in the frame, units/s, bounding its steps (teleports). Under gravity
# a drop from the ceiling reaches 2.8 and a light object hit by a heavy one 1.5x the hitter; a pan
# adds 0.3. In zero gravity the fastest is a 0.5 drift, x1.5 in a collision, plus the pan.
MAX_SPEED = 5.0
MAX_SPEED_ZERO_G = 1.5
SPIKE_RATIO, SPIKE_PX = 3.0, 3.0  # a step this much larger than both its neighbours is a teleport
SIZE_RATIO = 1.3  # of sqrt(median area) between the clip's halves; small vs large is 1.7
REACH_PX = 2.0  # pixels of slack: boxes this close touch (interpenetration), a whole object's step may exceed the top speed by this
BACKGROUND_MIN = 0.3  # the prompted background covers at least this much of the frame


@dataclass
class MetricResult:
    score: float | None  # passed / checks, None when there was nothing to check
    checks: int
    reasons: list[str]  # why each failed check failed
    notes: list[str] = field(default_factory=list)  # what could not be judged, and why

    def to_dict(self) -> dict:
        out = {
            "score": None if self.score is None else round(self.score, 4),
            "checks": self.checks,
            "reasons": self.reasons,
        }
        if self.notes:
            out["notes"] = self.notes
        return out


class _Checks:
    def __init__(self) -> None:
        self.n, self.passed, self.reasons, self.notes = 0, 0, [], []

    def add(self, ok: bool, reason: str = "") -> bool:
        self.n += 1
        self.passed += bool(ok)
        if not ok and reason and reason not in self.reasons:
            self.reasons.append(reason)
        return ok

    def result(self) -> MetricResult:
        return MetricResult(self.passed / self.n if self.n else None, self.n, self.reasons, self.notes)


@dataclass
class ClipScore:
    prompt: str
    metrics: dict[str, MetricResult]
    measured: dict  # what the tracker saw, JSON-ready
    features: np.ndarray  # (objects in the prompt, F) trajectory features, prompt order
    track: ClipTrack = field(repr=False)  # of the opening shot for a prompt with cuts (see score_clip)
    motions: dict[str, Motion] = field(repr=False)
    matched: list[tuple[ObjectSpec, str | None]] = field(repr=False)
    # what parse_prompt could not read in the prompt: a check it leaves out is not in the scores
    unknown_words: list[str] = field(default_factory=list)
    prompt_notes: list[str] = field(default_factory=list)


def describe(o: ObjectSpec) -> str:
    words = [w for w in (o.colour, o.shape or "object") if w]
    return "the " + " ".join(words)


def expected_gravity(spec: SceneSpec) -> bool | None:
    """The prompt's gravity: said outright, or implied by its motions as `sample_scene` does."""
    if spec.gravity is not None:
        return spec.gravity
    asked = [o.motion for o in spec.objects if o.motion]
    return any(m in vocab.GRAVITY_MOTIONS for m in asked) if asked else None


def match_objects(spec: SceneSpec, ct: ClipTrack) -> list[tuple[ObjectSpec, str | None]]:
    """Prompt objects -> tracked colours. A coloured object is its colour; an uncoloured one takes a
    colour no prompt object names, one of the asked shape first."""
    named = {o.colour for o in spec.objects if o.colour}
    free = [c for c in ct.tracks if c not in named]
    out: list[tuple[ObjectSpec, str | None]] = []
    for o in spec.objects:
        if o.colour:
            out.append((o, o.colour if o.colour in ct.tracks else None))
            continue
        pick = next(
            (c for c in free if o.shape is None or ct.tracks[c].shape() == o.shape), free[0] if free else None
        )
        if pick is not None:
            free.remove(pick)
        out.append((o, pick))
    return out


def _frames(idx: np.ndarray) -> str:
    idx = list(map(int, idx))
    return (
        "none"
        if not idx
        else f"{idx[0]}"
        if len(idx) == 1
        else f"{idx[0]}-{idx[-1]}"
        if idx == list(range(idx[0], idx[-1] + 1))
        else ", ".join(map(str, idx[:6])) + ("..." if len(idx) > 6 else "")
    )


def _direction_words(v: np.ndarray) -> str:
    speed = float(np.hypot(*v))
    if speed < STILL_SPEED:
        return "stays still"
    d = max(vocab.DIRECTIONS, key=lambda k: v @ np.asarray(vocab.DIRECTIONS[k]) / speed)
    return f"moves {d} at {speed:.2f} units/s"


def _motion_matches(label: str, v: np.ndarray) -> bool:
    """Does a start velocity v (scene units/s, y up) show the motion `label`?"""
    speed = float(np.hypot(*v))
    if label == "still":
        return speed < STILL_SPEED
    if label == "falls":
        return v[1] < -STILL_SPEED and abs(v[0]) < FALL_DRIFT
    if label in ("bounces-left", "bounces-right"):
        return abs(v[0]) >= STILL_SPEED and (v[0] > 0) == (label == "bounces-right")
    if speed < STILL_SPEED:
        return False
    return max(vocab.DIRECTIONS, key=lambda k: v @ np.asarray(vocab.DIRECTIONS[k]) / speed) == label


def camera_candidates(spec: SceneSpec, ct: ClipTrack) -> list[float]:
    """Camera velocities (units/s) to add to frame velocities to get scene velocities: the bar's
    measure when the bar is seen; otherwise the prompt's camera at any speed the world uses (the
    frame alone cannot tell a pan from motion), and any camera when the prompt does not say."""
    c = camera_velocity(ct)
    if c is not None:
        return [c]
    speeds = np.linspace(*vocab.CAMERA_SPEED, 7)
    if spec.camera == "static":
        return [0.0]
    if spec.camera in ("pan-left", "pan-right"):
        return list((1.0 if spec.camera == "pan-right" else -1.0) * speeds)
    return [0.0, *speeds, *-speeds]  # the prompt leaves the camera open: any the world uses


@dataclass
class _Clip:
    """What every metric reads: the prompt, the tracks, the motions, and who is who."""

    spec: SceneSpec
    ct: ClipTrack
    ms: dict[str, Motion]
    matched: list[tuple[ObjectSpec, str | None]]  # prompt object -> tracked colour (None: not seen)
    gravity: bool | None  # the prompt's
    shapes: dict[str, str | None]  # tracked colour -> shape
    # a prompt with cuts: the later shots that show the whole scene, as (track, mirrored: a reverse
    # angle), and whether some of the clip after the opening shot shows less (a close-up, or shots
    # the cut count cannot tell apart): what happens there is not seen
    later: list[tuple[ClipTrack, bool]] = field(default_factory=list)
    unseen_after: bool = False

    @property
    def extras(self) -> list[str]:
        named = {c for _, c in self.matched if c}
        return [c for c in self.ct.tracks if c not in named]

    def name(self, colour: str) -> str:
        o = next((o for o, c in self.matched if c == colour), None)
        return describe(o) if o else f"the extra {colour} object"


def score_clip(frames: np.ndarray, fps: float, prompt: str) -> ClipScore:
    """Track uint8 (T, H, W, 3) `frames` and score them against `prompt` on every metric. A prompt
    with cuts adds the multi-shot metrics (`multishot.MULTISHOT_METRICS`), and the five above read
    its opening shot (up to the first cut seen), where the frame is one camera's."""
    spec = parse_prompt(prompt)
    ct = track(frames, fps)
    multi: tuple[dict, dict] | None = None
    later: list[tuple[ClipTrack, bool]] = []
    unseen_after = False
    if spec.shots:
        from spacetime.eval.multishot import detect_cuts, score_multishot

        multi = score_multishot(spec, ct, match_objects(spec, ct))
        cuts = detect_cuts(ct)
        if cuts:
            later, unseen_after = _later_views(spec, frames, fps, cuts)
            ct = track(frames[: cuts[0]], fps)
    gravity = expected_gravity(spec)
    ms = motions(ct, None if gravity is None else -vocab.GRAVITY if gravity else 0.0)
    matched = match_objects(spec, ct)
    clip = _Clip(
        spec, ct, ms, matched, gravity, {c: tr.shape() for c, tr in ct.tracks.items()}, later, unseen_after
    )
    metrics = {
        "adherence": _adherence(clip),
        "motion": _motion(clip),
        "permanence": _permanence(clip),
        "physics": _physics(clip),
        "smoothness": _smoothness(clip),
    }
    measured = _measured(clip)
    if multi is not None:
        metrics.update(multi[0])
        measured["multishot"] = multi[1]
    rows = [trajectory_features(ms.get(c) if c else None, fps, ct.height) for _, c in matched]
    feats = np.stack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))  # (objects, F)
    return ClipScore(
        prompt, metrics, measured, feats, ct, ms, matched, list(spec.unknown_words), list(spec.notes)
    )


def _later_views(
    spec: SceneSpec, frames: np.ndarray, fps: float, cuts: list[int]
) -> tuple[list[tuple[ClipTrack, bool]], bool]:
    """The shots after the opening one that show the whole scene (the wide view, or the reverse
    angle: the wide view mirrored), each tracked on its own, and whether the rest of the clip holds
    shots that do not (close-ups), or shots whose kinds are unknown (the cuts seen are not the
    prompt's count). The single-shot metrics read the opening shot; what the prompt says happens
    later (a floor bounce) may be seen in these."""
    if len(cuts) != len(spec.shots) - 1:
        return [], True
    bounds = [*cuts, len(frames)]
    views, unseen = [], False
    for shot, a, b in zip(spec.shots[1:], bounds[:-1], bounds[1:]):
        if shot.kind in ("wide", "reverse"):
            views.append((track(frames[a:b], fps), shot.kind == "reverse"))
        else:
            unseen = True
    return views, unseen


def _adherence(clip: _Clip) -> MetricResult:
    """The prompt's objects with their shapes and sizes, the count, nothing extra, the background
    and the bar."""
    spec, ct, shapes, h = clip.spec, clip.ct, clip.shapes, clip.ct.height
    ad = _Checks()
    for o, col in clip.matched:
        name = describe(o)
        asked = [o.shape, o.size]
        if not ad.add(col is not None, f"{name}: not in any frame"):
            for a in asked:
                if a:
                    ad.add(False)
            continue
        tr = ct.tracks[col]
        if (o.shape or o.size) and shapes[col] is None:
            ad.notes.append(
                f"{name}: shape and size not judged, never seen whole (beside the bar or the frame edge)"
            )
            continue
        if o.shape:
            ad.add(shapes[col] == o.shape, f"{name} looks like a {shapes[col]}")
        if o.size:
            size = tr.size(h)
            ad.add(size == o.size, f"{name} is {size}, the prompt says {o.size}")
    dupes = {c: int((tr.parts >= 2).sum()) for c, tr in ct.tracks.items()}
    dupes = {c: n for c, n in dupes.items() if n >= max(2, 0.2 * ct.tracks[c].present.sum())}
    seen = len(ct.tracks) + len(dupes)
    if spec.objects or not spec.unknown_words:
        ad.add(
            seen == len(spec.objects),
            f"{seen} objects seen ({', '.join(ct.tracks) or 'none'}), the prompt has {len(spec.objects)}",
        )
    else:  # "a plaid dog runs": 0 objects to the world, and a blank video would pass "0 seen"
        ad.notes.append(
            "object count not judged: the prompt names no object the world knows "
            f"(words it does not know: {', '.join(spec.unknown_words)})"
        )
    extra_words = [
        f"{'an' if c[0] in 'aeiou' else 'a'} {c} {shapes[c] or 'object'} (frames {_frames(np.flatnonzero(ct.tracks[c].present))})"
        for c in clip.extras
    ]
    extra_words += [f"a second {c} object ({n} frames)" for c, n in dupes.items()]
    if ct.tracks:  # in a video with no object at all, "no extra object" is no merit
        ad.add(not extra_words, "extra objects: " + "; ".join(extra_words))
    if spec.background:
        ok = ct.background == spec.background and ct.background_fraction >= BACKGROUND_MIN
        ad.add(
            ok,
            f"background is {ct.background or 'none of the world'} ({ct.background_fraction:.0%} of the frame), the prompt says {spec.background}",
        )
    if spec.occluder:
        ad.add(ct.bar_colour is not None, "no bar seen; the prompt has one")

    return ad.result()


def _motion(clip: _Clip) -> MetricResult:
    """Each object starts moving as prompted (in the scene: the camera's motion added back), reaches
    the walls it should bounce off; the bar moves as the prompted camera would move it."""
    spec, ct, ms, fps = clip.spec, clip.ct, clip.ms, clip.ct.fps
    mo = _Checks()
    cams = camera_candidates(spec, ct)
    if ct.num_frames >= 2:
        for o, col in clip.matched:
            if o.motion is None and o.hits is None:
                continue
            name = describe(o)
            if col is None:
                mo.add(False, f"{name}: not in any frame")
                continue
            if o.motion:
                v = initial_velocity(ms[col], fps)
                if v is None and ct.tracks[col].present.sum() >= 2:
                    mo.notes.append(
                        f"{name}: its start is not seen whole (out of view, behind the bar or touching another object)"
                    )
                elif v is None:
                    mo.add(False, f"{name}: seen in fewer than 2 frames")
                else:
                    best = min(cams, key=lambda c: 0 if _motion_matches(o.motion, v + [c, 0]) else 1)
                    vw = v + [best, 0]
                    mo.add(
                        _motion_matches(o.motion, vw),
                        f"{name} {_direction_words(vw)} (vx {vw[0]:+.2f}, vy {vw[1]:+.2f}), the prompt says {o.motion}",
                    )
            if o.hits:
                wall = o.hits if o.hits in ("floor", "ceiling") else f"{o.hits} wall"
                # a prompt with cuts: the bounce may come after the opening shot, in a later view
                # of the whole scene (mirrored in a reverse angle), or where no shot shows it
                mirror = {"left wall": "right wall", "right wall": "left wall"}
                later = any(
                    col in t.tracks and reaches(t, col, mirror.get(wall, wall) if mirrored else wall)
                    for t, mirrored in clip.later
                )
                if reaches(ct, col, wall) or later:
                    mo.add(True)
                elif clip.unseen_after:
                    mo.notes.append(
                        f"{name} does not reach the {wall} in the shots that show the whole scene; "
                        "the rest of the clip does not show it: not judged"
                    )
                else:
                    mo.add(False, f"{name} never reaches the {wall}")
        cam = camera_velocity(ct)
        if spec.camera and cam is not None:
            lo, hi = {"static": (-0.05, 0.05), "pan-right": (0.1, 0.4), "pan-left": (-0.4, -0.1)}[spec.camera]
            said = "static" if abs(cam) < 0.05 else "pan-right" if cam > 0 else "pan-left"
            mo.add(
                lo <= cam <= hi,
                f"the bar shows a {said} camera ({cam:+.2f} units/s), the prompt says {spec.camera}",
            )
        elif spec.camera:  # the frame alone cannot tell a pan from the objects' motion: said, not scored
            mo.notes.append("camera not judged: no bar in view to measure it")

    return mo.result()


def _permanence(clip: _Clip) -> MetricResult:
    """Prompted objects appear, and no object appears or vanishes away from the left/right frame
    edges and the bar."""
    ct = clip.ct
    pe = _Checks()
    if ct.num_frames >= 2:
        for o, col in clip.matched:
            problems = ["never appears"] if col is None else unexplained_presence(ct, col)
            pe.add(not problems, f"{describe(o)}: {', '.join(problems)}")
        for c in clip.extras:
            problems = unexplained_presence(ct, c)
            if problems:
                pe.add(False, f"the extra {c} object: {', '.join(problems)}")

    return pe.result()


def _physics(clip: _Clip) -> MetricResult:
    """Gravity as prompted; velocity changes only at contacts; nothing through floor, ceiling (or
    walls, static camera) or another object; floor bounces never gain height."""
    spec, ct, ms, gravity, t = clip.spec, clip.ct, clip.ms, clip.gravity, clip.ct.num_frames
    ph = _Checks()
    if t >= 3 and gravity is not None:
        # objects too briefly in free flight for their own measure are judged together (gravity is
        # one law); with too little free flight in the whole clip, gravity is not judged
        want = -vocab.GRAVITY if gravity else 0.0
        law = f"the prompt's gravity is {want:+.1f}" if gravity else "the prompt's world is weightless (0)"
        scene_ay = next((m.scene_accel_y for m in ms.values()), None)
        if ms and all(m.accel_y is None for m in ms.values()) and scene_ay is not None:
            ph.add(
                abs(scene_ay - want) <= GRAVITY_TOL,
                f"objects accelerate at {scene_ay:+.2f} units/s^2 vertically; {law}",
            )
        elif scene_ay is None and ms:
            ph.notes.append(
                "gravity not measured: fewer than 2 frame triples of free flight, whole and clear of walls and objects"
            )
    if t >= 3:
        for c, m in ms.items():
            tr = ct.tracks[c]
            if tr.present.sum() < 2:
                continue
            name = clip.name(c)
            if gravity is not None and m.accel_y is not None:
                ph.add(
                    abs(m.accel_y - want) <= GRAVITY_TOL,
                    f"{name} accelerates at {m.accel_y:+.2f} units/s^2 vertically; {law}",
                )
            bad = [e for e in m.events if not e.explained]
            ph.add(
                not bad,
                "; ".join(
                    f"{name}'s velocity jumps by ({e.dv[0]:+.2f}, {e.dv[1]:+.2f}) units/s at frame {e.frame} with no wall or object in reach"
                    for e in bad[:3]
                ),
            )
            # deeper into the edge than `cut` (which a pixel of 4:2:0 chroma loss can reach)
            x0, y0, x1, y1 = tr.bbox.T
            with np.errstate(invalid="ignore"):
                through = tr.cut_y & (y1 - y0 < 0.75 * (x1 - x0) - 1)
                if spec.camera == "static":  # the box is the view: its walls are the frame's sides
                    through |= tr.cut_x & (x1 - x0 < 0.75 * (y1 - y0) - 1)
            ph.add(
                not through.any(),
                f"{name} passes out through the frame's {'edge' if spec.camera == 'static' else 'top or bottom'} at frames {_frames(np.flatnonzero(through))}",
            )
            if m.accel_y is not None and m.accel_y < -0.5 * vocab.GRAVITY:
                ok, why = bounces_lose_height(ct, c, m)
                ph.add(ok, f"{name}: {why}")
        cols = list(ms)
        for i, a in enumerate(cols):
            for b in cols[i + 1 :]:
                both = ct.tracks[a].present & ct.tracks[b].present
                if not both.any():
                    continue
                d = np.hypot(*(ct.tracks[a].centroid[both] - ct.tracks[b].centroid[both]).T)
                reach = 0.5 * (ms[a].extent + ms[b].extent)
                close = box_gap(ct.tracks[a].bbox[both], ct.tracks[b].bbox[both]) <= REACH_PX
                if close.any():
                    ph.add(
                        bool((d >= reach).all()),
                        f"the {a} and {b} objects pass through each other at frames {_frames(np.flatnonzero(both)[d < reach])}",
                    )

    return ph.result()


def _smoothness(clip: _Clip) -> MetricResult:
    """No teleports; size and shape stable."""
    ct, ms, gravity, h, t, fps = (
        clip.ct,
        clip.ms,
        clip.gravity,
        clip.ct.height,
        clip.ct.num_frames,
        clip.ct.fps,
    )
    sm = _Checks()
    for c, tr in ct.tracks.items():
        idx = np.flatnonzero(tr.present)
        if idx.size < 2:
            continue
        name = clip.name(c)
        jumps = []
        top = MAX_SPEED_ZERO_G if gravity is False else MAX_SPEED
        for a, b in zip(idx[:-1], idx[1:]):
            step = float(np.hypot(*(tr.centroid[b] - tr.centroid[a])))
            slack = (
                REACH_PX if tr.clean[a] and tr.clean[b] else 2 * ms[c].extent + REACH_PX
            )  # a partly seen object's centroid shifts
            if step > top * (b - a) / fps * h + slack:
                jumps.append(f"{step:.0f} px between frames {a} and {b}")
        steps = np.hypot(*np.diff(tr.centroid, axis=0).T)  # (T-1,) NaN across absent frames
        for k in range(1, len(steps) - 1):
            if (
                tr.clean[k - 1 : k + 3].all()
                and steps[k] > SPIKE_RATIO * max(steps[k - 1], steps[k + 1]) + SPIKE_PX
            ):
                jumps.append(
                    f"{steps[k]:.0f} px between frames {k} and {k + 1} (neighbours {steps[k - 1]:.0f}, {steps[k + 1]:.0f})"
                )
        sm.add(not jumps, f"{name} teleports: " + "; ".join(jumps[:3]))
        # stable size and shape: the first and second half of the clean frames agree (halves, not
        # single frames: a small object's mask through 4:2:0 chroma flickers by a pixel)
        idx = np.flatnonzero(tr.clean)
        if idx.size >= 6:
            halves = [np.isin(np.arange(t), part) for part in (idx[: idx.size // 2], idx[idx.size // 2 :])]
            size = [float(np.sqrt(np.median(tr.coverage[half]))) for half in halves]
            sm.add(
                max(size) <= SIZE_RATIO * min(size),
                f"{name} changes size: sqrt(area) {size[0]:.1f} -> {size[1]:.1f} px",
            )
            kinds = [tr.shape(half) for half in halves]
            sm.add(kinds[0] == kinds[1], f"{name} changes shape: {kinds[0]} -> {kinds[1]}")

    return sm.result()


def _measured(clip: _Clip) -> dict:
    """What the tracker saw, for the JSON: background, bar, camera, and per object its shape, size,
    frames, start velocity, vertical acceleration and events."""
    ct, ms, shapes, h, fps = clip.ct, clip.ms, clip.shapes, clip.ct.height, clip.ct.fps
    cam = camera_velocity(ct)
    return {
        "background": ct.background,
        "background_fraction": round(ct.background_fraction, 3),
        "bar": ct.bar_colour,
        "camera_velocity": None if cam is None else round(cam, 3),
        "objects": {
            c: {
                "shape": shapes[c],
                "size": ct.tracks[c].size(h),
                "frames": int(ct.tracks[c].present.sum()),
                "start_velocity": None
                if (v := initial_velocity(ms[c], fps)) is None
                else np.round(v, 3).tolist(),
                "accel_y": None if ms[c].accel_y is None else round(ms[c].accel_y, 3),
                "events": [
                    {"frame": e.frame, "dv": np.round(e.dv, 3).tolist(), "at": e.at} for e in ms[c].events
                ],
            }
            for c in ct.tracks
        },
    }
