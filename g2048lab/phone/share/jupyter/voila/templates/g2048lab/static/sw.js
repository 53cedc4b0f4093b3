// g2048lab service worker: caches the app shell and the latest run summary; never the
// kernel API or websockets. When the server is unreachable, pages open offline.html, which
// reads the last summary straight from the summary cache (no network needed).
const SHELL_CACHE = "g2048lab-shell-v2";
const SUMMARY_CACHE = "g2048lab-summary"; // one entry; offline.html reads it
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

// Keep a summary only when it names a run: a login page or an empty store never replaces
// the last good one. The body is read in full before it is stored.
async function remember(response) {
  try {
    const summary = await response.json();
    if (!summary || !summary.run) return;
    const cache = await caches.open(SUMMARY_CACHE);
    await cache.put(SUMMARY, new Response(JSON.stringify(summary), {
      headers: { "Content-Type": "application/json" },
    }));
  } catch (error) {
    console.warn("g2048lab: summary not kept:", error);
  }
}

async function lastSummary() {
  const hit = await caches.match(SUMMARY, { cacheName: SUMMARY_CACHE });
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
    const network = fetch(request);
    event.waitUntil(network.then((r) => (r.ok ? remember(r.clone()) : null)).catch(() => null));
    event.respondWith(network.then((r) => (r.ok ? r : lastSummary())).catch(lastSummary));
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
