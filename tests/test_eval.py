"""World-model evaluation: the tracker reads the world exactly (and through H.264), the simulator's
own clips pass every metric, and each metric catches the failure it is about on a constructed clip
(an object removed mid-clip, gravity reversed, a colour swapped, an object teleported, an object
added, a frozen or reversed clip), plus the CLI on a folder of videos and its refusals."""

import dataclasses
import json

import numpy as np
import pytest

from spacetime.cli import main
from spacetime.data.video import read_video, write_video
from spacetime.eval import BASELINES, evaluate_generator, score_clip, track
from spacetime.eval.evaluate import distribution_distance
from spacetime.eval.generators import simulate_prompt
from spacetime.eval.metrics import METRICS
from spacetime.world import vocab
from spacetime.world.clip import make_clip, stream_seed
from spacetime.world.physics import Trajectory
from spacetime.world.render import render
from spacetime.world.scene import Occluder, Scene, WorldObject

T, H, FPS = 17, 64, 8.0


def zero_g_scene() -> Scene:
    """A red ball drifting right into the right wall, a blue square standing still; black, static."""
    objects = [
        WorldObject("red", "ball", "large", "right", (0.2, 0.5), (0.4, 0.0)),
        WorldObject("blue", "square", "small", "still", (0.75, 0.8), (0.0, 0.0)),
    ]
    return Scene("black", objects, gravity=False, box_width=1.0)


def gravity_scene() -> Scene:
    """A green triangle dropped, a magenta ball thrown right; both bounce on the floor; white."""
    objects = [
        WorldObject("green", "triangle", "large", "falls", (0.3, 0.8), (0.0, 0.0)),
        WorldObject("magenta", "ball", "small", "bounces-right", (0.6, 0.5), (0.35, 0.6)),
    ]
    return Scene("white", objects, gravity=True, box_width=1.0)


def clip_of(scene: Scene):
    return make_clip(0, scene=scene, num_frames=T, height=H, width=H, fps=FPS)


def rerender(clip, objects=None, positions=None) -> np.ndarray:
    """The clip's scene drawn again with other objects (same count: their colours/shapes) or
    positions (T, N, 2)."""
    scene = dataclasses.replace(clip.scene, objects=objects or clip.scene.objects)
    traj = clip.trajectory
    if positions is not None:
        traj = Trajectory(traj.times, positions, traj.velocities, traj.events)
    return render(scene, traj, H, H)


def scores(frames, prompt, fps=FPS):
    s = score_clip(frames, fps, prompt)
    return s, {m: s.metrics[m].score for m in METRICS}


def mp4(frames, tmp_path, pix_fmt):
    path = tmp_path / f"clip-{pix_fmt}.mp4"
    write_video(frames, path, fps=FPS, pix_fmt=pix_fmt)
    return read_video(path)[0]


# --- the tracker -------------------------------------------------------------------------------


def _check_tracks(clip, frames, tol_px):
    ct = track(frames, FPS)
    gt = clip.ground_truth()
    assert set(ct.tracks) == {o["colour"] for o in gt["objects"]}
    assert ct.background == clip.scene.background and ct.background_fraction > 0.5
    for o in gt["objects"]:
        tr = ct.tracks[o["colour"]]
        assert tr.shape() == o["shape"] and tr.size(H) == o["size"], o
        # the coverage centroid is the area centroid: a triangle's lies r/3 below its box centre
        want = np.asarray(o["pixel"]) + ([0, o["radius_px"] / 3] if o["shape"] == "triangle" else [0, 0])
        err = np.abs(tr.centroid[tr.clean] - want[tr.clean])
        assert tr.clean.sum() >= T // 2 and err.max() < tol_px, (o["colour"], err.max())


def test_tracker_reads_rendered_clips_to_a_fraction_of_a_pixel():
    for scene in (zero_g_scene(), gravity_scene()):
        clip = clip_of(scene)
        _check_tracks(clip, clip.frames, tol_px=0.25)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
def test_tracker_survives_h264(tmp_path, pix_fmt):
    for scene in (zero_g_scene(), gravity_scene()):
        clip = clip_of(scene)
        _check_tracks(clip, mp4(clip.frames, tmp_path, pix_fmt), tol_px=0.6)


def test_tracker_bar_bridges_an_object_and_measures_the_pan():
    scene = Scene(
        "gray",
        [WorldObject("yellow", "ball", "small", "right", (0.15, 0.4), (0.45, 0.0))],
        gravity=False,
        box_width=1.3,
        camera="pan-right",
        camera_speed=0.15,
        camera_x0=0.5,
        occluder=Occluder(0.6, 0.12, "dark gray"),
    )
    clip = clip_of(scene)
    ct = track(clip.frames, FPS)
    assert (
        ct.bar_colour == "dark gray" and (ct.tracks["yellow"].parts <= 1).all()
    )  # cut in two by the bar: one object
    from spacetime.eval.kinematics import camera_velocity

    assert camera_velocity(ct) == pytest.approx(0.15, abs=0.01)


def test_a_model_generator_refuses_a_size_it_would_round(tiny_model_dir):
    from spacetime.eval.generators import pipeline_generator

    generate = pipeline_generator(tiny_model_dir)
    with pytest.raises(ValueError, match=r"num_frames must be 1 \+ 4k"):
        generate("a red ball falls", num_frames=10, height=32, width=32, fps=8, seed=0)  # was made, then refused
    with pytest.raises(ValueError, match="height must be a multiple of 16"):
        generate("a red ball falls", num_frames=5, height=40, width=32, fps=8, seed=0)
    assert generate("a red ball falls", num_frames=5, height=32, width=48, fps=8, seed=0).shape == (5, 32, 48, 3)


def test_eval_passes_its_sampling_flags_to_the_model_and_records_them(tmp_path, tiny_model_dir, eval_cli, monkeypatch):
    import spacetime.eval as ev
    from spacetime.eval.generators import pipeline_generator

    kw = {"num_frames": 5, "height": 32, "width": 32, "fps": 8, "seed": 0}
    one, two = pipeline_generator(tiny_model_dir), pipeline_generator(tiny_model_dir, num_inference_steps=2)
    assert not np.array_equal(one("a red ball", **kw), two("a red ball", **kw))  # 25 steps against 2
    assert np.array_equal(two("a red ball", **kw),
                          pipeline_generator(tiny_model_dir, num_inference_steps=2, guidance_scale=None)("a red ball", **kw))
    seen = []
    monkeypatch.setattr(ev, "pipeline_generator", lambda path, **sampling: seen.append(sampling) or BASELINES["simulator"])
    (tmp_path / "model").mkdir()
    assert eval_cli("--model", tmp_path / "model", "--out", tmp_path / "m", "--num-frames", "9", "--size", "32x32",
                    "--num-clips", "1", "--no-report", "--guidance-interval", "0.3", "1", "--num-inference-steps", "8",
                    "--guidance-method", "apg", "--guidance-option", "momentum=-0.5", "--guidance-option", "eta=0.2") == 0
    assert seen == [{"num_inference_steps": 8, "guidance_scale": None, "guidance_interval": [0.3, 1.0], "shift": None,
                     "dtype": None, "guidance_method": "apg", "guidance_options": {"momentum": -0.5, "eta": 0.2},
                     "prompt_as_typed": False}]
    settings = json.loads((tmp_path / "m" / "metrics.json").read_text())["settings"]
    assert settings["guidance_interval"] == [0.3, 1.0] and settings["num_inference_steps"] == 8
    assert "guidance_scale" not in settings  # a stand-in generator: only what was asked is known
    # a model's generator records what it uses, its defaults resolved (the model's own interval)
    assert one.sampling == {"num_inference_steps": 25, "guidance_scale": 5.0, "guidance_interval": [0.0, 1.0], "shift": 1.0,
                            "guidance_method": "cfg", "guidance_options": {}, "dtype": "float32", "complete_prompt": False}
    apg = pipeline_generator(tiny_model_dir, num_inference_steps=2, guidance_method="apg", guidance_options={"eta": 0.5})
    assert apg.sampling["guidance_options"] == {"momentum": 0.0, "norm_threshold": 0.0, "eta": 0.5}
    assert not np.array_equal(two("a red ball", **kw), apg("a red ball", **kw))
    assert pipeline_generator(tiny_model_dir, shift=2.0).sampling["shift"] == 2.0
    assert two.sampling["num_inference_steps"] == 2


