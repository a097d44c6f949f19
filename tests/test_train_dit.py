"""DiT training and text-to-video generation: learning, resume, packed sizes, the latent cache,
the pipeline and `spacetime generate`."""

import json
import logging
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spacetime.checkpoint import save_model
from spacetime.cli import main
from spacetime.config import load_config
from spacetime.data.streams import dit_items, encode_videos
from spacetime.data.video import frames_to_tensor, read_video
from spacetime.dit import DiT, DiTConfig
from spacetime.pipeline import SpacetimePipeline
from spacetime.text import HashTextEncoder
from spacetime.train import TrainDiTConfig, flow_step_loss, train_dit
from spacetime.vae import PRESETS, VideoVAE
from spacetime.world.clip import make_clip

TINY_DIT = ["--text_encoder", "hash:32", "--text_max_length", "16", "--model.text_dim", "32", "--model.hidden", "32",
            "--model.depth", "2", "--model.heads", "2", "--data.num_frames", "5", "--data.height", "32",
            "--data.width", "32", "--batch_size", "3", "--threads", "1", "--log_every", "1", "--sample_every", "0",
            "--optim.warmup_steps", "2"]


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    torch.manual_seed(0)
    vae = VideoVAE(PRESETS["tiny"])
    clips = torch.stack([frames_to_tensor(make_clip(s, num_frames=5, height=32, width=32).frames) for s in range(4)])
    vae.eval().fit_latent_stats([clips])  # unit-scale latents, as a trained VAE's are
    return save_model(tmp_path_factory.mktemp("vae") / "vae", {"model": vae.config.to_dict()}, vae)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(4 / F.mse_loss(a, b).item())


def test_tiny_dit_learns_two_prompts_and_tells_them_apart(vae_dir):
    """Two clips, two prompts: within a minute each prompt's sample reproduces its own clip
    (> 20 dB against the clip's VAE reconstruction) and not the other one."""
    torch.manual_seed(0)
    vae = VideoVAE.from_pretrained(vae_dir)
    text = HashTextEncoder(dim=32, max_length=16)
    prompts = ["a red ball falls on a black background", "a blue square moves to the left on a white background"]
    clips = [frames_to_tensor(make_clip(s, num_frames=9, height=32, width=32).frames) for s in (1, 2)]
    latents = encode_videos(vae, clips)
    dit = DiT(DiTConfig(in_channels=16, hidden=64, depth=2, heads=2, text_dim=32))
    opt = torch.optim.AdamW(dit.parameters(), lr=2e-3)
    emb, mask = text.encode(prompts)
    pipe = SpacetimePipeline(dit, vae, text, {})
    recon = [vae.decode(z[None])[0] for z in latents]
    start, step, table = time.perf_counter(), 0, None
    while time.perf_counter() - start < 60:
        for _ in range(500):
            loss = flow_step_loss(dit.train(), latents, emb, mask, torch.Generator().manual_seed(step))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        out = pipe(prompts, num_frames=9, height=32, width=32, num_inference_steps=20, guidance_scale=1.0,
                   generator=torch.Generator().manual_seed(0))
        videos = [torch.from_numpy(f).permute(3, 0, 1, 2).float() / 127.5 - 1 for f in out.frames]
        table = [[_psnr(v, r) for r in recon] for v in videos]
        if min(table[0][0], table[1][1]) > 21:
            break
    assert table[0][0] > 20 and table[1][1] > 20, f"own-clip PSNR {table} after {step} steps"
    assert table[0][0] > table[0][1] + 5 and table[1][1] > table[1][0] + 5, table


def test_train_dit_packs_sizes_resumes_and_generates(vae_dir, tmp_path, capsys):
    cfg = [*TINY_DIT, "--vae", str(vae_dir), "--sizes", "[[5,32,32],[9,32,48],[1,48,32]]"]
    straight = train_dit(load_config(TrainDiTConfig, None, [*cfg, "--max_steps", "4", "--run_dir", str(tmp_path / "a")]),
                         progress=False)
    b = [*cfg, "--run_dir", str(tmp_path / "b"), "--save_every", "2"]
    train_dit(load_config(TrainDiTConfig, None, [*b, "--max_steps", "2"]), progress=False)
    resumed = train_dit(load_config(TrainDiTConfig, None, [*b, "--max_steps", "4", "--sample_every", "4",
                                                        "--sample_steps", "2"]), progress=False)
    from safetensors.torch import load_file

    for name in ("model.safetensors",):
        x, y = load_file(straight / name), load_file(resumed / name)
        assert all(torch.equal(x[k], y[k]) for k in x), "resumed run differs from the straight one"
    last_a, last_b = (sorted((tmp_path / r / "checkpoints").glob("step-*"))[-1] for r in ("a", "b"))
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):  # bit for bit, all of it
        x, y = load_file(last_a / name), load_file(last_b / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) for r in rows)
    samples = sorted((tmp_path / "b" / "samples" / "step-00000004").glob("*.mp4"))
    assert len(samples) == 2 and read_video(samples[0])[0].shape == (5, 32, 32, 3)
    # the model directory carries its VAE; generate at a size and duration never trained
    out = tmp_path / "gen.mp4"
    assert main(["generate", "a red ball bounces", "--model", str(resumed), "--output", str(out), "--size", "64x48",
                 "--num-frames", "13", "--num-inference-steps", "3", "--seed", "7"]) == 0
    frames, fps = read_video(out)
    assert frames.shape == (13, 48, 64, 3) and fps == pytest.approx(8.0)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["seed"] == 7 and side["num_frames"] == 13 and side["width"] == 64 and side["height"] == 48
    assert side["guidance_scale"] == 5.0 and set(side["seconds"]) >= {"text", "denoise", "decode", "write"}


