"""VAE training: configs, checkpoints (bit-exact, never half-loaded), resume, and learning."""

import json
import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spacetime.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from spacetime.cli import main
from spacetime.config import load_config
from spacetime.data.video import frames_to_tensor
from spacetime.train import TrainVAEConfig, lr_at, train_vae
from spacetime.vae import VAEConfig, VideoVAE, kl_loss
from spacetime.world.clip import make_clip

TINY = ["--model.channels", "[8,8,8]", "--data.num_frames", "5", "--data.height", "16", "--data.width", "16",
        "--batch_size", "2", "--log_every", "1", "--threads", "1", "--latent_stats_batches", "1"]


def test_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  channels: [16, 32]\noptim:\n  lr: 1.0e-3\nmax_steps: 10\n")
    cfg = load_config(TrainVAEConfig, path, ["--optim.lr", "3e-4", "--max_steps=20", "--data.source", "world"])
    assert cfg.model.channels == (16, 32) and cfg.optim.lr == pytest.approx(3e-4) and cfg.max_steps == 20
    with pytest.raises(ValueError, match="unknown config key optim.lrr"):
        load_config(TrainVAEConfig, path, ["--optim.lrr", "1"])
    with pytest.raises(ValueError, match="max_steps: expected int"):
        load_config(TrainVAEConfig, None, ["--max_steps", "many"])
    with pytest.raises(ValueError, match="does not exist"):
        load_config(TrainVAEConfig, tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="data.path is required"):
        load_config(TrainVAEConfig, None, ["--data.source", "folder"])


def test_a_full_disk_while_saving_is_a_message_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    import spacetime.checkpoint as checkpoint

    run = tmp_path / "r"
    assert main(["train-vae", *TINY, "--run_dir", str(run), "--max_steps", "1"]) == 0
    real = checkpoint.save_file

    def full(tensors, path, *a, **kw):  # what safetensors raises when the disk fills
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              '"No space left on device" })')

    monkeypatch.setattr(checkpoint, "save_file", full)
    assert main(["train-vae", *TINY, "--run_dir", str(run), "--max_steps", "2"]) == 1  # was a traceback
    assert "cannot write the checkpoint" in capsys.readouterr().err
    monkeypatch.setattr(checkpoint, "save_file", real)
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000001"]  # no half-written one left


def test_nested_overrides_keep_the_parents_defaults(tmp_path):
    """One optim key given must not reset the others to OptimConfig's own defaults: the DiT's
    default lr is 3e-4 (OptimConfig's 1e-3 trained it 3x too fast, silently)."""
    from spacetime.train import TrainDiTConfig

    default = load_config(TrainDiTConfig).optim
    over = load_config(TrainDiTConfig, None, ["--optim.grad_clip", "0.5"]).optim
    assert (over.lr, over.warmup_steps, over.grad_clip) == (default.lr, default.warmup_steps, 0.5) == (3e-4, 200, 0.5)
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  warmup_steps: 1\n")
    assert load_config(TrainDiTConfig, path).optim.lr == 3e-4


@pytest.mark.parametrize("key, value, message", [
    ("data.num_workers", "-1", "data.num_workers must be >= 0"),  # was torch's DataLoader error, later
    ("data.fps", "0", "data.fps must be in"),
    ("data.fps", "nan", "data.fps must be in"),
    ("data.height", "0", "data.height must be >= 1"),
])
def test_data_values_are_named_when_wrong(key, value, message):
    with pytest.raises(ValueError, match=message):
        load_config(TrainVAEConfig, None, [f"--{key}", value])


def test_command_line_values_as_people_type_them(tmp_path):
    from spacetime.train import TrainDiTConfig

    cfg = load_config(TrainDiTConfig, None, ["--max_steps", "1e3", "--grad_checkpointing", "1"])
    assert cfg.max_steps == 1000 and cfg.grad_checkpointing is True
    assert load_config(TrainDiTConfig, None, ["--grad_checkpointing", "0"]).grad_checkpointing is False
    with pytest.raises(ValueError, match="max_steps: expected an integer, got 1.5"):
        load_config(TrainVAEConfig, None, ["--max_steps", "1.5"])
    path = tmp_path / "c.yaml"
    path.write_text("max_steps: 10\n")
    with pytest.raises(ValueError, match=r"unknown config key optim.lrr.*\(on the command line\)"):
        load_config(TrainVAEConfig, path, ["--optim.lrr", "1"])  # not "(in c.yaml)": the file is fine
    path.write_text("max_stepz: 10\n")
    with pytest.raises(ValueError, match=r"unknown config key max_stepz.*\(in .*c.yaml\)"):
        load_config(TrainVAEConfig, path, ["--max_steps", "1"])
    with pytest.raises(ValueError, match="is a directory; give a YAML file"):
        load_config(TrainVAEConfig, tmp_path)
    path.write_text("max_steps: 10\noptim:\n  lr: 1.0e-4\n  warmup_steps: 5\n  lr: 1.0e-3\n")
    with pytest.raises(ValueError, match=r"not valid YAML \(line 5, column 3: the key 'lr' is given twice\)"):
        load_config(TrainVAEConfig, path)  # YAML kept the last lr, silently


def test_a_config_file_can_start_from_another(tmp_path):
    from spacetime.train import TrainDiTConfig

    (tmp_path / "parent.yaml").write_text("max_steps: 10\noptim:\n  lr: 1.0e-4\n  warmup_steps: 5\n"
                                          "sizes:\n  - [17, 64, 64]\n  - [9, 64, 96]\n")
    (tmp_path / "exp").mkdir()
    child = tmp_path / "exp" / "child.yaml"
    child.write_text("base: ../parent.yaml\noptim:\n  lr: 3.0e-5\nsizes:\n  - [1, 64, 64]\n")
    cfg = load_config(TrainDiTConfig, child, ["--max_steps", "20"])
    # the child's keys replace the parent's, mappings key by key, lists whole; the command line last
    assert cfg.optim.lr == 3e-5 and cfg.optim.warmup_steps == 5 and cfg.max_steps == 20
    assert [tuple(s) for s in cfg.sizes] == [(1, 64, 64)]
    grandchild = tmp_path / "grandchild.yaml"
    grandchild.write_text("base: exp/child.yaml\nbatch_size: 3\n")
    cfg = load_config(TrainDiTConfig, grandchild)
    assert (cfg.batch_size, cfg.max_steps, cfg.optim.lr) == (3, 10, 3e-5)
    (tmp_path / "parent.yaml").write_text("max_stepz: 10\n")
    with pytest.raises(ValueError, match=r"unknown config key max_stepz.*\(in .*grandchild.yaml or the files it is "
                                         r"based on: .*child.yaml, .*parent.yaml\)"):
        load_config(TrainDiTConfig, grandchild)
    (tmp_path / "parent.yaml").write_text("base: grandchild.yaml\n")
    with pytest.raises(ValueError, match=r"in a loop: .*grandchild.yaml -> .*child.yaml -> .*parent.yaml -> .*grandchild.yaml"):
        load_config(TrainDiTConfig, grandchild)
    child.write_text("base: ../missing.yaml\n")
    with pytest.raises(ValueError, match=r"missing.yaml \(the base of .*child.yaml\) does not exist"):
        load_config(TrainDiTConfig, child)
    child.write_text("base: [a.yaml]\n")
    with pytest.raises(ValueError, match=r"child.yaml: base must be the path of another config file"):
        load_config(TrainDiTConfig, child)


