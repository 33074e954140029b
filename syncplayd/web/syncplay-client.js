/**
 * syncplay-client.js: the browser client of the syncplayd WebSocket protocol, version 1.
 *
 * One ES module, no build step, no dependencies. It touches no browser global when it is
 * imported: `WebSocket`, `performance` and the timers are read when a client is created, and can
 * be injected (the Node tests do). The protocol is docs/protocol.md; the Python reference client
 * (syncplayd/client/) implements the same behaviour, and its defaults are used here.
 *
 * Theory of operation. A SyncClient owns at most one socket at a time (`_conn`). Every callback of
 * a socket checks that its connection is still the current one, so a late event of an old socket
 * changes nothing. Room changes (`playback`) are queued until their `execute_at` and then
 * *applied*: the element is moved (rate, seek, play/pause) and the applied version is what the
 * heartbeats report. Between changes a drift loop compares the element with the room and nudges
 * its `playbackRate` (DriftController). A playback names the queue item it plays: when that
 * changes, the page is told first (`item`) and loads the item's media, and only then is the
 * element moved; an element whose media is not the applied item's is held, never seeked. The
 * element's end and length are reported to the room (`ended`, `media`), and an element at its
 * end is never played (a browser would start it over). Every callback into this module from the
 * outside world (socket, element, timers) runs inside a guard: a failure becomes an `error` event
 * with the code "client-error", never an exception in the page.
 *
 * @module syncplay-client
 */

/** The protocol version spoken (`hello.protocol`). */
export const PROTOCOL_VERSION = 1;
/** The version of this library (semver; the major version follows breaking API changes). */
export const VERSION = "1.4.0";

const MAX_POSITION = 604800; // §1.1: one week
const MIN_RATE = 0.25;
const MAX_RATE = 4;
const MAX_FRAME_BYTES = 16384; // §4.12: a bigger client frame is refused unparsed
/** `closing` reasons after which reconnecting is wrong (§4.10). */
const FINAL_CLOSE_REASONS = new Set([
  "left", "room-ended", "kicked", "banned", "replaced", "unauthorized", "protocol-error",
]);
/** Refusals of a join that mean "not now" (the server's database is down): a reconnecting client
 * keeps its session and tries again after the backoff, as the Python client does. */
const TRANSIENT_REFUSALS = new Set(["unavailable"]);
const APPLY_SEEK_TOLERANCE = 0.1; // a room change seeks only an element further off than this
const OWN_SEEK_GRACE = 1.0; // an own seek still loading after this long is a real stall
const MAX_OUTSTANDING_PINGS = 32; // as the Python client: lost pongs are forgotten
const MAX_PENDING_CHANGES = 8;
const MAX_PENDING_CHATS = 32;
const HAVE_FUTURE_DATA = 3; // HTMLMediaElement.readyState: enough data to play on
const RESUME_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const ROOM_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The longest `closing.retry_after` obeyed, seconds: a wrong hint must not park a client. */
const MAX_RETRY_AFTER = 60;

/**
 * @typedef {{state: "playing"|"paused"|"waiting", position: number, rate: number, anchor: number,
 *   version: number, set_by: string|null, item_id?: string|null, duration?: number|null,
 *   ended?: boolean}} Playback The room's playback (§3.1 PlaybackWire): `position` holds at server
 *   time `anchor`. `item_id` is the queue item played, `duration` its length when known, and
 *   `ended` marks the end of the media (then `state` is "paused" and `position` the duration).
 * @typedef {{user_id: string, user_name: string, role: string, is_connected: boolean,
 *   sessions: number, buffering: boolean, latency_ms: number|null, muted: boolean,
 *   ready: boolean, ended: boolean, behind: boolean, desktop: boolean}} Member One user (§3.1).
 *   `muted`, `ready`, `ended`, `behind` and `desktop` (a Syncplay desktop player) are always
 *   booleans here: false when the server leaves them out.
 * @typedef {{id: string, content_type: string, content_id: string, title: string|null,
 *   duration: number|null}} QueueItem One item of a room's play queue.
 * @typedef {{room_id: string, current_item_id: string|null, next_item_id?: string|null,
 *   repeat: "none"|"one"|"all", shuffle: boolean, items: QueueItem[]}} Queue A room's play
 *   queue, as on REST (`next_item_id`: what plays when the current item ends).
 * @typedef {{heartbeat_interval: number, threshold_seconds: number, max_latency_ms: number,
 *   ready_timeout_seconds: number, disconnect_timeout_seconds: number,
 *   max_rate_correction: number, control: "everyone"|"moderators"}} SyncSettings (§3.1)
 * @typedef {{id: string, room_id: string, user_id: string, user_name: string, message: string,
 *   created_at: string}} ChatMessage A stored chat message (§3.1).
 * @typedef {{action: "none"|"rate"|"seek", rate: number, reason: string}} DriftDecision
 */

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const str = (v, fallback) => (typeof v === "string" ? v : fallback);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

const MEMBER_FLAGS = ["muted", "ready", "ended", "behind", "desktop"];

/**
 * A Member as this library keeps it: the server's object, with `muted`, `ready`, `ended`,
 * `behind` and `desktop` booleans (older servers leave them out).
 * @param {any} m @returns {Member}
 */
function asMember(m) {
  if (MEMBER_FLAGS.every((flag) => typeof m[flag] === "boolean")) return m;
  const flags = Object.fromEntries(MEMBER_FLAGS.map((flag) => [flag, m[flag] === true]));
  return { ...m, ...flags };
}

/** @param {any} q @returns {q is Queue} */
function isQueue(q) {
  return isObject(q) && Array.isArray(q.items)
    && (q.current_item_id === null || typeof q.current_item_id === "string");
}

/** @param {any} pb @returns {pb is Playback} */
function isPlayback(pb) {
  return isObject(pb) && typeof pb.state === "string" && isNum(pb.position) && isNum(pb.rate)
    && isNum(pb.anchor) && isNum(pb.version);
}

/**
 * The room's position at server time `serverTime` (§4.2). A future anchor is a scheduled start:
 * the position holds until then. A playing room stops at the media's `duration`, when it is
 * known: the server ends it there.
 * @param {Playback|null} playback
 * @param {number} serverTime
 * @returns {number} seconds into the media (0 without a playback)
 */
export function positionAt(playback, serverTime) {
  if (!playback) return 0;
  if (playback.state !== "playing") return playback.position;
  const position = playback.position + Math.max(0, serverTime - playback.anchor) * playback.rate;
  const end = playback.duration;
  return isNum(end) && end > 0 ? Math.min(position, Math.max(end, playback.position)) : position;
}

/**
 * The item of `queue` with id `itemId`, or null.
 * @param {Queue|null} queue
 * @param {string|null|undefined} itemId
 * @returns {QueueItem|null}
 */
export function queueItem(queue, itemId) {
  if (!isQueue(queue) || typeof itemId !== "string") return null;
  return queue.items.find((item) => isObject(item) && item.id === itemId) ?? null;
}

/**
 * `url` naming the room in its query (`?room=<id>`), the rest of the query kept (§2.5). A proxy in
 * front of several nodes routes by it, so the id is spelled one way (lower case), replacing any
 * `room` already there. A `roomId` that is no UUID is left out: the server's refusal of the join
 * then says why, better than a refused upgrade (which a page cannot read) would.
 * @param {string} url
 * @param {string} roomId
 * @returns {string}
 */
export function roomUrl(url, roomId) {
  if (typeof url !== "string" || typeof roomId !== "string" || !ROOM_ID.test(roomId)) return url;
  const hashAt = url.indexOf("#");
  const fragment = hashAt === -1 ? "" : url.slice(hashAt);
  const rest = hashAt === -1 ? url : url.slice(0, hashAt);
  const queryAt = rest.indexOf("?");
  const path = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const kept = queryAt === -1 ? [] : rest.slice(queryAt + 1).split("&")
    .filter((part) => part !== "" && part.split("=", 1)[0].toLowerCase() !== "room");
  return `${path}?${[...kept, `room=${roomId.toLowerCase()}`].join("&")}${fragment}`;
}

