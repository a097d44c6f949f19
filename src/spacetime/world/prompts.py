"""Prompts back to scenes: `parse_prompt` reads the whole caption vocabulary (captions.py), and
common user phrasings, into a `SceneSpec`, naming the words it could not understand and noting
what it ignored; `expand_prompt` turns a short prompt into the detailed caption style by simulating
a scene that fits it (the re-captioning analogue). The grammar and every phrase are listed in
docs/captions.md.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from spacetime.world import vocab
from spacetime.world.captions import (
    BOUNCE_PHRASES,
    DIRECTION_PHRASES,
    FALL_PHRASES,
    FLOOR_TIMES,
    HIDDEN,
    HIT_IT,
    HIT_VERBS,
    MOVE_VERBS,
    REST_PHRASES,
    RESTING_PHRASES,
    SEEN,
    SHAPE_WORDS,
    SIZE_WORDS,
    STILL_PHRASES,
    THROW_PHRASES,
    VIEW_PHRASES,
    caption_clip,
)
from spacetime.world.physics import JamError, Trajectory, simulate
from spacetime.world.render import visible_fraction
from spacetime.world.scene import ObjectSpec, SceneSpec, check_aspect, sample_scene
from spacetime.world.shots import UNREAD, ShotSpec, close_up_conflict, fit_shots, split_shot_phrases

# A prompt is read left to right, always taking the longest phrase the lexicon knows. Size, colour
# and shape words build an object mention ("a big red ball"); every other phrase applies to the
# objects last mentioned ("... falls"), or sets a scene attribute ("on a white background").

STOPWORDS = frozenset(
    "a an the of to is are was be being with on in at it its as from into onto by this these there here "
    "scene video clip shows showing another also again back against s over across around along very "
    "slowly quickly fast slow gently some we see where now just each other coloured colored painted any plain solid uniform".split()
)
SEPARATORS = frozenset([",", ".", ";", ":", "!", "?", "and", "while", "then", "but"])
# Colour words the world has no colour for, to the nearest world colour (RGB distance); a note says so.
COLOUR_SYNONYMS = {"purple": "magenta", "violet": "magenta", "pink": "magenta", "fuchsia": "magenta",
                   "turquoise": "cyan", "aqua": "cyan", "teal": "cyan", "crimson": "red", "scarlet": "red",
                   "lime": "green", "gold": "yellow", "golden": "yellow", "amber": "orange"}
NEUTRALS = ("white", "black", "gray", "grey", "silver", "brown", "beige")  # colours no object has
ONE_WORDS = ("one", "ones")  # "a blue one": a pronoun for the shape named before
NUMBERS = {w: n for n, w in enumerate("zero one two three four five six seven eight nine ten".split())} | {str(n): n for n in range(11)}
NUMBERS |= {"eleven": 11, "twelve": 12, "dozen": 12, "twenty": 20, "hundred": 100, "pair": 2, "couple": 2}  # "a pair of"
# words that deny the phrase after them ("does not fall", "without a bar"); "doesn't" is "doesn t"
NEGATIONS = ("not", "no", "never", "without", "cannot", "does not", "do not", "did not", "doesn t", "don t", "didn t",
             "isn t", "aren t", "won t", "can t", "will not")
PAINTED = ("coloured", "colored", "painted", "in")  # "a ball coloured red", "a ball in red": its colour
MAX_CHARS = 10_000  # a prompt is a sentence or a paragraph; the rest of a longer text is not read
FLOAT_VERBS = ("floats", "floating", "float", "hovers", "hovering")  # drifting with no weight: zero gravity
USER_VERBS = ("moving", "drifting", "gliding", "travelling", "traveling", "goes", "going", "go", "flies", "flying",
              "rolls", "rolling", "slides", "sliding", "move", "moved", "heads", "heading", "runs", "running",
              "shoots", "speeds", "drift", "glide", "travel", "roll", "slide", "races", "racing", "darts", "darting",
              "zooms", "zooming", "is launched", "launched", "is pushed", "pushed",
              "is kicked", "kicked") + FLOAT_VERBS + ("moves off",)


_VERB_WORDS = frozenset(v.split()[0] for v in MOVE_VERBS + USER_VERBS)


def _lexicon() -> dict[tuple[str, ...], tuple]:
    """Phrase (as a word tuple) -> action. The first entry for a phrase wins."""
    lex: dict[tuple[str, ...], tuple] = {}

    def add(phrases, action: tuple) -> None:
        for p in [phrases] if isinstance(phrases, str) else phrases:
            lex.setdefault(tuple(p.split()), action)

    for c in vocab.COLOURS:
        add(c, ("colour", c))
    for word, c in COLOUR_SYNONYMS.items():  # a colour the world lacks, read as its nearest, and said
        add(word, ("colour", c, word))
    extra_shapes = {"ball": ("sphere", "orb", "dot"), "square": ("cube", "rectangle"), "triangle": ("pyramid",)}
    for shape in vocab.SHAPES:
        for w in SHAPE_WORDS[shape] + extra_shapes[shape]:
            add([w, w + ("es" if w.endswith("x") else "s")], ("shape", shape))
    extra_sizes = {"small": ("tiny", "smaller", "smallest", "mini", "teeny", "miniature", "wee"),
                   "large": ("huge", "bigger", "biggest", "larger", "giant", "massive", "enormous", "gigantic", "jumbo")}
    for size in vocab.SIZES:
        add(SIZE_WORDS[size] + extra_sizes[size], ("size", size))
    for w, n in NUMBERS.items():
        add(w, ("count", n))
    for d, other in (("left", "right"), ("right", "left")):  # one pan per clip: the first direction, noted
        for v in ("camera pans", "camera moves", "camera panning", "view pans", "pans", "panning", "pan"):
            add([f"{v} {d} and {other}", f"{v} to the {d} and {other}", f"{v} to the {d} and to the {other}",
                 f"{v} {d} and then {other}", f"{v} {d} then {other}"], ("camera", f"pan-{d}", "both"))
    for bg in vocab.BACKGROUNDS:
        add([f"{bg} background", f"{bg} backdrop", f"background is {bg}", f"against {bg}", f"on {bg}", f"on {bg} background",
             f"on {bg} backdrop", f"background : {bg}", f"backdrop : {bg}", f"bg : {bg}", f"{bg} bg", f"background {bg}",
             f"in front of {bg}"], ("background", bg))  # "background: white" was two unknown words
    # a background the world has not: "on a blue background" was a second, blue object. The phrase
    # is also unknown: the captions never say it, and generate warns of those
    for c in (*vocab.COLOURS, *COLOUR_SYNONYMS, "brown", "dark", "light", "beige", "silver"):
        for phrase in [f"{c} {w}" for w in ("background", "backdrop", "backgrounds")] + [f"background is {c}", f"background : {c}"]:
            add(phrase, ("note", f"backgrounds are {', '.join(vocab.BACKGROUNDS)}", phrase.replace(" :", ":")))
    add([f"{oc} bar" for oc in vocab.OCCLUDER_COLOURS], ("occluder", True))
    add(["bar", "bars", "pillar", "post", "occluder", "tall bar", "vertical bar", "behind a bar", "behind the bar"], ("occluder", True))
    add(["zero gravity", "no gravity", "without gravity", "weightless", "weightlessness", "in space", "zero g", "microgravity"], ("gravity", False))
    add(["under gravity", "with gravity", "gravity", "gravity is on", "gravity pulls everything down"], ("gravity", True))
    for d in ("left", "right"):
        for v in ("camera pans", "camera moves", "camera panning", "view pans", "pans", "panning", "pan"):
            add([f"{v} {d}", f"{v} to the {d}"], ("camera", f"pan-{d}"))
            o = "right" if d == "left" else "left"  # "pans from left to right" pans right
            add([f"{v} from {o} to {d}", f"{v} {o} to {d}", f"{v} from the {o} to the {d}"], ("camera", f"pan-{d}"))
    add(["camera is static", "static camera", "camera is still", "still camera", "fixed camera", "camera does not move",
         "camera stays still", "camera holds still", "camera is fixed"], ("camera", "static"))
    for motion, phrases in DIRECTION_PHRASES.items():
        words = set(phrases) | {motion, motion.replace("-", " "), motion.replace("-", " and ")}
        if "-" in motion:
            v, h = motion.split("-")
            words |= {f"{v} {h}ward", f"{v} and {h}", f"{h} and {v}", f"to the {h} and {v}", f"diagonally {v} {h}",
                      f"{v} to the {h}", f"{v}ward to the {h}", f"{v}wards to the {h}", f"{v}ward and to the {h}",
                      f"{v}wards and to the {h}"}  # "up to the right" was up, and "to the right" a second motion
        else:
            words |= {f"{motion}ward", f"{motion}wards", f"towards the {motion}", f"toward the {motion}"}
            if motion in ("left", "right"):
                words.add(f"to the {motion} side")  # "rolls to the left side": a motion; "on the left side" is a place
            # "from left to right" heads right: read whole, not as "left" then a second motion "right"
            a, b = {"right": ("left", "right"), "left": ("right", "left"), "up": ("bottom", "top"), "down": ("top", "bottom")}[motion]
            words |= {f"from {a} to {b}", f"{a} to {b}", f"from the {a} to the {b}", f"from the {a} side to the {b} side"}
        for p in sorted(words):
            add(p, ("motion", motion, None))
            for v in MOVE_VERBS + USER_VERBS:
                add(f"{v} {p}", ("motion", motion, False if v in FLOAT_VERBS else None))
    add(FLOAT_VERBS, ("motion", None, False))
    # verbs that are a direction themselves: "a ball rises" was unknown, and completed as "drops"
    add(["rises", "rising", "rise", "ascends", "ascending", "ascend", "climbs", "climbing"], ("motion", "up", None))
    add(["sinks", "sinking", "sink", "descends", "descending", "descend"], ("motion", "down", None))
    add(MOVE_VERBS + USER_VERBS, ("verb",))
    add(STILL_PHRASES + RESTING_PHRASES + ("still", "stationary", "motionless", "at rest", "stands still", "sits still",
        "rests", "resting", "not moving", "static", "stays", "stay still", "standing still", "sitting still", "sits on the floor",
        "resting on the floor", "lying on the floor", "sitting on the floor", "lies still", "remains still", "remains motionless",
        "stays put", "does nothing", "hangs in the air", "hangs in mid air"), ("motion", "still", None))
    add(FALL_PHRASES + ("falling", "dropping", "dropped", "fall", "drop", "falls to the floor", "is dropped", "falling down",
        "drops down", "drops to the floor", "plummets", "plummeting", "plunges", "plunging", "tumbles", "tumbling",
        "tumbles down", "plummets down", "is dropped from above", "dropped from above"), ("motion", "falls", None))
    for d in ("left", "right"):
        phrases = BOUNCE_PHRASES + THROW_PHRASES + ("bouncing to the {d}", "bounces {d}", "bouncing {d}", "bounce to the {d}",
                                                     "thrown to the {d}", "thrown {d}", "tossed to the {d}", "is thrown {d}")
        add([p.format(d=d) for p in phrases], ("motion", f"bounces-{d}", None))
    # in place: a drop and its bounces, not the motion "up" with "down" noted as a second one
    add(["bounces up and down", "bouncing up and down", "bounce up and down"], ("motion", "falls", None))
    add(["bounces", "bouncing", "bounce", "bouncy"], ("bounces",))
    wall_verbs = ("bounces off", "bounces on", "bouncing off", "bounce off", "hits", "hitting", "hit", "reaches", "reaching",
                  "crashes into", "crashing into", "crash into", "bumps into", "bumping into", "bump into", "collides with",
                  "colliding with", "collide with", "bounces against", "bouncing against", "bounce against", "rebounds off")
    for wall in vocab.WALLS:
        # and the other names users give a wall: "the ground", "the left-hand wall", "the right side wall"
        names = {"floor": ("the floor", "the ground"), "ceiling": ("the ceiling",)}.get(
            wall, (f"the {wall} wall", f"the {wall} hand wall", f"the {wall} side wall"))
        for name in names:
            for v in wall_verbs:
                for times in FLOOR_TIMES:
                    add([f"{v} {name}{times}", f"{v} {name.replace('the ', '')}{times}"], ("hits", wall))
                if wall in ("left", "right"):  # an object's spec holds one wall: the first, noted
                    other = "right" if wall == "left" else "left"
                    add([f"{v} the {wall} and {other} walls", f"{v} the {wall} and the {other} wall"], ("hits", wall, other))
        add([name.replace("the ", "") for name in names], ("noop",))  # "along the floor", "near the left wall"
    add(HIT_VERBS + ("hitting", "hit", "colliding with", "collide with", "bumping into", "bump into", "collides", "crashes into",
        "knocks", "knocks into", "bounces off", "bouncing off", "bounce off", "until", "meets", "strikes", "striking",
        "smashes into", "slams into", "pushes", "pushing", "touches", "touching", "sends"), ("reference",))
    add(["collide", "collide with each other", "collides with each other"], ("verb",))
    add(["which", "that", "who"], ("relative",))
    add(HIT_IT + ("knocks it", "is knocked", "is hit", "something", "comes to a stop", "stops", "stop")
        + REST_PHRASES + ("comes to rest", "comes to a rest", "lands", "lands on the floor")
        + ("passes behind", "disappears behind", "starts behind", "stays behind", "comes out", "behind", "hidden behind",
           "partly hidden behind", "hidden", "passes", "disappears")
        + tuple(VIEW_PHRASES.values()) + ("leaves the view", "out of view", "into view", "comes back into view", "comes back")
        + ("stands in the scene", "standing in the scene", "runs from floor to ceiling", "tall", "vertical", "in front of",
           "there is", "everything", "empty", "twice", "several times", "diagonally", "camera", "view", "frame"), ("noop",))
    # user phrasings the captions never use
    add(["no bar", "no bars", "without a bar", "without the bar", "without bar", "no occluder", "without an occluder",
         "without occluder", "no pillar", "without a pillar", "not behind a bar", "not behind the bar"], ("occluder", False))
    add(["gravity off", "gravity : off", "gravity is off", "turn off gravity", "turns off gravity", "turn gravity off",
         "gravity turned off", "gravity switched off",
         # longer than "with gravity" (on), which the longest match would otherwise take first
         "with gravity off", "with gravity turned off", "with gravity switched off", "with the gravity off"],
        ("gravity", False))
    add(["gravity on", "gravity : on", "gravity turned on"], ("gravity", True))
    # "gravity disabled", "in 0 gravity", "gravity: none" were gravity on: "gravity" read, the rest not
    add(["gravity disabled", "gravity is disabled", "disabled gravity", "gravity : disabled", "gravity none", "gravity : none",
         "gravity 0", "gravity : 0", "gravity is 0", "gravity zero", "gravity is zero", "0 gravity", "0g", "0 g",
         "outer space", "in outer space"], ("gravity", False))
    add(["gravity enabled", "gravity is enabled", "enabled gravity", "gravity : enabled", "normal gravity", "earth gravity",
         "earth s gravity", "real gravity"], ("gravity", True))
    add(["on the moon", "on mars"], ("note", "the world's gravity is on or off"))
    add(["gravity is not on", "gravity isn t on"], ("gravity", False))
    add(["low gravity", "weak gravity", "reduced gravity", "light gravity", "moon gravity", "anti gravity", "antigravity",
         "reverse gravity", "reversed gravity", "inverted gravity"], ("note", "the world's gravity is on or off"))
    add(["doesn t move", "don t move", "isn t moving", "never moves"], ("motion", "still", None))
    add(["camera does not pan", "camera doesn t pan", "camera doesn t move"], ("camera", "static"))
    # "camera static, a red ball falls": "static" alone is an object's, and made the ball still
    add(["camera static", "camera still", "camera fixed", "camera stationary", "camera is stationary", "stationary camera",
         "locked camera", "camera locked", "locked off camera", "camera : static"], ("camera", "static"))
    # and of the shot: "a static shot of a red ball falling" made the ball still
    add(["static shot", "still shot", "fixed shot", "locked off shot", "static view", "fixed view", "view is fixed", "view is static",
         "no camera movement", "no camera motion", "without camera movement", "no camera moves"], ("camera", "static"))
    for d in ("left", "right"):
        add([f"panning shot to the {d}", f"panning shot {d}", f"a pan to the {d}", f"a pan {d}"], ("camera", f"pan-{d}"))
    # camera moves the world has not: "tilts up" made an object moving up. The verb is still an
    # unknown word: the world's captions never say it, and generate warns of those
    for v, ds in (("tilts", ("up", "down")), ("tilting", ("up", "down")), ("tilt", ("up", "down")), ("zooms", ("in", "out")),
                  ("zooming", ("in", "out")), ("zoom", ("in", "out")), ("follows", ()), ("tracks", ()), ("tracking", ()),
                  ("rotates", ()), ("orbits", ()), ("shakes", ())):
        add([f"{c}{v}{d}" for c in ("camera ", "view ") + (("",) if ds else ()) for d in ("",) + tuple(f" {d}" for d in ds)
             if c or d], ("note", "the camera pans left or right, or holds still", v))
    for d in ("left", "right"):  # a place, not a motion: the world places objects itself
        add([f"{p} the {d}" for p in ("on", "at", "in")] + [f"{p} the {d} side" for p in ("on", "at", "in")]
            + [f"{d} side", f"to the {d} of", f"on the {d} of", f"on the {d} hand side"], ("note", "objects are placed by the world"))
    add(["in the middle", "in the center", "in the centre", "at the top", "at the bottom"], ("note", "objects are placed by the world"))
    add(["close up", "closeup", "close up shot", "close up view"],
        ("note", "a clip opens on the wide shot; ask for 'then cut to a close-up of the red ball'"))
    add(NEGATIONS, ("negation",))
    add(["they", "both", "all", "all of them", "both of them"], ("group",))
    # one of objects counted before: "two balls, one falls and the other moves right"
    add(["the first", "first", "the first one"], ("pick", 0))
    add(["the second", "second", "the second one"], ("pick", 1))
    add(["the third", "third", "the third one"], ("pick", 2))
    add(["the last", "the last one"], ("pick", -1))
    add(["the other", "the other one", "the others"], ("pick", None))  # the next not yet picked
    add(["each other"], ("noop",))
    for phrase, action in list(lex.items()):  # "lying on the ground", "falls to the ground": the floor
        lex.setdefault(tuple("ground" if w == "floor" else w for w in phrase), action)
    for phrase, action in list(lex.items()):  # British spelling, read so that an unknown "grey" is named as typed
        lex.setdefault(tuple("grey" if w == "gray" else w for w in phrase), action)
    return lex


_LEXICON = _lexicon()
_MAX_PHRASE = max(len(w) for w in _LEXICON)


def _tokens(text: str) -> list[str]:
    # unicode words, so that "café" comes back as an unknown word rather than vanishing; NFKC first,
    # so that full-width "ｒｅｄ" is "red"
    text = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    toks = re.findall(r"\d+\.\d+|[^\W_]+|[.,;:!?]|[^\w\s]", text)  # "1.5" is one token
    # of the other marks, pictographs are words ("a 🎈 falls" names something); the rest are dropped
    return [t for t in toks if t[0].isalnum() or t in ".,;:!?" or unicodedata.category(t) == "So"]


def _first_chars(text: str) -> str:
    """At most MAX_CHARS characters of `text`, cut before a word it would split ("red" cut to "re"
    read as an unknown word); a single word longer than that is cut where it must be."""
    if len(text) <= MAX_CHARS:
        return text
    head = text[:MAX_CHARS]
    if text[MAX_CHARS].isspace() or head[-1].isspace():
        return head
    space = max(head.rfind(c) for c in " \t\n\r")
    return head[:space] if space > 0 else head


def _quote(said: str) -> str:
    """A phrase of the prompt as a note quotes it: at most ~80 characters."""
    return repr(said if len(said) <= 80 else said[:77] + "...")


def _name(o: dict) -> str:
    return " ".join(w for w in (o.get("colour"), o.get("shape") or "object") if w)


def _does(motion: str) -> str:
    """A motion label as a note says it: "falls", "stays still", "moves up-left", "bounces-left"."""
    return {"falls": "falls", "still": "stays still"}.get(motion, motion if motion.startswith("bounces") else f"moves {motion}")


def parse_prompt(text: str) -> SceneSpec:
    """A prompt to a partial `SceneSpec`; never raises. Words it could not place are listed in
    `unknown_words` (once each, in order); changes it made to fit the world (too many objects, a
    repeated colour, falling without gravity) and phrases it read but could not keep (a negation, a
    place, a second motion) are explained in `notes`.

    >>> spec = parse_prompt("a big red ball bounces off the left wall on a white background")
    >>> spec.objects, spec.background
    ([ObjectSpec(colour='red', shape='ball', size='large', motion=None, hits='left')], 'white')
    """
    return _parse(text)[0]


def _parse(text: str) -> tuple[SceneSpec, list[tuple[str, str | None]]]:
    """`parse_prompt`'s spec, and the (kind, value) of each phrase a negation denied ("does not
    bounce" is ("bounces", None)): a spec cannot hold them, but `expand_prompt` must not draw them."""
    notes: list[str] = []
    denied: list[tuple[str, str | None]] = []
    if isinstance(text, (bytes, bytearray)):  # bytes are UTF-8 text, not "b'...'"
        text = bytes(text).decode("utf-8", "replace")
    text = "" if text is None else text if isinstance(text, str) else str(text)
    if len(text) > MAX_CHARS:
        text = _first_chars(text)
        notes.append(f"prompt longer than {MAX_CHARS} characters; only the first {len(text)} were read")
    toks, shots, shot_error, unread = split_shot_phrases(_tokens(text), _object_word)  # "then cut to ..." phrases
    if shot_error:
        notes.append(shot_error)
    objects: list[dict] = []  # attribute dicts; "_ref" marks an object only named in passing, "_hit" one hit
    subject: list[dict] = []  # the objects the next motion or event phrase is about
    mention: dict | None = None  # {"attrs", "count", "ref", "the"} still taking adjectives and a noun
    last_ref: dict | None = None
    last_new: list[dict] = []  # the objects of the last mention: what "which" means without a reference
    scene: dict = {"background": None, "gravity": None, "camera": None, "occluder": None}
    scene_said: dict[str, str] = {}  # the words that set a scene attribute, to name in a conflict note
    implied_gravity: bool | None = None  # from "floats" or a bare "bounces"; an explicit word wins
    unknown: list[str] = []
    count: int | None = None  # "two" before a mention: that many objects of it
    count_word = ""
    referencing = False  # after "hits" / "until": the next mention names another object
    pending: list[tuple[str, str, str]] = []  # (kind, value, words) said before its object: "a falling red ball"
    fill: list[dict] = []  # a counted mention's objects, open to colours said next: "two balls, one red and one blue"
    shapeless: list[dict] = []  # colour-only mentions joined by "and" / ",", for the next shape: "red and blue balls"
    sentence: list[dict] = []  # objects named since the last ".", "!" or "?": what "they" and "both" mean
    sep: str | None = None  # the separator since the previous phrase
    negated: str | None = None  # "not", "without", ... right before the next phrase
    predicated: list[dict] = []  # the objects a colour or size was just said of ("the ball is big")
    counted: list[dict] = []  # the objects of the last counted mention, for "one", "the other", "the second"
    picked: list[int] = []  # which of them were picked so far
    extra = 0  # objects asked beyond those made ("11 balls" makes 4: enough to keep 3 and say so)

    def apply(objs: list[dict], kind: str, value: str, said: str) -> None:
        """A motion or wall phrase to objects. Each keeps its first; a second motion is noted unless
        a collision came between ("hits the blue ball and heads to the left" is after the hit). A
        second wall is not: a caption tells every wall hit, and a wall that does not fit the motion
        ("falls and bounces off the left wall") is true of a clip whose collision was not seen."""
        for o in objs:
            if kind == "hits":
                o.setdefault("hits", value)
            elif o.get("motion") in (None, value):
                o["motion"] = value
            elif not o.get("_hit"):
                notes.append(f"{_quote(said)} ignored: the {_name(o)} already {_does(o['motion'])}; an object has one motion")

    def take_pending(objs: list[dict]) -> None:
        for kind, value, said in pending:
            apply(objs, kind, value, said)
        pending.clear()

    def close() -> None:
        nonlocal mention, subject, last_ref, last_new, fill, shapeless, extra
        if mention is None:
            return
        attrs, m = mention["attrs"], mention
        mention = None
        if m["ref"]:  # "hits the blue ball": an object already there (not the hitter), or one to add
            key = "colour" if "colour" in attrs else "shape"
            same = [o for o in objects if o not in subject and key in attrs and o.get(key) == attrs[key]]
            if same:
                last_ref = same[-1]
                last_ref.update({**attrs, **last_ref})  # fill in, never overwrite
            else:
                last_ref = {**attrs, "_ref": True}
                objects.append(last_ref)
            last_ref["_hit"] = True
            take_pending([last_ref])
            sentence.append(last_ref)
            return
        if m["count"] == 0:  # "zero balls": nothing to add, and what follows is about nothing
            notes.append(f"{_quote(' '.join([m['count_word'], *m['words']]))} asks for no object; none added")
            subject, last_ref = [{}], None
            pending.clear()
            return
        open_ = [o for o in fill if "colour" not in o]
        if "shape" not in attrs and "colour" in attrs and m["count"] in (None, 1) and open_:
            open_[0].update(attrs)  # "two balls, one red and one blue": a colour of the counted ones
            take_pending(open_[:1])
            return
        same = [o for o in objects if all(o.get(k) == v for k, v in attrs.items())]
        if m["the"] and m["count"] is None and len(same) == 1:  # "A red ball. The ball bounces": that ball
            subject, last_ref, last_new = same, None, same
            take_pending(same)
            sentence.append(same[0])
            return
        n = 1 if m["count"] is None else m["count"]
        new = [dict(attrs) for _ in range(min(n, vocab.MAX_OBJECTS + 1))]
        extra += n - len(new)
        if n > 1 and "colour" in attrs:
            notes.append(f"{n} {attrs['colour']} objects asked; objects need distinct colours, only the first is {attrs['colour']}")
            for o in new[1:]:
                o.pop("colour")
        named = [o for o in objects if o.get("_ref") and "colour" in attrs and o.get("colour") == attrs["colour"]]
        for o in named:  # named in passing before it was described: one object, placed here
            objects.remove(o)
            new[0].update({k: v for k, v in o.items() if k not in new[0] and not k.startswith("_")})
        chained = sep in ("and", ",")
        if "shape" in attrs and chained:  # "red and blue balls": the colours said before take the shape
            for o in shapeless:
                o.setdefault("shape", attrs["shape"])
        shapeless = (shapeless if chained else []) + new if "shape" not in attrs and n == 1 else []
        fill = new if n > 1 else []
        if n > 1:
            counted[:], picked[:] = new, []
        objects.extend(new)
        # "a red ball and a blue ball fall": objects joined by "and" that have done nothing yet share
        # what follows; "a red ball falls and a blue ball moves left" starts a new subject
        grow = chained and all("motion" not in o and "hits" not in o and "_did" not in o for o in subject)
        subject, last_ref, last_new = (subject + new if grow else new), None, new
        take_pending(new)
        sentence.extend(new)

    i = 0
    while i < len(toks):
        for n in range(min(_MAX_PHRASE, len(toks) - i), 0, -1):
            action = _LEXICON.get(tuple(toks[i : i + n]))
            if action is not None:
                break
        else:
            tok, n = toks[i], 1
            action = ("sep",) if tok in SEPARATORS else ("stop",) if tok in STOPWORDS else ("unknown",)
            if tok == UNREAD:  # a shot phrase not understood: its words are unknown, none is a scene word
                action = ("unread",)
            elif re.fullmatch(r"\d+\.\d+", tok):  # "1.5 balls"
                action = ("number", float(tok))
            elif re.fullmatch(r"\d+", tok):  # "11 balls"; a huge one is still more than the world holds
                action = ("number", int(tok) if len(tok) <= 9 else 10**9)
        i += n
        kind, said = action[0], " ".join(toks[i - n : i])
        object_next = i < len(toks) and (_object_word(toks[i]) is not None or toks[i] in ONE_WORDS)
        if said == "both" and object_next:  # "both balls fall": two of them
            action, kind = ("count", 2), "count"
        # "one" as a pronoun: not "a blue one" (the shape said before), nor "one ball" (a count)
        one = said == "one" and (mention is None or "shape" in mention["attrs"]) and not object_next
        if kind == "pick" or one:
            close()  # a counted mention still open ("two balls the first falls") is made first
        if (kind == "pick" or one) and counted and not object_next:
            # "one falls" after "two balls": one of those, not all; else a word that says nothing
            k = action[1] if kind == "pick" else None
            k = next((j for j in range(len(counted)) if j not in picked), len(counted) - 1) if k is None else k
            if -len(counted) <= k < len(counted):
                subject = [counted[k]]
                picked.append(k % len(counted))
            continue
        if kind == "pick":
            continue
        # "the ball is big and red": a word after "and" / "," goes on saying what the object is
        also = predicated if kind in ("colour", "size") and i > n and toks[i - n - 1] in ("and", ",") else []
        predicated = predicated if kind in ("sep", "stop") else []
        if negated is not None and kind not in ("stop", "negation"):
            if kind in ("occluder", "gravity"):  # "without a bar", "not under gravity": the other value
                action = (kind, not action[1])
            elif kind in ("colour", "shape", "size", "motion", "hits", "bounces", "background", "camera", "note"):
                # a spec has no "not": the phrase is left out, and said; a negated object is all its words
                while kind in ("colour", "shape", "size") and i < len(toks) and (_object_word(toks[i]) or toks[i] in ONE_WORDS):
                    said, i = f"{said} {toks[i]}", i + 1
                notes.append(f"{_quote(negated + ' ' + said)} not read: a spec cannot say what is not so")
                if kind != "note":
                    denied.append((kind, action[1] if len(action) > 1 else None))
                negated = None
                close()
                continue
            negated = None
        if kind == "hits" and len(action) > 2:  # "bounces off the left and right walls"
            notes.append(f"an object bounces off one wall in a spec; {_quote(said)} read as the {action[1]} wall")
        if kind == "motion" and action[-1] is not None and implied_gravity is None:
            implied_gravity = action[-1]
        # a bare direction right after the object hit is where the hit sends it: "knocks the blue ball to the right"
        knocked = (kind == "motion" and action[1] in vocab.DIRECTIONS and mention is not None and mention["ref"]
                   and toks[i - n] not in _VERB_WORDS)
        if kind in ("motion", "hits") and action[1] is not None:
            # said before its object ("a falling red ball", "a red falling ball", "and a still box"):
            # it waits for the next mention, so that no object nobody named is made
            before = toks[i - n - 1] if i > n else ""
            opening = mention is not None and "shape" not in mention["attrs"] and i < len(toks) and _object_word(toks[i])
            if opening or (mention is None and (not subject or before in ("a", "an", "the"))):
                pending.append((kind, action[1], said))
                continue
        if said in ONE_WORDS and mention is not None and "shape" not in mention["attrs"]:
            # "a red ball and a blue one": the shape of the object named last
            shape = next((o["shape"] for o in reversed(objects) if "shape" in o), None)
            if shape is not None:
                mention["attrs"]["shape"] = shape
            mention["words"].append(said)
            continue
        if kind == "colour" and len(action) > 2 and not any(n.startswith(f"{action[2]!r} read as") for n in notes):
            notes.append(f"{action[2]!r} read as {action[1]}: the world's nearest colour ({', '.join(vocab.COLOURS)})")
        before = toks[i - n - 1] if i > n else ""
        if ((before in ("is", "are") and kind in ("colour", "size") or before in PAINTED and kind == "colour" or also)
                and (mention is None or "shape" in mention["attrs"]) and not (i < len(toks) and (_object_word(toks[i]) or toks[i] in ONE_WORDS))):
            # "the ball is red", "it is big", "a ball coloured red": the object just named (else the
            # subject), not a new object; "hits the ball in blue" is the ball hit
            named = mention
            close()
            target = also or (subject if named is None else [last_ref] if named["ref"] else last_new)
            owners = [o for o in target if kind not in o]
            if owners and (kind == "size" or len(owners) == 1):
                for o in owners:
                    o[kind] = action[1]
                predicated = owners
                continue
        if kind in ("colour", "shape", "size"):
            if mention is not None and kind in mention["attrs"] and "shape" not in mention["attrs"]:
                # "a red blue ball": one object, the first word kept
                notes.append(f"{_quote(' '.join(mention['words'] + [said]))}: two {kind}s for one object; kept {mention['attrs'][kind]}")
                continue
            if mention is None or kind in mention["attrs"] or "shape" in mention["attrs"]:
                close()
                mention = {"attrs": {}, "count": count, "count_word": count_word, "words": [], "ref": referencing,
                           "the": toks[i - n - 1] == "the" if i > n else False}
                count, referencing = None, False
            mention["attrs"][kind] = action[1]
            mention["words"].extend(toks[i - n : i])
            continue
        if kind == "stop":
            continue
        if said in (",", "and") and mention is not None and "shape" not in mention["attrs"] and i < len(toks):
            word = _object_word(toks[i])  # "a big, red ball", "a big and red ball": one object's words
            if word is not None and word[0] not in ("shape", *mention["attrs"]):
                continue
        close()
        if kind != "sep":
            shapeless = []
        if kind not in ("sep", "count", "number"):
            fill = []
        if kind in ("verb", "bounces", "reference") or kind == "motion" and action[1] is None:
            for o in subject:  # it did something of its own: "a red ball rolls and a blue ball falls" is not both falling
                o["_did"] = True
        if kind == "unknown":
            if toks[i - 1] not in unknown:
                unknown.append(toks[i - 1])
                if toks[i - 1] in NEUTRALS and i < len(toks) and _object_word(toks[i]):  # "a white ball": said why
                    notes.append(f"{toks[i - 1]!r} is no object colour: objects are {', '.join(vocab.COLOURS)} "
                                 f"(the backgrounds are {', '.join(vocab.BACKGROUNDS)})")
        elif kind == "unread":
            for w in unread.pop(0):
                if w not in STOPWORDS and w not in SEPARATORS and w not in ("cut", "cuts") and w not in unknown:
                    unknown.append(w)
        elif kind == "sep" and said in (".", "!", "?"):
            sentence = []
        elif kind == "negation":
            negated = said
        elif kind == "count":
            count, count_word = action[1], toks[i - 1]
        elif kind == "number":
            value = action[1]
            if float(value).is_integer():
                count, count_word = int(value), toks[i - 1]
            elif object_next:  # "1.5 balls"; "falls at 9.8 m/s" counts nothing
                notes.append(f"{toks[i - 1]!r} is not a whole number of objects; read as one")
        elif kind == "reference":
            referencing = True
            for o in subject:  # what it does next may be because of the hit ("... and heads left")
                o["_hit"] = True
        elif kind == "relative":  # "hits a blue square which falls", "a red ball and a blue box that falls"
            subject = [last_ref] if last_ref is not None else last_new or subject
        elif kind == "group":  # "they", "both": every object of the sentence
            group = list({id(o): o for o in sentence}.values())
            subject = group if len(group) > 1 else subject
        elif kind in ("motion", "hits"):
            if action[1] is not None:
                apply([last_ref] if knocked and last_ref is not None else subject, kind, action[1], said)
        elif kind == "bounces":
            implied_gravity = True if implied_gravity is None else implied_gravity  # bouncing needs a floor
        elif kind == "note":
            notes.append(f"{_quote(said)} not read: {action[1]}")
            if len(action) > 2 and action[2] not in unknown:  # a word the captions never use
                unknown.append(action[2])
        elif kind in ("background", "camera", "gravity", "occluder"):
            if len(action) > 2:  # "pans left and right"
                notes.append(f"the camera pans one way in a clip; {_quote(said)} read as {action[1].replace('-', 's ')}")
            if scene[kind] is None:
                scene[kind], scene_said[kind] = action[1], said
            elif scene[kind] != action[1]:
                notes.append(f"{kind} said twice, {_quote(scene_said[kind])} and {_quote(said)}; kept the first, {scene[kind]}")
        if kind not in ("count", "number", "reference", "unknown", "negation"):  # "hits a shiny ball": still a reference
            count, referencing = None, False
        sep = said if kind == "sep" else None
    close()
    if pending:  # "falling on a white background": an object nobody named
        objects.append({})
        take_pending(objects[-1:])
    if negated is not None:
        notes.append(f"{_quote(negated)} at the end denies nothing; not read")

    for o in objects:
        for k in [k for k in o if k.startswith("_")]:
            o.pop(k)
    if len(objects) + extra > vocab.MAX_OBJECTS:
        notes.append(f"{len(objects) + extra} objects asked; the world holds at most {vocab.MAX_OBJECTS}, kept the first {vocab.MAX_OBJECTS}")
        objects = objects[: vocab.MAX_OBJECTS]
    seen: set[str] = set()
    for o in objects:
        if o.get("colour") in seen:
            notes.append(f"colour {o['colour']!r} named twice; objects need distinct colours, the second gets another")
            o.pop("colour")
        elif o.get("colour"):
            seen.add(o["colour"])
    shots = fit_shots(shots, notes)
    for sh in shots:  # a close-up of an object the scene part did not name: it is in the scene
        _place_close_up(sh, objects, notes)
    if scene["gravity"] is None:
        scene["gravity"] = implied_gravity
    if scene["gravity"] is False and any(o.get("motion") in vocab.GRAVITY_MOTIONS for o in objects):
        scene["gravity"] = True
        notes.append("falling and bouncing need gravity; gravity turned on")
    if scene["gravity"] or scene["gravity"] is None and any(o.get("motion") in vocab.GRAVITY_MOTIONS for o in objects):
        for o in objects:  # as sample_scene fits it: "a red ball falls and a blue ball rises" drew the blue one falling
            if o.get("motion") in vocab.DIRECTIONS:
                dx = vocab.DIRECTIONS[o["motion"]][0]
                drawn = "is thrown to the right" if dx > 0 else "is thrown to the left" if dx < 0 else "falls"
                notes.append(f"gravity is one law for the scene: under it, the {_name(o)} that {_does(o['motion'])} "
                             f"is drawn as one that {drawn}")
    return SceneSpec(objects=[ObjectSpec(**o) for o in objects], unknown_words=unknown, notes=notes, shots=shots, **scene), denied


