/* Cove web app: images attached to a message (the attach button, pasting, dropping files on
   the composer). Each image is read into a data: URL (scaled down in a canvas first when it is
   large, so the request stays under the server's body limit); the server checks and normalises
   it again. Defines window.coveAttach: take() returns the attached data: URLs and clears them,
   count() how many there are, thumbs(urls) the <img> elements that show a message's images. */
(function () {
  "use strict";
  const MAX_IMAGES = 8;
  const MAX_SIDE = 2048;
  const SMALL = 1.5 * 1024 * 1024; // bytes: smaller files are sent as they are
  const TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"];
  let images = [];

  function $(id) { return document.getElementById(id); }

  function readURL(file) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(r.result);
      r.onerror = () => reject(new Error("could not read " + file.name));
      r.readAsDataURL(file);
    });
  }

  async function scaled(file) {
    const url = await readURL(file);
    if (file.size <= SMALL || file.type === "image/gif") return url;
    const img = new Image();
    await new Promise((resolve, reject) => { img.onload = resolve; img.onerror = reject; img.src = url; });
    const scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
    canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.9);
  }

  function showError(text) {
    const e = $("error");
    e.textContent = text;
    e.hidden = !text;
  }

  async function add(files) {
    for (const file of files) {
      if (!TYPES.includes(file.type)) { showError(file.name + ": not an image Cove reads (PNG, JPEG, GIF, WebP or BMP)"); continue; }
      if (images.length >= MAX_IMAGES) { showError("at most " + MAX_IMAGES + " images a message"); break; }
      try { images.push(await scaled(file)); } catch (e) { showError(e.message || String(e)); }
    }
    render();
  }

  function render() {
    const box = $("attachments");
    box.textContent = "";
    box.hidden = !images.length;
    images.forEach((url, i) => {
      const item = document.createElement("span");
      item.className = "attachment";
      const img = document.createElement("img");
      img.src = url; img.alt = "attached image " + (i + 1);
      const rm = document.createElement("button");
      rm.type = "button"; rm.className = "remove"; rm.textContent = "×";
      rm.setAttribute("aria-label", "Remove image " + (i + 1));
      rm.addEventListener("click", () => { images.splice(i, 1); render(); });
      item.append(img, rm);
      box.appendChild(item);
    });
  }

  function thumbs(urls) {
    const box = document.createElement("div");
    box.className = "images";
    for (const url of urls || []) {
      if (typeof url !== "string" || !url.startsWith("data:image/")) continue;
      const img = document.createElement("img");
      img.src = url; img.alt = "image";
      box.appendChild(img);
    }
    return box;
  }

  function wire() {
    const input = $("attach-input");
    $("attach").addEventListener("click", () => input.click());
    input.addEventListener("change", () => { add(Array.from(input.files)); input.value = ""; });
    $("input").addEventListener("paste", (e) => {
      const files = Array.from(e.clipboardData ? e.clipboardData.files : []).filter((f) => f.type.startsWith("image/"));
      if (files.length) { e.preventDefault(); add(files); }
    });
    const composer = $("composer");
    composer.addEventListener("dragover", (e) => { e.preventDefault(); composer.classList.add("dropping"); });
    composer.addEventListener("dragleave", () => composer.classList.remove("dropping"));
    composer.addEventListener("drop", (e) => {
      e.preventDefault();
      composer.classList.remove("dropping");
      add(Array.from(e.dataTransfer ? e.dataTransfer.files : []));
    });
  }

  window.coveAttach = {
    take() { const out = images; images = []; render(); return out; },
    count() { return images.length; },
    thumbs,
  };
  document.addEventListener("DOMContentLoaded", wire);
})();
