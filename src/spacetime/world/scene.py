"""Scenes of the procedural world: what a prompt asks for (`SceneSpec`), what the simulator runs
(`Scene`), the train/held-out split, and `sample_scene`, which fills a spec at random.

A `SceneSpec` is partial (None means "any"); `sample_scene` turns it into a concrete `Scene` with
positions and velocities chosen so that the asked-for motion is visible within the clip.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from spacetime.world import vocab


@dataclass
class ObjectSpec:
    """One object as a prompt describes it; None leaves the attribute to the sampler."""

    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    motion: str | None = None
    hits: str | None = None  # a wall from vocab.WALLS the object must reach ("bounces off the left wall")

    def __post_init__(self) -> None:
        _check("colour", self.colour, vocab.COLOURS)
        _check("shape", self.shape, vocab.SHAPES)
        _check("size", self.size, vocab.SIZES)
        _check("motion", self.motion, vocab.MOTIONS)
        _check("hits", self.hits, vocab.WALLS)


@dataclass
class SceneSpec:
    """A scene as a prompt describes it. `unknown_words` lists what `parse_prompt` could not read."""

    objects: list[ObjectSpec] = field(default_factory=list)
    background: str | None = None
    gravity: bool | None = None
    camera: str | None = None
    occluder: bool | None = None
    unknown_words: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what parse_prompt changed to fit the world, and why
    # the shots in order (`shots.ShotSpec`, the wide view first), empty for one shot; out of the
    # repr so that single-shot specs print as they always did
    shots: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        _check("background", self.background, vocab.BACKGROUNDS)
        _check("camera", self.camera, vocab.CAMERAS)
        if len(self.objects) > vocab.MAX_OBJECTS:
            raise ValueError(f"a scene holds 1 to {vocab.MAX_OBJECTS} objects, got {len(self.objects)}")
        colours = [o.colour for o in self.objects if o.colour is not None]
        if len(colours) != len(set(colours)):
            raise ValueError(f"objects in a scene need distinct colours (the tracker tells them apart by colour), got {colours}")


def _check(name: str, value: str | None, allowed) -> None:
    if value is not None and value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(allowed)}")


@dataclass
class WorldObject:
    colour: str
    shape: str
    size: str
    motion: str
    position: tuple[float, float]  # centre at t = 0, scene units
    velocity: tuple[float, float]  # units/s at t = 0

    @property
    def radius(self) -> float:
        return vocab.SIZES[self.size]

    @property
    def mass(self) -> float:
        return self.radius**2  # proportional to area: equal-density flat objects


@dataclass
class Occluder:
    x: float  # centre of the vertical bar, scene units
    width: float
    colour: str


@dataclass
class Scene:
    """A concrete scene: the simulator's input. The box spans x in [0, box_width], y in [0, 1]."""

    background: str
    objects: list[WorldObject]
    gravity: bool
    box_width: float
    camera: str = "static"
    camera_speed: float = 0.0  # units/s, positive; the direction is in `camera`
    camera_x0: float = 0.5  # view centre at t = 0
    occluder: Occluder | None = None
    restitution: float = vocab.WALL_RESTITUTION  # walls and floor; used only in gravity scenes
    g: float = vocab.GRAVITY

    def camera_centre(self, t: np.ndarray) -> np.ndarray:
        sign = {"static": 0.0, "pan-left": -1.0, "pan-right": 1.0}[self.camera]
        return self.camera_x0 + sign * self.camera_speed * np.asarray(t, dtype=np.float64)

    def to_dict(self) -> dict:
        return {
            "background": self.background,
            "gravity": self.gravity,
            "g": self.g if self.gravity else 0.0,
            "restitution": self.restitution if self.gravity else 1.0,
            "box_width": self.box_width,
            "camera": self.camera,
            "camera_speed": self.camera_speed,
            "camera_x0": self.camera_x0,
            "occluder": None if self.occluder is None else vars(self.occluder).copy(),
            "objects": [
                {**vars(o), "position": list(o.position), "velocity": list(o.velocity), "radius": o.radius, "mass": o.mass}
                for o in self.objects
            ],
        }


# ---------------------------------------------------------------------------------------------
# Splits: a fixed set of (colour, shape, motion) triples never produced by the train split, so the
# held-out split measures compositional generalization. Every pair of attributes still occurs in
# train; only the triple is new.

def _heldout_triples() -> frozenset[tuple[str, str, str]]:
    rng = np.random.default_rng(20240215)  # fixed forever: changing it changes the benchmark
    triples = list(itertools.product(vocab.COLOURS, vocab.SHAPES, vocab.MOTIONS))
    order = rng.permutation(len(triples))
    chosen: set[tuple[str, str, str]] = set()
    target = len(triples) // 10
    for idx in order:
        t = triples[int(idx)]
        trial = chosen | {t}
        # keep every attribute pair seen in train: at most (n-1) of the triples sharing a pair held out
        if all(_pair_still_trained(trial, t, a, b) for a, b in ((0, 1), (0, 2), (1, 2))):
            chosen = trial
        if len(chosen) >= target:
            break
    return frozenset(chosen)


