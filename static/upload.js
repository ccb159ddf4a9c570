// The upload form's help (served at /static/upload.js; the page works without it): a preview of
// the chosen photo with "use this photo / choose another", dropping a file on the form, and a
// check of type and size before sending (the server still decides).
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  var input = document.getElementById("photo");
  if (!form || !input) return;
  var drop = document.getElementById("drop");
  var preview = document.getElementById("preview");
  var image = document.getElementById("preview-img");
  var caption = document.getElementById("preview-name");
  var submit = document.getElementById("submit");
  var another = document.getElementById("choose-another");
  var problem = document.getElementById("check-error");
  var limit = parseInt(form.getAttribute("data-limit-bytes"), 10) || 0;
  var url = null;
  // The page's language: its words come in the form's data-msg-* attributes.
  function msg(name, values) {
    var text = form.getAttribute("data-msg-" + name) || name;
    Object.keys(values || {}).forEach(function (k) { text = text.split("{ $" + k + " }").join(values[k]); });
    return text;
  }
  // What the server can read; an empty type (some systems give none) is left to the server.
  var readable = /^image\/(jpeg|png|webp|gif|bmp|tiff)$/;

  function complain(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }
  function check(file) {
    if (file.type && !readable.test(file.type)) {
      if (/^image\/hei[cf]/.test(file.type)) return msg("heic");
      return msg("type", { type: file.type });
    }
    if (limit && file.size > limit) {
      return msg("size", { size: (file.size / 1048576).toFixed(1), limit: form.getAttribute("data-limit") });
    }
    if (file.size === 0) return msg("empty");
    return "";
  }
  function show() {
    var file = input.files && input.files[0];
    if (url) { URL.revokeObjectURL(url); url = null; }
    if (!file) {
      preview.hidden = true; another.hidden = true; complain("");
      submit.textContent = msg("submit"); submit.disabled = false;
      return;
    }
    var wrong = check(file);
    complain(wrong);
    submit.disabled = !!wrong;
    another.hidden = false;
    if (wrong) { preview.hidden = true; return; }
    url = URL.createObjectURL(file);
    image.src = url;
    caption.textContent = file.name;
    preview.hidden = false;
    submit.textContent = msg("use-this");
    form.classList.add("chosen");
  }
  input.addEventListener("change", show);
  another.addEventListener("click", function () { input.value = ""; show(); input.click(); });
  form.addEventListener("submit", function (e) {
    var file = input.files && input.files[0];
    var wrong = file ? check(file) : msg("choose-first");
    if (wrong) { e.preventDefault(); complain(wrong); return; }
    submit.disabled = true;
    submit.textContent = msg("sending");
  });
  // Drag and drop (desktops): the dropped file becomes the input's file, so the form sends it.
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    var files = e.dataTransfer && e.dataTransfer.files;
    if (!files || !files.length) return;
    try {
      var list = new DataTransfer();
      list.items.add(files[0]);
      input.files = list.files;
    } catch (err) {
      complain(msg("no-drop"));
      return;
    }
    show();
  });
  // A page restored from the back/forward cache keeps its chosen file: show it again.
  window.addEventListener("pageshow", function () { submit.disabled = false; show(); });
})();
