/**
 * The import rules of issue 11 (`npm run depcheck`, run by .ci/run). The layers, lowest first:
 * the pure core (src/domain, src/stream, schemas) → the edges (src/effects) → the delivery's steps
 * (src/pipeline) → the triggers (src/webhook, src/entrypoints and any other folder of src/). A
 * module imports its own layer or a lower one, never a higher one, and no import closes a cycle.
 * Tests, benchmarks and the fault harness may import anything, but not in a cycle.
 *
 * TypeScript's own parser with `tsPreCompilationDeps` reads the source as written (`.tsx` too, which
 * the swc parser of dependency-cruiser cannot read), so `import type` is an edge like any other: a
 * type-only import the wrong way, or in a cycle, fails the check too.
 */
const CORE = "^(src/domain|src/stream|schemas)/"
const EDGES = "^src/effects/"
const PIPELINE = "^src/pipeline/"
/** Every folder of src/ above the pipeline: triggers and launchers, today and to come. */
const ABOVE_PIPELINE = "^src/(?!domain/|stream/|effects/|pipeline/)"

module.exports = {
  forbidden: [
    {
      name: "no-cycle",
      comment: "An import cycle ties its modules into one: none can be read, tested or moved alone.",
      severity: "error",
      from: {},
      to: { circular: true }
    },
    {
      name: "core-imports-core",
      comment: "The pure core (domain types, stream transforms, schemas) imports no edge, step or trigger.",
      severity: "error",
      from: { path: CORE },
      to: { path: "^(src|otel|test|bench)/", pathNot: CORE }
    },
    {
      name: "core-is-pure",
      comment: "The pure core uses no package but effect (and node's built-ins): no SDK, no driver, no server.",
      severity: "error",
      from: { path: CORE },
      to: { dependencyTypes: ["npm", "npm-dev", "npm-optional", "npm-peer", "npm-no-pkg", "npm-unknown"], pathNot: "node_modules/effect/" }
    },
    {
      name: "edges-import-no-steps",
      comment: "A service at the edge (src/effects) knows nothing of the pipeline or of what triggers it.",
      severity: "error",
      from: { path: EDGES },
      to: { path: [PIPELINE, ABOVE_PIPELINE, "^(otel|test|bench)/"] }
    },
    {
      name: "pipeline-imports-no-trigger",
      comment: "Triggers (webhook, batch, upload API, SFTP, queue consumers) import the pipeline, never the reverse.",
      severity: "error",
      from: { path: PIPELINE },
      to: { path: [ABOVE_PIPELINE, "^(otel|test|bench)/"] }
    },
    {
      name: "product-imports-no-tests",
      comment: "What ships imports no test, benchmark or harness code.",
      severity: "error",
      from: { path: "^(src|schemas|otel)/" },
      to: { path: "^(test|bench)/" }
    },
    {
      name: "not-to-unresolvable",
      comment: "An import that resolves to nothing would hide its edge from every rule above.",
      severity: "error",
      from: {},
      to: { couldNotResolve: true }
    }
  ],
  options: {
    parser: "tsc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    // Packages such as effect have no `main`, only `exports`, which the resolver ignores unless told.
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
    moduleSystems: ["es6", "cjs"]
  }
}
