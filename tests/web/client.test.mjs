// SyncClient against a fake WebSocket, a fake media element and a fake clock with fake timers:
// no network, no real sleeps. Run: node --test tests/web/
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";

import { SyncClient, SyncError, VERSION, positionAt } from "../../syncplayd/web/syncplay-client.js";

const ROOM = "0b7e9c4e-5d1a-4f3e-8a2b-1c9d8e7f6a50";
const OFFSET = 1_795_000_000; // server clock minus the fake local clock
const ADA = { user_id: "u-ada", user_name: "Ada", role: "owner", is_connected: true, sessions: 1, buffering: false, latency_ms: null, muted: false, ready: false, ended: false, behind: false, desktop: false };
const BEN = { user_id: "u-ben", user_name: "Ben", role: "member", is_connected: true, sessions: 1, buffering: false, latency_ms: null, muted: false, ready: false, ended: false, behind: false, desktop: false };
const SETTINGS = {
  heartbeat_interval: 5, threshold_seconds: 2, max_latency_ms: 500, ready_timeout_seconds: 30,
  disconnect_timeout_seconds: 30, max_rate_correction: 0.05, control: "everyone",
};

// -- fakes ----------------------------------------------------------------------------------

/** A clock and timers that only move when the test says so. */
class FakeClock {
  constructor(start = 5000) {
    this.t = start;
    this.timers = new Map();
    this.nextId = 1;
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.t + Math.max(0, Number(ms) || 0) / 1000, fn });
      return id;
    };
    this.clearTimeout = (id) => { this.timers.delete(id); };
  }

  /** Move time forward, running every timer due on the way, in order. */
  advance(seconds) {
    const end = this.t + seconds;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end + 1e-6 && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
  }
}

/** A WebSocket class recording what the client sends; the test plays the server. */
function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closeCode = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("InvalidStateError");
      this.sent.push(JSON.parse(data));
    }
    close(code) { this.closeCode = code ?? 1005; this.readyState = 3; }
    // the server's side
    open() { this.readyState = 1; this.onopen?.({ type: "open" }); }
    receive(message) { this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) }); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code, reason: "" }); }
    of(type) { return this.sent.filter((m) => m.type === type); }
    types() { return this.sent.map((m) => m.type).filter((t) => t !== "ping"); }
  }
  return { FakeWebSocket, sockets };
}

/**
 * An HTMLMediaElement stand-in that plays along the fake clock (once given one) while it is not
 * paused, not seeking and has data. With asyncSeek, a seek stays `seeking` until finishSeek().
 */
class FakeMedia extends EventTarget {
  constructor({ asyncSeek = false, playResult = () => Promise.resolve() } = {}) {
    super();
    this.clock = null;
    this._pos = 0;
    this._since = 0;
    this._paused = true;
    this._rate = 1;
    this._seeking = false;
    this._readyState = 4;
    this.seeks = [];
    this.playCalls = 0;
    this.pauseCalls = 0;
    this.asyncSeek = asyncSeek;
    this.playResult = playResult;
    this.duration = NaN; // no metadata yet
    this.ended = false; // what the browser says once the end was reached
  }
  _now() { return this.clock ? this.clock.t : 0; }
  _moving() { return !this._paused && !this._seeking && this._readyState >= 3; }
  _settle() { this._pos = this.time; this._since = this._now(); }
  get time() { return this._pos + (this._moving() ? (this._now() - this._since) * this._rate : 0); }
  set time(value) { this._pos = value; this._since = this._now(); }
  get paused() { return this._paused; }
  set paused(value) { this._settle(); this._paused = value; }
  get playbackRate() { return this._rate; }
  set playbackRate(value) { this._settle(); this._rate = value; }
  get seeking() { return this._seeking; }
  set seeking(value) { this._settle(); this._seeking = value; }
  get readyState() { return this._readyState; }
  set readyState(value) { this._settle(); this._readyState = value; }
  get currentTime() { return this.time; }
  set currentTime(value) {
    this.time = value;
    this.seeks.push(value);
    if (this.asyncSeek) {
      this.seeking = true;
      this.dispatchEvent(new Event("seeking"));
    }
  }
  finishSeek(landAt) {
    if (landAt !== undefined) this.time = landAt;
    this.seeking = false;
    this.dispatchEvent(new Event("seeked"));
  }
  play() {
    this.playCalls += 1;
    this.paused = false;
    const result = this.playResult();
    result?.catch?.(() => { this.paused = true; });
    return result;
  }
  pause() { this.pauseCalls += 1; this.paused = true; }
  fire(type) { this.dispatchEvent(new Event(type)); }
}

/** An element on which everything throws, getters and setters included. */
function brokenMedia() {
  const boom = () => { throw new Error("broken element"); };
  return new Proxy({}, { get: boom, set: boom, has: boom });
}

// -- harness --------------------------------------------------------------------------------

const escaped = [];
const onUncaught = (err) => escaped.push(err);
beforeEach(() => {
  escaped.length = 0;
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
});
afterEach(async () => {
  await flush();
  process.off("uncaughtException", onUncaught);
  process.off("unhandledRejection", onUncaught);
  assert.deepEqual(escaped, [], "something escaped into the page");
});

/** Let promise callbacks (play() results, rejections) run: microtasks, not time. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

function setup({ media = null, options = {}, ...config } = {}) {
  const clock = new FakeClock();
  if (media instanceof FakeMedia) {
    media.clock = clock;
    media.time = media._pos;
  }
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const client = new SyncClient({
    url: "ws://daemon.test/api/v1/syncplay/ws", token: "jwt-token", roomId: ROOM, media,
    WebSocket: FakeWebSocket, now: clock.now, setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout, options: { reconnect: { random: () => 1 }, ...options },
    ...config,
  });
  const events = [];
  for (const type of ["statechange", "joined", "scheduled", "playback", "participants", "presence", "chat",
    "chat_deleted", "room", "error", "closing", "autoplayblocked", "drift", "queue", "item"]) {
    client.addEventListener(type, (event) => events.push({ type, detail: event.detail }));
  }
  const h = {
    clock, client, sockets, events,
    get ws() { return sockets.at(-1); },
    serverNow: () => clock.t + OFFSET,
    of: (type) => events.filter((e) => e.type === type).map((e) => e.detail),
    playback: (state, position, extra = {}) => ({
      state, position, rate: 1, anchor: clock.t + OFFSET, version: 0, set_by: null, ...extra,
    }),
    /** Answer every unanswered ping now, as a server `delay` s away (offset exactly OFFSET). */
    pong(delay = 0) {
      const ws = sockets.at(-1);
      ws.answered ??= new Set();
      for (const ping of ws.of("ping")) {
        if (ws.answered.has(ping.id)) continue;
        ws.answered.add(ping.id);
        const t1 = ping.t0 + OFFSET + delay / 2;
        const t2 = clock.t + OFFSET - delay / 2;
        ws.receive({ type: "pong", id: ping.id, t0: ping.t0, t1, t2 });
      }
    },
    /** Let `seconds` pass with a live server: pings are answered as they come. */
    run(seconds, step = 0.5) {
      for (let left = seconds; left > 1e-9; left -= step) {
        clock.advance(Math.min(step, left));
        h.pong();
      }
    },
    /** Open the socket, answer hello and join; returns the joined message. */
    join({
      playback = h.playback("paused", 0), sessionId = "S1", settings = SETTINGS, chat = [],
      participants = [ADA, BEN], you = BEN, isAdmin = false, queue = undefined,
    } = {}) {
      const ws = sockets.at(-1);
      ws.open();
      ws.receive({ type: "welcome", protocol: 1, server_time: h.serverNow(), user_id: BEN.user_id, user_name: "Ben", is_admin: isAdmin });
      const joined = {
        type: "joined", session_id: sessionId, server_time: h.serverNow(), room: { id: ROOM, name: "Friday film" },
        playback, participants, chat, settings, you,
      };
      if (queue !== undefined) joined.queue = queue;
      ws.receive(joined);
      return joined;
    },
  };
  return h;
}

// -- the handshake --------------------------------------------------------------------------

