"""Captions agree with the ground truth; parse_prompt reads them back; expand_prompt keeps the user's words."""

import re
from collections import Counter

import numpy as np
import pytest

from spacetime.world import captions as C
from spacetime.world import vocab
from spacetime.world.clip import make_clip, stream_seed
from spacetime.world.prompts import complete_prompt, expand_prompt, parse_prompt
from spacetime.world.scene import Occluder, Scene, WorldObject

SIZES = [(32, 32), (32, 48), (48, 32), (32, 64)]  # (height, width): scenes depend on the aspect only
FRAMES = [17, 17, 33, 9, 2]


def _clips(n):
    for k in range(n):
        split = "heldout" if k % 4 == 3 else "train"
        h, w = SIZES[k % len(SIZES)]
        yield make_clip(stream_seed(11, k, split), split=split, num_frames=FRAMES[k % len(FRAMES)], height=h, width=w)


CLIPS = list(_clips(320))
DIR_OF = {p: d for d, ps in C.DIRECTION_PHRASES.items() for p in ps}  # "rightward" -> "right"


def shown(clip) -> list[int]:
    """The objects a caption names: those in view at some frame."""
    return [i for i in range(len(clip.scene.objects)) if clip.visible[:, i].max() >= C.OUT]


def mine(clip, i):
    """Object i's events within the clip (after the first instant: see motion_in_clip)."""
    return [e for e in clip.trajectory.events if 1e-9 < e.t <= clip.trajectory.times[-1] and C._touches(e, i)]


def motions(clip):
    return [C.motion_in_clip(clip.scene, clip.trajectory, i) for i in shown(clip)]


def test_the_sample_covers_the_world():
    scenes = [c.scene for c in CLIPS]
    assert {s.gravity for s in scenes} == {True, False}
    assert {s.camera for s in scenes} == set(vocab.CAMERAS)
    assert {len(s.objects) for s in scenes} == {1, 2, 3}
    assert sum(s.occluder is not None for s in scenes) > 40
    assert {c.split for c in CLIPS} == {"train", "heldout"}
    assert {o.motion for s in scenes for o in s.objects} == set(vocab.MOTIONS)


def test_detailed_caption_parses_back_to_the_scene():
    for clip in CLIPS:
        text = clip.captions["detailed"]
        spec = parse_prompt(text)
        assert not spec.unknown_words and not spec.notes, (text, spec.unknown_words, spec.notes)
        objs = [clip.scene.objects[i] for i in shown(clip)]
        got = [(o.colour, o.shape, o.size, o.motion) for o in spec.objects]
        assert got == [(o.colour, o.shape, o.size, m) for o, m in zip(objs, motions(clip))], text
        assert spec.background == clip.scene.background, text
        assert spec.camera == clip.scene.camera, text
        assert bool(spec.occluder) == (clip.scene.occluder is not None), text
        assert spec.gravity == clip.scene.gravity, text


@pytest.mark.parametrize("length", ["short", "medium"])
def test_short_and_medium_name_every_object(length):
    for clip in CLIPS:
        text = clip.captions[length]
        spec = parse_prompt(text)
        assert not spec.unknown_words, (text, spec.unknown_words)
        objs = [clip.scene.objects[i] for i in shown(clip)]
        assert [(o.colour, o.shape) for o in spec.objects] == [(o.colour, o.shape) for o in objs], text
        assert all(got.size in (None, o.size) for got, o in zip(spec.objects, objs)), text
        if length == "medium":
            assert [o.motion for o in spec.objects] == motions(clip), text
        else:
            assert all(o.motion is None for o in spec.objects) and spec.camera is None and spec.gravity is None


def _direction_of(v, gravity):
    if gravity:
        return "right" if v[0] > 0 else "left"
    return max(vocab.DIRECTIONS, key=lambda d: v @ np.asarray(vocab.DIRECTIONS[d]))


def _after(clip, i, e):
    k = int(np.searchsorted(clip.trajectory.times, e.t, side="right"))
    return clip.trajectory.velocities[min(k, len(clip.trajectory.times) - 1), i]


def _seen(clip, i, e):
    """The video shows event e: object i is in view at a frame next to it."""
    k = int(np.searchsorted(clip.trajectory.times, e.t, side="right"))
    return clip.visible[max(k - 1, 0) : k + 1, i].max() >= C.SEEN


def _check_sentence(clip, i, sentence, claims):
    """Every claim of object i's sentence against the simulator's events and visibility."""
    ev, vis, obj = mine(clip, i), clip.visible[:, i], clip.scene.objects[i]
    rest_t = {e.t for e in ev if e.kind == "rest"}
    floor = [e for e in ev if e.kind == "wall" and e.other == "floor" and e.t not in rest_t]
    colours = [o.colour for o in clip.scene.objects]
    for wall in re.findall(r"bounces off the (left wall|right wall|ceiling)", sentence):
        assert any(e.kind == "wall" and e.other == wall.split()[0] and _seen(clip, i, e) for e in ev), sentence
        claims["wall"] += 1
    if m := re.search(r"bounces on the floor( twice| several times)?", sentence):
        assert len([e for e in floor if _seen(clip, i, e)]) >= {None: 1, " twice": 2, " several times": 3}[m.group(1)], sentence
        claims["floor"] += 1
    dirs = "|".join(sorted(DIR_OF, key=len, reverse=True))
    hit = (rf"(?:hits|collides with|bumps into) the (\w+) (\w+)(?:(?:, | and )(?:heads|moves off) ({dirs})\b|(?:, | and )(stops|comes to a stop))?"
           rf"|until the (\w+) (\w+) (?:hits it|collides with it|bumps into it|knocks it ({dirs})\b)")
    for m in re.finditer(hit, sentence):
        colour, shape, heading, stop = m.group(1, 2, 3, 4) if m.group(1) else (*m.group(5, 6, 7), None)
        j = colours.index(colour)
        assert clip.scene.objects[j].shape == shape, sentence
        hits = [e for e in ev if e.kind == "collision" and {e.object, e.other} == {i, j}]
        assert hits and (m.group(5) or any(_seen(clip, i, e) for e in hits)), sentence
        claims["collision"] += 1
        if heading:  # where it went right after that collision
            assert any(_direction_of(_after(clip, i, e), clip.scene.gravity) == DIR_OF[heading] for e in hits), sentence
            claims["heading"] += 1
        if stop:
            assert any(np.hypot(*_after(clip, i, e)) < 0.02 for e in hits), sentence
            claims["stop"] += 1
    if any(p in sentence for p in C.REST_PHRASES):
        assert any(e.kind == "rest" and _seen(clip, i, e) for e in ev), sentence
        claims["rest"] += 1
    if any(p in sentence for p in C.STILL_PHRASES + C.RESTING_PHRASES):
        first = next((e.t for e in ev if e.kind == "collision"), np.inf)
        assert np.all(clip.trajectory.velocities[clip.trajectory.times <= first, i] == 0), sentence
        assert (" until " in sentence) == (first < np.inf), sentence
        claims["still"] += 1
    if re.search(r"is (?:thrown|tossed)", sentence):
        assert not floor and obj.motion.startswith("bounces-"), sentence
        claims["thrown"] += 1
    if re.search(r"(?:bounces|bounces along|hops) to the", sentence):
        assert floor, sentence
    hidden = vis < C.HIDDEN
    if "passes behind" in sentence:  # hidden, then seen again
        assert any(0 < a and b < len(vis) for a, b in C._runs(hidden)), sentence
        claims["passes"] += 1
    if "disappears behind" in sentence:
        assert hidden[-1] and not hidden.all(), sentence
        claims["disappears"] += 1
    if "starts behind" in sentence:
        assert hidden[0] and not hidden.all() and "comes out" in sentence, sentence
        claims["starts"] += 1
    if "stays behind" in sentence:
        assert hidden.all(), sentence
    away = vis < C.OUT
    if "leaves the frame and comes back" in sentence:
        assert any(0 < a and b < len(vis) for a, b in C._runs(away)), sentence
        claims["returns"] += 1
    elif "leaves the frame" in sentence:
        assert away[-1] and not away.all(), sentence
        claims["leaves"] += 1
    if "enters the frame" in sentence:
        assert away[0] and not away.all(), sentence
        claims["enters"] += 1


