/**
 * Problems the user should act on (a bad option, a profile left out, a question nobody can
 * answer any more). A toast at start-up fires before the TUI listens, and a log file is not where
 * people look, so each notice is also put in front of the user in the first root session they
 * write in after NSO started — once per session.
 */
export class Notices {
  private list: string[] = []
  private shown = new Map<string, number>()

  add(text: string): void {
    this.list.push(text)
  }

  /** Notices this session has not been shown yet (and marks them shown). */
  unseen(sessionId: string): string[] {
    const from = this.shown.get(sessionId) ?? 0
    this.shown.set(sessionId, this.list.length)
    return this.list.slice(from)
  }
}
