// The only script of the log browser: "expand all / collapse all" on a session tree. Pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const tools = document.querySelector(".tree-tools");
  if (!tools) return;
  tools.hidden = false;
  tools.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-tree]");
    if (!button) return;
    const open = button.dataset.tree === "open";
    document.querySelectorAll(".tree details").forEach((node) => { node.open = open; });
  });
});