describe("handshake", () => {
  test("ping at open, hello, then join after welcome; connect() resolves with joined", async () => {
    const h = setup();
    const connecting = h.client.connect();
    assert.equal(h.client.state, "connecting");
    assert.equal(h.sockets.length, 1);
    // The room in the URL: a proxy in front of several daemons routes by it (§2.5).
    assert.equal(h.ws.url, `ws://daemon.test/api/v1/syncplay/ws?room=${ROOM}`);
    h.ws.open();
    assert.deepEqual(h.ws.sent.map((m) => m.type), ["ping", "hello"]);
    assert.deepEqual(h.ws.of("hello")[0], {
      type: "hello", protocol: 1, token: "jwt-token", client: `syncplay-client.js/${VERSION}`,
    });
    assert.equal(h.ws.of("join").length, 0, "join before welcome");
    h.ws.receive({ type: "welcome", protocol: 1, server_time: h.serverNow(), user_id: "u", user_name: "Ben", is_admin: false });
    assert.deepEqual(h.ws.of("join"), [{ type: "join", room_id: ROOM }]);
    const joined = { type: "joined", session_id: "S1", server_time: h.serverNow(), room: { id: ROOM },
      playback: h.playback("paused", 0), participants: [ADA, BEN], chat: [], settings: SETTINGS, you: BEN };
    h.ws.receive(joined);
    assert.deepEqual(await connecting, joined);
    assert.equal(h.client.state, "joined");
    assert.equal(h.client.sessionId, "S1");
    assert.deepEqual([...h.client.participants.keys()], ["u-ada", "u-ben"]);
    assert.deepEqual(h.client.you, BEN);
    assert.deepEqual(h.client.settings, SETTINGS);
    assert.equal(h.of("joined").length, 1);
    assert.deepEqual(h.of("statechange").map((s) => s.state), ["connecting", "joined"]);
    assert.ok(Math.abs(h.client.clockOffset - OFFSET) < 1e-6, "rough offset from joined");
  });

  test("join carries password, invitation code and the resume id; no token without one", () => {
    const h = setup({ token: null, password: "popcorn", invitationCode: "ABCD-1234", resumeSessionId: "pX7a.K1:m-_" });
    h.client.connect();
    h.join();
    assert.equal("token" in h.ws.of("hello")[0], false);
    assert.deepEqual(h.ws.of("join")[0], {
      type: "join", room_id: ROOM, password: "popcorn", invitation_code: "ABCD-1234", resume: "pX7a.K1:m-_",
    });
  });

  test("a malformed resume id (from storage) is not sent", () => {
    const h = setup({ resumeSessionId: "not valid!" });
    h.client.connect();
    h.join();
    assert.equal("resume" in h.ws.of("join")[0], false);
  });

  for (const [name, answer, code] of [
    ["a refused join", (ws) => ws.receive({ type: "error", code: "wrong-password", message: "wrong password", ref: null }), "wrong-password"],
    ["a room-full join", (ws) => ws.receive({ type: "error", code: "room-full", message: "full", ref: null }), "room-full"],
    ["closing before joined", (ws) => ws.receive({ type: "closing", reason: "unauthorized", message: "token expired" }), "unauthorized"],
    ["a drop before joined", (ws) => ws.drop(1006), "connection-failed"],
  ]) {
    test(`connect() rejects on ${name}, and the client is closed`, async () => {
      const h = setup();
      const connecting = h.client.connect();
      h.ws.open();
      h.ws.receive({ type: "welcome", protocol: 1, server_time: h.serverNow(), user_id: "u", user_name: "B", is_admin: false });
      answer(h.ws);
      await assert.rejects(connecting, (err) => err instanceof SyncError && err.code === code);
      assert.equal(h.client.state, "closed");
      h.clock.advance(120);
      assert.equal(h.sockets.length, 1, "no retry");
    });
  }

  test("connect() rejects with timeout when nothing answers", async () => {
    const h = setup();
    const connecting = h.client.connect();
    h.ws.open();
    h.clock.advance(9.9);
    assert.equal(h.client.state, "connecting");
    h.clock.advance(0.1);
    await assert.rejects(connecting, { code: "timeout" });
    assert.equal(h.ws.closeCode, 1000);
  });

  test("connect() rejects with connection-failed when there is no WebSocket", async () => {
    const h = setup({ WebSocket: undefined });
    await assert.rejects(h.client.connect(), { code: "connection-failed" });
    class Throwing { constructor() { throw new SyntaxError("bad url"); } }
    await assert.rejects(setup({ WebSocket: Throwing }).client.connect(), { code: "connection-failed" });
  });
});

// -- clock ----------------------------------------------------------------------------------

describe("clock", () => {
  test("5 fast pings 0.5 s apart, then every 10 s; offset and rtt from the pongs", () => {
    const h = setup({ options: { stallTimeout: 100 } });
    h.client.connect();
    h.join();
    const start = h.ws.of("ping")[0].t0;
    h.clock.advance(25);
    const times = h.ws.of("ping").map((p) => p.t0 - start);
    assert.deepEqual(times.map((t) => Math.round(t * 10) / 10), [0, 0.5, 1, 1.5, 2, 12, 22]);
    assert.deepEqual(h.ws.of("ping").map((p) => p.id), [1, 2, 3, 4, 5, 6, 7]);
    h.pong(0.04);
    assert.ok(Math.abs(h.client.clockOffset - OFFSET) < 1e-6);
    assert.ok(Math.abs(h.client.rtt - 0.04) < 1e-6);
    assert.ok(Math.abs(h.client.latencyMs - 20) < 0.01);
  });

  test("a pong for an unknown ping is ignored", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.receive({ type: "pong", id: 999, t0: 0, t1: 5, t2: 5 });
    assert.equal(h.client.rtt, null);
  });

  test("the estimate starts over on a new socket", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.pong(0);
    assert.ok(Math.abs(h.client.clockOffset - OFFSET) < 1e-6);
    h.ws.drop();
    h.clock.advance(0.1);
    h.ws.open();
    // The new path: slower, and the server clock reads 3 s more (a restarted server, say). The
    // old, faster samples must not outvote it.
    const ping = h.ws.of("ping")[0];
    h.clock.advance(0.05);
    const t = ping.t0 + 0.025 + OFFSET + 3;
    h.ws.receive({ type: "pong", id: ping.id, t0: ping.t0, t1: t, t2: t });
    assert.ok(Math.abs(h.client.clockOffset - (OFFSET + 3)) < 1e-6, String(h.client.clockOffset - OFFSET));
  });
});

// -- playback -------------------------------------------------------------------------------

