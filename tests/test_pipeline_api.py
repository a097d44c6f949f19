"""The pipeline as a diffusers user handles it: model folders that travel (save_pretrained, a
local text encoder inside), reduced-precision weights, and damaged folders named in errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from test_text import _with_minilm_tokenizer
from test_train_dit import TINY_DIT

from spacetime.config import load_config
from spacetime.data.media import load_media
from spacetime.pipeline import SpacetimePipeline
from spacetime.train import TrainDiTConfig, train_dit


def _run(pipe, **kw):
    return pipe("a red ball falls", num_inference_steps=2, generator=torch.Generator().manual_seed(0), **kw).frames[0]


def test_save_pretrained_round_trip(tiny_model_dir, tmp_path):
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    saved = pipe.save_pretrained(tmp_path / "copy")
    assert (saved / "COMPLETE").is_file() and (saved / "vae" / "COMPLETE").is_file()
    assert np.array_equal(_run(SpacetimePipeline.from_pretrained(saved)), _run(pipe))
    pipe.save_pretrained(tmp_path / "copy")  # over an existing folder: replaced whole
    assert np.array_equal(_run(SpacetimePipeline.from_pretrained(saved)), _run(pipe))


def test_a_model_trained_with_a_local_encoder_loads_from_anywhere(tmp_path, monkeypatch):
    """The encoder given by a relative path goes into the model folder (as its VAE does)."""
    from transformers import BertConfig, BertModel

    from spacetime.checkpoint import save_model
    from spacetime.vae import PRESETS, VideoVAE

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=32))
    work = tmp_path / "work"
    work.mkdir()
    _with_minilm_tokenizer(bert, work / "enc")
    vae = save_model(tmp_path / "vae", {"model": PRESETS["tiny"].to_dict()}, VideoVAE(PRESETS["tiny"]))
    monkeypatch.chdir(work)
    cfg = [*TINY_DIT, "--vae", str(vae), "--text_encoder", "enc", "--max_steps", "1", "--run_dir", "run"]
    model = (work / train_dit(load_config(TrainDiTConfig, None, cfg), progress=False)).resolve()
    here = _run(SpacetimePipeline.from_pretrained(model))
    assert json.loads((model / "config.json").read_text())["text_encoder"] == "text_encoder"
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(model, moved)
    shutil.rmtree(work)
    monkeypatch.chdir(tmp_path)
    pipe = SpacetimePipeline.from_pretrained(moved)
    assert np.array_equal(_run(pipe), here)
    # save_pretrained carries the encoder too
    again = pipe.save_pretrained(tmp_path / "again")
    assert (again / "text_encoder" / "config.json").is_file()
    assert np.array_equal(_run(SpacetimePipeline.from_pretrained(again)), here)
    # an encoder recorded by a path that is gone: named, with where it was looked for
    config = json.loads((again / "config.json").read_text())
    (again / "config.json").write_text(json.dumps(dict(config, text_encoder="/nonexistent/t5")))
    with pytest.raises(ValueError, match=r"text encoder '/nonexistent/t5' is not a directory"):
        SpacetimePipeline.from_pretrained(again)


def test_bfloat16_weights(tiny_model_dir):
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    full = _run(pipe)
    assert pipe.dtype == torch.float32 and pipe.device == torch.device("cpu")
    half = SpacetimePipeline.from_pretrained(tiny_model_dir, torch_dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and next(half.vae.parameters()).dtype == torch.bfloat16
    assert (half.dtype_name, pipe.dtype_name) == ("bfloat16", "float32")
    low = _run(half)
    assert low.dtype == np.uint8 and low.shape == full.shape
    assert np.abs(low.astype(float) - full.astype(float)).mean() < 8  # bf16 rounding, not another video
    assert half.to(torch.float32) is half and half.dtype == torch.float32  # bf16-rounded weights, in float32
    assert half.to("cpu", torch.bfloat16).dtype == torch.bfloat16
    assert np.array_equal(_run(pipe.to(dtype=torch.float32)), full)
    with pytest.raises(ValueError, match=r"dtype must be torch.float32, torch.bfloat16 or torch.float16 \(or its name\), got torch.int8"):
        pipe.to(dtype=torch.int8)
    by_hand = SpacetimePipeline.from_pretrained(tiny_model_dir)
    by_hand.dit.to(torch.bfloat16)  # a component cast by hand, as diffusers users do: was a mixed-dtype error
    assert np.abs(_run(by_hand).astype(float) - full.astype(float)).mean() < 8
    by_hand.vae.to(torch.bfloat16)
    assert _run(by_hand).shape == full.shape


def test_damaged_model_folders_are_named(tiny_model_dir, tmp_path):
    def broken(change) -> str:
        folder = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tiny_model_dir, folder)
        change(folder)
        with pytest.raises(ValueError) as e:
            SpacetimePipeline.from_pretrained(folder)
        return str(e.value)

    assert "config.json: cannot read the pipeline config" in broken(lambda f: (f / "config.json").unlink())
    assert "config.json: cannot read the pipeline config" in broken(lambda f: (f / "config.json").write_text("{"))
    assert "is not a spacetime text-to-video pipeline" in broken(lambda f: (f / "config.json").write_text("[1]"))
    assert "model.safetensors: cannot load the DiT" in broken(lambda f: (f / "model.safetensors").write_bytes(b"xx"))
    assert "model.safetensors: cannot load the DiT" in broken(lambda f: (f / "model.safetensors").unlink())
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "model")
    with pytest.raises(ValueError, match=r"no COMPLETE marker.*a training run\? its model is .*model"):
        SpacetimePipeline.from_pretrained(run)


def _with_sampling_defaults(tiny_model_dir, folder, **defaults):
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["defaults"].update(defaults)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_model_folder_sets_the_steps_guidance_and_dtype_a_call_gets(tiny_model_dir, tmp_path, monkeypatch):
    """A model measured at fewer steps, another guidance scale or in bfloat16 ships those as its
    defaults: a call that does not say gets them, one that does overrides them."""
    monkeypatch.setattr("spacetime.pipeline.fast_bfloat16", lambda device="cpu": True)  # as on an AVX-512 CPU
    own = SpacetimePipeline.from_pretrained(_with_sampling_defaults(
        tiny_model_dir, tmp_path / "m", num_inference_steps=3, guidance_scale=2.0, dtype="bfloat16"))
    assert torch.bfloat16 in {p.dtype for m in (own.dit, own.vae.decoder) for p in m.parameters()}
    plain = SpacetimePipeline.from_pretrained(tiny_model_dir, torch_dtype=torch.bfloat16)

    def run(pipe, **kw):
        return pipe("a red ball falls", generator=torch.Generator().manual_seed(0), **kw).frames[0]

    made = run(own)
    assert np.array_equal(made, run(plain, num_inference_steps=3, guidance_scale=2.0))
    assert not np.array_equal(made, run(plain, num_inference_steps=3))  # guidance 5, not the model's 2
    assert not np.array_equal(made, run(plain, guidance_scale=2.0))  # 25 steps, not the model's 3
    assert np.array_equal(run(own, num_inference_steps=2, guidance_scale=1.0),
                          run(plain, num_inference_steps=2, guidance_scale=1.0))
    steps = []
    run(own, callback=lambda i, n: steps.append(n))
    assert steps == [3, 3, 3]
    auto = SpacetimePipeline.from_pretrained(tmp_path / "m", torch_dtype="auto")  # diffusers' word for the model's own
    assert {p.dtype for p in auto.dit.parameters()} == {p.dtype for p in own.dit.parameters()}
    full = SpacetimePipeline.from_pretrained(tmp_path / "m", torch_dtype=torch.float32)  # asked: float32 after all
    assert {p.dtype for p in full.dit.parameters()} == {torch.float32}
    assert (own.resolve_dtype(), own.resolve_dtype("float32"), plain.resolve_dtype()) == ("bfloat16", "float32", "float32")
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, got 'float16'"):
        own.resolve_dtype("float16")


def test_bad_sampling_defaults_in_a_model_folder_are_named(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"dtype must be one of float32, bfloat16, got 'half' \(the model's config.json"):
        SpacetimePipeline.from_pretrained(_with_sampling_defaults(tiny_model_dir, tmp_path / "a", dtype="half"))
    pipe = SpacetimePipeline.from_pretrained(_with_sampling_defaults(
        tiny_model_dir, tmp_path / "b", num_inference_steps=0, guidance_scale=-1))
    with pytest.raises(ValueError, match="num_inference_steps must be a positive integer, got 0"):
        pipe("a red ball falls")
    with pytest.raises(ValueError, match=r"guidance_scale must be a number in \[0, 100\]"):
        pipe("a red ball falls", num_inference_steps=1)


def test_a_models_bfloat16_default_is_float32_where_the_cpu_would_emulate_it(tiny_model_dir, tmp_path, monkeypatch,
                                                                             caplog):
    """On an AVX2 CPU bfloat16 runs ~150x slower than float32: a model's bfloat16 default loads in
    float32 there, with a warning; bfloat16 asked for by name is loaded, with a warning."""
    import spacetime.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "fast_bfloat16", lambda device="cpu": False)
    model = _with_sampling_defaults(tiny_model_dir, tmp_path / "m", dtype="bfloat16")
    with caplog.at_level("WARNING", logger="spacetime.pipeline"):
        pipe = SpacetimePipeline.from_pretrained(model)
    assert pipe.dtype == torch.float32 and "sampling in float32" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="spacetime.pipeline"):
        asked = SpacetimePipeline.from_pretrained(model, torch_dtype=torch.bfloat16)
    assert asked.dtype == torch.bfloat16 and "~100x slower" in caplog.text
    assert pipe.resolve_dtype() == "float32" and pipe.resolve_dtype("bfloat16") == "bfloat16"
    monkeypatch.setattr(pipeline_module, "fast_bfloat16", lambda device="cpu": True)
    assert pipe.resolve_dtype() == "bfloat16"


def test_fast_bfloat16_follows_what_onednn_runs_natively(monkeypatch):
    from spacetime.pipeline import fast_bfloat16

    assert fast_bfloat16("cpu") == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert fast_bfloat16(torch.device("meta"))  # not a CPU: a GPU's bfloat16 is native


def test_sizes_past_the_limits_are_refused_before_any_work(tiny_model_dir, monkeypatch):
    """num_frames=10**9 or height=10**6 ran for hours (a window at a time) before running out of
    memory; now the CLI's bounds, and frames that cannot fit this machine's memory, are a ValueError
    naming the argument before the text encoder or the sampler runs."""
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)

    def no_work(*args, **kwargs):
        raise AssertionError("generation started")

    monkeypatch.setattr(pipe.text_encoder, "encode", no_work)
    for kwargs, message in (({"num_frames": 10**9}, "num_frames must be at most 100000, got 1000000000"),
                            ({"height": 10**6}, "height must be at most 4096, got 1000000"),
                            ({"width": 4097}, "width must be at most 4096, got 4097"),
                            ({"num_frames": 99_997, "height": 4096, "width": 4096},  # 4.6 TiB of uint8 frames
                             r"1 video\(s\) of 99997 frames of 4096x4096 \(WxH\) are 4687.4 GiB of frames, more than")):
        with pytest.raises(ValueError, match=message):
            pipe("a", **kwargs)
    assert pipe.fit_size(5, 4095, 32) == (5, 4096, 32)  # the largest side is still made
    # a huge num_videos_per_prompt is counted, not expanded into a list of prompts first (80 GB of
    # references at 10**10: a MemoryError or the machine's OOM killer before the check was reached)
    with pytest.raises(ValueError, match=r"10000000000 video\(s\) of 5 frames of 32x32 .* num_videos_per_prompt"):
        pipe("a", num_videos_per_prompt=10**10, num_frames=5, height=32, width=32)


def test_dtypes_by_name_and_unusable_dtypes_and_devices_are_named(tiny_model_dir, monkeypatch):
    """torch_dtype="float16" and pipe.to("bfloat16") were refused or taken for a device ('Invalid
    device string'); float64 weights failed at the first matmul (autocast runs below float32 only);
    pipe.to("cuda") without CUDA was torch's AssertionError."""
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir, torch_dtype="float16")
    assert pipe.dtype == torch.float16 and _run(pipe).shape == (5, 32, 32, 3)
    assert pipe.to("torch.float32").dtype == torch.float32 and pipe.to("bfloat16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"torch_dtype must be torch.float32, .* got torch.float64"):
        SpacetimePipeline.from_pretrained(tiny_model_dir, torch_dtype=torch.float64)
    with pytest.raises(ValueError, match=r"dtype must be torch.float32, .* got 'float64'"):
        pipe.to("float64")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda': this PyTorch has no cuda device available"):
        pipe.to("cuda")
    with pytest.raises(ValueError, match="device must be a torch device .* got 'gpu0'"):
        pipe.to("gpu0")
    assert pipe.device == torch.device("cpu")


def test_a_training_checkpoint_folder_names_the_runs_model(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "step-00000010"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text(json.dumps({"model": {}, "data": {}}))
    (ckpt / "state.json").write_text("{}")
    (ckpt / "COMPLETE").write_text("ok\n")
    with pytest.raises(ValueError, match=r"holds a training checkpoint.*not written yet"):
        SpacetimePipeline.from_pretrained(ckpt)
    shutil.copytree(tiny_model_dir, run / "model")
    with pytest.raises(ValueError, match=r"holds a training checkpoint.*load the run's model, .*run[/\\]model"):
        SpacetimePipeline.from_pretrained(ckpt)
    (ckpt / "COMPLETE").unlink()  # half-written: said the same way
    with pytest.raises(ValueError, match=r"holds a training checkpoint.*run[/\\]model"):
        SpacetimePipeline.from_pretrained(ckpt)


def test_pil_images_with_premultiplied_alpha_or_transparent_greys_are_read(tmp_path):
    from PIL import Image

    grey = np.array([[200, 0], [50, 255]], np.uint8)
    alpha = np.array([[255, 0], [255, 255]], np.uint8)
    la = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)])
    want = np.repeat((grey * (alpha > 0))[None, ..., None], 3, -1)
    for im in (la.convert("La"), la.convert("RGBA").convert("RGBa")):
        assert np.array_equal(load_media(im, "image"), want), im.mode
        assert np.array_equal(load_media([im, im], "video"), np.concatenate([want, want])), im.mode
    # a 16-bit grey PNG with a transparent value (tRNS): scaled to 8 bits, that value black
    deep = Image.fromarray(np.array([[51400, 0], [1028, 65535]], np.uint16))
    deep.save(tmp_path / "grey16.png", transparency=1028)
    want = np.repeat(np.array([[200, 0], [0, 255]], np.uint8)[None, ..., None], 3, -1)
    assert np.array_equal(load_media(tmp_path / "grey16.png", "image"), want)
    assert np.array_equal(load_media(Image.open(tmp_path / "grey16.png"), "image"), want)
    with Image.open(tmp_path / "grey16.png") as closed:  # used after its `with`: its pixels never read
        pass
    with pytest.raises(ValueError, match=r"^image: the PIL image's file was closed before its pixels were read"):
        load_media(closed, "image")
    with pytest.raises(ValueError, match=r"^video: the PIL image's file was closed"):
        load_media([closed], "video")
    f = Image.fromarray(np.array([[0.5, 0.0], [0.25, 1.0]], np.float32))
    f.info["transparency"] = 0.25
    want = np.repeat(np.array([[128, 0], [0, 255]], np.uint8)[None, ..., None], 3, -1)
    assert np.array_equal(load_media(f, "image"), want)


