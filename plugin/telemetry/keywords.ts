/** Words that say nothing about what a task is about. */
const STOP = new Set(
  "the and for with that this from into your you are was were will would should could have has had not but all any can its our out use using make made then than them they their there here what when where which while who why how about after before also just only over under more most some such very each other again please task agent agents work done need needs want".split(
    " ",
  ),
)

/**
 * What a task is about, as lower-case words of at least three letters without stop words, in
 * order of first appearance, at most `max`: the keys telemetry matches past tasks by.
 */
export function keywordsOf(text: string, max = 12): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  for (const m of text.toLowerCase().matchAll(/[a-z][a-z0-9+#.-]{2,}/g)) {
    const w = m[0].replace(/[.-]+$/, "")
    if (w.length < 3 || STOP.has(w) || seen.has(w)) continue
    seen.add(w)
    out.push(w)
    if (out.length >= max) break
  }
  return out
}