/**
 * The media URL of a room's content, from the daemon's `web.media_url_template`.
 *
 * A lone `{content_id}` template takes the content id itself as the URL; otherwise every
 * `{content_type}` and `{content_id}` is replaced by the percent-encoded value. The result must be
 * an http(s) URL or a path: anything else (`javascript:`, `data:`, ...) gives `null`, since the
 * content id comes from whoever created the room.
 * @param {string} template
 * @param {string} contentType
 * @param {string} contentId
 * @returns {string|null}
 */
export function mediaUrl(template, contentType, contentId) {
  if (typeof template !== "string" || typeof contentId !== "string") return null;
  let url = contentId;
  if (template.trim() !== "{content_id}") {
    const values = {
      content_type: encodeURIComponent(String(contentType ?? "")),
      content_id: encodeURIComponent(contentId),
    };
    url = template.replace(/\{(content_type|content_id)\}/g, (_, key) => values[key]);
  }
  // URL parsers drop control characters and whitespace around and inside a scheme
  // ("java\tscript:"), so the check looks past them.
  const bare = url.replace(/[\u0000-\u0020\u007f]/g, "");
  if (bare === "") return null;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(bare);
  if (scheme === null) return url; // a path or a protocol-relative URL
  return ["http", "https"].includes(scheme[1].toLowerCase()) ? url : null;
}

/**
 * The NTP estimate of the server clock (§4.1): keeps the last `window` samples and trusts the one
 * with the smallest delay (the newest on a tie), whose asymmetry error is the smallest.
 */
export class ClockEstimator {
  /** @param {{window?: number}} [options] */
  constructor({ window = 8 } = {}) {
    this._window = Math.max(1, Math.floor(window) || 1);
    /** @type {{offset: number, delay: number}[]} */
    this._samples = [];
    this._count = 0;
  }

  /**
   * One ping/pong exchange; all in seconds.
   * @param {number} t0 local time the ping was sent
   * @param {number} t1 server time it was read
   * @param {number} t2 server time the pong was sent
   * @param {number} t3 local time the pong arrived
   * @returns {{offset: number, delay: number}|null} the sample; null (and ignored) if not finite
   */
  addSample(t0, t1, t2, t3) {
    if (![t0, t1, t2, t3].every(isNum)) return null;
    const offset = ((t1 - t0) + (t2 - t3)) / 2;
    // A negative delay only comes from a clock that stepped mid-exchange; it would win forever.
    const delay = Math.max(0, (t3 - t0) - (t2 - t1));
    if (!isNum(offset) || !isNum(delay)) return null;
    this._samples.push({ offset, delay });
    if (this._samples.length > this._window) this._samples.shift();
    this._count += 1;
    return { offset, delay };
  }

  /** @returns {{offset: number, delay: number}|null} */
  _best() {
    let best = null;
    for (const s of this._samples) if (best === null || s.delay <= best.delay) best = s;
    return best;
  }

  /** Server clock minus local clock, seconds; 0 before the first sample. */
  get offset() { return this._best()?.offset ?? 0; }
  /** The round trip of the trusted sample, seconds; null before the first sample. */
  get delay() { return this._best()?.delay ?? null; }
  /** Samples accepted since construction or the last reset() (not capped by the window). */
  get sampleCount() { return this._count; }

  /** Forget every sample: a new socket may take another path, or reach a restarted server. */
  reset() { this._samples = []; this._count = 0; }
}

/**
 * Seconds to wait before the next clock ping, `pingsSent` pings having been sent on this socket:
 * the first at once, `fastPingCount` pings `fastPingInterval` apart, then `slowPingInterval`.
 * @param {number} pingsSent
 * @param {{fastPingCount?: number, fastPingInterval?: number, slowPingInterval?: number}} [options]
 * @returns {number}
 */
export function nextPingDelay(
  pingsSent, { fastPingCount = 5, fastPingInterval = 0.5, slowPingInterval = 10 } = {},
) {
  if (pingsSent <= 0) return 0;
  return pingsSent < fastPingCount ? fastPingInterval : slowPingInterval;
}

/**
 * The drift correction's decisions (§4.6), without side effects: the caller measures the drift
 * and moves its player.
 *
 * Drift is corrected by a gentle rate change (at most ±`maxRateCorrection`), down to `deadBand`:
 * a player a few milliseconds off is brought back without a seek, which would stall it. Drift
 * beyond `seekThreshold`, or a correction beyond `fineBand` that did not work within
 * `correctionBudget` seconds, is corrected by a seek; drift within `fineBand` never seeks. Streams
 * that can only seek to keyframes land off target: the largest landing error seen widens the seek
 * tolerance to `|L| + 0.5` (capped) and no seek follows another within `seekCooldown`, so a seek
 * never loops.
 */
export class DriftController {
  /**
   * @param {{maxRateCorrection?: number, deadBand?: number, fineBand?: number,
   *   seekThreshold?: number, correctionBudget?: number, seekCooldown?: number,
   *   maxSeekTolerance?: number}} [options]
   */
  constructor({
    maxRateCorrection = 0.05, deadBand = 0.005, fineBand = 0.04, seekThreshold = 2.0,
    correctionBudget = 8, seekCooldown = 3, maxSeekTolerance = 10,
  } = {}) {
    this.maxRateCorrection = maxRateCorrection;
    this.deadBand = deadBand;
    this.fineBand = Math.max(fineBand, deadBand);
    this.seekThreshold = seekThreshold;
    this.correctionBudget = correctionBudget;
    this.seekCooldown = seekCooldown;
    this.maxSeekTolerance = maxSeekTolerance;
    this.reset();
  }

  /** Drift beyond this seeks (outside the cooldown): the threshold, widened by landing errors. */
  get seekTolerance() {
    const widened = this._landing > 0 ? Math.min(this.maxSeekTolerance, this._landing + 0.5) : 0;
    return Math.max(this.seekThreshold, widened);
  }

  /**
   * What to do about `drift` (local minus room position, seconds; positive: ahead). A non-finite
   * drift means "nothing to compare now" (paused, loading...): play at the room's rate, and the
   * next correction starts with a fresh budget.
   * @param {{drift: number, roomRate?: number, now: number}} input `now`: local seconds
   * @returns {DriftDecision}
   */
  decide({ drift, roomRate = 1, now }) {
    const base = isNum(roomRate) && roomRate > 0 ? roomRate : 1;
    if (!isNum(drift)) {
      this._correctingSince = null;
      return { action: "none", rate: base, reason: "no-comparison" };
    }
    const size = Math.abs(drift);
    if (size <= this.deadBand) {
      this._correctingSince = null;
      return { action: "none", rate: base, reason: "in-sync" };
    }
    const m = this.maxRateCorrection;
    // Half the gap per second: 20 ms off plays at ±1 %, so the step is never heard.
    const rate = base * (1 - clamp(drift / 2, -m, m));
    if (size <= Math.min(this.fineBand, this.seekTolerance)) {
      // Too small to be worth a seek, whatever the budget says: only the rate closes it.
      this._correctingSince = null;
      return { action: "rate", rate, reason: "fine" };
    }
    const cooling = this._lastSeekAt !== null && now - this._lastSeekAt < this.seekCooldown;
    if (size > this.seekTolerance && !cooling) return this._seek(now, base, "threshold");
    if (this._correctingSince === null) {
      this._correctingSince = now;
    } else if (
      !cooling && now - this._correctingSince >= this.correctionBudget
      // A seek is only worth it if it lands closer than the drift it replaces.
      && size > this._landing + this.fineBand
    ) {
      return this._seek(now, base, "budget");
    }
    return { action: "rate", rate, reason: size > this.seekTolerance ? "cooldown" : "correcting" };
  }

  /** @returns {DriftDecision} */
  _seek(now, rate, reason) {
    this._correctingSince = null;
    this._lastSeekAt = now;
    return { action: "seek", rate, reason };
  }

  /**
   * A seek completed `landingError` seconds off its target (landed minus target): remember how
   * precisely this stream seeks, and start the cooldown.
   * @param {number} landingError
   * @param {number} now local seconds
   */
  noteSeekLanded(landingError, now) {
    if (isNum(landingError)) {
      this._landing = Math.min(this.maxSeekTolerance, Math.max(this._landing, Math.abs(landingError)));
    }
    if (isNum(now)) this._lastSeekAt = now;
  }

  /** Forget everything (a new element or a new source). */
  reset() {
    this._correctingSince = null;
    this._lastSeekAt = null;
    this._landing = 0;
  }
}

