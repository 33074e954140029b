// The pure parts of syncplay-client.js: the playback formula, media URLs, the clock estimate,
// the ping schedule, the drift decisions and the reconnect backoff. Run: node --test tests/web/
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  Backoff, ClockEstimator, DriftController, PROTOCOL_VERSION, VERSION, mediaUrl, nextPingDelay,
  positionAt, queueItem, roomUrl,
} from "../../syncplayd/web/syncplay-client.js";

const close = (actual, expected, eps = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= eps, `${actual} is not ${expected} (±${eps})`);

test("versions", () => {
  assert.equal(PROTOCOL_VERSION, 1);
  assert.match(VERSION, /^\d+\.\d+\.\d+$/);
});

describe("positionAt (§4.2)", () => {
  const pb = (state, extra = {}) => ({
    state, position: 10, rate: 1.5, anchor: 1000, version: 1, set_by: null, ...extra,
  });
  for (const [name, playback, t, expected] of [
    ["paused holds", pb("paused"), 1100, 10],
    ["waiting holds", pb("waiting"), 1100, 10],
    ["playing at the anchor", pb("playing"), 1000, 10],
    ["playing advances at the rate", pb("playing"), 1004, 16],
    ["a future anchor holds until then", pb("playing"), 990, 10],
    ["no playback", null, 1000, 0],
    ["playing stops at the duration", pb("playing", { duration: 14 }), 1100, 14],
    ["before the duration it plays on", pb("playing", { duration: 14 }), 1002, 13],
    ["ended holds at the duration", pb("paused", { position: 14, duration: 14, ended: true }), 1100, 14],
    ["an unknown duration does not stop it", pb("playing", { duration: null }), 1100, 160],
    ["a position past a stale duration is not moved back", pb("playing", { duration: 5 }), 1100, 10],
  ]) {
    test(name, () => close(positionAt(playback, t), expected));
  }
});

describe("queueItem", () => {
  const queue = { room_id: "r", current_item_id: "b", repeat: "none", shuffle: false, items: [
    { id: "a", content_type: "url", content_id: "1.webm", title: null, duration: null },
    { id: "b", content_type: "url", content_id: "2.webm", title: "Two", duration: 20 },
  ] };
  test("finds by id; null for an unknown id, no id or no queue", () => {
    assert.equal(queueItem(queue, "b").title, "Two");
    assert.equal(queueItem(queue, "c"), null);
    assert.equal(queueItem(queue, null), null);
    assert.equal(queueItem(null, "a"), null);
    assert.equal(queueItem({ items: "nope" }, "a"), null);
  });
});

describe("mediaUrl", () => {
  for (const [template, type, id, expected] of [
    ["{content_id}", "movie", "https://cdn.example/a b.mp4", "https://cdn.example/a b.mp4"],
    [" {content_id} ", "movie", "/media/film.mp4", "/media/film.mp4"],
    ["{content_id}", "movie", "HTTP://cdn.example/x", "HTTP://cdn.example/x"],
    ["{content_id}", "movie", "video.webm", "video.webm"],
    ["{content_id}", "movie", "//cdn.example/x.mp4", "//cdn.example/x.mp4"],
    ["/Videos/{content_id}/stream?static=true", "movie", "a/b?c", "/Videos/a%2Fb%3Fc/stream?static=true"],
    ["https://m.example/{content_type}/{content_id}", "tv show", "id 1", "https://m.example/tv%20show/id%201"],
    ["/v/{content_id}-{content_id}", "movie", "x&y", "/v/x%26y-x%26y"],
    // A value is never substituted twice: its braces are encoded.
    ["/v/{content_id}", "movie", "{content_type}", "/v/%7Bcontent_type%7D"],
    ["/v/{content_id}", "movie", "javascript:alert(1)", "/v/javascript%3Aalert(1)"],
    // Refused: anything that is neither http(s) nor a path.
    ["{content_id}", "movie", "javascript:alert(1)", null],
    ["{content_id}", "movie", "JavaScript:alert(1)", null],
    ["{content_id}", "movie", "  javascript:alert(1)", null],
    ["{content_id}", "movie", "java\tscript:alert(1)", null],
    ["{content_id}", "movie", "java\nscript:alert(1)", null],
    ["{content_id}", "movie", "data:text/html,<script>alert(1)</script>", null],
    ["{content_id}", "movie", "vbscript:msgbox", null],
    ["{content_id}", "movie", "blob:https://x/1", null],
    ["{content_id}", "movie", "", null],
    ["javascript:{content_id}", "movie", "1", null],
    ["data:video/mp4;base64,{content_id}", "movie", "AAAA", null],
    [null, "movie", "x", null],
    ["{content_id}", "movie", 42, null],
  ]) {
    test(`${JSON.stringify(template)} + ${JSON.stringify(id)} -> ${JSON.stringify(expected)}`, () => {
      assert.equal(mediaUrl(template, type, id), expected);
    });
  }
});

