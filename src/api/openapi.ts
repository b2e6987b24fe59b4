import { Schema } from "effect"
import { MAX_JSON_BYTES } from "./ApiConfig.ts"
import { type ApiStatus, ERROR_CODES } from "./errors.ts"
import { Completed, DeliveryList, DeliveryName, DeliveryStatus, ErrorBody, FileName, FileStored, OpenDelivery, Opened } from "./schemas.ts"

type JsonObject = { readonly [key: string]: unknown }

/** Definitions gathered from every schema, for `components.schemas`. */
const definitions: Record<string, unknown> = {}

/** The JSON Schema of `schema`, its named parts moved to `components.schemas`. */
const jsonSchema = (schema: Schema.Top, options: { readonly strict?: boolean } = {}): unknown => {
  const document = Schema.toJsonSchemaDocument(schema, options.strict ? { onExcessProperty: "error" } : {})
  const relocate = (value: unknown): unknown => JSON.parse(JSON.stringify(value).replaceAll("\"#/$defs/", "\"#/components/schemas/"))
  for (const [name, definition] of Object.entries(document.definitions)) definitions[name] = relocate(definition)
  return relocate(document.schema)
}

const json = (schema: Schema.Top, options?: { readonly strict?: boolean }) => ({ "application/json": { schema: jsonSchema(schema, options) } })

const REFUSALS: Partial<Record<ApiStatus, string>> = {
  400: "A name, field or header breaks its rule (the message says which and why)",
  401: "No API key, or one no partner holds (unknown or revoked)",
  403: "The upload belongs to another partner",
  404: "No such delivery (or upload) for this partner",
  409: "The delivery is not in a state that allows this (the message says what to do)",
  413: "Over a size bound: the file's announced size, LOADERS_API_MAX_FILE_SIZE, or 1 MiB for JSON bodies",
  429: "Over the partner's request rate (LOADERS_API_RATE_LIMIT); Retry-After says when to try again",
  502: "The object store refused or failed",
  503: "The object store, database or job queue did not answer; Retry-After says when to try again"
}

/** What any route may answer: no key, over the rate, the store or database failing. */
const ALWAYS: ReadonlyArray<ApiStatus> = [401, 429, 502, 503]

const errors = (...statuses: ReadonlyArray<ApiStatus>) =>
  Object.fromEntries(
    [...statuses, ...ALWAYS].map((status) => [
      String(status),
      { description: `${ERROR_CODES[status]}: ${REFUSALS[status] ?? ""}`, content: json(ErrorBody) }
    ])
  )

const deliveryParam = { name: "delivery", in: "path", required: true, schema: jsonSchema(DeliveryName) }
const nameParam = { name: "name", in: "path", required: true, schema: jsonSchema(FileName) }

