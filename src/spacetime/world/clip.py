"""One rendered clip of the world — frames, captions and ground truth — from a seed.

`make_clip(seed, ...)` is a pure function of its arguments, which makes a data stream indexable:
clip i of a stream is `make_clip(stream_seed_for(seed, i))`, so resuming training at sample i needs
no state but i.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from spacetime.world.captions import SEEN, SHAPE_WORDS, caption_clip
from spacetime.world.physics import Event, JamError, Trajectory, simulate
from spacetime.world.render import render, render_view, scene_to_pixel, view_left, visible_fraction
from spacetime.world.scene import Scene, SceneSpec, check_aspect, sample_scene
from spacetime.world.shots import (
    HELDOUT_CLOSE_UPS,
    Shot,
    add_shots_to_captions,
    cameras,
    check_shots,
    close_up_conflict,
    cut_frames,
    sample_shots,
    scene_to_image,
    shot_index,
    shot_phrases,
    transforms,
)

GROUND_TRUTH_VERSION = 1


@dataclass
class Clip:
    frames: np.ndarray  # uint8 (T, H, W, 3)
    fps: float
    scene: Scene
    trajectory: Trajectory
    visible: np.ndarray  # (T, N) visible fraction per object
    captions: dict[str, str]  # short, medium, detailed
    seed: int
    split: str
    shots: list[Shot] = field(default_factory=list)  # empty: one wide shot (a single-shot clip)
    cams: np.ndarray | None = None  # (T, 4) per-frame camera of a multi-shot clip, see world/shots.py

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]

    def ground_truth(self) -> dict:
        """JSON-ready ground truth: per frame and object, position and velocity (scene units, y up),
        pixel centre (column, row), visible fraction; the camera offset (view's left edge)."""
        h, w = self.height, self.width
        times = self.trajectory.times
        if self.shots:
            pix = scene_to_image(self.cams, self.trajectory.positions, h, w)
        else:
            pix = scene_to_pixel(self.scene, times, self.trajectory.positions, h, w)
        objects = []
        for i, obj in enumerate(self.scene.objects):
            objects.append(
                {
                    "colour": obj.colour,
                    "shape": obj.shape,
                    "size": obj.size,
                    "motion": obj.motion,
                    "radius": obj.radius,
                    "radius_px": obj.radius * h,
                    "position": np.round(self.trajectory.positions[:, i], 6).tolist(),
                    "velocity": np.round(self.trajectory.velocities[:, i], 6).tolist(),
                    "pixel": np.round(pix[:, i], 3).tolist(),
                    "visible": np.round(self.visible[:, i], 4).tolist(),
                }
            )
        out = {
            "version": GROUND_TRUTH_VERSION,
            "seed": self.seed,
            "split": self.split,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "height": h,
            "width": w,
            "pixels_per_unit": h,
            "times": np.round(times, 6).tolist(),
            "camera_x": np.round(view_left(self.scene, times, h, w), 6).tolist(),
            "scene": self.scene.to_dict(),
            "objects": objects,
            "events": [_event_dict(e, self.scene) for e in self.trajectory.events],
            "captions": self.captions,
        }
        if self.shots:  # multi-shot clips only, so single-shot ground truth stays as it was
            idx = shot_index(self.shots, self.num_frames)
            out["shots"] = [{"kind": s.kind, "start": s.start, "target": s.target} for s in self.shots]
            out["shot"] = idx.tolist()
            out["shot_kind"] = [self.shots[k].kind for k in idx]
            out["camera"] = np.round(self.cams, 6).tolist()  # centre x, centre y, zoom, mirror
            out["transform"] = np.round(transforms(self.cams, h, w), 6).tolist()  # (col, row) = A @ (x, y, 1)
        return out


def _event_dict(e: Event, scene: Scene) -> dict:
    other = scene.objects[e.other].colour if e.kind == "collision" else e.other
    return {"t": round(e.t, 6), "kind": e.kind, "object": scene.objects[e.object].colour, "other": other}


def check_clip_args(num_frames: int, height: int, width: int, fps: float) -> None:
    for name, v in (("num_frames", num_frames), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not (0 < fps <= 1000 and np.isfinite(fps)):
        raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")
    check_aspect(width / height, f"size {width}x{height} (WxH)")


def make_clip(
    seed: int,
    *,
    num_frames: int = 17,
    height: int = 64,
    width: int = 64,
    fps: float = 8.0,
    split: str = "train",
    spec: SceneSpec | None = None,
    scene: Scene | None = None,
    multishot: bool = False,
    shots: list[Shot] | None = None,
) -> Clip:
    """Render one clip. The same arguments always give the same clip, bit for bit.

    Multi-shot (docs/multishot.md): `multishot=True` draws 2 or 3 shots, a spec with shots
    (`parse_prompt("... then cut to a close-up of the red ball")`) renders those, `shots` gives
    them outright. The scene, its physics and the wide view are those of the single-shot clip of
    the same seed; only the camera cuts."""
    check_clip_args(num_frames, height, width, fps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    times = np.arange(num_frames, dtype=np.float64) / fps
    duration = max(float(times[-1]), 1.0 / fps)
    given = scene
    asked = spec.shots if spec is not None and spec.shots else None
    for shot in asked or []:  # a close-up of an object the spec cannot hold: said now, not redirected
        problem = close_up_conflict(shot, [(o.colour, o.shape) for o in spec.objects])
        if problem:
            raise ValueError(problem)
    want_shots = bool(multishot or asked or shots)
    picked: list[Shot] | None = None
    for attempt in range(20):
        rng = np.random.default_rng(seed if attempt == 0 else [seed, attempt])
        if given is None:
            scene = sample_scene(rng, duration=duration, aspect=width / height, split=split, spec=spec)
            if multishot and split == "heldout" and spec is None:
                scene = _with_heldout_close_up(scene, np.random.default_rng([seed, 5]))
        try:
            traj = simulate(scene, times)
        except JamError:
            if given is not None or attempt == 19:
                raise
            continue
        if given is None and attempt < 19 and _misses_asked_hit(scene, traj, spec, height, width):
            continue  # another object took the path to the asked wall (or hid it): drawn anew, as a jam is
        if not want_shots:
            break
        # shots whose every cut the video shows; a scene that allows none is drawn anew, as a jam is
        srng = np.random.default_rng([seed, 4] if attempt == 0 else [seed, 4, attempt])  # apart from the scene's draws
        wide_visible = visible_fraction(scene, traj, height, width)
        last = given is not None or attempt == 19
        picked = shots or sample_shots(srng, scene, traj, wide_visible, fps=fps, split=split, asked=asked, strict=not last)
        if picked is not None:
            break
    frames = render(scene, traj, height, width)
    visible = visible_fraction(scene, traj, height, width)
    captions = caption_clip(scene, traj, visible, rng)
    if not want_shots:
        return Clip(frames, float(fps), scene, traj, visible, captions, int(seed), split)
    # the camera cuts; the scene part of the captions is the wide view's, the shots are told after it
    assert picked is not None
    shots = picked
    check_shots(shots, num_frames, [o.colour for o in scene.objects])
    cams = cameras(scene, traj, shots, height, width)
    frames = shoot(frames, scene, traj, shots, cams)
    captions = add_shots_to_captions(captions, shot_phrases(scene, shots, srng, SHAPE_WORDS))
    visible = visible_fraction(scene, traj, height, width, cams)
    return Clip(frames, float(fps), scene, traj, visible, captions, int(seed), split, list(shots), cams)


def _misses_asked_hit(scene: Scene, traj: Trajectory, spec: SceneSpec | None, height: int, width: int) -> bool:
    """Does an object the spec sends into a wall ("a red ball bounces off the left wall") fail to
    reach it in view within the clip? Alone it always does; with others, one in its path turned it
    round first in about one clip in five, and the clip showed (and its caption told) no such hit.
    An event counts as the captions count it: after the first frame, in view at a frame next to it."""
    asked = [(k, o.hits) for k, o in enumerate(spec.objects if spec is not None else []) if o.hits]
    times = traj.times
    if not asked or len(times) < 2:  # a still shows no event: nothing to redraw for
        return False
    hits = [[e.t for e in traj.events if e.kind == "wall" and e.object == k and e.other == wall
             and times[0] + 1e-9 < e.t <= times[-1]] for k, wall in asked]
    if not all(hits):  # no such event at all: no need to render the visibility
        return True
    visible = visible_fraction(scene, traj, height, width)

    def seen(k: int, t: float) -> bool:
        f = int(np.searchsorted(times, t, side="right"))
        return visible[max(f - 1, 0) : f + 1, k].max() >= SEEN

    return not all(any(seen(k, t) for t in ts) for (k, _), ts in zip(asked, hits))


def shoot(wide: np.ndarray, scene: Scene, traj: Trajectory, shots: list[Shot], cams: np.ndarray) -> np.ndarray:
    """Multi-shot frames from the wide view's frames (T, H, W, 3): wide shots are those frames, a
    reverse angle mirrors them, a close-up is rendered through its camera."""
    frames = wide.copy()
    idx = shot_index(shots, wide.shape[0])
    for k, s in enumerate(shots):
        on = idx == k
        if s.kind == "reverse":
            frames[on] = wide[on, :, ::-1]
        elif s.kind == "close-up":
            frames[on] = render_view(scene, traj.positions[on], cams[on], wide.shape[1], wide.shape[2])
    return frames


def render_shots(scene: Scene, traj: Trajectory, shots: list[Shot], height: int, width: int) -> np.ndarray:
    """Frames (T, H, W, 3) of a simulated scene filmed in `shots`."""
    cams = cameras(scene, traj, shots, height, width)
    return shoot(render(scene, traj, height, width), scene, traj, shots, cams)


def _with_heldout_close_up(scene: Scene, rng: np.random.Generator) -> Scene:
    """A held-out multi-shot scene: its first object made a held-out close-up (colour, shape)
    pair (colours stay distinct: an object that had the colour takes the first object's)."""
    colour, shape = sorted(HELDOUT_CLOSE_UPS)[int(rng.integers(len(HELDOUT_CLOSE_UPS)))]
    first = scene.objects[0]
    objects = [dataclasses.replace(first, colour=colour, shape=shape)]
    objects += [dataclasses.replace(o, colour=first.colour) if o.colour == colour else o for o in scene.objects[1:]]
    return dataclasses.replace(scene, objects=objects)


def can_cut(num_frames: int) -> bool:
    """Is the clip long enough for a cut (on a frame 1 + 4k, every shot >= 4 frames)?"""
    return bool(cut_frames(num_frames))


def stream_seed(seed: int, index: int, split: str = "train") -> int:
    """The seed of clip `index` in the stream `seed` (distinct streams per split)."""
    ss = np.random.SeedSequence([int(seed), int(index), 0 if split == "train" else 1])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


__all__ = ["Clip", "can_cut", "check_clip_args", "make_clip", "render_shots", "stream_seed"]
