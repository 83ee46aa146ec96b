// Times in the viewer's zone, and live updates when served: the page's own URL is fetched again
// and its <main> swapped in, so a view updates without a reload.
"use strict";
function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) el.textContent = at.toLocaleString();
  }
  const now = Date.now();
  for (const el of root.querySelectorAll("[data-ends-at]")) {
    const left = Math.round((Date.parse(el.getAttribute("data-ends-at")) - now) / 1000);
    el.textContent = left > 0 ? left + " s left" : "ending";
  }
}
localTimes(document);
const refresh = Number(document.body.getAttribute("data-refresh-seconds") || 0);
if (refresh > 0 && location.protocol.startsWith("http")) {
  setInterval(async () => {
    try {
      const answer = await fetch(location.pathname + location.search, { cache: "no-store" });
      if (!answer.ok) return;
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.querySelector("main");
      const main = document.querySelector("main");
      if (fresh && main && fresh.innerHTML !== main.innerHTML) {
        main.innerHTML = fresh.innerHTML;
      }
      localTimes(document);
      document.body.setAttribute("data-updated", new Date().toISOString());
    } catch (e) {
      document.body.setAttribute("data-offline", "true");
    }
  }, refresh * 1000);
}