def test_every_shipped_config_loads(tmp_path):
    from pathlib import Path

    from spacetime.train import TrainDiTConfig

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
    assert len(configs) >= 9
    for path in configs:
        cfg = load_config(TrainVAEConfig if path.name.startswith("vae-") else TrainDiTConfig, path)
        assert cfg.run_dir.startswith("runs/"), path
        assert path.read_text().startswith("# "), f"{path}: a config opens with what it is for and its command"
    # an experiment's file holds only its differences; what it inherits is its base's
    stage6 = load_config(TrainDiTConfig, Path(__file__).parent.parent / "configs" / "dit-world-stage6.yaml")
    assert (stage6.model.hidden, stage6.data.seed, stage6.grad_accum, stage6.optim.lr) == (384, 6, 8, 1.5e-4)


def test_cli_reports_bad_config_keys(tmp_path, capsys):
    assert main(["train-vae", "--run_dir", str(tmp_path / "r"), "--bogus", "1"]) == 1
    assert "unknown config key bogus" in capsys.readouterr().err


def test_lr_schedule():
    cfg = TrainVAEConfig().optim
    assert lr_at(0, cfg, 1000) == pytest.approx(cfg.lr / cfg.warmup_steps)
    assert lr_at(cfg.warmup_steps, cfg, 1000) == pytest.approx(cfg.lr)
    assert lr_at(1000, cfg, 1000) == pytest.approx(cfg.lr * cfg.min_lr_ratio)


def _trained_pair():
    torch.manual_seed(0)
    model = VideoVAE(VAEConfig(channels=(8, 8, 8)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    for _ in range(3):
        recon, mean, logvar = model(x)
        loss = F.mse_loss(recon, x) + kl_loss(mean, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model, opt = _trained_pair()
    torch.manual_seed(123)
    path = save_checkpoint(tmp_path, 3, config={"a": 1}, model=model, optimizer=opt, state={"position": 6})
    expected_draw = torch.rand(4)
    fresh = VideoVAE(VAEConfig(channels=(8, 8, 8)))
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    torch.manual_seed(999)
    state = load_checkpoint(path, model=fresh, optimizer=fresh_opt)
    assert state["step"] == 3 and state["position"] == 6
    assert torch.equal(torch.rand(4), expected_draw)  # RNG restored
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    sa, sb = opt.state_dict(), fresh_opt.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i in sa["state"]:
        for k in sa["state"][i]:
            assert torch.equal(torch.as_tensor(sa["state"][i][k]), torch.as_tensor(sb["state"][i][k]))


def test_incomplete_checkpoint_is_never_loaded(tmp_path):
    model, opt = _trained_pair()
    first = save_checkpoint(tmp_path, 1, config={}, model=model, optimizer=opt)
    second = save_checkpoint(tmp_path, 2, config={}, model=model, optimizer=opt)
    assert latest_checkpoint(tmp_path) == second
    (second / "COMPLETE").unlink()  # as if the process died before the marker
    assert latest_checkpoint(tmp_path) == first
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        load_checkpoint(second, model=model)
    (tmp_path / "checkpoints" / ".tmp-step-00000003-x").mkdir()  # a crashed save's temp dir
    assert latest_checkpoint(tmp_path) == first
    for step in (3, 4, 5):
        save_checkpoint(tmp_path, step, config={}, model=model, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*") if (p / "COMPLETE").exists())
    assert names == ["step-00000004", "step-00000005"]


def test_training_resumes_to_the_same_weights(tmp_path):
    straight = train_vae(load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "6", "--run_dir", str(tmp_path / "a")]),
                         progress=False)
    cfg_b = [*TINY, "--run_dir", str(tmp_path / "b"), "--save_every", "3"]
    train_vae(load_config(TrainVAEConfig, None, [*cfg_b, "--max_steps", "3"]), progress=False)
    resumed = train_vae(load_config(TrainVAEConfig, None, [*cfg_b, "--max_steps", "6"]), progress=False)
    a, b = VideoVAE.from_pretrained(straight), VideoVAE.from_pretrained(resumed)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if not k.startswith("latent_"):
            assert torch.equal(x, y), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="COMPLETE"):
        VideoVAE.from_pretrained(tmp_path / "b")


def test_tiny_vae_overfits_one_clip_within_a_minute():
    torch.manual_seed(0)
    x = frames_to_tensor(make_clip(3, num_frames=9, height=32, width=32).frames)[None]
    model = VideoVAE(VAEConfig(channels=(16, 32, 32)))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.99))
    start, best = time.perf_counter(), 0.0
    while time.perf_counter() - start < 60 and best < 25.5:
        for _ in range(50):
            mean, logvar = model.encode_dist(x)
            recon = model.decode_raw(mean)
            loss = (recon - x).abs().mean() + F.mse_loss(recon, x) + 1e-6 * kl_loss(mean, logvar)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.eval()
        best = max(best, 10 * math.log10(4 / F.mse_loss(model.decode(model.encode(x)), x).item()))
        model.train()
    assert best > 25, f"PSNR {best:.1f} dB after {time.perf_counter() - start:.0f} s"


