"""Captions agree with the ground truth; parse_prompt reads them back; expand_prompt keeps the user's words."""

import re

import numpy as np
import pytest

from spacetime.world import vocab
from spacetime.world.captions import expand_prompt, parse_prompt
from spacetime.world.clip import make_clip, stream_seed


def clips(n, **kw):
    for i in range(n):
        split = "heldout" if i % 4 == 3 else "train"
        yield make_clip(stream_seed(11, i, split), split=split, **kw)


CLIPS = list(clips(160))


def test_detailed_caption_parses_back_to_the_scene():
    for clip in CLIPS:
        spec = parse_prompt(clip.captions["detailed"])
        assert not spec.unknown_words, (clip.captions["detailed"], spec.unknown_words)
        assert len(spec.objects) == len(clip.scene.objects), clip.captions["detailed"]
        for got, obj in zip(spec.objects, clip.scene.objects):
            assert (got.colour, got.shape, got.size, got.motion) == (obj.colour, obj.shape, obj.size, obj.motion)
        assert spec.background == clip.scene.background
        assert spec.camera == clip.scene.camera
        assert bool(spec.occluder) == (clip.scene.occluder is not None)
        assert spec.gravity == clip.scene.gravity


@pytest.mark.parametrize("length", ["short", "medium"])
def test_short_and_medium_name_every_object(length):
    for clip in CLIPS:
        spec = parse_prompt(clip.captions[length])
        assert not spec.unknown_words, clip.captions[length]
        assert [(o.colour, o.shape) for o in spec.objects] == [(o.colour, o.shape) for o in clip.scene.objects]
        if length == "medium":
            assert [o.motion for o in spec.objects] == [o.motion for o in clip.scene.objects]


def _sentences(clip):
    return [s for s in re.split(r"(?<=\.) ", clip.captions["detailed"])][: len(clip.scene.objects)]


def test_claimed_events_happened():
    claims = 0
    for clip in CLIPS:
        ev = clip.trajectory.events
        t_end = clip.trajectory.times[-1]
        for i, sentence in enumerate(_sentences(clip)):
            mine = [e for e in ev if e.t <= t_end and (e.object == i or (e.kind == "collision" and e.other == i))]
            for wall in re.findall(r"bounces off the (left wall|right wall|ceiling)", sentence):
                assert any(e.kind == "wall" and e.other == wall.split()[0] for e in mine), sentence
                claims += 1
            if "bounces on the floor" in sentence:
                assert any(e.kind == "wall" and e.other == "floor" for e in mine), sentence
                claims += 1
            for colour, shape in re.findall(r"(?:hits|collides with|bumps into) the (\w+) (\w+)", sentence):
                j = [o.colour for o in clip.scene.objects].index(colour)
                assert clip.scene.objects[j].shape == shape
                assert any(e.kind == "collision" and {e.object, e.other} == {i, j} for e in mine), sentence
                claims += 1
            if "comes to rest" in sentence:
                assert any(e.kind == "rest" for e in mine)
            vis = clip.visible[:, i]
            if "passes behind" in sentence:  # hidden, then seen again
                k = int(np.argmax(vis < 0.5))
                assert vis[k] < 0.5 and (vis[k:] > 0.5).any(), sentence
                claims += 1
            if "disappears behind" in sentence:
                assert vis[-1] < 0.5, sentence
            if "starts behind" in sentence:
                assert vis[0] < 0.5, sentence
            if "leaves the frame" in sentence:
                assert clip.visible[0, i] > 0.05 and clip.visible[-1, i] < 0.05
    assert claims > 100


def test_motion_words_agree_with_velocity():
    checked = 0
    for clip in CLIPS:
        ev = clip.trajectory.events
        for i, obj in enumerate(clip.scene.objects):
            v = clip.trajectory.velocities[:, i]
            if obj.motion in vocab.DIRECTIONS:
                dx, dy = vocab.DIRECTIONS[obj.motion]
                assert np.sign(v[0, 0]) == np.sign(dx) and np.sign(v[0, 1]) == np.sign(dy)
                if not any(e.object == i or e.other == i for e in ev if e.t <= clip.trajectory.times[-1]):
                    mean = v.mean(0)  # no event: the whole clip moves the stated way
                    assert np.sign(mean[0]) == np.sign(dx) and np.sign(mean[1]) == np.sign(dy)
                    checked += 1
            elif obj.motion == "falls":
                assert v[0, 0] == 0 and (v[1:, 1] < 0).any()
            elif obj.motion.startswith("bounces-"):
                assert np.sign(v[0, 0]) == (1 if obj.motion.endswith("right") else -1)
            elif obj.motion == "still":
                assert (v[0] == 0).all()
    assert checked > 20


def test_captions_deterministic_and_varied():
    a = make_clip(42).captions
    assert a == make_clip(42).captions
    wordings = {make_clip(s).captions["medium"].split(" ", 3)[-1] for s in range(60)}
    assert len(wordings) > 30


def test_image_captions_make_no_motion_claims():
    for s in range(30):
        clip = make_clip(s, num_frames=1)
        for text in clip.captions.values():
            spec = parse_prompt(text)
            assert all(o.motion is None and o.hits is None for o in spec.objects), text
            assert spec.camera is None and spec.gravity is None


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
    assert spec.objects[0].motion == "left"


def test_parse_names_unknown_words_and_never_raises():
    spec = parse_prompt("a purple dragon breathes fire on a red ball")
    assert set(spec.unknown_words) == {"purple", "dragon", "breathes", "fire"}
    assert [(o.colour, o.shape) for o in spec.objects] == [("red", "ball")]
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz ,.-;'\"!?0123456789éß☃\n\t")
    for _ in range(300):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 200))))
        parse_prompt(text)
    for junk in ["", "   ", "red " * 50, "ball ball ball ball", "two three balls", None, 123]:
        parse_prompt(junk)


def test_parse_fits_the_world_and_says_why():
    spec = parse_prompt("a red ball, a red square, a blue ball and a green ball")
    assert len(spec.objects) == 3 and len(spec.notes) == 2
    assert len({o.colour for o in spec.objects if o.colour}) == len([o for o in spec.objects if o.colour])


def test_expand_prompt_keeps_user_attributes_and_fills_the_rest():
    for seed in range(5):
        text = expand_prompt("a big red ball falls on a white background", seed=seed)
        spec = parse_prompt(text)
        red = [o for o in spec.objects if o.colour == "red"]
        assert len(red) == 1 and (red[0].shape, red[0].size, red[0].motion) == ("ball", "large", "falls")
        assert spec.background == "white" and spec.camera is not None and spec.gravity is True
    assert expand_prompt("a cyan square", seed=1) == expand_prompt("a cyan square", seed=1)
    spec = parse_prompt(expand_prompt("a cyan square", seed=1))
    assert spec.objects[0].size is not None and spec.objects[0].motion is not None and spec.background
