// flash-sale-kit: re-exports every module. Each is also importable alone: `flash-sale-kit/stock`, …
export * from "./core/index.js";
export * from "./stock/index.js";
export * from "./lock/index.js";
export * from "./cache/index.js";
export * from "./ratelimit/index.js";
export * from "./gate/index.js";
export * from "./outbox/index.js";