def test_init_from_starts_model_and_ema_from_a_pipeline(vae_dir, tmp_path, caplog):
    """Fine-tuning: a trained pipeline's DiT weights start the model and the EMA (step 0 equals
    them); a pipeline of another shape is refused, naming init_from."""
    from safetensors.torch import load_file

    cfg = [*TINY_DIT, "--vae", str(vae_dir)]
    first = train_dit(load_config(TrainDiTConfig, None, [*cfg, "--max_steps", "2", "--optim.lr", "1e-2",
                                                         "--run_dir", str(tmp_path / "a")]), progress=False)
    tuned = [*cfg, "--init_from", str(first), "--run_dir", str(tmp_path / "b"), "--save_every", "1", "--max_steps", "1",
             "--optim.lr", "1e-12"]  # the one step leaves the starting weights as they were
    out = train_dit(load_config(TrainDiTConfig, None, tuned), progress=False)
    start, after = load_file(first / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.allclose(start[k], after[k], atol=1e-6) for k in start)
    fresh = train_dit(load_config(TrainDiTConfig, None, [*cfg, "--max_steps", "1", "--optim.lr", "1e-12",
                                                         "--run_dir", str(tmp_path / "c")]), progress=False)
    assert not all(torch.allclose(start[k], v, atol=1e-3) for k, v in load_file(fresh / "model.safetensors").items())
    # another text encoder setting than the model was trained with: allowed, never silent
    with caplog.at_level("WARNING", logger="spacetime.train"):
        train_dit(load_config(TrainDiTConfig, None, [*cfg, "--text_max_length", "12", "--init_from", str(first),
                                                     "--run_dir", str(tmp_path / "e"), "--max_steps", "1"]),
                  progress=False)
    assert "was trained with another text_max_length 16 -> 12" in caplog.text
    with pytest.raises(ValueError, match="init_from"):
        train_dit(load_config(TrainDiTConfig, None, [*cfg, "--init_from", str(first), "--model.depth", "3",
                                                     "--run_dir", str(tmp_path / "d"), "--max_steps", "1"]),
                  progress=False)


def test_mixed_size_batch_is_one_packed_loss(vae_dir):
    """A batch of mixed sizes gives the mean of the per-sample losses run alone."""
    torch.manual_seed(0)
    dit = DiT(DiTConfig(in_channels=16, hidden=32, depth=2, heads=2, text_dim=32))
    for p in dit.parameters():  # leave the zero-init: outputs must not be trivially 0
        torch.nn.init.normal_(p, std=0.05)
    text = HashTextEncoder(dim=32, max_length=16)
    latents = [torch.randn(16, 2, 4, 4), torch.randn(16, 3, 4, 6)]
    emb, mask = text.encode(["a red ball", "a blue square falls"])
    both = flow_step_loss(dit, latents, emb, mask, torch.Generator().manual_seed(3))
    # the same draws, one sample at a time: timesteps first, then each sample's noise
    g = torch.Generator().manual_seed(3)
    from spacetime import flow

    t = flow.sample_timesteps(2, generator=g)
    noise = [torch.randn(z.shape, generator=g) for z in latents]
    alone = []
    for i, z in enumerate(latents):
        xt = (1 - t[i]) * z + t[i] * noise[i]
        pred = dit(xt[None], t[i : i + 1], emb[i : i + 1], mask[i : i + 1])[0]
        alone.append(F.mse_loss(pred, noise[i] - z))
    torch.testing.assert_close(both, torch.stack(alone).mean(), atol=1e-5, rtol=1e-5)


