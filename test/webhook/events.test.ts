import { describe, expect, test } from "bun:test"
import { Result } from "effect"
import { decodeEventKey, newerSequencer, objectEvents } from "../../src/webhook/events.ts"
import { awsEvent, encodeEventKey, eventBridgeEvent, minioEvent, testEvent } from "../support/events.ts"

const created = (body: unknown) => {
  const result = objectEvents(body)
  if (Result.isFailure(result)) throw new Error(result.failure.reason)
  return result.success
}

describe("S3 event decoding", () => {
  const key = "incoming/agence côte/relevé 1+1 %2B/données été.json"

  test("keys are decoded exactly once: + is a space, %2B a plus, a literal %2B survives", () => {
    expect(encodeEventKey(key)).toBe("incoming/agence+c%C3%B4te/relev%C3%A9+1%2B1+%252B/donn%C3%A9es+%C3%A9t%C3%A9.json")
    expect(decodeEventKey(encodeEventKey(key))).toBe(key)
  })

  test("AWS, MinIO and EventBridge shapes give the same created objects", () => {
    expect(created(awsEvent("b", [key])).created.map((e) => [e.bucket, e.key])).toEqual([["b", key]])
    expect(created(minioEvent("b", key)).created.map((e) => [e.bucket, e.key])).toEqual([["b", key]])
    expect(created(eventBridgeEvent("b", key)).created.map((e) => [e.bucket, e.key, e.etag])).toEqual([["b", key, "0123456789abcdef"]])
  })

  test("the test event and other event types are acknowledged and ignored", () => {
    expect(created(testEvent("b"))).toEqual({ created: [], ignored: 1 })
    expect(created(awsEvent("b", ["x"], "ObjectRemoved:Delete"))).toEqual({ created: [], ignored: 1 })
    expect(created({ ...eventBridgeEvent("b", "x"), "detail-type": "Object Deleted" })).toEqual({ created: [], ignored: 1 })
  })

  test("anything else is a bad request that says what was expected", () => {
    for (const body of [{}, [], "text", { Records: [{ eventName: "ObjectCreated:Put" }] }]) {
      const result = objectEvents(body)
      expect(Result.isFailure(result)).toBe(true)
    }
    const bad = objectEvents({ Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: "b" }, object: { key: "%E0%A4%A" } } }] })
    expect(Result.isFailure(bad) && bad.failure.reason).toContain("not validly URL-encoded")
  })

  test("sequencers compare as hexadecimal values", () => {
    expect(newerSequencer("0055AED6DCD90281E6", "0055AED6DCD90281E5")).toBe(true)
    expect(newerSequencer("0055AED6DCD90281E5", "0055AED6DCD90281E5")).toBe(false)
    expect(newerSequencer("1000", "FFF")).toBe(true)
  })
})
