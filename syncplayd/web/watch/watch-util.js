// Helpers of the watch page that do not touch the DOM: URLs, REST calls, tokens kept in
// sessionStorage, and text formatting. watch.js holds the UI.
//
// Every URL is relative to the page, so the page keeps working when a reverse proxy serves
// the daemon under a path prefix (/media/syncplay/ instead of /syncplay/).

/** The REST base, `../api/v1/syncplay/` from the page. */
export function apiBase() {
  return new URL("../api/v1/syncplay/", location.href);
}

const ROOM_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The WebSocket endpoint of a room, with the page's scheme turned into ws: / wss:. The room is
 * in the query (`?room=<id>`, lower case): a proxy in front of several daemons sends all of a
 * room's members to one of them by it (docs/protocol.md §2.5). An id that is no UUID is left
 * out, so that the server's refusal of the join, not of the upgrade, says what is wrong.
 */
export function wsUrl(roomId, base = location.href) {
  const url = new URL("../api/v1/syncplay/ws", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (typeof roomId === "string" && ROOM_ID.test(roomId)) {
    url.searchParams.set("room", roomId.toLowerCase());
  }
  return url.toString();
}

/** The page's own URL for a query string, without fragment (never leaks a token). */
export function pageUrl(search) {
  return `${location.origin}${location.pathname}${search}`;
}

/** A refused REST call, from an RFC 9457 problem document when there is one. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/**
 * fetch() with JSON in and out; throws ApiError on a network failure or a non-2xx answer.
 * `url` is resolved against the API base unless it is already a URL object.
 */
export async function requestJson(url, { method = "GET", body, token } = {}) {
  const target = url instanceof URL ? url : new URL(url, apiBase());
  const headers = { Accept: "application/json, application/problem+json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(target, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network-error", "The server could not be reached. Check your connection.");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON (a proxy error page, say): the status alone must do.
  }
  if (!response.ok) {
    const code = (data && data.code) || `http-${response.status}`;
    const detail = (data && (data.detail || data.title)) || response.statusText;
    throw new ApiError(response.status, code, detail);
  }
  return data;
}

// --- sessionStorage -------------------------------------------------------------------
// sessionStorage, not localStorage: it is per tab, so two tabs are two guests in demo mode,
// and a token does not outlive the tab.

const KEY_TOKEN = "syncplay.token";
const KEY_NAME = "syncplay.name";
const KEY_MEDIA_TOKEN = "syncplay.media_token";
const sessionKey = (roomId) => `syncplay.session.${roomId}`;

function storageGet(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null; // storage disabled (privacy mode): the page still works, without memory
  }
}

function storageSet(key, value) {
  try {
    if (value === null || value === undefined || value === "") sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    // see storageGet
  }
}

export const store = {
  token: () => storageGet(KEY_TOKEN),
  setToken: (token) => storageSet(KEY_TOKEN, token),
  name: () => storageGet(KEY_NAME),
  setName: (name) => storageSet(KEY_NAME, name),
  mediaToken: () => storageGet(KEY_MEDIA_TOKEN),
  setMediaToken: (token) => storageSet(KEY_MEDIA_TOKEN, token),
  session: (roomId) => storageGet(sessionKey(roomId)),
  setSession: (roomId, sessionId) => storageSet(sessionKey(roomId), sessionId),
};

/**
 * Takes `#token=...` and `#media_token=...` out of the address bar and returns them,
 * `{token, mediaToken}` (nulls without). The fragment never reaches the server, but it would
 * stay in the history and in copied links: it is removed at once. Whether the tab adopts them
 * is the caller's decision: a link must not silently replace the identity the tab already has
 * (see `tokenSwitch`).
 */
export function takeFragment() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = fragment.get("token") || null;
  const mediaToken = fragment.get("media_token") || null;
  if (token || mediaToken) {
    history.replaceState(history.state, "", `${location.pathname}${location.search}`);
  }
  return { token, mediaToken };
}

/**
 * What a link's token would change: null when it can be adopted without asking (the tab has no
 * token, or one for the same user, a fresher pass from the media server), else the two
 * identities, `{current, offered}`, each `{name, userId}`. Anyone can send a link that holds
 * their own token; adopted silently, it would make the tab act as them (login CSRF).
 */