/**
 * The reconnect delays (§4.11): `initial`, doubling up to `max`, each jittered into [d/2, d] so
 * that a room full of clients cut by one restart does not come back in lockstep.
 */
export class Backoff {
  /** @param {{initial?: number, max?: number, attempts?: number, random?: () => number}} [options] */
  constructor({ initial = 0.1, max = 5, attempts = 10, random = Math.random } = {}) {
    this.initial = initial;
    this.max = max;
    this.attempts = attempts;
    this._random = random;
    this._failures = 0;
  }

  /** @returns {number|null} seconds before the next attempt; null once the attempts are used up */
  next() {
    if (this._failures >= this.attempts) return null;
    const delay = Math.min(this.max, this.initial * 2 ** Math.min(this._failures, 60));
    this._failures += 1;
    return delay * (0.5 + 0.5 * clamp(Number(this._random()) || 0, 0, 1));
  }

  /**
   * An attempt the server said when to make (`closing.retry_after`, §4.10): after `retryAfter`
   * (at most 60 s) plus a jitter of up to a tenth of it (at least `initial`), so that a room's
   * members, moved together, do not all come back in the same instant. It counts as an attempt.
   * @param {number} retryAfter seconds
   * @returns {number|null} seconds before the attempt; null once the attempts are used up
   */
  after(retryAfter) {
    if (this.next() === null) return null;
    const hint = clamp(isNum(retryAfter) ? retryAfter : 0, 0, MAX_RETRY_AFTER);
    return hint + Math.max(this.initial, hint / 10) * clamp(Number(this._random()) || 0, 0, 1);
  }

  /** After a success: the next delay is `initial` again. */
  reset() { this._failures = 0; }
}

/** A refusal or failure: `code` is the protocol's error code or closing reason, or the client's. */
export class SyncError extends Error {
  /**
   * @param {string} code e.g. "wrong-password", "room-full", "unauthorized", "timeout",
   *   "connection-failed", "connection-lost", "not-connected", "closed"
   * @param {string} [message]
   * @param {string|null} [ref] the server's `ref` (a chat's client_id)
   */
  constructor(code, message = code, ref = null) {
    super(message);
    this.name = "SyncError";
    /** @type {string} */
    this.code = code;
    /** @type {string|null} */
    this.ref = ref;
  }
}

// -- safe access to the media element: an element (or a fake) that throws never breaks the client
function readTime(el) {
  try {
    const t = el.currentTime;
    return isNum(t) ? t : null;
  } catch { return null; }
}
function readProp(el, name) {
  try { return el[name]; } catch { return undefined; }
}
function canPlay(el) {
  const ready = readProp(el, "readyState");
  return typeof ready !== "number" || ready >= HAVE_FUTURE_DATA;
}
function warn(...args) {
  try { globalThis.console?.warn?.("syncplay-client:", ...args); } catch { /* no console */ }
}
function utf8Length(text) {
  if (typeof TextEncoder === "function") return new TextEncoder().encode(text).length;
  return text.length * 3; // the worst case
}

/**
 * One member of one room, driving an HTMLMediaElement (optional) in step with the others.
 *
 * Events (CustomEvent, payload in `detail`): statechange {state, reason}; joined {message};
 * scheduled {playback, reason, executeAt, setBy}; playback {playback, reason, executeAt, setBy};
 * item {itemId, item, previousItemId}; queue {queue, currentChanged};
 * participants {participants}; room {room, settings};
 * presence {event, member, detail} (one for each element of a `presence_batch` too);
 * chat {message}; chat_deleted {messageId, message};
 * error {code, message, ref}; closing {reason, message, retryAfter}; autoplayblocked {};
 * drift {drift, action, rate}.
 */
export class SyncClient extends EventTarget {
  /**
   * @param {object} config
   * @param {string} config.url ws:// or wss:// URL of /api/v1/syncplay/ws (the room is added to its
   *   query: `?room=<roomId>`, see roomUrl)
   * @param {string|null} [config.token] the JWT, sent as hello.token (browsers cannot set headers)
   * @param {string} config.roomId
   * @param {string|null} [config.password]
   * @param {string|null} [config.invitationCode]
   * @param {string|null} [config.resumeSessionId] a session_id to resume on the first join
   * @param {HTMLMediaElement|null} [config.media]
   * @param {string} [config.clientName] sent as hello.client
   * @param {any} [config.WebSocket] the WebSocket class
   * @param {() => number} [config.now] a monotonic local clock, seconds
   * @param {(fn: () => void, ms: number) => any} [config.setTimeout]
   * @param {(id: any) => void} [config.clearTimeout]
   * @param {object} [config.options] fastPingCount, fastPingInterval, slowPingInterval,
   *   driftCheckInterval, reconnect {initial, max, attempts}, requestTimeout, stallTimeout,
   *   chatHistory, drift (DriftController options)
   */
  constructor({
    url, token = null, roomId, password = null, invitationCode = null, resumeSessionId = null,
    media = null, clientName = `syncplay-client.js/${VERSION}`,
    WebSocket = globalThis.WebSocket, now = () => performance.now() / 1000,
    setTimeout = globalThis.setTimeout, clearTimeout = globalThis.clearTimeout, options = {},
  } = /** @type {any} */ ({})) {
    super();
    const o = options ?? {};
    this._url = roomUrl(url, roomId);
    this._token = token;
    this._roomId = roomId;
    this._password = password;
    this._invitationCode = invitationCode;
    this._resumeSessionId = resumeSessionId;
    this._clientName = String(clientName).slice(0, 256) || null;
    this._WebSocket = WebSocket;
    this._now = now;
    // Called as plain functions: window.setTimeout with another `this` is an "Illegal invocation".
    this._setTimeout = (fn, ms) => setTimeout(fn, ms);
    this._clearTimeout = (id) => clearTimeout(id);
    this._opts = {
      fastPingCount: o.fastPingCount ?? 5,
      fastPingInterval: o.fastPingInterval ?? 0.5,
      slowPingInterval: o.slowPingInterval ?? 10,
      driftCheckInterval: o.driftCheckInterval ?? 0.5,
      requestTimeout: o.requestTimeout ?? 10,
      stallTimeout: o.stallTimeout ?? null,
      chatHistory: Math.max(1, o.chatHistory ?? 200),
    };
    this._estimator = new ClockEstimator({ window: 8 });
    this._drift = new DriftController(o.drift ?? {});
    // 30 attempts (one to two minutes) outlast a daemon restart, as in the Python client.
    this._backoff = new Backoff({ initial: 0.1, max: 5, attempts: 30, ...(o.reconnect ?? {}) });
    this._timers = new Set(); // the client's timers (a connection keeps its own)
    this._state = "idle";
    this._conn = null; // the one socket and its state (see _open)
    this._connectPromise = null;
    this._connectWaiter = null;
    this._everJoined = false;
    this._leaving = false;
    this._reconnects = 0;
    this._reconnectTimer = null;
    this._roughOffset = 0; // used until the first pong of a socket
    this._rtt = null;
    this._sessionId = null;
    this._isAdmin = false;
    this._you = null;
    this._room = null;
    this._settings = null;
    /** @type {Map<string, Member>} */
    this._participants = new Map();
    /** @type {ChatMessage[]} */
    this._chat = [];
    this._playback = null; // the newest known playback, scheduled ones included
    this._applied = null; // the playback the element follows now
    this._pending = []; // changes scheduled for their execute_at, in order
    this._pendingTimer = null;
    this._startTimer = null;
    this._driftTimer = null;
    /** @type {Map<string, {resolve: (id: string) => void, reject: (e: Error) => void, timer: any}>} */
    this._chats = new Map(); // by client_id
    this._chatCounter = 0;
    this._media = null;
    this._mediaHandlers = null;
    this._ownSeek = null;
    this._seekGraceTimer = null;
    this._buffering = false;
    this._autoplayBlocked = false;
    /** @type {Queue|null} */
    this._queue = null;
    // The item whose media the element holds: the applied playback's, announced by `item`
    // (undefined until the first). Until its queue entry is known the page cannot load it, and
    // the element is held rather than moved on another item's media.
    this._itemId = undefined;
    this._itemKnown = false;
    this._itemContent = null; // the content announced for it: a change in place loads anew
    this._endedSent = null; // the item whose end was reported since it last (re)started
    this._durationSent = new Set(); // items whose duration was reported
    if (media) this.attachMedia(media);
  }

