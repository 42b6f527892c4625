// The card-number screen in the browser: a port of gateway/src/screen (scan.rs, context.rs,
// unicode.rs, pan.rs, tail.rs) so that the widget refuses what the gateway would block before
// it leaves the page. Positions are code-point indices; the IBAN and UUID checks work on UTF-8
// bytes as the Rust code does. The gateway still screens everything: this is a courtesy to the
// customer, not a control.
import { ND_ZEROS, TRANSPARENT, ISSUERS } from "./screen-tables";

const MIN_LEN = 12;
const MAX_LEN = 19;
const MAX_GAP = 4;
const WINDOW = MAX_LEN + 1;
const TAIL_MAX_DIGITS = 18;
const MAX_TRANSPARENT = 16;
const MAX_TOKEN = 64;
const MAX_IBAN_SPAN = 44;
const UUID_LEN = 36;

const SPACE = 1, DASH = 2, DOT = 4, SLASH = 8;

export interface Finding {
  brand: string;
  start: number;
  end: number;
  masked: string;
  last4: string;
}
export interface Verdict {
  blocked: boolean;
  findings: Finding[];
}

// --- unicode ------------------------------------------------------------------------------

function digitValue(cp: number): number | null {
  if (cp < 0x80) return cp >= 0x30 && cp <= 0x39 ? cp - 0x30 : null;
  let lo = 0, hi = ND_ZEROS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ND_ZEROS[mid] <= cp) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return null;
  const v = cp - ND_ZEROS[lo - 1];
  return v < 10 ? v : null;
}

function separator(cp: number): number {
  if ([0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000].includes(cp)
    || (cp >= 0x2000 && cp <= 0x200a)) return SPACE;
  if (cp === 0x2d || (cp >= 0x2010 && cp <= 0x2015)
    || [0x2043, 0x2212, 0x2e3a, 0x2e3b, 0x30fc, 0xfe58, 0xfe63, 0xff0d, 0xff70].includes(cp)) return DASH;
  if ([0x2e, 0xb7, 0x2024, 0x2027, 0x2219, 0x3002, 0x30fb, 0xff0e, 0xff61, 0xff65].includes(cp)) return DOT;
  if ([0x2f, 0x5c, 0x2044, 0x2215, 0x29f8, 0xff0f, 0xff3c].includes(cp)) return SLASH;
  return 0;
}

function isTransparent(cp: number): boolean {
  if (cp < 0xad) return false;
  let lo = 0, hi = TRANSPARENT.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (TRANSPARENT[mid * 2] <= cp) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && cp <= TRANSPARENT[(lo - 1) * 2 + 1];
}

type Class = { k: "digit"; v: number } | { k: "sep"; s: number } | { k: "transparent" } | { k: "other" };
function classify(cp: number): Class {
  const v = digitValue(cp);
  if (v !== null) return { k: "digit", v };
  const s = separator(cp);
  if (s) return { k: "sep", s };
  if (isTransparent(cp)) return { k: "transparent" };
  return { k: "other" };
}

// --- brands and Luhn ----------------------------------------------------------------------

function identify(digits: number[]): string | null {
  const len = digits.length;
  let best: [number, string] | null = null;
  for (const [brand, lengths, prefixes] of ISSUERS) {
    if (!lengths.includes(len)) continue;
    for (const [lo, hi] of prefixes) {
      const n = String(lo).length;
      if (n > len || n > 8) continue;
      let value = 0;
      for (let i = 0; i < n; i++) value = value * 10 + digits[i];
      if ((best === null || n > best[0]) && value >= lo && value <= hi) best = [n, brand];
    }
  }
  return best ? best[1] : null;
}

function luhn(digits: number[]): boolean {
  if (!digits.length) return false;
  let sum = 0;
  for (let i = digits.length - 1, k = 0; i >= 0; i--, k++) {
    const d = digits[i];
    sum += k % 2 ? (d * 2 > 9 ? d * 2 - 9 : d * 2) : d;
  }
  return sum % 10 === 0;
}

function mask(digits: number[]): string {
  const n = digits.length;
  const last = Math.min(n, 4);
  const first = Math.min(Math.max(0, n - last - 6), 6);
  return digits.slice(0, first).join("") + "*".repeat(n - first - last) + digits.slice(n - last).join("");
}

// --- context ------------------------------------------------------------------------------

interface Left { plus: boolean; fraction: boolean; glued: boolean; tokenHasDigit: boolean }
interface Right { glued: boolean; tokenHasDigit: boolean }
const noLeft = (): Left => ({ plus: false, fraction: false, glued: false, tokenHasDigit: false });

const isWord = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isAsciiDigit = (c: number) => c >= 48 && c <= 57;
const isAlnum = (c: number) => isAsciiDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

