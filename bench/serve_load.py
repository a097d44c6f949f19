"""A bounded load test of `spacetime serve` on loopback (docs/serving.md): N concurrent clients each
submit jobs; every job must complete or be refused with 429, none may be lost, and the server's
memory must stay bounded across rounds of the same load.

    python bench/serve_load.py [--model DIR] [--clients 8] [--jobs 4] [--rounds 3] [--queue-size 4]
                               [--workers 1] [--steps 2] [--size 32x32] [--num-frames 5] [--json out.json]

The server is `python -m spacetime serve --port 0` in a child process (on 127.0.0.1 only); its
resident memory (VmRSS) is sampled every 50 ms. Clients do not retry a 429: the point is that a
full queue refuses work instead of growing. Without --model, a tiny random model (the tests') is
built in a temporary folder: that measures the server, not the model. Exits 1 if a job is lost,
fails, or a request gets anything but 200 or 429.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from spacetime.serve.app import listening_url

DEADLINE_S = 600  # the whole run stops by itself after this


def tiny_model(folder: Path) -> Path:
    """The tests' tiny random pipeline (tests/tiny_pipeline.py): 5 frames of 32x32, hash text encoder."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_pipeline import make_tiny_pipeline

    return make_tiny_pipeline(folder)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """Peak RSS of a process since the last `reset`."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (FileNotFoundError, ProcessLookupError):
                return

    def reset(self) -> float:
        peak, self.peak = self.peak, rss_mib(self.pid)
        return peak


def client(url: str, jobs: int, body: dict, results: list, deadline: float) -> None:
    """Submit `jobs` jobs one after another, then wait for every accepted one."""
    with httpx.Client(base_url=url, timeout=60) as c:
        accepted = []
        for _ in range(jobs):
            t0 = time.perf_counter()
            r = c.post("/v1/videos", json=body)
            row = {"status_code": r.status_code, "submit_s": time.perf_counter() - t0}
            if r.status_code == 200:
                row["id"] = r.json()["id"]
                accepted.append((row, time.perf_counter()))
            elif r.status_code == 429:
                row["retry_after"] = int(r.headers["Retry-After"])
            else:
                row["error"] = r.text[:200]
            results.append(row)
        for row, t0 in accepted:
            while time.monotonic() < deadline:
                job = c.get(f"/v1/videos/{row['id']}").json()
                if job["status"] in ("completed", "failed"):
                    row["final"], row["latency_s"] = job["status"], time.perf_counter() - t0
                    if job["status"] == "completed":
                        row["mp4_bytes"] = len(c.get(f"/v1/videos/{row['id']}/content").content)
                    break
                time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=4, help="jobs each client submits per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queue-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--size", default="32x32")
    ap.add_argument("--num-frames", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    deadline = time.monotonic() + DEADLINE_S
    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    model = args.model or tiny_model(tmp)
    cmd = [sys.executable, "-m", "spacetime", "serve", "--model", str(model), "--host", "127.0.0.1", "--port", "0",
           "--output-dir", str(tmp / "outputs"), "--queue-size", str(args.queue_size), "--workers", str(args.workers)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = listening_url(server.stdout)
        if url is None:
            raise SystemExit(f"the server did not start: {' '.join(cmd)}")
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # drain its log
        body = {"prompt": "a red ball bounces", "size": args.size, "num_frames": args.num_frames, "steps": args.steps}
        warm = []
        client(url, 1, body, warm, deadline)  # the first job pays for lazy imports and allocator growth
        sampler = Sampler(server.pid)
        idle_rss = rss_mib(server.pid)
        sampler.start()
        rounds, all_rows = [], []
        for r in range(args.rounds):
            rows: list[dict] = []
            t0 = time.perf_counter()
            threads = [threading.Thread(target=client, args=(url, args.jobs, body, rows, deadline))
                       for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(max(1.0, deadline - time.monotonic()))
            wall = time.perf_counter() - t0
            done = [x for x in rows if x.get("final") == "completed"]
            rounds.append({"round": r + 1, "submitted": len(rows), "completed": len(done),
                           "rejected_429": sum(x["status_code"] == 429 for x in rows),
                           "failed": sum(x.get("final") == "failed" for x in rows),
                           "lost": sum(x["status_code"] == 200 and "final" not in x for x in rows),
                           "other_status": sum(x["status_code"] not in (200, 429) for x in rows),
                           "wall_s": round(wall, 2), "jobs_per_s": round(len(done) / wall, 2),
                           "latency_s_max": round(max((x["latency_s"] for x in done), default=0), 2),
                           "submit_ms_max": round(1000 * max(x["submit_s"] for x in rows), 1),
                           "peak_rss_mib": round(sampler.reset(), 1)})
            all_rows += rows
        health = httpx.get(url + "/healthz", timeout=30).json()
        listed = httpx.get(url + "/v1/videos", params={"limit": 100}, timeout=30).json()
        accepted_ids = {x["id"] for x in all_rows if "id" in x} | {x["id"] for x in warm if "id" in x}
        on_disk = {p.name for p in (tmp / "outputs").iterdir() if (p / "video.mp4").is_file()}
        result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv),
                  "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  "idle_rss_mib_after_warmup": round(idle_rss, 1), "rounds": rounds,
                  "server_jobs_kept": health["jobs"], "accepted": len(accepted_ids),
                  "accepted_on_disk_with_mp4": len(accepted_ids & on_disk),
                  "listed_first_page": len(listed["data"])}
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    bad = [r for r in rounds if r["lost"] or r["failed"] or r["other_status"]
           or r["completed"] + r["rejected_429"] != r["submitted"]]
    ok = not bad and result["accepted_on_disk_with_mp4"] == result["accepted"] == result["server_jobs_kept"]
    print("OK: every job completed or got 429; none lost" if ok else "FAILED: see above", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
