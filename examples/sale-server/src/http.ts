// One error body for every error the server answers, and the JSON Schema pieces the routes validate with.
//   { "error": { "code": "SOLD_OUT", "message": "Sold out." } }      (some codes add fields, e.g. retryAfterMs)
import type { FastifyError, FastifyInstance } from "fastify";
import { ConflictError, FlashSaleError } from "flash-sale-kit";

/** The body of every error response. */
export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string } & Readonly<Record<string, unknown>>;
}

/** An error a route answers with: status, a stable code, a sentence for people, optional extra fields. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

export const errorBody = (
  code: string,
  message: string,
  details: Record<string, unknown> = {},
): ErrorBody => ({
  error: { ...details, code, message },
});

/** Statuses and sentences of the refusals the library answers as data. */
const REFUSALS: Record<string, readonly [number, string]> = {
  NOT_STARTED: [409, "The sale has not started yet."],
  ENDED: [409, "The sale has ended."],
  NOT_ELIGIBLE: [403, "This sale is for members only."],
  CAPTCHA_REQUIRED: [403, "Answer the CAPTCHA first."],
  CAPTCHA_FAILED: [403, "Wrong CAPTCHA answer."],
  PASS_REQUIRED: [403, "Wait for your turn in the waiting room first."],
  PASS_REFUSED: [403, "Your waiting-room pass is not valid: join the room again."],
  SOLD_OUT: [409, "Sold out."],
  LIMIT_REACHED: [409, "You already bought this item."],
  PAID: [409, "The order is paid already."],
  CANCELLED: [409, "The order was cancelled: its payment window closed."],
  STOCK_RELEASED: [409, "The order's unit went back on sale."],
};

/** A refusal the library returned as data (`{ ok: false, reason }`) as an HttpError. */
export function refusal(reason: string, details: Record<string, unknown> = {}): HttpError {
  const [status, message] = REFUSALS[reason] ?? [409, `Refused: ${reason}.`];
  return new HttpError(status, reason, message, details);
}

/** Routes throw HttpError (or the library throws); every error leaves as an ErrorBody. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HttpError | FlashSaleError | Error, _req, reply) => {
    if (err instanceof HttpError) {
      return reply.code(err.status).send(errorBody(err.code, err.message, { ...err.details }));
    }
    if (err instanceof FlashSaleError) {
      if (err.code === "INVALID_ARGUMENT") return reply.code(400).send(errorBody(err.code, err.message));
      if (err instanceof ConflictError) return reply.code(409).send(errorBody(err.code, err.message));
      app.log.error(err);
      return reply.code(503).send(errorBody(err.code, "A backend is unavailable: try again."));
    }
    const fe = err as FastifyError;
    if (fe.validation) return reply.code(400).send(errorBody("INVALID_ARGUMENT", fe.message));
    const status = fe.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply.code(status).send(errorBody(fe.code ?? "BAD_REQUEST", fe.message));
    }
    app.log.error(err);
    return reply.code(500).send(errorBody("INTERNAL", "Something went wrong on our side."));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(errorBody("NOT_FOUND", `No route ${req.method} ${req.url.split("?")[0]}.`)),
  );
}

// ---- JSON Schema -----------------------------------------------------------------------------------------

/**
 * An id as the library accepts it (SKU, user, order): 1 to 200 characters, no braces (they would move a
 * Redis key to another Cluster slot), whitespace, control characters or lone surrogates.
 */
export const idSchema = {
  type: "string",
  minLength: 1,
  maxLength: 200,
  pattern: "^[^{}\\s\\u0000-\\u001f\\u007f\\ud800-\\udfff]+$",
} as const;

export const skuParams = {
  type: "object",
  required: ["sku"],
  properties: { sku: idSchema },
  additionalProperties: false,
} as const;

export const skuQuery = skuParams;

export const orderParams = {
  type: "object",
  required: ["id"],
  properties: { id: idSchema },
  additionalProperties: false,
} as const;

/** Fastify's Ajv, strict: no type coercion (`"5"` is not 5) and no silently dropped fields. */
export const AJV_OPTIONS = { customOptions: { coerceTypes: false, removeAdditional: false } } as const;
