"""The procedural world: physics invariants, rasterizer, determinism, splits, dataset."""

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch

from spacetime.world import vocab
from spacetime.world.clip import make_clip, stream_seed
from spacetime.world.dataset import WorldDataset
from spacetime.world.physics import energy, simulate
from spacetime.world.render import render, visible_fraction
from spacetime.world.scene import (
    HELDOUT_TRIPLES,
    ObjectSpec,
    Occluder,
    Scene,
    SceneSpec,
    WorldObject,
    is_heldout,
    sample_scene,
)


def random_scenes(n, duration=6.0, seed0=0):
    for s in range(seed0, seed0 + n):
        rng = np.random.default_rng(s)
        aspect = float(rng.choice([1.0, 1.5, 0.75]))
        yield sample_scene(rng, duration=duration, aspect=aspect)


# --- vocabulary ------------------------------------------------------------------------------

def test_palette_is_far_apart():
    assert len(vocab.COLOURS) >= 7 and len(vocab.BACKGROUNDS) >= 3
    for a, b in itertools.combinations(vocab.COLOURS.values(), 2):
        assert math.dist(a, b) >= 127
    for c in vocab.COLOURS.values():
        for bg in [*vocab.BACKGROUNDS.values(), *vocab.OCCLUDER_COLOURS.values()]:
            assert math.dist(c, bg) >= 180
    for bg in vocab.BACKGROUNDS:  # the occluder stands out from every background
        assert math.dist(vocab.OCCLUDER_COLOURS[vocab.occluder_colour_for(bg)], vocab.BACKGROUNDS[bg]) >= 120


# --- physics ---------------------------------------------------------------------------------

def test_energy_conserved_with_restitution_one():
    checked = 0
    for scene in random_scenes(150):
        scene = dataclasses.replace(scene, restitution=1.0)
        traj = simulate(scene, np.linspace(0, 6, 241))
        if any(e.kind == "rest" for e in traj.events) or not traj.events:
            continue  # resting contact is not free flight
        e = energy(scene, traj)
        assert np.abs(e - e[0]).max() <= 1e-9 * max(e[0], 1e-6)
        checked += 1
    assert checked > 100


def test_restitution_below_one_loses_energy_at_floor_bounces():
    obj = WorldObject("red", "ball", "small", "falls", (0.5, 0.8), (0.0, 0.0))
    scene = Scene("black", [obj], gravity=True, box_width=1.0, restitution=0.8)
    traj = simulate(scene, np.linspace(0, 3, 301))
    floor = [e.t for e in traj.events if e.other == "floor" and e.kind == "wall"]
    assert len(floor) >= 3
    e = energy(scene, traj)
    # each bounce keeps e^2 of the kinetic energy; between bounces energy is constant
    between = [(a, b) for a, b in zip(floor, floor[1:])]
    levels = [e[(traj.times > a + 1e-3) & (traj.times < b - 1e-3)] for a, b in between]
    levels = [lv.mean() for lv in levels if lv.size]
    pe_floor = obj.mass * scene.g * obj.radius
    for hi, lo in zip(levels, levels[1:]):
        assert (lo - pe_floor) == pytest.approx(0.64 * (hi - pe_floor), rel=1e-6)


def test_free_fall_has_acceleration_g():
    obj = WorldObject("red", "ball", "small", "falls", (0.5, 0.9), (0.1, 0.0))
    scene = Scene("black", [obj], gravity=True, box_width=1.0)
    t = np.linspace(0, 0.3, 31)  # before it reaches the floor
    traj = simulate(scene, t)
    assert not traj.events
    acc = np.diff(traj.positions[:, 0, 1], 2) / (t[1] - t[0]) ** 2
    np.testing.assert_allclose(acc, -vocab.GRAVITY, rtol=1e-6)
    np.testing.assert_allclose(np.diff(traj.positions[:, 0, 0]), 0.1 * (t[1] - t[0]), rtol=1e-9)


def test_momentum_conserved_in_collisions():
    collisions = 0
    for scene in random_scenes(300, duration=4.0):
        if scene.gravity or len(scene.objects) < 2:
            continue
        t = np.linspace(0, 4, 401)
        traj = simulate(scene, t)
        m = np.array([o.mass for o in scene.objects])[None, :, None]
        p = (m * traj.velocities).sum(1)  # (T, 2)
        walls = np.array([e.t for e in traj.events if e.kind == "wall"])
        for k in range(len(t) - 1):
            if not ((walls > t[k]) & (walls <= t[k + 1])).any():
                np.testing.assert_allclose(p[k + 1], p[k], atol=1e-12)
        collisions += sum(e.kind == "collision" for e in traj.events)
    assert collisions > 20  # the check above saw real collisions