def test_save_pretrained_never_replaces_a_file_or_a_folder_of_other_things(tiny_model_dir, tmp_path):
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ValueError, match=r"save_pretrained: .*notes\.txt is a file"):
        pipe.save_pretrained(notes)
    assert notes.read_text() == "mine"
    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True)
    (home / "todo.md").write_text("keep")
    with pytest.raises(ValueError, match=r"save_pretrained: .*home holds other files .*todo\.md"):
        pipe.save_pretrained(home)
    assert (home / "todo.md").read_text() == "keep" and (home / "photos").is_dir()
    (tmp_path / "empty").mkdir()
    assert (pipe.save_pretrained(tmp_path / "empty") / "COMPLETE").is_file()  # an empty folder: filled
    assert (pipe.save_pretrained(tmp_path / "empty") / "COMPLETE").is_file()  # a model folder: replaced


def test_bad_call_arguments_are_named_before_any_work(tiny_model_dir):
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    shape = (1, *pipe.vae.latent_shape(5, 32, 32))

    def refused(**kw) -> str:
        with pytest.raises(ValueError) as e:
            pipe("a red ball", num_inference_steps=1, **kw)
        return str(e.value)

    assert "latents must be a float tensor, got dtype torch.int64" in refused(latents=torch.zeros(shape, dtype=torch.long))
    assert "latents must be a torch tensor" in refused(latents=np.zeros(shape, np.float32))
    assert "latents holds NaN or infinite values" in refused(latents=torch.full(shape, float("nan")))
    assert f"latents must be a float tensor of shape {shape}" in refused(latents=torch.zeros(shape[1:]))
    with pytest.raises(ValueError, match=r"generator\[1\] is not a torch\.Generator \(got int\)"):
        pipe(["a", "b"], num_inference_steps=1, generator=[torch.Generator(), 3])
    # diffusers' legacy callback(step, timestep, latents): refused up front, not a TypeError after a step
    assert "callback must be a function of (step, total); it cannot be called with two" in refused(callback=lambda step, timestep, latents: None)
    assert "guidance_options must be a dict" in refused(guidance_options=1)


