#!/usr/bin/env node
// JsSIP (unchanged, from npm) registers one endpoint with sipd over WSS (RFC 7118,
// subprotocol "sip"), then unregisters.
//
//   node register_wss.js --wss wss://127.0.0.1:17443 --domain D --user U --password P \
//        --api http://127.0.0.1:PORT --auth-id ID --auth-token T --endpoint-id E [--timeout S]
//
// Node has no WebSocket for JsSIP: the `ws` package is installed as the global WebSocket,
// with certificate verification off (sipd's self-signed certificate). After "registered" the
// API must show the endpoint registered with JsSIP's contact (a random
// sip:TOKEN@TOKEN.invalid;transport=ws URI); after "unregistered" it must
// show sip_registered "false". Prints PASS/FAIL lines; exits non-zero on any failure.
'use strict';

const WS = require('ws');

// JsSIP's WebSocketInterface calls `new WebSocket(url, 'sip')`: give it ws with TLS
// verification off (loopback test against a self-signed certificate).
class InsecureWebSocket extends WS {
  constructor(url, protocols) {
    super(url, protocols, { rejectUnauthorized: false });
  }
}
global.WebSocket = InsecureWebSocket;

const JsSIP = require('jssip');

function args() {
  const out = { timeout: '20' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    out[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  for (const k of ['wss', 'domain', 'user', 'password', 'api', 'auth-id', 'auth-token', 'endpoint-id']) {
    if (!out[k]) {
      console.error(`missing --${k}`);
      process.exit(2);
    }
  }
  return out;
}

const opt = args();
const timeoutMs = Number(opt.timeout) * 1000;
let failed = 0;

function report(ok, name, detail) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
  if (!ok) failed += 1;
}

async function api(path) {
  const res = await fetch(`${opt.api}/api/v1/Account/${opt['auth-id']}${path}`, {
    headers: { 'X-Auth-ID': opt['auth-id'], 'X-Auth-Token': opt['auth-token'] },
    signal: AbortSignal.timeout(10000),
  });
  if (!res.ok) throw new Error(`GET ${path} -> ${res.status}`);
  return res.json();
}

// Polls the API until `want(endpoint)` holds or the deadline passes; returns the last state.
async function pollEndpoint(want, deadlineMs) {
  let last;
  for (;;) {
    last = await api(`/Endpoint/${opt['endpoint-id']}/`);
    if (want(last) || Date.now() > deadlineMs) return last;
    await new Promise((r) => setTimeout(r, 100)); // poll interval, bounded by the deadline
  }
}

// Resolves with the first of `events` that `ua` emits, rejects after `ms`.
function once(ua, events, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`none of ${events.join('/')} within ${ms} ms`)), ms);
    for (const ev of events) {
      ua.once(ev, (e) => {
        clearTimeout(timer);
        resolve({ event: ev, data: e });
      });
    }
  });
}

async function main() {
  const socket = new JsSIP.WebSocketInterface(opt.wss);
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${opt.user}@${opt.domain}`,
    password: opt.password,
    register: false,
    register_expires: 600,
    user_agent: 'JsSIP-interop',
    connection_recovery_min_interval: 2,
    connection_recovery_max_interval: 4,
  });
  const deadline = Date.now() + timeoutMs;
  try {
    const connected = once(ua, ['connected', 'disconnected'], timeoutMs);
    ua.start();
    const c = await connected;
    report(c.event === 'connected', 'JsSIP WSS connect (subprotocol sip)', c.event === 'connected' ? '' : 'disconnected');
    if (c.event !== 'connected') return;

    const reg = once(ua, ['registered', 'registrationFailed'], Math.max(1000, deadline - Date.now()));
    ua.register();
    const r = await reg;
    const cause = r.data && (r.data.cause || (r.data.response && `${r.data.response.status_code} ${r.data.response.reason_phrase}`));
    report(r.event === 'registered', 'JsSIP REGISTER over WSS with digest', r.event === 'registered' ? '' : String(cause));
    if (r.event === 'registered') {
      const ep = await pollEndpoint((e) => e.sip_registered === 'true', Date.now() + 10000);
      const contact = String(ep.sip_contact || '');
      report(
        ep.sip_registered === 'true' && /transport=wss?/i.test(contact),
        'API shows the WSS registration',
        `sip_registered=${ep.sip_registered} sip_contact=${contact} sip_user_agent=${ep.sip_user_agent}`,
      );
      const unreg = once(ua, ['unregistered', 'registrationFailed'], Math.max(1000, deadline - Date.now()));
      ua.unregister();
      const u = await unreg;
      report(u.event === 'unregistered', 'JsSIP unREGISTER over WSS', u.event);
      const after = await pollEndpoint((e) => e.sip_registered === 'false', Date.now() + 10000);
      report(after.sip_registered === 'false', 'API shows the WSS endpoint unregistered', `sip_registered=${after.sip_registered}`);
    }
  } catch (e) {
    report(false, 'JsSIP over WSS', e.message);
  } finally {
    ua.stop();
  }
}

// The whole run is bounded, whatever JsSIP does.
const guard = setTimeout(() => {
  report(false, 'JsSIP over WSS', `did not finish within ${timeoutMs + 5000} ms`);
  process.exit(1);
}, timeoutMs + 5000);

main().then(() => {
  clearTimeout(guard);
  // ua.stop() closes the socket; exit without waiting for JsSIP's timers.
  process.exit(failed ? 1 : 0);
});
