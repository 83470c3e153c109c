// WaitingRoom.join and WaitingRoom.status next to TokenBucket.take (the per-request cost a sale already pays
// for its rate limit), at concurrency 64 and 1,024. Goal: join and status at 0.8x of take or better.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { WaitingRoom } from "../src/queue/index.js";
import { TokenBucket } from "../src/ratelimit/index.js";
import {
  compare,
  ratio,
  table,
  type BenchContext,
  type BenchSection,
  type Measurement,
  cleanup,
} from "./lib.js";

const LINE = 10_000;

export default async function queueBench(ctx: BenchContext): Promise<BenchSection> {
  const redis = new Redis(ctx.redisUrl);
  const tag = `bench${randomBytes(4).toString("hex")}`;
  const secret = randomBytes(32);
  // Nothing refused: take measures the path every admitted request takes.
  const bucket = new TokenBucket(redis, {
    capacity: 1_000_000_000,
    refillPerSecond: 1_000,
    prefix: `${tag}tb`,
  });
  // Joins of new users into a growing line (the room is open; one admission every 1,000 s, so the admission
  // step runs on every call but lets nobody in: the line is what is measured).
  const joinRoom = new WaitingRoom(redis, {
    roomId: "join",
    secret,
    prefix: tag,
    admitPerSecond: 0.001,
    burst: 1,
  });
  // Status reads of users waiting in a line of 10,000, with the admission step on every call.
  const statusRoom = new WaitingRoom(redis, {
    roomId: "status",
    secret,
    prefix: tag,
    admitPerSecond: 0.001,
    burst: 1,
  });
  const tickets: string[] = [];
  for (let i = 0; i < LINE; i += 500) {
    const js = await Promise.all(Array.from({ length: 500 }, (_, k) => statusRoom.join(`w${i + k}`)));
    for (const j of js) if (j.state !== "CLOSED") tickets.push(j.ticket);
  }

  const rows: Measurement[][] = [];
  const summary: string[] = [];
  let run = 0;
  for (const concurrency of [64, 1024]) {
    const r = run++;
    const set = await compare(ctx, [
      { name: "TokenBucket.take", concurrency, fn: (i) => bucket.take(`k${i % 10_000}`) },
      { name: "WaitingRoom.join (a new user)", concurrency, fn: (i) => joinRoom.join(`r${r}u${i}`) },
      {
        name: "WaitingRoom.status (waiting in a line of 10,000)",
        concurrency,
        fn: async (i) => {
          const s = await statusRoom.status(tickets[i % tickets.length]!);
          if (s.state === "REFUSED") throw new Error("the bench's ticket was refused");
        },
      },
    ]);
    rows.push(set);
    const j = ratio(set, "WaitingRoom.join (a new user)", "TokenBucket.take");
    const s = ratio(set, "WaitingRoom.status (waiting in a line of 10,000)", "TokenBucket.take");
    summary.push(
      `concurrency ${concurrency}: join **${j.toFixed(2)}x**, status **${s.toFixed(2)}x** of take`,
    );
  }
  const joined = (await joinRoom.stats()).waiting;
  await cleanup(redis, `{${tag}*`);
  await redis.quit();

  return {
    title: "queue: WaitingRoom.join and status next to TokenBucket.take",
    body: `One ioredis connection shared by every candidate. \`TokenBucket.take\` over 10,000 keys, nothing refused
(the rate-limit step every request pays); \`WaitingRoom.join\` of a new user each call, into one room's line
(${joined.toLocaleString("en-US")} joins in all); \`WaitingRoom.status\` of users waiting in a line of
10,000 (ticket verified, position and estimate). Both rooms are open and run their admission step on every
call (Redis time, bucket, active passes) with a rate that lets nobody in, so the line is what is measured.
All three coalesce the calls of one tick into script calls (take: 32 items a call; a room: up to 256, and a
tick's 64 to 255 as two calls; one room is one slot). Goal: join and status at 0.8x of take or better.

${rows.map((set, k) => `**concurrency ${[64, 1024][k]}**\n\n${table(set, "TokenBucket.take")}`).join("\n\n")}

${summary.map((l) => `- ${l}`).join("\n")}
`,
  };
}
