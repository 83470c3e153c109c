// flash-sale-kit/outbox: not yet released.
export {};
