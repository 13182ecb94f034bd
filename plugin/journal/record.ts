import { JOURNAL_VERSION, JournalEvent, JournalRecord } from "../protocol.js"
import { compileCheck } from "./fastcheck.js"

/**
 * One journal line ⇄ one record. A line is plain JSON (other tools read the file as JSONL), with
 * the keys always in the order `v, w, s, t, e`. That fixed order is what makes decoding cheap:
 * the header is read straight from the bytes, only the event is decoded and goes through
 * `JSON.parse`, and it is checked by a predicate generated from the zod schema, with zod itself
 * consulted only when the predicate cannot vouch for it. A line in any other layout (a hand
 * edit, another serializer) still decodes, through `JSON.parse` and zod: the fast path changes
 * the speed, never the verdict.
 */

const recordIsValid = compileCheck(JournalRecord)
const eventIsValid = compileCheck(JournalEvent)

export function encodeRecord(record: JournalRecord): string {
  const { v, w, s, t, e } = record
  return JSON.stringify({ v, w, s, t, e }) + "\n"
}

/** The record in `buf[start, end)` (one line without its newline), or undefined if it is not a valid record. */
export function decodeRecord(buf: Buffer, start: number, end: number): JournalRecord | undefined {
  const e = readHeader(buf, start, end)
  if (e < 0) return decodeSlow(buf.toString("utf8", start, end))
  let event: unknown
  try {
    event = JSON.parse(buf.toString("utf8", e, end - 1))
  } catch {
    // Possibly valid JSON all the same (say, a key after `e`): the slow path decides.
    return decodeSlow(buf.toString("utf8", start, end))
  }
  const record: JournalRecord = { v: JOURNAL_VERSION, w: header.w, s: header.s, t: header.t, e: event as JournalEvent }
  return eventIsValid(event) ? record : validate(record)
}

/** The writer id of the line in `buf[start, end)`, read from its bytes; undefined if it is not in the writer's layout. */
export function writerOf(buf: Buffer, start: number, end: number): string | undefined {
  return readHeader(buf, start, end) < 0 ? undefined : header.w
}

function decodeSlow(line: string): JournalRecord | undefined {
  let raw: unknown
  try {
    raw = JSON.parse(line)
  } catch {
    return undefined
  }
  return validate(raw)
}

function validate(raw: unknown): JournalRecord | undefined {
  if (recordIsValid(raw)) return raw as JournalRecord
  const r = JournalRecord.safeParse(raw)
  return r.success ? r.data : undefined
}

// --- The header, read by hand -------------------------------------------------------------------

const HEAD = Buffer.from(`{"v":${JOURNAL_VERSION},"w":"`)
const S_KEY = Buffer.from(`,"s":`)
const T_KEY = Buffer.from(`,"t":`)
const E_KEY = Buffer.from(`,"e":`)
const QUOTE = 0x22
const BACKSLASH = 0x5c
const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39
const CLOSE = 0x7d

/** What the last `readHeader` found; fields instead of a returned object spare an allocation per line. */
const header = { w: "", s: 0, t: 0 }
// Lines of one file nearly all come from the same writer: comparing bytes beats decoding its id.
let lastWriter = Buffer.alloc(0)
let lastWriterId = ""

/**
 * Reads `{"v":1,"w":"<id>","s":<int>,"t":<int>,"e":` from the start of the line into `header`
 * and returns where the event starts, provided the line also ends in `}`; otherwise -1, leaving
 * the line to the slow path. Whatever it accepts, `JSON.parse` reads the same way: the id has no
 * escapes, control or non-ASCII bytes, and the numbers are plain integers that fit exactly.
 */
function readHeader(buf: Buffer, start: number, end: number): number {
  if (end - start < HEAD.length + 20 || buf[end - 1] !== CLOSE || !matches(buf, start, HEAD)) return -1
  let i = start + HEAD.length
  const n = lastWriter.length
  if (n > 0 && buf[i + n] === QUOTE && matches(buf, i, lastWriter)) {
    header.w = lastWriterId
    i += n + 1
  } else {
    let j = i
    for (let c = buf[j]!; c !== QUOTE; c = buf[++j]!) if (j >= end || c === BACKSLASH || c < 0x20 || c > 0x7e) return -1
    if (j === i) return -1
    lastWriter = Buffer.from(buf.subarray(i, j))
    lastWriterId = lastWriter.toString("latin1")
    header.w = lastWriterId
    i = j + 1
  }
  if (!matches(buf, i, S_KEY)) return -1
  i = readInt(buf, i + S_KEY.length, end, false)
  if (i < 0) return -1
  header.s = intValue
  if (!matches(buf, i, T_KEY)) return -1
  i = readInt(buf, i + T_KEY.length, end, true)
  if (i < 0) return -1
  header.t = intValue
  if (!matches(buf, i, E_KEY)) return -1
  return i + E_KEY.length
}

function matches(buf: Buffer, at: number, bytes: Buffer): boolean {
  for (let k = 0; k < bytes.length; k++) if (buf[at + k] !== bytes[k]) return false
  return true
}

let intValue = 0

/**
 * A JSON integer at `at` (no leading zeros, fraction or exponent, at most 15 digits so it is
 * exact): its value goes to `intValue` and the index after it is returned, or -1.
 */
function readInt(buf: Buffer, at: number, end: number, signed: boolean): number {
  let i = at
  const negative = signed && buf[i] === MINUS
  if (negative) i++
  const first = i
  let value = 0
  for (let c = buf[i]!; c >= ZERO && c <= NINE && i < end; c = buf[++i]!) value = value * 10 + (c - ZERO)
  const digits = i - first
  if (digits === 0 || digits > 15 || (digits > 1 && buf[first] === ZERO)) return -1
  intValue = negative ? -value : value
  return i
}
