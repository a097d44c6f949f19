"""Provenance: signed C2PA manifests that read back, tamper detection, the pixel watermark's
imperceptibility, robustness and specificity, and signing-key errors that write nothing."""

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spacetime.cli import main
from spacetime.data.video import export_to_video, read_video, write_video
from spacetime.provenance import (
    Ingredient,
    Provenance,
    ProvenanceError,
    SigningIdentity,
    SigningKeyError,
    detect_watermark,
    generation_claims,
    local_identity,
    model_identity,
    read_credentials,
    resolve_identity,
    sign_file,
    verify_file,
    watermark,
    watermark_score,
    write_output,
)
from spacetime.provenance.watermark import THRESHOLD, psnr
from spacetime.world.clip import make_clip, stream_seed


def _clip(i: int, split: str = "heldout") -> np.ndarray:
    return make_clip(stream_seed(11, i, split), split=split).frames  # 17 x 64 x 64, as generated


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def _claims(**kw) -> dict:
    args = {"prompt": "a red ball bounces", "model": {"name": "tiny", "sha256": "ab" * 32},
            "parameters": {"num_frames": 17, "guidance_scale": 5.0}, "seed": 7, "mode": "text-to-video", **kw}
    return generation_claims(**args)


@pytest.fixture
def cfg(tmp_path):
    return tmp_path / "config"


def test_watermark_is_invisible_and_survives_reencoding_resizing_and_cropping(tmp_path):
    for i in range(3):
        clip = _clip(i)
        marked = watermark(clip)
        assert marked.shape == clip.shape and marked.dtype == np.uint8
        assert _psnr(clip, marked) >= 40.0
        assert watermark_score(clip) < THRESHOLD < watermark_score(marked)
        # strip everything but the pixels: H.264 CRF 28 (metadata gone), 2x resize, 10% border crop
        path = tmp_path / f"{i}.mp4"
        big = np.stack([np.asarray(Image.fromarray(f).resize((128, 128), Image.BICUBIC)) for f in marked])
        write_video(big[:, 13:-13, 13:-13], path, crf=28)
        attacked, _ = read_video(path)
        res = detect_watermark(attacked)
        assert res.detected and res.score > THRESHOLD + 2, (i, res)
        assert not detect_watermark(attacked, key="another key").detected


def test_unmarked_clips_are_not_flagged():
    # world clips, and a camera-like clip: a textured picture panning and zooming, with sensor noise
    rng = np.random.default_rng(0)
    scores = [watermark_score(_clip(i, "train")) for i in range(6)]
    tex = np.asarray(Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).resize((160, 160), Image.BICUBIC))
    pan = np.stack([tex[2 * t:2 * t + 64, t:t + 64] for t in range(17)]).astype(float)
    pan = np.clip(pan + rng.normal(0, 2, pan.shape), 0, 255).astype(np.uint8)
    scores.append(watermark_score(pan))
    assert max(scores) < THRESHOLD - 1, scores
    assert not detect_watermark(_clip(0)[:5]).detected and detect_watermark(_clip(0)[:5]).score is None  # too short


def test_stills_carry_their_own_mark():
    """A one-frame output (PNG) gets the spatial still mark: detected, >= 40 dB, and unmarked stills
    (world frames, a textured picture) are not flagged; 2..7-frame clips stay unjudged."""
    rng = np.random.default_rng(1)
    tex = np.asarray(Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).resize((64, 64), Image.BICUBIC))
    for still in [_clip(i)[8:9] for i in range(4)] + [tex[None]]:
        marked = watermark(still)
        assert marked.shape == still.shape and psnr(still, marked) >= 40
        assert detect_watermark(marked).detected and detect_watermark(marked).score > 6
        assert not detect_watermark(still).detected and detect_watermark(still).score < THRESHOLD - 1
    assert not detect_watermark(watermark(_clip(0)[8:9]), key="another key").detected
    assert detect_watermark(_clip(0)[:3]).score is None


def test_watermark_of_a_very_wide_strip_is_made_and_read():
    """A 16-pixel-tall strip 2000 wide was block-averaged to 2 rows, which left the detector's
    cosine basis singular: generate failed with "Singular matrix" after generating."""
    rng = np.random.default_rng(0)
    for h, w in ((16, 2000), (2000, 16)):
        frames = rng.integers(0, 256, (9, h, w, 3), dtype=np.uint8)
        marked = watermark(frames)
        assert marked.shape == frames.shape and np.isfinite(watermark_score(marked))
        assert np.isfinite(watermark_score(frames))


