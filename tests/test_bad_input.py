"""A corpus of bad input — truncated, corrupt, zero-byte and non-video files, bad captions files —
and what each part of spacetime does with it: a clear error naming the file, or a counted skip."""

import json

import numpy as np
import pytest
import torch

from spacetime.cli import main
from spacetime.data.folder import FolderVideoDataset, load_captions
from spacetime.data.probe import probe_folder
from spacetime.data.video import VideoReadError, read_video, write_video
from spacetime.world.clip import make_clip


@pytest.fixture()
def corpus(tmp_path):
    """A folder with good videos, every kind of broken file, and a captions file naming them all."""
    d = tmp_path / "videos"
    d.mkdir()
    for i in range(3):
        write_video(make_clip(i, num_frames=9, height=48, width=64).frames, d / f"good{i}.mp4", fps=8)
    whole = (d / "good0.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (d / "zero.mp4").write_bytes(b"")
    (d / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    names = ["good0.mp4", "good1.mp4", "truncated.mp4", "zero.mp4", "noise.mp4", "text.mp4", "good2.mp4", "gone.mp4"]
    (d / "captions.jsonl").write_text("".join(json.dumps({"path": n, "caption": f"clip {n}"}) + "\n" for n in names))
    return d


BROKEN = {"zero.mp4", "noise.mp4", "text.mp4"}


def test_each_broken_file_gets_an_error_naming_it(corpus):
    for name in BROKEN:
        with pytest.raises(VideoReadError, match=name.replace(".", r"\.")):
            read_video(corpus / name)


def test_truncated_file_yields_its_intact_frames_or_a_named_error(corpus):
    # FFmpeg may decode the frames before the cut (as a player would) or find the index gone
    try:
        frames, fps = read_video(corpus / "truncated.mp4")
    except VideoReadError as e:
        assert "truncated.mp4" in str(e)
    else:
        assert 0 < frames.shape[0] <= 9 and frames.shape[1:] == (48, 64, 3)


def test_probe_reports_every_file_and_never_crashes(corpus, tmp_path):
    manifest = tmp_path / "out" / "manifest.jsonl"
    rows = probe_folder(corpus, manifest, progress=False)
    by = {r["path"]: r for r in rows}
    for i in range(3):
        r = by[f"good{i}.mp4"]
        assert r["ok"] and (r["frames"], r["height"], r["width"]) == (9, 48, 64)
        assert r["fps"] == pytest.approx(8) and r["duration"] == pytest.approx(9 / 8) and r["captioned"]
    for name in BROKEN:
        assert not by[name]["ok"] and name in by[name]["error"]
    assert not by["gone.mp4"]["ok"] and "missing" in by["gone.mp4"]["error"]
    assert [json.loads(line) for line in manifest.read_text().splitlines()] == rows


def test_probe_cli_exit_status(corpus, tmp_path, capsys):
    assert main(["data", "probe", str(corpus), "--out", str(tmp_path / "m.jsonl")]) == 1
    out = capsys.readouterr().out
    assert "broken: zero.mp4" in out and "gone.mp4" in out
    clean = tmp_path / "clean"
    clean.mkdir()
    write_video(make_clip(0, num_frames=3).frames, clean / "a.mp4", fps=8)
    assert main(["data", "probe", str(clean), "--out", str(tmp_path / "m2.jsonl")]) == 0
    assert main(["data", "probe", str(tmp_path / "nope")]) == 1


def test_dataset_skips_broken_videos_and_counts_them(corpus, caplog):
    entries = load_captions(corpus)
    assert "gone.mp4" not in {e["path"].name for e in entries}
    assert "skipped 1 entries naming missing files" in caplog.text
    ds = FolderVideoDataset(corpus, num_frames=5, fps=8, size=(32, 32))
    items = [ds[i] for i in range(len(ds))]
    for item in items:
        assert item["video"].shape == (3, 5, 32, 32) and item["caption"].startswith("clip good")
    assert ds.skipped >= 3  # zero, noise, text (and the truncated one if it does not decode)
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    assert next(iter(loader))["video"].shape == (4, 3, 5, 32, 32)


def test_malformed_captions_name_file_and_line(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_video(make_clip(0, num_frames=3).frames, d / "a.mp4", fps=8)
    (d / "captions.jsonl").write_text('{"path": "a.mp4", "caption": "ok"}\n{"path": "a.mp4", caption\n')
    with pytest.raises(ValueError, match=r"captions\.jsonl:2: not valid JSON"):
        load_captions(d)
    (d / "captions.jsonl").write_text('{"path": "a.mp4"}\n')
    with pytest.raises(ValueError, match=r"captions\.jsonl:1: needs a \"caption\""):
        load_captions(d)
    (d / "captions.jsonl").write_text('{"path": "missing.mp4", "caption": "x"}\n')
    with pytest.raises(FileNotFoundError, match=r"captions\.jsonl:1: names 'missing\.mp4'"):
        load_captions(d, strict=True)
    (d / "captions.jsonl").unlink()
    (d / "captions.csv").write_text("a.mp4,a caption\n")
    with pytest.raises(ValueError, match=r"captions\.csv:1: the header must name"):
        load_captions(d)
    (d / "captions.csv").write_text("path,caption\na.mp4,a red ball\n")
    assert load_captions(d)[0]["captions"] == {"caption": "a red ball"}
    (d / "captions.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no captions file"):
        load_captions(d)