def _place_close_up(shot: ShotSpec, objects: list[dict], notes: list[str]) -> None:
    """Make the scene hold the object a close-up asks for: the object named with its colour (given
    the shape if open); else a new object if there is room; else an object whose colour or shape is
    still open. What cannot be (the red object is a ball, the close-up asks for the red square) is
    said in `notes`; rendering such a spec raises."""
    if shot.kind != "close-up" or (shot.colour is None and shot.shape is None):
        return
    want = {k: v for k, v in (("colour", shot.colour), ("shape", shot.shape)) if v is not None}
    owner = next((o for o in objects if shot.colour is not None and o.get("colour") == shot.colour), None)
    if owner is None and shot.colour is None:
        owner = next((o for o in objects if o.get("shape") == shot.shape), None)
    if owner is None and len(objects) < vocab.MAX_OBJECTS:
        objects.append(dict(want))
        return
    if owner is None:  # no room: an object still open may be it
        colours = {o.get("colour") for o in objects}
        owner = next((o for o in objects if all(o.get(k) in (None, v) for k, v in want.items())
                      and not (o.get("colour") is None and shot.colour in colours)), None)
    if owner is not None and all(owner.get(k) in (None, v) for k, v in want.items()):
        for k, v in want.items():
            owner.setdefault(k, v)
        return
    problem = close_up_conflict(shot, [(o.get("colour"), o.get("shape")) for o in objects])
    if problem:
        notes.append(problem)