def test_interleaved_sizes_with_per_sample_generators_match_each_sample_alone():
    """The training path: per-sample generators, sizes interleaved (A B A A): the loss regroups
    samples by size for the model, yet each keeps its own text, timestep, noise and conditions."""
    torch.manual_seed(0)
    dit = DiT(DiTConfig(in_channels=16, hidden=32, depth=2, heads=2, text_dim=32))
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    for w in (*(b.cross.proj.weight for b in dit.blocks), dit.final.linear.weight):
        torch.nn.init.normal_(w, std=1.0)  # a strong text pathway, so that mixing texts up would show
    text = HashTextEncoder(dim=32, max_length=16)
    shapes = [(2, 4, 4), (3, 4, 6), (2, 4, 4), (2, 4, 4)]
    latents = [torch.randn(16, *s) for s in shapes]
    emb, mask = text.encode(["a red ball", "a blue square falls", "two green triangles", "a yellow ball rolls left"])
    from spacetime.train import sample_generators

    both = flow_step_loss(dit, latents, emb, mask, sample_generators(5, [0, 1, 2, 3]), condition_prob=0.5)
    alone = [flow_step_loss(dit, [z], emb[i : i + 1], mask[i : i + 1], sample_generators(5, [i]), condition_prob=0.5)
             for i, z in enumerate(latents)]
    torch.testing.assert_close(both, torch.stack(alone).mean(), atol=1e-5, rtol=1e-5)
    # and a different text for one sample changes the batch's loss (texts are not mixed up silently)
    swapped = flow_step_loss(dit, latents, emb[[0, 1, 3, 2]], mask[[0, 1, 3, 2]], sample_generators(5, [0, 1, 2, 3]),
                             condition_prob=0.5)
    assert (swapped - both).abs() > 1e-4 * both, (swapped, both)  # ~10x the tolerance above


def test_folder_latents_are_cached(vae_dir, tmp_path):
    from spacetime.world.dataset import write_world

    write_world(tmp_path / "data", 3, num_frames=5, height=32, width=32)
    cfg = load_config(TrainDiTConfig, None, [*TINY_DIT, "--vae", str(vae_dir), "--data.source", "folder",
                                             "--data.path", str(tmp_path / "data"), "--data.cache_variants", "1",
                                             "--run_dir", str(tmp_path / "run")])
    vae = VideoVAE.from_pretrained(vae_dir)
    items = dit_items(cfg.data, 0, vae, vae_dir=vae_dir, cache_dir=tmp_path / "run" / "cache" / "latents")
    first = [next(items) for _ in range(3)]  # epoch 0: encoded and written
    second = [next(items) for _ in range(3)]  # epoch 1: the same windows, read back
    assert len(list((tmp_path / "run" / "cache" / "latents").glob("*.safetensors"))) == 3
    assert all("latents" in it and it["latents"].shape == (16, 2, 4, 4) for it in first + second)
    key = lambda items: sorted(float(it["latents"].sum()) for it in items)  # noqa: E731
    assert key(first) == key(second)
    # a fresh stream reads the cache instead of decoding
    items = dit_items(cfg.data, 0, vae, vae_dir=vae_dir, cache_dir=tmp_path / "run" / "cache" / "latents")
    again = [next(items) for _ in range(3)]
    assert key(again) == key(first)


def test_folder_training_keeps_caption_embeddings_on_disk(vae_dir, tmp_path):
    """Folder captions repeat every epoch: a run keeps their embeddings in run_dir/cache/text (what
    the encoder gives, keyed by encoder and caption), and a world run, whose captions never repeat,
    keeps none."""
    from safetensors.torch import load_file

    from spacetime.world.dataset import write_world

    write_world(tmp_path / "data", 3, num_frames=5, height=32, width=32)
    rows = [json.loads(line) for line in (tmp_path / "data" / "captions.jsonl").read_text().splitlines()]
    captions = [row["captions"]["medium"] for row in rows]  # one caption a clip
    (tmp_path / "data" / "captions.jsonl").write_text(
        "".join(json.dumps({"path": row["path"], "caption": c}) + "\n" for row, c in zip(rows, captions)))
    folder = [*TINY_DIT, "--vae", str(vae_dir), "--data.source", "folder", "--data.path", str(tmp_path / "data"),
              "--max_steps", "2", "--prompt_dropout", "0"]
    train_dit(load_config(TrainDiTConfig, None, [*folder, "--run_dir", str(tmp_path / "run")]), progress=False)
    cache = tmp_path / "run" / "cache" / "text"
    cached = {p.name: load_file(p)["embeddings"] for p in cache.glob("*.safetensors")}
    assert len(cached) == 3  # 2 steps x batch 3 of 3 clips: each caption encoded once, kept once
    text = HashTextEncoder(dim=32, max_length=16, cache_dir=cache)
    for caption in captions:
        emb, mask = HashTextEncoder(dim=32, max_length=16).encode([caption])
        assert torch.equal(cached[text.cache_path(caption).name], emb[0, : int(mask.sum())])
    train_dit(load_config(TrainDiTConfig, None, [*TINY_DIT, "--vae", str(vae_dir), "--max_steps", "1",
                                                 "--run_dir", str(tmp_path / "world")]), progress=False)
    assert not (tmp_path / "world" / "cache" / "text").exists()


