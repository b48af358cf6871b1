// Forms that end something (complete, archive, declare a winner) ask before they are sent:
// `data-confirm` holds the question. Without JavaScript they are sent as they are.
(function () {
  "use strict";
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();
