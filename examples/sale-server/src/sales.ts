// The sales this process knows: each one's gate (window, members only, CAPTCHA, purchase token) and the page
// that features one of them. With a waiting room (`room`), each sale has its own `WaitingRoom` (the room id is
// the SKU) and its gate requires, and spends, the room's pass before it issues a purchase token. The products table is the list of sales; every process polls it, so a sale
// created or re-created in one process reaches the others' gates and pages.
import type { FastifyBaseLogger } from "fastify";
import { InvalidArgumentError } from "flash-sale-kit";
import { PurchaseTokens, RedisCaptcha, SaleGate } from "flash-sale-kit/gate";
import { WaitingRoom, type RoomStats } from "flash-sale-kit/queue";
import type { Inventory } from "flash-sale-kit/stock";
import type { Redis } from "ioredis";
import type { StaticSite } from "./assets.js";
import type { Catalog } from "./catalog.js";
import type { TimeSource } from "./clock.js";
import { idSchema } from "./http.js";

/** A sale as the admin route and `createSale` take it. */
export interface SaleInput {
  readonly sku: string;
  readonly name: string;
  readonly priceCents: number;
  readonly stock: number;
  /** Epoch ms the sale opens (Redis time). */
  readonly startsAt: number;
  /** Epoch ms the sale closes (exclusive). Omitted: open until sold out. */
  readonly endsAt?: number;
  /** @default 1 */
  readonly perUserLimit?: number;
}

/** The largest epoch ms a JavaScript Date holds. */
export const MAX_DATE_MS = 8.64e15;

/** The JSON Schema of a sale (POST /api/admin/sales); `endsAt > startsAt` is checked by `createSale`. */
export const saleSchema = {
  type: "object",
  required: ["sku", "name", "priceCents", "stock", "startsAt"],
  additionalProperties: false,
  properties: {
    sku: idSchema,
    name: { type: "string", minLength: 1, maxLength: 200, pattern: "^[^\\u0000-\\u001f\\u007f]+$" },
    priceCents: { type: "integer", minimum: 0, maximum: 2_147_483_647 },
    stock: { type: "integer", minimum: 0, maximum: 1_000_000_000 },
    startsAt: { type: "integer", minimum: 0, maximum: MAX_DATE_MS - 1 },
    endsAt: { type: "integer", minimum: 1, maximum: MAX_DATE_MS },
    perUserLimit: { type: "integer", minimum: 1, maximum: 1_000_000 },
  },
} as const;

/**
 * The waiting room in front of every sale: admissions at the rate the buy path can take. An empty room with
 * tokens in its bucket admits a joiner at once, so a quiet sale costs the visitor no wait; a busy one queues.
 */
export interface RoomSettings {
  /** Admissions per second (what the back end can take). */
  readonly admitPerSecond: number;
  /** Admissions at once (the bucket's capacity). @default ceil(admitPerSecond) */
  readonly burst?: number;
  /** The most unspent passes at once. @default no cap */
  readonly maxActive?: number;
  /** How long a pass stays valid. @default 120000 */
  readonly passTtlMs?: number;
  /** Signs tickets and passes (at least 32 characters; the same in every process of a site). */
  readonly secret: string;
}

/** What the dashboard shows of a sale's room. */
export interface RoomSnapshot extends RoomStats {
  /** The configured admissions per second and burst. */
  readonly admitPerSecond: number;
  readonly burst: number;
  readonly maxActive: number | null;
}

type Stored = Omit<SaleInput, "endsAt"> & { readonly endsAt?: number | undefined };

export interface SalesOptions {
  readonly redis: Redis;
  readonly inventory: Inventory;
  readonly catalog: Catalog;
  readonly site: StaticSite;
  readonly tokens: PurchaseTokens;
  readonly captcha: RedisCaptcha;
  readonly clock: TimeSource;
  /** How long a reservation is held (longer than the payment window: the timeout decides). */
  readonly holdMs: number;
  /** A waiting room in front of every sale. Omitted: none (the gate needs no pass). */
  readonly room?: RoomSettings;
  /** Key prefix of the rooms. */
  readonly prefix: string;
  readonly log: () => FastifyBaseLogger;
}

