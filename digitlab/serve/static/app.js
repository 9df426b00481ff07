// digitlab's page: draw a digit and watch the network read it; read a photo; look at the model.
// Plain JavaScript, no framework: every request goes to this server's JSON API (see /docs).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, models: [] };

// ------------------------------------------------------------------------------ API
async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const reason = body && (body.detail || body.error);
    throw new Error(typeof reason === "string" ? reason : `${response.status} ${response.statusText}`);
  }
  return body;
}

function withModel(path) {
  if (!state.model) return path;
  return path + (path.includes("?") ? "&" : "?") + "model=" + encodeURIComponent(state.model);
}

// ------------------------------------------------------------------------------ drawing
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const PEN = 18; // stroke width in canvas pixels (the canvas is 280 x 280)
const strokes = []; // each stroke: a list of [x, y] points; undo drops the last one
let current = null;

function point(event) {
  const r = canvas.getBoundingClientRect();
  return [(event.clientX - r.left) * canvas.width / r.width, (event.clientY - r.top) * canvas.height / r.height];
}

function drawStroke(points) {
  ctx.beginPath();
  if (points.length === 1) {
    ctx.arc(points[0][0], points[0][1], PEN / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = ctx.fillStyle = "#111";
  ctx.lineWidth = PEN;
  ctx.lineCap = ctx.lineJoin = "round";
  strokes.forEach(drawStroke);
  $("undo").disabled = $("clear").disabled = strokes.length === 0;
}

canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  current = [point(event)];
  strokes.push(current);
  redraw();
  schedulePredict();
});

canvas.addEventListener("pointermove", (event) => {
  if (!current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of (events.length ? events : [event])) current.push(point(e));
  redraw();
  schedulePredict();
});

function endStroke() {
  if (!current) return;
  current = null;
  schedulePredict(0);
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

$("undo").addEventListener("click", () => { strokes.pop(); redraw(); schedulePredict(0); });
$("clear").addEventListener("click", () => { strokes.length = 0; redraw(); schedulePredict(0); });

// ------------------------------------------------------------------------------ live prediction
// Below this top probability the page says it is not sure, as `digitlab predict --threshold` does:
// the server's `answer` has "?" for such a digit.
const THRESHOLD = 0.5;

// Debounced while drawing; at most one request in flight, and the last drawing always gets an answer.
// #result carries data-pending while an answer for the current drawing is still to come.
let timer = null, inFlight = false, again = false;

function schedulePredict(delay = 150) {
  $("result").dataset.pending = "true";
  clearTimeout(timer);
  timer = setTimeout(() => { timer = null; predictDrawing(); }, delay);
}

function settled() {
  if (!inFlight && !again && timer === null) delete $("result").dataset.pending;
}

async function predictDrawing() {
  if (inFlight) { again = true; return; }
  if (strokes.length === 0) { showPrediction(null); $("message").textContent = ""; settled(); return; }
  inFlight = true;
  try {
    const blob = await new Promise((resolve) => sendCanvas().toBlob(resolve, "image/png"));
    const result = await api(withModel(`/api/predict?threshold=${THRESHOLD}`), {
      method: "POST", headers: { "Content-Type": "image/png" }, body: blob,
    });
    showPrediction(result);
    $("message").textContent = "";
  } catch (error) {
    showPrediction(null);
    $("message").textContent = error.message;
  } finally {
    inFlight = false;
    if (again) { again = false; predictDrawing(); } else settled();
  }
}

// The drawing goes to the server at half size: 140 px is still seven times the 20 px MNIST fits a
// digit into, and preprocessing a quarter of the pixels takes about a third of the time.
const SEND = 140;
const small = document.createElement("canvas");
small.width = small.height = SEND;
function sendCanvas() {
  const c = small.getContext("2d");
  c.imageSmoothingEnabled = true;
  c.imageSmoothingQuality = "high";
  c.drawImage(canvas, 0, 0, SEND, SEND);
  return small;
}

function buildBars() {
  const bars = $("bars");
  for (let d = 0; d < 10; d++) {
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.digit = d;
    row.setAttribute("role", "listitem");
    row.innerHTML = `<span class="label">${d}</span><div class="track"><div class="fill"></div></div><span class="value"></span>`;
    bars.appendChild(row);
  }
}

function showPrediction(result) {
  const probs = result ? result.probabilities : new Array(10).fill(0);
  document.querySelectorAll(".bar").forEach((row, d) => {
    row.querySelector(".fill").style.width = (100 * probs[d]).toFixed(1) + "%";
    row.querySelector(".value").textContent = result ? (100 * probs[d]).toFixed(1) + "%" : "";
    row.classList.toggle("top", !!result && d === result.digit);
  });
  const sure = !!result && result.answer !== "?";
  const percent = result ? (100 * result.confidence).toFixed(1) + "%" : "";
  $("digit").textContent = sure ? result.digit : "?";
  $("confidence").textContent = !result ? "" : sure ? `${percent} sure` : `not sure (${result.digit} at ${percent})`;
  if (result) $("seen").src = result.image; else $("seen").removeAttribute("src");
  $("latency").textContent = result ? `Answered in ${result.latency_ms.toFixed(1)} ms.` : "";
}

// ------------------------------------------------------------------------------ photos
async function readPhoto(file) {
  $("photo-message").textContent = "Reading…";
  $("photo-result").hidden = true;
  try {
    const result = await api(withModel(`/api/predict?number=true&threshold=${THRESHOLD}`), {
      method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file,
    });
    $("photo-number").textContent = result.answer; // "?" for each digit it is not sure of
    const thumbs = $("photo-digits");
    thumbs.innerHTML = "";
    result.digits.forEach((d, i) => {
      const unsure = result.answer[i] === "?" ? "?" : "";
      thumbs.appendChild(figure(d.image, `${d.digit}${unsure} · ${(100 * d.confidence).toFixed(0)}%`));
    });
    $("photo-result").hidden = false;
    $("photo-message").textContent = result.answer.includes("?")
      ? `? marks a digit the network is not sure of (under ${100 * THRESHOLD}%).` : "";
  } catch (error) {
    $("photo-message").textContent = error.message;
  }
}

function figure(src, caption, className = "") {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  if (className) cap.className = className;
  fig.append(img, cap);
  return fig;
}

$("photo-input").addEventListener("change", (event) => {
  if (event.target.files.length) readPhoto(event.target.files[0]);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) readPhoto(event.dataTransfer.files[0]);
});

