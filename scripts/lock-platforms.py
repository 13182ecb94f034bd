#!/usr/bin/env python3
"""Adds lock entries for optional platform packages the registry mirror here does not serve.

npm records an optional dependency in package-lock.json only if it could fetch its metadata; the
registry reachable from this project's machines 404s on some other-platform binaries
(opencode-darwin-*, @msgpackr-extract/*-darwin-*, ...). `npm ci` then refuses the lock as out of
sync. Entries with os/cpu set are skipped by `npm ci` on a non-matching machine without any
download, so declaring them (without integrity) is enough. Run after `npm install`.
"""
import json, re, sys

path = sys.argv[1] if len(sys.argv) > 1 else "package-lock.json"
lock = json.load(open(path))
pkgs = lock["packages"]

def platform(name):
    n = name.split("/")[-1]
    os_ = "darwin" if "darwin" in n else "win32" if ("windows" in n or "win32" in n) else "linux" if "linux" in n else None
    cpu = "arm64" if "arm64" in n else "arm" if re.search(r"-arm(-|$)", n) else "x64" if "x64" in n else None
    libc = ["musl"] if "musl" in n else None
    return os_, cpu, libc

added = []
for key, meta in list(pkgs.items()):
    for dep, ver in (meta.get("optionalDependencies") or {}).items():
        base = key + "/node_modules/" if key else "node_modules/"
        if base + dep in pkgs or "node_modules/" + dep in pkgs:
            continue
        os_, cpu, libc = platform(dep)
        if not os_ or not cpu:
            continue
        entry = {"version": ver.lstrip("^~"), "cpu": [cpu], "os": [os_], "optional": True}
        if libc:
            entry["libc"] = libc
        pkgs["node_modules/" + dep] = entry
        added.append(dep)
json.dump(lock, open(path, "w"), indent=2)
open(path, "a").write("\n")
print(f"added {len(added)} platform entries: {', '.join(added)}")