def test_from_pretrained_and_to_name_what_they_cannot_use(tiny_model_dir):
    with pytest.raises(ValueError, match=r"config\.json is a file, not a model directory: give the folder"):
        SpacetimePipeline.from_pretrained(tiny_model_dir / "config.json")
    with pytest.raises(ValueError, match=r"path must be a model directory \(a str or Path\) or None, got 3"):
        SpacetimePipeline.from_pretrained(3)
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match=r"device 'xla': this PyTorch has no xla device"):
        pipe.to("xla")
    assert pipe.device == torch.device("cpu")


def test_latents_of_an_edit_are_the_edited_videos_latent_frames(tiny_model_dir):
    """An edit keeps its video's length, whatever num_frames: its latents were checked against the
    default num_frames' shape, and a shorter noise was padded with zeros, silently."""
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    vid = (np.random.default_rng(0).random((9, 32, 32, 3)) * 255).astype(np.uint8)
    noise = torch.randn((1, 16, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    kw = {"video": vid, "strength": 0.5, "num_inference_steps": 2}
    given = pipe("a red ball", latents=noise, **kw).frames[0]
    assert np.array_equal(given, pipe("a red ball", generator=torch.Generator().manual_seed(0), **kw).frames[0])
    with pytest.raises(ValueError, match=r"latents must be a float tensor of shape \(1, 16, 3, 4, 4\)"):
        pipe("a red ball", latents=noise[:, :, :2], **kw)


def test_a_vae_folder_or_a_runs_checkpoints_folder_is_named_as_such(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"vae is a VAE model directory \(spacetime train-vae's\), not a text-to-video "
                                         r"pipeline.*--vae"):
        SpacetimePipeline.from_pretrained(tiny_model_dir / "vae")
    run = tmp_path / "run"
    (run / "checkpoints" / "step-00000010").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, run / "model")
    with pytest.raises(ValueError, match=r"training checkpoints.*load the run's model, .*run[/\\]model"):
        SpacetimePipeline.from_pretrained(run / "checkpoints")
    # a copy beside them is no checkpoint (checkpoint.py counts step-N folders alone): not called one
    copies = tmp_path / "copies" / "checkpoints"
    (copies / "step-00000010.bak").mkdir(parents=True)
    with pytest.raises(ValueError) as e:
        SpacetimePipeline.from_pretrained(copies)
    assert "training checkpoint" not in str(e.value)
    with pytest.raises(ValueError) as e:
        SpacetimePipeline.from_pretrained(copies / "step-00000010.bak")
    assert "training checkpoint" not in str(e.value)


def test_save_pretrained_to_dot_and_tilde_paths(tiny_model_dir, tmp_path, monkeypatch):
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert (pipe.save_pretrained(".") / "COMPLETE").is_file()  # was "PosixPath('.') has an empty name"
    assert (here / "COMPLETE").is_file()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    saved = pipe.save_pretrained("~/models/tiny")  # was a folder named "~" in the working directory
    assert saved == tmp_path / "home" / "models" / "tiny" and not (here / "~").exists()
    assert SpacetimePipeline.from_pretrained("~/models/tiny").device == torch.device("cpu")


def test_from_pretrained_checks_its_device_before_loading(tiny_model_dir, tmp_path):
    """A model whose default dtype is bfloat16 asks whether the device runs it fast: a device torch
    cannot parse was a RuntimeError from torch.device there."""
    folder = _with_sampling_defaults(tiny_model_dir, tmp_path / "bf16", dtype="bfloat16")
    for device, said in (("gpu", "device must be a torch device"), (3, "device must be a torch device"),
                         ("cuda", "this PyTorch has no cuda device available")):
        with pytest.raises(ValueError, match=said):
            SpacetimePipeline.from_pretrained(folder, device=device)


def test_a_text_encoder_of_another_width_than_the_dit_is_named_at_load(tiny_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_encoder"] = "hash:16"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: its text encoder 'hash:16' makes 16-wide embeddings; its DiT "
                                         r"takes 32 \(text_dim\)"):
        SpacetimePipeline.from_pretrained(folder)


def test_a_vae_of_another_latent_width_than_the_dit_is_named_at_load(tiny_model_dir, tmp_path):
    from dataclasses import replace

    from spacetime.checkpoint import save_model
    from spacetime.vae import PRESETS, VideoVAE

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    shutil.rmtree(folder / "vae")
    save_model(folder / "vae", {"model": replace(PRESETS["tiny"], latent_channels=8).to_dict()},
               VideoVAE(replace(PRESETS["tiny"], latent_channels=8)))
    with pytest.raises(ValueError, match=r"vae makes 8 latent channels; its DiT takes 16 \(in_channels\)"):
        SpacetimePipeline.from_pretrained(folder)


@pytest.mark.parametrize("field, value, said", [
    ("text_encoder", None, "text_encoder must be a string"), ("text_encoder", 3, "text_encoder must be a string"),
    ("text_max_length", None, "text_max_length must be a positive integer"),
    ("text_max_length", "x", "text_max_length must be a positive integer"),
    ("defaults", [], "defaults must be an object"), ("dit", [], "dit must be an object")])
def test_a_model_config_missing_or_mistyping_a_field_is_named(tiny_model_dir, tmp_path, field, value, said):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    if value is None:
        del config[field]
    else:
        config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"config\.json: {said}"):
        SpacetimePipeline.from_pretrained(folder)


