// flash-sale-kit/ratelimit: not yet released.
export {};
