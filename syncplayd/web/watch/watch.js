// The watch page: landing, sign-in, joining, and the room view (player, people, chat, invite).
//
// The SyncClient library drives the <video> (play/pause/seek/rate at the scheduled server
// time, buffering reports, drift correction). This page never plays, pauses or seeks the
// video itself: every user action becomes a room command (client.play(), client.seek()...)
// and the broadcast moves every player, this one included, together.

import { SyncClient, mediaUrl } from "./syncplay-client.js";
import {
  ApiError,
  codePointLength,
  displayUrl,
  formatClock,
  formatRate,
  formatTime,
  listNames,
  mergeParticipants,
  pageUrl,
  requestJson,
  store,
  takeFragment,
  tokenExpired,
  tokenSwitch,
  underMediaBase,
  withMediaToken,
  wsUrl,
} from "./watch-util.js";

const $ = (id) => document.getElementById(id);

const VIEWS = ["landing", "identity-panel", "name-panel", "password-panel", "message-panel", "room"];
const DEFAULT_TITLE = "Watch together · syncplayd";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TICK_MS = 250;
// After a change arrives, the slider follows the room (not the element) until the change is
// applied at its execute_at, and this much longer for the element's seek to land.
const FOLLOW_ROOM_MARGIN_MS = 500;
// Participants who joined without connecting cause no presence: REST is asked this often.
const ROSTER_REFRESH_MS = 30_000;
// Volume steps of the volume slider and of the arrow-up/down shortcuts.
const VOLUME_STEP = 0.05;

const DEFAULT_CONFIG = {
  protocol: 1,
  media_url_template: "{content_id}",
  allow_any_media_url: false,
  demo: false,
  demo_media_url: null,
  chat_enabled: true,
  max_chat_length: 1000,
};

/** Everything the page remembers between events. */
const app = {
  config: DEFAULT_CONFIG,
  client: null, // the current SyncClient; events of older clients are ignored
  routeSeq: 0, // bumped on every navigation: async steps of an older route give up
  roomId: null,
  joined: false, // the current client reached `joined` at least once
  leaving: false, // we asked to leave: the close that follows is not an error
  closing: null, // the last `closing` message: why the server closed the socket
  ticker: 0,
  seekDragging: false,
  seekHoldUntil: 0, // after a seek, keep the thumb where the user put it for a moment
  followRoomUntil: 0, // a change arrived: the slider shows the room's position until then
  routedSearch: null, // the query string route() last showed
  roster: null, // the REST participant list (for those without a socket), null until fetched
  rosterSeq: 0, // bumped per REST fetch: an older answer is dropped
  rosterTimer: 0,
  chatIds: new Set(),
  lastDrift: null,
  toastTimer: 0,
  toastPriority: 0,
  toastUntil: 0,
  retry: null, // what the "Try again" button does
  authRetried: false, // a fresh guest pass was refused too: stop asking for more
  nameResolver: null, // pending askName()
  passwordResolver: null, // pending askPassword()
  identityResolver: null, // pending askSwitch()
};

// For the browser tests and for debugging from the console.
window.syncplay = {
  get client() {
    return app.client;
  },
  get config() {
    return app.config;
  },
};

const video = $("video");

// --- views and small UI helpers -----------------------------------------------------------

function showView(id) {
  for (const view of VIEWS) $(view).hidden = view !== id;
}

/** The message view: loading, joining, refusals and endings. */
function showMessage(text, { retry = null, home = true } = {}) {
  $("message").textContent = text;
  app.retry = retry;
  $("message-retry").hidden = !retry;
  $("message-home").hidden = !home;
  showView("message-panel");
}

function setBodyState(state) {
  document.body.dataset.state = state;
}

/**
 * A transient notice. An important one (priority 1, a refused command) is not replaced by
 * chatter (priority 0, someone joined) while it is still on screen.
 */
function toast(text, { priority = 0, duration = 5000 } = {}) {
  const now = performance.now();
  if (priority < app.toastPriority && now < app.toastUntil) return;
  const box = $("toast");
  box.textContent = text;
  box.classList.remove("pop");
  void box.offsetWidth; // restart the CSS animation for a repeated toast
  box.classList.add("pop");
  app.toastPriority = priority;
  app.toastUntil = now + duration;
  clearTimeout(app.toastTimer);
  // Emptied, the toast takes no space (.toast:empty) and is gone for tests and eyes alike.
  app.toastTimer = setTimeout(() => {
    box.textContent = "";
  }, duration);
}

/** Shows `label` on a button for a moment (copy feedback). */
function flashButton(button, label) {
  if (!button.dataset.label) button.dataset.label = button.textContent;
  button.textContent = label;
  clearTimeout(Number(button.dataset.flashTimer));
  button.dataset.flashTimer = String(
    setTimeout(() => {
      button.textContent = button.dataset.label;
    }, 2000),
  );
}

function membersOf(collection) {
  if (!collection) return [];
  if (collection instanceof Map) return [...collection.values()];
  if (Array.isArray(collection)) return collection;
  return Object.values(collection);
}

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms))]);
}

// --- start-up and routing -------------------------------------------------------------------

async function main() {
  const fragment = takeFragment();
  bindStaticUi();
  await adoptFragment(fragment);
  try {
    const loaded = await requestJson(new URL("./config.json", location.href));
    app.config = { ...DEFAULT_CONFIG, ...loaded };
  } catch (err) {
    showMessage(`Could not load the page's configuration: ${err.message}`, {
      retry: () => location.reload(),
      home: false,
    });
    return;
  }
  applyConfig();
  // Back and forward. A link opened in this tab that differs only in its fragment
  // (`?room=X` to `?room=X#token=…`) loads no new page either: hashchange takes it.
  window.addEventListener("popstate", () => {
    if (location.search !== app.routedSearch) route();
  });
  window.addEventListener("hashchange", onHashChange);
  route();
}