describe("playback", () => {
  test("joined applies the snapshot to the element at once: position, rate, play", async () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 100, { rate: 1.5, anchor: h.serverNow() - 10, version: 7 }) });
    assert.ok(Math.abs(media.currentTime - 115) < 1e-6, `at ${media.currentTime}`);
    assert.equal(media.playbackRate, 1.5);
    assert.equal(media.paused, false);
    const [applied] = h.of("playback");
    assert.equal(applied.reason, "joined");
    assert.equal(applied.playback.version, 7);
    // §4.5: a late joiner says buffering, seeks, then ready (this element can play at once).
    assert.deepEqual(h.ws.types().slice(-2), ["buffering", "ready"]);
  });

  test("joined in a paused room: seek and pause, no buffering", () => {
    const media = new FakeMedia();
    media.time = 3;
    media.paused = false;
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("paused", 42) });
    assert.equal(media.currentTime, 42);
    assert.equal(media.paused, true);
    assert.deepEqual(h.ws.of("buffering"), []);
  });

  test("a scheduled start in the snapshot waits for its anchor", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 20, { anchor: h.serverNow() + 0.4, version: 2 }) });
    assert.equal(media.currentTime, 20);
    assert.equal(media.paused, true);
    h.clock.advance(0.39);
    assert.equal(media.paused, true);
    h.clock.advance(0.01);
    assert.equal(media.paused, false);
  });

  test("a scheduled playback is applied at execute_at, not before", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join();
    const at = h.serverNow() + 0.5;
    h.ws.receive({ type: "playback", playback: h.playback("playing", 0, { anchor: at, version: 1, set_by: "Ada" }), execute_at: at, reason: "play" });
    assert.equal(h.client.playback.version, 1, "known at once");
    assert.equal(media.paused, true);
    h.clock.advance(0.49);
    assert.equal(media.paused, true, "applied early");
    assert.equal(h.of("playback").length, 1, "only the joined one");
    h.clock.advance(0.01);
    assert.equal(media.paused, false);
    const applied = h.of("playback").at(-1);
    assert.deepEqual({ reason: applied.reason, executeAt: applied.executeAt, setBy: applied.setBy },
      { reason: "play", executeAt: at, setBy: "Ada" });
  });

  test("a change is announced when it arrives (scheduled), and applied at execute_at", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 40, { anchor: h.serverNow() - 5, version: 1 }) });
    const at = h.serverNow() + 0.3;
    const seek = h.playback("playing", 10, { anchor: at, version: 2, set_by: "Ada" });
    h.ws.receive({ type: "playback", playback: seek, execute_at: at, reason: "seek" });
    assert.deepEqual(h.of("scheduled"), [{ playback: seek, reason: "seek", executeAt: at, setBy: "Ada" }]);
    // The room's position is the target already; the element still plays the old one.
    assert.equal(h.client.roomPosition(), 10);
    assert.ok(media.currentTime > 44, `at ${media.currentTime}`);
    assert.equal(h.of("playback").length, 1, "only the joined one");
    h.clock.advance(0.3);
    assert.equal(h.of("playback").at(-1).reason, "seek");
    assert.ok(Math.abs(media.currentTime - 10) < 1e-6, `at ${media.currentTime}`);
    // An older version is neither announced nor applied.
    h.ws.receive({ type: "playback", playback: h.playback("paused", 3, { version: 1 }), execute_at: h.serverNow(), reason: "pause" });
    assert.equal(h.of("scheduled").length, 1);
  });

  test("a playback whose execute_at has passed is applied at once, at the live position", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 10, { anchor: h.serverNow(), version: 1 }) });
    const at = h.serverNow() - 0.2;
    h.ws.receive({ type: "playback", playback: h.playback("waiting", 21.5, { anchor: at, version: 2 }), execute_at: at, reason: "waiting" });
    assert.equal(media.paused, true);
    assert.equal(media.currentTime, 21.5);
  });

  test("older versions are ignored; a newer one supersedes a scheduled change", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("paused", 5, { version: 3 }) });
    for (const type of ["playback", "sync"]) {
      h.ws.receive({ type, playback: h.playback("playing", 99, { version: 2 }), execute_at: h.serverNow(), reason: "play", offset: 1 });
    }
    assert.equal(h.client.playback.version, 3);
    assert.equal(media.paused, true);
    assert.equal(media.currentTime, 5);
    // A start scheduled 0.5 s ahead, then a pause right now: the start never happens.
    const at = h.serverNow() + 0.5;
    h.ws.receive({ type: "playback", playback: h.playback("playing", 5, { anchor: at, version: 4 }), execute_at: at, reason: "play" });
    h.ws.receive({ type: "playback", playback: h.playback("paused", 5, { version: 5 }), execute_at: h.serverNow(), reason: "pause" });
    h.clock.advance(2);
    assert.equal(media.paused, true);
    assert.equal(media.playCalls, 0);
    assert.deepEqual(h.of("playback").map((p) => p.playback.version), [3, 5]);
  });

  test("sync: applied at once; a sync beyond the tolerance seeks", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 0, { version: 1 }) });
    h.clock.advance(10);
    media.time = 4; // 6 s behind
    const seeks = media.seeks.length;
    h.ws.receive({ type: "sync", playback: h.playback("playing", 10, { version: 1 }), offset: -6 });
    assert.equal(media.seeks.length, seeks + 1);
    assert.ok(Math.abs(media.currentTime - 10) < 1e-6);
    assert.equal(h.of("playback").at(-1).reason, "sync");
  });

  test("heartbeat: every heartbeat_interval, the exact fields of §3.2", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 0, { version: 4 }) });
    h.pong(0.04);
    h.clock.advance(4.9);
    assert.equal(h.ws.of("heartbeat").length, 0);
    media.time = 5.123;
    h.clock.advance(0.1); // the element plays on: 5.223 when the heartbeat samples it
    const [beat] = h.ws.of("heartbeat");
    assert.deepEqual(Object.keys(beat).sort(), ["playing", "position", "rtt", "server_time", "type", "version"]);
    assert.ok(Math.abs(beat.position - 5.223) < 1e-6, String(beat.position));
    assert.ok(Math.abs(beat.server_time - h.serverNow()) < 1e-6);
    assert.equal(beat.version, 4);
    assert.equal(beat.playing, true);
    assert.ok(Math.abs(beat.rtt - 0.04) < 1e-6);
    h.run(10);
    assert.equal(h.ws.of("heartbeat").length, 3);
  });

  test("heartbeat reports the applied version, not a scheduled one", () => {
    const h = setup({ media: new FakeMedia() });
    h.client.connect();
    h.join({ playback: h.playback("paused", 0, { version: 1 }) });
    h.clock.advance(4.5);
    const at = h.serverNow() + 1;
    h.ws.receive({ type: "playback", playback: h.playback("playing", 0, { anchor: at, version: 2 }), execute_at: at, reason: "play" });
    h.clock.advance(0.5);
    assert.equal(h.ws.of("heartbeat")[0].version, 1);
    h.clock.advance(5);
    assert.equal(h.ws.of("heartbeat")[1].version, 2);
  });

  test("heartbeat without an element: the model's position", () => {
    const h = setup();
    h.client.connect();
    h.join({ playback: h.playback("playing", 100, { rate: 2, version: 1 }) });
    h.clock.advance(5);
    const [beat] = h.ws.of("heartbeat");
    assert.ok(Math.abs(beat.position - 110) < 1e-6, String(beat.position));
    assert.equal(beat.playing, true);
    assert.equal(beat.rtt, null);
  });

  test("drift loop: gentle rate when slightly off, seek when far off", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 0, { version: 1 }) });
    h.clock.advance(10);
    media.time = h.client.roomPosition() - 0.3; // 300 ms behind
    h.clock.advance(0.5);
    assert.ok(Math.abs(media.playbackRate - 1.05) < 1e-9, String(media.playbackRate));
    const drift = h.of("drift").at(-1);
    assert.equal(drift.action, "rate");
    assert.ok(Math.abs(drift.drift + 0.3) < 0.01);
    media.time = h.client.roomPosition() + 0.03; // 30 ms ahead: closed by the rate alone
    const before = media.seeks.length;
    h.clock.advance(6);
    assert.equal(media.seeks.length, before, "a small drift was seeked");
    const left = media.currentTime - h.client.roomPosition();
    assert.ok(Math.abs(left) <= 0.006, `still ${left * 1000} ms off`);
    assert.ok(Math.abs(media.playbackRate - 1) < 0.003, String(media.playbackRate));
    h.clock.advance(5); // past the cooldown of the joining seek
    media.time = h.client.roomPosition() - 5;
    const seeks = media.seeks.length;
    h.clock.advance(0.5);
    assert.equal(media.seeks.length, seeks + 1);
    assert.ok(Math.abs(media.currentTime - h.client.roomPosition()) < 1e-6);
  });

  test("no drift correction while paused or while a change is scheduled", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("paused", 10, { version: 1 }) });
    media.time = 9;
    h.clock.advance(5);
    assert.equal(media.playbackRate, 1);
    assert.equal(h.of("drift").length, 0);
  });
});

// -- buffering ------------------------------------------------------------------------------

describe("buffering", () => {
  test("own seeks are not buffering; a real stall is, once; playing answers ready", () => {
    const media = new FakeMedia({ asyncSeek: true });
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("paused", 50, { version: 1 }) });
    assert.equal(media.seeking, true);
    media.fire("waiting"); // caused by our seek
    media.finishSeek();
    assert.deepEqual(h.ws.of("buffering"), []);
    media.time = 50;
    media.fire("waiting"); // a real stall
    media.fire("waiting");
    assert.equal(h.ws.of("buffering").length, 1);
    assert.equal(h.ws.of("buffering")[0].position, 50);
    media.fire("playing");
    assert.equal(h.ws.of("ready").length, 1);
    media.fire("canplay");
    assert.equal(h.ws.of("ready").length, 1, "ready once");
  });

  test("an own seek still loading after 1 s is a stall", () => {
    const media = new FakeMedia({ asyncSeek: true });
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("paused", 50, { version: 1 }) });
    h.clock.advance(0.9);
    assert.equal(h.ws.of("buffering").length, 0);
    h.clock.advance(0.1);
    assert.equal(h.ws.of("buffering").length, 1);
    media.readyState = 4;
    media.finishSeek();
    assert.equal(h.ws.of("ready").length, 1);
  });

  test("late join with a loading element: ready only when it can play", () => {
    const media = new FakeMedia({ asyncSeek: true });
    media.readyState = 1;
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 30, { version: 1 }) });
    assert.equal(h.ws.of("buffering").length, 1);
    media.finishSeek();
    assert.equal(h.ws.of("ready").length, 0, "ready before it can play");
    media.readyState = 4;
    media.fire("canplay");
    assert.equal(h.ws.of("ready").length, 1);
    assert.deepEqual(h.ws.types().filter((t) => t === "buffering" || t === "ready"), ["buffering", "ready"]);
  });
});

describe("loading a source", () => {
  test("an element that gets its source after attaching is moved to the room when it loads", () => {
    const media = new FakeMedia();
    media.readyState = 0;
    const h = setup();
    h.client.connect();
    h.join({ playback: h.playback("playing", 30, { version: 1 }) });
    h.run(2);
    h.client.attachMedia(media); // no source yet
    assert.deepEqual(h.ws.types().filter((t) => t === "buffering" || t === "ready"), ["buffering"]);
    media.time = 0; // the source loads: the position starts over
    media.readyState = 4;
    media.fire("loadedmetadata");
    assert.ok(Math.abs(media.currentTime - h.client.roomPosition()) < 1e-6, String(media.currentTime));
    assert.equal(media.paused, false);
    media.fire("canplay");
    assert.deepEqual(h.ws.types().filter((t) => t === "buffering" || t === "ready"), ["buffering", "ready"]);
  });
});