def test_watermark_keeps_black_and_white_backgrounds_marked():
    for level in (0, 255):  # no room on one side: the embedder uses the other
        clip = np.full((17, 64, 64, 3), level, np.uint8)
        clip[:, 20:30, 20:30] = (200, 30, 30)
        marked = watermark(clip)
        assert _psnr(clip, marked) >= 40.0 and watermark_score(marked) > THRESHOLD + 2


def test_local_identity_is_made_once_with_a_private_key_and_a_c2pa_signing_profile(cfg):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ident = local_identity(cfg)
    key = cfg / "signing" / "signer.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert local_identity(cfg).cert_chain_pem == ident.cert_chain_pem  # reused, not remade
    leaf, ca = x509.load_pem_x509_certificates(ident.cert_chain_pem)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert leaf.issuer == ca.subject and ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not (cfg / "signing" / "ca.key").exists()  # the CA key is not kept


def test_signed_output_reads_back_with_the_right_claims(tmp_path, cfg):
    out = tmp_path / "out.mp4"
    record = write_output(_clip(0), out, 8.0, Provenance(_claims(), config_dir=cfg))
    assert record["c2pa"] and record["watermark"]
    report = verify_file(out, config_dir=cfg)
    assert report["exit_code"] == 0 and report["c2pa"]["trusted"] and report["watermark"]["detected"]
    claims = report["c2pa"]["claims"]
    assert claims["ai_generated"] and claims["generator"].startswith("spacetime ")
    assert claims["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert claims["actions"][0]["action"] == "c2pa.created"
    gen = claims["generation"]
    assert gen["model"] == {"name": "tiny", "sha256": "ab" * 32} and gen["seed"] == 7
    assert gen["parameters"]["guidance_scale"] == 5.0 and gen["mode"] == "text-to-video"
    assert "prompt" not in gen and len(gen["prompt_sha256"]) == 64  # the prompt only as a hash by default
    # elsewhere (another machine's trust store) the manifest is intact but its signer untrusted
    other = verify_file(out, config_dir=tmp_path / "elsewhere")
    assert other["c2pa"]["valid"] and not other["c2pa"]["trusted"]
    # --embed-prompt stores it; a still (PNG) is signed too
    still = tmp_path / "still.png"
    write_output(_clip(1)[:1], still, 8.0, Provenance(_claims(embed_prompt=True), config_dir=cfg))
    rep = verify_file(still, config_dir=cfg)
    assert rep["exit_code"] == 0 and rep["c2pa"]["claims"]["generation"]["prompt"] == "a red ball bounces"
    assert rep["watermark"]["detected"]  # and its pixels carry the still mark


def test_an_output_whose_mark_cannot_be_found_says_so(tmp_path, cfg, caplog):
    """Noise-like frames (an untrained model's) or a 5-frame clip carry no detectable mark: the
    sidecar record and the log say so instead of implying a watermark `verify` cannot find."""
    record = write_output(_clip(0), tmp_path / "ok.mp4", 8.0, Provenance(_claims(), config_dir=cfg))
    assert record["watermark"] and record["watermark_detectable"] is True
    noise = np.random.default_rng(0).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    with caplog.at_level("WARNING", logger="spacetime.provenance.output"):
        record = write_output(noise, tmp_path / "noise.mp4", 8.0, Provenance(_claims(), config_dir=cfg))
        short = write_output(_clip(1)[:5], tmp_path / "short.mp4", 8.0, Provenance(_claims(), config_dir=cfg))
    assert record["watermark_detectable"] is False and short["watermark_detectable"] is False
    assert "noise.mp4: the pixel watermark cannot be detected in this content" in caplog.text
    assert "short.mp4: the pixel watermark cannot be detected in this clip (2-7 frames are not judged)" in caplog.text


def test_signing_leaves_every_frame_as_it_was(tmp_path, cfg):
    src, dest = tmp_path / "plain.mp4", tmp_path / "signed.mp4"
    write_video(_clip(2), src)
    sign_file(src, dest, _claims(), local_identity(cfg))
    assert dest.stat().st_size > src.stat().st_size
    assert np.array_equal(read_video(src)[0], read_video(dest)[0])
    assert not read_credentials(src)["present"] and read_credentials(dest)["present"]


def _mdat_byte(path: Path) -> int:
    """The offset of a byte in the middle of the MP4's media data (the mdat box)."""
    data, pos = path.read_bytes(), 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"mdat":
            return pos + 8 + (size - 8) // 2
        pos += size
    raise AssertionError("no mdat box")


def test_one_flipped_media_byte_makes_verify_exit_2(tmp_path, cfg, capsys, monkeypatch):
    out = tmp_path / "out.mp4"
    write_output(_clip(3), out, 8.0, Provenance(_claims(), config_dir=cfg))
    monkeypatch.setenv("SPACETIME_CONFIG_DIR", str(cfg))
    assert main(["verify", str(out)]) == 0
    data = bytearray(out.read_bytes())
    data[_mdat_byte(out)] ^= 0x01
    out.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", "--json", str(out)]) == 2
    report = json.loads(capsys.readouterr().out)[0]
    assert report["c2pa"]["present"] and not report["c2pa"]["valid"]
    assert any("mismatch" in f["code"] for f in report["c2pa"]["failures"])
    # a missing file or a directory beside it is reported in its place (exit 3), never hiding the 2
    capsys.readouterr()
    assert main(["verify", "--json", str(tmp_path / "nope.mp4"), str(out), str(tmp_path)]) == 2
    reports = json.loads(capsys.readouterr().out)
    assert [r["exit_code"] for r in reports] == [3, 2, 3] and reports[2]["error"] == "is a directory"
    plain = tmp_path / "plain.mp4"
    write_video(_clip(3), plain)
    assert main(["verify", str(plain), str(tmp_path / "nope.mp4")]) == 3  # could not check outranks no mark
    assert "nope.mp4: error: no such file" in capsys.readouterr().out
    # bad usage and unreadable trust settings are 3, not argparse's 2 ("tampered" to a script)
    with pytest.raises(SystemExit) as e:
        main(["verify"])
    assert e.value.code == 3
    (tmp_path / "notes.txt").write_text("not a certificate")
    for pem, why in ((tmp_path / "none.pem", "no such file"), (tmp_path / "notes.txt", "not a PEM certificate")):
        assert main(["verify", "--trust-anchors", str(pem), str(plain)]) == 3
        assert why in capsys.readouterr().err


def test_reencoding_strips_the_manifest_but_not_the_watermark(tmp_path, cfg):
    out, copy = tmp_path / "out.mp4", tmp_path / "reencoded.mp4"
    write_output(_clip(4), out, 8.0, Provenance(_claims(), config_dir=cfg))
    write_video(read_video(out)[0], copy, crf=28)
    report = verify_file(copy, config_dir=cfg)
    assert not report["c2pa"]["present"] and report["watermark"]["detected"] and report["exit_code"] == 0
    plain = tmp_path / "plain.mp4"  # neither mark: exit 1
    write_video(_clip(4), plain)
    assert verify_file(plain, config_dir=cfg)["exit_code"] == 1


def test_ingredients_and_actions_are_recorded_for_an_edit(tmp_path, cfg):
    src, out = tmp_path / "input.mp4", tmp_path / "edited.mp4"
    write_video(_clip(5), src)
    claims = _claims(mode="edit", parameters={"strength": 0.6})
    export_to_video(_clip(6), out, fps=8, provenance=Provenance(claims, [Ingredient(src, "video")], config_dir=cfg))
    rep = verify_file(out, config_dir=cfg)
    assert rep["exit_code"] == 0
    claims = rep["c2pa"]["claims"]
    assert claims["ingredients"] == [{"title": "input.mp4", "relationship": "inputTo", "format": "video/mp4"}]
    assert [a["action"] for a in claims["actions"]] == ["c2pa.created", "c2pa.edited"]
    assert "strength 0.6" in claims["actions"][1]["description"]
    inputs = claims["generation"]["inputs"]
    assert inputs[0]["role"] == "video" and len(inputs[0]["sha256"]) == 64


def test_an_output_another_tool_re_signed_names_our_claim_in_its_ingredient(tmp_path, cfg):
    """C2PA tools that open a file and sign their own manifest keep the old one as an ingredient:
    the report shows what that ingredient's manifest claims (it said "AI-generated: no (None), by
    None" for the outer manifest, and nothing of ours)."""
    import c2pa

    from spacetime.provenance import format_report
    from spacetime.provenance.identity import local_identity

    ours, resigned = tmp_path / "ours.mp4", tmp_path / "resigned.mp4"
    write_output(_clip(2), ours, 8.0, Provenance(_claims(), config_dir=cfg))
    editor = local_identity(tmp_path / "editor")
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", editor.cert_chain_pem, editor.key_pem, None))
    context = c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                                      "builder": {"thumbnail": {"enabled": False}}}, signer=signer)
    builder = c2pa.Builder({"claim_generator_info": [{"name": "Editor", "version": "2"}], "title": "re.mp4",
                            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                                {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}]}}]},
                           context=context)
    with open(ours, "rb") as f:
        builder.add_ingredient({"title": "ours.mp4", "relationship": "parentOf", "label": "parent"}, "video/mp4", f)
    with open(ours, "rb") as src, open(resigned, "w+b") as dst:
        builder.sign("video/mp4", src, dst)
    report = verify_file(resigned, config_dir=cfg)
    claims = report["c2pa"]["claims"]
    assert claims["digital_source_type"] is None and not claims["ai_generated"]
    own = claims["ingredients"][0]["manifest"]
    assert own["ai_generated"] and own["generator"].startswith("spacetime ") and own["valid"]
    text = format_report(report)
    assert "AI-generated: not stated by this manifest" in text
    assert "ingredient: ours.mp4 (parentOf); its own manifest (valid" in text and "AI-generated by spacetime" in text