@pytest.mark.parametrize("fps", [0, -8, float("nan"), float("inf"), True, "8", None])
def test_the_frame_rate_is_checked(fps):
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="fps must be a number in"):
        score_clip(frames, fps, "a red ball falls")  # 0 was a ZeroDivisionError, -8 scored as physics 1.0


def test_noise_holds_no_object():
    ct = track(np.random.default_rng(0).integers(0, 256, (T, H, H, 3), dtype=np.uint8), FPS)
    assert ct.tracks == {} and ct.background_fraction < 0.1


# --- the simulator passes ----------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_simulator_clips_pass_every_metric(split):
    for i in range(12):
        clip = make_clip(stream_seed(0, i, split), num_frames=T, height=H, width=H, fps=FPS, split=split)
        _, s = scores(clip.frames, clip.captions["detailed"])
        assert all(v is None or v == 1.0 for v in s.values()), (i, s)


def test_simulator_clips_pass_through_h264(tmp_path):
    for scene in (zero_g_scene(), gravity_scene()):
        clip = clip_of(scene)
        for pix_fmt in ("yuv420p", "yuv444p"):
            _, s = scores(mp4(clip.frames, tmp_path, pix_fmt), clip.captions["detailed"])
            assert s == dict.fromkeys(METRICS, 1.0), (pix_fmt, s)


# --- each metric catches its failure --------------------------------------------------------------


def test_removing_an_object_mid_clip_fails_permanence():
    clip = clip_of(zero_g_scene())
    prompt = clip.captions["detailed"]
    assert scores(clip.frames, prompt)[1]["permanence"] == 1.0
    alone = make_clip(
        0,
        scene=dataclasses.replace(clip.scene, objects=clip.scene.objects[:1]),
        num_frames=T,
        height=H,
        width=H,
    )
    frames = clip.frames.copy()
    frames[9:] = alone.frames[9:]  # the blue square is gone from frame 9 on
    s, v = scores(frames, prompt)
    assert v["permanence"] == 0.5  # red ball fine, blue square not
    assert s.metrics["permanence"].reasons == ["the blue square: vanishes after frame 8 in mid-view"]


def test_object_behind_the_bar_is_not_a_vanishing():
    scene = Scene(
        "gray",
        [WorldObject("yellow", "ball", "small", "right", (0.15, 0.4), (0.45, 0.0))],
        gravity=False,
        box_width=1.0,
        occluder=Occluder(0.5, 0.12, "dark gray"),
    )
    clip = clip_of(scene)
    assert clip.visible[:, 0].min() < 0.15  # mostly hidden for a frame or two
    s, v = scores(clip.frames, clip.captions["detailed"])
    assert v["permanence"] == 1.0 and v["smoothness"] == 1.0


def test_reversed_gravity_fails_physics():
    clip = clip_of(gravity_scene())
    prompt = clip.captions["detailed"]
    s, v = scores(clip.frames, prompt)
    assert v["physics"] == 1.0
    assert s.motions["green"].accel_y == pytest.approx(-vocab.GRAVITY, abs=0.3)
    flipped, v = scores(clip.frames[:, ::-1].copy(), prompt)  # upside down: everything falls up
    assert flipped.motions["green"].accel_y == pytest.approx(vocab.GRAVITY, abs=0.3)
    assert v["physics"] < 0.8 and any(
        "+4.0" in r or "accelerates at +" in r for r in flipped.metrics["physics"].reasons
    )


def test_zero_gravity_prompt_fails_a_falling_clip():
    clip = clip_of(gravity_scene())
    s, v = scores(clip.frames, "a big green triangle floats down in zero gravity on a white background")
    assert v["physics"] < 1.0 and any("weightless" in r for r in s.metrics["physics"].reasons)


def test_swapped_colour_fails_adherence():
    clip = clip_of(zero_g_scene())
    prompt = clip.captions["detailed"]
    assert scores(clip.frames, prompt)[1]["adherence"] == 1.0
    objects = [dataclasses.replace(clip.scene.objects[0], colour="orange"), clip.scene.objects[1]]
    s, v = scores(rerender(clip, objects=objects), prompt)
    reasons = s.metrics["adherence"].reasons
    assert "the red ball: not in any frame" in reasons and any(
        "extra objects: an orange ball" in r for r in reasons
    )
    # 9 checks: red seen/shape/size (fail), blue seen/shape/size, count (2 = 2), extras (fail), background
    assert v["adherence"] == pytest.approx(5 / 9) and v["permanence"] == 0.5


def test_wrong_shape_and_background_fail_adherence():
    clip = clip_of(zero_g_scene())
    s, v = scores(
        clip.frames,
        "a big red square moves to the right and a small blue square stays still on a white background",
    )
    assert s.metrics["adherence"].reasons == [
        "the red square looks like a ball",
        "background is black (94% of the frame), the prompt says white",
    ] or (v["adherence"] < 1 and len(s.metrics["adherence"].reasons) == 2)


def test_teleport_fails_smoothness():
    clip = clip_of(zero_g_scene())
    prompt = clip.captions["detailed"]
    assert scores(clip.frames, prompt)[1]["smoothness"] == 1.0
    pos = clip.trajectory.positions.copy()
    pos[10:, 1, 1] -= 0.35  # the still blue square jumps 22 px down at frame 10 and stays there
    s, v = scores(rerender(clip, positions=pos), prompt)
    assert v["smoothness"] < 1.0
    assert any(
        "blue square teleports" in r and "frames 9 and 10" in r for r in s.metrics["smoothness"].reasons
    )


def test_added_object_fails_adherence_and_permanence():
    clip = clip_of(zero_g_scene())
    prompt = clip.captions["detailed"]
    extra = WorldObject("cyan", "triangle", "large", "still", (0.4, 0.2), (0.0, 0.0))
    pos = np.concatenate([clip.trajectory.positions, np.tile([0.4, 0.2], (T, 1, 1))], axis=1)  # (T, 3, 2)
    frames = rerender(clip, objects=[*clip.scene.objects, extra], positions=pos)
    frames[:6] = clip.frames[:6]  # it pops up at frame 6, in the middle of the view
    s, v = scores(frames, prompt)
    assert any(r.startswith("3 objects seen") for r in s.metrics["adherence"].reasons)
    assert any("extra objects: a cyan triangle (frames 6-16)" in r for r in s.metrics["adherence"].reasons)
    assert "the extra cyan object: appears at frame 6 in mid-view" in s.metrics["permanence"].reasons
    assert v["adherence"] < 1 and v["permanence"] < 1