def _object_word(token: str) -> tuple | None:
    """("colour" | "shape" | "size", value) for a one-word object word, else None."""
    action = _LEXICON.get((token,))
    return action if action is not None and action[0] in ("colour", "shape", "size") else None


def parse_shots(text: str) -> list[ShotSpec]:
    """The shots a prompt asks for, in order (the wide view first; empty for one shot). Unlike
    `parse_prompt` it raises: a ValueError naming the shot phrase it could not understand."""
    notes: list[str] = []
    _, shots, error, _ = split_shot_phrases(_tokens(_first_chars("" if text is None else str(text))), _object_word)
    if error:
        raise ValueError(error)
    return fit_shots(shots, notes)


def shows_prompt(spec: SceneSpec, traj: Trajectory, visible: np.ndarray) -> bool:
    """Does a simulated draw show what `spec` names: every object in view (visible fraction >= SEEN
    on some frame, so not behind the bar or out of frame throughout), and each wall an object
    should bounce off reached where the video shows it (the captions' rule for an event)? An image
    shows no bounce. `expand_prompt` and the eval's simulator (`simulate_prompt`) redraw until it does."""
    if visible.size and visible.max(0).min() < SEEN:
        return False
    times = traj.times

    def shown(i: int, t: float) -> bool:
        k = int(np.searchsorted(times, t, side="right"))
        return 0 < t <= times[-1] and visible[max(k - 1, 0) : k + 1, i].max() >= SEEN

    return len(times) == 1 or all(
        any(e.kind == "wall" and e.object == i and e.other == o.hits and shown(i, e.t) for e in traj.events)
        for i, o in enumerate(spec.objects)
        if o.hits
    )


