// g2048lab service worker: caches the app shell and the latest run summary; never the
// kernel API or websockets. When the server is unreachable, pages open offline.html.
const CACHE = "g2048lab-v1";
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
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== scope.origin) return;
  const path = url.pathname.slice(scope.pathname.length - 1);
  // kernel API, websockets, login: always the network, never cached
  if (path.startsWith("/api/") || path.startsWith("/voila/api/") || path.startsWith("/login")
      || request.headers.get("upgrade")) return;
  if (url.href.split("?")[0] === SUMMARY) {
    event.respondWith(
      fetch(request).then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(SUMMARY, copy));
        }
        return response;
      }).catch(() => caches.match(SUMMARY).then((hit) => hit || new Response(
        "{}", { headers: { "Content-Type": "application/json" } })))
    );
    return;
  }
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(() => caches.match(OFFLINE)));
    return;
  }
  if (SHELL.includes(url.href)) {
    event.respondWith(caches.match(url.href).then((hit) => hit || fetch(request)));
  }
});
