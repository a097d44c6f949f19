// The spacetime page: a form that posts a job to /v1/videos, a progress bar fed by polling the
// job, the video played from a blob (so a bearer token works for it too), and this session's
// gallery, kept in sessionStorage; each result's Content Credentials and watermark, as the server
// checks them, and a form to check any file. Nothing is loaded from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const GALLERY_KEY = "spacetime-gallery"; // ids of this session's completed jobs, oldest first
const RUNNING_KEY = "spacetime-running"; // the job being waited for: a reload follows it again
const TOKEN_KEY = "spacetime-token"; // the API token, for this tab's session only
const RETRIES = 8; // polls lost to the network before giving up: about a minute with the backoff
let config = null; // what /v1/config says: defaults, presets, limits, whether a token is needed
let busy = false; // a job is being submitted or followed: Generate makes one job at a time
let current = null; // the id of the job being followed, once the server has answered

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

// An answer other than 2xx carries its status; a network failure (fetch's TypeError) has none.
class HttpError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    // the server's own message says it all (a full queue's includes when to retry)
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      if (body.error) message = body.error.message;
    } catch (e) { /* not JSON */ }
    if (response.status === 401) {
      $("token-label").hidden = false;
      message = $("token").value.trim() ? "the API token was refused: check the API token field"
        : "enter the API token in the API token field: this server needs one";
    }
    throw new HttpError(message, response.status);
  }
  return response;
}

// Seeds go up to 2^63 - 1, but JSON.parse makes every number a double, exact only to 2^53: a
// seed of 9007199254740993 would read 9007199254740992. Seeds are taken as the digits the server
// sent. (A `"seed":` inside a JSON string has its quotes escaped, so only real keys match.)
async function json(response) {
  const text = await response.text();
  return JSON.parse(text.replace(/("seed"\s*:\s*)(\d+)/g, '$1"$2"'));
}

// The status line is a live region: it is written only when it changes, so a screen reader
// announces each new state once (the percentage is in the progress bar, not here).
function say(text, error = false) {
  const message = $("message"), className = error ? "error" : "";
  if (message.textContent !== text) message.textContent = text;
  if (message.className !== className) message.className = className;
}

const plural = (n, word) => n + " " + word + (Number(n) === 1 ? "" : "s");
// 3 significant digits, as the server writes its labels (Python's "{:.3g}")
const seconds = (s) => String(Number(s.toPrecision(3)));

function option(select, value, label, selected) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  o.selected = selected;
  select.appendChild(o);
}

// The server names each size by the ratio it aims at; fitted to the model's multiple a size can
// miss it (16:9 at 64 px high is 112x64, 1.75:1), and then the label says "≈".
function sizeLabel(label, size) {
  const ratio = /^(\d+):(\d+)/.exec(label), [w, h] = size.split("x").map(Number);
  return ratio && w * Number(ratio[2]) !== h * Number(ratio[1]) ? "≈" + label : label;
}

async function loadConfig() {
  config = await json(await api("/v1/config"));
  $("model").textContent = config.model;
  const d = config.defaults, limits = config.limits;
  for (const s of config.sizes) option($("size"), s.size, sizeLabel(s.label, s.size), s.size === d.size);
  if (![...$("size").options].some((o) => o.selected)) option($("size"), d.size, "model default · " + d.size, true);
  for (const t of config.durations) option($("num_frames"), t.num_frames, t.label, t.num_frames === d.num_frames);
  if (![...$("num_frames").options].some((o) => o.selected)) {
    option($("num_frames"), d.num_frames, "model default · " + plural(d.num_frames, "frame"), true);
  }
  for (const o of $("num_frames").options) o.dataset.label = o.textContent; // the labels at the model's fps
  $("steps").value = d.steps;
  $("steps").max = limits.max_steps;
  $("guidance_scale").value = d.guidance_scale;
  $("guidance_scale").max = limits.max_guidance;
  $("fps").value = d.fps;
  $("fps").max = limits.max_fps;
  $("token-label").hidden = !config.auth; // shown up front: every request but this one needs it
}

// The duration labels are the server's, at the model's fps; at another fps the same frames last
// longer or shorter (seconds = frames / fps, as the server counts them).
function relabelDurations() {
  const fps = Number($("fps").value);
  const other = $("fps").value.trim() !== "" && fps > 0 && Number.isFinite(fps) && fps !== config.defaults.fps;
  for (const o of $("num_frames").options) {
    const n = Number(o.value);
    if (o.dataset.label === undefined || n <= 1) continue; // an image has no duration
    o.textContent = other ? seconds(n / fps) + " s · " + plural(n, "frame") : o.dataset.label;
  }
}

