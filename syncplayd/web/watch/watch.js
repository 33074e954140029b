// The watch page: landing (with the public rooms), sign-in, joining, and the room view (player,
// play queue, people, chat, invite, and the owner's and moderators' tools: roles, removals, bans,
// mutes, settings).
//
// The SyncClient library drives the <video> (play/pause/seek/rate at the scheduled server
// time, buffering reports, drift correction). This page never plays, pauses or seeks the
// video itself: every user action becomes a room command (client.play(), client.seek()...)
// and the broadcast moves every player, this one included, together. The media element holds
// the item the room plays: the library announces it (`item`) and the page loads its media.

import { SyncClient, mediaUrl, queueItem } from "./syncplay-client.js";
import {
  ApiError,
  canStep,
  codePointLength,
  displayUrl,
  formatClock,
  formatRate,
  formatDuration,
  formatTime,
  itemLabel,
  listNames,
  mayControl,
  mayDeleteChat,
  mayListBans,
  mayManageRoom,
  memberActions,
  memberState,
  mergeParticipants,
  pageUrl,
  rankOf,
  readable,
  readiness,
  requestJson,
  restrictionTerms,
  roomSummary,
  store,
  takeFragment,
  tokenExpired,
  tokenSwitch,
  underMediaBase,
  upNextText,
  withMediaToken,
  wsUrl,
} from "./watch-util.js";

const $ = (id) => document.getElementById(id);

const VIEWS = ["landing", "identity-panel", "name-panel", "password-panel", "message-panel", "room"];
const DIALOGS = ["invite-dialog", "action-dialog", "settings-dialog", "bans-dialog"];
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
// The landing page's list of public rooms is asked again this often while it is shown.
const PUBLIC_ROOMS_REFRESH_MS = 15_000;

const DEFAULT_CONFIG = {
  protocol: 1,
  media_url_template: "{content_id}",
  allow_any_media_url: false,
  demo: false,
  demo_media_url: null,
  demo_queue: [],
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
  members: new Map(), // the People list as last shown, by user id (live and REST-only)
  menu: null, // the open person menu: {userId}
  muteLapsed: false, // a chat went through although you.muted: the mute expired (unannounced)
  action: null, // what the action dialog's confirm button does
  lastError: null, // the server's latest error frame: a rejoin's refusal explains a close
  queue: null, // the room's play queue as last shown (the socket's, or a REST answer's)
  publicTimer: 0, // refreshes the landing page's public rooms
  publicSeq: 0, // bumped per listing: an older answer is dropped
  listToken: null, // demo mode: a throwaway guest pass that only lists the public rooms
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
  app.lastError = null;
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
  clearInterval(app.publicTimer);
  app.publicTimer = 0;
  app.roster = null;
  app.queue = null;
  app.followRoomUntil = 0;
  if (video.hasAttribute("src")) {
    // Stops the download; not a playback command.
    video.removeAttribute("src");
    video.load();
  }
  for (const id of DIALOGS) if ($(id).open) $(id).close();
  closeMemberMenu();
  app.members = new Map();
  $("settings-open").hidden = true;
  $("bans-open").hidden = true;
  $("chat-muted").hidden = true;
  $("control-note").hidden = true;
  $("autoplay-overlay").hidden = true;
  $("media-message").hidden = true;
  $("waiting-banner").hidden = true;
  $("behind-banner").hidden = true;
  $("queue-panel").hidden = true;
  $("queue-list").replaceChildren();
  $("queue-error").textContent = "";
  $("ready-toggle").hidden = true;
  $("ready-note").hidden = true;
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
  loadPublicRooms();
  clearInterval(app.publicTimer);
  app.publicTimer = setInterval(loadPublicRooms, PUBLIC_ROOMS_REFRESH_MS);
}

/**
 * The token that lists the public rooms: the tab's own, else in demo mode a throwaway guest
 * pass (kept in memory, never stored: it must not become the name the tab joins with), else
 * none (a trusted proxy may vouch for the user).
 */
async function listingToken(own = true) {
  const token = store.token();
  if (own && token && !tokenExpired(token)) return token;
  if (!app.config.demo) return null;
  if (!app.listToken || tokenExpired(app.listToken)) {
    const pass = await requestJson(new URL("./demo/guest", location.href), {
      method: "POST",
      body: { name: "visitor" },
    });
    app.listToken = pass.token;
  }
  return app.listToken;
}

/** The landing page's list of public rooms: name, what plays, how many, the state. */
async function loadPublicRooms() {
  const seq = ++app.publicSeq;
  const routed = app.routeSeq;
  const stale = () => seq !== app.publicSeq || routed !== app.routeSeq || $("landing").hidden;
  let rooms;
  let token;
  const list = async (own) => {
    token = await listingToken(own);
    const page = await requestJson("rooms?public=true&limit=20", { token });
    return page && Array.isArray(page.items) ? page.items : [];
  };
  try {
    try {
      rooms = await list(true);
    } catch (err) {
      // The tab's own pass was refused (a demo server restarted with another secret).
      if (!(err.status === 401 && app.config.demo && token && token === store.token())) throw err;
      rooms = await list(false);
    }
  } catch (err) {
    if (stale()) return;
    // Not signed in (no link, no proxy): this server does not show its rooms to strangers.
    const refused = err.status === 401 || err.status === 403;
    $("public-rooms").hidden = refused;
    $("public-rooms-error").textContent = refused ? "" : `Could not list the rooms: ${err.message}`;
    return;
  }
  // What each plays: the title of its queue's current item (the room holds only its id).
  const queues = await Promise.all(
    rooms.map((room) =>
      requestJson(`rooms/${encodeURIComponent(room.id)}/queue`, { token }).catch(() => null),
    ),
  );
  if (stale()) return;
  $("public-rooms").hidden = false;
  $("public-rooms-error").textContent = "";
  $("public-rooms-empty").hidden = rooms.length > 0;
  const items = rooms.map((room, at) => {
    const queue = queues[at];
    return publicRoomItem(room, queueItem(queue, queue && queue.current_item_id));
  });
  $("public-room-list").replaceChildren(...items);
}

