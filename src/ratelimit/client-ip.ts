// The client's address behind reverse proxies, trusting only the hops the operator names, and the key an
// address is limited under (IPv6 by its /64, since one host usually holds the whole /64).
import { BlockList, isIP } from "node:net";
import { InvalidArgumentError } from "../errors.js";
import { validateOptions } from "../internal/validate.js";

/**
 * What `clientIp` reads from a request: Node's `IncomingMessage`, an Express `Request` and a Fastify
 * `FastifyRequest` all fit.
 */
export interface ClientIpRequest {
  readonly headers: { readonly [name: string]: string | readonly string[] | undefined };
  readonly socket?: { readonly remoteAddress?: string | undefined } | null | undefined;
}

/** Options of `clientIp`. */
export interface ClientIpOptions {
  /**
   * Which hops in front of this server are yours, so that what they append to `X-Forwarded-For` counts:
   *
   * - a number: that many proxies always stand in front (`1`: one load balancer); the client is the
   *   address that many hops left of the socket's peer;
   * - a list of addresses and CIDR ranges (`"10.0.0.0/8"`, `"2001:db8::/32"`), or the names `"loopback"`,
   *   `"linklocal"`, `"uniquelocal"` (private ranges); the client is the rightmost address not in it;
   * - a `net.BlockList` of the same.
   *
   * Define the list once (outside the request handler): it is compiled on first use and cached.
   * Omitted or `0`: no proxy is trusted and the socket's peer is the client; `X-Forwarded-For` is ignored.
   * @default 0
   */
  readonly trustedProxies?: number | readonly string[] | BlockList;
  /**
   * The header your proxies append the client address to (any case). `"forwarded"` reads the standard
   * `Forwarded` header (RFC 7239) instead: the `for=` parameter of each element, quoted IPv6 with or without
   * a port included; an element with no usable `for=` (`unknown`, an obfuscated `_id`, an unbalanced quote,
   * a comma inside a quoted value) stops the walk there, at the address of the hop that wrote it.
   * @default "x-forwarded-for"
   */
  readonly header?: string;
}

const PRESETS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  loopback: ["127.0.0.0/8", "::1/128"],
  linklocal: ["169.254.0.0/16", "fe80::/10"],
  uniquelocal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
});

const compiled = new WeakMap<readonly string[], BlockList>();

/** Compiles a trusted-proxy list into a BlockList (cached per array). */
function trustList(list: readonly string[]): BlockList {
  let bl = compiled.get(list);
  if (bl) return bl;
  bl = new BlockList();
  for (const raw of list) {
    if (typeof raw !== "string") throw new InvalidArgumentError("trustedProxies", "must hold strings");
    for (const entry of PRESETS[raw] ?? [raw]) {
      const [addr = "", bits, extra] = entry.split("/");
      const family = isIP(addr);
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits);
      if (family === 0 || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
        throw new InvalidArgumentError(
          "trustedProxies",
          `has an entry that is no address or CIDR range: ${raw}`,
        );
      }
      bl.addSubnet(addr, prefix, family === 4 ? "ipv4" : "ipv6");
    }
  }
  compiled.set(list, bl);
  answers.set(bl, new Map());
  return bl;
}

/**
 * An address as written in a header or by the socket, reduced to a plain IP: brackets and ports dropped,
 * IPv4-mapped IPv6 (`::ffff:1.2.3.4`) turned into IPv4. `undefined` when it is no IP.
 */
function normalize(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  let a = raw.trim();
  if (a.startsWith("[")) {
    const end = a.indexOf("]");
    if (end === -1) return undefined;
    a = a.slice(1, end);
  } else if (a.indexOf(":") !== -1 && a.indexOf(":") === a.lastIndexOf(":") && a.includes(".")) {
    a = a.slice(0, a.indexOf(":")); // 203.0.113.9:51234
  }
  const family = isIP(a);
  if (family === 0) return undefined;
  if (family === 6) return unmapped(a) ?? a.toLowerCase();
  return a;
}

