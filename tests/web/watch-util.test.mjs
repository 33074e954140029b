// The watch page's pure checks: where a room's media may be fetched from, and when a link's
// token may replace the tab's without asking. Run: node --test tests/web/
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { mediaUrl } from "../../syncplayd/web/syncplay-client.js";
import { mediaBase, tokenSwitch, underMediaBase } from "../../syncplayd/web/watch/watch-util.js";

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