function applyConfig() {
  const { demo, chat_enabled: chatEnabled, max_chat_length: maxChat } = app.config;
  // Demo mode: a muted video may autoplay everywhere (and the demo video has no sound).
  video.muted = Boolean(demo);
  $("volume-group").hidden = Boolean(demo);
  $("shortcuts-volume").hidden = Boolean(demo);
  renderMute();
  $("chat-panel").hidden = !chatEnabled;
  if (Number.isInteger(maxChat) && maxChat > 0) $("chat-input").maxLength = maxChat;
  $("fullscreen").hidden = !document.fullscreenEnabled;
}

/** Changes the address (no reload) and shows what it points at. */
function navigate(search) {
  history.pushState(null, "", `${location.pathname}${search}`);
  route();
}

/** Shows the view for the current address: landing, or the way into a room. */
async function route() {
  const seq = ++app.routeSeq;
  app.routedSearch = location.search;
  teardown();
  const params = new URLSearchParams(location.search);
  const roomId = params.get("room");
  const invite = params.get("invite");
  if (!roomId && !invite) {
    showLanding();
    return;
  }
  if (roomId && !UUID_RE.test(roomId)) {
    showMessage("This room link is broken: the room id is not valid.");
    return;
  }
  showMessage("Getting ready…", { home: false });
  const token = await ensureToken(seq);
  if (seq !== app.routeSeq) return;
  if (roomId) {
    await join(seq, { roomId, token });
    return;
  }
  const target = await resolveInvitation(seq, invite, token);
  if (target && seq === app.routeSeq) await join(seq, { roomId: target, token, invitationCode: invite });
}

/** Forgets the current room: closes the socket and clears the room view. */
function teardown() {
  const client = app.client;
  app.client = null;
  app.joined = false;
  app.leaving = false;
  app.closing = null;
  app.roomId = null;
  app.nameResolver = null;
  app.passwordResolver = null;
  if (client) {
    try {
      client.close();
    } catch {
      // already closed
    }
  }
  stopTicker();
  clearInterval(app.rosterTimer);
  app.rosterTimer = 0;
  app.roster = null;
  app.followRoomUntil = 0;
  if (video.hasAttribute("src")) {
    // Stops the download; not a playback command.
    video.removeAttribute("src");
    video.load();
  }
  if ($("invite-dialog").open) $("invite-dialog").close();
  $("autoplay-overlay").hidden = true;
  $("media-message").hidden = true;
  $("waiting-banner").hidden = true;
  $("participants").replaceChildren();
  $("participant-count").textContent = "";
  $("chat-log").replaceChildren();
  $("chat-error").textContent = "";
  $("playback-note").textContent = "";
  $("sync-stats").textContent = "";
  $("invite-link").value = "";
  $("invite-copy").disabled = true;
  $("leave").disabled = false;
  app.chatIds.clear();
  app.lastDrift = null;
  setControlsEnabled(false);
  setBodyState("idle");
  document.title = DEFAULT_TITLE;
}

// --- landing and demo -------------------------------------------------------------------------

function showLanding() {
  app.authRetried = false;
  const demo = Boolean(app.config.demo);
  $("landing-demo").hidden = !demo;
  $("landing-link").hidden = demo;
  $("landing-error").textContent = "";
  if (demo && !$("guest-name").value) $("guest-name").value = store.name() || "";
  showView("landing");
}

async function fetchGuestToken(name) {
  const data = await requestJson(new URL("./demo/guest", location.href), {
    method: "POST",
    body: { name },
  });
  store.setToken(data.token);
  store.setName(name);
  return data.token;
}

/** "Start a demo room": a guest token, a room with the demo video, then into the room. */
async function startDemo(event) {
  event.preventDefault();
  const name = $("guest-name").value.trim();
  const error = $("landing-error");
  if (!name) {
    error.textContent = "Enter your name first.";
    $("guest-name").focus();
    return;
  }
  if (!app.config.demo_media_url) {
    error.textContent = "The server has no demo video configured.";
    return;
  }
  error.textContent = "";
  $("start-demo").disabled = true;
  try {
    // Reuse this tab's guest token when it is for the same name and still fresh.
    let token = store.token();
    const reuse = token && store.name() === name && !tokenExpired(token, 120);
    if (!reuse) token = await fetchGuestToken(name);
    const body = { name: `${name}'s room`, content_type: "url", content_id: app.config.demo_media_url, is_public: true };
    let room;
    try {
      room = await requestJson("rooms", { method: "POST", token, body });
    } catch (err) {
      if (!(reuse && err.status === 401)) throw err;
      // The reused token was refused after all (a restarted demo server): once more, fresh.
      token = await fetchGuestToken(name);
      room = await requestJson("rooms", { method: "POST", token, body });
    }
    navigate(`?room=${encodeURIComponent(room.id)}`);
  } catch (err) {
    error.textContent = `Could not start the room: ${err.message}`;
  } finally {
    $("start-demo").disabled = false;
  }
}

// --- tokens -------------------------------------------------------------------------------------

/** Takes a link's `#token=` (see offerToken) and `#media_token=`. */
async function adoptFragment({ token: offered, mediaToken }) {
  const adopted = offered ? await offerToken(offered) : true;
  // The media credential goes with the link's identity: kept out if the user kept their own.
  if (mediaToken && adopted) store.setMediaToken(mediaToken);
}

/**
 * A link with credentials opened in this tab while the page is open: the browser only changes the
 * fragment. Taken as at start-up (out of the address bar at once; a different user's token only
 * if the user says so), then the page starts over with whatever identity the tab now holds.
 */
async function onHashChange() {
  const fragment = takeFragment();
  if (!fragment.token && !fragment.mediaToken) return;
  const seq = ++app.routeSeq;
  teardown(); // not in the room behind the question
  await adoptFragment(fragment);
  if (seq === app.routeSeq) route();
}

