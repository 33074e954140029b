// The watch page's pure checks: where a room's media may be fetched from, and when a link's
// token may replace the tab's without asking. Run: node --test tests/web/
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { mediaUrl } from "../../syncplayd/web/syncplay-client.js";
import {
  displayUrl,
  mayControl,
  mayDeleteChat,
  mayListBans,
  mayManageRoom,
  mayModerate,
  mediaBase,
  memberActions,
  canStep,
  formatDuration,
  itemLabel,
  memberState,
  mergeParticipants,
  rankOf,
  readiness,
  roomSummary,
  upNext,
  upNextText,
  readable,
  restrictionTerms,
  tokenSwitch,
  underMediaBase,
  withMediaToken,
  wsUrl,
} from "../../syncplayd/web/watch/watch-util.js";

const PAGE = "https://media.example/syncplay/?room=0b9f3c1e-6a51-4d7e-9c39-2f0e8d6b1a24";

describe("mediaBase", () => {
  for (const [template, expected] of [
    ["{content_id}", "/"],
    [" {content_id} ", "/"],
    ["/Videos/{content_id}/stream?static=true", "/Videos/"],
    ["https://cdn.example/films/{content_type}/{content_id}.mp4", "https://cdn.example/films/"],
    ["/stream?id={content_id}", "/"],
    ["{content_type}/{content_id}", "./"],
    ["media/{content_id}", "media/"],
  ]) {
    test(`${JSON.stringify(template)} -> ${expected}`, () => assert.equal(mediaBase(template), expected));
  }
});

describe("underMediaBase: what the page fetches with web.allow_any_media_url off", () => {
  for (const [template, type, id, allowed] of [
    // The default template: a path on the page's own origin.
    ["{content_id}", "url", "demo/demo.webm", true],
    ["{content_id}", "url", "/Videos/1/stream", true],
    ["{content_id}", "url", "../../x.webm", true],
    ["{content_id}", "url", "https://media.example/film.mp4", true],
    ["{content_id}", "url", "https://tracker.example/pixel.mp4", false],
    ["{content_id}", "url", "http://media.example/film.mp4", false], // another origin (scheme)
    ["{content_id}", "url", "//tracker.example/x.mp4", false],
    ["{content_id}", "url", "/\\tracker.example/x.mp4", false],
    ["{content_id}", "url", "\\\\tracker.example/x.mp4", false],
    ["{content_id}", "url", " //tracker.example/x.mp4", false],
    ["{content_id}", "url", "https:tracker.example/x.mp4", true], // same scheme: a relative path
    ["{content_id}", "url", "http:tracker.example/x.mp4", false],
    // A template: values stay inside its path.
    ["/Videos/{content_id}/stream", "movie", "abc", true],
    ["/Videos/{content_id}/stream", "movie", "a/b", true], // encoded: one segment
    ["/Videos/{content_id}/stream", "movie", "..", false],
    ["/Videos/{content_id}", "movie", ".", true], // the folder itself: not out of it
    ["/v/{content_type}{content_id}", ".", ".", false],
    ["/v/{content_type}/{content_id}", "..", "x", false],
    ["/v/x-{content_id}", "movie", "..", true], // "x-..": not a dot segment
    ["/stream?id={content_id}", "movie", "..", true], // in the query: not a path
    ["https://cdn.example/films/{content_id}.mp4", "movie", "1", true],
    ["https://cdn.example/films/{content_id}", "movie", "..", false],
    ["{content_type}/{content_id}", "url", "x", true],
    ["{content_type}/{content_id}", "..", "x", false],
  ]) {
    test(`${JSON.stringify(template)} + ${JSON.stringify([type, id])} -> ${allowed}`, () => {
      const url = mediaUrl(template, type, id);
      assert.notEqual(url, null);
      assert.equal(underMediaBase(url, template, PAGE), allowed);
    });
  }
});

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
const jwt = (claims) => `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.signature`;

