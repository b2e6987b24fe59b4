import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient
} from "@aws-sdk/client-sqs"
import { type FauxqsServer, startFauxqs } from "fauxqs"
import { onStop } from "./services.ts"

/** Any credentials do for the local server; our code gets them as it would get real ones. */
export const sqsCredentials = { accessKeyId: "test", secretAccessKey: "test" } as const

let queues = 0

/**
 * A local SQS-compatible server (fauxqs, in this process: it speaks the JSON protocol of the
 * current `@aws-sdk/client-sqs`), standing in for AWS only. Stopped at the end of the run.
 */
export const sqsServer = async (port = 0): Promise<FauxqsServer> => {
  const server = await startFauxqs({ port, logger: false })
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await server.stop()
  }
  onStop(stop)
  return Object.assign(server, { stop })
}

/** A raw SDK client on `server`, for setup and assertions outside our own code. */
export const sqsClient = (server: FauxqsServer): SQSClient =>
  new SQSClient({ endpoint: server.address, region: "us-east-1", credentials: sqsCredentials })

/**
 * A fresh queue set up as the README tells users to on AWS: a dead-letter queue, and a redrive
 * policy sending a message there after `maxReceiveCount` receives; plus an SNS topic delivering
 * into the queue in its envelope (no raw delivery), for S3 → SNS → SQS.
 */
export const freshQueue = async (
  server: FauxqsServer,
  options: { readonly visibilityTimeout: number; readonly maxReceiveCount: number }
) => {
  const client = sqsClient(server)
  const name = `loaders-events-${++queues}`
  const dlq = await client.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }))
  const dlqArn = (await client.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn
  const queue = await client.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(options.visibilityTimeout),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: options.maxReceiveCount })
      }
    })
  )
  const queueUrl = queue.QueueUrl ?? ""
  const dlqUrl = dlq.QueueUrl ?? ""
  const { topicArn } = server.createTopic(`${name}-topic`)
  server.subscribe({ topic: `${name}-topic`, queue: name })

  /** Sends `bodies` straight to the queue (as S3 → SQS does), 10 to a request. */
  const send = async (bodies: ReadonlyArray<string>) => {
    for (let start = 0; start < bodies.length; start += 10) {
      const entries = bodies.slice(start, start + 10).map((body, i) => ({ Id: String(i), MessageBody: body }))
      const sent = await client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }))
      if ((sent.Failed ?? []).length > 0) throw new Error(`SendMessageBatch failed: ${JSON.stringify(sent.Failed)}`)
    }
  }

  /** Publishes `message` to the topic (S3 → SNS → SQS): SNS's Query API, as S3 would call it. */
  const publish = async (message: string) => {
    const response = await fetch(server.address, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ Action: "Publish", TopicArn: topicArn, Message: message })
    })
    if (!response.ok) throw new Error(`SNS Publish answered ${response.status}: ${await response.text()}`)
  }

  /** Messages in a queue: waiting, and received but neither deleted nor visible again yet. */
  const depth = async (url = queueUrl) => {
    const { Attributes = {} } = await client.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
      })
    )
    return { visible: Number(Attributes.ApproximateNumberOfMessages), inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible) }
  }

  /** The bodies in the dead-letter queue (received with a short visibility timeout, not deleted). */
  const deadLetters = async (): Promise<Array<string>> => {
    const bodies: Array<string> = []
    for (;;) {
      const { Messages = [] } = await client.send(new ReceiveMessageCommand({ QueueUrl: dlqUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 5 }))
      if (Messages.length === 0) return bodies
      bodies.push(...Messages.map((m) => m.Body ?? ""))
    }
  }

  return { queueUrl, dlqUrl, send, publish, depth, deadLetters }
}
