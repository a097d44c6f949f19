"""The prompting modes on a tiny random model: every mode is clean latent frames held by the
sampler, so the checks are about what is given, where it lands, and what comes out."""

import json
import logging
import math

import numpy as np
import pytest
import torch

from spacetime import pipeline as pipeline_module
from spacetime import sampling
from spacetime.data.media import load_media
from spacetime.data.video import frames_to_tensor, write_video
from spacetime.dit import DiT, DiTConfig
from spacetime.pipeline import SpacetimePipeline
from spacetime.text import HashTextEncoder
from spacetime.vae import PRESETS, VideoVAE
from spacetime.world.clip import make_clip


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    vae = VideoVAE(PRESETS["tiny"]).eval()
    clips = torch.stack([frames_to_tensor(make_clip(s, num_frames=9, height=32, width=32).frames) for s in range(3)])
    vae.fit_latent_stats([clips])
    dit = DiT(DiTConfig(in_channels=16, hidden=32, depth=1, heads=2, text_dim=32))
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return SpacetimePipeline(dit, vae, HashTextEncoder(dim=32, max_length=16),
                             {"defaults": {"num_frames": 9, "height": 32, "width": 32, "fps": 8.0}})


def clip(seed: int, frames: int = 9) -> np.ndarray:
    return make_clip(seed, num_frames=frames, height=32, width=32).frames


@pytest.fixture
def recorded(monkeypatch):
    """Every sampler call's conditions and result."""
    calls = []
    original = sampling.sample

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append({"cond_latents": kwargs.get("cond_latents"), "cond_mask": kwargs.get("cond_mask"), "out": out,
                      "guidance_interval": kwargs.get("guidance_interval"), "start_latents": kwargs.get("start_latents"),
                      "strength": kwargs.get("strength"), "shift": kwargs.get("shift")})
        return out

    monkeypatch.setattr(pipeline_module.sampling, "sample", spy)
    return calls


def run(pipe, **kwargs):
    kwargs.setdefault("num_inference_steps", 2)
    return pipe("a red ball falls", generator=torch.Generator().manual_seed(0), **kwargs).frames