describe("tokenSwitch: a link's token replaces the tab's only if nobody is switched", () => {
  const alice = jwt({ sub: "a1a1a1a1-0000-4000-8000-000000000001", name: "Alice" });
  const aliceAgain = jwt({ sub: "a1a1a1a1-0000-4000-8000-000000000001", name: "Alice", exp: 2 });
  const mallory = jwt({ sub: "b2b2b2b2-0000-4000-8000-000000000002", name: "Alice" });

  test("no token yet", () => assert.equal(tokenSwitch(null, mallory), null));
  test("the same token", () => assert.equal(tokenSwitch(alice, alice), null));
  test("a fresh token for the same user", () => assert.equal(tokenSwitch(alice, aliceAgain), null));
  test("another user, even under the same name", () => {
    assert.deepEqual(tokenSwitch(alice, mallory), {
      current: { name: "Alice", userId: "a1a1a1a1-0000-4000-8000-000000000001" },
      offered: { name: "Alice", userId: "b2b2b2b2-0000-4000-8000-000000000002" },
    });
  });
  test("tokens that cannot be read", () => {
    const change = tokenSwitch("not-a-jwt", "another");
    assert.deepEqual(change, {
      current: { name: null, userId: null },
      offered: { name: null, userId: null },
    });
  });
});

describe("withMediaToken: the link's media credential goes into the media URL only", () => {
  const template = "/Videos/{content_id}/stream?static=true&api_key={media_token}";

  test("filled in, percent-encoded, before the room's values", () => {
    const url = mediaUrl(withMediaToken(template, "a&b={content_id}"), "movie", "42");
    assert.equal(url, "/Videos/42/stream?static=true&api_key=a%26b%3D%7Bcontent_id%7D");
  });
  test("empty without a token", () => {
    assert.equal(withMediaToken(template, null), "/Videos/{content_id}/stream?static=true&api_key=");
  });
  test("the base check sees the URL the browser fetches", () => {
    const filled = withMediaToken("/m/{media_token}/{content_id}", "t0k");
    assert.equal(mediaBase(filled), "/m/t0k/");
    assert.equal(underMediaBase(mediaUrl(filled, "movie", "1"), filled, PAGE), true);
    assert.equal(underMediaBase(mediaUrl(filled, "movie", ".."), filled, PAGE), false);
  });
  test("templates without the placeholder are unchanged", () => {
    assert.equal(withMediaToken("{content_id}", "t0k"), "{content_id}");
  });
});

describe("mergeParticipants: live members and REST-only participants", () => {
  const live = (id, extra = {}) => ({ user_id: id, user_name: id, role: "member", is_connected: true, sessions: 1, buffering: false, latency_ms: 12, ...extra });
  const rest = (id, extra = {}) => ({ user_id: id, user_name: id, role: "member", is_connected: false, joined_at: "", last_seen_at: "", ...extra });

  test("without the REST list, the live members as they are", () => {
    assert.deepEqual(mergeParticipants([live("ada")], null), [live("ada")]);
  });
  test("REST order; live entries win; REST-only ones are away; later joiners at the end", () => {
    const merged = mergeParticipants([live("ben"), live("ada"), live("dan")], [rest("ada", { role: "owner" }), rest("cy", { is_connected: true }), rest("ben")]);
    assert.deepEqual(merged.map((m) => m.user_id), ["ada", "cy", "ben", "dan"]);
    assert.equal(merged[0].role, "member", "the live entry, not REST's");
    assert.deepEqual(merged[1], { user_id: "cy", user_name: "cy", role: "member", is_connected: false, sessions: 0, buffering: false, latency_ms: null, muted: false, ready: false, ended: false, behind: false });
  });
  test("a REST-only participant keeps REST's muted", () => {
    assert.equal(mergeParticipants([], [rest("cy", { muted: true })])[0].muted, true);
  });
  test("broken REST items are skipped", () => {
    assert.deepEqual(mergeParticipants([], [null, { user_name: "x" }]), []);
  });
});

describe("displayUrl: what the page shows of a media URL", () => {
  test("absolute, against the page", () => {
    assert.equal(displayUrl("demo/demo.webm", [], PAGE), "https://media.example/syncplay/demo/demo.webm");
  });
  test("credential-like query values, user info and the fragment are hidden", () => {
    assert.equal(
      displayUrl("https://u:pw@cdn.example/v/1/stream?static=true&api_key=s3cret&X-Amz-Signature=abc#token=t", [], PAGE),
      "https://cdn.example/v/1/stream?static=true&api_key=…&X-Amz-Signature=…",
    );
  });
  test("a known secret is hidden wherever it sits, raw or encoded", () => {
    assert.equal(displayUrl("/m/t0k%2Bx/film.mp4?x=1", ["t0k+x"], PAGE), "https://media.example/m/…/film.mp4?x=1");
  });
});

