// Product reads: PostgreSQL is the source of truth; reads go through ReadThroughCache (single-flight in and
// across processes, TTL jitter, negative caching) behind a PenetrationGuard (a Bloom filter of known SKUs
// plus a negative cache), so unknown ids never reach the database and a hot key never stampedes it.
import type { Redis } from "ioredis";
import { PenetrationGuard, ReadThroughCache, RedisBloomFilter } from "flash-sale-kit/cache";
import type { SqlClient } from "flash-sale-kit";
import { transaction } from "flash-sale-kit/outbox";
import { rows } from "./db.js";

export interface Product {
  readonly sku: string;
  readonly name: string;
  readonly priceCents: number;
  readonly stock: number;
  readonly startsAt: number;
  readonly endsAt: number | null;
}

export class Catalog {
  readonly filter: RedisBloomFilter;
  readonly guard: PenetrationGuard;
  readonly cache: ReadThroughCache<Product>;
  /** Database loads, for the dashboard and the tests (a cache that works keeps this low). */
  loads = 0;

  constructor(
    private readonly db: SqlClient,
    redis: Redis,
    prefix: string,
  ) {
    this.filter = new RedisBloomFilter(redis, "products", { capacity: 100_000, errorRate: 0.001, prefix });
    this.guard = new PenetrationGuard({ filter: this.filter, redis, negativeTtlMs: 30_000, prefix });
    this.cache = new ReadThroughCache<Product>({
      redis,
      prefix,
      name: "product",
      ttlMs: 60_000,
      jitterMs: 10_000,
      negativeTtlMs: 30_000,
      guard: this.guard,
      load: (sku) => this.load(sku),
    });
  }

  async migrate(): Promise<void> {
    // Server processes started together (`--processes N`) migrate at once, and two concurrent CREATE TABLE IF
    // NOT EXISTS can both miss the table and one fail on the catalog's unique index: one at a time, under a
    // transaction-scoped advisory lock (the second then finds the table).
    await transaction(this.db, async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtext('flash-sale-kit example: products table'))");
      await tx.query(`CREATE TABLE IF NOT EXISTS products (
      sku text PRIMARY KEY,
      name text NOT NULL,
      price_cents integer NOT NULL,
      stock integer NOT NULL,
      starts_at timestamptz NOT NULL,
      ends_at timestamptz
    )`);
    });
  }

  private async load(sku: string): Promise<Product | null> {
    this.loads++;
    const [row] = await rows<Row>(this.db, `${SELECT} WHERE sku = $1`, [sku]);
    return row ? toProduct(row) : null;
  }

  /** Every product (the list of sales), straight from the database. */
  async all(): Promise<Product[]> {
    return (await rows<Row>(this.db, `${SELECT} ORDER BY starts_at`)).map(toProduct);
  }

  /** Saves a product; prewarm stores its cache entry and adds it to the Bloom filter (before the crowd comes). */
  async upsert(p: Product): Promise<void> {
    await this.db.query(
      `INSERT INTO products (sku, name, price_cents, stock, starts_at, ends_at)
       VALUES ($1, $2, $3, $4, to_timestamp($5 / 1000.0), to_timestamp($6 / 1000.0))
       ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents,
         stock = EXCLUDED.stock, starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at`,
      [p.sku, p.name, p.priceCents, p.stock, p.startsAt, p.endsAt],
    );
    await this.cache.prewarm([[p.sku, p]]);
  }

  get(sku: string): Promise<Product | undefined> {
    return this.cache.get(sku);
  }
}

type Row = Record<string, string | number | null>;

const SELECT = `SELECT sku, name, price_cents, stock, (extract(epoch FROM starts_at) * 1000)::float8 AS starts_ms,
  (extract(epoch FROM ends_at) * 1000)::float8 AS ends_ms FROM products`;

function toProduct(row: Row): Product {
  return {
    sku: String(row.sku),
    name: String(row.name),
    priceCents: Number(row.price_cents),
    stock: Number(row.stock),
    startsAt: Math.round(Number(row.starts_ms)),
    endsAt: row.ends_ms === null ? null : Math.round(Number(row.ends_ms)),
  };
}
