// flash-sale-kit/stock: atomic stock reservation in Redis (Inventory) and in PostgreSQL (SqlInventory).
export {
  Inventory,
  type InventoryOptions,
  type HoldSweeper,
  type HoldSweeperOptions,
  type StockEvent,
  type ReservationInfo,
} from "./inventory.js";
export { SqlInventory, sqlInventorySchema, type SqlInventoryOptions } from "./sql-inventory.js";
export {
  UNLIMITED,
  MAX_QUANTITY,
  MAX_HOLD_MS,
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
