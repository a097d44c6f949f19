"""Guidance distillation: a DiT with a guidance embedding learns, in one pass, what classifier-free
guidance makes of a teacher's two; the sampler and the pipeline then make one call per step."""

import copy

import pytest
import torch

from spacetime import sampling
from spacetime.checkpoint import save_model
from spacetime.config import load_config
from spacetime.dit import DiT, DiTConfig
from spacetime.pipeline import SpacetimePipeline
from spacetime.text import HashTextEncoder
from spacetime.train import TrainDiTConfig, flow_step_loss, train_dit
from spacetime.vae import PRESETS, VideoVAE

SMALL = dict(in_channels=16, hidden=32, depth=2, heads=2, text_dim=32)


def _teacher(seed: int = 0) -> DiT:
    """A DiT whose predictions are far from zero and depend on the prompt: random weights, larger
    on the text's path (at one scale throughout, the prompt moves the velocity by ~1e-4)."""
    torch.manual_seed(seed)
    dit = DiT(DiTConfig(**SMALL))
    for name, p in dit.named_parameters():
        torch.nn.init.normal_(p, std=0.3 if name.startswith(("text_proj", "blocks.0.cross", "blocks.1.cross")) else 0.05)
    return dit.eval()


def _student(teacher: DiT) -> DiT:
    """The teacher plus a new guidance embedding, loaded as train_dit does (init_from)."""
    student = DiT(DiTConfig(**SMALL, guidance_embed=True))
    student.load_state_dict(teacher.state_dict(), strict=False)
    return student