def test_train_vae_on_a_folder_of_videos(tmp_path, caplog):
    from spacetime.world.dataset import write_world

    data = write_world(tmp_path / "videos", 3, num_frames=5, height=16, width=16, progress=False)
    captions = next(p for p in data.iterdir() if p.name.startswith("captions"))
    first = captions.read_text().splitlines()[1 if captions.suffix == ".csv" else 0]
    with captions.open("a") as f:  # an entry naming a missing file: warned once, not again for the latent statistics
        f.write(first.replace(".mp4", "-gone.mp4", 1) + "\n")
    with caplog.at_level("WARNING", logger="spacetime.data.folder"):
        out = train_vae(load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "2", "--run_dir", str(tmp_path / "r"),
                                                           "--data.source", "folder", "--data.path", str(data)]),
                        progress=False)
    assert len([r for r in caplog.records if "gone" in r.getMessage() or "missing" in r.getMessage()]) == 1, caplog.text
    vae = VideoVAE.from_pretrained(out)
    assert vae.encode(torch.zeros(1, 3, 5, 16, 16)).shape == (1, 16, 2, 2, 2)
    assert (vae.latent_std > 0).all() and not torch.equal(vae.latent_std, torch.ones(16))


def test_bf16_autocast_trains_and_bad_precision_is_named(tmp_path):
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16', got 'fp16'"):
        load_config(TrainVAEConfig, None, ["--precision", "fp16"])
    cfg = load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "30", "--precision", "bf16",
                                             "--optim.warmup_steps", "5", "--run_dir", str(tmp_path / "r")])
    train_vae(cfg, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert all(math.isfinite(v) for v in losses)
    # the posterior stays float32 under autocast (the KL of a bf16 logvar near -8 is too coarse)
    model = VideoVAE(VAEConfig(channels=(8, 8, 8)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, mean, logvar = model(torch.zeros(1, 3, 5, 16, 16))
    assert mean.dtype == logvar.dtype == torch.float32
    assert sum(losses[-5:]) < sum(losses[:5])


def test_gradient_weight_adds_the_edge_term_and_bad_weights_are_named(tmp_path):
    for key, value in (("--gradient_weight", "-1"), ("--l1_weight", "nan"), ("--kl_weight", "-0.5")):
        with pytest.raises(ValueError, match=f"{key[2:]} must be a finite number >= 0"):
            load_config(TrainVAEConfig, None, [key, value])
    runs = {}
    for w in ("0", "2"):
        cfg = load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "2", "--log_every", "1", "--gradient_weight", w,
                                                 "--run_dir", str(tmp_path / w)])
        train_vae(cfg, progress=False)
        runs[w] = [json.loads(line) for line in (tmp_path / w / "metrics.jsonl").read_text().splitlines()]
    first0, first2 = runs["0"][0], runs["2"][0]
    assert first0["gradient"] == 0  # not computed without its weight
    # the same model, batch and noise at step 1: the loss differs by exactly the weighted term
    assert first2["l1"] == pytest.approx(first0["l1"]) and first2["gradient"] > 0
    assert first2["loss"] == pytest.approx(first0["loss"] + 2 * first2["gradient"], rel=1e-5)


def test_decoder_fine_tuning_keeps_the_latent_space(tmp_path):
    """init_from + freeze_encoder: the encoder and the latent statistics stay bit-exact (a DiT
    trained on them keeps working), the decoder trains."""
    base = train_vae(load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "3", "--run_dir", str(tmp_path / "a")]),
                     progress=False)
    tuned = train_vae(load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "4", "--run_dir", str(tmp_path / "b"),
                                                         "--init_from", str(base), "--freeze_encoder", "true"]),
                      progress=False)
    a, b = VideoVAE.from_pretrained(base).state_dict(), VideoVAE.from_pretrained(tuned).state_dict()
    for k in a:
        if k.startswith(("encoder.", "latent_")):
            assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("decoder."))
    # resumed with freeze_encoder turned off: the optimizer's state is the decoder's alone (was torch's
    # "parameter group that doesn't match", naming neither key nor checkpoint)
    with pytest.raises(ValueError, match="trained with freeze_encoder: true, this run has false"):
        train_vae(load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "5", "--run_dir", str(tmp_path / "b"),
                                                     "--init_from", str(base)]), progress=False)
    with pytest.raises(ValueError, match="freeze_encoder needs init_from"):
        load_config(TrainVAEConfig, None, ["--freeze_encoder", "true"])
    with pytest.raises(ValueError, match="differs from model"):
        train_vae(load_config(TrainVAEConfig, None, [*TINY, "--model.channels", "[8,8,16]", "--max_steps", "1",
                                                     "--run_dir", str(tmp_path / "c"), "--init_from", str(base)]),
                  progress=False)


def test_resume_path_is_checked(tmp_path, capsys):
    args = ["train-vae", *TINY, "--max_steps", "2", "--run_dir", str(tmp_path / "r")]
    assert main([*args, "--resume", str(tmp_path / "missing")]) == 1
    assert "no such checkpoint directory" in capsys.readouterr().err
    assert main(args) == 0
    last = latest_checkpoint(tmp_path / "r")
    assert main([*args, "--max_steps", "3", "--resume", str(last)]) == 0
    assert json.loads((latest_checkpoint(tmp_path / "r") / "state.json").read_text())["step"] == 3


def test_a_metrics_line_cut_short_by_a_kill_does_not_stop_the_restart(tmp_path):
    args = ["train-vae", *TINY, "--max_steps", "2", "--run_dir", str(tmp_path / "r")]
    assert main(args) == 0
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # SIGKILL in the middle of a write
    assert main([*args[:-4], "--max_steps", "3", "--run_dir", str(tmp_path / "r")]) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_world_batches_with_loader_workers_are_the_stream_in_order(tmp_path):
    """Each loader worker built whole batches from its own shard: a run read samples [0,2] [1,3]
    [4,6], and one resumed at 2 read [2,4] [3,5] (skipping and repeating). Batch k is samples
    start + 2k, start + 2k + 1 now, with workers or without; a resumed run equals a straight one."""
    from spacetime.data.streams import DataConfig, video_batches
    from spacetime.world.dataset import WorldDataset

    ds = WorldDataset(0, "train", 5, 16, 16, 8.0)
    clips = [ds.sample(i)["video"] for i in range(8)]
    for workers, start in ((0, 0), (2, 0), (2, 2), (2, 3)):
        batches = video_batches(DataConfig(num_frames=5, height=16, width=16, num_workers=workers), 2, start)
        for k in range(start, 7, 2):
            assert torch.equal(next(batches), torch.stack(clips[k : k + 2])), (workers, start, k)
    args = [*TINY, "--save_every", "2", "--data.num_workers", "2"]
    train_vae(load_config(TrainVAEConfig, None, [*args, "--max_steps", "4", "--run_dir", str(tmp_path / "a")]),
              progress=False)
    train_vae(load_config(TrainVAEConfig, None, [*args, "--max_steps", "2", "--run_dir", str(tmp_path / "b")]),
              progress=False)
    train_vae(load_config(TrainVAEConfig, None, [*args, "--max_steps", "4", "--run_dir", str(tmp_path / "b")]),
              progress=False)
    train_vae(load_config(TrainVAEConfig, None, [*args[:-2], "--max_steps", "4", "--run_dir", str(tmp_path / "c")]),
              progress=False)  # no workers
    weights = [VideoVAE.from_pretrained(tmp_path / r / "model").state_dict() for r in "abc"]
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]) and torch.equal(weights[0][k], weights[2][k]), k