// -- chat, presence, commands ---------------------------------------------------------------

describe("chat and presence", () => {
  test("chat resolves with the message id of its chat_ack", async () => {
    const h = setup();
    h.client.connect();
    h.join();
    const sending = h.client.chat("Popcorn ready?");
    const [frame] = h.ws.of("chat");
    assert.equal(frame.message, "Popcorn ready?");
    assert.match(frame.client_id, /^[A-Za-z0-9_.:-]{1,64}$/);
    h.ws.receive({ type: "chat_ack", client_id: "someone-else", message_id: "nope" });
    const message = { id: "m1", room_id: ROOM, user_id: BEN.user_id, user_name: "Ben", message: "Popcorn ready?", created_at: "2026-11-25T19:20:40Z" };
    h.ws.receive({ type: "chat", message });
    h.ws.receive({ type: "chat_ack", client_id: frame.client_id, message_id: "m1" });
    assert.equal(await sending, "m1");
    assert.deepEqual(h.client.chatHistory.at(-1), message);
    assert.deepEqual(h.of("chat"), [{ message }]);
  });

  test("chat rejects on an error whose ref is its client_id", async () => {
    const h = setup();
    h.client.connect();
    h.join();
    const sending = h.client.chat("spam");
    const ref = h.ws.of("chat")[0].client_id;
    h.ws.receive({ type: "error", code: "rate-limited", message: "slow down", ref });
    await assert.rejects(sending, (err) => err instanceof SyncError && err.code === "rate-limited" && err.ref === ref);
  });

  test("chat rejects on timeout, on a drop, and when not connected", async () => {
    const h = setup();
    await assert.rejects(h.client.chat("too early"), { code: "not-connected" });
    h.client.connect();
    h.join();
    const late = h.client.chat("anyone?");
    h.clock.advance(10);
    await assert.rejects(late, { code: "timeout" });
    const dropped = h.client.chat("hello?");
    h.ws.drop();
    await assert.rejects(dropped, { code: "connection-lost" });
    await assert.rejects(h.client.chat("   "), { code: "validation-failed" });
  });

  test("pending chats are bounded", async () => {
    const h = setup();
    h.client.connect();
    h.join();
    for (let i = 0; i < 32; i += 1) h.client.chat(`m${i}`);
    await assert.rejects(h.client.chat("one more"), { code: "too-many-pending" });
    assert.equal(h.ws.of("chat").length, 32);
  });

  test("chat history is capped", () => {
    const h = setup({ options: { chatHistory: 3 } });
    h.client.connect();
    const chat = [1, 2].map((i) => ({ id: `m${i}`, message: String(i) }));
    h.join({ chat });
    for (let i = 3; i <= 6; i += 1) h.ws.receive({ type: "chat", message: { id: `m${i}`, message: String(i) } });
    assert.deepEqual(h.client.chatHistory.map((m) => m.id), ["m4", "m5", "m6"]);
    const h2 = setup();
    h2.client.connect();
    h2.join();
    for (let i = 0; i < 250; i += 1) h2.ws.receive({ type: "chat", message: { id: `m${i}` } });
    assert.equal(h2.client.chatHistory.length, 200);
  });

  test("presence updates the member map and you", () => {
    const h = setup();
    h.client.connect();
    h.join();
    const ben = { ...BEN, buffering: true };
    h.ws.receive({ type: "presence", event: "buffering", member: ben, detail: null });
    assert.deepEqual(h.client.participants.get("u-ben"), ben);
    assert.deepEqual(h.client.you, ben);
    h.ws.receive({ type: "presence", event: "left", member: { ...ADA, sessions: 0, is_connected: false }, detail: null });
    assert.equal(h.client.participants.has("u-ada"), false);
    assert.deepEqual(h.of("presence").map((p) => p.event), ["buffering", "left"]);
    assert.equal(h.of("participants").length, 3);
  });

  test("a presence_batch is its presences one by one: same members, you and events", () => {
    const cy = { ...BEN, user_id: "u-cy", user_name: "Cy" };
    const dan = { ...BEN, user_id: "u-dan", user_name: "Dan" };
    const gone = (m) => ({ ...m, sessions: 0, is_connected: false });
    // In order, with users who come back and go again: order decides the outcome.
    const events = [
      { type: "presence", event: "joined", member: cy, detail: null },
      { type: "presence", event: "disconnected", member: gone(ADA), detail: null },
      { type: "presence", event: "joined", member: dan, detail: null },
      { type: "presence", event: "left", member: gone(cy), detail: null },
      { type: "presence", event: "reconnected", member: ADA, detail: null },
      { type: "presence", event: "reconnected", member: { ...BEN, sessions: 2 }, detail: null },
      { type: "presence", event: "left", member: gone(dan), detail: null },
      { type: "presence", event: "joined", member: dan, detail: null },
    ];
    const singly = setup();
    singly.client.connect();
    singly.join();
    for (const event of events) singly.ws.receive(event);
    const batched = setup();
    batched.client.connect();
    batched.join();
    batched.ws.receive({ type: "presence_batch", events });

    assert.deepEqual([...batched.client.participants.keys()].sort(), ["u-ada", "u-ben", "u-dan"]);
    assert.deepEqual(batched.client.participants, singly.client.participants);
    assert.deepEqual(batched.client.you, { ...BEN, sessions: 2 });
    assert.deepEqual(batched.of("presence"), singly.of("presence"));
    assert.deepEqual(batched.of("presence").map((p) => [p.event, p.member.user_id]), [
      ["joined", "u-cy"], ["disconnected", "u-ada"], ["joined", "u-dan"], ["left", "u-cy"],
      ["reconnected", "u-ada"], ["reconnected", "u-ben"], ["left", "u-dan"], ["joined", "u-dan"],
    ]);
    assert.equal(batched.of("participants").length, 1 + events.length); // joined, then each
    assert.deepEqual(batched.of("error"), []);
  });

  test("a presence_batch that is not one is ignored, and bad elements alone are skipped", () => {
    const h = setup();
    h.client.connect();
    const early = { type: "presence", event: "joined", member: { ...BEN, user_id: "u-early" }, detail: null };
    h.ws.receive({ type: "presence_batch", events: [early] }); // before joined: as for presence
    h.join();
    for (const events of [undefined, null, "x", 5, { 0: early, length: 1 }]) {
      h.ws.receive({ type: "presence_batch", events });
    }
    assert.deepEqual(h.of("presence"), []);
    const cy = { ...BEN, user_id: "u-cy", user_name: "Cy" };
    const dan = { ...BEN, user_id: "u-dan", user_name: "Dan" };
    h.ws.receive({
      type: "presence_batch",
      events: [null, 7, "joined", [], { type: "presence", event: "joined", member: null },
        { type: "presence", event: "joined", member: cy, detail: null },
        { type: "presence", event: "joined", member: dan, detail: null }],
    });
    assert.deepEqual(h.of("presence").map((p) => p.member.user_id), ["u-cy", "u-dan"]);
    assert.equal(h.client.participants.has("u-early"), false);
    // A failure on one element is a client-error; the elements after it still apply.
    const apply = h.client._onPresence.bind(h.client);
    h.client._onPresence = (msg) => {
      if (msg.member.user_id === "u-cy") throw new Error("bug");
      apply(msg);
    };
    h.ws.receive({
      type: "presence_batch",
      events: [{ type: "presence", event: "left", member: { ...cy, sessions: 0 }, detail: null },
        { type: "presence", event: "left", member: { ...dan, sessions: 0 }, detail: null }],
    });
    assert.equal(h.of("error").at(-1).code, "client-error");
    assert.equal(h.client.participants.has("u-dan"), false);
  });

  test("server errors become error events", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.receive({ type: "error", code: "not-allowed", message: "only moderators", ref: null });
    assert.deepEqual(h.of("error"), [{ code: "not-allowed", message: "only moderators", ref: null }]);
  });

  test("commands send the frames of §3.2 and say whether they were sent", () => {
    const h = setup();
    assert.equal(h.client.play(), false, "not connected");
    h.client.connect();
    h.join();
    assert.equal(h.client.play(), true);
    assert.equal(h.client.play(12.5), true);
    assert.equal(h.client.pause(802.517), true);
    assert.equal(h.client.seek(1200), true);
    assert.equal(h.client.setRate(1.25), true);
    assert.equal(h.client.seek(-3), true);
    assert.equal(h.client.seek(), false);
    assert.equal(h.client.seek(NaN), false);
    assert.equal(h.client.setRate(10), false);
    assert.equal(h.client.setRate("2"), false);
    const commands = h.ws.sent.filter((m) => ["play", "pause", "seek", "rate"].includes(m.type));
    assert.deepEqual(commands, [
      { type: "play" }, { type: "play", position: 12.5 }, { type: "pause", position: 802.517 },
      { type: "seek", position: 1200 }, { type: "rate", rate: 1.25 }, { type: "seek", position: 0 },
    ]);
  });
});

