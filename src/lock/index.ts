// flash-sale-kit/lock: owner-checked locks. SpinLock (one Redis, fencing tokens, release wake-ups) and
// QuorumLock (Redlock over independent nodes), with the same acquire / tryAcquire / using and handle.
export {
  SpinLock,
  type SpinLockOptions,
  type SpinLockKeys,
  type LockReplicatedOptions,
} from "./spin-lock.js";
export { MAX_LOCK_MS } from "./timings.js";
export { LockTimeoutError, LockLostError, LockNotReplicatedError } from "./errors.js";
export type { LockHandle, AcquireOptions, UsingOptions, LockedRoutine, Locker } from "./types.js";
export { QuorumLock, type QuorumLockOptions, type QuorumLockKeys } from "./quorum-lock.js";
