import { Cause, Duration, Effect, Exit, type ManagedRuntime, Schema, Stream } from "effect"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { type Context, Hono } from "hono"
import { bodyLimit } from "hono/body-limit"
import { getCookie, setCookie, deleteCookie } from "hono/cookie"
import { streamSSE } from "hono/streaming"
import type { Child } from "hono/jsx"
import type { ContentfulStatusCode } from "hono/utils/http-status"
import { completeDelivery, deliveryFolder, deliveryStatus, errorsCsv, listDeliveries } from "../api/deliveries.ts"
import { ApiError } from "../api/errors.ts"
import { DeliveryName } from "../api/schemas.ts"
import { Ledger } from "../effects/Ledger.ts"
import { Mailer } from "../effects/Mailer.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { Partners } from "../effects/Partners.ts"
import { type ApiServices, makeUploads } from "../api/routes.ts"
import type { DeliveryReport } from "../pipeline/Report.ts"
import { describeDataset, jsonSchemaOf, sampleFile } from "../../schemas/catalog.ts"
import { contractOf } from "../../schemas/contract.ts"
import { Datasets, Deliveries, type DeliveryRow, Message, type PageContext, Report, SignIn, Upload, UseLink } from "./pages.tsx"
import { type PortalSession, PortalAuth } from "./PortalAuth.ts"
import { isLanguage, type Language, TEXT } from "./text.ts"

/** What the portal needs from the runtime that serves it: the API's services, mail and sign-in. */
export type PortalServices = ApiServices | Mailer | PortalAuth

const SESSION_COOKIE = "loaders_portal"
const CSRF_COOKIE = "loaders_portal_csrf"
const LANGUAGE_COOKIE = "loaders_portal_lang"

type Env = { Variables: { session: PortalSession | undefined; sessionToken: string | undefined; csrf: string; nonce: string; lang: Language } }

const MAX_FORM_BYTES = 16 * 1024

/** How often the deliveries page's event stream looks for changes (ms), and how long one stream lasts. */
const LIVE_EVERY = 2_000
const LIVE_FOR = 60_000

const isDeliveryName = Schema.is(DeliveryName)

/**
 * A signed-in browser's form token: derived from its session's secret cookie, so it changes with
 * every session and cannot be chosen by whoever plants a form-token cookie (a sibling domain can
 * set cookies for this host, a double submit alone would take the planted pair).
 */
const sessionFormToken = (sessionToken: string) => createHash("sha256").update(`form:${sessionToken}`, "utf8").digest("base64url")