// -- moderation -----------------------------------------------------------------------------

describe("roles, mutes, bans and room changes", () => {
  const ROOM_INFO = {
    id: ROOM, name: "Friday film", owner_id: "u-ada", playback_control: "everyone",
    moderators_manage_moderators: false,
  };

  test("a room message replaces the room and the settings, and is announced", () => {
    const h = setup();
    h.client.connect();
    h.join();
    const room = { ...ROOM_INFO, name: "Saturday film", playback_control: "moderators" };
    const settings = { ...SETTINGS, control: "moderators", threshold_seconds: 3, max_rate_correction: 0.02 };
    h.ws.receive({ type: "room", room, settings });
    assert.deepEqual(h.client.room, room);
    assert.deepEqual(h.client.settings, settings);
    assert.deepEqual(h.of("room"), [{ room, settings }]);
    // The new thresholds steer the drift correction, as a join's would.
    assert.equal(h.client._drift.seekThreshold, 3);
    assert.equal(h.client._drift.maxRateCorrection, 0.02);
  });

  test("a room message without settings keeps the settings; a malformed one changes nothing", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.receive({ type: "room", room: "nope", settings: { ...SETTINGS, control: "moderators" } });
    assert.deepEqual(h.client.room, { id: ROOM, name: "Friday film" });
    assert.deepEqual(h.client.settings, SETTINGS);
    assert.equal(h.of("room").length, 0);
    h.ws.receive({ type: "room", room: ROOM_INFO });
    assert.deepEqual(h.client.room, ROOM_INFO);
    assert.deepEqual(h.client.settings, SETTINGS);
    assert.deepEqual(h.of("room"), [{ room: ROOM_INFO, settings: SETTINGS }]);
  });

  test("a room message before joined is left to the joined snapshot", () => {
    const h = setup();
    h.client.connect();
    h.ws.open();
    h.ws.receive({ type: "room", room: { ...ROOM_INFO, name: "early" }, settings: SETTINGS });
    assert.equal(h.client.room, null);
    assert.equal(h.of("room").length, 0);
  });

  test("chat_deleted takes the message out of the history and says which", () => {
    const h = setup();
    h.client.connect();
    const chat = ["m1", "m2", "m3"].map((id) => ({ id, room_id: ROOM, user_id: "u-ada", user_name: "Ada", message: id }));
    h.join({ chat });
    h.ws.receive({ type: "chat_deleted", room_id: ROOM, message_id: "m2" });
    assert.deepEqual(h.client.chatHistory.map((m) => m.id), ["m1", "m3"]);
    assert.deepEqual(h.of("chat_deleted"), [{ messageId: "m2", message: chat[1] }]);
    // One the history no longer holds is still announced (a page may show more).
    h.ws.receive({ type: "chat_deleted", room_id: ROOM, message_id: "m0" });
    assert.deepEqual(h.of("chat_deleted")[1], { messageId: "m0", message: null });
    h.ws.receive({ type: "chat_deleted", room_id: ROOM, message_id: 7 });
    assert.equal(h.of("chat_deleted").length, 2);
    assert.deepEqual(h.client.chatHistory.map((m) => m.id), ["m1", "m3"]);
  });

  test("presence role, muted and unmuted update the member, and you", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.receive({ type: "presence", event: "role", member: { ...BEN, role: "moderator" }, detail: null });
    assert.equal(h.client.participants.get("u-ben").role, "moderator");
    assert.equal(h.client.you.role, "moderator");
    h.ws.receive({ type: "presence", event: "muted", member: { ...BEN, role: "moderator", muted: true }, detail: null });
    assert.equal(h.client.you.muted, true);
    assert.equal(h.client.participants.get("u-ben").muted, true);
    h.ws.receive({ type: "presence", event: "unmuted", member: { ...BEN, role: "moderator", muted: false }, detail: null });
    assert.equal(h.client.you.muted, false);
    h.ws.receive({ type: "presence", event: "role", member: { ...ADA, role: "moderator" }, detail: null });
    assert.equal(h.client.participants.get("u-ada").role, "moderator");
    assert.equal(h.client.you.user_id, "u-ben", "someone else's role is not yours");
    assert.deepEqual(h.of("presence").map((p) => [p.event, p.member.user_id]), [
      ["role", "u-ben"], ["muted", "u-ben"], ["unmuted", "u-ben"], ["role", "u-ada"],
    ]);
    assert.equal(h.of("participants").length, 5);
  });

  test("a member without muted (an older server) counts as not muted", () => {
    const h = setup();
    h.client.connect();
    const { muted: _a, ...ada } = ADA;
    const { muted: _b, ...ben } = BEN;
    h.join({ participants: [ada, { ...ben, muted: true }], you: ben });
    assert.equal(h.client.participants.get("u-ada").muted, false);
    assert.equal(h.client.participants.get("u-ben").muted, true);
    assert.equal(h.client.you.muted, false);
    h.ws.receive({ type: "presence", event: "buffering", member: { ...ada, buffering: true }, detail: null });
    assert.deepEqual(h.client.participants.get("u-ada"), { ...ADA, buffering: true });
    assert.equal(h.of("presence")[0].member.muted, false);
  });

  test("isAdmin comes from welcome", () => {
    const h = setup();
    assert.equal(h.client.isAdmin, false);
    h.client.connect();
    h.join({ isAdmin: true });
    assert.equal(h.client.isAdmin, true);
  });

  test("closing banned: the message is kept, and the client never comes back", () => {
    const h = setup({ media: new FakeMedia() });
    h.client.connect();
    h.join();
    const message = "Ada banned you from the room for good: spoilers";
    h.ws.receive({ type: "closing", reason: "banned", message });
    assert.deepEqual(h.of("closing"), [{ reason: "banned", message, retryAfter: null }]);
    assert.equal(h.client.state, "closed");
    assert.deepEqual(h.of("statechange").at(-1), { state: "closed", reason: "banned" });
    h.clock.advance(300);
    assert.equal(h.sockets.length, 1);
    assert.equal(h.client.media, null, "the element is let go");
  });

  test("a resume refused as banned is not retried as a fresh join", async () => {
    const h = setup({ resumeSessionId: "S1" });
    const connecting = h.client.connect();
    h.ws.open();
    h.ws.receive({ type: "welcome", protocol: 1, server_time: h.serverNow(), user_id: "u", user_name: "Cy", is_admin: false });
    assert.equal(h.ws.of("join")[0].resume, "S1");
    const text = "you are banned from this room until 2026-12-05T16:00:00Z: spoilers";
    h.ws.receive({ type: "error", code: "banned", message: text, ref: null });
    await assert.rejects(connecting, (err) => err instanceof SyncError && err.code === "banned" && err.message === text);
    assert.equal(h.ws.of("join").length, 1);
    assert.equal(h.client.state, "closed");
  });

  test("a rejoin refused as banned ends the client", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.drop();
    h.clock.advance(0.1);
    h.ws.open();
    h.ws.receive({ type: "welcome", protocol: 1, server_time: h.serverNow(), user_id: "u", user_name: "B", is_admin: false });
    h.ws.receive({ type: "error", code: "banned", message: "you are banned from this room", ref: null });
    assert.equal(h.sockets[1].of("join").length, 1, "not tried again as a fresh join");
    assert.equal(h.client.state, "closed");
    assert.equal(h.of("statechange").at(-1).reason, "banned");
    h.clock.advance(120);
    assert.equal(h.sockets.length, 2);
  });
});

// -- reconnecting ---------------------------------------------------------------------------