  // -- state --------------------------------------------------------------------------------
  /** "idle" | "connecting" | "joined" | "reconnecting" | "closed" */
  get state() { return this._state; }
  /** The session id of the latest `joined` (store it to resume after a page reload). */
  get sessionId() { return this._sessionId; }
  /** @returns {Member|null} this user's own entry (its `role` and `muted` follow presence) */
  get you() { return this._you; }
  /** Whether the server counts this user as an administrator (`welcome.is_admin`). */
  get isAdmin() { return this._isAdmin; }
  /**
   * @returns {object|null} the REST room object from `joined`, replaced by every `room` message
   *   (ignore its playback)
   */
  get room() { return this._room; }
  /** @returns {SyncSettings|null} */
  get settings() { return this._settings; }
  /** @returns {Playback|null} the room's newest known playback (possibly still scheduled) */
  get playback() { return this._playback; }
  /** @returns {Map<string, Member>} members by user_id (live; do not modify) */
  get participants() { return this._participants; }
  /** @returns {ChatMessage[]} the latest chat messages, oldest first (live; do not modify) */
  get chatHistory() { return this._chat; }
  /** @returns {Queue|null} the room's play queue (null before joining, or from an older server) */
  get queue() { return this._queue; }
  /**
   * @returns {string|null} the queue item the applied playback plays (the element should hold
   *   its media), null before joining or from an older server
   */
  get itemId() { return this._itemId ?? null; }
  /** @returns {QueueItem|null} the queue entry of `itemId`, when the queue holds it */
  get currentItem() { return queueItem(this._queue, this._itemId); }
  /** Whether this client told the room that its element is loading (`buffering` sent). */
  get buffering() { return this._buffering; }
  /** Server clock minus local clock, seconds. */
  get clockOffset() {
    return this._estimator.sampleCount > 0 ? this._estimator.offset : this._roughOffset;
  }
  /** The round trip of the latest ping, seconds (null before the first pong). */
  get rtt() { return this._rtt; }
  /** One-way latency (half the latest round trip) in milliseconds, as the server counts it. */
  get latencyMs() { return this._rtt === null ? null : Math.round(this._rtt * 5000) / 10; }
  /** How many times the client came back after losing its connection. */
  get reconnects() { return this._reconnects; }
  /** @returns {HTMLMediaElement|null} the attached element */
  get media() { return this._media; }
  /** The estimated server clock now, seconds. */
  serverTime() { return this._now() + this.clockOffset; }
  /** The room's live position now, seconds (0 before joining). */
  roomPosition() { return positionAt(this._playback, this.serverTime()); }

  // -- connecting ----------------------------------------------------------------------------
  /**
   * Connect and join. Resolves with the first `joined` message; rejects with a SyncError on a
   * refusal (`error` at hello/join, `closing` before joined), a timeout or a connection failure,
   * after which the client is closed. Calling it again returns the same promise.
   * @returns {Promise<object>}
   */
  connect() {
    if (this._connectPromise) return this._connectPromise;
    this._connectPromise = new Promise((resolve, reject) => {
      this._connectWaiter = { resolve, reject };
    });
    this._connectPromise.catch(() => {}); // an unawaited connect() must not be "unhandled"
    if (this._state === "closed") {
      this._settleConnect(new SyncError("closed", "the client is closed"));
    } else {
      this._setState("connecting", "connect");
      this._open();
    }
    return this._connectPromise;
  }

  _open() {
    this._roughOffset = this.clockOffset; // keep the last estimate until the new socket has one
    this._estimator.reset();
    const conn = {
      ws: null, timers: new Set(), pings: new Map(), pingId: 0, pingsSent: 0, welcomed: false,
      joined: false, sentAt: this._now(), resume: null, retried: false,
      lastFrameAt: this._now(), closing: null, refusal: null,
    };
    this._conn = conn;
    this._after(conn, this._opts.requestTimeout, () => {
      if (!conn.joined) this._drop(conn, "timeout", "no joined in time");
    });
    let ws;
    try {
      if (typeof this._WebSocket !== "function") throw new Error("no WebSocket implementation");
      ws = new this._WebSocket(this._url);
    } catch (err) {
      this._drop(conn, "connection-failed", String(err?.message ?? err));
      return;
    }
    conn.ws = ws;
    const current = (fn) => this._guard((event) => { if (this._conn === conn) fn(event); });
    ws.onopen = current(() => this._onOpen(conn));
    ws.onmessage = current((event) => this._onFrame(conn, event?.data));
    ws.onclose = current((event) => this._drop(conn, "dropped", `socket closed (${event?.code})`));
    ws.onerror = () => {}; // a close event follows
  }

  _onOpen(conn) {
    conn.lastFrameAt = this._now();
    this._ping(conn); // pings are answered before hello too: start the clock estimate now
    const hello = { type: "hello", protocol: PROTOCOL_VERSION };
    if (typeof this._token === "string" && this._token !== "") hello.token = this._token;
    if (this._clientName) hello.client = this._clientName;
    conn.sentAt = this._now();
    this._send(conn, hello);
    this._armWatchdog(conn);
  }

  _sendJoin(conn, resume) {
    const join = { type: "join", room_id: this._roomId };
    if (this._password) join.password = this._password;
    if (this._invitationCode) join.invitation_code = this._invitationCode;
    if (typeof resume === "string" && RESUME_ID.test(resume)) join.resume = resume;
    conn.resume = join.resume ?? null;
    conn.sentAt = this._now();
    this._send(conn, join);
  }

  _ping(conn) {
    conn.pingId += 1;
    const t0 = this._now();
    conn.pings.set(conn.pingId, t0);
    if (conn.pings.size > MAX_OUTSTANDING_PINGS) conn.pings.delete(conn.pings.keys().next().value);
    this._send(conn, { type: "ping", id: conn.pingId, t0 });
    conn.pingsSent += 1;
    this._after(conn, nextPingDelay(conn.pingsSent, this._opts), () => this._ping(conn));
  }

  _stallTimeout() {
    if (this._opts.stallTimeout !== null) return this._opts.stallTimeout;
    // Pongs arrive at least every slowPingInterval, so silence beyond this means a dead socket.
    const heartbeat = this._settings?.heartbeat_interval;
    const beat = isNum(heartbeat) && heartbeat > 0 ? heartbeat : 5;
    return Math.max(15, 3 * beat, 1.5 * this._opts.slowPingInterval);
  }

  /** Nothing received for stallTimeout although we ping: the socket is dead, whatever it says. */
  _armWatchdog(conn) {
    const left = conn.lastFrameAt + this._stallTimeout() - this._now();
    if (left <= 1e-9) {
      this._drop(conn, "stalled", "nothing received for too long");
      return;
    }
    this._after(conn, left, () => this._armWatchdog(conn));
  }

  _heartbeat(conn) {
    const pb = this._applied;
    if (pb) {
      // An element still holding another item's media says nothing about this one.
      const el = this._holdsItem() ? this._media : null;
      const serverNow = this.serverTime();
      const time = el ? readTime(el) : null;
      const rtt = this._rtt === null ? null : clamp(this._rtt, 0, 60);
      this._send(conn, {
        type: "heartbeat",
        position: clamp(time ?? positionAt(pb, serverNow), 0, MAX_POSITION),
        server_time: serverNow,
        version: pb.version,
        playing: el ? readProp(el, "paused") === false : pb.state === "playing",
        rtt,
      });
    }
    const interval = this._settings?.heartbeat_interval;
    this._after(conn, Math.max(0.05, isNum(interval) && interval > 0 ? interval : 5),
      () => this._heartbeat(conn));
  }