def test_claimed_events_happened():
    claims = Counter()
    for clip in CLIPS:
        if clip.num_frames == 1:
            continue
        sentences = clip.captions["detailed"].split(". ")
        for i, sentence in zip(shown(clip), sentences):
            _check_sentence(clip, i, sentence, claims)
        # medium: the same claims, one clause per object
        clauses = re.split(r"(?:, | while | and )(?=an? )", clip.captions["medium"])
        for i, clause in zip(shown(clip), clauses):
            _check_sentence(clip, i, clause, Counter())
    for kind in ("wall", "floor", "collision", "heading", "rest", "thrown", "passes", "disappears", "leaves", "enters"):
        assert claims[kind] >= 3, (kind, dict(claims))
    assert sum(claims.values()) > 500


def test_medium_motion_agrees_with_velocity():
    checked = 0
    for clip in CLIPS:
        spec = parse_prompt(clip.captions["medium"])
        for got, i in zip(spec.objects, shown(clip)):
            v = clip.trajectory.velocities[:, i]
            quiet = not mine(clip, i)  # no event: the whole clip moves the stated way
            if got.motion in vocab.DIRECTIONS:
                d = np.sign(vocab.DIRECTIONS[got.motion])
                assert (np.sign(v[0]) == d).all(), clip.captions["medium"]
                if quiet:
                    assert (np.sign(v.mean(0)) == d).all(), clip.captions["medium"]
                    checked += 1
            elif got.motion == "falls":
                assert v[0, 0] == 0 and (len(v) == 1 or v[1, 1] < 0)
                if quiet:
                    assert v.mean(0)[1] < 0
            elif got.motion.startswith("bounces-"):
                side = 1 if got.motion.endswith("right") else -1
                assert np.sign(v[0, 0]) == side
                if quiet and len(v) > 1:
                    assert np.sign(v.mean(0)[0]) == side
                    checked += 1
            else:
                assert got.motion == "still" and (v[0] == 0).all()
    assert checked > 100


def test_captions_deterministic_and_varied():
    a = make_clip(42).captions
    assert a == make_clip(42).captions
    assert a != make_clip(43).captions
    wordings = {make_clip(s, height=32, width=32).captions["medium"].split(" ", 3)[-1] for s in range(60)}
    assert len(wordings) > 40


def test_every_caption_phrase_is_used():
    text = " ".join(" ".join(c.captions.values()) for c in CLIPS).lower()
    always = [
        *(w for ws in C.SHAPE_WORDS.values() for w in ws), *(w for ws in C.SIZE_WORDS.values() for w in ws),
        *C.MOVE_VERBS, *(p for ps in C.DIRECTION_PHRASES.values() for p in ps), *C.STILL_PHRASES, *C.FALL_PHRASES,
        *(p.format(d=d) for p in C.BOUNCE_PHRASES + C.THROW_PHRASES for d in ("left", "right")), *C.HIT_VERBS,
        *C.GRAVITY_ON, *C.GRAVITY_OFF, *(s for ss in C.GRAVITY_SENTENCES.values() for s in ss), *C.STATIC_CAMERA,
        *(p.format(d=d) for p in C.PAN_CAMERA for d in ("left", "right")), *C.WALL_PHRASES.values(), *C.REST_PHRASES,
        *(p.format(bg=bg) for p in C.BACKGROUND_TEMPLATES for bg in vocab.BACKGROUNDS),
        *(p.format(c=c) for p in C.OCCLUDER_PHRASES for c in vocab.OCCLUDER_COLOURS), "there is",
        *(p.format(bar="dark gray bar") for p in C.BAR_PHRASES.values() if "stays" not in p), *C.VIEW_PHRASES.values(),
        *(C.FLOOR_PHRASE + t for t in C.FLOOR_TIMES),
    ]
    missing = [p for p in always if p not in text]
    assert not missing, missing


MEANINGS = [  # (caption phrase after "a red ball", the ObjectSpec fields it must give)
    *((f"{v} {p}", {"motion": d}) for d, ps in C.DIRECTION_PHRASES.items() for p in ps for v in C.MOVE_VERBS),
    *((p, {"motion": "still"}) for p in C.STILL_PHRASES + C.RESTING_PHRASES),
    *((p, {"motion": "falls"}) for p in C.FALL_PHRASES),
    *((p.format(d=d), {"motion": f"bounces-{d}"}) for p in C.BOUNCE_PHRASES + C.THROW_PHRASES for d in ("left", "right")),
    *((f"moves up and {p}", {"motion": "up", "hits": w}) for w, p in C.WALL_PHRASES.items()),
    *((f"falls and {C.FLOOR_PHRASE}{t}", {"motion": "falls", "hits": "floor"}) for t in C.FLOOR_TIMES),
]


@pytest.mark.parametrize("phrase,want", MEANINGS)
def test_every_caption_phrase_is_understood(phrase, want):
    (o,) = parse_prompt(f"a big red ball {phrase}").objects
    assert (o.colour, o.shape, o.size) == ("red", "ball", "large")
    assert {k: getattr(o, k) for k in want} == want, phrase


