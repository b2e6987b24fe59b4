import type { Child } from "hono/jsx"
import type { DatasetDoc } from "../../schemas/catalog.ts"
import type { DeliveryReport, RuleGroup } from "../pipeline/Report.ts"
import type { Language, Text } from "./text.ts"

/** What every page knows: its language, where it is (for the language switch), the form token, the session. */
export interface PageContext {
  readonly lang: Language
  readonly t: Text
  readonly path: string
  readonly csrf: string
  /** This answer's Content-Security-Policy nonce: only our own inline style and scripts run. */
  readonly nonce: string
  readonly session: { readonly partner: string; readonly email: string } | undefined
}

// System fonts, contrast above 4.5:1 on white, nothing wider than the screen (tables scroll inside their box).
const STYLE = `
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff}
header,main{max-width:64rem;margin:0 auto;padding:1rem}header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;border-bottom:1px solid #ccc}
header .brand{font-weight:700;margin-right:auto}a{color:#0b4f9c}a:focus,button:focus,input:focus,select:focus{outline:3px solid #b35c00;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
button{font:inherit;padding:.4rem .9rem;border:1px solid #0b4f9c;background:#0b4f9c;color:#fff;border-radius:4px;cursor:pointer}
button.link{background:none;color:#0b4f9c;border:none;padding:0;text-decoration:underline}
input,select{font:inherit;padding:.4rem;border:1px solid #555;border-radius:4px;max-width:100%}
label{display:block;font-weight:600;margin:.5rem 0 .2rem}.box{overflow-x:auto}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}td.n{text-align:right}
.state-failed{color:#a4000f;font-weight:600}.state-succeeded{color:#0a6b2d;font-weight:600}
form.inline{display:inline}.drop{border:2px dashed #555;border-radius:6px;padding:1rem;margin:1rem 0}progress{width:100%;max-width:20rem}.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end}code{word-break:break-all}
`