// ------------------------------------------------------------------------------ the model
const pct = (x) => (x === null || x === undefined ? "—" : (100 * x).toFixed(2) + "%");

async function showModel() {
  const m = await api(`/api/models/${encodeURIComponent(state.model)}`);
  $("model-name").textContent = `“${m.name}”`;
  const bits = [m.recipe ? `recipe ${m.recipe}` : "no recipe recorded", `${m.params.toLocaleString()} parameters`];
  if (m.epochs) bits.push(`${m.epochs} epoch${m.epochs > 1 ? "s" : ""}`);
  if (m.test_accuracy !== null) bits.push(`test accuracy ${pct(m.test_accuracy)}`);
  if (m.published_accuracy) bits.push(`the tutorial reported ${pct(m.published_accuracy)}`);
  $("model-summary").textContent = bits.join(" · ");
  const body = $("architecture").querySelector("tbody");
  body.innerHTML = "";
  for (const row of m.architecture) {
    const tr = document.createElement("tr");
    const layer = row.layer.replace(/\d+\.\d{5,}/g, (x) => String(Number(Number(x).toPrecision(4)))); // 1/255 reads 0.003922
    for (const [text, cls] of [[layer, ""], [row.output_shape.join("×"), "num"], [row.params.toLocaleString(), "num"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  drawCurves(m.history);
  $("confusion").innerHTML = $("gallery").innerHTML = $("confusion-message").textContent = "";
  $("confusion-load").disabled = $("confusion-load").hidden = false;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function drawCurves(history) {
  const box = $("curves");
  box.innerHTML = "";
  if (!history || history.length === 0) {
    box.textContent = "This model file has no training history.";
    return;
  }
  for (const [title, train, val] of [["loss", "loss", "val_loss"], ["accuracy", "accuracy", "val_accuracy"]]) {
    box.appendChild(chart(title, history, train, history.some((e) => e[val] != null) ? val : null));
  }
}

function chart(title, history, key, valKey) {
  const W = 320, H = 150, L = 44, R = 10, T = 18, B = 24;
  const el = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `${title} per epoch` });
  const values = history.flatMap((e) => [e[key], valKey ? e[valKey] : null]).filter((v) => v != null);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-9) { lo -= 0.5 * (Math.abs(lo) || 1) * 0.1; hi += 0.5 * (Math.abs(hi) || 1) * 0.1; }
  const n = history.length;
  const x = (i) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (v) => T + ((hi - v) * (H - T - B)) / (hi - lo);
  svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }, el);
  svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }, el);
  const fmt = (v) => (title === "accuracy" ? (100 * v).toFixed(1) + "%" : v.toFixed(3));
  for (const v of [lo, hi]) {
    svg("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, el).textContent = fmt(v);
  }
  svg("text", { x: L, y: 12 }, el).textContent = `${title} (${valKey ? "solid: training, dashed: validation" : "training"})`;
  svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, el).textContent = `epoch ${n}`;
  svg("text", { x: L, y: H - 6 }, el).textContent = "1";
  for (const [k, cls] of [[key, "train"], [valKey, "val"]]) {
    if (!k) continue;
    const pts = history.map((e, i) => [x(i), e[k]]).filter((p) => p[1] != null).map((p) => `${p[0]},${y(p[1])}`);
    if (pts.length === 1) svg("circle", { cx: pts[0].split(",")[0], cy: pts[0].split(",")[1], r: 3, class: cls }, el);
    else svg("polyline", { points: pts.join(" "), class: cls }, el);
  }
  return el;
}

