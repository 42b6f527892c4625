#!/usr/bin/env python3
"""Compare deskgate's card-number screen with Presidio's CreditCardRecognizer.

    pip install presidio-analyzer
    cargo build --release -p deskgate
    python3 docs/screen/compare_presidio.py --deskgate target/release/deskgate

Both read docs/screen/corpus.jsonl (built by build_corpus.py). deskgate runs as
`deskgate scan`, one JSON line per message, lines of one conversation sharing their
tail; Presidio's recognizer is called on each message alone, without an NLP engine
(it has no notion of a conversation). A message counts as blocked by Presidio when
the recognizer returns any result (it keeps only Luhn-valid matches).

Prints a Markdown table of recall on messages with a card number, false blocks on
messages without one, per category, and throughput on the corpus repeated.
"""
import argparse
import collections
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def deskgate_lines(lines, rep=0):
    out = []
    for line in lines:
        msg = {"text": line["text"]}
        if "conversation" in line:
            msg["conversation"] = f"{rep}-{line['conversation']}"
        out.append(json.dumps(msg, ensure_ascii=False))
    return "\n".join(out) + "\n"


def run_deskgate(cmd, payload):
    start = time.perf_counter()
    proc = subprocess.run(cmd, input=payload.encode(), capture_output=True, check=True)
    elapsed = time.perf_counter() - start
    return proc.stdout.decode().splitlines(), elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(HERE / "corpus.jsonl"))
    ap.add_argument("--deskgate", default="target/release/deskgate", help="the deskgate binary")
    ap.add_argument("--scan-args", default="scan", help="arguments that select the scan command")
    ap.add_argument("--repeat", type=int, default=300, help="corpus repetitions for throughput")
    ap.add_argument("--show-misses", action="store_true", help="list every disagreement with the labels")
    args = ap.parse_args()

    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

    lines = load(args.corpus)
    cmd = [args.deskgate] + shlex.split(args.scan_args)

    out, _ = run_deskgate(cmd, deskgate_lines(lines))
    if len(out) != len(lines):
        sys.exit(f"deskgate answered {len(out)} lines for {len(lines)}")
    ours = [json.loads(o).get("blocked") is True for o in out]

    recognizer = CreditCardRecognizer()

    def presidio_blocks(text):
        return bool(recognizer.analyze(text, entities=["CREDIT_CARD"], nlp_artifacts=None))

    theirs = [presidio_blocks(line["text"]) for line in lines]

    # Per category: messages, and how many each blocked.
    stats = collections.defaultdict(lambda: [0, 0, 0])
    for line, a, b in zip(lines, ours, theirs):
        s = stats[(line["blocked"], line["category"])]
        s[0] += 1
        s[1] += a
        s[2] += b

    def pct(n, d):
        return f"{100 * n / d:.1f}%" if d else "-"

    positives = [i for i, l in enumerate(lines) if l["blocked"]]
    negatives = [i for i, l in enumerate(lines) if not l["blocked"]]
    print(f"Corpus: {len(lines)} messages, {len(positives)} with a card number, {len(negatives)} without.\n")
    print("| | deskgate scan | Presidio CreditCardRecognizer |")
    print("|---|---|---|")
    print(f"| recall (messages with a card number blocked) | {pct(sum(ours[i] for i in positives), len(positives))} "
          f"({sum(ours[i] for i in positives)}/{len(positives)}) | {pct(sum(theirs[i] for i in positives), len(positives))} "
          f"({sum(theirs[i] for i in positives)}/{len(positives)}) |")
    print(f"| false blocks (messages without one blocked) | {pct(sum(ours[i] for i in negatives), len(negatives))} "
          f"({sum(ours[i] for i in negatives)}/{len(negatives)}) | {pct(sum(theirs[i] for i in negatives), len(negatives))} "
          f"({sum(theirs[i] for i in negatives)}/{len(negatives)}) |")

    # Throughput: deskgate as a process (start-up and JSON included), Presidio in-process.
    text_bytes = sum(len(l["text"].encode()) for l in lines)
    payload = "".join(deskgate_lines(lines, rep) for rep in range(args.repeat))
    _, elapsed = run_deskgate(cmd, payload)
    ours_rate = (text_bytes * args.repeat / elapsed / 1e6, len(lines) * args.repeat / elapsed)
    reps = max(1, args.repeat // 10)
    start = time.perf_counter()
    for _ in range(reps):
        for line in lines:
            presidio_blocks(line["text"])
    elapsed = time.perf_counter() - start
    theirs_rate = (text_bytes * reps / elapsed / 1e6, len(lines) * reps / elapsed)
    print(f"| throughput | {ours_rate[0]:.1f} MB/s, {ours_rate[1]:,.0f} messages/s | "
          f"{theirs_rate[0]:.2f} MB/s, {theirs_rate[1]:,.0f} messages/s |")
    print()

    print("| messages with a card number | n | deskgate | Presidio |")
    print("|---|---|---|---|")
    for (blocked, cat), (n, a, b) in sorted(stats.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        if blocked:
            print(f"| {cat} | {n} | {a} | {b} |")
    print()
    print("| messages without one (blocked = false block) | n | deskgate | Presidio |")
    print("|---|---|---|---|")
    for (blocked, cat), (n, a, b) in sorted(stats.items(), key=lambda kv: kv[0][1]):
        if not blocked:
            print(f"| {cat} | {n} | {a} | {b} |")

    if args.show_misses:
        print()
        for line, a, b in zip(lines, ours, theirs):
            if a != line["blocked"] or b != line["blocked"]:
                print(f"label={line['blocked']!s:5} deskgate={a!s:5} presidio={b!s:5} {line['category']}: {line['text']!r}")


if __name__ == "__main__":
    main()
