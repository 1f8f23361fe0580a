// The review page's script (a file, not inline: the page's CSP allows no inline script).
// One item at a time (keys 1-9, n none of these, s, d, u), a grid of a page of items (grid.js; g switches), the
// mislabel suspects one at a time (k keeps the label, m takes the model's), the disputed items
// (admin keys settle them), or the new-class proposals (proposals.js). Single, suspects and grid
// work through claims: each page is reserved to this key's reviewer, so teammates never get it.
"use strict";
const review = { fid: null, items: [], labels: [], reviewed: 0, busy: false, mode: "single", last: null, reopened: false };

// kind: "error" (a call failed; the default), "prompt" (what to do next) or "done" (it worked).
function say(text, kind = "error") { $("message").textContent = text || ""; $("message").className = text ? kind : ""; }

async function loadFunctions() {
  if (!winnow.key()) { say("Enter an API key with annotate scope.", "prompt"); return; }
  try {
    if (!(await winnow.loadFunctions($("function"), selectFunction))) say("No functions yet.");
  } catch (error) { say(error.message); }
}

async function selectFunction(fid) {
  review.fid = fid; review.reviewed = 0; review.last = null; say("");
  $("dashboardlink").href = "/dashboard?function=" + encodeURIComponent(fid);
  const labels = await winnow.json(`/v1/functions/${fid}/labels`);
  review.labels = labels.data.map((label) => label.name);
  await setMode(review.mode);
}

async function setMode(mode) {
  review.mode = mode; say("");  // what the last tab said stays with it
  sessionStorage.setItem("winnowReviewMode", mode);
  for (const button of $("modes").children) button.classList.toggle("active", button.dataset.mode === mode);
  if (!review.fid) return;
  try {
    $("proposals").hidden = mode !== "proposals";
    if (mode !== "grid") grid.leave();
    if (mode === "grid") { await grid.enter(review.fid, review.labels); }
    else if (mode === "proposals") { $("card").hidden = true; $("empty").hidden = true; await proposals.enter(review.fid); }
    else { await refill(); }
    await review.showProgress();
  } catch (error) { say(error.message); }
}

review.showProgress = async () => {
  const counts = await winnow.json(`/v1/functions/${review.fid}/review/counts`);
  $("progress").textContent = `${review.reviewed} reviewed this session · ${counts.pending} pending · ${counts.annotated} annotated`
    + (counts.disputed ? ` · ${counts.disputed} disputed` : "");
};

async function refill() {
  const page = review.mode === "disputes"
    ? await winnow.json(`/v1/functions/${review.fid}/review?status=disputed&count=50`)
    : await winnow.json(`/v1/functions/${review.fid}/review/claim`, {
      method: "POST", body: JSON.stringify({ count: 50, kind: review.mode === "suspects" ? "suspect" : null }),
    });
  review.items = page.data;
  await show();
}

async function show() {
  await review.showProgress();
  const item = review.items[0];
  $("card").hidden = !item; $("empty").hidden = !!item;
  $("empty").textContent = {
    suspects: "No mislabel suspects pending. Each training ranks the labelled samples and queues the most doubtful.",
    disputes: "No disputed items: every item's reviews agreed, or were settled.",
  }[review.mode] || "The review queue is empty for you. Captured inputs appear here as traffic arrives (items teammates hold are not shown).";
  if (!item) return;
  await winnow.showImage($("image"), item.imageUrl);
  $("image").dataset.item = item.id;
  $("predicted").textContent = item.predictedLabel ?? "-";
  $("confidence").textContent = item.confidence == null ? "-" : (100 * item.confidence).toFixed(1) + "%";
  $("version").textContent = item.modelVersion ?? "-";
  $("reason").textContent = item.reason;
  $("score").textContent = item.score.toFixed(3);
  const votes = item.reviews || [];
  $("votes").hidden = votes.length === 0;
  $("votelist").textContent = votes.map((vote) => `${vote.reviewer}: ${vote.labelName ?? "(label deleted)"}`).join(" · ");
  const suspect = item.kind === "suspect";
  $("capturemeta").hidden = suspect; $("suspect").hidden = !suspect;
  if (suspect) {
    $("given").textContent = item.givenLabel ?? "-"; $("keepname").textContent = item.givenLabel ?? "-";
    $("suggested").textContent = item.suggestedLabel ?? "-"; $("takename").textContent = item.suggestedLabel ?? "-";
  }
  const box = $("labels");
  box.innerHTML = "";
  review.labels.forEach((name, i) => {
    const button = document.createElement("button");
    button.dataset.label = name;
    if (i < 9) button.appendChild(winnow.element("kbd", i + 1));
    button.appendChild(document.createTextNode(name));
    button.addEventListener("click", () => act("annotate", name));
    box.appendChild(button);
  });
}