/**
 * The token of a link's `#token=`: adopted when it changes nothing (no token yet, or a fresh one
 * for the same user), else only if the user says so. Anyone can send a link with their own
 * token; adopted silently, everything this tab did next would be done as them. Resolves true
 * when the tab took it.
 */
async function offerToken(offered) {
  const change = tokenSwitch(store.token(), offered);
  const adopt = change === null || (await askSwitch(change));
  if (adopt) store.setToken(offered);
  return adopt;
}

function identityText({ name, userId }) {
  if (!name && !userId) return "an unknown user";
  return userId ? `${name || "someone"} (user ${userId.slice(0, 8)})` : name;
}

/** Resolves true for "Switch", false for "Keep". */
function askSwitch({ current, offered }) {
  $("identity-current").textContent = identityText(current);
  $("identity-offered").textContent = identityText(offered);
  showView("identity-panel");
  $("identity-keep").focus();
  return new Promise((resolve) => {
    app.identityResolver = resolve;
  });
}

function answerSwitch(switching) {
  const resolve = app.identityResolver;
  app.identityResolver = null;
  if (resolve) resolve(switching);
}

/**
 * The token for this tab: from the link's fragment (already moved to sessionStorage), from
 * sessionStorage, or in demo mode a guest token for a name. Without any, null: a trusted
 * reverse proxy may vouch for the user, and if not the socket says `unauthorized`.
 */
async function ensureToken(seq) {
  let token = store.token();
  if (token && tokenExpired(token)) {
    store.setToken(null);
    token = null;
  }
  if (token) return token;
  if (!app.config.demo) return null;
  return guestToken(seq);
}

/** A guest token, for the name remembered in this tab or one asked for. */
async function guestToken(seq, hint = "") {
  let name = store.name();
  let error = "";
  for (;;) {
    if (!name) {
      name = await askName(hint, error);
      if (seq !== app.routeSeq) return null;
      showMessage("Signing in…", { home: false });
    }
    try {
      return await fetchGuestToken(name);
    } catch (err) {
      if (seq !== app.routeSeq) return null;
      error = `Could not sign in: ${err.message}`;
      name = null;
    }
  }
}

function askName(hint, error) {
  $("name-hint").textContent = hint || "Pick a name the others will see.";
  $("name-error").textContent = error || "";
  $("name-input").value = store.name() || $("guest-name").value || "";
  showView("name-panel");
  $("name-input").focus();
  return new Promise((resolve) => {
    app.nameResolver = resolve;
  });
}

function submitName(event) {
  event.preventDefault();
  const name = $("name-input").value.trim();
  if (!name) {
    $("name-error").textContent = "Enter a name.";
    return;
  }
  const resolve = app.nameResolver;
  app.nameResolver = null;
  if (resolve) resolve(name);
}

function askPassword(error) {
  $("password-error").textContent = error || "";
  $("password-input").value = "";
  showView("password-panel");
  $("password-input").focus();
  return new Promise((resolve) => {
    app.passwordResolver = resolve;
  });
}

function submitPassword(event) {
  event.preventDefault();
  const password = $("password-input").value;
  if (!password) {
    $("password-error").textContent = "Enter the password.";
    return;
  }
  const resolve = app.passwordResolver;
  app.passwordResolver = null;
  if (resolve) resolve(password);
}

// --- invitations and joining --------------------------------------------------------------------

const INVITATION_PROBLEMS = {
  "not-found": "This invitation does not exist. Check the link, or ask for a new one.",
  "invitation-expired": "This invitation has expired. Ask for a new link.",
  "invitation-used-up": "This invitation has been used up. Ask for a new link.",
};

/** Looks an invitation code up; returns its room id, or null after showing why not. */
async function resolveInvitation(seq, code, token) {
  let invitation;
  try {
    invitation = await requestJson(`invitations/${encodeURIComponent(code)}`, { token });
  } catch (err) {
    if (seq !== app.routeSeq) return null;
    if (err.status === 401) {
      unauthorized(seq, { roomId: null });
      return null;
    }
    const text = INVITATION_PROBLEMS[err.code] || `Could not open the invitation: ${err.message}`;
    const transient = !(err.code in INVITATION_PROBLEMS);
    showMessage(text, { retry: transient ? () => route() : null });
    return null;
  }
  if (invitation.room && invitation.room.ended_at) {
    showMessage(`“${invitation.room.name}” has ended.`);
    return null;
  }
  if (invitation.room) showMessage(`Joining “${invitation.room.name}”…`, { home: false });
  return invitation.room_id;
}

const REFUSALS = {
  "room-ended": "This room has ended.",
  "room-full": "This room is full. Try again when someone has left.",
  "not-a-member": "This room is private. Ask someone in it for an invitation link.",
  "not-found": "This room does not exist (any more).",
  "invitation-invalid": "This invitation is not valid for you or for this room.",
  "invitation-expired": "This invitation has expired. Ask for a new link.",
  "invitation-used-up": "This invitation has been used up. Ask for a new link.",
  "too-many-connections": "You have too many rooms open. Close another tab, then try again.",
  "connection-failed": "Could not reach the server. Check your connection, then try again.",
  timeout: "The server did not answer in time. Try again.",
};
// Refusals that trying again cannot fix.
const FINAL_REFUSALS = new Set([
  "room-ended",
  "not-a-member",
  "not-found",
  "invitation-invalid",
  "invitation-expired",
  "invitation-used-up",
]);