export class Sales {
  private readonly gates = new Map<string, SaleGate<undefined>>();
  private readonly sales = new Map<string, Stored>();
  private readonly rooms = new Map<string, WaitingRoom>();
  /** What each sale was registered with, to notice one re-created elsewhere. */
  private readonly registered = new Map<string, string>();
  /** The SKUs, in the order this process learned of them (the order worker reads their streams). */
  readonly skus: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: SalesOptions) {}

  gate(sku: string): SaleGate<undefined> | undefined {
    return this.gates.get(sku);
  }

  /** The sale's waiting room, when the app has rooms. */
  room(sku: string): WaitingRoom | undefined {
    return this.rooms.get(sku);
  }

  /** Whether the sales have a waiting room in front. */
  get hasRoom(): boolean {
    return this.o.room !== undefined;
  }

  /** The room's line and admissions, for the dashboard (undefined without rooms). */
  async roomStats(sku: string): Promise<RoomSnapshot | undefined> {
    const room = this.rooms.get(sku);
    if (room === undefined) return undefined;
    return {
      ...(await room.stats()),
      admitPerSecond: room.admitPerSecond ?? 0,
      burst: room.burst,
      maxActive: room.maxActive ?? null,
    };
  }

  get(sku: string): Stored | undefined {
    return this.sales.get(sku);
  }

  /**
   * Where the sale's window stands by this process's Redis-synced clock: "before" or "ended" only when the
   * whole error bound is on that side; "open" otherwise (the gate and the stock script decide on Redis).
   */
  window(sku: string): "before" | "ended" | "open" {
    const s = this.sales.get(sku);
    const r = this.o.clock.read();
    if (s === undefined || r === undefined) return "open";
    if (r.ms + r.errorMs < s.startsAt) return "before";
    if (s.endsAt !== undefined && r.ms - r.errorMs >= s.endsAt) return "ended";
    return "open";
  }

  /** Creates (or re-creates) a sale: the product row, the stock, the gate and the page. */
  async create(input: SaleInput): Promise<void> {
    if (input.endsAt !== undefined && input.endsAt <= input.startsAt) {
      throw new InvalidArgumentError("endsAt", "must be after startsAt");
    }
    await this.o.catalog.upsert({ ...input, endsAt: input.endsAt ?? null });
    await this.o.inventory.setStock(input.sku, input.stock, {
      perUserLimit: input.perUserLimit ?? 1,
      startsAt: input.startsAt,
      ...(input.endsAt !== undefined && { endsAt: input.endsAt }),
      holdMs: this.o.holdMs,
    });
    this.register(input);
    // A re-created sale starts with an empty line (and no pass of the old one is good any more).
    await this.rooms.get(input.sku)?.clear();
  }

  /** Reads the list of sales once now, then every `intervalMs`. */
  async start(intervalMs = 2000): Promise<void> {
    await this.sync();
    // The catalog's Bloom filter lives in Redis only: after a Redis restart it is empty while the products
    // table is not. Every process adds the known products once at start (adds are idempotent).
    await this.o.catalog.cache.prewarm((await this.o.catalog.all()).map((p) => [p.sku, p] as const));
    this.timer = setInterval(
      () => void this.sync().catch((err: unknown) => this.o.log().error(err)),
      intervalMs,
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Registers sales created or changed by other processes; one bad row is logged and skipped. */
  private async sync(): Promise<void> {
    for (const p of await this.o.catalog.all()) {
      try {
        const input = { ...p, endsAt: p.endsAt ?? undefined };
        if (this.registered.get(p.sku) !== settingsOf(input)) this.register(input);
      } catch (err) {
        this.o.log().error(err);
      }
    }
  }

  private register(input: Stored): void {
    const r = this.o.room;
    const room =
      r === undefined
        ? undefined
        : new WaitingRoom(this.o.redis, {
            roomId: input.sku,
            prefix: this.o.prefix,
            secret: r.secret,
            // Nobody is admitted before the sale starts (Redis time).
            opensAt: input.startsAt,
            admitPerSecond: r.admitPerSecond,
            ...(r.burst !== undefined && { burst: r.burst }),
            ...(r.maxActive !== undefined && { maxActive: r.maxActive }),
            ...(r.passTtlMs !== undefined && { passTtlMs: r.passTtlMs }),
          });
    if (room) this.rooms.set(input.sku, room);
    this.gates.set(
      input.sku,
      new SaleGate(this.o.redis, {
        saleId: input.sku,
        startsAt: input.startsAt,
        ...(input.endsAt !== undefined && { endsAt: input.endsAt }),
        tokens: this.o.tokens,
        captcha: this.o.captcha,
        // Business gating: members only (the demo calls everyone whose id starts with "guest" a guest).
        eligible: ({ userId }) => !userId.startsWith("guest") || "MEMBERS_ONLY",
        // With a room: admit() requires the user's pass and spends it, last, once every other check passed.
        ...(room && { waitingRoom: room }),
      }),
    );
    if (!this.skus.includes(input.sku)) this.skus.push(input.sku);
    this.registered.set(input.sku, settingsOf(input));
    this.sales.set(input.sku, input);
    this.renderFeatured();
  }

  /**
   * The page at `/` shows one sale, the same in every process whatever order they learned of the sales in:
   * the one that starts last (then the greatest SKU), the newest sale of a demo.
   */
  private renderFeatured(): void {
    let featured: Stored | undefined;
    for (const s of this.sales.values()) {
      if (
        !featured ||
        s.startsAt > featured.startsAt ||
        (s.startsAt === featured.startsAt && s.sku > featured.sku)
      )
        featured = s;
    }
    if (featured)
      this.o.site.render({ ...featured, ...(featured.endsAt !== undefined && { endsAt: featured.endsAt }) });
  }
}

const settingsOf = (s: Stored): string =>
  JSON.stringify([s.startsAt, s.endsAt ?? null, s.name, s.priceCents, s.stock]);
