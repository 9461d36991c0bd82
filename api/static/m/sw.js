/* Caretaker's phone page service worker (served as /m/sw.js, scope /m/): keeps the app
   shell so the page opens with no network. The page itself (/m/) is asked of the network
   first and kept when it answers; its assets come from the cache named after the shell's
   fingerprint. Scans are not touched here: the page queues them in IndexedDB. */
"use strict";
const VERSION = "__VERSION__";
const SHELL = __SHELL__;
const CACHE = "caretaker-m-" + VERSION;
const PAGE = "/m/";
const NETWORK_WAIT_MS = 6000; // a network that hangs (one bar of signal) falls back too

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL);
    // The page that registered this worker was loaded before it existed: keep it now.
    const page = await fetch(PAGE, {redirect: "manual", credentials: "same-origin"});
    if (page.ok && page.type === "basic") await cache.put(PAGE, page);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith("caretaker-m-") && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("network timeout")), ms);
    promise.then((value) => { clearTimeout(timer); resolve(value); },
                 (error) => { clearTimeout(timer); reject(error); });
  });
}

async function page(request) {
  try {
    const response = await withTimeout(fetch(request), NETWORK_WAIT_MS);
    // A login redirect (an opaque redirect here) or an error page is shown, never kept.
    if (response.ok && response.type === "basic" && !response.redirected) {
      const cache = await caches.open(CACHE);
      await cache.put(PAGE, response.clone());
    }
    return response;
  } catch (error) {
    const kept = await caches.match(PAGE, {cacheName: CACHE});
    if (kept) return kept;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === PAGE) {
    event.respondWith(page(request));
  } else if (SHELL.includes(url.pathname + url.search)) {
    event.respondWith(caches.match(request, {cacheName: CACHE})
      .then((kept) => kept || fetch(request)));
  }
});

// The page asks the worker to forget the kept page when its user logs out.
self.addEventListener("message", (event) => {
  if (event.data === "logout") {
    event.waitUntil(caches.open(CACHE).then((cache) => cache.delete(PAGE)));
  }
});