def test_head_on_equal_masses_exchange_velocities():
    a = WorldObject("red", "ball", "small", "right", (0.3, 0.5), (0.4, 0.0))
    b = WorldObject("blue", "ball", "small", "left", (0.7, 0.5), (-0.2, 0.0))
    scene = Scene("black", [a, b], gravity=False, box_width=1.0)
    traj = simulate(scene, np.array([0.0, 0.5]))
    assert [e.kind for e in traj.events] == ["collision"]
    np.testing.assert_allclose(traj.velocities[-1], [[-0.2, 0.0], [0.4, 0.0]], atol=1e-12)


def test_objects_stay_in_box_and_never_overlap():
    for scene in random_scenes(300, duration=6.0, seed0=1000):
        traj = simulate(scene, np.linspace(0, 6, 601))
        r = np.array([o.radius for o in scene.objects])
        x, y = traj.positions[..., 0], traj.positions[..., 1]
        tol = 1e-9
        assert (x >= r - tol).all() and (x <= scene.box_width - r + tol).all()
        assert (y >= r - tol).all() and (y <= 1 - r + tol).all()
        for i, j in itertools.combinations(range(len(r)), 2):
            d = np.linalg.norm(traj.positions[:, i] - traj.positions[:, j], axis=-1)
            assert (d >= r[i] + r[j] - 1e-6).all()


def test_trajectory_independent_of_frame_rate():
    for scene in random_scenes(30):
        slow = simulate(scene, np.arange(17) / 8.0)
        fast = simulate(scene, np.arange(49) / 24.0)
        np.testing.assert_allclose(fast.positions[::3], slow.positions, atol=1e-9)


# --- rasterizer ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(64, 64), (64, 96), (96, 64), (33, 47), (128, 128)])
def test_colour_exact_at_object_centres(size):
    h, w = size
    hits = 0
    for seed in range(40):
        clip = make_clip(seed, num_frames=5, height=h, width=w)
        gt = clip.ground_truth()
        for obj in gt["objects"]:
            for k in range(clip.num_frames):
                col, row = obj["pixel"][k]
                others = [o for o in gt["objects"] if o is not obj]
                near = any(math.dist(o["pixel"][k], (col, row)) < o["radius_px"] + obj["radius_px"] for o in others)
                if obj["visible"][k] < 1 or near or obj["radius_px"] < 3:  # a triangle is only 0.45 r deep at its centre
                    continue
                assert tuple(clip.frames[k, int(row), int(col)]) == vocab.COLOURS[obj["colour"]]
                hits += 1
        bg = vocab.BACKGROUNDS[clip.scene.background]
        # pixels far from every object and the occluder are exactly the background
        assert (clip.frames == np.array(bg, np.uint8)).all(-1).mean() > 0.3
    assert hits > 50


def test_same_scene_renders_at_any_size():
    clip = make_clip(7, num_frames=9, height=64, width=64)
    big = render(clip.scene, clip.trajectory, 256, 256)
    for obj_i, obj in enumerate(clip.scene.objects):
        colour = np.array(vocab.COLOURS[obj.colour])
        for frames, s in ((clip.frames, 64), (big, 256)):
            mask = (frames[4].astype(int) == colour).all(-1)
            if clip.visible[4, obj_i] == 1 and mask.sum() > 4:
                rows, cols = np.nonzero(mask)
                # the mask centroid, in view units, agrees across sizes
                centre = np.array([cols.mean() + 0.5, rows.mean() + 0.5]) / s
                if s == 64:
                    small_centre = centre
                else:
                    np.testing.assert_allclose(centre, small_centre, atol=1.5 / 64)


def test_wider_frame_shows_more_scene_same_scale():
    clip = make_clip(11, num_frames=3, height=64, width=64)
    wide = render(clip.scene, clip.trajectory, 64, 128)
    # the 64-wide view is the centre of the 128-wide one
    np.testing.assert_array_equal(wide[:, :, 32:96], clip.frames)


