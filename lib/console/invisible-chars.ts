/**
 * Characters that change how text looks without showing themselves: bidi
 * controls that reverse what follows (`\u202Egnp.exe` displays as `exe.png`),
 * zero-width characters that make two different ids look alike, and other
 * format and control characters. The console shows each as a visible marker
 * (components/console/visible-text.tsx); this module finds them.
 */

/** Format (Cf), control (Cc), line and paragraph separators, and blank fillers that render as nothing. */
const INVISIBLE = /[\p{Cf}\p{Cc}\p{Zl}\p{Zp}\u034F\u115F\u1160\u180B-\u180D\u3164\uFFA0]/gu;

const NAMES: Readonly<Record<number, string>> = {
  0x00ad: "SOFT HYPHEN",
  0x034f: "COMBINING GRAPHEME JOINER",
  0x061c: "ARABIC LETTER MARK",
  0x115f: "HANGUL CHOSEONG FILLER",
  0x1160: "HANGUL JUNGSEONG FILLER",
  0x180e: "MONGOLIAN VOWEL SEPARATOR",
  0x200b: "ZERO WIDTH SPACE",
  0x200c: "ZERO WIDTH NON-JOINER",
  0x200d: "ZERO WIDTH JOINER",
  0x200e: "LEFT-TO-RIGHT MARK",
  0x200f: "RIGHT-TO-LEFT MARK",
  0x2028: "LINE SEPARATOR",
  0x2029: "PARAGRAPH SEPARATOR",
  0x202a: "LEFT-TO-RIGHT EMBEDDING",
  0x202b: "RIGHT-TO-LEFT EMBEDDING",
  0x202c: "POP DIRECTIONAL FORMATTING",
  0x202d: "LEFT-TO-RIGHT OVERRIDE",
  0x202e: "RIGHT-TO-LEFT OVERRIDE",
  0x2060: "WORD JOINER",
  0x2061: "FUNCTION APPLICATION",
  0x2062: "INVISIBLE TIMES",
  0x2063: "INVISIBLE SEPARATOR",
  0x2064: "INVISIBLE PLUS",
  0x2066: "LEFT-TO-RIGHT ISOLATE",
  0x2067: "RIGHT-TO-LEFT ISOLATE",
  0x2068: "FIRST STRONG ISOLATE",
  0x2069: "POP DIRECTIONAL ISOLATE",
  0x3164: "HANGUL FILLER",
  0xfeff: "ZERO WIDTH NO-BREAK SPACE (BYTE ORDER MARK)",
  0xffa0: "HALFWIDTH HANGUL FILLER",
};

export type TextPart =
  | { kind: "text"; text: string }
  | {
      kind: "invisible";
      /** The character itself. */
      char: string;
      /** `U+202E`. */
      code: string;
      /** `RIGHT-TO-LEFT OVERRIDE`, or a description of its kind. */
      name: string;
    };

export function codePointLabel(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

function nameOf(char: string): string {
  const cp = char.codePointAt(0) ?? 0;
  const known = NAMES[cp];
  if (known) return known;
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return "CONTROL CHARACTER";
  if (cp >= 0xe0000 && cp <= 0xe007f) return "TAG CHARACTER";
  if (cp >= 0x180b && cp <= 0x180d) return "MONGOLIAN FREE VARIATION SELECTOR";
  return "FORMAT CHARACTER";
}

/** Whether the text holds any character the console marks. */
export function hasInvisible(text: string): boolean {
  INVISIBLE.lastIndex = 0;
  const found = INVISIBLE.test(text);
  INVISIBLE.lastIndex = 0;
  return found;
}

/** Tab, line feed and carriage return: layout in formatted text such as indented JSON. */
const LAYOUT = new Set(["\t", "\n", "\r"]);

/**
 * The text split into plain runs and the characters to mark, in order;
 * joined, the parts give the text back. With `layout`, tabs and line breaks
 * are left as they are (formatted JSON, where they come from the formatting:
 * JSON escapes them inside strings).
 */
export function splitInvisible(text: string, options: { layout?: boolean } = {}): TextPart[] {
  const parts: TextPart[] = [];
  let last = 0;
  for (const match of text.matchAll(INVISIBLE)) {
    if (options.layout && LAYOUT.has(match[0])) continue;
    const at = match.index;
    if (at > last) parts.push({ kind: "text", text: text.slice(last, at) });
    const char = match[0];
    parts.push({ kind: "invisible", char, code: codePointLabel(char), name: nameOf(char) });
    last = at + char.length;
  }
  if (last < text.length) parts.push({ kind: "text", text: text.slice(last) });
  return parts;
}

/** The text with each marked character written as `⟨U+202E⟩`: for attributes (titles) and other plain-text places. */
export function showInvisible(text: string): string {
  return hasInvisible(text) ? text.replace(INVISIBLE, (char) => `⟨${codePointLabel(char)}⟩`) : text;
}
