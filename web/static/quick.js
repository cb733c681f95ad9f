// Quick test: send one photo, then poll for the worker's result and show it on the same page.
(function () {
  "use strict";

  var form = document.getElementById("quick-form");
  if (!form || !window.fetch || !window.FormData) {
    return;
  }
  var messages = JSON.parse(document.getElementById("messages").textContent);
  var quickMessages = JSON.parse(document.getElementById("quick-messages").textContent);
  var csrfToken = form.querySelector("input[name=csrf_token]").value;
  var preview = document.getElementById("quick-preview");
  var answer = document.getElementById("quick-answer");
  var statusLine = document.getElementById("quick-status");
  var errorLine = document.getElementById("quick-error");
  var result = document.getElementById("quick-result");
  var chosenLine = document.getElementById("quick-chosen");
  var submitButton = document.getElementById("quick-submit");
  var POLL_MS = 1000;
  var SLOW_MS = 10000;
  var GIVE_UP_MS = 120000;
  var photo = null;
  var previewUrl = null;

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : match;
    });
  }

  function showError(text) {
    answer.hidden = false;
    statusLine.textContent = "";
    errorLine.textContent = text;
    errorLine.hidden = false;
    submitButton.disabled = false;
  }

  function choose(file) {
    photo = file;
    chosenLine.textContent = file.name;
    if (previewUrl) { URL.revokeObjectURL(previewUrl); }
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
    send();
  }

  ["quick-photo", "quick-camera"].forEach(function (id) {
    var input = document.getElementById(id);
    input.addEventListener("change", function () {
      if (input.files.length) { choose(input.files[0]); }
      input.value = "";
    });
  });

  function showAnswer(body) {
    if (body.status !== "ok") {
      showError(format(quickMessages.failed, { reason: body.error || body.error_code || "" }));
      return;
    }
    statusLine.textContent = "";
    document.getElementById("quick-class").textContent = body.top_label;
    document.getElementById("quick-probability").textContent =
      format(quickMessages.probability, { value: (body.top_probability * 100).toFixed(1) + "%" });
    document.getElementById("quick-description").textContent = body.description;
    var bars = document.getElementById("quick-bars");
    var template = document.getElementById("bar-template");
    bars.textContent = "";
    body.probabilities.forEach(function (item, index) {
      var row = template.content.firstElementChild.cloneNode(true);
      var percent = (item.probability * 100).toFixed(1) + "%";
      if (index === 0) { row.className = "top"; }
      row.querySelector(".bar-label").textContent = item.label;
      row.querySelector(".bar-fill").style.width = percent;
      row.querySelector(".bar-value").textContent = percent;
      bars.appendChild(row);
    });
    result.hidden = false;
    submitButton.disabled = false;
  }

  function poll(url, started) {
    fetch(url, { headers: { "Accept": "application/json", "X-Requested-With": "fetch" }, cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        if (body.error) { showError(body.message); return; }
        if (body.status !== "pending") { showAnswer(body); return; }
        var waited = Date.now() - started;
        if (waited > GIVE_UP_MS) { showError(messages.gave_up); return; }
        statusLine.textContent = waited > SLOW_MS ? messages.still_waiting : messages.waiting_worker;
        setTimeout(function () { poll(url, started); }, POLL_MS);
      })
      .catch(function () { setTimeout(function () { poll(url, started); }, POLL_MS * 3); });
  }

  function send() {
    if (!photo) { return; }
    var formData = new FormData();
    formData.append("photo", photo, photo.name || "photo.jpg");
    answer.hidden = false;
    result.hidden = true;
    errorLine.hidden = true;
    submitButton.disabled = true;
    statusLine.textContent = messages.waiting_worker;
    fetch(form.action, {
      method: "POST",
      body: formData,
      headers: { "X-CSRFToken": csrfToken, "X-Requested-With": "fetch", "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw new Error(body.message || "HTTP " + response.status); }
        poll(body.result_url, Date.now());
      });
    }).catch(function (error) {
      showError(error.message || messages.network_error);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!photo) {
      showError(messages.no_files);
      return;
    }
    send();
  });
}());