def test_frozen_clip_fails_motion_and_wrong_direction_is_named():
    clip = clip_of(zero_g_scene())
    prompt = clip.captions["detailed"]
    assert scores(clip.frames, prompt)[1]["motion"] == 1.0
    s, v = scores(np.repeat(clip.frames[:1], T, axis=0), prompt)
    assert v["motion"] < 0.5 and any("red ball stays still" in r for r in s.metrics["motion"].reasons)
    s, v = scores(
        clip.frames,
        "a big red ball floats to the left and a small blue square stays still, the camera is static",
    )
    assert v["motion"] == 0.5 and "red ball moves right" in s.metrics["motion"].reasons[0]


def test_reversed_time_fails_motion_and_bounce_heights():
    clip = clip_of(gravity_scene())
    prompt = clip.captions["detailed"]
    s, v = scores(clip.frames[::-1].copy(), prompt)
    assert v["motion"] < 1.0 and v["physics"] < 1.0
    assert any("bounces higher" in r for r in s.metrics["physics"].reasons)


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(400, 10))
    same = distribution_distance(ref, ref)["frechet_distance"]
    other = distribution_distance(rng.normal(size=(400, 10)), ref)["frechet_distance"]
    shifted = distribution_distance(ref + np.r_[2.0, np.zeros(9)], ref)["frechet_distance"]
    assert same == pytest.approx(0.0, abs=1e-3) and other < 0.3 and shifted == pytest.approx(4.0, rel=0.05)


def test_frechet_distance_does_not_read_an_unmeasured_acceleration_as_zero():
    """An acceleration not measured was the value 0 ("no gravity"), and a reference whose objects
    all agree (-4.00 +- 0.01) scaled a difference by 1/0.01: the simulator's own clips at 47x33
    were 6862 from their references."""
    from spacetime.eval.kinematics import FEATURE_NAMES, Motion, trajectory_features

    a = FEATURE_NAMES.index("accel_y")
    xy = np.c_[np.linspace(0.2, 0.8, T), np.full(T, 0.5)]
    m = Motion("red", xy, np.ones(T, bool), 4.0, None, 0, None, np.zeros(T - 1, bool), [])
    f = trajectory_features(m, FPS, H)
    assert np.isnan(f[a]) and f[0] == 1.0 and f[5] == pytest.approx(0.6 / (T - 1) * FPS)
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(8, len(FEATURE_NAMES))) * 0.2 + 1.0
    ref[:, a] = -4.0 + rng.normal(size=8) * 0.01  # every reference object falls at g
    gen = ref.copy()
    gen[::2, a] = np.nan  # half of them not measured: no evidence either way
    assert distribution_distance(gen, ref)["frechet_distance"] == pytest.approx(0.0, abs=0.05)
    gen[1::2, a] = -4.1  # 0.1 off g, 10 reference spreads: well inside the physics tolerance
    d = distribution_distance(gen, ref)
    assert d["frechet_distance"] < 0.1 and d["generated_mean"][a] == pytest.approx(-4.1)
    gen[:, a] = np.nan  # nothing measured: the mean is None, not 0 or NaN (metrics.json is JSON)
    assert distribution_distance(gen, ref)["generated_mean"][a] is None
    # end to end: the simulator's clips at an odd size against its own renditions
    r = evaluate_generator(
        BASELINES["simulator"], split="train", num_clips=2, num_frames=T, height=33, width=47, progress=False
    )
    assert r.aggregate()["distribution"]["frechet_distance"] < 50


# --- baselines and the generator interface -------------------------------------------------------


def test_calibration_anchors_on_a_few_prompts():
    kw = dict(split="heldout", num_clips=6, num_frames=T, height=H, width=H, fps=FPS, progress=False)
    agg = {
        name: evaluate_generator(BASELINES[name], **kw).aggregate()
        for name in ("simulator", "frozen", "wrong_colour", "noise")
    }
    for m in ("adherence", "permanence", "motion"):
        assert agg["simulator"][m]["mean"] >= 0.98, m
    assert agg["frozen"]["motion"]["mean"] < 0.5
    assert agg["wrong_colour"]["adherence"]["mean"] < 0.5 and agg["wrong_colour"]["permanence"]["mean"] == 0.0
    assert agg["noise"]["adherence"]["mean"] == 0.0 and agg["noise"]["motion"]["mean"] == 0.0
    assert agg["noise"]["physics"]["mean"] is None  # nothing tracked: nothing to judge
    fd = {n: agg[n]["distribution"]["frechet_distance"] for n in agg}
    assert fd["simulator"] < fd["frozen"] and fd["simulator"] < fd["noise"]


def test_generator_interface_and_bad_output():
    calls = []

    def generate(prompt, *, num_frames, height, width, fps, seed):
        calls.append(seed)
        return simulate_prompt(
            prompt, num_frames=num_frames, height=height, width=width, fps=fps, seed=seed
        ).frames

    r = evaluate_generator(generate, num_clips=2, num_frames=9, height=32, width=48, progress=False)
    assert len(calls) == 2 and len(set(calls)) == 2 and len(r.scores) == 2
    assert r.scores[0].track.width == 48 and r.to_json()["settings"]["num_frames"] == 9

    def bad(prompt, **kw):
        return np.zeros((3, 8, 8, 3), np.uint8)

    with pytest.raises(ValueError, match="shape"):
        evaluate_generator(bad, num_clips=1, progress=False)


# --- the command -------------------------------------------------------------------------------


def test_cli_summary_names_the_multishot_metrics_when_prompts_have_cuts(tmp_path, capsys):
    world, out = tmp_path / "w", tmp_path / "e"
    assert main(["world", "--out", str(world), "--num-clips", "2", "--num-frames", "17", "--multishot", "1"]) == 0
    capsys.readouterr()
    assert main(["eval", "--videos", str(world), "--out", str(out), "--no-report"]) == 0
    printed = capsys.readouterr().out
    for m in ("cuts", "identity", "continuity"):  # were in metrics.json only
        assert any(line.startswith(f"{m} ") for line in printed.splitlines()), (m, printed)


