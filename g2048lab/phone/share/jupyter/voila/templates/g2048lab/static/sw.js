// g2048lab service worker: caches the app shell and the last summaries; never the kernel
// API or websockets. When the server is unreachable, pages open offline.html, which reads
// the last summaries straight from the summary cache (no network needed): the latest run's
// (with the runs list) under summary.json, a run's under summary.json?run=NAME, so that a
// deep link /?run=NAME opened offline shows that run.
const SHELL_CACHE = "g2048lab-shell-v3";
const SUMMARY_CACHE = "g2048lab-summary"; // offline.html reads it
const NAVIGATION_TIMEOUT_MS = 20000; // no response headers by then: show the offline page
const scope = new URL(self.registration.scope);
const at = (path) => new URL(path, scope).href;
const STATIC = "voila/templates/g2048lab/static/";
const SHELL = [
  "offline.html",
  "manifest.webmanifest",
  STATIC + "icon-192.png",
  STATIC + "icon-512.png",
  STATIC + "icon-maskable-512.png",
  STATIC + "apple-touch-icon.png",
].map(at);
const SUMMARY = at("summary.json");
const OFFLINE = at("offline.html");

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL_CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  const keep = [SHELL_CACHE, SUMMARY_CACHE];
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => !keep.includes(k)).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

// The cache key of a summary request: summary.json, or summary.json?run=NAME (no token).
function summaryKey(url) {
  const run = url.searchParams.get("run");
  return run ? SUMMARY + "?run=" + encodeURIComponent(run) : SUMMARY;
}

// Keep a summary only when it names a run: a login page or an empty store never replaces
// the last good one. The body is read in full before it is stored.
async function remember(response, key) {
  try {
    const summary = await response.json();
    if (!summary || !summary.run) return;
    const cache = await caches.open(SUMMARY_CACHE);
    const body = JSON.stringify(summary);
    const headers = { "Content-Type": "application/json" };
    await cache.put(key, new Response(body, { headers }));
    if (key !== SUMMARY) {  // a run's summary also carries the runs list: keep it as latest
      const latest = await cache.match(SUMMARY);
      if (!latest) await cache.put(SUMMARY, new Response(body, { headers }));
    }
  } catch (error) {
    console.warn("g2048lab: summary not kept:", error);
  }
}

async function lastSummary(key) {
  const hit = await caches.match(key, { cacheName: SUMMARY_CACHE });
  return hit || new Response("{}", { headers: { "Content-Type": "application/json" } });
}

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out")), ms);
    promise.then((value) => { clearTimeout(timer); resolve(value); },
                 (error) => { clearTimeout(timer); reject(error); });
  });
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== scope.origin) return;
  const path = url.pathname.slice(scope.pathname.length - 1);
  // kernel API, websockets, login: always the network, never cached
  if (path.startsWith("/api/") || path.startsWith("/voila/api/") || path.startsWith("/login")
      || request.headers.get("upgrade")) return;
  if (url.href.split("?")[0] === SUMMARY) {
    const key = summaryKey(url);
    const network = fetch(request);
    event.waitUntil(network.then((r) => (r.ok ? remember(r.clone(), key) : null)).catch(() => null));
    const last = () => lastSummary(key);
    event.respondWith(network.then((r) => (r.ok ? r : last())).catch(last));
    return;
  }
  if (request.mode === "navigate") {
    event.respondWith(
      withTimeout(fetch(request), NAVIGATION_TIMEOUT_MS)
        .catch(() => caches.match(OFFLINE, { cacheName: SHELL_CACHE }))
    );
    return;
  }
  if (SHELL.includes(url.href)) {
    event.respondWith(caches.match(url.href).then((hit) => hit || fetch(request)));
  }
});
