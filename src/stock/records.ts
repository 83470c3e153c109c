// Reading a SKU's stock hash as Inventory's scripts store it: counters and settings, reservation records,
// each user's units, and every reservation id at once (for the in-process sold-out answers).
import { UnexpectedReplyError } from "../errors.js";
import { toRedisError, type RedisClient } from "../internal/scripts.js";
import { STATE } from "./scripts.js";
import type { LoadedIds, SkuState } from "./sold-out-flags.js";
import type { InventorySnapshot } from "./types.js";

/** A stored reservation, as `Inventory.reservation` reads it. */
export interface ReservationInfo {
  readonly reservationId: string;
  readonly userId: string;
  readonly quantity: number;
  /** `held` until confirmed or released (a hold past its expiry stays `held` until swept or confirmed). */
  readonly state: "held" | "confirmed" | "released";
  /** Units left right after the reservation was made. */
  readonly remaining: number;
  /** Redis time (epoch ms) the hold expires, when the SKU has a `holdMs`. */
  readonly expiresAt?: number;
}

/** The stream event fields appended by the stock scripts (all values are strings in Redis). */
export interface StockEvent {
  readonly type: "reserved" | "confirmed" | "released";
  readonly sku: string;
  readonly reservationId: string;
  readonly userId: string;
  readonly quantity: number;
  /** Redis time (epoch ms) of the change. */
  readonly at: number;
  /** For `released`: `"released"` (an explicit release) or `"expired"` (the hold ran out). */
  readonly cause?: "released" | "expired";
}

/** `Inventory.snapshot`. @internal */
export async function readSnapshot(redis: RedisClient, key: string): Promise<InventorySnapshot | null> {
  let h: (string | null)[];
  try {
    h = await redis.hmget(
      key,
      "initial",
      "available",
      "held",
      "confirmed",
      "limit",
      "hold",
      "starts",
      "ends",
    );
  } catch (err) {
    throw toRedisError(err);
  }
  const [initial, available, held, confirmed, limit, hold, starts, ends] = h;
  if (initial === null || initial === undefined) return null;
  return {
    initial: Number(initial),
    available: Number(available),
    held: Number(held),
    confirmed: Number(confirmed),
    perUserLimit: Number(limit),
    ...(starts != null && { startsAt: Number(starts) }),
    ...(ends != null && { endsAt: Number(ends) }),
    ...(Number(hold) > 0 && { holdMs: Number(hold) }),
  };
}

/** `Inventory.reservation`: the packed record "<state>|<qty>|<expiresAt>|<remaining>|<userId>". @internal */
export async function readReservation(
  redis: RedisClient,
  key: string,
  reservationId: string,
): Promise<ReservationInfo | null> {
  let rec: string | null;
  try {
    rec = await redis.hget(key, `r:${reservationId}`);
  } catch (err) {
    throw toRedisError(err);
  }
  if (rec === null) return null;
  const m = /^([HCR])\|(\d+)\|(-?\d+)\|(-?\d+)\|(.*)$/s.exec(rec);
  if (m === null)
    throw new UnexpectedReplyError(`reservation ${reservationId} in ${key} is not one Inventory wrote`);
  const expiresAt = Number(m[3]);
  return {
    reservationId,
    userId: m[5]!,
    quantity: Number(m[2]),
    state: m[1] === "H" ? "held" : m[1] === "C" ? "confirmed" : "released",
    remaining: Number(m[4]),
    ...(expiresAt > 0 && { expiresAt }),
  };
}

/** `Inventory.userQuantity`. @internal */
export async function readUserQuantity(redis: RedisClient, key: string, userId: string): Promise<number> {
  try {
    return Number((await redis.hget(key, `u:${userId}`)) ?? 0);
  } catch (err) {
    throw toRedisError(err);
  }
}

/**
 * Every reservation id of a SKU and each user's units (HSCAN, in short steps that never hold Redis for long),
 * then its state in one step; `undefined` past `maxIds`. The ids are all of them only if their count is the
 * state's (records are never deleted), which the caller checks. @internal
 */
export async function readIds(
  redis: RedisClient,
  key: string,
  maxIds: number,
): Promise<(LoadedIds & { state: SkuState }) | undefined> {
  const ids = new Set<string>();
  const users = new Map<string, number>();
  let cursor = "0";
  try {
    do {
      const [next, flat] = await redis.hscan(key, cursor, "COUNT", 1000);
      for (let i = 0; i < flat.length; i += 2) {
        const field = flat[i]!;
        if (field.startsWith("r:")) ids.add(field.slice(2));
        else if (field.startsWith("u:")) users.set(field.slice(2), Number(flat[i + 1]));
      }
      if (ids.size > maxIds) return undefined;
      cursor = next;
    } while (cursor !== "0");
  } catch (err) {
    throw toRedisError(err);
  }
  return { ids, users, state: await STATE.run(redis, [key], []) };
}