def test_cli_scores_a_world_folder_and_writes_a_report(tmp_path, capsys):
    world, out = tmp_path / "w", tmp_path / "e"
    assert (
        main(["world", "--out", str(world), "--num-clips", "3", "--num-frames", str(T), "--split", "heldout"])
        == 0
    )
    assert main(["eval", "--videos", str(world), "--out", str(out)]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert data["format"] == "spacetime-eval" and len(data["clips"]) == 3
    for m in METRICS:
        assert data["aggregate"][m]["mean"] == 1.0, m
    clip0 = data["clips"][0]
    assert clip0["name"] == "clips/000000.mp4" and set(clip0["metrics"]) == set(METRICS)
    assert (
        clip0["prompt"]
        == json.loads((world / "captions.jsonl").read_text().splitlines()[0])["captions"]["detailed"]
    )
    assert data["aggregate"]["distribution"]["frechet_distance"] is not None
    for name in ("index.html", "metrics.png", "frames.png", "trajectories.png", "gravity.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "metrics.json" in (out / "index.html").read_text()
    assert "adherence   1.000" in capsys.readouterr().out


def test_cli_refusals(tmp_path, capsys):
    assert main(["eval", "--videos", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "--videos" in capsys.readouterr().err
    model = tmp_path / "model"
    model.mkdir()
    assert main(["eval", "--model", str(model), "--out", str(tmp_path / "o")]) == 1
    assert "no COMPLETE marker" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", str(model), "--videos", str(model), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "captions.jsonl").write_text(json.dumps({"path": "gone.mp4", "caption": "a red ball"}) + "\n")
    assert main(["eval", "--videos", str(folder), "--out", str(tmp_path / "o")]) == 1
    assert "gone.mp4" in capsys.readouterr().err
    (folder / "gone.mp4").write_bytes(b"not a video")
    assert main(["eval", "--videos", str(folder), "--out", str(tmp_path / "o"), "--no-report"]) == 1
    assert "gone.mp4" in capsys.readouterr().err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_gravity_sign_is_right_for_the_simulator_and_wrong_upside_down():
    kw = dict(split="heldout", num_clips=12, num_frames=T, height=H, width=H, fps=FPS, progress=False)
    sim = evaluate_generator(BASELINES["simulator"], **kw).aggregate()["gravity"]["gravity"]
    flipped = evaluate_generator(BASELINES["upside_down"], **kw).aggregate()["gravity"]["gravity"]
    assert sim["clips"] >= 3 and sim["clips"] == flipped["clips"]  # enough falling prompts to judge
    assert sim["sign_correct"] == 1.0
    assert flipped["sign_correct"] == 0.0  # everything speeds up towards the ceiling


# --- multi-shot clips in the report, stale outputs, clip counts, prompt words ------------------


@pytest.fixture
def eval_cli():
    """`spacetime eval` through `main` (the command body is spacetime.eval.command.run_eval)."""
    return lambda *argv: main(["eval", *map(str, argv)])


def test_report_draws_multishot_clips(tmp_path):
    """Multi-shot clips are tracked over their opening shot: the report drew frames after the cut
    with the opening shot's tracks (IndexError) and lost index.html."""
    from spacetime.eval import Sample, evaluate
    from spacetime.eval.report import write_report

    clips = [
        make_clip(stream_seed(0, i, "train"), num_frames=T, height=H, width=H, fps=FPS, multishot=True)
        for i in range(2)
    ]
    assert all(len(c.shots) > 1 and c.shots[1].start < T - 1 for c in clips)
    result = evaluate(
        [Sample(f"{i}", c.captions["detailed"], c.frames, FPS) for i, c in enumerate(clips)], progress=False
    )
    assert result.scores[0].track.num_frames < T  # the opening shot only
    index = write_report(result, tmp_path)
    assert "could not be drawn" not in index.read_text()  # every figure drawn
    for name in ("metrics.png", "frames.png", "trajectories.png", "gravity.png"):
        assert (tmp_path / name).stat().st_size > 1000, name


def test_report_shows_the_multishot_metrics_and_their_reasons(tmp_path):
    """index.html and metrics.png showed the five single-shot metrics only: a clip failing its cuts
    looked all 1.00. A single-shot clip among cut ones shows "–" for them."""
    from spacetime.eval import Sample, evaluate
    from spacetime.eval.report import write_report

    clip = clip_of(zero_g_scene())
    cut = clip.captions["detailed"] + " Then cut to the reverse angle."  # asked, never shown
    result = evaluate(
        [Sample("one", clip.captions["detailed"], clip.frames, FPS), Sample("cut", cut, clip.frames, FPS)],
        progress=False,
    )
    assert result.scores[1].metrics["cuts"].score < 1.0  # no cut seen, one asked
    page = write_report(result, tmp_path, strict=True).read_text()
    for m in ("cuts", "identity", "continuity"):
        assert f"<th>{m}</th>" in page and f"<tr><td>{m}</td>" in page, m
    rows = page.split("<tr><td>")
    single = next(r for r in rows if r.startswith("0</td>"))
    assert single.count("<td>–</td>") == 3  # no cuts asked: not a 1.00
    multi = next(r for r in rows if r.startswith("1</td>"))
    assert f"<td>{result.scores[1].metrics['cuts'].score:.2f}</td>" in multi
    assert "cuts: 1 cut(s) asked, 0 seen" in multi


def test_report_keeps_the_rest_when_a_figure_fails(tmp_path, monkeypatch, caplog):
    from spacetime.eval import report
    from spacetime.eval.evaluate import Sample, evaluate

    clip = clip_of(zero_g_scene())
    result = evaluate([Sample("a", clip.captions["detailed"], clip.frames, FPS)], progress=False)
    (tmp_path / "frames.png").write_bytes(b"an earlier run's figure")

    def broken(result, path):
        raise IndexError("index 6 is out of bounds")

    monkeypatch.setitem(report.PLOTS, "frames.png", broken)
    with pytest.raises(IndexError):  # strict: a failing figure is a bug, and tests see it
        report.write_report(result, tmp_path, strict=True)
    page = report.write_report(result, tmp_path).read_text()
    assert "frames.png could not be drawn (IndexError: index 6 is out of bounds)" in page
    assert "index 6 is out of bounds" in caplog.text and "Traceback" in caplog.text  # logged, not hidden
    assert not (tmp_path / "frames.png").exists()  # the earlier figure would pass for this run's
    for name in ("metrics.png", "trajectories.png", "gravity.png"):
        assert (tmp_path / name).stat().st_size > 1000, name


def test_cli_writes_the_report_for_multishot_folders(tmp_path, eval_cli):
    world, out = tmp_path / "wm", tmp_path / "e"
    assert main(["world", "--out", str(world), "--num-clips", "8", "--multishot", "1.0"]) == 0
    assert eval_cli("--videos", world, "--out", out) == 0
    assert (out / "index.html").exists() and (out / "frames.png").stat().st_size > 1000
    agg = json.loads((out / "metrics.json").read_text())["aggregate"]
    for m in METRICS:  # the simulator's own clips (clip 0's floor bounce is after its cut)
        assert agg[m]["mean"] >= 0.98, (m, agg[m])
    assert agg["motion"]["mean"] == 1.0


def test_cli_removes_an_earlier_runs_outputs_and_refuses_other_folders(
    tmp_path, eval_cli, monkeypatch, capsys
):
    world, out = tmp_path / "w", tmp_path / "e"
    assert main(["world", "--out", str(world), "--num-clips", "2", "--num-frames", "9"]) == 0
    assert eval_cli("--videos", world, "--out", out) == 0
    (out / "notes.txt").write_text("mine")  # a user's file in an eval folder: never removed
    assert eval_cli("--videos", world, "--out", out, "--no-report") == 0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "notes.txt"]
    # --model over an earlier 3-clip run, now 1 clip: videos/ holds this run's only
    import spacetime.eval as ev

    monkeypatch.setattr(ev, "pipeline_generator", lambda path, **sampling: BASELINES["simulator"])
    model = tmp_path / "model"
    model.mkdir()
    small = ("--num-frames", "9", "--size", "32x32", "--no-report")
    assert eval_cli("--model", model, "--out", out, "--num-clips", 3, *small) == 0
    assert sorted(p.name for p in (out / "videos").iterdir()) == [
        "000000.mp4",
        "000001.mp4",
        "000002.mp4",
        "captions.jsonl",
    ]
    assert eval_cli("--model", model, "--out", out, "--num-clips", 1, *small) == 0
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["000000.mp4", "captions.jsonl"]
    assert len((out / "videos" / "captions.jsonl").read_text().splitlines()) == 1
    # re-scoring a run's own videos into its folder keeps them (they are the input)
    assert eval_cli("--videos", out / "videos", "--out", out, "--no-report") == 0
    assert (out / "videos" / "000000.mp4").exists() and (out / "notes.txt").exists()
    # a folder that is not an eval folder is refused, as `spacetime world` refuses a non-world one
    capsys.readouterr()
    assert eval_cli("--videos", world, "--out", world) == 1
    assert "not an eval output folder" in capsys.readouterr().err
    assert sorted(p.name for p in world.iterdir()) == ["captions.jsonl", "clips", "world.json"]


def test_cli_records_clips_asked_for_and_scored(tmp_path, eval_cli, capsys, caplog):
    world, out = tmp_path / "w", tmp_path / "e"
    assert main(["world", "--out", str(world), "--num-clips", "2", "--num-frames", "9"]) == 0
    capsys.readouterr()
    assert eval_cli("--videos", world, "--out", out, "--num-clips", 100, "--no-report") == 0
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["num_clips"] == 100 and settings["clips_scored"] == 2
    assert "scored 2 clips (100 asked for)" in capsys.readouterr().out
    assert "100 clips asked for" in caplog.text and "lists 2" in caplog.text


def test_prompt_words_the_world_does_not_know_are_reported(tmp_path):
    from spacetime.eval import Sample, evaluate
    from spacetime.eval.report import write_report

    clip = clip_of(zero_g_scene())
    prompts = ["a plaid dog runs", clip.captions["detailed"], "a red ball falls, then cut to a dolly zoom"]
    result = evaluate([Sample(f"{i}", p, clip.frames, FPS) for i, p in enumerate(prompts)], progress=False)
    data = result.to_json()
    assert data["clips"][0]["unknown_words"] == ["plaid", "dog"] and data["clips"][1]["unknown_words"] == []
    assert "dolly zoom" in data["clips"][2]["prompt_notes"][0]
    agg = data["aggregate"]["prompts"]
    assert agg["with_unknown_words"] == 2 and agg["with_notes"] == 1 and agg["unknown_words"]["plaid"] == 1
    page = write_report(result, tmp_path).read_text()
    assert "does not know: plaid, dog" in page and "with words the world does not know: 2 of 3" in page


def test_a_pan_the_bar_cannot_measure_is_noted_not_passed():
    # zero_g_scene has no bar: the frame alone cannot tell a pan, so the camera is not judged, and says so
    s, _ = scores(clip_of(zero_g_scene()).frames, "a red ball moves to the right, the camera pans left")
    assert "camera not judged: no bar in view to measure it" in s.metrics["motion"].notes
    s, _ = scores(clip_of(zero_g_scene()).frames, "a red ball moves to the right")  # no camera asked: nothing to say
    assert not any("camera" in n for n in s.metrics["motion"].notes)


def test_a_folder_scores_the_caption_asked_for_or_says_which_it_used(tmp_path, caplog):
    from spacetime.eval import evaluate
    from spacetime.eval.evaluate import load_folder

    clip = make_clip(3, num_frames=9, height=32, width=32)
    write_video(clip.frames, tmp_path / "a.mp4", fps=FPS)
    rows = [
        {"path": "a.mp4", "captions": {"detailed": clip.captions["detailed"]}},  # no short one
        {"path": "a.mp4", "captions": {"short": "", "medium": clip.captions["medium"]}},  # an empty short one
        {"path": "a.mp4", "captions": {"short": " "}},  # nothing to score against
        {"path": "a.mp4", "captions": {"short": clip.captions["short"]}},
    ]
    (tmp_path / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = list(load_folder(tmp_path, caption="short"))
    assert [(s.caption, s.prompt) for s in samples] == [
        ("detailed", clip.captions["detailed"]), ("medium", clip.captions["medium"]), ("short", clip.captions["short"])
    ]
    assert "no non-empty 'short' caption; scoring its 'detailed' caption" in caplog.text
    assert "scoring its 'medium' caption" in caplog.text and "skipped" in caplog.text
    data = evaluate(samples[:1], progress=False).to_json()
    assert data["clips"][0]["caption"] == "detailed"


def test_cli_refuses_a_folder_with_no_clip_to_score(tmp_path, eval_cli, capsys):
    """Every caption empty: exit 0 with an empty metrics.json."""
    clip = make_clip(3, num_frames=9, height=32, width=32)
    write_video(clip.frames, tmp_path / "a.mp4", fps=FPS)
    (tmp_path / "captions.jsonl").write_text(json.dumps({"path": "a.mp4", "captions": {"short": " ", "detailed": ""}}) + "\n")
    assert eval_cli("--videos", tmp_path, "--out", tmp_path / "e", "--no-report") == 1
    assert "no clip to score" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # nothing written


def test_cli_refuses_an_out_under_a_file_before_scoring(tmp_path, eval_cli, monkeypatch, capsys):
    """--out afile/sub failed after all the scoring, with an errno message not naming --out."""
    import spacetime.eval as ev

    world = tmp_path / "w"
    assert main(["world", "--out", str(world), "--num-clips", "1", "--num-frames", "9", "--size", "32x32"]) == 0
    (tmp_path / "afile").write_text("a file")
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: pytest.fail("scored before checking --out"))
    capsys.readouterr()
    assert eval_cli("--videos", world, "--out", tmp_path / "afile" / "sub" / "deeper") == 1
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'afile' / 'sub' / 'deeper'}: {tmp_path / 'afile'} is a file" in err, err


def test_an_interrupted_eval_says_to_start_over(tmp_path, eval_cli, monkeypatch, capsys):
    """It said "run the same command again to resume (training: ...)"; eval does not resume."""
    import spacetime.eval as ev

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "evaluate", interrupted)
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "captions.jsonl").write_text("")
    assert eval_cli("--videos", tmp_path / "v", "--out", tmp_path / "e", "--no-report") == 130
    err = capsys.readouterr().err
    assert "spacetime eval: interrupted; run the same command again to start over" in err and "resume" not in err