export function tokenSwitch(current, offered) {
  if (!current || current === offered) return null;
  const was = tokenIdentity(current);
  const next = tokenIdentity(offered);
  if (was.userId !== null && was.userId === next.userId) return null;
  return { current: was, offered: next };
}

/** The user a token names, `{name, userId}` (nulls when it cannot be read). */
export function tokenIdentity(token) {
  const claims = tokenClaims(token) || {};
  return {
    name: typeof claims.name === "string" && claims.name ? claims.name : null,
    userId: typeof claims.sub === "string" && claims.sub ? claims.sub : null,
  };
}

/** The JWT's claims, or null when it cannot be read (the server decides validity anyway). */
export function tokenClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** True when the token's `exp` is past, or will be within `marginSeconds`. */
export function tokenExpired(token, marginSeconds = 30) {
  const claims = tokenClaims(token);
  if (!claims || typeof claims.exp !== "number") return false;
  return claims.exp * 1000 < Date.now() + marginSeconds * 1000;
}

// --- media URLs -----------------------------------------------------------------------

const LONE_TEMPLATE = "{content_id}";
const PLACEHOLDER = /\{(content_type|content_id)\}/;

/**
 * The template with `{media_token}` filled in (percent-encoded; empty without a token): the
 * tab's credential for the media server, from the link's `#media_token=`. It is filled in
 * before the room's values, so the base check below sees the URL the browser will fetch, and
 * it is only ever put into that URL: syncplayd never sees it.
 */
export function withMediaToken(template, mediaToken) {
  return template.replace(/\{media_token\}/g, () => encodeURIComponent(mediaToken || ""));
}

/**
 * Where a template's media URLs must stay: the page's origin for a lone `{content_id}` (the
 * content id is the URL), else the folder of the template's fixed start
 * (`/Videos/{content_id}/stream` -> `/Videos/`; a start with no folder: the page's folder).
 */
export function mediaBase(template) {
  if (template.trim() === LONE_TEMPLATE) return "/";
  const start = template.trimStart();
  const at = start.search(PLACEHOLDER);
  const fixed = at < 0 ? start : start.slice(0, at);
  return fixed.slice(0, fixed.lastIndexOf("/") + 1) || "./";
}

/**
 * Whether `url` (what `mediaUrl` built from `template`) stays under the template's base, as
 * the page resolves it: the same origin and a path below the base's. A room's content id is
 * chosen by whoever created the room, and every member's browser fetches the URL: without this
 * check it could send them to any host (`https://elsewhere/`, `//elsewhere`, `/\\elsewhere`) or
 * climb out of the template's path (`..`). `web.allow_any_media_url` turns the check off.
 */
export function underMediaBase(url, template, pageUrl = location.href) {
  let target;
  let base;
  try {
    target = new URL(url, pageUrl);
    base = new URL(mediaBase(template), pageUrl);
  } catch {
    return false;
  }
  return target.origin === base.origin && target.pathname.startsWith(base.pathname);
}

// --- formatting -----------------------------------------------------------------------

/** 75.4 -> "1:15", 3725 -> "1:02:05". */
export function formatTime(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** An RFC 3339 timestamp as a local clock time ("19:21"). */
export function formatClock(timestamp) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** ["Ben"] -> "Ben", ["Ben", "Cy"] -> "Ben and Cy", four names -> "Ben, Cy and 2 others". */
export function listNames(names) {
  if (names.length <= 1) return names.join("");
  if (names.length === 2) return `${names[0]} and ${names[1]}`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]}`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others`;
}

/** A rate for display: 1 -> "1×", 1.25 -> "1.25×". */
export function formatRate(rate) {
  return `${Number(rate.toFixed(2))}×`;
}

