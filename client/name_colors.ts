/** The color each name is shown in at a terminal, from a palette the page follows in its CSS. */
import { nameColorSlot } from "../protocol.ts";

/**
 * Colors for names, from the 256-color palette (whose values are fixed, unlike the 16 named
 * colors): twelve hues at least 20° apart, each at least 3.8:1 on black and on white (WCAG), so
 * that every name reads on dark and light themes alike, and neighbouring slots 115° or more apart.
 * No bright yellow, cyan or green, which vanish on white. 25° apart is out of the palette's reach:
 * its cube has no twelve colors that far apart at even 3:1 on both (22° at best).
 */
export const NAME_COLORS: readonly number[] = [
  160, // #d70000 red           0°, 3.9:1 on black, 5.4:1 on white
  31, //  #0087af cerulean    194°, 5.1:1, 4.1:1
  163, // #d700af magenta     311°, 4.5:1, 4.7:1
  28, //  #008700 green       120°, 4.5:1, 4.7:1
  97, //  #875faf purple      270°, 4.3:1, 4.9:1
  166, // #d75f00 orange       27°, 5.5:1, 3.8:1
  27, //  #005fff blue        218°, 4.1:1, 5.1:1
  161, // #d7005f crimson     333°, 4.1:1, 5.2:1
  29, //  #00875f sea green   162°, 4.6:1, 4.5:1
  165, // #d700ff violet      291°, 5.3:1, 3.9:1
  100, // #878700 olive        60°, 5.5:1, 3.8:1
  62, //  #5f5fd7 slate blue  240°, 4.1:1, 5.1:1
];

/** The 256-color palette index of a name: its slot's color, the same in every client. */
export function nameColor(name: string): number {
  return NAME_COLORS[nameColorSlot(name)]!;
}
