// Grid review: a page of captured items, each with its predicted label preselected. Keys or clicks
// fix the wrong ones; Enter sends the whole page as ONE bulk annotation request
// (POST /v1/functions/{fid}/review/annotate). Undo takes back the last change on the page; with
// nothing left to undo it reopens the page just submitted, whose corrections relabel the items'
// samples (PUT .../samples/{sampleId}/annotation: a new label on an annotated item is a 409).
"use strict";
const grid = {
  PAGE: 20,
  fid: null, labels: [], tiles: [], focus: 0, history: [], submitted: null, correcting: false,
  busy: false, pages: 0, neighbours: new Map(), neighbourTimer: null,

  async enter(fid, labels) {
    grid.fid = fid; grid.labels = labels; grid.submitted = null; grid.neighbours.clear();
    $("grid").hidden = false; $("card").hidden = true;
    await grid.load();
  },

  leave() { $("grid").hidden = true; grid.tiles = []; },

  async load() {
    // a claim: the page is reserved to this key's reviewer (teammates are handed other items)
    const page = await winnow.json(`/v1/functions/${grid.fid}/review/claim`, { method: "POST", body: JSON.stringify({ count: grid.PAGE, kind: "capture" }) });
    grid.correcting = false;
    grid.show(page.data.map((item) => ({ item, label: item.predictedLabel, skip: false, sent: null })));
  },

  show(tiles) {
    grid.tiles = tiles; grid.focus = 0; grid.history = [];
    $("empty").hidden = tiles.length > 0; $("grid").hidden = tiles.length === 0;
    $("empty").textContent = "No captures pending review. Captured inputs appear here as traffic arrives.";
    grid.render();
    grid.pages += 1;
    const page = grid.pages;
    Promise.all(grid.tiles.map((tile, i) => winnow.showImage($("tile-" + i).querySelector("img"), tile.item.imageUrl)))
      .then(() => { if (page === grid.pages) $("tiles").dataset.page = String(page); })
      .catch((error) => say(error.message));
    grid.showNeighbours();
  },

  render() {
    $("gridlabels").textContent = grid.labels.slice(0, 9).map((name, i) => `${i + 1} ${name}`).join(" · ");
    $("gridsubmit").lastChild.textContent = grid.correcting ? "Send corrections" : "Submit page";
    const box = $("tiles");
    box.innerHTML = ""; box.dataset.page = "";
    grid.tiles.forEach((tile, i) => {
      const node = winnow.element("div", null, "tile");
      node.id = "tile-" + i; node.dataset.item = tile.item.id; node.dataset.index = i;
      node.appendChild(winnow.element("img"));
      const select = document.createElement("select");
      select.appendChild(new Option("(choose)", ""));
      for (const name of grid.labels) select.appendChild(new Option(name, name));
      select.addEventListener("change", () => { grid.set(i, select.value || null, false); select.blur(); });
      node.appendChild(select);
      const confidence = tile.item.confidence == null ? "" : (100 * tile.item.confidence).toFixed(0) + "%";
      node.appendChild(winnow.element("span", confidence, "confidence"));
      node.addEventListener("click", (event) => { if (event.target.tagName !== "SELECT") grid.moveTo(i); });
      box.appendChild(node);
      grid.paint(i);
    });
  },

  paint(i) {
    const tile = grid.tiles[i], node = $("tile-" + i);
    if (!node) return;
    node.dataset.label = tile.skip ? "" : tile.label || "";
    node.querySelector("select").value = tile.label || "";
    node.classList.toggle("focused", i === grid.focus);
    node.classList.toggle("skipped", tile.skip);
    node.classList.toggle("changed", !tile.skip && tile.label !== (grid.correcting ? tile.sent : tile.item.predictedLabel));
    node.classList.toggle("missing", !tile.skip && !tile.label);
  },

  moveTo(i) {
    if (i < 0 || i >= grid.tiles.length) return;
    const before = grid.focus;
    grid.focus = i;
    grid.paint(before); grid.paint(i);
    $("tile-" + i).scrollIntoView({ block: "nearest" });
    grid.showNeighbours();
  },

  // Change a tile (and remember how it was, for undo); `advance` moves on to the next tile.
  set(i, label, advance = true) {
    const tile = grid.tiles[i];
    grid.history.push({ index: i, label: tile.label, skip: tile.skip, focus: grid.focus });
    tile.label = label; tile.skip = false;
    grid.paint(i);
    if (advance) grid.moveTo(Math.min(i + 1, grid.tiles.length - 1));
  },

  toggleSkip(i) {
    const tile = grid.tiles[i];
    grid.history.push({ index: i, label: tile.label, skip: tile.skip, focus: grid.focus });
    tile.skip = !tile.skip;
    grid.paint(i);
    grid.moveTo(Math.min(i + 1, grid.tiles.length - 1));
  },

  undo() {
    const last = grid.history.pop();
    if (last) {
      const tile = grid.tiles[last.index];
      tile.label = last.label; tile.skip = last.skip;
      grid.paint(last.index); grid.moveTo(last.focus);
      say("");
    } else if (grid.submitted && !grid.correcting) {
      grid.correcting = true;
      const reopened = grid.submitted.map((tile) => Object.assign({}, tile, { sent: tile.skip ? null : tile.label }));
      grid.show(reopened);
      say("Reopened the page you submitted: change any label and press Enter to send the corrections.", "prompt");
    }
  },

  async submit() {
    if (grid.busy || !grid.tiles.length) return;
    const missing = grid.tiles.findIndex((tile) => !tile.skip && !tile.label);
    if (missing >= 0) { grid.moveTo(missing); say("Choose a label for the highlighted image, or skip it with x.", "prompt"); return; }
    const changed = (tile) => !grid.correcting || tile.label !== tile.sent;
    const labelled = grid.tiles.filter((tile) => !tile.skip && changed(tile));
    const annotations = labelled.map((tile) => ({ itemId: tile.item.id, labelName: tile.label }));
    const skips = grid.correcting ? [] : grid.tiles.filter((tile) => tile.skip);
    grid.busy = true;
    try {
      if (grid.correcting) {
        // An annotated item's label is its sample's: a correction relabels the sample.
        for (const tile of labelled) {
          await winnow.api(`/v1/functions/${grid.fid}/samples/${tile.item.sampleId}/annotation`, { method: "PUT", body: JSON.stringify({ labelName: tile.label }) });
        }
      } else if (annotations.length) {
        const done = await winnow.json(`/v1/functions/${grid.fid}/review/annotate`, { method: "POST", body: JSON.stringify({ items: annotations }) });
        done.data.forEach((item, i) => { labelled[i].item = item; });
      }
      for (const tile of skips) await winnow.api(`/v1/functions/${grid.fid}/review/${tile.item.id}/skip`, { method: "POST" });
      for (const { labelName } of annotations) if (!grid.labels.includes(labelName)) grid.labels.push(labelName);
      review.reviewed += grid.correcting ? 0 : grid.tiles.length;
      grid.submitted = grid.correcting ? null : grid.tiles.map((tile) => Object.assign({}, tile));
      say(grid.correcting ? `Sent ${annotations.length} corrections.` : `Submitted ${annotations.length} labels${skips.length ? `, skipped ${skips.length}` : ""} (u reopens the page).`, "done");
      await grid.load();
      await review.showProgress();
    } catch (error) { say(error.message); } finally { grid.busy = false; }
  },

  // The focused item's nearest labelled samples (fetched once the focus rests for a moment).
  showNeighbours() {
    clearTimeout(grid.neighbourTimer);
    const list = $("neighbourlist");
    list.innerHTML = "";
    const tile = grid.tiles[grid.focus];
    if (!tile) return;
    grid.neighbourTimer = setTimeout(async () => {
      try {
        const id = tile.item.id;
        if (!grid.neighbours.has(id)) {
          grid.neighbours.set(id, (await winnow.json(`/v1/functions/${grid.fid}/review/${id}/similar?count=4`)).data);
        }
        if (grid.tiles[grid.focus] !== tile) return;
        list.innerHTML = "";
        for (const hit of grid.neighbours.get(id)) {
          const figure = winnow.element("figure");
          const img = winnow.element("img");
          figure.appendChild(img);
          figure.appendChild(winnow.element("figcaption", `${hit.labelName} · ${hit.similarity.toFixed(2)}`));
          list.appendChild(figure);
          winnow.showImage(img, `/v1/functions/${grid.fid}/samples/${hit.sampleId}/image`).catch(() => {});
        }
        if (!grid.neighbours.get(id).length) list.appendChild(winnow.element("p", "No labelled samples yet.", "muted"));
      } catch (error) { list.appendChild(winnow.element("p", error.message, "muted")); }
    }, 200);
  },

  // Keys of the grid; true when the key was handled.
  onKey(event) {
    const tiles = [...$("tiles").children];
    const columns = Math.max(1, tiles.filter((tile) => tile.offsetTop === tiles[0].offsetTop).length);
    const key = event.key;
    if (key === "Enter") grid.submit();
    else if (key === "u" || (key === "z" && (event.ctrlKey || event.metaKey))) grid.undo();
    else if (key === " ") grid.set(grid.focus, grid.tiles[grid.focus]?.label ?? null);
    else if (key === "x") grid.toggleSkip(grid.focus);
    else if (key === "ArrowRight") grid.moveTo(grid.focus + 1);
    else if (key === "ArrowLeft") grid.moveTo(grid.focus - 1);
    else if (key === "ArrowDown") grid.moveTo(Math.min(grid.focus + columns, grid.tiles.length - 1));
    else if (key === "ArrowUp") grid.moveTo(Math.max(grid.focus - columns, 0));
    else if (/^[1-9]$/.test(key) && grid.labels[Number(key) - 1] && grid.tiles.length) grid.set(grid.focus, grid.labels[Number(key) - 1]);
    else return false;
    return true;
  },
};