// The rules of syncplayd/core/access.py (the table in docs/api.md), as the page applies them.
describe("moderation rules: who may do what to whom", () => {
  const RANKS = ["owner", "moderator", "member", null];
  const SANCTIONS = ["kick", "ban", "unban", "mute", "unmute", "delete_chat"];
  // [actor, target, moderators_manage_moderators] -> allowed, for every action.
  function expected(action, actor, target, mm) {
    if (target === "owner" && ["demote", "ban", "mute"].includes(action)) return false;
    if (actor === "admin") return true;
    if (["promote", "demote", "transfer"].includes(action)) return actor === "owner";
    if (actor === "owner") return true;
    if (actor !== "moderator") return false;
    if (target === "owner") return false;
    return target !== "moderator" || mm;
  }
  for (const action of ["promote", "demote", "transfer", ...SANCTIONS]) {
    test(action, () => {
      for (const actor of ["admin", ...RANKS]) {
        for (const target of RANKS) {
          for (const mm of [false, true]) {
            const viewer = actor === "admin" ? { rank: "member", isAdmin: true } : { rank: actor, isAdmin: false };
            assert.equal(mayModerate(viewer, action, target, mm), expected(action, actor, target, mm),
              `${actor} ${action} ${target} (moderators_manage_moderators ${mm})`);
          }
        }
      }
    });
  }
  test("an unknown action is nobody's", () => {
    assert.equal(mayModerate({ rank: "owner", isAdmin: true }, "explode", "member"), false);
  });

  test("rankOf: the room's owner_id wins over a role still on its way", () => {
    const room = { owner_id: "ben" };
    assert.equal(rankOf(room, "ben", "member"), "owner");
    assert.equal(rankOf(room, "ada", "moderator"), "moderator");
    assert.equal(rankOf(room, "cy", undefined), null);
    assert.equal(rankOf(null, "ada", "owner"), "owner");
  });
});

describe("memberActions: the People menu shows only what the viewer may do", () => {
  const room = (extra = {}) => ({ owner_id: "ada", moderators_manage_moderators: false, ...extra });
  const ada = { userId: "ada", rank: "owner", isAdmin: false };
  const mo = { userId: "mo", rank: "moderator", isAdmin: false };
  const ben = { userId: "ben", rank: "member", isAdmin: false };
  const person = (id, role, muted = false) => ({ user_id: id, role, muted });

  for (const [who, viewer, target, r, actions] of [
    ["the owner, a member", ada, person("ben", "member"), room(), ["promote", "transfer", "mute", "kick", "ban"]],
    ["the owner, a muted moderator", ada, person("mo", "moderator", true), room(), ["demote", "transfer", "unmute", "kick", "ban"]],
    ["the owner, themselves", ada, person("ada", "owner"), room(), []],
    ["a moderator, a member", mo, person("ben", "member"), room(), ["mute", "kick", "ban"]],
    ["a moderator, a muted member", mo, person("ben", "member", true), room(), ["unmute", "kick", "ban"]],
    ["a moderator, another moderator", mo, person("mo2", "moderator"), room(), []],
    ["a moderator, another moderator (allowed)", mo, person("mo2", "moderator"), room({ moderators_manage_moderators: true }), ["mute", "kick", "ban"]],
    ["a moderator, the owner", mo, person("ada", "owner"), room({ moderators_manage_moderators: true }), []],
    ["a moderator, the owner by owner_id alone", mo, person("ada", "member"), room(), []],
    ["a member, anyone", ben, person("mo", "moderator"), room(), []],
    ["an admin, the owner", { userId: "root", rank: "member", isAdmin: true }, person("ada", "owner"), room(), ["kick"]],
    ["nobody signed in", { userId: null, rank: null, isAdmin: false }, person("ben", "member"), room(), []],
  ]) {
    test(who, () => assert.deepEqual(memberActions(viewer, target, r), actions));
  }

  test("chat: your own as a member; others' as the rules allow", () => {
    const r = room();
    assert.equal(mayDeleteChat(ben, "ben", "member", r), true);
    assert.equal(mayDeleteChat(ben, "ada", "owner", r), false);
    assert.equal(mayDeleteChat({ userId: "x", rank: null, isAdmin: false }, "x", null, r), false);
    assert.equal(mayDeleteChat(mo, "ben", "member", r), true);
    assert.equal(mayDeleteChat(mo, "gone", null, r), true, "an author who left");
    assert.equal(mayDeleteChat(mo, "mo2", "moderator", r), false);
    assert.equal(mayDeleteChat(mo, "mo2", "moderator", room({ moderators_manage_moderators: true })), true);
    assert.equal(mayDeleteChat(mo, "ada", "owner", r), false);
    assert.equal(mayDeleteChat(ada, "mo", "moderator", r), true);
  });

  test("settings and ending for the owner and admins; bans for whoever may ban", () => {
    assert.deepEqual([ada, mo, ben].map(mayManageRoom), [true, false, false]);
    assert.equal(mayManageRoom({ rank: "member", isAdmin: true }), true);
    assert.deepEqual([ada, mo, ben].map(mayListBans), [true, true, false]);
  });

  test("playback control: everyone, or the owner and moderators", () => {
    assert.equal(mayControl("everyone", "member"), true);
    assert.equal(mayControl("moderators", "member"), false);
    assert.equal(mayControl("moderators", "moderator"), true);
    assert.equal(mayControl("moderators", "owner"), true);
    assert.equal(mayControl(undefined, "member"), true);
  });
});