$("confusion-load").addEventListener("click", async () => {
  const button = $("confusion-load");
  button.disabled = true;
  $("confusion-message").textContent = "Predicting the 10,000 test images…";
  try {
    const c = await api(`/api/models/${encodeURIComponent(state.model)}/confusion`);
    if (!c.available) {
      $("confusion-message").textContent = "Not available: " + c.reason;
      button.disabled = false;
      return;
    }
    button.hidden = true;
    $("confusion-message").textContent = `Accuracy ${pct(c.accuracy)} on ${c.images.toLocaleString()} images; rows: true digit, columns: predicted. The most confident mistakes: true → predicted.`;
    drawConfusion(c.matrix);
    const gallery = $("gallery");
    gallery.innerHTML = "";
    for (const m of c.misclassified) {
      gallery.appendChild(figure(m.image, `${m.label} → ${m.predicted} (${(100 * m.confidence).toFixed(0)}%)`, "wrong"));
    }
  } catch (error) {
    $("confusion-message").textContent = error.message;
    button.disabled = false;
  }
});

function drawConfusion(matrix) {
  const table = document.createElement("table");
  const head = table.insertRow();
  head.appendChild(document.createElement("th"));
  for (let p = 0; p < 10; p++) { const th = document.createElement("th"); th.textContent = p; head.appendChild(th); }
  matrix.forEach((row, t) => {
    const tr = table.insertRow();
    const th = document.createElement("th");
    th.textContent = t;
    tr.appendChild(th);
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((count, p) => {
      const td = tr.insertCell();
      td.textContent = count || "";
      const share = count / total;
      // the diagonal in blue, mistakes in red: darker for a larger share of the row
      const alpha = t === p ? 0.15 + 0.85 * share : Math.min(1, 0.1 + 8 * share);
      td.style.background = count ? (t === p ? `rgba(47,111,223,${alpha})` : `rgba(200,50,42,${alpha})`) : "";
      td.style.color = alpha > 0.55 ? "#fff" : "";
      td.title = `true ${t}, predicted ${p}: ${count}`;
    });
  });
  $("confusion").innerHTML = "";
  $("confusion").appendChild(table);
}

// ------------------------------------------------------------------------------ start
async function start() {
  buildBars();
  redraw();
  showPrediction(null);
  try {
    const list = await api("/api/models");
    state.models = list.models;
    state.model = list.default;
    const select = $("model-select");
    for (const m of list.models) {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = m.test_accuracy != null ? `${m.name} (${pct(m.test_accuracy)})` : m.name;
      select.appendChild(option);
    }
    select.value = state.model;
    $("model-picker").hidden = list.models.length < 2;
    select.addEventListener("change", () => {
      state.model = select.value;
      showModel();
      if (strokes.length) schedulePredict(0);
    });
    await showModel();
  } catch (error) {
    $("message").textContent = "The server did not answer: " + error.message;
  }
}

start();
