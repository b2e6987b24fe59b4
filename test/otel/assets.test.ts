import { describe, expect, test } from "bun:test"
import { existsSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { queueMetrics } from "../../src/effects/JobQueue.ts"
import { s3Metrics } from "../../src/effects/ObjectStore.ts"
import { httpMetrics } from "../../src/entrypoints/http.ts"
import { metrics } from "../../src/pipeline/metrics.ts"

const OTEL = fileURLToPath(new URL("../../otel/", import.meta.url))
const yaml = (name: string) => Bun.YAML.parse(readFileSync(join(OTEL, name), "utf8")) as Record<string, unknown>

/** Prometheus names of what the code emits: dots become underscores (counters get `_total`). */
const emitted = new Set(
  [...Object.values(metrics), ...Object.values(queueMetrics), ...Object.values(s3Metrics), ...Object.values(httpMetrics)].map((metric) =>
    metric.id.replaceAll(".", "_")
  )
)

interface Panel {
  readonly id: number
  readonly title: string
  readonly targets: ReadonlyArray<{ readonly expr: string }>
}

describe("observability assets", () => {
  test("the collector config is well-formed: every pipeline names components it declares", () => {
    const config = yaml("collector.yaml") as {
      receivers: Record<string, unknown>
      processors: Record<string, unknown>
      exporters: Record<string, unknown>
      service: { pipelines: Record<string, { receivers: Array<string>; processors: Array<string>; exporters: Array<string> }> }
    }
    expect(Object.keys(config.service.pipelines).sort()).toEqual(["metrics", "traces"])
    for (const pipeline of Object.values(config.service.pipelines)) {
      for (const name of pipeline.receivers) expect(config.receivers).toHaveProperty([name])
      for (const name of pipeline.processors) expect(config.processors).toHaveProperty([name])
      for (const name of pipeline.exporters) expect(config.exporters).toHaveProperty([name])
    }
  })

  test("the compose file starts the collector, Jaeger, Prometheus and Grafana with files that exist", () => {
    const compose = yaml("compose.yaml") as { services: Record<string, { volumes?: Array<string> }> }
    expect(Object.keys(compose.services).sort()).toEqual(["collector", "grafana", "jaeger", "prometheus"])
    for (const service of Object.values(compose.services)) {
      for (const volume of service.volumes ?? []) expect(existsSync(join(OTEL, volume.split(":")[0]!))).toBe(true)
    }
    const datasources = yaml("grafana/provisioning/datasources/datasources.yaml") as { datasources: Array<{ uid: string }> }
    expect(datasources.datasources.map((d) => d.uid).sort()).toEqual(["jaeger", "prometheus"])
    expect(existsSync(dirname(join(OTEL, "grafana/dashboards/loaders.json")))).toBe(true)
  })

  test("every dashboard query names a metric the code emits, and every metric is on the dashboard", () => {
    const dashboard = JSON.parse(readFileSync(join(OTEL, "grafana/dashboards/loaders.json"), "utf8")) as { panels: Array<Panel> }
    const ids = dashboard.panels.map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    const used = new Set<string>()
    for (const panel of dashboard.panels) {
      expect(panel.targets.length).toBeGreaterThan(0)
      for (const { expr } of panel.targets) {
        const names = expr.match(/loaders_[a-z0-9_]+/g) ?? []
        expect([panel.title, names.length > 0]).toEqual([panel.title, true])
        for (const name of names) {
          const base = name.replace(/_(total|bucket|sum|count)$/, "")
          expect([panel.title, name, emitted.has(base)]).toEqual([panel.title, name, true])
          used.add(base)
        }
      }
    }
    expect([...emitted].filter((name) => !used.has(name))).toEqual([])
  })

  test("the queue and incoming gauges (the same queue-wide count from every process) are shown with max, never summed; dead letters have a panel", () => {
    const dashboard = JSON.parse(readFileSync(join(OTEL, "grafana/dashboards/loaders.json"), "utf8")) as { panels: Array<Panel> }
    const queue = new Set(
      [...Object.values(queueMetrics), metrics.incomingFolders, metrics.incomingOldestAge].map((metric) => metric.id.replaceAll(".", "_"))
    )
    const uses = dashboard.panels.flatMap((panel) =>
      panel.targets.flatMap(({ expr }) =>
        (expr.match(/loaders_(queue|incoming)_[a-z_]+/g) ?? []).map((name) => ({ panel: panel.title, name, expr }))
      )
    )
    expect(new Set(uses.map((use) => use.name))).toEqual(queue)
    for (const use of uses) expect([use.panel, use.expr]).toEqual([use.panel, `max(${use.name})`])
    const dead = dashboard.panels.filter((panel) => panel.targets.some(({ expr }) => expr.includes("loaders_queue_dead_letters")))
    expect(dead.map((panel) => panel.title)).toEqual(["Dead letters"])
  })
})
