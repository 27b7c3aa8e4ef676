#!/usr/bin/env node
// JsSIP (unchanged, from npm) places or answers one call over WSS, for calls.py.
//
//   node call_wss.js --mode call --target sip:CALLEE@D --wss wss://127.0.0.1:PORT --domain D \
//        --user U --password P [--timeout S] [--hold-ms 1000]
//   node call_wss.js --mode answer --wss ... --domain D --user U --password P [--timeout S]
//
// call: JsSIP calls the target (answering the proxy's 407 itself), waits for the 200, holds
// the call, then hangs up (BYE over WSS). answer: JsSIP registers, prints "REGISTERED",
// answers the first INVITE and waits for the caller's BYE, then unregisters.
// Node has no WebRTC: a stand-in RTCPeerConnection gives JsSIP a fixed audio SDP, as the
// signalling is what is tested here. `ws` is the global WebSocket, certificate verification
// off (self-signed server certificate on loopback).
// Prints one line `RESULT {json}`: ok, error, record_route (the Record-Route values of the
// 200 it got, or of the INVITE it answered, as JsSIP parsed them), ended_by (local|remote),
// cause. Exits non-zero unless ok.
'use strict';

const WS = require('ws');

class InsecureWebSocket extends WS {
  constructor(url, protocols) {
    super(url, protocols, { rejectUnauthorized: false });
  }
}

// The parts of RTCPeerConnection JsSIP's RTCSession uses, with ICE already complete.
const SDP = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
  'm=audio 9 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', '',
].join('\r\n');

class StandInPeerConnection {
  constructor() {
    this.iceGatheringState = 'complete';
    this.iceConnectionState = 'new';
    this.signalingState = 'stable';
    this.localDescription = null;
    this.remoteDescription = null;
  }
  addEventListener() {}
  removeEventListener() {}
  addTrack() {}
  getSenders() { return []; }
  getReceivers() { return []; }
  getLocalStreams() { return []; }
  getRemoteStreams() { return []; }
  createOffer() { return Promise.resolve({ type: 'offer', sdp: SDP }); }
  createAnswer() { return Promise.resolve({ type: 'answer', sdp: SDP }); }
  setLocalDescription(d) { this.localDescription = d; return Promise.resolve(); }
  setRemoteDescription(d) { this.remoteDescription = d; return Promise.resolve(); }
  close() { this.signalingState = 'closed'; }
}

global.WebSocket = InsecureWebSocket;
global.window = global;
global.RTCPeerConnection = StandInPeerConnection;
global.RTCSessionDescription = class { constructor(d) { Object.assign(this, d); } };

const JsSIP = require('jssip');

function args() {
  const out = { timeout: '20', 'hold-ms': '1000' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of ['mode', 'wss', 'domain', 'user', 'password']) {
    if (!out[k]) {
      console.error(`missing --${k}`);
      process.exit(2);
    }
  }
  if (out.mode === 'call' && !out.target) {
    console.error('--mode call needs --target');
    process.exit(2);
  }
  return out;
}

const opt = args();
const timeoutMs = Number(opt.timeout) * 1000;
const result = { ok: false, error: null, record_route: [], ended_by: null, cause: null };

function finish() {
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(result.ok ? 0 : 1);
}

// Record-Route values as JsSIP parsed them (one entry per value, comma lists split).
function recordRoute(message) {
  return (message.getHeaders('record-route') || []).flatMap((h) => splitCommas(h));
}

function splitCommas(value) {
  const out = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '<') depth += 1;
    else if (!quoted && ch === '>') depth = Math.max(0, depth - 1);
    if (ch === ',' && !quoted && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

function once(emitter, events, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`none of ${events.join('/')} within ${ms} ms`)), ms);
    for (const ev of events) {
      emitter.once(ev, (e) => {
        clearTimeout(timer);
        resolve({ event: ev, data: e });
      });
    }
  });
}

function left(deadline) {
  return Math.max(1000, deadline - Date.now());
}

async function main() {
  const deadline = Date.now() + timeoutMs;
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(opt.wss)],
    uri: `sip:${opt.user}@${opt.domain}`,
    password: opt.password,
    register: false,
    register_expires: 600,
    session_timers: false,
    user_agent: 'JsSIP-interop',
    connection_recovery_min_interval: 2,
    connection_recovery_max_interval: 4,
  });
  try {
    const connected = once(ua, ['connected', 'disconnected'], left(deadline));
    ua.start();
    if ((await connected).event !== 'connected') throw new Error('WSS connection failed');
    const reg = once(ua, ['registered', 'registrationFailed'], left(deadline));
    ua.register();
    const r = await reg;
    if (r.event !== 'registered') throw new Error(`REGISTER failed: ${r.data && r.data.cause}`);
    console.log('REGISTERED');

    let session;
    if (opt.mode === 'call') {
      session = ua.call(opt.target, { mediaConstraints: { audio: false, video: false } });
      // Listened for before the 200 arrives: JsSIP sends its ACK ('confirmed') in the same
      // tick as it reports 'accepted'.
      const confirmed = once(session, ['confirmed'], left(deadline));
      const answered = await once(session, ['accepted', 'failed'], left(deadline));
      if (answered.event !== 'accepted') throw new Error(`call failed: ${answered.data.cause}`);
      result.record_route = recordRoute(answered.data.response);
      await confirmed; // our ACK is sent
      await new Promise((res) => setTimeout(res, Number(opt['hold-ms']))); // the call's length
      const ended = once(session, ['ended', 'failed'], left(deadline));
      session.terminate(); // BYE
      const e = await ended;
      result.ended_by = e.data.originator;
      result.cause = e.data.cause;
    } else {
      const incoming = await once(ua, ['newRTCSession'], left(deadline));
      session = incoming.data.session;
      result.record_route = recordRoute(incoming.data.request);
      const confirmed = once(session, ['confirmed', 'failed'], left(deadline));
      session.answer({ mediaConstraints: { audio: false, video: false } });
      const c = await confirmed; // the caller's ACK arrived
      if (c.event !== 'confirmed') throw new Error(`answer failed: ${c.data.cause}`);
      const e = await once(session, ['ended', 'failed'], left(deadline)); // the caller's BYE
      result.ended_by = e.data.originator;
      result.cause = e.data.cause;
    }
    result.ok = true;
    const unreg = once(ua, ['unregistered', 'registrationFailed'], left(deadline));
    ua.unregister();
    await unreg;
  } catch (e) {
    result.error = e.message;
  } finally {
    ua.stop();
  }
}

// The whole run is bounded, whatever JsSIP does.
setTimeout(() => {
  if (!result.ok) result.error = result.error || `did not finish within ${timeoutMs + 5000} ms`;
  finish();
}, timeoutMs + 5000).unref();

main().then(finish);