describe("ClockEstimator (§4.1)", () => {
  // A sample with the given offset (server minus local) and round trip, symmetric.
  const add = (est, offset, delay, t0 = 100) =>
    est.addSample(t0, t0 + delay / 2 + offset, t0 + delay / 2 + offset, t0 + delay);

  test("empty: offset 0, delay null", () => {
    const est = new ClockEstimator();
    assert.equal(est.offset, 0);
    assert.equal(est.delay, null);
    assert.equal(est.sampleCount, 0);
  });

  test("the NTP formulas, and the server's processing time is not delay", () => {
    const est = new ClockEstimator();
    // 10 ms each way, 5 ms in the server, offset 1000.
    const sample = est.addSample(1, 1001.01, 1001.015, 1.025);
    close(sample.offset, 1000, 1e-9);
    close(sample.delay, 0.02, 1e-9);
  });

  test("the minimum-delay sample wins", () => {
    const est = new ClockEstimator();
    add(est, 50.3, 0.3);
    add(est, 50.01, 0.02);
    add(est, 50.2, 0.2);
    close(est.offset, 50.01);
    close(est.delay, 0.02);
    assert.equal(est.sampleCount, 3);
  });

  test("on a tie the newest wins", () => {
    const est = new ClockEstimator();
    add(est, 1, 0.05);
    add(est, 2, 0.05);
    close(est.offset, 2);
  });

  test("a window of 8: the best sample falls out after 8 newer ones", () => {
    const est = new ClockEstimator();
    add(est, 7, 0.001);
    for (let i = 0; i < 7; i += 1) add(est, 9, 0.1 + i * 0.01);
    close(est.offset, 7); // still in the window
    add(est, 9, 0.5);
    close(est.offset, 9); // pushed out: the best of the rest
    close(est.delay, 0.1);
    assert.equal(est.sampleCount, 9);
  });

  test("a custom window", () => {
    const est = new ClockEstimator({ window: 2 });
    add(est, 1, 0.01);
    add(est, 2, 0.2);
    add(est, 3, 0.3);
    close(est.offset, 2);
  });

  test("asymmetric paths: off by half the asymmetry, delay is the whole round trip", () => {
    const est = new ClockEstimator();
    // True offset 100; 100 ms up, 20 ms down.
    const s = est.addSample(0, 100.1, 100.1, 0.12);
    close(s.offset, 100.04, 1e-9);
    close(s.delay, 0.12, 1e-9);
  });

  test("a stepped clock (negative delay) is clamped to 0", () => {
    const est = new ClockEstimator();
    const s = est.addSample(10, 1000, 1000, 9.9);
    assert.equal(s.delay, 0);
  });

  test("non-finite samples are dropped", () => {
    const est = new ClockEstimator();
    add(est, 5, 0.1);
    for (const bad of [[NaN, 1, 1, 1], [0, Infinity, 1, 1], [0, 1, undefined, 1], [0, 1, 1, "2"]]) {
      assert.equal(est.addSample(...bad), null);
    }
    close(est.offset, 5);
    assert.equal(est.sampleCount, 1);
  });

  test("reset forgets everything", () => {
    const est = new ClockEstimator();
    add(est, 5, 0.1);
    est.reset();
    assert.equal(est.offset, 0);
    assert.equal(est.delay, null);
    assert.equal(est.sampleCount, 0);
  });
});

