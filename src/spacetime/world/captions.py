"""Captions from ground truth.

`caption_clip` writes three captions — short (the objects), medium (objects and motion), detailed
(every object, its motion and what happened to it, gravity, background, occluder, camera) — from
the simulated clip, so every claim is true of it. Wording varies (the rng picks synonyms and
templates), which is Sora's re-captioning in miniature. The phrases below are the caption
vocabulary; `spacetime.world.prompts` reads it (and common user phrasings) back into scenes. The
grammar and every phrase are listed in docs/captions.md.
"""

from __future__ import annotations

import numpy as np

from spacetime.world import vocab
from spacetime.world.physics import Trajectory
from spacetime.world.scene import Scene

# --- the caption vocabulary: every phrase a caption can use (parse_prompt reads them all) --------
# Colours, backgrounds and occluder greys are always the exact vocab names: the tracker and the
# evaluation read prompts by them.

SHAPE_WORDS = {"ball": ("ball", "circle", "disc"), "square": ("square", "box", "block"), "triangle": ("triangle",)}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
MOVE_VERBS = ("moves", "drifts", "glides", "travels", "floats")
DIRECTION_PHRASES = {
    "right": ("to the right", "rightward"),
    "left": ("to the left", "leftward"),
    "up": ("up", "upward"),
    "down": ("down", "downward"),
    "up-right": ("up and to the right", "diagonally up and to the right"),
    "up-left": ("up and to the left", "diagonally up and to the left"),
    "down-right": ("down and to the right", "diagonally down and to the right"),
    "down-left": ("down and to the left", "diagonally down and to the left"),
}
STILL_PHRASES = ("stays still", "stays in place", "hangs motionless", "does not move")
RESTING_PHRASES = ("rests on the floor", "sits still on the floor", "lies on the floor")  # still, under gravity
FALL_PHRASES = ("falls", "drops", "falls down")
BOUNCE_PHRASES = ("bounces to the {d}", "bounces along to the {d}", "hops to the {d}")
THROW_PHRASES = ("is thrown to the {d}", "is tossed to the {d}")  # a throw that never lands within the clip
HIT_VERBS = ("hits", "collides with", "bumps into")
HIT_IT = ("hits it", "collides with it", "bumps into it")  # "stays still until the red ball hits it"
KNOCK_IT = "knocks it {dir}"  # "... until the red ball knocks it to the right"
AFTER_HIT = ("heads {dir}", "moves off {dir}")  # where an object goes after a collision
STOP_PHRASES = ("stops", "comes to a stop")  # a head-on hit that leaves it at rest
WALL_PHRASES = {"left": "bounces off the left wall", "right": "bounces off the right wall", "ceiling": "bounces off the ceiling"}
FLOOR_PHRASE = "bounces on the floor"
FLOOR_TIMES = ("", " twice", " several times")  # 1, 2, 3 or more bounces
REST_PHRASES = ("comes to rest on the floor", "settles on the floor")
BAR_PHRASES = {  # a run of frames with the object at least half hidden by the bar
    "passes": "passes behind the {bar}",  # hidden, then seen again
    "disappears": "disappears behind the {bar}",  # hidden until the end
    "starts": "starts behind the {bar} and comes out",  # hidden from the first frame, then seen
    "stays": "stays behind the {bar}",  # hidden in every frame
}
VIEW_PHRASES = {"leaves": "leaves the frame", "enters": "enters the frame", "returns": "leaves the frame and comes back"}
HIDDEN_IN_IMAGE = "partly hidden behind the {bar}"
GRAVITY_ON = ("under gravity", "with gravity")
GRAVITY_OFF = ("in zero gravity", "weightless", "with no gravity")
GRAVITY_SENTENCES = {True: ("gravity pulls everything down",), False: ("everything is weightless", "there is no gravity")}
BACKGROUND_TEMPLATES = ("on a {bg} background", "against a {bg} background", "in front of a {bg} backdrop")
BACKGROUND_SENTENCE = "the background is {bg}"
OCCLUDER_PHRASES = ("a {c} bar stands in the scene", "a tall {c} bar stands in the scene", "a vertical {c} bar runs from floor to ceiling")
STATIC_CAMERA = ("the camera is static", "the camera does not move", "the camera stays still")
PAN_CAMERA = ("the camera pans to the {d}", "the camera pans {d}", "the view pans to the {d}")
EMPTY = "an empty {bg} background"  # every object out of view for the whole clip
MAX_EVENTS = 6  # per object in the detailed caption, the earliest: a caption is a description, not a log
SEEN = 0.3  # visible fraction from which an event counts as shown (at a frame next to it)
HIDDEN = 0.5  # below this visible fraction an object is "behind" the bar
OUT = 0.05  # below this it is out of view


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _noun(obj, rng: np.random.Generator, size: bool) -> str:
    """The object as "a red ball", or with its size "a large red ball"."""
    return _article(" ".join(([_pick(rng, SIZE_WORDS[obj.size])] if size else []) + [obj.colour, _pick(rng, SHAPE_WORDS[obj.shape])]))


