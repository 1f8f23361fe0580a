// The dashboard: per function, the model history, the confusion matrix, the review queue over
// time, the team's reviewers, labels by count and the retraining status. Charts are PNGs drawn by
// the server (matplotlib), fetched with the key; everything else comes from the same JSON API as
// any client.
"use strict";
const state = { fid: null };

function say(text) { $("message").textContent = text || ""; }

function percent(value) { return value == null ? "-" : (100 * value).toFixed(1) + "%"; }

function decimal(value, digits) { return value == null ? "-" : value.toFixed(digits); }

function fact(list, name, value) {
  list.appendChild(winnow.element("dt", name));
  list.appendChild(winnow.element("dd", value));
}

function showTraining(training) {
  const list = $("trainingfacts");
  list.innerHTML = "";
  const running = training.state === "training";
  const doing = training.kind === "finetune" ? "fine-tuning" : "training";
  fact(list, "state", running ? `${doing} (${training.phase || "starting"}, ${Math.round(100 * training.progress)}%)` : training.state);
  fact(list, "deployed version", training.deployedVersion == null ? "none yet" : "v" + training.deployedVersion + (training.pinned ? " (pinned)" : ""));
  fact(list, "new annotations", `${training.newAnnotations} (retrains at ${training.retrainMinAnnotations})`);
  fact(list, "last run", training.finishedAt ? new Date(training.finishedAt).toLocaleString() : "never");
  if (training.lastError) fact(list, "last error", training.lastError);
  $("cmversion").textContent = training.deployedVersion == null ? "" : `(v${training.deployedVersion}, out-of-fold)`;
  const last = training.lastDecision;
  $("decision").textContent = last ? `v${last.version} ${last.status}: ${last.decision.reason || ""}` : "";
}

function showVersions(versions) {
  const body = $("versions").querySelector("tbody");
  body.innerHTML = "";
  for (const v of versions) {
    const row = document.createElement("tr");
    row.dataset.version = v.version;
    // a tuned version is judged on a holdout, not by cross-validation
    const accuracy = v.metrics.accuracy != null ? percent(v.metrics.accuracy)
      : v.metrics.holdoutAccuracy != null ? percent(v.metrics.holdoutAccuracy) + " (holdout)" : "-";
    const cells = ["v" + v.version, v.status, accuracy, percent(v.metrics.macroF1), v.sampleCount, v.head, v.trigger, v.decision.reason || ""];
    cells.forEach((text, i) => {
      const cell = winnow.element("td", text, i === 1 ? "status-" + v.status : i === 7 ? "decision-reason" : "");
      row.appendChild(cell);
    });
    body.appendChild(row);
  }
}

function showQueue(counts, activity) {
  const last = activity[activity.length - 1] || { captured: 0, invokes: 0 };
  const captured = activity.reduce((sum, hour) => sum + hour.captured, 0);
  const reviewed = activity.reduce((sum, hour) => sum + hour.resolved, 0);
  $("queuecounts").textContent = `${counts.pending} pending · ${counts.annotated} annotated · ${counts.disputed} disputed · ${counts.skipped} skipped · ${counts.discarded} discarded. ` +
    `Last ${activity.length} h: ${captured} captured, ${reviewed} reviewed; this hour ${last.captured} captured` +
    (last.invokes ? ` of ${last.invokes} invokes this server counted (capture rate ${percent(last.captureRate)}` +
      (last.scored ? `, ${percent(last.novel / last.scored)} of ${last.scored} scored novel).` : ").") : ".");
}

function showReviewers(reviewers) {
  const body = $("reviewers").querySelector("tbody");
  body.innerHTML = "";
  for (const r of reviewers) {
    const row = document.createElement("tr");
    row.dataset.reviewer = r.reviewer;
    const cells = [r.reviewer, r.votes, r.disputed, percent(r.estimatedAccuracy), decimal(r.kappa, 2), percent(r.goldAccuracy), decimal(r.itemsPerHour, 1)];
    for (const text of cells) row.appendChild(winnow.element("td", text));
    body.appendChild(row);
  }
  $("reviewers").hidden = !reviewers.length;
  $("noreviewers").hidden = !!reviewers.length;
  $("reviewerspanel").hidden = false;
}

// The reviewers' table is for admin keys: another key gets no table and no error.
function loadReviewers(base) {
  return winnow.json(`${base}/reviewers`).then((page) => showReviewers(page.data)).catch((error) => {
    $("reviewerspanel").hidden = true;
    if (error.status !== 403) throw error;
  });
}

function showLabels(dashboard) {
  const labelled = dashboard.labelCounts.reduce((sum, label) => sum + label.count, 0);
  $("labelsummary").textContent = `${dashboard.labelCounts.length} labels, ${labelled} labelled samples` +
    (dashboard.unlabelledSamples ? `, ${dashboard.unlabelledSamples} without a label.` : ".");
}

async function refresh() {
  if (!state.fid) return;
  const fid = state.fid, base = `/v1/functions/${fid}`, hours = $("hours").value;
  document.body.dataset.loaded = "";
  $("reviewlink").href = "/review?function=" + encodeURIComponent(fid);
  say("");
  const tasks = [
    winnow.json(`${base}/training`).then(showTraining),
    winnow.json(`${base}/models`).then((page) => showVersions(page.data)),
    Promise.all([winnow.json(`${base}/review/counts`), winnow.json(`${base}/dashboard?hours=${hours}`)])
      .then(([counts, dashboard]) => { showQueue(counts, dashboard.activity); showLabels(dashboard); }),
    loadReviewers(base),
    winnow.showImage($("historychart"), `${base}/charts/model-history.png`),
    winnow.showImage($("activitychart"), `${base}/charts/activity.png?hours=${hours}`),
    winnow.showImage($("labelschart"), `${base}/charts/labels.png`),
    winnow.showImage($("confusion"), `${base}/metrics/confusion-matrix.png`)
      .then(() => { $("confusion").hidden = false; $("noconfusion").hidden = true; })
      .catch((error) => {
        if (error.status !== 404) throw error;
        $("confusion").hidden = true; $("noconfusion").hidden = false;
      }),
  ];
  const results = await Promise.allSettled(tasks);
  if (fid !== state.fid) return; // another function was picked meanwhile
  const failed = results.filter((result) => result.status === "rejected");
  if (failed.length) say(failed[0].reason.message);
  document.body.dataset.loaded = failed.length ? "error" : "ok";
}

async function start() {
  try {
    const found = await winnow.loadFunctions($("function"), (fid) => { state.fid = fid; return refresh(); });
    if (!found) say("No functions yet.");
  } catch (error) { say(error.message); document.body.dataset.loaded = "error"; }
}

winnow.bindKey($("apikey"), start);
$("function").addEventListener("change", (event) => { state.fid = event.target.value; refresh(); });
$("hours").addEventListener("change", refresh);
$("refresh").addEventListener("click", refresh);
start();
