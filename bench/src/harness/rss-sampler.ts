/** Samples this process's resident set size on an interval and keeps the peak. */
export class RssSampler {
  #timer: NodeJS.Timeout | undefined;
  #peak = 0;
  #first = 0;
  #last = 0;

  start(intervalMs = 100): void {
    this.#first = process.memoryUsage.rss();
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
    this.#timer.unref();
  }

  stop(): { startRssBytes: number; peakRssBytes: number; endRssBytes: number } {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sample();
    return { startRssBytes: this.#first, peakRssBytes: this.#peak, endRssBytes: this.#last };
  }

  #sample(): void {
    this.#last = process.memoryUsage.rss();
    if (this.#last > this.#peak) this.#peak = this.#last;
  }
}
