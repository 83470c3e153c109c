// flash-sale-kit/gate: who may buy and when. The sale window on Redis time, eligibility, CAPTCHA, and
// single-use purchase tokens bound to user, SKU and sale.
export {
  SaleGate,
  type SaleGateOptions,
  type GateSubject,
  type Eligibility,
  type AdmitRequest,
  type AdmitResult,
  type AdmitRejection,
  type GateStatus,
  type PassRedeemer,
} from "./sale-gate.js";
export {
  PurchaseTokens,
  type PurchaseTokensOptions,
  type TokenSecret,
  type TokenSubject,
  type IssuedToken,
  type TokenRejection,
  type RedeemResult,
  type VerifyResult,
} from "./purchase-tokens.js";
export {
  RedisCaptcha,
  mathChallenge,
  type CaptchaVerifier,
  type CaptchaResponse,
  type CaptchaSubject,
  type Challenge,
  type IssuedChallenge,
  type RedisCaptchaOptions,
} from "./captcha.js";