def test_scene_phrases_are_understood():
    for bg in vocab.BACKGROUNDS:
        for p in C.BACKGROUND_TEMPLATES + (C.BACKGROUND_SENTENCE,):
            assert parse_prompt("a ball " + p.format(bg=bg)).background == bg
    for g, phrases in ((True, C.GRAVITY_ON + C.GRAVITY_SENTENCES[True]), (False, C.GRAVITY_OFF + C.GRAVITY_SENTENCES[False])):
        for p in phrases:
            assert parse_prompt(p).gravity is g, p
    for p in C.STATIC_CAMERA:
        assert parse_prompt(p).camera == "static"
    for d in ("left", "right"):
        for p in C.PAN_CAMERA:
            assert parse_prompt(p.format(d=d)).camera == f"pan-{d}"
    for c in vocab.OCCLUDER_COLOURS:
        for p in C.OCCLUDER_PHRASES + tuple(C.BAR_PHRASES.values()) + (C.HIDDEN_IN_IMAGE,):
            spec = parse_prompt(p.format(c=c, bar=f"{c} bar"))
            assert spec.occluder is True and not spec.unknown_words and not spec.objects, p
    for p in (*C.VIEW_PHRASES.values(), *C.REST_PHRASES, *C.STOP_PHRASES, *C.HIT_IT, C.EMPTY.format(bg="white")):
        assert not parse_prompt(p).unknown_words, p


def test_image_captions_make_no_motion_claims():
    hidden = 0
    for s in range(40):
        clip = make_clip(s, num_frames=1, height=32, width=32 + 16 * (s % 3), spec=parse_prompt("behind a bar") if s % 2 else None)
        for text in clip.captions.values():
            spec = parse_prompt(text)
            assert not spec.unknown_words, text
            assert all(o.motion is None and o.hits is None for o in spec.objects), text
            assert spec.camera is None and spec.gravity is None, text
        for i, part in zip(shown(clip), clip.captions["detailed"].split(", ")):
            if "hidden behind" in part:
                assert clip.visible[0, i] < C.HIDDEN
                hidden += 1
    assert hidden > 0


def _scene(objects, gravity=False, **kw):
    return Scene("black", [WorldObject(*o) for o in objects], gravity, kw.pop("box_width", 1.0), **kw)


def test_a_still_object_is_still_only_until_hit():
    # equal masses head on: the mover stops, the still one leaves at the mover's speed
    scene = _scene([("red", "ball", "small", "still", (0.3, 0.5), (0.0, 0.0)), ("blue", "ball", "small", "left", (0.7, 0.5), (-0.4, 0.0))])
    clip = make_clip(0, scene=scene)
    red, blue = clip.captions["detailed"].split(". ")[:2]
    assert re.search(r"until the blue ball knocks it (to the left|leftward)", red), red
    assert re.search(r"(hits|collides with|bumps into) the red ball(,| and) (stops|comes to a stop)", blue), blue
    spec = parse_prompt(clip.captions["detailed"])
    assert [o.motion for o in spec.objects] == ["still", "left"] and not spec.unknown_words
    for i, s in enumerate((red, blue)):
        _check_sentence(clip, i, s, Counter())
    # under gravity a still object rests on the floor
    scene = _scene([("green", "square", "large", "still", (0.5, 0.12), (0.0, 0.0))], gravity=True)
    assert any(p in make_clip(0, scene=scene).captions["detailed"] for p in C.RESTING_PHRASES)


def test_a_throw_that_has_not_landed_is_not_a_bounce():
    for s in range(20):
        clip = make_clip(s, num_frames=2, spec=parse_prompt("a red ball bounces to the right"))
        medium = clip.captions["medium"]
        assert re.search(r"is (thrown|tossed) to the right", medium) and not re.search(r"bounces (to|along)|hops", medium), medium
        assert parse_prompt(clip.captions["medium"]).objects[0].motion == "bounces-right"


def test_objects_never_in_view_are_not_named():
    # a pan over a wide box: the cyan square at the far end never comes into view
    scene = _scene(
        [("red", "ball", "small", "right", (0.2, 0.5), (0.3, 0.0)), ("cyan", "square", "small", "still", (2.8, 0.5), (0.0, 0.0))],
        box_width=3.0, camera="pan-right", camera_speed=0.2, camera_x0=0.5, occluder=Occluder(0.8, 0.12, "light gray"),
    )
    clip = make_clip(0, scene=scene)
    assert clip.visible[:, 1].max() == 0
    for text in clip.captions.values():
        assert "cyan" not in text and "red" in text
        assert [o.colour for o in parse_prompt(text).objects] == ["red"]


def test_parse_user_phrasings():
    spec = parse_prompt("a red ball bounces off the left wall")
    (o,) = spec.objects
    assert (o.colour, o.shape, o.hits) == ("red", "ball", "left") and not spec.unknown_words
    spec = parse_prompt("Two big balls falling on a white background, the camera pans right")
    assert [(o.shape, o.size, o.motion) for o in spec.objects] == [("ball", "large", "falls")] * 2
    assert (spec.background, spec.camera) == ("white", "pan-right")
    spec = parse_prompt("a tiny cyan triangle moving up-left in zero gravity behind a bar")
    (o,) = spec.objects
    assert (o.colour, o.size, o.shape, o.motion) == ("cyan", "small", "triangle", "up-left")
    assert spec.gravity is False and spec.occluder is True
    spec = parse_prompt("a red ball moves to the left and hits a blue square")
    assert [(o.colour, o.shape) for o in spec.objects] == [("red", "ball"), ("blue", "square")]
    assert spec.objects[0].motion == "left" and spec.objects[1].motion is None
    spec = parse_prompt("a little green box floating to the right, while a magenta circle is falling")
    assert [(o.colour, o.size, o.shape, o.motion) for o in spec.objects] == [
        ("green", "small", "square", "right"), ("magenta", None, "ball", "falls")]
    assert spec.gravity is True and spec.notes  # "falling" wins over "floating": gravity is one law
    assert parse_prompt("a ball floating up").gravity is False
    assert parse_prompt("a bouncing ball").gravity is True
    assert parse_prompt("a ball on a grey backdrop, static camera").background == "gray"
    assert parse_prompt("camera panning to the left").camera == "pan-left"
    spec = parse_prompt("a red ball hits a big blue square which falls")
    assert [(o.colour, o.size, o.motion) for o in spec.objects] == [("red", None, None), ("blue", "large", "falls")]
    assert [o.motion for o in parse_prompt("a yellow ball moving left; a red square moving right").objects] == ["left", "right"]
    assert parse_prompt("3 triangles").objects == parse_prompt("three triangles").objects
    assert len(parse_prompt("three triangles").objects) == 3