# --- what happened to each object --------------------------------------------------------------

def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True: frames start..stop-1."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _touches(e, i: int) -> bool:
    return e.object == i or (e.kind == "collision" and e.other == i)


def _heading(scene: Scene, traj: Trajectory, i: int, t: float) -> str | None:
    """Where object i goes right after an event at t: a DIRECTIONS key, "stop", or None when the
    next frame does not show it cleanly (another event first). Under gravity only left/right, as
    the vertical velocity changes all the time."""
    k = int(np.searchsorted(traj.times, t, side="right"))
    if k >= len(traj.times) or any(t < e.t <= traj.times[k] and _touches(e, i) for e in traj.events):
        return None
    v = traj.velocities[k, i]
    if scene.gravity:
        return None if abs(v[0]) < 0.02 else "right" if v[0] > 0 else "left"
    speed = float(np.hypot(*v))
    if speed < 0.02:
        return "stop"
    return max(vocab.DIRECTIONS, key=lambda d: v @ np.asarray(vocab.DIRECTIONS[d]) / speed)


def _partner(scene: Scene, visible: np.ndarray, j: int) -> str:
    """How a caption names object j met in a collision: by colour and shape, which identify it,
    unless it is never in view (then the captions do not name it at all)."""
    o = scene.objects[j]
    return f"the {o.colour} {o.shape}" if visible[:, j].max() >= OUT else "something"


def motion_in_clip(scene: Scene, traj: Trajectory, i: int) -> str:
    """The motion label (vocab.MOTIONS) that object i shows in the clip: its scene label, unless an
    event at the very first instant (an object placed against the wall it moves into) has already
    turned it round; then the label of its velocity at the first frame, which the video shows."""
    obj = scene.objects[i]
    if not any(e.t <= traj.times[0] + 1e-9 and _touches(e, i) for e in traj.events):
        return obj.motion
    v = traj.velocities[0, i]
    if scene.gravity:
        return obj.motion if not obj.motion.startswith("bounces-") else "bounces-right" if v[0] > 0 else "bounces-left"
    if np.hypot(*v) < 1e-9:
        return "still"
    return max(vocab.DIRECTIONS, key=lambda d: v @ np.asarray(vocab.DIRECTIONS[d]))


