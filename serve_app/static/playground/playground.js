// Amphion playground: forms built from /api/openapi.json, sent with the user's key, with progress
// from /ws/progress/{task_id}. Plain browser JavaScript, no build step, nothing loaded from elsewhere.

const KEY_STORAGE = "amphion.apiKey";
const FORM_TYPES = ["multipart/form-data", "application/x-www-form-urlencoded"];
// Response headers worth showing; any X-Amphion-* header is shown as well.
const SHOWN_HEADERS = ["X-Task-ID", "X-Sample-Rate", "X-Audio-Duration", "X-Amphion-Weights",
  "Server-Timing", "X-Request-ID", "X-RateLimit-Remaining"];
const LONG_TEXT = 256;            // strings allowed longer than this get a textarea
const SOCKET_OPEN_WAIT_MS = 2000; // a request does not wait longer than this for its progress socket
const SOCKET_GRACE_MS = 10000;    // after the response, how long the socket may still deliver events

const $ = (id) => document.getElementById(id);
const state = { spec: null, operations: new Map(), health: new Map(), controller: null, urls: [] };

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

// ---- the API description ---------------------------------------------------------------------

function resolve(schema) {
  while (schema && schema.$ref) {
    schema = schema.$ref.replace(/^#\//, "").split("/").reduce((node, part) => node[part], state.spec);
  }
  return schema || {};
}

// `anyOf: [X, {type: "null"}]` (an optional field) -> X.
function unwrapNullable(schema) {
  const options = (schema.anyOf || []).filter((s) => s.type !== "null");
  return options.length === 1 ? { ...resolve(options[0]), ...withoutKeys(schema, ["anyOf"]) } : schema;
}

function withoutKeys(object, keys) {
  return Object.fromEntries(Object.entries(object).filter(([k]) => !keys.includes(k)));
}

// POST operations whose body is a form: the model routes (none has a path parameter; one that
// did would need a field for it, so it is left out rather than sent with "{name}" in its URL).
function formOperations(spec) {
  const operations = [];
  for (const [path, methods] of Object.entries(spec.paths || {})) {
    const operation = !path.includes("{") && methods.post;
    const content = operation && operation.requestBody && operation.requestBody.content;
    const type = content && FORM_TYPES.find((t) => t in content);
    if (!type) continue;
    operations.push({ path, tag: (operation.tags || ["Other"])[0], summary: operation.summary || "",
      description: operation.description || "", schema: resolve(content[type].schema) });
  }
  return operations;
}

// ---- form fields -------------------------------------------------------------------------------

const isFileSchema = (s) => s.format === "binary" || "contentMediaType" in s;

function fieldKind(schema) {
  if (isFileSchema(schema)) return "file";
  if (schema.type === "array" && schema.items && isFileSchema(resolve(schema.items))) return "files";
  if (schema.enum) return "enum";
  if (schema.type === "boolean") return "boolean";
  if (schema.type === "integer" || schema.type === "number") return "number";
  return "text";
}

function rangeText(s) {
  const low = s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : s.minimum !== undefined ? `≥ ${s.minimum}` : "";
  const high = s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : s.maximum !== undefined ? `≤ ${s.maximum}` : "";
  return [low, high].filter(Boolean).join(", ");
}

// One builder per kind: (id, name, schema, required, optional) -> the control(s).
const CONTROLS = {
  file: (id, name, s, required) => fileControl(id, name, required, false),
  files: (id, name, s, required) => fileControl(id, name, required, true),
  enum: (id, name, s, required, optional) => {
    const select = element("select", { id, name, required });
    if (optional && s.default === undefined) select.append(element("option", { value: "" }, "(server default)"));
    for (const value of s.enum) {
      select.append(element("option", { value: String(value), selected: value === s.default }, String(value)));
    }
    return [select];
  },
  boolean: (id, name, s, required, optional) => {
    if (optional && s.default === undefined) return CONTROLS.enum(id, name, { enum: [true, false] }, required, true);
    return [element("input", { id, name, type: "checkbox", "data-boolean": true, checked: s.default === true })];
  },
  number: (id, name, s, required) => [element("input", {
    id, name, type: "number", required, value: s.default ?? undefined,
    min: s.minimum, max: s.maximum, step: s.type === "integer" ? 1 : "any",
  })],
  text: (id, name, s, required) => {
    const attributes = { id, name, required, minlength: s.minLength, maxlength: s.maxLength, pattern: s.pattern };
    if ((s.maxLength ?? 0) > LONG_TEXT) return [element("textarea", { ...attributes, rows: 3 }, s.default ?? "")];
    return [element("input", { ...attributes, type: "text", value: s.default ?? undefined })];
  },
};

// Descriptions are Markdown-ish: `code` spans become <code>, the rest stays plain text.
function richText(text) {
  return text.split("`").map((part, i) => (i % 2 ? element("code", {}, part) : part));
}

function renderField(name, property, required) {
  const schema = unwrapNullable(resolve(property));
  const kind = fieldKind(schema);
  const id = `field-${name}`;
  const range = rangeText(schema);
  const hint = [schema.description, range && `(${range})`].filter(Boolean).join(" ");
  const label = element("label", { for: id }, schema.title || name, required ? element("span", { class: "required" }, " (required)") : "");
  const controls = CONTROLS[kind](id, name, schema, required, !required);
  controls[0].setAttribute("aria-describedby", `${id}-hint`);
  return element("div", { class: `field field-${kind}` }, label, element("div", { class: "control" }, ...controls),
    element("p", { id: `${id}-hint`, class: "hint" }, ...richText(hint)));
}

function renderForm(operation) {
  const required = new Set(operation.schema.required || []);
  const fields = Object.entries(operation.schema.properties || {}).map(([name, p]) => renderField(name, p, required.has(name)));
  $("fields").replaceChildren(...fields);
  $("route-summary").replaceChildren(...richText(operation.description || operation.summary));
  const models = state.health.get(operation.path) || [];
  $("route-health").textContent = models.map((m) => `${m.name}: ${m.status.replace(/_/g, " ")}${m.weights ? `, ${m.weights} weights` : ""}`).join("; ");
}

// ---- uploads and the microphone ----------------------------------------------------------------

const canRecord = () => Boolean(window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);

function fileControl(id, name, required, multiple) {
  const input = element("input", { id, name, type: "file", accept: "audio/*,.wav,.mp3,.flac,.ogg,.npy", required, multiple });
  if (!canRecord()) {
    return [input, element("span", { class: "hint" }, "(recording needs https or localhost)")];
  }
  const status = element("span", { class: "record-status", role: "status" });
  const button = element("button", { type: "button", class: "record", "aria-pressed": "false" }, "Record from microphone");
  button.addEventListener("click", () => toggleRecording(button, input, status));
  return [input, button, status];
}

// Browsers record WebM or Ogg Opus; the API reads WAV, MP3, FLAC and Ogg. The recording is
// decoded here and handed to the file input as a 16-bit WAV, so what is sent is what was heard.
async function toggleRecording(button, input, status) {
  if (button.recorder) {
    button.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    status.textContent = `microphone unavailable: ${err.message}`;
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.addEventListener("dataavailable", (e) => chunks.push(e.data));
  recorder.addEventListener("stop", async () => {
    stream.getTracks().forEach((t) => t.stop());
    button.recorder = null;
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Record from microphone";
    try {
      const wav = await toWav(new Blob(chunks, { type: recorder.mimeType }));
      const files = new DataTransfer();
      files.items.add(new File([wav.blob], "recording.wav", { type: "audio/wav" }));
      input.files = files.files;
      status.textContent = `recorded ${wav.seconds.toFixed(1)} s`;
    } catch (err) {
      status.textContent = `could not read the recording: ${err.message}`;
    }
  });
  recorder.start();
  button.recorder = recorder;
  button.setAttribute("aria-pressed", "true");
  button.textContent = "Stop recording";
  status.textContent = "recording…";
}

async function toWav(blob) {
  const context = new AudioContext();
  try {
    const audio = await context.decodeAudioData(await blob.arrayBuffer());
    return { blob: encodeWav(audio.getChannelData(0), audio.sampleRate), seconds: audio.duration };
  } finally {
    context.close();
  }
}

function encodeWav(samples, rate) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((x, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, x)) * 0x7fff, true));
  return new Blob([view], { type: "audio/wav" });
}

