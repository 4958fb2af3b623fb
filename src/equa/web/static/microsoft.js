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

// The answer to the admin's last action stays on screen while the parts that action changed (members, flags, the
// status card) re-render around it and move it: after each swap, the newest answer is brought back into view.
const feedbackSeen = new WeakMap();
let newestFeedback = null;
let newestFeedbackAt = 0;
document.addEventListener("htmx:afterSettle", () => {
  for (const area of document.querySelectorAll("#microsoft .ms-feedback")) {
    const text = area.textContent.trim();
    if (text && feedbackSeen.get(area) !== text) {
      newestFeedback = area;
      newestFeedbackAt = Date.now();
    }
    feedbackSeen.set(area, text);
  }
  if (newestFeedback && newestFeedback.isConnected && Date.now() - newestFeedbackAt < 3000) {
    newestFeedback.scrollIntoView({ block: "nearest" });
  }
});
