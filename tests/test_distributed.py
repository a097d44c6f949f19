"""torchrun with DDP on CPU (gloo, 2 processes) against one process with the same global batch."""

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spacetime.checkpoint import save_model
from spacetime.cli import main
from spacetime.data.video import frames_to_tensor
from spacetime.vae import PRESETS, VideoVAE
from spacetime.world.clip import make_clip


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    torch.manual_seed(0)
    vae = VideoVAE(PRESETS["tiny"])
    clips = torch.stack([frames_to_tensor(make_clip(s, num_frames=5, height=32, width=32).frames) for s in range(4)])
    vae.eval().fit_latent_stats([clips])
    return save_model(tmp_path_factory.mktemp("vae") / "vae", {"model": vae.config.to_dict()}, vae)


def _args(vae_dir, run_dir, batch: int, steps: int) -> list[str]:
    return ["train", "--vae", str(vae_dir), "--text_encoder", "hash:32", "--text_max_length", "16",
            "--model.text_dim", "32", "--model.hidden", "32", "--model.depth", "2", "--model.heads", "2",
            "--data.num_frames", "5", "--data.height", "32", "--data.width", "32", "--sizes", "[[5,32,32],[1,32,48]]",
            "--batch_size", str(batch), "--max_steps", str(steps), "--threads", "1", "--log_every", "1",
            "--sample_every", "0", "--optim.warmup_steps", "1", "--condition_prob", "0.5", "--run_dir", str(run_dir)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], program: tuple[str, ...] = ("-m", "spacetime")) -> str:
    """Two ranks of `program` (the CLI, or a script) with `args`; returns their stderr."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", *program, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def _losses(run_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def single(vae_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("one") / "run"
    assert main(_args(vae_dir, run, batch=4, steps=4)) == 0
    return run


def _same_run(a, b) -> None:
    la, lb = _losses(a), _losses(b)
    assert len(la) == len(lb) == 4
    assert la == pytest.approx(lb, rel=1e-4, abs=1e-6), (la, lb)
    wa, wb = (load_file(r / "model" / "model.safetensors") for r in (a, b))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_match_one_process(vae_dir, single, tmp_path, parallel):
    run = tmp_path / parallel
    _torchrun([*_args(vae_dir, run, batch=2, steps=4), "--parallel", parallel])  # 2 ranks x 2: the same global batch
    _same_run(single, run)
    # the position advanced by the global batch; the checkpoint is one full copy
    last = sorted((run / "checkpoints").glob("step-*"))[-1]
    state = json.loads((last / "state.json").read_text())
    assert state["position"] == 16 and state["world_size"] == 2
    assert load_file(last / "model.safetensors").keys() == load_file(single / "model" / "model.safetensors").keys()


def test_an_fsdp_checkpoint_resumes_in_one_process(vae_dir, single, tmp_path, caplog):
    run = tmp_path / "mixed"
    _torchrun([*_args(vae_dir, run, batch=2, steps=2), "--parallel", "fsdp"])
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main(_args(vae_dir, run, batch=4, steps=4)) == 0  # the same global batch on one rank
    assert "saved on 2 rank(s) on 1 (global batch 4)" in caplog.text
    assert "global batch is now" not in caplog.text  # it is not: 2 x 2 then 1 x 4 (the warning said "was 8")
    _same_run(single, run)


def test_resume_path_must_be_a_complete_checkpoint(vae_dir, tmp_path, capsys):
    args = _args(vae_dir, tmp_path / "r", batch=2, steps=2)
    assert main([*args, "--resume", str(tmp_path / "nope")]) == 1
    assert "no such checkpoint directory" in capsys.readouterr().err
    assert main(args) == 0
    last = sorted((tmp_path / "r" / "checkpoints").glob("step-*"))[-1]
    (last / "COMPLETE").unlink()
    assert main([*args, "--max_steps", "3", "--resume", str(last)]) == 1
    assert "incomplete checkpoint" in capsys.readouterr().err


def test_a_run_gone_past_its_resume_path_continues_from_its_own_newest_checkpoint(vae_dir, tmp_path, caplog):
    """`--resume PATH` then "run the same command to resume": the run goes on from where it got
    to, not from PATH again (that threw the steps since away, or failed once PATH was pruned)."""
    import shutil

    base = tmp_path / "base"
    assert main([*_args(vae_dir, base, batch=2, steps=2), "--save_every", "1"]) == 0
    start = tmp_path / "start"
    shutil.copytree(sorted((base / "checkpoints").glob("step-*"))[0], start)  # step 1
    run = [*_args(vae_dir, tmp_path / "r", batch=2, steps=4), "--save_every", "1", "--resume", str(start)]
    assert main(run) == 0
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main([*run[:-2], "--resume", str(start), "--max_steps", "5"]) == 0
    assert "ignored: this run has gone past it, to step-00000004" in caplog.text
    assert "resumed from" in caplog.text and "step-00000004 (step 4)" in caplog.text


def test_a_damaged_or_different_checkpoint_is_named_before_anything_changes(vae_dir, tmp_path, capsys):
    run = tmp_path / "r"
    args = [*_args(vae_dir, run, batch=2, steps=2), "--save_every", "1"]
    assert main(args) == 0
    config = (run / "config.json").read_text()
    # another model: named key by key, and the run's config.json is left as it was
    assert main([*args, "--max_steps", "3", "--model.hidden", "64"]) == 1
    err = capsys.readouterr().err
    assert "was saved with another model (model.hidden: 32 -> 64)" in err and (run / "config.json").read_text() == config
    # a damaged file in the newest checkpoint: named, with the older checkpoint to fall back on
    newest, older = sorted((run / "checkpoints").glob("step-*"))[::-1]
    with open(newest / "ema.safetensors", "r+b") as f:
        f.truncate(1000)
    assert main([*args, "--max_steps", "3"]) == 1
    err = capsys.readouterr().err
    assert f"{newest / 'ema.safetensors'}: damaged or missing" in err and f"--resume {older}" in err
    (newest / "ema.safetensors").unlink()
    assert main([*args, "--max_steps", "3"]) == 1
    assert "ema.safetensors: damaged or missing" in capsys.readouterr().err
    (newest / "ema.safetensors").write_bytes((older / "ema.safetensors").read_bytes())
    (newest / "state.json").write_text('{"step": 2}')  # parses, but without what loading reads: was a KeyError
    assert main([*args, "--max_steps", "3"]) == 1
    assert "state.json: damaged or missing (ValueError: not a JSON object with 'position', 'rng')" in capsys.readouterr().err


def test_the_older_checkpoint_a_damaged_one_names_resumes_and_the_damaged_one_is_set_aside(vae_dir, tmp_path, caplog,
                                                                                            capsys):
    """The error for a damaged newest checkpoint says to --resume the one before; doing so was
    refused in turn ("gone past it, to" the damaged one, then the same error): no way on but to
    remove files by hand. Now the run resumes there, renames the damaged one out of the way, and
    ends as a run never damaged; the same command then goes on from the run's own newest."""
    straight = tmp_path / "straight"
    assert main([*_args(vae_dir, straight, batch=2, steps=4), "--save_every", "1"]) == 0
    run = tmp_path / "r"
    args = [*_args(vae_dir, run, batch=2, steps=3), "--save_every", "1"]
    assert main(args) == 0
    older, newest = sorted((run / "checkpoints").glob("step-*"))
    with open(newest / "ema.safetensors", "r+b") as f:
        f.truncate(1000)
    assert main([*args, "--max_steps", "4"]) == 1
    assert f"--resume {older}" in capsys.readouterr().err
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main([*args, "--max_steps", "4", "--resume", str(older)]) == 0
    assert "is damaged" in caplog.text and "resumed from" in caplog.text and f"{older} (step 2)" in caplog.text
    assert (run / "checkpoints" / "set-aside-step-00000003" / "COMPLETE").is_file()
    assert [p.name for p in sorted((run / "checkpoints").glob("step-*"))] == ["step-00000003", "step-00000004"]
    a, b = (load_file(r / "model" / "model.safetensors") for r in (straight, run))
    assert all(torch.equal(a[k], b[k]) for k in a)
    caplog.clear()
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main([*args, "--max_steps", "5", "--resume", str(older)]) == 0  # pruned since: the run's own newest
    assert "gone past it, to step-00000004" in caplog.text