def test_a_missing_or_bad_signing_key_is_a_clear_error_and_writes_nothing(tmp_path, cfg):
    ident = local_identity(cfg)
    cert = cfg / "signing" / "signer.pem"
    with pytest.raises(SigningKeyError, match="nope.key: no such file"):
        resolve_identity(cert, tmp_path / "nope.key")
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(SigningKeyError, match="bad.key: not an unencrypted PEM private key"):
        resolve_identity(cert, bad)
    with pytest.raises(SigningKeyError, match="together"):
        resolve_identity(cert, None)
    other = local_identity(tmp_path / "other")
    (tmp_path / "other.key").write_bytes(other.key_pem)
    with pytest.raises(SigningKeyError, match="does not belong"):
        resolve_identity(cert, tmp_path / "other.key")
    # the library refuses to sign with a CA certificate: nothing appears at the output path
    folder = tmp_path / "outs"
    ca_only = SigningIdentity(ident.trust_anchors_pem, ident.key_pem, "es256", "test")
    with pytest.raises(ProvenanceError, match="signing"):
        write_output(_clip(0), folder / "x.mp4", 8.0, Provenance(_claims(), identity=ca_only))
    assert os.listdir(folder) == []


def test_generate_signs_by_default_and_the_sidecar_says_when_it_does_not(tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setenv("SPACETIME_CONFIG_DIR", str(tmp_path / "config"))
    base = ["generate", "a red ball", "--model", str(tiny_model_dir), "--num-inference-steps", "1", "--num-frames", "9"]
    out = tmp_path / "signed.mp4"
    assert main([*base, "--output", str(out)]) == 0
    side = json.loads(out.with_suffix(".json").read_text())["provenance"]
    assert side["c2pa"] and side["watermark"] and not side["prompt_in_manifest"]
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert "valid and trusted" in text and "watermark:" in text  # a random tiny model's frames: any score
    gen = verify_file(out)["c2pa"]["claims"]["generation"]
    assert gen["model"] == model_identity(tiny_model_dir) and gen["parameters"]["num_frames"] == 9
    assert (gen["parameters"]["guidance_interval_low"], gen["parameters"]["guidance_interval_high"]) == (0.0, 1.0)
    bare = tmp_path / "bare.mp4"
    assert main([*base, "--no-provenance", "--output", str(bare)]) == 0
    side = json.loads(bare.with_suffix(".json").read_text())["provenance"]
    assert not side["c2pa"] and "no Content Credentials" in side["c2pa_absent_because"]
    assert not verify_file(bare)["c2pa"]["present"]
    capsys.readouterr()
    assert main([*base, "--sign-cert", str(tmp_path / "config" / "signing" / "signer.pem"),
                 "--sign-key", str(tmp_path / "missing.key"), "--output", str(tmp_path / "x.mp4")]) == 1
    assert "missing.key: no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.json").exists()


