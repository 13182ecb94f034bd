/**
 * Build step: the dashboard's page (plain files, no build of their own) beside the compiled
 * server, so the package serves them from dist/plugin/dashboard/page.
 */
import { cpSync, rmSync } from "node:fs"
import { join } from "node:path"
import { PACKAGE_ROOT as REPO_ROOT } from "../plugin/paths.js"

const to = join(REPO_ROOT, "dist", "plugin", "dashboard", "page")
rmSync(to, { recursive: true, force: true })
cpSync(join(REPO_ROOT, "plugin", "dashboard", "page"), to, { recursive: true })