/** Opens a socket to the room; on refusal shows why (or asks for the password). */
async function join(seq, options) {
  const { roomId, token, invitationCode, password } = options;
  app.roomId = roomId;
  showMessage(password ? "Checking the password…" : "Joining the room…", { home: false });
  const client = new SyncClient({
    url: wsUrl(),
    token: token || undefined,
    roomId,
    password: password || undefined,
    invitationCode: invitationCode || undefined,
    // The same participant after a reload: the server hands the session back.
    resumeSessionId: store.session(roomId) || undefined,
    media: video,
  });
  adopt(client);
  let joined;
  try {
    joined = await client.connect();
  } catch (err) {
    if (client !== app.client) return;
    app.client = null;
    try {
      client.close();
    } catch {
      // already closed
    }
    setBodyState("idle");
    await refused(seq, options, err);
    return;
  }
  if (client !== app.client) return;
  if (invitationCode) {
    // From now on this user is a participant: a reload must not depend on the invitation
    // (which may expire or run out of uses).
    history.replaceState(null, "", `${location.pathname}?room=${encodeURIComponent(roomId)}`);
    app.routedSearch = location.search;
  }
  onJoined(client, joined);
}

async function refused(seq, options, err) {
  const code = err && err.code;
  if (code === "wrong-password") {
    const password = await askPassword(options.password ? "Wrong password. Try again." : "");
    if (seq !== app.routeSeq) return;
    await join(seq, { ...options, password });
    return;
  }
  if (code === "unauthorized") {
    await unauthorized(seq, options);
    return;
  }
  const text = REFUSALS[code] || `Could not join the room: ${(err && err.message) || code || "unknown error"}`;
  showMessage(text, { retry: FINAL_REFUSALS.has(code) ? null : () => route() });
}

/** The server refused our token (or the lack of one). */
async function unauthorized(seq, options) {
  store.setToken(null);
  if (!app.config.demo || app.authRetried) {
    showMessage(
      "You are not signed in, or your sign-in has expired. Open the watch-together link " +
        "from your media server again.",
    );
    return;
  }
  // Demo mode: a fresh guest pass (for the name this tab remembers), then try again once.
  app.authRetried = true;
  const token = await guestToken(seq, "Your guest pass has expired. Enter your name to continue.");
  if (seq !== app.routeSeq) return;
  if (options.roomId) await join(seq, { ...options, token });
  else route();
}

// --- the client's events ------------------------------------------------------------------------

/** Makes `client` the current one and listens to it; events of replaced clients are dropped. */
function adopt(client) {
  app.client = client;
  app.joined = false;
  app.leaving = false;
  app.closing = null;
  const on = (type, handler) => {
    client.addEventListener(type, (event) => {
      if (client === app.client) handler(event.detail || {}, client);
    });
  };
  on("statechange", onStateChange);
  on("joined", (detail) => onJoined(client, detail.message));
  on("scheduled", onScheduled);
  on("playback", onPlayback);
  on("participants", renderParticipants);
  on("presence", onPresence);
  on("chat", (detail) => appendChat(detail.message));
  on("error", onServerError);
  on("closing", (detail) => {
    app.closing = detail;
  });
  on("autoplayblocked", () => {
    $("autoplay-overlay").hidden = false;
  });
  on("drift", (detail) => {
    app.lastDrift = detail;
  });
  setBodyState(client.state || "connecting");
}

function onStateChange({ state, reason }, client) {
  setBodyState(state);
  renderConnState(state);
  setControlsEnabled(state === "joined");
  if (state === "joined") saveSession(client);
  if (state === "reconnecting" && app.joined) toast("Connection lost. Reconnecting…");
  if (state === "closed" && app.joined && !app.leaving) showEnded(reason || (app.closing && app.closing.reason));
}

/** The first `joined`, and every re-join after a reconnect: a full snapshot of the room. */
function onJoined(client, message) {
  app.joined = true;
  app.authRetried = false;
  saveSession(client);
  const room = (message && message.room) || client.room;
  renderRoomHeader(room, client.you);
  setMediaSource(room);
  renderParticipants();
  refreshRoster(client);
  if (!app.rosterTimer) {
    app.rosterTimer = setInterval(() => {
      if (app.client) refreshRoster(app.client);
    }, ROSTER_REFRESH_MS);
  }
  renderChatHistory(client.chatHistory || (message && message.chat) || []);
  renderPlayback(client.playback || (message && message.playback));
  renderConnState(client.state);
  setBodyState(client.state);
  setControlsEnabled(client.state === "joined");
  if ($("room").hidden) {
    showView("room");
    startTicker();
  }
}

function saveSession(client) {
  const roomId = (client.room && client.room.id) || app.roomId;
  if (roomId && client.sessionId) store.setSession(roomId, client.sessionId);
}

const ENDINGS = {
  "room-ended": "The room has ended.",
  "gave-up": "The connection to the room was lost, and reconnecting failed.",
  left: "You left this room (from another tab or device).",
  replaced: "This room is now open in another tab or window, so it stopped here.",
  kicked: "You were removed from the room.",
  unauthorized: "Your sign-in has expired.",
  "protocol-error": "This page and the server do not understand each other. Reload the page.",
};

/** The socket closed for good while we were in the room. */
function showEnded(reason) {
  stopTicker();
  const roomId = app.roomId;
  if (reason === "room-ended" || reason === "left" || reason === "kicked") store.setSession(roomId, null);
  if (reason === "unauthorized") store.setToken(null);
  const text = ENDINGS[reason] || "The connection to the room was lost.";
  // Taking a replaced session back is fine when the user asks for it; unauthorized can only
  // be fixed in demo mode (a new guest pass).
  const final = ["room-ended", "left", "kicked", "protocol-error"].includes(reason) ||
    (reason === "unauthorized" && !app.config.demo);
  showMessage(text, { retry: final ? null : () => route() });
}

