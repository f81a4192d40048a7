// Bulwark console: light progressive enhancement. Every page works without this file.
"use strict";

(function () {
  // Pages showing work in progress (ingestion, a subject-access request) refresh themselves.
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    var seconds = Number(refresh.getAttribute("data-refresh")) || 3;
    window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }

  // Destructive forms ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // Upload with progress: the same multipart POST the form would send, over XHR.
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    var bar = form.querySelector("[data-progress]");
    var status = form.querySelector("[data-upload-status]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("x-csrf-token", form.querySelector("[name=_csrf_token]").value);
      bar.hidden = false;
      bar.value = 0;
      status.textContent = "Uploading…";
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          bar.value = Math.round((e.loaded / e.total) * 100);
          status.textContent = "Uploading… " + bar.value + "%";
        }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status < 400 && xhr.responseURL) {
          bar.value = 100;
          status.textContent = "Uploaded; ingestion started.";
          window.location.assign(xhr.responseURL);
        } else {
          // The server answered with the page and its reason: show the reason.
          var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
          var reason = page.querySelector("[role=alert]");
          bar.hidden = true;
          status.textContent = reason ? reason.textContent : "The upload failed (" + xhr.status + ").";
        }
      });
      xhr.addEventListener("error", function () { status.textContent = "The upload failed: network error."; });
      xhr.send(new FormData(form));
    });
  });
})();