describe("nextPingDelay", () => {
  for (const [sent, options, expected] of [
    [0, undefined, 0],
    [1, undefined, 0.5],
    [4, undefined, 0.5],
    [5, undefined, 10],
    [50, undefined, 10],
    [2, { fastPingCount: 2, fastPingInterval: 0.1, slowPingInterval: 3 }, 3],
    [1, { fastPingCount: 2, fastPingInterval: 0.1, slowPingInterval: 3 }, 0.1],
  ]) {
    test(`${sent} sent ${JSON.stringify(options ?? {})} -> ${expected}`, () => {
      assert.equal(nextPingDelay(sent, options), expected);
    });
  }

  test("the default schedule: 5 pings 0.5 s apart, then every 10 s", () => {
    const times = [];
    let t = 0;
    for (let sent = 0; sent < 7; sent += 1) {
      t += nextPingDelay(sent);
      times.push(t);
    }
    assert.deepEqual(times, [0, 0.5, 1, 1.5, 2, 12, 22]);
  });
});

describe("DriftController (§4.6)", () => {
  test("dead band: at the room's rate", () => {
    const dc = new DriftController();
    for (const drift of [0, 0.005, -0.005, 0.002]) {
      assert.deepEqual(dc.decide({ drift, roomRate: 1.25, now: 0 }),
        { action: "none", rate: 1.25, reason: "in-sync" });
    }
  });

  for (const [drift, roomRate, expected] of [
    [-0.088, 1, 1.044], // §5: 88 ms behind
    [0.05, 1, 0.975],
    [0.3, 1, 0.95], // clamped at -5 %
    [-0.3, 1, 1.05], // clamped at +5 %
    [-1.9, 1, 1.05],
    [2.0, 1, 0.95], // the threshold itself is still corrected by rate
    [0.05, 2, 1.95], // relative to the room's rate
    [-1, 0.5, 0.525],
    [-0.022, 1, 1.011], // below the old 40 ms dead band: a reload left it 22 ms behind
    [0.01, 1, 0.995],
  ]) {
    test(`rate correction: drift ${drift} at ${roomRate}x -> ${expected}`, () => {
      const d = new DriftController().decide({ drift, roomRate, now: 0 });
      assert.equal(d.action, "rate");
      close(d.rate, expected, 1e-12);
    });
  }

  test("within the fine band: rate only, however long it takes, never a seek", () => {
    const dc = new DriftController();
    for (let t = 0; t <= 60; t += 0.5) {
      const d = dc.decide({ drift: 0.039, roomRate: 1, now: t });
      assert.equal(d.action, "rate", `t=${t}`);
      assert.equal(d.reason, "fine");
      assert.ok(Math.abs(d.rate - 1) <= 0.05);
    }
    // A player that ignores the rate and stays 30 ms off is left alone: a seek would stall it.
    const stubborn = new DriftController({ correctionBudget: 1 });
    for (let t = 0; t <= 20; t += 0.5) assert.notEqual(stubborn.decide({ drift: -0.03, now: t }).action, "seek");
  });

  test("the fine correction converges on a simulated player, by steps of at most 5 %", () => {
    const dc = new DriftController();
    let drift = -0.022;
    let last = 1;
    for (let t = 0; t < 5; t += 0.5) {
      const d = dc.decide({ drift, roomRate: 1, now: t });
      assert.notEqual(d.action, "seek");
      assert.ok(Math.abs(d.rate - last) <= 0.05 + 1e-12);
      last = d.rate;
      drift += (d.rate - 1) * 0.5; // the player plays half a second at that rate
    }
    assert.ok(Math.abs(drift) <= 0.005, `still ${drift * 1000} ms off`);
  });

  test("beyond the threshold: seek", () => {
    const dc = new DriftController();
    assert.equal(dc.decide({ drift: 2.01, roomRate: 1, now: 0 }).action, "seek");
    assert.equal(new DriftController().decide({ drift: -5, roomRate: 1, now: 0 }).action, "seek");
    assert.equal(new DriftController({ seekThreshold: 5 }).decide({ drift: -4, now: 0 }).action, "rate");
  });

  test("a non-finite drift compares nothing and plays at the room's rate", () => {
    const d = new DriftController().decide({ drift: NaN, roomRate: 1.5, now: 0 });
    assert.deepEqual(d, { action: "none", rate: 1.5, reason: "no-comparison" });
  });

  test("budget exhausted: a correction that does not work gives up and seeks", () => {
    const dc = new DriftController();
    for (let t = 0; t < 8; t += 0.5) {
      assert.equal(dc.decide({ drift: 0.5, roomRate: 1, now: t }).action, "rate", `t=${t}`);
    }
    const d = dc.decide({ drift: 0.5, roomRate: 1, now: 8 });
    assert.deepEqual(d, { action: "seek", rate: 1, reason: "budget" });
  });

  test("the budget starts again once the drift was back in the dead band", () => {
    const dc = new DriftController();
    for (let t = 0; t <= 4; t += 0.5) dc.decide({ drift: 0.5, now: t });
    assert.equal(dc.decide({ drift: 0.004, now: 4.5 }).action, "none");
    for (let t = 5; t < 13; t += 0.5) assert.equal(dc.decide({ drift: 0.5, now: t }).action, "rate");
    assert.equal(dc.decide({ drift: 0.5, now: 13 }).action, "seek");
  });

  test("an interrupted comparison also restarts the budget", () => {
    const dc = new DriftController();
    for (let t = 0; t <= 6; t += 0.5) dc.decide({ drift: 0.5, now: t });
    dc.decide({ drift: NaN, now: 6.5 });
    assert.equal(dc.decide({ drift: 0.5, now: 9 }).action, "rate");
  });

  test("cooldown: no second seek within seekCooldown of the last one", () => {
    const dc = new DriftController();
    assert.equal(dc.decide({ drift: 5, now: 0 }).action, "seek");
    dc.noteSeekLanded(0.01, 0.2);
    const during = dc.decide({ drift: 2.5, roomRate: 1, now: 1 });
    assert.deepEqual(during, { action: "rate", rate: 0.95, reason: "cooldown" });
    assert.equal(dc.decide({ drift: 2.5, now: 3.1 }).action, "rate"); // 2.9 s after landing
    assert.equal(dc.decide({ drift: 2.5, now: 3.3 }).action, "seek");
  });

  test("keyframe landing widens the seek tolerance to |L| + 0.5", () => {
    const dc = new DriftController();
    assert.equal(dc.seekTolerance, 2);
    dc.decide({ drift: -3, now: 0 });
    dc.noteSeekLanded(-1.8, 0.2);
    close(dc.seekTolerance, 2.3);
    assert.equal(dc.decide({ drift: -2.2, now: 10 }).action, "rate");
    assert.equal(dc.decide({ drift: -2.4, now: 10 }).action, "seek");
  });

  test("small landing errors do not lower the tolerance; big ones are capped", () => {
    const dc = new DriftController();
    dc.noteSeekLanded(0.3, 0);
    assert.equal(dc.seekTolerance, 2);
    dc.noteSeekLanded(30, 0);
    assert.equal(dc.seekTolerance, 10);
    dc.reset();
    assert.equal(dc.seekTolerance, 2);
  });

  test("no budget seek that the stream's landing error would undo", () => {
    const dc = new DriftController();
    dc.noteSeekLanded(1, 0); // this stream lands up to 1 s off
    for (let t = 5; t <= 30; t += 0.5) {
      assert.equal(dc.decide({ drift: 0.9, now: t }).action, "rate", `t=${t}`);
    }
  });

  test("a keyframe-only stream: no seek loop, the rate closes the rest", () => {
    // Keyframes every 4 s: a seek lands on the keyframe before its target.
    const dc = new DriftController();
    const keyframe = 4;
    let element = 0;
    let seeks = 0;
    let lastSeekAt = -Infinity;
    for (let t = 10; t <= 250; t += 0.5) {
      const room = t;
      const decision = dc.decide({ drift: element - room, roomRate: 1, now: t });
      if (decision.action === "seek") {
        seeks += 1;
        lastSeekAt = t;
        const target = room + 0.37; // an awkward target, between keyframes
        element = Math.floor(target / keyframe) * keyframe;
        dc.noteSeekLanded(element - target, t + 0.1);
      }
      element += 0.5 * decision.rate; // the element plays on for the next half second
    }
    assert.ok(seeks <= 2, `seeked ${seeks} times`);
    assert.ok(lastSeekAt < 20, `seeked again at ${lastSeekAt}`);
    assert.ok(Math.abs(element - 250.5) < 0.1, `still ${element - 250.5} s off`);
  });
});