def test_folder_batches_draw_other_clip_windows_each_epoch(tmp_path):
    """The VAE's folder stream never moved the dataset to the next epoch: the same window of each
    video, every epoch. Sample i is video perm_e[i % n]'s window of epoch e = i // n."""
    import numpy as np

    from spacetime.data.folder import FolderVideoDataset
    from spacetime.data.streams import DataConfig, video_batches
    from spacetime.world.dataset import write_world

    root = write_world(tmp_path / "videos", 3, num_frames=17, height=16, width=16, progress=False)
    batches = video_batches(DataConfig(source="folder", path=str(root), num_frames=5, height=16, width=16), 1, 0)
    ds = FolderVideoDataset(root, 5, 8.0, (16, 16), seed=0)
    seen = {}
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for index in np.random.default_rng([0, epoch]).permutation(3):
            seen[epoch, int(index)] = next(batches)[0]
            assert torch.equal(seen[epoch, int(index)], ds[int(index)]["video"]), (epoch, index)
    assert all(not torch.equal(seen[0, i], seen[1, i]) for i in range(3))  # other windows in epoch 1


def test_a_failed_start_leaves_the_run_as_it_was(tmp_path, capsys):
    """A start that fails its checks wrote config.json first (an existing run's then said what the
    failed command asked for) and left a new run directory holding only that file."""
    fresh = tmp_path / "fresh"
    assert main(["train-vae", *TINY, "--run_dir", str(fresh), "--init_from", str(tmp_path / "nope")]) == 1
    assert not fresh.exists()
    (tmp_path / "empty").mkdir()
    assert main(["train-vae", *TINY, "--run_dir", str(fresh), "--data.source", "folder", "--data.path",
                 str(tmp_path / "empty")]) == 1
    assert "no captions file" in capsys.readouterr().err and not fresh.exists()
    run = tmp_path / "r"
    assert main(["train-vae", *TINY, "--max_steps", "1", "--run_dir", str(run)]) == 0
    config = (run / "config.json").read_text()
    assert main(["train-vae", *TINY, "--max_steps", "10", "--run_dir", str(run), "--init_from",
                 str(tmp_path / "nope")]) == 1
    assert (run / "config.json").read_text() == config


def test_latent_noise_decodes_each_clip_at_its_own_level_in_latent_spreads(monkeypatch):
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(channels=(8, 8, 8)))
    vae.latent_std.copy_(torch.linspace(0.5, 3.0, vae.config.latent_channels))
    video = torch.rand(6, 3, 5, 32, 32) * 2 - 1
    seen = []
    monkeypatch.setattr(vae, "decode_raw", lambda z, cache=None: seen.append(z) or torch.zeros(()))
    vae(video, generator=torch.Generator().manual_seed(1))
    vae(video, generator=torch.Generator().manual_seed(1), latent_noise=0.5)
    clean, noisy = seen
    d = (noisy - clean) / vae.latent_std.view(1, -1, 1, 1, 1)  # the added noise, in latent spreads
    level = d.flatten(1).std(dim=1)  # each clip's noise level (512 draws per clip)
    assert (level < 0.5 * 1.15).all() and level.max() - level.min() > 0.05  # in [0, 0.5], one per clip
    unit = d / level.view(-1, 1, 1, 1, 1)
    per_channel = unit.transpose(0, 1).flatten(1).std(dim=1)  # the same spread in every channel once scaled
    assert per_channel.max() / per_channel.min() < 1.3
    vae(video, generator=torch.Generator().manual_seed(1), latent_noise=0.0)
    assert torch.equal(seen[2], clean)  # no noise: the posterior sample exactly as before


def test_latent_noise_reaches_training_and_needs_a_frozen_encoder(tmp_path):
    with pytest.raises(ValueError, match="latent_noise needs freeze_encoder"):
        load_config(TrainVAEConfig, None, ["--latent_noise", "0.3"])
    with pytest.raises(ValueError, match="latent_noise must be a finite number >= 0"):
        load_config(TrainVAEConfig, None, ["--latent_noise", "-1"])
    base = train_vae(load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "2", "--run_dir", str(tmp_path / "a")]),
                     progress=False)
    first = {}
    for noise in ("0", "3"):
        run = tmp_path / f"n{noise}"
        train_vae(load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "1", "--run_dir", str(run), "--init_from",
                                                     str(base), "--freeze_encoder", "true", "--latent_noise", noise]),
                  progress=False)
        first[noise] = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    # the same weights, batch and posterior draw: only the latents' noise differs
    assert first["3"]["kl"] == pytest.approx(first["0"]["kl"]) and first["3"]["l2"] != first["0"]["l2"]


def test_bf16_on_a_cpu_that_emulates_it_is_warned_at_the_start(tmp_path, monkeypatch, caplog):
    """bf16 autocast on an AVX2 CPU made the factor-4 VAE recipe 16x slower (41 s a step, 2.5 in fp32): the run
    says so before its first step; fp32, or a CPU with bfloat16 arithmetic, is not warned."""
    warned = {}
    for precision, fast in (("bf16", False), ("bf16", True), ("fp32", False)):
        monkeypatch.setattr("spacetime.pipeline.fast_bfloat16", lambda device="cpu", fast=fast: fast)
        caplog.clear()
        with caplog.at_level("WARNING", logger="spacetime.train"):
            train_vae(load_config(TrainVAEConfig, None, [*TINY, "--max_steps", "1", "--precision", precision,
                                                         "--run_dir", str(tmp_path / f"{precision}{fast}")]), progress=False)
        warned[precision, fast] = "precision bf16 on a CPU without bfloat16 arithmetic" in caplog.text
    assert warned == {("bf16", False): True, ("bf16", True): False, ("fp32", False): False}


