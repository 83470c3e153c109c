// flash-sale-kit/lock: not yet released.
export {};
