"""Folder data: captions files, time resampling by timestamp, the resize/crop policy, seeded
starts and captions; the world's own folders load."""

import json
import logging
import multiprocessing
import os

import numpy as np
import pytest
import torch

from spacetime.data.folder import FolderVideoDataset, load_captions, resize_and_crop, sample_indices
from spacetime.data.video import read_video, write_video


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


def clips_folder(d, names, broken=""):
    """A folder of 16x16 videos, 10 frames at 8 fps, frame k of video j a flat grey of 20 j + 5 k,
    each with a short and a long caption; those named in `broken` are not videos at all."""
    d.mkdir()
    for j, name in enumerate(names):
        if name in broken:
            (d / f"{name}.mp4").write_bytes(b"not a video at all")
        else:
            frames = np.stack([np.full((16, 16, 3), 20 * j + 5 * k, np.uint8) for k in range(10)])
            write_video(frames, d / f"{name}.mp4", fps=8, pix_fmt="yuv444p")
    (d / "captions.jsonl").write_text("".join(json.dumps({"path": f"{n}.mp4", "captions": {"short": n, "long": f"the {n}"}})
                                              + "\n" for n in names))
    return d


@pytest.fixture
def decoders(tmp_path, monkeypatch):
    """A function giving the (process id, index) of each clip decoded since its last call: in this
    process or, forked, in a loader worker."""
    record = tmp_path / "decoded"
    real = FolderVideoDataset.load

    def load(self, index):
        with open(record, "a") as f:
            f.write(f"{os.getpid()} {index}\n")
        return real(self, index)

    def decoded():
        rows = [tuple(map(int, line.split())) for line in record.read_text().splitlines()] if record.exists() else []
        record.unlink(missing_ok=True)
        return rows

    monkeypatch.setattr(FolderVideoDataset, "load", load)
    return decoded


def same(items, others) -> bool:
    """Training items are equal: the same captions, videos or latents."""
    key = "latents" if "latents" in items[0] else "video"
    return [it["caption"] for it in items] == [it["caption"] for it in others] and len(items) == len(others) and all(
        torch.equal(a[key], b[key]) for a, b in zip(items, others))


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
    from spacetime.data.streams import DataConfig, dit_items

    d = tmp_path / "d"
    d.mkdir()
    write_video(np.zeros((5, 10, 12, 3), np.uint8), d / "tiny.mp4", fps=8)
    for name, grey in (("a", 100), ("b", 200)):
        write_video(np.full((5, 32, 48, 3), grey, np.uint8), d / f"{name}.mp4", fps=8)
    (d / "captions.jsonl").write_text("".join(json.dumps({"path": f"{n}.mp4", "caption": n}) + "\n"
                                              for n in ("a", "tiny", "b")))
    # sample i is entry perm_e[i % 3] of epoch e, "tiny" (entry 1) filled by its neighbour "b"
    expected = ["atb"[int(k)].replace("t", "b") for e in range(3) for k in np.random.default_rng([0, e]).permutation(3)]
    for workers in (0, 2):  # decoded in loader workers, which tell this process what they skipped
        data = DataConfig(source="folder", path=str(d), num_frames=5, native_size=True, num_workers=workers)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="spacetime.data.streams"):
            items = dit_items(data, 0, None)
            assert [next(items)["caption"] for _ in range(9)] == expected
        assert caplog.text.count("under one 16x16 latent patch") == 1
        for start in range(1, 9) if workers == 0 else (2, 5):
            items = dit_items(data, start, None)
            assert [next(items)["caption"] for _ in range(9 - start)] == expected[start:], (workers, start)


def test_captions_files_warn_of_repeated_paths_and_empty_captions(tmp_path, capsys, caplog, monkeypatch):
    """A video named twice is two samples (two windows, two cache entries); an empty caption trains
    as the unconditional prompt. Both were silent: load_captions warns (on rank 0 only: every rank
    reads the same file), and the probe reports them without failing."""
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


