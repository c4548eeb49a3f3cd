// Forms with data-confirm ask before they are sent. A file rather than an onsubmit attribute:
// the shop's pages run scripts from the shop only (its Content-Security-Policy).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