// ---- sending a request -------------------------------------------------------------------------

function newTaskId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "pg-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The form's values, leaving out what was left empty (the server then uses its default).
function formBody(form) {
  const body = new FormData(form);
  for (const box of form.querySelectorAll("input[data-boolean]")) body.set(box.name, String(box.checked));
  for (const [name, value] of [...body.entries()]) {
    const empty = value instanceof File ? value.name === "" && value.size === 0 : value === "";
    if (empty) body.delete(name);
  }
  return body;
}

// Opens the task's progress socket; resolves once it is open (or failed, or after a short wait),
// so that the request starts with the socket listening.
function openProgress(taskId, key) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/progress/${taskId}?api_key=${encodeURIComponent(key)}`);
  socket.addEventListener("message", (message) => showProgress(JSON.parse(message.data)));
  socket.addEventListener("close", (e) => {
    if (e.code !== 1000 && e.reason) $("progress-text").textContent = `progress unavailable: ${e.reason}`;
  });
  return new Promise((done) => {
    const timer = setTimeout(() => done(socket), SOCKET_OPEN_WAIT_MS);
    const finish = () => { clearTimeout(timer); done(socket); };
    socket.addEventListener("open", finish);
    socket.addEventListener("error", finish);
  });
}

function showProgress(event) {
  $("progress").value = event.progress;
  const steps = event.total_steps ? ` ${event.step}/${event.total_steps}` : "";
  $("progress-text").textContent = `${event.status}: ${event.stage}${steps}${event.detail ? ` (${event.detail})` : ""}`;
}

async function send(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) {
    showError("Enter your API key first.");
    $("api-key").focus();
    return;
  }
  const operation = state.operations.get($("route").value);
  const body = formBody(event.target);
  const taskId = newTaskId();
  clearResult();
  setBusy(true);
  $("progress-text").textContent = `task ${taskId}: connecting…`;
  const socket = await openProgress(taskId, key);
  state.controller = new AbortController();
  try {
    const response = await fetch(operation.path, {
      method: "POST", body, signal: state.controller.signal,
      headers: { "X-API-Key": key, "X-Task-ID": taskId },
    });
    showHeaders(response.headers);
    if (response.ok) {
      await showBody(response);
      setTimeout(() => socket.close(), SOCKET_GRACE_MS);
    } else {
      socket.close();
      showError(`${response.status} ${response.statusText}: ${await errorDetail(response)}`);
    }
  } catch (err) {
    socket.close();
    showError(err.name === "AbortError" ? "Cancelled." : `The request failed: ${err.message}`);
  } finally {
    state.controller = null;
    setBusy(false);
  }
}

async function errorDetail(response) {
  const text = await response.text();
  let detail;
  try {
    detail = JSON.parse(text).detail;
  } catch {
    return text || "(no detail)";
  }
  // 422: FastAPI's list of {loc, msg}.
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

// ---- showing the result ------------------------------------------------------------------------

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  return url;
}

function downloadName(response, fallback) {
  const match = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : fallback;
}

async function showBody(response) {
  const type = (response.headers.get("Content-Type") || "").split(";")[0].trim();
  if (type === "application/json") {
    $("json-result").textContent = JSON.stringify(await response.json(), null, 2);
    $("json-result").hidden = false;
    return;
  }
  const blob = await response.blob();
  const url = objectUrl(blob);
  if (type.startsWith("audio/")) {
    $("audio").src = url;
    $("download").href = url;
    $("download").download = downloadName(response, "result.wav");
    $("audio-result").hidden = false;
  } else {
    $("file-download").href = url;
    $("file-download").download = downloadName(response, "result.bin");
    $("file-result").hidden = false;
  }
}

function showHeaders(headers) {
  const names = [...SHOWN_HEADERS];
  for (const [name] of headers) {
    if (name.startsWith("x-amphion-") && !names.some((n) => n.toLowerCase() === name)) names.push(name);
  }
  const rows = names.filter((n) => headers.has(n)).flatMap((n) => [element("dt", {}, n), element("dd", {}, headers.get(n))]);
  $("headers").replaceChildren(...rows);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearResult() {
  state.urls.splice(0).forEach((url) => URL.revokeObjectURL(url));
  for (const id of ["error", "audio-result", "file-result", "json-result"]) $(id).hidden = true;
  $("audio").removeAttribute("src");
  $("json-result").textContent = "";
  $("headers").replaceChildren();
  $("progress").value = 0;
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("cancel").disabled = !busy;
  $("request-form").setAttribute("aria-busy", String(busy));
}

// ---- start -------------------------------------------------------------------------------------

function fillRoutes(operations) {
  const groups = new Map();
  for (const op of operations) {
    if (!groups.has(op.tag)) groups.set(op.tag, element("optgroup", { label: op.tag }));
    groups.get(op.tag).append(element("option", { value: op.path }, `${op.path}${op.summary ? ` — ${op.summary}` : ""}`));
    state.operations.set(op.path, op);
  }
  const select = $("route");
  select.replaceChildren(...groups.values());
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (state.operations.has(wanted)) select.value = wanted;
  select.disabled = false;
  $("send").disabled = false;
}

// Model status per route, from /api/health (no key needed); the page works without it.
async function loadHealth() {
  try {
    const health = await (await fetch("/api/health")).json();
    for (const model of Object.values(health.models || {})) {
      for (const route of model.routes || []) {
        if (!state.health.has(route)) state.health.set(route, []);
        state.health.get(route).push(model);
      }
    }
  } catch {
    // leave the status line empty
  }
}

async function start() {
  const keyInput = $("api-key");
  keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
  keyInput.addEventListener("input", () => sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim()));
  $("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY_STORAGE); keyInput.value = ""; keyInput.focus(); });
  // Enter in the key field keeps the key (it is saved as typed) instead of reloading the page.
  $("key-form").addEventListener("submit", (e) => e.preventDefault());
  $("request-form").addEventListener("submit", send);
  $("cancel").addEventListener("click", () => state.controller && state.controller.abort());
  $("route").addEventListener("change", () => {
    history.replaceState(null, "", `#${$("route").value}`);
    renderForm(state.operations.get($("route").value));
  });

  const [response] = await Promise.all([fetch("/api/openapi.json"), loadHealth()]);
  if (!response.ok) {
    showError(`Could not load the API description: ${response.status} ${response.statusText}`);
    return;
  }
  state.spec = await response.json();
  const operations = formOperations(state.spec);
  if (operations.length === 0) {
    showError("The API description lists no model routes.");
    return;
  }
  fillRoutes(operations);
  renderForm(state.operations.get($("route").value));
  document.body.dataset.ready = "true";
}

start();