def test_a_damaged_file_without_credentials_is_not_called_tampered(tmp_path, cfg, capsys, monkeypatch):
    # C2PA cannot parse either file; only the one that was signed had credentials to break
    monkeypatch.setenv("SPACETIME_CONFIG_DIR", str(cfg))
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 500)
    plain = tmp_path / "plain.mp4"
    export_to_video(_clip(4), plain, fps=8)
    cut_plain = tmp_path / "cut-plain.mp4"
    cut_plain.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    signed = tmp_path / "signed.mp4"
    write_output(_clip(4), signed, 8.0, Provenance(_claims(), config_dir=cfg))
    cut_signed = tmp_path / "cut-signed.mp4"
    cut_signed.write_bytes(signed.read_bytes()[: signed.stat().st_size // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    # nothing decodes and no manifest: not checked (3), not "no mark" (1), which claims a check
    for f, code in ((garbage, 3), (empty, 3), (cut_plain, 3), (cut_signed, 2)):  # cut-plain: its index is gone
        capsys.readouterr()
        assert main(["verify", "--json", str(f)]) == code, f.name
        report = json.loads(capsys.readouterr().out)[0]
        assert report["c2pa"]["present"] is (code == 2), f.name


def test_inputs_are_attached_by_their_content_not_their_extension(tmp_path, cfg):
    # a PNG renamed .jpg and a JPEG renamed .mp4 used to fail signing after the whole generation
    frame = _clip(7)[0]
    png_as_jpg, jpg_as_mp4 = tmp_path / "png_as.jpg", tmp_path / "jpg_as.mp4"
    Image.fromarray(frame).save(png_as_jpg, format="PNG")
    Image.fromarray(frame).save(jpg_as_mp4, format="JPEG")
    for src, role, mode, fmt in ((png_as_jpg, "image", "image-to-video", "image/png"),
                                 (jpg_as_mp4, "video", "edit", "image/jpeg")):
        out = tmp_path / f"out-{role}.mp4"
        claims = _claims(mode=mode, parameters={"strength": 0.5})
        assert write_output(_clip(8), out, 8.0, Provenance(claims, [Ingredient(src, role)], config_dir=cfg))["c2pa"]
        rep = verify_file(out, config_dir=cfg)
        assert rep["exit_code"] == 0 and rep["c2pa"]["trusted"]
        assert rep["c2pa"]["claims"]["ingredients"] == [{"title": src.name, "relationship": "inputTo", "format": fmt}]


def test_inputs_c2pa_cannot_read_are_kept_by_hash_and_the_output_is_still_signed(tmp_path, cfg, caplog):
    frame = _clip(9)[0]
    bmp, good = tmp_path / "frame.bmp", tmp_path / "good.png"
    Image.fromarray(frame).save(bmp)
    Image.fromarray(frame).save(good)
    junk = tmp_path / "junk.mp4"  # no format at all
    junk.write_bytes(bytes(range(256)) * 4)
    cut = tmp_path / "cut.png"  # PNG by its magic bytes, unparseable after them
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    ings = [Ingredient(bmp, "image"), Ingredient(junk, "video"), Ingredient(cut, "video2"), Ingredient(good, "image")]
    out = tmp_path / "out.mp4"
    with caplog.at_level("WARNING", logger="spacetime.provenance"):
        write_output(_clip(10), out, 8.0, Provenance(_claims(mode="connect"), ings, config_dir=cfg))
    for name, why in (("frame.bmp", "image/bmp"), ("junk.mp4", "no format"), ("cut.png", "could not parse it as image/png")):
        assert any(name in r.message and "not attached" in r.message and why in r.message for r in caplog.records), name
    rep = verify_file(out, config_dir=cfg)
    assert rep["exit_code"] == 0 and rep["c2pa"]["trusted"]
    claims = rep["c2pa"]["claims"]
    # only the readable input is a C2PA ingredient; all four are in the claims by their hash
    assert claims["ingredients"] == [{"title": "good.png", "relationship": "inputTo", "format": "image/png"}]
    assert [i["sha256"] for i in claims["generation"]["inputs"]] == [hashlib.sha256(i.path.read_bytes()).hexdigest() for i in ings]


@pytest.mark.parametrize("ext, make", [
    ("png", "PNG"), ("jpg", "JPEG"), ("gif", "GIF"), ("webp", "WEBP"), ("tif", "TIFF"), ("bmp", "BMP"),
    ("mp4", "libx264"), ("mov", "libx264"), ("mkv", "libx264"), ("webm", "libvpx-vp9"), ("avi", "mpeg4"),
])
def test_input_formats_are_sniffed_from_their_bytes(tmp_path, ext, make):
    import av

    from spacetime.provenance.credentials import sniff_mime

    frame = np.zeros((16, 16, 3), np.uint8)
    path = tmp_path / f"a.{ext}"
    if make.isupper():
        Image.fromarray(frame).save(path, format=make)
    else:
        with av.open(str(path), "w") as c:
            s = c.add_stream(make, rate=8)
            s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
            for pkt in [*s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")), *s.encode()]:
                c.mux(pkt)
    want = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp", "tif": "image/tiff",
            "bmp": "image/bmp", "mp4": "video/mp4", "mov": "video/quicktime", "mkv": "video/x-matroska",
            "webm": "video/webm", "avi": "video/x-msvideo"}[ext]
    renamed = path.rename(tmp_path / "renamed.dat")  # the extension plays no part
    assert sniff_mime(renamed) == want


BAD_PEM = "-----BEGIN CERTIFICATE-----\nMIIBgarbage\n-----END CERTIFICATE-----\n"


def test_a_malformed_trust_anchor_is_a_usage_error_not_tampering(tmp_path, cfg, capsys, monkeypatch):
    # C2PA parses anchors only while reading a manifest: a bad one used to make every intact file "tampered"
    monkeypatch.setenv("SPACETIME_CONFIG_DIR", str(cfg))
    out = tmp_path / "out.mp4"
    write_output(_clip(3), out, 8.0, Provenance(_claims(), config_dir=cfg))
    bad = tmp_path / "bad.pem"
    bad.write_text(BAD_PEM)
    capsys.readouterr()
    assert main(["verify", "--trust-anchors", str(bad), str(out)]) == 3
    assert f"--trust-anchors {bad}: not a valid PEM certificate" in capsys.readouterr().err
    # read_credentials itself blames the anchors when the file reads without them
    with pytest.raises(SigningKeyError, match="trust anchors"):
        read_credentials(out, BAD_PEM)
    ca = cfg / "signing" / "ca.pem"  # a truncated local CA: the same, for every file
    ca.write_bytes(ca.read_bytes()[:100])
    assert main(["verify", str(out)]) == 3
    assert f"local CA {ca}: not a valid PEM certificate" in capsys.readouterr().err
    assert main(["verify", "--no-local-ca", str(out)]) == 0  # not trusted, intact, and the watermark says so


def test_bad_trust_settings_in_signing_json_exit_3_with_a_message(tmp_path, cfg, capsys, monkeypatch):
    monkeypatch.setenv("SPACETIME_CONFIG_DIR", str(cfg))
    out = tmp_path / "out.mp4"
    write_output(_clip(3), out, 8.0, Provenance(_claims(), config_dir=cfg))
    for text, why in (("{bad json", "cannot be read as JSON"), ('{"trust_anchors": "/nonexistent.pem"}', "no such file"),
                      ('{"trust_anchors": 5}', "")):
        (cfg / "signing.json").write_text(text)
        capsys.readouterr()
        assert main(["verify", "--json", str(out)]) == 3, text
        captured = capsys.readouterr()
        assert captured.out == "" and why in captured.err and "spacetime verify: error:" in captured.err


def test_verify_usage_errors_exit_3_not_tampered(tmp_path):
    plain = tmp_path / "plain.mp4"
    write_video(_clip(3), plain)
    for argv in (["verify", "--bogus", str(plain)], ["-v", "verify"], ["--verbose", "verify", "--json"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 3, argv
    with pytest.raises(SystemExit) as e:  # other commands keep argparse's 2
        main(["world", "--bogus"])
    assert e.value.code == 2


def test_missing_files_have_the_same_json_keys_as_checked_ones(tmp_path, capsys):
    plain = tmp_path / "plain.mp4"
    write_video(_clip(3), plain)
    assert main(["verify", "--json", str(plain), str(tmp_path / "nope.mp4")]) == 3
    checked, missing = json.loads(capsys.readouterr().out)
    assert set(checked) <= set(missing)
    assert missing["c2pa"] is None and missing["watermark"] is None and missing["ai_generated_by_spacetime"] is None


def test_a_file_that_cannot_be_read_is_reported_in_its_place(tmp_path, capsys, monkeypatch):
    import spacetime.provenance as provenance

    plain, locked = tmp_path / "plain.mp4", tmp_path / "locked.mp4"
    write_video(_clip(3), plain)
    write_video(_clip(4), locked)
    real = provenance.verify_file

    def verify_file(path, **kw):
        if Path(path).name == "locked.mp4":  # as chmod 000 does for a user who is not root
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, **kw)

    monkeypatch.setattr(provenance, "verify_file", verify_file)
    assert main(["verify", "--json", str(locked), str(plain)]) == 3
    first, second = json.loads(capsys.readouterr().out)
    assert first["verdict"] == "not checked: Permission denied" and second["exit_code"] == 1  # the other still checked


def test_verify_into_a_closed_pipe_is_no_traceback(tmp_path):
    import subprocess
    import sys

    plain = tmp_path / "plain.mp4"
    write_video(_clip(3), plain)
    proc = subprocess.Popen([sys.executable, "-m", "spacetime", "verify", *[str(plain)] * 40],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "SPACETIME_CONFIG_DIR": str(tmp_path / "c")})
    proc.stdout.close()  # as `| head` does once it has its lines
    err = proc.stderr.read().decode()
    assert proc.wait() == 1 and "Traceback" not in err, err


def test_verify_streams_frames_so_memory_does_not_grow_with_the_clip(tmp_path):
    import tracemalloc

    from spacetime.provenance.verify import _watermark

    yy, xx = np.mgrid[0:720, 0:1280]
    frames = np.stack([np.stack([(xx // 5 + 3 * t) % 256, yy % 256, np.full_like(xx, 128)], -1)
                       for t in range(24)]).astype(np.uint8)  # 24 frames of 720p: 66 MB as RGB
    path = write_video(frames, tmp_path / "hd.mp4", fps=24)
    decoded, _ = read_video(path)
    expected = detect_watermark(decoded).as_dict()
    del decoded
    tracemalloc.start()
    try:
        got = _watermark(path, "spacetime-watermark-v1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == expected  # the same frames, the same score
    assert peak < 48 * 2**20, peak  # a few frames at a time (was every frame, as RGB and as float32 luma)


def _sawtooth_pan(num_frames: int = 40) -> np.ndarray:
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    return np.stack([(xx + 0.5 * yy + 4 * t) % 256 for t in range(num_frames)]).astype(np.uint8)[..., None].repeat(3, -1)


def test_large_frames_are_scaled_as_decoded_and_still_verify(tmp_path, monkeypatch):
    """Frames over DECODE_SIDE are scaled by a whole factor as they are decoded (the detector's own
    block mean, done early: a 4K upload cost the server a full-size frame per frame read), and
    frames over MAX_SIDE are not decoded at all: 'not checked', not a 6 GB decode."""
    import torch
    import torch.nn.functional as F

    import spacetime.provenance.verify as verify

    marked = watermark(_clip(3))
    big = F.interpolate(torch.from_numpy(marked).permute(0, 3, 1, 2).float(), size=(2100, 2100), mode="bilinear")
    path = tmp_path / "big.mp4"
    write_video(big.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy(), path, fps=8)
    seen = []
    real = verify.detect_watermark_stream
    monkeypatch.setattr(verify, "detect_watermark_stream",
                        lambda frames, key: real((seen.append(f.shape) or f for f in frames), key))
    report = verify_file(path, config_dir=tmp_path / "c")
    assert report["exit_code"] == 0 and report["watermark"]["detected"] and seen[0] == (1050, 1050, 3)
    monkeypatch.setattr(verify, "MAX_SIDE", 2000)
    report = verify_file(path, config_dir=tmp_path / "c")
    assert report["exit_code"] == 3 and "2100x2100 frames are over 2000 pixels a side" in report["watermark"]["note"]


def test_smooth_content_does_not_imitate_the_mark(tmp_path):
    # the public key's chips are unbalanced over stretches of steps (the constant cosine's +1 in 11 of
    # the first 12): a grey sawtooth panning, through H.264, scored 5.5 and was called spacetime's
    path = write_video(_sawtooth_pan(), tmp_path / "grad.mp4", fps=24, crf=20)
    assert watermark_score(read_video(path)[0]) < THRESHOLD - 1
    yy = np.mgrid[0:64, 0:64][0].astype(np.float32)
    for rate in (1.5, 3.0, 6.0):  # a steady brightening and a fade-in: what a camera or an editor makes
        bright = np.stack([np.clip(40 + yy + rate * t, 0, 255) for t in range(33)])
        fade = np.stack([np.clip((60 + 2 * yy) * min(1.0, rate * t / 60), 0, 255) for t in range(33)])
        for clip in (bright, fade):
            assert watermark_score(np.rint(clip).astype(np.uint8)[..., None].repeat(3, -1)) < THRESHOLD - 1, rate
    # and marks made before the detector changed still verify: the embedder is the same
    marked = tmp_path / "marked.mp4"
    write_video(watermark(_clip(2), gain=1.0), marked, crf=28)
    assert detect_watermark(read_video(marked)[0]).detected


def test_manifest_bytes_are_found_by_their_box_at_the_ends_of_a_file(tmp_path, cfg):
    from spacetime.provenance.credentials import _holds_manifest_bytes

    signed = tmp_path / "signed.mp4"
    write_output(_clip(3), signed, 8.0, Provenance(_claims(), config_dir=cfg))
    assert _holds_manifest_bytes(signed)
    words = tmp_path / "words.mp4"  # a file that merely mentions the box names holds no manifest
    words.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"a jumb box labelled c2pa " * 50)
    assert not _holds_manifest_bytes(words)
    sparse = tmp_path / "sparse.mp4"  # 6 GB, mostly holes: only its first and last 64 MiB are read
    for at, found in ((0, True), (3 << 30, False), ((6 << 30) - 2000, True)):
        with open(sparse, "wb") as f:
            f.truncate(6 << 30)
            f.seek(at)
            f.write(signed.read_bytes()[:2000])
        assert _holds_manifest_bytes(sparse) is found, at
    sparse.unlink()


def test_a_detector_that_cannot_judge_decoded_frames_is_not_called_undecodable(tmp_path, monkeypatch):
    """A numpy LinAlgError (a ValueError) in the detector was reported as "cannot decode" and "not a
    readable video", exit 3, for a video that decoded fine: now "not judged", still unchecked."""
    import spacetime.provenance.verify as verify
    from spacetime.data.video import export_to_video

    plain = tmp_path / "plain.mp4"
    export_to_video(np.random.default_rng(0).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8), plain, fps=8)

    def broken(frames, key):
        next(iter(frames))  # the frames decode
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(verify, "detect_watermark_stream", broken)
    report = verify_file(plain)
    assert report["exit_code"] == 3 and "detector could not judge" in report["verdict"]
    assert report["watermark"]["note"] == "not judged: Singular matrix"


def test_verify_prints_on_a_console_that_cannot_show_the_prompt_and_names_a_pipe(tmp_path, cfg):
    """A verified file whose embedded prompt has an emoji, on a cp1252 console: 'charmap' codec
    error, exit 1 and no report. A FIFO was 'no such file'."""
    import subprocess
    import sys

    out = tmp_path / "out.mp4"
    write_output(_clip(3), out, 8.0, Provenance(_claims(prompt="a red ball 🎈 bounces", embed_prompt=True), config_dir=cfg))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    env = {**os.environ, "SPACETIME_CONFIG_DIR": str(cfg), "PYTHONIOENCODING": "cp1252"}
    proc = subprocess.run([sys.executable, "-m", "spacetime", "verify", str(out)], capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"\\U0001f388" in proc.stdout and b"charmap" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "spacetime", "verify", "--json", str(fifo)], capture_output=True, env=env)
    assert proc.returncode == 3 and json.loads(proc.stdout)[0]["error"] == "not a regular file (a device or a pipe)"