const PLAYBACK_NOTES = {
  play: (who) => `${who || "Someone"} pressed play`,
  pause: (who, pb) => `${who || "Someone"} paused at ${formatTime(pb.position)}`,
  seek: (who, pb) => `${who || "Someone"} jumped to ${formatTime(pb.position)}`,
  rate: (who, pb) => `${who || "Someone"} set the speed to ${formatRate(pb.rate)}`,
  waiting: () => "Waiting for everyone to be ready",
  resume: () => "Everyone is ready: playing",
  // The snapshot of a (re)join: no reason, only the state and who changed it last.
  joined: (who, pb) => {
    const state = { playing: "Playing", paused: "Paused", waiting: "Waiting for everyone to be ready" }[pb.state];
    if (!state) return "";
    return who ? `${state} · last change by ${who}` : state;
  },
};

function onPlayback({ playback, reason, setBy }, client) {
  const pb = playback || client.playback;
  renderPlayback(pb);
  const note = PLAYBACK_NOTES[reason];
  if (note && pb) $("playback-note").textContent = note(setBy || pb.set_by, pb);
}

/**
 * A change arrived; the element applies it at its execute_at, a lead later. The note and the
 * slider show it now: a seek moves the thumb when it is announced, not when it lands.
 */
function onScheduled({ playback, reason, executeAt, setBy }, client) {
  const note = PLAYBACK_NOTES[reason];
  if (note && playback) $("playback-note").textContent = note(setBy, playback);
  const wait = Math.max(0, executeAt - client.serverTime());
  app.followRoomUntil = performance.now() + wait * 1000 + FOLLOW_ROOM_MARGIN_MS;
  renderPosition();
}

function onPresence({ event, member, detail }, client) {
  // Gone for good: off the REST list too, without waiting for its next refresh.
  if (event === "left" && member && app.roster) {
    app.roster = app.roster.filter((p) => p.user_id !== member.user_id);
  }
  renderParticipants();
  if (!member) return;
  const isYou = client.you && member.user_id === client.you.user_id;
  const name = member.user_name;
  if (event === "not_ready_timeout") toast(`Stopped waiting for ${detail || name}`);
  else if (event === "latency") toast(isYou ? `Your connection is slow (${detail})` : `${name}'s connection is slow (${detail})`);
  else if (isYou) return;
  else if (event === "joined") toast(`${name} joined`);
  else if (event === "left") toast(`${name} left`);
}

const COMMAND_ERRORS = {
  "not-allowed": "Only the owner controls playback in this room.",
  "rate-limited": "Slow down: too many actions at once.",
  "not-joined": "Not connected to the room right now.",
};

function onServerError({ code, message, ref }) {
  // A refused join is shown by join(); a refused chat message (ref = its client id) next
  // to the chat input, by sendChat().
  if (!app.joined || ref) return;
  toast(COMMAND_ERRORS[code] || message || code, { priority: 1 });
}

// --- room view: header, media, playback -------------------------------------------------------

const CONN_LABELS = {
  joined: "connected",
  reconnecting: "reconnecting",
  connecting: "connecting",
  idle: "connecting",
  closed: "closed",
};

function renderConnState(state) {
  const badge = $("conn-state");
  badge.textContent = CONN_LABELS[state] || state;
  badge.dataset.state = state;
}

function renderRoomHeader(room, you) {
  if (room) {
    $("room-name").textContent = room.name;
    document.title = `${room.name} · Watch together`;
    $("room-link").value = pageUrl(`?room=${encodeURIComponent(room.id)}`);
  }
  $("you-name").textContent = (you && you.user_name) || "";
}

function setMediaSource(room) {
  let url = null;
  const configured = app.config.media_url_template;
  if (configured.includes("{media_token}") && !store.mediaToken()) {
    showMediaMessage("Open this room from your media server's link to play its video here.");
    return;
  }
  const template = withMediaToken(configured, store.mediaToken());
  try {
    url = room ? mediaUrl(template, room.content_type, room.content_id) : null;
  } catch {
    url = null;
  }
  if (!url) {
    showMediaMessage("This room's media cannot be played in the browser.");
    return;
  }
  if (!app.config.allow_any_media_url && !underMediaBase(url, template)) {
    // Never fetched: the request alone would tell that host who is watching.
    showMediaMessage("This room's media is on another site, which this server does not allow.");
    return;
  }
  if (video.getAttribute("src") === url) return;
  $("media-message").hidden = true;
  video.src = url;
}

function showMediaMessage(text) {
  const box = $("media-message");
  box.textContent = text;
  box.hidden = false;
}

function onVideoError() {
  if (!video.getAttribute("src")) return; // teardown removed the source: not an error
  const code = video.error && video.error.code;
  const why = {
    2: "a network error interrupted the download",
    3: "the file could not be decoded",
    4: "the file is missing or in a format this browser cannot play",
  }[code];
  const tried = displayUrl(video.currentSrc || video.src, [store.mediaToken()]);
  showMediaMessage(`The video could not be loaded: ${why || "the browser gave no reason"} (tried ${tried}).`);
}

function renderPlayback(pb) {
  if (!pb) return;
  const active = pb.state === "playing" || pb.state === "waiting";
  const button = $("play-toggle");
  button.dataset.action = active ? "pause" : "play";
  $("play-label").textContent = active ? "Pause" : "Play";
  setRateSelect(pb.rate);
  renderWaiting();
}

/** Shows the room's rate; a rate set by another client that is not in the list is added. */
function setRateSelect(rate) {
  if (!Number.isFinite(rate)) return;
  const select = $("rate");
  let option = [...select.options].find((o) => Number(o.value) === rate);
  if (!option) {
    option = new Option(formatRate(rate), String(rate));
    option.dataset.extra = "1";
    select.add(option);
  }
  select.value = option.value;
}

