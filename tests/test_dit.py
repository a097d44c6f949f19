"""The DiT: shapes, zero init, packed == separate, unseen sizes, text padding, clean-frame
conditions, shape errors, gradients, config round trip. A tiny model; the whole file runs in seconds."""

import json

import pytest
import torch

from spacetime.dit import PRESETS, DiT, DiTConfig, apply_rope, count_parameters, rope_frequencies

TEXT_DIM = 16
CFG = DiTConfig(in_channels=4, hidden=48, depth=2, heads=2, patch=(1, 2, 2), text_dim=TEXT_DIM)


def make_model(perturb: bool = True, seed: int = 0, cfg: DiTConfig = CFG) -> DiT:
    """A tiny DiT. Perturbed: every weight gets noise, so the zero-initialised paths (adaLN, the
    cross-attention output, the final layer, the condition embedding) carry signal."""
    torch.manual_seed(seed)
    model = DiT(cfg)
    if perturb:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def inputs(b: int = 2, t: int = 3, h: int = 4, w: int = 6, length: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, CFG.in_channels, t, h, w, generator=g)
    timestep = torch.rand(b, generator=g)
    text = torch.randn(b, length, TEXT_DIM, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 3:] = False  # sample 0 has 3 real tokens and 2 of padding
    return x, timestep, text, mask


def test_output_shape_and_zero_init():
    model = make_model(perturb=False)
    x, t, text, mask = inputs()
    with torch.no_grad():
        v = model(x, t, text, mask)
    assert v.shape == x.shape and v.dtype == x.dtype
    assert torch.equal(v, torch.zeros_like(v))  # adaLN-Zero: the untrained model predicts exactly 0
    v = make_model()(x, t, text, mask)
    assert v.shape == x.shape and v.abs().mean() > 0.1


