// Microsoft 365 section: its widgets are server-rendered partials that htmx loads and swaps (see the hx-*
// attributes); this file only asks the page's confirmation dialog before actions marked hx-confirm.
"use strict";

// The control's twin after a re-render: the same action on the same thing (htmx drops a request whose element has
// left the page).
const REQUEST_ATTRIBUTES = ["hx-delete", "hx-post", "hx-put", "hx-patch"];
function twinOf(element) {
  const attribute = REQUEST_ATTRIBUTES.find((name) => element.hasAttribute(name));
  if (!attribute) return null;
  const path = element.getAttribute(attribute);
  for (const candidate of document.querySelectorAll(`#microsoft [${attribute}]`)) {
    if (candidate.getAttribute(attribute) === path) return candidate;
  }
  return null;
}

// Confirmed by the admin while the control was re-rendered (the members table reloads after other actions): the
// confirmation holds for its twin, so a removal confirmed in the dialog is not silently lost.
const confirmedTwins = new WeakSet();
document.addEventListener("htmx:confirm", (event) => {
  const question = event.detail.question;
  if (!question) return;
  event.preventDefault();
  if (confirmedTwins.has(event.detail.elt)) {
    confirmedTwins.delete(event.detail.elt);
    event.detail.issueRequest(true);
    return;
  }
  window.EquaConfirm(question).then((ok) => {
    if (!ok) return;
    const element = event.detail.elt;
    if (element.isConnected) {
      event.detail.issueRequest(true);
      return;
    }
    const twin = twinOf(element);
    if (twin) {
      confirmedTwins.add(twin);
      twin.click();
    }
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
