/**
 * True when `value` is nested at most `max` levels deep. Iterative, so it cannot overflow the stack on the
 * hostile inputs it exists to refuse (request bodies, device frames).
 */
export function jsonDepth(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (d > max) return false;
    for (const child of Object.values(v)) if (child !== null && typeof child === "object") stack.push([child, d + 1]);
  }
  return true;
}
