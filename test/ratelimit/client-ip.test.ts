// clientIp and ipKey: trusted hops, spoofed X-Forwarded-For, IPv6 networks; and 1,000 requests through a
// real reverse proxy, from one socket with a new X-Forwarded-For each time, landing in one bucket.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { BlockList } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { InvalidArgumentError } from "../../src/errors.js";
import { RateLimits, TokenBucket, clientIp, expressRateLimit, ipKey } from "../../src/ratelimit/index.js";
import { randomPrefix, startRedis, type PrivateRedis } from "../support/redis.js";

const req = (remoteAddress: string | undefined, xff?: string | string[]) => ({
  socket: { remoteAddress },
  headers: xff === undefined ? {} : { "x-forwarded-for": xff },
});

describe("clientIp", () => {
  it("trusts nobody by default: the socket's peer, whatever the header says", () => {
    expect(clientIp(req("203.0.113.9", "1.1.1.1"))).toBe("203.0.113.9");
    expect(clientIp(req("::ffff:203.0.113.9"))).toBe("203.0.113.9");
    expect(clientIp(req("2001:DB8::1"))).toBe("2001:db8::1");
    // Every spelling of an IPv4-mapped address is that IPv4 address (else ipKey would put it in one /64).
    for (const a of [
      "0:0:0:0:0:ffff:203.0.113.9",
      "::ffff:cb00:7109",
      "::FFFF:CB00:7109",
      "[::ffff:cb00:7109]",
    ])
      expect(clientIp(req(a)), a).toBe("203.0.113.9");
    expect(clientIp(req("::ffff:0:1.2.3.4"))).toBe("::ffff:0:1.2.3.4"); // IPv4-translated: not mapped
    expect(clientIp(req(undefined))).toBeUndefined();
    expect(clientIp({ headers: {} })).toBeUndefined();
  });

  it("a hop count takes the address that many hops left of the peer, never the leftmost blindly", () => {
    const TRUST = { trustedProxies: 1 };
    // The client wrote "6.6.6.6"; the load balancer (10.0.0.2) appended what it saw.
    expect(clientIp(req("10.0.0.2", "6.6.6.6, 198.51.100.7"), TRUST)).toBe("198.51.100.7");
    expect(clientIp(req("10.0.0.2", "198.51.100.7"), TRUST)).toBe("198.51.100.7");
    expect(clientIp(req("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.1"), { trustedProxies: 2 })).toBe(
      "198.51.100.7",
    );
    // Fewer entries than hops: the leftmost is the best there is.
    expect(clientIp(req("10.0.0.2", "198.51.100.7"), { trustedProxies: 3 })).toBe("198.51.100.7");
    // No header at all behind a proxy: the proxy itself.
    expect(clientIp(req("10.0.0.2"), TRUST)).toBe("10.0.0.2");
    // Several header lines count as one list.
    expect(clientIp(req("10.0.0.2", ["6.6.6.6", "198.51.100.7"]), TRUST)).toBe("198.51.100.7");
  });

  it("a trust list walks left while the hop is trusted", () => {
    const TRUST = { trustedProxies: ["10.0.0.0/8", "2001:db8:ffff::/48"] };
    expect(clientIp(req("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.2.3"), TRUST)).toBe("198.51.100.7");
    expect(clientIp(req("2001:db8:ffff::1", "6.6.6.6, 2001:db8:1::5"), TRUST)).toBe("2001:db8:1::5");
    // An untrusted peer is the client, even if it sends a header.
    expect(clientIp(req("198.51.100.7", "10.0.0.5"), TRUST)).toBe("198.51.100.7");
    // Everything trusted: the leftmost.
    expect(clientIp(req("10.0.0.2", "10.0.0.3, 10.0.0.4"), TRUST)).toBe("10.0.0.3");
    // Presets and BlockLists.
    expect(clientIp(req("127.0.0.1", "198.51.100.7"), { trustedProxies: ["loopback"] })).toBe("198.51.100.7");
    expect(clientIp(req("::1", "198.51.100.7"), { trustedProxies: ["loopback"] })).toBe("198.51.100.7");
    expect(clientIp(req("192.168.1.9", "198.51.100.7"), { trustedProxies: ["uniquelocal"] })).toBe(
      "198.51.100.7",
    );
    const bl = new BlockList();
    bl.addAddress("10.9.9.9");
    expect(clientIp(req("10.9.9.9", "198.51.100.7"), { trustedProxies: bl })).toBe("198.51.100.7");
  });

  it("asks a BlockList you pass every time (you may change it), and answers a list the same on every call", () => {
    const bl = new BlockList();
    const trust = { trustedProxies: bl };
    expect(clientIp(req("10.7.7.7", "198.51.100.7"), trust)).toBe("10.7.7.7");
    bl.addAddress("10.7.7.7");
    expect(clientIp(req("10.7.7.7", "198.51.100.7"), trust)).toBe("198.51.100.7");
    const list = { trustedProxies: ["10.0.0.0/8"] };
    // More addresses than the remembered answers hold: every one is still answered from the list.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 1500; i++) {
        const peer = `10.0.${i >> 8}.${i & 255}`;
        expect(clientIp(req(peer, "198.51.100.7"), list)).toBe("198.51.100.7");
        expect(clientIp(req(`11.0.${i >> 8}.${i & 255}`, "198.51.100.7"), list)).toBe(
          `11.0.${i >> 8}.${i & 255}`,
        );
      }
    }
  });

  it("ports, brackets and garbage in the header", () => {
    const TRUST = { trustedProxies: 1 };
    expect(clientIp(req("10.0.0.2", "198.51.100.7:51234"), TRUST)).toBe("198.51.100.7");
    expect(clientIp(req("10.0.0.2", "[2001:db8::7]:443"), TRUST)).toBe("2001:db8::7");
    expect(clientIp(req("10.0.0.2", " 198.51.100.7 "), TRUST)).toBe("198.51.100.7");
    // Garbage where a trusted hop should have written an address: keep what that hop vouches for.
    expect(clientIp(req("10.0.0.2", "not-an-ip"), TRUST)).toBe("10.0.0.2");
    expect(clientIp(req("10.0.0.2", "1.2.3.4, <script>"), { trustedProxies: 2 })).toBe("10.0.0.2");
    expect(clientIp(req("10.0.0.2", "x-real"), { trustedProxies: 1, header: "x-real-ip" })).toBe("10.0.0.2");
    expect(
      clientIp(
        { socket: { remoteAddress: "10.0.0.2" }, headers: { "x-real-ip": "198.51.100.7" } },
        {
          trustedProxies: 1,
          header: "x-real-ip",
        },
      ),
    ).toBe("198.51.100.7");
  });

  it("reads the standard Forwarded header (RFC 7239) when told to", () => {
    const fwd = (peer: string, value: string | string[]) => ({
      socket: { remoteAddress: peer },
      headers: { forwarded: value },
    });
    const ONE = { trustedProxies: 1, header: "forwarded" };
    expect(clientIp(fwd("10.0.0.2", "for=198.51.100.7;proto=https;by=10.0.0.2"), ONE)).toBe("198.51.100.7");
    // The client's own element on the left is not taken; the trusted hop's on the right is.
    expect(clientIp(fwd("10.0.0.2", "for=6.6.6.6, for=198.51.100.7"), ONE)).toBe("198.51.100.7");
    // Quoted IPv6 with a port, parameters in any order and case, a comma inside a quoted value.
    expect(clientIp(fwd("10.0.0.2", 'proto=http;For="[2001:db8:cafe::17]:4711"'), ONE)).toBe(
      "2001:db8:cafe::17",
    );
    expect(clientIp(fwd("10.0.0.2", 'for=6.6.6.6;x="a;b", for="198.51.100.7:80"'), ONE)).toBe("198.51.100.7");
    // Several header lines count as one list; a trust list walks left over the trusted hops.
    expect(
      clientIp(fwd("10.0.0.2", ["for=6.6.6.6", "for=198.51.100.7, for=10.1.2.3"]), {
        trustedProxies: ["10.0.0.0/8"],
        header: "forwarded",
      }),
    ).toBe("198.51.100.7");
    // "unknown", an obfuscated id or an element without for=: the walk stops at the hop that wrote it.
    expect(clientIp(fwd("10.0.0.2", "for=unknown"), ONE)).toBe("10.0.0.2");
    expect(clientIp(fwd("10.0.0.2", 'for="_hidden"'), ONE)).toBe("10.0.0.2");
    expect(clientIp(fwd("10.0.0.2", "proto=https"), ONE)).toBe("10.0.0.2");
    expect(clientIp(fwd("10.0.0.2", 'for="198.51.100.7'), ONE)).toBe("10.0.0.2");
    // A quote the client leaves open cannot swallow what the proxy appended after it (the spoof of a
    // quote-aware split), nor can a quoted comma: the split is at every comma.
    for (let i = 1; i <= 20; i++) {
      expect(clientIp(fwd("10.0.0.2", `for=7.7.7.${i};x=", for=198.51.100.7`), ONE)).toBe("198.51.100.7");
      expect(
        clientIp(fwd("10.0.0.2", `for=7.7.7.${i};x=", for=198.51.100.7`), {
          trustedProxies: ["10.0.0.0/8"],
          header: "forwarded",
        }),
      ).toBe("198.51.100.7");
    }
    expect(clientIp(fwd("10.0.0.2", 'for=198.51.100.7;x="a,b"'), ONE)).toBe("10.0.0.2");
    // Linear time: a 16 KB header of quotes and backslashes is parsed in one pass.
    const hostile = '"a\\'.repeat(4000) + ", for=198.51.100.7";
    expect(clientIp(fwd("10.0.0.2", hostile), ONE)).toBe("198.51.100.7");
    // X-Forwarded-For is ignored when Forwarded is the header, and the other way round.
    expect(
      clientIp(
        { socket: { remoteAddress: "10.0.0.2" }, headers: { "x-forwarded-for": "198.51.100.7" } },
        ONE,
      ),
    ).toBe("10.0.0.2");
    expect(clientIp(fwd("10.0.0.2", "for=198.51.100.7"), { trustedProxies: 1 })).toBe("10.0.0.2");
  });

  it("takes the header name in any case (Node lower-cases incoming names)", () => {
    const r = { socket: { remoteAddress: "10.0.0.2" }, headers: { "x-forwarded-for": "198.51.100.7" } };
    expect(clientIp(r, { trustedProxies: 1, header: "X-Forwarded-For" })).toBe("198.51.100.7");
    const f = { socket: { remoteAddress: "10.0.0.2" }, headers: { forwarded: "for=198.51.100.7" } };
    expect(clientIp(f, { trustedProxies: 1, header: "Forwarded" })).toBe("198.51.100.7");
    expect(() => clientIp(r, { trustedProxies: 1, header: "" })).toThrow(InvalidArgumentError);
    expect(() => clientIp(r, { trustedProxies: 1, header: 5 as never })).toThrow(InvalidArgumentError);
  });

  it("refuses bad options", () => {
    expect(() => clientIp(req("10.0.0.2", "1.1.1.1"), { trustedProxy: 1 } as never)).toThrow(
      /options.trustedProxy is not a known option/,
    );
    expect(() => ipKey("::1", { ipv6Prefix: 48 } as never)).toThrow(InvalidArgumentError);
    expect(() => clientIp(req("10.0.0.2", "1.1.1.1"), { trustedProxies: -1 })).toThrow(InvalidArgumentError);
    expect(() => clientIp(req("10.0.0.2", "1.1.1.1"), { trustedProxies: ["10.0.0.0/33"] })).toThrow(
      /trustedProxies/,
    );
    expect(() => clientIp(req("10.0.0.2", "1.1.1.1"), { trustedProxies: ["nonsense"] })).toThrow(
      /trustedProxies/,
    );
  });
});