/** "Waiting for Ben…" while the room waits for members who are loading. */
function renderWaiting() {
  const client = app.client;
  const banner = $("waiting-banner");
  if (!client || !client.playback || client.playback.state !== "waiting") {
    banner.hidden = true;
    return;
  }
  const youId = client.you && client.you.user_id;
  const names = membersOf(client.participants)
    .filter((m) => m.is_connected && m.buffering)
    .map((m) => (m.user_id === youId ? "you" : m.user_name));
  banner.textContent = names.length ? `Waiting for ${listNames(names)}…` : "Waiting for others…";
  banner.hidden = false;
}

function setControlsEnabled(enabled) {
  for (const id of ["play-toggle", "back10", "fwd10", "seek", "rate"]) $(id).disabled = !enabled;
  const chatOn = enabled && app.config.chat_enabled;
  $("chat-input").disabled = !chatOn;
  $("chat-send").disabled = !chatOn;
}

// --- controls: every action is a room command ----------------------------------------------

function togglePlay() {
  const client = app.client;
  if (!client) return;
  const state = client.playback && client.playback.state;
  if (state === "playing" || state === "waiting") client.pause();
  else client.play();
}

/**
 * Where the room stands: the room's position (it already includes a change that was
 * broadcast but not yet applied, so two quick "+10 s" add up), else the video's.
 */
function roomPosition() {
  const client = app.client;
  try {
    const position = client && client.roomPosition();
    if (Number.isFinite(position)) return position;
  } catch {
    // not joined yet
  }
  return video.currentTime || 0;
}

function seekBy(delta) {
  const client = app.client;
  if (!client) return;
  let target = Math.max(0, roomPosition() + delta);
  if (Number.isFinite(video.duration) && video.duration > 0) target = Math.min(target, video.duration);
  client.seek(target);
}

function onSeekInput() {
  // While the thumb is dragged only the label follows; the seek is sent on `change`.
  app.seekDragging = true;
  $("time-current").textContent = formatTime(Number($("seek").value));
}

function onSeekChange() {
  app.seekDragging = false;
  app.seekHoldUntil = performance.now() + 1000;
  if (app.client) app.client.seek(Number($("seek").value));
}

function onRateChange() {
  const rate = Number($("rate").value);
  if (app.client && Number.isFinite(rate)) app.client.setRate(rate);
}

function renderMute() {
  const button = $("mute-toggle");
  button.textContent = video.muted ? "Unmute" : "Mute";
  button.setAttribute("aria-pressed", String(video.muted));
  const level = video.muted ? 0 : video.volume;
  const slider = $("volume");
  slider.value = String(level);
  slider.setAttribute("aria-valuetext", video.muted ? "muted" : `${Math.round(level * 100)} %`);
}

// Volume is local to this device: never a room command.
function toggleMute() {
  video.muted = !video.muted;
  if (!video.muted && video.volume === 0) video.volume = 0.5; // unmuting a slider at 0
}

function setVolume(level) {
  if (!Number.isFinite(level)) return;
  video.volume = Math.min(1, Math.max(0, level));
  video.muted = video.volume === 0;
}

function toggleShortcuts() {
  const help = $("shortcuts");
  help.hidden = !help.hidden;
  $("shortcuts-toggle").setAttribute("aria-expanded", String(!help.hidden));
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen();
  else $("stage").requestFullscreen().catch(() => {});
}

/**
 * The keyboard shortcuts the "?" button lists (index.html, #shortcuts): Space/K play-pause,
 * arrows or J/L ±10 s, arrows up/down volume, M mute, F full screen, ? the list. Fields keep
 * their keys, and a focused button or link keeps Space and Enter, which press it.
 */
