// Draws a short text (digits and + - × = ?) as jittered, shuffled line segments in an SVG, with decoys and
// noise, so the document holds no text and no glyph structure for a script to read, while a person reads it
// at a glance (large, dark, unambiguous glyphs; light noise): the built-in CAPTCHA.
import { randomInt } from "node:crypto";

type Stroke = readonly (readonly [number, number])[];

// Glyphs on a 20 × 30 grid, as polylines, drawn to be told apart at a glance: an oval 0 without a slash (no
// confusion with 8 or Ø), a 1 with a flag and a foot and a 7 with a plain stem (no confusion between them), an
// open 4, a 6 and a 9 whose loops close, and operators well apart from digits (× is much smaller than +).
// prettier-ignore
const GLYPHS: Readonly<Record<string, readonly Stroke[]>> = {
  "0": [[[10, 0], [16, 2], [20, 9], [20, 21], [16, 28], [10, 30], [4, 28], [0, 21], [0, 9], [4, 2], [10, 0]]],
  "1": [[[4, 7], [12, 0], [12, 30]], [[5, 30], [19, 30]]],
  "2": [[[1, 6], [5, 1], [10, 0], [16, 1], [19, 6], [19, 11], [15, 17], [0, 30], [20, 30]]],
  "3": [[[1, 4], [6, 0], [14, 0], [19, 4], [19, 10], [14, 14], [8, 14]], [[14, 14], [20, 18], [20, 25], [15, 30], [5, 30], [0, 26]]],
  "4": [[[13, 0], [0, 20], [20, 20]], [[15, 10], [15, 30]]],
  "5": [[[19, 0], [3, 0], [1, 13], [8, 11], [15, 12], [20, 17], [20, 24], [15, 30], [6, 30], [0, 26]]],
  "6": [[[17, 1], [10, 0], [4, 3], [1, 10], [0, 20], [2, 27], [8, 30], [14, 30], [19, 26], [20, 20], [17, 15], [10, 13], [4, 15], [0, 20]]],
  "7": [[[0, 0], [20, 0], [14, 10], [9, 30]]],
  "8": [[[10, 13], [3, 10], [2, 4], [6, 0], [14, 0], [18, 4], [17, 10], [10, 13], [2, 17], [0, 23], [4, 29], [10, 30], [16, 29], [20, 23], [18, 17], [10, 13]]],
  "9": [[[20, 10], [16, 15], [10, 17], [3, 15], [0, 9], [3, 2], [10, 0], [17, 2], [20, 10], [19, 20], [15, 27], [9, 30], [3, 29]]],
  "+": [[[10, 5], [10, 25]], [[0, 15], [20, 15]]],
  "-": [[[2, 15], [18, 15]]],
  "×": [[[4, 9], [16, 21]], [[16, 9], [4, 21]]],
  "=": [[[1, 10], [19, 10]], [[1, 20], [19, 20]]],
  "?": [[[1, 7], [5, 1], [10, 0], [16, 1], [19, 6], [18, 12], [10, 17], [10, 22]], [[10, 27], [10, 30]]],
};

const jitter = (n: number): number => randomInt(-n * 10, n * 10 + 1) / 10;
// Strokes dark (contrast of about 7:1 or more on the light background), noise light, so the eye separates
// them at once while a script sees only colours.
const ink = (): string => `hsl(${randomInt(360)},${randomInt(50, 80)}%,${randomInt(18, 30)}%)`;
const haze = (): string => `hsl(${randomInt(360)},${randomInt(30, 60)}%,${randomInt(68, 80)}%)`;

type Point = readonly [number, number];
type Segment = readonly [Point, Point];

/** Fisher–Yates with crypto randomness. */
function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * Renders `text` (characters from the glyph table) as an SVG document. The document gives a script nothing
 * to match glyphs by: every glyph is placed (jittered, scaled, rotated) into absolute coordinates, cut into
 * its line segments, and the segments of all glyphs, with decoy segments of the same look, are shuffled into
 * a few paths of random colours and widths. Reading it means rendering and recognising the picture.
 */
export function renderSvg(text: string): string {
  const chars = [...text];
  const cell = 36;
  const width = 24 + chars.length * cell;
  const height = 76;
  const top = 15; // glyphs sit in the band [top, top + 42]; decoys stay above and below it
  const parts: string[] = [];
  // Background noise first, thin and light, so strokes cross it without being mistaken for it.
  for (let i = 0; i < 5; i++) {
    const p = () => `${randomInt(width)} ${randomInt(height)}`;
    parts.push(`<path d="M${p()} C${p()} ${p()} ${p()}" stroke="${haze()}" stroke-width="1.2" fill="none"/>`);
  }
  const segments: Segment[] = [];
  chars.forEach((ch, i) => {
    const glyph = GLYPHS[ch];
    if (!glyph) return;
    const scale = 1.3 + randomInt(0, 12) / 100;
    const x = 14 + i * cell + jitter(2);
    const y = top + jitter(2);
    const rot = (jitter(9) * Math.PI) / 180;
    const [cos, sin] = [Math.cos(rot), Math.sin(rot)];
    const place = ([px, py]: Point): Point => {
      // Scale about the glyph's centre, rotate about it, then move it to its cell.
      const sx = (px + jitter(0.7) - 10) * scale;
      const sy = (py + jitter(0.7) - 15) * scale;
      return [x + 13 + sx * cos - sy * sin, y + 20 + sx * sin + sy * cos];
    };
    for (const stroke of glyph) {
      const points = stroke.map(place);
      for (let j = 1; j < points.length; j++) segments.push([points[j - 1]!, points[j]!]);
    }
  });
  // Decoys: strokes of the same look (same paths, colours and widths as the glyphs' own), so a script cannot
  // sort them out by attribute or by path, but short and kept in the margins above and below the glyphs,
  // where a person reads them as specks rather than as parts of a digit.
  const decoys = Math.max(6, Math.round(segments.length / 5));
  for (let i = 0; i < decoys; i++) {
    const above = randomInt(2) === 0;
    const a: Point = [
      randomInt(6, width - 6),
      above ? randomInt(2, top - 5) : randomInt(top + 50, height - 2),
    ];
    const len = randomInt(3, 7);
    const angle = (randomInt(360) * Math.PI) / 180;
    segments.push([a, [a[0] + len * Math.cos(angle), a[1] + len * Math.sin(angle)]]);
  }
  shuffle(segments);
  const groups = Math.min(segments.length, 3 + randomInt(4));
  for (let g = 0; g < groups; g++) {
    const d = segments
      .filter((_, k) => k % groups === g)
      .map(([[ax, ay], [bx, by]]) =>
        // Either direction, so the order of the points tells nothing either.
        randomInt(2) === 0
          ? `M${ax.toFixed(1)} ${ay.toFixed(1)}L${bx.toFixed(1)} ${by.toFixed(1)}`
          : `M${bx.toFixed(1)} ${by.toFixed(1)}L${ax.toFixed(1)} ${ay.toFixed(1)}`,
      )
      .join("");
    parts.push(
      `<path d="${d}" stroke="${ink()}" stroke-width="${(3.2 + randomInt(0, 8) / 10).toFixed(1)}" stroke-linecap="round" stroke-linejoin="round" fill="none"/>`,
    );
  }
  for (let i = 0; i < 24; i++) {
    parts.push(
      `<circle cx="${randomInt(width)}" cy="${randomInt(height)}" r="${randomInt(1, 3) / 2}" fill="${haze()}"/>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="100%" height="100%" fill="#fbfbf8"/>${parts.join("")}</svg>`;
}