def test_folder_items_keep_each_caption_with_its_own_video(vae_dir, tmp_path, caplog):
    """A broken video's neighbour stands in for it: the neighbour's caption must come with it. A
    video gone since the run began is skipped, cache or not; one under a latent patch at native
    size is skipped, not a crash."""
    from spacetime.data.folder import FolderVideoDataset
    from spacetime.data.streams import DataConfig
    from spacetime.data.video import write_video
    from spacetime.world.dataset import write_world

    root = write_world(tmp_path / "data", 4, num_frames=5, height=32, width=32, progress=False)
    (root / "clips" / "000001.mp4").write_bytes(b"not a video at all")
    ds = FolderVideoDataset(root, 5, 8.0, (32, 32), random_start=False)
    truth = {}
    for i, e in enumerate(ds.entries):
        if i != 1:
            truth.update({c: ds.load(i)["video"] for c in e["captions"].values()})
    data = DataConfig(source="folder", path=str(root), num_frames=5, height=32, width=32, max_bad_fraction=0.5)
    items = dit_items(data, 0, None)
    for _ in range(12):  # three epochs: the broken entry comes up in each
        it = next(items)
        assert torch.equal(it["video"], truth[it["caption"]]), it["caption"]
    # with the latent cache: a video deleted mid-run is skipped, not a FileNotFoundError
    vae = VideoVAE.from_pretrained(vae_dir)
    items = dit_items(DataConfig(source="folder", path=str(root), num_frames=5, height=32, width=32, max_bad_fraction=0.5),
                      0, vae, vae_dir=vae_dir, cache_dir=tmp_path / "cache")
    [next(items) for _ in range(4)]
    (root / "clips" / "000002.mp4").unlink()
    assert all("latents" in next(items) for _ in range(8))
    # native size: a 12x10 video is under one 16x16 patch
    small = tmp_path / "small"
    small.mkdir()
    write_video(np.zeros((5, 10, 12, 3), np.uint8), small / "tiny.mp4", fps=8)
    write_video(np.full((5, 32, 48, 3), 200, np.uint8), small / "ok.mp4", fps=8)
    (small / "captions.jsonl").write_text('{"path": "tiny.mp4", "caption": "tiny"}\n{"path": "ok.mp4", "caption": "ok"}\n')
    with caplog.at_level(logging.WARNING, logger="spacetime.data.streams"):
        items = dit_items(DataConfig(source="folder", path=str(small), num_frames=5, native_size=True), 0, None)
        got = [next(items) for _ in range(4)]
    assert {it["caption"] for it in got} == {"ok"} and all(it["video"].shape == (3, 5, 32, 48) for it in got)
    assert "tiny.mp4: 8x8 (native size, cropped) is under one 16x16 latent patch" in caplog.text


def test_training_config_refuses_values_that_would_train_wrong(vae_dir, tmp_path):
    from spacetime.train import check_training_sizes

    for key, value, msg in (("optim.lr", "inf", "optim.lr must be a finite number"),
                            ("optim.grad_clip", "-1", "optim.grad_clip must be"),  # would flip the gradients
                            ("optim.grad_clip", "0", "optim.grad_clip must be"),
                            ("optim.min_lr_ratio", "-0.5", "optim.min_lr_ratio must be in"),
                            ("optim.warmup_steps", "-5", "optim.warmup_steps must be"),
                            ("optim.betas", "[0.9, 1.5]", "optim.betas must be"),
                            ("vae", "", "vae is empty"),  # was "vae : . is not a complete model directory"
                            ("text_encoder", " ", "text_encoder is empty"),
                            ("data.path", str(tmp_path / "nope"), "no such directory")):
        extra = ["--data.source", "folder"] if key == "data.path" else []
        with pytest.raises(ValueError, match=msg):
            load_config(TrainDiTConfig, None, [*TINY_DIT, *extra, f"--{key}", value])
    vae = VideoVAE.from_pretrained(vae_dir)
    for extra, msg in ((["--data.height", "40"], r"data\.height x width 40x32 must be multiples of 16x16"),
                       (["--data.num_frames", "6"], r"data\.num_frames 6 must be 1 \+ 4k"),
                       (["--sizes", "[[5, 32, 32], [5, 32, 24]]"], r"sizes\[1\]: height x width 32x24")):
        cfg = load_config(TrainDiTConfig, None, [*TINY_DIT, *extra])
        with pytest.raises(ValueError, match=msg):
            check_training_sizes(cfg, vae)
    check_training_sizes(load_config(TrainDiTConfig, None, TINY_DIT), vae)  # the tests' own sizes pass