def _pair_still_trained(chosen: set, t: tuple, a: int, b: int) -> bool:
    sizes = (len(vocab.COLOURS), len(vocab.SHAPES), len(vocab.MOTIONS))
    free = 3 - a - b  # the index not in the pair
    held = sum(1 for u in chosen if u[a] == t[a] and u[b] == t[b])
    return held < sizes[free]


HELDOUT_TRIPLES: frozenset[tuple[str, str, str]] = _heldout_triples()
SPLITS = ("train", "heldout")


def is_heldout(colour: str, shape: str, motion: str) -> bool:
    return (colour, shape, motion) in HELDOUT_TRIPLES


# ---------------------------------------------------------------------------------------------
# Sampling

# The narrowest view (width / height) the world renders: a large object (0.24 units wide) fits in
# the box with room to move. Sizes are fixed scene units (the tracker reads them), so a narrower
# frame cannot hold the objects; it is refused, not squeezed.
MIN_ASPECT = 0.25


def check_aspect(aspect: float, what: str | None = None) -> None:
    """A ValueError naming `what` (e.g. "size 8x64") and the supported range, unless the view
    aspect (width / height) is one the world can render."""
    if not (isinstance(aspect, (int, float, np.number)) and not isinstance(aspect, bool) and np.isfinite(aspect)):
        raise ValueError(f"aspect (width/height) must be a finite number, got {aspect!r}")
    if aspect < MIN_ASPECT:
        name = what or f"aspect (width/height) {aspect!r}"
        raise ValueError(
            f"{name} is too narrow for the world: the view's width/height must be at least {MIN_ASPECT} "
            f"(width >= height / {round(1 / MIN_ASPECT)}), so that its largest object "
            f"({2 * max(vocab.SIZES.values()):g} units wide, the view is 1 unit high) fits"
        )


def _fit_motion(motion: str, gravity: bool) -> str:
    """The motion nearest `motion` that the scene's physics allows (a spec may mix "falls" with
    "moves left": gravity is one law for the whole scene)."""
    if gravity and motion in vocab.DIRECTIONS:
        dx = vocab.DIRECTIONS[motion][0]
        return "bounces-right" if dx > 0 else "bounces-left" if dx < 0 else "falls"
    if not gravity and motion in vocab.GRAVITY_MOTIONS:
        return {"falls": "down", "bounces-right": "right", "bounces-left": "left"}[motion]
    return motion


