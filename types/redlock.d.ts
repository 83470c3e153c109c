// Types for redlock 5.0.0-beta.2. The package ships dist/index.d.ts, but its `exports` map has no `types`
// condition, so NodeNext resolution finds only the JavaScript and reports TS7016. This declares the part of
// its API that flash-sale-kit uses, as the package implements it (dist/esm/index.js).
declare module "redlock" {
  import type { EventEmitter } from "node:events";
  import type { Cluster, Redis } from "ioredis";

  /**
   * What redlock calls on each node: EVALSHA with an EVAL fallback on NOSCRIPT (and `quit` from
   * `Redlock#quit`). An ioredis `Redis` or `Cluster` fits; so does a wrapper around one.
   */
  export interface RedlockClientShape {
    evalsha(sha: string, numberOfKeys: number, args: (string | number)[]): Promise<unknown>;
    eval(script: string, numberOfKeys: number, args: (string | number)[]): Promise<unknown>;
    quit(): Promise<unknown>;
  }

  /** The package's own `Client` type, widened to anything with the methods it calls. */
  export type RedlockClient = Redis | Cluster | RedlockClientShape;

  export interface Settings {
    readonly driftFactor: number;
    /** Attempts after the first; -1 retries forever. */
    readonly retryCount: number;
    readonly retryDelay: number;
    readonly retryJitter: number;
    readonly automaticExtensionThreshold: number;
  }

  export interface ExecutionStats {
    readonly membershipSize: number;
    readonly quorumSize: number;
    readonly votesFor: Set<RedlockClient>;
    readonly votesAgainst: Map<RedlockClient, Error>;
  }

  export interface ExecutionResult {
    attempts: ReadonlyArray<Promise<ExecutionStats>>;
  }

  /** A node voted against because the key is held by another value. */
  export class ResourceLockedError extends Error {
    constructor(message: string);
  }

  /** No quorum was reached within the retry window. `attempts` resolve once every node has voted. */
  export class ExecutionError extends Error {
    readonly attempts: ReadonlyArray<Promise<ExecutionStats>>;
    constructor(message: string, attempts: ReadonlyArray<Promise<ExecutionStats>>);
  }

  export class Lock {
    readonly redlock: Redlock;
    readonly resources: string[];
    readonly value: string;
    readonly attempts: ReadonlyArray<Promise<ExecutionStats>>;
    /** Local-clock epoch ms until which the lock is valid (0 once released or replaced by an extension). */
    expiration: number;
    constructor(
      redlock: Redlock,
      resources: string[],
      value: string,
      attempts: ReadonlyArray<Promise<ExecutionStats>>,
      expiration: number,
    );
    release(): Promise<ExecutionResult>;
    extend(duration: number): Promise<Lock>;
  }

  export type RedlockAbortSignal = AbortSignal & { error?: Error };

  export default class Redlock extends EventEmitter {
    readonly clients: Set<RedlockClient>;
    readonly settings: Settings;
    constructor(
      clients: Iterable<RedlockClient>,
      settings?: Partial<Settings>,
      scripts?: {
        readonly acquireScript?: string | ((script: string) => string);
        readonly extendScript?: string | ((script: string) => string);
        readonly releaseScript?: string | ((script: string) => string);
      },
    );
    quit(): Promise<void>;
    acquire(resources: string[], duration: number, settings?: Partial<Settings>): Promise<Lock>;
    release(lock: Lock, settings?: Partial<Settings>): Promise<ExecutionResult>;
    extend(existing: Lock, duration: number, settings?: Partial<Settings>): Promise<Lock>;
    using<T>(
      resources: string[],
      duration: number,
      settings: Partial<Settings>,
      routine?: (signal: RedlockAbortSignal) => Promise<T>,
    ): Promise<T>;
    using<T>(
      resources: string[],
      duration: number,
      routine: (signal: RedlockAbortSignal) => Promise<T>,
    ): Promise<T>;
  }
}
