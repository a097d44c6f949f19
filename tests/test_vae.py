"""The causal video VAE: shape contract, causality, chunked and tiled paths."""

import pytest
import torch

from spacetime.vae import PRESETS, VAEConfig, VideoVAE, gradient_loss, kl_loss


@pytest.fixture(scope="module", params=[0, 8], ids=["folded", "frame-stage"])
def vae(request):
    torch.manual_seed(0)
    cfg = VAEConfig(**{**PRESETS["tiny"].to_dict(), "frame_channels": request.param})
    return VideoVAE(cfg).eval()


def video(t=9, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, t, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize("t,h,w", [(1, 16, 16), (5, 32, 32), (17, 64, 64), (9, 32, 48), (13, 48, 24)])
def test_shape_contract(vae, t, h, w):
    z = vae.encode(video(t, h, w))
    assert z.shape == (1, 16, 1 + (t - 1) // 4, h // 8, w // 8) == (1, *vae.latent_shape(t, h, w))
    assert vae.decode(z).shape == (1, 3, t, h, w)


@pytest.mark.parametrize(
    "shape,match",
    [((1, 3, 8, 32, 32), "1 \\+ 4k"), ((1, 3, 9, 30, 32), "multiples of 8"), ((1, 4, 9, 32, 32), r"\(B, 3"),
     ((3, 9, 32, 32), r"\(B, 3")],
)
def test_bad_shapes_are_named(vae, shape, match):
    with pytest.raises(ValueError, match=match):
        vae.encode(torch.zeros(shape))
    with pytest.raises(ValueError, match="latents"):
        vae.decode(torch.zeros(1, 4, 2, 4, 4))


def test_image_is_a_one_frame_video_and_time_is_causal(vae):
    x = video(17)
    z = vae.encode(x, chunk=None)
    torch.testing.assert_close(vae.encode(x[:, :, :1]), z[:, :, :1], atol=1e-5, rtol=0)
    # changing frames 9.. leaves latent frames 0..2 (frames <= 8) untouched
    y = x.clone()
    y[:, :, 9:] = -y[:, :, 9:]
    zy = vae.encode(y, chunk=None)
    torch.testing.assert_close(zy[:, :, :3], z[:, :, :3], atol=1e-5, rtol=0)
    assert (zy[:, :, 3:] - z[:, :, 3:]).abs().max() > 1e-3
    # and the decoder: frames 0..8 depend only on latent frames 0..2
    d = vae.decode(z, chunk=None)
    z2 = z.clone()
    z2[:, :, 3:] = 0
    torch.testing.assert_close(vae.decode(z2, chunk=None)[:, :, :9], d[:, :, :9], atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_equals_unchunked(vae, chunk):
    x = video(29, 32, 32)
    z = vae.encode(x, chunk=None)
    torch.testing.assert_close(vae.encode(x, chunk=chunk), z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(vae.decode(z, chunk=chunk), vae.decode(z, chunk=None), atol=1e-5, rtol=1e-5)


def test_tiles_blend_without_seams(vae):
    flat = torch.full((1, 3, 5, 64, 96), 0.4)
    z = vae.encode(flat)
    assert z.std(dim=(3, 4)).max() < 1e-5  # a flat colour gives flat latents, even at the borders
    torch.testing.assert_close(vae.encode(flat, tile=32), z, atol=1e-5, rtol=0)
    torch.testing.assert_close(vae.decode(z, tile=32), vae.decode(z), atol=1e-5, rtol=0)
    assert vae.decode(z, tile=32).shape == (1, 3, 5, 64, 96)
    with pytest.raises(ValueError, match="tile"):
        vae.encode(flat, tile=20)


def test_latent_normalization_round_trip(vae):
    x = video(9)
    raw = vae.encode(x, normalize=False)
    vae2 = VideoVAE(vae.config)
    vae2.load_state_dict(vae.state_dict())
    vae2.eval().fit_latent_stats([x, video(9, seed=1)])
    z = vae2.encode(x)
    assert abs(float(z.mean())) < 0.5 and 0.5 < float(z.std()) < 2.0
    torch.testing.assert_close(vae2.denormalize(z), raw, atol=1e-5, rtol=1e-5)


def test_forward_and_kl():
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(channels=(8, 8, 8)))
    recon, mean, logvar = vae(video(5, 16, 16), generator=torch.Generator().manual_seed(0))
    assert recon.shape == (1, 3, 5, 16, 16) and mean.shape == logvar.shape == (1, 16, 2, 2, 2)
    assert kl_loss(torch.zeros(4), torch.zeros(4)) == 0
    assert kl_loss(torch.ones(4), torch.zeros(4)) == pytest.approx(0.5)


def test_gradient_loss_pays_for_rounded_corners_not_for_flat_offsets():
    square = torch.full((1, 3, 1, 16, 16), -1.0)
    square[..., 4:10, 4:10] = 1.0
    assert gradient_loss(square, square) == 0
    # a uniform shift costs pixel L1 but leaves every edge where it was
    assert gradient_loss(square + 0.3, square) == pytest.approx(0.0, abs=1e-6)
    rounded = square.clone()
    for y, x in ((4, 4), (4, 9), (9, 4), (9, 9)):
        rounded[..., y, x] = -1.0  # the four corner pixels knocked off: a blob
    blurred = torch.nn.functional.avg_pool3d(square, (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False)
    r, b = float(gradient_loss(rounded, square)), float(gradient_loss(blurred, square))
    assert r > 0 and b > r  # each corner costs; a blur that moves every edge costs more
    # the exact value: each knocked-off corner changes 2 horizontal and 2 vertical differences by 2
    assert r == pytest.approx(2 * (4 * 2 * 2.0 * 3) / (3 * 16 * 15), rel=1e-6)  # (dx + dy) over 3x16x15 each
    with pytest.raises(ValueError, match=r"recon and video must be \(B, C, T, H, W\) of one shape"):
        gradient_loss(square[0], square[0])


def test_config_validation():
    with pytest.raises(ValueError, match="channels"):
        VAEConfig(channels=())
    with pytest.raises(ValueError, match="latent_channels"):
        VAEConfig(latent_channels=0)
    with pytest.raises(ValueError, match="frame_channels"):
        VAEConfig(frame_channels=-1)
    assert VAEConfig().spatial_factor == 8 and VAEConfig(channels=(8, 8)).spatial_factor == 4


def test_input_dtypes_follow_the_model_and_bad_ones_are_named(vae):
    """A float64 clip into a float32 model, or a float32 clip into a bf16 one, was a conv's
    "Input type and bias type should be the same"; uint8 frames and empty sizes were torch errors."""
    v = video(5, 16, 16)
    z = vae.encode(v)
    assert torch.allclose(vae.encode(v.double()), z, atol=1e-5)
    assert vae.decode(z.double()).shape == v.shape
    half = VideoVAE(vae.config).to(torch.bfloat16).eval()
    half.load_state_dict(vae.state_dict())
    zb = half.encode(v)
    assert zb.dtype == torch.bfloat16 and half.decode(zb.float()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="floating point"):
        vae.encode(((v + 1) * 127.5).to(torch.uint8))
    with pytest.raises(ValueError, match="positive multiples of 8"):
        vae.encode(torch.zeros(1, 3, 1, 0, 0))
    for shape in ((1, 16, 0, 2, 2), (1, 16, 1, 0, 2)):
        with pytest.raises(ValueError, match=r"latents must be \(B, 16, t, h, w\)"):
            vae.decode(torch.zeros(shape))
    for chunk in (0, -1, 1.5):
        with pytest.raises(ValueError, match="chunk"):
            vae.encode(v, chunk=chunk)
        with pytest.raises(ValueError, match="chunk"):
            vae.decode(z, chunk=chunk)


def test_a_clip_on_another_device_than_the_model_is_named(vae):
    """Was a conv's "Input type (torch.FloatTensor) and weight type (...)" (here: the meta device
    stands in for a GPU)."""
    moved = VideoVAE(vae.config).to("meta")
    with pytest.raises(ValueError, match="video is on cpu and the VAE on meta"):
        moved.encode(video(5, 16, 16))
    with pytest.raises(ValueError, match="latents is on cpu and the VAE on meta"):
        moved.decode(torch.zeros(1, 16, 2, 2, 2))


def test_sampled_encode_stays_chunked(vae, monkeypatch):
    """encode(sample=True) ran a second, whole-clip encoder pass (encode_dist) for the variance,
    so its memory grew with the clip's length whatever `chunk` said; the chunked pass has it."""
    v = video(17, 16, 16)
    g = torch.Generator().manual_seed(1)
    mean, logvar = vae.encode_dist(v)
    eps = torch.randn(mean.shape, generator=g)
    want = vae.normalize(mean + torch.exp(0.5 * logvar) * eps)

    def whole_clip(*args, **kwargs):
        raise AssertionError("a whole-clip pass")

    monkeypatch.setattr(vae, "encode_dist", whole_clip)
    got = vae.encode(v, sample=True, generator=torch.Generator().manual_seed(1), chunk=1)
    assert torch.allclose(got, want, atol=1e-4)


def test_latent_shape_refuses_a_size_the_vae_does_not_take():
    """latent_shape(8, ...) gave the shape of a 5-frame clip, and a 30-pixel side the shape of 24."""
    vae = VideoVAE(VAEConfig(channels=(8, 16)))
    fs = vae.config.spatial_factor
    assert vae.latent_shape(9, 4 * fs, 8 * fs) == (16, 3, 4, 8)
    assert vae.encode(torch.zeros(1, 3, 9, 4 * fs, 8 * fs)).shape[1:] == vae.latent_shape(9, 4 * fs, 8 * fs)
    for bad, why in (((8, 4 * fs, 4 * fs), "frame count must be 1 \\+ 4k .*got 8"),
                     ((0, 4 * fs, 4 * fs), "frame count must be 1 \\+ 4k .*got 0"),
                     ((9, 4 * fs - 2, 4 * fs), f"height and width must be positive multiples of {fs}"),
                     ((9, 4 * fs, 0), f"height and width must be positive multiples of {fs}")):
        with pytest.raises(ValueError, match=why):
            vae.latent_shape(*bad)
