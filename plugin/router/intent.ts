import { z } from "zod"
import { parse } from "../protocol.js"

/** A user-message rule: any keyword (whole word, any case) or the regex suggests `agent`. */
export const IntentRule = z
  .object({
    name: z.string().min(1),
    agent: z.string().min(1),
    keywords: z.array(z.string().min(1)).default([]),
    /** A JavaScript regular expression, matched case-insensitively. */
    pattern: z.string().optional(),
  })
  .refine((r) => r.keywords.length > 0 || r.pattern !== undefined, {
    message: "a rule needs at least one keyword or a pattern",
  })
export type IntentRule = z.infer<typeof IntentRule>

export interface IntentSuggestion {
  agent: string
  rule: string
}

export type IntentMonitor = (text: string) => IntentSuggestion | undefined

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Compiles the rules once; a bad regex fails here, naming the rule. */
export function createIntentMonitor(rules: readonly unknown[]): IntentMonitor {
  const compiled = rules.map((raw, i) => {
    const rule = parse(IntentRule, raw, `intent rule #${i + 1}`)
    const alternatives: RegExp[] = []
    if (rule.keywords.length)
      alternatives.push(new RegExp(`\\b(?:${rule.keywords.map(escape).join("|")})\\b`, "i"))
    if (rule.pattern !== undefined) {
      try {
        alternatives.push(new RegExp(rule.pattern, "i"))
      } catch (err) {
        throw new TypeError(
          `Invalid intent rule "${rule.name}": pattern ${JSON.stringify(rule.pattern)} is not a valid regular expression (${(err as Error).message})`,
        )
      }
    }
    return { rule, alternatives }
  })
  return (text) => {
    for (const { rule, alternatives } of compiled) {
      if (alternatives.some((re) => re.test(text))) return { agent: rule.agent, rule: rule.name }
    }
    return undefined
  }
}
