// Upload page: collect photos, folders and zips, then send them in batches to an upload session,
// so that thousands of photos go through without one huge request. Without this script the form
// posts everything at once, which is enough for small uploads.
(function () {
  "use strict";

  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest || !window.fetch) {
    return;
  }
  var messages = JSON.parse(document.getElementById("messages").textContent);
  var limits = JSON.parse(form.dataset.limits);
  var csrfToken = form.querySelector("input[name=csrf_token]").value;
  var selection = document.getElementById("selection");
  var warnings = document.getElementById("warnings");
  var progress = document.getElementById("upload-progress");
  var statusLine = document.getElementById("upload-status");
  var errorLine = document.getElementById("upload-error");
  var startButton = document.getElementById("start-upload");
  var dropzone = document.getElementById("dropzone");
  var chosen = [];
  var uploading = false;
  // Batches are also cut at this many bytes, so one request never carries too much to resend.
  var BATCH_BYTES = 32 * 1024 * 1024;
  var ATTEMPTS = 4;

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : match;
    });
  }

  // Pick the form of a message with a count, which the page sends as {one, other}.
  function plural(forms, count) {
    return count === 1 ? forms.one : forms.other;
  }

  function humanSize(bytes) {
    if (bytes >= 1e9) { return (bytes / 1e9).toFixed(2) + " GB"; }
    if (bytes >= 1e6) { return (bytes / 1e6).toFixed(1) + " MB"; }
    return Math.max(1, Math.round(bytes / 1e3)) + " kB";
  }

  function isZip(entry) {
    return /\.zip$/i.test(entry.name) || entry.file.type === "application/zip";
  }

  function isSystemFile(name) {
    return name.split("/").some(function (part) {
      return part.charAt(0) === "." || part.toLowerCase() === "__macosx" || part.toLowerCase() === "thumbs.db";
    });
  }

  function addFiles(files) {
    for (var i = 0; i < files.length; i++) {
      var file = files[i];
      chosen.push({ file: file, name: file.relativePath || file.webkitRelativePath || file.name });
    }
    // Browsers list a folder's files in no particular order; upload order is natural name order.
    chosen.sort(function (first, second) {
      return first.name.localeCompare(second.name, undefined, { numeric: true });
    });
    showSelection();
  }

  function showSelection() {
    var bytes = 0;
    var photos = 0;
    var oversized = [];
    chosen.forEach(function (entry) {
      bytes += entry.file.size;
      if (!isZip(entry) && !isSystemFile(entry.name)) {
        photos += 1;
        if (entry.file.size > limits.max_photo_bytes) { oversized.push(entry.name); }
      }
    });
    selection.textContent = chosen.length ? format(plural(messages.chosen, chosen.length),
                                                   { count: chosen.length, size: humanSize(bytes) }) : "";
    warnings.textContent = "";
    warnings.hidden = true;
    if (photos > limits.max_photos) {
      addWarning(format(messages.too_many_files, { count: photos, max: limits.max_photos }));
    }
    if (oversized.length) {
      addWarning(format(plural(messages.too_large_files, oversized.length),
                        { count: oversized.length, size: limits.max_photo_bytes / 1e6 }),
                 oversized.slice(0, 20));
    }
    hideError();
  }

  function addWarning(text, names) {
    var paragraph = document.createElement("p");
    paragraph.textContent = text;
    warnings.appendChild(paragraph);
    if (names) {
      var list = document.createElement("ul");
      names.forEach(function (name) {
        var item = document.createElement("li");
        item.textContent = name;
        list.appendChild(item);
      });
      warnings.appendChild(list);
    }
    warnings.hidden = false;
  }

  function showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = false;
  }

  function hideError() {
    errorLine.hidden = true;
    errorLine.textContent = "";
  }

  function setProgress(fraction) {
    var percent = Math.min(100, Math.max(0, Math.round(fraction * 1000) / 10));
    progress.hidden = false;
    progress.setAttribute("aria-valuenow", String(percent));
    progress.dataset.percent = String(percent);
    progress.firstElementChild.style.width = percent + "%";
  }

  // A failed upload leaves no bar behind, because a full bar above the error would read as success.
  function hideProgress() {
    progress.hidden = true;
    progress.setAttribute("aria-valuenow", "0");
    progress.dataset.percent = "0";
    progress.firstElementChild.style.width = "0%";
  }

  ["pick-files", "pick-folder", "pick-camera"].forEach(function (id) {
    var input = document.getElementById(id);
    input.addEventListener("change", function () {
      addFiles(input.files);
      input.value = "";
    });
  });

  // Dropped folders arrive as directory entries that must be walked. readEntries returns at
  // most about 100 entries per call, so it is called until it returns none.
  function readEntry(entry, prefix, files) {
    return new Promise(function (resolve) {
      if (entry.isFile) {
        entry.file(function (file) {
          file.relativePath = prefix + file.name;
          files.push(file);
          resolve();
        }, function () { resolve(); });
      } else if (entry.isDirectory) {
        var reader = entry.createReader();
        var readBatch = function () {
          reader.readEntries(function (entries) {
            if (!entries.length) { resolve(); return; }
            Promise.all(entries.map(function (child) {
              return readEntry(child, prefix + entry.name + "/", files);
            })).then(readBatch);
          }, function () { resolve(); });
        };
        readBatch();
      } else {
        resolve();
      }
    });
  }

  dropzone.addEventListener("dragover", function (event) {
    event.preventDefault();
    dropzone.classList.add("dragging");
  });
  dropzone.addEventListener("dragleave", function () { dropzone.classList.remove("dragging"); });
  dropzone.addEventListener("drop", function (event) {
    event.preventDefault();
    dropzone.classList.remove("dragging");
    var items = event.dataTransfer.items;
    if (!items || !items.length || !items[0].webkitGetAsEntry) {
      addFiles(event.dataTransfer.files);
      return;
    }
    var entries = [];
    for (var i = 0; i < items.length; i++) {
      var entry = items[i].webkitGetAsEntry();
      if (entry) { entries.push(entry); }
    }
    var files = [];
    statusLine.textContent = messages.reading_folder;
    Promise.all(entries.map(function (entry) { return readEntry(entry, "", files); })).then(function () {
      statusLine.textContent = "";
      addFiles(files);
    });
  });

  function makeBatches() {
    var batches = [];
    var current = [];
    var bytes = 0;
    chosen.forEach(function (entry) {
      var full = current.length >= limits.batch_files || (current.length && bytes + entry.file.size > BATCH_BYTES);
      if (full) {
        batches.push(current);
        current = [];
        bytes = 0;
      }
      current.push(entry);
      bytes += entry.file.size;
    });
    if (current.length) { batches.push(current); }
    return batches;
  }

  function errorMessage(xhrOrResponseText, status) {
    try {
      var body = JSON.parse(xhrOrResponseText);
      if (body && body.message) { return body.message; }
    } catch (ignored) { /* not JSON: fall through */ }
    return status === 0 ? messages.network_error : "HTTP " + status;
  }

  function postForm(url, formData, onProgress) {
    return new Promise(function (resolve, reject) {
      var request = new XMLHttpRequest();
      request.open("POST", url);
      request.setRequestHeader("X-CSRFToken", csrfToken);
      request.setRequestHeader("X-Requested-With", "fetch");
      request.setRequestHeader("Accept", "application/json");
      if (onProgress) {
        request.upload.onprogress = function (event) { onProgress(event.loaded); };
      }
      request.onload = function () {
        if (request.status >= 200 && request.status < 300) {
          resolve(JSON.parse(request.responseText));
        } else {
          var error = new Error(errorMessage(request.responseText, request.status));
          error.status = request.status;
          reject(error);
        }
      };
      request.onerror = function () {
        var error = new Error(messages.network_error);
        error.status = 0;
        reject(error);
      };
      request.send(formData);
    });
  }

  // Network failures and server errors (5xx) are retried with a growing pause; a 4xx is final.
  function withRetries(send) {
    var attempt = 0;
    var run = function () {
      attempt += 1;
      return send().catch(function (error) {
        var transient = error.status === 0 || error.status >= 500;
        if (!transient || attempt >= ATTEMPTS) { throw error; }
        statusLine.textContent = messages.retrying;
        return new Promise(function (resolve) { setTimeout(resolve, 1000 * attempt); }).then(run);
      });
    };
    return run();
  }

  function upload() {
    var batches = makeBatches();
    var totalBytes = chosen.reduce(function (sum, entry) { return sum + entry.file.size; }, 0) || 1;
    var sentBytes = 0;
    var sentFiles = 0;
    var session;
    setProgress(0);
    statusLine.textContent = format(plural(messages.uploading, chosen.length), { done: 0, total: chosen.length });

    return postForm(form.dataset.createUrl, new FormData()).then(function (created) {
      session = created;
      var chain = Promise.resolve();
      batches.forEach(function (batch, index) {
        chain = chain.then(function () {
          var batchBytes = batch.reduce(function (sum, entry) { return sum + entry.file.size; }, 0);
          return withRetries(function () {
            var formData = new FormData();
            formData.append("batch", String(index));
            formData.append("names", JSON.stringify(batch.map(function (entry) { return entry.name; })));
            batch.forEach(function (entry) { formData.append("photos", entry.file, "photo"); });
            return postForm(session.files_url, formData, function (loaded) {
              setProgress((sentBytes + Math.min(loaded, batchBytes)) / totalBytes);
            });
          }).then(function () {
            sentBytes += batchBytes;
            sentFiles += batch.length;
            setProgress(sentBytes / totalBytes);
            statusLine.textContent = format(plural(messages.uploading, chosen.length),
                                            { done: sentFiles, total: chosen.length });
          });
        });
      });
      return chain;
    }).then(function () {
      statusLine.textContent = messages.creating_job;
      var finishData = new FormData();
      finishData.append("name", document.getElementById("job-name").value);
      return withRetries(function () { return postForm(session.finish_url, finishData); });
    }).then(function (finished) {
      window.location.assign(finished.job_url);
    }).catch(function (error) {
      if (session && session.cancel_url && error.status !== 503) {
        postForm(session.cancel_url, new FormData()).catch(function () { /* the session expires anyway */ });
      }
      throw error;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (uploading) { return; }
    if (!chosen.length) {
      showError(messages.no_files);
      return;
    }
    uploading = true;
    startButton.disabled = true;
    hideError();
    upload().catch(function (error) {
      uploading = false;
      startButton.disabled = false;
      statusLine.textContent = "";
      hideProgress();
      showError(format(messages.upload_failed, { message: error.message }));
    });
  });
}());