def test_parse_names_unknown_words_and_never_raises():
    spec = parse_prompt("a brown dragon breathes fire on a red ball")
    assert spec.unknown_words == ["brown", "dragon", "breathes", "fire"]
    assert [(o.colour, o.shape) for o in spec.objects] == [("red", "ball")]
    assert parse_prompt("un café rouge ☃").unknown_words == ["un", "café", "rouge", "☃"]
    assert parse_prompt("a red ball 🎈 falls").unknown_words == ["🎈"]  # a pictograph names something
    assert parse_prompt("a red ball + a blue one = two").unknown_words == []  # other marks are not words
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz ,.-;'\"!?0123456789éß☃\n\t") + ["red ", "ball ", "and ", "hits ", "two "]
    for _ in range(300):
        spec = parse_prompt("".join(rng.choice(alphabet, size=int(rng.integers(0, 200)))))
        assert len(spec.objects) <= vocab.MAX_OBJECTS
    for junk in ["", "   ", "red " * 50, "ball ball ball ball", "two three balls", "ten red balls", "which which hits until",
                 "falls", None, 123, b"bytes", "\x00\x01", "a" * 100_000, "red ball " * 20_000]:
        spec = parse_prompt(junk)
        colours = [o.colour for o in spec.objects if o.colour]
        assert len(spec.objects) <= vocab.MAX_OBJECTS and len(colours) == len(set(colours))
    assert parse_prompt("x" * 20_000).notes  # the cut is said


def test_parse_fits_the_world_and_says_why():
    spec = parse_prompt("a red ball, a red square, a blue ball and a green ball")
    assert len(spec.objects) == 3 and len(spec.notes) == 2
    assert [o.colour for o in spec.objects] == ["red", None, "blue"]
    spec = parse_prompt("two red balls")
    assert [o.colour for o in spec.objects] == ["red", None] and spec.notes
    spec = parse_prompt("five balls")
    assert len(spec.objects) == 3 and spec.notes


def test_expand_prompt_keeps_user_attributes_and_fills_the_rest():
    for seed in range(5):
        text = expand_prompt("a big red ball falls on a white background", seed=seed)
        spec = parse_prompt(text)
        assert not spec.unknown_words, text
        red = [o for o in spec.objects if o.colour == "red"]
        assert len(red) == 1 and (red[0].shape, red[0].size, red[0].motion) == ("ball", "large", "falls"), text
        assert spec.background == "white" and spec.camera is not None and spec.gravity is True
    for seed in range(5):
        text = expand_prompt("a green triangle and a small yellow square drifting up, the camera pans left, behind a bar", seed=seed)
        spec = parse_prompt(text)
        assert [(o.colour, o.shape) for o in spec.objects] == [("green", "triangle"), ("yellow", "square")], text
        assert spec.objects[1].size == "small" and spec.objects[1].motion == "up" and spec.objects[0].motion is not None
        assert spec.camera == "pan-left" and spec.occluder and spec.gravity is False and spec.background
    text = expand_prompt("a red ball bounces off the left wall", seed=0, num_frames=33)
    assert "left wall" in text and parse_prompt(text).objects[0].colour == "red", text
    assert expand_prompt("a cyan square", seed=1) == expand_prompt("a cyan square", seed=1)
    spec = parse_prompt(expand_prompt("a cyan square", seed=1))
    assert spec.objects[0].size is not None and spec.objects[0].motion is not None and spec.background
    assert parse_prompt(expand_prompt("a cyan square", seed=1, num_frames=1)).objects[0].motion is None
    for junk in ["", "a purple dragon", "five red balls falling under zero gravity"]:
        assert expand_prompt(junk, seed=3)


def test_complete_prompt_gives_each_object_a_colour_and_keeps_the_rest():
    """The world's captions name every object's colour, and the shipped model drew an empty scene
    for "a ball falls" (and for every prompt without a colour, docs/captions.md)."""
    from spacetime.world.prompts import complete_prompt

    for prompt in ("a red ball falls", "a blue square and a green triangle", "the camera pans left",
                   "an empty gray background", "", "a brown dragon"):
        assert complete_prompt(prompt, seed=0) == prompt  # nothing to complete: as typed
    for seed in range(4):
        for prompt, shapes in (("a ball falls", ["ball"]), ("two squares", ["square", "square"]),
                               ("a red ball and a triangle", ["ball", "triangle"])):
            text = complete_prompt(prompt, seed=seed)
            spec = parse_prompt(text)
            assert [o.shape for o in spec.objects] == shapes and all(o.colour for o in spec.objects), text
            assert not spec.unknown_words and len(text) < 200, text  # the medium style, not the detailed
        assert parse_prompt(complete_prompt("a red ball and a triangle", seed=seed)).objects[0].colour == "red"
        assert parse_prompt(complete_prompt("a ball falls", seed=seed)).objects[0].motion == "falls"
    # a colour the world lacks is said as the world's (the model drew nothing for "pink", "gold")
    assert complete_prompt("a Pink triangle and a golden square", seed=0) == "a magenta triangle and a yellow square"
    assert complete_prompt("goldfish and a crimson ball", seed=0) == "goldfish and a red ball"
    assert complete_prompt("a purple dragon", seed=0) == "a magenta dragon"  # no shape: nothing else to complete
    assert complete_prompt("a ball", seed=1) == complete_prompt("a ball", seed=1)
    assert len({complete_prompt("a ball", seed=s) for s in range(6)}) > 1  # the colour is drawn, seeded
    with pytest.raises(ValueError, match="style must be one of"):
        expand_prompt("a ball", style="long")


def test_complete_prompt_keeps_every_thing_the_prompt_says():
    """The medium style names no background, camera or bar, a size in ~30% of mentions and one
    event an object: "a big ball and a small square fall" was completed without the sizes, "... on
    a white background" without the background. Where the medium caption drops something, the
    detailed caption of the same draw is given."""
    for seed in range(4):
        for prompt in ("a big ball and a small square fall", "a ball on a white background falls",
                       "a ball falls while the camera pans left", "a small triangle bounces off the left wall"):
            said, done = parse_prompt(prompt), parse_prompt(complete_prompt(prompt, seed=seed))
            for o in said.objects:
                assert any(d.shape == o.shape and d.colour and (o.size is None or d.size == o.size) for d in done.objects), (
                    prompt, seed, complete_prompt(prompt, seed=seed))
            assert (said.background is None or done.background == said.background) and (
                said.camera is None or done.camera == said.camera), (prompt, seed)
            if "left wall" in prompt:
                assert "left wall" in complete_prompt(prompt, seed=seed)
        assert len(complete_prompt("a ball falls", seed=seed)) < 200  # nothing dropped: still the medium style