const sameToken = (a: string, b: string) => {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

/**
 * The partner portal, mounted under `/portal` of the HTTP app: sign-in by a one-time link mailed
 * to an address of the partners file's `portal` list, then the partner's own deliveries and their
 * reports, read and written through the same services as `/v1` (tus uploads under
 * `/portal/uploads`). Every form carries a token, and every tus request the same token in
 * `X-CSRF-Token`: before sign-in one equal to an HttpOnly cookie (double submit), once signed in
 * one derived from the session's cookie. A request from another site, which can read neither
 * cookie, is refused with 403.
 */
export function makePortal<E>(runtime: ManagedRuntime.ManagedRuntime<PortalServices, E>) {
  const portal = new Hono<Env>()
  const services = runtime.runPromise(
    Effect.gen(function*() {
      return { auth: yield* PortalAuth, partners: yield* Partners }
    })
  )

  const cookie = (c: Context<Env>, name: string, value: string, maxAgeSeconds?: number) =>
    setCookie(c, name, value, {
      path: "/portal",
      httpOnly: true,
      sameSite: "Lax",
      secure: new URL(c.req.url).protocol === "https:",
      ...(maxAgeSeconds === undefined ? {} : { maxAge: maxAgeSeconds })
    })

  const pageOf = (c: Context<Env>): PageContext => ({
    lang: c.get("lang"),
    t: TEXT[c.get("lang")],
    path: new URL(c.req.url).pathname + new URL(c.req.url).search,
    csrf: c.get("csrf"),
    nonce: c.get("nonce"),
    session: c.get("session")
  })

  const render = (c: Context<Env>, page: Child, status: ContentfulStatusCode = 200) => {
    c.header("cache-control", "no-store")
    c.header("x-frame-options", "DENY")
    const nonce = c.get("nonce")
    c.header("content-security-policy", `default-src 'self'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`)
    return c.html(`<!doctype html>${String(page)}`, status)
  }

  const notFoundPage = (c: Context<Env>) => {
    const page = pageOf(c)
    return render(c, <Message page={page} title={page.t.notFoundTitle} text={page.t.notFound} link={{ href: "/portal/", label: page.t.title }} />, 404)
  }

  /** A failed effect, as a page: a refusal of the API's services keeps its status; the database or bucket down is a 503. */
  const failurePage = (c: Context<Env>, cause: Cause.Cause<unknown>) => {
    const page = pageOf(c)
    const failed = cause.reasons.find((reason) => reason._tag === "Fail")
    const error: unknown = failed?._tag === "Fail" ? failed.error : undefined
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) return notFoundPage(c)
    // The API's one line (in English, as `/v1` says it) naming what was refused and why.
    if (error instanceof ApiError) return render(c, <Message page={page} title={page.t.refusedTitle} text={error.reason} />, error.status)
    console.error(Cause.pretty(cause))
    return render(c, <Message page={page} title={page.t.unavailableTitle} text={page.t.unavailable} />, 503)
  }

  async function run<A>(c: Context<Env>, effect: Effect.Effect<A, unknown, PortalServices>, ok: (value: A) => Response | Promise<Response>) {
    const exit = await runtime.runPromiseExit(effect)
    return Exit.isSuccess(exit) ? ok(exit.value) : failurePage(c, exit.cause)
  }

  // The portal's own forms are a few fields: a larger body is refused before anything reads it.
  portal.on(["POST"], ["/sign-in", "/sign-out", "/link/*", "/deliveries/*"], bodyLimit({
    maxSize: MAX_FORM_BYTES,
    onError: (c) => c.text(`a portal form is at most ${MAX_FORM_BYTES} bytes`, 413)
  }))

  // Every request: its form token (made on first visit), its session if any, its language
  // (the one chosen, else the partner's, else the browser's first of the two, else French).
  portal.use("*", async (c, next) => {
    const { auth, partners } = await services
    let visitorToken = getCookie(c, CSRF_COOKIE)
    if (visitorToken === undefined) {
      visitorToken = randomBytes(32).toString("base64url")
      cookie(c, CSRF_COOKIE, visitorToken)
    }
    c.set("csrf", visitorToken)
    c.set("nonce", randomBytes(16).toString("base64"))
    const token = getCookie(c, SESSION_COOKIE)
    const found = token === undefined ? undefined : await runtime.runPromiseExit(auth.session(token))
    if (found !== undefined && Exit.isFailure(found)) {
      c.set("session", undefined)
      c.set("lang", "fr")
      return failurePage(c, found.cause)
    }
    const session = found?.value
    c.set("session", session)
    c.set("sessionToken", session === undefined ? undefined : token)
    // Before a session (sign-in, a link's page), the double-submit cookie's token; after, the session's.
    const csrf = session === undefined || token === undefined ? visitorToken : sessionFormToken(token)
    c.set("csrf", csrf)
    const chosen = getCookie(c, LANGUAGE_COOKIE)
    const browsers = /^\s*(fr|en)\b/i.exec(c.req.header("accept-language") ?? "")?.[1]?.toLowerCase()
    c.set("lang", isLanguage(chosen) ? chosen : (session && partners.get(session.partner)?.language) || (isLanguage(browsers) ? browsers : "fr"))
    // The partner's own pages: without a session, the sign-in page (tus clients get a plain 401).
    const tus = /^\/portal\/uploads(\/|$)/.test(c.req.path)
    if (session === undefined && tus) return c.json({ error: "unauthorized", message: "no portal session: sign in again" }, 401)
    if (session === undefined && /^\/portal\/(deliveries|datasets|upload)(\/|$)/.test(c.req.path)) return c.redirect("/portal/sign-in", 303)
    // tus's body is the file: its token comes in a header, and the body is left for tus.
    const changes = c.req.method === "POST" || c.req.method === "PATCH" || c.req.method === "DELETE"
    if (changes) {
      const sent = tus ? c.req.header("x-csrf-token") : (await c.req.parseBody()).csrf
      if (typeof sent !== "string" || !sameToken(sent, csrf)) {
        const page = pageOf(c)
        return render(c, <Message page={page} title={page.t.forbiddenTitle} text={page.t.forbidden} />, 403)
      }
    }
    await next()
  })

  portal.get("/", (c) => c.redirect(c.get("session") ? "/portal/deliveries" : "/portal/sign-in", 303))

  portal.get("/language/:lang", (c) => {
    const lang = c.req.param("lang")
    if (isLanguage(lang)) cookie(c, LANGUAGE_COOKIE, lang, 365 * 24 * 3600)
    const back = c.req.query("back") ?? "/portal/"
    // Only a path of the portal itself: never an open redirect.
    return c.redirect(back.startsWith("/portal/") && !back.startsWith("//") ? back : "/portal/", 303)
  })

  portal.get("/sign-in", (c) => render(c, <SignIn page={pageOf(c)} />))

  portal.post("/sign-in", async (c) => {
    const { auth, partners } = await services
    const form = await c.req.parseBody()
    // Kept in lower case: the limit on links per address counts "Ops@" and "ops@" as one.
    const email = typeof form.email === "string" ? form.email.trim().toLowerCase() : ""
    const partner = partners.partnerOfEmail(email)
    const page = pageOf(c)
    const minutes = Math.round(Duration.toMinutes(auth.settings.linkTtl))
    const sent = <Message page={page} title={page.t.linkSentTitle} text={page.t.linkSent(minutes)} />
    // The same answer whether the address is known or not: the page tells nobody who is registered.
    if (partner === undefined) return render(c, sent)
    const origin = auth.settings.publicUrl ?? new URL(c.req.url).origin
    const lang: Language = partners.get(partner)?.language ?? page.lang
    return run(
      c,
      Effect.gen(function*() {
        const token = yield* auth.issueLink({ partner, email })
        if (token === undefined) return yield* Effect.logWarning(`portal: ${email} (${partner}) asked for more than ${auth.settings.linksPerHour} sign-in links in an hour; none sent`)
        const link = `${origin}/portal/link/${token}`
        const t = TEXT[lang]
        yield* Mailer.use((mailer) =>
          mailer.send({
            to: [email],
            cc: [],
            subject: `${t.title}: ${t.signInTitle}`,
            text: `${t.linkReady}\n\n${link}\n\n${t.linkSent(minutes)}\n`,
            html: `<p>${t.linkReady}</p><p><a href="${link}">${link}</a></p>`,
            attachments: [],
            idempotencyKey: `portal-link-${token.slice(0, 16)}`
          })
        )
      }),
      () => render(c, sent)
    )
  })

  const refusedLink = (c: Context<Env>, state: "expired" | "used" | "unknown") => {
    const page = pageOf(c)
    const title = state === "expired" ? page.t.linkExpiredTitle : state === "used" ? page.t.linkUsedTitle : page.t.linkUnknownTitle
    return render(c, <Message page={page} title={title} text={page.t.linkRefused} link={{ href: "/portal/sign-in", label: page.t.newLink }} />, state === "unknown" ? 404 : 410)
  }

  portal.get("/link/:token", async (c) => {
    const { auth } = await services
    const token = c.req.param("token")
    return run(c, auth.linkState(token), (state) => (state === "valid" ? render(c, <UseLink page={pageOf(c)} token={token} />) : refusedLink(c, state)))
  })

  portal.post("/link/:token", async (c) => {
    const { auth } = await services
    return run(c, auth.redeem(c.req.param("token")), (opened) => {
      if (typeof opened === "string") return refusedLink(c, opened)
      cookie(c, SESSION_COOKIE, opened.token, Math.round(Duration.toSeconds(auth.settings.sessionTtl)))
      return c.redirect("/portal/deliveries", 303)
    })
  })

  portal.post("/sign-out", async (c) => {
    const { auth } = await services
    const token = c.get("sessionToken")
    deleteCookie(c, SESSION_COOKIE, { path: "/portal" })
    return run(c, token === undefined ? Effect.void : auth.signOut(token), () => c.redirect("/portal/sign-in", 303))
  })

  /** The signed-in partner: the first middleware let no one without a session reach these routes. */
  const partnerOf = (c: Context<Env>) => c.get("session")!.partner

  portal.get("/deliveries", (c) =>
    run(c, deliveryRows(partnerOf(c)), (rows) => render(c, <Deliveries page={pageOf(c)} rows={rows} />))
  )

  // The states of the partner's deliveries, sent again whenever one changes (the page's script
  // applies them). A stream lasts LIVE_FOR, then the browser reconnects by itself: through the
  // session check again, so an expired or signed-out session stops getting states.
  portal.get("/deliveries/events", (c) => {
    const partner = partnerOf(c)
    return streamSSE(c, async (stream) => {
      let last = ""
      for (let turn = 0; turn < LIVE_FOR / LIVE_EVERY && !stream.aborted; turn++) {
        const exit = await runtime.runPromiseExit(listDeliveries(partner))
        if (Exit.isSuccess(exit)) {
          const states = JSON.stringify(exit.value.deliveries.map(({ delivery, state }) => ({ delivery, state })))
          if (states !== last) await stream.writeSSE({ data: states, retry: 1000 })
          last = states
        }
        await stream.sleep(LIVE_EVERY)
      }
    })
  })

  /** The partner's delivery named by the path: any other name, or another partner's delivery, is a 404. */
  const pathDelivery = (c: Context<Env>) => {
    const delivery = c.req.param("delivery") ?? ""
    return isDeliveryName(delivery)
      ? deliveryFolder(partnerOf(c), delivery)
      : Effect.fail(new ApiError({ status: 404, reason: `no delivery ${JSON.stringify(delivery)}` }))
  }

  portal.get("/deliveries/:delivery", (c) => {
    const filter = { file: c.req.query("file") || undefined, rule: c.req.query("rule") || undefined }
    return run(
      c,
      Effect.gen(function*() {
        const key = yield* pathDelivery(c)
        const status = yield* deliveryStatus(key)
        const ledger = yield* Ledger
        const [entry] = yield* ledger.entries(key.bucket, key.partner, key.delivery)
        return { status, report: (entry?.report ?? undefined) as DeliveryReport | undefined }
      }),
      ({ status, report }) => render(c, <Report page={pageOf(c)} delivery={status.delivery} state={status.state} report={report} filter={filter} />)
    )
  })

  portal.get("/deliveries/:delivery/report.json", (c) =>
    run(c, pathDelivery(c).pipe(Effect.flatMap(deliveryStatus)), (status) => {
      c.header("content-disposition", `attachment; filename="${encodeURIComponent(status.delivery)}-report.json"`)
      return c.json(status)
    })
  )

  portal.get("/deliveries/:delivery/errors.csv", (c) => {
    const language = c.req.query("language")
    return run(
      c,
      Effect.gen(function*() {
        const key = yield* pathDelivery(c)
        return yield* Stream.toReadableStreamEffect(yield* errorsCsv(key, isLanguage(language) ? language : c.get("lang")))
      }),
      (csv) =>
        new Response(csv, {
          headers: {
            "content-type": "text/csv; charset=utf-8",
            "content-disposition": `attachment; filename="${encodeURIComponent(c.req.param("delivery"))}-errors.csv"`
          }
        })
    )
  })

  portal.get("/upload", (c) => render(c, <Upload page={pageOf(c)} delivery={c.req.query("delivery") ?? ""} />))

  const uploads = makeUploads(runtime, "/portal/uploads")
  portal.post("/uploads", (c) => uploads.create(c, partnerOf(c)))
  // Hono serves HEAD through the GET route (the request tus sees is still the HEAD).
  portal.on(["GET", "PATCH", "DELETE"], "/uploads/:id", (c) => uploads.resume(c, partnerOf(c)))

  // Seals the delivery and offers it to the workers, as `POST /v1/deliveries/{delivery}/complete`.
  portal.post("/deliveries/:delivery/complete", (c) =>
    run(c, pathDelivery(c).pipe(Effect.flatMap(completeDelivery)), (done) => c.redirect(`/portal/deliveries/${encodeURIComponent(done.delivery)}`, 303))
  )

  const contractOfSession = async (c: Context<Env>) => contractOf((await services).partners.get(partnerOf(c)))

  portal.get("/datasets", async (c) => render(c, <Datasets page={pageOf(c)} datasets={(await contractOfSession(c)).datasets.map(describeDataset)} />))

  portal.get("/datasets/:name/:file{(sample|schema)\\.json}", async (c) => {
    const contract = await contractOfSession(c)
    const dataset = contract.datasets.find((d) => d.name === c.req.param("name"))
    if (dataset === undefined) return notFoundPage(c)
    const sample = c.req.param("file") === "sample.json"
    c.header("content-disposition", `attachment; filename="${dataset.name}.${sample ? "sample" : "schema"}.json"`)
    return sample
      ? c.body(sampleFile(dataset).text, 200, { "content-type": "application/json" })
      : c.json(jsonSchemaOf(dataset, { unknownFields: contract.unknownFields(dataset) }))
  })

  // A sub-app's notFound is not used once mounted: the last route answers for the rest of /portal.
  portal.all("*", notFoundPage)

  return portal
}

/** The deliveries table: `/v1`'s list for the states, the ledger's last reports for counts and dates. */
const deliveryRows = Effect.fnUntraced(function*(partner: string) {
  const { deliveries } = yield* listDeliveries(partner)
  const store = yield* ObjectStore
  const ledger = yield* Ledger
  const overviews = new Map((yield* ledger.overviews(store.bucket, partner)).map((overview) => [overview.delivery, overview]))
  return deliveries.map(({ delivery, state }): DeliveryRow => {
    const overview = overviews.get(delivery)
    return { delivery, state, files: overview?.files, totals: overview?.totals, startedAt: overview?.startedAt, finishedAt: overview?.finishedAt }
  })
})