def test_a_model_run_scores_the_videos_it_saves(tmp_path, eval_cli, monkeypatch):
    """--model scored the raw frames but saved H.264 crf 18: re-scoring the saved videos with
    --videos gave other numbers. Now both score the saved (crf 0) videos: the same numbers."""
    import spacetime.eval as ev

    def grainy(prompt, **kw):  # fine noise, which crf 18 smooths away
        frames = BASELINES["simulator"](prompt, **kw).astype(int)
        noise = np.random.default_rng(kw["seed"]).integers(-40, 41, frames.shape)
        return np.clip(frames + noise, 0, 255).astype(np.uint8)

    monkeypatch.setattr(ev, "pipeline_generator", lambda path, **sampling: grainy)
    (tmp_path / "model").mkdir()
    small = ("--num-frames", "9", "--size", "32x32", "--num-clips", "2", "--no-report")
    assert eval_cli("--model", tmp_path / "model", "--out", tmp_path / "m", *small) == 0
    assert eval_cli("--videos", tmp_path / "m" / "videos", "--out", tmp_path / "v", "--no-report") == 0
    model, videos = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("m", "v"))
    assert model["aggregate"] == videos["aggregate"]
    for a, b in zip(model["clips"], videos["clips"]):
        assert a["metrics"] == b["metrics"] and a["measured"] == b["measured"]


