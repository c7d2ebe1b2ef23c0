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

/**
 * {@link jsonDepth} of a value just parsed from `text`, skipping the walk when the text is too short to nest
 * deeper than `max`: each level takes an opening and a closing bracket, so a text under `2 * (max + 1)`
 * characters cannot (issue 15: device frames are checked on every call and are almost all far below that).
 */
export function parsedJsonDepth(text: string, value: unknown, max: number): boolean {
  return text.length < 2 * (max + 1) || jsonDepth(value, max);
}
