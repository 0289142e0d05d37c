#!/usr/bin/env python3
"""Import cycles between modules of each crate of the workspace.

For every module, the modules of its sibling subtrees that it (or anything under it) names through
`crate::` paths or `super::` paths are its dependencies. Test-only modules (`#[cfg(test)] mod`,
in their own file or inline) are left out: they may use any part of the crate. At each level of the module tree, the
siblings' dependencies must form no cycle: `a -> b -> a` is reported with the lines that make each
edge. A module using its own children or its parent is not a dependency in this sense (that is
the module tree itself).

    python3 tests/import_cycles.py [CRATE_SRC_DIR ...]   # default: every crate of the workspace
Exit status 1 when a cycle exists.
"""
import os
import re
import sys
from collections import defaultdict

DEFAULT_ROOTS = ["src", "hap-proto/src", "media/src", "test-support/src"]
PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\}", re.S)
MOD_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", re.M)
TEST_MOD_RE = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*([;{])")


def strip_test_modules(text):
    """The text without inline `#[cfg(test)] mod x { ... }` blocks, and the names of
    `#[cfg(test)] mod x;` declarations."""
    skipped = set()
    out, pos = [], 0
    for m in TEST_MOD_RE.finditer(text):
        if m.start() < pos:
            continue
        if m.group(2) == ";":
            skipped.add(m.group(1))
            continue
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out.append(text[pos:m.start()])
        pos = i + 1
    out.append(text[pos:])
    return "".join(out), skipped
PATH_ATTR_RE = re.compile(r"#\[path\s*=\s*\"([^\"]+)\"\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] if "\"" not in line.split("//", 1)[0] else line
                     for line in text.split("\n"))


def module_files(root):
    """Maps module path tuples to files, following `mod x;` declarations from lib.rs/main.rs."""
    mods = {}
    entry = next((os.path.join(root, f) for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(root, f))), None)
    if entry is None:
        return mods

    def visit(path, file):
        mods[path] = file
        text, test_mods = strip_test_modules(open(file, encoding="utf-8").read())
        base = os.path.dirname(file)
        stem = os.path.splitext(os.path.basename(file))[0]
        own_dir = base if stem in ("lib", "main", "mod") else os.path.join(base, stem)
        for attr_path, name in PATH_ATTR_RE.findall(text):
            target = os.path.normpath(os.path.join(base if stem in ("lib", "main", "mod") else base, attr_path))
            if os.path.exists(target):
                visit(path + (name,), target)
        for name in MOD_RE.findall(text):
            if path + (name,) in mods or name in test_mods:
                continue
            for cand in (os.path.join(own_dir, name + ".rs"), os.path.join(own_dir, name, "mod.rs")):
                if os.path.exists(cand):
                    visit(path + (name,), cand)
                    break

    visit((), entry)
    return mods


def references(mods):
    """(from module, to module, line) for every crate:: / super:: path naming a module."""
    out = []
    for path, file in mods.items():
        text = strip_comments(strip_test_modules(open(file, encoding="utf-8").read())[0])
        lines = text.split("\n")
        for lineno, line in enumerate(lines, 1):
            pass
        def resolve(kind, segs):
            if kind == "crate":
                cur = ()
            else:
                cur = path[:-1] if path else ()
            segs = [s for s in segs if s]
            while segs and segs[0] == "super":
                cur = cur[:-1]
                segs = segs[1:]
            best = cur
            for s in segs:
                if cur + (s,) in mods:
                    cur = cur + (s,)
                    best = cur
                else:
                    break
            return best
        for m in USE_GROUP_RE.finditer(text):
            kind, prefix, group = m.group(1), m.group(2), m.group(3)
            lineno = text.count("\n", 0, m.start()) + 1
            for item in re.split(r",", re.sub(r"\{[^{}]*\}", "", group)):
                item = item.strip().split(" as ")[0].strip()
                if not item or item == "self":
                    segs = prefix.split("::")
                else:
                    segs = prefix.split("::") + item.split("::")
                out.append((path, resolve(kind, segs), f"{file}:{lineno}"))
        for m in PATH_RE.finditer(text):
            kind, rest = m.group(1), m.group(2)
            lineno = text.count("\n", 0, m.start()) + 1
            out.append((path, resolve(kind, rest.split("::")), f"{file}:{lineno}"))
    return out


def cycles(mods, refs):
    found = []
    children = defaultdict(set)
    for p in mods:
        if p:
            children[p[:-1]].add(p)
    for parent, kids in children.items():
        edges = defaultdict(dict)
        for src, dst, where in refs:
            a = next((k for k in kids if src[:len(k)] == k), None)
            b = next((k for k in kids if dst[:len(k)] == k), None)
            if a and b and a != b:
                edges[a].setdefault(b, where)
        # Tarjan's strongly connected components.
        index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

        def strong(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in edges[v]:
                if w not in index:
                    strong(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(comp)

        for k in sorted(kids):
            if k not in index:
                strong(k)
        for comp in comps:
            members = set(comp)
            detail = [f"    {'::'.join(a)} -> {'::'.join(b)}  ({w})"
                      for a in sorted(members) for b, w in sorted(edges[a].items()) if b in members]
            found.append((parent, sorted(comp), detail))
    return found


def main():
    roots = sys.argv[1:] or [r for r in DEFAULT_ROOTS if os.path.isdir(r)]
    bad = 0
    for root in roots:
        mods = module_files(root)
        for parent, comp, detail in cycles(mods, references(mods)):
            bad += 1
            where = "::".join(parent) or "crate"
            print(f"{root}: import cycle under {where}: {' <-> '.join('::'.join(c) for c in comp)}")
            print("\n".join(detail))
        print(f"{root}: {len(mods)} modules checked", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
