import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/**
 * A scripted OpenAI-compatible model on 127.0.0.1. Scripts are data: each rule says which request
 * it answers (by what the latest user message, the system prompt or the latest tool result
 * contains) and what to answer (text, or tool calls). Every request is recorded, so tests can
 * assert on the system prompt and the tool list the model was given.
 */

export interface ToolCallReply {
  name: string
  args: Record<string, unknown>
}

export interface Reply {
  text?: string
  toolCalls?: ToolCallReply[]
  /** Wait this long before answering (ms): a model that takes time. */
  delayMs?: number
  /**
   * Hold the answer until this many requests have matched the same rule (all are then answered),
   * or `gateTimeoutMs` (default 20 s) passed: proves requests were in flight at the same time
   * without depending on how fast a loaded machine starts them.
   */
  gate?: number
  gateTimeoutMs?: number
  /**
   * Hold the answer until some request (this one excluded) shows this has happened — its newest
   * user message or tool result contains the text — or `timeoutMs` (default 20 s) passed: orders
   * two agents' steps by cause, not by a delay a loaded machine may overrun.
   */
  after?: { user?: string; toolResult?: string; timeoutMs?: number }
  /** Token counts reported with the answer (default 10 in, 5 out). */
  usage?: { input: number; output: number }
  /**
   * Fail instead of answering: `disconnect` cuts the stream after its first chunk (a network
   * failure mid-answer, which OpenCode retries itself); `stream-error` sends an error event in the
   * stream, as providers do for a failure upstream (`failMessage`); a number answers with that
   * HTTP status, an error body and `retry-after-ms: 10`.
   */
  fail?: "disconnect" | "stream-error" | number
  failMessage?: string
}

export interface Rule {
  /** All given conditions must hold. An empty `when` matches every request. */
  when?: {
    /** The newest user message contains this. */
    user?: string
    /**
     * The newest user message matches this regular expression; `$1`…`$9` in the reply's text
     * and tool arguments are replaced by its groups (to echo ids the model was given).
     */
    userMatch?: string
    /** Like `userMatch`, over the text of every message of the conversation. */
    anyMatch?: string
    /** The system prompt contains this. */
    system?: string
    /** The newest message is a tool result containing this. */
    toolResult?: string
    /** Like `userMatch`, over the newest message when it is a tool result. */
    toolResultMatch?: string
    /** The request offers a tool with this name. */
    hasTool?: string
    /** The request does not offer this tool. */
    lacksTool?: string
  }
  reply: Reply
  /** How many times the rule may fire; unlimited if absent. */
  times?: number
}

export interface RecordedRequest {
  at: number
  model: string
  system: string
  tools: string[]
  /** Size in bytes of the tools array as sent. */
  toolBytes: number
  /** Size in bytes of each tool's definition, by name. */
  toolSizes: Record<string, number>
  /** Each tool's definition as sent, by name. */
  toolDefs: Record<string, unknown>
  lastUser: string
  lastToolResult?: string
  messages: ChatMessage[]
  isTitle: boolean
  reply: Reply
  /** When the streamed answer ended (ms since epoch); 0 until then. */
  respondedAt: number
}

interface ChatMessage {
  role: string
  content?: unknown
  tool_call_id?: string
  tool_calls?: unknown[]
}

export class MockModel {
  private rules: (Rule & { used: number; gated?: (() => void)[] })[] = []
  private gateOf = new WeakMap<Reply, (() => void)[]>()
  readonly requests: RecordedRequest[] = []
  private server: Server | undefined
  private listeners = new Set<(r: RecordedRequest) => void>()
  url = ""

  /** Adds rules; earlier rules win. */
  script(rules: Rule[]): this {
    this.rules.push(...rules.map((r) => ({ ...r, used: 0 })))
    return this
  }