def test_object_passes_behind_occluder():
    obj = WorldObject("red", "ball", "small", "right", (0.2, 0.5), (0.4, 0.0))
    scene = Scene("black", [obj], gravity=False, box_width=1.0, occluder=Occluder(0.5, 0.2, "light gray"))
    t = np.linspace(0, 1.5, 31)
    traj = simulate(scene, t)
    vis = visible_fraction(scene, traj, 64, 64)[:, 0]
    frames = render(scene, traj, 64, 64)
    hidden = np.flatnonzero(vis == 0)
    assert hidden.size > 0 and vis[0] == 1 and vis[-1] == 1  # hidden, then back: object permanence
    red = (frames == np.array([255, 0, 0], np.uint8)).all(-1).sum((1, 2))
    assert (red[hidden] == 0).all() and (red[vis == 1] > 10).all()


def test_camera_pan_moves_scene_in_image():
    obj = WorldObject("red", "ball", "small", "still", (1.0, 0.5), (0.0, 0.0))
    scene = Scene("black", [obj], gravity=False, box_width=2.0, camera="pan-right", camera_speed=0.25, camera_x0=0.5)
    clip = make_clip(0, num_frames=17, scene=scene)
    cam = np.array(clip.ground_truth()["camera_x"])
    np.testing.assert_allclose(np.diff(cam), 0.25 / 8)
    cols = np.array(clip.ground_truth()["objects"][0]["pixel"])[:, 0]
    np.testing.assert_allclose(np.diff(cols), -0.25 / 8 * 64, atol=1e-3)  # the still ball drifts left


# --- determinism, splits, captions-level facts ------------------------------------------------

def test_clip_deterministic_per_seed():
    a, b, c = make_clip(5), make_clip(5), make_clip(6)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.ground_truth() == b.ground_truth()
    assert not np.array_equal(a.frames, c.frames)


def test_heldout_triples_never_in_train_and_always_in_heldout():
    assert len(HELDOUT_TRIPLES) >= 20
    for s in range(1500):
        rng = np.random.default_rng(s)
        scene = sample_scene(rng, duration=2.0, split="train")
        assert not any(is_heldout(o.colour, o.shape, o.motion) for o in scene.objects)
        scene = sample_scene(np.random.default_rng(s), duration=2.0, split="heldout")
        assert any(is_heldout(o.colour, o.shape, o.motion) for o in scene.objects)


def test_every_attribute_pair_is_still_trained():
    # compositional: each held-out triple is new, but each of its pairs occurs in train
    for c, s, m in HELDOUT_TRIPLES:
        assert any((c, s, m2) not in HELDOUT_TRIPLES for m2 in vocab.MOTIONS)
        assert any((c, s2, m) not in HELDOUT_TRIPLES for s2 in vocab.SHAPES)
        assert any((c2, s, m) not in HELDOUT_TRIPLES for c2 in vocab.COLOURS)


def test_scene_counts_and_spec_respected():
    counts = set()
    for s in range(300):
        scene = sample_scene(np.random.default_rng(s), duration=2.0)
        counts.add(len(scene.objects))
        assert len({o.colour for o in scene.objects}) == len(scene.objects)
    assert counts == {1, 2, 3}
    spec = SceneSpec([ObjectSpec(colour="red", shape="ball", motion="falls")], background="white", camera="pan-left")
    for s in range(20):
        scene = sample_scene(np.random.default_rng(s), duration=2.0, spec=spec)
        (o,) = scene.objects
        assert (o.colour, o.shape, o.motion, scene.gravity) == ("red", "ball", "falls", True)
        assert scene.background == "white" and scene.camera == "pan-left"


def test_requested_wall_hit_happens():
    spec = SceneSpec([ObjectSpec(colour="red", shape="ball", hits="left")])
    for s in range(30):
        clip = make_clip(s, spec=spec)
        assert any(e.kind == "wall" and e.other == "left" for e in clip.trajectory.events), s


def test_spec_validation_names_bad_value():
    with pytest.raises(ValueError, match="purple"):
        ObjectSpec(colour="purple")
    with pytest.raises(ValueError, match="distinct colours"):
        SceneSpec([ObjectSpec(colour="red"), ObjectSpec(colour="red")])
    with pytest.raises(ValueError, match="seed"):
        make_clip(-1)
    with pytest.raises(ValueError, match="fps"):
        make_clip(0, fps=0)


# --- dataset ---------------------------------------------------------------------------------

