import type { z } from "zod"

/**
 * A quick yes for values that a zod schema would accept unchanged.
 *
 * Replay meets a million records; `safeParse` costs about a microsecond each because it copies
 * every object and collects issues. Nearly every record is valid and already in its final form
 * (it was written by `JSON.stringify` of a typed event), so a plain predicate answers for those,
 * and only the rest go through zod, which stays the one definition of what is valid.
 *
 * The predicate is generated from the schema itself, not written by hand, so it cannot drift from
 * protocol.ts. Its one promise: `true` means `schema.safeParse(v)` succeeds and returns a value
 * deep-equal to `v`. Anything it does not understand (a transform, a default to fill in, a key
 * zod would strip, a check kind not listed below) answers `false`, which costs time, never
 * correctness. It reads zod 4's `_zod.def`, the introspection zod offers to libraries; the tests
 * compare it with `safeParse`, so a zod upgrade that changes those shapes is noticed.
 *
 * It is generated as source and compiled with `new Function`, as zod itself does: property reads
 * by constant name and no calls through closures make it about ten times faster than composing
 * closures. Where code generation is not allowed the predicate answers `false`, i.e. zod decides.
 */
export type Check = (value: unknown) => boolean

interface CheckDef {
  check?: string
  minimum?: number
  maximum?: number
  length?: number
  value?: unknown
  inclusive?: boolean
  format?: string
  pattern?: RegExp
}

interface Def {
  type: string
  coerce?: boolean
  checks?: { _zod: { def: CheckDef } }[]
  shape?: Record<string, z.ZodType>
  catchall?: z.ZodType
  innerType?: z.ZodType
  element?: z.ZodType
  options?: z.ZodType[]
  discriminator?: string
  unionFallback?: boolean
}

const INT_RANGES: Record<string, [number, number]> = {
  safeint: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
}

export function compileCheck(schema: z.ZodType): Check {
  const gen = new Generator()
  const root = gen.fn(schema)
  const source = `"use strict";\n${gen.functions.join("\n")}\nreturn ${root};`
  try {
    return new Function(...gen.constNames(), source)(...gen.consts) as Check
  } catch {
    return () => false
  }
}

/** Emits one function per object, array and union, and an inline expression for the rest. */
class Generator {
  readonly consts: unknown[] = []
  readonly functions: string[] = []
  private readonly names = new Map<z.ZodType, string>()

  constNames(): string[] {
    return this.consts.map((_, i) => `k${i}`)
  }

  private constant(value: unknown): string {
    this.consts.push(value)
    return `k${this.consts.length - 1}`
  }

  /** The name of a function `(v) => boolean` for `schema`. */
  fn(schema: z.ZodType): string {
    const known = this.names.get(schema)
    if (known) return known
    const name = `f${this.names.size}`
    this.names.set(schema, name)
    const def = defOf(schema)
    let body: string
    if (def.type === "object") body = this.object(def)
    else if (def.type === "array") body = this.array(def)
    else if (def.type === "union") body = this.union(def)
    else body = `return ${this.expr(schema, "v")};`
    this.functions.push(`function ${name}(v) {\n${body}\n}`)
    return name
  }

