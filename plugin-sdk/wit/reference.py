#!/usr/bin/env python3
"""Writes the WIT reference (docs/wit-reference.md) from the WIT files next to this script.

    python3 plugin-sdk/wit/reference.py > docs/wit-reference.md   # regenerate
    python3 plugin-sdk/wit/reference.py --check                   # exit 1 when the file is stale

Python 3.11, standard library only. The parser reads the subset of WIT this package uses: `///`
doc comments, `package`, `interface`, `world` (with `import` / `export` of interfaces), `use`,
`record`, `variant`, `enum`, `flags`, `type` aliases, `func`, and `@since` / `@unstable` /
`@deprecated` gates. Anything else (resources, inline world items, `include`, named results) is
refused with its file and line, so that a WIT change the reference cannot show fails loudly
instead of disappearing from the page.

When `plugin-sdk/wit-archive/<version>/` holds earlier releases, the reference lists what changed
since the newest of them (the previous version the host still loads).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

WIT_DIR = Path(__file__).resolve().parent
REPO = WIT_DIR.parent.parent
ARCHIVE = REPO / "plugin-sdk" / "wit-archive"
OUTPUT = REPO / "docs" / "wit-reference.md"
COMMAND = "python3 plugin-sdk/wit/reference.py > docs/wit-reference.md"

BUILTINS = {
    "bool", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "f32", "f64",
    "float32", "float64", "char", "string", "list", "option", "result", "tuple",
    "borrow", "own", "future", "stream", "_",
}


class WitError(Exception):
    pass


# --- lexing ----------------------------------------------------------------------------------

@dataclass
class Token:
    kind: str  # doc, ident, punct, version, eof
    text: str
    file: str
    line: int


TOKEN_RE = re.compile(
    r"""
    (?P<doc>///[^\n]*)
  | (?P<comment>//[^\n]*)
  | (?P<block>/\*.*?\*/)
  | (?P<space>\s+)
  | (?P<arrow>->)
  | (?P<ident>%?[A-Za-z_][A-Za-z0-9_-]*)
  | (?P<number>[0-9][0-9A-Za-z.+-]*)
  | (?P<punct>[{}()<>,;:=.@/*])
    """,
    re.VERBOSE | re.DOTALL,
)


def lex(text: str, file: str) -> list[Token]:
    tokens: list[Token] = []
    pos, line = 0, 1
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise WitError(f"{file}:{line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        value = m.group()
        if kind == "doc":
            body = value[3:]
            tokens.append(Token("doc", body[1:] if body.startswith(" ") else body, file, line))
        elif kind in ("ident", "number"):
            tokens.append(Token("ident" if kind == "ident" else "version", value, file, line))
        elif kind in ("arrow", "punct"):
            tokens.append(Token("punct", value, file, line))
        line += value.count("\n")
        pos = m.end()
    tokens.append(Token("eof", "", file, line))
    return tokens


# --- the model -------------------------------------------------------------------------------

@dataclass
class TypeRef:
    name: str
    args: list["TypeRef"] = field(default_factory=list)

    def wit(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}<{', '.join(a.wit() for a in self.args)}>"


@dataclass
class Member:
    """A record field, a variant case or an enum / flags case."""
    name: str
    type: TypeRef | None
    docs: list[str]
    gates: list[str]


@dataclass
class TypeDef:
    kind: str  # record, variant, enum, flags, type
    name: str
    docs: list[str]
    gates: list[str]
    members: list[Member] = field(default_factory=list)
    alias: TypeRef | None = None


@dataclass
class Func:
    name: str
    params: list[tuple[str, TypeRef]]
    result: TypeRef | None
    docs: list[str]
    gates: list[str]

    def wit(self) -> str:
        params = ", ".join(f"{n}: {t.wit()}" for n, t in self.params)
        result = f" -> {self.result.wit()}" if self.result else ""
        return f"{self.name}: func({params}){result};"


@dataclass
class Use:
    interface: str
    names: list[tuple[str, str]]  # (name in the used interface, local name)


@dataclass
class Interface:
    name: str
    docs: list[str]
    gates: list[str]
    file: str
    uses: list[Use] = field(default_factory=list)
    types: list[TypeDef] = field(default_factory=list)
    funcs: list[Func] = field(default_factory=list)


@dataclass
class World:
    name: str
    docs: list[str]
    gates: list[str]
    file: str
    imports: list[tuple[str, list[str], list[str]]] = field(default_factory=list)  # name, docs, gates
    exports: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)


@dataclass
class Package:
    name: str = ""
    version: str = ""
    docs: list[str] = field(default_factory=list)
    file: str = ""
    interfaces: list[Interface] = field(default_factory=list)
    worlds: list[World] = field(default_factory=list)


# --- parsing ---------------------------------------------------------------------------------

class Parser:
    def __init__(self, tokens: list[Token], package: Package):
        self.tokens = tokens
        self.i = 0
        self.package = package

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def fail(self, message: str, token: Token | None = None) -> WitError:
        t = token or self.peek()
        return WitError(f"{t.file}:{t.line}: {message} (at {t.text or 'end of file'!r})")

    def expect(self, text: str) -> Token:
        t = self.next()
        if t.text != text:
            raise self.fail(f"expected `{text}`", t)
        return t

    def accept(self, text: str) -> bool:
        if self.peek().text == text and self.peek().kind in ("punct", "ident"):
            self.i += 1
            return True
        return False

    def ident(self) -> str:
        t = self.next()
        if t.kind != "ident":
            raise self.fail("expected a name", t)
        return t.text.lstrip("%")

    def docs(self) -> list[str]:
        lines = []
        while self.peek().kind == "doc":
            lines.append(self.next().text)
        return lines

    def gates(self) -> list[str]:
        """`@since(version = 0.2.0)`, `@unstable(feature = x)`, `@deprecated(version = 0.3.0)`."""
        gates = []
        while self.peek().text == "@" and self.peek(1).kind == "ident":
            self.next()
            name = self.ident()
            self.expect("(")
            key = self.ident()
            self.expect("=")
            value = self.next().text
            self.expect(")")
            gates.append({"since": f"since {value}", "deprecated": f"deprecated in {value}",
                          "unstable": f"unstable (feature `{value}`)"}.get(name, f"@{name}({key} = {value})"))
        return gates

    def item_prelude(self) -> tuple[list[str], list[str]]:
        docs = self.docs()
        gates = self.gates()
        docs += self.docs()
        return docs, gates

    def version(self) -> str:
        t = self.next()
        if t.kind != "version":
            raise self.fail("expected a version", t)
        return t.text

    def path(self) -> str:
        """`types`, or `ns:pkg/iface@1.2.3`."""
        name = self.ident()
        if self.accept(":"):
            name += ":" + self.ident()
            self.expect("/")
            name += "/" + self.ident()
            if self.accept("@"):
                name += "@" + self.version()
        return name

    def parse_file(self) -> None:
        while True:
            docs, gates = self.item_prelude()
            t = self.peek()
            if t.kind == "eof":
                return
            if t.text == "package":
                self.next()
                name = self.ident()
                self.expect(":")
                name += ":" + self.ident()
                version = ""
                if self.accept("@"):
                    version = self.version()
                self.expect(";")
                if self.package.name and (self.package.name, self.package.version) != (name, version):
                    raise self.fail(f"a second package `{name}@{version}`", t)
                self.package.name, self.package.version = name, version
                self.package.file, self.package.docs = t.file, docs or self.package.docs
            elif t.text == "interface":
                self.next()
                self.package.interfaces.append(self.interface(self.ident(), docs, gates, t.file))
            elif t.text == "world":
                self.next()
                self.package.worlds.append(self.world(self.ident(), docs, gates, t.file))
            elif t.text == "use":
                self.next()
                self.path()
                if self.accept("as"):
                    self.ident()
                self.expect(";")
            else:
                raise self.fail("expected `package`, `interface`, `world` or `use`")

    def use(self) -> Use:
        interface = self.path()
        self.expect(".")
        self.expect("{")
        names = []
        while not self.accept("}"):
            name = self.ident()
            local = self.ident() if self.accept("as") else name
            names.append((name, local))
            if not self.accept(","):
                self.expect("}")
                break
        self.expect(";")
        return Use(interface, names)

    def interface(self, name: str, docs: list[str], gates: list[str], file: str) -> Interface:
        iface = Interface(name, docs, gates, file)
        self.expect("{")
        while True:
            docs, gates = self.item_prelude()
            t = self.peek()
            if self.accept("}"):
                return iface
            if t.text == "use":
                self.next()
                iface.uses.append(self.use())
            elif t.text == "type":
                self.next()
                alias_name = self.ident()
                self.expect("=")
                alias = self.type_ref()
                self.expect(";")
                iface.types.append(TypeDef("type", alias_name, docs, gates, alias=alias))
            elif t.text in ("record", "variant", "enum", "flags"):
                self.next()
                iface.types.append(self.typedef(t.text, self.ident(), docs, gates))
            elif t.text in ("resource",):
                raise self.fail("resources are not supported by this reference generator")
            elif t.kind == "ident" and self.peek(1).text == ":":
                fname = self.ident()
                self.expect(":")
                iface.funcs.append(self.func(fname, docs, gates))
            else:
                raise self.fail("expected a type, a function or `use`")

    def typedef(self, kind: str, name: str, docs: list[str], gates: list[str]) -> TypeDef:
        typedef = TypeDef(kind, name, docs, gates)
        self.expect("{")
        while True:
            mdocs, mgates = self.item_prelude()
            if self.accept("}"):
                return typedef
            member = self.ident()
            mtype = None
            if kind == "record":
                self.expect(":")
                mtype = self.type_ref()
            elif kind == "variant" and self.accept("("):
                mtype = self.type_ref()
                self.expect(")")
            typedef.members.append(Member(member, mtype, mdocs, mgates))
            if not self.accept(","):
                self.expect("}")
                return typedef

    def type_ref(self) -> TypeRef:
        t = self.next()
        if t.kind != "ident":
            raise self.fail("expected a type", t)
        ref = TypeRef(t.text.lstrip("%"))
        if self.accept("<"):
            while True:
                ref.args.append(self.type_ref())
                if self.accept(">"):
                    break
                self.expect(",")
        return ref

    def func(self, name: str, docs: list[str], gates: list[str]) -> Func:
        if self.peek().text == "async":
            raise self.fail("async functions are not supported by this reference generator")
        self.expect("func")
        self.expect("(")
        params = []
        while not self.accept(")"):
            pname = self.ident()
            self.expect(":")
            params.append((pname, self.type_ref()))
            if not self.accept(","):
                self.expect(")")
                break
        result = None
        if self.accept("->"):
            if self.peek().text == "(":
                raise self.fail("named results are not supported by this reference generator")
            result = self.type_ref()
        self.expect(";")
        return Func(name, params, result, docs, gates)

    def world(self, name: str, docs: list[str], gates: list[str], file: str) -> World:
        world = World(name, docs, gates, file)
        self.expect("{")
        while True:
            idocs, igates = self.item_prelude()
            t = self.peek()
            if self.accept("}"):
                return world
            if t.text in ("import", "export"):
                self.next()
                if self.peek(1).text == ":":
                    raise self.fail(f"inline `{t.text}` items are not supported by this reference generator")
                target = self.path()
                self.expect(";")
                (world.imports if t.text == "import" else world.exports).append((target, idocs, igates))
            elif t.text == "use":
                self.next()
                world.uses.append(self.use())
            else:
                raise self.fail("expected `import`, `export` or `use` in a world")


def parse(wit_dir: Path) -> Package:
    package = Package()
    files = sorted(wit_dir.glob("*.wit"))
    if not files:
        raise WitError(f"no .wit files in {wit_dir}")
    for path in files:
        rel = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
        Parser(lex(path.read_text(encoding="utf-8"), rel), package).parse_file()
    if not package.name:
        raise WitError("no `package` declaration")
    names = [i.name for i in package.interfaces] + [w.name for w in package.worlds]
    for name in names:
        if names.count(name) > 1:
            raise WitError(f"`{name}` is declared twice")
    return package


# --- changes since the previous version -------------------------------------------------------

def type_signature(t: TypeDef) -> str:
    if t.kind == "type":
        return f"type = {t.alias.wit()}"
    members = ", ".join(m.name + (f": {m.type.wit()}" if m.type else "") for m in t.members)
    return f"{t.kind} {{ {members} }}"


def version_key(version: str) -> tuple:
    parts = re.split(r"[.+-]", version)
    return tuple(int(p) if p.isdigit() else -1 for p in parts[:3])


def previous_package(current: Package) -> Package | None:
    """The newest archived version older than the current one."""
    if not ARCHIVE.is_dir():
        return None
    versions = [d for d in ARCHIVE.iterdir()
                if d.is_dir() and any(d.glob("*.wit"))
                and version_key(d.name) < version_key(current.version)]
    if not versions:
        return None
    return parse(max(versions, key=lambda d: version_key(d.name)))


def changes(old: Package, new: Package) -> list[tuple[str, str]]:
    """(what, description) of every item added, removed or changed, in the new package's order."""
    out: list[tuple[str, str]] = []
    old_worlds = {w.name: w for w in old.worlds}
    for w in new.worlds:
        before = old_worlds.get(w.name)
        if before is None:
            out.append(("added", f"world `{w.name}`"))
            continue
        for direction in ("imports", "exports"):
            was = {n for n, _, _ in getattr(before, direction)}
            now = {n for n, _, _ in getattr(w, direction)}
            for n in sorted(now - was):
                out.append(("added", f"`{direction[:-1]} {n}` in world `{w.name}`"))
            for n in sorted(was - now):
                out.append(("removed", f"`{direction[:-1]} {n}` in world `{w.name}`"))
    for name in sorted(set(old_worlds) - {w.name for w in new.worlds}):
        out.append(("removed", f"world `{name}`"))

    old_ifaces = {i.name: i for i in old.interfaces}
    for i in new.interfaces:
        before = old_ifaces.get(i.name)
        if before is None:
            out.append(("added", f"interface `{i.name}`"))
            continue
        old_types = {t.name: t for t in before.types}
        for t in i.types:
            if t.name not in old_types:
                out.append(("added", f"{t.kind} `{i.name}.{t.name}`"))
            elif type_signature(old_types[t.name]) != type_signature(t):
                out.append(("changed", f"{t.kind} `{i.name}.{t.name}`: "
                            f"`{type_signature(old_types[t.name])}` → `{type_signature(t)}`"))
        for name in sorted(set(old_types) - {t.name for t in i.types}):
            out.append(("removed", f"{old_types[name].kind} `{i.name}.{name}`"))
        old_funcs = {f.name: f for f in before.funcs}
        for f in i.funcs:
            if f.name not in old_funcs:
                out.append(("added", f"function `{i.name}.{f.name}`"))
            elif old_funcs[f.name].wit() != f.wit():
                out.append(("changed", f"function `{i.name}.{f.name}`: "
                            f"`{old_funcs[f.name].wit()}` → `{f.wit()}`"))
        for name in sorted(set(old_funcs) - {f.name for f in i.funcs}):
            out.append(("removed", f"function `{i.name}.{name}`"))
    for name in sorted(set(old_ifaces) - {i.name for i in new.interfaces}):
        out.append(("removed", f"interface `{name}`"))
    return out


# --- rendering -------------------------------------------------------------------------------

def anchor(*parts: str) -> str:
    return "-".join(parts)


class Renderer:
    def __init__(self, package: Package, previous: Package | None = None):
        self.p = package
        self.previous = previous
        self.ifaces = {i.name: i for i in package.interfaces}
        self.out: list[str] = []

    def w(self, line: str = "") -> None:
        self.out.append(line)

    # The anchor of a type visible in `iface` under `name`: its own, or the one it was used from.
    def type_anchor(self, iface: Interface, name: str) -> str | None:
        for t in iface.types:
            if t.name == name:
                return anchor(iface.name, name)
        for use in iface.uses:
            for original, local in use.names:
                if local == name and use.interface in self.ifaces:
                    return self.type_anchor(self.ifaces[use.interface], original)
        return None

    def type_md(self, iface: Interface, ref: TypeRef) -> str:
        """A type expression: built-ins as code, the package's types as links."""
        pieces: list[tuple[str, str | None]] = []  # (text, anchor or None for code)

        def walk(r: TypeRef) -> None:
            target = None if r.name in BUILTINS else self.type_anchor(iface, r.name)
            pieces.append((r.name, target))
            if r.args:
                pieces.append(("<", None))
                for n, a in enumerate(r.args):
                    if n:
                        pieces.append((", ", None))
                    walk(a)
                pieces.append((">", None))

        walk(ref)
        out, code = [], ""
        for text, target in pieces:
            if target is None:
                code += text
                continue
            if code:
                out.append(f"`{code}`")
                code = ""
            out.append(f"[`{text}`](#{target})")
        if code:
            out.append(f"`{code}`")
        return "".join(out)

    @staticmethod
    def paragraphs(docs: list[str]) -> str:
        return "\n".join(docs).strip()

    @staticmethod
    def cell(docs: list[str], gates: list[str] = ()) -> str:
        text = " ".join(line.strip() for line in docs if line.strip())
        if gates:
            text = f"*({', '.join(gates)})* {text}".strip()
        return text.replace("|", "\\|")

    @classmethod
    def first_sentence(cls, docs: list[str]) -> str:
        text = cls.cell(docs)
        end = text.find(". ")
        return text if end < 0 else text[: end + 1]

    def doc_block(self, docs: list[str], gates: list[str]) -> None:
        if gates:
            self.w(f"*{', '.join(gates).capitalize()}.*")
            self.w()
        text = self.paragraphs(docs)
        if text:
            self.w(text)
            self.w()

    def interface_order(self) -> list[Interface]:
        used = {u.interface for i in self.p.interfaces for u in i.uses}
        imported = {n for wd in self.p.worlds for n, _, _ in wd.imports}
        exported = {n for wd in self.p.worlds for n, _, _ in wd.exports}

        def rank(i: Interface) -> int:
            if i.name in used:
                return 0
            if i.name in imported:
                return 1
            if i.name in exported:
                return 2
            return 3

        position = {i.name: n for n, i in enumerate(self.p.interfaces)}
        return sorted(self.p.interfaces, key=lambda i: (rank(i), position[i.name]))

    def iface_link(self, name: str) -> str:
        if name in self.ifaces:
            return f"[`{name}`](#{anchor('interface', name)})"
        return f"`{name}`"

    def render(self) -> str:
        p = self.p
        full = f"{p.name}@{p.version}" if p.version else p.name
        self.w(f"# WIT reference: `{full}`")
        self.w()
        self.w("<!-- Generated by plugin-sdk/wit/reference.py from plugin-sdk/wit/*.wit. Do not edit:")
        self.w(f"     change the WIT, then run `{COMMAND}`. -->")
        self.w()
        self.w(f"The contract between the gateway and its plugins: the WIT package `{p.name}`, "
               f"version **{p.version or 'unversioned'}**, in [`plugin-sdk/wit/`](../plugin-sdk/wit/) "
               f"(the version is declared in `{p.file}`). Every type, field, case and function below "
               "is shown with the doc comment it has in the WIT files.")
        self.w()
        self.w("**Versioning.** A minor version only adds (interfaces, worlds, types, functions, "
               "and a few kinds of cases and fields); changing or removing anything is a major "
               "version. The host loads plugins built against its current minor version and the "
               "previous one: it keeps generated bindings for both, converts the older plugins' "
               "values, and answers `unsupported` for functions added later. For `0.x` versions "
               "the minor counts as a major for semver purposes (`0.1.*` is one line, `0.2.*` the "
               "next). The rules and what counts as an addition: "
               "[plugin-sdk/WIT-VERSIONING.md](../plugin-sdk/WIT-VERSIONING.md).")
        self.w()
        self.w("**Names in code.** WIT names are kebab-case. Rust bindings (the guest SDK, "
               "wit-bindgen) use `snake_case` for fields, functions and parameters and "
               "`UpperCamelCase` for types and cases (`plugin-error.bad-signature` is "
               "`PluginError::BadSignature`). Recorded test cases "
               "([plugin-cases.md](plugin-cases.md#the-json-form-of-wit-values)) write fields in "
               "`snake_case` and cases in `UpperCamelCase`. JavaScript (componentize-js, jco) uses "
               "`lowerCamelCase` fields and functions, `{ tag: 'case-name', val }` for variants, "
               "strings for enum cases, `BigInt` for `s64` and `Uint8Array` for `list<u8>`.")
        self.w()

        if self.previous is not None:
            prev = self.previous
            archive = Path(prev.file).parent.as_posix()
            self.w(f"## Changes since {prev.version}")
            self.w()
            self.w(f"The previous version, whose plugins the host still loads, is kept in "
                   f"[`{archive}/`](../{archive}/). Compared with it "
                   "(doc comments aside):")
            self.w()
            found = changes(prev, self.p)
            for what, description in found:
                self.w(f"- {what}: {description}")
            if not found:
                self.w("- nothing but doc comments")
            self.w()

        self.w("## Contents")
        self.w()
        self.w("- Worlds: " + ", ".join(f"[`{wd.name}`](#{anchor('world', wd.name)})" for wd in p.worlds))
        for iface in self.interface_order():
            members = [f"[`{t.name}`](#{anchor(iface.name, t.name)})" for t in iface.types]
            members += [f"[`{f.name}`](#{anchor(iface.name, f.name)})" for f in iface.funcs]
            line = f"- Interface {self.iface_link(iface.name)}"
            if members:
                line += ": " + ", ".join(members)
            self.w(line)
        self.w()

        self.w("## Worlds")
        self.w()
        self.w("A plugin's component implements one world: it may import what the world imports "
               "and must export what the world exports.")
        self.w()
        for wd in p.worlds:
            self.w(f'<a id="{anchor("world", wd.name)}"></a>')
            self.w()
            self.w(f"### world `{wd.name}`")
            self.w()
            self.doc_block(wd.docs, wd.gates)
            self.w(f"Defined in `{wd.file}`.")
            self.w()
            self.w("| direction | interface | meaning |")
            self.w("|---|---|---|")
            for direction, items in (("import", wd.imports), ("export", wd.exports)):
                for name, docs, gates in items:
                    meaning = self.cell(docs, gates)
                    if not meaning and name in self.ifaces:
                        meaning = self.first_sentence(self.ifaces[name].docs)
                    self.w(f"| {direction} | {self.iface_link(name)} | {meaning} |")
            self.w()

        for iface in self.interface_order():
            self.render_interface(iface)
        return "\n".join(self.out).rstrip() + "\n"

    def render_interface(self, iface: Interface) -> None:
        self.w(f'<a id="{anchor("interface", iface.name)}"></a>')
        self.w()
        self.w(f"## interface `{iface.name}`")
        self.w()
        self.doc_block(iface.docs, iface.gates)
        used_by = [wd for wd in self.p.worlds
                   if iface.name in [n for n, _, _ in wd.imports + wd.exports]]
        where = f"Defined in `{iface.file}`."
        if used_by:
            roles = []
            for wd in used_by:
                role = "imported" if iface.name in [n for n, _, _ in wd.imports] else "exported"
                roles.append(f"{role} by [`{wd.name}`](#{anchor('world', wd.name)})")
            where += " " + "; ".join(roles).capitalize() + "."
        self.w(where)
        self.w()
        for use in iface.uses:
            names = []
            for original, local in use.names:
                target = self.type_anchor(iface, local)
                label = original if original == local else f"{original} as {local}"
                names.append(f"[`{label}`](#{target})" if target else f"`{label}`")
            self.w(f"Uses from {self.iface_link(use.interface)}: {', '.join(names)}.")
            self.w()

        for t in iface.types:
            self.w(f'<a id="{anchor(iface.name, t.name)}"></a>')
            self.w()
            if t.kind == "type":
                self.w(f"### type `{t.name}` = {self.type_md(iface, t.alias)}")
            else:
                self.w(f"### {t.kind} `{t.name}`")
            self.w()
            self.doc_block(t.docs, t.gates)
            if t.kind == "record":
                self.w("| field | type | meaning |")
                self.w("|---|---|---|")
                for m in t.members:
                    self.w(f"| `{m.name}` | {self.type_md(iface, m.type)} | {self.cell(m.docs, m.gates)} |")
                self.w()
            elif t.kind == "variant":
                self.w("| case | payload | meaning |")
                self.w("|---|---|---|")
                for m in t.members:
                    payload = self.type_md(iface, m.type) if m.type else "none"
                    self.w(f"| `{m.name}` | {payload} | {self.cell(m.docs, m.gates)} |")
                self.w()
            elif t.kind in ("enum", "flags"):
                self.w("| case | meaning |" if t.kind == "enum" else "| flag | meaning |")
                self.w("|---|---|")
                for m in t.members:
                    self.w(f"| `{m.name}` | {self.cell(m.docs, m.gates)} |")
                self.w()

        for f in iface.funcs:
            self.w(f'<a id="{anchor(iface.name, f.name)}"></a>')
            self.w()
            self.w(f"### func `{f.name}`")
            self.w()
            self.w("```wit")
            self.w(f.wit())
            self.w("```")
            self.w()
            self.doc_block(f.docs, f.gates)
            if f.params:
                params = ", ".join(f"`{n}`: {self.type_md(iface, t)}" for n, t in f.params)
                self.w(f"Parameters: {params}.")
            else:
                self.w("Parameters: none.")
            self.w()
            self.w(f"Returns: {self.type_md(iface, f.result) if f.result else 'nothing'}.")
            self.w()


def generate() -> str:
    package = parse(WIT_DIR)
    return Renderer(package, previous_package(package)).render()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help=f"compare with {OUTPUT.relative_to(REPO)} and exit 1 when it is stale")
    args = parser.parse_args()
    try:
        text = generate()
    except WitError as e:
        print(f"reference.py: {e}", file=sys.stderr)
        return 2
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current == text:
            return 0
        rel = OUTPUT.relative_to(REPO)
        print(f"{rel} is stale: run `{COMMAND}`", file=sys.stderr)
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(),
                                    f"{rel} (committed)", f"{rel} (from the WIT)", lineterm="", n=1)
        for n, line in enumerate(diff):
            if n == 40:
                print("...", file=sys.stderr)
                break
            print(line, file=sys.stderr)
        return 1
    sys.stdout.reconfigure(encoding="utf-8", newline="\n")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
