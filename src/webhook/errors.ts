import { Data } from "effect"

/** The request is not something the webhook understands (400). */
export class BadRequest extends Data.TaggedError("BadRequest")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** The request could not be authenticated (401). The reason is safe to show: it holds no secret. */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** The request is authentic but asks for something we refuse, e.g. an SNS topic not allowed (403). */
export class Forbidden extends Data.TaggedError("Forbidden")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** The body is larger than the configured limit (413). */
export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<{ readonly limit: number }> {
  override get message(): string {
    return `the body is larger than ${this.limit} bytes`
  }
}

/** A service the webhook had to call answered badly, e.g. the SNS subscription URL (502). */
export class UpstreamFailed extends Data.TaggedError("UpstreamFailed")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** The job queue could not take the work (its database down): the sender should retry (503). */
export class Unavailable extends Data.TaggedError("Unavailable")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}