def test_a_long_prompt_is_cut_between_words():
    """Cut at 10,000 characters mid-word, 'red' came back as the unknown word 're'."""
    text = "a ball " + "x" * 9990 + " red"  # 10,001 characters: "red" straddles the limit
    spec = parse_prompt(text)
    assert "re" not in spec.unknown_words and spec.unknown_words == ["x" * 9990]
    assert any("only the first 9997 were read" in n for n in spec.notes), spec.notes
    assert parse_prompt("y" * 20_000).unknown_words == ["y" * 10_000]  # one word: cut where it must be


def test_complete_prompt_leaves_the_eval_prompts_as_they_are():
    """The eval completes prompts as generate does: the held-out captions (every length, with cuts
    too) name each object's colour in the world's words, so the published figures stay as measured."""
    from spacetime.eval.evaluate import split_prompts
    from spacetime.world.prompts import complete_prompt

    for caption in ("detailed", "medium", "short"):
        for prompt in split_prompts("heldout", 60, seed=0, caption=caption):
            assert complete_prompt(prompt, seed=0) == prompt, prompt
    for prompt in split_prompts("heldout", 20, seed=0, multishot=True):
        assert complete_prompt(prompt, seed=0) == prompt, prompt


def test_complete_prompt_for_an_input_names_the_colours_it_shows():
    """With an image or video, the object it shows vanished when the prompt named no colour (88% of
    the new frames blank over 8 clips, image -> video and extension alike): its own colours are
    written in, never drawn ones."""
    from spacetime.world.prompts import complete_prompt, objects_in

    seen = [("red", "ball"), ("blue", "square")]
    for prompt, want in (("it rolls right", "a red ball; it rolls right"),
                         ("a ball falls", "a red ball falls"),
                         ("the big ball bounces and a square falls", "the big red ball bounces and a blue square falls"),
                         ("a square hits the ball", "a blue square hits the red ball"),  # a shape's own colour first
                         ("a red ball and a square", "a red ball and a blue square"),  # none named twice
                         ("a blue ball", "a blue ball"), ("the camera pans left", "the camera pans left"),
                         ("a ball falls, then cut to a close-up of the ball",  # the same ball again
                          "a red ball falls, then cut to a close-up of the red ball")):
        assert complete_prompt(prompt, seed=0, seen=seen) == want, prompt
        assert all(o.colour for o in parse_prompt(want).objects), want
    assert complete_prompt("a ball", seen=[]) == "a ball"  # footage without the world's colours: as typed
    assert complete_prompt("a red ball and a ball", seen=[("red", "ball")]) == "a red ball and a ball"
    for s in range(6):  # the tracker reads the scene's own colours, the largest first
        clip = make_clip(2000 + s, num_frames=1, height=64, width=64)
        found = objects_in(clip.frames)
        shown = {o.colour for o, v in zip(clip.scene.objects, clip.visible[0]) if v >= 0.9}
        assert shown <= {c for c, _ in found} <= {o.colour for o in clip.scene.objects}, (found, clip.captions["short"])


def test_parse_notes_conflicts_and_odd_counts():
    spec = parse_prompt("a red ball, the camera pans left and right")
    assert spec.camera == "pan-left" and len(spec.objects) == 1 and spec.objects[0].motion is None
    assert any("pans left and right" in n for n in spec.notes)
    spec = parse_prompt("the camera pans to the right and left")
    assert spec.objects == [] and spec.camera == "pan-right" and spec.notes
    spec = parse_prompt("a ball on a white background on a black background")
    assert spec.background == "white" and any("white background" in n and "black background" in n for n in spec.notes)
    spec = parse_prompt("a ball, the camera is static, the camera pans left")
    assert spec.camera == "static" and spec.notes
    assert not parse_prompt("a ball on a white background, the background is white").notes  # said twice, no conflict
    for text in ("0 balls", "zero balls", "zero big red balls falling"):
        spec = parse_prompt(text)
        assert spec.objects == [] and any("no object" in n and text.split(" falling")[0] in n for n in spec.notes), (text, spec)
    spec = parse_prompt("a red ball and 0 squares")
    assert [(o.colour, o.shape) for o in spec.objects] == [("red", "ball")] and spec.notes
    spec = parse_prompt("1.5 balls")
    assert len(spec.objects) == 1 and spec.notes == ["'1.5' is not a whole number of objects; read as one"]
    assert len(parse_prompt("2.0 balls").objects) == 2 and not parse_prompt("2.0 balls").notes
    assert not parse_prompt("zero gravity").notes and parse_prompt("zero gravity").gravity is False


def test_expand_prompt_names_bad_arguments():
    for seed in (1.5, -1, "3", None, True):
        with pytest.raises(ValueError, match="seed"):
            expand_prompt("a red ball", seed=seed)
    with pytest.raises(ValueError, match="aspect.*0.01.*at least 0.25"):
        expand_prompt("a red ball", aspect=0.01)
    assert expand_prompt("a red ball", seed=np.int64(2)) == expand_prompt("a red ball", seed=2)
    assert expand_prompt("a red ball", aspect=0.25)


def _objs(text):
    return [(o.colour, o.shape, o.motion, o.hits) for o in parse_prompt(text).objects]


def test_a_motion_before_its_noun_belongs_to_that_object():
    assert _objs("a falling red ball") == _objs("a red falling ball") == [("red", "ball", "falls", None)]
    assert _objs("a still red square") == [("red", "square", "still", None)]
    assert _objs("a red ball and a falling blue ball") == [("red", "ball", None, None), ("blue", "ball", "falls", None)]
    assert _objs("a red ball hits a falling blue square") == [("red", "ball", None, None), ("blue", "square", "falls", None)]
    assert _objs("two falling balls") == [(None, "ball", "falls", None)] * 2
    assert _objs("falling on a white background") == [(None, None, "falls", None)]  # nobody named: one object


def test_a_verb_after_objects_joined_by_and_is_all_of_theirs():
    assert _objs("a red ball and a blue ball fall") == [("red", "ball", "falls", None), ("blue", "ball", "falls", None)]
    assert [o[2] for o in _objs("the red ball and the blue ball move left")] == ["left", "left"]
    assert [o[3] for o in _objs("a red ball and a blue ball bounce off the left wall")] == ["left", "left"]
    # a subject that already moves is not joined: each clause keeps its own verb
    assert [o[2] for o in _objs("a red ball falls and a blue ball moves left")] == ["falls", "left"]
    assert [o[3] for o in _objs("a red ball falls and a blue ball rises, they both bounce off the floor")] == ["floor"] * 2
    assert [o[2] for o in _objs("a red ball and a blue square which falls")] == [None, "falls"]


