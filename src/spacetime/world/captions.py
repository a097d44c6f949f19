"""Captions from ground truth, and prompts back to scenes.

`caption_clip` writes three captions — short (the objects), medium (objects and motion), detailed
(every object, its motion and what happened to it, gravity, background, occluder, camera) — from
the simulated clip, so every claim is true of it. Wording varies (the rng picks synonyms and
templates), which is Sora's re-captioning in miniature. `parse_prompt` reads that whole vocabulary,
and common user phrasings, back into a `SceneSpec`, naming the words it could not understand.
`expand_prompt` turns a short prompt into the detailed style by simulating a scene that fits it.
"""

from __future__ import annotations

import re

import numpy as np

from spacetime.world import vocab
from spacetime.world.physics import Trajectory, simulate
from spacetime.world.render import visible_fraction
from spacetime.world.scene import ObjectSpec, Scene, SceneSpec, sample_scene

# --- words -----------------------------------------------------------------------------------

SHAPE_WORDS = {"ball": ("ball", "circle", "disc"), "square": ("square", "box", "block"), "triangle": ("triangle",)}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
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
FALL_PHRASES = ("falls", "drops", "falls down")
BOUNCE_PHRASES = ("bounces to the {d}", "bounces along to the {d}", "hops to the {d}")
WALL_NAMES = {"left": "the left wall", "right": "the right wall", "floor": "the floor", "ceiling": "the ceiling"}
HIT_VERBS = ("hits", "collides with", "bumps into")
MAX_EVENTS_PER_OBJECT = 4  # the earliest ones: a caption is a description, not a log
BACKGROUND_TEMPLATES = ("on a {bg} background", "against a {bg} background", "in front of a {bg} backdrop")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun(obj, rng: np.random.Generator, size: bool) -> str:
    words = ([obj.size] if size else []) + [obj.colour, _pick(rng, SHAPE_WORDS[obj.shape])]
    return " ".join(words)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- what happened to each object --------------------------------------------------------------

def _object_events(scene: Scene, traj: Trajectory, visible: np.ndarray, i: int, rng) -> list[str]:
    """Event phrases for object i, in time order, each true of the clip."""
    t_end = traj.times[-1]
    out: list[tuple[float, str]] = []
    floor_hits = [e.t for e in traj.events if e.kind == "wall" and e.object == i and e.other == "floor" and e.t <= t_end]
    if floor_hits:
        times = "" if len(floor_hits) == 1 else " twice" if len(floor_hits) == 2 else " several times"
        out.append((floor_hits[0], f"bounces on the floor{times}"))
    walls_seen = set()
    for e in traj.events:
        if e.t > t_end:
            break
        if e.kind == "wall" and e.object == i and e.other != "floor" and e.other not in walls_seen:
            walls_seen.add(e.other)
            out.append((e.t, f"bounces off {WALL_NAMES[e.other]}"))
        elif e.kind == "collision" and i in (e.object, e.other):
            j = int(e.other if e.object == i else e.object)
            if j not in walls_seen:  # the first collision with each partner
                walls_seen.add(j)
                other = scene.objects[j]
                out.append((e.t, f"{_pick(rng, HIT_VERBS)} the {other.colour} {other.shape}"))
        elif e.kind == "rest" and e.object == i and any(x.object == i and x.kind == "wall" for x in traj.events if x.t < e.t):
            out.append((e.t, "comes to rest on the floor"))
    # occlusion by the bar, judged where the object's centre is
    if scene.occluder is not None and len(traj.times) > 1:
        oc = scene.occluder
        behind = np.abs(traj.positions[:, i, 0] - oc.x) < oc.width / 2 + scene.objects[i].radius
        hidden = (visible[:, i] < 0.5) & behind
        bar = f"the {oc.colour} bar"
        edges = np.flatnonzero(np.diff(np.r_[0, hidden.astype(int), 0]))  # run starts and ends
        for start, stop in zip(edges[::2], edges[1::2]):  # hidden on frames start..stop-1
            if start == 0:
                out.append((0.0, f"starts behind {bar}"))
            elif stop < len(hidden):
                out.append((traj.times[start], f"passes behind {bar}"))
            else:
                out.append((traj.times[start], f"disappears behind {bar}"))
    # leaving or entering the view (camera pans, wide boxes)
    out_of_view = (visible[:, i] < 0.05)
    if scene.occluder is not None:
        oc = scene.occluder
        out_of_view &= np.abs(traj.positions[:, i, 0] - oc.x) > oc.width / 2 + scene.objects[i].radius
    if len(traj.times) > 1 and not out_of_view[0] and out_of_view[-1]:
        out.append((traj.times[int(np.argmax(out_of_view))], "leaves the frame"))
    elif len(traj.times) > 1 and out_of_view[0] and not out_of_view[-1]:
        out.append((traj.times[int(np.argmax(~out_of_view))], "enters the frame"))
    out.sort(key=lambda x: x[0])
    phrases = list(dict.fromkeys(p for _, p in out))  # e.g. passing behind the bar twice: said once
    return phrases[:MAX_EVENTS_PER_OBJECT]