  reset(): void {
    this.rules = []
    this.requests.length = 0
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve))
    const { port } = this.server.address() as AddressInfo
    this.url = `http://127.0.0.1:${port}/v1`
    return this.url
  }

  async stop(): Promise<void> {
    if (!this.server) return
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server!.close(() => resolve()))
  }

  /**
   * How long `waitFor` waits when the caller gives no limit (ms). Tests point this at the time
   * left in the running test, so a wait fails first and says what it waited for.
   */
  defaultWaitMs: () => number = () => 15_000

  /**
   * Resolves with the first recorded request (past or future) that satisfies `pred`. `what`
   * names the awaited request in the timeout error (default: the predicate's source).
   */
  waitFor(pred: (r: RecordedRequest) => boolean, opts: number | { what?: string; timeoutMs?: number } = {}): Promise<RecordedRequest> {
    const { what, timeoutMs = this.defaultWaitMs() } = typeof opts === "number" ? { timeoutMs: opts } : opts
    const hit = this.requests.find(pred)
    if (hit) return Promise.resolve(hit)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(on)
        const last = this.requests.at(-1)
        const lastSaid = last ? `; the last one's newest message: "${(last.lastToolResult ?? last.lastUser).slice(0, 120)}"` : ""
        reject(new Error(`timed out after ${(timeoutMs / 1000).toFixed(1)} s waiting for a model request: ${what ?? pred.toString().slice(0, 200)} (saw ${this.requests.length} requests${lastSaid})`))
      }, timeoutMs)
      const on = (r: RecordedRequest) => {
        if (!pred(r)) return
        clearTimeout(timer)
        this.listeners.delete(on)
        resolve(r)
      }
      this.listeners.add(on)
    })
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404).end()
      return
    }
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
      model: string
      messages: ChatMessage[]
      tools?: { function: { name: string } }[]
    }
    const system = body.messages
      .filter((m) => m.role === "system")
      .map((m) => text(m.content))
      .join("\n")
    const tools = (body.tools ?? []).map((t) => t.function.name)
    const last = body.messages[body.messages.length - 1]
    const lastUser = text([...body.messages].reverse().find((m) => m.role === "user")?.content)
    const lastToolResult = last?.role === "tool" ? text(last.content) : undefined
    const isTitle = /title generator|generate a title/i.test(system) && tools.length === 0
    const allText = body.messages.map((m) => text(m.content)).join("\n")
    const reply = isTitle ? { text: "Scripted session" } : this.pick({ system, tools, lastUser, lastToolResult, allText })
    const rec: RecordedRequest = {
      at: Date.now(),
      model: body.model,
      system,
      tools,
      toolBytes: Buffer.byteLength(JSON.stringify(body.tools ?? [])),
      toolSizes: Object.fromEntries((body.tools ?? []).map((t) => [t.function.name, Buffer.byteLength(JSON.stringify(t))])),
      toolDefs: Object.fromEntries((body.tools ?? []).map((t) => [t.function.name, t])),
      lastUser,
      lastToolResult,
      messages: body.messages,
      isTitle,
      reply,
      respondedAt: 0,
    }
    this.requests.push(rec)
    for (const l of [...this.listeners]) l(rec)
    const gate = this.gateOf.get(reply)
    if (reply.gate && gate) {
      await new Promise<void>((open) => {
        const timer = setTimeout(open, reply.gateTimeoutMs ?? 20_000)
        gate.push(() => {
          clearTimeout(timer)
          open()
        })
        if (gate.length >= reply.gate!) for (const release of gate.splice(0)) release()
      })
    }
    if (reply.after) {
      const a = reply.after
      const seen = (r: RecordedRequest) => r !== rec && (a.user === undefined || (r.lastToolResult === undefined && r.lastUser.includes(a.user))) && (a.toolResult === undefined || (r.lastToolResult ?? "").includes(a.toolResult))
      await this.waitFor(seen, { what: `the step this reply waits for (${JSON.stringify(a)})`, timeoutMs: a.timeoutMs ?? 20_000 }).catch(() => {})
    }
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs))
    if (typeof reply.fail === "number") {
      // A short retry-after-ms, as providers send with 429/503: OpenCode's own retries then take milliseconds, not a minute.
      res.writeHead(reply.fail, { "content-type": "application/json", "retry-after-ms": "10" }).end(JSON.stringify({ error: { message: `scripted provider error ${reply.fail}`, type: "server_error" } }))
      rec.respondedAt = Date.now()
      return
    }
    if (reply.fail === "stream-error") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
      res.write(`data: ${JSON.stringify({ error: { message: reply.failMessage ?? "upstream connection reset", type: "server_error" } })}\n\n`)
      res.end()
      rec.respondedAt = Date.now()
      return
    }
    if (reply.fail === "disconnect") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
      res.write(`data: ${JSON.stringify({ id: "chatcmpl-cut", object: "chat.completion.chunk", created: 0, model: body.model, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] })}\n\n`)
      // Let the chunk reach the client, then cut the connection.
      await new Promise((r) => setTimeout(r, 20))
      res.socket?.destroy()
      rec.respondedAt = Date.now()
      return
    }
    stream(res, body.model, reply)
    rec.respondedAt = Date.now()
  }

  private pick(req: { system: string; tools: string[]; lastUser: string; lastToolResult?: string; allText: string }): Reply {
    for (const rule of this.rules) {
      if (rule.times !== undefined && rule.used >= rule.times) continue
      const w = rule.when ?? {}
      if (w.user !== undefined && (req.lastToolResult !== undefined || !req.lastUser.includes(w.user))) continue
      let groups: string[] = []
      if (w.userMatch !== undefined) {
        const m = req.lastToolResult === undefined ? new RegExp(w.userMatch).exec(req.lastUser) : null
        if (!m) continue
        groups = m.slice(1).map((g) => g ?? "")
      }
      if (w.toolResultMatch !== undefined) {
        const m = req.lastToolResult !== undefined ? new RegExp(w.toolResultMatch).exec(req.lastToolResult) : null
        if (!m) continue
        groups = [...groups, ...m.slice(1).map((g) => g ?? "")]
      }
      if (w.anyMatch !== undefined) {
        const m = new RegExp(w.anyMatch).exec(req.allText)
        if (!m) continue
        groups = [...groups, ...m.slice(1).map((g) => g ?? "")]
      }
      if (w.system !== undefined && !req.system.includes(w.system)) continue
      if (w.toolResult !== undefined && !(req.lastToolResult ?? "").includes(w.toolResult)) continue
      if (w.hasTool !== undefined && !req.tools.includes(w.hasTool)) continue
      if (w.lacksTool !== undefined && req.tools.includes(w.lacksTool)) continue
      rule.used++
      rule.gated ??= []
      const reply = groups.length ? (JSON.parse(JSON.stringify(rule.reply).replace(/\$(\d)/g, (all, n: string) => (groups[Number(n) - 1] !== undefined ? groups[Number(n) - 1]! : all))) as Reply) : { ...rule.reply }
      // Every request of a gated rule waits on the rule's one gate.
      if (rule.reply.gate) this.gateOf.set(reply, rule.gated)
      return reply
    }
    return { text: "OK." }
  }
}