def test_broken_yaml_in_a_file_or_an_override_is_one_line_naming_it(tmp_path, capsys):
    """A YAML syntax error in an override (`--sizes "[[5,32,32]"`) was a yaml ParserError
    traceback; in a file it was a message of six lines; a file not in UTF-8 did not name itself."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1\n  x: :\n")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"max_steps: 1\n# caf\xe9\n")
    for argv, message in (([f"--config={bad}"], f"{bad}: not valid YAML (line 2, column 4"),
                          ([f"--config={latin1}"], f"{latin1}: not a UTF-8 text file"),
                          (["--model.channels", "[8,8"], "--model.channels: cannot read '[8,8'")):
        assert main(["train-vae", *argv, "--run_dir", str(tmp_path / "r")]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_values_torch_would_fail_on_later_are_refused_at_the_start(tmp_path, capsys):
    """`--threads -1` was set_num_threads' RuntimeError traceback; a seed past int64 once multiplied
    was "Overflow when unpacking long long"; a negative data.seed numpy's "expected non-negative
    integer" (with config.json already written); latent_stats_batches 0 a ZeroDivisionError after
    the whole run had trained; a negative keep_checkpoints kept every checkpoint in silence."""
    run = tmp_path / "r"
    for key, value, message in (("threads", "-1", "threads must be >= 0"),
                                ("seed", str(2**50), "seed must be in [0, 2**40]"),
                                ("data.seed", "-5", "data.seed must be in [0, 2**40]"),
                                ("latent_stats_batches", "0", "latent_stats_batches must be >= 1"),
                                ("keep_checkpoints", "-1", "keep_checkpoints must be >= 0"),
                                ("data.max_bad_fraction", "-1", "data.max_bad_fraction is a share"),
                                ("run_dir", "", "run_dir is empty")):
        assert main(["train-vae", *TINY, "--max_steps", "1", "--run_dir", str(run), f"--{key}", value]) == 1
        assert message in capsys.readouterr().err, key
        assert not run.exists(), key


def test_a_run_dir_that_is_a_file_or_another_kind_of_run_is_named(tmp_path, capsys):
    """A run_dir that is a file was "[Errno 17] File exists"; a VAE run pointed at a DiT run's
    run_dir (made here by hand: a checkpoint whose config has a text_encoder) listed every model
    key as changed, and a DiT run at a VAE run's was told to resume from an older VAE checkpoint."""
    (tmp_path / "file").write_text("notes")
    assert main(["train-vae", *TINY, "--run_dir", str(tmp_path / "file")]) == 1
    assert "is a file, not a directory" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "notes"
    for name in ("samples", "model"):  # samples/ was "[Errno 20] Not a directory" mid-run; model/ replaced
        (tmp_path / name).mkdir()
        (tmp_path / name / name).write_text("notes")
        assert main(["train-vae", *TINY, "--run_dir", str(tmp_path / name)]) == 1
        assert f"run_dir: {tmp_path / name / name} is a file, not a directory" in capsys.readouterr().err
        assert [p.name for p in (tmp_path / name).iterdir()] == [name]
    run = tmp_path / "r"
    assert main(["train-vae", *TINY, "--max_steps", "2", "--save_every", "1", "--run_dir", str(run)]) == 0
    config = (run / "config.json").read_text()
    assert main(["train", "--run_dir", str(run), "--text_encoder", "hash:32", "--model.text_dim", "32"]) == 1
    err = capsys.readouterr().err
    assert "is a VAE (spacetime train-vae) training run's; this is a DiT" in err and "--resume" not in err, err
    assert (run / "config.json").read_text() == config


def test_a_pipeline_or_checkpoint_as_the_vae_to_start_from_is_named(tmp_path, capsys):
    """init_from a text-to-video model folder (or a DiT checkpoint) was a KeyError / TypeError
    traceback from VideoVAE.from_pretrained."""
    import json

    from spacetime.checkpoint import save_model

    pipe = tmp_path / "pipe"
    save_model(pipe, {"format": "spacetime-pipeline", "dit": {"hidden": 32}}, {"w": torch.zeros(1)})
    ckpt = tmp_path / "ckpt"
    save_model(ckpt, {"model": {"hidden": 32, "depth": 2}, "text_encoder": "hash:32"}, {"w": torch.zeros(1)})
    (ckpt / "state.json").write_text(json.dumps({"step": 1}))
    for where, message in ((pipe, f"a text-to-video model folder, not a VAE (its VAE is {pipe / 'vae'})"),
                           (ckpt, "a training checkpoint, not a VAE model folder")):
        assert main(["train-vae", *TINY, "--run_dir", str(tmp_path / "r"), "--init_from", str(where)]) == 1
        assert f"init_from {where}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_resume_trains_with_the_configs_optimizer_values(tmp_path, caplog):
    """Loading the optimizer's state brought back its saved param_groups: a resume with another
    optim.weight_decay or optim.betas trained on with the old ones, while config.json said the new."""
    from spacetime.checkpoint import read_optimizer_state

    run = tmp_path / "r"
    args = ["train-vae", *TINY, "--run_dir", str(run)]
    assert main([*args, "--max_steps", "1"]) == 0
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main([*args, "--max_steps", "2", "--optim.weight_decay", "0.5", "--optim.betas", "[0.5, 0.6]"]) == 0
    assert "optim.betas [0.9, 0.99] -> [0.5, 0.6], optim.weight_decay 0.0 -> 0.5" in caplog.text
    group = read_optimizer_state(latest_checkpoint(run))["param_groups"][0]
    assert group["weight_decay"] == 0.5 and tuple(group["betas"]) == (0.5, 0.6)


