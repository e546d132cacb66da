// vista studio: calls vista's own API with the key typed in (kept in sessionStorage only) and draws
// what it found. No framework, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const V4_FEATURES = ["caption", "denseCaptions", "tags", "objects", "people", "read", "smartCrops"];
const V3_FEATURES = ["Faces", "Objects", "Tags", "Description", "Adult", "Color", "ImageType", "Categories"];

// ---- key, errors, requests ----------------------------------------------------------------------

const keyInput = $("key");
keyInput.value = sessionStorage.getItem("vista-key") || "";
keyInput.addEventListener("input", () => sessionStorage.setItem("vista-key", keyInput.value));

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

/** Calls the API; resolves to the Response when ok, else shows Azure's code and message and throws. */
async function call(path, options = {}) {
  showError("");
  const headers = { "Ocp-Apim-Subscription-Key": keyInput.value, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (response.ok) return response;
  let text = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const error = body.error || body;
    text = `${response.status} ${error.code || ""}: ${error.message || JSON.stringify(body)}`;
  } catch (_) { /* not JSON */ }
  showError(text);
  throw new Error(text);
}

const binary = (blob) => ({ method: "POST", body: blob, headers: { "Content-Type": "application/octet-stream" } });

// ---- tabs ---------------------------------------------------------------------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];
function select(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
}
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => select(tab));
  tab.addEventListener("keydown", (e) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (step) select(tabs[(i + step + tabs.length) % tabs.length]);
  });
});

// ---- drawing ------------------------------------------------------------------------------------

/** Adds a shape to `svg`: a rect for {x, y, w, h}, a polygon for [{x, y}...]. */
function shape(svg, kind, label, confidence, geometry) {
  let node;
  if (Array.isArray(geometry)) {
    node = document.createElementNS(SVG, "polygon");
    node.setAttribute("points", geometry.map((p) => `${p.x},${p.y}`).join(" "));
  } else {
    node = document.createElementNS(SVG, "rect");
    for (const [attribute, value] of Object.entries({ x: geometry.x, y: geometry.y, width: geometry.w, height: geometry.h }))
      node.setAttribute(attribute, value);
  }
  node.setAttribute("class", `shape ${kind}`);
  node.dataset.kind = kind;
  node.dataset.label = label;
  node.dataset.confidence = confidence;
  const title = document.createElementNS(SVG, "title");
  title.textContent = `${label} (${kind}${confidence < 1 ? `, ${confidence.toFixed(2)}` : ""})`;
  node.appendChild(title);
  svg.appendChild(node);
}

function resetOverlay(svg, width, height) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
}

/** Hides shapes of unticked kinds and below the confidence slider; the shapes themselves stay. */
function filterShapes() {
  const minimum = Number($("confidence").value);
  $("confidence-value").textContent = minimum.toFixed(2);
  const shown = new Set([...$("kinds").querySelectorAll("input:checked")].map((i) => i.value));
  for (const node of $("overlay").querySelectorAll(".shape"))
    node.classList.toggle("hidden", !shown.has(node.dataset.kind) || Number(node.dataset.confidence) < minimum);
}
$("confidence").addEventListener("input", filterShapes);

function kindToggles(kinds) {
  const box = $("kinds");
  box.replaceChildren(Object.assign(document.createElement("legend"), { textContent: "Show" }));
  for (const kind of kinds) {
    const label = document.createElement("label");
    const input = Object.assign(document.createElement("input"), { type: "checkbox", value: kind, checked: true });
    input.dataset.testid = `show-${kind}`;
    input.addEventListener("change", filterShapes);
    label.append(input, ` ${kind}`);
    box.appendChild(label);
  }
}

// ---- analyze ------------------------------------------------------------------------------------

