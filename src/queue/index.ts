// flash-sale-kit/queue: a fair waiting room on Redis. A shuffled pre-queue, first come first served after the
// opening, admission at a set rate or under a cap of active passes, signed single-use passes.
export {
  WaitingRoom,
  type WaitingRoomOptions,
  type WaitingRoomKeys,
  type RoomSecret,
  type JoinResult,
  type StatusResult,
  type WaitingStanding,
  type BeforeOpeningStanding,
  type AdmittedStanding,
  type ClosedStanding,
  type NotQueuedStanding,
  type RefusedStanding,
  type TicketRejection,
  type PassRejection,
  type PassResult,
  type RoomStats,
} from "./waiting-room.js";
