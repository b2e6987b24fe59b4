import type { DeliveryLoaded } from "../../schemas/events/DeliveryLoaded.ts"
import type { OutboxEvent } from "../effects/Outbox.ts"
import type { Landing } from "../effects/Sink.ts"
import type { KeyRange } from "./keyRanges.ts"
import type { DeliveryReport } from "./Report.ts"

/** The `delivery.loaded` events of a committed run: one per dataset of its report. */
export const loadedEvents = (
  report: DeliveryReport,
  landings: ReadonlyArray<Landing>,
  ranges: ReadonlyMap<string, KeyRange>,
  occurredAt: Date
): Array<OutboxEvent> =>
  Object.entries(report.datasets).map(([dataset, counts]) => {
    const id = `delivery.loaded:${report.runId}:${dataset}`
    const payload: DeliveryLoaded = {
      id,
      type: "delivery.loaded",
      occurredAt: occurredAt.toISOString(),
      partner: report.partner,
      delivery: report.delivery,
      runId: report.runId ?? "",
      dataset,
      counts,
      keyRange: ranges.get(dataset) ?? null,
      destinations: landings.filter((l) => l.dataset === dataset).map(({ sink, rows, paths }) => ({ sink, rows, paths }))
    }
    return { id, type: payload.type, partner: report.partner, payload }
  })