def test_a_finished_run_run_again_does_nothing(vae_dir, tmp_path, caplog):
    run = tmp_path / "r"
    assert main(_args(vae_dir, run, batch=2, steps=2)) == 0
    before = (run / "model" / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="spacetime.train"):
        assert main(_args(vae_dir, run, batch=2, steps=2)) == 0
        assert main(_args(vae_dir, run, batch=2, steps=1)) == 0  # was "steps 2..1" and a re-save
    assert caplog.text.count("is trained to step 2") == 2
    assert (run / "model" / "model.safetensors").stat().st_mtime_ns == before


def test_saves_are_readable_as_the_umask_allows_and_killed_saves_are_swept(vae_dir, tmp_path):
    import os
    import stat

    run = tmp_path / "r"
    (run / "checkpoints" / ".tmp-step-00000007-abc").mkdir(parents=True)  # what a SIGKILL mid-save leaves
    (run / ".tmp-model-xyz").mkdir()
    # atomic writes of cache entries cut short by a kill (a latent cache is a folder run's; the sweep is the same)
    for kind in ("latents", "text"):
        (run / "cache" / kind).mkdir(parents=True)
        (run / "cache" / kind / ".0123abcd.k9x_2f.tmp.safetensors").write_bytes(b"half")
        (run / "cache" / kind / "0123abcd.safetensors").write_bytes(b"an entry")
    old = os.umask(0o022)
    try:
        assert main(_args(vae_dir, run, batch=2, steps=1)) == 0
    finally:
        os.umask(old)
    assert not (run / "checkpoints" / ".tmp-step-00000007-abc").exists() and not (run / ".tmp-model-xyz").exists()
    assert [p.name for p in (run / "cache").glob("*/*")] == ["0123abcd.safetensors"] * 2  # entries are kept
    for p in [run / "model", run / "model" / "model.safetensors", run / "model" / "vae",
              *(run / "checkpoints").glob("step-*"), *(run / "checkpoints").glob("step-*/*.safetensors")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))  # were 0700 / 0600: the owner's alone