def test_the_calibration_bench_scores_a_vae_round_trip_as_saved(monkeypatch, tmp_path, bench_module):
    """bench/eval_baselines.py --vae: the row is the source clips through that VAE, saved as eval
    saves a model's clips; a 'VAE' that inverts colours must fail adherence while the source rows
    pass, and --save-vae keeps a folder `spacetime eval --videos` can score."""
    import torch

    from spacetime import vae as vae_module

    class Inverting:
        def encode(self, video):
            return video

        def decode(self, z):
            return -z

    monkeypatch.setattr(vae_module.VideoVAE, "from_pretrained", classmethod(lambda cls, path: Inverting()))
    module = bench_module("eval_baselines")
    threads = torch.get_num_threads()
    try:
        out = module.main(["--num-clips", "2", "--splits", "heldout", "--no-generators", "--vae", "any",
                           "--save-vae", str(tmp_path / "rt")])
    finally:
        torch.set_num_threads(threads)
    rows = {r["baseline"]: r for r in out["splits"]["heldout"]}
    assert list(out["splits"]) == ["heldout"] and len(rows) == 4  # raw, 444, 420, the VAE
    assert rows["source clips (the captioned clips)"]["adherence"] == 1.0
    assert rows["source clips through the VAE (encode, decode)"]["adherence"] < 0.5
    raw = out["tracker"]["heldout"]["raw"]  # every object seen whole, counted once in its size and shape
    assert sum(n for n, _ in raw["shape_accuracy_by_kind"].values()) == raw["objects_judged"] > 0
    assert all(share == 1.0 for _, share in raw["shape_accuracy_by_kind"].values())
    saved = sorted(p.name for p in (tmp_path / "rt" / "heldout").iterdir())
    assert saved == ["000000.mp4", "000001.mp4", "captions.jsonl"]
    frames = read_video(tmp_path / "rt" / "heldout" / "000000.mp4")[0]
    clip = make_clip(stream_seed(0, 0, "heldout"), split="heldout", num_frames=17, height=64, width=64, fps=8)
    assert np.abs(frames.astype(int) - (255 - clip.frames.astype(int))).max() <= 3  # inverted, saved near-losslessly


def test_paired_change_matches_clips_by_name_and_skips_unscored(bench_module):
    reasons = bench_module("eval_reasons")

    def run(scores: dict) -> list[dict]:
        return [{"name": n, "metrics": {"permanence": None if s is None else {"score": s}}} for n, s in scores.items()]

    base = run({"a": 0.5, "b": 1.0, "c": 0.0, "d": 0.25})
    other = run({"c": 0.5, "a": 1.0, "b": 1.0, "d": None})  # d unscored in one run: left out
    mean, se, n = reasons.paired_change(base, other, "permanence")
    assert n == 3 and mean == pytest.approx((0.5 + 0.0 + 0.5) / 3)
    assert se == pytest.approx(np.std([0.5, 0.0, 0.5], ddof=1) / np.sqrt(3))
    assert np.isnan(reasons.paired_change(base, run({"a": 1.0}), "permanence")[0])  # one clip: no spread
    # --paired-without: the clips a probe scored are left out of every run before pairing
    kept = reasons.leave_out([base, other], {"a", "c"})
    assert [[c["name"] for c in r] for r in kept] == [["b", "d"], ["b", "d"]]
    assert reasons.paired_change(*kept, "permanence")[2] == 1  # d is unscored in `other`


def test_presence_steps_place_vanishings_and_appearances_at_latent_frame_boundaries(bench_module):
    reasons = bench_module("eval_reasons")
    clips = [{"metrics": {"permanence": {"reasons": [
        "the red ball: vanishes after frame 4 in mid-view, appears at frame 7 in mid-view",
        "the extra blue object: appears at frame 9 in mid-view"]}}},
        {"metrics": {"permanence": {"reasons": ["the green square: vanishes after frame 6 in mid-view"]}}},
        {"metrics": {"permanence": None}}]
    steps = reasons.presence_steps(clips)
    assert steps["vanishes"] == {4: 1, 6: 1}
    assert steps["appears"] == {6: 1, 8: 1}  # "appears at frame k + 1" happens at step k
    # 17 frames, factor 4: steps 0, 4, 8, 12 of 16 cross from one latent frame to the next
    assert reasons.latent_boundary_share(steps["vanishes"], 17, 4) == (1, 2, 0.25)
    assert reasons.latent_boundary_share(steps["appears"], 17, 4) == (1, 2, 0.25)
    assert reasons.latent_boundary_share(steps["appears"], 17, 1) == (2, 2, 1.0)  # every step, no temporal compression


def test_decoder_noise_round_trips_share_their_draws_and_add_nothing_at_zero(bench_module):
    import torch

    from spacetime.vae import VAEConfig, VideoVAE

    noise = bench_module("decoder_noise")

    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(channels=(8, 8, 8)))
    clips = [np.random.default_rng(i).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8) for i in range(2)]
    plain = noise.noisy_round_trips(vae, clips, 0.0, seed=0)
    assert all(np.array_equal(a, bench_module("eval_baselines").vae_round_trip(vae, c)) for a, c in zip(plain, clips))
    again = noise.noisy_round_trips(vae, clips, 0.5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, noise.noisy_round_trips(vae, clips, 0.5, seed=3)))
    assert not all(np.array_equal(a, b) for a, b in zip(again, plain))


def test_the_frames_strip_stacks_each_runs_first_clips(tmp_path, bench_module):
    """bench/eval_reasons.py --strip: the first clips' rows of each run's frames.png (one row per clip
    kept, at most 6), one run under another."""
    from PIL import Image

    runs = []
    for r, n_clips in enumerate((200, 4)):  # 6 rows kept, then 4
        rows = min(6, n_clips)
        img = Image.new("RGB", (60, 10 * rows))
        for i in range(rows):  # row i of run r: a colour of its own
            img.paste((40 * i, 100 * r, 7), (0, 10 * i, 60, 10 * i + 10))
        (tmp_path / f"run{r}").mkdir()
        img.save(tmp_path / f"run{r}" / "frames.png")
        runs.append(tmp_path / f"run{r}")
    out = tmp_path / "strip.png"
    bench_module("eval_reasons").frames_strip(runs, [200, 4], 3, out)
    strip = np.asarray(Image.open(out).convert("RGB"))
    label = (strip.shape[0] - 60) // 2
    assert strip.shape == (60 + 2 * label, 60, 3)
    for r in range(2):
        for i in range(3):
            y = label * (r + 1) + 30 * r + 10 * i + 5
            assert tuple(strip[y, 30]) == (40 * i, 100 * r, 7), (r, i)