def test_world_dataset_shapes_and_determinism():
    ds = WorldDataset(seed=3, num_frames=9, height=32, width=48)
    a = list(itertools.islice(iter(ds), 3))
    b = list(itertools.islice(iter(ds), 3))
    assert a[0]["video"].shape == (3, 9, 32, 48) and a[0]["video"].dtype == torch.float32
    assert a[0]["video"].min() >= -1 and a[0]["video"].max() <= 1
    assert [x["index"] for x in a] == [0, 1, 2]
    for x, y in zip(a, b):
        assert torch.equal(x["video"], y["video"]) and x["caption"] == y["caption"]
    resumed = next(iter(WorldDataset(seed=3, num_frames=9, height=32, width=48, start=2)))
    assert torch.equal(resumed["video"], a[2]["video"])


def test_world_dataset_workers_cover_stream_once():
    ds = WorldDataset(seed=1, num_frames=1, height=16, width=16)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    seen = [x["index"] for x in itertools.islice(iter(loader), 12)]
    assert sorted(seen) == list(range(12))


def test_stream_seeds_differ_by_split_and_index():
    seeds = {stream_seed(0, i, sp) for i in range(100) for sp in ("train", "heldout")}
    assert len(seeds) == 200


def test_chunked_rendering_matches_and_long_clips_render():
    clip = make_clip(8, num_frames=481)  # a minute at 8 fps
    assert clip.frames.shape == (481, 64, 64, 3)
    np.testing.assert_array_equal(render(clip.scene, clip.trajectory, 64, 64, chunk=7), clip.frames)
    np.testing.assert_array_equal(render(clip.scene, clip.trajectory, 64, 64, chunk=1000), clip.frames)


def test_ceiling_hit_under_gravity_and_no_bounce_at_the_start():
    spec = SceneSpec([ObjectSpec(colour="red", shape="ball", hits="ceiling")], gravity=True)
    for s in range(20):
        clip = make_clip(s, spec=spec)
        assert any(e.other == "ceiling" for e in clip.trajectory.events), s
    for scene in random_scenes(300, duration=2.0, seed0=5000):
        traj = simulate(scene, np.array([0.0, 0.01]))
        assert not [e for e in traj.events if e.kind == "wall" and e.t < 1e-6]


# --- sizes the world renders, and folders it writes ---------------------------------------------

@pytest.mark.parametrize("height,width", [(64, 8), (64, 1), (256, 4), (64, 3), (64, 15)])
def test_too_narrow_sizes_are_refused_up_front(tmp_path, height, width):
    from spacetime.world.dataset import write_world

    name = f"size {width}x{height}"
    with pytest.raises(ValueError, match=f"{name}.*at least 0.25"):
        make_clip(1, height=height, width=width)
    with pytest.raises(ValueError, match=name):
        WorldDataset(height=height, width=width)
    with pytest.raises(ValueError, match=name):
        WorldDataset(sizes=[(9, 64, 64), (9, height, width)])
    with pytest.raises(ValueError, match=name):
        write_world(tmp_path / "w", 3, height=height, width=width, progress=False)
    assert not (tmp_path / "w").exists()  # refused before anything is written
    with pytest.raises(ValueError, match="aspect.*at least 0.25"):
        sample_scene(np.random.default_rng(0), duration=2.0, aspect=width / height)


def test_the_narrowest_size_renders_every_scene():
    from spacetime.world.prompts import parse_prompt

    specs = [None, parse_prompt("a big red ball falls"), parse_prompt("a large blue square bounces off the left wall"),
             parse_prompt("a big green triangle stays still under gravity"), parse_prompt("two big balls moving right")]
    for seed in range(40):
        for height, width in ((64, 16), (80, 20), (64, 17)):
            clip = make_clip(seed, num_frames=9, height=height, width=width, spec=specs[seed % len(specs)],
                             split=("train", "heldout")[seed % 2], multishot=seed % 3 == 0)
            assert clip.frames.shape == (9, height, width, 3)
            for o in clip.scene.objects:
                assert o.radius <= o.position[0] <= clip.scene.box_width - o.radius


def _write(out, n=3, **kw):
    from spacetime.world.dataset import write_world

    return write_world(out, n, num_frames=9, height=32, width=32, fps=8, progress=False, **kw)


