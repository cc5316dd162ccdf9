/*
 * Nudge browser SDK, served by `nudge serve` at /sdk.js. Plain ES2017, no
 * dependencies, no build step. It sends behavioural events and profile
 * updates to the Nudge HTTP API with the public write key, and subscribes the
 * browser to Web Push through the service worker at /sw.js.
 *
 *   <script src="https://nudge.example/sdk.js"></script>
 *   <script>Nudge.init({ writeKey: 'wk_...' });</script>
 *
 * API (window.Nudge):
 *   init({ writeKey, apiBase?, userId?, trackPageViews? = true, trackClicks? = true,
 *          swPath? = '/sw.js', pushTimeoutMs? = 30000, onRequest? })
 *       apiBase defaults to the origin this script was loaded from. pushTimeoutMs bounds
 *       enablePush's wait for the service worker and the push service (a browser
 *       without a reachable push service, such as headless Chromium, never answers
 *       pushManager.subscribe). onRequest(info)
 *       is called after every API request with { method, path, body, status } or
 *       { ..., error } (the demo page shows them). A second init only updates options.
 *   identify(userId, profileSet?)  -> Promise: POST /v1/profiles {"user_id", "set"}
 *       and remember the id (localStorage "nudge_user_id"; before identify an
 *       anonymous "anon-<random>" id is generated and kept there).
 *   track(name, props?)            queue one event; batches go to POST /v1/events
 *       every second, at 20 events, and when the page is hidden or left.
 *   flush()                        -> Promise: send the queue now.
 *   enablePush()                   -> Promise<PushSubscription|null>; call it from a
 *       user gesture. Registers the service worker, asks for permission, subscribes
 *       with the server's VAPID key and POSTs /v1/subscriptions.
 *   disablePush()                  -> Promise<boolean>: unsubscribe and DELETE /v1/subscriptions.
 *   userId()                       the current user id.
 *   segments()                     -> Promise<string[]|null>: the public saved segments the
 *       current user is in (GET /v1/users/{id}/segments), for personalizing the page;
 *       null when the server could not be asked.
 *
 * Automatic events (names are part of the contract; segments refer to them):
 *   "Page Viewed"     on init (and on a back/forward-cache restore) when trackPageViews:
 *                     props url, path, title, referrer.
 *   "Page Left"       on pagehide when trackPageViews: props url, path, seconds
 *                     (seconds the page was open, one decimal).
 *   "Element Clicked" on a click inside an element with a data-nudge-track attribute
 *                     (always: the markup opts in) and, when trackClicks, on any link:
 *                     props text (first 100 characters), href, id, and label (the
 *                     data-nudge-track value, when not empty).
 *
 * Service worker: the worker is registered as `${swPath}?api=<apiBase>&key=<writeKey>`
 * with scope '/' (the write key is public by design). The SDK tells the worker the
 * current user id with postMessage({type: 'nudge:user', user_id}); the worker keeps it
 * in IndexedDB for pushsubscriptionchange, when no page may be open.
 */
