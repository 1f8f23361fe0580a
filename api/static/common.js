// What the pages share: the API key (kept in sessionStorage, sent as a bearer token), fetch with
// errors as exceptions, the function picker, and images fetched with the key (an <img src> cannot
// send one) shown through blob: URLs. A file, not inline: the pages' CSP allows no inline script.
"use strict";
const $ = (id) => document.getElementById(id);

const winnow = {
  key() { return sessionStorage.getItem("winnowKey") || ""; },

  // The key field: filled from this tab's session, and on change stored and `onChange` called.
  bindKey(input, onChange) {
    input.value = winnow.key();
    input.addEventListener("change", () => { sessionStorage.setItem("winnowKey", input.value.trim()); onChange(); });
  },

  async api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    const key = winnow.key();
    if (key) headers["Authorization"] = "Bearer " + key;
    if (options.body) headers["Content-Type"] = "application/json";
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).message || message; } catch (e) {}
      if (response.status === 401) message += " (enter an API key above)";
      const error = new Error(response.status + ": " + message);
      error.status = response.status;
      throw error;
    }
    return response.status === 204 ? null : response;
  },

  async json(path, options) { return (await winnow.api(path, options)).json(); },

  // Fill `select` with the functions the key sees (preferring ?function=), then call onSelect(id).
  async loadFunctions(select, onSelect) {
    const { data } = await winnow.json("/v1/functions");
    select.innerHTML = "";
    for (const fn of data) {
      const option = document.createElement("option");
      option.value = fn.id; option.textContent = fn.name + " (" + fn.id + ")";
      select.appendChild(option);
    }
    const wanted = new URLSearchParams(location.search).get("function");
    if (wanted && data.some((fn) => fn.id === wanted)) select.value = wanted;
    if (data.length) await onSelect(select.value);
    return data.length;
  },

  // An image fetched with the key, as a blob: URL (revoked when `img` gets its next one).
  async showImage(img, path) {
    const blob = await (await winnow.api(path)).blob();
    if (img.dataset.blobUrl) URL.revokeObjectURL(img.dataset.blobUrl);
    img.dataset.blobUrl = URL.createObjectURL(blob);
    img.src = img.dataset.blobUrl;
  },

  // A new element with text (never parsed as HTML) and optional class.
  element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  },
};
