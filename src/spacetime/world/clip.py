"""One rendered clip of the world — frames, captions and ground truth — from a seed.

`make_clip(seed, ...)` is a pure function of its arguments, which makes a data stream indexable:
clip i of a stream is `make_clip(stream_seed_for(seed, i))`, so resuming training at sample i needs
no state but i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spacetime.world.captions import caption_clip
from spacetime.world.physics import Event, JamError, Trajectory, simulate
from spacetime.world.render import render, scene_to_pixel, view_left, visible_fraction
from spacetime.world.scene import Scene, SceneSpec, sample_scene

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
        return {
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


def _event_dict(e: Event, scene: Scene) -> dict:
    other = scene.objects[e.other].colour if e.kind == "collision" else e.other
    return {"t": round(e.t, 6), "kind": e.kind, "object": scene.objects[e.object].colour, "other": other}


def check_clip_args(num_frames: int, height: int, width: int, fps: float) -> None:
    for name, v in (("num_frames", num_frames), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not (0 < fps <= 1000 and np.isfinite(fps)):
        raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")


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
) -> Clip:
    """Render one clip. The same arguments always give the same clip, bit for bit."""
    check_clip_args(num_frames, height, width, fps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    times = np.arange(num_frames, dtype=np.float64) / fps
    duration = max(float(times[-1]), 1.0 / fps)
    given = scene
    for attempt in range(20):
        rng = np.random.default_rng(seed if attempt == 0 else [seed, attempt])
        if given is None:
            scene = sample_scene(rng, duration=duration, aspect=width / height, split=split, spec=spec)
        try:
            traj = simulate(scene, times)
            break
        except JamError:
            if given is not None or attempt == 19:
                raise
    frames = render(scene, traj, height, width)
    visible = visible_fraction(scene, traj, height, width)
    captions = caption_clip(scene, traj, visible, rng)
    return Clip(frames, float(fps), scene, traj, visible, captions, int(seed), split)


def stream_seed(seed: int, index: int, split: str = "train") -> int:
    """The seed of clip `index` in the stream `seed` (distinct streams per split)."""
    ss = np.random.SeedSequence([int(seed), int(index), 0 if split == "train" else 1])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


__all__ = ["Clip", "check_clip_args", "make_clip", "stream_seed"]