def test_negations_are_never_applied():
    for text in ("a red ball with no bar", "a red ball without a bar", "there is no occluder", "a ball not behind a bar"):
        assert parse_prompt(text).occluder is False, text
    for text in ("gravity off", "gravity: off", "turn off gravity", "no-gravity", "not under gravity", "gravity is not on",
                 "a ball moves right with gravity off", "with gravity turned off, a ball moves right"):  # "with gravity" won
        spec = parse_prompt(text)
        assert spec.gravity is False and not spec.unknown_words, text
    assert parse_prompt("a red ball with gravity on a gray background").gravity is True
    for text in ("low gravity", "anti-gravity"):
        spec = parse_prompt(text)
        assert spec.gravity is None and any("gravity" in n for n in spec.notes), text
    for text in ("a red ball does not fall", "a red ball doesn't fall", "a red ball never falls"):
        spec = parse_prompt(text)
        assert _objs(text) == [("red", "ball", None, None)] and any("fall" in n for n in spec.notes), text
    spec = parse_prompt("a ball that is not red")
    assert _objs("a ball that is not red") == [(None, "ball", None, None)] and any("not red" in n for n in spec.notes)
    assert parse_prompt("a red ball does not move").objects[0].motion == "still"  # a caption phrase: still


def test_a_place_is_not_a_motion_and_a_second_motion_is_noted():
    spec = parse_prompt("a red ball on the left moves right")
    assert _objs("a red ball on the left moves right") == [("red", "ball", "right", None)] and spec.notes
    spec = parse_prompt("a red ball on the right")
    assert spec.objects[0].motion is None and any("on the right" in n for n in spec.notes)
    assert _objs("a red ball to the left of a blue ball") == [("red", "ball", None, None), ("blue", "ball", None, None)]
    assert _objs("a ball rolls to the left side") == [(None, "ball", "left", None)]
    spec = parse_prompt("a red ball moves up then falls")
    assert spec.objects[0].motion == "up" and any("'falls' ignored" in n for n in spec.notes)
    # after a hit, a new heading is what the hit did, not a second motion (the captions say it so)
    assert not parse_prompt("a red ball moves right, then hits the blue ball and heads to the left").notes


def test_counted_objects_take_the_colours_said_after_them():
    assert _objs("two balls, one red and one blue, roll left") == [("red", "ball", "left", None), ("blue", "ball", "left", None)]
    assert _objs("three balls: red, green and blue") == [(c, "ball", None, None) for c in ("red", "green", "blue")]
    assert _objs("red and blue balls") == _objs("a red and a blue ball") == [("red", "ball", None, None), ("blue", "ball", None, None)]
    assert _objs("A red ball. The ball bounces off the floor.") == [("red", "ball", None, "floor")]
    assert len(parse_prompt("A red ball and a blue ball. The ball falls.").objects) == 3  # which ball: not merged


def test_more_ways_to_hit_a_wall():
    for verb in ("crashes into", "bumps into", "collides with", "bounces against"):
        for wall, name in (("left", "the left wall"), ("right", "the right wall"), ("ceiling", "the ceiling")):
            spec = parse_prompt(f"a red ball {verb} {name}")
            assert spec.objects[0].hits == wall and not spec.unknown_words, (verb, name)
    spec = parse_prompt("a red ball bounces off the left and right walls")
    assert spec.objects[0].hits == "left" and any("one wall" in n for n in spec.notes)


def test_a_close_up_outside_a_cut_is_no_motion_up():
    spec = parse_prompt("a close-up of a red ball falling")
    assert _objs("a close-up of a red ball falling") == [("red", "ball", "falls", None)] and spec.notes
    assert _objs("a closeup of a blue square") == [("blue", "square", None, None)]


def test_contradictions_are_noted():
    spec = parse_prompt("a red ball moves up then falls")
    assert spec.objects[0].motion == "up" and any("falls" in n and "one motion" in n for n in spec.notes)
    spec = parse_prompt("a red blue ball")
    assert _objs("a red blue ball") == [("red", "ball", None, None)] and spec.notes
    spec = parse_prompt("a big small ball")
    assert [o.size for o in spec.objects] == ["large"] and spec.notes


def test_odd_counts_bytes_and_width():
    for text in ("11 balls", "a dozen balls", "100 balls", "9" * 40 + " balls"):
        spec = parse_prompt(text)
        assert len(spec.objects) == 3 and any("at most 3" in n for n in spec.notes), text
    assert len(parse_prompt("a pair of balls").objects) == len(parse_prompt("a couple of squares").objects) == 2
    assert parse_prompt(b"a red ball") == parse_prompt("a red ball")
    assert parse_prompt(b"\xff red ball").objects[0].colour == "red"  # not UTF-8: replaced, never raised
    assert parse_prompt("ａ ｒｅｄ ｂａｌｌ") == parse_prompt("a red ball")  # full-width letters
    spec = parse_prompt("a ball on a white background on a " + "x" * 500 + " black background")
    assert all(len(n) < 250 for n in spec.notes) and spec.notes


def test_expand_prompt_keeps_the_wall_and_shows_the_object():
    for seed in range(30):
        assert "left wall" in expand_prompt("a red ball bounces off the left wall", seed=seed), seed
    for seed in range(30):
        assert "stays behind" not in expand_prompt("two red balls fall on black", seed=seed), seed


def test_one_stands_for_the_shape_named_before():
    assert _objs("a red ball and a blue one") == [("red", "ball", None, None), ("blue", "ball", None, None)]
    assert _objs("red squares and blue ones")[1] == ("blue", "square", None, None)
    assert _objs("a red triangle moves left and a green one falls") == [
        ("red", "triangle", "left", None), ("green", "triangle", "falls", None)]
    assert _objs("two balls, one red and one blue") == [("red", "ball", None, None), ("blue", "ball", None, None)]
    assert _objs("a red one") == [("red", None, None, None)]  # nothing named before: no shape, no unknown word
    assert parse_prompt("a red one").unknown_words == []
    spec = parse_prompt("a red ball, but no blue ones")
    assert _objs("a red ball, but no blue ones") == [("red", "ball", None, None)] and spec.unknown_words == []