// The server counts prompts in characters (code points, at most limits.max_prompt_chars); the
// browser's maxLength would count UTF-16 units, an emoji as two, and cut a long prompt silently.
// So the length is checked here, and the browser shows the message like any invalid field.
function checkLength(input) {
  const max = config ? config.limits.max_prompt_chars : Infinity, n = [...input.value].length;
  input.setCustomValidity(n > max ? n + " characters: at most " + max + " are allowed" : "");
}

// The upload controls that do not apply are disabled (so neither sent nor validated): the mode
// without a video, the strength unless the mode is edit or connect, the second video unless it is connect,
// and loop with a video (the server refuses it).
function syncControls() {
  const video = $("video").files.length > 0, mode = $("mode").value;
  $("mode").disabled = !video;
  $("strength").disabled = !(video && (mode === "edit" || mode === "connect"));
  $("video2").disabled = !(video && mode === "connect");
  $("loop").disabled = video;
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
    if (!$("strength").disabled) f.append("strength", $("strength").value);
    if (!$("video2").disabled && video2) f.append("video2", video2);
  }
  if ($("loop").checked && !$("loop").disabled) f.append("loop", "true");
  return f;
}

function setBusy(on) {
  busy = on;
  $("generate").disabled = on;
  // a disabled button loses the focus: keep it on the status line while the job runs, and give it
  // back to Generate after, unless the user has moved it somewhere else meanwhile
  const lost = document.activeElement === document.body || document.activeElement === null;
  if (on && (lost || document.activeElement === $("generate"))) $("message").focus();
  if (!on && (lost || document.activeElement === $("message"))) $("generate").focus();
}

async function generate(event) {
  event.preventDefault();
  if (busy) return; // a second click while the first is being answered makes no second job
  setBusy(true); // before the request, not after its answer
  say("submitting…");
  try {
    const job = await json(await api("/v1/videos", { method: "POST", body: formData() }));
    await track(job);
  } catch (e) {
    say(e.message, true);
  } finally {
    setBusy(false);
  }
}