describe("readable: the server's words as a sentence", () => {
  test("capital, full stop, local times", () => {
    const text = readable("you are banned from this room until 2026-12-05T16:00:00Z: spoilers", "en-GB");
    assert.match(text, /^You are banned from this room until \d{1,2} Dec 2026, \d\d:\d\d: spoilers\.$/);
    assert.equal(readable("Ada removed you from the room"), "Ada removed you from the room.");
    assert.equal(readable("Ada banned you from the room for good: no!"), "Ada banned you from the room for good: no!");
    assert.equal(readable(""), "");
    assert.equal(readable(null), "");
  });
  test("restrictionTerms", () => {
    assert.equal(restrictionTerms({ expires_at: null }), "for good");
    assert.match(restrictionTerms({ expires_at: "2026-12-05T16:00:00.000Z" }, "en-GB"), /^until \d{1,2} Dec 2026, \d\d:\d\d$/);
  });
});

describe("the queue panel", () => {
  const item = (id, extra = {}) => ({ id, content_type: "url", content_id: `demo/${id}.webm`, title: `Episode ${id}`, duration: null, ...extra });
  const q = (current, extra = {}) => ({ room_id: "r", current_item_id: current, repeat: "none", shuffle: false, items: [item("1"), item("2"), item("3")], ...extra });

  test("itemLabel: the title, else the content id", () => {
    assert.equal(itemLabel(item("1")), "Episode 1");
    assert.equal(itemLabel(item("1", { title: "  " })), "demo/1.webm");
    assert.equal(itemLabel(item("1", { title: null })), "demo/1.webm");
    assert.equal(itemLabel(null), "");
  });

  for (const [name, queue, kind, id] of [
    ["the next in order", q("1"), "item", "2"],
    ["the end without repeat", q("3"), "end", null],
    ["repeat all wraps to the first", q("3", { repeat: "all" }), "item", "1"],
    ["repeat one: the same again", q("2", { repeat: "one" }), "same", "2"],
    ["repeat all with one item: the same again", q("1", { repeat: "all", items: [item("1")] }), "same", "1"],
    ["shuffled: unknown here", q("1", { shuffle: true }), "shuffle", null],
    ["an empty queue", q(null, { items: [] }), "end", null],
  ]) {
    test(`upNext: ${name}`, () => {
      const next = upNext(queue);
      assert.equal(next.kind, kind);
      assert.equal(next.item ? next.item.id : null, id);
    });
  }

  test("upNext: the server's next_item_id, shuffled or not, wins", () => {
    assert.deepEqual(upNext(q("1", { shuffle: true, next_item_id: "3" })), { kind: "item", item: item("3") });
    assert.deepEqual(upNext(q("3", { next_item_id: null, repeat: "all" })), { kind: "end", item: null });
    assert.deepEqual(upNext(q("2", { next_item_id: "2" })), { kind: "same", item: item("2") });
    assert.deepEqual(upNext(q("2", { next_item_id: "gone" })), { kind: "end", item: null });
    assert.equal(upNextText(q("1", { shuffle: true, next_item_id: "3" })), "Next: Episode 3");
  });

  test("upNextText", () => {
    assert.equal(upNextText(q("1")), "Next: Episode 2");
    assert.equal(upNextText(q("3")), "Next: nothing, the room stops at the end");
    assert.equal(upNextText(q("2", { repeat: "one" })), "Next: Episode 2 again");
    assert.equal(upNextText(q("1", { shuffle: true })), "Next: a shuffled pick from the queue");
  });

  test("canStep: the ends stop, unless repeat all or shuffle", () => {
    assert.deepEqual([canStep(q("1"), -1), canStep(q("1"), 1)], [false, true]);
    assert.deepEqual([canStep(q("3"), -1), canStep(q("3"), 1)], [true, false]);
    assert.deepEqual([canStep(q("3", { repeat: "all" }), 1), canStep(q("1", { repeat: "all" }), -1)], [true, true]);
    assert.equal(canStep(q("1", { shuffle: true }), -1), true);
    assert.equal(canStep(q("1", { items: [item("1")], repeat: "all" }), 1), false);
    assert.equal(canStep(null, 1), false);
  });

  test("formatDuration", () => {
    assert.equal(formatDuration(20), "0:20");
    assert.equal(formatDuration(null), "");
    assert.equal(formatDuration(0), "");
  });
});

