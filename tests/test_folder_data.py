"""Folder data: captions files, time resampling by timestamp, the resize/crop policy, seeded
starts and captions; the world's own folders load."""

import json

import numpy as np
import pytest
import torch

from spacetime.data.folder import FolderVideoDataset, load_captions, resize_and_crop, sample_indices
from spacetime.data.video import write_video


def level(video: torch.Tensor) -> np.ndarray:
    """The grey level (0..255) of each frame of a flat (3, T, H, W) clip in [-1, 1]."""
    return ((video[0, :, 4, 4] + 1) * 127.5).numpy()


def ramp_folder(tmp_path, n, step, fps=24, size=(16, 16), captions=None):
    """A folder with one video whose frame k is a flat grey of level step * k."""
    d = tmp_path / "d"
    d.mkdir()
    frames = np.stack([np.full((*size, 3), step * k, np.uint8) for k in range(n)])
    write_video(frames, d / "ramp.mp4", fps=fps, pix_fmt="yuv444p")
    row = {"path": "ramp.mp4", **(captions or {"caption": "a ramp"})}
    (d / "captions.jsonl").write_text(json.dumps(row) + "\n")
    return d


def test_sample_indices_pick_the_nearest_frame_in_time():
    times = np.arange(100) / 30.0
    # 30 fps read at 8 fps: times 0, 0.125, 0.25, 0.375, 0.5 s -> frames 0, 3.75, 7.5, 11.25, 15
    np.testing.assert_array_equal(sample_indices(times, 0.0, 5, 8.0), [0, 4, 7, 11, 15])  # 7.5: earlier
    np.testing.assert_array_equal(sample_indices(times, 1.0, 3, None), [30, 31, 32])
    # too short: the last frame repeats
    np.testing.assert_array_equal(sample_indices(np.arange(4) / 8, 0.0, 6, 8.0), [0, 1, 2, 3, 3, 3])
    # variable frame rate: timestamps, not counts, decide
    np.testing.assert_array_equal(
        sample_indices(np.array([0.0, 0.1, 0.5, 0.55, 1.0]), 0.0, 3, 2.0), [0, 2, 4]
    )


def test_resize_covers_then_centre_crops():
    frames = np.zeros((2, 60, 120, 3), np.uint8)
    frames[:, :, 50:70] = 255  # a bright vertical band in the middle
    out = resize_and_crop(frames, (32, 32))
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    # scaled by 32/60 to cover the height (64 wide), then the centre 32 columns: the band (at
    # 26.7..37.3 of 64) lands at 10.7..21.3, centred
    col = out[0, :, :, 0].mean(0)
    assert col[12:20].min() > 250 and col[:9].max() < 5 and col[23:].max() < 5
    assert resize_and_crop(frames, (30, 60)).shape == (2, 30, 60, 3)  # same aspect: only scaled
    assert resize_and_crop(frames, (120, 40)).shape == (2, 120, 40, 3)  # portrait from landscape
    native = resize_and_crop(np.zeros((1, 70, 45, 3), np.uint8), None)
    assert native.shape == (1, 64, 40, 3)
    assert resize_and_crop(np.zeros((1, 5, 20, 3), np.uint8), None).shape == (
        1,
        8,
        16,
        3,
    )  # too small: scaled up


def test_fps_resampling_reads_the_right_frames(tmp_path):
    d = ramp_folder(tmp_path, 24, 10)
    ds = FolderVideoDataset(d, num_frames=4, fps=6, size=(16, 16), random_start=False)
    item = ds[0]
    assert item["video"].shape == (3, 4, 16, 16) and item["video"].dtype == torch.float32
    assert item["caption"] == "a ramp" and item["path"].endswith("ramp.mp4")
    np.testing.assert_allclose(level(item["video"]), [0, 40, 80, 120], atol=3)  # frames 0, 4, 8, 12


def test_30_fps_sampled_at_8_fps_and_short_videos_repeat_the_last_frame(tmp_path):
    d = ramp_folder(tmp_path, 20, 10, fps=30)
    ds = FolderVideoDataset(d, num_frames=8, fps=8, size=(16, 16), random_start=False)
    # frames 0, 4, 7, 11, 15, then past the end (19 is the last): 19, 19, 19
    np.testing.assert_allclose(level(ds[0]["video"]), [0, 40, 70, 110, 150, 190, 190, 190], atol=3)
    native = FolderVideoDataset(d, num_frames=3, fps=None, size=None, random_start=False)[0]["video"]
    np.testing.assert_allclose(level(native), [0, 10, 20], atol=3)