def test_nonfinite_steps_are_skipped_then_stop_the_run(vae_dir, tmp_path, monkeypatch, caplog, capsys):
    import spacetime.train as train_module

    real, calls = train_module.flow_step_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] in poison else loss

    monkeypatch.setattr(train_module, "flow_step_loss", poisoned)
    poison = {2}
    with caplog.at_level("WARNING", logger="spacetime.train"):
        assert main(_args(vae_dir, tmp_path / "a", batch=2, steps=4)) == 0
    assert "non-finite loss or gradients at step 1 (samples 2..3" in caplog.text
    weights = load_file(tmp_path / "a" / "model" / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())
    calls["n"], poison = 0, set(range(100))
    # one line naming the step, exit 1 (it was a traceback)
    assert main([*_args(vae_dir, tmp_path / "b", batch=2, steps=6), "--max_nonfinite_steps", "2"]) == 1
    err = capsys.readouterr().err
    assert "spacetime train: error: non-finite loss or gradients at step 2" in err and "max_nonfinite_steps=2" in err
    assert "Traceback" not in err


def test_sigterm_checkpoints_at_the_next_step_and_the_run_resumes(vae_dir, tmp_path):
    import os
    import signal
    import time

    run = tmp_path / "t"
    cmd = [sys.executable, "-m", "spacetime", *_args(vae_dir, run, batch=2, steps=100000)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else "slow"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM at step" in err
    last = sorted((run / "checkpoints").glob("step-*"))[-1]
    step = json.loads((last / "state.json").read_text())["step"]
    assert (last / "COMPLETE").is_file() and step >= 3
    assert main(_args(vae_dir, run, batch=2, steps=step + 2)) == 0  # resumes there
    assert json.loads(sorted((run / "checkpoints").glob("step-*"))[-1].joinpath("state.json").read_text())["step"] == step + 2


@pytest.mark.parametrize("command", ["train", "train-vae"])
def test_ctrl_c_mid_step_stops_at_the_step_boundary_and_resumes_exactly(vae_dir, tmp_path, monkeypatch, capsys, command):
    """Ctrl-C arriving between the optimizer's update and the step count (where a KeyboardInterrupt
    used to save step 5's weights as step 4's, so the resumed run applied that update twice): the
    step finishes, a checkpoint is saved, exit 130, and the resumed run ends with the same weights
    as one never interrupted."""
    import signal

    if command == "train":
        args = lambda run: _args(vae_dir, run, batch=2, steps=8)  # noqa: E731
    else:
        args = lambda run: ["train-vae", "--model.channels", "[8,8,8]", "--data.num_frames", "5",  # noqa: E731
                            "--data.height", "16", "--data.width", "16", "--batch_size", "2", "--max_steps", "8",
                            "--threads", "1", "--log_every", "1", "--latent_stats_batches", "1",
                            "--optim.warmup_steps", "1", "--run_dir", str(run)]
    assert main(args(tmp_path / "straight")) == 0
    real, calls = torch.optim.AdamW.step, {"n": 0}

    def step_then_ctrl_c(self, *a, **kw):
        out = real(self, *a, **kw)
        calls["n"] += 1
        if calls["n"] == 5:
            signal.raise_signal(signal.SIGINT)  # as the terminal delivers it: to the process, mid-step
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_ctrl_c)
    assert main(args(tmp_path / "cut")) == 130
    # the DiT reads the flag with its non-finite check, before the update: it stops one step later
    assert re.search(r"stopped by Ctrl-C at step [56]; checkpoint saved", capsys.readouterr().err)
    monkeypatch.setattr(torch.optim.AdamW, "step", real)
    assert main(args(tmp_path / "cut")) == 0
    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_sigkill_at_random_moments_loses_at_most_one_checkpoint_interval(vae_dir, tmp_path):
    """Killed hard (no handler runs) three times, at seeded random moments — mid-step or mid-way
    through writing a checkpoint — the run restarts from the newest complete checkpoint each time
    and finishes; what each kill lost is at most the steps since the last checkpoint."""
    import random
    import re
    import signal
    import time

    run = tmp_path / "k"
    args = [*_args(vae_dir, run, batch=2, steps=60), "--save_every", "2", "--keep_checkpoints", "2"]
    rng = random.Random(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "spacetime", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        start = time.time()
        while not (run / "metrics.jsonl").exists() and time.time() - start < 60:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        logged = []
        for line in (run / "metrics.jsonl").read_text().splitlines():
            try:
                logged.append(json.loads(line)["step"])
            except ValueError:  # a line the kill cut short
                pass
        resumed = re.search(r"resumed from .* \(step (\d+)\)", err)
        if resumed:
            assert int(resumed.group(1)) % 2 == 0
        newest = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*") if (p / "COMPLETE").exists())
        assert max(logged) - newest <= 2 + 1, (max(logged), newest)  # lost: steps since the last checkpoint
    assert main(args) == 0
    final = sorted(p for p in (run / "checkpoints").glob("step-*") if (p / "COMPLETE").exists())[-1]
    assert json.loads((final / "state.json").read_text())["step"] == 60
    assert (run / "model" / "COMPLETE").exists()


def test_torchrun_restarts_after_a_rank_is_killed_and_matches_an_unbroken_run(vae_dir, single, tmp_path):
    """torchrun --max-restarts=1: one rank SIGKILLed once; the agent restarts both, they resume
    from the newest complete checkpoint, and the run ends where an unbroken one does."""
    import signal
    import time

    steps = ["--max_steps", "24", "--save_every", "2"]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    _torchrun([*_args(vae_dir, straight, batch=2, steps=24), *steps])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--max-restarts=1",
           "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{_free_port()}", "-m", "spacetime",
           *_args(vae_dir, broken, batch=2, steps=24), *steps]
    agent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((broken / "metrics.jsonl").exists() and len((broken / "metrics.jsonl").read_text().splitlines()) >= 5):
        assert time.time() < deadline and agent.poll() is None, "training did not start"
        time.sleep(0.1)
    workers = subprocess.run(["pgrep", "-P", str(agent.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2, workers
    subprocess.run(["kill", f"-{signal.SIGKILL.value}", workers[-1]], check=True)
    _, err = agent.communicate(timeout=300)
    assert agent.returncode == 0, err[-3000:]
    assert "resumed from" in err
    a, b = (load_file(r / "model" / "model.safetensors") for r in (straight, broken))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


# Run as a torchrun worker: the training command, then the names of the threads still alive.
_THREADS_AFTER_TRAINING = """
import os, sys
from spacetime.cli import main
rc = main(sys.argv[1:])
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
sys.stderr.write(f"rank {os.environ['RANK']} threads after training: {sorted(names)}\\n")  # one write: ranks share stderr
sys.exit(rc)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to list threads")
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_a_finished_torchrun_leaves_no_gloo_thread_behind(vae_dir, tmp_path, parallel):
    """A group kept alive past destroy_process_group keeps gloo's threads running into interpreter
    exit, where a rank now and then aborted ("terminate called without an active exception"). Two
    holders: torch.distributed.nn.functional (imported by DDP and FSDP through torch._dynamo) takes
    the default group as an argument default if first imported after init_process_group, and
    FSDP2's device mesh stays in DTensor's caches."""
    script = tmp_path / "worker.py"
    script.write_text(_THREADS_AFTER_TRAINING)
    err = _torchrun([*_args(vae_dir, tmp_path / "run", batch=2, steps=2), "--parallel", parallel], program=(str(script),))
    # each report ends with its list's bracket: two ranks' reports can run together on the shared stderr
    threads = re.findall(r"rank (\d) threads after training: (\[[^]]*\])", err)
    assert sorted(rank for rank, _ in threads) == ["0", "1"], err[-3000:]
    for rank, names in threads:
        assert "gloo" not in names, f"rank {rank}: {names}"


def test_gradient_accumulation_is_the_same_global_batch(vae_dir, single, tmp_path):
    run = tmp_path / "accum"
    assert main([*_args(vae_dir, run, batch=2, steps=4), "--grad_accum", "2"]) == 0  # 2 x 2 on one rank
    _same_run(single, run)
    run = tmp_path / "accum-ddp"
    _torchrun([*_args(vae_dir, run, batch=1, steps=4), "--grad_accum", "2"])  # 2 ranks x 1 x 2
    _same_run(single, run)


def test_resume_on_two_ranks_is_bit_identical(vae_dir, tmp_path):
    """4 straight steps vs 2 steps, a fresh torchrun, 2 more — with gradient accumulation, a batch
    of mixed sizes and condition frames: weights, EMA and optimizer state equal bit for bit."""
    base = lambda run, steps: [*_args(vae_dir, run, batch=1, steps=steps), "--grad_accum", "2"]  # noqa: E731
    _torchrun(base(tmp_path / "straight", 4))
    _torchrun(base(tmp_path / "split", 2))
    _torchrun(base(tmp_path / "split", 4))
    a, b = (sorted((tmp_path / r / "checkpoints").glob("step-*"))[-1] for r in ("straight", "split"))
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):
        x, y = load_file(a / name), load_file(b / name)
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), (name, k)
    assert _losses(tmp_path / "straight") == _losses(tmp_path / "split")
    # each rank's RNG states are in the checkpoint, and the resumed run's equal the straight run's
    for name in ("rng.safetensors", "rng-rank1.safetensors"):
        assert all(torch.equal(v, load_file(b / name)[k]) for k, v in load_file(a / name).items())


def test_train_vae_under_torchrun(tmp_path, caplog):
    run = tmp_path / "vae"
    args = ["train-vae", "--model.channels", "[8,8,8]", "--data.num_frames", "5", "--data.height", "16",
            "--data.width", "16", "--batch_size", "2", "--log_every", "1", "--threads", "1",
            "--latent_stats_batches", "1", "--run_dir", str(run)]
    _torchrun([*args, "--max_steps", "3"])
    state = json.loads(sorted((run / "checkpoints").glob("step-*"))[-1].joinpath("state.json").read_text())
    assert state["position"] == 12 and state["world_size"] == 2  # 3 steps x 2 ranks x 2
    assert len(_losses(run)) == 3 and VideoVAE.from_pretrained(run / "model") is not None
    # resumed in one process: the global batch halves, which the DiT said and the VAE did not
    with caplog.at_level("WARNING", logger="spacetime.train"):
        assert main([*args, "--max_steps", "4"]) == 0
    assert "resuming a run saved on 2 rank(s) on 1: the global batch is now 2 (was 4)" in caplog.text


@pytest.mark.slow  # ~40 s of inductor compilation on this CPU: `pytest -m slow`
def test_compiled_blocks_train_like_eager(vae_dir, single, tmp_path):
    run = tmp_path / "compiled"
    assert main([*_args(vae_dir, run, batch=4, steps=4), "--compile", "true"]) == 0
    assert _losses(run) == pytest.approx(_losses(single), rel=1e-3)
