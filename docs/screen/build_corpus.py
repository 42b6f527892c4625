#!/usr/bin/env python3
"""Build docs/screen/corpus.jsonl, the labelled corpus of compare_presidio.py.

    python3 docs/screen/build_corpus.py

Each line: {"text", "blocked" (the label), "category", and "conversation" for the
messages of a conversation}. It holds every case of gateway/src/screen/vectors.json,
then generated card numbers in the renderings people use and realistic messages
that only look like card numbers. The generator is seeded: the output is the same
on every run.
"""
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "gateway/src/screen/vectors.json"
OUT = Path(__file__).resolve().parent / "corpus.jsonl"

rng = random.Random(20260315)


def luhn_ok(s):
    total = 0
    for i, c in enumerate(reversed(s)):
        d = int(c)
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def complete(head, length):
    """A Luhn-valid number of `length` digits starting with `head`."""
    body = head + "".join(rng.choice("0123456789") for _ in range(length - len(head) - 1))
    for x in "0123456789":
        if luhn_ok(body + x):
            return body + x
    raise AssertionError


def in_script(s, zero):
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in s)


def grouped(s, sizes, sep):
    out, i = [], 0
    for n in sizes:
        if i >= len(s):
            break
        out.append(s[i : i + n])
        i += n
    if i < len(s):
        out.append(s[i:])
    return sep.join(out)


def fours(s, sep=" "):
    return grouped(s, [4] * 5, sep)


# Category of a vectors.json case, from words of its name.
VECTOR_CATEGORIES = [
    ("stripe", "public test number"),
    ("braintree", "public test number"),
    ("split", "split across messages"),
    ("fullwidth", "fullwidth digits"),
    ("arabic", "non-ASCII digits"),
    ("persian", "non-ASCII digits"),
    ("devanagari", "non-ASCII digits"),
    ("bengali", "non-ASCII digits"),
    ("thai digits", "non-ASCII digits"),
    ("tibetan", "non-ASCII digits"),
    ("myanmar", "non-ASCII digits"),
    ("nko", "non-ASCII digits"),
    ("mathematical", "non-ASCII digits"),
    ("mixed scripts", "non-ASCII digits"),
    ("hindi", "non-ASCII digits"),
    ("zero-width", "invisible characters"),
    ("joiner", "invisible characters"),
    ("byte order", "invisible characters"),
    ("soft hyphen", "invisible characters"),
    ("bidi", "invisible characters"),
    ("combining", "combining marks"),
    ("keycap", "combining marks"),
    ("dots", "dots or slashes"),
    ("dotted", "dots or slashes"),
    ("slashes", "dots or slashes"),
    ("2-series", "Mastercard 2-series"),
    ("unionpay 19", "UnionPay 19 digits"),
    ("amex", "American Express / Diners grouping"),
    ("diners 4-6-4", "American Express / Diners grouping"),
    ("every digit", "every digit separated"),
    ("after", "after an unrelated number"),
    ("two cards", "two cards"),
    ("json", "JSON, URL, HTML"),
    ("url", "JSON, URL, HTML"),
    ("html", "JSON, URL, HTML"),
    ("markdown", "JSON, URL, HTML"),
    ("no-break", "other separators"),
    ("ideographic", "other separators"),
    ("tab", "other separators"),
    ("per line", "other separators"),
    ("double", "other separators"),
    ("doubled", "other separators"),
    ("spaced dashes", "other separators"),
    ("mixed separators", "other separators"),
    ("prolonged", "other separators"),
    ("loose", "loose grouping"),
    ("followed", "card with expiry or code"),
    ("glued", "glued to a word"),
]
NEGATIVE_CATEGORIES = [
    ("phone", "phone number"),
    ("decimal", "decimal number"),
    ("pi", "decimal number"),
    ("hex", "identifier or hash"),
    ("sha", "identifier or hash"),
    ("luhn", "Luhn failure"),
    ("short", "wrong length"),
    ("digits", "wrong length"),
    ("digit visa", "wrong length"),
    ("amex with", "wrong length"),
    ("mastercard with", "wrong length"),
    ("run", "long digit run"),
    ("issuer", "no issuer"),
    ("phone", "phone number"),
    ("order", "order or ticket number"),
    ("ticket", "order or ticket number"),
    ("invoice", "order or ticket number"),
    ("tracking", "order or ticket number"),
    ("usps", "order or ticket number"),
    ("ups", "order or ticket number"),
    ("date", "date or time"),
    ("timestamp", "date or time"),
    ("years", "date or time"),
    ("zero", "all zeros"),
    ("iban", "IBAN"),
    ("ip", "IP address"),
    ("uuid", "UUID"),
    ("version", "version"),
    ("price", "price"),
    ("mask", "masked card"),
    ("ending", "masked card"),
    ("bullets", "masked card"),
]


