// WaitingRoom.pause() (and drain, clear…) promise to run after the calls made before them ("Calls
// queued in this tick leave at its end (batching): let them go first, as the order of calls says"). When
// the script is not in Redis's cache (a fresh node, a restart, a failover, SCRIPT FLUSH), the join's EVALSHA
// fails with NOSCRIPT and is sent again as EVAL one round trip later: the pause's HSET, sent meanwhile,
// runs first, and the join made before the pause is decided as if after it.
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

const SECRET = "review-b-queue-order-secret-of-32-bytes";

describe("WaitingRoom call order across a script-cache miss", () => {
  for (const batch of [true, false]) {
    it(`a join made before pause() is decided before it (batch: ${batch})`, async () => {
      const room = new WaitingRoom(redis, {
        roomId: randomPrefix("ro"),
        secret: SECRET,
        maxActive: 5,
        batch,
      });
      await room.stats(); // the client has used the script: it sends EVALSHA from now on
      await redis.script("FLUSH"); // as after a restart or a failover to a node without the script
      const joined = room.join("alice"); // an empty room with free places: in at once
      await room.pause();
      const j = await joined;
      await room.clear();
      expect(j.state).toBe("ADMITTED");
    });
  }
});
