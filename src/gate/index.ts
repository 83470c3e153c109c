// flash-sale-kit/gate: not yet released.
export {};