def test_resume_renders_damaged_clips_again(tmp_path, caplog):
    from spacetime.data.decode import decode
    from spacetime.data.video import write_video

    out = _write(tmp_path / "w", 5)
    clips = out / "clips"
    good = {p.name: p.read_bytes() for p in clips.iterdir()}
    frames = {p.name: np.stack(decode(p).frames) for p in clips.glob("*.mp4")}
    mp4 = (clips / "000000.mp4").read_bytes()
    (clips / "000000.mp4").write_bytes(mp4[: len(mp4) // 2])  # truncated
    (clips / "000001.mp4").write_bytes(b"")  # empty
    (clips / "000002.json").write_text("")  # garbage ground truth
    (clips / "000003.json").write_text('{"captions": ')  # cut short
    write_video(np.zeros((5, 32, 32, 3), np.uint8), clips / "000004.mp4", fps=8, pix_fmt="yuv444p")  # 5 of 9 frames
    with caplog.at_level("WARNING", logger="spacetime.world.dataset"):
        _write(tmp_path / "w", 5)
    for name in ("000000.mp4", "000001.mp4", "000002.json", "000003.json", "000004.mp4"):
        assert name in caplog.text, (name, caplog.text)
    for name, data in good.items():  # each rendered again: the same ground truth, the same frames
        if name.endswith(".json"):  # (H.264 encodes are not bit-exact from run to run)
            assert (clips / name).read_bytes() == data, name
        else:
            again = np.stack(decode(clips / name).frames).astype(int)
            assert again.shape[0] == 9 and np.abs(again - frames[name]).mean() < 1, name
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == [f"clips/{k:06d}.mp4" for k in range(5)]
    caplog.clear()
    with caplog.at_level("INFO", logger="spacetime.world.dataset"):
        _write(tmp_path / "w", 5)  # now all complete: kept
    assert "kept 5 clips" in caplog.text and "again" not in caplog.text


def test_world_json_records_the_pix_fmt_written(tmp_path):
    import av

    from spacetime.world.dataset import write_world

    out = write_world(tmp_path / "odd", 2, num_frames=5, height=33, width=32, pix_fmt="yuv420p", progress=False)
    settings = json.loads((out / "world.json").read_text())["settings"]
    with av.open(str(out / "clips" / "000000.mp4")) as f:
        written = f.streams.video[0].codec_context.pix_fmt
    assert written == settings["pix_fmt"] == "yuv444p"
    write_world(tmp_path / "odd", 2, num_frames=5, height=33, width=32, pix_fmt="yuv420p", progress=False)  # resumes
    old = json.loads((out / "world.json").read_text())  # a folder from before: it recorded what was asked
    old["settings"]["pix_fmt"] = "yuv420p"
    (out / "world.json").write_text(json.dumps(old))
    write_world(tmp_path / "odd", 2, num_frames=5, height=33, width=32, pix_fmt="yuv420p", progress=False)
    assert json.loads((out / "world.json").read_text())["settings"]["pix_fmt"] == "yuv444p"
    even = write_world(tmp_path / "even", 1, num_frames=5, height=32, width=32, pix_fmt="yuv420p", progress=False)
    assert json.loads((even / "world.json").read_text())["settings"]["pix_fmt"] == "yuv420p"


def test_multishot_with_clips_too_short_for_a_cut_is_refused(tmp_path, capsys):
    """--multishot 1.0 --num-frames 5 made every clip single-shot without a word."""
    from spacetime.cli import main
    from spacetime.world.dataset import write_world

    with pytest.raises(ValueError, match=r"--multishot 1 asks for cuts, but --num-frames 8 .* --num-frames 9 or more"):
        write_world(tmp_path / "a", 1, num_frames=8, height=32, width=32, multishot=1.0, progress=False)
    assert not (tmp_path / "a").exists()  # refused before anything is written
    assert main(["world", "--out", str(tmp_path / "b"), "--num-clips", "1", "--num-frames", "5", "--multishot", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "--multishot 0.5" in err and "--num-frames 5" in err
    _write(tmp_path / "c", 1, multishot=1.0)  # 9 frames: one cut fits
    assert json.loads((tmp_path / "c" / "clips" / "000000.json").read_text())["shots"][1]["start"] == 5


def test_a_shorter_run_removes_the_clips_past_its_count(tmp_path, caplog):
    """--num-clips 6, then 3, left clips 3-5 in clips/: uncaptioned videos of the folder."""
    out = _write(tmp_path / "w", 6)
    (out / "clips" / "notes.txt").write_text("mine")  # not the world's naming: kept
    (out / "clips" / "0000070.mp4").write_bytes(b"")  # nor this (7 digits)
    with caplog.at_level("INFO", logger="spacetime.world.dataset"):
        _write(tmp_path / "w", 3)
    assert sorted(p.name for p in (out / "clips").iterdir()) == sorted(
        ["0000070.mp4", "notes.txt", *(f"00000{k}.{ext}" for k in range(3) for ext in ("json", "mp4"))]
    )
    assert "removed 6 file(s) of clips past --num-clips 3" in caplog.text and "kept 3 clips" in caplog.text
    assert len((out / "captions.jsonl").read_text().splitlines()) == 3


def test_dataset_seed_start_and_index_are_checked_up_front():
    """A negative seed or start was numpy's "expected non-negative integer" at the first clip, in
    a DataLoader worker, naming neither; a float seed was silently truncated to another stream."""
    for kw, name in ((dict(seed=-1), "seed"), (dict(seed=1.5), "seed"), (dict(seed=True), "seed"), (dict(start=-1), "start")):
        with pytest.raises(ValueError, match=f"{name} must be a non-negative integer"):
            WorldDataset(num_frames=1, height=16, width=16, **kw)
    ds = WorldDataset(seed=np.int64(3), num_frames=1, height=16, width=16)
    with pytest.raises(ValueError, match="index must be a non-negative integer"):
        ds.clip(-1)
    assert ds.sample(0)["video"].shape == (3, 1, 16, 16)


def test_an_asked_wall_hit_happens_in_view_with_other_objects_about():
    """"a red ball bounces off the left wall and a blue ball falls": the blue ball, dropped in the
    red one's path, turned it round before the wall in 4 of 30 seeds at 64x64 (and the clip showed,
    and its caption told, no wall hit at all). Such a draw is now drawn anew, as a jam is."""
    from spacetime.world import parse_prompt

    spec = parse_prompt("a red ball bounces off the left wall and a blue ball falls")
    for seed in range(30):
        c = make_clip(seed, num_frames=17, height=64, width=64, spec=spec)
        red = next(k for k, o in enumerate(c.scene.objects) if o.colour == "red")
        hits = [e.t for e in c.trajectory.events if e.kind == "wall" and e.other == "left" and e.object == red]
        assert any(0 < t <= c.trajectory.times[-1] for t in hits), seed
        assert "red" in c.captions["detailed"].split("left wall")[0].split(". ")[-1], (seed, c.captions["detailed"])


def test_world_chunks_and_write_world_take_numpy_ints_and_refuse_bad_chunks(tmp_path):
    """WorldChunks(chunk=0) was numpy's "need at least one array to concatenate" in a worker;
    write_world refused numpy integers for num_clips and seed, which WorldDataset takes."""
    from spacetime.world.dataset import WorldChunks, unchunk, write_world

    ds = WorldDataset(num_frames=1, height=16, width=16)
    for chunk in (0, -2, 1.5):
        with pytest.raises(ValueError, match="chunk must be a positive number"):
            WorldChunks(ds, chunk=chunk)
    items = list(unchunk(next(iter(WorldChunks(ds, chunk=np.int64(2))))))
    assert [i["index"] for i in items] == [0, 1]
    out = write_world(tmp_path / "w", np.int64(1), num_frames=1, height=16, width=16, seed=np.int64(2), progress=False)
    assert json.loads((out / "world.json").read_text())["settings"]["seed"] == 2


def test_rendering_large_frames_keeps_memory_near_the_output():
    """32 frames at 1024x1024 (96 MB of uint8) peaked at 1.5 GB of numpy temporaries: whole
    32-frame chunks whatever the frame size. Chunks now hold a bounded number of pixels, and the
    frames are the same in any chunking."""
    import sys
    import tracemalloc

    render_module = sys.modules["spacetime.world.render"]  # the package's `render` is the function

    c = make_clip(2, num_frames=32, height=16, width=16)
    tracemalloc.start()
    try:
        frames = render(c.scene, c.trajectory, 1024, 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * frames.nbytes, peak / 2**20
    small = render_module.PIXEL_BUDGET
    try:
        render_module.PIXEL_BUDGET = 40 * 30  # one frame per chunk
        assert np.array_equal(render(c.scene, c.trajectory, 30, 40), render(c.scene, c.trajectory, 30, 40, chunk=1))
        render_module.PIXEL_BUDGET = 1 << 40
        assert np.array_equal(render(c.scene, c.trajectory, 30, 40), render(c.scene, c.trajectory, 30, 40, chunk=1))
    finally:
        render_module.PIXEL_BUDGET = small