@pytest.mark.parametrize("packed_attention", ["loop", "mask"])
def test_packed_equals_separate(packed_attention):
    model = make_model()
    model.packed_attention = packed_attention  # "mask" is what GPUs run
    g = torch.Generator().manual_seed(3)
    # frame counts, heights, widths all differ; runs of one size (samples 4-6) go as one batched call
    shapes = [(3, 4, 6), (1, 2, 8), (2, 6, 2), (3, 4, 6), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
    latents = [torch.randn(CFG.in_channels, *s, generator=g) for s in shapes]
    t = torch.rand(len(shapes), generator=g)
    text = torch.randn(len(shapes), 5, TEXT_DIM, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0],
                         [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    conds = [torch.tensor([True, False, False]), torch.tensor([False]), torch.tensor([True, True]),
             torch.tensor([False, False, True]), torch.tensor([False, False]), torch.tensor([True, False]),
             torch.tensor([False, True])]
    with torch.no_grad():
        packed = model.forward_packed(latents, t, text, mask, conds)
        for i, z in enumerate(latents):
            alone = model(z[None], t[i : i + 1], text[i : i + 1], mask[i : i + 1], conds[i][None])[0]
            assert packed[i].shape == z.shape
            assert alone.abs().mean() > 0.1
            torch.testing.assert_close(packed[i], alone, atol=1e-5, rtol=1e-5)
        # without conditions too, and the same as a plain batch of equal-size samples
        packed = model.forward_packed([latents[0], latents[3]], t[[0, 3]], text[[0, 3]], mask[[0, 3]])
        batch = model(torch.stack([latents[0], latents[3]]), t[[0, 3]], text[[0, 3]], mask[[0, 3]])
    torch.testing.assert_close(torch.stack(packed), batch, atol=1e-5, rtol=1e-5)


def test_packed_attention_is_checked():
    model = make_model()
    model.packed_attention = "dense"
    latents = [torch.randn(CFG.in_channels, 1, 2, 2), torch.randn(CFG.in_channels, 1, 2, 4)]
    with pytest.raises(ValueError, match="packed_attention"):
        model.forward_packed(latents, torch.rand(2), torch.randn(2, 3, TEXT_DIM), torch.ones(2, 3, dtype=torch.bool))


def test_rope_depends_only_on_relative_position():
    # why unseen sizes work: a query-key score under 3D RoPE is a function of the offset between
    # the two tokens in (time, row, column), not of where they are in the grid
    cfg = CFG
    grid = (5, 7, 9)
    freqs = rope_frequencies(grid, cfg.rope_dims, cfg.rope_theta)  # (N, 1, d/2)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 1, 1, cfg.head_dim, generator=g)

    def score(p1, p2):
        def at(v, p):
            i = (p[0] * grid[1] + p[1]) * grid[2] + p[2]  # token index in (t h w) order
            return apply_rope(v, freqs[i : i + 1])
        return (at(q, p1) * at(k, p2)).sum().item()

    assert score((0, 0, 0), (1, 2, 3)) == pytest.approx(score((3, 4, 5), (4, 6, 8)), abs=1e-4)
    assert score((2, 1, 0), (0, 0, 4)) == pytest.approx(score((4, 6, 4), (2, 5, 8)), abs=1e-4)
    assert score((0, 0, 0), (1, 2, 3)) != pytest.approx(score((0, 0, 0), (1, 2, 4)), abs=1e-3)


def test_unseen_sizes_and_durations():
    model = make_model()
    _, _, text, mask = inputs(b=1)
    t = torch.tensor([0.5])
    outs = {}
    with torch.no_grad():
        for shape in [(3, 4, 6), (7, 10, 4), (1, 2, 2), (2, 16, 6)]:  # incl. 1 frame and a 16x6 (non-square) latent
            x = torch.randn(1, CFG.in_channels, *shape, generator=torch.Generator().manual_seed(1))
            v = model(x, t, text, mask)
            assert v.shape == x.shape and torch.isfinite(v).all() and v.abs().mean() > 0.1
            outs[shape] = (x, v)
        # the first frames of a longer clip see the later ones: a different duration is a different
        # input, not a cropped copy of the same computation
        x7, v7 = outs[(7, 10, 4)]
        v3 = model(x7[:, :, :3], t, text, mask)
    assert not torch.allclose(v3, v7[:, :, :3], atol=1e-4)


def test_text_padding_is_masked():
    model = make_model()
    x, t, text, mask = inputs()
    with torch.no_grad():
        v = model(x, t, text, mask)
        changed = text.clone()
        changed[0, 3:] = 100 * torch.randn(2, TEXT_DIM)  # sample 0's padding: must not matter
        torch.testing.assert_close(model(x, t, changed, mask), v, atol=1e-6, rtol=0)
        changed[0, 0] = torch.randn(TEXT_DIM)  # a real token: must matter, for sample 0 only
        v2 = model(x, t, changed, mask)
        assert (v2[0] - v[0]).abs().max() > 1e-3
        torch.testing.assert_close(v2[1], v[1], atol=1e-6, rtol=0)
        # a longer pad changes nothing either
        longer = torch.cat([text, torch.randn(2, 4, TEXT_DIM)], 1)
        longer_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], 1)
        torch.testing.assert_close(model(x, t, longer, longer_mask), v, atol=1e-5, rtol=1e-5)


def test_cond_mask():
    model = make_model()
    x, t, text, mask = inputs(b=2, t=3)
    with torch.no_grad():
        v = model(x, t, text, mask)
        none = torch.zeros(2, 3, dtype=torch.bool)
        torch.testing.assert_close(model(x, t, text, mask, none), v, atol=1e-6, rtol=0)  # no condition = None
        first = none.clone()
        first[0, 0] = True  # sample 0's first latent frame given clean (image -> video)
        vc = model(x, t, text, mask, first)
        assert (vc[0] - v[0]).abs().max() > 1e-2
        torch.testing.assert_close(vc[1], v[1], atol=1e-6, rtol=0)  # the other sample is untouched
        # a fully conditioned sample is modulated as at timestep 0 everywhere: its own timestep
        # no longer matters, while it does without conditions
        full = torch.ones(2, 3, dtype=torch.bool)
        torch.testing.assert_close(model(x, t, text, mask, full), model(x, t * 0 + 0.9, text, mask, full),
                                   atol=1e-6, rtol=0)
        assert (model(x, t * 0 + 0.9, text, mask) - v).abs().max() > 1e-2
        # timestep 0 without a mask differs from a condition at timestep 0: the condition embedding
        assert (model(x, t * 0, text, mask, full) - model(x, t * 0, text, mask)).abs().max() > 1e-3