def test_pipeline_is_deterministic_and_refuses_bad_input(vae_dir, tmp_path, capsys, caplog):
    torch.manual_seed(0)
    dit = DiT(DiTConfig(in_channels=16, hidden=32, depth=1, heads=2, text_dim=32))
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    cfg = {"format": "spacetime-pipeline", "dit": dit.config.to_dict(), "text_encoder": "hash:32", "text_max_length": 16,
           "defaults": {"num_frames": 5, "height": 32, "width": 32, "fps": 8.0}}
    model = save_model(tmp_path / "model", cfg, dit, subdirs={"vae": vae_dir})
    pipe = SpacetimePipeline.from_pretrained(model)
    run = lambda seed: pipe("a red ball", num_inference_steps=3, generator=torch.Generator().manual_seed(seed)).frames[0]  # noqa: E731
    a, b, c = run(1), run(1), run(2)
    assert a.shape == (5, 32, 32, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    # sizes that do not fit are rounded to the nearest that does, with a warning, as diffusers does
    with caplog.at_level(logging.WARNING, logger="spacetime.pipeline"):
        assert pipe("a red ball", num_frames=6, height=40, width=20, num_inference_steps=1).frames[0].shape == (5, 48, 16, 3)
    assert "making 5 frames of 16x48" in caplog.text
    assert pipe("a red ball", num_frames=8, height=8, num_inference_steps=1).frames[0].shape == (9, 16, 32, 3)
    for bad in ({"num_frames": 0}, {"height": -16}, {"width": 3.5}):
        with pytest.raises(ValueError, match="must be a positive integer"):
            pipe("a red ball", **bad)
    (model / "COMPLETE").unlink()
    with pytest.raises(ValueError, match="no COMPLETE marker"):
        SpacetimePipeline.from_pretrained(model)
    out = str(tmp_path / "x.mp4")
    assert main(["generate", "a red ball", "--model", str(model), "--output", out]) == 1
    assert "no COMPLETE marker" in capsys.readouterr().err
    assert main(["generate", "a red ball", "--model", str(tmp_path / "nope"), "--output", out]) == 1
    assert "no such model directory" in capsys.readouterr().err
    for bad, msg in ((["--num-frames", "0"], "--num-frames must be in"), (["--guidance-scale", "nan"], "--guidance-scale"),
                     (["--size", "64x64", "--height", "32"], "not both"), (["--output", str(tmp_path / "x.gif")], "MP4")):
        args = ["generate", "a red ball", "--model", str(model), "--output", out, *bad]
        try:
            code = main(args)
        except SystemExit as e:  # argparse's own refusals
            code = e.code
        assert code in (1, 2) and msg in capsys.readouterr().err, bad
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.json").exists()


def test_world_stream_draws_the_given_sizes(vae_dir):
    from spacetime.data.streams import DataConfig

    sizes = [[5, 32, 32], [9, 32, 48], [1, 48, 16]]
    items = dit_items(DataConfig(), 0, VideoVAE.from_pretrained(vae_dir), sizes=sizes)
    shapes = {tuple(next(items)["video"].shape[1:]) for _ in range(24)}
    assert shapes == {tuple(s) for s in sizes}
    again = dit_items(DataConfig(), 5, VideoVAE.from_pretrained(vae_dir), sizes=sizes)
    items = dit_items(DataConfig(), 0, VideoVAE.from_pretrained(vae_dir), sizes=sizes)
    for _ in range(5):
        next(items)
    assert torch.equal(next(items)["video"], next(again)["video"])  # resuming at i is item i


def test_world_stream_with_loader_workers_is_the_same_stream(vae_dir):
    """GPU runs render in DataLoader workers: they must yield exactly the single-process stream."""
    from spacetime.data.streams import DataConfig

    sizes = [[5, 32, 32], [9, 32, 48]]
    one = dit_items(DataConfig(num_workers=0), 3, None, sizes=sizes)
    two = dit_items(DataConfig(num_workers=2), 3, None, sizes=sizes)
    for _ in range(7):
        a, b = next(one), next(two)
        assert (a["index"], a["caption"]) == (b["index"], b["caption"])
        assert torch.equal(a["video"], b["video"])


def test_device_is_checked():
    with pytest.raises(ValueError, match="device must be"):
        TrainDiTConfig(device="gpu")
    if not torch.cuda.is_available():
        from spacetime.train import resolve_device

        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_eval_scores_a_model(vae_dir, tmp_path, capsys):
    """`spacetime eval --model` generates from the split's prompts and scores what it made."""
    torch.manual_seed(0)
    dit = DiT(DiTConfig(in_channels=16, hidden=32, depth=1, heads=2, text_dim=32))
    cfg = {"format": "spacetime-pipeline", "dit": dit.config.to_dict(), "text_encoder": "hash:32", "text_max_length": 16,
           "defaults": {"num_frames": 5, "height": 32, "width": 32, "fps": 8.0}}
    model = save_model(tmp_path / "model", cfg, dit, subdirs={"vae": vae_dir})
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(model), "--num-clips", "2", "--num-frames", "5", "--size", "32x32",
                 "--out", str(out), "--no-report"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["source"] == "model" and len(data["clips"]) == 2
    # an untrained model draws no world objects: adherence fails, with the reasons kept
    assert data["aggregate"]["adherence"]["mean"] < 0.5
    assert all(c["metrics"]["adherence"]["reasons"] for c in data["clips"])
    assert len(list((out / "videos").glob("*.mp4"))) == 2


def test_condition_masks_cover_the_prompting_modes():
    from spacetime.flow import draw_condition_masks

    g = torch.Generator().manual_seed(0)
    masks = draw_condition_masks([5] * 400 + [1, 2], 1.0, generator=g)
    kinds = set()
    for m in masks[:400]:
        assert m.shape == (5,) and 1 <= m.sum() <= 4  # something given, something to generate
        kinds.add("first" if m.tolist() == [True, False, False, False, False] else
                  "ends" if m[0] and m[-1] else "prefix" if m[0] else "suffix")
    assert kinds == {"first", "prefix", "suffix", "ends"}
    assert masks[400] is None and masks[401].tolist() == [True, False]
    assert all(m is None for m in draw_condition_masks([5] * 20, 0.0))
    # the generator advances the same whatever p is
    a, b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    draw_condition_masks([5, 9], 0.0, generator=a), draw_condition_masks([5, 9], 0.7, generator=b)
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))


