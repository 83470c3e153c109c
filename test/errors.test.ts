// The public error tree: codes, names, causes, and `instanceof` across two copies of the package (a process
// that loads both the ESM and the CJS build gets two copies of every class).
import { describe, expect, it, vi } from "vitest";

async function freshCopy(): Promise<typeof import("../src/errors.js")> {
  vi.resetModules();
  return await import("../src/errors.js");
}

describe("errors", () => {
  it("instanceof holds across copies of the package, and only along the class tree", async () => {
    const a = await freshCopy();
    const b = await freshCopy();
    expect(a.FlashSaleError).not.toBe(b.FlashSaleError);
    const err = new a.InvalidArgumentError("sku", "must not be empty");
    expect(err).toBeInstanceOf(b.InvalidArgumentError);
    expect(err).toBeInstanceOf(b.FlashSaleError);
    expect(err).toBeInstanceOf(Error);
    expect(err instanceof b.ConflictError).toBe(false);
    expect(err instanceof b.RedisUnavailableError).toBe(false);
    const conflict = new b.ConflictError("RESERVATION_CONFLICT", "taken");
    expect(conflict instanceof a.ConflictError).toBe(true);
    expect(conflict instanceof a.InvalidArgumentError).toBe(false);
    // Plain errors and look-alikes are not FlashSaleErrors.
    expect(new Error("x") instanceof a.FlashSaleError).toBe(false);
    expect({ name: "InvalidArgumentError", code: "INVALID_ARGUMENT" } instanceof a.FlashSaleError).toBe(
      false,
    );
    expect((null as unknown as object) instanceof a.FlashSaleError).toBe(false);
  });

  it("keeps code, name, argument and cause", async () => {
    const { RedisUnavailableError, InvalidArgumentError } = await freshCopy();
    const cause = new Error("ECONNRESET");
    const err = new RedisUnavailableError("Redis is unavailable", { cause });
    expect([err.code, err.name, err.cause]).toEqual(["REDIS_UNAVAILABLE", "RedisUnavailableError", cause]);
    const bad = new InvalidArgumentError("quantity", "must be an integer");
    expect([bad.code, bad.argument, bad.message]).toEqual([
      "INVALID_ARGUMENT",
      "quantity",
      "quantity must be an integer",
    ]);
  });
});