function tokenHasDigit(cps: number[], from: number, step: number, limit: number): boolean {
  for (let i = from; i >= 0 && i < cps.length && Math.abs(i - from) < limit; i += step) {
    const c = cps[i];
    if (!(isAlnum(c) || c === 95)) return false;
    if (isAsciiDigit(c)) return true;
  }
  return false;
}

function leftOf(cps: number[], at: number): Left {
  const stop = Math.max(0, at - (MAX_TRANSPARENT + MAX_TOKEN));
  let i = at - 1;
  while (i >= stop && isTransparent(cps[i])) i--;
  if (i < stop) return noLeft();
  const prev = cps[i];
  if (prev === 0x2b) return { ...noLeft(), plus: true };
  if (prev === 0x2c || prev === 0x2e) return { ...noLeft(), fraction: i - 1 >= stop && isAsciiDigit(cps[i - 1]) };
  if (isWord(prev)) return { ...noLeft(), glued: true, tokenHasDigit: i - 1 >= stop && tokenHasDigit(cps, i - 1, -1, i - stop) };
  return noLeft();
}

function rightOf(cps: number[], at: number): Right {
  const stop = Math.min(cps.length, at + MAX_TRANSPARENT + MAX_TOKEN);
  let i = at;
  while (i < stop && isTransparent(cps[i])) i++;
  if (i >= stop || !isWord(cps[i])) return { glued: false, tokenHasDigit: false };
  return { glued: true, tokenHasDigit: i + 1 < stop && tokenHasDigit(cps, i + 1, 1, stop - i - 1) };
}

function isIdentifier(l: Left, r: Right): boolean {
  return (l.glued && (r.glued || l.tokenHasDigit)) || (r.glued && r.tokenHasDigit);
}

function alnumValue(b: number): number | null {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 65 && b <= 90) return b - 65 + 10;
  if (b >= 97 && b <= 122) return b - 97 + 10;
  return null;
}
const fold = (rem: number, v: number) => (v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97);
const isAlpha = (b: number | undefined) => b !== undefined && ((b >= 65 && b <= 90) || (b >= 97 && b <= 122));

function ibanAt(bytes: Uint8Array, p: number, end: number): boolean {
  if (p + 4 > bytes.length) return false;
  const head = [bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]];
  if (!(isAlpha(head[0]) && isAlpha(head[1]) && isAsciiDigit(head[2]) && isAsciiDigit(head[3]))) return false;
  if (p > 0 && isAlnum(bytes[p - 1])) return false;
  let rem = 0, count = 4, i = p + 4, lastSpace = false;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b === 0x20) {
      if (lastSpace) break;
      lastSpace = true;
      i++;
      continue;
    }
    const v = alnumValue(b);
    if (v === null) break;
    lastSpace = false;
    rem = fold(rem, v);
    count++;
    i++;
    if (count > 34) break;
    const atBoundary = !(i < bytes.length && isAlnum(bytes[i]));
    if (count >= 15 && i >= end && atBoundary) {
      let check = rem;
      for (const hb of head) check = fold(check, alnumValue(hb)!);
      if (check === 1) return true;
    }
  }
  return false;
}

function insideIban(bytes: Uint8Array, start: number, end: number): boolean {
  let from = Math.max(0, start - MAX_IBAN_SPAN);
  while (from > 0 && (bytes[from] & 0xc0) === 0x80) from--;
  let alpha = false;
  for (let p = from; p < start; p++) if (isAlpha(bytes[p])) alpha = true;
  if (!alpha) return false;
  for (let p = from; p < start; p++) if (ibanAt(bytes, p, end)) return true;
  return false;
}

function insideUuid(bytes: Uint8Array, start: number, end: number): boolean {
  const part = (b: number | undefined) =>
    b !== undefined && (isAsciiDigit(b) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102) || b === 0x2d);
  let lo = start;
  while (lo > 0 && start - lo <= UUID_LEN && part(bytes[lo - 1])) lo--;
  let hi = end;
  while (hi - end <= UUID_LEN && part(bytes[hi])) hi++;
  if (hi - lo !== UUID_LEN) return false;
  for (let i = 0; i < UUID_LEN; i++) {
    const b = bytes[lo + i];
    if ([8, 13, 18, 23].includes(i) ? b !== 0x2d : !part(b) || b === 0x2d) return false;
  }
  return true;
}

// --- scanning -----------------------------------------------------------------------------

interface Gap { seps: number; chars: number; point: boolean; boundary: boolean }
const noGap = (): Gap => ({ seps: 0, chars: 0, point: false, boundary: false });
function addGap(g: Gap, s: number): void {
  g.seps |= s;
  g.chars = Math.min(255, g.chars + 1);
  g.point = false;
}