def test_folder_streams_decode_in_loader_workers_in_stream_order(tmp_path, monkeypatch, decoders):
    """data.num_workers was honoured for world data only: folder videos were all decoded in the
    training process. Loader workers decode them now, and the samples are the stream's, in order
    (videos, clip windows of each epoch, captions), from any start and on any rank."""
    from spacetime.data.streams import DataConfig, dit_items, video_batches

    d = clips_folder(tmp_path / "d", "abcd")

    def samples(workers, start, n=9):
        data = DataConfig(source="folder", path=str(d), num_frames=3, height=16, width=16, num_workers=workers)
        batches, items = video_batches(data, 1, start), dit_items(data, start, None)
        return [{"video": next(batches)[0], "caption": ""} for _ in range(n)], [next(items) for _ in range(n)]

    for rank, start in ((0, 5), (1, 3)):  # resumed mid-epoch; then as rank 1 of 2
        if rank:
            monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
            monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
            monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
        vae, dit = samples(0, start)
        assert {pid for pid, _ in decoders()} == {os.getpid()}
        assert len({it["caption"] for it in dit}) > 4  # both caption lengths of several videos
        vae_w, dit_w = samples(2, start)
        assert same(vae_w, vae) and same(dit_w, dit), (rank, start)
        pids = {pid for pid, _ in decoders()}
        assert len(pids) == 4 and os.getpid() not in pids  # by the two workers of each stream alone


def test_folder_loader_workers_report_broken_videos_as_the_training_process_would(tmp_path, caplog, decoders):
    """A broken video a worker meets is one the training process must hear of: each warned of once,
    counted, and max_bad_fraction stopping the run at the same sample with the same error."""
    from spacetime.data.streams import DataConfig, dit_items, video_batches
    from spacetime.data.video import VideoReadError

    d = clips_folder(tmp_path / "d", "abcde", broken="bd")
    runs, stops = {}, {}
    for workers in (0, 2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="spacetime.data.folder"):
            items = dit_items(DataConfig(source="folder", path=str(d), num_frames=3, height=16, width=16,
                                         max_bad_fraction=0.5, num_workers=workers), 0, None)
            got = [next(items) for _ in range(10)]
        runs[workers] = got, [r.getMessage() for r in caplog.records if "broken video" in r.getMessage()]
        batches = video_batches(DataConfig(source="folder", path=str(d), num_frames=3, height=16, width=16,
                                           max_bad_fraction=0.25, num_workers=workers), 1, 0)
        got = []
        with pytest.raises(VideoReadError) as e:
            for _ in range(20):  # the second broken video comes up well before
                got.append({"video": next(batches)[0], "caption": ""})
        stops[workers] = got, str(e.value)
        assert (os.getpid() in {pid for pid, _ in decoders()}) == (workers == 0)
    warnings = runs[0][1]
    assert len(warnings) == 2 and "(1 so far)" in warnings[0] and "(2 so far)" in warnings[1]
    assert {w.split("so far): ")[1].split(":")[0] for w in warnings} == {str((d / n).resolve()) for n in ("b.mp4", "d.mp4")}
    assert same(runs[2][0], runs[0][0]) and runs[2][1] == warnings
    message = stops[0][1]
    assert message.startswith("2 of 5 videos are broken, more than max_bad_fraction=0.25; last: ") and ".mp4" in message
    assert same(stops[2][0], stops[0][0]) and stops[2][1] == message


def test_folder_latent_cache_with_loader_workers_decodes_only_the_misses(tmp_path, monkeypatch, decoders):
    """With the latent cache, workers decode the clips not cached yet and nothing else: not the
    hits, nor a clip that another sample still in flight is decoding (read from the cache in its
    turn); the items are the stream's, in order, as without workers."""
    import spacetime.data.streams as streams

    # a stand-in for the VAE, deterministic and instant: what is tested is what gets decoded
    monkeypatch.setattr(streams, "encode_videos", lambda vae, videos: [v[:, ::4, ::4, ::4].clone() for v in videos])
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "model.safetensors").write_bytes(b"weights")

    def stream(d, workers, cache, start=0, n=9, **kw):
        data = streams.DataConfig(source="folder", path=str(d), num_frames=5, height=16, width=16, cache_variants=1,
                                  num_workers=workers, **kw)
        items = streams.dit_items(data, start, None, vae_dir=tmp_path / "vae", cache_dir=tmp_path / cache)
        got = [next(items) for _ in range(n)]
        items.close()  # the workers are done: every decode is recorded
        return got

    d = clips_folder(tmp_path / "d", "abc")
    expected = stream(d, 0, "plain")
    decoders()
    assert same(stream(d, 2, "workers"), expected)
    decoded = decoders()
    assert sorted(i for _, i in decoded) == [0, 1, 2] and os.getpid() not in {pid for pid, _ in decoded}
    assert same(stream(d, 2, "workers", start=4, n=5), expected[4:]) and decoders() == []  # all hits
    # a broken video's stand-in is not cached: a sample of it in flight behind another is decoded
    # here in its turn
    d = clips_folder(tmp_path / "e", "ab", broken="b")
    expected = stream(d, 0, "broken0", max_bad_fraction=0.5, n=6)
    decoders()
    assert same(stream(d, 2, "broken", max_bad_fraction=0.5, n=6), expected)
    assert os.getpid() in {pid for pid, _ in decoders()}


