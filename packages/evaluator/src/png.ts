import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

/** DejaVu Sans from Debian's fonts-dejavu-core (installed by tooling/setup.sh); other systems fall back to their fonts. */
const FONT_FILES = ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', '/usr/share/fonts/TTF/DejaVuSans.ttf', '/usr/share/fonts/dejavu/DejaVuSans.ttf'];

type Resvg = new (svg: string, options: object) => { render(): { asPng(): Uint8Array } };

/**
 * Renders an SVG chart to PNG (at twice its size, for papers and high-density screens).
 * Returns the reason instead when the renderer cannot load, so a report never fails for it.
 */
export function svgToPng(svg: string): { png: Uint8Array } | { error: string } {
  let ResvgClass: Resvg;
  try {
    ResvgClass = (createRequire(import.meta.url)('@resvg/resvg-js') as { Resvg: Resvg }).Resvg;
  } catch (error) {
    return { error: `PNG renderer @resvg/resvg-js unavailable: ${(error as Error).message.split('\n')[0]}` };
  }
  const font = FONT_FILES.find((f) => existsSync(f));
  const renderer = new ResvgClass(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: font ? { loadSystemFonts: false, fontFiles: [font], defaultFontFamily: 'DejaVu Sans' } : { loadSystemFonts: true },
  });
  return { png: renderer.render().asPng() };
}
