// The spacetime page: a form that posts a job to /v1/videos, a progress bar fed by polling the
// job, the video played from a blob (so a bearer token works for it too), and this session's
// gallery, kept in sessionStorage; each result's Content Credentials and watermark, as the server
// checks them, and a form to check any file. Nothing is loaded from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const GALLERY_KEY = "spacetime-gallery";
let current = null; // the job being waited for

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      if (body.error) message = body.error.message;
    } catch (e) { /* not JSON */ }
    if (response.status === 401) {
      $("token-label").hidden = false;
      $("advanced").open = true;
    }
    if (response.status === 429) message += " (the queue is full; try again in " + response.headers.get("Retry-After") + " s)";
    throw new Error(message);
  }
  return response;
}

function say(text, error = false) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

function option(select, value, label, selected) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  o.selected = selected;
  select.appendChild(o);
}

async function loadConfig() {
  const config = await (await api("/v1/config")).json();
  $("model").textContent = config.model;
  const d = config.defaults;
  for (const s of config.sizes) option($("size"), s.size, s.label, s.size === d.size);
  if (![...$("size").options].some((o) => o.selected)) option($("size"), d.size, "model default · " + d.size, true);
  for (const t of config.durations) option($("num_frames"), t.num_frames, t.label, t.num_frames === d.num_frames);
  if (![...$("num_frames").options].some((o) => o.selected)) {
    option($("num_frames"), d.num_frames, "model default · " + d.num_frames + " frames", true);
  }
  $("steps").value = d.steps;
  $("steps").max = config.limits.max_steps;
  $("guidance_scale").value = d.guidance_scale;
  $("fps").value = d.fps;
  $("fps").max = config.limits.max_fps;
  $("prompt").maxLength = config.limits.max_prompt_chars;
  $("token-label").hidden = !config.auth;
}

function formData() {
  const f = new FormData();
  f.append("prompt", $("prompt").value);
  for (const name of ["size", "num_frames", "steps", "guidance_scale", "fps", "seed", "negative_prompt"]) {
    const value = $(name).value.trim();
    if (value !== "") f.append(name, value);
  }
  const image = $("image").files[0], video = $("video").files[0], video2 = $("video2").files[0];
  if (image) f.append("image", image);
  if (video) {
    f.append("video", video);
    f.append("mode", $("mode").value);
    if ($("mode").value === "edit") f.append("strength", $("strength").value);
    if ($("mode").value === "connect" && video2) f.append("video2", video2);
  }
  if ($("loop").checked) f.append("loop", "true");
  return f;
}

