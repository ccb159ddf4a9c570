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
  // What the server can read; an empty type (some systems give none) is left to the server.
  var readable = /^image\/(jpeg|png|webp|gif|bmp|tiff)$/;

  function complain(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }
  function check(file) {
    if (file.type && !readable.test(file.type)) {
      if (/^image\/hei[cf]/.test(file.type)) {
        return "HEIC photos cannot be read. Send a JPEG: on an iPhone, choose “Most Compatible” under Settings › Camera › Formats, or take the photo from this page.";
      }
      return "This file is not a photo mole can read (" + file.type + "). Choose a JPEG, PNG or WebP photo.";
    }
    if (limit && file.size > limit) {
      return "This photo is " + (file.size / 1048576).toFixed(1) + " MB; the largest accepted is " + form.getAttribute("data-limit") + ".";
    }
    if (file.size === 0) return "This file is empty. Choose another photo.";
    return "";
  }
  function show() {
    var file = input.files && input.files[0];
    if (url) { URL.revokeObjectURL(url); url = null; }
    if (!file) {
      preview.hidden = true; another.hidden = true; complain("");
      submit.textContent = "Analyse the photo"; submit.disabled = false;
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
    submit.textContent = "Use this photo";
    form.classList.add("chosen");
  }
  input.addEventListener("change", show);
  another.addEventListener("click", function () { input.value = ""; show(); input.click(); });
  form.addEventListener("submit", function (e) {
    var file = input.files && input.files[0];
    var wrong = file ? check(file) : "Choose a photo first.";
    if (wrong) { e.preventDefault(); complain(wrong); return; }
    submit.disabled = true;
    submit.textContent = "Sending…";
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
      complain("This browser cannot take a dropped file; use the button instead.");
      return;
    }
    show();
  });
  // A page restored from the back/forward cache keeps its chosen file: show it again.
  window.addEventListener("pageshow", function () { submit.disabled = false; show(); });
})();