def test_an_image_of_several_frames_is_refused_not_cut_to_its_first(tiny_model_dir):
    """diffusers users batch images, one per prompt; the pipeline took the first for every prompt."""
    from PIL import Image

    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    a, b = Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue")
    with pytest.raises(ValueError, match=r"^image: got 2 frames \(2, 32, 32, 3\); give one image"):
        pipe(["a", "b"], image=[a, b], num_inference_steps=1)
    with pytest.raises(ValueError, match=r"^image: got 3 frames"):
        pipe("a", image=np.zeros((3, 32, 32, 3), np.uint8), num_inference_steps=1)
    assert pipe("a", image=[a], num_inference_steps=1).frames[0].shape == (5, 32, 32, 3)


def test_the_output_indexes_by_position_and_by_name_as_diffusers(tiny_model_dir):
    out = SpacetimePipeline.from_pretrained(tiny_model_dir)("a", num_inference_steps=1)
    assert out[0] is out.frames and out["frames"] is out.frames
    with pytest.raises(KeyError, match="nope"):
        out["nope"]


def test_latents_given_are_not_changed_in_place(tiny_model_dir):
    """A loop ties its last latent frame's noise to its first: it wrote that into the user's tensor."""
    pipe = SpacetimePipeline.from_pretrained(tiny_model_dir)
    latents = torch.randn((1, *pipe.vae.latent_shape(9, 32, 32)), generator=torch.Generator().manual_seed(0))
    kept = latents.clone()
    pipe("a", latents=latents, loop=True, num_frames=9, num_inference_steps=1)
    assert torch.equal(latents, kept)
