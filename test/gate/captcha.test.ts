// The built-in CAPTCHA: challenges in Redis with a TTL, answered at most once, by their user only; and an
// svg-captcha picture plugged in as the generator.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import svgCaptcha from "svg-captcha";
import { RedisCaptcha, mathChallenge } from "../../src/gate/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

/** A generator with a known answer, so tests can answer. */
const known = (answer: string) => () => ({ svg: "<svg/>", answer });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("RedisCaptcha", () => {
  it("the right answer passes once; any later attempt fails", async () => {
    const captcha = new RedisCaptcha(redis, { generate: known("42"), prefix: randomPrefix() });
    const { id, svg, ttlMs } = await captcha.create({ userId: "u1" });
    expect(svg).toBe("<svg/>");
    expect(ttlMs).toBe(120_000);
    expect(await captcha.verify({ id, answer: " 42 " }, { userId: "u1" })).toBe(true);
    expect(await captcha.verify({ id, answer: "42" }, { userId: "u1" })).toBe(false);
  });

  it("a wrong answer spends the challenge (no second guess)", async () => {
    const captcha = new RedisCaptcha(redis, { generate: known("42"), prefix: randomPrefix() });
    const { id } = await captcha.create({ userId: "u1" });
    expect(await captcha.verify({ id, answer: "41" }, { userId: "u1" })).toBe(false);
    expect(await captcha.verify({ id, answer: "42" }, { userId: "u1" })).toBe(false);
  });

  it("only the user it was made for can answer it", async () => {
    const captcha = new RedisCaptcha(redis, { generate: known("42"), prefix: randomPrefix() });
    const mine = await captcha.create({ userId: "u1" });
    expect(await captcha.verify({ id: mine.id, answer: "42" }, { userId: "farm" })).toBe(false);
    // No subject at all is bad input, not an attempt: a typed error, and the challenge stays.
    await expect(captcha.verify({ id: mine.id, answer: "42" }, undefined as never)).rejects.toThrow(
      /subject must be an object/,
    );
    // …and another user's attempt does not burn it
    expect(await captcha.verify({ id: mine.id, answer: "42" }, { userId: "u1" })).toBe(true);
    const anyone = await captcha.create();
    expect(await captcha.verify({ id: anyone.id, answer: "42" }, { userId: "u9" })).toBe(true);
  });

  it("expires after its TTL", async () => {
    const prefix = randomPrefix();
    const captcha = new RedisCaptcha(redis, { generate: known("7"), ttlMs: 150, prefix });
    const { id } = await captcha.create({ userId: "u1" });
    expect(await redis.pttl(`{${prefix}:${id}}:captcha`)).toBeGreaterThan(0);
    await sleep(250);
    expect(await captcha.verify({ id, answer: "7" }, { userId: "u1" })).toBe(false);
  });

  it("compares ignoring case unless told otherwise", async () => {
    const loose = new RedisCaptcha(redis, { generate: known("AbC"), prefix: randomPrefix() });
    const a = await loose.create();
    expect(await loose.verify({ id: a.id, answer: "abc" }, { userId: "u" })).toBe(true);
    const strict = new RedisCaptcha(redis, {
      generate: known("AbC"),
      ignoreCase: false,
      prefix: randomPrefix(),
    });
    const b = await strict.create();
    expect(await strict.verify({ id: b.id, answer: "abc" }, { userId: "u" })).toBe(false);
    // Case folding is ASCII only: the KELVIN SIGN lower-cases to "k" in Unicode but is another character.
    const kelvin = new RedisCaptcha(redis, { generate: known("k7"), prefix: randomPrefix() });
    const c = await kelvin.create();
    expect(await kelvin.verify({ id: c.id, answer: "\u212A7" }, { userId: "u" })).toBe(false);
    const d = await kelvin.create();
    expect(await kelvin.verify({ id: d.id, answer: "K7" }, { userId: "u" })).toBe(true);
  });

  it("unknown and malformed ids fail without touching Redis keys", async () => {
    const prefix = randomPrefix();
    const captcha = new RedisCaptcha(redis, { prefix });
    expect(await captcha.verify({ id: "nope", answer: "1" }, { userId: "u" })).toBe(false);
    expect(await captcha.verify({ id: "{x}", answer: "1" }, { userId: "u" })).toBe(false);
    expect(await captcha.verify({ answer: "1" }, { userId: "u" })).toBe(false);
    // A missing subject is the caller's bad input, whatever the response looks like.
    await expect(captcha.verify(null as never, undefined as never)).rejects.toThrow(/subject/);
    await expect(captcha.verify({ id: "{x}", answer: "1" }, {} as never)).rejects.toThrow(/userId/);
    expect(await redis.keys(`{${prefix}:*`)).toEqual([]);
  });

  it("draws math challenges as strokes, with no text in the SVG", () => {
    for (let i = 0; i < 200; i++) {
      const c = mathChallenge();
      expect(c.answer).toMatch(/^\d+$/);
      expect(c.svg.startsWith("<svg")).toBe(true);
      expect(c.svg).not.toMatch(/<text|font/);
    }
  });

  it("gives a script no glyph structure: absolute segments of all glyphs and decoys, shuffled into a few paths", () => {
    const segmentsOf = (svg: string) =>
      [...svg.matchAll(/<path d="([^"]*)" stroke="[^"]*" stroke-width="[^"]*" stroke-linecap/g)].map((m) =>
        m[1]!.split("M").filter(Boolean),
      );
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { svg } = mathChallenge();
      expect(svg).not.toMatch(/transform/); // no per-glyph placement to undo
      const paths = segmentsOf(svg);
      expect(paths.length).toBeGreaterThanOrEqual(3);
      expect(paths.length).toBeLessThanOrEqual(6);
      // Every piece is one straight segment, so neither a path nor its point count outlines a glyph.
      for (const p of paths)
        for (const seg of p) expect(seg).toMatch(/^-?[\d.]+ -?[\d.]+L-?[\d.]+ -?[\d.]+$/);
      seen.add(paths.map((p) => p.length).join(","));
    }
    expect(seen.size).toBeGreaterThan(10); // the grouping changes from one picture to the next
  });

  it("takes svg-captcha as the picture generator", async () => {
    const captcha = new RedisCaptcha(redis, {
      prefix: randomPrefix(),
      generate: () => {
        const c = svgCaptcha.create({ size: 5, noise: 2 });
        return { svg: c.data, answer: c.text };
      },
    });
    let answer = "";
    const spy = new RedisCaptcha(redis, {
      prefix: randomPrefix(),
      generate: () => {
        const c = svgCaptcha.create({ size: 5 });
        answer = c.text;
        return { svg: c.data, answer: c.text };
      },
    });
    const { id, svg } = await spy.create({ userId: "u" });
    expect(svg).toMatch(/^<svg/);
    expect(await spy.verify({ id, answer }, { userId: "u" })).toBe(true);
    expect((await captcha.create()).svg).toMatch(/^<svg/);
  });
});