CAPTION_STYLES = ("short", "medium", "detailed")


def expand_prompt(text: str, seed: int = 0, num_frames: int = 17, fps: float = 8.0, aspect: float = 1.0,
                  style: str = "detailed") -> str:
    """A short prompt in the detailed caption style (or `style` "medium" or "short"): what it leaves
    open is drawn at random (seeded), then a scene that fits is simulated and captioned, so the
    expansion is something the world can show. What the prompt says (colours, shapes, sizes,
    motions, walls, background, gravity, camera, occluder) is kept: a draw that does not show it
    (`shows_prompt`) is drawn again.

    >>> expand_prompt("a red ball falls", seed=0)  # doctest: +SKIP
    'A large red ball falls, then bounces on the floor twice. Under gravity on a gray background; the camera is static.'
    """
    from spacetime.world.clip import check_clip_args  # here: clip.py imports this module

    check_clip_args(num_frames, 64, 64, fps)
    if style not in CAPTION_STYLES:
        raise ValueError(f"style must be one of {', '.join(CAPTION_STYLES)}, got {style!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_aspect(aspect)
    spec, denied = _parse(text)
    if parse_shots(text):  # the user's shot list is kept: make_clip draws the scene and the cuts
        from spacetime.world.clip import make_clip

        return make_clip(seed, num_frames=num_frames, height=64, width=max(1, round(64 * aspect)), fps=fps, spec=spec).captions[style]
    times = np.arange(num_frames) / fps
    tries = 50  # as the eval's simulator: a caption that drops a wall the user asked for is a worse one
    for attempt in range(tries):  # as make_clip, a draw whose bodies jam is drawn anew; and one that
        rng = np.random.default_rng(seed if attempt == 0 else [seed, attempt])  # does not show the prompt
        scene = sample_scene(rng, duration=max(float(times[-1]), 1 / fps), aspect=aspect, spec=spec)
        try:
            traj = simulate(scene, times)
        except JamError:
            if attempt == tries - 1:
                raise
            continue
        visible = visible_fraction(scene, traj, 64, max(1, round(64 * aspect)))
        # and, stricter than the eval, no object is behind the bar in every frame: "stays behind the bar" hides it
        if (shows_prompt(spec, traj, visible) and visible.max(0).min() >= HIDDEN) or attempt == tries - 1:
            captions = caption_clip(scene, traj, visible, rng)
            # nor what the prompt denies: "a ball that does not bounce" was expanded as "drops and bounces"
            if attempt == tries - 1 or not _shows_denied(spec, denied, parse_prompt(captions["detailed"])):
                return captions[style]
    raise AssertionError("unreachable")


def _shows_denied(spec: SceneSpec, denied: list[tuple[str, str | None]], shown: SceneSpec) -> bool:
    """Does `shown` (a draw's caption, parsed) hold what the prompt denied, where the prompt left it
    open? One a prompt also asks for ("a red ball and a ball that is not red") is not checked:
    a denial is not tied to its object."""
    for kind, value in denied:
        if kind == "bounces":  # a bounce: falling, bouncing along, or off a wall
            if not any(o.motion in vocab.GRAVITY_MOTIONS or o.hits for o in spec.objects) and any(
                    o.motion in vocab.GRAVITY_MOTIONS or o.hits for o in shown.objects):
                return True
        elif kind in ("background", "camera"):
            if getattr(spec, kind) is None and getattr(shown, kind) == value:
                return True
        elif value is not None and not any(getattr(o, kind) == value for o in spec.objects) and any(
                getattr(o, kind) == value for o in shown.objects):
            return True
    return False


def complete_prompt(text: str, seed: int = 0, num_frames: int = 17, fps: float = 8.0, aspect: float = 1.0,
                    seen: list[tuple[str, str | None]] | None = None) -> str:
    """`text` as typed when every object it names has a colour (or it names none: an empty scene,
    a camera move) in the world's own words (a colour it lacks, "pink", is written as the one it is
    read as, "magenta"), else completed: the world's captions always name each object's colour, and a
    model trained on them draws an empty scene for "a ball falls" (and lets the object of a given
    image or video vanish). Without `seen`, the prompt's medium-style expansion (`expand_prompt`):
    what it says is kept, what it leaves open drawn (seeded). With `seen` — the (colour, shape) of
    the objects an input image or video shows, largest first (`objects_in`) — the prompt as typed
    with those colours written in front of the shapes it names: the scene is the input's."""
    text = _world_colour_words(text)
    spec, denied = _parse(text)
    if all(o.colour is not None for o in spec.objects):
        return text
    if seen is None:
        medium = expand_prompt(text, seed=seed, num_frames=num_frames, fps=fps, aspect=aspect, style="medium")
        if _says_all(spec, medium):
            return medium
        # the medium style names no background, camera or bar, a size in 30% of mentions and one event
        # an object: "a big ball on a white background" lost both. The detailed caption of the same
        # draw says them all
        return expand_prompt(text, seed=seed, num_frames=num_frames, fps=fps, aspect=aspect, style="detailed")
    # never a colour the prompt denies: "a ball that is not red" is not written "a red ball that is not red"
    return _name_colours(text, spec, [(c, sh) for c, sh in seen if ("colour", c) not in denied])


def _says_all(spec: SceneSpec, caption: str) -> bool:
    """Does `caption` (an expansion of the prompt read as `spec`) say everything the prompt does: each
    object's colour, shape, size and motion, the wall it hits, the background, camera and bar?"""
    back = parse_prompt(caption)
    if any(getattr(spec, k) is not None and getattr(back, k) != getattr(spec, k) for k in ("background", "camera")):
        return False
    if spec.occluder and not back.occluder:
        return False
    pool = list(back.objects)
    for o in spec.objects:
        want = {k: getattr(o, k) for k in ("colour", "shape", "size", "motion") if getattr(o, k) is not None}
        match = next((b for b in pool if all(getattr(b, k) == v for k, v in want.items())), None)
        if match is None:
            return False
        pool.remove(match)
        # a spec keeps an object's first wall, and a caption tells every wall hit: read the words
        if o.hits and {"floor": "floor", "ceiling": "ceiling"}.get(o.hits, f"{o.hits} wall") not in caption.lower():
            return False
    return True


def _world_colour_words(text: str) -> str:
    """Colour words the world lacks written as the world's colour `parse_prompt` reads them as
    ("a pink triangle" -> "a magenta triangle"): the captions never say "pink", and the shipped
    model drew an empty scene for 65% of 60 prompts with their colours said so (docs/captions.md)."""
    return re.sub(r"[^\W_]+", lambda m: COLOUR_SYNONYMS.get(unicodedata.normalize("NFKC", m.group()).lower(), m.group()),
                  text)


def objects_in(frames: np.ndarray, fps: float = 8.0) -> list[tuple[str, str | None]]:
    """The (colour, shape) of each world-palette object uint8 (T, H, W, 3) frames show, the largest
    first, read by the eval's tracker; empty for footage without the world's colours."""
    from spacetime.eval.track import track  # here: the eval imports this module

    found = [(float(t.coverage.max()), colour, t.shape() or t.shape(t.present))
             for colour, t in track(frames, fps).tracks.items() if t.present.any()]
    return [(colour, shape) for _, colour, shape in sorted(found, key=lambda f: -f[0])]


def _name_colours(text: str, spec: SceneSpec, seen: list[tuple[str, str | None]]) -> str:
    """`text` with a colour of `seen` before each shape word that has none: an unused object of that
    shape first, else the one of that shape already named ("a ball ... the ball"), else the largest
    unused; never a colour the prompt names, nor before a shape whose object the prompt colours
    after it ("the ball is red", "a ball in red": read back, a colour there made a second object).
    A prompt that names no shape ("it rolls right") is prefixed with the first object seen."""
    named = {o.colour for o in spec.objects if o.colour}
    left = [(c, sh) for c, sh in seen if c not in named]
    if not left:
        return text
    words = list(re.finditer(r"[^\W_]+", text))
    uncoloured = sum(o.colour is None for o in spec.objects)
    shift, used = 0, set()  # characters written in so far; colours written
    for k, m in enumerate(words):
        kind = _object_word(unicodedata.normalize("NFKC", m.group()).lower())
        if kind is None or kind[0] != "shape":
            continue
        before = k  # back over size words to the first word of the noun phrase
        while before > 0 and (_object_word(words[before - 1].group().lower()) or ("",))[0] in ("size", "colour"):
            before -= 1
        if any((_object_word(w.group().lower()) or ("",))[0] == "colour" for w in words[before:k]):
            continue
        free = [c for c in left if c[0] not in used]
        same = [c for c, sh in free if sh == kind[1]]
        again = [c for c, sh in left if sh == kind[1] and c in used]  # "a ball ... the ball": the same one
        colour = same[0] if same else again[0] if again else free[0][0] if free else None
        if colour is None:
            continue
        at = m.start() + shift  # after any size word: "the big red ball", as captions say
        written = text[:at] + colour + " " + text[at:]
        back = parse_prompt(written)
        now = sum(o.colour is None for o in back.objects)
        if len(back.objects) != len(spec.objects) or (now >= uncoloured and colour not in used):
            continue  # the object has its colour elsewhere: writing one in made another object
        text, uncoloured, shift = written, now, shift + len(colour) + 1
        used.add(colour)
    if used:
        return text
    colour, shape = left[0]
    return f"a {colour} {shape or 'ball'}; {text}"
