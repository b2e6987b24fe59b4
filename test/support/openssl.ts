import { execFileSync } from "node:child_process"

/**
 * Signatures made by the `openssl` command, so tests of our verifiers never sign with the code they
 * test: a mistake in what we sign or how shows up as a refused genuine message.
 */

/** Base64 RSA signature (PKCS #1 v1.5) of `text` (UTF-8) with the private key in `keyFile`. */
export const opensslSign = (keyFile: string, digest: "sha1" | "sha256", text: string): string =>
  execFileSync("openssl", ["dgst", `-${digest}`, "-sign", keyFile], { input: Buffer.from(text, "utf8"), timeout: 10_000 })
    .toString("base64")

/** Hex HMAC-SHA256 of `text` (UTF-8) under `secret`. */
export const opensslHmacSha256 = (secret: string, text: string): string =>
  execFileSync("openssl", ["dgst", "-sha256", "-hmac", secret, "-binary"], { input: Buffer.from(text, "utf8"), timeout: 10_000 })
    .toString("hex")
