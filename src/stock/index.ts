// flash-sale-kit/stock: atomic stock reservation in Redis (Inventory) and in PostgreSQL (PostgresInventory).
export {
  Inventory,
  type InventoryOptions,
  type ReplicatedOptions,
  type StockEvent,
  type ReservationInfo,
  type BucketKeys,
  type BucketedKeys,
} from "./inventory.js";
export { type HoldSweeper, type HoldSweeperOptions } from "./hold-sweeper.js";
export {
  PostgresInventory,
  postgresInventorySchema,
  type PostgresInventoryOptions,
} from "./postgres-inventory.js";
export {
  UNLIMITED,
  MAX_QUANTITY,
  MAX_HOLD_MS,
  MAX_BUCKETS,
  type ReserveRejection,
  type ReserveResult,
  type ConfirmResult,
  type ReleaseResult,
  type StockOptions,
  type ReserveOptions,
  type InventorySnapshot,
  type ExpireOptions,
  type StockStore,
} from "./types.js";
