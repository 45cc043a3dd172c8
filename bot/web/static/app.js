// The run page's one script: follow the run live (server-sent events). The server sends
// the panes' HTML whole, already escaped and checked (bot/web/view.py); nothing here
// builds markup from data. Without this script the page is complete as served.
"use strict";
(function () {
  const main = document.getElementById("main");
  const url = main && main.dataset.live;
  if (!url || !window.EventSource) return;
  const source = new EventSource(url);
  source.addEventListener("panes", function (event) {
    const open = Array.from(main.querySelectorAll("details[open]"), (d) => d.id);
    main.innerHTML = event.data;
    open.forEach((id) => { const d = id && document.getElementById(id); if (d) d.open = true; });
    main.dataset.updated = String(Date.now());
  });
})();