/** The frame of every page: language switch, who is signed in, sign-out (a form, with its token). */
export const Layout = (props: { readonly page: PageContext; readonly title: string; readonly children?: Child }) => {
  const { page } = props
  const other = page.lang === "fr" ? "en" : "fr"
  return (
    <html lang={page.lang}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · ${page.t.title}`}</title>
        <style nonce={page.nonce} dangerouslySetInnerHTML={{ __html: STYLE }} />
      </head>
      <body>
        <a class="skip" href="#main">{page.t.skip}</a>
        <header>
          <span class="brand">{page.t.title}</span>
          <a href={`/portal/language/${other}?back=${encodeURIComponent(page.path)}`} lang={other} hreflang={other}>{page.t.switchTo}</a>
          {page.session && (
            <>
              <nav aria-label={page.t.title}><a href="/portal/deliveries">{page.t.deliveries}</a> · <a href="/portal/upload">{page.t.upload}</a> · <a href="/portal/datasets">{page.t.datasets}</a></nav>
              <span>{page.t.signedInAs(page.session.email, page.session.partner)}</span>
              <form class="inline" method="post" action="/portal/sign-out">
                <input type="hidden" name="csrf" value={page.csrf} />
                <button type="submit" class="link">{page.t.signOut}</button>
              </form>
            </>
          )}
        </header>
        <main id="main">
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  )
}

/** A page that only says something (link sent, link expired, not found, …), with an optional way on. */
export const Message = (props: { readonly page: PageContext; readonly title: string; readonly text: string; readonly link?: { readonly href: string; readonly label: string } }) => (
  <Layout page={props.page} title={props.title}>
    <p>{props.text}</p>
    {props.link && <p><a href={props.link.href}>{props.link.label}</a></p>}
  </Layout>
)

export const SignIn = (props: { readonly page: PageContext }) => (
  <Layout page={props.page} title={props.page.t.signInTitle}>
    <p>{props.page.t.signInLead}</p>
    <form method="post" action="/portal/sign-in">
      <input type="hidden" name="csrf" value={props.page.csrf} />
      <label for="email">{props.page.t.email}</label>
      <input id="email" name="email" type="email" autocomplete="email" required />
      <p><button type="submit">{props.page.t.sendLink}</button></p>
    </form>
  </Layout>
)

/** The link's landing page: a button, so that a mail scanner following the link spends nothing. */
export const UseLink = (props: { readonly page: PageContext; readonly token: string }) => (
  <Layout page={props.page} title={props.page.t.linkReadyTitle}>
    <p>{props.page.t.linkReady}</p>
    <form method="post" action={`/portal/link/${encodeURIComponent(props.token)}`}>
      <input type="hidden" name="csrf" value={props.page.csrf} />
      <button type="submit">{props.page.t.continue}</button>
    </form>
  </Layout>
)

/** One line of the deliveries table. */
export interface DeliveryRow {
  readonly delivery: string
  readonly state: string
  readonly files: number | undefined
  readonly totals: { readonly read: number; readonly loaded: number; readonly rejected: number } | undefined
  readonly startedAt: string | undefined
  readonly finishedAt: string | undefined
}

const when = (iso: string | undefined, lang: Language) =>
  iso === undefined ? "" : new Date(iso).toLocaleString(lang === "fr" ? "fr-FR" : "en-GB", { timeZone: "UTC", dateStyle: "short", timeStyle: "medium" }) + " UTC"

const deliveryHref = (delivery: string) => `/portal/deliveries/${encodeURIComponent(delivery)}`

/** Replaces the states shown with those the server sends while deliveries run; a new delivery reloads the page. */
const LIVE_SCRIPT = `(() => {
  const states = JSON.parse(document.getElementById("state-names").textContent);
  const source = new EventSource("/portal/deliveries/events");
  source.onmessage = (event) => {
    for (const { delivery, state } of JSON.parse(event.data)) {
      const cell = document.querySelector('[data-delivery="' + CSS.escape(delivery) + '"]');
      if (!cell) { source.close(); location.reload(); return; }
      if (cell.dataset.state !== state) { cell.dataset.state = state; cell.className = "state-" + state; cell.textContent = states[state] || state; }
    }
  };
})()`

export const Deliveries = (props: { readonly page: PageContext; readonly rows: ReadonlyArray<DeliveryRow> }) => {
  const { t, lang } = props.page
  return (
    <Layout page={props.page} title={t.deliveries}>
      <p id="live">{t.live}</p>
      {props.rows.length === 0 ? <p>{t.noDeliveries}</p> : (
        <div class="box">
          <table aria-describedby="live">
            <thead>
              <tr><th scope="col">{t.delivery}</th><th scope="col">{t.state}</th><th scope="col">{t.files}</th><th scope="col">{t.read}</th><th scope="col">{t.loaded}</th><th scope="col">{t.rejected}</th><th scope="col">{t.started}</th><th scope="col">{t.finished}</th></tr>
            </thead>
            <tbody aria-live="polite">
              {props.rows.map((row) => (
                <tr>
                  <th scope="row"><a href={deliveryHref(row.delivery)}>{row.delivery}</a></th>
                  <td data-delivery={row.delivery} data-state={row.state} class={`state-${row.state}`}>{t.states[row.state] ?? row.state}</td>
                  <td class="n">{row.files ?? ""}</td>
                  <td class="n">{row.totals?.read ?? ""}</td>
                  <td class="n">{row.totals?.loaded ?? ""}</td>
                  <td class="n">{row.totals?.rejected ?? ""}</td>
                  <td>{when(row.startedAt, lang)}</td>
                  <td>{when(row.finishedAt, lang)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {/* Raw, not escaped: our own constants, with `<` escaped in the JSON so nothing closes the script. */}
      <script type="application/json" id="state-names" dangerouslySetInnerHTML={{ __html: JSON.stringify(t.states).replaceAll("<", "\\u003c") }} />
      <script nonce={props.page.nonce} dangerouslySetInnerHTML={{ __html: LIVE_SCRIPT }} />
    </Layout>
  )
}

/** What the report page is asked to show: every rule's group, cut down to a file and a rule when given. */
export interface ReportFilter {
  readonly file: string | undefined
  readonly rule: string | undefined
}

/** The groups and examples a filter keeps (a group whose examples all belong to other files goes). */
export const filterErrors = (errors: ReadonlyArray<RuleGroup>, filter: ReportFilter): ReadonlyArray<RuleGroup> =>
  errors
    .filter((group) => filter.rule === undefined || group.rule === filter.rule)
    .map((group) => filter.file === undefined ? group : { ...group, examples: group.examples.filter((example) => example.file === filter.file) })
    .filter((group) => filter.file === undefined || group.examples.length > 0)

export const Report = (props: {
  readonly page: PageContext
  readonly delivery: string
  readonly state: string
  readonly report: DeliveryReport | undefined
  readonly filter: ReportFilter
}) => {
  const { t, lang } = props.page
  const { report, filter } = props
  const base = deliveryHref(props.delivery)
  const shown = report ? filterErrors(report.errors, filter) : []
  return (
    <Layout page={props.page} title={`${t.delivery} ${props.delivery}`}>
      <p><a href="/portal/deliveries">{t.back}</a> · <a href={`/portal/upload?delivery=${encodeURIComponent(props.delivery)}`}>{t.correct}</a></p>
      <p>{t.state}{t.colon}<span class={`state-${props.state}`}>{t.states[props.state] ?? props.state}</span></p>
      {report === undefined ? <p>{t.notRunYet}</p> : (
        <>
          <h2>{t.summary}</h2>
          {report.reason && <p>{t.reason}{t.colon}{report.reason[lang]}</p>}
          <p>{t.started} {when(report.startedAt, lang)} · {t.finished} {when(report.finishedAt, lang)}</p>
          <div class="box">
            <table>
              <thead><tr><th scope="col">{t.file}</th><th scope="col">{t.read}</th><th scope="col">{t.loaded}</th><th scope="col">{t.rejected}</th></tr></thead>
              <tbody>
                {report.files.map((file) => (
                  <tr><th scope="row">{file.file}</th><td class="n">{file.read}</td><td class="n">{file.loaded}</td><td class="n">{file.rejected}</td></tr>
                ))}
              </tbody>
            </table>
          </div>
          <p>
            <a href={`${base}/report.json`} download>{t.downloadJson}</a>
            {report.errors.length > 0 && report.archive !== null && <> · <a href={`${base}/errors.csv?language=${lang}`} download>{t.downloadCsv}</a></>}
          </p>
          <h2>{t.errorsByRule}</h2>
          {report.errors.length === 0 ? <p>{t.noErrors}</p> : (
            <>
              <form method="get" action={base} class="filters" role="search">
                <div>
                  <label for="filter-file">{t.file}</label>
                  <select id="filter-file" name="file">
                    <option value="">{t.allFiles}</option>
                    {report.files.map((file) => <option value={file.file} selected={filter.file === file.file}>{file.file}</option>)}
                  </select>
                </div>
                <div>
                  <label for="filter-rule">{t.rule}</label>
                  <select id="filter-rule" name="rule">
                    <option value="">{t.allRules}</option>
                    {report.errors.map((group) => <option value={group.rule} selected={filter.rule === group.rule}>{group.rule}</option>)}
                  </select>
                </div>
                <div><button type="submit">{t.filter}</button></div>
              </form>
              {shown.length === 0 ? <p>{t.noneMatch}</p> : shown.map((group) => (
                <section aria-labelledby={`rule-${group.rule}`} data-rule={group.rule}>
                  <h3 id={`rule-${group.rule}`}><code>{group.rule}</code> — {group.count}</h3>
                  <p>{group.message[lang]}</p>
                  <div class="box">
                    <table>
                      <caption class="skip">{t.examples}</caption>
                      <thead><tr><th scope="col">{t.file}</th><th scope="col">{t.line}</th><th scope="col">{t.field}</th><th scope="col">{t.message}</th></tr></thead>
                      <tbody>
                        {group.examples.map((example) => (
                          <tr><td>{example.file}</td><td class="n">{example.line ?? ""}</td><td><code>{example.path}</code></td><td>{example.message[lang]}</td></tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                </section>
              ))}
            </>
          )}
        </>
      )}
    </Layout>
  )
}

/** The datasets the partner's contract lets it send: fields, rules, and the files to start from. */
export const Datasets = (props: { readonly page: PageContext; readonly datasets: ReadonlyArray<DatasetDoc> }) => {
  const { t, lang } = props.page
  return (
    <Layout page={props.page} title={t.datasets}>
      <p>{t.datasetsLead}</p>
      {props.datasets.map((doc) => {
        const base = `/portal/datasets/${encodeURIComponent(doc.name)}`
        return (
          <section aria-labelledby={`dataset-${doc.name}`}>
            <h2 id={`dataset-${doc.name}`}>{doc.name} <small>(version {doc.version})</small></h2>
            <p lang="en">{doc.description}</p>
            <p>{t.filePattern}{t.colon}<code>{doc.filePattern}</code></p>
            <p>
              <a href={`${base}/sample.json`} download>{t.downloadSample}</a> · <a href={`${base}/schema.json`} download>{t.downloadSchema}</a>
            </p>
            <div class="box">
              <table>
                <caption class="skip">{`${t.fieldsOf} ${doc.name}`}</caption>
                <thead><tr><th scope="col">{t.field}</th><th scope="col">{t.type}</th><th scope="col">{t.required}</th><th scope="col">{t.rules}</th></tr></thead>
                <tbody>
                  {doc.fields.map((field) => (
                    <tr>
                      <th scope="row"><code>{field.path}</code></th>
                      <td>{field.type}</td>
                      <td>{field.required ? t.yes : t.no}</td>
                      <td>{field.rules.map((rule) => <div>{rule.message[lang]}</div>)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {doc.recordRules.length > 0 && (
              <ul>{doc.recordRules.map((rule) => <li>{rule.message[lang]}</li>)}</ul>
            )}
          </section>
        )
      })}
    </Layout>
  )
}

/**
 * The browser's side of the upload page: a small tus client (create, then PATCH chunks from the
 * offset the server holds, which is also how it resumes after a network cut), a progress bar per
 * file, and the "complete" form shown once every file is in.
 */
const UPLOAD_SCRIPT = `(() => {
  const form = document.getElementById("upload");
  const csrf = form.querySelector("input[name=csrf]").value;
  const list = document.getElementById("files");
  const status = document.getElementById("upload-status");
  const complete = document.getElementById("complete");
  const texts = JSON.parse(document.getElementById("upload-text").textContent);
  const CHUNK = 8 * 1024 * 1024;
  const items = [];
  const add = (file) => {
    if (items.some((item) => item.file.name === file.name)) return;
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = file.name + " (" + file.size.toLocaleString() + " B) ";
    const bar = document.createElement("progress");
    bar.max = Math.max(file.size, 1);
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    bar.dataset.file = file.name;
    li.append(label, bar);
    list.append(li);
    items.push({ file, bar, url: null, done: false });
  };
  const walk = async (entry) => {
    if (entry.isFile) return add(await new Promise((ok, ko) => entry.file(ok, ko)));
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, ko) => reader.readEntries(ok, ko));
      if (batch.length === 0) return;
      for (const child of batch) await walk(child);
    }
  };
  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (event) => event.preventDefault());
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    for (const item of [...event.dataTransfer.items]) {
      const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
      if (entry) await walk(entry);
      else if (item.getAsFile()) add(item.getAsFile());
    }
  });
  for (const input of document.querySelectorAll("input[type=file]")) {
    input.addEventListener("change", () => { for (const file of input.files) add(file); });
  }
  const headers = (more) => Object.assign({ "tus-resumable": "1.0.0", "x-csrf-token": csrf }, more);
  const b64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  class Refused extends Error {}
  const refusal = async (name, response) => new Refused(name + ": " + ((await response.json().catch(() => null)) || {}).message || response.status);
  const send = async (item, delivery) => {
    if (!item.url) {
      const created = await fetch("/portal/uploads", { method: "POST", headers: headers({
        "upload-length": String(item.file.size),
        "upload-metadata": "delivery " + b64(delivery) + ",filename " + b64(item.file.name)
      }) });
      if (created.status !== 201) throw await refusal(item.file.name, created);
      item.url = new URL(created.headers.get("location")).pathname;
    }
    for (;;) {
      const head = await fetch(item.url, { method: "HEAD", headers: headers({}) });
      if (!head.ok) throw new Refused(item.file.name + ": " + head.status);
      const offset = Number(head.headers.get("upload-offset"));
      item.bar.value = offset;
      if (offset >= item.file.size) return;
      await new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open("PATCH", item.url);
        const all = headers({ "upload-offset": String(offset), "content-type": "application/offset+octet-stream" });
        for (const name in all) xhr.setRequestHeader(name, all[name]);
        xhr.upload.onprogress = (event) => { item.bar.value = offset + event.loaded; };
        xhr.onload = () => (xhr.status === 204 ? resolve() : xhr.status >= 500 ? reject(new Error(String(xhr.status))) : reject(new Refused(item.file.name + ": " + xhr.status)));
        xhr.onerror = () => reject(new Error("network"));
        xhr.send(item.file.slice(offset, offset + CHUNK));
      });
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const delivery = form.elements.delivery.value.trim();
    if (items.length === 0) { status.textContent = texts.noFiles; return; }
    form.querySelector("button").disabled = true;
    for (const item of items.filter((item) => !item.done)) {
      for (let attempt = 0; ; attempt++) {
        try {
          status.textContent = texts.sending + " " + item.file.name;
          await send(item, delivery);
          item.done = true;
          break;
        } catch (error) {
          if (error instanceof Refused || attempt >= 40) { status.textContent = error.message; form.querySelector("button").disabled = false; return; }
          status.textContent = texts.retrying;
          await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 5000)));
        }
      }
    }
    status.textContent = texts.allIn;
    complete.action = "/portal/deliveries/" + encodeURIComponent(delivery) + "/complete";
    complete.hidden = false;
    complete.querySelector("button").focus();
  });
})()`

/** Drop files or a folder, send them by tus with a bar per file, then "complete" seals the delivery. */
export const Upload = (props: { readonly page: PageContext; readonly delivery: string }) => {
  const { t } = props.page
  const texts = { sending: t.sending, retrying: t.retrying, allIn: t.allIn, noFiles: t.noFiles }
  return (
    <Layout page={props.page} title={t.upload}>
      <noscript><p>{t.needsScript}</p></noscript>
      <form id="upload" method="post" action="/portal/upload">
        <input type="hidden" name="csrf" value={props.page.csrf} />
        <label for="delivery">{t.deliveryName}</label>
        <input id="delivery" name="delivery" required value={props.delivery} aria-describedby="delivery-hint" />
        <p id="delivery-hint">{t.deliveryHint}</p>
        <div id="drop" class="drop">
          <p>{t.dropHere}</p>
          <label for="pick-files">{t.pickFiles}</label>
          <input id="pick-files" type="file" multiple />
          <label for="pick-folder">{t.pickFolder}</label>
          <input id="pick-folder" type="file" webkitdirectory="" />
        </div>
        <ul id="files" aria-label={t.chosen}></ul>
        <p><button type="submit">{t.send}</button></p>
        <p id="upload-status" role="status"></p>
      </form>
      <form id="complete" method="post" action="/portal/deliveries" hidden>
        <input type="hidden" name="csrf" value={props.page.csrf} />
        <p><button type="submit">{t.complete}</button></p>
      </form>
      <script type="application/json" id="upload-text" dangerouslySetInnerHTML={{ __html: JSON.stringify(texts).replaceAll("<", "\\u003c") }} />
      <script nonce={props.page.nonce} dangerouslySetInnerHTML={{ __html: UPLOAD_SCRIPT }} />
    </Layout>
  )
}