  // -- receiving -----------------------------------------------------------------------------
  _onFrame(conn, data) {
    conn.lastFrameAt = this._now();
    if (typeof data !== "string") return;
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (!isObject(msg) || typeof msg.type !== "string") return;
    switch (msg.type) {
      case "pong": this._onPong(conn, msg, conn.lastFrameAt); return;
      case "welcome": this._onWelcome(conn, msg); return;
      case "joined": this._onJoined(conn, msg); return;
      case "error": this._onError(conn, msg); return;
      case "closing": this._onClosing(conn, msg); return;
      default: break;
    }
    if (!conn.joined) return; // the coming `joined` already includes whatever this was
    switch (msg.type) {
      case "playback": this._onPlayback(msg); break;
      case "sync": this._onSync(msg); break;
      case "presence": this._onPresence(msg); break;
      case "presence_batch": this._onPresenceBatch(msg); break;
      case "chat": this._onChat(msg); break;
      case "chat_deleted": this._onChatDeleted(msg); break;
      case "room": this._onRoom(msg); break;
      case "queue": this._onQueue(msg); break;
      case "chat_ack": this._settleChat(msg.client_id, str(msg.message_id, ""), null); break;
      default: break; // unknown types are ignored (§1.3)
    }
  }

  _onPong(conn, msg, t3) {
    const t0 = conn.pings.get(msg.id);
    if (t0 === undefined) return; // not ours, or forgotten
    conn.pings.delete(msg.id);
    const sample = this._estimator.addSample(t0, msg.t1, msg.t2, t3);
    if (sample) this._rtt = sample.delay;
  }

  _onWelcome(conn, msg) {
    if (conn.welcomed) return;
    conn.welcomed = true;
    this._isAdmin = msg.is_admin === true;
    if (this._estimator.sampleCount === 0 && isNum(msg.server_time)) {
      this._roughOffset = msg.server_time - (conn.sentAt + this._now()) / 2;
    }
    this._sendJoin(conn, this._sessionId ?? this._resumeSessionId);
  }

  _onJoined(conn, msg) {
    if (conn.joined || !isPlayback(msg.playback)) return;
    conn.joined = true;
    if (this._estimator.sampleCount === 0 && isNum(msg.server_time)) {
      this._roughOffset = msg.server_time - (conn.sentAt + this._now()) / 2; // until the first pong
    }
    const first = !this._everJoined;
    this._everJoined = true;
    if (!first) this._reconnects += 1;
    this._backoff.reset();
    // A complete snapshot: it replaces everything, whatever its version (§4.2).
    this._sessionId = str(msg.session_id, this._sessionId);
    this._room = isObject(msg.room) ? msg.room : null;
    this._settings = isObject(msg.settings) ? msg.settings : null;
    this._you = isObject(msg.you) ? asMember(msg.you) : null;
    this._participants.clear();
    for (const m of Array.isArray(msg.participants) ? msg.participants : []) {
      if (isObject(m) && typeof m.user_id === "string") this._participants.set(m.user_id, asMember(m));
    }
    this._chat.splice(0, this._chat.length,
      ...(Array.isArray(msg.chat) ? msg.chat : []).slice(-this._opts.chatHistory));
    this._queue = isQueue(msg.queue) ? msg.queue : null;
    this._clearPending();
    this._playback = msg.playback;
    const s = this._settings;
    this._useSettings(s);
    this._buffering = false; // the server forgot it too: a rejoin is a late join (§4.11)
    this._after(conn, Math.max(0.05, s?.heartbeat_interval > 0 ? s.heartbeat_interval : 5),
      () => this._heartbeat(conn));
    if (this._driftTimer === null) this._driftTick();
    this._setState("joined", first ? "joined" : "rejoined");
    this._settleConnect(null, msg); // first: whatever the element does below, connect() is done
    this._emit("joined", { message: msg });
    this._emit("participants", { participants: this._participants });
    if (this._queue) this._emit("queue", { queue: this._queue, currentChanged: false });
    // §4.5: in a room that is not paused, say buffering, seek, then ready when the element can play.
    const late = msg.playback.state !== "paused" && this._media !== null;
    if (late) this._startBuffering();
    const at = isNum(msg.server_time) ? msg.server_time : this.serverTime();
    this._apply({ playback: msg.playback, reason: "joined", executeAt: at, kind: "joined" });
    if (late) this._maybeReady();
  }

  /** The room's thresholds steer the drift controller. */
  _useSettings(s) {
    if (s && isNum(s.threshold_seconds) && s.threshold_seconds > 0) {
      this._drift.seekThreshold = s.threshold_seconds;
    }
    if (s && isNum(s.max_rate_correction) && s.max_rate_correction >= 0) {
      this._drift.maxRateCorrection = s.max_rate_correction;
    }
  }

  _onError(conn, msg) {
    const code = str(msg.code, "unknown");
    const message = str(msg.message, code);
    const ref = typeof msg.ref === "string" ? msg.ref : null;
    this._emit("error", { code, message, ref });
    if (!conn.joined) {
      // As the Python client: a refused resume is tried once more as a fresh join.
      if (conn.welcomed && conn.resume && !conn.retried && !FINAL_CLOSE_REASONS.has(code)
        && !TRANSIENT_REFUSALS.has(code)) {
        conn.retried = true;
        this._sendJoin(conn, null);
        return;
      }
      conn.refusal = { code, message, ref };
      this._drop(conn, "refused", message);
    } else if (ref !== null) {
      this._settleChat(ref, null, new SyncError(code, message, ref));
    }
  }

  _onClosing(conn, msg) {
    conn.closing = {
      reason: str(msg.reason, "unknown"),
      message: str(msg.message, ""),
      retryAfter: isNum(msg.retry_after) ? msg.retry_after : null,
    };
    this._emit("closing", conn.closing);
    this._drop(conn, "closing", conn.closing.message); // the server closes next: don't wait
  }

  _onPlayback(msg) {
    const pb = msg.playback;
    if (!isPlayback(pb) || (this._playback && pb.version < this._playback.version)) return;
    this._playback = pb;
    const executeAt = isNum(msg.execute_at) ? msg.execute_at : this.serverTime();
    // A change supersedes those scheduled at or after its own instant; earlier ones still apply.
    this._pending = this._pending.filter((c) => c.executeAt < executeAt);
    const reason = str(msg.reason, "playback");
    this._pending.push({ playback: pb, reason, executeAt, kind: "change" });
    // Before it is applied: a page can show the room's new position (a seek) at once instead of
    // after the lead, while the element waits for execute_at with everyone else.
    this._emit("scheduled", { playback: pb, reason, executeAt, setBy: pb.set_by ?? null });
    while (this._pending.length > MAX_PENDING_CHANGES) this._apply(this._pending.shift());
    this._flushDue();
  }

  _onSync(msg) {
    const pb = msg.playback;
    if (!isPlayback(pb) || (this._playback && pb.version < this._playback.version)) return;
    this._playback = pb;
    this._pending = this._pending.filter((c) => c.playback.version > pb.version);
    this._apply({ playback: pb, reason: "sync", executeAt: this.serverTime(), kind: "sync" });
    this._flushDue();
  }

  _onPresence(msg) {
    if (!isObject(msg.member) || typeof msg.member.user_id !== "string") return;
    // `role`, `muted` and `unmuted` reach the member too: `you` follows like everyone else.
    const member = asMember(msg.member);
    if (msg.event === "left" && member.sessions === 0) this._participants.delete(member.user_id);
    else this._participants.set(member.user_id, member);
    if (this._you && this._you.user_id === member.user_id) this._you = member;
    const detail = typeof msg.detail === "string" ? msg.detail : null;
    this._emit("presence", { event: str(msg.event, "unknown"), member, detail });
    this._emit("participants", { participants: this._participants });
  }

  /**
   * Several comings and goings of one window in one frame: each applied in order, exactly as if
   * it had come alone (the same `presence` and `participants` events, one per element).
   */
  _onPresenceBatch(msg) {
    if (!Array.isArray(msg.events)) return;
    for (const event of msg.events) {
      // Guarded one by one: a failure on one element must not lose the ones after it.
      if (isObject(event)) this._guard(() => this._onPresence(event))();
    }
  }

  _onChat(msg) {
    if (!isObject(msg.message)) return;
    this._chat.push(msg.message);
    if (this._chat.length > this._opts.chatHistory) this._chat.shift();
    this._emit("chat", { message: msg.message });
  }

  /** The room's settings or owner changed: the new room and settings replace the old ones. */
  _onRoom(msg) {
    if (!isObject(msg.room)) return;
    this._room = msg.room;
    if (isObject(msg.settings)) {
      this._settings = msg.settings;
      this._useSettings(msg.settings);
    }
    this._emit("room", { room: this._room, settings: this._settings });
  }