describe("Backoff (§4.11)", () => {
  test("doubling from 0.1 s up to 5 s, 10 attempts, then null", () => {
    const b = new Backoff({ random: () => 1 });
    const delays = Array.from({ length: 11 }, () => b.next());
    const expected = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5, 5, 5];
    expected.forEach((d, i) => close(delays[i], d, 1e-12));
    assert.equal(delays[10], null);
  });

  test("jitter stays within [d/2, d]", () => {
    for (const [random, factor] of [[() => 0, 0.5], [() => 0.5, 0.75], [() => 0.999999, 0.9999995]]) {
      const b = new Backoff({ initial: 1, max: 8, random });
      close(b.next(), 1 * factor, 1e-9);
      close(b.next(), 2 * factor, 1e-9);
      close(b.next(), 4 * factor, 1e-9);
      close(b.next(), 8 * factor, 1e-9);
      close(b.next(), 8 * factor, 1e-9);
    }
    const b = new Backoff({ attempts: 1000 });
    for (let i = 0; i < 1000; i += 1) {
      const d = b.next();
      const base = Math.min(5, 0.1 * 2 ** i);
      assert.ok(d >= base / 2 && d <= base, `${d} outside [${base / 2}, ${base}]`);
    }
  });

  test("after(retryAfter): the server's hint plus up to a tenth of it (at least initial)", () => {
    for (const [hint, jitter] of [[0, 0.1], [0.5, 0.1], [2, 0.2], [30, 3]]) {
      close(new Backoff({ random: () => 0 }).after(hint), hint);
      close(new Backoff({ random: () => 1 }).after(hint), hint + jitter);
      close(new Backoff({ random: () => 0.5 }).after(hint), hint + jitter / 2);
    }
    // A hint out of reason is bounded: never negative, never more than a minute (plus jitter).
    close(new Backoff({ random: () => 0 }).after(-4), 0);
    close(new Backoff({ random: () => 0 }).after(3600), 60);
    close(new Backoff({ random: () => 0 }).after(NaN), 0);
  });

  test("after() counts as an attempt, and is null once they are used up", () => {
    const b = new Backoff({ attempts: 2, random: () => 0 });
    close(b.after(1.5), 1.5);
    close(b.next(), 0.1); // the backoff went on doubling from where the hint left it
    assert.equal(b.after(1.5), null);
    b.reset();
    close(b.after(1.5), 1.5);
  });

  test("reset starts over; a broken random is clamped", () => {
    const b = new Backoff({ attempts: 2, random: () => 7 });
    close(b.next(), 0.1);
    close(b.next(), 0.2);
    assert.equal(b.next(), null);
    b.reset();
    close(b.next(), 0.1);
    const nan = new Backoff({ random: () => NaN });
    close(nan.next(), 0.05);
  });
});