describe("reconnecting", () => {
  test("after a drop: backoff, then join with resume = the last session id", () => {
    const h = setup({ media: new FakeMedia() });
    h.client.connect();
    h.join({ sessionId: "S1" });
    h.ws.drop(1006);
    assert.equal(h.client.state, "reconnecting");
    assert.equal(h.sockets.length, 1);
    h.clock.advance(0.099);
    assert.equal(h.sockets.length, 1, "reconnected before the backoff");
    h.clock.advance(0.001);
    assert.equal(h.sockets.length, 2);
    h.join({ sessionId: "S1", playback: h.playback("playing", 40, { version: 9 }) });
    assert.equal(h.sockets[1].of("join")[0].resume, "S1");
    assert.equal(h.client.state, "joined");
    assert.equal(h.client.reconnects, 1);
    assert.equal(h.of("joined").length, 2);
    assert.equal(h.client.playback.version, 9);
    assert.deepEqual(h.of("statechange").map((s) => s.state), ["connecting", "joined", "reconnecting", "joined"]);
  });

  test("the backoff doubles while attempts fail, and the client gives up after the attempts", () => {
    const h = setup({ options: { reconnect: { attempts: 10, random: () => 1 } } });
    h.client.connect();
    h.join();
    h.ws.drop();
    const opened = [];
    for (let i = 0; i < 10; i += 1) {
      h.clock.advance(10);
      opened.push(h.clock.t);
      h.ws.drop();
    }
    assert.equal(h.sockets.length, 11);
    h.clock.advance(60);
    assert.equal(h.sockets.length, 11);
    assert.equal(h.client.state, "closed");
    assert.equal(h.of("statechange").at(-1).reason, "gave-up");
  });

  test("a non-final closing reconnects", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.receive({ type: "closing", reason: "server-restarting", message: "bye" });
    assert.equal(h.client.state, "reconnecting");
    assert.deepEqual(h.of("closing"), [{ reason: "server-restarting", message: "bye", retryAfter: null }]);
    h.clock.advance(1);
    assert.equal(h.sockets.length, 2);
  });

  for (const [reason, hint] of [["moved", 2], ["server-restarting", 0.5]]) {
    test(`closing "${reason}" with retry_after: back through the same URL after the hint, resuming`, () => {
      const h = setup(); // random () => 1: the largest jitter, max(0.1, hint / 10)
      h.client.connect();
      h.join({ sessionId: "S1" });
      h.ws.receive({ type: "closing", reason, message: "elsewhere", retry_after: hint });
      assert.deepEqual(h.of("closing"), [{ reason, message: "elsewhere", retryAfter: hint }]);
      assert.deepEqual(h.of("statechange").at(-1), { state: "reconnecting", reason });
      const wait = hint + Math.max(0.1, hint / 10);
      h.clock.advance(wait - 0.01);
      assert.equal(h.sockets.length, 1, "came back before the hint");
      h.clock.advance(0.01);
      assert.equal(h.sockets.length, 2);
      assert.equal(h.sockets[1].url, h.sockets[0].url);
      h.join({ sessionId: "S1" });
      assert.equal(h.sockets[1].of("join")[0].resume, "S1");
      assert.equal(h.client.state, "joined");
      assert.equal(h.client.reconnects, 1);
    });
  }

  test("closing moved without retry_after: the usual backoff", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.receive({ type: "closing", reason: "moved", message: "elsewhere" });
    assert.equal(h.client.state, "reconnecting");
    h.clock.advance(0.1);
    assert.equal(h.sockets.length, 2);
  });

  test("moved before the first joined: connect() waits for the room's node", async () => {
    const h = setup();
    const connecting = h.client.connect();
    h.ws.open();
    h.ws.receive({ type: "welcome", protocol: 1, server_time: h.serverNow(), user_id: "u", user_name: "B", is_admin: false });
    h.ws.receive({ type: "closing", reason: "moved", message: "elsewhere", retry_after: 1 });
    assert.equal(h.client.state, "connecting");
    h.clock.advance(1.09);
    assert.equal(h.sockets.length, 1);
    h.clock.advance(0.01);
    assert.equal(h.sockets.length, 2);
    const joined = h.join({ sessionId: "S9" });
    assert.deepEqual(await connecting, joined);
    assert.equal(h.sockets[1].of("join")[0].resume, undefined, "no session yet");
    assert.equal(h.client.reconnects, 0);
    assert.deepEqual(h.of("statechange").map((s) => s.state), ["connecting", "joined"]);
  });

  test("moved before joined, over and over: connect() rejects with moved after the attempts", async () => {
    const h = setup({ options: { reconnect: { attempts: 3, random: () => 1 } } });
    const connecting = h.client.connect();
    for (let i = 0; i < 4; i += 1) {
      h.ws.open();
      h.ws.receive({ type: "closing", reason: "moved", message: "nobody runs it", retry_after: 0 });
      h.clock.advance(1);
    }
    await assert.rejects(connecting, (err) => err instanceof SyncError && err.code === "moved");
    assert.equal(h.client.state, "closed");
    assert.equal(h.sockets.length, 4);
  });

  for (const reason of ["left", "room-ended", "kicked", "banned", "replaced", "unauthorized", "protocol-error"]) {
    test(`closing "${reason}" is final: no reconnect`, () => {
      const h = setup();
      h.client.connect();
      h.join();
      h.ws.receive({ type: "closing", reason, message: "..." });
      assert.equal(h.client.state, "closed");
      assert.equal(h.of("statechange").at(-1).reason, reason);
      h.clock.advance(120);
      assert.equal(h.sockets.length, 1);
      assert.equal(h.client.play(), false);
    });
  }

  test("a stalled socket (nothing received for stallTimeout) is closed and replaced", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.pong();
    const silentSince = h.clock.t;
    h.clock.advance(14.9); // pings go out, nothing comes back
    assert.equal(h.sockets.length, 1);
    assert.ok(h.ws.of("ping").length > 5);
    h.clock.advance(15 - (h.clock.t - silentSince));
    assert.equal(h.sockets[0].closeCode, 1000, "the dead socket is closed");
    assert.equal(h.client.state, "reconnecting");
    h.clock.advance(0.1);
    assert.equal(h.sockets.length, 2);
  });

  test("a socket that keeps answering does not stall", () => {
    const h = setup();
    h.client.connect();
    h.join();
    for (let i = 0; i < 12; i += 1) {
      h.clock.advance(5);
      h.pong();
    }
    assert.equal(h.sockets.length, 1);
    assert.equal(h.client.state, "joined");
  });

  test("a refused rejoin ends the client", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.drop();
    h.clock.advance(0.1);
    h.ws.open();
    h.ws.receive({ type: "welcome", protocol: 1, server_time: h.serverNow(), user_id: "u", user_name: "B", is_admin: false });
    h.ws.receive({ type: "error", code: "room-ended", message: "ended", ref: null });
    assert.equal(h.client.state, "closed");
  });

  test("30 reconnect attempts by default", () => {
    const h = setup();
    h.client.connect();
    h.join();
    for (let i = 0; i < 31; i += 1) {
      h.ws.drop();
      h.clock.advance(10);
    }
    assert.equal(h.sockets.length, 31);
    assert.equal(h.client.state, "closed");
  });

  test("a rejoin refused as unavailable (database down) is retried with resume", () => {
    const h = setup();
    h.client.connect();
    h.join({ sessionId: "S1" });
    h.ws.drop();
    h.clock.advance(0.1);
    h.ws.open();
    h.ws.receive({ type: "welcome", protocol: 1, server_time: h.serverNow(), user_id: "u", user_name: "B", is_admin: false });
    h.ws.receive({ type: "error", code: "unavailable", message: "the database is unavailable; retry", ref: null });
    assert.equal(h.sockets[1].of("join").length, 1, "no fresh join: the session is kept");
    assert.equal(h.client.state, "reconnecting");
    h.clock.advance(0.2);
    assert.equal(h.sockets.length, 3);
    h.join({ sessionId: "S1" });
    assert.equal(h.sockets[2].of("join")[0].resume, "S1");
    assert.equal(h.client.state, "joined");
  });

  test("leave sends leave and closes for good", () => {
    const h = setup();
    h.client.connect();
    h.join();
    assert.equal(h.client.leave(), true);
    assert.equal(h.ws.types().at(-1), "leave");
    assert.equal(h.client.state, "closed");
    assert.equal(h.ws.closeCode, null, "closed before the server got the leave");
    h.ws.receive({ type: "closing", reason: "left", message: "you left the room" });
    h.ws.drop(1000);
    h.clock.advance(60);
    assert.equal(h.sockets.length, 1);
    assert.equal(h.client.play(), false);
  });

  test("leave: a server that does not close the socket gets it closed after 2 s", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.client.leave();
    h.clock.advance(1.9);
    assert.equal(h.ws.closeCode, null);
    h.clock.advance(0.1);
    assert.equal(h.ws.closeCode, 1000);
    assert.equal(h.sockets.length, 1);
  });

  test("leave while reconnecting: nothing to send, closed anyway", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.drop();
    assert.equal(h.client.leave(), false);
    assert.equal(h.client.state, "closed");
    h.clock.advance(60);
    assert.equal(h.sockets.length, 1);
  });

  test("close disconnects without leave, and does not reconnect", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.client.close();
    assert.equal(h.clock.timers.size, 0, "timers left behind");
    assert.equal(h.ws.of("leave").length, 0);
    assert.equal(h.ws.closeCode, 1000);
    assert.equal(h.client.state, "closed");
    h.clock.advance(60);
    assert.equal(h.sockets.length, 1);
  });
});

