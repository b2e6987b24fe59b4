import { execFileSync } from "node:child_process"
import { createSign } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { stringToSign } from "../../src/webhook/sns.ts"
import type { SnsMessage } from "../../schemas/events/S3Event.ts"
import { onStop } from "./services.ts"

/**
 * Stands in for SNS, which lives on the internet: a signing key and its X.509 certificate (made by
 * openssl), a local HTTP server that serves the certificate and records subscription
 * confirmations, and a signer that produces messages exactly as SNS signs them.
 */
export const fakeSns = async () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-sns-"))
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    "-subj", "/CN=sns.test.local", "-days", "2"
  ], { stdio: "pipe" })
  const key = readFileSync(join(dir, "key.pem"), "utf8")
  const cert = readFileSync(join(dir, "cert.pem"), "utf8")
  rmSync(dir, { recursive: true, force: true })
  const confirmations: Array<string> = []
  let certificateFetches = 0
  const server = createServer((request, response) => {
    if (request.url?.startsWith("/cert.pem")) {
      certificateFetches++
      response.writeHead(200, { "content-type": "application/x-pem-file" }).end(cert)
    } else if (request.url?.startsWith("/confirm")) {
      confirmations.push(request.url)
      response.writeHead(200, { "content-type": "text/xml" }).end("<ConfirmSubscriptionResponse/>")
    } else response.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`
  onStop(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const topic = "arn:aws:sns:eu-west-3:123456789012:loaders-deliveries"

  const sign = (fields: Omit<SnsMessage, "Signature" | "SigningCertURL" | "SignatureVersion" | "MessageId" | "Timestamp" | "TopicArn"> & Partial<SnsMessage>, version: "1" | "2" = "2"): SnsMessage => {
    const message = {
      MessageId: crypto.randomUUID(),
      Timestamp: new Date().toISOString(),
      TopicArn: topic,
      SignatureVersion: version,
      SigningCertURL: `${base}/cert.pem`,
      Signature: "",
      ...fields
    } as SnsMessage
    const signature = createSign(version === "1" ? "RSA-SHA1" : "RSA-SHA256").update(stringToSign(message), "utf8").sign(key, "base64")
    return { ...message, Signature: signature }
  }

  /** An S3 event notification as SNS delivers it. */
  const notification = (s3Event: unknown, version: "1" | "2" = "2") =>
    sign({ Type: "Notification", Message: JSON.stringify(s3Event), Subject: "Amazon S3 Notification" }, version)

  return {
    base,
    topic,
    urlPattern: "^http://127\\.0\\.0\\.1:\\d+/",
    sign,
    notification,
    confirmations,
    certificateFetches: () => certificateFetches
  }
}
