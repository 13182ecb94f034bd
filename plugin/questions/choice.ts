/**
 * Reads which of a question's options a free-text answer chooses ("no problem, resume" →
 * resume; "don't cancel it" → resume; "cancel" → cancel). People answer in sentences, so a bare
 * keyword test is wrong both ways ("no" in "no problem" is not a refusal). An answer that names
 * no option, or more than one, is undecided: the caller asks again rather than guess.
 */

/** Words that mean an option, by option. The option's own name always counts. */
export type Synonyms = Readonly<Record<string, readonly string[]>>

const NEGATIONS = new Set(["not", "don't", "dont", "never", "no", "do'nt"])

export type Choice = { ok: true; option: string } | { ok: false; named: string[] }

export function chooseOption(answer: string, options: readonly string[], synonyms: Synonyms = {}): Choice {
  const votes = new Set<string>()
  const lower = answer.toLowerCase()
  // A negation only reaches the word right after it, inside the same clause.
  for (const clause of lower.split(/[,.;:!?\n]+/)) {
    const words = clause.split(/\s+/).filter(Boolean)
    for (const option of options) {
      const terms = [option.toLowerCase(), ...(synonyms[option] ?? [])]
      for (const term of terms) {
        const parts = term.split(/\s+/)
        for (let i = 0; i + parts.length <= words.length; i++) {
          if (!parts.every((p, j) => words[i + j]!.replace(/[^\p{L}\p{N}'-]/gu, "") === p)) continue
          const negated = i > 0 && NEGATIONS.has(words[i - 1]!)
          if (!negated) votes.add(option)
          else if (options.length === 2) votes.add(options.find((o) => o !== option)!)
        }
      }
    }
  }
  return votes.size === 1 ? { ok: true, option: [...votes][0]! } : { ok: false, named: [...votes] }
}