  /**
   * The play queue changed. If it now holds the item the room plays and did not before (the
   * `queue` message came after the `playback` of a new item), the page can load its media now.
   */
  _onQueue(msg) {
    if (!isQueue(msg.queue)) return;
    const previous = this._queue;
    this._queue = msg.queue;
    const currentChanged = previous?.current_item_id !== msg.queue.current_item_id;
    this._emit("queue", { queue: msg.queue, currentChanged });
    if (!this._itemStale()) return;
    this._announceItem(this._itemId);
    const late = this._applied !== null && this._applied.state !== "paused" && this._media !== null;
    if (late) this._startBuffering();
    this._driveMedia("change");
    if (late) this._maybeReady();
  }

  /**
   * Tell the page which item's media the element must hold now (`item`); it sets the source in
   * its handler, before the element is moved.
   */
  _announceItem(previousItemId) {
    const item = queueItem(this._queue, this._itemId);
    // Without item ids or without a queue (an older server) the room's content is the media.
    this._itemKnown = item !== null || this._queue === null || this._itemId === null;
    this._itemContent = item ? contentKey(item) : null;
    this._emit("item", { itemId: this._itemId ?? null, item, previousItemId: previousItemId ?? null });
  }

  /**
   * Whether the queue holds the current item's entry and the page was not told about it: it
   * was unknown (the `queue` came after the item's `playback`), or its content changed in place
   * (an update of the room's content_id).
   */
  _itemStale() {
    if (typeof this._itemId !== "string") return false;
    const item = queueItem(this._queue, this._itemId);
    return item !== null && !(this._itemKnown && this._itemContent === contentKey(item));
  }

  /** Whether the element holds the applied playback's media (always so without item ids). */
  _holdsItem() {
    const pb = this._applied;
    return !pb || typeof pb.item_id !== "string" || this._itemKnown;
  }

  /** A message was deleted (by its author or a moderator): out of the history. */
  _onChatDeleted(msg) {
    if (typeof msg.message_id !== "string") return;
    const at = this._chat.findIndex((m) => isObject(m) && m.id === msg.message_id);
    const message = at >= 0 ? this._chat.splice(at, 1)[0] : null;
    // Announced even when the history no longer holds it: a page may show more than it keeps.
    this._emit("chat_deleted", { messageId: msg.message_id, message });
  }

  // -- applying the room's playback ----------------------------------------------------------
  _clearPending() {
    this._pending = [];
    this._cancel(this._pendingTimer);
    this._pendingTimer = null;
  }

  /** Apply every scheduled change that is due, in order; then wait for the next one. */
  _flushDue() {
    this._cancel(this._pendingTimer);
    this._pendingTimer = null;
    while (this._pending.length > 0 && this._pending[0].executeAt <= this.serverTime() + 0.001) {
      this._apply(this._pending.shift());
    }
    if (this._pending.length > 0 && this._state !== "closed") {
      // Re-armed after each run: the clock estimate may move while a change waits.
      const delay = this._pending[0].executeAt - this.serverTime();
      this._pendingTimer = this._after(null, Math.max(0, delay), () => this._flushDue());
    }
  }

  _apply(change) {
    const previous = this._applied;
    const pb = change.playback;
    this._applied = pb;
    const itemId = typeof pb.item_id === "string" ? pb.item_id : null;
    const before = this._itemId;
    if (itemId !== before) {
      this._itemId = itemId;
      // Another medium: its seeks land differently, and a seek in flight was for the old one.
      this._ownSeek = null;
      this._cancel(this._seekGraceTimer);
      this._drift.reset();
    }
    // The page loads the media now, before the element is moved.
    if (itemId !== before || this._itemStale()) this._announceItem(before);
    // A new start of the same item (repeat, a seek back) may end again.
    if (pb.ended !== true && previous?.version !== pb.version) this._endedSent = null;
    // A sync on the version already applied is a drift correction; anything else is a change.
    const drift = change.kind === "sync" && previous !== null
      && previous.version === pb.version && previous.state === pb.state;
    this._driveMedia(drift ? "sync" : "change");
    this._emit("playback", {
      playback: pb, reason: change.reason, executeAt: change.executeAt, setBy: pb.set_by ?? null,
    });
    // The room stopped at the end and the element with it: that player is at the end too.
    if (pb.ended === true && itemId !== null && this._media && this._holdsItem()) {
      this._reportEnded(itemId);
    }
  }

  /** Put the element on the applied playback: rate, position, then play or pause. */
  _driveMedia(mode) {
    const el = this._media;
    const pb = this._applied;
    if (!el || !pb) return;
    this._cancel(this._startTimer);
    this._startTimer = null;
    if (!this._holdsItem()) {
      // Another item's media: held where it is (never seeked on it) until the page loads this one.
      this._pauseMedia();
      return;
    }
    const serverNow = this.serverTime();
    const startsLater = pb.state === "playing" && pb.anchor > serverNow + 0.005;
    const target = clamp(positionAt(pb, serverNow), 0, MAX_POSITION);
    const now = this._now();
    const current = readTime(el);
    this._setRate(pb.rate);
    if (current === null) {
      this._seekMedia(target); // no metadata yet: sets the start position
    } else if (mode === "sync") {
      // The server saw drift beyond its threshold; the controller knows whether a seek helps.
      const decision = this._drift.decide({ drift: current - target, roomRate: pb.rate, now });
      if (decision.action === "seek") this._seekMedia(target);
      else if (pb.state === "playing") this._setRate(decision.rate);
    } else {
      this._drift.decide({ drift: NaN, roomRate: pb.rate, now }); // a new correction budget
      if (Math.abs(current - target) > APPLY_SEEK_TOLERANCE) this._seekMedia(target);
    }
    if (pb.state === "playing" && !startsLater) this._playMedia();
    else this._pauseMedia(); // paused, waiting (hold at position), or a start still to come
    if (startsLater) {
      this._startTimer = this._after(null, pb.anchor - serverNow, () => {
        this._startTimer = null;
        if (this._applied === pb) this._driveMedia("change");
      });
    }
  }

  _setRate(rate) {
    const el = this._media;
    if (!el || !isNum(rate) || rate <= 0) return;
    const current = readProp(el, "playbackRate");
    if (isNum(current) && Math.abs(current - rate) < 1e-4) return;
    try { el.playbackRate = rate; } catch (err) { warn("cannot set playbackRate", err); }
  }

  _seekMedia(target) {
    const el = this._media;
    if (!el) return;
    this._ownSeek = { target };
    try {
      el.currentTime = target;
    } catch (err) {
      warn("cannot seek", err);
      this._ownSeek = null;
      return;
    }
    if (readProp(el, "seeking") !== true) {
      // Done at once (cached data, or no metadata yet): no `seeked` event will come.
      this._ownSeek = null;
      if (isNum(readProp(el, "readyState")) && el.readyState >= 1) this._noteLanding(el, target);
      return;
    }
    this._cancel(this._seekGraceTimer);
    this._seekGraceTimer = this._after(null, OWN_SEEK_GRACE, () => {
      this._seekGraceTimer = null;
      if (!this._ownSeek || this._media !== el) return;
      // Still loading after the grace period: that is a stall the room should wait for. If the
      // element is not even seeking any more, its `seeked` got lost: stop waiting for it.
      if (readProp(el, "seeking") === true) this._startBuffering();
      else this._ownSeek = null;
    });
  }

  _noteLanding(el, target) {
    const landed = readTime(el);
    if (landed !== null) this._drift.noteSeekLanded(landed - target, this._now());
  }

  _playMedia() {
    const el = this._media;
    if (!el || readProp(el, "paused") === false) return;
    // play() on an element at its end starts it over from 0: the room ends there instead.
    if (readProp(el, "ended") === true && readProp(el, "seeking") !== true) return;
    try {
      const result = el.play();
      if (result && typeof result.then === "function") {
        result.then(() => { this._autoplayBlocked = false; }, (err) => this._guard(() => {
          if (err?.name === "NotAllowedError" && this._media === el && !this._autoplayBlocked) {
            this._autoplayBlocked = true; // the page shows "tap to play"; resumeMedia() retries
            this._emit("autoplayblocked", {});
          }
          // AbortError: a pause() interrupted the play(); nothing to do.
        })());
      }
    } catch (err) {
      warn("play() failed", err);
    }
  }