def category(name, blocked):
    table = VECTOR_CATEGORIES if blocked else NEGATIVE_CATEGORIES
    for word, cat in table:
        if word in name:
            return cat
    return "in text" if blocked else "other"


lines = []


def add(text, blocked, cat, conversation=None):
    line = {"text": text, "blocked": blocked, "category": cat}
    if conversation:
        line["conversation"] = conversation
    lines.append(line)


vectors = json.loads(VECTORS.read_text())
for case in vectors["cases"]:
    add(case["text"], case["blocked"], category(case["name"], case["blocked"]))
for n, conv in enumerate(vectors["conversations"]):
    for text, blocked in zip(conv["messages"], conv["blocked"]):
        cat = "split across messages" if blocked else "split, first half" if any(conv["blocked"]) else "split, not a card"
        add(text, blocked, cat, f"v{n}")

# Generated card numbers: brand prefixes and lengths from braintree/credit-card-type.
HEADS = [
    ("4", 16), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("2300", 16),
    ("34", 15), ("37", 15), ("36", 14), ("300", 14), ("6011", 16), ("65", 16), ("3528", 16),
    ("3589", 19), ("62", 16), ("62", 19), ("81", 17), ("2200", 16), ("2204", 19), ("6304", 16),
    ("5018", 12), ("6759", 18), ("9792", 16), ("6062", 16),
]
SENTENCES = [
    ("my card is {}", "in text"),
    ("Here you go: {} exp 09/28", "card with expiry or code"),
    ("Mi tarjeta es {} gracias", "in text"),
    ("Номер карты {}", "in text"),
    ("卡号{}谢谢", "in text"),
    ("カード番号は{}です", "in text"),
    ("رقم البطاقة {}", "in text"),
    ("{}", "bare"),
]
RENDERINGS = [
    ("contiguous", lambda s: s),
    ("spaces", lambda s: fours(s)),
    ("dashes", lambda s: fours(s, "-")),
    ("dots or slashes", lambda s: fours(s, ".")),
    ("dots or slashes", lambda s: fours(s, "/")),
    ("fullwidth digits", lambda s: in_script(fours(s, "\uff0d"), 0xFF10)),
    ("non-ASCII digits", lambda s: in_script(fours(s), 0x0660)),
    ("non-ASCII digits", lambda s: in_script(s, 0x06F0)),
    ("non-ASCII digits", lambda s: in_script(fours(s), 0x0966)),
    ("invisible characters", lambda s: "\u200b".join(s)),
    ("other separators", lambda s: fours(s, "\u00a0")),
    ("every digit separated", lambda s: " ".join(s)),
]
for head, length in HEADS:
    number = complete(head, length)
    for _ in range(3):
        cat, render = rng.choice(RENDERINGS)
        template, where = rng.choice(SENTENCES)
        if head.startswith(("22", "23", "27")) and length == 16 and head != "2200" and head != "2204":
            cat = "Mastercard 2-series" if cat in ("contiguous", "spaces") else cat
        if head == "62" and length == 19 and cat in ("contiguous", "spaces"):
            cat = "UnionPay 19 digits"
        add(template.format(render(number)), True, cat if where == "bare" or cat != "contiguous" else where)
# Split across two messages, the cut chosen at random.
for i in range(20):
    head, length = rng.choice(HEADS)
    number = complete(head, length)
    text = rng.choice([number, fours(number), fours(number, "-")])
    # Cut before the twelfth digit, so the first message alone holds no card number.
    twelfth = [i for i, c in enumerate(text) if c.isdigit()][11]
    cut = rng.randrange(1, twelfth)
    add("card: " + text[:cut], False, "split, first half", f"g{i}")
    add(text[cut:], True, "split across messages", f"g{i}")

