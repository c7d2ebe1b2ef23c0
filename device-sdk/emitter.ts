/** A minimal typed event emitter that runs in every JavaScript runtime (no node:events). */
export class TypedEmitter<Events extends Record<string, unknown[]>> {
  private readonly listeners: { [K in keyof Events]?: Array<(...args: Events[K]) => void> } = {};

  on<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    // Each change makes a new list, so an emit() in progress keeps the list it started with.
    this.listeners[event] = [...(this.listeners[event] ?? []), listener];
    return this;
  }

  off<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    this.listeners[event] = this.listeners[event]?.filter((l) => l !== listener);
    return this;
  }

  once<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const wrapped = (...args: Events[K]) => {
      this.off(event, wrapped);
      listener(...args);
    };
    return this.on(event, wrapped);
  }

  protected emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    for (const l of this.listeners[event] ?? []) {
      try {
        l(...args);
      } catch {
        /* a throwing listener must not break the device loop */
      }
    }
  }
}