def test_random_start_is_seeded_and_only_the_window_is_kept(tmp_path, monkeypatch):
    import spacetime.data.folder as folder

    d = ramp_folder(tmp_path, 240, 1)  # 10 s at 24 fps
    decoded = []

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        decoded.append(len(out.times))
        return out

    real = folder.decode
    monkeypatch.setattr(folder, "decode", spy)
    starts = {}
    for seed in (1, 2):
        for epoch in (0, 1):
            ds = FolderVideoDataset(d, num_frames=3, fps=8, size=(16, 16), seed=seed)
            ds.set_epoch(epoch)
            v = ds[0]["video"]
            again = FolderVideoDataset(d, num_frames=3, fps=8, size=(16, 16), seed=seed)
            again.set_epoch(epoch)
            assert torch.equal(v, again[0]["video"])  # deterministic given seed, epoch and index
            lv = level(v)
            np.testing.assert_allclose(np.diff(lv), [3, 3], atol=2)  # 1/8 s apart = 3 source frames
            assert 0 <= lv[0] and lv[-1] <= 239 + 2
            starts[seed, epoch] = lv[0]
    assert len({round(s) for s in starts.values()}) >= 3  # seeds and epochs draw different windows
    # a 0.25 s clip (+ 1/8 s either side) of a 10 s video: about 12 of its 240 frames are kept as
    # RGB (frames between the keyframe before the start and the start are decoded, then dropped)
    assert decoded and max(decoded) <= 13


def test_captions_lengths_are_picked_deterministically(tmp_path):
    caps = {"short": "a ball", "medium": "a red ball", "detailed": "a small red ball bounces"}
    d = ramp_folder(tmp_path, 10, 10, captions={"captions": caps, "extra": 1})
    assert FolderVideoDataset(d, num_frames=2, caption="detailed")[0]["caption"] == caps["detailed"]
    picked = set()
    for seed in range(12):
        a = FolderVideoDataset(d, num_frames=2, size=(16, 16), seed=seed)[0]["caption"]
        assert a == FolderVideoDataset(d, num_frames=2, size=(16, 16), seed=seed)[0]["caption"]
        picked.add(a)
    assert picked == set(caps.values())  # "random" draws among every length


def test_csv_captions_and_bad_arguments(tmp_path):
    d = ramp_folder(tmp_path, 10, 10)
    (d / "captions.jsonl").unlink()
    (d / "captions.csv").write_text('\ufeffpath,caption\nramp.mp4,"a ramp, slowly"\n')  # Excel's BOM
    entries = load_captions(d)
    assert [(e["path"].name, e["captions"], e["line"]) for e in entries] == [
        ("ramp.mp4", {"caption": "a ramp, slowly"}, 2)
    ]
    for kwargs, msg in [
        ({"num_frames": 0}, "num_frames"),
        ({"fps": 0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"size": (16, 0)}, "size"),
        ({"size": 64}, "size"),
    ]:
        with pytest.raises(ValueError, match=msg):
            FolderVideoDataset(d, **kwargs)
    ds = FolderVideoDataset(d, num_frames=2)
    with pytest.raises(IndexError):
        ds[1]


def test_world_folder_loads_as_folder_dataset(tmp_path):
    from spacetime.world.dataset import write_world

    out = write_world(tmp_path / "w", 3, num_frames=9, height=32, width=48, fps=8, seed=2, progress=False)
    ds = FolderVideoDataset(out, num_frames=9, fps=8, size=None, random_start=False, caption="detailed")
    assert len(ds) == 3
    item = ds[1]
    assert item["video"].shape == (3, 9, 32, 48) and -1 <= item["video"].min() and item["video"].max() <= 1
    row = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()][1]
    assert item["caption"] == row["captions"]["detailed"]
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    assert next(iter(loader))["video"].shape == (3, 3, 9, 32, 48)


def test_the_nearest_frame_is_found_past_an_uneven_gap_at_the_window_end(tmp_path):
    """A variable-frame-rate video: the frame nearest the clip's last time lies past the old
    one-step padding of the decoded window, and must still be the one taken."""
    from fractions import Fraction

    import av

    d = tmp_path / "d"
    d.mkdir()
    times, levels = [0.0, 0.05, 0.31, 0.4], [20, 90, 160, 230]
    with av.open(str(d / "vfr.mp4"), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(10))
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv444p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t, v in zip(times, levels):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), v, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    (d / "captions.jsonl").write_text('{"path": "vfr.mp4", "caption": "steps"}\n')
    ds = FolderVideoDataset(d, num_frames=3, fps=10, size=(16, 16), random_start=False)
    # times 0, 0.1, 0.2 -> frames at 0 (exact), 0.05 (0.05 away) and 0.31 (0.11 away; 0.05 is 0.15 away)
    np.testing.assert_allclose(level(ds[0]["video"]), [20, 90, 160], atol=3)


def test_a_folder_whose_videos_are_all_too_small_says_so(tmp_path):
    from spacetime.data.streams import DataConfig, dit_items
    from spacetime.data.video import VideoReadError

    d = tmp_path / "d"
    d.mkdir()
    write_video(np.zeros((5, 8, 8, 3), np.uint8), d / "tiny.mp4", fps=8)
    (d / "captions.jsonl").write_text('{"path": "tiny.mp4", "caption": "tiny"}\n')
    items = dit_items(DataConfig(source="folder", path=str(d), num_frames=5, native_size=True), 0, None)
    with pytest.raises(VideoReadError, match="can be used") as e:
        next(items)
    assert "could be decoded" not in str(e.value) and "under one 16x16 latent patch" in str(e.value)