(function () {
  'use strict';

  var BATCH_SIZE = 20;
  var FLUSH_MS = 1000;
  var MAX_QUEUE = 500;
  var STORAGE_KEY = 'nudge_user_id';

  var script = document.currentScript;
  var scriptOrigin = script && script.src ? new URL(script.src, location.href).origin : location.origin;

  var PUSH_TIMEOUT_MS = 30000;

  var cfg = null;
  var queue = [];
  var timer = null;
  var retryMs = FLUSH_MS;
  var memoryUserId = null;
  var pageStart = Date.now();
  var pageLeftSent = false;

  function randomHex(bytes) {
    var a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join('');
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    var h = randomHex(16);
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  function loadUserId() {
    try { return localStorage.getItem(STORAGE_KEY); } catch (e) { return memoryUserId; }
  }

  function storeUserId(id) {
    memoryUserId = id;
    try { localStorage.setItem(STORAGE_KEY, id); } catch (e) { /* private mode: memory only */ }
  }

  function userId() {
    var id = memoryUserId || loadUserId();
    if (!id) {
      id = 'anon-' + randomHex(8);
      storeUserId(id);
    }
    memoryUserId = id;
    return id;
  }

  function report(info) {
    if (cfg && typeof cfg.onRequest === 'function') {
      try { cfg.onRequest(info); } catch (e) { /* the hook's own problem */ }
    }
  }

  // One JSON request to the API with the write key. Resolves to the Response; never rejects
  // (network errors resolve to null) so callers can fire and forget.
  function request(method, path, body, extra) {
    var headers = { 'content-type': 'application/json', authorization: 'Bearer ' + cfg.writeKey };
    var init = Object.assign({ method: method, headers: headers, keepalive: true }, extra || {});
    if (body !== undefined) init.body = JSON.stringify(body);
    return fetch(cfg.apiBase + path, init).then(function (res) {
      report({ method: method, path: path, body: body, status: res.status });
      return res;
    }, function (err) {
      report({ method: method, path: path, body: body, error: String(err) });
      return null;
    });
  }

  function schedule(ms) {
    if (timer === null) timer = setTimeout(function () { timer = null; flush(); }, ms);
  }

  function flush() {
    if (!cfg || queue.length === 0) return Promise.resolve();
    if (timer !== null) { clearTimeout(timer); timer = null; }
    var sends = [];
    while (queue.length > 0) sends.push(sendBatch(queue.splice(0, BATCH_SIZE)));
    return Promise.all(sends).then(function () {});
  }

  function sendBatch(batch) {
    return request('POST', '/v1/events', batch).then(function (res) {
      if (res === null || res.status >= 500 || res.status === 429) {
        // Transient: put the batch back (ids make the retry idempotent) and back off.
        queue = batch.concat(queue).slice(0, MAX_QUEUE);
        retryMs = Math.min(retryMs * 2, 30000);
        schedule(retryMs);
      } else {
        retryMs = FLUSH_MS; // delivered, or refused for good (a 4xx would fail again)
      }
    });
  }

  function track(name, props) {
    if (typeof name !== 'string' || name === '') throw new TypeError('Nudge.track: name must be a non-empty string');
    queue.push({ user_id: userId(), name: name, props: props || {}, ts: Date.now(), id: uuid() });
    if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
    if (!cfg) return; // sent after init
    if (queue.length >= BATCH_SIZE) flush(); else schedule(FLUSH_MS);
  }

  function pageProps() {
    return { url: location.href, path: location.pathname, title: document.title, referrer: document.referrer };
  }

  function onPageHide() {
    if (cfg.trackPageViews && !pageLeftSent) {
      pageLeftSent = true;
      var seconds = Math.round((Date.now() - pageStart) / 100) / 10;
      track('Page Left', { url: location.href, path: location.pathname, seconds: seconds });
    }
    flush();
  }

  function onPageShow(e) {
    if (e.persisted) { // restored from the back/forward cache: a new view of the page
      pageStart = Date.now();
      pageLeftSent = false;
      if (cfg.trackPageViews) track('Page Viewed', pageProps());
    }
  }

  function onClick(e) {
    var el = e.target && e.target.closest ? e.target : (e.target && e.target.parentElement);
    if (!el) return;
    var marked = el.closest('[data-nudge-track]');
    var link = cfg.trackClicks ? el.closest('a[href]') : null;
    var target = marked || link;
    if (!target) return;
    var props = {
      text: (target.innerText || target.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 100),
      href: target.href || target.getAttribute('href') || '',
      id: target.id || '',
    };
    var label = target.getAttribute('data-nudge-track');
    if (label) props.label = label;
    track('Element Clicked', props);
  }

  // ---- Web Push ----

  function b64uToBytes(s) {
    var b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function sameBytes(buffer, bytes) {
    if (!buffer) return false;
    var a = new Uint8Array(buffer);
    if (a.length !== bytes.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== bytes[i]) return false;
    return true;
  }

  function pushSupported() {
    return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
  }

  function swUrl() {
    return cfg.swPath + '?api=' + encodeURIComponent(cfg.apiBase) + '&key=' + encodeURIComponent(cfg.writeKey);
  }

  async function vapidKey() {
    // The key is public: asked for without credentials, then with the write key if refused.
    var url = cfg.apiBase + '/v1/webpush/vapid-public-key';
    var res = await fetch(url);
    if (res.status === 401 || res.status === 403) {
      res = await fetch(url, { headers: { authorization: 'Bearer ' + cfg.writeKey } });
    }
    if (!res.ok) throw new Error('Nudge: GET /v1/webpush/vapid-public-key answered ' + res.status);
    return (await res.json()).key;
  }

  // Rejects with a TimeoutError when `promise` has not settled after cfg.pushTimeoutMs.
  function bounded(promise, what) {
    var ms = cfg.pushTimeoutMs;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        var e = new Error('Nudge: ' + what + ' did not finish within ' + ms + ' ms');
        e.name = 'TimeoutError';
        reject(e);
      }, ms);
      promise.then(function (v) { clearTimeout(timer); resolve(v); },
        function (e) { clearTimeout(timer); reject(e); });
    });
  }

  function tellWorker(reg) {
    var worker = reg && (reg.active || reg.waiting || reg.installing);
    if (worker) worker.postMessage({ type: 'nudge:user', user_id: userId() });
  }

  function postSubscription(sub) {
    return request('POST', '/v1/subscriptions', { user_id: userId(), subscription: sub.toJSON() });
  }

  async function enablePush() {
    requireInit('enablePush');
    if (!pushSupported()) return null;
    await navigator.serviceWorker.register(swUrl(), { scope: '/' });
    if ((await Notification.requestPermission()) !== 'granted') return null;
    var reg = await bounded(navigator.serviceWorker.ready, 'service worker activation'); // subscribe needs it active
    tellWorker(reg);
    var key = b64uToBytes(await vapidKey());
    var sub = await reg.pushManager.getSubscription();
    if (sub && !sameBytes(sub.options.applicationServerKey, key)) { // VAPID key rotated
      await request('DELETE', '/v1/subscriptions', { endpoint: sub.endpoint });
      await sub.unsubscribe();
      sub = null;
    }
    // A subscription that arrives after the timeout is POSTed by the next init (refreshPush).
    if (!sub) {
      sub = await bounded(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
        'pushManager.subscribe');
    }
    await postSubscription(sub);
    return sub;
  }

  async function disablePush() {
    requireInit('disablePush');
    if (!pushSupported()) return false;
    var reg = await navigator.serviceWorker.getRegistration('/');
    var sub = reg && (await reg.pushManager.getSubscription());
    if (!sub) return false;
    var endpoint = sub.endpoint;
    await sub.unsubscribe();
    await request('DELETE', '/v1/subscriptions', { endpoint: endpoint });
    return true;
  }

  // On every page load with permission granted: re-POST the existing subscription (the
  // server's liveness signal) and remind the worker of the user id.
  async function refreshPush() {
    if (!pushSupported() || Notification.permission !== 'granted') return;
    var reg = await navigator.serviceWorker.getRegistration('/');
    if (!reg) return;
    tellWorker(reg);
    var sub = await reg.pushManager.getSubscription();
    if (sub) await postSubscription(sub);
  }

  // ---- lifecycle ----

  function requireInit(what) {
    if (!cfg) throw new Error('Nudge.' + what + ': call Nudge.init({ writeKey }) first');
  }

  // Options over `base` (defaults, or the current configuration on a second init).
  function configure(options, base) {
    function pick(name, fallback) { return options[name] !== undefined ? options[name] : fallback; }
    return {
      apiBase: String(pick('apiBase', base.apiBase)).replace(/\/+$/, ''),
      writeKey: pick('writeKey', base.writeKey),
      trackPageViews: pick('trackPageViews', base.trackPageViews) !== false,
      trackClicks: pick('trackClicks', base.trackClicks) !== false,
      swPath: pick('swPath', base.swPath),
      pushTimeoutMs: options.pushTimeoutMs > 0 ? options.pushTimeoutMs : base.pushTimeoutMs,
      onRequest: pick('onRequest', base.onRequest),
    };
  }

  function init(options) {
    options = options || {};
    if (cfg) { // already initialised: update options only
      cfg = configure(options, cfg);
      if (options.userId) storeUserId(options.userId);
      return window.Nudge;
    }
    if (!options.writeKey) throw new Error('Nudge.init: writeKey is required');
    cfg = configure(options, {
      apiBase: scriptOrigin,
      trackPageViews: true,
      trackClicks: true,
      swPath: '/sw.js',
      pushTimeoutMs: PUSH_TIMEOUT_MS,
    });
    if (options.userId) storeUserId(options.userId);
    addEventListener('pagehide', onPageHide);
    addEventListener('pageshow', onPageShow);
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'hidden') flush();
    });
    document.addEventListener('click', onClick, true);
    if (cfg.trackPageViews) track('Page Viewed', pageProps());
    if (queue.length > 0) schedule(0);
    refreshPush().catch(function () { /* best effort */ });
    return window.Nudge;
  }

  async function identify(id, profileSet) {
    requireInit('identify');
    if (typeof id !== 'string' || id === '') throw new TypeError('Nudge.identify: userId must be a non-empty string');
    var changed = id !== userId();
    storeUserId(id);
    var res = await request('POST', '/v1/profiles', { user_id: id, set: profileSet || {} });
    if (changed) await refreshPush().catch(function () {}); // link the subscription to the new id
    return res !== null && res.ok;
  }

  async function segments() {
    requireInit('segments');
    await flush(); // what the user just did counts
    var res = await request('GET', '/v1/users/' + encodeURIComponent(userId()) + '/segments',
      undefined, { keepalive: false });
    if (res === null || !res.ok) return null;
    var answer = await res.json();
    return Array.isArray(answer.segments) ? answer.segments : null;
  }

  window.Nudge = {
    init: init,
    identify: identify,
    track: track,
    flush: flush,
    enablePush: enablePush,
    disablePush: disablePush,
    userId: userId,
    segments: segments,
  };
})();
