// The only script: the amplified-difference toggle, and a quiet refresh of the overview.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const amplify = document.getElementById("amplify");
  if (amplify) {
    amplify.addEventListener("change", () => {
      for (const img of document.querySelectorAll("img.after")) {
        img.src = amplify.checked ? img.dataset.diff : img.dataset.cloaked;
        const caption = img.parentElement.querySelector(".after-caption");
        if (caption) caption.textContent = amplify.checked ? "Difference ×10" : "Safe copy";
      }
    });
  }
  if (document.body.dataset.page === "overview") {
    setTimeout(() => { if (!document.hidden) location.reload(); }, 15000);
  }
});