function text(content: unknown): string {
  if (typeof content === "string") return content
  if (Array.isArray(content))
    return content.map((p) => (typeof p === "object" && p && "text" in p ? String((p as { text: unknown }).text) : "")).join("\n")
  return ""
}

let callN = 0
function stream(res: ServerResponse, model: string, reply: Reply): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
  const id = `chatcmpl-${++callN}`
  const send = (delta: unknown, finish: string | null = null) =>
    res.write(
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`,
    )
  send({ role: "assistant", content: "" })
  if (reply.text) send({ content: reply.text })
  const calls = reply.toolCalls ?? []
  calls.forEach((c, index) => {
    const callId = `call_${callN}_${index}`
    send({ tool_calls: [{ index, id: callId, type: "function", function: { name: c.name, arguments: "" } }] })
    send({ tool_calls: [{ index, function: { arguments: JSON.stringify(c.args) } }] })
  })
  send({}, calls.length ? "tool_calls" : "stop")
  res.write(
    `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model, choices: [], usage: { prompt_tokens: reply.usage?.input ?? 10, completion_tokens: reply.usage?.output ?? 5, total_tokens: (reply.usage?.input ?? 10) + (reply.usage?.output ?? 5) } })}\n\n`,
  )
  res.write("data: [DONE]\n\n")
  res.end()
}