/** Counts code points, as the server does for chat length limits. */
export function codePointLength(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

// --- participants -----------------------------------------------------------------------

/**
 * Everyone in the room, in joining order: the live members (from the socket, with presence,
 * buffering and latency) and the participants that only REST knows, those with no socket in the
 * live room (joined with an invitation or over REST and never connected, or not since a restart).
 * `rest` is the REST list (null before it arrived). A REST-only participant is shown as away: the
 * socket, not REST's briefly-behind `is_connected`, says who is here.
 */
export function mergeParticipants(live, rest) {
  if (!Array.isArray(rest)) return [...live];
  const liveById = new Map(live.map((member) => [member.user_id, member]));
  const merged = [];
  for (const participant of rest) {
    if (!participant || typeof participant.user_id !== "string") continue;
    const member = liveById.get(participant.user_id);
    liveById.delete(participant.user_id);
    merged.push(member || {
      user_id: participant.user_id,
      user_name: participant.user_name,
      role: participant.role,
      is_connected: false,
      sessions: 0,
      buffering: false,
      latency_ms: null,
      muted: participant.muted === true,
      ready: false,
      ended: false,
      behind: false,
    });
  }
  return [...merged, ...liveById.values()]; // joined after the REST list was fetched
}

// --- URLs on screen ---------------------------------------------------------------------

const CREDENTIAL_PARAM = /token|key|secret|sig|auth|pass|credential/i;

/**
 * A URL fit to show on screen (people share screenshots of error messages): absolute, without
 * user info or fragment, with the values of query parameters named like credentials
 * (`api_key`, `token`, `X-Amz-Signature`...) and every one of `secrets` replaced by "…".
 */
export function displayUrl(url, secrets = [], base = location.href) {
  let parsed;
  try {
    parsed = new URL(url, base);
  } catch {
    return String(url);
  }
  const pairs = parsed.search.replace(/^\?/, "").split("&").filter(Boolean);
  const query = pairs.map((pair) => {
    const at = pair.indexOf("=");
    if (at < 0) return pair;
    let name = pair.slice(0, at);
    try {
      name = decodeURIComponent(name.replace(/\+/g, " "));
    } catch {
      // a broken escape: judge the raw name
    }
    return CREDENTIAL_PARAM.test(name) ? `${pair.slice(0, at)}=…` : pair;
  });
  let text = `${parsed.protocol}//${parsed.host}${parsed.pathname}${query.length ? `?${query.join("&")}` : ""}`;
  for (const secret of secrets) {
    if (typeof secret !== "string" || secret.length < 4) continue; // too short to tell apart
    for (const form of new Set([secret, encodeURIComponent(secret)])) text = text.split(form).join("…");
  }
  return text;
}

// --- roles and moderation ----------------------------------------------------------------
// The rules of syncplayd/core/access.py, so that the page offers only what the server will
// allow. The server decides anyway: a refusal it sends is shown as it is.

/** Who may take each action against someone else in the room (admins may take them all). */
const ACTORS = {
  promote: ["owner"],
  demote: ["owner"],
  transfer: ["owner"],
  kick: ["owner", "moderator"],
  ban: ["owner", "moderator"],
  unban: ["owner", "moderator"],
  mute: ["owner", "moderator"],
  unmute: ["owner", "moderator"],
  delete_chat: ["owner", "moderator"],
};
/** Nobody, admins included, does these to the room's owner. */
const NEVER_ON_OWNER = new Set(["demote", "ban", "mute"]);

/**
 * Someone's standing in the room: "owner" for the room's `owner_id` (even while a role message
 * is on its way), else their role ("moderator", "member"), null for someone not in the room.
 */
export function rankOf(room, userId, role) {
  if (room && userId && room.owner_id === userId) return "owner";
  return typeof role === "string" && role ? role : null;
}

/**
 * Whether `viewer` ({rank, isAdmin}) may take `action` against someone of rank `target`, in a
 * room whose moderators may (or may not) act on other moderators.
 */
export function mayModerate(viewer, action, target, moderatorsManageModerators = false) {
  if (!viewer || !(action in ACTORS)) return false;
  if (target === "owner" && NEVER_ON_OWNER.has(action)) return false;
  if (viewer.isAdmin) return true;
  if (!ACTORS[action].includes(viewer.rank)) return false;
  if (viewer.rank === "moderator") {
    if (target === "owner") return false;
    if (target === "moderator" && !moderatorsManageModerators) return false;
  }
  return true;
}

/**
 * What `viewer` ({userId, rank, isAdmin}) may do to `target` ({user_id, role, muted}), in the
 * People menu's order: an empty list for yourself and for anyone out of your reach.
 */
export function memberActions(viewer, target, room) {
  if (!viewer || !target || !viewer.userId || target.user_id === viewer.userId) return [];
  const rank = rankOf(room, target.user_id, target.role);
  const mm = Boolean(room && room.moderators_manage_moderators);
  const may = (action) => mayModerate(viewer, action, rank, mm);
  const actions = [];
  if (rank === "member" && may("promote")) actions.push("promote");
  if (rank === "moderator" && may("demote")) actions.push("demote");
  if ((rank === "member" || rank === "moderator") && may("transfer")) actions.push("transfer");
  if (rank !== null && !target.muted && may("mute")) actions.push("mute");
  if (target.muted && may("unmute")) actions.push("unmute");
  if (may("kick")) actions.push("kick");
  if (may("ban")) actions.push("ban");
  return actions;
}

/**
 * Whether `viewer` may delete a chat message of `authorId`, whose rank is `authorRank`: their
 * own as a member of the room, others' as the rules allow.
 */
export function mayDeleteChat(viewer, authorId, authorRank, room) {
  if (!viewer || !viewer.userId) return false;
  if (authorId === viewer.userId) return viewer.rank !== null || viewer.isAdmin;
  const mm = Boolean(room && room.moderators_manage_moderators);
  return mayModerate(viewer, "delete_chat", authorRank, mm);
}

/** Whether `viewer` may change the room's settings and end it (the owner, admins). */
export function mayManageRoom(viewer) {
  return Boolean(viewer && (viewer.isAdmin || viewer.rank === "owner"));
}

/** Whether `viewer` may see the room's bans (whoever may ban). */
export function mayListBans(viewer) {
  return Boolean(viewer && (viewer.isAdmin || ACTORS.ban.includes(viewer.rank)));
}

/** Whether someone of `rank` may play, pause and seek under the room's `control` mode. */
export function mayControl(control, rank) {
  return control !== "moderators" || rank === "owner" || rank === "moderator";
}

const ISO_TIME = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})/g;

