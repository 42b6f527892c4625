// The audio worklet of a call leg (served as /assets/voice-worklet.js): the microphone's
// samples, at the AudioContext's rate (16 kHz), are cut into 20 ms PCM16 frames and posted to
// the page, which sends them over /media/pcm; frames from the page are played through the
// jitter buffer. Runs on the audio thread, so it allocates nothing per sample.
import { JitterBuffer } from "./jitter";

declare const sampleRate: number;
declare function registerProcessor(name: string, ctor: unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}

interface Options {
  processorOptions: { frameMs: number; targetMs: number; capMs: number };
}

class PcmLeg extends AudioWorkletProcessor {
  private readonly frame: number;
  private out: Int16Array;
  private fill = 0;
  private sent = 0;
  private readonly jitter: JitterBuffer;
  private quanta = 0;
  private peakIn = 0;
  private peakOut = 0;

  constructor(options: Options) {
    super();
    const o = options.processorOptions;
    const perMs = sampleRate / 1000;
    this.frame = Math.round(o.frameMs * perMs);
    this.out = new Int16Array(this.frame);
    this.jitter = new JitterBuffer(Math.round(o.targetMs * perMs), Math.round(o.capMs * perMs));
    this.port.onmessage = (e: MessageEvent) => {
      const d = e.data;
      if (d.play) this.jitter.push(new Int16Array(d.play));
      else if (d.clear) this.jitter.clear();
    };
  }

  process(inputs: Float32Array[][], outputs: Float32Array[][]): boolean {
    const mic = inputs[0]?.[0];
    if (mic) {
      for (let i = 0; i < mic.length; i++) {
        const s = Math.max(-1, Math.min(1, mic[i]));
        this.peakIn = Math.max(this.peakIn, Math.abs(s));
        this.out[this.fill++] = s < 0 ? s * 32768 : s * 32767;
        if (this.fill === this.frame) {
          this.port.postMessage({ frame: this.out.buffer }, [this.out.buffer]);
          this.out = new Int16Array(this.frame);
          this.fill = 0;
          this.sent++;
        }
      }
    }
    const speaker = outputs[0]?.[0];
    if (speaker) {
      this.jitter.pull(speaker);
      for (let i = 0; i < speaker.length; i++) this.peakOut = Math.max(this.peakOut, Math.abs(speaker[i]));
      for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(speaker);
    }
    // About every 250 ms: what the page shows and the tests read.
    if (++this.quanta % Math.round(sampleRate / 128 / 4) === 0) {
      const j = this.jitter;
      this.port.postMessage({
        stats: {
          sent: this.sent,
          received: j.received,
          played: j.played,
          underruns: j.underruns,
          dropped: j.dropped,
          bufferedMs: Math.round((j.buffered * 1000) / sampleRate),
          micPeak: this.peakIn,
          speakerPeak: this.peakOut,
        },
      });
      this.peakIn = 0;
      this.peakOut = 0;
    }
    return true;
  }
}

registerProcessor("deskgate-pcm", PcmLeg);
