// New-class proposals: each a grid of its items' images. Accept creates the typed label and
// annotates the items (those clicked away are left out); dismiss drops the proposal.
"use strict";
const proposals = {
  fid: null, shown: [], left: new Map(), busy: false,
  EXCLUDE_FIELD: "excludeItemIds",

  async enter(fid) {
    proposals.fid = fid;
    const page = await winnow.json(`/v1/functions/${fid}/proposals`);
    proposals.shown = page.data;
    proposals.render();
  },

  render() {
    const box = $("proposallist");
    box.innerHTML = "";
    $("noproposals").hidden = proposals.shown.length > 0;
    proposals.shown.forEach((proposal, index) => {
      const card = winnow.element("section", null, "proposal");
      card.dataset.proposal = proposal.id;
      const nearest = proposal.nearestLabel ? ` · nearest label ${proposal.nearestLabel}` : "";
      card.appendChild(winnow.element("h2", `${proposal.size} similar inputs${nearest}`));
      const left = proposals.left.get(proposal.id) || new Set();
      proposals.left.set(proposal.id, left);
      const thumbs = winnow.element("div", null, "thumbs");
      for (const itemId of proposal.itemIds) {
        const img = winnow.element("img", null, left.has(itemId) ? "left-out" : "");
        img.dataset.item = itemId; img.alt = "proposed item"; img.title = "click to leave out or put back";
        img.addEventListener("click", () => {
          if (left.has(itemId)) left.delete(itemId); else left.add(itemId);
          img.classList.toggle("left-out", left.has(itemId));
        });
        thumbs.appendChild(img);
        winnow.showImage(img, `/v1/review/${itemId}/image`).catch((error) => say(error.message));
      }
      card.appendChild(thumbs);
      const name = winnow.element("input");
      name.placeholder = "new label name"; name.size = 18; name.className = "proposalname";
      name.addEventListener("keydown", (event) => { if (event.key === "Enter") proposals.accept(index, name.value); });
      const accept = winnow.element("button", "Accept as new label");
      accept.addEventListener("click", () => proposals.accept(index, name.value));
      const dismiss = winnow.element("button", "Dismiss");
      dismiss.addEventListener("click", () => proposals.dismiss(index));
      const actions = winnow.element("div", null, "actions");
      actions.append(name, accept, dismiss);
      card.appendChild(actions);
      box.appendChild(card);
    });
  },

  async accept(index, labelName) {
    const proposal = proposals.shown[index];
    const name = (labelName || "").trim();
    if (!proposal || proposals.busy) return;
    if (!name) { say("Type the new label's name first.", "prompt"); return; }
    const body = { labelName: name };
    const left = [...(proposals.left.get(proposal.id) || [])];
    if (left.length) body[proposals.EXCLUDE_FIELD] = left;
    await proposals.post(`/v1/functions/${proposals.fid}/proposals/${proposal.id}/accept`, body,
      `Created label ${name} from ${proposal.size - left.length} inputs.`);
    if (!review.labels.includes(name)) review.labels.push(name);
  },

  async dismiss(index) {
    const proposal = proposals.shown[index];
    if (!proposal || proposals.busy) return;
    await proposals.post(`/v1/functions/${proposals.fid}/proposals/${proposal.id}/dismiss`, null, "Dismissed.");
  },

  async post(path, body, done) {
    proposals.busy = true;
    try {
      await winnow.api(path, body ? { method: "POST", body: JSON.stringify(body) } : { method: "POST" });
      say(done, "done");
      await proposals.enter(proposals.fid);
      await review.showProgress();
    } catch (error) { say(error.message); } finally { proposals.busy = false; }
  },

  onKey(event) {
    if (event.key === "n") { const input = document.querySelector(".proposalname"); if (input) { input.focus(); event.preventDefault(); } }
    else if (event.key === "d") proposals.dismiss(0);
  },
};
