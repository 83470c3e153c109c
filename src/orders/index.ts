// flash-sale-kit/orders: the order side of a sale. Order rows from stock reservation events, payment, and
// delayed cancellation through the outbox, with the stock confirmed or released exactly once. The only
// module that knows both stock and outbox.
export {
  PostgresOrders,
  ordersSchema,
  type PostgresOrdersOptions,
  type Order,
  type OrderStatus,
  type CreateOrderInput,
  type CreateOrderResult,
  type PayResult,
  type CancelResult,
  type PaymentTimeoutPayload,
} from "./orders.js";
export { readStockEvent } from "./stock-events.js";
export { reconcileStock, type ReconcileStockOptions, type ReconcileReport } from "./reconcile.js";