def test_bad_shapes_raise_helpful_errors():
    model = make_model(perturb=False)
    x, t, text, mask = inputs()
    with pytest.raises(ValueError, match=r"multiples of the patch \(pt, ph, pw\) = \(1, 2, 2\)"):
        model(x[..., :5], t, text, mask)  # odd width
    with pytest.raises(ValueError, match=r"x must be \(B, 4, t, h, w\)"):
        model(x[:, :3], t, text, mask)
    with pytest.raises(ValueError, match=r"x must be"):
        model(x[0], t, text, mask)
    with pytest.raises(ValueError, match=r"timestep must be \(2,\)"):
        model(x, t[:1], text, mask)
    with pytest.raises(ValueError, match=r"text must be \(2, L, 16\)"):
        model(x, t, text[..., :8], mask)
    with pytest.raises(ValueError, match=r"text_mask must be \(2, 5\)"):
        model(x, t, text, mask[:, :4])
    with pytest.raises(ValueError, match="no real token"):
        model(x, t, text, torch.zeros_like(mask))
    with pytest.raises(ValueError, match=r"cond_mask must be bool \(2, 3\)"):
        model(x, t, text, mask, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"latents\[1\]: latent frames, height and width must be multiples"):
        model.forward_packed([x[0], x[1, :, :, :3]], t, text, mask)
    with pytest.raises(ValueError, match=r"cond_masks\[0\] must be bool \(3,\)"):
        model.forward_packed([x[0], x[1]], t, text, mask, [torch.zeros(2, dtype=torch.bool)] * 2)
    v = model(x, t[0], text, mask)  # a scalar timestep is broadcast (samplers step the whole batch)
    assert v.shape == x.shape


def test_gradients_reach_every_parameter_and_checkpointing_matches():
    model = make_model().train()
    x, t, text, mask = inputs()
    cond = torch.tensor([[True, False, False], [False, False, False]])

    def grads():
        model.zero_grad(set_to_none=True)
        model(x, t, text, mask, cond).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    dead = [n for n, g in plain.items() if g.abs().max() == 0]
    assert not dead, f"no gradient reaches {dead}"
    model.grad_checkpointing = True
    ckpt = grads()
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], atol=1e-6, rtol=1e-5)


def test_zero_init_trains_out_of_zero():
    # at init only the output layer gets a gradient: everything else sits behind the zero output
    # layer and zero gates, as in DiT; training moves the output layer first, then the gates
    model = make_model(perturb=False).train()
    x, t, text, mask = inputs()
    (model(x, t, text, mask) - x).square().mean().backward()
    assert model.final.linear.weight.grad.abs().max() > 0
    assert model.blocks[0].attn.qkv.weight.grad.abs().max() == 0


def test_bf16_autocast_keeps_input_dtype():
    model = make_model()
    x, t, text, mask = inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        v = model(x, t, text, mask)
    assert v.dtype == torch.float32 and v.shape == x.shape
    with torch.no_grad():
        ref = model(x, t, text, mask)
    assert (v - ref).abs().mean() < 0.05 * ref.abs().mean()


def test_config_round_trip_and_validation():
    cfg = DiTConfig(in_channels=8, hidden=96, depth=3, heads=4, patch=(2, 2, 2), text_dim=32, mlp_ratio=2.0)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["patch"] == [2, 2, 2]
    assert DiTConfig(**d) == cfg and DiTConfig(**d).patch == (2, 2, 2)
    assert cfg.rope_dims == (8, 8, 8) and sum(CFG.rope_dims) == CFG.head_dim and all(r % 2 == 0 for r in CFG.rope_dims)
    with pytest.raises(ValueError, match=r"hidden \(100\) must be divisible by heads \(3\)"):
        DiTConfig(hidden=100, heads=3)
    assert DiTConfig(hidden=30, heads=3).rope_dims == (6, 2, 2)  # head width 10
    with pytest.raises(ValueError, match=r"head width .* = 9 must be even"):
        DiTConfig(hidden=36, heads=4)
    with pytest.raises(ValueError, match=r"patch must be three positive sizes"):
        DiTConfig(patch=(1, 2))
    with pytest.raises(ValueError, match="depth must be >= 1, got 0"):
        DiTConfig(depth=0)