  _pauseMedia() {
    const el = this._media;
    if (!el || readProp(el, "paused") === true) return;
    try { el.pause(); } catch (err) { warn("pause() failed", err); }
  }

  _driftTick() {
    this._driftTimer = null;
    if (this._state === "closed") return;
    const el = this._media;
    const pb = this._applied;
    if (el && pb) {
      const serverNow = this.serverTime();
      const current = readTime(el);
      // Compare only a settled situation: the element plays the newest version, which has started.
      const comparable = current !== null && pb.state === "playing" && serverNow >= pb.anchor
        && this._pending.length === 0 && pb === this._playback && !this._ownSeek
        && !this._buffering && readProp(el, "paused") === false && readProp(el, "seeking") !== true
        && readProp(el, "ended") !== true && this._holdsItem();
      const room = positionAt(pb, serverNow);
      const drift = comparable ? current - room : NaN;
      const decision = this._drift.decide({ drift, roomRate: pb.rate, now: this._now() });
      if (decision.action === "seek") this._seekMedia(clamp(room, 0, MAX_POSITION));
      this._setRate(decision.rate);
      if (comparable) this._emit("drift", { drift, action: decision.action, rate: decision.rate });
    }
    this._driftTimer = this._after(null, this._opts.driftCheckInterval, () => this._driftTick());
  }

  // -- buffering -----------------------------------------------------------------------------
  _startBuffering() {
    if (this._buffering) return;
    if (this._command({ type: "buffering", position: this._reportPosition() })) this._buffering = true;
  }

  _maybeReady() {
    const el = this._media;
    if (!this._buffering || this._ownSeek || (el && (!canPlay(el) || !this._holdsItem()))) return;
    this._buffering = false;
    this._command({ type: "ready", position: this._reportPosition() });
  }

  _reportPosition() {
    const time = this._media ? readTime(this._media) : null;
    return clamp(time ?? this.roomPosition(), 0, MAX_POSITION);
  }

  // -- the media element ---------------------------------------------------------------------
  /**
   * Drive `element` (any HTMLMediaElement). In a room that is not paused this is a late join
   * (§4.5): buffering, seek, ready once the element can play.
   * @param {HTMLMediaElement} element
   */
  attachMedia(element) {
    this._guard(() => {
      if (this._media === element) return;
      if (this._media) this.detachMedia();
      if (!element || this._state === "closed") return;
      this._media = element;
      this._drift.reset();
      this._autoplayBlocked = false;
      const on = (fn) => this._guard((event) => { if (this._media === element) fn(event); });
      this._mediaHandlers = {
        // A stall we did not cause. Our own seeks are judged by the grace timer instead.
        waiting: on(() => { if (!this._ownSeek) this._startBuffering(); }),
        playing: on(() => { this._autoplayBlocked = false; this._maybeReady(); }),
        canplay: on(() => this._maybeReady()),
        // A (new) source resets the position: put it where the room is.
        loadedmetadata: on(() => {
          this._reportDuration();
          if (this._applied) this._driveMedia("change");
        }),
        durationchange: on(() => this._reportDuration()),
        ended: on(() => {
          const pb = this._applied;
          if (pb && typeof pb.item_id === "string" && this._holdsItem()) {
            this._reportEnded(pb.item_id);
          }
        }),
        seeked: on(() => {
          if (this._ownSeek) {
            this._noteLanding(element, this._ownSeek.target);
            this._ownSeek = null;
            this._cancel(this._seekGraceTimer);
          }
          this._maybeReady();
        }),
      };
      for (const [type, fn] of Object.entries(this._mediaHandlers)) {
        try { element.addEventListener(type, fn); } catch (err) { warn("cannot listen", err); }
      }
      if (this._applied) {
        const late = this._applied.state !== "paused";
        if (late) this._startBuffering();
        this._driveMedia("change");
        if (late) this._maybeReady();
      }
    })();
  }

  /** Stop driving the element (left as it is). A pending `buffering` is answered with `ready`. */
  detachMedia() {
    this._guard(() => {
      const el = this._media;
      if (!el) return;
      for (const [type, fn] of Object.entries(this._mediaHandlers ?? {})) {
        try { el.removeEventListener(type, fn); } catch { /* a broken element */ }
      }
      this._media = null;
      this._mediaHandlers = null;
      this._ownSeek = null;
      this._cancel(this._seekGraceTimer);
      this._cancel(this._startTimer);
      this._startTimer = null;
      this._maybeReady(); // the room must not wait for an element that is gone
    })();
  }

  /**
   * Retry playing after `autoplayblocked`. Call it from a user gesture (a click handler): the
   * browser allows play() then.
   * @returns {boolean} whether an element is attached
   */
  resumeMedia() {
    return this._guard(() => {
      this._autoplayBlocked = false;
      if (!this._media) return false;
      this._driveMedia("change");
      return true;
    })() ?? false;
  }

  // -- commands ------------------------------------------------------------------------------
  /** Ask the room to play (from `position`). @param {number} [position] @returns {boolean} sent */
  play(position) { return this._positional("play", position, false); }
  /** Ask the room to pause (at `position`). @param {number} [position] @returns {boolean} sent */
  pause(position) { return this._positional("pause", position, false); }
  /** Ask the room to seek. @param {number} position @returns {boolean} sent */
  seek(position) { return this._positional("seek", position, true); }

  /**
   * Ask for the next item of the queue. `currentItemId` is the item you see playing (by default
   * the queue's current one): if the room moved on meanwhile, the request changes nothing, so
   * that several people pressing Next together advance once.
   * @param {string} [currentItemId] @returns {boolean} sent
   */
  next(currentItemId) { return this._step("next", currentItemId); }
  /**
   * Ask for the previous item (see `next`).
   * @param {string} [currentItemId] @returns {boolean} sent
   */
  previous(currentItemId) { return this._step("previous", currentItemId); }

  _step(type, currentItemId) {
    const id = currentItemId === undefined
      ? (this._queue?.current_item_id ?? this._itemId ?? null) : currentItemId;
    if (typeof id !== "string" || id === "") return false;
    return this._command({ type, current_item_id: id });
  }

  /**
   * Tell the room that this player reached the end of `itemId`. The library does so by itself
   * for an attached element (its `ended` event); call it for a player of your own.
   * @param {string} itemId @returns {boolean} sent
   */
  ended(itemId) {
    if (typeof itemId !== "string" || itemId === "") return false;
    return this._command({ type: "ended", item_id: itemId });
  }

  _reportEnded(itemId) {
    if (this._endedSent === itemId) return;
    if (this.ended(itemId)) this._endedSent = itemId;
  }

  /**
   * Tell the room the length of `itemId`, as the player found it (the protocol's `media`). The
   * library does so by itself for an attached element (`loadedmetadata`), for items whose length
   * the queue does not know. (Not `media()`: that getter is the attached element.)
   * @param {string} itemId @param {number} duration seconds @returns {boolean} sent
   */
  reportMedia(itemId, duration) {
    if (typeof itemId !== "string" || itemId === "" || !isNum(duration) || duration <= 0
      || duration > MAX_POSITION) return false;
    return this._command({ type: "media", item_id: itemId, duration });
  }

  _reportDuration() {
    const el = this._media;
    const pb = this._applied;
    if (!el || !pb || typeof pb.item_id !== "string" || !this._holdsItem()) return;
    const id = pb.item_id;
    // The first trustworthy value wins on the server: one is enough.
    const known = isNum(pb.duration) || isNum(queueItem(this._queue, id)?.duration);
    if (known || this._durationSent.has(id)) return;
    if (this.reportMedia(id, readProp(el, "duration"))) this._durationSent.add(id);
  }

  /**
   * Say whether you are ready to start ("I'm ready"). Every pause makes everyone not ready again;
   * your Member's `ready` follows the server (presence `readiness`).
   * @param {boolean} ready @returns {boolean} sent
   */
  setReady(ready) {
    if (typeof ready !== "boolean") return false;
    return this._command({ type: "readiness", ready });
  }

  /** Ask the room to change its rate (0.25 to 4). @param {number} rate @returns {boolean} sent */
  setRate(rate) {
    if (!isNum(rate) || rate < MIN_RATE || rate > MAX_RATE) return false;
    return this._command({ type: "rate", rate });
  }

