// A table that scrolls sideways (hub.css, small screens) takes the keyboard focus, so that it can be scrolled
// without a mouse; one that fits does not, so as not to add a useless stop to the Tab order.
"use strict";

function focusableScrollingTables() {
  for (const table of document.querySelectorAll("main table")) {
    if (table.scrollWidth > table.clientWidth) {
      table.tabIndex = 0;
    } else {
      table.removeAttribute("tabindex");
    }
  }
}

document.addEventListener("DOMContentLoaded", focusableScrollingTables);
window.addEventListener("resize", focusableScrollingTables);