def test_a_resume_names_what_its_config_changes(tmp_path, caplog):
    """config.json is rewritten with a resumed run's config: a changed seed, data.seed or max_steps
    went unsaid, and the old values were lost. Now each change is named, old -> new; a warning when
    what is trained changes, a note when only how it runs (log_every), nothing when nothing does."""
    run = tmp_path / "r"
    args = ["train-vae", *TINY, "--run_dir", str(run)]
    assert main([*args, "--max_steps", "1"]) == 0
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main([*args, "--max_steps", "2", "--seed", "3", "--data.seed", "5"]) == 0
    changes = [r for r in caplog.records if "resuming from" in r.getMessage()]
    assert len(changes) == 1 and changes[0].levelname == "WARNING", caplog.text
    assert "max_steps 1 -> 2, seed 0 -> 3" in changes[0].getMessage() and "data.seed 0 -> 5" in changes[0].getMessage()
    assert json.loads((run / "config.json").read_text())["seed"] == 3
    caplog.clear()
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main([*args, "--max_steps", "3", "--seed", "3", "--data.seed", "5", "--log_every", "7"]) == 0
    changes = [r for r in caplog.records if "resuming from" in r.getMessage()]
    assert [r.levelname for r in changes] == ["WARNING"] and "max_steps 2 -> 3" in changes[0].getMessage()
    assert "seed" not in changes[0].getMessage() and "log_every 1 -> 7" in changes[0].getMessage()
    same = [*args, "--max_steps", "3", "--seed", "3", "--data.seed", "5"]
    for extra, levels in ((["--log_every", "2"], ["INFO"]), ([], [])):  # only how it runs; then nothing at all
        caplog.clear()
        with caplog.at_level("INFO", logger="spacetime.train"):
            assert main([*same, "--log_every", "7", *extra]) == 0
        assert [r.levelname for r in caplog.records if "resuming from" in r.getMessage()] == levels, caplog.text


def test_a_step_is_saved_once_and_a_kill_mid_save_or_mid_prune_keeps_a_complete_checkpoint(tmp_path, monkeypatch,
                                                                                            capsys):
    """Ctrl-C during a scheduled save, or a restart of a run killed while writing its model, saved
    the same step again: the second save removed the complete step-N before renaming the new one
    in, and a kill there (torchrun's SIGKILL after --shutdown-timeout) left no checkpoint with
    keep_checkpoints 1. A kill mid-way through pruning left an old checkpoint with COMPLETE but
    without some of its files."""
    import shutil
    import signal

    import spacetime.checkpoint as checkpoint
    import spacetime.train as train_module

    real_save, saved = train_module.save_checkpoint, []

    def save_then_ctrl_c(run_dir, step, **kw):
        saved.append(step)
        if step == 2 and saved.count(2) == 1:
            signal.raise_signal(signal.SIGINT)  # arrives while step 2 is being written
        return real_save(run_dir, step, **kw)

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_ctrl_c)
    run = tmp_path / "r"
    args = ["train-vae", *TINY, "--run_dir", str(run), "--max_steps", "4", "--save_every", "2", "--keep_checkpoints", "1"]
    assert main(args) == 130
    assert saved == [2] and "stopped by Ctrl-C at step 2" in capsys.readouterr().err
    assert main([*args[:-6], "--max_steps", "2"]) == 0  # resumed at its last step: nothing to save but the model
    assert saved == [2] and (run / "model" / "COMPLETE").is_file()
    shutil.rmtree(run / "model")  # killed while writing its model: the restart writes it, not step 2 again
    assert main([*args[:-6], "--max_steps", "2"]) == 0
    assert saved == [2] and (run / "model" / "COMPLETE").is_file()
    # save_checkpoint itself, killed while deleting what a save replaces (the same step saved again)
    # or prunes: what is left of the old directory is never taken for a complete checkpoint
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(tmp_path / "s", 1, config={}, model=model, optimizer=opt, keep=1, state={"position": 0})
    real_rmtree = shutil.rmtree

    def killed_mid_rmtree(path, *a, **kw):
        (Path(path) / "model.safetensors").unlink(missing_ok=True)
        raise KeyboardInterrupt

    for step in (1, 2):
        monkeypatch.setattr(checkpoint.shutil, "rmtree", killed_mid_rmtree)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(tmp_path / "s", step, config={}, model=model, optimizer=opt, keep=1, state={"position": 0})
        monkeypatch.setattr(checkpoint.shutil, "rmtree", real_rmtree)
        complete = checkpoint.complete_checkpoints(tmp_path / "s")
        assert [p.name for p in complete] == [f"step-{step:08d}"]
        checkpoint.check_checkpoint(complete[0])