// Follow a job to its end, after Generate or after a reload while it ran: its id stays in
// sessionStorage until it ends, so a reload follows it again (with its progress and Cancel).
async function track(job) {
  current = job.id;
  sessionStorage.setItem(RUNNING_KEY, job.id);
  $("cancel").hidden = false;
  $("progress").value = job.progress || 0;
  $("progress-box").hidden = false;
  try {
    await follow(job);
  } finally {
    current = null;
    $("progress-box").hidden = true;
    $("cancel").hidden = true;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow(job) {
  const id = job.id;
  let failures = 0;
  for (;;) {
    if (job) {
      $("progress").value = job.progress;
      $("percent").textContent = job.progress + "%";
      if (job.status === "completed") {
        sessionStorage.removeItem(RUNNING_KEY);
        remember(job);
        say("done · seed " + job.seed);
        await show(job);
        await addToGallery(job);
        return;
      }
      if (job.status === "failed") {
        sessionStorage.removeItem(RUNNING_KEY);
        throw new Error(job.error.code === "cancelled" ? "cancelled · seed " + job.seed : "failed: " + job.error.message);
      }
      say(job.status.replace("_", " ") + " · seed " + job.seed);
      await sleep(400);
    }
    try {
      job = await json(await api("/v1/videos/" + id));
      failures = 0;
    } catch (e) {
      job = null;
      if (e.status === 404) {
        sessionStorage.removeItem(RUNNING_KEY);
        throw new Error("the job is gone (deleted, or the server was restarted)");
      }
      // the server stopped or the network dropped: try again a few times, further apart each time
      // (the job's id stays stored: a reload looks for it again)
      if (e.status !== undefined) throw e;
      if (++failures > RETRIES) throw new Error("lost contact with the server (" + e.message + "); reload the page to try again");
      say("lost contact with the server, retrying…", true);
      await sleep(Math.min(1000 * 2 ** (failures - 1), 10000));
    }
  }
}

async function resume() {
  const id = sessionStorage.getItem(RUNNING_KEY);
  if (!id || busy) return;
  setBusy(true);
  try {
    await track(await json(await api("/v1/videos/" + id)));
  } catch (e) {
    if (e.status === 404) sessionStorage.removeItem(RUNNING_KEY); // deleted, or another server
    else say(e.message, true);
  } finally {
    setBusy(false);
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
  $("details").textContent = job.prompt + " · " + job.size + " · " + plural(job.num_frames, "frame") + " at " + job.fps +
    " fps · " + plural(job.steps, "step") + " · guidance " + job.guidance_scale + " · seed " + job.seed +
    (job.revised_prompt ? " · made from the completed prompt: " + job.revised_prompt : "");
  $("result").hidden = false;
  const box = $("credentials");
  box.textContent = "checking the credentials…";
  box.className = "credentials";
  try {
    const report = await json(await api("/v1/videos/" + job.id + "/credentials"));
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
    render(box, await json(await api("/v1/verify", { method: "POST", body: form })));
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

function forget(id) {
  sessionStorage.setItem(GALLERY_KEY, JSON.stringify(remembered().filter((other) => other !== id)));
}

// Each result is a button (reachable and pressed by keyboard too) that plays it again.
async function addToGallery(job) {
  const shown = () => [...$("gallery").children].some((el) => el.dataset.id === job.id);
  if (shown()) return;
  const item = document.createElement("button");
  item.type = "button";
  item.className = "item";
  item.dataset.id = job.id;
  const img = document.createElement("img");
  img.alt = ""; // the caption names it
  img.src = await blobUrl(job.id, "thumbnail");
  const caption = document.createElement("span");
  caption.textContent = [...job.prompt].slice(0, 60).join("") + " · seed " + job.seed; // whole characters
  item.append(img, caption);
  item.addEventListener("click", () => {
    if (!busy) say(""); // the status line spoke of another job
    show(job).catch((e) => say(e.message, true));
  });
  // newest first, whatever order the results come in (a restore and a finished job can overlap)
  const gallery = $("gallery"), order = remembered(), rank = (el) => order.indexOf(el.dataset.id);
  if (shown()) return; // added while the thumbnail loaded
  gallery.insertBefore(item, [...gallery.children].find((el) => rank(el) < rank(item)) || null);
}

// The remembered results this server still has; the ids of deleted jobs (404) are forgotten.
// Run again when the token changes: without the right one every request was refused.
let restoring = 0;
async function restoreGallery() {
  const run = ++restoring;
  for (const id of remembered()) {
    if (run !== restoring) return; // a newer run took over
    try {
      const job = await json(await api("/v1/videos/" + id));
      if (job.status === "completed") await addToGallery(job);
    } catch (e) {
      if (e.status === 404) {
        forget(id);
      } else {
        if (!busy) say(e.message, true); // 401: the message asks for the token
        return;
      }
    }
  }
}

async function cancel() {
  if (!current) return;
  say("cancelling…");
  await api("/v1/videos/" + current + "/cancel", { method: "POST" }).catch((e) => say(e.message, true));
}

let tokenTimer = null;
function tokenChanged() {
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  clearTimeout(tokenTimer);
  tokenTimer = setTimeout(() => { resume(); restoreGallery(); }, 500); // once typing pauses
}

window.addEventListener("DOMContentLoaded", async () => {
  const form = $("form");
  form.addEventListener("submit", generate);
  // a field the browser finds invalid may be inside the closed Advanced section, where its
  // message cannot show (and Generate would seem to do nothing): open it
  form.addEventListener("invalid", (e) => { if ($("advanced").contains(e.target)) $("advanced").open = true; }, true);
  // an error was about what the form held: once it changes, the message is stale
  form.addEventListener("input", () => { if (!busy && $("message").className === "error") say(""); });
  for (const name of ["prompt", "negative_prompt"]) $(name).addEventListener("input", () => checkLength($(name)));
  $("fps").addEventListener("input", relabelDurations);
  for (const name of ["video", "mode"]) $(name).addEventListener("change", syncControls);
  $("token").addEventListener("input", tokenChanged);
  $("cancel").addEventListener("click", cancel);
  $("verify-form").addEventListener("submit", checkFile);
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  syncControls();
  try {
    await loadConfig();
  } catch (e) {
    say(e.message, true);
    return;
  }
  for (const name of ["prompt", "negative_prompt"]) checkLength($(name)); // a restored form's values
  relabelDurations();
  resume();
  restoreGallery();
});