describe("roomUrl (§2.5)", () => {
  const ROOM = "0b7e9c4e-5d1a-4f3e-8a2b-1c9d8e7f6a50";
  for (const [name, url, roomId, expected] of [
    ["adds the room", "ws://h/api/v1/syncplay/ws", ROOM, `ws://h/api/v1/syncplay/ws?room=${ROOM}`],
    ["keeps the rest of the query as it was", "wss://h:8/ws?v=%20&x", ROOM, `wss://h:8/ws?v=%20&x&room=${ROOM}`],
    ["spells the id in lower case", "ws://h/ws", ROOM.toUpperCase(), `ws://h/ws?room=${ROOM}`],
    ["replaces a room already named", "ws://h/ws?ROOM=other&v=1", ROOM, `ws://h/ws?v=1&room=${ROOM}`],
    ["keeps a fragment last", "ws://h/ws?v=1#f", ROOM, `ws://h/ws?v=1&room=${ROOM}#f`],
    ["leaves the URL alone for an id that is no UUID", "ws://h/ws?v=1", "not-a-room", "ws://h/ws?v=1"],
    ["leaves the URL alone without an id", "ws://h/ws", undefined, "ws://h/ws"],
  ]) {
    test(name, () => assert.equal(roomUrl(url, roomId), expected));
  }
});