/**
 * The `for=` value of each element of a `Forwarded` header (RFC 7239), in order, unquoted; `""` for an
 * element without a usable one, which `normalize` then turns into a stop. Elements are split at every comma,
 * quotes or not: a `for=` a proxy writes never holds one, and a quote the client left open cannot swallow
 * the elements the proxies appended after it (an element with an unbalanced quote is garbage, and the walk
 * from the right stops there). One pass, linear in the header's length.
 */
function forwardedFor(header: string): string[] {
  return header.split(",").map(forValue);
}

function forValue(element: string): string {
  if (!balancedQuotes(element)) return "";
  for (const pair of element.split(";")) {
    const eq = pair.indexOf("=");
    if (eq === -1 || pair.slice(0, eq).trim().toLowerCase() !== "for") continue;
    const value = pair.slice(eq + 1).trim();
    if (!value.startsWith('"')) return value;
    if (value.length < 2 || !value.endsWith('"')) return "";
    return value.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  return "";
}

/** Whether the unescaped double quotes of `s` pair up. */
function balancedQuotes(s: string): boolean {
  let open = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c && open)
      i++; // backslash escape inside a quoted string
    else if (c === 0x22) open = !open;
  }
  return !open;
}

/**
 * The IPv4 address an IPv4-mapped IPv6 address stands for, in any spelling (`::ffff:1.2.3.4`,
 * `0:0:0:0:0:ffff:1.2.3.4`, `::ffff:102:304`), else `undefined`.
 */
function unmapped(v6: string): string | undefined {
  let text = v6.toLowerCase();
  let tail: number[] = [];
  const dotted = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (dotted) {
    if (isIP(dotted[2]!) !== 4) return undefined;
    tail = dotted[2]!.split(".").map(Number);
    text = `${dotted[1]}0:0`; // stands in for the two groups the dotted quad fills
  }
  const [head = "", rest] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups =
    rest === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  if (groups.length !== 8) return undefined;
  const n = groups.map((g) => parseInt(g, 16));
  if (n.slice(0, 5).some((g) => g !== 0) || n[5] !== 0xffff) return undefined;
  const bytes = tail.length === 4 ? tail : [n[6]! >> 8, n[6]! & 255, n[7]! >> 8, n[7]! & 255];
  return bytes.join(".");
}

function isTrusted(bl: BlockList, addr: string): boolean {
  const memo = answers.get(bl);
  const known = memo?.get(addr);
  if (known !== undefined) return known;
  const trusted = bl.check(addr, isIP(addr) === 4 ? "ipv4" : "ipv6");
  if (memo && addr.length <= 64) {
    // (an IPv6 address with a zone id can be as long as the header that carried it: those are not kept)
    if (memo.size >= MEMO_SIZE) memo.clear();
    memo.set(addr, trusted);
  }
  return trusted;
}

/**
 * Answers of the BlockLists compiled here (from a list, never changed afterwards) for the addresses asked
 * lately: the same few proxy addresses are asked on every request, and `BlockList.check` builds a
 * `SocketAddress` each time. A BlockList the caller passes is asked every time (it may change).
 */
const answers = new WeakMap<BlockList, Map<string, boolean>>();
const MEMO_SIZE = 1024;

/**
 * The client's IP address: the socket's peer, or, behind proxies you trust, the address the outermost
 * trusted proxy saw. The header is read from the right, one trusted hop at a time, so a client cannot pick
 * its own address by sending `X-Forwarded-For` (the leftmost entries are whatever the client wrote).
 * IPv4-mapped IPv6 comes back as IPv4. `undefined` only when the socket has no address (it was closed).
 *
 * @example
 * ```ts
 * const TRUST = { trustedProxies: ["10.0.0.0/8"] }; // the load balancers' subnet, defined once
 * app.post("/buy", (req, res) => {
 *   const ip = clientIp(req, TRUST); // "203.0.113.9", whatever the client put in X-Forwarded-For
 * });
 * ```
 */