def test_cli_scores_a_users_own_prompts(tmp_path, eval_cli, monkeypatch, capsys):
    """`--prompts FILE`: the file's prompts, in order, in place of the split's (the simulator as the
    model, so each clip must pass what its prompt asks); a bad file fails before the model loads."""
    import spacetime.eval as ev

    asked = []

    def simulator(path, **sampling):
        def generate(prompt, **kw):
            asked.append(prompt)
            return BASELINES["simulator"](prompt, **kw)
        return generate

    monkeypatch.setattr(ev, "pipeline_generator", simulator)
    model, out = tmp_path / "model", tmp_path / "e"
    model.mkdir()
    small = ("--num-frames", "9", "--size", "32x32", "--no-report")
    (tmp_path / "p.txt").write_text("# mine\na red ball falls\n\n  a blue square moves to the left  \n")
    assert eval_cli("--model", model, "--prompts", tmp_path / "p.txt", "--out", out, *small) == 0
    assert asked == ["a red ball falls", "a blue square moves to the left"]
    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["prompts"] == str(tmp_path / "p.txt") and "split" not in data["settings"]
    assert [c["prompt"] for c in data["clips"]] == asked
    assert data["aggregate"]["adherence"]["mean"] == 1.0 and data["aggregate"]["gravity"]["gravity"]["sign_correct"] == 1.0
    captions = (out / "videos" / "captions.jsonl").read_text().splitlines()
    assert [json.loads(line)["captions"]["detailed"] for line in captions] == asked
    # .jsonl, and --num-clips takes the first N
    asked.clear()
    (tmp_path / "p.jsonl").write_text('{"prompt": "a green triangle falls"}\n{"prompt": "a red ball"}\n')
    assert eval_cli("--model", model, "--prompts", tmp_path / "p.jsonl", "--num-clips", 1, "--out", out, *small) == 0
    assert asked == ["a green triangle falls"]
    # bad files: named, with the line, and nothing generated
    asked.clear()
    bad = {"none.txt": None, "empty.txt": "# only a comment\n\n", "bad.jsonl": '{"prompt": "a red ball"}\n{"text": 1}\n',
           "latin1.txt": "a r\xe9d ball".encode("latin-1")}
    for name, text in bad.items():
        if isinstance(text, bytes):
            (tmp_path / name).write_bytes(text)
        elif text is not None:
            (tmp_path / name).write_text(text)
        capsys.readouterr()
        assert eval_cli("--model", model, "--prompts", tmp_path / name, "--out", tmp_path / "x", *small) == 1
        err = capsys.readouterr().err
        assert f"--prompts {tmp_path / name}" in err and "Traceback" not in err, err
        assert name != "bad.jsonl" or "line 2" in err, err
    assert asked == [] and not (tmp_path / "x").exists()


def test_a_prompts_file_named_in_capitals_jsonl_is_read_as_jsonl(tmp_path):
    from spacetime.eval import read_prompts

    f = tmp_path / "mine.JSONL"
    f.write_text('{"prompt": "a red ball falls"}\n', encoding="utf-8")
    assert read_prompts(f) == ["a red ball falls"]  # not the JSON line as a prompt
    t = tmp_path / "mine.txt"  # a text file: BOM, CRLF, comments, blank lines, unicode, duplicates kept
    t.write_bytes("\ufeff# mine\r\na red ball falls\r\n\r\nun ballon 🎈\r\na red ball falls\r\n".encode())
    assert read_prompts(t) == ["a red ball falls", "un ballon 🎈", "a red ball falls"]


