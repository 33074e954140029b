// The watch page's pure checks: where a room's media may be fetched from, and when a link's
// token may replace the tab's without asking. Run: node --test tests/web/
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { mediaUrl } from "../../syncplayd/web/syncplay-client.js";
import {
  displayUrl,
  mediaBase,
  mergeParticipants,
  tokenSwitch,
  underMediaBase,
  withMediaToken,
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
    assert.deepEqual(merged[1], { user_id: "cy", user_name: "cy", role: "member", is_connected: false, sessions: 0, buffering: false, latency_ms: null });
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
