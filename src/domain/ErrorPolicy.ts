/**
 * What a delivery's rejected records do to it. `strict` (the default): one rejection fails the
 * delivery and nothing of it is loaded. `threshold`: fails when the share of rejected records is
 * above `maxRejectedRatio`. `lenient`: the valid records are loaded whatever the rejections.
 */
export type ErrorPolicy =
  | { readonly mode: "strict" }
  | { readonly mode: "lenient" }
  | { readonly mode: "threshold"; readonly maxRejectedRatio: number }

export const STRICT: ErrorPolicy = { mode: "strict" }

/** Whether a delivery with `invalid` of `read` records rejected may be committed. */
export const accepts = (policy: ErrorPolicy, read: number, invalid: number): boolean => {
  switch (policy.mode) {
    case "strict":
      return invalid === 0
    case "lenient":
      return true
    case "threshold":
      return read === 0 ? true : invalid / read <= policy.maxRejectedRatio
  }
}

/** The policy in words, for reports. */
export const describePolicy = (policy: ErrorPolicy): string =>
  policy.mode === "threshold" ? `threshold (max ${(policy.maxRejectedRatio * 100).toFixed(2)}% rejected)` : policy.mode