def test_a_model_whose_vae_weights_do_not_fit_its_config_is_a_message_not_a_traceback(tmp_path, tiny_model_dir, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    cfg = json.loads((model / "vae" / "config.json").read_text())
    cfg["model"]["latent_channels"] //= 2  # another VAE's config over these weights
    (model / "vae" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "p.txt").write_text("a red ball falls\n")
    rc = main(["eval", "--model", str(model), "--prompts", str(tmp_path / "p.txt"), "--num-frames", "9",
               "--size", "32x32", "--num-inference-steps", "1", "--no-report", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and f"{model / 'vae' / 'model.safetensors'}: cannot load the VAE" in err and "size mismatch" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_a_prompts_path_that_is_a_directory_is_named_so(tmp_path):
    from spacetime.eval import read_prompts

    with pytest.raises(ValueError, match="is a directory"):
        read_prompts(tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        read_prompts(tmp_path / "missing.txt")


def test_eval_of_a_model_completes_prompts_as_generate_does_unless_told(tmp_path, tiny_model_dir, monkeypatch):
    """`spacetime generate` completes a prompt that names no colour for a model whose config says so;
    the eval generated from it as written, so it measured an empty scene no user would get."""
    import shutil

    from spacetime.pipeline import SpacetimePipeline
    from spacetime.world.prompts import parse_prompt

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["defaults"]["complete_prompt"] = True
    (model / "config.json").write_text(json.dumps(cfg))
    seen, real = [], SpacetimePipeline.__call__

    def spy(self, prompt, *args, **kwargs):
        seen.append(prompt)
        return real(self, prompt, *args, **kwargs)

    monkeypatch.setattr(SpacetimePipeline, "__call__", spy)
    (tmp_path / "p.txt").write_text("a ball falls\na red ball falls\n")
    base = ["eval", "--model", str(model), "--prompts", str(tmp_path / "p.txt"), "--num-frames", "5", "--size", "32x32",
            "--num-inference-steps", "1", "--no-report"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["settings"]["complete_prompt"] is True
    assert seen[0] != "a ball falls" and parse_prompt(seen[0]).objects[0].colour and seen[1] == "a red ball falls"
    assert main([*base, "--prompt-as-typed", "--out", str(tmp_path / "b")]) == 0
    assert seen[2:] == ["a ball falls", "a red ball falls"]
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["settings"]["complete_prompt"] is False


def test_cli_refuses_a_video_it_cannot_score_before_scoring_the_others(tmp_path, eval_cli, monkeypatch, capsys):
    """A clip narrower than the world renders (width/height < 0.25), or a listed file that does not
    open, failed the run only when reached, after scoring every clip before it, and the narrow one's
    error named no file ("size 14x64 (WxH) is too narrow"). Now each file's header is read first."""
    import sys

    clip = make_clip(3, num_frames=9, height=64, width=64)
    write_video(clip.frames, tmp_path / "ok.mp4", fps=FPS, crf=0, pix_fmt="yuv444p")
    write_video(np.ascontiguousarray(clip.frames[:, :, 24:38]), tmp_path / "narrow.mp4", fps=FPS, crf=0, pix_fmt="yuv444p")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    cap = clip.captions["detailed"]
    scored = []
    module = sys.modules["spacetime.eval.evaluate"]  # spacetime.eval.evaluate is also the function's name
    real = module.score_clip
    monkeypatch.setattr(module, "score_clip", lambda *a, **k: scored.append(1) or real(*a, **k))
    for bad, line in (("narrow.mp4", 2), ("broken.mp4", 2)):
        rows = [{"path": "ok.mp4", "caption": cap}, {"path": bad, "caption": cap}]
        (tmp_path / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert eval_cli("--videos", tmp_path, "--out", tmp_path / "e", "--no-report") == 1
        err = capsys.readouterr().err
        assert f"{bad} (line {line} of the captions file)" in err, err
        assert not scored and not (tmp_path / "e").exists()
    with pytest.raises(ValueError, match="clip 'n': size 14x64"):  # the Python API names the clip
        from spacetime.eval.evaluate import Sample, evaluate

        evaluate([Sample("n", cap, np.ascontiguousarray(clip.frames[:, :, 24:38]), FPS)], progress=False)


def test_trajectories_draw_an_object_seen_in_a_lone_frame(tmp_path, monkeypatch):
    """A one-frame clip's objects (adherence 1.0) were plotted as lines of one point each: the
    trajectory figure showed empty axes. A frame seen between unseen ones is now a dot."""
    from spacetime.eval import report
    from spacetime.eval.evaluate import Sample, evaluate

    clip = make_clip(3, num_frames=1, height=32, width=32)
    result = evaluate([Sample("one", clip.captions["detailed"], clip.frames, FPS)], progress=False)
    assert result.to_json()["clips"][0]["metrics"]["adherence"]["score"] == 1.0
    figs = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figs.append(fig))
    monkeypatch.setattr(report._plt(), "close", lambda fig: None)
    report.plot_trajectories(result, tmp_path / "t.png")

    def drawn(line) -> int:  # points a viewer sees: a marker, or a segment between two finite points
        y = np.asarray(line.get_ydata(), float)
        if line.get_marker() not in (None, "None", "", " "):
            return int(np.isfinite(y).sum())
        return int((np.isfinite(y[1:]) & np.isfinite(y[:-1])).sum())

    ax = figs[0].axes[0]
    assert sum(drawn(line) for line in ax.get_lines()) >= 2 * len(result.scores[0].motions), [
        (line.get_marker(), line.get_ydata()) for line in ax.get_lines()
    ]


def test_a_clip_shorter_than_the_worlds_cuts_need_is_scored_not_a_crash():
    """A user's 8-frame video of a two-shot prompt (its cut on frame 5) scores cuts 1.0, but the
    simulator's reference needs 9 frames for two shots: evaluate raised "2 shots need at least 9
    frames" naming no clip, ending the run. The reference is now the first frames of a rendition
    long enough for the cuts."""
    from spacetime.eval.evaluate import Sample, evaluate

    clip = next(
        c for s in range(100) for c in [make_clip(s, num_frames=9, height=32, width=32, multishot=True)] if c.shots
    )
    short = [Sample(f"t{t}", clip.captions["detailed"], clip.frames[:t], FPS) for t in (8, 2)]
    data = evaluate(short, progress=False).to_json()
    assert data["clips"][0]["metrics"]["cuts"]["score"] == 1.0
    assert data["clips"][1]["metrics"]["cuts"]["score"] == 0.0  # 2 frames: the cut is not there
    json.dumps(data, allow_nan=False)


def test_frames_too_small_for_the_tracker_are_noted(caplog):
    """A 16x16 folder of the simulator's own clips scored permanence 0.42 (a small ball is 2 pixels
    across there) with nothing said: the numbers read as the video's fault. A note now says so."""
    from spacetime.eval.evaluate import Sample, evaluate

    def note_for(size: int) -> bool:
        caplog.clear()
        clip = make_clip(3, num_frames=5, height=size, width=size)
        with caplog.at_level("WARNING"):
            evaluate([Sample("c", clip.captions["detailed"], clip.frames, FPS)], progress=False)
        return "under 24 pixels high" in caplog.text

    assert note_for(16) and not note_for(32)


def test_report_page_says_na_for_an_acceleration_nothing_measured(tmp_path):
    """With no object in free flight (a black video, one clip) the page read "median None units/s²"."""
    from spacetime.eval.evaluate import Sample, evaluate
    from spacetime.eval.report import write_report

    black = np.zeros((9, 32, 32, 3), np.uint8)
    result = evaluate([Sample("black", "a red ball falls on a black background", black, FPS)], progress=False)
    write_report(result, tmp_path, strict=True)
    page = (tmp_path / "index.html").read_text()
    assert "None" not in page and "n/a (no object seen in free flight)" in page


def test_the_width_check_reads_a_video_as_decoded_rotation_and_all(tmp_path):
    """The narrow-view check reads each file's header; read_video turns a frame by its display
    rotation (a phone's portrait video), so the check must too: 64x14 coded, shown 14x64, is narrow."""
    from fractions import Fraction

    import av

    from spacetime.eval.evaluate import check_video

    def rotated(name: str, w: int, h: int, degrees: int):
        path = tmp_path / name
        with av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=Fraction(8))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
            stream.set_display_rotation(degrees)
            for _ in range(2):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((h, w, 3), np.uint8), format="rgb24")))
            out.mux(stream.encode(None))
        assert read_video(path)[0].shape[1:3] == ((w, h) if degrees % 180 else (h, w))
        return path

    with pytest.raises(ValueError, match="14x64 .WxH. is narrower than the world renders"):
        check_video(rotated("portrait.mp4", 64, 14, 90), "portrait")
    check_video(rotated("landscape.mp4", 14, 64, -90), "landscape")  # shown 64x14: wide enough


def test_a_prompt_with_no_object_the_world_knows_does_not_reward_a_blank_video():
    """"a plaid dog runs" parses to no object: a blank grey video passed "0 objects seen, the
    prompt has 0" and scored adherence 1.0 (docs said 0). The count is not judged for such a
    prompt: a blank video is not judged on adherence, the world's objects fail as extras."""
    blank = np.full((9, 32, 32, 3), 128, np.uint8)
    s, _ = scores(blank, "a plaid dog runs")
    assert s.metrics["adherence"].score is None and "object count not judged" in s.metrics["adherence"].notes[0]
    s, _ = scores(make_clip(3, num_frames=9, height=32, width=32).frames, "a plaid dog runs")
    assert s.metrics["adherence"].score == 0.0
    s, _ = scores(blank, "a red ball")  # a prompt the world reads is judged as before
    assert s.metrics["adherence"].score == 0.0 and "0 objects seen (none), the prompt has 1" in s.metrics["adherence"].reasons


def test_a_prompts_file_with_old_mac_line_ends_is_read_line_by_line(tmp_path):
    """A lone carriage return ends a line (classic Mac OS, some exports): the whole file was one prompt."""
    from spacetime.eval import read_prompts

    (tmp_path / "cr.txt").write_bytes(b"a red ball falls\r# a comment\ra blue square\r")
    (tmp_path / "crlf.txt").write_bytes(b"a red ball falls\r\na blue square\r\n")
    assert read_prompts(tmp_path / "cr.txt") == read_prompts(tmp_path / "crlf.txt") == ["a red ball falls", "a blue square"]


def test_a_folders_videos_left_out_of_its_captions_file_are_named(tmp_path, caplog):
    """eval --videos skipped a video the captions file does not list without a word (the probe names them)."""
    from spacetime.eval.evaluate import load_folder

    clip = make_clip(3, num_frames=9, height=32, width=32)
    (tmp_path / "sub").mkdir()
    for name in ("a.mp4", "b.mp4", "sub/c.mp4"):
        write_video(clip.frames, tmp_path / name, fps=FPS)
    (tmp_path / "captions.jsonl").write_text(json.dumps({"path": "./a.mp4", "caption": clip.captions["short"]}) + "\n")
    with caplog.at_level("WARNING"):
        assert len(list(load_folder(tmp_path))) == 1
    assert "2 video(s) in" in caplog.text and "not scored: b.mp4, sub/c.mp4" in caplog.text
    caplog.clear()
    (tmp_path / "captions.jsonl").write_text("".join(json.dumps({"path": n, "caption": "a red ball"}) + "\n"
                                                     for n in ("a.mp4", "b.mp4", "sub/c.mp4")))
    with caplog.at_level("WARNING"):
        list(load_folder(tmp_path))
    assert "not in its captions file" not in caplog.text
    # a folder of links to the videos (load_captions resolves them): each listed link is its video
    links = tmp_path / "links"
    links.mkdir()
    (links / "a.mp4").symlink_to(tmp_path / "a.mp4")
    (links / "captions.jsonl").write_text(json.dumps({"path": "a.mp4", "caption": "a red ball"}) + "\n")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert len(list(load_folder(links))) == 1
    assert "not in its captions file" not in caplog.text
