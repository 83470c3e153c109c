// internal: key naming, id validation, the error hierarchy, the script registry, Redis time, batching.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { entityKeys, resolvePrefix } from "../../src/internal/keys.js";
import {
  FlashSaleError,
  InvalidArgumentError,
  RedisCommandError,
  RedisUnavailableError,
} from "../../src/errors.js";
import { LuaScript } from "../../src/internal/scripts.js";
import { redisTimeMs } from "../../src/internal/time.js";
import { TickBatcher } from "../../src/internal/batch.js";
import { validateId, validateOptions, validateInt } from "../../src/internal/validate.js";
import { startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

describe("keys", () => {
  it("puts every key of an entity under one hash tag", () => {
    const k = entityKeys("fsk", "sku-1");
    expect(k.tag).toBe("{fsk:sku-1}");
    expect(k.key("meta")).toBe("{fsk:sku-1}:meta");
    expect(resolvePrefix(undefined)).toBe("fsk");
    expect(() => resolvePrefix("a}")).toThrow(InvalidArgumentError);
  });
});

describe("validateOptions", () => {
  it("takes an object or, unless required, undefined; refuses the rest with a typed error", () => {
    expect(() => validateOptions("options", {})).not.toThrow();
    expect(() => validateOptions("options", undefined)).not.toThrow();
    for (const bad of [null, 0, "x", true, [], () => 1])
      expect(() => validateOptions("options", bad)).toThrow(/options must be an object/);
    expect(() => validateOptions("options", undefined, { required: true })).toThrow(InvalidArgumentError);
  });
});

describe("validateId", () => {
  it.each([
    ["", "empty"],
    ["a{b", "open brace"],
    ["a}b", "close brace"],
    ["a b", "space"],
    ["a\tb", "tab"],
    ["a\u0000", "NUL"],
    ["a\u007f", "DEL"],
    ["a\u2028", "line separator"],
    ["x".repeat(201), "too long"],
    ["sku\ud800", "lone high surrogate"],
    ["sku\udc00", "lone low surrogate"],
    ["\udc00\ud83d", "surrogates in the wrong order"],
  ])("rejects %j (%s)", (value) => {
    expect(() => validateId("sku", value)).toThrow(InvalidArgumentError);
  });
  it("accepts ordinary ids up to 200 characters", () => {
    for (const v of ["a", "sku:1|x", "用户-42", "x".repeat(200), "gift-\ud83c\udf81"])
      expect(() => validateId("sku", v)).not.toThrow();
    expect(() => validateId("sku", 42)).toThrow(/sku must be a string/);
  });
  it("answers as the documented rule for 20,000 random ids (the printable-ASCII shortcut included)", () => {
    // The rule, spelled out here on its own: 1 to 200 characters, no brace, no whitespace or control
    // character, no lone surrogate.
    const bad = (v: string): boolean =>
      v.length === 0 ||
      v.length > 200 ||
      /[{}\s\p{Cc}\u2028\u2029]/u.test(v) ||
      /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(v);
    // Mostly plain ASCII (the shortcut's case), with each kind of character the rule is about.
    const alphabet = [
      ..."abcXYZ019-_:|.~!`^\u007e\u0021",
      "{",
      "}",
      " ",
      "\t",
      "\n",
      "\u0000",
      "\u001f",
      "\u007f",
      "\u0085",
      "\u009f",
      "\u00a0",
      "\u00a1",
      "\u1680",
      "\u2000",
      "\u2028",
      "\u2029",
      "\u3000",
      "\ufeff",
      "用",
      "\ud800",
      "\udc00",
      "\ud83c\udf81",
    ];
    // A 32-bit linear congruential generator (Math.imul keeps every bit); its high half is the draw.
    let rng = 42;
    const next = (n: number): number => {
      rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
      return (rng >>> 16) % n;
    };
    const drawn = new Set<string>();
    const lengths = new Set<number>();
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const len = next(6) === 0 ? 195 + next(10) : next(12);
      let v = "";
      for (let j = 0; j < len; j++) {
        const ch = next(20) === 0 ? alphabet[next(alphabet.length)]! : alphabet[next(19)]!;
        drawn.add(ch);
        v += ch;
      }
      lengths.add(v.length);
      let threw = false;
      try {
        validateId("sku", v);
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgumentError);
        threw = true;
      }
      expect(threw, JSON.stringify(v)).toBe(bad(v));
      if (threw) refused++;
    }
    // Every character was drawn, every short length and the limit's both sides were met, and both answers
    // many times.
    expect(alphabet.filter((ch) => !drawn.has(ch))).toEqual([]);
    for (const n of [0, 1, 2, 3, 200, 201]) expect(lengths.has(n), `length ${n}`).toBe(true);
    expect(refused).toBeGreaterThan(2_000);
    expect(refused).toBeLessThan(18_000);
    // And each UTF-16 code unit alone, between two letters: the shortcut and the full check agree on all.
    for (let c = 0; c <= 0xffff; c++) {
      const v = `a${String.fromCharCode(c)}b`;
      let threw = false;
      try {
        validateId("sku", v);
      } catch {
        threw = true;
      }
      if (threw !== bad(v)) expect(threw, `U+${c.toString(16)}`).toBe(bad(v));
    }
  });
  it("names the argument", () => {
    const err = (() => {
      try {
        validateInt("ttlMs", 1.5, { min: 1 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT", argument: "ttlMs", name: "InvalidArgumentError" });
    expect((err as Error).message).toBe("ttlMs must be an integer");
  });
});

describe("errors", () => {
  it("sets name, code and cause", () => {
    const cause = new Error("boom");
    const e = new RedisUnavailableError("down", { cause });
    expect(e).toBeInstanceOf(FlashSaleError);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("RedisUnavailableError");
    expect(e.code).toBe("REDIS_UNAVAILABLE");
    expect(e.cause).toBe(cause);
  });
});

describe("LuaScript", () => {
  const echo = new LuaScript("test/echo", "return {KEYS[1], ARGV[1]}", 1);
  const failing = new LuaScript("test/fail", "return redis.error_reply('ERR nope')", 0);

  it("runs, survives SCRIPT FLUSH, and wraps reply errors", async () => {
    expect(await echo.run(redis, ["{t}:k"], ["v"])).toEqual(["{t}:k", "v"]);
    await redis.script("FLUSH");
    expect(await echo.run(redis, ["{t}:k"], ["w"])).toEqual(["{t}:k", "w"]);
    expect(await redis.script("EXISTS", echo.sha)).toEqual([1]);
    await expect(failing.run(redis, [], [])).rejects.toBeInstanceOf(RedisCommandError);
    expect(echo.command).toMatch(/^fsk_test_echo_[0-9a-f]{10}$/);
  });

  it("works inside a pipeline once registered", async () => {
    await echo.run(redis, ["{t}:a"], ["1"]);
    const pipe = redis.pipeline() as unknown as Record<string, (...a: string[]) => unknown> & {
      exec(): Promise<[Error | null, unknown][]>;
    };
    pipe[echo.command]!("{t}:b", "2");
    const out = await pipe.exec();
    expect(out[0]).toEqual([null, ["{t}:b", "2"]]);
  });
});

describe("redisTimeMs", () => {
  it("reads the server clock", async () => {
    const t = await redisTimeMs(redis);
    expect(Math.abs(t - Date.now())).toBeLessThan(5_000);
  });
});

describe("TickBatcher", () => {
  it("batches one tick per group, in order, and splits at maxWeight", async () => {
    const sent: [string, number[]][] = [];
    const b = new TickBatcher<string, number, number>(async (group, batch) => {
      sent.push([group, batch.map((p) => p.item)]);
      for (const p of batch) p.resolve(p.item * 10);
    }, 3);
    const got = await Promise.all([
      b.submit("a", 1),
      b.submit("b", 2),
      b.submit("a", 3),
      b.submit("a", 4),
      b.submit("a", 5),
    ]);
    expect(got).toEqual([10, 20, 30, 40, 50]);
    expect(sent).toEqual([
      ["a", [1, 3, 4]],
      ["b", [2]],
      ["a", [5]],
    ]);
  });

  it("with maxInFlight, holds a group's next batch until one in flight settles, then sends what gathered", async () => {
    const sent: [string, number[]][] = [];
    const replies: (() => void)[] = [];
    const b = new TickBatcher<string, number, number>(
      (group, batch) => {
        sent.push([group, batch.map((p) => p.item)]);
        return new Promise<void>((resolve) =>
          replies.push(() => {
            for (const p of batch) p.resolve(p.item);
            resolve();
          }),
        );
      },
      4,
      undefined,
      1,
    );
    const tick = () => new Promise<void>((r) => process.nextTick(r));
    const first = b.submit("a", 1); // idle: goes at the end of this tick
    await tick();
    expect(sent).toEqual([["a", [1]]]);
    // Submitted in separate ticks while "a" has a batch out: held, and sent together once it returns.
    const held = [b.submit("a", 2)];
    await tick();
    held.push(b.submit("a", 3));
    const other = b.submit("b", 9); // another group is not held
    await tick();
    expect(sent).toEqual([
      ["a", [1]],
      ["b", [9]],
    ]);
    // Reaching maxWeight sends at once even while held.
    held.push(b.submit("a", 4), b.submit("a", 5), b.submit("a", 6));
    expect(sent.at(-1)).toEqual(["a", [2, 3, 4, 5]]);
    replies.shift()!(); // "a" [1] comes back, but [2..5] is still out: [6] waits
    expect(await first).toBe(1);
    await tick();
    await tick();
    expect(sent.at(-1)).toEqual(["a", [2, 3, 4, 5]]);
    replies.shift()!(); // "b"
    replies.shift()!(); // "a" [2..5] comes back: [6] goes
    await Promise.all(held.slice(0, 4));
    await tick();
    await tick();
    expect(sent.at(-1)).toEqual(["a", [6]]);
    while (replies.length) replies.shift()!();
    expect(await Promise.all([...held, other])).toEqual([2, 3, 4, 5, 6, 9]);
  });

  it("rejects every item a send left open, even when it throws before its first await", async () => {
    const sync = new TickBatcher<number, number, number>(() => {
      throw new Error("packing failed");
    }, 10);
    await expect(Promise.all([sync.submit(0, 1), sync.submit(0, 2)])).rejects.toThrow("packing failed");
    const partial = new TickBatcher<number, number, number>(async (_g, batch) => {
      batch[0]!.resolve(1);
      throw new Error("after one");
    }, 10);
    const [a, c] = await Promise.allSettled([partial.submit(0, 1), partial.submit(0, 2)]);
    expect(a).toEqual({ status: "fulfilled", value: 1 });
    expect(c).toMatchObject({ status: "rejected", reason: { message: "after one" } });
  });
});
