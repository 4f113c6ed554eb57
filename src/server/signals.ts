// Signals for `run`: SIGTERM/SIGINT stop (drain), SIGHUP reloads, SIGUSR2 upgrades.
// Installed before anything starts, so a signal that arrives while starting never meets
// Node's default action (SIGHUP and SIGUSR2 would kill the process); it waits for `bind`.

export interface SignalActions {
  stop: (signal: string) => void;
  /** null: this process does not reload itself (a cluster worker: its primary tells it). */
  reload: (() => void) | null;
  /** null: this process does not upgrade itself (a cluster worker). */
  upgrade: (() => void) | null;
}

export class SignalGate {
  #actions: SignalActions | null = null;
  #pendingStop: string | null = null;
  #pendingReload = false;
  #pendingUpgrade = false;

  constructor() {
    process.on('SIGTERM', () => this.#onStop('SIGTERM'));
    process.on('SIGINT', () => this.#onStop('SIGINT'));
    process.on('SIGHUP', () => {
      if (this.#actions) this.#actions.reload?.();
      else this.#pendingReload = true;
    });
    process.on('SIGUSR2', () => {
      if (this.#actions) this.#actions.upgrade?.();
      else this.#pendingUpgrade = true;
    });
  }

  #onStop(signal: string): void {
    if (this.#actions) this.#actions.stop(signal);
    else this.#pendingStop ??= signal;
  }

  bind(actions: SignalActions): void {
    this.#actions = actions;
    if (this.#pendingReload) actions.reload?.();
    if (this.#pendingUpgrade) actions.upgrade?.();
    if (this.#pendingStop) actions.stop(this.#pendingStop);
  }
}
