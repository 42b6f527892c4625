"""A telephony provider's side of a Twilio Media Streams call, for the end-to-end tests.

It connects to the gateway's /media/twilio as Twilio would, sends `connected` and `start`
(with the media token in customParameters), prints `started`, and waits for a line `go` on
stdin. Then it streams a sine tone as base64 μ-law at 8 kHz in 20 ms frames, paced in real
time, presses DTMF keys at given times, echoes every `mark` back (as Twilio does once the
audio before it has played), and counts what the gateway sends: `media` frames (their
frequency by zero crossings), `mark` and `clear`. At the end it sends `stop` and prints one
JSON line with what it saw, with the sounds it got (`tones`: frequency and length; a run of
loud 20 ms frames, or one longer media message) so the test can tell a beep from speech.

While it streams, a line `keys DIGITS` on stdin presses those keys, 150 ms apart, from then
on: the tests key in a code they read from an email only once the call is up.

The audio is `--audio FILE`, raw μ-law at 8 kHz (the tests make it with sox), or else a tone
of `--hz` computed here; `--dialect telnyx` uses Telnyx's snake_case.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import math
import sys
import threading
import time

from websockets.asyncio.client import connect

BIAS = 0x84
CLIP = 8159
SEG_END = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]


def ulaw_encode(sample):
    v = sample >> 2
    if v < 0:
        v, mask = -v, 0x7F
    else:
        mask = 0xFF
    v = min(v, CLIP) + (BIAS >> 2)
    for seg, end in enumerate(SEG_END):
        if v <= end:
            return (((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask) & 0xFF
    return 0x7F ^ mask


def ulaw_decode(code):
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4)
    return BIAS - t if u & 0x80 else t - BIAS


def tone_frame(hz, index, amplitude=8000, rate=8000, samples=160):
    start = index * samples
    return bytes(
        ulaw_encode(int(amplitude * math.sin(2 * math.pi * hz * (start + i) / rate)))
        for i in range(samples)
    )


def without_gaps(samples, gap=40):
    """The samples without the runs of `gap` or more zeros (the silence between beeps)."""
    out, zeros = [], []
    for x in samples:
        if x == 0:
            zeros.append(x)
            continue
        if len(zeros) < gap:
            out.extend(zeros)
        zeros = []
        out.append(x)
    return out


def frequency(samples, rate=8000):
    ups = sum(1 for a, b in zip(samples, samples[1:]) if a < 0 <= b)
    return ups * rate / max(len(samples), 1)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", default="", help="put in the custom parameters; empty: none")
    p.add_argument("--call", required=True)
    p.add_argument("--hz", type=float, default=440.0)
    p.add_argument("--audio", default="", help="raw μ-law 8 kHz to send instead of the tone (looped)")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--dtmf", default="", help="digit@seconds,digit@seconds")
    p.add_argument("--dialect", default="twilio", choices=["twilio", "telnyx"])
    p.add_argument("--auth-token", default="", help="sign the upgrade with X-Twilio-Signature as Twilio does")
    p.add_argument("--identity", default="", help="the caller's signed identity, put in the custom parameters")
    a = p.parse_args()
    tw = a.dialect == "twilio"
    seq_key = "sequenceNumber" if tw else "sequence_number"
    stream_key = "streamSid" if tw else "stream_id"
    stream = "MZ" + a.call[2:] if tw else "stream-" + a.call
    seq = 0

    def event(name, **body):
        nonlocal seq
        seq += 1
        e = {"event": name, seq_key: str(seq), stream_key: stream}
        e.update(body)
        return json.dumps(e)

    keys = []
    for item in filter(None, a.dtmf.split(",")):
        digit, at = item.split("@")
        keys.append((float(at), digit))
    keys.sort()

    seen = {"media": 0, "marks": [], "clears": 0, "samples": [], "closed": None}
    headers = {}
    if a.auth_token:
        # Twilio's request signature: base64 HMAC-SHA1 of the URL (a WebSocket has no POST body).
        mac = hmac.new(a.auth_token.encode(), a.url.encode(), hashlib.sha1).digest()
        headers["X-Twilio-Signature"] = base64.b64encode(mac).decode()
    async with connect(a.url, max_size=2**20, additional_headers=headers) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        if tw:
            start = {
                "streamSid": stream, "accountSid": "AC0", "callSid": a.call,
                "tracks": ["inbound"],
                "customParameters": {"from": "+15550100"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }
        else:
            start = {
                "call_control_id": a.call,
                "custom_parameters": {},
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            }
        params = start["customParameters" if tw else "custom_parameters"]
        if a.token:
            params["token"] = a.token
        if a.identity:
            params["identity"] = a.identity
        await ws.send(event("start", start=start))
        print("started", flush=True)
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            return

        async def reader():
            try:
                async for msg in ws:
                    e = json.loads(msg)
                    kind = e.get("event")
                    if e.get(stream_key) != stream:
                        # Not in this dialect's spelling, or for another stream: not counted.
                        kind = "foreign"
                    if kind == "media":
                        seen["media"] += 1
                        raw = base64.b64decode(e["media"]["payload"])
                        seen["samples"].append([ulaw_decode(c) for c in raw])
                    elif kind == "mark":
                        name = e["mark"]["name"]
                        seen["marks"].append(name)
                        await ws.send(event("mark", mark={"name": name}))
                    elif kind == "clear":
                        seen["clears"] += 1
            except Exception as ex:  # the gateway closed: keep what was seen
                seen["closed"] = str(ex)

        task = asyncio.create_task(reader())
        t0 = time.monotonic()

        def commands():
            # A thread of its own that does not keep the peer alive once the call is over.
            for line in sys.stdin:
                verb, _, digits = line.strip().partition(" ")
                if verb == "keys":
                    loop.call_soon_threadsafe(press, digits)

        def press(digits):
            now = time.monotonic() - t0
            keys.extend((now + 0.15 * i, d) for i, d in enumerate(digits))
            keys.sort()

        threading.Thread(target=commands, daemon=True).start()
        frames = int(a.seconds * 50)
        audio = open(a.audio, "rb").read() if a.audio else b""
        if a.audio and len(audio) < 160:
            sys.exit(f"{a.audio}: less than 20 ms of audio")
        for i in range(frames):
            at = i * 0.02
            while keys and keys[0][0] <= at:
                _, digit = keys.pop(0)
                await ws.send(event("dtmf", dtmf={"track": "inbound_track", "digit": digit}))
            if audio:
                at_byte = (i * 160) % (len(audio) - len(audio) % 160)
                chunk = audio[at_byte : at_byte + 160]
            else:
                chunk = tone_frame(a.hz, i)
            payload = base64.b64encode(chunk).decode()
            media = {"track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20), "payload": payload}
            await ws.send(event("media", media=media))
            delay = t0 + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        # What the agent said last is still on its way.
        await asyncio.sleep(0.5)
        await ws.send(event("stop", stop={"accountSid": "AC0", "callSid": a.call}))
        try:
            await asyncio.wait_for(task, 5)
        except asyncio.TimeoutError:
            task.cancel()
    frames = seen.pop("samples")

    def is_loud(f):
        return math.sqrt(sum(x * x for x in f) / max(len(f), 1)) > 1000

    loud = [f for f in frames if is_loud(f)]
    tones, run = [], []

    def close_run():
        if run:
            tone = without_gaps([x for g in run for x in g])
            tones.append({"hz": round(frequency(tone)), "samples": sum(map(len, run))})
            run.clear()

    for f in frames:
        if len(f) != 160:
            # Longer than 20 ms: a sound played in one piece (the gateway's tones).
            close_run()
            run.append(f)
            close_run()
        elif is_loud(f):
            run.append(f)
        else:
            close_run()
    close_run()
    seen["tones"] = tones
    seen["loud_frames"] = len(loud)
    seen["received_hz"] = frequency([x for f in loud for x in f]) if loud else 0.0
    print(json.dumps(seen), flush=True)


asyncio.run(main())