def sample_scene(
    rng: np.random.Generator,
    *,
    duration: float,
    aspect: float = 1.0,
    split: str = "train",
    spec: SceneSpec | None = None,
) -> Scene:
    """A random scene lasting `duration` seconds for a view `aspect` = width/height, consistent
    with `spec`. Attributes the spec leaves open obey `split`: train never yields a held-out
    (colour, shape, motion) triple; heldout makes the first object's triple a held-out one."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not (duration > 0 and np.isfinite(duration)):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    if not (aspect > 0 and np.isfinite(aspect)):
        raise ValueError(f"aspect (width/height) must be positive, got {aspect!r}")
    check_aspect(aspect)
    spec = spec or SceneSpec()

    background = spec.background or str(rng.choice(list(vocab.BACKGROUNDS)))
    motions_asked = [o.motion for o in spec.objects if o.motion]
    gravity = spec.gravity
    if gravity is None and motions_asked:
        gravity = any(m in vocab.GRAVITY_MOTIONS for m in motions_asked)
    if gravity is None:
        gravity = bool(rng.random() < 0.5)
    n = len(spec.objects) or int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    specs = list(spec.objects) + [ObjectSpec() for _ in range(n - len(spec.objects))]

    # attributes; the split constrains the free ones (a spec that fixes a whole triple wins)
    free = [not (o.colour and o.shape and o.motion) for o in specs]
    designated = free.index(True) if (split == "heldout" and any(free)) else -1
    taken = {o.colour for o in specs if o.colour}
    attrs = []
    for k, o in enumerate(specs):
        for _ in range(1000):
            colour = o.colour or str(rng.choice([c for c in vocab.COLOURS if c not in taken]))
            shape = o.shape or str(rng.choice(vocab.SHAPES))
            if o.motion:
                motion = _fit_motion(o.motion, gravity)
            elif o.hits:
                motion = _motion_towards(o.hits, gravity)
            else:
                motion = str(rng.choice(vocab.GRAVITY_MOTIONS if gravity else vocab.ZERO_G_MOTIONS))
            held = is_heldout(colour, shape, motion)
            if not free[k] or (held if k == designated else split == "heldout" or not held):
                break
        taken.add(colour)
        attrs.append((colour, shape, o.size or str(rng.choice(list(vocab.SIZES))), motion, o.hits))

    if gravity:
        # under gravity everything ends on the floor: leave room for all side by side, or bodies
        # would have to stack, which the event-driven physics does not model
        room = aspect - 0.1
        for k in range(len(attrs)):
            if sum(2 * vocab.SIZES[a[2]] for a in attrs) <= room:
                break
            if specs[k].size is None and attrs[k][2] == "large":
                attrs[k] = (attrs[k][0], attrs[k][1], "small", *attrs[k][3:])
        while len(attrs) > len(spec.objects) and sum(2 * vocab.SIZES[a[2]] for a in attrs) > room:
            attrs.pop()

    camera = spec.camera or str(rng.choice(vocab.CAMERAS, p=[0.7, 0.15, 0.15]))
    camera_speed = float(rng.uniform(*vocab.CAMERA_SPEED)) if camera != "static" else 0.0
    box_width = aspect + camera_speed * duration
    camera_x0 = {"static": box_width / 2, "pan-right": aspect / 2, "pan-left": box_width - aspect / 2}[camera]
    occluder = None
    if spec.occluder or (spec.occluder is None and rng.random() < 0.25):
        ox = float(rng.uniform(0.35, 0.65) * box_width)
        occluder = Occluder(ox, vocab.OCCLUDER_WIDTH, vocab.occluder_colour_for(background))

    objects: list[WorldObject] = []
    for o_spec, (colour, shape, size, motion, hits) in zip(specs, attrs):
        r = vocab.SIZES[size]
        for attempt in range(1000):
            if attempt == 200 and o_spec.size is None and size == "large":
                size, r = "small", vocab.SIZES["small"]  # a crowded, narrow box: make room
            pos, vel = _initial_state(rng, motion, hits, r, gravity, box_width, duration)
            if attempt >= 300 and motion != "still":  # still crowded: anywhere in the box will do
                pos = (float(rng.uniform(r, box_width - r)), float(rng.uniform(r, 1 - r)))
            if all(np.hypot(pos[0] - o.position[0], pos[1] - o.position[1]) > r + o.radius + 0.02 for o in objects):
                break
        else:
            raise ValueError(f"no room for {len(attrs)} objects in a {box_width:.2f} x 1 box; use a wider aspect or fewer objects")
        objects.append(WorldObject(colour, shape, size, motion, pos, vel))
    return Scene(background, objects, gravity, box_width, camera, camera_speed, camera_x0, occluder)


def _motion_towards(wall: str, gravity: bool) -> str:
    if gravity:  # the ceiling needs a throw upward; a fall only reaches the floor
        return {"left": "bounces-left", "right": "bounces-right", "ceiling": "bounces-right"}.get(wall, "falls")
    return {"left": "left", "right": "right", "floor": "down", "ceiling": "up"}[wall]


def _initial_state(rng, motion, hits, r, gravity, box_w, duration):
    """Position and velocity at t = 0 that make `motion` (and a requested wall hit) visible."""
    lo_x, hi_x = r, box_w - r
    if motion == "still":
        x = rng.uniform(lo_x, hi_x)
        return (float(x), float(r if gravity else rng.uniform(r, 1 - r))), (0.0, 0.0)
    if motion == "falls":
        return (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(0.55, 1 - r))), (0.0, 0.0)
    if motion in ("bounces-right", "bounces-left"):
        sign = 1.0 if motion == "bounces-right" else -1.0
        vx = sign * rng.uniform(*vocab.THROW_SPEED)
        travel = abs(vx) * duration
        if hits in ("left", "right"):  # start so the wall is reached at 30-70% of the clip
            dist = min(rng.uniform(0.3, 0.7) * travel, hi_x - lo_x)
            x = lo_x + dist if sign < 0 else hi_x - dist
        else:  # start on the side it moves away from, so it crosses the view
            x = lo_x + rng.uniform(0, 0.4) * (hi_x - lo_x) if sign > 0 else hi_x - rng.uniform(0, 0.4) * (hi_x - lo_x)
        y = float(rng.uniform(0.4, 1 - r))
        vy = float(rng.uniform(0.0, 1.0))
        if hits == "ceiling":  # thrown up hard enough to reach it: v^2 > 2 g h
            vy = 1.3 * float(np.sqrt(2 * vocab.GRAVITY * max(1 - r - y, 0.0))) + 0.1
        return (float(x), y), (float(vx), vy)
    # constant velocity in one of 8 directions
    dx, dy = vocab.DIRECTIONS[motion]
    speed = rng.uniform(*vocab.DRIFT_SPEED)
    vel = (float(dx * speed), float(dy * speed))
    travel = speed * duration
    pos = []
    for d, lo, hi in ((dx, lo_x, hi_x), (dy, r, 1 - r)):
        if d == 0:
            pos.append(rng.uniform(lo, hi))
        elif hits is not None:
            dist = min(rng.uniform(0.3, 0.7) * travel * abs(d), hi - lo)
            pos.append(hi - dist if d > 0 else lo + dist)
        else:  # start on the trailing side so most of the path is in the box
            span = hi - lo
            back = rng.uniform(0.0, max(0.0, span - travel * abs(d)) + 0.2 * span)
            margin = 0.1 * span  # never against the wall it moves into (a bounce at t = 0)
            pos.append(min(hi - margin, lo + back) if d > 0 else max(lo + margin, hi - back))
    return (float(pos[0]), float(pos[1])), vel