@pytest.mark.parametrize("sizes", [[(5, 2, 2)] * 3, [(5, 2, 2), (3, 2, 4), (4, 4, 2)]])
def test_conditioned_frames_are_clean_inputs_and_left_out_of_the_loss(sizes):
    """The model sees given frames clean and is told which they are; whatever it predicts there
    (NaN here) does not reach the loss."""
    seen = {}

    class Probe(torch.nn.Module):
        config = DiTConfig(in_channels=4, hidden=8, depth=1, heads=1)

        def _out(self, x, cond):
            y = torch.zeros_like(x)
            return torch.where(cond[None, :, None, None], torch.nan, y)

        def forward(self, x, t, text, mask, cond_mask=None):
            if isinstance(x, list):  # packed, as DiT.forward dispatches it
                return self.forward_packed(x, t, text, mask, cond_mask)
            seen["x"], seen["cond"] = list(x), list(cond_mask)
            return torch.stack([self._out(xi, c) for xi, c in zip(x, cond_mask)])

        def forward_packed(self, xs, t, text, mask, cond_masks=None):
            seen["x"], seen["cond"] = xs, cond_masks
            return [self._out(xi, c) for xi, c in zip(xs, cond_masks)]

    g = torch.Generator().manual_seed(0)
    latents = [torch.randn(4, *s, generator=g) for s in sizes]
    loss = flow_step_loss(Probe(), latents, torch.zeros(len(sizes), 2, 8), torch.ones(len(sizes), 2, dtype=torch.bool),
                          torch.Generator().manual_seed(3), condition_prob=1.0)
    assert torch.isfinite(loss) and loss > 0
    for z, x, c in zip(latents, seen["x"], seen["cond"]):
        assert c.any() and not c.all()
        assert torch.equal(x[:, c], z[:, c]) and not torch.equal(x[:, ~c], z[:, ~c])


