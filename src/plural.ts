// English counts for every layer's messages: "1 pin", "2 pins".

/** `n` and `what`, in its plural form (`what` and an s, unless given) unless n is 1. */
export const plural = (n: number, what: string, whats = `${what}s`): string => `${n} ${n === 1 ? what : whats}`;
