// Microsoft 365 section: its widgets are server-rendered partials that htmx loads and swaps (see the hx-*
// attributes); this file only asks the page's confirmation dialog before actions marked hx-confirm.
"use strict";

document.addEventListener("htmx:confirm", (event) => {
  const question = event.detail.question;
  if (!question) return;
  event.preventDefault();
  window.EquaConfirm(question).then((ok) => {
    if (ok) event.detail.issueRequest(true);
  });
});
