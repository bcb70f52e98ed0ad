/**
 * `node:util` for the page's bundle, which has no Node: protocol.ts imports
 * `stripVTControlCharacters` for `cleanText`, which only the server and the terminal client call.
 * The page shows every line as text and never cleans one, so this only has to exist.
 */
export function stripVTControlCharacters(_text: string): string {
  throw new Error("stripVTControlCharacters is not available in the page");
}