describe("people's states", () => {
  const m = (extra = {}) => ({ user_id: "u", user_name: "Ben", role: "member", is_connected: true, sessions: 1, buffering: false, latency_ms: 3, muted: false, ready: false, ended: false, behind: false, ...extra });
  const pb = (state, extra = {}) => ({ state, position: 3, rate: 1, anchor: 0, version: 1, set_by: null, ...extra });
  for (const [name, member, playback, room, state, label] of [
    ["not connected first", m({ is_connected: false, buffering: true }), pb("playing"), null, "disconnected", "not connected"],
    ["loading", m({ buffering: true }), pb("waiting"), null, "buffering", "loading"],
    ["catching up, loading or not", m({ buffering: true, behind: true }), pb("playing"), null, "behind", "catching up"],
    ["catching up", m({ behind: true }), pb("playing"), null, "behind", "catching up"],
    ["finished", m({ ended: true }), pb("paused", { ended: true }), null, "ended", "finished"],
    ["ready in a paused room", m({ ready: true }), pb("paused"), null, "ready", "ready"],
    ["not ready where that counts", m(), pb("paused"), { start_when_ready: true }, "not-ready", "not ready"],
    ["paused", m(), pb("paused"), { start_when_ready: false }, "paused", "paused"],
    ["playing", m({ ready: true }), pb("playing"), null, "playing", "playing"],
    ["waiting for someone else", m(), pb("waiting"), null, "waiting", "waiting"],
    ["the room ended: finished too", m(), pb("paused", { ended: true }), null, "ended", "finished"],
  ]) {
    test(`memberState: ${name}`, () => assert.deepEqual(memberState(member, playback, room), { state, label }));
  }

  test("readiness counts the connected", () => {
    assert.deepEqual(readiness([m({ ready: true }), m(), m({ is_connected: false, ready: true })]), { ready: 1, total: 2 });
  });
});

describe("roomSummary: a public room on the landing page", () => {
  const room = (extra = {}) => ({ id: "r", name: "Ada's room", content_id: "demo/demo-1.webm", participant_count: 2,
    playback: { state: "playing", position: 4, rate: 1, version: 3, updated_at: null }, ...extra });
  test("name, what plays, how many, the state", () => {
    assert.deepEqual(roomSummary(room(), { title: "Episode 1", content_id: "demo/demo-1.webm", duration: 20 }),
      { name: "Ada's room", playing: "Episode 1", people: "2 people", state: "playing" });
  });
  test("without the queue: the content id; one person; paused", () => {
    const paused = room({ participant_count: 1, playback: { state: "paused", position: 4 } });
    assert.deepEqual(roomSummary(paused, null), { name: "Ada's room", playing: "demo/demo-1.webm", people: "1 person", state: "paused" });
  });
  test("paused at the item's end: finished", () => {
    const ended = room({ playback: { state: "paused", position: 20 } });
    assert.equal(roomSummary(ended, { title: "Episode 1", duration: 20 }).state, "finished");
  });
});

describe("wsUrl", () => {
  const ROOM = "0b9f3c1e-6a51-4d7e-9c39-2f0e8d6b1a24";
  test("the room's socket, beside the page, in the page's scheme, naming the room (§2.5)", () => {
    assert.equal(wsUrl(ROOM, PAGE), `wss://media.example/api/v1/syncplay/ws?room=${ROOM}`);
    assert.equal(
      wsUrl(ROOM.toUpperCase(), "http://127.0.0.1:8750/media/syncplay/"),
      `ws://127.0.0.1:8750/media/api/v1/syncplay/ws?room=${ROOM}`,
    );
  });

  test("an id that is no UUID is left out: the join's refusal says what is wrong", () => {
    assert.equal(wsUrl("nope", PAGE), "wss://media.example/api/v1/syncplay/ws");
    assert.equal(wsUrl(undefined, PAGE), "wss://media.example/api/v1/syncplay/ws");
  });
});
