// The log level a reload switches, and the reload's own outcome line. The line is written
// while the more verbose of the old and the new level is in force: a reload that quiets the
// log (info → warn) still leaves the line that says why it went quiet, as one that opens it
// (warn → info) does; a reload at warn that changes nothing stays unwritten.
import type { Logger } from 'pino';

/** A pino level's rank; 'silent' (not among pino's values) is above every level. */
const rank = (log: Logger, level: string): number => log.levels.values[level] ?? Number.POSITIVE_INFINITY;

export class ReloadLevel {
  readonly #log: Logger;
  /** The level in force before a switch whose reload's outcome line is not written yet. */
  #before: string | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Puts `level` in force; the outcome line still to come is written under the old one too. */
  switch(level: string): void {
    if (level === this.#log.level) return;
    this.#before ??= this.#log.level;
    this.#log.level = level;
  }

  /** Writes a reload's outcome line (see above), then leaves the new level in force. */
  outcome(write: () => void): void {
    const before = this.#before;
    this.#before = undefined;
    const now = this.#log.level;
    if (before === undefined || rank(this.#log, before) >= rank(this.#log, now)) return write();
    this.#log.level = before;
    try {
      write();
    } finally {
      this.#log.level = now;
    }
  }
}