def test_folder_loader_workers_end_when_the_stream_is_closed(tmp_path):
    from spacetime.data.streams import DataConfig, dit_items, video_batches

    d = clips_folder(tmp_path / "d", "ab")
    data = DataConfig(source="folder", path=str(d), num_frames=3, height=16, width=16, num_workers=2)
    for stream in (dit_items(data, 0, None), video_batches(data, 2, 0)):
        next(stream)
        assert len(multiprocessing.active_children()) == 2
        stream.close()
        assert multiprocessing.active_children() == []


def test_captions_files_in_other_encodings_are_read_or_refused_naming_the_line(tmp_path):
    """A cp1252 or Latin-1 file was read with its accents replaced in silence: "café.mp4" named a
    file that does not exist, and "crème" trained as "cr\ufffdme". UTF-16 (what Windows tools write
    as "Unicode") read as "not valid JSON"; a caption holding U+2028 split its line in two."""
    from spacetime.data.probe import probe_folder

    d = tmp_path / "d"
    d.mkdir()
    write_video(np.zeros((2, 16, 16, 3), np.uint8), d / "café.mp4", fps=8)
    (d / "captions.jsonl").write_bytes(('{"path": "café.mp4", "caption": "un café"}\n').encode("utf-16"))
    assert [(e["path"].name, e["captions"]) for e in load_captions(d)] == [("café.mp4", {"caption": "un café"})]
    line = json.dumps({"path": "café.mp4", "caption": "one\u2028two \x85 three"}, ensure_ascii=False)
    (d / "captions.jsonl").write_text(line + "\r\n", encoding="utf-8")
    assert [e["captions"]["caption"] for e in load_captions(d)] == ["one\u2028two \x85 three"]
    (d / "captions.jsonl").write_text('{"path": "café.mp4", "caption": "x", "n": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(ValueError, match=r"captions.jsonl:1: not valid JSON"):
        load_captions(d)
    (d / "captions.jsonl").unlink()
    (d / "captions.csv").write_bytes("path,caption\ncafé.mp4,un café crème\n".encode("cp1252"))
    with pytest.raises(ValueError, match=r"captions.csv:2: not UTF-8 text \(byte 0xe9"):
        load_captions(d)
    rows = probe_folder(d, progress=False)  # the probe says why, not "caf\ufffd.mp4 is missing"
    assert [(r["path"], r["ok"]) for r in rows] == [("captions.csv", False), ("café.mp4", True)]
    assert "captions.csv:2: not UTF-8 text" in rows[0]["error"]


def test_probe_refuses_to_write_its_manifest_over_the_captions_file_or_a_video(tmp_path, capsys):
    from spacetime.cli import main

    d = ramp_folder(tmp_path, 3, 10)
    captions = (d / "captions.jsonl").read_text()
    for out, why in [(d / "captions.jsonl", "captions files"), (d / "ramp.mp4", "videos"), (d, "is a directory")]:
        assert main(["data", "probe", str(d), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert f"--out {out}: " in err and why in err and "Traceback" not in err
    assert (d / "captions.jsonl").read_text() == captions and len(read_video(d / "ramp.mp4")[0]) == 3
    assert main(["data", "probe", str(d), "--out", str(d / "manifest.jsonl")]) == 0


def test_a_name_in_the_other_unicode_normalization_names_the_file(tmp_path):
    """Files copied from a Mac keep names in NFD ("e" + a combining accent) while scripts write
    captions in NFC: the entry was skipped as missing and the probe listed "café.mp4" twice, once
    missing and once without a caption."""
    import unicodedata

    from spacetime.data.probe import probe_folder

    d = tmp_path / "d"
    d.mkdir()
    write_video(np.zeros((2, 16, 16, 3), np.uint8), d / unicodedata.normalize("NFD", "café.mp4"), fps=8)
    (d / "captions.jsonl").write_text(json.dumps({"path": "café.mp4", "caption": "un café"}) + "\n")
    (entry,) = load_captions(d, strict=True)
    assert entry["path"].name == unicodedata.normalize("NFD", "café.mp4")
    (row,) = probe_folder(d, progress=False)
    assert row["ok"] and row["captioned"]


def test_a_captions_file_written_on_windows_names_files_in_subfolders(tmp_path):
    """"clips\\a.mp4" (a captions file made on Windows) was skipped as missing: backslashes name
    folders where no file is called that, in the loader and the probe alike."""
    from spacetime.data.probe import probe_folder

    d = tmp_path / "d"
    (d / "clips").mkdir(parents=True)
    write_video(np.zeros((2, 16, 16, 3), np.uint8), d / "clips" / "a.mp4", fps=8)
    (d / "captions.csv").write_text("path,caption\nclips\\a.mp4,a clip\n")
    (entry,) = load_captions(d, strict=True)
    assert entry["path"] == (d / "clips" / "a.mp4").resolve()
    (row,) = probe_folder(d, progress=False)
    assert row["ok"] and row["captioned"]


def test_csv_captions_refuse_an_unclosed_quote_and_take_long_captions(tmp_path):
    """A quote never closed swallowed every later row into one caption in silence, a badly quoted
    caption was mangled, and a caption over 128 KiB (fine in JSONL) raised _csv.Error naming no file."""
    d = ramp_folder(tmp_path, 3, 10)
    (d / "captions.jsonl").unlink()
    (d / "captions.csv").write_text('path,caption\nramp.mp4,"a ramp\nb.mp4,a ball\n')
    with pytest.raises(ValueError, match=r"captions.csv:2: not valid CSV \(unexpected end of data\)"):
        load_captions(d)
    (d / "captions.csv").write_text('path,caption\nramp.mp4,ok\nramp.mp4,"a "big" ramp"\n')
    with pytest.raises(ValueError, match=r"captions.csv:3: not valid CSV"):
        load_captions(d)
    (d / "captions.csv").write_text('path,caption\n\nramp.mp4,"two\nlines"\n\nramp.mp4,' + "x" * 200_000 + "\n")
    entries = load_captions(d)  # each row's first line, past blank lines
    assert [(e["line"], len(e["captions"]["caption"])) for e in entries] == [(3, 9), (6, 200_000)]
    (d / "captions.csv").write_text('path,caption\n\nramp.mp4,x\n\n\nramp.mp4,"y\nramp.mp4,z\n')
    with pytest.raises(ValueError, match=r"captions.csv:6: not valid CSV \(unexpected end of data\)"):
        load_captions(d)


def test_captioned_paths_no_file_system_takes_are_errors_naming_the_line(tmp_path):
    """A path holding a NUL was "embedded null byte" and a lone surrogate a UnicodeEncodeError, naming
    no file or line; a name over 255 bytes was a raw OSError from both load_captions and the probe."""
    from spacetime.data.probe import probe_folder

    d = ramp_folder(tmp_path, 3, 10)
    for bad, why in [("a\x00.mp4", "NUL"), ("a\ud800.mp4", "not a file name")]:
        (d / "captions.jsonl").write_text(json.dumps({"path": bad, "caption": "x"}) + "\n")
        with pytest.raises(ValueError, match=rf"captions.jsonl:1: the path .* {why}"):
            load_captions(d)
        assert [(r["path"], r["ok"]) for r in probe_folder(d, progress=False)] == [("captions.jsonl", False), ("ramp.mp4", True)]
    long = "a" * 300 + ".mp4"
    (d / "captions.jsonl").write_text(json.dumps({"path": long, "caption": "x"}) + "\n" + json.dumps({"path": "ramp.mp4", "caption": "y"}) + "\n")
    assert [e["line"] for e in load_captions(d)] == [2]
    with pytest.raises(FileNotFoundError, match="captions.jsonl:1: names"):
        load_captions(d, strict=True)
    rows = probe_folder(d, progress=False)
    assert [(r["path"], r["ok"]) for r in rows] == [(long, False), ("ramp.mp4", True)]
    assert "named in captions.jsonl line 1 but not a name the file system takes" in rows[0]["error"]


def test_probe_knows_a_video_captioned_by_an_absolute_path_or_through_dotdot(tmp_path, capsys):
    """A captioned path written absolute, or through "..", that names a video inside the folder was
    probed twice and the video reported as having no caption."""
    from spacetime.data.probe import main_probe

    d = ramp_folder(tmp_path, 3, 10)
    write_video(np.zeros((2, 16, 16, 3), np.uint8), d / "b.mp4", fps=8)
    write_video(np.zeros((2, 16, 16, 3), np.uint8), tmp_path / "outside.mp4", fps=8)
    (d / "captions.jsonl").write_text("".join(json.dumps({"path": p, "caption": "x"}) + "\n" for p in
                                              [str(d / "ramp.mp4"), "../d/b.mp4", "../outside.mp4"]))
    assert main_probe(d, None) == 0
    out = capsys.readouterr().out
    assert "3 of 3 files ok" in out and "no caption" not in out


def test_utf16_captions_without_a_byte_order_mark_are_named_as_such(tmp_path):
    """UTF-16 without its byte-order mark read as "not valid JSON (Expecting property name ...)" or a
    header of 'p\\x00a\\x00t\\x00h', saying nothing of the encoding."""
    d = ramp_folder(tmp_path, 3, 10)
    (d / "captions.jsonl").write_bytes('{"path": "ramp.mp4", "caption": "x"}\n'.encode("utf-16-le"))
    with pytest.raises(ValueError, match=r"captions.jsonl:1: UTF-16 text without a byte-order mark"):
        load_captions(d)
    (d / "captions.jsonl").unlink()
    (d / "captions.csv").write_bytes("path,caption\nramp.mp4,x\n".encode("utf-16-be"))
    with pytest.raises(ValueError, match=r"captions.csv:1: UTF-16 text without a byte-order mark"):
        load_captions(d)
    (d / "captions.csv").write_bytes(b"path,caption\nramp.mp4,a \x00 in a caption\n")
    assert load_captions(d)[0]["captions"] == {"caption": "a \x00 in a caption"}


def test_probe_names_the_manifest_it_cannot_write(tmp_path, capsys):
    """An --out in a place no file can be written was an error naming our temporary file."""
    from spacetime.cli import main

    d = ramp_folder(tmp_path, 3, 10)
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "manifest.jsonl"  # under a file: no directory can be made there
    assert main(["data", "probe", str(d), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out}: cannot write the manifest" in err and ".tmp" not in err and "Traceback" not in err


def test_probe_says_a_loop_of_links_is_one(tmp_path):
    """A link to itself was reported as "a link to loop.mp4, which does not exist", a file that does."""
    from spacetime.data.probe import probe_folder

    d = ramp_folder(tmp_path, 3, 10)
    os.symlink("loop.mp4", d / "loop.mp4")
    rows = {r["path"]: r for r in probe_folder(d, progress=False)}
    assert not rows["loop.mp4"]["ok"] and rows["loop.mp4"]["error"] == "a link that leads back to itself (a loop of links)"
    os.symlink("gone.mp4", d / "dangling.mp4")
    assert probe_folder(d, progress=False)[0]["error"] == "a link to gone.mp4, which does not exist"


def test_an_entry_naming_a_directory_is_not_said_to_be_missing(tmp_path, caplog):
    """load_captions(strict=True) said a captioned directory "does not exist"."""
    d = ramp_folder(tmp_path, 3, 10)
    (d / "clips").mkdir()
    (d / "captions.jsonl").write_text(json.dumps({"path": "clips", "caption": "x"}) + "\n"
                                      + json.dumps({"path": "ramp.mp4", "caption": "y"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"captions.jsonl:1: names 'clips', which is a directory, not a video"):
        load_captions(d, strict=True)
    with caplog.at_level(logging.WARNING, logger="spacetime.data.folder"):
        assert [e["line"] for e in load_captions(d)] == [2]
    assert "'clips' (line 1, a directory)" in caplog.text


def test_a_csv_caption_with_an_unquoted_comma_is_refused_not_cut(tmp_path):
    """`ramp.mp4,a dog, running` trained as "a dog": the fields past the header's were dropped in silence."""
    d = ramp_folder(tmp_path, 3, 10)
    (d / "captions.jsonl").unlink()
    (d / "captions.csv").write_text("path,caption\nramp.mp4,a ramp\nramp.mp4,a dog, running\n")
    with pytest.raises(ValueError, match=r"captions.csv:3: 3 fields, but the header names 2; put a caption"):
        load_captions(d)
    (d / "captions.csv").write_text('path,caption,source\nramp.mp4,"a dog, running",web\n')  # more columns: ignored
    assert load_captions(d)[0]["captions"] == {"caption": "a dog, running"}


def test_a_jsonl_key_given_twice_is_refused_not_half_read(tmp_path):
    """{"path": .., "caption": "a", "caption": "b"} trained on "b" alone, dropping "a" in silence."""
    d = ramp_folder(tmp_path, 3, 10)
    for line in ['{"path": "ramp.mp4", "caption": "a", "caption": "b"}',
                 '{"path": "ramp.mp4", "captions": {"short": "a", "short": "b"}}']:
        (d / "captions.jsonl").write_text('{"path": "ramp.mp4", "caption": "ok"}\n' + line + "\n")
        with pytest.raises(ValueError, match=r"captions.jsonl:2: not valid JSON \(the key '(caption|short)' appears more"):
            load_captions(d)


def test_a_json_document_for_captions_jsonl_is_named_as_such(tmp_path):
    """A captions.jsonl holding one JSON array, or pretty-printed objects, was "Expecting property name
    ... at column 2" or 'each line needs a "path" string', saying nothing of the one-object-per-line format."""
    d = ramp_folder(tmp_path, 3, 10)
    rows = [{"path": "ramp.mp4", "caption": "a"}]
    for text in [json.dumps(rows), json.dumps(rows, indent=2), json.dumps(rows[0], indent=2)]:
        (d / "captions.jsonl").write_text(text + "\n")
        with pytest.raises(ValueError, match=r"captions.jsonl:1: .*one JSON object per line \(JSON Lines\)"):
            load_captions(d)


def test_one_video_named_in_two_spellings_is_warned_as_repeated(tmp_path, caplog, capsys):
    """"ramp.mp4" and its absolute path (or "../d/ramp.mp4") are one video drawn twice, but only the
    same spelling twice was warned about."""
    from spacetime.data.probe import main_probe

    d = ramp_folder(tmp_path, 3, 10)
    (d / "captions.jsonl").write_text("".join(json.dumps({"path": p, "caption": "x"}) + "\n"
                                              for p in ["ramp.mp4", str(d / "ramp.mp4"), "../d/./ramp.mp4"]))
    with caplog.at_level(logging.WARNING, logger="spacetime.data.folder"):
        assert len(load_captions(d)) == 3
    assert "'ramp.mp4' (lines 1, 2, 3)" in caplog.text
    assert main_probe(d, None) == 0
    assert "ramp.mp4 (lines 1, 2, 3)" in capsys.readouterr().out


def test_a_file_as_the_data_path_is_named_as_a_file(tmp_path):
    """--data.path pointing at a file (the captions file, say) said 'no such directory'."""
    from spacetime.data.streams import DataConfig

    (tmp_path / "captions.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="captions.jsonl: a file, not a folder of videos"):
        DataConfig(source="folder", path=str(tmp_path / "captions.jsonl"))
    with pytest.raises(ValueError, match="nope: no such directory"):
        DataConfig(source="folder", path=str(tmp_path / "nope"))


def test_a_data_path_under_the_home_folder_is_found(tmp_path, monkeypatch):
    """data.path: ~/videos in a YAML config (or --data.path=~/videos, which the shell leaves as is)
    was 'no such directory': the ~ was not expanded, as run_dir's is."""
    from spacetime.data.streams import DataConfig

    (tmp_path / "videos").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    assert DataConfig(source="folder", path="~/videos").path == str(tmp_path / "videos")


def test_captions_files_with_old_mac_line_ends_are_read_row_by_row(tmp_path):
    """captions.jsonl with lone carriage returns was one line (a JSON error on line 1, naming the whole file)."""
    d = tmp_path / "d"
    d.mkdir()
    for name in ("a.mp4", "b.mp4"):
        write_video(np.zeros((2, 16, 16, 3), np.uint8), d / name, fps=8)
    (d / "captions.jsonl").write_bytes(b'{"path": "a.mp4", "caption": "one"}\r{"path": "b.mp4", "caption": "two"}\r')
    assert [e["captions"] for e in load_captions(d, strict=True)] == [{"caption": "one"}, {"caption": "two"}]
    (d / "captions.jsonl").unlink()
    (d / "captions.csv").write_bytes(b'path,caption\ra.mp4,one\rb.mp4,"two\rlines"\r')
    assert [e["line"] for e in load_captions(d, strict=True)] == [2, 3]