  /** A boolean expression over `x` (an identifier or a property read, evaluated more than once). */
  private expr(schema: z.ZodType, x: string): string {
    const def = defOf(schema)
    switch (def.type) {
      case "string": {
        const checks = def.coerce ? undefined : this.stringChecks(ownChecks(def), x)
        return checks === undefined ? "false" : `(typeof ${x} === "string"${checks})`
      }
      case "number": {
        const checks = def.coerce ? undefined : this.numberChecks(ownChecks(def), x)
        return checks === undefined ? "false" : `(typeof ${x} === "number" && Number.isFinite(${x})${checks})`
      }
      case "boolean":
        return def.coerce ? "false" : `(typeof ${x} === "boolean")`
      case "literal":
      case "enum": {
        // The set zod itself tests membership in (for an enum, the entries' values, not keys).
        const values = [...((schema as unknown as { _zod: { values?: Set<unknown> } })._zod.values ?? [])]
        const plain = (v: unknown) => typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))
        if (!values.length || !values.every(plain)) return "false"
        return `(${values.map((v) => `${x} === ${JSON.stringify(v)}`).join(" || ")})`
      }
      case "optional":
        return `(${x} === undefined || ${this.expr(def.innerType!, x)})`
      case "default":
        // An absent value would be filled in: zod's output would differ from the input.
        return `(${x} !== undefined && ${this.expr(def.innerType!, x)})`
      case "object":
      case "array":
      case "union":
        return `${this.fn(schema)}(${x})`
      default:
        return "false"
    }
  }

  private object(def: Def): string {
    // With a catch-all zod keeps or checks unknown keys; without one it strips them. Either way
    // a value with unknown keys is not simply accepted as it is, so none are allowed here.
    if (def.catchall) return "return false;"
    const keys = Object.keys(def.shape ?? {})
    const fields = keys.map((k) => this.expr(def.shape![k]!, `v[${JSON.stringify(k)}]`))
    // Counting the keys that are set and comparing with the number of own keys rules out unknown
    // keys without looking each one up. Only optional fields can be unset once their checks passed.
    const optional = keys.filter((k) => defOf(def.shape![k]!).type === "optional")
    const present = [String(keys.length - optional.length), ...optional.map((k) => `(v[${JSON.stringify(k)}] !== undefined)`)].join(" + ")
    return [
      `if (typeof v !== "object" || v === null || Array.isArray(v)) return false;`,
      ...fields.map((f) => `if (!${f}) return false;`),
      `return Object.keys(v).length === ${present};`,
    ].join("\n")
  }

  private array(def: Def): string {
    if (def.checks?.length) return "return false;"
    return [
      `if (!Array.isArray(v)) return false;`,
      `for (let i = 0; i < v.length; i++) { const e = v[i]; if (!${this.expr(def.element!, "e")}) return false; }`,
      `return true;`,
    ].join("\n")
  }

  private union(def: Def): string {
    // Only discriminated unions: zod picks the option by one key, and so can a switch.
    if (def.discriminator === undefined || def.unionFallback) return "return false;"
    const key = JSON.stringify(def.discriminator)
    const cases: string[] = []
    for (const option of def.options ?? []) {
      const values = (option as unknown as { _zod: { propValues?: Record<string, Set<unknown>> } })._zod.propValues?.[def.discriminator]
      if (!values) return "return false;"
      const name = this.fn(option)
      for (const value of values) {
        if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") return "return false;"
        cases.push(`case ${JSON.stringify(value)}: return ${name}(v);`)
      }
    }
    return [
      `if (typeof v !== "object" || v === null || Array.isArray(v)) return false;`,
      `switch (v[${key}]) {`,
      ...cases,
      `default: return false;`,
      `}`,
    ].join("\n")
  }

  /**
   * A string schema's refinements as `&& …` terms, or undefined if one is not understood. A
   * check's `when` (zod's condition for running it at all) is ignored: running a check zod would
   * skip can only turn a yes into a no, never the reverse.
   */
  private stringChecks(checks: CheckDef[], x: string): string | undefined {
    let out = ""
    for (const d of checks) {
      if (d.check === "min_length" && typeof d.minimum === "number") out += ` && ${x}.length >= ${d.minimum}`
      else if (d.check === "max_length" && typeof d.maximum === "number") out += ` && ${x}.length <= ${d.maximum}`
      else if (d.check === "length_equals" && typeof d.length === "number") out += ` && ${x}.length === ${d.length}`
      else if (d.check === "string_format" && d.format === "regex" && d.pattern instanceof RegExp) {
        const re = this.constant(d.pattern)
        out += ` && (${re}.lastIndex = 0, ${re}.test(${x}))`
      } else return undefined
    }
    return out
  }

  private numberChecks(checks: CheckDef[], x: string): string | undefined {
    let out = ""
    for (const d of checks) {
      const range = d.check === "number_format" && d.format ? INT_RANGES[d.format] : undefined
      if (range) out += ` && Number.isInteger(${x}) && ${x} >= ${range[0]} && ${x} <= ${range[1]}`
      else if (d.check === "greater_than" && typeof d.value === "number" && Number.isFinite(d.value))
        out += ` && ${x} ${d.inclusive ? ">=" : ">"} ${d.value}`
      else if (d.check === "less_than" && typeof d.value === "number" && Number.isFinite(d.value))
        out += ` && ${x} ${d.inclusive ? "<=" : "<"} ${d.value}`
      else return undefined
    }
    return out
  }
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def
}

/** Format schemas such as `z.email()` or `z.int()` are themselves a check, besides those in `checks`. */
function ownChecks(def: Def): CheckDef[] {
  const self = (def as CheckDef).check !== undefined ? [def as CheckDef] : []
  return [...self, ...(def.checks ?? []).map((c) => c._zod.def)]
}