function checkboxes(box, names, checked) {
  for (const name of names) {
    const label = document.createElement("label");
    const input = Object.assign(document.createElement("input"), { type: "checkbox", value: name, checked: checked.includes(name) });
    input.dataset.testid = `feature-${name}`;
    label.append(input, ` ${name}`);
    box.appendChild(label);
  }
}
checkboxes($("features-v4"), V4_FEATURES, ["caption", "tags", "objects"]);
checkboxes($("features-v3"), V3_FEATURES, ["Faces", "Objects", "Tags"]);
const mode = () => document.querySelector('input[name="mode"]:checked').value;
for (const radio of document.querySelectorAll('input[name="mode"]'))
  radio.addEventListener("change", () => {
    $("features-v4").hidden = mode() !== "v4";
    $("features-v3").hidden = mode() !== "v3";
  });

let picked = null; // the Blob to analyze, or null when a URL is given
function pick(blob) {
  picked = blob;
  $("url").value = "";
  $("picture").src = URL.createObjectURL(blob);
}
$("file").addEventListener("change", (e) => e.target.files[0] && pick(e.target.files[0]));
$("url").addEventListener("input", () => { picked = null; });
const drop = $("drop");
drop.addEventListener("dragover", (e) => e.preventDefault());
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  if (e.dataTransfer.files[0]) pick(e.dataTransfer.files[0]);
});
document.addEventListener("paste", (e) => {
  const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
  if (item) pick(item.getAsFile());
});

function chips(names) {
  $("chips").replaceChildren(...names.map(([name, confidence]) =>
    Object.assign(document.createElement("span"), { className: "chip", textContent: `${name} ${confidence.toFixed(2)}` })));
}

function snippet(path, url) {
  const origin = location.origin;
  const body = url ? `-H "Content-Type: application/json" -d '{"url": "${url}"}'` : `-H "Content-Type: application/octet-stream" --data-binary @image.jpg`;
  const curl = `curl -X POST "${origin}${path}" \\\n  -H "Ocp-Apim-Subscription-Key: $KEY" ${body}`;
  const features = new URLSearchParams(path.split("?")[1]).get("features");
  const python = features ? `\n\n# Python (azure-ai-vision-imageanalysis)\nfrom azure.ai.vision.imageanalysis import ImageAnalysisClient\nfrom azure.core.credentials import AzureKeyCredential\nclient = ImageAnalysisClient("${origin}", AzureKeyCredential(KEY))\nresult = client.analyze(image_data=open("image.jpg", "rb").read(), visual_features=[${features.split(",").map((f) => `"${f}"`).join(", ")}])` : "";
  $("snippet").textContent = curl + python;
}

/** Draws a 4.0 result; returns the kinds drawn. */
function drawV4(result) {
  const svg = $("overlay");
  const box = (b) => ({ x: b.x, y: b.y, w: b.w, h: b.h });
  for (const o of result.objectsResult?.values || []) shape(svg, "object", o.tags[0]?.name || "object", o.tags[0]?.confidence ?? 0, box(o.boundingBox));
  for (const p of result.peopleResult?.values || []) shape(svg, "person", "person", p.confidence, box(p.boundingBox));
  for (const d of result.denseCaptionsResult?.values || []) shape(svg, "denseCaption", d.text, d.confidence, box(d.boundingBox));
  for (const line of result.readResult?.blocks?.[0]?.lines || []) {
    shape(svg, "line", line.text, 1, line.boundingPolygon);
    for (const w of line.words) shape(svg, "word", w.text, w.confidence, w.boundingPolygon);
  }
  for (const c of result.smartCropsResult?.values || []) shape(svg, "smartCrop", `crop ${c.aspectRatio}`, 1, box(c.boundingBox));
  $("caption").textContent = result.captionResult ? `${result.captionResult.text} (${result.captionResult.confidence.toFixed(2)})` : "";
  chips((result.tagsResult?.values || []).map((t) => [t.name, t.confidence]));
  return ["object", "person", "denseCaption", "line", "word", "smartCrop"];
}