def _inputs(b: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    text = HashTextEncoder(dim=32, max_length=16)
    emb, mask = text.encode(["a red ball falls", "a blue square moves left", "two green triangles"][:b])
    return [torch.randn(16, 2, 4, 4, generator=g) for _ in range(b)], emb, mask, text.encode([""])


def test_a_new_guidance_embedding_starts_as_the_teachers_conditional_model():
    teacher = _teacher()
    student = _student(teacher).eval()
    x = torch.randn(2, 16, 2, 4, 4)
    t = torch.tensor([0.3, 0.9])
    emb, mask = HashTextEncoder(dim=32, max_length=16).encode(["a red ball", "a cube"])
    want = teacher(x, t, emb, mask)
    for g in (None, 1.0, 5.0, torch.tensor([2.0, 7.5])):
        assert torch.allclose(student(x, t, emb, mask, guidance=g), want, atol=1e-6), g
    # the embedding takes part once trained: scales give different predictions
    torch.nn.init.normal_(student.g_embedder.mlp[2].weight, std=0.5)
    assert not torch.allclose(student(x, t, emb, mask, guidance=2.0), student(x, t, emb, mask, guidance=6.0), atol=1e-4)
    # and a model without one refuses a scale it cannot take, naming what to do instead
    assert torch.equal(teacher(x, t, emb, mask, guidance=1.0), want)
    with pytest.raises(ValueError, match="no guidance embedding"):
        teacher(x, t, emb, mask, guidance=5.0)
    with pytest.raises(ValueError, match=r"guidance must be \(2,\)"):
        student(x, t, emb, mask, guidance=torch.ones(3))


def test_packed_batch_with_per_sample_scales_equals_each_sample_alone():
    student = _student(_teacher())
    torch.nn.init.normal_(student.g_embedder.mlp[2].weight, std=0.5)
    student.eval()
    emb, mask = HashTextEncoder(dim=32, max_length=16).encode(["a red ball", "a cube"])
    xs = [torch.randn(16, 2, 4, 4), torch.randn(16, 3, 4, 6)]
    t, g = torch.tensor([0.4, 0.8]), torch.tensor([3.0, 6.0])
    packed = student(xs, t, emb, mask, guidance=g)
    for i, x in enumerate(xs):
        alone = student(x[None], t[i : i + 1], emb[i : i + 1], mask[i : i + 1], guidance=g[i : i + 1])[0]
        assert torch.allclose(packed[i], alone, atol=1e-5)


def test_distillation_loss_is_the_distance_to_the_teachers_guided_velocity():
    """At scale 1 the target is the teacher's conditional velocity, which the fresh student predicts
    exactly (loss 0); at scale 3 it is v_u + 3(v_c - v_u), so the loss is mean((2(v_c - v_u))^2)."""
    teacher = _teacher()
    student = _student(teacher).eval()
    latents, emb, mask, negative = _inputs()
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(3)]  # noqa: E731 - the same draws each call
    with torch.no_grad():
        assert flow_step_loss(student, latents, emb, mask, gens(), teacher=teacher, negative=negative,
                              guidance_range=(1.0, 1.0)).item() < 1e-10
        loss = flow_step_loss(student, latents, emb, mask, gens(), teacher=teacher, negative=negative,
                              guidance_range=(3.0, 3.0)).item()
        # the same x_t by hand: the generators draw timestep, then noise (flow_step_loss's order)
        want = []
        for i, z in enumerate(latents):
            g = gens()[i]
            from spacetime import flow

            t = flow.shift_timesteps(flow.sample_timesteps(1, generator=g), flow.resolution_shift(z[0].numel() // 4))
            e = torch.randn(z.shape, generator=g)
            xt = ((1 - t) * z + t * e)[None]
            v_c = teacher(xt, t, emb[i : i + 1], mask[i : i + 1])
            v_u = teacher(xt, t, *negative)
            want.append((2 * (v_c - v_u)).square().mean())
    assert loss == pytest.approx(torch.stack(want).mean().item(), rel=1e-4)
    assert loss > 0.01  # the prompts matter to this teacher: the test has something to measure


def test_a_student_learns_the_guided_velocity_in_one_pass():
    """A few hundred steps on a fixed batch take the student's one-pass error against the teacher's
    two-pass guidance at scale 4 down to a fifth of where it starts (the conditional model's)."""
    teacher = _teacher()
    student = _student(teacher)
    latents, emb, mask, negative = _inputs()
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    probe = [torch.Generator().manual_seed(100 + i) for i in range(3)]

    def error() -> float:
        with torch.no_grad():
            return flow_step_loss(student.eval(), latents, emb, mask, copy.deepcopy(probe), teacher=teacher,
                                  negative=negative, guidance_range=(4.0, 4.0)).item()

    before = error()
    for step in range(300):
        gens = [torch.Generator().manual_seed(3 * step + i) for i in range(3)]
        loss = flow_step_loss(student.train(), latents, emb, mask, gens, teacher=teacher, negative=negative,
                              guidance_range=(1.0, 6.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    assert after < 0.2 * before, (before, after)


class _Recorder(torch.nn.Module):
    """A model that answers guidance * x and notes each call's rows and scales."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, text, mask, guidance=None, **_):
        self.calls.append((x.shape[0], None if guidance is None else guidance.tolist()))
        return x * (1.0 if guidance is None else guidance.view(-1, 1, 1, 1, 1))


def test_embedded_guidance_is_one_pass_a_step_with_the_scale_inside_the_interval():
    model = _Recorder()
    text, mask = torch.zeros(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    sampling.sample(model, (2, 4, 1, 2, 2), text, mask, num_steps=4, guidance_scale=5.0, guidance_interval=(0.5, 1.0),
                    embedded_guidance=True, generator=torch.Generator().manual_seed(0))
    ts = sampling.timesteps(4).tolist()[:-1]
    assert [rows for rows, _ in model.calls] == [2] * 4  # B rows, never 2B
    assert [g for _, g in model.calls] == [[5.0, 5.0] if t >= 0.5 else [1.0, 1.0] for t in ts]
    for bad in ({"guidance_method": "apg"}, {"negative_text": text, "negative_mask": mask}):
        with pytest.raises(ValueError, match="embedded_guidance"):
            sampling.sample(model, (2, 4, 1, 2, 2), text, mask, num_steps=2, embedded_guidance=True, **bad)


def test_pipeline_guides_a_distilled_model_in_one_pass_unless_given_a_negative_prompt():
    torch.manual_seed(0)
    vae = VideoVAE(PRESETS["tiny"]).eval()
    dit = _student(_teacher())
    calls = []
    dit.register_forward_hook(lambda m, args, kwargs, out: calls.append((args[0].shape[0], kwargs.get("guidance"))),
                              with_kwargs=True)
    pipe = SpacetimePipeline(dit, vae, HashTextEncoder(dim=32, max_length=16), {})
    pipe("a red ball", num_frames=5, height=32, width=32, num_inference_steps=3, guidance_scale=4.0)
    assert [rows for rows, _ in calls] == [1, 1, 1] and all(float(g) == 4.0 for _, g in calls)
    calls.clear()
    pipe("a red ball", negative_prompt="blur", num_frames=5, height=32, width=32, num_inference_steps=3,
         guidance_scale=4.0)
    assert [rows for rows, _ in calls] == [2, 2, 2] and all(g is None for _, g in calls)  # two passes, as undistilled
    # a scale outside those it learned: two passes too
    pipe = SpacetimePipeline(dit, vae, HashTextEncoder(dim=32, max_length=16), {"guidance_range": [2.0, 6.0]})
    for scale, rows in ((4.0, 1), (8.0, 2), (1.0, 1)):
        calls.clear()
        pipe("a red ball", num_frames=5, height=32, width=32, num_inference_steps=2, guidance_scale=scale)
        assert [r for r, _ in calls] == [rows, rows], scale


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("teacher")
    vae = VideoVAE(PRESETS["tiny"]).eval()
    from spacetime.data.video import frames_to_tensor
    from spacetime.world.clip import make_clip

    clips = torch.stack([frames_to_tensor(make_clip(s, num_frames=5, height=32, width=32).frames) for s in range(3)])
    vae.fit_latent_stats([clips])
    vae_dir = save_model(root / "vae", {"model": vae.config.to_dict()}, vae)
    cfg = {"format": "spacetime-pipeline", "dit": _teacher().config.to_dict(), "text_encoder": "hash:32",
           "text_max_length": 16, "defaults": {"num_frames": 5, "height": 32, "width": 32, "fps": 8.0}}
    return save_model(root / "model", cfg, _teacher(), subdirs={"vae": vae_dir}), vae_dir


def test_spacetime_train_distils_a_teachers_guidance(teacher_dir, tmp_path):
    model_dir, vae_dir = teacher_dir
    args = ["--text_encoder", "hash:32", "--text_max_length", "16", "--model.text_dim", "32", "--model.hidden", "32",
            "--model.depth", "2", "--model.heads", "2", "--data.num_frames", "5", "--data.height", "32",
            "--data.width", "32", "--batch_size", "2", "--threads", "1", "--log_every", "1", "--sample_every", "0",
            "--vae", str(vae_dir), "--model.guidance_embed", "true", "--guidance_teacher", str(model_dir),
            "--init_from", str(model_dir), "--guidance_range", "[2.0, 6.0]", "--max_steps", "2"]
    out = train_dit(load_config(TrainDiTConfig, None, [*args, "--run_dir", str(tmp_path / "a")]), progress=False)
    pipe = SpacetimePipeline.from_pretrained(out)
    assert pipe.dit.config.guidance_embed and pipe.dit.g_embedder is not None
    assert pipe.config["guidance_range"] == [2.0, 6.0]  # the scales it learned, for the pipeline
    assert pipe("a ball", num_inference_steps=2).frames[0].shape == (5, 32, 32, 3)
    # refused up front, naming the key: a student without the embedding, a teacher on another VAE,
    # a teacher that reads prompts another way
    with pytest.raises(ValueError, match="guidance_embed"):
        load_config(TrainDiTConfig, None, [*args, "--model.guidance_embed", "false"])
    other_vae = save_model(tmp_path / "vae2", {"model": VideoVAE(PRESETS["tiny"]).config.to_dict()},
                           VideoVAE(PRESETS["tiny"]))
    with pytest.raises(ValueError, match="another VAE"):
        train_dit(load_config(TrainDiTConfig, None, [*args, "--vae", str(other_vae), "--run_dir", str(tmp_path / "b")]),
                  progress=False)
    with pytest.raises(ValueError, match="text_max_length"):
        train_dit(load_config(TrainDiTConfig, None, [*args, "--text_max_length", "12", "--run_dir", str(tmp_path / "c")]),
                  progress=False)
    with pytest.raises(ValueError, match="guidance_range"):
        load_config(TrainDiTConfig, None, [*args, "--guidance_range", "[6.0, 2.0]"])