def _motion_phrase(motion: str, rng) -> str:
    if motion == "still":
        return _pick(rng, STILL_PHRASES)
    if motion == "falls":
        return _pick(rng, FALL_PHRASES)
    if motion.startswith("bounces-"):
        return _pick(rng, BOUNCE_PHRASES).format(d=motion.split("-")[1])
    return f"{_pick(rng, MOVE_VERBS)} {_pick(rng, DIRECTION_PHRASES[motion])}"


def caption_clip(scene: Scene, traj: Trajectory, visible: np.ndarray, rng: np.random.Generator) -> dict[str, str]:
    """Short, medium and detailed captions, all true of the simulated clip. A 1-frame clip (an
    image) gets no claims about motion, events or the camera: a still shows none of them."""
    moving = len(traj.times) > 1
    objs = scene.objects
    short = _join([_article(_noun(o, rng, size=bool(rng.random() < 0.3))) for o in objs])
    if not moving:
        medium = short + " " + _pick(rng, BACKGROUND_TEMPLATES).format(bg=scene.background)
        detailed = _join([_article(_noun(o, rng, size=True)) for o in objs])
        detailed += " " + _pick(rng, BACKGROUND_TEMPLATES).format(bg=scene.background)
        if scene.occluder is not None:
            detailed += f", with a {scene.occluder.colour} bar standing in the scene"
        return {"short": short, "medium": medium, "detailed": detailed}

    events = [_object_events(scene, traj, visible, i, rng) for i in range(len(objs))]
    clauses = []
    for o, ev in zip(objs, events):
        clause = f"{_article(_noun(o, rng, size=False))} {_motion_phrase(o.motion, rng)}"
        if ev:
            clause += f" and {ev[0]}"
        clauses.append(clause)
    medium = _join(clauses) if len(clauses) < 3 else ", ".join(clauses[:-1]) + " while " + clauses[-1]

    sentences = []
    for o, ev in zip(objs, events):
        s = f"{_article(_noun(o, rng, size=True))} {_motion_phrase(o.motion, rng)}"
        if ev:
            s += ", then " + _join(ev) if len(ev) > 1 else f" and {ev[0]}"
        sentences.append(s[0].upper() + s[1:] + ".")
    world = "Under gravity" if scene.gravity else _pick(rng, ("In zero gravity", "Weightless", "With no gravity"))
    world += " " + _pick(rng, BACKGROUND_TEMPLATES).format(bg=scene.background)
    if scene.occluder is not None:
        world += f", a {scene.occluder.colour} bar stands in the scene"
    world += "; " + ("the camera is static" if scene.camera == "static" else f"the camera pans to the {scene.camera.split('-')[1]}")
    sentences.append(world + ".")
    return {"short": short, "medium": medium, "detailed": " ".join(sentences)}


# --- parsing ---------------------------------------------------------------------------------

STOPWORDS = frozenset(
    ["a", "an", "the", "and", "of", "to", "is", "are", "with", "on", "in", "at", "it", "its", "then", "while", "as", "from", "into", "onto", "by", "which", "that", "this", "there", "scene", "video", "clip", "shows", "showing", "one", "another", "also", "again", "back", "against", ",", "."]
)
_NUMBERS = {"one": 1, "two": 2, "three": 3, "1": 1, "2": 2, "3": 3}


