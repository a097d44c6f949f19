"""torchrun with DDP on CPU (gloo, 2 processes) against one process with the same global batch."""

import json
import socket
import subprocess
import sys

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


def _torchrun(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "spacetime", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


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
    with caplog.at_level("WARNING", logger="spacetime.train"):
        assert main(_args(vae_dir, run, batch=4, steps=4)) == 0  # the same global batch on one rank
    assert "saved on 2 rank(s) on 1" in caplog.text
    _same_run(single, run)
