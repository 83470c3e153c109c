// flash-sale-kit/cache: not yet released.
export {};