  _positional(type, position, required) {
    const msg = { type };
    if (position !== undefined && position !== null) {
      if (!isNum(position)) return false;
      msg.position = clamp(position, 0, MAX_POSITION);
    } else if (required) {
      return false;
    }
    return this._command(msg);
  }

  /**
   * Post a chat message.
   * @param {string} text
   * @returns {Promise<string>} the stored message's id (from chat_ack); rejects with a SyncError
   *   (the server's code and `ref`, "timeout", "not-connected", "connection-lost", ...)
   */
  chat(text) {
    const promise = new Promise((resolve, reject) => {
      if (typeof text !== "string" || text.trim() === "") {
        reject(new SyncError("validation-failed", "the message is empty"));
        return;
      }
      if (this._state !== "joined" || !this._conn?.joined) {
        reject(new SyncError("not-connected", "not connected to the room"));
        return;
      }
      if (this._chats.size >= MAX_PENDING_CHATS) {
        reject(new SyncError("too-many-pending", "too many chat messages await their ack"));
        return;
      }
      this._chatCounter += 1;
      const clientId = `c-${this._chatCounter.toString(36)}-${randomHex()}`;
      const frame = { type: "chat", message: text, client_id: clientId };
      if (utf8Length(JSON.stringify(frame)) > MAX_FRAME_BYTES) {
        reject(new SyncError("too-large", "the message is too long"));
        return;
      }
      const timer = this._after(null, this._opts.requestTimeout, () => {
        this._settleChat(clientId, null, new SyncError("timeout", "no chat_ack in time", clientId));
      });
      this._chats.set(clientId, { resolve, reject, timer });
      if (!this._command(frame)) {
        this._settleChat(clientId, null, new SyncError("not-connected", "not connected to the room"));
      }
    });
    promise.catch(() => {}); // an unawaited chat() must not be "unhandled"
    return promise;
  }

  _settleChat(clientId, messageId, error) {
    const entry = typeof clientId === "string" ? this._chats.get(clientId) : undefined;
    if (!entry) return;
    this._chats.delete(clientId);
    this._cancel(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(messageId);
  }

  _failChats(error) {
    for (const id of [...this._chats.keys()]) this._settleChat(id, null, error);
  }

  /**
   * Leave the room for good (others see `left`) and close the client; no reconnect.
   * @returns {boolean} whether `leave` was sent (false: not connected; the client closes anyway)
   */
  leave() {
    return this._guard(() => {
      if (this._state === "closed") return false;
      this._leaving = true;
      const conn = this._conn;
      const sent = this._command({ type: "leave" });
      if (sent) {
        // Keep the socket for the server's `closing` "left" (it closes it); close it after 2 s.
        this._conn = null;
        this._clearConnTimers(conn);
        conn.ws.onmessage = null;
        conn.ws.onclose = null;
        this._setTimeout(() => closeSocket(conn.ws), Math.min(2, this._opts.requestTimeout) * 1000);
      }
      this._finish("left");
      return sent;
    })() ?? false;
  }

  /** Disconnect without leaving (others see `disconnected`); no reconnect. */
  close() {
    this._guard(() => this._finish("closed"))();
  }

  // -- connection lifetime -------------------------------------------------------------------
  /** The socket of `conn` is finished (closed, dropped, stalled, refused): decide what next. */
  _drop(conn, cause, detail) {
    if (this._conn !== conn) return;
    this._conn = null;
    this._teardown(conn);
    this._failChats(new SyncError("connection-lost", "the connection dropped before the chat_ack"));
    if (this._state === "closed") return;
    const closing = conn.closing;
    // "Another node runs this room": come back, even before the first join (the proxy sends
    // the next attempt to the room's node).
    const moved = closing?.reason === "moved";
    if (!this._everJoined && !moved) {
      const code = conn.refusal?.code ?? closing?.reason
        ?? (cause === "timeout" ? "timeout" : "connection-failed");
      const message = conn.refusal?.message ?? closing?.message ?? detail ?? code;
      this._finish(code, new SyncError(code, message, conn.refusal?.ref ?? null));
      return;
    }
    const reason = conn.refusal?.code ?? closing?.reason ?? cause;
    const refused = conn.refusal && !TRANSIENT_REFUSALS.has(conn.refusal.code);
    if (this._leaving || refused || FINAL_CLOSE_REASONS.has(closing?.reason)) {
      this._finish(reason);
      return;
    }
    const hint = closing?.retryAfter ?? null;
    const delay = hint === null ? this._backoff.next() : this._backoff.after(hint);
    if (delay === null) {
      if (this._everJoined) this._finish("gave-up");
      else this._finish("moved", new SyncError("moved", closing.message || "moved"));
      return;
    }
    // Before the first join the client is still connecting (connect() has not settled).
    if (this._everJoined) this._setState("reconnecting", reason);
    this._reconnectTimer = this._after(null, delay, () => {
      this._reconnectTimer = null;
      if (this._state === "reconnecting" || this._state === "connecting") this._open();
    });
  }

  _clearConnTimers(conn) {
    for (const id of conn.timers) this._clearTimeout(id);
    conn.timers.clear();
  }

  _teardown(conn) {
    this._clearConnTimers(conn);
    const ws = conn.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    closeSocket(ws);
  }

  /** Closed for good: no socket, no timer, no reconnect. */
  _finish(reason, error = null) {
    if (this._state === "closed") return;
    if (this._conn) {
      const conn = this._conn;
      this._conn = null;
      this._teardown(conn);
    }
    this._leaving = true;
    this._state = "closed"; // first: nothing below may reconnect or send
    for (const id of this._timers) this._clearTimeout(id);
    this._timers.clear();
    this._pending = [];
    this._pendingTimer = this._startTimer = this._driftTimer = this._seekGraceTimer = null;
    this._failChats(new SyncError("closed", "the client is closed"));
    this._settleConnect(error ?? new SyncError(reason, `closed: ${reason}`));
    this.detachMedia();
    this._emit("statechange", { state: "closed", reason });
  }

  _settleConnect(error, joined = null) {
    const waiter = this._connectWaiter;
    if (!waiter) return;
    this._connectWaiter = null;
    if (error) waiter.reject(error);
    else waiter.resolve(joined);
  }

  _setState(state, reason) {
    if (this._state === state || this._state === "closed") return;
    this._state = state;
    this._emit("statechange", { state, reason });
  }

  // -- plumbing ------------------------------------------------------------------------------
  _command(msg) {
    if (this._state !== "joined" || !this._conn?.joined) return false;
    return this._send(this._conn, msg);
  }

  _send(conn, msg) {
    const ws = conn?.ws;
    try {
      if (!ws || ws.readyState !== 1) return false; // 1: OPEN
      ws.send(JSON.stringify(msg));
      return true;
    } catch (err) {
      warn("send failed", err);
      return false;
    }
  }

  /** A timer on the injected clock, guarded; tied to `conn` (cleared with it) or to the client. */
  _after(conn, seconds, fn) {
    const bag = conn ? conn.timers : this._timers;
    const id = this._setTimeout(() => {
      bag.delete(id);
      this._guard(fn)();
    }, Math.max(0, seconds) * 1000);
    bag.add(id);
    return id;
  }

  _cancel(id) {
    if (id === null || id === undefined) return;
    this._clearTimeout(id);
    this._timers.delete(id);
  }

  /** `fn` wrapped so that nothing it throws reaches the page: it becomes an `error` event. */
  _guard(fn) {
    return (...args) => {
      try {
        return fn(...args);
      } catch (err) {
        warn("internal error", err);
        this._emit("error", { code: "client-error", message: String(err?.message ?? err), ref: null });
        return undefined;
      }
    };
  }

  _emit(type, detail) {
    try {
      const event = typeof CustomEvent === "function"
        ? new CustomEvent(type, { detail })
        : Object.assign(new Event(type), { detail });
      this.dispatchEvent(event);
    } catch (err) {
      warn(`cannot dispatch ${type}`, err);
    }
  }
}

function contentKey(item) {
  return `${item.content_type}\n${item.content_id}`;
}

function closeSocket(ws) {
  try {
    if (ws.readyState === 0 || ws.readyState === 1) ws.close(1000);
  } catch { /* already closed */ }
}

function randomHex() {
  const bytes = new Uint8Array(8);
  const crypto = globalThis.crypto;
  if (crypto && typeof crypto.getRandomValues === "function") crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