// -- nothing escapes ------------------------------------------------------------------------

describe("robustness", () => {
  test("play() rejected with NotAllowedError fires autoplayblocked; resumeMedia() retries", async () => {
    let allowed = false;
    const media = new FakeMedia({
      playResult: () => (allowed ? Promise.resolve() : Promise.reject(new DOMException("no gesture", "NotAllowedError"))),
    });
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 10, { version: 1 }) });
    await flush();
    assert.equal(h.of("autoplayblocked").length, 1);
    assert.equal(media.paused, true);
    h.clock.advance(3); // drift ticks and heartbeats meanwhile
    await flush();
    assert.equal(h.of("autoplayblocked").length, 1, "reported once");
    allowed = true;
    assert.equal(h.client.resumeMedia(), true);
    await flush();
    assert.equal(media.paused, false);
    assert.equal(media.playCalls, 2);
  });

  test("no element at all: a whole session runs without an exception", async () => {
    const h = setup();
    h.client.connect();
    h.join({ playback: h.playback("playing", 0, { version: 1 }) });
    h.pong();
    const at = h.serverNow() + 0.2;
    h.ws.receive({ type: "playback", playback: h.playback("paused", 3, { anchor: at, version: 2 }), execute_at: at, reason: "pause" });
    h.ws.receive({ type: "sync", playback: h.playback("paused", 3, { version: 2 }), offset: 3 });
    assert.equal(h.client.resumeMedia(), false);
    h.client.detachMedia();
    h.run(30);
    assert.ok(h.client.play());
    h.ws.drop();
    h.clock.advance(1);
    h.join();
    h.client.leave();
    h.clock.advance(5);
    assert.deepEqual(h.of("error").filter((e) => e.code === "client-error"), []);
  });

  test("an element whose every property and method throws: nothing escapes", async () => {
    const h = setup({ media: brokenMedia() });
    h.client.connect();
    h.join({ playback: h.playback("playing", 0, { version: 1 }) });
    const at = h.serverNow() + 0.2;
    h.ws.receive({ type: "playback", playback: h.playback("playing", 5, { anchor: at, version: 2 }), execute_at: at, reason: "seek" });
    h.ws.receive({ type: "sync", playback: h.playback("playing", 5, { version: 2 }), offset: 3 });
    h.run(30);
    h.client.resumeMedia();
    h.client.attachMedia(brokenMedia());
    h.client.detachMedia();
    h.client.close();
    await flush();
    const beats = h.ws.of("heartbeat");
    assert.ok(beats.length >= 5, "heartbeats stopped");
    // The element cannot say where it is: the model's position is reported instead.
    assert.equal(beats.at(-1).version, 2);
    assert.ok(Math.abs(beats.at(-1).position - 35) < 0.5, String(beats.at(-1).position));
  });

  test("an element whose play() throws synchronously, or returns nothing", async () => {
    const media = new FakeMedia();
    media.play = () => { throw new Error("nope"); };
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 0, { version: 1 }) });
    media.play = () => undefined;
    h.client.resumeMedia();
    h.clock.advance(2);
  });

  test("garbage frames are ignored", () => {
    const h = setup();
    h.client.connect();
    h.join();
    for (const frame of ["{not json", "null", "[]", "42", '"text"', '{"type": 5}', "{}",
      '{"type": "no-such-type", "x": 1}', '{"type": "playback"}', '{"type": "playback", "playback": {"state": "playing"}}',
      '{"type": "presence", "member": null}', '{"type": "chat"}', '{"type": "pong", "id": 1}',
      '{"type": "sync", "playback": "x"}', '{"type": "chat_ack"}']) {
      h.ws.receive(frame);
    }
    h.ws.onmessage({ data: new ArrayBuffer(8) });
    h.ws.onmessage(undefined);
    assert.equal(h.client.state, "joined");
    assert.equal(h.client.playback.version, 0);
    assert.deepEqual(h.of("error").filter((e) => e.code === "client-error"), []);
  });

  test("a failure inside the client becomes a client-error event, not an exception", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.client._onPresence = () => { throw new Error("bug"); };
    h.ws.receive({ type: "presence", event: "joined", member: ADA, detail: null });
    const errors = h.of("error");
    assert.equal(errors.at(-1).code, "client-error");
    assert.equal(errors.at(-1).message, "bug");
  });

  test("unknown fields in known messages are ignored", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: { ...h.playback("paused", 7, { version: 1 }), future_field: true } });
    assert.equal(media.currentTime, 7);
  });
});

// -- the queue, items and the end of the media ------------------------------------------------