describe("ipKey", () => {
  it("keeps IPv4, reduces IPv6 to its /64", () => {
    expect(ipKey("203.0.113.9")).toBe("203.0.113.9");
    expect(ipKey("2001:db8:1:2:aaaa:bbbb:1:2")).toBe("2001:db8:1:2::/64");
    expect(ipKey("2001:db8:1:2::1")).toBe(ipKey("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    expect(ipKey("2001:db8:1:3::1")).not.toBe(ipKey("2001:db8:1:2::1"));
    expect(ipKey("2001:0DB8:0000:0000:0001::1")).toBe("2001:db8::/64");
    expect(ipKey("::1")).toBe("::/64");
    expect(ipKey("fe80::1%eth0")).toBe("fe80::/64");
    expect(ipKey("64:ff9b::192.0.2.33", { ipv6PrefixLength: 128 })).toBe("64:ff9b::c000:221/128");
    expect(ipKey("2001:db8:abcd:12ff::1", { ipv6PrefixLength: 56 })).toBe("2001:db8:abcd:1200::/56");
    expect(ipKey("::ffff:198.51.100.7")).toBe("198.51.100.7");
    expect(ipKey(undefined)).toBe("unknown");
    expect(ipKey("nonsense")).toBe("unknown");
    expect(() => ipKey("::1", { ipv6PrefixLength: 0 })).toThrow(InvalidArgumentError);
  });
});

describe("behind one trusted proxy", () => {
  let srv: PrivateRedis;
  let redis: Redis;
  let app: http.Server;
  let proxy: http.Server;
  beforeAll(async () => {
    srv = await startRedis();
    redis = srv.client();
  });
  afterAll(async () => {
    app?.close();
    proxy?.close();
    await srv?.stop();
  });

  it("1,000 requests from one socket with rotating X-Forwarded-For share one bucket", async () => {
    const prefix = randomPrefix();
    const TRUST = { trustedProxies: 1 };
    const ipBucket = new TokenBucket(redis, { capacity: 100, refillPerSecond: 0.0001, prefix });
    const limits = new RateLimits<http.IncomingMessage>([
      { name: "ip", bucket: ipBucket, key: (r) => ipKey(clientIp(r, TRUST)) },
    ]);
    const limit = expressRateLimit({ limits });
    const seen = new Set<string>();
    app = http.createServer((rq, rs) =>
      limit(rq, rs, () => {
        seen.add(String(clientIp(rq, TRUST)));
        rs.end("ok");
      }),
    );
    app.listen(0, "127.0.0.1");
    await once(app, "listening");
    const appPort = (app.address() as AddressInfo).port;

    // The proxy appends the peer it sees, as nginx's $proxy_add_x_forwarded_for does.
    const upstream = new http.Agent({ keepAlive: true, maxSockets: 4 });
    proxy = http.createServer((rq, rs) => {
      const xff = rq.headers["x-forwarded-for"];
      const headers = {
        ...rq.headers,
        "x-forwarded-for": `${xff ? `${String(xff)}, ` : ""}${rq.socket.remoteAddress}`,
      };
      const out = http.request(
        { port: appPort, host: "127.0.0.1", path: rq.url, method: rq.method, headers, agent: upstream },
        (r) => {
          rs.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(rs);
        },
      );
      out.end();
    });
    proxy.listen(0, "127.0.0.1");
    await once(proxy, "listening");
    const proxyPort = (proxy.address() as AddressInfo).port;

    // One client socket, 1,000 requests, each claiming to come from a new address.
    const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const statuses: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const spoof = `${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}.${(i * 7) & 255}`;
      const status = await new Promise<number>((resolve, reject) => {
        const r = http.request(
          {
            port: proxyPort,
            host: "127.0.0.1",
            path: "/buy",
            agent: client,
            headers: { "x-forwarded-for": spoof },
          },
          (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        r.on("error", reject);
        r.end();
      });
      statuses.push(status);
    }
    client.destroy();
    upstream.destroy();
    expect(sockets.size).toBe(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(100);
    expect(statuses.filter((s) => s === 429)).toHaveLength(900);
    expect([...seen]).toEqual(["127.0.0.1"]); // the address the trusted proxy saw
    expect(await redis.keys(`{${prefix}:*`)).toEqual([ipBucket.keys("127.0.0.1").bucket]);
  });
});