function publicRoomItem(room, current) {
  const summary = roomSummary(room, current);
  const li = document.createElement("li");
  li.dataset.roomId = room.id;
  li.dataset.state = summary.state;
  const link = document.createElement("a");
  link.className = "room-link";
  link.href = `?room=${encodeURIComponent(room.id)}`;
  const name = document.createElement("span");
  name.className = "room-link-name";
  name.textContent = summary.name;
  const playing = document.createElement("span");
  playing.className = "room-link-playing";
  playing.textContent = summary.playing;
  const meta = document.createElement("span");
  meta.className = "room-link-meta muted";
  const state = document.createElement("span");
  state.className = `room-state room-state-${summary.state}`;
  state.textContent = summary.state;
  meta.append(state, ` · ${summary.people}`);
  const join = document.createElement("span");
  join.className = "btn btn-primary btn-small room-link-join";
  join.textContent = "Join";
  link.append(name, playing, meta, join);
  link.addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return; // a new tab
    event.preventDefault();
    // The name typed on this page is who joins: no second question.
    const typed = $("guest-name").value.trim();
    if (app.config.demo && typed && !store.token()) store.setName(typed);
    navigate(`?room=${encodeURIComponent(room.id)}`);
  });
  li.append(link);
  return li;
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
  const queue = demoQueue();
  if (queue.length === 0) {
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
    const [first, ...rest] = queue;
    const body = {
      name: `${name}'s room`,
      content_type: first.content_type,
      content_id: first.content_id,
      is_public: true,
    };
    if (first.title) body.content_title = first.title;
    let room;
    try {
      room = await requestJson("rooms", { method: "POST", token, body });
    } catch (err) {
      if (!(reuse && err.status === 401)) throw err;
      // The reused token was refused after all (a restarted demo server): once more, fresh.
      token = await fetchGuestToken(name);
      room = await requestJson("rooms", { method: "POST", token, body });
    }
    // The other episodes after the first, in order. The room works without them: a failure
    // leaves it with the first one, and the queue panel can add more.
    try {
      for (const item of rest) {
        const add = { content_type: item.content_type, content_id: item.content_id };
        if (item.title) add.title = item.title;
        const path = `rooms/${encodeURIComponent(room.id)}/queue/items`;
        await requestJson(path, { method: "POST", token, body: add });
      }
    } catch {
      // see above
    }
    navigate(`?room=${encodeURIComponent(room.id)}`);
  } catch (err) {
    error.textContent = `Could not start the room: ${err.message}`;
  } finally {
    $("start-demo").disabled = false;
  }
}