def test_presets():
    for name, cfg in PRESETS.items():
        assert DiTConfig(**cfg.to_dict()) == cfg, name
    world = PRESETS["world"]
    assert (world.hidden, world.depth, world.heads, world.patch) == (384, 6, 6, (1, 2, 2))
    assert 15e6 < count_parameters(DiT(world)) < 17e6
    assert count_parameters(DiT(PRESETS["tiny"])) < 1e6


@pytest.mark.parametrize("packed", [False, True])
def test_padding_columns_are_trimmed_and_change_nothing(packed):
    model = make_model()
    x, t, text, mask = inputs(length=5)
    mask[1, 4:] = False  # both rows end in padding: column 4 is padding everywhere
    wide_text = torch.cat([text, torch.randn(2, 251, TEXT_DIM)], 1)  # padded to 256 with garbage
    wide_mask = torch.cat([mask, torch.zeros(2, 251, dtype=torch.bool)], 1)
    seen = []
    hook = model.blocks[0].cross.kv.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    with torch.no_grad():
        run = (lambda tx, m: model(list(x), t, tx, m)) if packed else (lambda tx, m: model(x, t, tx, m))
        wide, short = run(wide_text, wide_mask), run(text[:, :4], mask[:, :4])
    hook.remove()
    assert seen == [4, 4]  # the kv projection only ever sees the 4 columns some row uses
    for a, b in zip(wide, short):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_frame_perturbation_cuts_every_path_across_time():
    """Skip guidance's weak model: with every block's self-attention kept within its latent frame,
    nothing crosses time, so the clip's velocity is each frame's run alone (3D RoPE's time rotation
    cancels within a frame); one perturbed block still lets a frame change another's output."""
    model = make_model()
    x, t, text, mask = inputs(t=3)
    with torch.no_grad():
        cut = model(x, t, text, mask, perturbed_blocks=(0, -1))
        alone = torch.cat([model(x[:, :, i : i + 1], t, text, mask) for i in range(3)], 2)
        torch.testing.assert_close(cut, alone, atol=1e-5, rtol=1e-5)
        assert (model(x, t, text, mask) - cut).abs().max() > 1e-2  # the plain model is not that
        y = x.clone()
        y[:, :, 0] += 1.0  # change frame 0 only
        one = model(y, t, text, mask, perturbed_blocks=(1,)) - model(x, t, text, mask, perturbed_blocks=(1,))
        assert one[:, :, 1:].abs().max() > 1e-3  # block 0 still mixes frames


def test_identity_perturbation_makes_tokens_independent():
    model = make_model()
    x, t, text, mask = inputs(t=2, h=4, w=4)
    y = x.clone()
    y[:, :, 1, :2, :2] += 1.0  # one token (patch 1x2x2) of frame 1
    with torch.no_grad():
        diff = (model(y, t, text, mask, perturbed_blocks=(0, 1), perturbation="identity")
                - model(x, t, text, mask, perturbed_blocks=(0, 1), perturbation="identity"))
        plain = model(y, t, text, mask) - model(x, t, text, mask)
    assert diff[:, :, 1, :2, :2].abs().max() > 1e-2
    changed = diff.abs().amax(dim=1) > 1e-6  # (B, t, h, w)
    assert changed.sum() == 2 * 4  # only that token's 4 latent pixels, in both samples
    assert (plain.abs().amax(dim=1) > 1e-6).all()  # attention spreads it everywhere otherwise


def test_perturbation_errors():
    model = make_model()
    x, t, text, mask = inputs()
    with pytest.raises(ValueError, match="block 2 is not one of the model's 2"):
        model(x, t, text, mask, perturbed_blocks=(2,))
    with pytest.raises(ValueError, match="perturbation must be 'frame' or 'identity', got 'time'"):
        model(x, t, text, mask, perturbed_blocks=(0,), perturbation="time")
    with pytest.raises(ValueError, match="not a packed list"):
        model(list(x), t, text, mask, perturbed_blocks=(0,))