def test_folder_run_resumed_mid_epoch_with_accumulation_is_bit_identical(vae_dir, tmp_path):
    """Folder data (5 videos, so epochs end mid-step), batch 2 x 2 micro-batches: 3 straight steps
    vs 1 step + resume (position 4, inside epoch 0) + 2 — everything equal bit for bit."""
    from safetensors.torch import load_file

    from spacetime.world.dataset import write_world

    write_world(tmp_path / "data", 5, num_frames=5, height=32, width=32)
    cfg = [*TINY_DIT, "--vae", str(vae_dir), "--data.source", "folder", "--data.path", str(tmp_path / "data"),
           "--batch_size", "2", "--grad_accum", "2", "--save_every", "1"]
    train_dit(load_config(TrainDiTConfig, None, [*cfg, "--max_steps", "3", "--run_dir", str(tmp_path / "a")]),
              progress=False)
    train_dit(load_config(TrainDiTConfig, None, [*cfg, "--max_steps", "1", "--run_dir", str(tmp_path / "b")]),
              progress=False)
    assert json.loads((tmp_path / "b" / "checkpoints" / "step-00000001" / "state.json").read_text())["position"] == 4
    train_dit(load_config(TrainDiTConfig, None, [*cfg, "--max_steps", "3", "--run_dir", str(tmp_path / "b")]),
              progress=False)
    a, b = (sorted((tmp_path / r / "checkpoints").glob("step-*"))[-1] for r in ("a", "b"))
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):
        x, y = load_file(a / name), load_file(b / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
    losses = [[json.loads(line)["loss"] for line in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
              for r in ("a", "b")]
    assert losses[0] == losses[1]


def test_a_video_named_twice_is_two_samples_with_the_latent_cache_or_without(vae_dir, tmp_path, caplog):
    """Two captions entries for one video draw two clip windows; the cache keyed both by the video
    alone, so one entry trained on the other's latents (and ranks raced to write the one file)."""
    from spacetime.data.streams import DataConfig
    from spacetime.world.dataset import write_world

    root = write_world(tmp_path / "data", 2, num_frames=17, height=32, width=32, progress=False)
    paths = [json.loads(line)["path"] for line in (root / "captions.jsonl").read_text().splitlines()]
    (root / "captions.jsonl").write_text("".join(json.dumps({"path": p, "caption": c}) + "\n" for p, c in
                                                 ((paths[0], "first"), (paths[1], "second"), (paths[0], "third"))))
    data = DataConfig(source="folder", path=str(root), num_frames=5, height=32, width=32)
    vae = VideoVAE.from_pretrained(vae_dir)
    with caplog.at_level(logging.WARNING, logger="spacetime.data.folder"):
        plain = dit_items(data, 0, None)
    assert "1 videos are named by more than one entry" in caplog.text and "lines 1, 3" in caplog.text
    expected = {}
    for _ in range(3):  # one epoch, decoded and encoded here
        it = next(plain)
        expected[it["caption"]] = encode_videos(vae, [it["video"]])[0]
    assert not torch.equal(expected["first"], expected["third"])  # two windows of one video
    for _ in range(2):  # the first stream writes the cache, the second reads it back
        cached = dit_items(data, 0, vae, vae_dir=vae_dir, cache_dir=tmp_path / "cache")
        for _ in range(3):
            it = next(cached)
            assert torch.equal(it["latents"], expected[it["caption"]]), it["caption"]
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 3


def test_a_resume_with_another_vae_or_text_encoder_is_refused_or_named(vae_dir, tmp_path, caplog, capsys):
    """Resuming with another --vae, --text_encoder or --text_max_length went on in silence. Another
    VAE's weights are another latent space: refused, before anything is written. The same weights
    elsewhere are fine; other text settings are named in a warning."""
    import shutil

    run = tmp_path / "r"
    args = ["train", *TINY_DIT, "--vae", str(vae_dir), "--run_dir", str(run)]
    assert main([*args, "--max_steps", "1"]) == 0
    config = (run / "config.json").read_text()
    torch.manual_seed(1)
    other = VideoVAE(PRESETS["tiny"])
    other_dir = save_model(tmp_path / "other", {"model": other.config.to_dict()}, other)
    assert main([*args, "--max_steps", "2", "--vae", str(other_dir)]) == 1
    err = capsys.readouterr().err
    assert "was trained on another VAE" in err and str(vae_dir) in err and str(other_dir) in err
    assert (run / "config.json").read_text() == config and len(list((run / "checkpoints").iterdir())) == 1
    shutil.copytree(vae_dir, tmp_path / "moved")  # the same weights elsewhere: the same latent space
    with caplog.at_level(logging.WARNING, logger="spacetime.train"):
        assert main([*args, "--max_steps", "2", "--vae", str(tmp_path / "moved")]) == 0
    assert "with another" not in caplog.text and "-> \"" not in caplog.text  # the VAE's path: max_steps alone
    with caplog.at_level(logging.WARNING, logger="spacetime.train"):
        assert main([*args, "--max_steps", "3", "--vae", str(tmp_path / "moved"), "--text_max_length", "8",
                     "--text_encoder", "hash:032"]) == 0  # (as another encoder of this width would be)
    assert "text_encoder 'hash:32' -> 'hash:032'" in caplog.text and "text_max_length 16 -> 8" in caplog.text


def test_a_failed_start_leaves_no_run_directory_and_keeps_the_config(vae_dir, tmp_path, capsys):
    """A start that failed its checks (VAE, text encoder width, init_from, captions file) rewrote
    config.json (an existing run's then named the missing VAE) or left a directory with only it."""
    run = tmp_path / "r"
    args = ["train", *TINY_DIT, "--vae", str(vae_dir), "--run_dir", str(run)]
    assert main([*args, "--max_steps", "1"]) == 0
    config = (run / "config.json").read_text()
    assert main([*args, "--max_steps", "10", "--vae", str(tmp_path / "nope")]) == 1
    assert (run / "config.json").read_text() == config
    fresh = ["train", *TINY_DIT, "--vae", str(vae_dir), "--run_dir", str(tmp_path / "fresh")]
    (tmp_path / "empty").mkdir()
    for extra, message in ((["--vae", str(tmp_path / "nope")], "nope"),
                           (["--model.text_dim", "16"], "text_dim is 16"),
                           (["--init_from", str(tmp_path / "nope")], "init_from"),
                           (["--data.source", "folder", "--data.path", str(tmp_path / "empty")], "no captions file")):
        assert main([*fresh, *extra]) == 1
        assert message in capsys.readouterr().err and not (tmp_path / "fresh").exists(), extra


def test_gpu_training_leaves_cudnn_attention_out_cpu_training_touches_nothing():
    # packed batches change shape every step; cuDNN's attention rebuilds its graph per shape
    from spacetime.train import attention_for_changing_shapes

    was = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        attention_for_changing_shapes(torch.device("cpu"))
        assert torch.backends.cuda.cudnn_sdp_enabled()
        attention_for_changing_shapes(torch.device("cuda"))
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)


def test_a_checkpoints_ema_exports_as_the_model_training_ships(vae_dir, tmp_path, monkeypatch, bench_module):
    """bench/default_model.py export: a kept checkpoint's EMA as a model directory, which at the last
    step is the model `spacetime train` wrote, with the sampler defaults given."""
    run = train_dit(load_config(TrainDiTConfig, None, [*TINY_DIT, "--vae", str(vae_dir), "--max_steps", "2",
                                                     "--save_every", "2", "--run_dir", str(tmp_path / "run")]),
                    progress=False)
    out = tmp_path / "exported"
    monkeypatch.setattr("sys.argv", ["default_model.py", "export", "--checkpoint",
                                     str(tmp_path / "run" / "checkpoints" / "step-00000002"), "--out", str(out),
                                     "--guidance-interval", "0.3", "1", "--shift", "5"])
    bench_module("default_model").main()
    exported, shipped = SpacetimePipeline.from_pretrained(out), SpacetimePipeline.from_pretrained(run)
    a, b = exported.dit.state_dict(), shipped.dit.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert exported.config["defaults"]["shift"] == 5.0 and exported.config["defaults"]["guidance_interval"] == [0.3, 1.0]
    assert exported.config["defaults"]["num_frames"] == 5 and exported.dit.config == shipped.dit.config


def test_sampling_and_timestep_values_are_checked_before_the_run_starts(vae_dir, tmp_path, capsys):
    """A negative sample_every sampled at every step (step % -1 == 0); a guidance_scale the
    pipeline refuses stopped the run at its first samples, hours in; a NaN logit_std was
    flow's "std must be > 0" after config.json was written; a size of 0 was the renderer's
    "height must be a positive integer", naming no key; `--vae` at a text-to-video model folder
    was a KeyError traceback."""
    run = tmp_path / "r"
    args = ["train", *TINY_DIT, "--vae", str(vae_dir), "--max_steps", "1", "--run_dir", str(run)]
    for extra, message in ((["--sample_every", "-1"], "sample_every must be >= 0"),
                           (["--sample_every", "1", "--guidance_scale", "-1"], "guidance_scale (of the samples)"),
                           (["--logit_std", "nan"], "logit_std a finite number > 0"),
                           (["--logit_mean", "inf"], "logit_mean must be finite"),
                           (["--sizes", "[[1,0,32]]"], "sizes[0]: frames, height and width must be >= 1"),
                           (["--seed", "-1"], "seed must be in [0, 2**40]")):
        assert main([*args, *extra]) == 1
        assert message in capsys.readouterr().err, extra
        assert not run.exists(), extra
    assert main([*args, "--sample_every", "0"]) == 0  # a model folder to point --vae at
    assert main([*args, "--run_dir", str(tmp_path / "r2"), "--vae", str(run / "model")]) == 1
    assert f"vae {run / 'model'}: a text-to-video model folder, not a VAE" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_a_resumed_dit_trains_with_the_configs_optimizer_values(vae_dir, tmp_path, caplog):
    """The DiT's resume loaded the saved param_groups over the config's weight_decay and betas."""
    from spacetime.checkpoint import latest_checkpoint, read_optimizer_state

    run = tmp_path / "r"
    args = ["train", *TINY_DIT, "--vae", str(vae_dir), "--run_dir", str(run)]
    assert main([*args, "--max_steps", "1"]) == 0
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main([*args, "--max_steps", "2", "--optim.weight_decay", "0.1"]) == 0
    assert "optim.weight_decay 0.0 -> 0.1" in caplog.text
    assert read_optimizer_state(latest_checkpoint(run))["param_groups"][0]["weight_decay"] == 0.1


def test_a_stop_at_a_scheduled_save_saves_that_step_once(vae_dir, tmp_path, monkeypatch, capsys):
    """Ctrl-C read at a step that save_every saves: that step was saved twice, the second save
    removing the complete first before its own was renamed in."""
    import signal

    import spacetime.train as train_module

    real_save, saved = train_module.save_checkpoint, []
    real_step, calls = torch.optim.AdamW.step, {"n": 0}

    def step_then_ctrl_c(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            signal.raise_signal(signal.SIGINT)  # read with the next step's flags: a stop after step 2
        return real_step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_ctrl_c)
    monkeypatch.setattr(train_module, "save_checkpoint", lambda run_dir, step, **kw: (saved.append(step),
                                                                                      real_save(run_dir, step, **kw))[1])
    args = ["train", *TINY_DIT, "--vae", str(vae_dir), "--run_dir", str(tmp_path / "r"), "--save_every", "2"]
    assert main([*args, "--max_steps", "4"]) == 130
    assert "stopped by Ctrl-C at step 2" in capsys.readouterr().err and saved == [2]


def test_a_world_trained_model_asks_for_prompt_completion_a_folder_trained_one_does_not():
    """A model trained on the world's captions (which always name each object's colour) drew an
    empty scene for "a ball falls": its config asks `generate` to complete such prompts; a model
    trained on a user's own captions takes prompts as typed."""
    from spacetime.train import pipeline_config

    run = {"model": {}, "text_encoder": "minilm", "text_max_length": 64,
           "data": {"source": "world", "num_frames": 17, "height": 64, "width": 64, "fps": 8.0}}
    assert pipeline_config(run)["defaults"]["complete_prompt"] is True
    run["data"]["source"] = "folder"
    assert "complete_prompt" not in pipeline_config(run)["defaults"]