def _lexicon() -> list[tuple[tuple[str, ...], tuple]]:
    """(words, action) pairs; longest match wins."""
    lex: list[tuple[str, tuple]] = []
    for c in vocab.COLOURS:
        lex.append((c, ("colour", c)))
    for shape, words in SHAPE_WORDS.items():
        for w in words:
            lex += [(w, ("shape", shape)), (w + ("es" if w.endswith("x") else "s"), ("shape", shape))]
    for size, words in SIZE_WORDS.items():
        for w in words:
            lex.append((w, ("size", size)))
    for bg in vocab.BACKGROUNDS:
        for tail in ("background", "backdrop"):
            lex.append((f"{bg} {tail}", ("background", bg)))
        lex.append((f"against {bg}", ("background", bg)))
    for oc in vocab.OCCLUDER_COLOURS:
        lex.append((f"{oc} bar", ("occluder",)))
    for w in ("bar", "pillar", "post", "occluder", "behind a bar", "behind the bar"):
        lex.append((w, ("occluder",)))
    for w in ("under gravity", "with gravity", "gravity"):
        lex.append((w, ("gravity", True)))
    for w in ("zero gravity", "no gravity", "without gravity", "weightless", "in space", "zero g"):
        lex.append((w, ("gravity", False)))
    for d in ("left", "right"):
        for w in (f"camera pans to the {d}", f"camera pans {d}", f"pans to the {d}", f"pans {d}",
                  f"panning {d}", f"panning to the {d}", f"camera moves {d}", f"camera moves to the {d}"):
            lex.append((w, ("camera", f"pan-{d}")))
    for w in ("camera is static", "static camera", "camera is still", "fixed camera", "camera does not move",
              "camera stays still", "camera"):
        lex.append((w, ("camera", "static") if w != "camera" else ("noop",)))
    verbs = MOVE_VERBS + ("moving", "drifting", "gliding", "travelling", "traveling", "floating", "goes", "going",
                          "flies", "flying", "rolls", "rolling", "slides", "sliding", "move", "moved", "heads", "heading")
    for motion, phrases in DIRECTION_PHRASES.items():
        extra = (motion, motion.replace("-", " "), motion.replace("-", " and "))
        if motion in ("right", "left"):
            extra += (f"{motion}ward", f"{motion}wards", f"towards the {motion}", f"toward the {motion}")
        if motion in ("up", "down"):
            extra += (f"{motion}wards",)
        for p in set(phrases + extra):
            lex.append((p, ("direction", motion)))
            for v in verbs:
                lex.append((f"{v} {p}", ("motion", motion)))
    for w in verbs:
        lex.append((w, ("moving",)))
    for w in STILL_PHRASES + ("still", "stationary", "motionless", "at rest", "is still", "stands still",
                              "sits still", "rests", "resting", "not moving", "static", "stays"):
        lex.append((w, ("motion", "still")))
    for w in FALL_PHRASES + ("falling", "dropping", "dropped", "fall", "drop", "falls to the floor", "is dropped"):
        lex.append((w, ("motion", "falls")))
    for d in ("left", "right"):
        for tpl in BOUNCE_PHRASES + ("bouncing to the {d}", "bounces {d}", "bouncing {d}", "bounce to the {d}"):
            lex.append((tpl.format(d=d), ("motion", f"bounces-{d}")))
    for w in ("bounces", "bouncing", "bounce"):
        lex.append((w, ("bounces",)))
    for wall, name in WALL_NAMES.items():
        bare = name.replace("the ", "")
        for v in ("bounces off", "bounces on", "bouncing off", "hits", "hitting", "bounce off", "reaches", "off"):
            lex.append((f"{v} {name}", ("hits", wall)))
            lex.append((f"{v} {bare}", ("hits", wall)))
        for times in ("twice", "several times"):
            lex.append((f"bounces on {name} {times}", ("hits", wall)))
    for v in HIT_VERBS + ("hitting", "colliding with", "bumping into", "collides", "crashes into", "knocks"):
        lex.append((v, ("reference",)))
    for w in ("comes to rest on the floor", "comes to rest", "comes to a stop", "leaves the frame", "enters the frame",
              "leaves the view", "starts behind", "passes behind", "disappears behind", "reappears", "emerges",
              "stands in the scene", "standing in the scene", "several times", "twice", "in front of"):
        lex.append((w, ("noop",)))
    return sorted(((tuple(w.split()), a) for w, a in lex), key=lambda x: -len(x[0]))


_LEXICON = _lexicon()
_MAX_PHRASE = max(len(w) for w, _ in _LEXICON)
_BY_LEN: dict[int, dict[tuple[str, ...], tuple]] = {}
for _words, _action in _LEXICON:
    _BY_LEN.setdefault(len(_words), {}).setdefault(_words, _action)


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("grey", "gray").replace("-", " ")
    return re.findall(r"[a-z0-9]+|[.,;]", text)


