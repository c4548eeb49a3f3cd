// Progressive enhancement only: every page works without this file.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button || !navigator.clipboard) return;
  var target = document.getElementById(button.getAttribute("data-copy"));
  if (!target) return;
  navigator.clipboard.writeText(target.textContent.trim()).then(function () {
    var status = document.getElementById(button.getAttribute("data-copy") + "-status");
    if (status) status.textContent = "Copied to the clipboard.";
  });
});
