// The playback side of a call leg: 20 ms PCM16 frames arrive from the socket with network
// jitter and are played out at the audio clock's pace. Playback starts (and restarts after
// running dry) once `target` samples wait, which absorbs jitter up to that much; what waits
// is capped at `cap` samples, and on overflow the oldest frames are dropped, so the delay
// never grows past the cap however the sender bunches its frames.
export class JitterBuffer {
  private frames: Int16Array[] = [];
  private head = 0; // samples of frames[0] already played
  private waiting = 0; // samples waiting, all frames
  private playing = false;
  received = 0;
  dropped = 0;
  underruns = 0;
  played = 0;

  constructor(
    readonly target: number,
    readonly cap: number,
  ) {}

  /** Samples waiting to be played. */
  get buffered(): number {
    return this.waiting;
  }

  push(frame: Int16Array): void {
    this.received++;
    this.frames.push(frame);
    this.waiting += frame.length;
    while (this.waiting > this.cap && this.frames.length > 1) {
      const old = this.frames.shift()!;
      this.waiting -= old.length - this.head;
      this.head = 0;
      this.dropped++;
    }
  }

  /** Drops everything waiting (the other side asked to clear playback). */
  clear(): void {
    this.frames = [];
    this.head = 0;
    this.waiting = 0;
    this.playing = false;
  }

  /** Fills `out` with the next samples as floats in [-1, 1); silence while buffering. */
  pull(out: Float32Array): void {
    if (!this.playing && this.waiting >= this.target) this.playing = true;
    let i = 0;
    while (i < out.length && this.playing) {
      const f = this.frames[0];
      if (!f) {
        this.playing = false;
        this.underruns++;
        break;
      }
      const n = Math.min(out.length - i, f.length - this.head);
      for (let k = 0; k < n; k++) out[i + k] = f[this.head + k] / 32768;
      i += n;
      this.head += n;
      this.waiting -= n;
      this.played += n;
      if (this.head === f.length) {
        this.frames.shift();
        this.head = 0;
      }
    }
    out.fill(0, i);
  }
}
