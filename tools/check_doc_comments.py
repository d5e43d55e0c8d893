#!/usr/bin/env python3
"""Every public Swift symbol of the library has a doc comment.

    tools/check_doc_comments.py [--skip-dump] [MODULE ...]

Dumps the package's symbol graphs at public access (`swift package dump-symbol-graph
--minimum-access-level public`) and lists each public or open symbol of MODULE (default: every
module named Elucidate*) that has no doc comment of its own or inherited from the protocol
requirement it implements, as `file:line: kind name`. Symbols the compiler synthesises
(`hashValue`, `init(rawValue:)`, …) have no source location and are not counted, nor are those
of code SwiftPM generates under .build (the test runner's modules, `ElucidatePackageTests` and
`ElucidatePackageDiscoveredTests`, also start with "Elucidate"). The test modules exist only
after `swift build --build-tests`; without them the dump fails (exit 2).

Exits 1 when any symbol lacks one, 2 when the symbol graphs cannot be made.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
from urllib.parse import unquote, urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="modules to check (default: Elucidate*)")
    parser.add_argument("--skip-dump", action="store_true", help="use the symbol graphs already in .build")
    args = parser.parse_args()

    if not args.skip_dump:
        run = subprocess.run(["swift", "package", "dump-symbol-graph", "--minimum-access-level", "public"],
                             cwd=ROOT, capture_output=True, text=True)
        if run.returncode != 0:
            sys.stderr.write(run.stdout + run.stderr)
            print("check_doc_comments: swift package dump-symbol-graph failed", file=sys.stderr)
            return 2
    graphs = sorted(glob.glob(os.path.join(ROOT, ".build", "*", "symbolgraph", "*.symbols.json")))
    if not graphs:
        print("check_doc_comments: no symbol graphs under .build/*/symbolgraph", file=sys.stderr)
        return 2

    missing = []
    checked = 0
    for path in graphs:
        module = os.path.basename(path).split(".")[0]
        if "@" in module:
            continue  # extensions of other modules' types are checked with their own module
        if args.modules and module not in args.modules:
            continue
        if not args.modules and not module.startswith("Elucidate"):
            continue
        with open(path) as f:
            graph = json.load(f)
        for symbol in graph["symbols"]:
            if symbol.get("accessLevel") not in ("public", "open") or "location" not in symbol:
                continue
            location = symbol["location"]
            file = os.path.relpath(unquote(urlparse(location["uri"]).path), ROOT)
            if file.startswith(".build" + os.sep):
                continue  # SwiftPM's generated test runner (module ElucidatePackageTests), not ours
            checked += 1
            if symbol.get("docComment", {}).get("lines"):
                continue
            line = location["position"]["line"] + 1
            kind = symbol["kind"]["displayName"].lower()
            missing.append(f"{file}:{line}: {kind} {'.'.join(symbol['pathComponents'])}")

    for entry in sorted(set(missing)):
        print(entry)
    print(f"check_doc_comments: {checked} public symbols, {len(set(missing))} without a doc comment",
          file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