def parse_prompt(text: str) -> SceneSpec:
    """A prompt to a partial `SceneSpec`; never raises. Words it could not place are listed in
    `unknown_words`; changes it had to make to fit the world (too many objects, a repeated colour)
    are explained in `notes`."""
    if not isinstance(text, str):
        text = str(text)
    toks = _tokens(text[:10_000])
    objects: list[dict] = []
    cur: dict | None = None  # the object mention still taking adjectives and a noun
    group: list[dict] = []  # the objects of the latest mention ("two balls" is one mention)
    spec: dict = {"background": None, "gravity": None, "camera": None, "occluder": None}
    unknown: list[str] = []
    notes: list[str] = []
    pending_count = 0
    referencing = False  # after "hits": the next mention names an object already there
    i = 0
    while i < len(toks):
        for n in range(min(_MAX_PHRASE, len(toks) - i), 0, -1):
            action = _BY_LEN.get(n, {}).get(tuple(toks[i : i + n]))
            if action is not None:
                break
        else:
            tok = toks[i]
            if tok in _NUMBERS:
                pending_count = _NUMBERS[tok]
            elif tok in (",", ".", ";"):
                cur = None
            elif tok not in STOPWORDS:
                unknown.append(tok)
            i += 1
            continue
        i += n
        kind = action[0]
        if kind in ("colour", "shape", "size"):
            forward = False
            if referencing:  # "hits the blue square": skip it if it is already in the scene
                known = any(o.get(kind) == action[1] for o in objects)
                if kind == "shape" or not known:
                    referencing = False
                if known:
                    continue
                cur, forward = None, True  # named before it is described, or only here
            if kind == "size" and (cur is None or cur.get("colour") or cur.get("shape")):
                cur = {"size": action[1]}
                objects.append(cur)
            elif kind == "colour" and (cur is None or cur.get("colour") or cur.get("shape")):
                cur = {"colour": action[1]}
                objects.append(cur)
            elif kind == "shape" and (cur is None or cur.get("shape")):
                cur = {"shape": action[1]}
                objects.append(cur)
            else:
                cur[kind] = action[1]
            if forward:
                cur["_ref"] = True
            if kind == "shape" and pending_count > 1:  # "two balls": one mention, several objects
                extra = [{k: v for k, v in cur.items() if k != "colour"} for _ in range(pending_count - 1)]
                objects.extend(extra)
                group = [cur, *extra]
            elif cur is not None and (not group or group[0] is not cur):
                group = [cur]
            if kind == "shape":
                pending_count = 0
            continue
        targets = group if group else ([objects[-1]] if objects else [])
        if kind == "reference":
            referencing = True
            continue
        referencing = False
        if kind in ("motion", "direction", "hits") and not targets:
            targets = [{}]
            objects.append(targets[0])
            group = targets
        for target in targets:
            if kind in ("motion", "direction"):
                target.setdefault("motion", action[1])
            elif kind == "hits":
                target.setdefault("hits", action[1])
        if kind == "bounces" and spec["gravity"] is None:
            spec["gravity"] = True  # "a ball bounces": bouncing needs a floor to bounce on
        elif kind in ("background", "camera", "gravity"):
            spec[kind] = action[1]
        elif kind == "occluder":
            spec["occluder"] = True
        if kind != "noop":
            cur = None
    # an object named in passing ("hits the red ball") and described later is one object
    described = {o.get("colour") for o in objects if not o.get("_ref")}
    objects = [o for o in objects if not (o.get("_ref") and o.get("colour") in described)]
    for o in objects:
        o.pop("_ref", None)
    # fit the world: at most MAX_OBJECTS, distinct colours
    if len(objects) > vocab.MAX_OBJECTS:
        notes.append(f"asked for {len(objects)} objects; the world holds at most {vocab.MAX_OBJECTS}, kept the first")
        objects = objects[: vocab.MAX_OBJECTS]
    seen = set()
    for o in objects:
        if o.get("colour") in seen:
            notes.append(f"colour {o['colour']!r} repeated; objects need distinct colours, the repeat gets another")
            o.pop("colour")
        elif o.get("colour"):
            seen.add(o["colour"])
    if spec["gravity"] is False:
        for o in objects:
            if o.get("motion") in vocab.GRAVITY_MOTIONS:
                spec["gravity"] = True
                notes.append("a falling or bouncing object needs gravity; gravity kept")
                break
    return SceneSpec(
        objects=[ObjectSpec(**o) for o in objects],
        background=spec["background"],
        gravity=spec["gravity"],
        camera=spec["camera"],
        occluder=spec["occluder"],
        unknown_words=unknown,
        notes=notes,
    )


def expand_prompt(text: str, seed: int = 0, num_frames: int = 17, fps: float = 8.0, aspect: float = 1.0) -> str:
    """A short prompt in the detailed caption style: what it leaves open is drawn at random (seeded),
    then a scene that fits is simulated and captioned, so the expansion is something the world can
    show. What the prompt says (colours, shapes, sizes, motions, background, camera) is kept."""
    spec = parse_prompt(text)
    rng = np.random.default_rng(seed)
    times = np.arange(max(1, num_frames)) / fps
    scene = sample_scene(rng, duration=max(float(times[-1]), 1 / fps), aspect=aspect, spec=spec)
    traj = simulate(scene, times)
    visible = visible_fraction(scene, traj, 64, max(1, round(64 * aspect)))
    return caption_clip(scene, traj, visible, rng)["detailed"]