export function clientIp(req: ClientIpRequest, options: ClientIpOptions = {}): string | undefined {
  validateOptions("options", options, { known: ["trustedProxies", "header"] });
  const peer = normalize(req.socket?.remoteAddress);
  if (peer === undefined) return undefined;
  const trust = options.trustedProxies ?? 0;
  if (trust === 0) return peer;
  let bl: BlockList | undefined;
  let hops = 0;
  if (typeof trust === "number") {
    if (!Number.isSafeInteger(trust) || trust < 0) {
      throw new InvalidArgumentError(
        "trustedProxies",
        "must be a hop count of 0 or more, a list or a BlockList",
      );
    }
    hops = trust;
  } else if (Array.isArray(trust)) bl = trustList(trust);
  else if (trust instanceof BlockList) bl = trust;
  else
    throw new InvalidArgumentError(
      "trustedProxies",
      "must be a hop count, a list of CIDR ranges or a BlockList",
    );

  if (options.header !== undefined && (typeof options.header !== "string" || options.header === "")) {
    throw new InvalidArgumentError("header", "must be a header name");
  }
  const name = (options.header ?? "x-forwarded-for").toLowerCase(); // Node lower-cases header names
  const value = req.headers[name];
  const header = Array.isArray(value) ? value.join(",") : typeof value === "string" ? value : "";
  const chain = header === "" ? [] : name === "forwarded" ? forwardedFor(header) : header.split(",");

  // Walk from the socket's peer leftwards while the current hop is trusted.
  let client = peer;
  for (let i = chain.length - 1, walked = 0; i >= 0; i--, walked++) {
    if (bl ? !isTrusted(bl, client) : walked >= hops) break;
    const next = normalize(chain[i]);
    if (next === undefined) break; // garbage left of a trusted hop: keep what that hop vouched for
    client = next;
  }
  return client;
}

/** Options of `ipKey`. */
export interface IpKeyOptions {
  /**
   * How many leading bits of an IPv6 address name its owner. Providers hand a customer a /64 (or a /56, a
   * /48), so limiting single IPv6 addresses lets one host rotate through billions of them.
   * @default 64
   */
  readonly ipv6PrefixLength?: number;
}

/** Parses an IPv6 address (validated by `isIP`) into eight 16-bit groups. */
function groups6(addr: string): number[] {
  let a = addr.split("%")[0]!; // zone id
  const tail: number[] = [];
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number];
    tail.push((b0 << 8) | b1, (b2 << 8) | b3);
    a = a.slice(0, v4.index) + "0"; // placeholder group, replaced below
  }
  const [head = "", rest] = a.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const fill = rest === undefined ? 0 : 8 - left.length - right.length - (tail.length ? 1 : 0);
  const parts = [...left, ...Array<string>(fill).fill("0"), ...right].map((h) => parseInt(h, 16));
  if (tail.length) parts.splice(parts.length - 1, 1, ...tail);
  return parts.slice(0, 8);
}

/** Formats eight groups the RFC 5952 way (lower case, the longest run of zero groups as `::`). */
function format6(g: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best === -1) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/**
 * The rate-limit key of an address: IPv4 as it is, IPv6 as its network (`2001:db8:1:2::/64` by default),
 * and `"unknown"` when there is no address, so such requests share one bucket instead of skipping it.
 *
 * @example
 * ```ts
 * ipKey("203.0.113.9");                 // "203.0.113.9"
 * ipKey("2001:db8:1:2:aaaa:bbbb:1:2");  // "2001:db8:1:2::/64"
 * ipKey(clientIp(req, TRUST));          // the key for an IP limit
 * ```
 */
export function ipKey(address: string | undefined, options: IpKeyOptions = {}): string {
  validateOptions("options", options, { known: ["ipv6PrefixLength"] });
  const bits = options.ipv6PrefixLength ?? 64;
  if (!Number.isInteger(bits) || bits < 1 || bits > 128) {
    throw new InvalidArgumentError("ipv6PrefixLength", "must be an integer from 1 to 128");
  }
  const addr = normalize(address);
  if (addr === undefined) return "unknown";
  if (isIP(addr) === 4) return addr;
  const g = groups6(addr).map((x, i) => {
    const keep = Math.max(0, Math.min(16, bits - 16 * i));
    return keep === 16 ? x : keep === 0 ? 0 : x & (0xffff << (16 - keep)) & 0xffff;
  });
  return `${format6(g)}/${bits}`;
}
