// Draws a short text (digits and + - × = ?) as jittered, shuffled line segments in an SVG, with decoys and
// noise, so the document holds no text and no glyph structure for a script to read: the built-in CAPTCHA.
import { randomInt } from "node:crypto";

type Stroke = readonly (readonly [number, number])[];

// Glyphs on a 20 × 30 grid, as polylines.
// prettier-ignore
const GLYPHS: Readonly<Record<string, readonly Stroke[]>> = {
  "0": [[[0, 0], [20, 0], [20, 30], [0, 30], [0, 0]], [[20, 0], [0, 30]]],
  "1": [[[5, 6], [11, 0], [11, 30]], [[4, 30], [18, 30]]],
  "2": [[[0, 3], [6, 0], [16, 0], [20, 5], [20, 12], [0, 30], [20, 30]]],
  "3": [[[0, 0], [20, 0], [9, 12], [16, 13], [20, 19], [18, 27], [10, 30], [0, 28]]],
  "4": [[[14, 30], [14, 0], [0, 20], [20, 20]]],
  "5": [[[20, 0], [2, 0], [0, 13], [13, 11], [20, 17], [19, 26], [11, 30], [0, 28]]],
  "6": [[[18, 0], [8, 4], [1, 15], [0, 25], [6, 30], [16, 29], [20, 22], [15, 15], [6, 15], [0, 22]]],
  "7": [[[0, 0], [20, 0], [7, 30]], [[5, 15], [17, 15]]],
  "8": [[[10, 14], [2, 9], [4, 1], [16, 1], [18, 9], [10, 14], [0, 21], [4, 30], [16, 30], [20, 21], [10, 14]]],
  "9": [[[20, 8], [14, 15], [4, 15], [0, 8], [4, 0], [16, 0], [20, 8], [18, 22], [8, 30]]],
  "+": [[[10, 6], [10, 24]], [[1, 15], [19, 15]]],
  "-": [[[2, 15], [18, 15]]],
  "×": [[[3, 7], [17, 23]], [[17, 7], [3, 23]]],
  "=": [[[2, 10], [18, 10]], [[2, 20], [18, 20]]],
  "?": [[[0, 6], [5, 0], [15, 0], [20, 6], [19, 12], [10, 17], [10, 23]], [[10, 27], [10, 30]]],
};

const jitter = (n: number): number => randomInt(-n * 10, n * 10 + 1) / 10;
const color = (): string => `hsl(${randomInt(360)},${randomInt(40, 80)}%,${randomInt(25, 45)}%)`;

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
  const cell = 26;
  const width = 20 + chars.length * cell;
  const height = 56;
  const parts: string[] = [];
  // Background noise first, so strokes cross it.
  for (let i = 0; i < 5; i++) {
    const p = () => `${randomInt(width)} ${randomInt(height)}`;
    parts.push(
      `<path d="M${p()} C${p()} ${p()} ${p()}" stroke="${color()}" stroke-width="${randomInt(1, 3)}" fill="none" opacity="0.6"/>`,
    );
  }
  const segments: Segment[] = [];
  chars.forEach((ch, i) => {
    const glyph = GLYPHS[ch];
    if (!glyph) return;
    const scale = 0.85 + randomInt(0, 25) / 100;
    const x = 12 + i * cell + jitter(2);
    const y = 12 + jitter(4);
    const rot = (jitter(18) * Math.PI) / 180;
    const [cos, sin] = [Math.cos(rot), Math.sin(rot)];
    const place = ([px, py]: Point): Point => {
      // Scale about the glyph's top left, rotate about its centre, then move it to its cell.
      const sx = (px + jitter(1.5)) * scale - 10;
      const sy = (py + jitter(1.5)) * scale * 0.9 - 15;
      return [x + 10 + sx * cos - sy * sin, y + 15 + sx * sin + sy * cos];
    };
    for (const stroke of glyph) {
      const points = stroke.map(place);
      for (let j = 1; j < points.length; j++) segments.push([points[j - 1]!, points[j]!]);
    }
  });
  // Decoys: short strokes of the same look between the glyphs' own.
  const decoys = Math.max(4, Math.round(segments.length / 4));
  for (let i = 0; i < decoys; i++) {
    const a: Point = [randomInt(8, width - 8), randomInt(10, height - 10)];
    const len = randomInt(4, 11);
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
      `<path d="${d}" stroke="${color()}" stroke-width="${(2.5 + randomInt(0, 15) / 10).toFixed(1)}" stroke-linecap="round" fill="none"/>`,
    );
  }
  for (let i = 0; i < 30; i++) {
    parts.push(
      `<circle cx="${randomInt(width)}" cy="${randomInt(height)}" r="${randomInt(1, 3) / 2}" fill="${color()}"/>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="100%" height="100%" fill="#f7f7f2"/>${parts.join("")}</svg>`;
}