async function generate(event) {
  event.preventDefault();
  if (current) return;
  say("");
  try {
    const job = await (await api("/v1/videos", { method: "POST", body: formData() })).json();
    current = job.id;
    $("generate").disabled = true;
    $("cancel").hidden = false;
    $("progress").hidden = false;
    $("progress").value = 0;
    say("queued · seed " + job.seed);
    await follow(job.id);
  } catch (e) {
    say(e.message, true);
  } finally {
    current = null;
    $("generate").disabled = false;
    $("cancel").hidden = true;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow(id) {
  for (;;) {
    const job = await (await api("/v1/videos/" + id)).json();
    $("progress").value = job.progress;
    if (job.status === "completed") {
      $("progress").hidden = true;
      say("done · seed " + job.seed);
      await show(job);
      remember(job);
      await addToGallery(job);
      return;
    }
    if (job.status === "failed") {
      $("progress").hidden = true;
      throw new Error(job.error.code === "cancelled" ? "cancelled" : "failed: " + job.error.message);
    }
    say(job.status.replace("_", " ") + " · " + job.progress + "% · seed " + job.seed);
    await sleep(400);
  }
}

async function blobUrl(id, variant) {
  const blob = await (await api("/v1/videos/" + id + "/content?variant=" + variant)).blob();
  return URL.createObjectURL(blob);
}

async function show(job) {
  const url = await blobUrl(job.id, "video");
  const video = $("video-out");
  if (video.dataset.url) URL.revokeObjectURL(video.dataset.url);
  video.dataset.url = url;
  video.dataset.id = job.id;
  video.src = url;
  $("download").href = url;
  $("download").download = job.id + ".mp4";
  $("details").textContent = job.prompt + " · " + job.size + " · " + job.num_frames + " frames at " + job.fps +
    " fps · " + job.steps + " steps · guidance " + job.guidance_scale + " · seed " + job.seed;
  $("result").hidden = false;
  const box = $("credentials");
  box.textContent = "checking the credentials…";
  box.className = "credentials";
  try {
    const report = await (await api("/v1/videos/" + job.id + "/credentials")).json();
    if (video.dataset.id === job.id) render(box, report); // not if another result was opened meanwhile
  } catch (e) {
    box.textContent = "credentials: " + e.message;
  }
}

// One verify report (as `spacetime verify --json` writes it) as a few plain lines; only textContent
// is set, so nothing in a file's manifest can become markup.
function render(box, report) {
  const c2pa = report.c2pa, wm = report.watermark, claims = c2pa.claims || {};
  const generation = claims.generation || {}, model = generation.model || {}, signer = claims.signer || {};
  const lines = [];
  if (c2pa.present) {
    lines.push("Content Credentials: " + (c2pa.valid ? "intact" : "INVALID (changed after signing)"));
    if (claims.ai_generated !== undefined) {
      lines.push("AI-generated: " + (claims.ai_generated ? "yes" : "no") + (claims.generator ? ", by " + claims.generator : ""));
    }
    if (model.name) lines.push("model: " + model.name + (model.sha256 ? " (sha256 " + String(model.sha256).slice(0, 12) + "…)" : ""));
    if (generation.created) lines.push("created: " + generation.created);
    if (generation.seed !== undefined) lines.push("mode " + generation.mode + " · seed " + generation.seed);
    lines.push("signer: " + (signer.common_name || "unknown") + " · " +
      (c2pa.trusted ? "trusted here" : "not a trusted signer here"));
  } else {
    lines.push("Content Credentials: none" + (c2pa.note ? " (" + c2pa.note + ")" : ""));
  }
  lines.push("watermark: " + (wm.score === null ? "not judged" : (wm.detected ? "detected" : "not detected") +
    " · score " + wm.score.toFixed(2) + " (threshold " + wm.threshold + ")") + (wm.note ? " · " + wm.note : ""));
  box.textContent = "";
  const verdict = document.createElement("p");
  verdict.className = "verdict";
  verdict.textContent = report.verdict;
  const list = document.createElement("ul");
  for (const line of lines) {
    const li = document.createElement("li");
    li.textContent = line;
    list.appendChild(li);
  }
  box.append(verdict, list);
  box.className = "credentials " + (["ok", "none", "bad"][report.exit_code] || "");
}

async function checkFile(event) {
  event.preventDefault();
  const file = $("verify-file").files[0];
  const box = $("verify-out");
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  box.className = "credentials";
  box.textContent = "checking " + file.name + "…";
  $("verify").disabled = true;
  try {
    render(box, await (await api("/v1/verify", { method: "POST", body: form })).json());
  } catch (e) {
    box.textContent = e.message;
    box.className = "credentials bad";
  } finally {
    $("verify").disabled = false;
  }
}

function remembered() {
  try { return JSON.parse(sessionStorage.getItem(GALLERY_KEY) || "[]"); } catch (e) { return []; }
}

function remember(job) {
  const ids = remembered().filter((id) => id !== job.id);
  ids.push(job.id);
  sessionStorage.setItem(GALLERY_KEY, JSON.stringify(ids.slice(-50)));
}

async function addToGallery(job) {
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.alt = job.prompt;
  img.src = await blobUrl(job.id, "thumbnail");
  const caption = document.createElement("figcaption");
  caption.textContent = job.prompt.slice(0, 60) + " · seed " + job.seed;
  figure.append(img, caption);
  figure.dataset.id = job.id;
  figure.addEventListener("click", () => show(job).catch((e) => say(e.message, true)));
  $("gallery").prepend(figure);
}

async function restoreGallery() {
  for (const id of remembered()) {
    try {
      const job = await (await api("/v1/videos/" + id)).json();
      if (job.status === "completed") await addToGallery(job);
    } catch (e) { /* deleted, or another server: forget it */ }
  }
}

async function cancel() {
  if (current) await api("/v1/videos/" + current + "/cancel", { method: "POST" }).catch((e) => say(e.message, true));
}

window.addEventListener("DOMContentLoaded", async () => {
  $("form").addEventListener("submit", generate);
  $("cancel").addEventListener("click", cancel);
  $("verify-form").addEventListener("submit", checkFile);
  try {
    await loadConfig();
    await restoreGallery();
  } catch (e) {
    say(e.message, true);
  }
});
