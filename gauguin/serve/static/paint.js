// gauguin paint: paint a label map, see the generator's image. Plain JS, no build step, no dependencies.
// The label map is an integer array at the model's own size: what you paint is exactly what the model sees.
"use strict";
(() => {
  const $ = (selector) => document.querySelector(selector);
  const DISPLAY = 448;   // longest side of the canvas and the result on screen, CSS pixels
  const DEBOUNCE = 150;  // ms after the last change before a request goes out
  const UNDO_LEVELS = 100;
  const GALLERY = 6;     // recent results kept as thumbnails

  let labels = [], H = 0, W = 0, map = null;  // map: label ids, row-major H x W
  let colors = null;                           // RGBA of each label id, for putImageData
  let label = 1, tool = "brush", seed = 0, styleImage = null, takesSeed = true;
  const undoStack = [], redoStack = [];
  let editStart = null;                        // the map when the edit in progress began
  const canvas = $("#paint"), ctx = canvas.getContext("2d");
  const result = $("#result");

  // What the result shows: `version` counts changes of what would be generated (map, seed, style);
  // `shownVersion` is the version the result image was generated from (-1: none, or an old image).
  let version = 0, shownVersion = -1, shown = null;  // shown: {url, seed, styleImage, generation}
  const gallery = [];                                 // newest first, at most GALLERY
  let compare = null;                                 // {version, before, after}: blob URLs of a swap

  // Read-only counters for tests and the curious: requests sent, images shown, the last error.
  const stats = { requests: 0, completed: 0, lastError: null };
  let timer = null, inFlight = false, dirty = false;
  window.gauguin = Object.freeze({
    get requests() { return stats.requests; },
    get completed() { return stats.completed; },
    get lastError() { return stats.lastError; },
    get busy() { return inFlight || dirty || timer !== null; },  // false once the image shows the map
  });

  function status(text, isError = false) {
    const line = $("#status");
    line.textContent = text;
    line.classList.toggle("error", isError);
    if (isError) stats.lastError = text;
  }

  // ------------------------------------------------------------------ the label map
  function render() {
    const image = ctx.createImageData(W, H);
    const px = new Uint32Array(image.data.buffer);
    for (let i = 0; i < map.length; i++) px[i] = colors[map[i]];
    ctx.putImageData(image, 0, 0);  // exact colours: no smoothing, no blending
  }

  // The map changed by the user's hand: show it, hide a stale before/after, generate.
  function edited() {
    hideCompare();
    render(); changed();
  }

  // ------------------------------------------------------------------ undo and redo
  // Every edit (stroke, fill, clear, swap, upload) is beginEdit() ... commitEdit(): one undo step if the
  // map changed, none if not. A new step clears the redo stack.
  function beginEdit() {
    if (!editStart) editStart = map.slice();
  }

  function commitEdit() {
    const before = editStart;
    editStart = null;
    if (!before || before.every((v, i) => v === map[i])) return false;
    undoStack.push(before);
    if (undoStack.length > UNDO_LEVELS) undoStack.shift();
    redoStack.length = 0;
    historyButtons();
    return true;
  }

  function historyButtons() {
    $("#undo").disabled = !undoStack.length;
    $("#redo").disabled = !redoStack.length;
  }

  function step(from, to) {
    if (last) endStroke();  // Ctrl+Z during a stroke: the stroke is one step, undone at once
    if (!from.length) return;
    to.push(map.slice());
    map.set(from.pop());
    historyButtons();
    edited();
  }
  const undo = () => step(undoStack, redoStack);
  const redo = () => step(redoStack, undoStack);

  // A round stamp of diameter `size` model pixels centred at (cx, cy) in continuous map coordinates.
  function stamp(cx, cy, id, size) {
    const r = size / 2;
    let touched = false;
    const set = (x, y) => {
      if (x < 0 || y < 0 || x >= W || y >= H) return;
      const i = y * W + x;
      if (map[i] !== id) { map[i] = id; touched = true; }
    };
    for (let y = Math.floor(cy - r); y <= Math.ceil(cy + r); y++)
      for (let x = Math.floor(cx - r); x <= Math.ceil(cx + r); x++)
        if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r) set(x, y);
    set(Math.floor(cx), Math.floor(cy));  // size 1 always covers the pixel under the pointer
    return touched;
  }

  // Stamps every half pixel from a to b, so a fast drag leaves no gaps between pointer events.
  function line(a, b, id, size) {
    const steps = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / 0.5));
    let touched = false;
    for (let s = 0; s <= steps; s++)
      touched = stamp(a.x + (b.x - a.x) * s / steps, a.y + (b.y - a.y) * s / steps, id, size) || touched;
    return touched;
  }

  // 4-connected flood fill of the region under (x, y) with `id`; false if nothing changed.
  function fill(x, y, id) {
    const from = map[y * W + x];
    if (from === id) return false;
    const todo = [y * W + x];
    map[todo[0]] = id;
    while (todo.length) {
      const i = todo.pop(), px = i % W;
      for (const j of [px > 0 ? i - 1 : -1, px < W - 1 ? i + 1 : -1, i - W, i + W])
        if (j >= 0 && j < map.length && map[j] === from) { map[j] = id; todo.push(j); }
    }
    return true;
  }

  // The default map: background with a T-shirt-shaped blob of label 1 (a centred block if H, W are tiny).
  function defaultMap() {
    map.fill(labels[0].id);
    if (labels.length < 2) return;
    const box = (x0, y0, x1, y1) => {
      for (let y = Math.round(y0 * H); y < Math.round(y1 * H); y++)
        for (let x = Math.round(x0 * W); x < Math.round(x1 * W); x++) map[y * W + x] = labels[1].id;
    };
    box(0.3, 0.2, 0.7, 0.85);    // body
    box(0.12, 0.2, 0.88, 0.42);  // sleeves
    for (let y = Math.round(0.2 * H); y < Math.round(0.26 * H); y++)  // neckline
      for (let x = Math.round(0.41 * W); x < Math.round(0.59 * W); x++) map[y * W + x] = labels[0].id;
  }

  // ------------------------------------------------------------------ painting: mouse, pen and touch
  // One path for every pointer (Pointer Events): the canvas has touch-action: none, so a finger paints
  // instead of scrolling, and the stroke's pointer is captured, so it may leave the canvas and come back.
  let last = null, strokePointer = null;  // the previous position during a stroke (map coordinates), its pointer
  const brushSize = () => Number($("#brush-size").value);
  const brushLabel = () => (tool === "eraser" ? labels[0].id : label);

  function toMap(event) {
    const box = canvas.getBoundingClientRect();
    return { x: (event.clientX - box.left) * W / box.width, y: (event.clientY - box.top) * H / box.height };
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || !event.isPrimary || !map || last) return;  // a second finger: ignored
    event.preventDefault();
    const p = toMap(event);
    beginEdit();
    if (tool === "fill") {
      const x = Math.min(W - 1, Math.max(0, Math.floor(p.x))), y = Math.min(H - 1, Math.max(0, Math.floor(p.y)));
      fill(x, y, label);
      if (commitEdit()) edited();
      return;
    }
    try { canvas.setPointerCapture(event.pointerId); } catch { /* a pointer already gone: paint anyway */ }
    last = p; strokePointer = event.pointerId;
    if (line(p, p, brushLabel(), brushSize())) edited();
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!last || event.pointerId !== strokePointer) return;
    let touched = false;
    const coalesced = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of coalesced.length ? coalesced : [event]) {
      const p = toMap(e);
      touched = line(last, p, brushLabel(), brushSize()) || touched;
      last = p;
    }
    if (touched) edited();
  });

  function endStroke(event) {
    if (!last || (event && event.pointerId !== strokePointer)) return;
    last = null; strokePointer = null;
    commitEdit();
    settle();
  }
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) canvas.addEventListener(type, endStroke);

  // ------------------------------------------------------------------ generating
  function schedule(delay) {
    dirty = true;
    clearTimeout(timer);
    timer = setTimeout(() => { timer = null; send(); }, delay);
  }

  function changed(delay = DEBOUNCE) {  // what would be generated changed: a new image is due
    version++;
    schedule(delay);
  }

  const requestBody = (labelMap, withSeed, withStyle) =>
    JSON.stringify(withStyle ? { label_map: labelMap, seed: withSeed, style_image: withStyle }
                             : { label_map: labelMap, seed: withSeed });
  const generate = (body) => fetch("api/generate", {
    method: "POST", headers: { "Content-Type": "application/json" }, body });

  // A blob URL is revoked once nothing shows it any more: the result, a thumbnail, the before/after pair.
  function release(url) {
    if (!url || !url.startsWith("blob:") || result.src === url || gallery.some((g) => g.url === url) ||
        (compare && (compare.before === url || compare.after === url))) return;
    URL.revokeObjectURL(url);
  }

  async function showResult(url) {
    const old = result.getAttribute("src");
    result.src = url;
    await result.decode();
    $("#download-result").href = url;
    $("#download-result").removeAttribute("aria-disabled");
    if (old !== url) release(old);
    markCurrent();
  }

  async function send() {
    if (inFlight || !dirty) return;  // a change during a request is sent when it returns
    dirty = false; inFlight = true; stats.requests++;
    const sent = { version, seed, styleImage };
    const body = requestBody(canvas.toDataURL("image/png"), seed, styleImage);
    const start = performance.now();
    let retry = false;
    try {
      const response = await generate(body);
      if (response.ok) {
        const url = URL.createObjectURL(await response.blob());
        await showResult(url);
        stats.completed++;
        result.dataset.generation = String(stats.completed);
        shownVersion = sent.version;
        shown = { url, seed: sent.seed, styleImage: sent.styleImage, generation: stats.completed };
        if (compare && compare.version === sent.version) setCompare("after", url);
        const server = response.headers.get("X-Gauguin-Latency-Ms");
        status(`generated in ${Math.round(performance.now() - start)} ms` +
               (server ? ` (model ${Math.round(Number(server))} ms)` : "") +
               (sent.styleImage ? " · style image" : takesSeed ? ` · seed ${sent.seed}` : ""));
      } else if (response.status === 503) {
        retry = true;
        status("the server is busy; retrying…");
      } else {
        const detail = await response.json().then((j) => j.detail, () => response.statusText);
        status(`error ${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`, true);
      }
    } catch (err) {
      status(`no answer from the server (${err.message}); retrying…`, true);
      retry = true;
    } finally {
      inFlight = false;
    }
    if (retry) schedule(1000);
    else if (dirty && timer === null) send();
    settle();
  }

  // ------------------------------------------------------------------ recent results
  // A result joins the gallery once it is settled: it shows the current map, seed and style, no request
  // is due and no stroke goes on (so a slow stroke does not fill the strip with its intermediate images).
  function settle() {
    if (inFlight || dirty || timer !== null || last || !shown || shownVersion !== version) return;
    if (gallery.some((g) => g.url === shown.url)) return;
    gallery.unshift(shown);
    for (const gone of gallery.splice(GALLERY)) release(gone.url);
    renderGallery();
  }

  const caption = (entry) => (entry.styleImage ? "style image" : takesSeed ? `seed ${entry.seed}` : `#${entry.generation}`);

  function renderGallery() {
    const list = $("#gallery");
    list.replaceChildren(...gallery.map((entry) => {
      const item = document.createElement("li"), b = document.createElement("button"), img = new Image();
      b.type = "button";
      b.dataset.generation = String(entry.generation);
      if (takesSeed && !entry.styleImage) b.dataset.seed = String(entry.seed);
      b.setAttribute("aria-label", `show result ${entry.generation} again (${caption(entry)})`);
      b.title = `result ${entry.generation}, ${caption(entry)}: click to show it large again`;
      img.src = entry.url; img.alt = "";
      const text = document.createElement("span");
      text.textContent = caption(entry);
      b.append(img, text);
      b.addEventListener("click", () => showGalleryEntry(entry));
      item.append(b);
      return item;
    }));
    markCurrent();
  }

  function markCurrent() {  // the thumbnail of the image shown large, if any
    for (const b of document.querySelectorAll("#gallery button")) {
      const entry = gallery.find((g) => String(g.generation) === b.dataset.generation);
      if (entry && entry.url === result.getAttribute("src")) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
  }

  // Shows a recent result large again with its seed (or style image) restored: the next edit generates
  // with them. The map stays as it is.
  async function showGalleryEntry(entry) {
    if (!gallery.includes(entry)) return;
    hideCompare();
    await showResult(entry.url);
    if (takesSeed) { seed = entry.seed; $("#seed").value = String(entry.seed); }
    if (entry.styleImage !== styleImage) setStyleImage(entry.styleImage, false);
    shown = entry;
    shownVersion = -1;  // an older image: it need not show the current map
    renderGallery();
    status(`showing result ${entry.generation} again (${caption(entry)}); the next edit generates with it`);
  }

  // ------------------------------------------------------------------ before and after a label swap
  // Shows the image of the map before the swap beside the one after it, until the next edit or Dismiss.
  // The before image is the shown one when that shows the map before the swap; else it is generated.
  function showCompare(beforeURL, beforeBody) {
    compare = { version, before: null, after: null };
    for (const side of ["before", "after"]) $(`#compare-${side}`).removeAttribute("src");
    $("#compare").hidden = false;
    if (beforeURL) setCompare("before", beforeURL);
    else generateBefore(compare, beforeBody);
  }

  function setCompare(side, url) {
    const img = $(`#compare-${side}`);
    compare[side] = url;
    img.src = url;
  }

  async function generateBefore(c, body) {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const response = await generate(body);
        if (response.status === 503) { await new Promise((done) => setTimeout(done, 1000)); continue; }
        if (!response.ok) throw new Error(`error ${response.status}`);
        const url = URL.createObjectURL(await response.blob());
        if (compare === c) setCompare("before", url); else URL.revokeObjectURL(url);
        return;
      } catch (err) {
        if (compare === c) status(`no image before the swap (${err.message})`, true);
        return;
      }
    }
  }

  function hideCompare() {
    const c = compare;
    if (!c) return;
    compare = null;
    $("#compare").hidden = true;
    for (const side of ["before", "after"]) $(`#compare-${side}`).removeAttribute("src");
    release(c.before); release(c.after);
  }

  // ------------------------------------------------------------------ files
  function download(href, name) {
    const a = document.createElement("a");
    a.href = href; a.download = name;
    document.body.append(a); a.click(); a.remove();
  }

  // A PNG of label ids (grey) or label colours, resized nearest to the model's size.
  async function uploadMap(file) {
    const bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const work = document.createElement("canvas");
    work.width = bitmap.width; work.height = bitmap.height;
    const wctx = work.getContext("2d");
    wctx.drawImage(bitmap, 0, 0);
    const px = wctx.getImageData(0, 0, work.width, work.height).data;
    const byColor = new Map(labels.map((l) => [(l.color[0] << 16) | (l.color[1] << 8) | l.color[2], l.id]));
    const ids = new map.constructor(W * H), grey = new map.constructor(W * H);
    let colorsOk = true, greyOk = true, bad = null;
    for (let y = 0; y < H; y++) {
      const sy = Math.min(work.height - 1, Math.floor((y + 0.5) * work.height / H));  // pixel centres
      for (let x = 0; x < W; x++) {
        const sx = Math.min(work.width - 1, Math.floor((x + 0.5) * work.width / W));
        const k = 4 * (sy * work.width + sx), r = px[k], g = px[k + 1], b = px[k + 2];
        const id = byColor.get((r << 16) | (g << 8) | b);
        if (id === undefined) colorsOk = false; else ids[y * W + x] = id;
        if (r === g && g === b && r < labels.length) grey[y * W + x] = r; else greyOk = false;
        if (id === undefined && !(r === g && g === b && r < labels.length) && !bad)
          bad = `#${((r << 16) | (g << 8) | b).toString(16).padStart(6, "0")} at (${sx}, ${sy})`;
      }
    }
    if (!colorsOk && !greyOk)
      throw new Error(`${file.name} has colour ${bad || "mixes"}: neither a label's colour nor a grey label id ` +
                      `0..${labels.length - 1}`);
    if (last) endStroke();
    beginEdit();
    map.set(colorsOk ? ids : grey);
    commitEdit();
    edited();  // generated even when the map is the same as before: the upload asks for an image
    status(`loaded ${file.name} (${bitmap.width}×${bitmap.height}${colorsOk ? ", label colours" : ", grey ids"})`);
  }

  function readDataURL(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  // A photo with a longest side over `side` pixels is scaled down to it (a PNG) before it is sent: the
  // model uses it at its own small size, and phone photos would exceed the server's pixel limit.
  async function shrunk(dataURL, side) {
    const image = new Image();
    image.src = dataURL;
    await image.decode();
    const scale = side / Math.max(image.naturalWidth, image.naturalHeight);
    if (scale >= 1) return dataURL;
    const small = document.createElement("canvas");
    small.width = Math.max(1, Math.round(image.naturalWidth * scale));
    small.height = Math.max(1, Math.round(image.naturalHeight * scale));
    const context = small.getContext("2d");
    context.imageSmoothingQuality = "high";
    context.drawImage(image, 0, 0, small.width, small.height);
    return small.toDataURL("image/png");
  }

  function setStyleImage(dataURL, generate = true) {
    styleImage = dataURL;
    $("#style-preview").hidden = $("#clear-style").hidden = !dataURL;
    if (dataURL) $("#style-preview").src = dataURL; else $("#style-preview").removeAttribute("src");
    if (generate) { hideCompare(); changed(); }
  }

  // ------------------------------------------------------------------ controls
  function selectTool(name) {
    tool = name;
    for (const b of document.querySelectorAll(".tool")) b.setAttribute("aria-pressed", String(b.dataset.tool === name));
    canvas.dataset.tool = name;
  }

  function selectLabel(id) {
    label = id;
    for (const b of document.querySelectorAll("#palette button"))
      b.setAttribute("aria-pressed", String(Number(b.dataset.label) === id));
    if (tool === "eraser") selectTool("brush");
  }

  function setSeed(value) {
    seed = value;
    $("#seed").value = String(value);
    if (styleImage) setStyleImage(null);  // a seed replaces the style image
    else { hideCompare(); changed(); }
  }

  // [ and ]: the brush size by one step (a tenth of the size, at least 1), within the slider's range.
  function nudgeSize(direction) {
    const size = $("#brush-size"), value = Number(size.value);
    const next = value + direction * Math.max(1, Math.round(value / 10));
    size.value = String(Math.min(Number(size.max), Math.max(Number(size.min), next)));
    $("#brush-size-value").textContent = size.value;
  }

  // A key typed into a text or number field, a select or a text area is theirs, not a shortcut.
  const TYPING = "select, textarea, [contenteditable]:not([contenteditable='false']), " +
                 "input:not([type=range]):not([type=button]):not([type=checkbox]):not([type=radio]):not([type=color])";

  function shortcut(event) {
    if (event.defaultPrevented || event.isComposing || !map) return;
    if (event.target instanceof Element && event.target.closest(TYPING)) return;
    let key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const code = /^Key([A-Z])$/.exec(event.code || "");
    if (key.length === 1 && !/[a-z[\]]/.test(key) && code) key = code[1].toLowerCase();  // e.g. a Cyrillic layout
    const command = event.ctrlKey || event.metaKey;
    let act = null;
    if (command && !event.altKey && key === "z") act = event.shiftKey ? redo : undo;
    else if (command && !event.altKey && !event.shiftKey && key === "y") act = redo;
    else if ((key === "[" || key === "]") && !event.metaKey)  // any Ctrl/Alt: AltGr layouts; Cmd+[ is "back"
      act = () => nudgeSize(key === "]" ? 1 : -1);
    else if (!command && !event.altKey && !event.shiftKey) {
      const tools = { b: "brush", f: "fill", e: "eraser" };
      if (tools[key]) act = () => selectTool(tools[key]);
      else if (key === "n" && takesSeed) act = () => $("#new-style").click();
    }
    if (act) { event.preventDefault(); act(); }
  }

  function wire() {
    for (const b of document.querySelectorAll(".tool")) b.addEventListener("click", () => selectTool(b.dataset.tool));
    const size = $("#brush-size");
    size.addEventListener("input", () => { $("#brush-size-value").textContent = size.value; });
    $("#undo").addEventListener("click", undo);
    $("#redo").addEventListener("click", redo);
    $("#clear").addEventListener("click", () => {
      if (last) endStroke();
      beginEdit(); map.fill(labels[0].id);
      if (commitEdit()) edited();
    });
    $("#swap").addEventListener("click", () => {
      const a = Number($("#swap-from").value), b = Number($("#swap-to").value);
      const count = map.reduce((n, v) => n + (v === a), 0);
      if (a === b || !count) { status(a === b ? "pick two different labels to swap" : `no ${labels[a].name} pixels to replace`); return; }
      if (last) endStroke();
      // the image before: the shown one if it is of the map as it is now, else the request for it
      const beforeURL = shownVersion === version && !dirty ? result.getAttribute("src") : null;
      const beforeBody = beforeURL ? null : requestBody(canvas.toDataURL("image/png"), seed, styleImage);
      beginEdit();
      for (let i = 0; i < map.length; i++) if (map[i] === a) map[i] = b;
      commitEdit();
      edited();
      showCompare(beforeURL, beforeBody);
      status(`replaced ${count} ${labels[a].name} pixels with ${labels[b].name}`);
    });
    $("#compare-dismiss").addEventListener("click", hideCompare);
    $("#seed").addEventListener("input", () => {
      const v = Number($("#seed").value);
      if (Number.isSafeInteger(v) && v >= 0 && $("#seed").value !== "") {
        seed = v;
        if (styleImage) setStyleImage(null); else { hideCompare(); changed(); }
      } else status("the seed is a whole number ≥ 0", true);
    });
    $("#new-style").addEventListener("click", () => setSeed(Math.floor(Math.random() * 2 ** 31)));
    $("#style-upload").addEventListener("click", () => $("#style-file").click());
    $("#style-file").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      event.target.value = "";
      if (!file) return;
      if (!/^image\/(png|jpeg)$/.test(file.type)) { status(`${file.name} is not a PNG or JPEG image`, true); return; }
      setStyleImage(await shrunk(await readDataURL(file), 1024));
    });
    $("#clear-style").addEventListener("click", () => setStyleImage(null));
    $("#upload-labels-button").addEventListener("click", () => $("#upload-labels").click());
    $("#upload-labels").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      event.target.value = "";
      if (file) await uploadMap(file).catch((err) => status(`cannot use the map: ${err.message}`, true));
    });
    $("#download-labels").addEventListener("click", () => download(canvas.toDataURL("image/png"), "labels.png"));
    $("#download-result").addEventListener("click", (event) => {
      if (!stats.completed) event.preventDefault();
    });
    document.addEventListener("keydown", shortcut);
  }

  // ------------------------------------------------------------------ start
  async function start() {
    let info;
    try {
      const response = await fetch("api/labels");
      if (!response.ok) throw new Error(`GET api/labels answered ${response.status}`);
      info = await response.json();
    } catch (err) {
      status(`cannot load the model's labels: ${err.message}`, true);
      return;
    }
    labels = info.labels;
    [H, W] = info.image_size;
    map = labels.length > 256 ? new Uint16Array(H * W) : new Uint8Array(H * W);
    colors = new Uint32Array(labels.length);
    const rgba = new Uint8Array(colors.buffer);
    labels.forEach((l, i) => rgba.set([...l.color, 255], 4 * i));  // Uint32 in the platform's byte order
    $("#model").textContent = `${info.family} · ${W}×${H} ${info.channels === 1 ? "grey" : "colour"} · ${labels.length} labels`;

    // sizes: model pixels on the canvas, shown large and sharp
    canvas.width = W; canvas.height = H;
    const scale = DISPLAY / Math.max(H, W);
    for (const el of [canvas, result]) { el.style.width = `${Math.round(W * scale)}px`; el.style.aspectRatio = `${W} / ${H}`; }
    document.documentElement.style.setProperty("--aspect", `${W} / ${H}`);  // the before/after pair, thumbnails
    const size = $("#brush-size");
    size.max = String(Math.max(1, Math.floor(Math.max(H, W) / 2)));
    size.value = String(Math.max(1, Math.round(Math.max(H, W) / 12)));
    $("#brush-size-value").textContent = size.value;

    // palette and swap selects, one entry per label
    for (const l of labels) {
      const b = document.createElement("button");
      b.type = "button"; b.dataset.label = String(l.id);
      b.title = `${l.name} (label ${l.id}, rgb ${l.color.join(", ")})`;
      const swatch = document.createElement("span");
      swatch.className = "swatch"; swatch.style.background = `rgb(${l.color.join(",")})`;
      b.append(swatch, document.createTextNode(l.name));
      b.addEventListener("click", () => selectLabel(l.id));
      $("#palette").append(b);
      for (const s of ["#swap-from", "#swap-to"]) $(s).append(new Option(l.name, String(l.id)));
    }
    $("#swap-from").value = String(labels[Math.min(1, labels.length - 1)].id);
    $("#swap-to").value = String(labels[Math.min(2, labels.length - 1)].id);

    // style controls only for what the model takes
    takesSeed = Boolean(info.style.seed);
    $("#seed-controls").hidden = $("#shortcut-new-style").hidden = !info.style.seed;
    $("#image-style-controls").hidden = !info.style.image;
    $("#style").hidden = !info.style.seed && !info.style.image;

    wire();
    selectLabel(labels[Math.min(1, labels.length - 1)].id);
    defaultMap();
    render();
    status("generating…");
    changed(0);
  }

  start();
})();
