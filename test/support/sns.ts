import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { SnsMessage } from "../../schemas/events/S3Event.ts"
import { opensslSign } from "./openssl.ts"
import { onStop } from "./services.ts"

/**
 * The text SNS signs, written here from AWS's documentation ("Verifying the signatures of Amazon
 * SNS messages") rather than taken from src/webhook/sns.ts, so a field the verifier leaves out or
 * misorders makes genuine messages fail. Each field is `Name\nvalue\n`; `Subject` only if present.
 */
const documentedStringToSign = (message: SnsMessage): string => {
  const field = (name: string, value: string | undefined) => (value === undefined ? "" : `${name}\n${value}\n`)
  const { Message, MessageId, Subject, SubscribeURL, Timestamp, Token, TopicArn, Type } = message
  return Type === "Notification"
    ? field("Message", Message) + field("MessageId", MessageId) + field("Subject", Subject) +
      field("Timestamp", Timestamp) + field("TopicArn", TopicArn) + field("Type", Type)
    : field("Message", Message) + field("MessageId", MessageId) + field("SubscribeURL", SubscribeURL) +
      field("Timestamp", Timestamp) + field("Token", Token) + field("TopicArn", TopicArn) + field("Type", Type)
}

/**
 * Stands in for SNS, which lives on the internet: a signing key and its X.509 certificate (made by
 * openssl), a local HTTP server that serves the certificate and records subscription
 * confirmations, and a signer that produces messages exactly as SNS signs them (`openssl dgst`).
 */
export const fakeSns = async () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-sns-"))
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    "-subj", "/CN=sns.test.local", "-days", "2"
  ], { stdio: "pipe" })
  const keyFile = join(dir, "key.pem")
  const cert = readFileSync(join(dir, "cert.pem"), "utf8")
  onStop(async () => rmSync(dir, { recursive: true, force: true }))
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
    return { ...message, Signature: opensslSign(keyFile, version === "1" ? "sha1" : "sha256", documentedStringToSign(message)) }
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