/** An RFC 3339 timestamp as a local date and time ("5 Dec 2026, 17:00"). */
export function formatDateTime(timestamp, locales = []) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return String(timestamp);
  return date.toLocaleString(locales, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * A server's text (a problem's `detail`, a closing message) as a sentence for the page: a capital
 * first letter, timestamps in local time, a full stop unless it ends with punctuation.
 * "you are banned from this room until 2026-12-05T16:00:00Z: spoilers" becomes
 * "You are banned from this room until 5 Dec 2026, 17:00: spoilers." (in Berlin).
 */
export function readable(text, locales = []) {
  const body = String(text ?? "").trim().replace(ISO_TIME, (t) => formatDateTime(t, locales));
  if (!body) return "";
  const sentence = body[0].toUpperCase() + body.slice(1);
  return /[.!?…]$/.test(sentence) ? sentence : `${sentence}.`;
}

/** How long a ban or mute lasts, for a list: "for good" or "until 5 Dec 2026, 17:00". */
export function restrictionTerms(restriction, locales = []) {
  const until = restriction && restriction.expires_at;
  return until ? `until ${formatDateTime(until, locales)}` : "for good";
}

// --- the play queue and people's states ----------------------------------------------------

/** What the page shows for a queue item: its title, else its content id. */
export function itemLabel(item) {
  if (!item) return "";
  const title = typeof item.title === "string" ? item.title.trim() : "";
  return title || String(item.content_id ?? "");
}

/**
 * What plays when the current item ends: `{kind: "same"|"item"|"end"|"shuffle", item}`. The
 * server says it (`next_item_id`, repeat and shuffle applied); a queue without it (an older
 * server) is read as syncplayd/core/queue.py's `after_end` does: repeat one plays the same item
 * again; otherwise the next in the queue's order, or the first again with repeat all, else the
 * room stays at the end; shuffled, the order is the server's (`shuffle`).
 */
