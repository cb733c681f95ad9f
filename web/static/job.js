// Job page: poll the status endpoint and move the progress bar until the job finishes, then keep the
// job's age current with a slow poll.
(function () {
  "use strict";

  var section = document.getElementById("job");
  if (!section || !window.fetch) {
    return;
  }
  var messages = JSON.parse(document.getElementById("messages").textContent);
  var progress = document.getElementById("progress");
  var INTERVAL_MS = 1000;
  var MAX_INTERVAL_MS = 10000;
  // "Created 3 minutes ago" changes by the minute, so a finished job's page polls this often.
  var AGE_INTERVAL_MS = 60000;
  var interval = INTERVAL_MS;

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : match;
    });
  }

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element) { element.textContent = text; }
  }

  function show(status) {
    var percent = status.percent;
    progress.setAttribute("aria-valuenow", String(percent));
    progress.dataset.percent = String(percent);
    progress.firstElementChild.style.width = percent + "%";
    setText("percent", percent.toFixed(1) + "%");
    setText("count-total", status.total);
    setText("count-done", status.done);
    setText("count-pending", status.pending);
    setText("count-failed", status.failed);
    setText("count-skipped", status.skipped);
    setText("rate", status.rate_text || "");
    setText("eta", status.eta_text ? format(messages.eta, { time: status.eta_text }) : (status.finished ? messages.finished : ""));
    var badge = document.getElementById("job-status");
    badge.textContent = status.status_label;
    badge.className = "badge status-" + status.status;
    setText("created-age", status.created_age);
  }

  function poll() {
    fetch(section.dataset.statusUrl, {
      headers: { "Accept": "application/json", "X-Requested-With": "fetch" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (status) {
      interval = INTERVAL_MS;
      show(status);
      if (status.finished !== (section.dataset.finished === "true")) {
        // Reload once, so the page offers the actions of the job's new state: retry when it has finished,
        // cancel when a retry from another page has started it again.
        window.location.reload();
        return;
      }
      setTimeout(poll, status.finished ? AGE_INTERVAL_MS : interval);
    }).catch(function () {
      setText("eta", messages.status_error);
      interval = Math.min(MAX_INTERVAL_MS, interval * 2);
      setTimeout(poll, interval);
    });
  }

  setTimeout(poll, section.dataset.finished === "true" ? AGE_INTERVAL_MS : INTERVAL_MS / 2);
}());