interface Group {
  digits: number[];
  len: number;
  start: number;
  end: number;
  fromTail: boolean;
  gap: Gap;
  joinsPrevious: boolean;
  first: boolean;
  left: Left;
}

class Shape {
  groups = 0;
  allOnes = false;
  onesGap: number | null = null;
  foursBeforeLast = false;
  last = 0;
  firstThree = [0, 0, 0];
  smallestBeforeLast = 0;

  add(g: Group): void {
    if (this.groups === 0) {
      this.allOnes = g.len === 1;
      this.foursBeforeLast = true;
      this.smallestBeforeLast = Infinity;
    } else {
      if (!g.gap.boundary) {
        if (this.onesGap === null) this.onesGap = g.gap.seps;
        else this.allOnes = this.allOnes && this.onesGap === g.gap.seps;
      }
      this.allOnes = this.allOnes && g.len === 1;
      this.foursBeforeLast = this.foursBeforeLast && this.last === 4;
      this.smallestBeforeLast = Math.min(this.smallestBeforeLast, this.last);
    }
    if (this.groups < 3) this.firstThree[this.groups] = g.len;
    this.last = g.len;
    this.groups++;
  }

  extendLast(g: Group): void {
    if (this.groups === 0) return this.add(g);
    this.last += g.len;
    this.allOnes = false;
    if (this.groups - 1 < 3) this.firstThree[this.groups - 1] = this.last;
  }

  plausible(sequenceStart: boolean): boolean {
    const k = this.groups, f = this.firstThree;
    return k === 1
      || this.allOnes
      || (this.foursBeforeLast && this.last >= 1 && this.last <= 4)
      || (k === 3 && f[0] === 4 && f[1] === 6 && f[2] >= 2 && f[2] <= 9)
      || (sequenceStart && k <= 4 && Math.min(this.smallestBeforeLast, this.last) >= 4);
  }
}

/** What a conversation carries from one message to the next: the trailing digit groups. */
export class ConversationTail {
  groups: Group[] = [];
  trailing: Gap = noGap();
}

class Scanner {
  window: Group[] = [];
  findings: Finding[] = [];
  carry: { groups: Group[]; trailing: Gap } | null = null;
  private bytes: Uint8Array | null = null;
  private byteAt: number[] | null = null;
  constructor(private cps: number[], private text: string) {}

  private windowDigits(): number {
    let n = 0;
    for (const g of this.window) n += g.len;
    return n;
  }

  /** UTF-8 bytes of the text and the byte offset of each code point, built on first need. */
  private utf8(): [Uint8Array, number[]] {
    if (!this.bytes) {
      this.bytes = new TextEncoder().encode(this.text);
      const at: number[] = [0];
      let b = 0;
      for (const cp of this.cps) at.push((b += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4));
      this.byteAt = at;
    }
    return [this.bytes, this.byteAt!];
  }

  sequence(start: number, seeded: Gap | null): number {
    let first = seeded === null;
    let gap: Gap = seeded ?? noGap();
    let open: Group | null = null;
    for (let at = start; at < this.cps.length; at++) {
      const c = classify(this.cps[at]);
      if (c.k === "digit") {
        if (!open) {
          open = {
            digits: [], len: 0, start: at, end: at, fromTail: false, gap: { ...gap },
            joinsPrevious: gap.boundary && gap.chars === 0, first, left: noLeft(),
          };
        }
        if (open.len < MAX_LEN) open.digits.push(c.v);
        open.len++;
        open.end = at + 1;
      } else if (c.k === "sep") {
        if (open) {
          first = this.close(open);
          open = null;
          gap = first ? noGap() : { seps: c.s, chars: 1, point: this.cps[at] === 0x2e, boundary: false };
        } else {
          addGap(gap, c.s);
          if (gap.chars > MAX_GAP) {
            this.finish(null);
            return at;
          }
        }
      } else if (c.k === "other") {
        if (open) this.close(open);
        this.finish(null);
        return at;
      }
    }
    let trailing: Gap;
    if (open) {
      this.close(open);
      trailing = noGap();
    } else trailing = gap;
    this.finish(trailing);
    return this.cps.length;
  }

  private close(g: Group): boolean {
    if (g.len > MAX_LEN) {
      this.finish(null);
      return true;
    }
    this.add(g);
    return false;
  }

  add(g: Group): void {
    while (this.window.length >= WINDOW) this.window.shift();
    this.window.push(g);
    while (this.windowDigits() > MAX_LEN) this.judgeFront();
  }