def _story(scene: Scene, traj: Trajectory, visible: np.ndarray, i: int, rng) -> tuple[str, list[str]]:
    """Object i's motion phrase and its event phrases in time order, each true of the clip: events
    count only within the clip and where the object is in view at a frame next to them."""
    obj, times, t_end = scene.objects[i], traj.times, traj.times[-1]
    # events at the first instant happen before anything is seen: motion_in_clip accounts for them
    mine = [e for e in traj.events if times[0] + 1e-9 < e.t <= t_end and _touches(e, i)]
    label = motion_in_clip(scene, traj, i)

    def seen(t: float) -> bool:
        k = int(np.searchsorted(times, t, side="right"))
        return visible[max(k - 1, 0) : k + 1, i].max() >= SEEN

    rest_times = {e.t for e in mine if e.kind == "rest"}
    floor = [e.t for e in mine if e.kind == "wall" and e.other == "floor" and e.t not in rest_times]
    out: list[tuple[float, str]] = []
    if floor_seen := [t for t in floor if seen(t)]:
        out.append((floor_seen[0], FLOOR_PHRASE + FLOOR_TIMES[min(len(floor_seen), 3) - 1]))

    # the motion: its label, made true of this clip
    first_hit = next((e for e in mine if e.kind == "collision"), None)
    partners: set[int] = set()
    if label == "still":
        motion = _pick(rng, RESTING_PHRASES if scene.gravity else STILL_PHRASES)
        if first_hit is not None:  # "stays still" is true only until something hits it
            j = int(first_hit.other if first_hit.object == i else first_hit.object)
            partners.add(j)
            heading = _heading(scene, traj, i, first_hit.t)
            how = KNOCK_IT.format(dir=_pick(rng, DIRECTION_PHRASES[heading])) if heading not in (None, "stop") else _pick(rng, HIT_IT)
            motion += f" until {_partner(scene, visible, j)} {how}"
    elif label == "falls":
        motion = _pick(rng, FALL_PHRASES)
    elif label in ("bounces-left", "bounces-right"):
        side = label.split("-")[1]
        motion = _pick(rng, BOUNCE_PHRASES if floor else THROW_PHRASES).format(d=side)  # no landing: no bounce
    else:
        motion = f"{_pick(rng, MOVE_VERBS)} {_pick(rng, DIRECTION_PHRASES[label])}"

    walls: set[str] = set()
    rest = _pick(rng, REST_PHRASES)
    for e in mine:
        if not seen(e.t):
            continue  # out of view or behind the bar: the video does not show it
        if e.kind == "wall" and e.other in WALL_PHRASES and e.other not in walls:
            walls.add(e.other)
            out.append((e.t, WALL_PHRASES[e.other]))
        elif e.kind == "collision":
            j = int(e.other if e.object == i else e.object)
            if j not in partners:  # the first collision with each partner
                partners.add(j)
                out.append((e.t, f"{_pick(rng, HIT_VERBS)} {_partner(scene, visible, j)}"))
                if (heading := _heading(scene, traj, i, e.t)) is not None:  # said only where the next frame shows it
                    go = _pick(rng, STOP_PHRASES) if heading == "stop" else _pick(rng, AFTER_HIT).format(dir=_pick(rng, DIRECTION_PHRASES[heading]))
                    out.append((e.t, go))
        elif e.kind == "rest":
            out.append((e.t, rest))

    if scene.occluder is not None and len(times) > 1:
        oc = scene.occluder
        # the bar hides, not the frame edge: the bar is in view (sample_scene centres a static
        # camera on the box and starts a pan half a view from one end, which gives the view width)
        half = min(scene.camera_x0, scene.box_width - scene.camera_x0)
        near = (np.abs(traj.positions[:, i, 0] - oc.x) < oc.width / 2 + obj.radius) & (np.abs(scene.camera_centre(times) - oc.x) < half)
        bar = f"{oc.colour} bar"
        for start, stop in _runs((visible[:, i] < HIDDEN) & near):
            kind = ("stays" if stop == len(times) else "starts") if start == 0 else "passes" if stop < len(times) else "disappears"
            out.append((times[start], BAR_PHRASES[kind].format(bar=bar)))
    if len(times) > 1:
        away = visible[:, i] < OUT
        if scene.occluder is not None:  # hidden by the bar is not out of view
            away &= np.abs(traj.positions[:, i, 0] - scene.occluder.x) > scene.occluder.width / 2 + obj.radius
        for start, stop in _runs(away):
            if start == 0 and stop < len(times):
                out.append((times[stop], VIEW_PHRASES["enters"]))
            elif start > 0:
                out.append((times[start], VIEW_PHRASES["leaves" if stop == len(times) else "returns"]))
    out.sort(key=lambda x: x[0])  # stable: a heading stays right after its collision
    return motion, list(dict.fromkeys(p for _, p in out))  # a phrase said twice is said once