# Realistic messages that only look like card numbers.
def phone():
    forms = [
        lambda: f"+1 {rng.randint(200, 999)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
        lambda: f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        lambda: f"+49 {rng.randint(150, 179)} {rng.randint(1000000, 99999999)}",
        lambda: f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        lambda: f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}",
        lambda: f"+86 1{rng.randint(30, 89)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        lambda: f"+91 {rng.randint(70000, 99999)} {rng.randint(10000, 99999)}",
        lambda: f"+62 8{rng.randint(10, 99)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        lambda: f"+55 11 9{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        lambda: "+" + complete(rng.choice(["57", "63", "62", "58"]), rng.choice([12, 13])),
        lambda: f"(0{rng.randint(20, 99)}) {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
    ]
    return rng.choice(forms)()


def iban():
    country, form = rng.choice([
        ("DE", "n" * 18), ("BE", "n" * 12), ("FR", "n" * 10 + "a" * 11 + "nn"), ("GB", "AAAA" + "n" * 14),
        ("NL", "AAAA" + "n" * 10), ("ES", "n" * 20), ("PL", "n" * 24), ("NO", "n" * 11), ("CH", "n" * 5 + "a" * 12),
    ])
    bban = "".join(
        rng.choice("0123456789") if k == "n" else rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") if k == "A"
        else rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for k in form
    )
    rem = 0
    for c in bban + country + "00":
        v = int(c, 36)
        rem = (rem * (100 if v >= 10 else 10) + v) % 97
    value = f"{country}{98 - rem:02d}{bban}"
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.6 else value


def uuid():
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def masked():
    number = complete(rng.choice(["4", "51", "37", "6011"]), 16)
    mask = rng.choice("*X•")
    shown = number[:6] + mask * 6 + number[-4:] if rng.random() < 0.5 else mask * 12 + number[-4:]
    return fours(shown) if rng.random() < 0.5 else shown


def luhn_failure():
    number = complete(rng.choice(["4", "5", "37", "6011"]), 16)
    bad = number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)
    return fours(bad) if rng.random() < 0.5 else bad


NEGATIVES = [
    ("phone number", lambda: f"you can call me on {phone()}"),
    ("phone number", lambda: f"mi número es {phone()}"),
    ("order or ticket number", lambda: f"order #{rng.randint(100, 999)}-{rng.randint(1000000, 9999999)}-{rng.randint(1000000, 9999999)}"),
    ("order or ticket number", lambda: f"ticket {rng.randint(10000, 99999)} is still open"),
    ("order or ticket number", lambda: f"ORD-{rng.randint(2020, 2030)}-{rng.randint(0, 999999):06d}"),
    ("order or ticket number", lambda: f"order number {rng.randint(10**9, 10**10)}"),
    ("order or ticket number", lambda: f"tracking 1Z{rng.randint(100, 999)}AA1{rng.randint(10**9, 10**10)}"),
    ("date or time", lambda: f"delivered on {rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2020, 2030)} at {rng.randint(0, 23)}:{rng.randint(0, 59):02d}"),
    ("date or time", lambda: f"{rng.randint(2020, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"),
    ("date or time", lambda: f"ts={rng.randint(1_600_000_000_000, 1_900_000_000_000)}"),
    ("IBAN", lambda: f"please wire it to {iban()}"),
    ("IP address", lambda: f"my IP is {rng.randint(1, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"),
    ("UUID", lambda: f"request id {uuid()}"),
    ("version", lambda: f"app version {rng.randint(1, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}"),
    ("price", lambda: f"I paid ${rng.randint(1, 9999):,}.{rng.randint(0, 99):02d} twice"),
    ("price", lambda: f"le total est de {rng.randint(1, 999)} {rng.randint(100, 999)},{rng.randint(0, 99):02d} €"),
    ("masked card", lambda: f"the card {masked()} was declined"),
    ("Luhn failure", lambda: f"is {luhn_failure()} right?"),
    ("long digit run", lambda: "ref " + "".join(rng.choice("0123456789") for _ in range(rng.randint(20, 30)))),
    ("other", lambda: f"I bought {rng.randint(2, 12)} items for {rng.randint(10, 500)} dollars on the {rng.randint(1, 28)}th"),
    ("other", lambda: f"account {rng.randint(10**11, 10**12)}"),
]
for _ in range(260):
    cat, make = rng.choice(NEGATIVES)
    add(make(), False, cat)

with OUT.open("w") as f:
    for line in lines:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
print(f"{len(lines)} lines, {sum(l['blocked'] for l in lines)} with a card number -> {OUT.relative_to(ROOT)}")
