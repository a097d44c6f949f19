"""Shots: cameras onto the continuous scene, and clips that cut between them (Sora's multi-shot
video, in miniature).

A camera is a view window onto the scene: a centre (x, y), a zoom and an orientation (mirror). The
scene's physics runs once for the whole clip; a cut only changes the camera, so the action never
pauses or jumps. Shot kinds:

| kind | camera |
| --- | --- |
| `wide` | the whole scene: today's view (centre on the pan, y = 0.5, zoom 1) |
| `close-up` | zoom `CLOSE_UP_ZOOM`, centred on one object and following it (beyond the box there is only background) |
| `reverse` | the wide view seen from the other side: mirrored left-right (the world is flat, so drawing order and the bar stay) |

Cuts fall on frames 1 + 4k: the VAE encodes frame 0 alone and then groups of `CUT_STRIDE` frames
(latent frame k >= 1 is frames 4k-3..4k), so a shot that starts on frame 1 + 4k starts a latent
frame and no latent frame holds two shots. A shot lasts at least `CUT_STRIDE` frames.

Pixel (column, row) of scene point (x, y) in a frame H x W with camera (cx, cy, zoom z, mirror m):
    column = W/2 + m * z * H * (x - cx),    row = H/2 - z * H * (y - cy)
which for the wide camera (cy = 0.5, z = 1, m = 1) is the single-shot rule of docs/world.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spacetime.world import vocab

SHOT_KINDS = ("wide", "close-up", "reverse")
CLOSE_UP_ZOOM = 2.0
CUT_STRIDE = 4  # the VAE's temporal factor
MAX_SHOTS = 3
MIN_VISIBLE = 0.99  # a close-up's object is whole in the wide view (not at the bar) on both sides of its cuts
# a reverse angle must move some object in the image by this much more than 4 frames of its motion
# (scene units; 16 px at 64 px high), so that the cut is one a viewer, and the tracker, can see
REVERSE_MIN_SHIFT = 16 / 64


@dataclass(frozen=True)
class ShotSpec:
    """A shot as a prompt asks for it: its kind, and for a close-up the object (colour and/or shape,
    None: any)."""

    kind: str
    colour: str | None = None
    shape: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SHOT_KINDS:
            raise ValueError(f"unknown shot kind {self.kind!r}; expected one of {SHOT_KINDS}")
        if self.colour is not None and self.colour not in vocab.COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; expected one of {sorted(vocab.COLOURS)}")
        if self.shape is not None and self.shape not in vocab.SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {vocab.SHAPES}")


@dataclass(frozen=True)
class Shot:
    """One shot of a clip: its kind, its first frame, and for a close-up the framed object's colour
    (a colour names one object in a scene)."""

    kind: str
    start: int
    target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SHOT_KINDS:
            raise ValueError(f"unknown shot kind {self.kind!r}; expected one of {SHOT_KINDS}")
        if (self.kind == "close-up") != (self.target is not None):
            raise ValueError(f"a close-up needs the colour of the object it frames, and only a close-up has one: {self}")


def check_shots(shots: list[Shot], num_frames: int, colours: list[str]) -> None:
    """Shots start at 0 and in increasing order inside the clip; close-ups frame objects of the scene."""
    starts = [s.start for s in shots]
    if not shots or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])) or starts[-1] >= num_frames:
        raise ValueError(f"shots must start at frame 0 and then at increasing frames below {num_frames}, got starts {starts}")
    for s in shots:
        if s.target is not None and s.target not in colours:
            raise ValueError(f"the close-up frames a {s.target} object, but the scene holds {colours}")


def cut_frames(num_frames: int) -> list[int]:
    """Frames a cut may fall on: 1 + 4k, leaving every shot at least CUT_STRIDE frames."""
    return list(range(1 + CUT_STRIDE, num_frames - CUT_STRIDE + 1, CUT_STRIDE))


def shot_index(shots: list[Shot], num_frames: int) -> np.ndarray:
    """(T,) the shot each frame belongs to."""
    return np.searchsorted([s.start for s in shots], np.arange(num_frames), side="right") - 1


def cameras(scene, traj, shots: list[Shot], height: int, width: int) -> np.ndarray:
    """(T, 4) per frame camera: centre x, centre y (scene units), zoom, mirror (+1 or -1)."""
    times = traj.times
    cams = np.stack([scene.camera_centre(times), np.full(times.size, 0.5), np.ones(times.size), np.ones(times.size)], -1)
    idx = shot_index(shots, times.size)
    colours = [o.colour for o in scene.objects]
    for k, s in enumerate(shots):
        on = idx == k
        if s.kind == "reverse":
            cams[on, 3] = -1.0
        elif s.kind == "close-up":
            # centred on the object throughout: a camera that stopped at the box's edge would make
            # the object's image speed jump (from 0 to twice its speed), which reads as a cut
            cams[on, :2] = traj.positions[on, colours.index(s.target)]
            cams[on, 2] = CLOSE_UP_ZOOM
    return cams


def transforms(cams: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, 2, 3) affine scene -> pixel maps: (column, row) = A @ (x, y, 1)."""
    cx, cy, z, m = cams.T
    s = z * height
    out = np.zeros((cams.shape[0], 2, 3))
    out[:, 0, 0] = m * s
    out[:, 0, 2] = width / 2 - m * s * cx
    out[:, 1, 1] = -s
    out[:, 1, 2] = height / 2 + s * cy
    return out