def test_colours_the_world_lacks_are_read_as_the_nearest_and_said():
    spec = parse_prompt("a purple ball falls and a violet square moves left")
    assert [o.colour for o in spec.objects] == ["magenta", None]  # both magenta: objects need distinct colours
    assert any("'purple' read as magenta" in n for n in spec.notes)
    assert _objs("a turquoise triangle")[0][0] == "cyan" and _objs("a crimson ball")[0][0] == "red"
    assert parse_prompt("no purple balls").objects == []  # a negated object is not made


def test_from_one_side_to_the_other_heads_to_the_second():
    # "from left to right" was read as "left" with "right" noted as a second motion: the opposite of
    # what was meant, and complete_prompt then wrote "drifts leftward" for the model
    for text, want in (("a red ball moves from left to right", "right"), ("a red ball travels left-to-right", "right"),
                       ("a red ball rolls from the right to the left", "left"), ("a red ball goes from bottom to top", "up"),
                       ("a red ball moves from the left side to the right side", "right")):
        spec = parse_prompt(text)
        assert _objs(text) == [("red", "ball", want, None)] and not spec.notes and not spec.unknown_words, text
    assert parse_prompt("the camera pans from left to right").camera == "pan-right"
    assert parse_prompt("camera pans right to left").camera == "pan-left"
    assert "left" not in complete_prompt("a ball moves from left to right")


def test_user_names_for_walls_rising_verbs_and_coloured():
    # each was unknown words before, and worse: "the left-hand wall" made a second object moving
    # left, "a red coloured ball" a red object and a ball, and "a ball rises" was completed as "drops"
    for text, want in (("a red ball bounces against the left-hand wall", [("red", "ball", None, "left")]),
                       ("a red ball hits the right side wall", [("red", "ball", None, "right")]),
                       ("a red ball bounces off the ground twice", [("red", "ball", None, "floor")]),
                       ("a red ball falls to the ground", [("red", "ball", "falls", None)]),
                       ("a red ball rises", [("red", "ball", "up", None)]),
                       ("a red ball sinks", [("red", "ball", "down", None)]),
                       ("a red-coloured ball and a blue colored square",
                        [("red", "ball", None, None), ("blue", "square", None, None)])):
        spec = parse_prompt(text)
        assert _objs(text) == want and not spec.unknown_words and not spec.notes, text
    assert "drops" not in complete_prompt("a ball rises") and "up" in complete_prompt("a ball rises")


def test_completion_never_draws_what_the_prompt_denies():
    # a spec cannot hold a negation, so the expansion drew it: "a ball that does not bounce" was
    # completed as "a magenta ball drops and bounces on the floor twice"
    for seed in range(3):
        for text, kind in (("a ball that does not bounce", "bounces"), ("a ball that does not fall", "motion"),
                           ("a ball that is not magenta", "colour")):
            shown = parse_prompt(complete_prompt(text, seed=seed))
            (o,) = shown.objects
            if kind == "bounces":
                assert o.motion not in vocab.GRAVITY_MOTIONS and o.hits is None, (text, seed)
            else:
                assert (o.motion, o.colour)[kind == "colour"] not in ("falls", "magenta"), (text, seed)
    assert complete_prompt("a ball that is not red", seen=[("red", "ball"), ("blue", "ball")]) == "a blue ball that is not red"


def test_camera_words_after_camera_and_adjectives_and_predicates_name_one_object():
    # "camera static" made the ball still (and dropped its "falls"); "tilts up" made an object
    # moving up; "a big, red ball" and "the ball is red" were two objects each
    spec = parse_prompt("camera static, red ball falls")
    assert spec.camera == "static" and _objs("camera static, red ball falls") == [("red", "ball", "falls", None)]
    spec = parse_prompt("the camera tilts up over a red ball")
    assert _objs("the camera tilts up over a red ball") == [("red", "ball", None, None)] and spec.camera is None
    assert spec.unknown_words == ["tilts"] and any("pans left or right" in n for n in spec.notes)
    assert parse_prompt("zoom in on a red ball").unknown_words == ["zoom"]
    for text in ("a big, red ball falls", "a big and red ball falls", "the big ball is red and it falls",
                 "a ball. It is red. It falls.", "the red ball is big. It falls."):
        assert [(o.colour, o.shape, o.size, o.motion) for o in parse_prompt(text).objects] == [
            ("red", "ball", "large" if "big" in text else None, "falls")], text
    assert _objs("the square is red, the ball is blue") == [("red", "square", None, None), ("blue", "ball", None, None)]
    assert _objs("red and blue balls") == [("red", "ball", None, None), ("blue", "ball", None, None)]  # as before


def test_more_user_phrasings_name_one_object_and_its_motion():
    # each was a second object, an unknown word, or a motion with another noted as ignored
    for text, want in (("a ball coloured red falls", [("red", "ball", "falls", None)]),
                       ("a ball in red falls", [("red", "ball", "falls", None)]),
                       ("a ball painted blue", [("blue", "ball", None, None)]),
                       ("a ball moving up to the right", [(None, "ball", "up-right", None)]),
                       ("a ball moving upwards and to the left", [(None, "ball", "up-left", None)]),
                       ("the red ball bounces up and down", [("red", "ball", "falls", None)]),
                       ("a red ball lying on the ground", [("red", "ball", "still", None)]),
                       ("a red ball sitting on the ground", [("red", "ball", "still", None)])):
        spec = parse_prompt(text)
        assert _objs(text) == want and not spec.unknown_words and not spec.notes, text
    # a background the world has not is said, not a second (blue) object
    spec = parse_prompt("a red ball on a blue background")
    assert _objs("a red ball on a blue background") == [("red", "ball", None, None)] and spec.background is None
    assert spec.unknown_words == ["blue background"] and any("backgrounds are black, white, gray" in n for n in spec.notes)
    assert complete_prompt("a red ball on a blue background") == "a red ball on a blue background"


def test_a_neutral_object_colour_is_named_as_typed_and_said_why():
    # "a grey ball" listed "gray" as the unknown word (the prompt never said it), with no word on why
    spec = parse_prompt("a grey ball falls")
    assert spec.unknown_words == ["grey"] and any("'grey' is no object colour" in n for n in spec.notes)
    spec = parse_prompt("a white square on a black background")
    assert spec.unknown_words == ["white"] and spec.background == "black" and len(spec.notes) == 1
    spec = parse_prompt("a red ball behind a dark grey bar on a grey backdrop")
    assert (spec.occluder, spec.background, spec.unknown_words) == (True, "gray", [])


def test_complete_prompt_for_an_input_never_colours_an_object_twice():
    # "the ball is red" with an input's blue ball was written "the blue ball is red"
    seen = [("blue", "ball"), ("green", "square")]
    for prompt, want in (("the ball is red and a square falls", "the ball is red and a green square falls"),
                         ("a ball in red and a square", "a ball in red and a green square"),
                         ("the ball is red", "the ball is red")):
        assert complete_prompt(prompt, seen=seen) == want, prompt