describe("queue, items and the end of the media", () => {
  const EP1 = { id: "i-1", content_type: "url", content_id: "demo/demo-1.webm", title: "Episode 1", duration: null };
  const EP2 = { id: "i-2", content_type: "url", content_id: "demo/demo-2.webm", title: "Episode 2", duration: 20 };
  const queueOf = (current, items = [EP1, EP2], extra = {}) => ({
    room_id: ROOM, current_item_id: current, repeat: "none", shuffle: false, items, ...extra,
  });
  /**
   * Joined on item 1 (20 s long), with a page that loads each announced item into the element
   * as the watch page does: the position starts over and nothing is loaded yet.
   */
  function onItemOne(playbackState = "playing", position = 0, { queue = queueOf("i-1"), version = 1 } = {}) {
    const media = new FakeMedia();
    const h = setup({ media });
    h.loaded = [];
    h.client.addEventListener("item", ({ detail }) => {
      if (!detail.item) return;
      h.loaded.push({ id: detail.itemId, seeksBefore: media.seeks.length, pausedBefore: media.paused });
      media.time = 0;
      media.ended = false;
      media.duration = detail.item.id === "i-1" ? 20 : 25;
    });
    h.client.connect();
    h.join({ queue, playback: h.playback(playbackState, position, { version, item_id: "i-1" }) });
    return { h, media };
  }

  test("joined carries the queue; the first item is announced before the element is moved", () => {
    const { h, media } = onItemOne("paused", 5);
    assert.deepEqual(h.client.queue, queueOf("i-1"));
    assert.deepEqual(h.of("queue"), [{ queue: queueOf("i-1"), currentChanged: false }]);
    assert.deepEqual(h.of("item"), [{ itemId: "i-1", item: EP1, previousItemId: null }]);
    assert.equal(h.client.itemId, "i-1");
    assert.deepEqual(h.client.currentItem, EP1);
    assert.equal(h.loaded[0].seeksBefore, 0, "the element was moved before its media was loaded");
    assert.equal(media.currentTime, 5);
  });

  test("the next item: loaded first, then started at 0; the old media is never seeked back", () => {
    const { h, media } = onItemOne("playing", 0);
    h.run(19);
    // The room ended item 1 at its duration and moved on to item 2, playing at once.
    const end = h.serverNow();
    h.ws.receive({ type: "playback", playback: h.playback("paused", 20, { version: 2, item_id: "i-1", duration: 20, ended: true }), execute_at: end, reason: "ended" });
    assert.equal(media.paused, true);
    h.ws.receive({ type: "queue", queue: queueOf("i-2") });
    assert.deepEqual(h.of("queue").at(-1), { queue: queueOf("i-2"), currentChanged: true });
    const at = h.serverNow() + 0.2;
    const seeksAtEnd = media.seeks.length;
    h.ws.receive({ type: "playback", playback: h.playback("playing", 0, { anchor: at, version: 3, item_id: "i-2", duration: 20 }), execute_at: at, reason: "item" });
    assert.equal(h.loaded.length, 1, "loaded before its execute_at");
    h.clock.advance(0.2);
    assert.deepEqual(h.loaded.map((l) => l.id), ["i-1", "i-2"]);
    assert.equal(h.loaded[1].seeksBefore, seeksAtEnd, "the old media was seeked when the item changed");
    assert.deepEqual(h.of("item").at(-1), { itemId: "i-2", item: EP2, previousItemId: "i-1" });
    assert.equal(media.paused, false);
    assert.ok(media.seeks.slice(seeksAtEnd).every((to) => to === 0), String(media.seeks));
  });

  test("a new item's playback before the queue names it: the element is held until it does", () => {
    const { h, media } = onItemOne("playing", 0);
    h.run(3);
    const held = media.currentTime;
    const seeks = media.seeks.length;
    const three = h.playback("playing", 0, { version: 2, item_id: "i-3" });
    h.ws.receive({ type: "playback", playback: three, execute_at: h.serverNow(), reason: "item" });
    assert.deepEqual(h.of("item").at(-1), { itemId: "i-3", item: null, previousItemId: "i-1" });
    assert.equal(media.paused, true, "item 1's media plays on");
    assert.equal(media.seeks.length, seeks, "item 1's media was seeked to item 3's position");
    assert.equal(media.currentTime, held);
    h.run(5);
    const beat = h.ws.of("heartbeat").at(-1);
    assert.equal(beat.playing, true);
    assert.ok(Math.abs(beat.position - positionAt(three, beat.server_time)) < 1e-6, "heartbeat from the wrong media");
    const EP3 = { id: "i-3", content_type: "url", content_id: "demo/demo-3.webm", title: null, duration: null };
    h.ws.receive({ type: "queue", queue: queueOf("i-3", [EP1, EP2, EP3]) });
    assert.deepEqual(h.of("item").at(-1), { itemId: "i-3", item: EP3, previousItemId: "i-3" });
    assert.equal(media.paused, false);
    assert.ok(Math.abs(media.currentTime - h.client.roomPosition()) < 1e-6);
    // A late start on the new media: the room hears buffering, then ready.
    assert.deepEqual(h.ws.types().filter((t) => t === "buffering" || t === "ready").slice(-2), ["buffering", "ready"]);
  });

  test("the item's content changed in place (a PUT of the room's content): announced again", () => {
    const { h } = onItemOne("paused", 0);
    h.ws.receive({ type: "queue", queue: queueOf("i-1", [{ ...EP1, content_id: "other.webm" }, EP2]) });
    assert.equal(h.of("item").length, 2);
    assert.equal(h.of("item")[1].item.content_id, "other.webm");
    h.ws.receive({ type: "queue", queue: queueOf("i-1", [{ ...EP1, content_id: "other.webm", title: "renamed" }, EP2]) });
    assert.equal(h.of("item").length, 2, "a new title is no new media");
  });

  test("the element's ended event is reported once per start of the item", () => {
    const { h, media } = onItemOne("playing", 0);
    h.run(20);
    media.ended = true;
    media.paused = true;
    media.fire("ended");
    media.fire("ended");
    assert.deepEqual(h.ws.of("ended"), [{ type: "ended", item_id: "i-1" }]);
    // The room's end arrives: no second report.
    h.ws.receive({ type: "playback", playback: h.playback("paused", 20, { version: 2, item_id: "i-1", duration: 20, ended: true }), execute_at: h.serverNow(), reason: "ended" });
    assert.equal(h.ws.of("ended").length, 1);
    // Repeat one: the same item from 0 may end again.
    h.ws.receive({ type: "playback", playback: h.playback("playing", 0, { version: 3, item_id: "i-1", duration: 20 }), execute_at: h.serverNow(), reason: "item" });
    media.ended = true;
    media.fire("ended");
    assert.equal(h.ws.of("ended").length, 2);
  });

  test("the room's end: the element stops at the duration, reports it, and is never restarted", () => {
    const { h, media } = onItemOne("playing", 15);
    h.run(4.9);
    h.ws.receive({ type: "playback", playback: h.playback("paused", 20, { version: 2, item_id: "i-1", duration: 20, ended: true }), execute_at: h.serverNow(), reason: "ended" });
    assert.equal(media.paused, true);
    assert.equal(media.currentTime, 20);
    assert.deepEqual(h.ws.of("ended"), [{ type: "ended", item_id: "i-1" }]);
    // The browser marks the element ended; a late sync of the playing version must not restart it.
    media.ended = true;
    const plays = media.playCalls;
    h.ws.receive({ type: "sync", playback: h.playback("playing", 20, { version: 2, item_id: "i-1", duration: 20 }), offset: 0 });
    assert.equal(media.playCalls, plays, "play() on an ended element starts it over from 0");
    assert.ok(!media.seeks.includes(0), String(media.seeks));
  });

  test("a playing room's position stops at the item's duration", () => {
    const { h } = onItemOne("playing", 18);
    h.ws.receive({ type: "playback", playback: h.playback("playing", 18, { version: 2, item_id: "i-1", duration: 20 }), execute_at: h.serverNow(), reason: "seek" });
    h.clock.advance(10);
    assert.equal(h.client.roomPosition(), 20);
  });

  test("the element's duration is reported once per item, unless the queue knows it", () => {
    const { h, media } = onItemOne("paused", 0);
    media.fire("loadedmetadata");
    media.fire("durationchange");
    assert.deepEqual(h.ws.of("media"), [{ type: "media", item_id: "i-1", duration: 20 }]);
    // Item 2's duration is in the queue already.
    h.ws.receive({ type: "playback", playback: h.playback("paused", 0, { version: 2, item_id: "i-2" }), execute_at: h.serverNow(), reason: "item" });
    media.fire("loadedmetadata");
    assert.equal(h.ws.of("media").length, 1);
    // Without metadata (or a live stream: Infinity) there is nothing to tell.
    media.duration = Infinity;
    assert.equal(h.client.reportMedia("i-1", Infinity), false);
  });

  test("next, previous, ended, reportMedia and setReady send the frames and say so", () => {
    const h = setup();
    assert.equal(h.client.next("i-1"), false, "not connected");
    h.client.connect();
    h.join({ queue: queueOf("i-1"), playback: h.playback("paused", 0, { item_id: "i-1" }) });
    assert.equal(h.client.next("i-1"), true);
    assert.equal(h.client.next(), true, "the queue's current item by default");
    assert.equal(h.client.previous("i-2"), true);
    assert.equal(h.client.next(42), false);
    assert.equal(h.client.ended("i-1"), true);
    assert.equal(h.client.ended(""), false);
    assert.equal(h.client.reportMedia("i-1", 1423.5), true);
    assert.equal(h.client.reportMedia("i-1", 0), false);
    assert.equal(h.client.reportMedia("i-1", NaN), false);
    assert.equal(h.client.reportMedia("i-1", 604801), false);
    assert.equal(h.client.setReady(true), true);
    assert.equal(h.client.setReady(false), true);
    assert.equal(h.client.setReady("yes"), false);
    const sent = h.ws.sent.filter((m) => ["next", "previous", "ended", "media", "readiness"].includes(m.type));
    assert.deepEqual(sent, [
      { type: "next", current_item_id: "i-1" }, { type: "next", current_item_id: "i-1" },
      { type: "previous", current_item_id: "i-2" }, { type: "ended", item_id: "i-1" },
      { type: "media", item_id: "i-1", duration: 1423.5 },
      { type: "readiness", ready: true }, { type: "readiness", ready: false },
    ]);
  });

  test("presence readiness, ended and slow update the members and you", () => {
    const h = setup();
    h.client.connect();
    h.join();
    h.ws.receive({ type: "presence", event: "readiness", member: { ...BEN, ready: true }, detail: null });
    assert.equal(h.client.you.ready, true);
    h.ws.receive({ type: "presence", event: "ended", member: { ...ADA, ended: true }, detail: null });
    assert.equal(h.client.participants.get("u-ada").ended, true);
    h.ws.receive({ type: "presence", event: "slow", member: { ...BEN, behind: true }, detail: "Ben" });
    assert.equal(h.client.you.behind, true);
    assert.deepEqual(h.of("presence").map((p) => [p.event, p.detail]), [["readiness", null], ["ended", null], ["slow", "Ben"]]);
  });

  test("a malformed queue message changes nothing", () => {
    const { h } = onItemOne("paused", 0);
    for (const queue of [null, {}, { items: "x", current_item_id: null }, { items: [], current_item_id: 7 }]) {
      h.ws.receive({ type: "queue", queue });
    }
    assert.deepEqual(h.client.queue, queueOf("i-1"));
    assert.equal(h.of("queue").length, 1);
  });

  test("an older server (no item ids, no queue): one item event, and the element follows as before", () => {
    const media = new FakeMedia();
    const h = setup({ media });
    h.client.connect();
    h.join({ playback: h.playback("playing", 30, { version: 1 }) });
    assert.deepEqual(h.of("item"), [{ itemId: null, item: null, previousItemId: null }]);
    assert.equal(h.client.queue, null);
    assert.equal(media.paused, false);
    assert.equal(media.currentTime, 30);
    media.ended = true;
    media.fire("ended");
    assert.deepEqual(h.ws.of("ended"), [], "no item to name");
  });
});

test("connect() resolves even if a joined listener or the element fails", async () => {
  const media = new FakeMedia();
  media.play = () => { throw new Error("nope"); };
  const h = setup({ media });
  h.client.addEventListener("joined", () => { h.client._driveMedia = () => { throw new Error("bug"); }; });
  const connecting = h.client.connect();
  const joined = h.join({ playback: h.playback("playing", 1, { version: 1 }) });
  assert.deepEqual(await connecting, joined);
  assert.equal(h.of("error").at(-1).code, "client-error");
});