def scene_to_image(cams: np.ndarray, xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scene points (T, ..., 2) to pixels (column, row) through each frame's camera."""
    a = transforms(cams, height, width).reshape(cams.shape[0], *([1] * (xy.ndim - 2)), 2, 3)
    return a[..., 0] * xy[..., :1] + a[..., 1] * xy[..., 1:2] + a[..., 2]


# ---------------------------------------------------------------------------------------------
# Splits: close-ups of a few (colour, shape) pairs never appear in train; every held-out
# multi-shot clip has one. The objects themselves do appear in train, just never in a close-up.

def _heldout_close_ups() -> frozenset[tuple[str, str]]:
    rng = np.random.default_rng(20261126)  # fixed forever: changing it changes the benchmark
    pairs = list(itertools.product(vocab.COLOURS, vocab.SHAPES))
    chosen: list[tuple[str, str]] = []
    for k in rng.permutation(len(pairs)):
        c, s = pairs[int(k)]
        if all(c != a and s != b for a, b in chosen):  # distinct colours and shapes
            chosen.append((c, s))
        if len(chosen) == 3:
            break
    return frozenset(chosen)


HELDOUT_CLOSE_UPS: frozenset[tuple[str, str]] = _heldout_close_ups()


def sample_shots(
    rng: np.random.Generator,
    scene,
    traj,
    visible: np.ndarray,
    *,
    fps: float,
    split: str = "train",
    asked: list[ShotSpec] | None = None,
    strict: bool = False,
) -> list[Shot] | None:
    """Shots for a simulated clip (`visible`: (T, N) in the wide view): the `asked` kinds in order,
    else 2 or 3 shots opening on the wide view. Every cut is one the video shows: a close-up's
    object is in the wide view on both sides of its cuts, a reverse angle moves some object in the
    image clearly. Train never frames a held-out (colour, shape) pair unless asked; a held-out
    clip frames one when it can. When no draw shows every cut: None if `strict`, else the first draw."""
    n_frames = visible.shape[0]
    cuts_ok = cut_frames(n_frames)
    n = len(asked) if asked else int(rng.choice([2, 3], p=[0.6, 0.4])) if len(cuts_ok) >= 2 else 2
    if len(cuts_ok) < n - 1:
        need = 1 + CUT_STRIDE * n
        raise ValueError(f"{n} shots need at least {need} frames (cuts fall on frames 1+4k, a shot lasts >= {CUT_STRIDE}), got {n_frames}")
    objs = scene.objects
    for spec in asked or []:  # a close-up of an object the scene does not hold is never redirected
        problem = close_up_conflict(spec, [(o.colour, o.shape) for o in objs], concrete=True)
        if problem:
            if strict:
                return None  # the caller draws the scene anew
            raise ValueError(problem)
    held = [i for i, o in enumerate(objs) if (o.colour, o.shape) in HELDOUT_CLOSE_UPS]
    best: list[Shot] | None = None
    for attempt in range(200):
        cuts = sorted(int(c) for c in rng.choice(cuts_ok, n - 1, replace=False))
        starts = [0, *cuts]
        kinds = [s.kind for s in asked] if asked else _random_kinds(rng, n, want_close_up=split == "heldout" and bool(held))
        shots, ok = [], True
        for k, (kind, start) in enumerate(zip(kinds, starts)):
            end = starts[k + 1] if k + 1 < n else n_frames
            target = None
            if kind == "close-up":
                spec = asked[k] if asked else ShotSpec("close-up")
                cands = [i for i, o in enumerate(objs)
                         if (spec.colour in (None, o.colour)) and (spec.shape in (None, o.shape))
                         and _shown(visible, i, start, end)]
                if not asked or (spec.colour is None and spec.shape is None):
                    pairs_ok = held if split == "heldout" else [i for i in range(len(objs)) if i not in held]
                    cands = [i for i in cands if i in pairs_ok] or ([] if split == "train" else cands)
                if not cands:  # no draw of cuts shows it: the asked object all the same
                    ok, cands = False, [i for i, o in enumerate(objs)
                                        if spec.colour in (None, o.colour) and spec.shape in (None, o.shape)] or [0]
                target = objs[int(rng.choice(cands))].colour
            elif kind == "reverse" and start > 0:
                ok &= _reverse_visible(scene, traj, visible, start, fps)
            shots.append(Shot(kind, start, target))
        best = shots if best is None or ok else best
        if ok:
            return shots
    return None if strict else best


def _random_kinds(rng: np.random.Generator, n: int, want_close_up: bool) -> list[str]:
    """The wide view first; then no kind twice in a row and no close-up after a close-up (one side of
    every cut shows the whole scene, where continuity can be measured)."""
    while True:
        kinds = ["wide"]
        for _ in range(n - 1):
            kinds.append(str(rng.choice([k for k in SHOT_KINDS if k != kinds[-1]])))
        if not want_close_up or "close-up" in kinds:
            return kinds


def _shown(visible: np.ndarray, i: int, start: int, end: int) -> bool:
    """Object i is well in the wide view at the frames next to the shot's cuts."""
    frames = [f for f in (start - 1, start) if f >= 0] + ([end - 1, end] if end < visible.shape[0] else [])
    return bool(visible[frames, i].min() >= MIN_VISIBLE)


def _reverse_visible(scene, traj, visible: np.ndarray, cut: int, fps: float) -> bool:
    """Does mirroring at `cut` move some object, fully in view and clear of the others, by clearly
    more than its image motion (pan included) in the frames around the cut?"""
    centre = scene.camera_centre(traj.times[cut])
    pan = {"static": 0.0, "pan-left": -1.0, "pan-right": 1.0}[scene.camera] * scene.camera_speed
    near = slice(max(cut - 2, 0), cut + 2)
    for i, o in enumerate(scene.objects):
        v = traj.velocities[near, i] - np.array([pan, 0.0])
        step = float(np.hypot(v[:, 0], v[:, 1]).max()) / fps
        shift = 2 * abs(traj.positions[cut, i, 0] - centre)
        gaps = [np.linalg.norm(traj.positions[cut - 1 : cut + 1, i] - traj.positions[cut - 1 : cut + 1, j], axis=-1).min()
                - o.radius - scene.objects[j].radius for j in range(len(scene.objects)) if j != i]
        apart = min(gaps, default=1.0) > 0.05
        if visible[cut - 1 : cut + 1, i].min() >= MIN_VISIBLE and apart and shift >= 2.5 * step + vocab.GRAVITY / fps**2 + REVERSE_MIN_SHIFT:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Words: the shot phrases captions use, and parsing them back.

CLOSE_UP_PHRASES = ("cut to a close-up of the {obj}", "then cut to a close-up of the {obj}")
WIDE_PHRASES = ("cut back to the wide shot", "cut to a wide shot", "cut back to the wide view")
REVERSE_PHRASES = ("cut to the reverse angle", "cut to a reverse angle", "cut to the reverse shot")
KNOWN = "'cut to a close-up of the <object>', 'cut to a wide shot', 'cut back to the wide shot', 'cut to the reverse angle'"
_FILLER = frozenset("back to a an the of on in shot view angle camera".split())
UNREAD = "\x00shot"  # stands in the token list where a shot phrase was not understood


def shot_phrases(scene, shots: list[Shot], rng: np.random.Generator, shape_words: dict) -> list[str]:
    """One phrase per cut, in order ("cut to a close-up of the red ball", ...)."""
    out = []
    for s in shots[1:]:
        if s.kind == "close-up":
            o = next(o for o in scene.objects if o.colour == s.target)
            words = shape_words[o.shape]
            out.append(CLOSE_UP_PHRASES[0].format(obj=f"{o.colour} {words[int(rng.integers(len(words)))]}"))
        else:
            options = WIDE_PHRASES if s.kind == "wide" else REVERSE_PHRASES
            out.append(options[int(rng.integers(len(options)))])
    return out


def add_shots_to_captions(captions: dict[str, str], phrases: list[str]) -> dict[str, str]:
    """The scene's captions with the cuts told after them, in order, at every length."""
    tail = ", then ".join(phrases)
    return {
        "short": f"{captions['short']}, then {tail}",
        "medium": f"{captions['medium']}, then {tail}",
        "detailed": f"{captions['detailed']} Then {tail}.",
    }


def close_up_phrase(shot: ShotSpec) -> str:
    """The caption phrase of a close-up as a prompt asked for it: "cut to a close-up of the red ball"."""
    return CLOSE_UP_PHRASES[0].format(obj=" ".join(w for w in (shot.colour, shot.shape or "object") if w))


def close_up_conflict(shot: ShotSpec, objects: list[tuple[str | None, str | None]], concrete: bool = False) -> str | None:
    """Why a close-up of `shot`'s object cannot be filmed in a scene of `objects` ((colour, shape)
    pairs, None: still open; `concrete`: a drawn scene, where nothing is open), or None if it can.
    Colours are unique in a scene, so a colour names one object; an empty list leaves the scene open."""
    if shot.kind != "close-up" or (shot.colour is None and shot.shape is None) or not objects:
        return None
    colours = [c for c, _ in objects if c is not None]

    def fits(colour, shape) -> bool:  # this object is, or may still be drawn as, the close-up's
        colour_ok = shot.colour in (None, colour) or (colour is None and shot.colour not in colours)
        shape_ok = shot.shape in (None, shape) or shape is None
        return colour_ok and shape_ok

    if any(fits(c, s) for c, s in objects):
        return None
    held = ", ".join("a " + " ".join(w for w in (c, s or "object") if w) for c, s in objects)
    why = (f"the {shot.colour} object is a {next(s for c, s in objects if c == shot.colour)} (a colour names one object)"
           if shot.colour in colours else
           f"the scene holds {held}" + ("" if concrete else f" (at most {vocab.MAX_OBJECTS} objects)"
                                        if len(objects) >= vocab.MAX_OBJECTS else " (a spec's objects are all the scene holds)"))
    return f"the shot {close_up_phrase(shot)!r} cannot be filmed: {why}"


def split_shot_phrases(
    tokens: list[str], word: Callable[[str], tuple | None]
) -> tuple[list[str], list[ShotSpec], str | None, list[list[str]]]:
    """Take the shot phrases out of a token list: each runs from "cut" (or "cuts") to the next separator.
    Returns (the other tokens, with `UNREAD` where a phrase was not understood; the shots after the
    first; an error naming the first phrase not understood; the phrases not understood, as token
    lists — they say nothing about the scene).
    `word(token)` gives ("colour" | "shape" | "size", value) for an object word."""
    rest: list[str] = []
    shots: list[ShotSpec] = []
    unread: list[list[str]] = []
    error = None
    i = 0
    while i < len(tokens):
        if tokens[i] not in ("cut", "cuts"):  # "then cut to ...", "then cuts to ..."
            rest.append(tokens[i])
            i += 1
            continue
        j = i + 1
        while j < len(tokens) and tokens[j] not in (",", ".", ";", ":", "!", "?", "then", "and", "while", "but"):
            j += 1
        phrase = tokens[i:j]
        shot = _read_shot(phrase, word)
        if shot is None:  # its words are not read as scene words ("close up" is no motion up)
            said = " ".join(phrase)
            said = said if len(said) <= 80 else said[:77] + "..."  # the error names the phrase, not a page of it
            error = error or f"could not understand the shot phrase {said!r}; the world knows {KNOWN}"
            rest.append(UNREAD)
            unread.append(phrase)
        else:
            shots.append(shot)
        i = j
    return rest, shots, error, unread


def _read_shot(phrase: list[str], word) -> ShotSpec | None:
    words = [t for t in phrase[1:] if t not in _FILLER]
    back = "back" in phrase
    if words[:2] == ["close", "up"] or words[:1] == ["closeup"]:
        attrs: dict[str, str] = {}
        for t in words[2 if words[0] == "close" else 1 :]:
            w = word(t)
            if w is None or w[0] not in ("colour", "shape", "size"):
                return None
            if w[0] != "size":
                attrs[w[0]] = w[1]
        return ShotSpec("close-up", attrs.get("colour"), attrs.get("shape"))
    if words in (["wide"], ["full"], ["establishing"]) or (back and not words):
        return ShotSpec("wide")
    if words in (["reverse"], ["other", "side"], ["opposite", "side"]):
        return ShotSpec("reverse")
    return None


def fit_shots(shots: list[ShotSpec], notes: list[str]) -> list[ShotSpec]:
    """The prompt's shots, fitted to the world (notes say what changed): the wide view opens, no kind
    twice in a row, at most MAX_SHOTS."""
    if not shots:
        return []
    out = [ShotSpec("wide")]
    for s in shots:
        if s == out[-1] or (s.kind == "wide" and out[-1].kind == "wide"):
            notes.append(f"a cut to the {s.kind} shot right after the same shot shows nothing; dropped")
            continue
        out.append(s)
    if len(out) > MAX_SHOTS:
        notes.append(f"{len(out)} shots asked; the world cuts at most {MAX_SHOTS - 1} times, kept the first {MAX_SHOTS}")
        out = out[:MAX_SHOTS]
    return out if len(out) > 1 else []