def test_ctrl_c_to_the_process_group_with_loader_workers_is_said_once_and_checkpoints(tmp_path):
    """The terminal's Ctrl-C reaches the DataLoader workers too, which inherit the handler: the
    "stopping after this step" line was printed by each of them as well."""
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "r"
    cmd = [sys.executable, "-m", "spacetime", "train-vae", *TINY, "--max_steps", "100000", "--data.num_workers", "2",
           "--run_dir", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 2:
        assert time.time() < deadline and proc.poll() is None, "slow, or it died"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.count("Ctrl-C: stopping after this step") == 1, err[-2000:]
    assert latest_checkpoint(run) is not None


def test_override_keys_and_nested_checks_name_the_key(tmp_path):
    """`--optim..lr` was "unknown config key optim."; a nested config's own check ("hidden (32) must
    be divisible by heads (3)") named no key; a key given beneath a scalar was not said to be the
    command line's."""
    from spacetime.config import flatten
    from spacetime.train import TrainDiTConfig

    for bad in ("--optim..lr", "--.lr", "--optim."):
        with pytest.raises(ValueError, match="a key with an empty part"):
            load_config(TrainVAEConfig, None, [bad, "1"])
    with pytest.raises(ValueError, match=r"^model: hidden \(32\) must be divisible by heads \(3\) \(on the command line\)"):
        load_config(TrainDiTConfig, None, ["--model.hidden", "32", "--model.heads", "3"])
    with pytest.raises(ValueError, match=r"^model: channels must be positive widths"):
        load_config(TrainVAEConfig, None, ["--model.channels", "[]"])
    with pytest.raises(ValueError, match=r"optim.lr: expected float, got \{'x': .*\} \(on the command line\)"):
        load_config(TrainVAEConfig, None, ["--optim.lr.x", "1"])
    with pytest.raises(ValueError, match="^data.path is required"):  # a message naming its key keeps its words
        load_config(TrainVAEConfig, None, ["--data.source", "folder"])
    assert flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": None}) == {"a.b": 1, "a.c.d": [2], "e": None}


@pytest.mark.parametrize("override, message", [
    (["--model.channels", "[8,8,8,8,8,8,8,8]"], r"data.height x data.width 16x16 must be multiples of 256"),
    (["--data.num_frames", "6"], r"data.num_frames 6 must be 1 \+ 4k"),
])
def test_clip_sizes_the_vae_cannot_take_are_refused_before_the_run_starts(tmp_path, capsys, override, message):
    """Was the VAE's "height and width must be multiples of 256" at the first step, naming no key,
    after run_dir and its config.json were made."""
    run = tmp_path / "r"
    assert main(["train-vae", *TINY, "--run_dir", str(run), *override]) == 1
    assert __import__("re").search(message, capsys.readouterr().err)
    assert not run.exists()


@pytest.mark.parametrize("file, text", [
    ("state.json", '{"step": "x", "position": 0, "rng": {}}'),
    ("state.json", '{"step": 2, "position": 0, "rng": {"numpy": {}, "python": []}}'),
    ("state.json", '{"step": 2, "position": null, "rng": null}'),
    ("optimizer.json", '{"param_groups": 1, "state_meta": []}'),
])
def test_a_checkpoint_json_with_wrong_values_is_named_not_a_traceback(tmp_path, capsys, file, text):
    """JSON that parses, with the keys, but values loading cannot use: was a KeyError ('numpy') or
    TypeError from inside set_rng_state / the optimizer."""
    run = tmp_path / "r"
    args = ["train-vae", *TINY, "--run_dir", str(run), "--save_every", "1"]
    assert main([*args, "--max_steps", "2"]) == 0
    newest = latest_checkpoint(run)
    (newest / file).write_text(text)
    assert main([*args, "--max_steps", "3"]) == 1
    err = capsys.readouterr().err
    assert f"{newest / file}: damaged or missing (ValueError:" in err and "--resume" in err


def test_a_full_disk_at_a_resumes_start_keeps_the_metrics_and_config(tmp_path, monkeypatch, capsys):
    """A resume rewrites metrics.jsonl (dropping lines after its checkpoint) and config.json: both
    were truncated in place, so a full disk then lost the run's whole metrics history."""
    import errno

    run = tmp_path / "r"
    args = ["train-vae", *TINY, "--run_dir", str(run), "--save_every", "2"]
    assert main([*args, "--max_steps", "3"]) == 0
    (run / "model").rename(tmp_path / "model")  # as if stopped after step 3: a resume from step 2
    metrics = (run / "metrics.jsonl").read_text()
    real = Path.write_text

    def full(self, text, *a, **kw):
        with open(self, "w"):  # what open(w) does before the first write fails: truncates
            pass
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    for name in ("config.json", "metrics.jsonl"):
        def write(self, text, *a, _name=name, **kw):
            return full(self, text) if self.name == _name or f".{_name.split('.')[0]}." in self.name else \
                real(self, text, *a, **kw)

        monkeypatch.setattr(Path, "write_text", write)
        assert main([*args, "--max_steps", "4"]) == 1
        assert "No space left on device" in capsys.readouterr().err
        assert (run / "metrics.jsonl").read_text() == metrics
        assert json.loads((run / "config.json").read_text())["max_steps"] == (3 if name == "config.json" else 4)
    monkeypatch.setattr(Path, "write_text", real)
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_run_dir_holding_another_config_json_is_refused_not_written_over(tmp_path, capsys):
    """A trained model's folder (or another project) given as run_dir had its config.json replaced by
    the run's: the model no longer loaded."""
    run = tmp_path / "r"
    assert main(["train-vae", *TINY, "--run_dir", str(run), "--max_steps", "1"]) == 0
    model = run / "model"
    for folder, says in [(model, "a trained model's, not a training run's"), (tmp_path / "p", "not a training run's"),
                         (tmp_path / "q", "not JSON")]:
        folder.mkdir(exist_ok=True)
        if folder != model:
            (folder / "config.json").write_text('{"name": "x"}' if folder.name == "p" else "garbage")
        before = sorted(p.name for p in folder.iterdir()), (folder / "config.json").read_text()
        assert main(["train-vae", *TINY, "--run_dir", str(folder), "--max_steps", "1"]) == 1
        assert f"run_dir {folder}: its config.json is {says}" in capsys.readouterr().err
        assert (sorted(p.name for p in folder.iterdir()), (folder / "config.json").read_text()) == before
    assert main(["train-vae", *TINY, "--run_dir", str(run), "--max_steps", "2"]) == 0  # a run's own: resumed


def test_a_home_relative_path_in_a_config_file_is_the_home_folder(tmp_path, monkeypatch):
    """`run_dir: ~/runs/vae` in a YAML file made a folder named `~` in the working directory."""
    from spacetime.train import TrainDiTConfig

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: ~/runs/vae\ninit_from: ~/vae\nmax_steps: 1\n")
    cfg = load_config(TrainVAEConfig, path)
    assert (cfg.run_dir, cfg.init_from) == (str(tmp_path / "home/runs/vae"), str(tmp_path / "home/vae"))
    dit = load_config(TrainDiTConfig, None, ["--vae=~/v", "--resume=~/r/checkpoints/step-00000001", "--text_encoder",
                                             "hash:32"])
    assert (dit.vae, dit.resume, dit.text_encoder) == (str(tmp_path / "home/v"),
                                                       str(tmp_path / "home/r/checkpoints/step-00000001"), "hash:32")
    assert main(["train-vae", *TINY, "--run_dir=~/runs/vae", "--max_steps", "1"]) == 0
    assert (tmp_path / "home/runs/vae/model/COMPLETE").is_file() and not (tmp_path / "~").exists()


@pytest.mark.parametrize("text, message", [
    ("1: 2\nfoo: 3\n", "unknown config key 1: config keys are names"),  # was TypeError: '<' not supported
    ("optim:\n  1: 2\n  x: 3\n", "unknown config key optim.1: config keys are names"),
    ("true: 1\n", "unknown config key True: config keys are names"),
    ("? [a, b]\n: 1\n", "not valid YAML (line 1, column 3: found an unhashable key)"),  # was TypeError: unhashable
])
def test_yaml_keys_that_are_not_names_are_named(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        load_config(TrainVAEConfig, path)


def test_command_line_values_are_read_as_the_keys_type_not_as_yaml_1_1(tmp_path):
    """Overrides were YAML 1.1 scalars whatever the key: `--run_dir 010` trained into the folder `8`,
    `--run_dir 12:30` into `750`, `--run_dir 2024-01-01` was refused as a date, `--seed 010` was 8,
    `--max_steps yes` said "got True"."""
    from spacetime.train import TrainDiTConfig

    for text in ("010", "12:30", "2024-01-01", "1_000", "1e3", "true"):
        assert load_config(TrainVAEConfig, None, ["--run_dir", text]).run_dir == text
    assert load_config(TrainVAEConfig, None, ["--seed", "010"]).seed == 10
    cfg = load_config(TrainVAEConfig, None, ["--max_steps", "1e3", "--keep_checkpoints", "1_0", "--optim.lr", "3e-4",
                                             "--model.channels", "8,16", "--freeze_encoder", "yes", "--init_from", "x"])
    assert (cfg.max_steps, cfg.keep_checkpoints, cfg.optim.lr, cfg.model.channels, cfg.freeze_encoder) == \
        (1000, 10, 3e-4, (8, 16), True)
    assert load_config(TrainVAEConfig, None, ["--resume", "null"]).resume is None
    dit = load_config(TrainDiTConfig, None, ["--sample_prompts", "12:30", "--data.path", "2024-01-01"])
    assert dit.sample_prompts == ["12:30"] and dit.data.path == "2024-01-01"
    with pytest.raises(ValueError, match=r"max_steps: expected int, got 'yes' \(on the command line\)"):
        load_config(TrainVAEConfig, None, ["--max_steps", "yes"])
    with pytest.raises(ValueError, match="run_dir: expected a string, got None"):
        load_config(TrainVAEConfig, None, ["--run_dir", "null"])


def test_resume_given_a_run_or_model_folder_or_a_file_says_which(tmp_path, capsys):
    """`--resume` naming another run's folder was "an incomplete checkpoint (no COMPLETE marker)", a
    trained model "state.json: damaged or missing", a file "no such checkpoint directory"."""
    old = tmp_path / "old"
    assert main(["train-vae", *TINY, "--run_dir", str(old), "--max_steps", "1"]) == 0
    run = tmp_path / "new"
    for resume, says in [(old, f"a run directory, not a checkpoint: its newest is --resume {old}/checkpoints/step-"),
                         (old / "model", "a trained model, not a training checkpoint"),
                         (old / "config.json", "a file, not a checkpoint directory")]:
        assert main(["train-vae", *TINY, "--run_dir", str(run), "--max_steps", "2", "--resume", str(resume)]) == 1
        assert f"resume {resume}: {says}" in capsys.readouterr().err
    assert not run.exists()
    assert main(["train-vae", *TINY, "--run_dir", str(old), "--max_steps", "2", "--resume", str(old)]) == 0  # its own


def test_a_copy_of_a_checkpoint_beside_them_is_neither_resumed_nor_pruned(tmp_path):
    """`cp -r step-00000002 step-00000002.bak` in checkpoints/: the copy sorted after its step (by
    name), so it was taken for the newest checkpoint, and pruned as an old one."""
    import shutil

    run = tmp_path / "r"
    args = ["train-vae", *TINY, "--run_dir", str(run), "--save_every", "1", "--keep_checkpoints", "1"]
    assert main([*args, "--max_steps", "2"]) == 0
    backup = run / "checkpoints" / "step-00000002.bak"
    shutil.copytree(run / "checkpoints" / "step-00000002", backup)
    (run / "checkpoints" / "step-100000000").mkdir()  # past 8 digits: a step, ordered by number
    (run / "checkpoints" / "step-100000000" / "COMPLETE").write_text("ok\n")
    from spacetime.checkpoint import complete_checkpoints

    assert [p.name for p in complete_checkpoints(run)] == ["step-00000002", "step-100000000"]
    shutil.rmtree(run / "checkpoints" / "step-100000000")
    assert latest_checkpoint(run).name == "step-00000002"
    assert main([*args, "--max_steps", "4"]) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002.bak", "step-00000004"]


def test_one_sample_prompt_with_commas_is_one_prompt(tmp_path):
    """`--sample_prompts "a red ball, bouncing"` was two prompts, "a red ball" and " bouncing"."""
    from spacetime.train import TrainDiTConfig

    prompt = "a red ball, bouncing on the floor"
    assert load_config(TrainDiTConfig, None, ["--sample_prompts", prompt]).sample_prompts == [prompt]
    assert load_config(TrainDiTConfig, None, ["--sample_prompts", f'["{prompt}", "b"]']).sample_prompts == [prompt, "b"]
    assert load_config(TrainDiTConfig, None, ["--sample_prompts", ""]).sample_prompts == []
    path = tmp_path / "c.yaml"
    path.write_text(f"sample_prompts: {prompt}\n")
    assert load_config(TrainDiTConfig, path).sample_prompts == [prompt]
    assert load_config(TrainVAEConfig, None, ["--model.channels", "8,16"]).model.channels == (8, 16)  # numbers: items


def test_a_checkpoint_file_holding_another_models_tensors_is_named(tmp_path, capsys):
    """model.safetensors swapped for another file that parses (another model's, the optimizer's) was
    torch's RuntimeError traceback listing every key."""
    run = tmp_path / "r"
    args = ["train-vae", *TINY, "--run_dir", str(run), "--save_every", "1"]
    assert main([*args, "--max_steps", "1"]) == 0
    (run / "model").rename(tmp_path / "model")
    newest = latest_checkpoint(run)
    (newest / "model.safetensors").write_bytes((newest / "optimizer.safetensors").read_bytes())
    assert main([*args, "--max_steps", "2"]) == 1
    err = capsys.readouterr().err
    assert f"{newest / 'model.safetensors'}: does not fit the model: tensors" in err and "Traceback" not in err
    assert latest_checkpoint(run) == newest


def test_a_resume_past_max_steps_says_the_model_is_the_checkpoints(tmp_path, caplog):
    """max_steps lowered below the checkpoint's step wrote the checkpoint's weights as the model
    without a word, as if trained max_steps steps."""
    run = tmp_path / "r"
    args = ["train-vae", *TINY, "--run_dir", str(run), "--save_every", "1"]
    assert main([*args, "--max_steps", "3"]) == 0
    import shutil

    shutil.rmtree(run / "model")
    with caplog.at_level("WARNING", logger="spacetime.train"):
        assert main([*args, "--max_steps", "2"]) == 0
    assert "resumed at step 3, past max_steps 2: no step is trained" in caplog.text
