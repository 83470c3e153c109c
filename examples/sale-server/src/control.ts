// The control channel of a server started as a child process (`--control`, and every process of
// `--processes N`): the load test and the benchmark drive the server over HTTP from their own process, and
// use this IPC channel only for what HTTP must not expose: pausing the process's own Redis timers while a
// phase is counted, starting the order worker late, and asking whether a new sale has reached the process.
import type { Worker } from "node:cluster";
import type { SaleApp } from "./app.js";

/** What a server process reports once it listens. */
export interface ControlReady {
  readonly url: string;
  readonly adminKey: string;
  readonly pid: number;
}

/** A command: `pause` / `resume` the background timers, `start-worker`, `knows-sale` (with `sku`). */
export interface ControlCommand {
  readonly id: number;
  readonly op: "pause" | "resume" | "start-worker" | "knows-sale";
  readonly sku?: string;
}

/** The answer to a command; from the primary of `--processes N`, `result` holds every process's answer. */
export interface ControlReply {
  readonly id: number;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: string;
}

const isCommand = (m: unknown): m is ControlCommand =>
  typeof m === "object" && m !== null && typeof (m as ControlCommand).id === "number" && "op" in m;

/** In a server process: report `ready`, then answer commands from the parent. */
export function controlChild(sale: SaleApp, ready: ControlReady): void {
  process.on("message", (m: unknown) => {
    if (!isCommand(m)) return;
    const run = async (): Promise<unknown> => {
      switch (m.op) {
        case "pause":
          return sale.background.pause();
        case "resume":
          return sale.background.resume();
        case "start-worker":
          return sale.pipeline.start();
        case "knows-sale":
          return sale.knowsSale(String(m.sku));
      }
    };
    run().then(
      (result) => process.send?.({ id: m.id, ok: true, result: result ?? null } satisfies ControlReply),
      (err: unknown) => process.send?.({ id: m.id, ok: false, error: String(err) } satisfies ControlReply),
    );
  });
  process.send?.({ type: "ready", ...ready });
}

/** In the primary of `--processes N`: send each command to every server process, answer with all results. */
export function controlPrimary(workers: () => Worker[]): void {
  process.on("message", (m: unknown) => {
    if (!isCommand(m)) return;
    const all = workers();
    void Promise.all(
      all.map(
        (w) =>
          new Promise<ControlReply>((resolve) => {
            const on = (r: ControlReply) => {
              if (r?.id !== m.id) return;
              w.off("message", on);
              resolve(r);
            };
            w.on("message", on);
            w.send(m);
          }),
      ),
    ).then((replies) => {
      const failed = replies.find((r) => !r.ok);
      process.send?.(
        failed
          ? { id: m.id, ok: false, error: failed.error }
          : { id: m.id, ok: true, result: replies.map((r) => r.result) },
      );
    });
  });
}
