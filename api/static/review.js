// The review page's script (a file, not inline: the page's CSP allows no inline script).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { fid: null, items: [], labels: [], reviewed: 0, busy: false, imageUrl: null };

$("apikey").value = sessionStorage.getItem("winnowKey") || "";
$("apikey").addEventListener("change", () => { sessionStorage.setItem("winnowKey", $("apikey").value.trim()); loadFunctions(); });

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const key = sessionStorage.getItem("winnowKey");
  if (key) headers["Authorization"] = "Bearer " + key;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message || message; } catch (e) {}
    if (response.status === 401) message += " (enter an API key with the annotate scope above)";
    throw new Error(response.status + ": " + message);
  }
  return response.status === 204 ? null : response;
}

function say(text) { $("message").textContent = text || ""; }

async function loadFunctions() {
  try {
    const { data } = await (await api("/v1/functions")).json();
    const select = $("function");
    select.innerHTML = "";
    for (const fn of data) {
      const option = document.createElement("option");
      option.value = fn.id; option.textContent = fn.name + " (" + fn.id + ")";
      select.appendChild(option);
    }
    const wanted = new URLSearchParams(location.search).get("function");
    if (wanted && data.some((fn) => fn.id === wanted)) select.value = wanted;
    if (data.length) { await selectFunction(select.value); } else { say("No functions yet."); }
  } catch (error) { say(error.message); }
}

async function selectFunction(fid) {
  state.fid = fid; state.reviewed = 0; say("");
  const labels = await (await api(`/v1/functions/${fid}/labels`)).json();
  state.labels = labels.data.map((label) => label.name);
  await refill();
}

async function refill() {
  const page = await (await api(`/v1/functions/${state.fid}/review?status=pending&count=50`)).json();
  state.items = page.data;
  await show();
}

async function show() {
  const counts = await (await api(`/v1/functions/${state.fid}/review/counts`)).json();
  $("progress").textContent = `${state.reviewed} reviewed this session · ${counts.pending} pending · ${counts.annotated} annotated`;
  const item = state.items[0];
  $("card").hidden = !item; $("empty").hidden = !!item;
  if (!item) return;
  const blob = await (await api(item.imageUrl)).blob();
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = URL.createObjectURL(blob);
  $("image").src = state.imageUrl;
  $("image").dataset.item = item.id;
  $("predicted").textContent = item.predictedLabel ?? "-";
  $("confidence").textContent = item.confidence == null ? "-" : (100 * item.confidence).toFixed(1) + "%";
  $("version").textContent = item.modelVersion ?? "-";
  $("reason").textContent = item.reason;
  $("score").textContent = item.score.toFixed(3);
  const box = $("labels");
  box.innerHTML = "";
  state.labels.forEach((name, i) => {
    const button = document.createElement("button");
    button.dataset.label = name;
    button.innerHTML = (i < 9 ? `<kbd>${i + 1}</kbd>` : "") + name.replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
    button.addEventListener("click", () => act("annotate", name));
    box.appendChild(button);
  });
}

async function act(action, label) {
  const item = state.items[0];
  if (!item || state.busy) return;
  state.busy = true;
  try {
    const path = `/v1/functions/${state.fid}/review/${item.id}/${action}`;
    const options = { method: "POST" };
    if (action === "annotate") options.body = JSON.stringify({ labelName: label });
    await api(path, options);
    if (action === "annotate" && !state.labels.includes(label)) state.labels.push(label);
    state.items.shift(); state.reviewed += 1; say("");
    if (!state.items.length) { await refill(); } else { await show(); }
  } catch (error) { say(error.message); } finally { state.busy = false; }
}

$("function").addEventListener("change", (event) => selectFunction(event.target.value));
$("skip").addEventListener("click", () => act("skip"));
$("discard").addEventListener("click", () => act("discard"));
$("addlabel").addEventListener("click", () => { const name = $("newlabel").value.trim(); if (name) { act("annotate", name); $("newlabel").value = ""; } });
document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
  if (event.key === "s") act("skip");
  else if (event.key === "d") act("discard");
  else if (/^[1-9]$/.test(event.key)) { const name = state.labels[Number(event.key) - 1]; if (name) act("annotate", name); }
});
loadFunctions();
