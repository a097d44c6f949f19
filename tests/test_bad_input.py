"""A corpus of bad input — truncated, corrupt, zero-byte and non-video files, bad captions files —
and what the data package does with each: a clear error naming the file (and line), or a counted
skip; never a crash."""

import json
import logging
import os
import re
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from spacetime.data.folder import FolderVideoDataset, load_captions
from spacetime.data.probe import main_probe, probe_folder
from spacetime.data.video import VideoReadError, decode, read_video, write_video


def moving_square(seed: int, t: int = 9, h: int = 48, w: int = 64) -> np.ndarray:
    frames = np.full((t, h, w, 3), (40, 40, 40), np.uint8)
    colour = np.random.default_rng(seed).integers(100, 256, 3)
    for k in range(t):
        frames[k, 10:26, 4 + 4 * k : 20 + 4 * k] = colour
    return frames


def textured(t: int = 30) -> np.ndarray:
    """A red square over scrolling noise: frames big enough that a cut at 80% keeps many whole."""
    frames = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 48, 64, 3), dtype=np.uint8), t, 0)
    for k in range(t):
        frames[k, 10:26, 4 + k : 20 + k] = (250, 30, 30)
        frames[k] = np.roll(frames[k], k, axis=0)
    return frames


def write_faststart_mp4(path, frames, fps=8):
    """An MP4 with its index (moov) first, as streaming sites serve them: a cut keeps the index."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode(None))


BROKEN = {  # file -> what its error says
    "truncated.mp4": "not a readable video: truncated, corrupt or not a video",  # index (at the end) cut off
    "zero.mp4": "empty file (0 bytes)",
    "noise.mp4": "not a readable video",
    "text.mp4": "not a readable video",
}


@pytest.fixture()
def corpus(tmp_path):
    """Good videos, every kind of broken file, and a captions file naming them all and one more."""
    d = tmp_path / "videos"
    (d / "sub").mkdir(parents=True)
    for i in range(3):
        write_video(moving_square(i), d / f"good{i}.mp4", fps=8)
    whole = (d / "good0.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # cut the bytes in half
    write_faststart_mp4(d / "cut.mp4", textured())
    whole = (d / "cut.mp4").read_bytes()
    (d / "cut.mp4").write_bytes(whole[: int(len(whole) * 0.8)])
    (d / "zero.mp4").write_bytes(b"")
    (d / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    write_video(moving_square(7, t=4), d / "sub" / "uncaptioned.gif", fps=8)  # a video with no caption
    (d / "._good0.mp4").write_bytes(b"\0\5\26\7")  # a macOS resource fork: not a video, not probed
    names = [
        "good0.mp4",
        "good1.mp4",
        "truncated.mp4",
        "zero.mp4",
        "noise.mp4",
        "text.mp4",
        "good2.mp4",
        "gone.mp4",
        "cut.mp4",
    ]
    (d / "captions.jsonl").write_text(
        "".join(json.dumps({"path": n, "caption": f"clip {n}"}) + "\n" for n in names)
    )
    return d


def test_each_broken_file_gets_an_error_naming_it_and_why(corpus):
    for name, why in BROKEN.items():
        with pytest.raises(VideoReadError, match=re.escape(f"{name}: {why}")):
            read_video(corpus / name)
    with pytest.raises(VideoReadError, match=r"gone\.mp4: no such file"):
        read_video(corpus / "gone.mp4")
    with pytest.raises(VideoReadError, match=r"sub: is a directory"):
        read_video(corpus / "sub")
    os.mkfifo(corpus / "pipe.mp4")  # opening it would block until a writer comes: refused at once
    with pytest.raises(VideoReadError, match=r"pipe\.mp4: is not a regular file"):
        read_video(corpus / "pipe.mp4")
    (corpus / "subtitles.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    with pytest.raises(VideoReadError, match=r"subtitles\.srt: no video stream"):
        read_video(corpus / "subtitles.srt")  # FFmpeg opens it: a subtitle stream, no video
    assert issubclass(VideoReadError, ValueError)


def test_truncated_file_with_its_index_yields_the_frames_before_the_cut(corpus, caplog):
    # Policy: a damaged file gives the frames that decode, intact, with a warning (as a player
    # shows them); only a file with none is an error. A plain MP4 cut in half has lost its index
    # (written last) and is an error, above.
    with caplog.at_level(logging.WARNING):
        frames, fps = read_video(corpus / "cut.mp4")
    assert 0 < frames.shape[0] < 30 and frames.shape[1:] == (48, 64, 3) and fps == pytest.approx(8)
    assert "cut.mp4: damaged" in caplog.text
    assert f"{frames.shape[0]} of the 30 frames the container lists decoded" in caplog.text
    # the frames that came back are the real ones, not decoder concealment
    clean = corpus / "clean.mp4"
    write_faststart_mp4(clean, textured())
    np.testing.assert_array_equal(frames, read_video(clean)[0][: frames.shape[0]])
    assert decode(clean, rgb=False).damage is None


def test_probe_reports_every_file_and_writes_a_valid_manifest(corpus, tmp_path):
    manifest = tmp_path / "out" / "manifest.jsonl"
    rows = probe_folder(corpus, manifest, progress=False)
    by = {r["path"]: r for r in rows}
    assert set(by) == {
        "good0.mp4",
        "good1.mp4",
        "good2.mp4",
        "truncated.mp4",
        "cut.mp4",
        "zero.mp4",
        "noise.mp4",
        "text.mp4",
        "gone.mp4",
        "sub/uncaptioned.gif",
    }  # no dot-files
    for i in range(3):
        r = by[f"good{i}.mp4"]
        assert r["ok"] and r["error"] is None and r["captioned"]
        assert (r["frames"], r["height"], r["width"]) == (9, 48, 64)
        assert r["fps"] == pytest.approx(8) and r["duration"] == pytest.approx(9 / 8)
    for name, why in BROKEN.items():
        assert not by[name]["ok"] and by[name]["error"].startswith(why)  # the row names the file
        assert by[name]["frames"] is None and by[name]["captioned"]
    cut = by["cut.mp4"]  # decodes in part: reported with what it gave, and not ok
    assert not cut["ok"] and 0 < cut["frames"] < 30 and cut["height"] == 48
    assert cut["error"].startswith("damaged: ") and f"{cut['frames']} of the 30 frames" in cut["error"]
    assert (
        not by["gone.mp4"]["ok"] and "named in captions.jsonl line 8 but missing" in by["gone.mp4"]["error"]
    )
    gif = by["sub/uncaptioned.gif"]
    assert gif["ok"] and gif["frames"] == 4 and not gif["captioned"]
    assert [json.loads(line) for line in manifest.read_text().splitlines()] == rows
    assert list(manifest.parent.iterdir()) == [manifest]  # written atomically: no temp left
    assert not (corpus / "manifest.jsonl").exists()  # nothing written into the user's folder


def test_main_probe_exit_status_and_summary(corpus, tmp_path, capsys):
    assert main_probe(corpus, tmp_path / "m.jsonl") == 1
    out = capsys.readouterr().out
    assert "4 of 10 files ok, 6 broken or missing" in out  # good0-2 and the GIF are ok
    assert "broken: zero.mp4: empty file (0 bytes)" in out and "broken: cut.mp4: damaged" in out
    assert "broken: gone.mp4: named in captions.jsonl line 8 but missing" in out
    assert "1 videos have no caption: sub/uncaptioned.gif" in out and "manifest:" in out
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 10
    clean = tmp_path / "clean"
    clean.mkdir()
    write_video(moving_square(0, t=3), clean / "a.mp4", fps=8)
    assert main_probe(clean, None) == 0
    assert "1 of 1 files ok" in capsys.readouterr().out and sorted(p.name for p in clean.iterdir()) == [
        "a.mp4"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main_probe(empty, None) == 1 and "no videos found" in capsys.readouterr().out
    with pytest.raises(NotADirectoryError, match="nope"):
        main_probe(tmp_path / "nope", None)


def test_main_probe_reads_the_captions_file_once(tmp_path, monkeypatch, capsys):
    """The summary's notes (repeated paths, empty captions) come from the rows the probe read:
    the file was read twice before, once for the probe and once for the notes."""
    import spacetime.data.probe as probe

    d = tmp_path / "d"
    d.mkdir()
    write_video(moving_square(0, t=3), d / "a.mp4", fps=8)
    (d / "captions.jsonl").write_text('{"path": "a.mp4", "caption": "one"}\n{"path": "a.mp4", "caption": ""}\n')
    reads = []
    real = probe.read_caption_rows
    monkeypatch.setattr(probe, "read_caption_rows", lambda src: reads.append(src) or real(src))
    assert main_probe(d, None) == 0
    out = capsys.readouterr().out
    assert len(reads) == 1
    assert "1 videos are named by more than one entry" in out and "a.mp4 (lines 1, 2)" in out
    assert "1 entries have an empty caption" in out and "a.mp4 (line 2)" in out


def test_probe_reports_a_malformed_captions_file(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_video(moving_square(0, t=3), d / "a.mp4", fps=8)
    (d / "captions.jsonl").write_text('{"path": "a.mp4", "caption": "ok"}\n{"path": "a.mp4", caption\n')
    rows = probe_folder(d, progress=False)
    bad = [r for r in rows if not r["ok"]]
    assert (
        len(bad) == 1
        and bad[0]["path"] == "captions.jsonl"
        and "captions.jsonl:2: not valid JSON" in bad[0]["error"]
    )
    assert [r["ok"] for r in rows if r["path"] == "a.mp4"] == [True]


def test_dataset_skips_broken_videos_and_counts_them(corpus, caplog):
    with caplog.at_level(logging.WARNING):
        entries = load_captions(corpus)
    assert "gone.mp4" not in {e["path"].name for e in entries} and len(entries) == 8
    assert "skipped 1 entries naming missing files: 'gone.mp4' (line 8)" in caplog.text
    ds = FolderVideoDataset(corpus, num_frames=5, fps=8, size=(32, 32))
    items = [ds[i] for i in range(len(ds))]
    for item in items:
        assert item["video"].shape == (3, 5, 32, 32) and item["caption"] in {
            "clip good0.mp4",
            "clip good1.mp4",
            "clip good2.mp4",
            "clip cut.mp4",
        }
    # truncated (index 2) is replaced by the next readable one; zero, noise, text by good2
    assert [it["caption"] for it in items][2:7] == ["clip good2.mp4"] * 5
    assert ds.skipped == 4 and set(ds.broken) == {str((corpus / n).resolve()) for n in BROKEN}
    assert all(
        n in why
        for n, why in zip(sorted(BROKEN), [ds.broken[str((corpus / n).resolve())] for n in sorted(BROKEN)])
    )
    ds[3]  # known broken files are not decoded again, nor counted twice
    assert ds.skipped == 4
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert (
        batch["video"].shape == (4, 3, 5, 32, 32) and -1 <= batch["video"].min() and batch["video"].max() <= 1
    )


def test_too_many_broken_videos_stop_with_the_count(corpus, monkeypatch):
    ds = FolderVideoDataset(corpus, num_frames=5, fps=8, size=(32, 32), max_bad_fraction=0.25)
    with pytest.raises(VideoReadError, match=r"3 of 8 videos are broken, more than max_bad_fraction=0.25"):
        for i in range(len(ds)):
            ds[i]
    # a bounded retry: a read that fails once and then works is not counted as broken
    ds = FolderVideoDataset(corpus, num_frames=5, fps=8, size=(32, 32), retries=1)
    real, failed = ds.load, []

    def flaky(i):
        if not failed:
            failed.append(i)
            raise VideoReadError("transient")
        return real(i)

    monkeypatch.setattr(ds, "load", flaky)
    assert ds[0]["caption"] == "clip good0.mp4" and ds.skipped == 0
    with pytest.raises(ValueError, match="max_bad_fraction"):
        FolderVideoDataset(corpus, max_bad_fraction=2)


def test_a_folder_of_only_broken_videos_raises_a_clear_error(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.mp4").write_bytes(b"")
    (d / "b.mp4").write_text("not a video")
    (d / "captions.csv").write_text("path,caption\na.mp4,one\nb.mp4,two\n")
    ds = FolderVideoDataset(d, num_frames=2)
    with pytest.raises(VideoReadError, match=r"no video in the folder could be decoded \(2 broken\)"):
        ds[0]


def test_malformed_captions_name_file_and_line(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_video(moving_square(0, t=3), d / "a.mp4", fps=8)
    cases = {
        '{"path": "a.mp4", "caption": "ok"}\n\n{"path": "a.mp4", caption\n': r"captions\.jsonl:3: not valid JSON",
        '{"path": "a.mp4"}\n': r"captions\.jsonl:1: needs a \"caption\" string or a \"captions\" object",
        '{"path": "a.mp4", "captions": {"short": 3}}\n': r"captions\.jsonl:1: needs a \"caption\"",
        '["a.mp4", "a caption"]\n': r"captions\.jsonl:1: each line needs a \"path\" string",
        '{"caption": "no path"}\n': r"captions\.jsonl:1: each line needs a \"path\" string",
    }
    for text, msg in cases.items():
        (d / "captions.jsonl").write_text(text)
        with pytest.raises(ValueError, match=msg):
            load_captions(d)
    (d / "captions.jsonl").write_text(
        '{"path": "a.mp4", "caption": "x"}\n{"path": "missing.mp4", "caption": "x"}\n'
    )
    assert len(load_captions(d)) == 1
    with pytest.raises(
        FileNotFoundError, match=r"captions\.jsonl:2: names 'missing\.mp4', which does not exist"
    ):
        load_captions(d, strict=True)
    (d / "captions.jsonl").write_text('{"path": "missing.mp4", "caption": "x"}\n')
    with pytest.raises(ValueError, match="names no existing video"):
        FolderVideoDataset(d)
    (d / "captions.jsonl").unlink()
    (d / "captions.csv").write_text("a.mp4,a caption\n")  # no header
    with pytest.raises(ValueError, match=r"captions\.csv:1: the header must name the columns path,caption"):
        load_captions(d)
    (d / "captions.csv").write_text("path,caption\na.mp4,a red ball\n,no path\n")
    with pytest.raises(ValueError, match=r"captions\.csv:3: needs a path and a caption"):
        load_captions(d)
    (d / "captions.csv").write_text("path,caption,extra\na.mp4,a red ball,ignored\n")
    assert load_captions(d)[0]["captions"] == {"caption": "a red ball"}
    (d / "captions.csv").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"no captions file; expected one of captions\.jsonl, captions\.csv"
    ):
        load_captions(d)


def test_generate_refuses_to_write_over_its_own_input(tmp_path, capsys):
    """`generate --video clip.mp4 --output clip.mp4` replaced the user's video with the result (an
    edit keeps none of it); the input is now refused as the output, before any model loads."""
    from spacetime.cli import main

    write_video(moving_square(0), tmp_path / "clip.mp4", fps=8)
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(moving_square(1)[0]).save(tmp_path / "still.png")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for args in (["--video", "clip.mp4", "--output", "./clip.mp4"], ["--video", "clip.mp4", "--mode", "edit", "--strength",
                 "0.5", "--output", "clip.mp4"], ["--image", "still.png", "--output", "still.png"]):
        flag = args[0]
        args = [str(tmp_path / a) if a.endswith((".mp4", ".png")) else a for a in args]
        assert main(["generate", "a ball", "--model", str(tmp_path / "no-model"), *args]) == 1
        err = capsys.readouterr().err
        assert f"is the {flag} file: writing it would replace your input" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
