/**
 * Counts turns of the event loop: a setImmediate that queues itself again runs once per turn. What
 * a test reads from it is an order (did other work get a turn while X ran), never a time.
 */
export function turnCounter(): { readonly count: number; stop(): void } {
  let count = 0;
  let spinning = true;
  const spin = () => {
    if (!spinning) return;
    count++;
    setImmediate(spin);
  };
  setImmediate(spin);
  return {
    get count() {
      return count;
    },
    stop() {
      spinning = false;
    },
  };
}
