/*
 * Nudge service worker, served by `nudge serve` at /sw.js and registered by the SDK
 * (sdk.js, Nudge.enablePush) as /sw.js?api=<API base>&key=<write key> with scope '/'.
 * It shows Web Push notifications and reports them to POST /v1/track:
 *   push                   -> showNotification, then {"delivery_id", "type": "view"}
 *   notificationclick      -> {"delivery_id", "type": "click", "action"?}, then focus or
 *                             open the action's url or the message's deeplink
 *   notificationclose      -> {"delivery_id", "type": "close"}
 *   pushsubscriptionchange -> subscribe again and POST /v1/subscriptions for the user
 *
 * Payload (JSON; a text payload becomes the body): {"title", "body", "url", "icon",
 * "image", "actions": [{"action": "a0", "title", "url"}], "require_interaction",
 * "delivery_id", "campaign", "tag"}. The tag defaults to delivery_id, so a duplicate
 * delivery replaces the notification instead of showing it twice.
 *
 * User id: the worker must know whose subscription it renews in pushsubscriptionchange,
 * when no page may be open. The SDK posts {type: 'nudge:user', user_id} on every init,
 * identify and enablePush; the worker keeps it in a global and in IndexedDB (database
 * "nudge", store "kv", key "user_id"), because a stopped worker loses its globals.
 */
'use strict';

const PARAMS = new URL(self.location.href).searchParams;
const API = (PARAMS.get('api') || self.location.origin).replace(/\/+$/, '');
const WRITE_KEY = PARAMS.get('key') || '';

let currentUserId = null;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

// waitUntil throws InvalidStateError on an untrusted event (one built with `new` and
// dispatched by a script, as the browser test does for clicks); the work still runs.
function keepAlive(event, promise) {
  try {
    event.waitUntil(promise);
  } catch (e) {
    /* synthetic event */
  }
}

function api(method, path, body) {
  return fetch(API + path, {
    method,
    keepalive: true,
    headers: { 'content-type': 'application/json', authorization: 'Bearer ' + WRITE_KEY },
    body: JSON.stringify(body),
  }).catch(() => null);
}

function trackDelivery(type, data, action) {
  if (!data || !data.delivery_id) return Promise.resolve(null);
  const body = { delivery_id: data.delivery_id, type };
  if (action) body.action = action;
  return api('POST', '/v1/track', body);
}

self.addEventListener('push', (event) => {
  let m;
  try {
    m = event.data ? event.data.json() : {};
  } catch (e) {
    m = { body: event.data.text() };
  }
  const actions = [];
  const actionUrls = {};
  (Array.isArray(m.actions) ? m.actions : []).forEach((a, i) => {
    const name = a.action || 'a' + i;
    actions.push({ action: name, title: a.title || name, icon: a.icon });
    if (a.url) actionUrls[name] = a.url;
  });
  const max = typeof Notification !== 'undefined' && Notification.maxActions;
  const data = { url: m.url, delivery_id: m.delivery_id, campaign: m.campaign, action_urls: actionUrls };
  const tag = m.tag || m.delivery_id;
  const options = {
    body: m.body || '',
    icon: m.icon,
    image: m.image,
    tag,
    requireInteraction: !!m.require_interaction,
    data,
    actions: max ? actions.slice(0, max) : actions,
    timestamp: Date.now(),
  };
  if (!tag) delete options.tag;
  // Always show something: Chrome otherwise shows "site updated in the background", and
  // Safari revokes the permission. "view" is reported once the notification is shown.
  keepAlive(event, self.registration.showNotification(m.title || 'Update', options)
    .then(() => trackDelivery('view', data)));
});

self.addEventListener('notificationclick', (event) => {
  const n = event.notification;
  n.close();
  const d = n.data || {};
  const url = (event.action && d.action_urls && d.action_urls[event.action]) || d.url || '/';
  keepAlive(event, Promise.all([
    trackDelivery('click', d, event.action || undefined),
    openOrFocus(new URL(url, self.location.origin).href),
  ]));
});

async function openOrFocus(url) {
  try {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const open = windows.find((c) => c.url === url && 'focus' in c);
    // openWindow is allowed only while handling a real notificationclick.
    return await (open ? open.focus() : self.clients.openWindow(url));
  } catch (e) {
    return null;
  }
}

self.addEventListener('notificationclose', (event) => {
  keepAlive(event, trackDelivery('close', event.notification.data));
});

// ---- user id, kept across worker restarts ----

function kv(mode, op) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('nudge', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('kv');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction('kv', mode);
      const req = op(tx.objectStore('kv'));
      tx.oncomplete = () => { db.close(); resolve(req.result); };
      tx.onerror = tx.onabort = () => { db.close(); reject(tx.error); };
    };
  });
}

function setUserId(id) {
  currentUserId = id;
  return kv('readwrite', (s) => s.put(id, 'user_id'));
}

async function getUserId() {
  if (!currentUserId) currentUserId = (await kv('readonly', (s) => s.get('user_id'))) || null;
  return currentUserId;
}

self.addEventListener('message', (event) => {
  const m = event.data || {};
  if (m.type === 'nudge:user' && typeof m.user_id === 'string' && m.user_id) {
    keepAlive(event, setUserId(m.user_id).catch(() => {}));
  }
});

// ---- subscription renewal ----

function b64uToBytes(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function resubscribe(event) {
  const old = event.oldSubscription || null;
  let sub = event.newSubscription || null;
  if (!sub) {
    let options = old && old.options && old.options.applicationServerKey ? old.options : null;
    if (!options) {
      const url = API + '/v1/webpush/vapid-public-key';
      let res = await fetch(url); // public; with the write key only if refused (as the SDK)
      if (res.status === 401 || res.status === 403) {
        res = await fetch(url, { headers: { authorization: 'Bearer ' + WRITE_KEY } });
      }
      options = { userVisibleOnly: true, applicationServerKey: b64uToBytes((await res.json()).key) };
    }
    sub = await self.registration.pushManager.subscribe(options);
  }
  const userId = await getUserId();
  if (userId) await api('POST', '/v1/subscriptions', { user_id: userId, subscription: sub.toJSON() });
  if (old && old.endpoint !== sub.endpoint) await api('DELETE', '/v1/subscriptions', { endpoint: old.endpoint });
  return sub;
}

self.addEventListener('pushsubscriptionchange', (event) => {
  keepAlive(event, resubscribe(event).catch(() => null));
});