def caption_clip(scene: Scene, traj: Trajectory, visible: np.ndarray, rng: np.random.Generator) -> dict[str, str]:
    """Short, medium and detailed captions, all true of the simulated clip (`visible`: (T, N)
    visible fractions from `render.visible_fraction`). Objects never in view are not named. A
    1-frame clip (an image) gets no motion, event, gravity or camera words: a still shows none."""
    shown = [i for i in range(len(scene.objects)) if visible[:, i].max() >= OUT]
    objs = [scene.objects[i] for i in shown]
    bg = _pick(rng, BACKGROUND_TEMPLATES).format(bg=scene.background)
    occ = "" if scene.occluder is None else _pick(rng, OCCLUDER_PHRASES).format(c=scene.occluder.colour)
    if not objs:
        short = EMPTY.format(bg=scene.background)
        return {"short": short, "medium": short, "detailed": _cap(short) + (f"; {occ}." if occ else ".")}
    short = _join([_noun(o, rng, size=bool(rng.random() < 0.3)) for o in objs])

    if len(traj.times) == 1:
        medium = f"{short} {bg}"
        nouns, oc = [], scene.occluder
        for i, o in zip(shown, objs):
            behind = oc is not None and visible[0, i] < HIDDEN and abs(traj.positions[0, i, 0] - oc.x) < oc.width / 2 + o.radius
            nouns.append(_noun(o, rng, size=True) + (" " + HIDDEN_IN_IMAGE.format(bar=f"{oc.colour} bar") if behind else ""))
        detailed = _cap(_join(nouns)) + f" {bg}" + (f"; {occ}." if occ else ".")
        return {"short": short, "medium": medium, "detailed": detailed}

    stories = [_story(scene, traj, visible, i, rng) for i in shown]
    clauses = []
    for o, (motion, ev) in zip(objs, stories):
        # after "until the blue ball hits it", "and ..." would read as the blue ball's: ", then ..."
        first = "" if not ev else (", then " if " until " in motion else " and ") + ev[0]
        clauses.append(f"{_noun(o, rng, size=False)} {motion}{first}")
    medium = _join(clauses) if len(clauses) < 3 else ", ".join(clauses[:-1]) + " while " + clauses[-1]

    sentences = []
    for o, (motion, ev) in zip(objs, stories):
        ev = ev[:MAX_EVENTS]
        tail = "" if not ev else f" and {ev[0]}" if len(ev) == 1 and " until " not in motion else ", then " + _join(ev)
        noun = _noun(o, rng, size=True)
        s = f"{noun} {motion}{tail}" if rng.random() < 0.7 else f"there is {noun}; it {motion}{tail}"
        sentences.append(_cap(s) + ".")
    gravity = _pick(rng, GRAVITY_ON if scene.gravity else GRAVITY_OFF)
    camera = _pick(rng, STATIC_CAMERA) if scene.camera == "static" else _pick(rng, PAN_CAMERA).format(d=scene.camera[4:])
    if rng.random() < 0.6:  # "Under gravity on a black background, a ... bar ...; the camera ..."
        world = f"{gravity} {bg}" + (f", {occ}" if occ else "") + f"; {camera}."
    else:  # "The background is black and a ... bar .... There is no gravity; the camera ..."
        world = BACKGROUND_SENTENCE.format(bg=scene.background) + (f" and {occ}" if occ else "") + ". "
        world += _cap(_pick(rng, GRAVITY_SENTENCES[scene.gravity])) + f"; {camera}."
    sentences.append(_cap(world))
    return {"short": short, "medium": medium, "detailed": " ".join(sentences)}
