// WaitingRoom's `batch` option promises each coalesced call "its own outcome exactly as if run
// alone in submission order". Each script call admits at most 1,000; a batch shares one call's budget, so
// the second of two same-tick status reads is left WAITING where, run alone, its own call admits it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { WaitingRoom } from "../../src/queue/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

let srv: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis();
  redis = srv.client();
});
afterAll(async () => srv?.stop());

const SECRET = "review-b-queue-batch-secret-of-32-bytes";

async function scenario(batch: boolean): Promise<string> {
  const room = new WaitingRoom(redis, {
    roomId: randomPrefix("rq"),
    secret: SECRET,
    maxActive: 1_000_000,
    batch,
  });
  await room.pause();
  const users = Array.from({ length: 1_001 }, (_, i) => `u${i}`);
  const tickets: string[] = [];
  for (let i = 0; i < users.length; i += 200) {
    const js = await Promise.all(users.slice(i, i + 200).map((u) => room.join(u)));
    for (const j of js) tickets.push((j as { ticket: string }).ticket);
  }
  await room.resume();
  // Two polls in the same tick: u0's call admits the first 1,000 (its budget); u1000's call comes next.
  const [, last] = await Promise.all([
    room.status(tickets[0]!, { userId: "u0" }),
    room.status(tickets[1_000]!, { userId: "u1000" }),
  ]);
  await room.clear();
  return last.state;
}

describe("WaitingRoom batching keeps each call's outcome", () => {
  it("the second same-tick status read gets what it gets with batch: false", async () => {
    const alone = await scenario(false);
    const batched = await scenario(true);
    expect(alone).toBe("ADMITTED");
    expect(batched).toBe(alone);
  });
});
