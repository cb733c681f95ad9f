// Training form: accept a zip dropped anywhere on the drop zone, and show that the upload is under way,
// because a large zip takes minutes to send and unpack. Without this script the plain form works the same.
(function () {
  "use strict";

  var form = document.getElementById("train-form");
  var dropzone = document.getElementById("train-dropzone");
  var input = document.getElementById("dataset-zip");
  var statusLine = document.getElementById("train-status");
  var button = document.getElementById("start-training");
  if (!form || !dropzone || !input) {
    return;
  }

  function stop(event) {
    event.preventDefault();
    event.stopPropagation();
  }

  ["dragenter", "dragover"].forEach(function (name) {
    dropzone.addEventListener(name, function (event) {
      stop(event);
      dropzone.classList.add("dragging");
    });
  });
  ["dragleave", "dragend"].forEach(function (name) {
    dropzone.addEventListener(name, function () {
      dropzone.classList.remove("dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    stop(event);
    dropzone.classList.remove("dragging");
    var files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) {
      return;
    }
    // A file input holds only a FileList, so the first dropped file is moved into a new one.
    var transfer = new DataTransfer();
    transfer.items.add(files[0]);
    input.files = transfer.files;
  });

  form.addEventListener("submit", function () {
    statusLine.textContent = form.dataset.uploading;
    // Disabled after this event, so the browser still sends the form once.
    window.setTimeout(function () { button.disabled = true; }, 0);
  });
})();
