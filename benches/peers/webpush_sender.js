// The Node side of the peer benchmark's push part: Node's `web-push` (the
// library most Node back ends send Web Push with) sending one notification to
// every subscription of the input file, as an application would.
//
// Usage: node webpush_sender.js INPUT.json  (NODE_PATH must hold web-push)
// INPUT: {"subscriptions": [{"endpoint", "keys": {"p256dh", "auth"}}],
//         "payload": "…", "vapid": {"subject", "publicKey", "privateKey"},
//         "ca": "PEM", "ttl": 3600, "in_flight": 256, "max_sockets": 128,
//         "cache_vapid": false}
// Prints one JSON line: {"sent", "failed", "wall_s", "cpu_s", "errors"}, where
// wall_s and cpu_s (user + system of this process, all threads) cover the
// sending only, from the first request to the last answer.
//
// web-push signs a fresh VAPID JWT (ES256) for every message; it has no token
// cache. That is the library's behaviour and is measured as such. With
// "cache_vapid" the script does what a careful caller can: it signs one
// header per push-service origin up front (web-push's getVapidHeaders, valid
// 12 h) and passes it as a header with `vapidDetails: null`, which web-push
// supports, so only the encryption and the request are left per message.

'use strict';

const fs = require('fs');
const https = require('https');
const webpush = require('web-push');

const MAX_ERRORS_SHOWN = 5;

async function main() {
  const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const subscriptions = input.subscriptions;
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: input.max_sockets,
    ca: input.ca,
  });
  const signed = new Map();
  function optionsFor(endpoint) {
    if (!input.cache_vapid) {
      return { vapidDetails: input.vapid, TTL: input.ttl, agent };
    }
    const origin = new URL(endpoint).origin;
    if (!signed.has(origin)) {
      const { subject, publicKey, privateKey } = input.vapid;
      const headers = webpush.getVapidHeaders(origin, subject, publicKey, privateKey, 'aes128gcm');
      signed.set(origin, {
        vapidDetails: null,
        TTL: input.ttl,
        agent,
        headers: { Authorization: headers.Authorization },
      });
    }
    return signed.get(origin);
  }
  let next = 0;
  let sent = 0;
  let failed = 0;
  const errors = [];

  async function worker() {
    while (next < subscriptions.length) {
      const subscription = subscriptions[next];
      next += 1;
      try {
        await webpush.sendNotification(subscription, input.payload, optionsFor(subscription.endpoint));
        sent += 1;
      } catch (error) {
        failed += 1;
        if (errors.length < MAX_ERRORS_SHOWN) {
          errors.push(String(error.statusCode || '') + ' ' + error.message);
        }
      }
    }
  }

  const cpuStart = process.cpuUsage();
  const wallStart = process.hrtime.bigint();
  const workers = [];
  for (let i = 0; i < input.in_flight; i += 1) {
    workers.push(worker());
  }
  await Promise.all(workers);
  const wallNs = process.hrtime.bigint() - wallStart;
  const cpu = process.cpuUsage(cpuStart);
  agent.destroy();
  process.stdout.write(JSON.stringify({
    sent,
    failed,
    wall_s: Number(wallNs) / 1e9,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    errors,
  }) + '\n');
}

main().catch((error) => {
  process.stderr.write('webpush_sender: ' + (error.stack || error) + '\n');
  process.exit(1);
});