def test_probe_says_a_captioned_path_is_a_directory(tmp_path):
    from spacetime.data.probe import probe_folder

    d = tmp_path / "d"
    (d / "clips.mp4").mkdir(parents=True)
    (d / "captions.jsonl").write_text('{"path": "clips.mp4", "caption": "a folder"}\n')
    (row,) = probe_folder(d, progress=False)
    assert not row["ok"] and row["error"] == "named in captions.jsonl line 1 but is a directory"


def test_probe_reports_a_link_to_nothing(tmp_path):
    """A dangling symlink was skipped without a row: the probe said every file was fine."""
    from spacetime.data.probe import main_probe, probe_folder

    d = tmp_path / "d"
    d.mkdir()
    (d / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (d / "named.mp4").symlink_to(tmp_path / "nowhere2.mp4")
    (d / "captions.jsonl").write_text('{"path": "named.mp4", "caption": "x"}\n')
    rows = {r["path"]: r for r in probe_folder(d, progress=False)}
    assert not rows["gone.mp4"]["ok"] and "nowhere.mp4, which does not exist" in rows["gone.mp4"]["error"]
    assert rows["named.mp4"]["error"].startswith("named in captions.jsonl line 1 but a link to")
    assert main_probe(d, None) == 1


def test_native_size_stream_with_a_too_small_video_resumes_exactly(tmp_path, caplog):
    """A video under one latent patch was skipped without a stand-in: the rank read one sample more
    than the position counts, and a resumed run (which had not met it yet) read other samples. A
    neighbour stands in now, as for a broken video: sample i is the same from any start."""
    import logging

    from spacetime.data.streams import DataConfig, dit_items

    d = tmp_path / "d"
    d.mkdir()
    write_video(np.zeros((5, 10, 12, 3), np.uint8), d / "tiny.mp4", fps=8)
    for name, grey in (("a", 100), ("b", 200)):
        write_video(np.full((5, 32, 48, 3), grey, np.uint8), d / f"{name}.mp4", fps=8)
    (d / "captions.jsonl").write_text("".join(json.dumps({"path": f"{n}.mp4", "caption": n}) + "\n"
                                              for n in ("a", "tiny", "b")))
    data = DataConfig(source="folder", path=str(d), num_frames=5, native_size=True)
    # sample i is entry perm_e[i % 3] of epoch e, "tiny" (entry 1) filled by its neighbour "b"
    expected = ["atb"[int(k)].replace("t", "b") for e in range(3) for k in np.random.default_rng([0, e]).permutation(3)]
    with caplog.at_level(logging.WARNING, logger="spacetime.data.streams"):
        items = dit_items(data, 0, None)
        assert [next(items)["caption"] for _ in range(9)] == expected
    assert caplog.text.count("under one 16x16 latent patch") == 1
    for start in range(1, 9):
        items = dit_items(data, start, None)
        assert [next(items)["caption"] for _ in range(9 - start)] == expected[start:], start


def test_captions_files_warn_of_repeated_paths_and_empty_captions(tmp_path, capsys, caplog, monkeypatch):
    """A video named twice is two samples (two windows, two cache entries); an empty caption trains
    as the unconditional prompt. Both were silent: load_captions warns (on rank 0 only: every rank
    reads the same file), and the probe reports them without failing."""
    import logging

    from spacetime.data.probe import main_probe

    d = ramp_folder(tmp_path, 10, 10)
    (d / "captions.jsonl").write_text('{"path": "ramp.mp4", "caption": "a ramp"}\n{"path": "./ramp.mp4", "caption": ""}\n'
                                      '{"path": "ramp.mp4", "captions": {"short": "ramp", "long": "  "}}\n')
    with caplog.at_level(logging.WARNING, logger="spacetime.data.folder"):
        assert len(load_captions(d)) == 3
    assert "1 videos are named by more than one entry" in caplog.text and "'ramp.mp4' (lines 1, 2, 3)" in caplog.text
    assert "2 entries have an empty caption" in caplog.text and "(line 2), 'ramp.mp4' (line 3)" in caplog.text
    assert main_probe(d, None) == 0
    out = capsys.readouterr().out
    assert "1 videos are named by more than one entry (each entry is a sample of its own): ramp.mp4 (lines 1, 2, 3)" in out
    assert "2 entries have an empty caption (trained as the unconditional prompt): ramp.mp4 (line 2)" in out
    # another rank: the same file, the same warnings: debug there
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="spacetime.data.folder"):
        load_captions(d)
    assert "empty caption" in caplog.text and all(r.levelno == logging.DEBUG for r in caplog.records)
