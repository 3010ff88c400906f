// Applied before the page paints: the theme the reviewer chose last (else the system's).
(function () {
  try {
    var t = localStorage.getItem("gate-theme");
    if (t === "dark" || t === "light") document.documentElement.setAttribute("data-theme", t);
  } catch (e) { /* storage disabled: follow the system */ }
})();