/** The demo room's queue: the server's episodes, else its one demo video. */
function demoQueue() {
  const queue = Array.isArray(app.config.demo_queue) ? app.config.demo_queue : [];
  const items = queue.filter((item) => item && typeof item.content_id === "string");
  if (items.length > 0) return items;
  const single = app.config.demo_media_url;
  return single ? [{ content_type: "url", content_id: single, title: null }] : [];
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
    if (err.code === "banned") {
      showMessage(bannedText(err.message));
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
  "banned",
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
    url: wsUrl(roomId),
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
  if (code === "banned") {
    // The session is gone with the ban: a later visit (after an unban) is a new join.
    store.setSession(options.roomId, null);
    showMessage(bannedText(err.message));
    return;
  }
  const text = REFUSALS[code] || `Could not join the room: ${(err && err.message) || code || "unknown error"}`;
  showMessage(text, { retry: FINAL_REFUSALS.has(code) ? null : () => route() });
}

/** The server's refusal of a banned user ("you are banned from this room until …: reason"). */
function bannedText(detail) {
  return readable(detail) || "You are banned from this room.";
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
  app.lastError = null;
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
  on("chat_deleted", (detail) => removeChat(detail.messageId));
  on("room", onRoomChanged);
  on("item", (detail) => loadItemMedia(detail));
  on("queue", (detail) => renderQueue(detail.queue));
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
  if (state === "reconnecting" && app.joined) {
    // A room moved to another server is routine (a server joined or left): no alarm.
    toast(reason === "moved" ? "Reconnecting to the room…" : "Connection lost. Reconnecting…");
  }
  if (state === "closed" && app.joined && !app.leaving) showEnded(reason || (app.closing && app.closing.reason));
}

/** The first `joined`, and every re-join after a reconnect: a full snapshot of the room. */
function onJoined(client, message) {
  app.joined = true;
  app.muteLapsed = false;
  app.authRetried = false;
  saveSession(client);
  const room = client.room || (message && message.room);
  renderRoomHeader(room, client.you);
  // The media was loaded when the library announced the room's item (`item`, inside joined).
  renderQueue(client.queue);
  renderRoleUi();
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
  banned: "You were banned from the room.",
  unauthorized: "Your sign-in has expired.",
  "protocol-error": "This page and the server do not understand each other. Reload the page.",
};

/** The socket closed for good while we were in the room. */
function showEnded(reason) {
  stopTicker();
  // Out of the room: no more roster polls (a private room's list is now refused).
  clearInterval(app.rosterTimer);
  app.rosterTimer = 0;
  for (const id of DIALOGS) if ($(id).open) $(id).close();
  closeMemberMenu();
  clearTimeout(app.toastTimer);
  $("toast").textContent = ""; // news of the room is stale once you are out of it
  app.toastUntil = 0;
  const roomId = app.roomId;
  if (["room-ended", "left", "kicked", "banned"].includes(reason)) store.setSession(roomId, null);
  if (reason === "unauthorized") store.setToken(null);
  // Removed or banned: the closing message says who did it, why, and for how long. A ban that
  // landed while the page was reconnecting shows as the rejoin's refusal instead.
  let told = "";
  if (app.closing && app.closing.reason === reason && ["kicked", "banned"].includes(reason)) {
    told = readable(app.closing.message);
  } else if (reason === "banned" && app.lastError && app.lastError.code === "banned") {
    told = bannedText(app.lastError.message);
  }
  const text = told || ENDINGS[reason] || "The connection to the room was lost.";
  // Taking a replaced session back is fine when the user asks for it; unauthorized can only
  // be fixed in demo mode (a new guest pass).
  const final = ["room-ended", "left", "kicked", "banned", "protocol-error"].includes(reason) ||
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
  all_ready: () => "Everyone is ready: playing",
  ended: (who, pb) => {
    const queue = app.client && app.client.queue;
    const next = queue && queue.current_item_id === pb.item_id ? upNextText(queue) : "";
    return next && !next.startsWith("Next: nothing") ? `The end. ${next}` : "The end";
  },
  item: (who, pb) => {
    const item = queueItem(app.client && app.client.queue, pb.item_id);
    return item ? `Now playing: ${itemLabel(item)}` : "Next item";
  },
  // The snapshot of a (re)join: no reason, only the state and who changed it last.
  joined: (who, pb) => {
    const state = pb.ended
      ? "The end"
      : { playing: "Playing", paused: "Paused", waiting: "Waiting for everyone to be ready" }[pb.state];
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
  if (!member) {
    renderParticipants();
    return;
  }
  const isYou = client.you && member.user_id === client.you.user_id;
  // A role or a mute changes what buttons people get: yours, and next to their messages.
  if (["role", "muted", "unmuted"].includes(event)) {
    if (app.roster) {
      app.roster = app.roster.map((p) =>
        p.user_id === member.user_id ? { ...p, role: member.role, muted: member.muted } : p,
      );
    }
    if (isYou) {
      app.muteLapsed = false;
      renderRoleUi();
    }
    refreshChatActions();
  }
  renderParticipants();
  const name = member.user_name;
  if (event === "slow") {
    // Everyone is told the truth, the slow member first of all.
    const text = isYou
      ? "You are behind: catching up"
      : `${detail || name}'s connection is slow: playing on without waiting`;
    toast(text, { priority: isYou ? 1 : 0, duration: 8000 });
    return;
  }
  if (event === "not_ready_timeout") toast(`Stopped waiting for ${detail || name}`);
  else if (event === "latency") toast(isYou ? `Your connection is slow (${detail})` : `${name}'s connection is slow (${detail})`);
  else if (STANDING_NEWS[event]) toast(STANDING_NEWS[event](member, isYou), { priority: isYou ? 1 : 0 });
  else if (isYou) return;
  else if (event === "joined") toast(`${name} joined`);
  else if (event === "left") toast(`${name} left`);
}

/** What a role or a mute means, said to everyone (priority for the person concerned). */
const STANDING_NEWS = {
  role: (member, isYou) => {
    const who = isYou ? "You are" : `${member.user_name} is`;
    if (member.role === "owner") return `${who} now the room's owner`;
    if (member.role === "moderator") return `${who} now a moderator`;
    return `${who} no longer a moderator`;
  },
  muted: (member, isYou) =>
    isYou ? "You were muted: you can watch, but not write in the chat." : `${member.user_name} was muted`,
  unmuted: (member, isYou) =>
    isYou ? "You may write in the chat again." : `${member.user_name} may write in the chat again`,
};

const COMMAND_ERRORS = {
  "not-allowed": "Only the owner and moderators control playback in this room.",
  "not-ready":
    "Not everyone is ready yet: the room starts when they are (the owner and moderators can start anyway).",
  "rate-limited": "Slow down: too many actions at once.",
  "not-joined": "Not connected to the room right now.",
};

function onServerError({ code, message, ref }) {
  app.lastError = { code, message };
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

/**
 * The library announced the item the room plays (at joining, and at every new item): its media
 * goes into the element now, before the library moves the element to the item's playback.
 */
function loadItemMedia({ itemId, item }) {
  const client = app.client;
  if (item) setMediaSource(item);
  else if (itemId === null && client) setMediaSource(client.room); // a server without a queue
  // Else the queue does not name the item yet: the library holds the element and says again.
  renderQueue();
}

/** Loads the media of `content` ({content_type, content_id}: a queue item, or the room). */
function setMediaSource(content) {
  let url = null;
  const configured = app.config.media_url_template;
  if (configured.includes("{media_token}") && !store.mediaToken()) {
    refuseMedia("Open this room from your media server's link to play its video here.");
    return;
  }
  const template = withMediaToken(configured, store.mediaToken());
  try {
    url = content ? mediaUrl(template, content.content_type, content.content_id) : null;
  } catch {
    url = null;
  }
  if (!url) {
    refuseMedia("This room's media cannot be played in the browser.");
    return;
  }
  if (!app.config.allow_any_media_url && !underMediaBase(url, template)) {
    // Never fetched: the request alone would tell that host who is watching.
    refuseMedia("This room's media is on another site, which this server does not allow.");
    return;
  }
  if (video.getAttribute("src") === url) return;
  $("media-message").hidden = true;
  video.src = url;
}

/** The item's media cannot be loaded: say why, and let go of the previous item's media. */
function refuseMedia(text) {
  if (video.hasAttribute("src")) {
    video.removeAttribute("src");
    video.load();
  }
  showMediaMessage(text);
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
  // At the end, play starts the item over (the server plays an ended room from 0).
  $("play-label").textContent = active ? "Pause" : pb.ended ? "Play again" : "Play";
  document.body.dataset.ended = String(pb.ended === true);
  setRateSelect(pb.rate);
  renderWaiting();
  renderParticipants(); // people's states follow the room's (playing, paused, finished)
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

/**
 * "Waiting for Ben…" while the room waits for members who are loading; "You are behind:
 * catching up" while the room plays on without you (it stopped waiting for your connection).
 */
function renderWaiting() {
  const client = app.client;
  const banner = $("waiting-banner");
  const you = client && client.you;
  const pb = client && client.playback;
  renderBehind();
  renderReady();
  if (!pb || pb.state !== "waiting") {
    banner.hidden = true;
    return;
  }
  const youId = you && you.user_id;
  // Members the room no longer waits for (behind) hold nobody up.
  const names = membersOf(client.participants)
    .filter((m) => m.is_connected && m.buffering && !m.behind)
    .map((m) => (m.user_id === youId ? "you" : m.user_name));
  // Your own loading is known here first: the room's presence about it is on its way.
  if (client.buffering && !(you && you.behind) && !names.includes("you")) names.unshift("you");
  banner.textContent = names.length ? `Waiting for ${listNames(names)}…` : "Waiting for others…";
  banner.hidden = false;
}

/**
 * "You are behind: catching up": while the room plays on without you (`you.behind`) and your
 * player is still loading. Once it plays, the library has put it at the live position: in step.
 */
function renderBehind() {
  const client = app.client;
  const you = client && client.you;
  const pb = client && client.playback;
  const loading = Boolean(client && (client.buffering || video.paused || video.readyState < 3));
  const behind = Boolean(you && you.behind && pb && pb.state !== "paused" && loading);
  $("behind-banner").hidden = !behind;
}

/**
 * The "I'm ready" toggle, in a paused room on a server that knows readiness; in a room that
 * starts when everyone is ready, how many are.
 */
function renderReady() {
  const client = app.client;
  const button = $("ready-toggle");
  const note = $("ready-note");
  const room = client && client.room;
  const pb = client && client.playback;
  const known = Boolean(room && "start_when_ready" in room);
  const show = Boolean(client && client.state === "joined" && known && pb && pb.state === "paused");
  button.hidden = !show;
  const ready = Boolean(client && client.you && client.you.ready);
  button.setAttribute("aria-pressed", String(ready));
  button.textContent = ready ? "Ready ✓" : "I'm ready";
  if (show && room.start_when_ready) {
    const count = readiness(membersOf(client.participants));
    note.textContent = `Starts when everyone is ready (${count.ready} of ${count.total})`;
    note.hidden = false;
  } else {
    note.hidden = true;
  }
}

function toggleReady() {
  const client = app.client;
  if (!client || $("ready-toggle").hidden) return;
  client.setReady(!(client.you && client.you.ready));
}

/**
 * Playback controls for whoever may use them: everyone while joined, or only the owner and
 * moderators when the room says so (the server refuses the others' commands anyway).
 */
function setControlsEnabled(enabled) {
  const client = app.client;
  const control = client && client.settings && client.settings.control;
  const allowed = mayControl(control, viewer().rank);
  for (const id of ["play-toggle", "back10", "fwd10", "seek", "rate"]) $(id).disabled = !(enabled && allowed);
  $("control-note").hidden = !enabled || allowed;
  renderChatBox();
  renderQueue();
}

/**
 * The chat box: on while joined, unless chat is off on the server; muted, it says so. It stays
 * usable while muted: a mute that expires is not announced (only the next `joined` shows it),
 * and the server's refusal says until when.
 */
function renderChatBox() {
  const client = app.client;
  const joined = Boolean(client && client.state === "joined");
  const muted = Boolean(joined && client.you && client.you.muted && !app.muteLapsed);
  const on = joined && app.config.chat_enabled;
  $("chat-input").disabled = !on;
  $("chat-send").disabled = !on;
  $("chat-input").placeholder = muted ? "You are muted in this room" : "Say something…";
  $("chat-muted").hidden = !muted;
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
  const duration = mediaDuration();
  if (duration !== null) target = Math.min(target, duration);
  client.seek(target);
}

/** The item's length: the element's, else the room's (before the metadata arrived). */
function mediaDuration() {
  if (Number.isFinite(video.duration) && video.duration > 0) return video.duration;
  const pb = app.client && app.client.playback;
  return pb && Number.isFinite(pb.duration) && pb.duration > 0 ? pb.duration : null;
}

/** Next (1) or previous (-1) item, for the item this page shows: pressed twice, it moves once. */
function stepItem(direction) {
  const client = app.client;
  const queue = client && client.queue;
  if (!queue || !queue.current_item_id) return;
  if (direction > 0) client.next(queue.current_item_id);
  else client.previous(queue.current_item_id);
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
  if (DIALOGS.some((id) => $(id).open) || !$("member-menu").hidden) return;
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
    n: () => !$("next-item").disabled && stepItem(1),
    p: () => !$("prev-item").disabled && stepItem(-1),
  };
  const sound = !$("volume-group").hidden;
  const local = {
    ArrowUp: sound && (() => setVolume(video.volume + VOLUME_STEP)),
    ArrowDown: sound && (() => setVolume(video.volume - VOLUME_STEP)),
    m: sound && toggleMute,
    f: !$("fullscreen").hidden && toggleFullscreen,
    r: !$("ready-toggle").hidden && toggleReady,
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
  const duration = mediaDuration();
  const seek = $("seek");
  if (duration !== null) {
    if (Number(seek.max) !== duration) seek.max = String(duration);
    $("time-duration").textContent = formatTime(duration);
  }
  renderPosition();
  renderSyncStats();
  renderOwnLatency();
  renderBehind(); // follows your player's loading, not only the room's news
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
  app.members = new Map(members.map((member) => [member.user_id, member]));
  const me = viewer();
  // The list is rebuilt on every presence: a focused menu button must keep the focus.
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest("#participants li")
    : null;
  const refocus = focused ? focused.dataset.userId : null;
  const items = members.map((member) =>
    memberItem(member, member.user_id === youId, memberActions(me, member, client.room)),
  );
  $("participants").replaceChildren(...items);
  if (refocus) {
    const button = document.querySelector(`#participants li[data-user-id="${CSS.escape(refocus)}"] .member-menu-button`);
    if (button) button.focus();
  }
  const online = members.filter((m) => m.is_connected).length;
  $("participant-count").textContent = members.length ? `${online}/${members.length}` : "";
  renderWaiting();
}

function memberItem(member, isYou, actions) {
  const status = memberStatus(member);
  const client = app.client;
  const { state, label } = memberState(member, client && client.playback, client && client.room);
  const li = document.createElement("li");
  li.className = status;
  if (isYou) li.classList.add("you");
  if (member.muted) li.classList.add("muted-member");
  li.dataset.userId = member.user_id;
  li.dataset.state = state;

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

  const badges = document.createElement("span");
  badges.className = "badges";
  const role = document.createElement("span");
  role.className = `role role-${member.role}`;
  role.textContent = member.role;
  badges.append(role);
  if (member.muted) {
    const muted = document.createElement("span");
    muted.className = "muted-badge";
    muted.textContent = "muted";
    muted.title = "Muted: can watch, but not write in the chat";
    badges.append(muted);
  }
  if (member.desktop) {
    const desktop = document.createElement("span");
    desktop.className = "desktop-badge";
    desktop.textContent = "desktop";
    desktop.title = "Watching in a desktop player (Syncplay)";
    badges.append(desktop);
  }

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

  // What they are doing: playing, loading, catching up, ready, finished... (said by the dot
  // and the latency cell for someone not connected).
  const doing = document.createElement("span");
  doing.className = `member-state member-state-${state}`;
  if (status !== "disconnected") doing.textContent = label;

  // Only what the viewer may do to this person; no button when that is nothing.
  let menu = document.createElement("span");
  if (actions.length > 0) {
    menu = document.createElement("button");
    menu.type = "button";
    menu.className = "btn btn-icon member-menu-button";
    menu.textContent = "⋯";
    menu.title = `Actions for ${member.user_name}`;
    menu.setAttribute("aria-label", `Actions for ${member.user_name}`);
    menu.setAttribute("aria-haspopup", "menu");
    const open = app.menu && app.menu.userId === member.user_id;
    menu.setAttribute("aria-expanded", String(Boolean(open)));
    menu.addEventListener("click", (event) => {
      event.stopPropagation();
      if (app.menu && app.menu.userId === member.user_id) closeMemberMenu();
      else openMemberMenu(menu, member.user_id);
    });
  }

  li.append(dot, dotText, name, badges, doing, latency, menu);
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
  refreshChatActions(); // authors with no socket: their roles are known now
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
  item.dataset.userId = message.user_id;

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
  setChatDelete(item, viewer());
  log.append(item);
  while (log.childElementCount > MAX_CHAT_NODES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

/** The delete button of one message: there when the viewer may delete it, else not. */
function setChatDelete(item, me) {
  const authorId = item.dataset.userId;
  const allowed = mayDeleteChat(me, authorId, authorRank(authorId), app.client && app.client.room);
  const button = item.querySelector(".chat-delete");
  if (allowed && !button) {
    const author = item.querySelector(".chat-author");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "chat-delete";
    remove.textContent = "✕";
    remove.title = "Delete this message";
    remove.setAttribute("aria-label", `Delete the message from ${author ? author.textContent : "this person"}`);
    remove.addEventListener("click", () => deleteChat(item.dataset.messageId, remove));
    item.querySelector(".chat-meta").append(remove);
  } else if (!allowed && button) {
    button.remove();
  }
}

/** Roles changed (yours or an author's): every message's delete button again. */
function refreshChatActions() {
  const me = viewer();
  for (const item of $("chat-log").querySelectorAll(".chat-message")) setChatDelete(item, me);
}

/** An author's rank now: the owner, a role from the People list, or null for someone gone. */
function authorRank(userId) {
  const client = app.client;
  const live = client && client.participants && client.participants.get ? client.participants.get(userId) : null;
  const member = live || app.members.get(userId);
  return rankOf(client && client.room, userId, member && member.role);
}

async function deleteChat(messageId, button) {
  button.disabled = true;
  try {
    await roomRequest(`/chat/${encodeURIComponent(messageId)}`, "DELETE");
    removeChat(messageId); // the broadcast follows; the page need not wait for it
  } catch (err) {
    button.disabled = false;
    toast(`Could not delete the message: ${refusal(err)}`, { priority: 1 });
  }
}

/** A message deleted by its author or a moderator: off the log. */
function removeChat(messageId) {
  for (const item of $("chat-log").querySelectorAll(".chat-message")) {
    if (item.dataset.messageId === messageId) item.remove();
  }
  app.chatIds.delete(messageId);
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
    if (client.you && client.you.muted) app.muteLapsed = true; // it went through: expired
    // Clear only if the user has not started the next message meanwhile.
    if (input.value.trim() === text) input.value = "";
  } catch (err) {
    if (client === app.client) {
      const code = err && err.code;
      // "muted" comes with its terms ("until …: reason"): the server's words say it best.
      const text = code === "muted" ? readable(err.message) : CHAT_ERRORS[code];
      error.textContent = text || (err && err.message) || "The message could not be sent.";
    }
  } finally {
    renderChatBox();
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

// --- roles and moderation -----------------------------------------------------------------------
// Every step goes through the public REST API with the page's token; the live room then tells
// every page (presence role/muted/unmuted, room, chat_deleted, closing). The buttons follow the
// rules the server applies (watch-util.js), and whatever the server still refuses is shown in
// its own words (the problem document's `detail`).

/** You, as the rules see you: {userId, rank, isAdmin}. */
function viewer() {
  const client = app.client;
  const you = client && client.you;
  const userId = (you && you.user_id) || null;
  return {
    userId,
    rank: rankOf(client && client.room, userId, you && you.role),
    isAdmin: Boolean(client && client.isAdmin),
  };
}

function currentRoomId() {
  return (app.client && app.client.room && app.client.room.id) || app.roomId;
}

/** A REST call on the current room (`suffix` after `rooms/{id}`), with this tab's token. */
function roomRequest(suffix, method, body) {
  return requestJson(`rooms/${encodeURIComponent(currentRoomId())}${suffix}`, {
    method,
    body,
    token: store.token(),
  });
}

/** A refused call as a sentence: the server's `detail`, else what went wrong. */
function refusal(err) {
  return readable((err && err.message) || "something went wrong");
}

/** What depends on your rank and the room's settings: header buttons, controls, chat box. */
function renderRoleUi() {
  const me = viewer();
  $("settings-open").hidden = !mayManageRoom(me);
  $("bans-open").hidden = !mayListBans(me);
  if (!mayManageRoom(me) && $("settings-dialog").open) $("settings-dialog").close();
  if (!mayListBans(me) && $("bans-dialog").open) $("bans-dialog").close();
  const client = app.client;
  setControlsEnabled(Boolean(client && client.state === "joined"));
}

/** The room's settings or owner changed (`room`): everything that shows them. */
function onRoomChanged({ room }, client) {
  renderRoomHeader(room, client.you);
  renderRoleUi();
  renderParticipants();
  refreshChatActions();
}

// --- the play queue -------------------------------------------------------------------------------
// Shown from the socket (`joined.queue`, then `queue` on every change); every change is a call to
// the public REST API (docs/api.md, "The play queue"), whose effect reaches every page. Next and
// previous go over the socket with the item this page shows, so that two people pressing Next
// together advance once.

/** Whether you may change the queue: it follows who controls playback. */
function mayChangeQueue() {
  const client = app.client;
  const control = client && client.settings && client.settings.control;
  const me = viewer();
  return Boolean(client && client.state === "joined" && (me.isAdmin || mayControl(control, me.rank)));
}

/** The queue panel and the next/previous buttons; `queue` replaces the one shown when given. */
function renderQueue(queue) {
  if (queue !== undefined) app.queue = queue && Array.isArray(queue.items) ? queue : null;
  const q = app.queue;
  const allowed = mayChangeQueue();
  for (const [id, direction] of [["prev-item", -1], ["next-item", 1]]) {
    $(id).hidden = !q;
    $(id).disabled = !(allowed && canStep(q, direction));
  }
  $("queue-panel").hidden = !q;
  if (!q) return;
  $("queue-count").textContent = q.items.length ? String(q.items.length) : "";
  $("queue-repeat").value = ["one", "all"].includes(q.repeat) ? q.repeat : "none";
  $("queue-shuffle").setAttribute("aria-pressed", String(q.shuffle === true));
  $("queue-shuffle").textContent = q.shuffle ? "Shuffle on" : "Shuffle";
  $("queue-next").textContent = upNextText(q);
  const tools = ["queue-repeat", "queue-shuffle", "queue-add-id", "queue-add-title", "queue-add-next"];
  for (const id of [...tools, "queue-add", "queue-clear"]) $(id).disabled = !allowed;
  $("queue-clear").hidden = q.items.length < 2;
  $("queue-form").hidden = !allowed;
  // The list is rebuilt on every change: a focused button keeps the focus.
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest("#queue-list button")
    : null;
  const refocus = focused ? [focused.closest("li").dataset.itemId, focused.dataset.action] : null;
  $("queue-list").replaceChildren(...q.items.map((item, at) => queueRow(q, item, at, allowed)));
  if (refocus) {
    const button = document.querySelector(
      `#queue-list li[data-item-id="${CSS.escape(refocus[0])}"] button[data-action="${refocus[1]}"]`,
    );
    if (button && !button.disabled) button.focus();
  }
}

function queueRow(queue, item, at, allowed) {
  const current = item.id === queue.current_item_id;
  const li = document.createElement("li");
  li.dataset.itemId = item.id;
  if (current) {
    li.classList.add("current");
    li.setAttribute("aria-current", "true");
  }
  const marker = document.createElement("span");
  marker.className = "queue-pos";
  marker.textContent = current ? "▶" : String(at + 1);
  marker.setAttribute("aria-hidden", "true");
  const title = document.createElement("span");
  title.className = "queue-title";
  title.textContent = itemLabel(item);
  title.title = item.content_id;
  if (current) {
    const now = document.createElement("span");
    now.className = "visually-hidden";
    now.textContent = "Now playing: ";
    title.prepend(now);
  }
  const length = document.createElement("span");
  length.className = "queue-duration muted";
  length.textContent = formatDuration(item.duration);
  const actions = document.createElement("span");
  actions.className = "queue-actions";
  if (allowed) {
    const label = itemLabel(item);
    const path = `/items/${encodeURIComponent(item.id)}`;
    const play = () => queueAction("/play", "POST", { item_id: item.id }, "Could not play it");
    const remove = () => queueAction(path, "DELETE", undefined, "Could not remove it");
    const last = queue.items.length - 1;
    const buttons = [
      !current && ["play", "▶", `Play ${label} now`, play],
      ["up", "↑", `Move ${label} up`, () => moveItem(item.id, at - 1), at === 0],
      ["down", "↓", `Move ${label} down`, () => moveItem(item.id, at + 1), at === last],
      ["remove", "✕", `Remove ${label}`, remove],
    ];
    for (const spec of buttons) {
      if (!spec) continue;
      const [action, text, name, run, off] = spec;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-icon btn-small";
      button.dataset.action = action;
      button.textContent = text;
      button.title = name;
      button.setAttribute("aria-label", name);
      button.disabled = Boolean(off);
      button.addEventListener("click", run);
      actions.append(button);
    }
  }
  li.append(marker, title, length, actions);
  return li;
}

function moveItem(itemId, index) {
  return queueAction(`/items/${encodeURIComponent(itemId)}/move`, "POST", { index }, "Could not move it");
}

/**
 * One change of the queue over REST. The answer is shown at once unless a `queue` message came
 * meanwhile (it is newer); a refusal is shown in the server's words.
 */
async function queueAction(suffix, method, body, failure) {
  const client = app.client;
  if (!client) return false;
  const before = client.queue;
  $("queue-error").textContent = "";
  try {
    const queue = await roomRequest(`/queue${suffix}`, method, body);
    if (client === app.client && client.queue === before && queue) renderQueue(queue);
    return true;
  } catch (err) {
    if (client === app.client) $("queue-error").textContent = `${failure}: ${refusal(err)}`;
    return false;
  }
}

/** "Add": by content id, with the current item's content type; at the end or to play next. */
async function addToQueue(event) {
  event.preventDefault();
  const contentId = $("queue-add-id").value.trim();
  if (!contentId) {
    $("queue-error").textContent = "Enter the content id of what to add.";
    $("queue-add-id").focus();
    return;
  }
  const client = app.client;
  const queue = client && client.queue;
  const current = (client && client.currentItem) || queueItem(queue, queue && queue.current_item_id);
  const room = client && client.room;
  const body = {
    content_type: (current && current.content_type) || (room && room.content_type) || "url",
    content_id: contentId,
    play_next: $("queue-add-next").checked,
  };
  const title = $("queue-add-title").value.trim();
  if (title) body.title = title;
  $("queue-add").disabled = true;
  const added = await queueAction("/items", "POST", body, "Could not add it");
  $("queue-add").disabled = !mayChangeQueue();
  if (added) {
    $("queue-add-id").value = "";
    $("queue-add-title").value = "";
    $("queue-add-next").checked = false;
    $("queue-add-id").focus();
  }
}

// The person menu: one element for the whole list, filled when opened, so that the list can be
// rebuilt (presence arrives all the time) without closing it.

const MENU_LABELS = {
  promote: "Make moderator",
  demote: "Remove moderator role",
  transfer: "Make owner…",
  mute: "Mute in chat…",
  unmute: "Unmute in chat",
  kick: "Remove from room…",
  ban: "Ban from room…",
};

function openMemberMenu(button, userId) {
  closeMemberMenu();
  const member = app.members.get(userId);
  const actions = member ? memberActions(viewer(), member, app.client && app.client.room) : [];
  if (actions.length === 0) return;
  const menu = $("member-menu");
  const items = actions.map((action) => {
    const item = document.createElement("button");
    item.type = "button";
    item.className = action === "ban" || action === "kick" ? "menu-item menu-danger" : "menu-item";
    item.setAttribute("role", "menuitem");
    item.dataset.action = action;
    item.textContent = MENU_LABELS[action];
    item.addEventListener("click", () => {
      closeMemberMenu();
      memberAction(action, member);
    });
    return item;
  });
  const title = document.createElement("p");
  title.className = "menu-title";
  title.textContent = member.user_name;
  menu.replaceChildren(title, ...items);
  menu.setAttribute("aria-label", `Actions for ${member.user_name}`);
  menu.dataset.userId = userId;
  app.menu = { userId };
  button.setAttribute("aria-expanded", "true");
  menu.hidden = false;
  // Under the button, kept inside the window (flipped above it near the bottom).
  const at = button.getBoundingClientRect();
  const size = menu.getBoundingClientRect();
  const left = Math.max(8, Math.min(at.right - size.width, window.innerWidth - size.width - 8));
  const below = at.bottom + 4;
  const top = below + size.height > window.innerHeight - 8 ? Math.max(8, at.top - size.height - 4) : below;
  menu.style.left = `${left}px`;
  menu.style.top = `${top}px`;
  items[0].focus();
}

function closeMemberMenu({ refocus = false } = {}) {
  const menu = $("member-menu");
  const open = app.menu;
  app.menu = null;
  if (menu.hidden) return;
  menu.hidden = true;
  menu.replaceChildren();
  if (!open) return;
  const button = document.querySelector(
    `#participants li[data-user-id="${CSS.escape(open.userId)}"] .member-menu-button`,
  );
  if (button) {
    button.setAttribute("aria-expanded", "false");
    if (refocus) button.focus();
  }
}

function onMenuKey(event) {
  const items = [...$("member-menu").querySelectorAll(".menu-item")];
  const at = items.indexOf(document.activeElement);
  if (event.key === "Escape") {
    event.preventDefault();
    closeMemberMenu({ refocus: true });
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    items[(at + step + items.length) % items.length].focus();
  } else if (event.key === "Home" || event.key === "End") {
    event.preventDefault();
    items[event.key === "Home" ? 0 : items.length - 1].focus();
  } else if (event.key === "Tab") {
    closeMemberMenu({ refocus: true });
  }
}

const memberPath = (member, rest) => `/participants/${encodeURIComponent(member.user_id)}${rest}`;

/** A ban's or a mute's optional body: the reason and the duration, only those given. */
function restrictionBody({ reason, minutes }) {
  const body = {};
  if (reason) body.reason = reason;
  if (minutes) body.expires_in_minutes = minutes;
  return Object.keys(body).length > 0 ? body : undefined;
}

/** One choice of the person menu: at once (roles, unmute), or after the action dialog. */
function memberAction(action, member) {
  const name = member.user_name;
  const quick = {
    promote: async () => {
      await roomRequest(memberPath(member, "/role"), "PUT", { role: "moderator" });
      return `${name} is now a moderator.`;
    },
    demote: async () => {
      await roomRequest(memberPath(member, "/role"), "PUT", { role: "member" });
      return `${name} is no longer a moderator.`;
    },
    unmute: async () => {
      await roomRequest(`/mutes/${encodeURIComponent(member.user_id)}`, "DELETE");
      return `${name} may write in the chat again.`;
    },
  }[action];
  if (quick) {
    runQuick(quick, `Could not change ${name}'s standing`);
    return;
  }
  const dialogs = {
    transfer: {
      title: `Make ${name} the owner?`,
      text:
        `${name} gets the room: its settings, invitations and moderators. You stay in it as a ` +
        "moderator, and cannot take this back yourself.",
      confirm: "Make owner",
      run: async () => {
        await roomRequest("/transfer", "POST", { user_id: member.user_id });
        return `${name} now owns the room.`;
      },
    },
    kick: {
      title: `Remove ${name} from the room?`,
      text: `${name} is disconnected, and may come back if the room lets them in (a ban keeps them out).`,
      confirm: "Remove",
      reason: true,
      run: async ({ reason }) => {
        await roomRequest(memberPath(member, "/kick"), "POST", reason ? { reason } : undefined);
        return `${name} was removed from the room.`;
      },
    },
    ban: {
      title: `Ban ${name} from the room?`,
      text: `${name} is disconnected and cannot come back, by any link, until the ban ends or is lifted (Bans).`,
      confirm: "Ban",
      reason: true,
      duration: "",
      run: async (choice) => {
        const ban = await roomRequest(`/bans/${encodeURIComponent(member.user_id)}`, "PUT", restrictionBody(choice));
        return `${name} is banned ${restrictionTerms(ban)}.`;
      },
    },
    mute: {
      title: `Mute ${name}?`,
      text: `${name} keeps watching, but cannot write in the chat.`,
      confirm: "Mute",
      reason: true,
      duration: "60",
      run: async (choice) => {
        const mute = await roomRequest(`/mutes/${encodeURIComponent(member.user_id)}`, "PUT", restrictionBody(choice));
        return `${name} is muted ${restrictionTerms(mute)}.`;
      },
    },
  };
  if (dialogs[action]) openActionDialog(dialogs[action]);
}

/** A step without a dialog: done, then told in a toast either way. */
async function runQuick(step, failure) {
  const client = app.client;
  try {
    const done = await step();
    if (client !== app.client) return;
    toast(done, { priority: 1 });
    refreshRoster(client); // people with no socket get no presence
  } catch (err) {
    if (client === app.client) toast(`${failure}: ${refusal(err)}`, { priority: 1, duration: 8000 });
  }
}

/**
 * The confirmation of a step: `{title, text, confirm, reason, duration, run}`. `reason` shows
 * the reason field; `duration` (the preselected minutes, "" for good) the duration list. The
 * dialog stays open on a refusal and shows it.
 */
function openActionDialog({ title, text, confirm, reason = false, duration = null, run }) {
  closeMemberMenu();
  $("action-title").textContent = title;
  $("action-text").textContent = text;
  $("action-confirm").textContent = confirm;
  $("action-reason-field").hidden = !reason;
  $("action-reason").value = "";
  $("action-duration-field").hidden = duration === null;
  if (duration !== null) $("action-duration").value = duration;
  $("action-error").textContent = "";
  $("action-confirm").disabled = false;
  app.action = run;
  $("action-dialog").showModal();
  (reason ? $("action-reason") : $("action-cancel")).focus();
}

async function submitAction(event) {
  event.preventDefault();
  const run = app.action;
  const client = app.client;
  if (!run || !client) return;
  const choice = {
    reason: $("action-reason-field").hidden ? "" : $("action-reason").value.trim(),
    minutes: $("action-duration-field").hidden ? null : Number($("action-duration").value) || null,
  };
  $("action-error").textContent = "";
  $("action-confirm").disabled = true;
  try {
    const done = await run(choice);
    if (client !== app.client || app.action !== run) return;
    app.action = null;
    $("action-dialog").close();
    if (done) toast(done, { priority: 1 });
    refreshRoster(client);
  } catch (err) {
    if (app.action === run) $("action-error").textContent = refusal(err);
  } finally {
    $("action-confirm").disabled = false;
  }
}

function closeActionDialog() {
  app.action = null;
  $("action-dialog").close();
}

// The owner's room settings.

function openSettings() {
  const room = app.client && app.client.room;
  if (!room) return;
  $("settings-name").value = room.name || "";
  $("settings-public").checked = Boolean(room.is_public);
  $("settings-password").value = "";
  $("settings-password").disabled = false;
  $("settings-password").placeholder = room.has_password
    ? "Leave empty to keep the password"
    : "No password; type one to set it";
  $("settings-password-clear").checked = false;
  $("settings-password-clear-row").hidden = !room.has_password;
  $("settings-control").value = room.playback_control === "moderators" ? "moderators" : "everyone";
  $("settings-mods-manage").checked = room.moderators_manage_moderators === true;
  const slow = room.wait_for_slow_members;
  $("settings-slow").value = ["always", "never"].includes(slow) ? slow : "policy";
  $("settings-ready-start").checked = room.start_when_ready === true;
  $("settings-error").textContent = "";
  $("settings-save").disabled = false;
  $("settings-dialog").showModal();
  $("settings-name").focus();
}

/** Only what changed goes to `PUT /rooms/{id}`; the room then tells every page (`room`). */
async function saveSettings(event) {
  event.preventDefault();
  const client = app.client;
  const room = client && client.room;
  if (!room) return;
  const error = $("settings-error");
  const name = $("settings-name").value.trim();
  if (!name) {
    error.textContent = "The room needs a name.";
    $("settings-name").focus();
    return;
  }
  const changes = {};
  if (name !== room.name) changes.name = name;
  if ($("settings-public").checked !== Boolean(room.is_public)) changes.is_public = $("settings-public").checked;
  if ($("settings-password-clear").checked) changes.password = null;
  else if ($("settings-password").value) changes.password = $("settings-password").value;
  const control = $("settings-control").value;
  if (control !== room.playback_control) changes.playback_control = control;
  const manage = $("settings-mods-manage").checked;
  if (manage !== (room.moderators_manage_moderators === true)) changes.moderators_manage_moderators = manage;
  const slow = $("settings-slow").value;
  if (slow !== (room.wait_for_slow_members || "policy")) changes.wait_for_slow_members = slow;
  const readyStart = $("settings-ready-start").checked;
  if (readyStart !== (room.start_when_ready === true)) changes.start_when_ready = readyStart;
  if (Object.keys(changes).length === 0) {
    $("settings-dialog").close();
    return;
  }
  error.textContent = "";
  $("settings-save").disabled = true;
  try {
    const updated = await roomRequest("", "PUT", changes);
    if (client !== app.client) return;
    $("settings-dialog").close();
    if (updated) renderRoomHeader(updated, client.you);
    toast("Room settings saved.", { priority: 1 });
  } catch (err) {
    if (client === app.client) error.textContent = refusal(err);
  } finally {
    $("settings-save").disabled = false;
  }
}

function confirmEndRoom() {
  const room = app.client && app.client.room;
  $("settings-dialog").close();
  openActionDialog({
    title: "End the room?",
    text:
      `Everyone in “${(room && room.name) || "this room"}” is disconnected, and the room ` +
      "cannot be opened again.",
    confirm: "End room",
    run: async () => {
      await roomRequest("", "DELETE");
      return ""; // the closing "room-ended" that follows says it
    },
  });
}

// The bans, for the owner and moderators: who, until when, why, and a way to lift each.

async function openBans() {
  $("bans-error").textContent = "";
  $("bans-list").replaceChildren();
  $("bans-empty").hidden = true;
  $("bans-dialog").showModal();
  await loadBans();
}

async function loadBans() {
  const client = app.client;
  let page;
  try {
    page = await roomRequest("/bans", "GET");
  } catch (err) {
    if (client === app.client) $("bans-error").textContent = refusal(err);
    return;
  }
  if (client !== app.client) return;
  const bans = page && Array.isArray(page.items) ? page.items : [];
  $("bans-list").replaceChildren(...bans.map(banItem));
  $("bans-empty").hidden = bans.length > 0;
}

function banItem(ban) {
  const li = document.createElement("li");
  li.dataset.userId = ban.user_id;
  const who = document.createElement("span");
  who.className = "ban-name";
  who.textContent = ban.user_name || `user ${String(ban.user_id).slice(0, 8)}`;
  const terms = document.createElement("span");
  terms.className = "ban-terms muted";
  terms.textContent = restrictionTerms(ban);
  const lift = document.createElement("button");
  lift.type = "button";
  lift.className = "btn btn-small ban-lift";
  lift.textContent = "Unban";
  lift.setAttribute("aria-label", `Unban ${who.textContent}`);
  lift.addEventListener("click", async () => {
    lift.disabled = true;
    try {
      await roomRequest(`/bans/${encodeURIComponent(ban.user_id)}`, "DELETE");
      toast(`${who.textContent} may join again.`, { priority: 1 });
      await loadBans();
    } catch (err) {
      lift.disabled = false;
      $("bans-error").textContent = refusal(err);
    }
  });
  li.append(who, terms, lift);
  if (ban.reason) {
    const why = document.createElement("span");
    why.className = "ban-reason";
    why.textContent = ban.reason;
    li.append(why);
  }
  return li;
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
  $("prev-item").addEventListener("click", () => stepItem(-1));
  $("next-item").addEventListener("click", () => stepItem(1));
  $("ready-toggle").addEventListener("click", toggleReady);
  $("queue-form").addEventListener("submit", addToQueue);
  $("queue-repeat").addEventListener("change", () => {
    queueAction("/mode", "PUT", { repeat: $("queue-repeat").value }, "Could not change the repeat");
  });
  $("queue-shuffle").addEventListener("click", () => {
    const on = $("queue-shuffle").getAttribute("aria-pressed") !== "true";
    queueAction("/mode", "PUT", { shuffle: on }, "Could not change the shuffle");
  });
  $("queue-clear").addEventListener("click", () => {
    queueAction("/items", "DELETE", undefined, "Could not clear the queue");
  });
  $("public-rooms-refresh").addEventListener("click", loadPublicRooms);
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

  $("member-menu").addEventListener("keydown", onMenuKey);
  // A click anywhere else closes the person menu (its own button toggles it).
  document.addEventListener("pointerdown", (event) => {
    if (app.menu && !event.target.closest("#member-menu, .member-menu-button")) closeMemberMenu();
  });
  window.addEventListener("resize", () => closeMemberMenu());
  $("participants").addEventListener("scroll", () => closeMemberMenu());
  $("action-form").addEventListener("submit", submitAction);
  $("action-cancel").addEventListener("click", closeActionDialog);
  $("action-close").addEventListener("click", closeActionDialog);
  $("action-dialog").addEventListener("close", () => {
    app.action = null;
  });
  $("settings-open").addEventListener("click", openSettings);
  $("settings-form").addEventListener("submit", saveSettings);
  $("settings-cancel").addEventListener("click", () => $("settings-dialog").close());
  $("settings-close").addEventListener("click", () => $("settings-dialog").close());
  $("settings-password-clear").addEventListener("change", () => {
    $("settings-password").disabled = $("settings-password-clear").checked;
  });
  $("end-room").addEventListener("click", confirmEndRoom);
  $("bans-open").addEventListener("click", openBans);
}

main();
