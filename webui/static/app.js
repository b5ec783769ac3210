// Progressive enhancement only: the pages read the same without it.
// Infinite scroll: when the "Older events" link comes into view, fetch that page and append
// its events (the link is a cursor, so nothing repeats and nothing is skipped).
(function () {
  "use strict";
  function more() {
    var link = document.getElementById("more");
    var list = document.getElementById("events");
    if (!link || !list || !("IntersectionObserver" in window)) return;
    var busy = false;
    var observer = new IntersectionObserver(function (entries) {
      if (busy || !entries.some(function (e) { return e.isIntersecting; })) return;
      busy = true;
      fetch(link.href, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var items = doc.querySelectorAll("#events > li");
          items.forEach(function (li) { list.appendChild(document.adoptNode(li)); });
          var next = doc.getElementById("more");
          if (next) {
            link.href = next.href;
            busy = false;
            // Observe afresh: if the link is still in view, that loads the next page too.
            observer.unobserve(link);
            observer.observe(link);
          }
          else { observer.disconnect(); link.parentNode.remove(); }
        })
        .catch(function () { observer.disconnect(); });  // the plain link still works
    }, { rootMargin: "400px" });
    observer.observe(link);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", more);
  else more();
})();