def test_connect_bridge_cross_fades_between_the_ends():
    head = torch.zeros(1, 2, 2, 1, 1)
    head[:, :, 1] = 1.0  # head's last latent frame: 1
    tail = torch.full((1, 2, 1, 1, 1), 5.0)
    window = pipeline_module.connect_bridge(head, tail, 6)
    assert window.shape == (1, 2, 6, 1, 1)
    # held ends, then 1 -> 5 in equal steps over the three frames between them
    assert window[0, 0, :, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(ValueError, match="do not fit a window of 2"):
        pipeline_module.connect_bridge(head, tail, 2)


def test_connect_with_strength_starts_from_the_cross_fade(pipe, recorded):
    a, b = clip(3, 17), clip(4, 17)
    plain = run(pipe, video=a, video2=b, num_frames=33, strength=1.0)[0]  # from noise
    assert recorded[-1]["start_latents"] is None and recorded[-1]["strength"] == 1.0
    run(pipe, video=a, video2=b, num_frames=33)
    assert recorded[-1]["strength"] == pipeline_module.CONNECT_STRENGTH < 1  # the default: from the cross-fade
    far = []
    for s in (0.3, 0.9):
        out = run(pipe, video=a, video2=b, num_frames=33, strength=s)[0]
        call = recorded[-1]
        assert out.shape == plain.shape and np.array_equal(out[:17], a) and np.array_equal(out[-17:], b)
        assert call["strength"] == s
        mask = call["cond_mask"][0]
        start = call["start_latents"]
        # the start holds the given ends and cross-fades between them
        assert torch.equal(start[:, :, mask], call["cond_latents"][:, :, mask])
        assert torch.allclose(start[:, :, 2:7], pipeline_module.connect_bridge(start[:, :, :2], start[:, :, 7:], 9)[:, :, 2:7])
        far.append(float((call["out"][:, :, ~mask] - start[:, :, ~mask]).abs().mean()))
    assert far[0] < far[1]  # a lower strength keeps the transition nearer the cross-fade


def test_image_to_video_holds_the_image_as_the_first_latent_frame(pipe, recorded):
    image = clip(1)[0]
    frames = run(pipe, image=image, num_frames=9)
    assert frames[0].shape == (9, 32, 32, 3)
    call = recorded[-1]
    assert call["cond_mask"].tolist() == [[True, False, False]]
    z = pipe.vae.encode(frames_to_tensor(image[None])[None])
    assert torch.equal(call["out"][:, :, :1], z) and torch.equal(call["cond_latents"][:, :, :1], z)


def test_text_to_image_is_a_one_frame_video(pipe):
    assert run(pipe, num_frames=1)[0].shape == (1, 32, 32, 3)


def test_extend_forward_and_backward_keep_the_given_video(pipe, recorded):
    given = clip(2)
    out = run(pipe, video=given, num_frames=9)[0]
    # window of 3 latent frames: 1 of context (the last frame, encoded as a clip's start), 8 new frames
    assert out.shape == (9 + 8, 32, 32, 3) and np.array_equal(out[:9], given)
    assert recorded[-1]["cond_mask"].tolist() == [[True, False, False]]
    assert torch.equal(recorded[-1]["out"][:, :, :1], recorded[-1]["cond_latents"][:, :, :1])
    out = run(pipe, video=given, extend="backward", num_frames=9)[0]
    # context: the first 4 frames as the window's last latent frame; 5 new frames before the video
    assert out.shape == (5 + 9, 32, 32, 3) and np.array_equal(out[5:], given)
    assert recorded[-1]["cond_mask"].tolist() == [[False, False, True]]
    assert torch.equal(recorded[-1]["out"][:, :, 2:], recorded[-1]["cond_latents"][:, :, 2:])


def test_connect_runs_from_the_first_video_into_the_second(pipe, recorded):
    a, b = clip(3), clip(4)
    out = run(pipe, video=a, video2=b, num_frames=17)[0]
    # window of 5 latent frames: 2 from a's end (5 frames), 2 from b's start (8 frames), 1 new (4 frames)
    assert out.shape == (9 + 4 + 9, 32, 32, 3)
    assert np.array_equal(out[:9], a) and np.array_equal(out[-9:], b)
    assert recorded[-1]["cond_mask"].tolist() == [[True, True, False, True, True]]
    mask = recorded[-1]["cond_mask"][0]
    assert torch.equal(recorded[-1]["out"][:, :, mask], recorded[-1]["cond_latents"][:, :, mask])
    # a longer window makes a longer transition: the context stays 2 latent frames on each side
    out = run(pipe, video=clip(3, 17), video2=clip(4, 17), num_frames=33)[0]
    assert out.shape == (17 + 20 + 17, 32, 32, 3)
    assert recorded[-1]["cond_mask"].tolist() == [[True, True] + [False] * 5 + [True, True]]


def test_connect_into_a_still_image(pipe, recorded):
    """A still (one frame, or fewer than a latent frame's 4) as video2 was refused ("needs at least
    4"), though a still as the first video connects: it is held as one latent frame, its last frame
    repeated to fill it, and comes back as given after the transition."""
    a, still = clip(3), clip(4, 1)[0]
    out = run(pipe, video=a, video2=still, num_frames=17)[0]
    # 5 latent frames: 2 of a's end (5 frames), 2 new (8 frames), the still (its 4 frames cut, it once)
    assert out.shape == (9 + 8 + 1, 32, 32, 3)
    assert np.array_equal(out[:9], a) and np.array_equal(out[-1], still)
    assert recorded[-1]["cond_mask"].tolist() == [[True, True, False, False, True]]
    z = pipe._encode(np.repeat(still[None], 5, 0))[:, :, 1:2]  # a still encodes to one latent at every k
    assert torch.allclose(recorded[-1]["cond_latents"][:, :, 4:], z, atol=1e-4)
    short = clip(4, 3)
    out = run(pipe, video=a, video2=short, num_frames=17)[0]
    assert out.shape == (9 + 8 + 3, 32, 32, 3) and np.array_equal(out[-3:], short)


def test_extend_backward_into_a_still_image(pipe, recorded):
    """A still (or a video of fewer than 4 frames) extended backward was refused ("needs at least
    4"): the image as the last frame. It is held as one latent frame, its last frame repeated to
    fill it, and comes back as given at the end, as a still video2 does in a connection."""
    still = clip(4, 1)[0]
    out = run(pipe, video=still, extend="backward", num_frames=9)[0]
    # 3 latent frames: 2 new (5 frames: the lone frame and 4), the still's (its 4 frames cut, it once)
    assert out.shape == (5 + 1, 32, 32, 3) and np.array_equal(out[-1], still)
    assert recorded[-1]["cond_mask"].tolist() == [[False, False, True]]
    z = pipe._encode(np.repeat(still[None], 5, 0))[:, :, 1:2]
    assert torch.allclose(recorded[-1]["cond_latents"][:, :, 2:], z, atol=1e-4)
    short = clip(4, 3)
    assert np.array_equal(run(pipe, video=short, extend="backward", num_frames=9)[0][-3:], short)
    # window by window, as long as one window of num_frames would make it: 41 - 4 new frames
    out = run(pipe, video=still, extend="backward", num_frames=41, window_frames=17)[0]
    assert out.shape == (37 + 1, 32, 32, 3) and np.array_equal(out[-1], still)
    with pytest.raises(ValueError, match=r"extend='backward' .*for it as the last, give it as video="):
        run(pipe, image=still, extend="backward")


def test_edit_moves_further_from_the_input_as_strength_grows(pipe):
    given = clip(5)
    recon = pipe.vae.decode(pipe.vae.encode(frames_to_tensor(given)[None]))[0]
    dist = []
    for s in (0.05, 0.5, 1.0):
        out = run(pipe, video=given, strength=s, num_inference_steps=4)[0]
        assert out.shape == given.shape
        dist.append((frames_to_tensor(out) - recon).abs().mean().item())
    assert dist[0] < dist[1] < dist[2] and dist[0] < 0.05, dist


def test_loop_ties_the_last_latent_frame_to_the_first(pipe, recorded):
    frames = run(pipe, loop=True, num_frames=17)
    # one window of 5 latent frames whose last is its first again; the last decoded frame stands
    # for frame 0 and is dropped: a 16-frame period
    assert frames[0].shape == (16, 32, 32, 3) and len(recorded) == 1
    z = recorded[-1]["out"]
    assert torch.equal(z[:, :, 0], z[:, :, -1]) and not torch.equal(z[:, :, 0], z[:, :, 1])
    assert recorded[-1]["cond_mask"] is None  # tied by the sampler's steps, not given
    plain = run(pipe, num_frames=17)[0]
    assert not np.array_equal(plain[:16], frames[0])  # the tie changes the whole clip, not just its end
    two = pipe(["a red ball", "a blue square"], loop=True, num_frames=17, num_inference_steps=2).frames
    assert [f.shape[0] for f in two] == [16, 16] and not np.array_equal(two[0], two[1])


def test_loop_of_an_image_starts_on_it_and_flows_back_into_it(pipe, recorded):
    image = clip(1)[0]
    frames = run(pipe, image=image, loop=True, num_frames=9)
    assert frames[0].shape == (8, 32, 32, 3)
    # the image held at 0 and at one latent frame past the window, whose frames are cut: held in
    # the window's own last latent frame it decoded as 4 frames of the image, a still before the seam
    mask, given = recorded[-1]["cond_mask"], recorded[-1]["cond_latents"]
    assert mask.tolist() == [[True, False, False, True]] and torch.equal(given[:, :, 0], given[:, :, -1])
    z = recorded[-1]["out"]
    assert torch.equal(z[:, :, 0], z[:, :, -1]) and not torch.equal(z[:, :, 0], z[:, :, -2])
    # the user's starting noise is the window's (B C t h w), as for an image -> video
    noise = torch.randn(1, *pipe.vae.latent_shape(9, 32, 32))
    assert run(pipe, image=image, loop=True, num_frames=9, latents=noise)[0].shape == (8, 32, 32, 3)


def test_a_long_loop_ends_with_a_transition_back_to_the_start(pipe, recorded):
    frames = run(pipe, loop=True, num_frames=17, window_frames=9)
    # windows of 9 frames: 9, +4 (13), +4 (17); then a window from the clip's last frame to its first 4
    assert frames[0].shape == (17 + 4, 32, 32, 3)
    closing = recorded[-1]
    assert closing["cond_mask"].tolist() == [[True, False, True]]
    # the closing transition starts as a connection does: from the cross-fade of its two ends
    # (the clip's end, its start) noised to the default strength, not from noise
    assert closing["strength"] == pipeline_module.CONNECT_STRENGTH < 1
    start = closing["start_latents"]
    assert torch.allclose(start, pipeline_module.connect_bridge(start[:, :, :1], start[:, :, 2:], 3))
    assert torch.equal(start[:, :, :1], closing["cond_latents"][:, :, :1])
    assert torch.equal(start[:, :, 2:], closing["cond_latents"][:, :, 2:])


def test_a_loop_needs_three_latent_frames(pipe):
    """The shortest lengths are refused naming the argument the caller sets (num_frames)."""
    with pytest.raises(ValueError, match="a loop needs num_frames of at least 9 .*got 5"):
        run(pipe, loop=True, num_frames=5)
    with pytest.raises(ValueError, match="connecting needs num_frames of at least 9 .*got 5"):
        run(pipe, video=clip(1), video2=clip(2), num_frames=5)
    with pytest.raises(ValueError, match="extending needs num_frames of at least 5 .*got 1"):
        run(pipe, video=clip(1), num_frames=1)


def test_least_frames_follows_the_vaes_temporal_factor():
    """The shortest windows (the server refuses shorter requests with them) are counted in latent
    frames of the model's VAE, not fixed at a factor of 4."""
    assert [pipeline_module.least_frames(m, 4) for m in ("text", "image", "edit", "extend", "connect")] == [1, 1, 1, 5, 9]
    assert pipeline_module.least_frames("text", 4, loop=True) == 9
    assert [pipeline_module.least_frames(m, 2) for m in ("extend", "connect")] == [3, 5]
    assert pipeline_module.least_frames("text", 8, loop=True) == 17


def test_inputs_of_another_size_are_resized_with_a_warning(pipe, caplog, tmp_path):
    big = make_clip(6, num_frames=5, height=64, width=48).frames
    with caplog.at_level(logging.WARNING, logger="spacetime.pipeline"):
        out = run(pipe, video=big, num_frames=9, height=32, width=32)[0]
    assert out.shape[1:3] == (32, 32) and "resized to 32x32" in caplog.text
    path = tmp_path / "clip.mp4"
    write_video(clip(7), path, fps=8)
    assert run(pipe, video=str(path), num_frames=9)[0].shape == (9 + 8, 32, 32, 3)  # a file works too
    # a file of another size is scaled as it is decoded (its full-size frames never all held)
    big = tmp_path / "big.mp4"
    write_video(make_clip(8, num_frames=9, height=64, width=48).frames, big, fps=8)
    seen = []
    pipeline_module.load_media = lambda x, name, size=None: seen.append(size) or load_media(x, name, size)
    try:
        with caplog.at_level(logging.WARNING):
            out = run(pipe, video=str(big), num_frames=9, height=32, width=32)[0]
    finally:
        pipeline_module.load_media = load_media
    assert out.shape == (9 + 8, 32, 32, 3) and seen == [(32, 32)] and "video is 48x64 (WxH); resized to 32x32" in caplog.text


@pytest.mark.parametrize("kwargs, message", [
    ({"video2": "x"}, "video2 needs video"),
    ({"strength": 0.5}, "strength needs video"),
    ({"video": "VIDEO", "strength": 0.0}, r"strength must be in \(0, 1\]"),
    ({"video": "VIDEO", "strength": 1.5}, r"strength must be in \(0, 1\]"),
    ({"video": "VIDEO", "strength": True}, r"strength must be in \(0, 1\]"),
    ({"video": "VIDEO", "image": "VIDEO"}, "not both"),
    ({"video": "VIDEO", "extend": "sideways"}, "extend must be"),
    ({"video": "VIDEO", "loop": True}, "loop"),
    # extend="backward" where it does nothing was ignored: an image made the first frame, not the last
    ({"image": "STILL", "extend": "backward"}, r"extend='backward' is for extending a video .* to image -> video"),
    ({"video": "VIDEO", "video2": "VIDEO", "extend": "backward"}, "does not apply to connecting"),
    ({"video": "VIDEO", "strength": 0.5, "extend": "backward"}, "does not apply to editing"),
    ({"extend": "backward"}, "does not apply to text -> video"),
    ({"video": "VIDEO", "num_frames": 1}, "extending needs num_frames of at least 5 "),
    ({"video": "/nonexistent/clip.mp4"}, "no such file"),
    ({"image": "BROKEN"}, "cannot read image"),
    ({"image": "TEXT"}, r"^image: cannot read image .*notes.txt"),  # was "cannot read video" (FFmpeg's try)
    ({"image": b"\x89PNG\r\n\x1a\n..."}, "not the file's bytes"),
    ({"prompt": None}, "prompt must be a string"),
    ({"prompt": "caf\udce9 ball"}, "prompt is not valid UTF-8"),  # a Latin-1 byte a shell passed on undecoded
    ({"prompt": ["a", "b"], "negative_prompt": ["x", "y", "z"]}, "negative_prompt: give one, or one per prompt"),
    ({"num_inference_steps": 2.5}, "num_inference_steps must be a positive integer"),
    ({"num_frames": np.float64(9)}, "num_frames must be a positive integer"),
])
def test_bad_mode_inputs_are_named(pipe, tmp_path, kwargs, message):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("not an image")
    stand_in = {"VIDEO": clip(8), "SHORT": clip(8)[:3], "STILL": clip(8)[0], "BROKEN": str(broken), "TEXT": str(tmp_path / "notes.txt")}
    kwargs = {k: stand_in.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=message):
        if "prompt" in kwargs:
            pipe(kwargs.pop("prompt"), num_inference_steps=1, **kwargs)
        else:
            run(pipe, **kwargs)


def test_any_path_object_is_read_as_a_file(pipe, tmp_path):
    """An os.PathLike that is not a pathlib.Path was taken for an array ("image: video must be
    (T, H, W, 3) ..., got shape ()")."""
    import os

    from PIL import Image

    still = clip(2)[0]
    Image.fromarray(still).save(tmp_path / "still.png")

    class Where(os.PathLike):
        def __fspath__(self):
            return str(tmp_path / "still.png")

    assert np.array_equal(load_media(Where(), "image"), still[None])
    assert run(pipe, image=Where())[0].shape == (9, 32, 32, 3)


def test_float_tiff_images_are_read_as_images(pipe, tmp_path):
    from PIL import Image

    path = tmp_path / "still.tiff"
    Image.fromarray(np.full((32, 32), 0.5, np.float32)).save(path)  # mode F, what scientific tools write
    first = run(pipe, image=str(path), num_frames=5)[0][0]
    assert abs(float(first.mean()) - 127.5) < 30  # the image's grey, through the VAE


def test_videos_per_prompt_and_output_types_as_diffusers(pipe):
    out = pipe(["a red ball", "a blue square"], num_frames=5, num_inference_steps=2, num_videos_per_prompt=2,
               generator=torch.Generator().manual_seed(0)).frames
    assert len(out) == 4 and not np.array_equal(out[0], out[1])  # each its own noise
    pil = pipe("a red ball", num_frames=5, num_inference_steps=2, output_type="pil",
               generator=torch.Generator().manual_seed(0)).frames[0]
    pt = pipe("a red ball", num_frames=5, num_inference_steps=2, output_type="pt",
              generator=torch.Generator().manual_seed(0)).frames[0]
    ref = pipe("a red ball", num_frames=5, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).frames[0]
    assert len(pil) == 5 and pil[0].size == (32, 32) and np.array_equal(np.asarray(pil[3]), ref[3])
    assert pt.shape == (5, 3, 32, 32) and pt.dtype == torch.float32
    torch.testing.assert_close(pt, torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 255)
    with pytest.raises(ValueError, match="output_type must be"):
        pipe("a", num_inference_steps=1, output_type="tensor")
    with pytest.raises(ValueError, match="return_dict must be True or False, got 'False'"):  # was taken as true
        pipe("a", num_inference_steps=1, return_dict="False")
    assert isinstance(pipe("a", num_frames=1, num_inference_steps=1, return_dict=False), tuple)
    with pytest.raises(ValueError, match="num_videos_per_prompt must be a positive integer"):
        pipe("a", num_inference_steps=1, num_videos_per_prompt=0)


def test_diffusers_call_conventions(pipe):
    """Per-video generators, given starting latents, latent output, return_dict=False, out[0]."""
    kw = dict(num_frames=5, num_inference_steps=2)
    alone = [pipe(p, generator=torch.Generator().manual_seed(s), **kw).frames[0]
             for p, s in (("a red ball", 0), ("a blue square", 1))]
    batch = pipe(["a red ball", "a blue square"], generator=[torch.Generator().manual_seed(s) for s in (0, 1)], **kw)
    for one, many in zip(alone, batch.frames):
        assert np.abs(one.astype(int) - many.astype(int)).max() <= 1  # batched matmuls may round differently
    with pytest.raises(ValueError, match="one per video"):
        pipe(["a", "b"], generator=[torch.Generator()], **kw)
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        pipe("a", generator=0, **kw)
    # latents: the first window's noise; drawn from a seed they equal that seed's generation
    noise = torch.randn((1, 16, 2, 4, 4), generator=torch.Generator().manual_seed(0))
    given = pipe("a red ball", latents=noise, **kw).frames[0]
    assert np.array_equal(given, alone[0])
    with pytest.raises(ValueError, match=r"latents must be a float tensor of shape \(1, 16, 2, 4, 4\)"):
        pipe("a red ball", latents=noise[:, :, :1], **kw)
    z = pipe("a red ball", latents=noise, output_type="latent", **kw).frames[0]
    assert z.shape == (16, 2, 4, 4)
    decoded = ((pipe.vae.decode(z[None])[0].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    assert np.array_equal(decoded.numpy(), given)
    with pytest.raises(ValueError, match="output_type 'latent' is for"):
        pipe("a", video=clip(1), output_type="latent", **kw)
    (frames,) = pipe("a red ball", latents=noise, return_dict=False, **kw)
    assert np.array_equal(frames[0], given) and np.array_equal(pipe("a red ball", latents=noise, **kw)[0][0], given)


@pytest.mark.parametrize("kwargs, message", [
    ({"guidance_scale": -1}, "guidance_scale must be a number in"),
    ({"guidance_scale": "5"}, "guidance_scale must be a number in"),
    ({"guidance_scale": 1e6}, "guidance_scale must be a number in"),
    ({"window_frames": 9.5}, "window_frames must be a positive integer"),
    ({"window_frames": 0}, "window_frames must be a positive integer"),
    ({"loop": "no"}, "loop must be True or False"),
])
def test_generation_arguments_are_checked(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(pipe, num_frames=9, **kwargs)


def test_guidance_zero_is_the_unconditional_model(pipe):
    a = run(pipe, num_frames=5, guidance_scale=0)[0]
    b = pipe("a blue square moves left", num_frames=5, num_inference_steps=2, guidance_scale=0,
             generator=torch.Generator().manual_seed(0)).frames[0]
    assert np.array_equal(a, b)  # documented: 0 ignores the prompt


def test_numpy_and_tensor_scalars_are_numbers(pipe, caplog):
    """What a NumPy or PyTorch user passes: integer and real scalars of any type."""
    video = clip(9)
    a = run(pipe, video=video, strength=np.float32(0.5), num_inference_steps=np.int64(2))[0]
    b = run(pipe, video=video, strength=torch.tensor(0.5), num_inference_steps=torch.tensor(2))[0]
    c = run(pipe, video=video, strength=0.5)[0]
    assert np.array_equal(a, c) and np.array_equal(b, c)
    assert run(pipe, num_frames=np.int64(5), height=torch.tensor(32))[0].shape == (5, 32, 32, 3)
    # an edit keeps its video's length: a num_frames given with it is named as ignored
    with caplog.at_level(logging.WARNING, logger="spacetime.pipeline"):
        assert run(pipe, video=video, strength=0.5, num_frames=5)[0].shape[0] == 9
    assert "num_frames (5) is ignored: an edit keeps its video's length" in caplog.text


def test_cli_modes_and_their_flag_errors(pipe, tmp_path, capsys, caplog):
    from PIL import Image

    from spacetime.checkpoint import save_model
    from spacetime.cli import main
    from spacetime.data.video import read_video

    vae_dir = save_model(tmp_path / "vae", {"model": pipe.vae.config.to_dict()}, pipe.vae)
    cfg = {"format": "spacetime-pipeline", "dit": pipe.dit.config.to_dict(), "text_encoder": "hash:32",
           "text_max_length": 16, "defaults": {"num_frames": 9, "height": 32, "width": 32, "fps": 8.0}}
    model = str(save_model(tmp_path / "model", cfg, pipe.dit, subdirs={"vae": vae_dir}))
    image, video = tmp_path / "still.png", tmp_path / "in.mp4"
    Image.fromarray(clip(9)[0]).save(image)
    write_video(clip(9), video, fps=8)
    base = ["generate", "a red ball", "--model", model, "--num-inference-steps", "2"]

    assert main([*base, "--num-frames", "1", "--output", str(tmp_path / "t.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "t.png")).shape == (32, 32, 3)
    # a .png output asks for an image: one frame without --num-frames (17 were made, then refused)
    assert main([*base, "--output", str(tmp_path / "t2.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "t2.png")).shape == (32, 32, 3)
    assert json.loads((tmp_path / "t2.json").read_text())["mode"] == "text-to-image"
    assert main([*base, "--image", str(image), "--output", str(tmp_path / "i2.png")]) == 0
    assert json.loads((tmp_path / "i2.json").read_text())["mode"] == "image-to-image"  # was "image-to-video"
    assert main([*base, "--image", str(image), "--output", str(tmp_path / "i.mp4")]) == 0
    assert read_video(tmp_path / "i.mp4")[0].shape == (9, 32, 32, 3)
    assert main([*base, "--video", str(video), "--mode", "extend-backward", "--output", str(tmp_path / "b.mp4")]) == 0
    assert read_video(tmp_path / "b.mp4")[0].shape[0] == 5 + 9
    assert main([*base, "--video", str(video), "--mode", "edit", "--strength", "0.3", "--output", str(tmp_path / "e.mp4")]) == 0

    sidecar = json.loads((tmp_path / "e.json").read_text())
    assert sidecar["mode"] == "edit" and sidecar["strength"] == 0.3 and sidecar["num_frames"] == 9
    # a connection records the strength it ran at: the default, which --help names
    assert main([*base, "--video", str(video), "--mode", "connect", "--video2", str(video), "--output",
                 str(tmp_path / "c.mp4")]) == 0
    sidecar = json.loads((tmp_path / "c.json").read_text())
    assert sidecar["mode"] == "connect" and sidecar["strength"] == pipeline_module.CONNECT_STRENGTH
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert f"(default {pipeline_module.CONNECT_STRENGTH}; 1: from noise)" in " ".join(capsys.readouterr().out.split())
    assert main([*base, "--expand-prompt", "--seed", "3", "--output", str(tmp_path / "x1.mp4")]) == 0
    sidecar = json.loads((tmp_path / "x1.json").read_text())
    assert sidecar["prompt"] == "a red ball" and "red" in sidecar["expanded_prompt"].lower()
    assert len(sidecar["expanded_prompt"]) > len("a red ball") + 20
    capsys.readouterr()
    assert sidecar["mode"] == "text-to-video" and sidecar["requested_frames"] == 9 and sidecar["window_frames"] is None
    assert sidecar["guidance_interval"] == [0.0, 1.0]
    assert main([*base, "--guidance-interval", "0.3", "1", "--output", str(tmp_path / "gi.mp4")]) == 0
    assert json.loads((tmp_path / "gi.json").read_text())["guidance_interval"] == [0.3, 1.0]
    assert sidecar["shift"] == 1.0  # the model's own (none here: training's schedule)
    assert main([*base, "--shift", "2.5", "--output", str(tmp_path / "sh.mp4")]) == 0
    assert json.loads((tmp_path / "sh.json").read_text())["shift"] == 2.5
    # without a size, the output takes the input's (48x32 here), as the pipeline does
    wide = tmp_path / "wide.png"
    Image.fromarray(np.asarray(Image.fromarray(clip(1)[0]).resize((48, 32)))).save(wide)
    assert main([*base, "--image", str(wide), "--output", str(tmp_path / "w.mp4")]) == 0
    assert read_video(tmp_path / "w.mp4")[0].shape == (9, 32, 48, 3)
    # an input video at another frame rate than the output's is named
    fast = tmp_path / "fast.mp4"
    write_video(clip(9), fast, fps=24)
    with caplog.at_level(logging.WARNING, logger="spacetime.cli"):
        assert main([*base, "--video", str(fast), "--output", str(tmp_path / "f.mp4")]) == 0
    assert "is 24 fps; the output is written at 8 fps" in caplog.text
    sidecar = json.loads((tmp_path / "f.json").read_text())
    assert (sidecar["mode"], sidecar["requested_frames"], sidecar["num_frames"]) == ("extend-forward", 9, 9 + 8)
    capsys.readouterr()
    (tmp_path / "adir.mp4").mkdir()
    for bad, msg in ((["--mode", "edit", "--video", str(video)], "needs --strength"),
                     (["--video", str(video), "--strength", "0.5"], "--strength goes with --mode edit or --mode connect"),
                     (["--video2", str(video)], "--video2 goes with --mode connect"),
                     (["--mode", "connect"], "needs --video"),
                     (["--video", str(tmp_path / "nope.mp4")], "no such file"),
                     (["--output", str(tmp_path / "v.png"), "--num-frames", "9"], "PNG holds one image"),
                     (["--output", str(tmp_path / "adir.mp4")], "is a directory"),
                     ([b"caf\xe9".decode("utf-8", "surrogateescape")], "prompt is not valid UTF-8")):
        args = [*base, "--output", str(tmp_path / "x.mp4"), *bad]
        if not bad[0].startswith("--"):  # a prompt: in place of the first
            args = ["generate", bad[0], *base[2:], "--output", str(tmp_path / "x.mp4")]
        assert main(args) == 1, bad
        assert msg in capsys.readouterr().err, bad
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "v.png").exists()
    # a still extended backward (refused before): the image as the last frame, after a window's new frames
    assert main([*base, "--mode", "extend-backward", "--video", str(tmp_path / "t.png"), "--output",
                 str(tmp_path / "sb.mp4")]) == 0
    assert read_video(tmp_path / "sb.mp4")[0].shape[0] == 5 + 1


def test_long_videos_are_made_window_by_window(pipe, recorded, caplog):
    out = run(pipe, num_frames=41, window_frames=17)[0]
    assert out.shape == (41, 32, 32, 3)
    # a 17-frame window (5 latent frames), then windows holding 2 latent frames of context
    assert [tuple(c["out"].shape[2:3]) for c in recorded] == [(5,)] * len(recorded)
    assert recorded[0]["cond_mask"] is None
    assert all(c["cond_mask"].tolist() == [[True, True, False, False, False]] for c in recorded[1:])
    assert len(recorded) == 1 + 2  # 17 + 2 x 12 new frames (5 of context each) = 41
    with pytest.raises(ValueError, match="window_frames must be at least 9"):
        run(pipe, num_frames=41, window_frames=5)
    with caplog.at_level(logging.WARNING, logger="spacetime.pipeline"):  # used as 17, silently
        assert run(pipe, num_frames=41, window_frames=20)[0].shape == (41, 32, 32, 3)
    assert "window_frames 20 is not 1 + 4k; windows of 17 frames are used" in caplog.text


def test_window_frames_an_edit_or_a_connection_does_not_use_is_said(pipe, recorded, caplog):
    """An edit and a connection are one window whatever window_frames says: a window_frames smaller
    than that window was ignored silently (a 25-frame edit with window_frames=9 was one window)."""
    with caplog.at_level(logging.WARNING, logger="spacetime.pipeline"):
        assert run(pipe, video=clip(6, 25), strength=0.5, window_frames=9)[0].shape == (25, 32, 32, 3)
        assert run(pipe, video=clip(6), video2=clip(7), num_frames=25, window_frames=9)[0].shape[0] == 9 + 12 + 9
    assert [c["out"].shape[2] for c in recorded] == [7, 7]
    assert "window_frames (9) is not used: an edit is made in one window of 25 frames (its video's length)" in caplog.text
    assert "window_frames (9) is not used: a connection is made in one window of 25 frames (num_frames)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spacetime.pipeline"):  # one that holds the window: nothing to say
        run(pipe, video=clip(6), strength=0.5, window_frames=9)
        run(pipe, video=clip(6), video2=clip(7), num_frames=17, window_frames=17)
    assert "is not used" not in caplog.text


def test_long_extensions_are_made_window_by_window(pipe, recorded):
    """An extension longer than window_frames adds as many new frames as one big window would
    (num_frames less its context), in windows of window_frames that each hold the last one's end
    (forward) or start (backward): memory flat in the length added, the given video kept exactly."""
    given = clip(8)
    out = run(pipe, video=given, num_frames=41, window_frames=17)[0]
    # one 41-frame window would hold 9 frames of context (3 latents) and make 32 new frames; windows
    # of 17 hold 5 (2 latents) and make 12 each: 3 windows, the last 4 frames trimmed
    assert out.shape == (9 + 32, 32, 32, 3) and np.array_equal(out[:9], given)
    assert [c["out"].shape[2] for c in recorded] == [5] * len(recorded) and len(recorded) == 3
    assert all(c["cond_mask"].tolist() == [[True, True, False, False, False]] for c in recorded)
    recorded.clear()
    out = run(pipe, video=given, extend="backward", num_frames=41, window_frames=17)[0]
    # one 41-frame window would hold 8 frames (2 latents) and make 33 new frames before the video
    assert out.shape == (33 + 9, 32, 32, 3) and np.array_equal(out[33:], given)
    # each window holds 8 frames (2 latents) of what follows it and makes 9: 4 x 9 = 36, the
    # earliest 3 trimmed
    assert [c["out"].shape[2] for c in recorded] == [5] * len(recorded) and len(recorded) == 4
    assert all(c["cond_mask"].tolist() == [[False, False, False, True, True]] for c in recorded)
    # a window that holds the whole extension is one sampler call, as before, of the same length
    recorded.clear()
    assert run(pipe, video=given, num_frames=41, window_frames=41)[0].shape == (9 + 32, 32, 32, 3) and len(recorded) == 1


@pytest.mark.parametrize("kwargs", [
    {"video": "long", "num_frames": 25, "window_frames": 9},  # forward: 2 windows, where 3 were counted
    {"video": "short", "num_frames": 25, "window_frames": 9},
    {"video": "short", "extend": "backward", "num_frames": 25, "window_frames": 9},  # 9 new frames a window, not 8
    {"video": "long", "num_frames": 41, "window_frames": 17},
    {"video": "long", "extend": "backward", "num_frames": 41, "window_frames": 17},
    {"num_frames": 29, "window_frames": 9},
    {"loop": True, "num_frames": 29, "window_frames": 9},
    {"image": "still", "num_frames": 33, "window_frames": 13},
])
def test_the_callbacks_total_is_the_steps_made(pipe, recorded, kwargs):
    """callback(step, total): total was planned as if each window of a long extension added what a
    text -> video window adds, so forward the count stopped short of it (4 of 6) and backward it
    grew as the windows came (6, then 7, 8): a progress bar that never filled, or ran back."""
    inputs = {"short": clip(8, 5), "long": clip(8), "still": clip(8, 1)[0]}
    kwargs = {k: inputs.get(v, v) if isinstance(v, str) and k in ("video", "image") else v for k, v in kwargs.items()}
    calls = []
    run(pipe, num_inference_steps=1, callback=lambda i, n: calls.append((i, n)), **kwargs)
    assert calls == [(i + 1, len(recorded)) for i in range(len(recorded))]


def test_pipeline_to_moves_every_part(pipe):
    assert pipe.to("cpu") is pipe and pipe._device == torch.device("cpu")
    assert pipe.text_encoder.device == torch.device("cpu")
    assert run(pipe, num_frames=5)[0].shape == (5, 32, 32, 3)


# --- inputs from users' files, found by the bug hunt ---


def test_image_files_are_read_upright_opaque_and_whole(pipe, tmp_path):
    from PIL import Image

    load = load_media
    # a phone photo: stored 64 wide, 32 high, with EXIF "rotate 90 clockwise"; a marker top-left
    img = np.zeros((32, 64, 3), np.uint8)
    img[:8, :8] = 255
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(img).save(tmp_path / "exif6.jpg", exif=ex.tobytes(), quality=95)
    upright = load(str(tmp_path / "exif6.jpg"), "image")
    assert upright.shape == (1, 64, 32, 3) and upright[0, :8, -8:].mean() > 200
    assert run(pipe, image=str(tmp_path / "exif6.jpg"), num_frames=5)[0].shape == (5, 64, 32, 3)
    # transparent pixels hiding magenta: composited over black, not shown
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3] = (255, 0, 255)
    rgba[8:24, 8:24] = (0, 200, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    frame = load(str(tmp_path / "alpha.png"), "image")[0]
    assert frame[0, 0].tolist() == [0, 0, 0] and frame[16, 16].tolist() == [0, 200, 0]
    # an animated PNG as a video keeps every frame (as an image, its first)
    frames = [Image.fromarray(np.full((32, 32, 3), 20 * k, np.uint8)) for k in range(9)]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:], duration=125)
    video = load(str(tmp_path / "anim.png"), "video")
    assert video.shape == (9, 32, 32, 3)
    np.testing.assert_allclose(video[:, 0, 0, 0], 20 * np.arange(9), atol=1)
    assert load(str(tmp_path / "anim.png"), "image").shape == (1, 32, 32, 3)
    assert run(pipe, video=str(tmp_path / "anim.png"), strength=0.5)[0].shape == (9, 32, 32, 3)
    # a video under an image's name is read by FFmpeg
    write_video(clip(3), tmp_path / "v.mp4", fps=8)
    (tmp_path / "v.mp4").rename(tmp_path / "really_mp4.png")
    assert load(str(tmp_path / "really_mp4.png"), "image").shape == (1, 32, 32, 3)
    assert load(str(tmp_path / "really_mp4.png"), "video").shape == (9, 32, 32, 3)
    # a directory is named as one
    with pytest.raises(ValueError, match="is a directory"):
        load(str(tmp_path), "video")


def test_an_image_over_the_decompression_bomb_limit_is_a_named_error(pipe, tmp_path):
    import time

    from PIL import Image

    Image.new("1", (16320, 12240)).save(tmp_path / "huge.png")  # 200 megapixels, 24 kB on disk
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"image: .*huge\.png' is too large to read"):
        run(pipe, image=str(tmp_path / "huge.png"), height=32, width=32)
    assert time.perf_counter() - t0 < 2  # refused from the header: nothing decoded


def test_cli_input_files_stills_and_directories(pipe, tmp_path, capsys, caplog):
    from PIL import Image

    from spacetime.checkpoint import save_model
    from spacetime.cli import main

    (tmp_path / "adir").mkdir()
    for flag in ("--image", "--video"):  # checked before any model is loaded
        assert main(["generate", "x", flag, str(tmp_path / "adir"), "--output", str(tmp_path / "x.mp4")]) == 1
        assert "adir: is a directory" in capsys.readouterr().err
    vae_dir = save_model(tmp_path / "vae", {"model": pipe.vae.config.to_dict()}, pipe.vae)
    cfg = {"format": "spacetime-pipeline", "dit": pipe.dit.config.to_dict(), "text_encoder": "hash:32",
           "text_max_length": 16, "defaults": {"num_frames": 9, "height": 32, "width": 32, "fps": 8.0}}
    model = str(save_model(tmp_path / "model", cfg, pipe.dit, subdirs={"vae": vae_dir}))
    base = ["generate", "a red ball", "--model", model, "--num-inference-steps", "2", "--no-provenance"]
    Image.fromarray(clip(4)[0]).save(tmp_path / "still.png")
    with caplog.at_level(logging.WARNING, logger="spacetime.cli"):  # a still has no frame rate to warn of
        assert main([*base, "--video", str(tmp_path / "still.png"), "--num-frames", "5",
                     "--output", str(tmp_path / "s.mp4")]) == 0
    assert "fps" not in caplog.text


def test_cli_generate_stopped_by_sigterm_leaves_nothing_half_written(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """SIGTERM (timeout, docker stop) ends `generate` as Ctrl-C does: temporary files removed, exit
    143. Its default action ended the process mid-write, leaving the unsigned temp files."""
    import os
    import signal
    import time

    import spacetime.provenance.output as output
    from spacetime.cli import main

    def sign_file(*args, **kwargs):  # the encoded temp file is on disk now
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM was not turned into an interrupt")

    monkeypatch.setattr(output, "sign_file", sign_file)
    out = tmp_path / "out"
    out.mkdir()
    before = signal.getsignal(signal.SIGTERM)
    assert main(["generate", "a red ball", "--model", str(tiny_model_dir), "--num-inference-steps", "1",
                 "--output", str(out / "x.mp4")]) == 143
    assert list(out.iterdir()) == [] and "terminated" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # the handler was only for the command
    with pytest.raises(SystemExit) as e:
        main(["generate", "a red ball", "--guidance-interval", "0.5", "0.2", "--output", "y.mp4"])
    assert e.value.code == 2 and "LO must not be above HI" in capsys.readouterr().err
    # 864,001 frames asked through --seconds: refused before generating (--num-frames had its cap, not --seconds)
    assert main(["generate", "a ball", "--seconds", "3600", "--fps", "240", "--model", str(tiny_model_dir),
                 "--output", str(out / "h.mp4")]) == 1
    assert "--seconds 3600 at --fps 240 is 864001 frames" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # the parser's range is (0, 1]: a usage error, before any loading
        main(["generate", "a red ball", "--mode", "edit", "--video", "x.mp4", "--strength", "0", "--output", "y.mp4"])
    assert e.value.code == 2 and "--strength must be in (0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["generate", "a red ball", "--shift", "0", "--output", "y.mp4"])
    assert e.value.code == 2 and "--shift must be in (0, 100]" in capsys.readouterr().err


def test_guidance_interval_is_the_models_default_unless_given(pipe, recorded, monkeypatch):
    run(pipe)
    assert recorded[-1]["guidance_interval"] == (0.0, 1.0)  # no default in the model: everywhere
    a = run(pipe, guidance_interval=(0.3, 1.0), num_inference_steps=4)[0]  # t = 0.25 unguided
    assert recorded[-1]["guidance_interval"] == (0.3, 1.0) and not np.array_equal(a, run(pipe, num_inference_steps=4)[0])
    monkeypatch.setitem(pipe.defaults, "guidance_interval", [0.3, 1.0])  # config.json's "defaults"
    assert np.array_equal(run(pipe, num_inference_steps=4)[0], a) and recorded[-1]["guidance_interval"] == (0.3, 1.0)
    with pytest.raises(ValueError, match="guidance_interval must be"):
        run(pipe, guidance_interval=(0.9, 0.1))


def test_shift_is_the_models_default_unless_given_and_grows_with_the_window(pipe, recorded, monkeypatch):
    def tokens(call) -> int:
        pt, ph, pw = pipe.dit.config.patch
        return call["out"][0, 0].numel() // (pt * ph * pw)

    plain = run(pipe, num_inference_steps=4)[0]
    assert tokens(recorded[-1]) < 256 and recorded[-1]["shift"] == 1.0  # no default in the model: training's
    shifted = run(pipe, shift=3.0, num_inference_steps=4)[0]
    assert recorded[-1]["shift"] == 3.0 and not np.array_equal(shifted, plain)
    monkeypatch.setitem(pipe.defaults, "shift", 3.0)  # config.json's "defaults"
    assert np.array_equal(run(pipe, num_inference_steps=4)[0], shifted) and recorded[-1]["shift"] == 3.0
    assert pipe.resolve_shift() == 3.0 and pipe.resolve_shift(1.5) == 1.5
    # a window of more tokens is shifted as training shifts it, sqrt(tokens / 256), when that is more
    run(pipe, shift=1.05, num_frames=17, height=128, width=128, num_inference_steps=1)
    n = tokens(recorded[-1])
    assert math.sqrt(n / 256) > 1.05 and recorded[-1]["shift"] == pytest.approx(math.sqrt(n / 256))
    run(pipe, shift=1.5, num_frames=17, height=128, width=128, num_inference_steps=1)
    assert recorded[-1]["shift"] == 1.5  # and the given floor where that is more
    for bad in (0, -1.0, float("nan"), float("inf"), 101, "2", True):
        with pytest.raises(ValueError, match="shift must be a number in"):
            run(pipe, shift=bad)


def test_the_long_video_bench_reports_drift_clip_by_clip(monkeypatch, tmp_path, bench_module):
    """bench/modes.py's 60-s figure: the drift of each clip (last third less first third of its
    17-frame segments) and an interval over clips, so 2 clips' swing is not read as a trend."""
    from types import SimpleNamespace

    modes = bench_module("modes")
    drop = {0: 0.3, 1: 0.1, 2: 0.2}  # each clip's permanence falls by this from its first to its last third

    def fake_gen(pipe, args, i, prompt, **kw):
        frames = np.zeros((kw["num_frames"], 4, 4, 3), np.uint8)
        frames[:, 0, 0, 0] = i  # which clip, read back by the fake judge
        frames[:, 0, 0, 1] = np.arange(kw["num_frames"]) // 17  # which segment
        return frames

    def fake_judge(frames, prompt):
        clip, seg = int(frames[0, 0, 0, 0]), int(frames[0, 0, 0, 1])
        return {"adherence": 0.5, "permanence": 0.8 - drop[clip] * (seg >= 4), "objects_seen": 1,
                "objects_prompted": 1, "count_right": True}

    monkeypatch.setattr(modes, "gen", fake_gen)
    monkeypatch.setattr(modes, "judge", fake_judge)
    monkeypatch.setattr(modes, "save_strip", lambda *a, **k: None)
    args = SimpleNamespace(long_seconds=13.0, long_clips=3, seed=0, img_dir=tmp_path)  # 105 frames: 6 segments
    out = modes.long_coherence(None, args)
    assert len(out["per_segment"]) == 6
    per_clip = [round(c["permanence"], 6) for c in out["drift_per_clip"]["clips"]]
    assert per_clip == [-0.3, -0.1, -0.2]
    perm = next(s for s in out["drift_per_clip"]["summary"] if s["metric"] == "permanence")
    assert perm["mean"] == -0.2 and perm["clips_down"] == 3 and perm["clips_up"] == 0
    # standard error 0.1 / sqrt(3); t(2) = 4.303
    assert perm["stderr"] == round(0.1 / np.sqrt(3), 3)
    assert abs(perm["ci95_high"] - (-0.2 + 4.303 * 0.1 / np.sqrt(3))) < 1e-3
    adherence = next(s for s in out["drift_per_clip"]["summary"] if s["metric"] == "adherence")
    assert adherence["mean"] == 0 and adherence["clips_down"] == adherence["clips_up"] == 0


def test_array_inputs_errors_name_their_argument(pipe):
    """A grayscale (H, W) image was refused as a 'video' of the wrong shape; every array error said
    'video', also for image and video2; a callback that is not callable failed after the first step."""
    frame = clip(0)[0]
    gray = run(pipe, image=frame[..., 0], num_frames=5)[0]
    assert np.array_equal(gray, run(pipe, image=np.repeat(frame[..., :1], 3, -1), num_frames=5)[0])
    with pytest.raises(ValueError, match=r"^video2: integer video values must lie in 0..255, got 0..300 \(given shape"):
        run(pipe, video=clip(0), video2=np.linspace(0, 300, 9 * 32 * 32 * 3).reshape(9, 32, 32, 3).astype(np.int64))
    with pytest.raises(ValueError, match=r"^image: a list must hold one or more frames"):
        run(pipe, image=[])
    with pytest.raises(ValueError, match="callback must be a function of"):
        run(pipe, callback=5)


def test_an_input_over_the_size_limit_without_a_size_names_the_input(pipe, tmp_path):
    """Without height and width the output takes the input's size; one over the limit a side (an
    8000x6000 photo) is an error naming the input and what to pass, not "height must be at most
    4096" of a height the user never gave."""
    from PIL import Image

    from spacetime.cli import MAX_SIDE

    wide = tmp_path / "pano rama.png"
    Image.new("RGB", (MAX_SIDE + 4, 16), (200, 40, 40)).save(wide)
    with pytest.raises(ValueError, match=r"image .*pano rama\.png is 4100x16 \(WxH\); without height and width .*--size"):
        run(pipe, image=str(wide))
    with pytest.raises(ValueError, match=r"^video is 4100x16 \(WxH\)"):
        run(pipe, video=np.zeros((1, 16, MAX_SIDE + 4, 3), np.uint8))
    assert run(pipe, image=str(wide), num_frames=1, height=16, width=32)[0].shape == (1, 16, 32, 3)  # a size given: scaled


def test_one_side_given_with_an_input_keeps_its_aspect_ratio(pipe, tmp_path):
    """width alone (or height alone) with an input: the other side follows the input's aspect
    ratio, rounded to what the model makes, instead of the model's default (a 96x48 photo at height
    64 was stretched to 32x64, the model's width)."""
    from PIL import Image

    from spacetime.checkpoint import save_model
    from spacetime.cli import main

    photo = tmp_path / "photo.png"
    Image.fromarray(make_clip(3, num_frames=1, height=48, width=96).frames[0]).save(photo)
    assert run(pipe, image=str(photo), num_frames=1, width=64)[0].shape == (1, 32, 64, 3)
    assert run(pipe, image=str(photo), num_frames=1, height=64)[0].shape == (1, 64, 128, 3)
    tall = make_clip(4, num_frames=5, height=64, width=32).frames
    assert run(pipe, video=tall, num_frames=9, width=32)[0].shape == (5 + 8, 64, 32, 3)
    with pytest.raises(ValueError, match=r"image .*photo\.png is 96x48 \(WxH\); at height 4000 its aspect ratio makes "
                                         r"the output 8000x4000, over 4096"):
        run(pipe, image=str(photo), height=4000)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        run(pipe, image=str(photo), width=-3)
    # the CLI too: --height alone with --image
    vae_dir = save_model(tmp_path / "vae", {"model": pipe.vae.config.to_dict()}, pipe.vae)
    cfg = {"format": "spacetime-pipeline", "dit": pipe.dit.config.to_dict(), "text_encoder": "hash:32",
           "text_max_length": 16, "defaults": {"num_frames": 9, "height": 32, "width": 32, "fps": 8.0}}
    model = str(save_model(tmp_path / "model", cfg, pipe.dit, subdirs={"vae": vae_dir}))
    out = tmp_path / "w.png"
    assert main(["generate", "x", "--model", model, "--num-inference-steps", "1", "--no-provenance", "--image", str(photo),
                 "--height", "64", "--output", str(out)]) == 0
    assert Image.open(out).size == (128, 64)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert (sidecar["width"], sidecar["height"]) == (128, 64)


def test_a_device_or_a_pipe_given_as_an_input_is_named_so(pipe, tmp_path, capsys):
    """/dev/null or a pipe (`--video <(curl ...)`) exists but is no file: it was called "no such
    file", which it plainly is not."""
    import os

    from spacetime.cli import main

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for x in ("/dev/null", str(fifo)):
        with pytest.raises(ValueError, match=r"is not a regular file \(a device or a pipe\)"):
            run(pipe, video=x)
        assert main(["generate", "x", "--image", x, "--output", str(tmp_path / "x.mp4")]) == 1
        assert f"--image {x}: not a regular file (a device or a pipe" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no such file"):
        run(pipe, video=str(tmp_path / "missing.mp4"))


def test_an_input_stretched_to_another_aspect_ratio_is_said_to_be(pipe, tmp_path, caplog):
    """A portrait video made landscape is stretched, not merely resized: the warning says so (and
    what to do); a resize that keeps the shape says only that."""
    tall = tmp_path / "tall.mp4"
    write_video(make_clip(5, num_frames=5, height=64, width=32).frames, tall, fps=8)
    with caplog.at_level(logging.WARNING, logger="spacetime.pipeline"):
        run(pipe, video=str(tall), num_frames=9, height=32, width=64)  # scaled as it is decoded
        run(pipe, video=make_clip(5, num_frames=5, height=64, width=32).frames, num_frames=9, height=32, width=64)
    assert caplog.text.count("video is 32x64 (WxH); resized to 64x32; stretched, as its aspect ratio (0.50) is not "
                             "the output's (2.00)") == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spacetime.pipeline"):
        run(pipe, video=str(tall), num_frames=9, height=32, width=16)
    assert "resized to 16x32" in caplog.text and "stretched" not in caplog.text


def test_an_input_far_larger_than_the_model_makes_an_output_at_the_models_scale(pipe, caplog):
    """Without a size the output took the input's: a 300x200 photo at the shipped 64x64 model came out
    as specks of colour (far above the sizes it learned a model breaks up), a phone photo sampled for
    hours. Past LARGE_INPUT times the default's pixels it keeps the input's aspect ratio at the model's
    scale, and says so; with one side given the other follows, a huge area warned of."""
    big = make_clip(2, num_frames=1, height=128, width=192).frames  # 24 times the model's 32x32
    with caplog.at_level(logging.WARNING):
        assert run(pipe, image=big, num_frames=1, num_inference_steps=1)[0].shape == (1, 32, 48, 3)
    assert ("image is 192x128 (WxH); without a size the output is 48x32, its aspect ratio at this model's scale (about 32 "
            "pixels on the shorter side") in caplog.text
    from spacetime.pipeline import _at_model_scale

    # 4:3 at a 64-pixel model: 64x48 keeps it exactly, where 64 on the shorter side would stretch it to 80x64
    assert [_at_model_scale(h, w, 64, 16, 16) for h, w in ((240, 320), (200, 300), (1080, 1920), (512, 512))] == [
        (48, 64), (64, 96), (64, 112), (64, 64)]
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # under LARGE_INPUT times the pixels: its own size (rounded to fit)
        assert run(pipe, image=big[:, :40, :48], num_frames=1, num_inference_steps=1)[0].shape == (1, 48, 48, 3)
    assert "without a size the output is" not in caplog.text
    with caplog.at_level(logging.WARNING):  # one side given: the other from its aspect ratio, the area warned of
        assert run(pipe, image=big, num_frames=1, num_inference_steps=1, width=192)[0].shape == (1, 128, 192, 3)
    assert ("image is 192x128 (WxH), and the output takes 192x128: 24 times the pixels of the 32x32 this model makes "
            "by default") in caplog.text and "--size 48x32 keeps its aspect ratio" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run(pipe, image=big, num_frames=1, num_inference_steps=1, height=32, width=48)  # a size given: none
    assert "times the pixels" not in caplog.text and "without a size" not in caplog.text