async function act(action, label) {
  const item = review.items[0];
  if (!item || review.busy) return;
  review.busy = true;
  try {
    const correcting = review.last && review.last.id === item.id && review.reopened;
    let done = item;
    if (correcting && action === "annotate" && item.status === "annotated") {
      // An annotated item's label is its sample's: a correction relabels the sample.
      await winnow.api(`/v1/functions/${review.fid}/samples/${item.sampleId}/annotation`, { method: "PUT", body: JSON.stringify({ labelName: label }) });
    } else {
      const options = { method: "POST" };
      if (action === "annotate") options.body = JSON.stringify({ labelName: label });
      done = await winnow.json(`/v1/functions/${review.fid}/review/${item.id}/${action}`, options);
    }
    if (action === "annotate" && !review.labels.includes(label)) review.labels.push(label);
    review.last = done; review.reopened = false;
    review.items.shift(); review.reviewed += correcting ? 0 : 1; say("");
    if (!review.items.length) { await refill(); } else { await show(); }
  } catch (error) { say(error.message); } finally { review.busy = false; }
}

// u: bring back the item just reviewed, to label it again (a correction; a discarded item stays so).
function reopenLast() {
  if (!review.last || review.reopened || review.busy) return;
  review.reopened = true;
  review.items.unshift(review.last);
  show().then(() => say("Back to the item you just reviewed: pick its label again.", "prompt"));
}

// On a suspect: annotate with the label it has (confirms it) or the one the model suggests.
function suspectChoice(field) {
  const item = review.items[0];
  if (item && item.kind === "suspect" && item[field]) act("annotate", item[field]);
}

winnow.bindKey($("apikey"), loadFunctions);
$("function").addEventListener("change", (event) => selectFunction(event.target.value));
$("skip").addEventListener("click", () => act("skip"));
$("novel").addEventListener("click", () => act("novel"));
$("keepgiven").addEventListener("click", () => suspectChoice("givenLabel"));
$("takesuggested").addEventListener("click", () => suspectChoice("suggestedLabel"));
$("discard").addEventListener("click", () => act("discard"));
$("addlabel").addEventListener("click", () => { const name = $("newlabel").value.trim(); if (name) { act("annotate", name); $("newlabel").value = ""; } });
for (const button of $("modes").children) button.addEventListener("click", () => { button.blur(); setMode(button.dataset.mode); });
document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
  if (event.key === "g" && !event.ctrlKey && !event.metaKey) { setMode(review.mode === "grid" ? "single" : "grid"); return; }
  if (review.mode === "grid") { if (grid.onKey(event)) event.preventDefault(); return; }
  if (review.mode === "proposals") { proposals.onKey(event); return; }
  if (event.key === "s") act("skip");
  else if (event.key === "n") act("novel");
  else if (event.key === "u") reopenLast();
  else if (event.key === "k") suspectChoice("givenLabel");
  else if (event.key === "m") suspectChoice("suggestedLabel");
  else if (event.key === "d") act("discard");
  else if (/^[1-9]$/.test(event.key)) { const name = review.labels[Number(event.key) - 1]; if (name) act("annotate", name); }
});
review.mode = new URLSearchParams(location.search).get("mode") || sessionStorage.getItem("winnowReviewMode") || "single";
if (!["grid", "suspects", "disputes", "proposals"].includes(review.mode)) review.mode = "single";
for (const button of $("modes").children) button.classList.toggle("active", button.dataset.mode === review.mode);
loadFunctions();
