"""The `spacetime` command: world rendering to a folder, resume, refusals, bad arguments."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from spacetime.cli import main
from spacetime.data.video import read_video
from spacetime.world.clip import make_clip, stream_seed

ARGS = ["--num-clips", "3", "--size", "48x32", "--num-frames", "5", "--fps", "6", "--seed", "4"]


def test_world_writes_folder_format(tmp_path):
    out = tmp_path / "w"
    assert main(["world", "--out", str(out), *ARGS]) == 0
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for i, row in enumerate(rows):
        assert set(row["captions"]) == {"short", "medium", "detailed"}
        assert (row["num_frames"], row["height"], row["width"], row["fps"]) == (5, 32, 48, 6.0)
        frames, fps = read_video(out / row["path"])
        assert frames.shape == (5, 32, 48, 3) and fps == pytest.approx(6.0)
        gt = json.loads((out / row["ground_truth"]).read_text())
        clip = make_clip(stream_seed(4, i), num_frames=5, height=32, width=48, fps=6.0)
        assert gt["objects"] == json.loads(json.dumps(clip.ground_truth()["objects"]))
        assert gt["captions"] == row["captions"] == clip.captions
        # the MP4 holds the clip (lossy, but close)
        assert np.abs(frames.astype(int) - clip.frames.astype(int)).mean() < 6


def test_world_resumes_and_keeps_complete_clips(tmp_path):
    out = tmp_path / "w"
    assert main(["world", "--out", str(out), *ARGS]) == 0
    first = out / "clips" / "000000.mp4"
    stamp = first.stat().st_mtime_ns
    (out / "clips" / "000001.json").unlink()  # as if killed while writing clip 1
    before = (out / "clips" / "000002.mp4").read_bytes()
    assert main(["world", "--out", str(out), *ARGS]) == 0
    assert first.stat().st_mtime_ns == stamp  # kept, not re-rendered
    assert (out / "clips" / "000001.json").exists()
    assert (out / "clips" / "000002.mp4").read_bytes() == before
    assert len((out / "captions.jsonl").read_text().splitlines()) == 3
    assert not [p for p in out.rglob("*.tmp")]


def test_world_refuses_other_settings_and_foreign_folders(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["world", "--out", str(out), *ARGS]) == 0
    before = (out / "captions.jsonl").read_text()
    assert main(["world", "--out", str(out), *ARGS[:-2], "--seed", "5"]) == 1
    assert "other settings" in capsys.readouterr().err
    assert (out / "captions.jsonl").read_text() == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["world", "--out", str(foreign), *ARGS]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me" and len(os.listdir(foreign)) == 1
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["world", "--out", str(a_file), *ARGS]) == 1
    assert a_file.read_text() == "x"


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--size", "64"),
        ("--size", "0x64"),
        ("--size", "64x-1"),
        ("--size", "99999x64"),
        ("--fps", "0"),
        ("--fps", "nan"),
        ("--fps", "1e-9"),
        ("--fps", "abc"),
        ("--num-frames", "0"),
        ("--num-frames", "ten"),
        ("--seed", "-1"),
        ("--seed", "1.5"),
        ("--num-clips", "0"),
        ("--split", "test"),
    ],
)
def test_bad_arguments_exit_2_naming_the_value(tmp_path, capsys, flag, value):
    args = ["world", "--out", str(tmp_path / "w"), "--num-clips", "1", flag, value]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert value in err and flag.lstrip("-").split("-")[0] in err
    assert not (tmp_path / "w").exists()


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "spacetime", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "spacetime" in r.stdout
    r = subprocess.run([sys.executable, "-m", "spacetime", "world", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--num-clips" in r.stdout


def test_generate_without_a_default_model_says_so(tmp_path, capsys, monkeypatch):
    import spacetime.pipeline

    # an installation whose package holds no complete pipeline (e.g. weights stripped)
    monkeypatch.setattr(spacetime.pipeline, "DEFAULT_MODEL", tmp_path / "models" / "world")
    assert main(["generate", "a red ball", "--output", str(tmp_path / "x.mp4")]) == 1
    err = capsys.readouterr().err
    assert "no default text-to-video model is installed yet; pass --model DIR" in err
    assert not (tmp_path / "x.mp4").exists()


def test_eval_without_model_or_videos_scores_the_shipped_model(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """generate takes the shipped model by default, eval demanded --model: an installed user had to
    find the package's folder. Now it is eval's default too, and a missing one is named."""
    import spacetime.pipeline

    monkeypatch.setattr(spacetime.pipeline, "DEFAULT_MODEL", tmp_path / "models" / "world")
    assert main(["eval", "--out", str(tmp_path / "none"), "--no-report"]) == 1
    assert "no default text-to-video model is installed; pass --model DIR" in capsys.readouterr().err
    monkeypatch.setattr(spacetime.pipeline, "DEFAULT_MODEL", tiny_model_dir)
    out = tmp_path / "ev"
    assert main(["eval", "--num-clips", "1", "--num-frames", "5", "--size", "32x32", "--num-inference-steps", "1",
                 "--out", str(out), "--no-report"]) == 0
    assert json.loads((out / "metrics.json").read_text())["settings"]["model"] == str(tiny_model_dir)


def test_eval_refuses_a_geometry_the_model_cannot_make_before_loading(tiny_model_dir, tmp_path, capsys):
    """generate rounds an unfit request; eval must not (its reference clips are rendered at the
    size asked), so it says which flag, before loading or writing anything."""
    for flag, value, msg in (("--num-frames", "4", "--num-frames 4: this model makes 1 + 4k frames"),
                             ("--size", "63x65", "--size 63x65: this model makes widths in multiples of 16")):
        out = tmp_path / flag.strip("-")
        assert main(["eval", "--model", str(tiny_model_dir), "--num-clips", "1", flag, value, "--out", str(out),
                     "--no-report"]) == 1
        assert msg in capsys.readouterr().err and not out.exists()


def test_help_shows_each_flags_default(capsys):
    for command, flag, default in (("generate", "--num-inference-steps", "the model's own, else 25"),
                                   ("generate", "--guidance-scale", "the model's own, else 5"),
                                   ("generate", "--dtype", "the model's own, else float32"),
                                   ("generate", "--seed", "0"), ("world", "--fps", "8.0"), ("serve", "--max-frames", "241")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        after = text.split(f" {flag} ", 1)[1]
        assert after.split(" --", 1)[0].rstrip().endswith(f"(default: {default})"), (command, flag, after[:120])


def test_a_vae_folder_that_is_not_there_is_named_so():
    from spacetime.vae import VideoVAE

    with pytest.raises(ValueError, match="nope: no such model directory"):  # was "no COMPLETE marker"
        VideoVAE.from_pretrained("nope")
    with pytest.raises(ValueError, match="configs say vae: shipped"):
        VideoVAE.from_pretrained("shipped")


def test_generate_and_eval_run_the_dit_and_vae_in_the_dtype_asked(tiny_model_dir, tmp_path, monkeypatch):
    """--dtype bfloat16 loads the weights in bfloat16 (what makes sampling faster), and the eval
    records the dtype its numbers were made in; float32 stays the default."""
    import torch

    from spacetime.pipeline import SpacetimePipeline

    loaded = []
    real = SpacetimePipeline.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        pipe = real(cls, *args, **kwargs)
        loaded.append((next(pipe.dit.parameters()).dtype, next(pipe.vae.parameters()).dtype))
        return pipe

    monkeypatch.setattr(SpacetimePipeline, "from_pretrained", classmethod(spy))
    for dtype in ("bfloat16", None):
        out = tmp_path / f"{dtype}.mp4"
        args = ["generate", "a red ball", "--model", str(tiny_model_dir), "--output", str(out), "--num-inference-steps", "2",
                "--no-provenance"]
        assert main(args + (["--dtype", dtype] if dtype else [])) == 0
        assert read_video(out)[0].shape == (5, 32, 32, 3)
        assert json.loads(out.with_suffix(".json").read_text())["dtype"] == (dtype or "float32")
    assert loaded == [(torch.bfloat16, torch.bfloat16), (torch.float32, torch.float32)]
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tiny_model_dir), "--num-clips", "1", "--num-frames", "5", "--size", "32x32",
                 "--num-inference-steps", "2", "--dtype", "bfloat16", "--out", str(out), "--no-report"]) == 0
    assert json.loads((out / "metrics.json").read_text())["settings"]["dtype"] == "bfloat16"
    assert loaded[-1] == (torch.bfloat16, torch.bfloat16)


def test_generate_and_eval_sample_as_the_model_folder_says_unless_told(tiny_model_dir, tmp_path, monkeypatch):
    """A model whose config.json defaults are 3 steps, guidance 2 and bfloat16 is sampled so by a
    bare `spacetime generate` and `spacetime eval`, and the sidecar and metrics.json say so; flags win."""
    import shutil

    monkeypatch.setattr("spacetime.pipeline.fast_bfloat16", lambda device="cpu": True)  # as on an AVX-512 CPU

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["defaults"].update(num_inference_steps=3, guidance_scale=2.0, dtype="bfloat16")
    (model / "config.json").write_text(json.dumps(config))
    made = {}
    for name, flags in (("own", []), ("told", ["--num-inference-steps", "2", "--guidance-scale", "5", "--dtype", "float32"]),
                        ("same", ["--num-inference-steps", "3", "--guidance-scale", "2", "--dtype", "bfloat16"])):
        out = tmp_path / f"{name}.mp4"
        assert main(["generate", "a red ball", "--model", str(model), "--output", str(out), "--no-provenance", *flags]) == 0
        sidecar = json.loads(out.with_suffix(".json").read_text())
        made[name] = (sidecar["num_inference_steps"], sidecar["guidance_scale"], sidecar["dtype"]), read_video(out)[0]
    assert made["own"][0] == made["same"][0] == (3, 2.0, "bfloat16") and made["told"][0] == (2, 5.0, "float32")
    assert np.array_equal(made["own"][1], made["same"][1]) and not np.array_equal(made["own"][1], made["told"][1])
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(model), "--num-clips", "1", "--num-frames", "5", "--size", "32x32",
                 "--out", str(out), "--no-report"]) == 0
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert (settings["num_inference_steps"], settings["guidance_scale"], settings["dtype"]) == (3, 2.0, "bfloat16")


def test_generate_takes_the_models_guidance_method_unless_told(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import shutil

    from spacetime import sampling

    sampled = []  # what reached the sampler, and its latents (the tiny model's frames barely differ)
    original = sampling.sample
    monkeypatch.setattr(sampling, "sample", lambda *a, **kw: sampled.append(
        (kw["guidance_method"], kw["guidance_options"], original(*a, **kw))) or sampled[-1][2])
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["defaults"].update(num_inference_steps=2, guidance_method="apg", guidance_options={"eta": 0.5})
    (model / "config.json").write_text(json.dumps(config))
    made = {}
    for name, flags in (("own", []), ("option", ["--guidance-option", "momentum=-0.5"]),
                        ("cfg", ["--guidance-method", "cfg"]),
                        ("zero", ["--guidance-method", "cfg-zero-star", "--guidance-option", "zero_init_steps=1"])):
        out = tmp_path / f"{name}.mp4"
        assert main(["generate", "a red ball", "--model", str(model), "--output", str(out), "--no-provenance", *flags]) == 0
        sidecar = json.loads(out.with_suffix(".json").read_text())
        made[name] = (sidecar["guidance_method"], sidecar["guidance_options"]), read_video(out)[0]
    assert made["own"][0] == ("apg", {"momentum": 0.0, "norm_threshold": 0.0, "eta": 0.5})
    assert made["option"][0] == ("apg", {"momentum": -0.5, "norm_threshold": 0.0, "eta": 0.5})  # the model's eta kept
    assert made["cfg"][0] == ("cfg", {}) and made["zero"][0] == ("cfg-zero-star", {"zero_init_steps": 1})
    assert [(m, o) for m, o, _ in sampled] == [("apg", made["own"][0][1]), ("apg", made["option"][0][1]), ("cfg", {}),
                                                ("cfg-zero-star", {"zero_init_steps": 1})]
    assert not torch.equal(sampled[0][2], sampled[2][2])
    # an option the method has not: exit 1 naming it, nothing written
    out = tmp_path / "bad.mp4"
    assert main(["generate", "a red ball", "--model", str(model), "--output", str(out), "--guidance-method", "cfg",
                 "--guidance-option", "eta=1"]) == 1
    assert "guidance option 'eta' is not one of cfg's" in capsys.readouterr().err and not out.exists()
    config["defaults"]["guidance_method"] = "pag"  # a model folder naming a method there is not
    (model / "config.json").write_text(json.dumps(config))
    assert main(["generate", "a red ball", "--model", str(model), "--output", str(out)]) == 1
    assert "got 'pag' (the model's config.json defaults)" in capsys.readouterr().err and not out.exists()
    config["defaults"].update(guidance_method="apg", guidance_options={"zero_init_steps": 1})  # an option apg has not
    (model / "config.json").write_text(json.dumps(config))
    assert main(["generate", "a red ball", "--model", str(model), "--output", str(out)]) == 1
    assert "'zero_init_steps' is not one of apg's" in (err := capsys.readouterr().err) and "config.json" in err
    assert not out.exists()
    with pytest.raises(SystemExit) as e:
        main(["generate", "a red ball", "--guidance-option", "eta"])
    assert e.value.code == 2 and "--guidance-option must be KEY=NUMBER" in capsys.readouterr().err


def test_generate_names_every_input_video_at_another_frame_rate(tiny_model_dir, tmp_path, caplog):
    """--video2 at another rate than the output's is named as --video is (it was not checked), and an
    animated WebP's rate is read from its frames' durations (FFmpeg, which gave it, cannot decode
    one, so it passed as a still)."""
    import logging

    from PIL import Image

    from spacetime.data.video import write_video

    frames = make_clip(0, num_frames=9, height=32, width=32).frames
    slow, fast, webp = tmp_path / "slow.mp4", tmp_path / "fast.mp4", tmp_path / "anim.webp"
    write_video(frames, slow, fps=8)
    write_video(frames, fast, fps=24)
    Image.fromarray(frames[0]).save(webp, save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]],
                                    duration=40, loop=0, lossless=True)
    base = ["generate", "a ball", "--model", str(tiny_model_dir), "--num-inference-steps", "1", "--no-provenance"]
    with caplog.at_level(logging.WARNING, logger="spacetime.cli"):
        assert main([*base, "--video", str(slow), "--mode", "connect", "--video2", str(fast), "--num-frames", "9",
                     "--output", str(tmp_path / "c.mp4")]) == 0
    assert f"--video2 {fast} is 24 fps; the output is written at 8 fps" in caplog.text
    assert "--video " not in caplog.text  # the 8-fps one matches
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spacetime.cli"):
        assert main([*base, "--video", str(webp), "--output", str(tmp_path / "w.mp4")]) == 0
    assert f"--video {webp} is 25 fps" in caplog.text


def test_generate_loop_help_says_how_long_a_long_loop_is(tiny_model_dir, tmp_path):
    """--help promised every loop NUM_FRAMES - 1 frames; one longer than a window is the clip and
    then the transition back to its start, longer than asked (docs/modes.md): the help says so, and
    the sidecar records what was made."""
    from spacetime.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["generate"]
    text = next(a.help for a in sub._actions if a.dest == "loop")
    assert "NUM_FRAMES - 1 frames" in text and "longer than --window-frames" in text and "transition" in text
    out = tmp_path / "l.mp4"
    assert main(["generate", "a ball", "--model", str(tiny_model_dir), "--num-inference-steps", "1", "--no-provenance",
                 "--loop", "--num-frames", "13", "--window-frames", "9", "--output", str(out)]) == 0
    assert read_video(out)[0].shape[0] == json.loads(out.with_suffix(".json").read_text())["num_frames"] == 13 + 4


def test_generate_completes_a_prompt_without_colours_where_the_model_says_so(tiny_model_dir, tmp_path, monkeypatch,
                                                                             capsys, caplog):
    """The shipped model drew an empty scene for "a ball falls" (its captions always name a colour):
    a model whose config.json has defaults.complete_prompt gets the completed prompt, the sidecar
    keeps both; from an image, with the image's colours; --prompt-as-typed and other models take it
    as typed."""
    import shutil

    from spacetime.pipeline import SpacetimePipeline
    from spacetime.world.prompts import complete_prompt, objects_in, parse_prompt

    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["defaults"]["complete_prompt"] = True
    (model / "config.json").write_text(json.dumps(config))
    seen = []
    real = SpacetimePipeline.__call__

    def spy(self, prompt, *args, **kwargs):
        seen.append(prompt)
        return real(self, prompt, *args, **kwargs)

    monkeypatch.setattr(SpacetimePipeline, "__call__", spy)
    still = tmp_path / "still.png"
    from PIL import Image

    Image.fromarray(make_clip(0, num_frames=1, height=32, width=32).frames[0]).save(still)
    base = ["generate", "a ball falls", "--num-inference-steps", "1", "--no-provenance", "--seed", "4"]
    drawn = complete_prompt("a ball falls", seed=4, num_frames=5)
    shown = objects_in(make_clip(0, num_frames=1, height=32, width=32).frames)  # the image's own colours
    for name, extra, want in (("c", ["--model", str(model)], drawn),
                              ("t", ["--model", str(model), "--prompt-as-typed"], None),
                              ("o", ["--model", str(tiny_model_dir)], None),
                              ("i", ["--model", str(model), "--image", str(still)], f"a {shown[0][0]} ball falls")):
        assert main([*base, *extra, "--output", str(tmp_path / f"{name}.mp4")]) == 0, name
        sidecar = json.loads((tmp_path / f"{name}.json").read_text())
        assert sidecar["prompt"] == "a ball falls" and sidecar["completed_prompt"] == want, name
        assert seen[-1] == (want or "a ball falls"), name
        assert ("completed prompt: " in capsys.readouterr().out) == (want is not None), name
    done = complete_prompt("a ball falls", seed=4, num_frames=5)
    assert parse_prompt(done).objects[0].shape == "ball" and parse_prompt(done).objects[0].colour, done
    assert main([*base[:1], "a red ball falls", *base[2:], "--model", str(model), "--output", str(tmp_path / "r.mp4")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["completed_prompt"] is None and seen[-1] == "a red ball falls"
    capsys.readouterr()
    assert main([*base[:1], "a red ball", *base[2:], "--model", str(model), "--output", str(tmp_path / "s.png")]) == 0
    assert "(1 frame, 32x32" in capsys.readouterr().out  # it said "(1 frames, ..."
    # words the world does not know are named (they asked for nothing, in silence)
    with caplog.at_level("WARNING", logger="spacetime.cli"):
        assert main([*base[:1], "a red dog jumps", *base[2:], "--model", str(model), "--output", str(tmp_path / "d.mp4")]) == 0
    assert "words this model never saw in training" in caplog.text and "ask for nothing: dog, jumps" in caplog.text
    caplog.clear()
    # what the world cannot show as asked was said nowhere (the parser's notes), nor an empty prompt
    with caplog.at_level("WARNING", logger="spacetime.cli"):
        assert main([*base[:1], "two blue cubes fall", *base[2:], "--model", str(model), "--prompt-as-typed", "--output",
                     str(tmp_path / "n.mp4")]) == 0
        assert main([*base[:1], "  ", *base[2:], "--model", str(model), "--output", str(tmp_path / "e.mp4")]) == 0
    assert ("the prompt as this model's world reads it: 2 blue objects asked; objects need distinct colours, only the "
            "first is blue") in caplog.text
    assert "the prompt is empty: the video is the model's unconditional one" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="spacetime.cli"):  # as typed, a colourless prompt: its cost said
        assert main([*base, "--model", str(model), "--prompt-as-typed", "--output", str(tmp_path / "pt.mp4")]) == 0
    assert "--prompt-as-typed: an object without a colour is drawn as an empty scene" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="spacetime.cli"):
        assert main([*base[:1], "a red ball falls", *base[2:], "--model", str(model), "--prompt-as-typed", "--output",
                     str(tmp_path / "pr.mp4")]) == 0
    assert "drawn as an empty scene" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="spacetime.cli"):  # another model's captions are its own: no such note
        assert main([*base[:1], "a red dog jumps", *base[2:], "--model", str(tiny_model_dir), "--output",
                     str(tmp_path / "d2.mp4")]) == 0
    assert "never saw" not in caplog.text


def test_generate_names_a_vae_whose_weights_do_not_fit_its_config(tiny_model_dir, tmp_path, capsys):
    """Another VAE's config over these weights: load_state_dict's RuntimeError came out of
    `spacetime generate` as a traceback (the eval caught it on its own); now one line naming the file."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    cfg = json.loads((model / "vae" / "config.json").read_text())
    cfg["model"]["latent_channels"] //= 2
    (model / "vae" / "config.json").write_text(json.dumps(cfg))
    assert main(["generate", "a red ball", "--model", str(model), "--output", str(tmp_path / "x.mp4")]) == 1
    err = capsys.readouterr().err
    assert f"{model / 'vae' / 'model.safetensors'}: cannot load the VAE" in err and "size mismatch" in err
    assert not (tmp_path / "x.mp4").exists()
    (model / "vae" / "config.json").write_text("{}")
    assert main(["generate", "a red ball", "--model", str(model), "--output", str(tmp_path / "x.mp4")]) == 1
    assert "cannot read the VAE config (KeyError" in capsys.readouterr().err
