import { createServer } from "node:http"
import { onStop } from "./services.ts"

/** An OTLP attribute value as the JSON encoding carries it. */
type AnyValue = { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean }
interface Attribute {
  readonly key: string
  readonly value: AnyValue
}

export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly attributes: Readonly<Record<string, string | number | boolean>>
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
  readonly status?: { readonly code?: number }
}

export interface ReceivedPoint {
  readonly metric: string
  readonly attributes: Readonly<Record<string, string | number | boolean>>
  readonly value: number
}

const plain = (attributes: ReadonlyArray<Attribute> | undefined) =>
  Object.fromEntries(
    (attributes ?? []).map(({ key, value }) => [
      key,
      value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.doubleValue ?? value.boolValue ?? "")
    ])
  )

/**
 * A local OTLP/HTTP receiver (JSON encoding, what the OTLP/HTTP exporters send) that decodes what
 * arrives into spans and metric points, standing in for a collector.
 */
export const otlpReceiver = async () => {
  const spans: Array<ReceivedSpan> = []
  const points: Array<ReceivedPoint> = []
  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}")
      if (request.url === "/v1/traces") {
        for (const resource of body.resourceSpans ?? []) {
          for (const scope of resource.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              spans.push({
                traceId: span.traceId,
                spanId: span.spanId,
                ...(span.parentSpanId ? { parentSpanId: span.parentSpanId } : {}),
                name: span.name,
                attributes: plain(span.attributes),
                links: (span.links ?? []).map((l: { traceId: string; spanId: string }) => ({ traceId: l.traceId, spanId: l.spanId })),
                status: span.status
              })
            }
          }
        }
      } else if (request.url === "/v1/metrics") {
        for (const resource of body.resourceMetrics ?? []) {
          for (const scope of resource.scopeMetrics ?? []) {
            for (const metric of scope.metrics ?? []) {
              const data = metric.sum ?? metric.gauge ?? metric.histogram
              for (const point of data?.dataPoints ?? []) {
                points.push({
                  metric: metric.name,
                  attributes: plain(point.attributes),
                  value: Number(point.asDouble ?? point.asInt ?? point.count ?? 0)
                })
              }
            }
          }
        }
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  onStop(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const address = server.address()
  return { endpoint: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, spans, points }
}

/** The latest value of each cumulative metric series, summed over series matching `filter`. */
export const total = (points: ReadonlyArray<ReceivedPoint>, metric: string, filter: Record<string, string> = {}) => {
  const latest = new Map<string, number>()
  for (const point of points) {
    if (point.metric !== metric) continue
    if (!Object.entries(filter).every(([k, v]) => point.attributes[k] === v)) continue
    latest.set(JSON.stringify(point.attributes), point.value)
  }
  return [...latest.values()].reduce((a, b) => a + b, 0)
}
