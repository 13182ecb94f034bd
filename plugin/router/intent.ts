import { IntentRule, parse } from "../protocol.js"


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
