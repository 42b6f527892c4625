#!/usr/bin/env python3
"""Print the two Unicode tables of gateway/src/screen/unicode.rs.

    pip install unicodedata2   # a newer Unicode than the interpreter's own
    python3 docs/screen/unicode_tables.py

ND_ZEROS: the code point of every decimal digit zero (general category Nd). Every Nd
block is ten consecutive code points from zero to nine; the script checks that.

TRANSPARENT: ranges of combining marks (Mn, Mc, Me) and invisible format characters
(Cf). Two ranges are merged when only unassigned code points lie between them.
"""
import sys

try:
    import unicodedata2 as ud
except ImportError:  # fall back to the interpreter's own, older data
    import unicodedata as ud


def nd_zeros():
    zeros = []
    count = 0
    for cp in range(0x110000):
        ch = chr(cp)
        if ud.category(ch) != "Nd":
            continue
        count += 1
        if ud.decimal(ch) == 0:
            zeros.append(cp)
    for z in zeros:
        for v in range(10):
            ch = chr(z + v)
            assert ud.category(ch) == "Nd" and ud.decimal(ch) == v, hex(z)
    assert count == 10 * len(zeros)
    return zeros


def transparent_ranges():
    cats = {"Mn", "Mc", "Me", "Cf"}
    out = []
    start = prev = None
    for cp in range(0x110000):
        if ud.category(chr(cp)) not in cats:
            continue
        if start is None:
            start = cp
        elif any(ud.category(chr(x)) != "Cn" for x in range(prev + 1, cp)):
            out.append((start, prev))
            start = cp
        prev = cp
    out.append((start, prev))
    return out


def main():
    print(f"// Unicode {ud.unidata_version}")
    zeros = nd_zeros()
    print(f"const ND_ZEROS: [u32; {len(zeros)}] = [")
    for i in range(0, len(zeros), 8):
        print("    " + " ".join(f"0x{z:04X}," for z in zeros[i : i + 8]))
    print("];")
    ranges = transparent_ranges()
    print(f"const TRANSPARENT: [(u32, u32); {len(ranges)}] = [")
    for i in range(0, len(ranges), 4):
        print("    " + " ".join(f"(0x{a:04X}, 0x{b:04X})," for a, b in ranges[i : i + 4]))
    print("];")


if __name__ == "__main__":
    sys.exit(main())