def test_a_colour_said_after_an_object_is_that_objects():
    # "the ball is big and red" made a second, red object; so did "hits the ball in blue" (the
    # colour went looking for the hitter, which had one)
    assert _objs("the ball is big and red") == [("red", "ball", None, None)]
    assert parse_prompt("the ball is big and red").objects[0].size == "large"
    assert _objs("the ball in red hits the ball in blue") == [("red", "ball", None, None), ("blue", "ball", None, None)]
    assert _objs("a ball coloured red and a square coloured blue") == [("red", "ball", None, None), ("blue", "square", None, None)]


def test_one_of_the_counted_objects_and_both():
    # "one falls and the other moves right" made both fall (and noted the second motion twice);
    # "both balls fall" was one ball
    for text in ("two balls, one falls and the other moves right", "two balls: the first falls and the second moves right"):
        spec = parse_prompt(text)
        assert _objs(text) == [(None, "ball", "falls", None), (None, "ball", "right", None)], text
        assert [n for n in spec.notes if "ignored" in n] == [], text
        assert not spec.unknown_words, text
    assert [o.motion for o in parse_prompt("three balls: one falls, one rises and the third moves left").objects] == [
        "falls", "up", "left"]
    assert _objs("two balls; one is red and the other is blue") == [("red", "ball", None, None), ("blue", "ball", None, None)]
    assert _objs("both balls fall") == [(None, "ball", "falls", None)] * 2
    assert _objs("one ball falls and one square rises") == [(None, "ball", "falls", None), (None, "square", "up", None)]


def test_an_object_that_did_something_does_not_share_the_next_verb():
    # "a red ball floats and a blue ball falls" made the red ball fall too (as did rolls, bounces, hits)
    for verb in ("floats", "rolls", "bounces", "moves", "hits a green square"):
        text = f"a red ball {verb} and a blue ball falls"
        assert parse_prompt(text).objects[0].motion is None and _objs(text)[-1] == ("blue", "ball", "falls", None), text
    assert _objs("a red ball and a blue ball fall") == [("red", "ball", "falls", None), ("blue", "ball", "falls", None)]


def test_a_direction_under_gravity_is_said_to_be_drawn_as_a_throw_or_a_fall():
    # sample_scene fits it silently: "a red ball falls and a blue ball rises" drew the blue ball falling
    spec = parse_prompt("a red ball falls and a blue ball rises")
    assert spec.notes == ["gravity is one law for the scene: under it, the blue ball that moves up is drawn as one that falls"]
    assert "thrown to the right" in parse_prompt("a red ball moves right under gravity").notes[0]
    assert not parse_prompt("a red ball moves right").notes and not parse_prompt("a ball falls and a ball stays still").notes


def test_a_number_that_counts_nothing_is_not_said_to_count_objects():
    assert parse_prompt("a red ball falls at 9.8 m/s").notes == []  # was "'9.8' is not a whole number of objects"
    assert any("1.5" in n for n in parse_prompt("1.5 balls").notes)


def test_more_motion_verbs():
    # each verb was an unknown word (and "plummets" no motion at all)
    for text, want in (("a red ball plummets", "falls"), ("a red ball tumbles down", "falls"),
                       ("a red ball races left", "left"), ("a red ball darts right", "right"),
                       ("a red ball is launched to the right", "right"), ("a red ball remains still", "still"),
                       ("a red ball stays put", "still"), ("a red ball hangs in the air", "still")):
        spec = parse_prompt(text)
        assert _objs(text) == [("red", "ball", want, None)] and not spec.unknown_words and not spec.notes, text
    assert _objs("a red ball is tossed to the left") == [("red", "ball", "bounces-left", None)]  # a throw, as before


def test_the_shot_words_set_the_camera_not_the_object():
    # "a static shot of a red ball falling" made the ball still and dropped its "falling"
    for text, camera in (("a static shot of a red ball falling", "static"), ("a red ball falls, no camera movement", "static"),
                         ("a red ball falls; the view is fixed", "static"), ("a red ball falls, panning shot to the left", "pan-left")):
        spec = parse_prompt(text)
        assert spec.camera == camera and _objs(text) == [("red", "ball", "falls", None)], text
        assert not spec.notes and not spec.unknown_words, text


def test_gravity_off_said_other_ways_is_off():
    # each was gravity ON: "gravity" read, "disabled" / "0" / "none" / "any" not (silently, for "0")
    for text in ("a red ball, gravity disabled", "a red ball in 0 gravity", "a red ball, gravity: none",
                 "a red ball without any gravity", "a red ball in 0g", "a red ball in outer space"):
        spec = parse_prompt(text)
        assert spec.gravity is False and _objs(text) == [("red", "ball", None, None)] and not spec.unknown_words, text
    assert parse_prompt("a red ball, gravity enabled").gravity is True
    assert parse_prompt("a red ball without any bar").occluder is False


def test_a_background_said_as_a_field_or_bare():
    # "background: white" and "bg: white" were unknown words, "on black background" left "background" unknown
    for text, bg in (("red ball; background: white", "white"), ("red ball; bg: white", "white"),
                     ("a red ball on black background", "black"), ("a red ball on a plain white background", "white"),
                     ("a red ball in front of black", "black")):
        spec = parse_prompt(text)
        assert spec.background == bg and not spec.unknown_words and _objs(text) == [("red", "ball", None, None)], text
    assert parse_prompt("red ball; background: blue").unknown_words == ["background: blue"]


def test_a_direction_right_after_the_object_hit_is_where_it_goes():
    # "knocks the blue ball to the right" gave the red ball the motion; "strikes", "pushes" were unknown
    assert _objs("a red ball knocks the blue ball to the right") == [("red", "ball", None, None), ("blue", "ball", "right", None)]
    assert _objs("a red ball pushes the blue ball left") == [("red", "ball", None, None), ("blue", "ball", "left", None)]
    assert _objs("a red ball hits the blue ball and heads to the left") == [("red", "ball", "left", None), ("blue", "ball", None, None)]
    for text in ("a red ball strikes the blue ball", "the red ball and the blue ball collide"):
        assert not parse_prompt(text).unknown_words and len(parse_prompt(text).objects) == 2, text


def test_more_size_words():
    for word, size in (("massive", "large"), ("enormous", "large"), ("gigantic", "large"), ("teeny", "small"), ("miniature", "small")):
        spec = parse_prompt(f"a {word} red ball")
        assert spec.objects[0].size == size and not spec.unknown_words, word
