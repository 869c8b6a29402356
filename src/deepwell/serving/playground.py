"""The playground page at `/`: a form built in the browser from the model's V2 metadata (a number field, a list
of known categories, a text box, a file picker for image and audio columns), posted to `/predict`, the answer
shown as a label with a bar per class (or the value). One self-contained page: no CDN, no external script, so
it works offline. When the server wants a token, the page asks for it and keeps it for the browser session."""

from __future__ import annotations

import html
import json

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:16px 28px}header h1{margin:0;font-size:21px}
header p{margin:4px 0 0;color:#c5cbd6;font-size:14px}main{display:flex;flex-wrap:wrap;gap:18px;padding:18px 28px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 18px 16px;flex:1 1 340px}
h2{font-size:17px;margin:4px 0 10px}label{display:block;font-weight:600;margin:10px 0 3px}
label small{font-weight:400;color:#6b7482}input,select,textarea{width:100%;box-sizing:border-box;font:inherit;
padding:5px 7px;border:1px solid #c5cbd6;border-radius:5px}textarea{min-height:70px}
button{margin-top:14px;padding:7px 18px;font:inherit;font-weight:600;color:#fff;background:#30476e;border:0;
border-radius:5px;cursor:pointer}#result .label{font-size:24px;font-weight:700;margin:6px 0 12px}
.bar{display:flex;align-items:center;gap:8px;margin:4px 0;font-size:14px}.bar span.name{width:30%;overflow:hidden;
text-overflow:ellipsis;white-space:nowrap}.bar .track{flex:1;background:#e9ecf1;border-radius:4px;height:16px}
.bar .fill{background:#3b6fb6;height:16px;border-radius:4px}.bar span.value{width:56px;text-align:right;
font-variant-numeric:tabular-nums}.error{color:#b42318;white-space:pre-wrap}.muted{color:#6b7482}
"""

SCRIPT = """
const NAME = %(name)s;
const $ = (tag, attrs = {}, text = "") => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
};
function headers() {
  const token = sessionStorage.getItem("deepwell-token");
  return token ? {"Authorization": "Bearer " + token} : {};
}
function askToken(message) {
  const box = document.getElementById("token-box");
  box.hidden = false;
  document.getElementById("token-note").textContent = message;
}
async function call(path, options = {}) {
  const response = await fetch(path, {...options, headers: {...(options.headers || {}), ...headers()}});
  const body = await response.json().catch(() => ({error: "the server's answer is not JSON"}));
  if (response.status === 401) askToken(body.error);
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function field(input) {
  const p = input.parameters || {};
  const kind = p.column_type;
  const label = $("label", {for: "in-" + input.name}, input.name + " ");
  label.append($("small", {}, kind));
  let control;
  if (p.categories) {
    control = $("select", {id: "in-" + input.name, name: input.name});
    control.append($("option", {value: ""}, "(missing)"));
    for (const level of p.categories) control.append($("option", {value: level}, level));
  } else if (kind === "image" || kind === "audio") {
    control = $("input", {id: "in-" + input.name, name: input.name, type: "file", accept: kind + "/*"});
  } else if (kind === "text") {
    control = $("textarea", {id: "in-" + input.name, name: input.name});
  } else {
    control = $("input", {id: "in-" + input.name, name: input.name,
                          type: input.datatype === "FP64" ? "number" : "text", step: "any"});
  }
  control.dataset.kind = kind;
  control.dataset.datatype = input.datatype;
  return [label, control];
}
function fileText(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);  // a data: URL; the server takes its base64 part
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}
async function record(form) {
  const row = {};
  for (const control of form.querySelectorAll("[data-kind]")) {
    if (control.type === "file") {
      row[control.name] = control.files.length ? await fileText(control.files[0]) : null;
    } else if (control.value === "") {
      row[control.name] = null;
    } else {
      row[control.name] = control.dataset.datatype === "FP64" ? Number(control.value) : control.value;
    }
  }
  return row;
}
function show(answer) {
  const result = document.getElementById("result");
  result.replaceChildren();
  const value = answer.predictions[0];
  result.append($("div", {class: "label", id: "prediction"}, String(value)));
  const probabilities = (answer.probabilities || [])[0];
  if (!probabilities) return;
  const ordered = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of ordered) {
    const bar = $("div", {class: "bar", "data-class": name});
    const track = $("div", {class: "track"});
    track.append($("div", {class: "fill", style: "width:" + (100 * p).toFixed(1) + "%%"}));
    bar.append($("span", {class: "name", title: name}, name), track,
               $("span", {class: "value"}, (100 * p).toFixed(1) + " %%"));
    result.append(bar);
  }
}
async function load() {
  const meta = await call("/v2/models/" + encodeURIComponent(NAME));
  const parameters = meta.parameters || {};
  document.getElementById("task").textContent =
    "Predicts " + parameters.target + " (" + parameters.task + ") from " + meta.inputs.length + " input(s).";
  const fields = document.getElementById("fields");
  fields.replaceChildren();
  for (const input of meta.inputs) fields.append(...field(input));
  document.getElementById("predict").disabled = false;
}
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("form");
  const error = document.getElementById("error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const body = JSON.stringify({records: [await record(form)]});
      show(await call("/predict", {method: "POST", body, headers: {"Content-Type": "application/json"}}));
    } catch (exc) {
      error.textContent = exc.message;
    }
  });
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("deepwell-token", document.getElementById("token").value);
    document.getElementById("token-box").hidden = true;
    load().catch((exc) => { error.textContent = exc.message; });
  });
  load().catch((exc) => { error.textContent = exc.message; });
});
"""


def playground_page(name: str) -> str:
    script = SCRIPT % {"name": json.dumps(name).replace("<", "\\u003c")}
    title = html.escape(f"deepwell: {name}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f'<style>{STYLE}</style>'
            f"<script>{script}</script></head><body>"
            f'<header><h1>{title}</h1><p id="task">Loading the model\'s inputs…</p></header><main>'
            '<section><h2>Inputs</h2>'
            '<form id="token-form"><div id="token-box" hidden><label for="token">Token</label>'
            '<p id="token-note" class="muted"></p><input id="token" type="password" autocomplete="off">'
            '<button type="submit">Use token</button></div></form>'
            '<form id="form"><div id="fields"></div><button id="predict" type="submit" disabled>Predict</button>'
            '</form><p id="error" class="error"></p></section>'
            '<section><h2>Prediction</h2><div id="result"><p class="muted">Fill in the inputs and press '
            'Predict.</p></div><p class="muted">The same call from a program: POST /predict with '
            '{"records": [{column: value, …}]}, or the Open Inference Protocol at /v2/models/'
            f'{html.escape(name)}/infer (see <a href="/docs">/docs</a>).</p></section></main></body></html>')