export function upNext(queue) {
  const items = queue && Array.isArray(queue.items) ? queue.items : [];
  const at = items.findIndex((item) => item && item.id === queue.current_item_id);
  if (at < 0) return { kind: "end", item: null };
  if ("next_item_id" in queue) {
    const next = items.find((item) => item && item.id === queue.next_item_id);
    if (!next) return { kind: "end", item: null };
    return { kind: next.id === queue.current_item_id ? "same" : "item", item: next };
  }
  if (queue.repeat === "one") return { kind: "same", item: items[at] };
  if (queue.shuffle && items.length > 1) return { kind: "shuffle", item: null };
  if (at + 1 < items.length) return { kind: "item", item: items[at + 1] };
  if (queue.repeat === "all") return { kind: at === 0 ? "same" : "item", item: items[0] };
  return { kind: "end", item: null };
}

/** "Next: Episode 2", "Then the room stops", ... for the queue panel. */
export function upNextText(queue) {
  const next = upNext(queue);
  if (next.kind === "same") return `Next: ${itemLabel(next.item)} again`;
  if (next.kind === "item") return `Next: ${itemLabel(next.item)}`;
  if (next.kind === "shuffle") return "Next: a shuffled pick from the queue";
  return "Next: nothing, the room stops at the end";
}

/**
 * Whether Next (`direction` 1) or Previous (-1) would change the item: not at the queue's end
 * unless repeat all wraps (the server does nothing there otherwise). Shuffled, the order is
 * unknown here: any queue of two or more may move.
 */
export function canStep(queue, direction) {
  const items = queue && Array.isArray(queue.items) ? queue.items : [];
  if (items.length < 2) return false;
  if (queue.shuffle || queue.repeat === "all") return true;
  const at = items.findIndex((item) => item && item.id === queue.current_item_id);
  if (at < 0) return false;
  return direction > 0 ? at + 1 < items.length : at > 0;
}

/** 1423.5 -> "23:43"; unknown -> "". */
export function formatDuration(seconds) {
  return Number.isFinite(seconds) && seconds > 0 ? formatTime(seconds) : "";
}

const MEMBER_STATE_LABELS = {
  disconnected: "not connected",
  buffering: "loading",
  behind: "catching up",
  ended: "finished",
  ready: "ready",
  "not-ready": "not ready",
  playing: "playing",
  paused: "paused",
  waiting: "waiting",
};

/**
 * One person's state in the People list, `{state, label}`: not connected, catching up (behind:
 * the room plays on without them), loading (the room may wait for them), finished (their
 * player reached the end), ready (pressed "I'm ready" in a paused room), not ready (a room that
 * starts when everyone is ready), else what the room does (playing, paused, waiting).
 */
export function memberState(member, playback, room) {
  let state;
  if (!member || !member.is_connected) state = "disconnected";
  else if (member.behind) state = "behind"; // loading or not: the room plays on without them
  else if (member.buffering) state = "buffering";
  else if (member.ended && playback && playback.ended) state = "ended";
  else if (!playback || playback.state === "paused") {
    if (member.ready) state = "ready";
    else if (room && room.start_when_ready) state = "not-ready";
    else state = playback && playback.ended ? "ended" : "paused";
  } else state = playback.state === "playing" ? "playing" : "waiting";
  return { state, label: MEMBER_STATE_LABELS[state] };
}

/**
 * How many of the connected `members` are ready: `{ready, total}`, for a room that starts when
 * everyone is ready.
 */
export function readiness(members) {
  const here = members.filter((member) => member && member.is_connected);
  return { ready: here.filter((member) => member.ready).length, total: here.length };
}

/**
 * A public room for the landing page's list: `{name, playing, people, state}`. `current` is the
 * room's current queue item (its title), when known; the state is the stored playback's.
 */
export function roomSummary(room, current) {
  const playback = (room && room.playback) || {};
  const count = Number.isInteger(room && room.participant_count) ? room.participant_count : 0;
  const duration = current && Number.isFinite(current.duration) ? current.duration : null;
  let state = { playing: "playing", waiting: "playing", paused: "paused" }[playback.state] || "paused";
  if (state === "paused" && duration !== null && playback.position >= duration - 0.05) state = "finished";
  return {
    name: String((room && room.name) || ""),
    playing: current ? itemLabel(current) : String((room && room.content_id) || ""),
    people: count === 1 ? "1 person" : `${count} people`,
    state,
  };
}