const paths: JsonObject = {
  "/v1/deliveries": {
    post: {
      operationId: "openDelivery",
      summary: "Open a delivery: presigned S3 URLs for each announced file",
      description:
        `Files up to LOADERS_API_PART_SIZE get one presigned PUT, larger ones presigned parts that complete assembles; ` +
        `each URL takes exactly the announced size (Content-Length is signed) and lasts LOADERS_API_URL_EXPIRY. ` +
        `Body at most ${MAX_JSON_BYTES} bytes.`,
      requestBody: { required: true, content: json(OpenDelivery, { strict: true }) },
      responses: { "201": { description: "Opened", content: json(Opened) }, ...errors(400, 409, 413) }
    },
    get: {
      operationId: "listDeliveries",
      summary: "The partner's deliveries and their states",
      responses: { "200": { description: "The partner's deliveries, by name", content: json(DeliveryList) }, ...errors() }
    }
  },
  "/v1/deliveries/{delivery}": {
    get: {
      operationId: "getDelivery",
      summary: "Where a delivery stands: state, counts, report summary, link to its errors",
      parameters: [deliveryParam],
      responses: { "200": { description: "The delivery", content: json(DeliveryStatus) }, ...errors(400, 404) }
    }
  },
  "/v1/deliveries/{delivery}/files/{name}": {
    put: {
      operationId: "putFile",
      summary: "Send a file's bytes through the API, streamed to S3 (opens the delivery if needed)",
      description:
        "The body is the file, of any size up to its announced size (or LOADERS_API_MAX_FILE_SIZE): streamed to S3 " +
        "as a multipart upload, never held whole. Over the bound, nothing is stored.",
      parameters: [deliveryParam, nameParam],
      requestBody: { required: true, content: { "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } } } },
      responses: { "201": { description: "Stored", content: json(FileStored) }, ...errors(400, 409, 413) }
    }
  },
  "/v1/deliveries/{delivery}/complete": {
    post: {
      operationId: "completeDelivery",
      summary: "Seal the delivery: check its files, write its manifest, start processing",
      parameters: [deliveryParam],
      responses: { "202": { description: "Sealed and handed to the workers", content: json(Completed) }, ...errors(400, 404, 409, 413) }
    }
  },
  "/v1/deliveries/{delivery}/errors.csv": {
    get: {
      operationId: "getDeliveryErrors",
      summary: "Every rejected record of the delivery's last run, as CSV",
      parameters: [deliveryParam, { name: "language", in: "query", required: false, schema: { type: "string", enum: ["fr", "en"] } }],
      responses: {
        "200": { description: "UTF-8 with BOM; `;`-separated in French, `,` in English", content: { "text/csv": { schema: { type: "string" } } } },
        ...errors(400, 404)
      }
    }
  },
  "/v1/uploads": {
    post: {
      operationId: "createUpload",
      summary: "tus 1.0.0: create a resumable upload (Upload-Metadata: delivery, filename)",
      parameters: [
        { name: "Tus-Resumable", in: "header", required: true, schema: { type: "string", const: "1.0.0" } },
        { name: "Upload-Length", in: "header", required: true, schema: { type: "integer", minimum: 0 } },
        { name: "Upload-Metadata", in: "header", required: true, schema: { type: "string" }, description: "delivery and filename, base64" }
      ],
      responses: { "201": { description: "Created; Location is the upload's URL" }, ...errors(400, 409, 413) }
    }
  },
  "/v1/uploads/{id}": {
    head: {
      operationId: "uploadOffset",
      summary: "tus 1.0.0: the upload's offset, to resume from",
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }, { name: "Tus-Resumable", in: "header", required: true, schema: { type: "string" } }],
      responses: { "200": { description: "Upload-Offset and Upload-Length headers" }, ...errors(400, 403, 404) }
    },
    patch: {
      operationId: "uploadChunk",
      summary: "tus 1.0.0: append bytes at Upload-Offset",
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }, { name: "Tus-Resumable", in: "header", required: true, schema: { type: "string" } }],
      requestBody: { required: true, content: { "application/offset+octet-stream": { schema: { type: "string" } } } },
      responses: { "204": { description: "Appended; Upload-Offset is the new offset" }, ...errors(400, 403, 404, 409, 413) }
    },
    delete: {
      operationId: "terminateUpload",
      summary: "tus 1.0.0 termination: drop an unfinished upload and what it received",
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }, { name: "Tus-Resumable", in: "header", required: true, schema: { type: "string" } }],
      responses: { "204": { description: "Terminated" }, ...errors(403, 404) }
    }
  },
  "/v1/openapi.json": {
    get: {
      operationId: "openapi",
      summary: "This document",
      security: [],
      responses: { "200": { description: "OpenAPI 3.1", content: { "application/json": { schema: { type: "object" } } } } }
    }
  }
}

/** `/v1/openapi.json`: the API, from the schemas that validate its requests and type its answers. */
export const openApiDocument = {
  openapi: "3.1.0",
  info: {
    title: "loaders ingestion API",
    version: "1",
    description: "Partners deliver files by presigned S3 URL, streaming PUT or tus, then complete; see README, \"Delivering by API\"."
  },
  security: [{ apiKey: [] }],
  paths,
  components: {
    securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "A partner API key (npm run partner-key)" } },
    schemas: definitions
  }
} as const
