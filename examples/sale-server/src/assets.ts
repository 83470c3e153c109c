// The static activity page: HTML pre-rendered once per sale, JS and CSS under content-hashed names, and the
// headers a CDN needs (immutable assets, a short max-age plus an ETag on the HTML).
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const PUBLIC = fileURLToPath(new URL("../public/", import.meta.url));

export interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

export interface SalePage {
  readonly sku: string;
  readonly name: string;
  readonly priceCents: number;
  readonly stock: number;
  readonly startsAt: number;
  readonly endsAt?: number;
}

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
};

const hash = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const ext = (f: string) => f.slice(f.lastIndexOf("."));
const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** Hashed assets (`/assets/app.<hash>.js`) and the pages rendered for one sale. */
export class StaticSite {
  /** `/assets/<hashed name>` → asset. */
  readonly assets = new Map<string, Asset>();
  /** `app.js` → `/assets/app.3f2a….js`. */
  private readonly urls = new Map<string, string>();
  /** `/` and `/dashboard` → rendered HTML. */
  readonly pages = new Map<string, Asset>();

  constructor() {
    for (const file of ["app.js", "dashboard.js", "style.css"]) {
      const body = readFileSync(PUBLIC + file);
      const h = hash(body).slice(0, 12);
      const name = `${file.slice(0, file.lastIndexOf("."))}.${h}${ext(file)}`;
      const url = `/assets/${name}`;
      this.assets.set(url, { body, type: TYPES[ext(file)]!, etag: `"${h}"` });
      this.urls.set(file, url);
    }
  }

  /** Pre-renders the activity page and the dashboard for a sale (called when the sale is created). */
  render(sale: SalePage): void {
    const vars: Record<string, string> = {
      name: escapeHtml(sale.name),
      price: `$${(sale.priceCents / 100).toFixed(2)}`,
      stock: String(sale.stock),
      startsIso: new Date(sale.startsAt).toISOString(),
      // JSON inside <script>: escape '<' so no value can close the tag.
      saleJson: JSON.stringify({
        sku: sale.sku,
        startsAt: sale.startsAt,
        endsAt: sale.endsAt ?? null,
      }).replace(/</g, "\\u003c"),
    };
    for (const [route, file] of [
      ["/", "index.html"],
      ["/dashboard", "dashboard.html"],
    ] as const) {
      const html = readFileSync(PUBLIC + file, "utf8").replace(
        /\{\{(asset:)?([\w.]+)\}\}/g,
        (_, asset, key: string) => {
          const v = asset ? this.urls.get(key) : vars[key];
          if (v === undefined) throw new Error(`template ${file}: no value for ${key}`);
          return v;
        },
      );
      const body = Buffer.from(html);
      this.pages.set(route, { body, type: TYPES[".html"]!, etag: `"${hash(body).slice(0, 16)}"` });
    }
  }
}

/**
 * Writes the rendered pages and the hashed assets to `dir` for a CDN origin (`index.html`,
 * `dashboard/index.html`, `assets/<name>.<hash>.<ext>`), plus `_headers` with the cache headers each path
 * wants (the format Netlify and Cloudflare Pages read; other CDNs: set the same by path). Returns the paths.
 */
export function exportSite(site: StaticSite, dir: string): string[] {
  const written: string[] = [];
  const write = (path: string, body: Buffer | string) => {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), body);
    written.push(path);
  };
  const home = site.pages.get("/");
  const dash = site.pages.get("/dashboard");
  if (!home || !dash) throw new Error("no sale to export: create one first");
  write("index.html", home.body);
  write("dashboard/index.html", dash.body);
  for (const [url, asset] of site.assets) write(url.slice(1), asset.body);
  write(
    "_headers",
    [
      `/`,
      `  Cache-Control: ${CACHE_HTML}`,
      `/dashboard/*`,
      `  Cache-Control: no-cache`,
      `/assets/*`,
      `  Cache-Control: ${CACHE_IMMUTABLE}`,
      "",
    ].join("\n"),
  );
  return written;
}

/** Cache headers: assets never change under their name; the HTML may change when a sale is re-created. */
export const CACHE_IMMUTABLE = "public, max-age=31536000, immutable";
export const CACHE_HTML = "public, max-age=5, must-revalidate";
