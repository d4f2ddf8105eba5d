// A modal yes/no question (the native <dialog>: focus moves in, Escape says no, focus returns to the opener).
import { $ } from "./util.js";

export function confirmDialog(text, yes = "Delete") {
  const dialog = $("#confirm");
  const opener = document.activeElement;
  $("#confirm-text").textContent = text;
  $("#confirm-yes").textContent = yes;
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-no").focus();  // the safe answer first
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (opener && opener.isConnected && !opener.closest("[hidden]")) opener.focus();
      resolve(dialog.returnValue === "ok");
    }, { once: true });
  });
}
