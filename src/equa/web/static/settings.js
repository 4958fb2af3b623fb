// Settings page: asks for confirmation before forms marked data-confirm are sent (team removals).
"use strict";

window.EquaConfirm = (message) => {
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog || typeof dialog.showModal !== "function") {
    return Promise.resolve(window.confirm(message));
  }
  dialog.querySelector("#confirm-text").textContent = message;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    // Cancel has focus first: pressing Enter by habit must not confirm a removal.
    dialog.querySelector('button[value="cancel"]').focus();
  });
};

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.confirm || form.dataset.confirmed === "yes") {
    return;
  }
  event.preventDefault();
  if (await window.EquaConfirm(form.dataset.confirm)) {
    form.dataset.confirmed = "yes";
    form.requestSubmit();
  }
});