function onShortcut(event) {
  if ($("room").hidden || !app.client || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($("invite-dialog").open) return;
  const target = event.target;
  if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
  if (target.closest && target.closest("button, a") && (event.key === " " || event.key === "Enter")) return;
  const room = {
    " ": togglePlay,
    k: togglePlay,
    ArrowLeft: () => seekBy(-10),
    j: () => seekBy(-10),
    ArrowRight: () => seekBy(10),
    l: () => seekBy(10),
  };
  const sound = !$("volume-group").hidden;
  const local = {
    ArrowUp: sound && (() => setVolume(video.volume + VOLUME_STEP)),
    ArrowDown: sound && (() => setVolume(video.volume - VOLUME_STEP)),
    m: sound && toggleMute,
    f: !$("fullscreen").hidden && toggleFullscreen,
    "?": toggleShortcuts,
  };
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key; // Caps Lock
  if (room[key] && $("play-toggle").disabled) return;
  const action = room[key] || local[key];
  if (!action) return;
  event.preventDefault();
  action();
}

/** Time labels, seek bar and sync stats, four times a second. */
function tick() {
  const duration = video.duration;
  const seek = $("seek");
  if (Number.isFinite(duration) && duration > 0) {
    if (Number(seek.max) !== duration) seek.max = String(duration);
    $("time-duration").textContent = formatTime(duration);
  }
  renderPosition();
  renderSyncStats();
  renderOwnLatency();
}

/**
 * The thumb and the time label: where the element is, or where the room is while a change is on
 * its way (announced, not yet applied) and while the element has no metadata.
 */
function renderPosition() {
  const now = performance.now();
  if (app.seekDragging || now < app.seekHoldUntil) return;
  const position = now < app.followRoomUntil || video.readyState < 1 ? roomPosition() : video.currentTime;
  $("seek").value = String(position);
  $("time-current").textContent = formatTime(position);
}

function renderSyncStats() {
  const client = app.client;
  const parts = [];
  const drift = app.lastDrift && app.lastDrift.drift;
  const playing = client && client.playback && client.playback.state === "playing";
  if (playing && Number.isFinite(drift)) parts.push(`off by ${Math.round(Math.abs(drift) * 1000)} ms`);
  if (client && Number.isFinite(client.latencyMs)) parts.push(`latency ${Math.round(client.latencyMs)} ms`);
  $("sync-stats").textContent = parts.join(" · ");
}

function startTicker() {
  stopTicker();
  tick();
  app.ticker = setInterval(tick, TICK_MS);
}

function stopTicker() {
  clearInterval(app.ticker);
  app.ticker = 0;
}

// --- participants ---------------------------------------------------------------------------

const STATUS_TEXT = { connected: "connected", buffering: "loading", disconnected: "not connected" };

function memberStatus(member) {
  if (!member.is_connected) return "disconnected";
  return member.buffering ? "buffering" : "connected";
}

function renderParticipants() {
  const client = app.client;
  if (!client) return;
  const youId = client.you && client.you.user_id;
  const members = mergeParticipants(membersOf(client.participants), app.roster);
  const items = members.map((member) => memberItem(member, member.user_id === youId));
  $("participants").replaceChildren(...items);
  const online = members.filter((m) => m.is_connected).length;
  $("participant-count").textContent = members.length ? `${online}/${members.length}` : "";
  renderWaiting();
}

function memberItem(member, isYou) {
  const status = memberStatus(member);
  const li = document.createElement("li");
  li.className = status;
  if (isYou) li.classList.add("you");
  li.dataset.userId = member.user_id;

  const dot = document.createElement("span");
  dot.className = "dot";
  dot.title = STATUS_TEXT[status];
  const dotText = document.createElement("span");
  dotText.className = "visually-hidden";
  dotText.textContent = `${STATUS_TEXT[status]}: `;

  const name = document.createElement("span");
  name.className = "member-name";
  name.textContent = member.user_name;
  if (isYou) {
    const you = document.createElement("span");
    you.className = "member-you";
    you.textContent = " (you)";
    name.append(you);
  }

  const role = document.createElement("span");
  role.className = `role role-${member.role}`;
  role.textContent = member.role;

  const latency = document.createElement("span");
  latency.className = "latency";
  if (status === "disconnected") {
    latency.textContent = STATUS_TEXT.disconnected;
    latency.setAttribute("aria-hidden", "true"); // said once already, by dotText
  } else {
    // Yours from your own pings: the server's figure comes only with presence about you.
    const own = isYou && app.client ? app.client.latencyMs : null;
    const ms = Number.isFinite(own) ? own : member.latency_ms;
    latency.textContent = latencyText(ms);
    if (Number.isFinite(ms)) latency.title = "one-way latency";
  }

  li.append(dot, dotText, name, role, latency);
  return li;
}

function latencyText(ms) {
  return Number.isFinite(ms) ? `${Math.round(ms)} ms` : "–";
}

/** Your own latency changes with every ping, not only with presence: kept current in your row. */
function renderOwnLatency() {
  const cell = document.querySelector("#participants li.you:not(.disconnected) .latency");
  const ms = app.client && app.client.latencyMs;
  if (cell && Number.isFinite(ms) && cell.textContent !== latencyText(ms)) cell.textContent = latencyText(ms);
}

/**
 * The participants REST knows, for those the socket does not show: people who joined (with an
 * invitation, over REST) but never connected cause no presence. Asked at every (re)join and every
 * ROSTER_REFRESH_MS; without an answer the People list shows the live members alone.
 */
async function refreshRoster(client) {
  const roomId = (client.room && client.room.id) || app.roomId;
  if (!roomId) return;
  const seq = ++app.rosterSeq;
  let page;
  try {
    page = await requestJson(`rooms/${encodeURIComponent(roomId)}/participants`, { token: store.token() });
  } catch {
    return;
  }
  if (client !== app.client || seq !== app.rosterSeq) return;
  app.roster = page && Array.isArray(page.items) ? page.items : null;
  renderParticipants();
}

// --- chat ---------------------------------------------------------------------------------------

const MAX_CHAT_NODES = 500;

function renderChatHistory(history) {
  app.chatIds.clear();
  $("chat-log").replaceChildren();
  for (const message of history) appendChat(message);
  const log = $("chat-log");
  log.scrollTop = log.scrollHeight;
}

function appendChat(message) {
  if (!message || app.chatIds.has(message.id)) return;
  app.chatIds.add(message.id);
  const log = $("chat-log");
  // Follow new messages only when the reader is at the bottom (not reading older ones).
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const client = app.client;
  const own = client && client.you && message.user_id === client.you.user_id;

  const item = document.createElement("div");
  item.className = own ? "chat-message own" : "chat-message";
  item.dataset.messageId = message.id;

  const meta = document.createElement("div");
  meta.className = "chat-meta";
  const author = document.createElement("span");
  author.className = "chat-author";
  author.textContent = message.user_name;
  const time = document.createElement("time");
  time.className = "chat-time";
  time.dateTime = message.created_at;
  time.textContent = formatClock(message.created_at);
  meta.append(author, " ", time);

  // textContent, never innerHTML: chat text is untrusted.
  const text = document.createElement("p");
  text.className = "chat-text";
  text.textContent = message.message;

  item.append(meta, text);
  log.append(item);
  while (log.childElementCount > MAX_CHAT_NODES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

const CHAT_ERRORS = {
  "rate-limited": "You are sending messages too fast. Wait a moment.",
  "chat-disabled": "Chat is switched off on this server.",
  "not-joined": "Not connected. Wait until you are back in the room.",
  "not-connected": "Not connected. Wait until you are back in the room.",
  "connection-lost": "The connection dropped before the message was confirmed.",
  timeout: "The server did not confirm the message. Try again.",
  "too-large": "The message is too long.",
  "room-ended": "The room has ended.",
};

async function sendChat(event) {
  event.preventDefault();
  const client = app.client;
  const input = $("chat-input");
  const error = $("chat-error");
  const text = input.value.trim();
  if (!client || !text) return;
  const max = app.config.max_chat_length;
  if (Number.isInteger(max) && codePointLength(text) > max) {
    error.textContent = `Messages can have at most ${max} characters.`;
    return;
  }
  error.textContent = "";
  $("chat-send").disabled = true;
  try {
    await client.chat(text);
    // Clear only if the user has not started the next message meanwhile.
    if (input.value.trim() === text) input.value = "";
  } catch (err) {
    if (client === app.client) {
      error.textContent = CHAT_ERRORS[err && err.code] || (err && err.message) || "The message could not be sent.";
    }
  } finally {
    $("chat-send").disabled = client !== app.client || client.state !== "joined" || !app.config.chat_enabled;
    if (!input.disabled) input.focus();
  }
}

// --- invite dialog ----------------------------------------------------------------------------

function openInvite() {
  $("invite-error").textContent = "";
  $("invite-dialog").showModal();
}

const INVITE_ERRORS = {
  forbidden: "Only the room's owner can create invitations.",
  "not-a-member": "Only the room's owner can create invitations.",
  "room-ended": "The room has ended.",
  unauthorized: "Your sign-in has expired. Reload the page.",
};

async function createInvitation() {
  const error = $("invite-error");
  const hours = $("invite-hours").valueAsNumber;
  if (!(hours > 0 && hours <= 720)) {
    error.textContent = "The expiry must be more than 0 and at most 720 hours.";
    $("invite-hours").focus();
    return;
  }
  const usesText = $("invite-uses").value.trim();
  let maxUses = null; // unlimited
  if (usesText) {
    maxUses = Number(usesText);
    if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > 1000) {
      error.textContent = "Max uses must be a whole number from 1 to 1000, or empty for unlimited.";
      $("invite-uses").focus();
      return;
    }
  }
  const roomId = (app.client && app.client.room && app.client.room.id) || app.roomId;
  if (!roomId) return;
  error.textContent = "";
  const button = $("invite-create");
  button.disabled = true;
  try {
    const invitation = await requestJson(`rooms/${encodeURIComponent(roomId)}/invitations`, {
      method: "POST",
      token: store.token(),
      body: { expires_in_hours: hours, max_uses: maxUses },
    });
    const link = $("invite-link");
    link.value = pageUrl(`?invite=${encodeURIComponent(invitation.code)}`);
    $("invite-copy").disabled = false;
    link.focus();
    link.select();
  } catch (err) {
    const code = err instanceof ApiError ? err.code : "";
    error.textContent = INVITE_ERRORS[code] || `Could not create the link: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

/** Copies an input's text: the Clipboard API, else the old select-and-copy. */
async function copyFrom(input, button) {
  const text = input.value;
  if (!text) return;
  let copied = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      copied = true;
    }
  } catch {
    // permission refused: fall back
  }
  if (!copied) {
    input.focus();
    input.select();
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
  }
  flashButton(button, copied ? "Copied" : "Press Ctrl+C");
  $("copy-status").textContent = copied ? "Link copied to the clipboard." : "Copy the selected link with Ctrl+C.";
}

// --- leaving ----------------------------------------------------------------------------------

async function leaveRoom() {
  const client = app.client;
  if (!client) return;
  app.leaving = true;
  $("leave").disabled = true;
  try {
    // leave() tells the server we are gone for good; do not hang on a dead connection.
    await withTimeout(Promise.resolve(client.leave()), 3000);
  } catch {
    // the socket may already be gone: leaving locally is all we can do
  }
  store.setSession(app.roomId, null);
  navigate("");
}

// --- wiring -----------------------------------------------------------------------------------

function bindStaticUi() {
  $("demo-form").addEventListener("submit", startDemo);
  $("identity-keep").addEventListener("click", () => answerSwitch(false));
  $("identity-switch").addEventListener("click", () => answerSwitch(true));
  $("name-form").addEventListener("submit", submitName);
  $("password-form").addEventListener("submit", submitPassword);
  $("message-retry").addEventListener("click", () => {
    if (app.retry) app.retry();
  });
  $("message-home").addEventListener("click", () => navigate(""));

  $("play-toggle").addEventListener("click", togglePlay);
  $("back10").addEventListener("click", () => seekBy(-10));
  $("fwd10").addEventListener("click", () => seekBy(10));
  $("seek").addEventListener("input", onSeekInput);
  $("seek").addEventListener("change", onSeekChange);
  $("seek").addEventListener("blur", () => {
    app.seekDragging = false;
  });
  $("rate").addEventListener("change", onRateChange);
  $("mute-toggle").addEventListener("click", toggleMute);
  $("volume").addEventListener("input", () => setVolume(Number($("volume").value)));
  $("shortcuts-toggle").addEventListener("click", toggleShortcuts);
  video.addEventListener("volumechange", renderMute);
  $("fullscreen").addEventListener("click", toggleFullscreen);
  $("autoplay-overlay").addEventListener("click", () => {
    $("autoplay-overlay").hidden = true;
    if (app.client) app.client.resumeMedia(); // inside the click: the browser allows playback now
  });
  video.addEventListener("playing", () => {
    $("autoplay-overlay").hidden = true;
  });
  video.addEventListener("error", onVideoError);
  video.addEventListener("durationchange", () => {
    if (app.ticker) tick(); // the length and the slider's range at once, not at the next tick
  });
  video.addEventListener("loadeddata", () => {
    $("media-message").hidden = true;
  });
  document.addEventListener("keydown", onShortcut);

  $("chat-form").addEventListener("submit", sendChat);
  $("chat-input").addEventListener("input", () => {
    $("chat-error").textContent = "";
  });

  $("invite-open").addEventListener("click", openInvite);
  $("invite-create").addEventListener("click", createInvitation);
  $("invite-copy").addEventListener("click", () => copyFrom($("invite-link"), $("invite-copy")));
  $("room-link-copy").addEventListener("click", () => copyFrom($("room-link"), $("room-link-copy")));
  $("leave").addEventListener("click", leaveRoom);
}

main();