/** Draws a 3.2 result; returns the kinds drawn. */
function drawV3(result) {
  const svg = $("overlay");
  for (const f of result.faces || []) {
    const r = f.faceRectangle;
    shape(svg, "face", f.age ? `face, ${f.gender}, ${f.age}` : "face", 1, { x: r.left, y: r.top, w: r.width, h: r.height });
  }
  for (const o of result.objects || []) shape(svg, "object", o.object, o.confidence, o.rectangle);
  const caption = result.description?.captions?.[0];
  const facts = [];
  if (result.adult) facts.push(`adult ${result.adult.adultScore.toFixed(2)}, racy ${result.adult.racyScore.toFixed(2)}`);
  if (result.color) facts.push(`colours: ${result.color.dominantColors.join(", ")} (accent #${result.color.accentColor})`);
  if (result.imageType) facts.push(`clip art ${result.imageType.clipArtType}, line drawing ${result.imageType.lineDrawingType}`);
  $("caption").textContent = [caption ? `${caption.text} (${caption.confidence.toFixed(2)})` : "", ...facts].filter(Boolean).join(" · ");
  const words = (result.tags || []).map((t) => [t.name, t.confidence]).concat((result.categories || []).map((c) => [c.name, c.score]));
  chips(words);
  return ["face", "object"];
}

$("analyze").addEventListener("click", async () => {
  const url = $("url").value.trim();
  if (!picked && !url) return showError("Pick an image file, drop or paste one, or give its URL.");
  const v4 = mode() === "v4";
  const names = [...$(v4 ? "features-v4" : "features-v3").querySelectorAll("input:checked")].map((i) => i.value);
  if (!names.length) return showError("Tick at least one feature.");
  const path = v4
    ? `/computervision/imageanalysis:analyze?api-version=2024-02-01&features=${names.join(",")}`
    : `/vision/v3.2/analyze?visualFeatures=${names.join(",")}`;
  const request = url
    ? { method: "POST", body: JSON.stringify({ url }), headers: { "Content-Type": "application/json" } }
    : binary(picked);
  snippet(path, url);
  $("json").textContent = "";
  if (url) $("picture").src = url.startsWith(location.origin) ? url : "";
  try {
    const result = await (await call(path, request)).json();
    $("json").textContent = JSON.stringify(result, null, 2);
    resetOverlay($("overlay"), result.metadata.width, result.metadata.height);
    const kinds = v4 ? drawV4(result) : drawV3(result);
    kindToggles(kinds.filter((kind) => $("overlay").querySelector(`[data-kind="${kind}"]`)));
    filterShapes();
  } catch (_) { /* shown in #error */ }
});

// ---- read ---------------------------------------------------------------------------------------

let readPages = [];
let readPage = 0;
let readImage = null; // an object URL when the document is an image the browser shows

function showReadPage() {
  const page = readPages[readPage];
  if (!page) return;
  $("read-page").textContent = `page ${page.page} of ${readPages.length}`;
  const scale = page.unit === "inch" ? 96 : 1; // inches drawn at 96 px each
  const svg = $("read-overlay");
  resetOverlay(svg, page.width * scale, page.height * scale);
  $("read-picture").src = readImage && page.page === 1 ? readImage : "";
  $("read-picture").hidden = !(readImage && page.page === 1);
  svg.classList.toggle("paper", $("read-picture").hidden);
  const paper = $("read-picture").hidden;
  for (const line of page.lines) {
    const b = line.boundingBox.map((v) => v * scale);
    shape(svg, "line", line.text, 1, [0, 2, 4, 6].map((i) => ({ x: b[i], y: b[i + 1] })));
    if (paper) {
      // No page image to show (PDF, TIFF): the text is written where it was read.
      const height = Math.abs(b[7] - b[1]);
      const ink = document.createElementNS(SVG, "text");
      ink.setAttribute("class", "ink");
      ink.setAttribute("x", b[0]);
      ink.setAttribute("y", b[7] - height * 0.2);
      ink.setAttribute("font-size", height * 0.75);
      // Fitted to the box: the page's own font is not the browser's.
      ink.setAttribute("textLength", Math.max(1, Math.hypot(b[2] - b[0], b[3] - b[1])));
      ink.setAttribute("lengthAdjust", "spacingAndGlyphs");
      ink.textContent = line.text;
      svg.appendChild(ink);
    }
  }
  $("read-text").textContent = page.lines.map((l) => l.text).join("\n");
}
$("page-prev").addEventListener("click", () => { readPage = Math.max(0, readPage - 1); showReadPage(); });
$("page-next").addEventListener("click", () => { readPage = Math.min(readPages.length - 1, readPage + 1); showReadPage(); });