  private finish(trailing: Gap | null): void {
    if (!trailing) {
      while (this.window.length) this.judgeFront();
      this.carry = null;
      return;
    }
    let groups = [...this.window];
    let judged = 0, unusedFrom = 0;
    while (this.window.length) {
      const [dropped, found] = this.judgeFront();
      judged += dropped;
      if (found) unusedFrom = judged;
    }
    let digits = 0, keepFrom = groups.length;
    while (keepFrom > unusedFrom) {
      const len = groups[keepFrom - 1].len;
      if (digits + len > TAIL_MAX_DIGITS) break;
      digits += len;
      keepFrom--;
    }
    groups = groups.slice(keepFrom);
    for (const g of groups) if (g.first && !g.fromTail) g.left = leftOf(this.cps, g.start);
    this.carry = { groups, trailing };
  }

  private judgeFront(): [number, boolean] {
    const w = this.window;
    if (this.windowDigits() < MIN_LEN) {
      const dropped = w.length;
      w.length = 0;
      return [dropped, false];
    }
    const digits: number[] = [];
    const shape = new Shape(), joined = new Shape();
    let longest: [number, number, string] | null = null;
    let shorter: [number, number, string] | null = null;
    for (let j = 0; j < w.length; j++) {
      const g = w[j];
      if (digits.length + g.len > MAX_LEN) break;
      digits.push(...g.digits);
      shape.add(g);
      if (g.joinsPrevious) joined.extendLast(g);
      else joined.add(g);
      if (digits.length < MIN_LEN || g.fromTail) continue;
      const start = w[0].first;
      if (!luhn(digits) || !(shape.plausible(start) || joined.plausible(start))) continue;
      const brand = identify(digits);
      if (!brand || !this.contextAllows(j)) continue;
      shorter = longest && longest[0] + 1 === j ? longest : null;
      longest = [j, digits.length, brand];
    }
    let chosen = longest;
    if (longest && shorter && longest[0] > 0 && w[longest[0]].len <= 3 && w[longest[0] - 1].len >= 4) chosen = shorter;
    let found = 0;
    if (chosen) {
      const [j, len, brand] = chosen;
      const masked = mask(digits.slice(0, len));
      this.findings.push({
        brand,
        start: w[0].fromTail ? 0 : w[0].start,
        end: w[j].end,
        masked,
        last4: masked.slice(-4),
      });
      found = j + 1;
    }
    const dropped = Math.max(found, 1);
    w.splice(0, dropped);
    return [dropped, found > 0];
  }

  private contextAllows(j: number): boolean {
    const first = this.window[0], last = this.window[j];
    const left = first.first ? (first.fromTail ? first.left : leftOf(this.cps, first.start)) : noLeft();
    if (left.plus) return false;
    if (j === 0 && (left.fraction || first.gap.point)) return false;
    const right = j + 1 === this.window.length ? rightOf(this.cps, last.end) : { glued: false, tokenHasDigit: false };
    if (isIdentifier(left, right)) return false;
    if (!first.fromTail) {
      const [bytes, at] = this.utf8();
      if (insideIban(bytes, at[first.start], at[last.end]) || insideUuid(bytes, at[first.start], at[last.end])) return false;
    }
    return true;
  }
}

function continuation(cps: number[], tail: ConversationTail): [number, Gap] | null {
  if (!tail.groups.length) return null;
  const gap = { ...tail.trailing };
  for (let i = 0; i < cps.length; i++) {
    const c = classify(cps[i]);
    if (c.k === "digit") {
      gap.point = false;
      gap.boundary = true;
      return [i, gap];
    }
    if (c.k === "sep") {
      addGap(gap, c.s);
      if (gap.chars > MAX_GAP) return null;
    } else if (c.k === "other") return null;
  }
  return null;
}

/** Screens one message; with a tail, as the next message of a conversation. */
export function scan(text: string, tail?: ConversationTail): Verdict {
  const cps = Array.from(text, (c) => c.codePointAt(0)!);
  const scanner = new Scanner(cps, text);
  let pos = 0;
  if (tail) {
    const cont = continuation(cps, tail);
    if (cont) {
      const groups = tail.groups;
      tail.groups = [];
      tail.trailing = noGap();
      for (const g of groups) scanner.add({ ...g, fromTail: true, start: 0, end: 0 });
      pos = scanner.sequence(cont[0], cont[1]);
    }
  }
  for (;;) {
    while (pos < cps.length && digitValue(cps[pos]) === null) pos++;
    if (pos >= cps.length) break;
    pos = scanner.sequence(pos, null);
  }
  if (tail) {
    tail.groups = scanner.carry ? scanner.carry.groups : [];
    tail.trailing = scanner.carry ? scanner.carry.trailing : noGap();
  }
  return { blocked: scanner.findings.length > 0, findings: scanner.findings };
}