$("read").addEventListener("click", async () => {
  const file = $("read-file").files[0];
  if (!file) return showError("Pick a document to read.");
  const shows = file.type.startsWith("image/") && file.type !== "image/tiff";
  readImage = shows ? URL.createObjectURL(file) : null;
  try {
    const accepted = await call("/vision/v3.2/read/analyze", binary(file));
    const location = accepted.headers.get("Operation-Location");
    let result;
    for (;;) {
      result = await (await call(location)).json();
      $("read-status").textContent = result.status;
      if (result.status !== "notStarted" && result.status !== "running") break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    if (result.status !== "succeeded") return showError(`${result.error?.code || "failed"}: ${result.error?.message || ""}`);
    readPages = result.analyzeResult.readResults;
    readPage = 0;
    $("read-download").href = URL.createObjectURL(new Blob([JSON.stringify(result, null, 2)], { type: "application/json" }));
    showReadPage();
  } catch (_) { /* shown in #error */ }
});

// ---- background removal -------------------------------------------------------------------------

$("background").addEventListener("click", async () => {
  const file = $("background-file").files[0];
  if (!file) return showError("Pick an image.");
  const segment = (mode) => call(`/computervision/imageanalysis:segment?api-version=2023-02-01-preview&mode=${mode}`, binary(file));
  try {
    for (const [mode, image, link] of [["backgroundRemoval", "background-result", "cutout-download"], ["foregroundMatting", "background-matte", "matte-download"]]) {
      const url = URL.createObjectURL(await (await segment(mode)).blob());
      $(image).src = url;
      $(link).href = url;
    }
  } catch (_) { /* shown in #error */ }
});

// ---- search -------------------------------------------------------------------------------------

let indexed = []; // [{name, url, vector}]
const unit = (v) => { const n = Math.hypot(...v) || 1; return v.map((x) => x / n); };

$("search-files").addEventListener("change", async (e) => {
  indexed = [];
  const files = [...e.target.files];
  try {
    for (const [i, file] of files.entries()) {
      $("search-status").textContent = `vectorizing ${i + 1} of ${files.length}…`;
      const { vector } = await (await call("/computervision/retrieval:vectorizeImage?api-version=2024-02-01", binary(file))).json();
      indexed.push({ name: file.name, url: URL.createObjectURL(file), vector: unit(vector) });
    }
    $("search-status").textContent = `${indexed.length} images ready`;
  } catch (_) { $("search-status").textContent = ""; }
});

$("search").addEventListener("click", async () => {
  const text = $("query").value.trim();
  if (!text || !indexed.length) return showError("Add images and type a query.");
  try {
    const response = await call("/computervision/retrieval:vectorizeText?api-version=2024-02-01",
      { method: "POST", body: JSON.stringify({ text }), headers: { "Content-Type": "application/json" } });
    const query = unit((await response.json()).vector);
    const ranked = indexed.map((item) => ({ ...item, score: item.vector.reduce((s, x, i) => s + x * query[i], 0) }))
      .sort((a, b) => b.score - a.score);
    $("ranking").replaceChildren(...ranked.map((item) => {
      const li = document.createElement("li");
      li.dataset.name = item.name;
      li.dataset.score = item.score.toFixed(4);
      li.append(Object.assign(document.createElement("img"), { src: item.url, alt: item.name }), ` ${item.name} — ${item.score.toFixed(3)}`);
      return li;
    }));
  } catch (_) { /* shown in #error */ }
});
