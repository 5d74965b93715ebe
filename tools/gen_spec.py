#!/usr/bin/env python3
"""Generate ``txamqp091/spec.py`` from RabbitMQ's AMQP 0-9-1 JSON specification.

Usage::

    python tools/gen_spec.py [--spec PATH] [--output PATH] [--check]

The spec is read from ``../shared/spec/amqp-rabbitmq-0.9.1.json`` when the checkout
sits beside ``shared/``, else from the copy in ``tools/``. ``--check`` regenerates in
memory and exits 1 if the committed file differs (or if the copy in ``tools/`` differs
from the shared spec).

The generated module is typed (``mypy --strict``) and fast: every method and
the content properties get straight-line encode/decode code over precompiled
``struct.Struct`` objects, one per fixed layout. Fixed-size fields that follow
each other, packed bits and the length prefix of the next string are read or
written by a single struct call. On any failure the fast code falls back to the
generic, validating codec in :mod:`txamqp091.fields`, which either names the
bad field in a precise error or handles the rare case (a non-UTF-8 short
string, say).
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The spec as the project receives it, when this checkout sits beside ``shared/``.
SHARED_SPEC = ROOT.parent / "shared" / "spec" / "amqp-rabbitmq-0.9.1.json"
#: A copy kept in the repository, so that a clone anywhere can regenerate and check;
#: ``--check`` fails if it differs from the shared one.
VENDORED_SPEC = ROOT / "tools" / "amqp-rabbitmq-0.9.1.json"
DEFAULT_SPEC = SHARED_SPEC if SHARED_SPEC.exists() else VENDORED_SPEC
DEFAULT_OUTPUT = ROOT / "txamqp091" / "spec.py"

STRUCT_CODES = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}
PY_TYPES = {
    "octet": "int",
    "short": "int",
    "long": "int",
    "longlong": "int",
    "timestamp": "int",
    "bit": "bool",
    "shortstr": "str",
    "longstr": "bytes | str",
    "table": "FieldTable",
}
ZERO_DEFAULTS = {
    "octet": "0",
    "short": "0",
    "long": "0",
    "longlong": "0",
    "timestamp": "0",
    "bit": "False",
    "shortstr": '""',
    "longstr": 'b""',
}

CLASS_DOCS = {
    "connection": "Work with socket connections: handshake, tuning, close, flow control.",
    "channel": "Work with channels: open, flow, close.",
    "access": "Work with access tickets (obsolete; RabbitMQ ignores it).",
    "exchange": "Work with exchanges: declare, delete, bind, unbind.",
    "queue": "Work with queues: declare, bind, unbind, purge, delete.",
    "basic": "Work with basic content: publish, consume, get, acknowledge.",
    "tx": "Work with standard transactions.",
    "confirm": "Work with publisher confirms (a RabbitMQ extension).",
}

METHOD_DOCS = {
    "connection.start": "The server proposes the protocol version, mechanisms and locales.",
    "connection.start-ok": "The client chooses a mechanism and locale and sends its properties.",
    "connection.secure": "The server sends a security challenge.",
    "connection.secure-ok": "The client answers a security challenge.",
    "connection.tune": "The server proposes channel-max, frame-max and heartbeat.",
    "connection.tune-ok": "The client sends the negotiated channel-max, frame-max, heartbeat.",
    "connection.open": "The client opens a connection to a virtual host.",
    "connection.open-ok": "The server confirms the virtual host is open.",
    "connection.close": "Either peer asks to close the connection, with a reply code.",
    "connection.close-ok": "Confirms a connection close.",
    "connection.blocked": "The server stops reading from a publishing connection (alarm).",
    "connection.unblocked": "The server resumes reading from the connection.",
    "connection.update-secret": "The client replaces its credential (e.g. an OAuth token).",
    "connection.update-secret-ok": "The server accepted the new secret.",
    "channel.open": "Opens a channel.",
    "channel.open-ok": "Confirms a channel is open.",
    "channel.flow": "Asks the peer to pause or restart the flow of content.",
    "channel.flow-ok": "Confirms a flow request.",
    "channel.close": "Either peer asks to close the channel, with a reply code.",
    "channel.close-ok": "Confirms a channel close.",
    "access.request": "Requests an access ticket (obsolete).",
    "access.request-ok": "Grants an access ticket (obsolete).",
    "exchange.declare": "Creates an exchange, or checks that it exists (passive).",
    "exchange.declare-ok": "Confirms an exchange declaration.",
    "exchange.delete": "Deletes an exchange.",
    "exchange.delete-ok": "Confirms an exchange deletion.",
    "exchange.bind": "Binds an exchange to an exchange (a RabbitMQ extension).",
    "exchange.bind-ok": "Confirms an exchange-to-exchange binding.",
    "exchange.unbind": "Removes an exchange-to-exchange binding.",
    "exchange.unbind-ok": "Confirms the removal of an exchange-to-exchange binding.",
    "queue.declare": "Creates a queue, or checks that it exists (passive).",
    "queue.declare-ok": "Confirms a queue declaration, with its name and counts.",
    "queue.bind": "Binds a queue to an exchange.",
    "queue.bind-ok": "Confirms a queue binding.",
    "queue.purge": "Removes all ready messages from a queue.",
    "queue.purge-ok": "Confirms a purge, with the number of messages removed.",
    "queue.delete": "Deletes a queue.",
    "queue.delete-ok": "Confirms a deletion, with the number of messages removed.",
    "queue.unbind": "Removes a queue binding.",
    "queue.unbind-ok": "Confirms the removal of a queue binding.",
    "basic.qos": "Sets the prefetch window (per consumer, or per channel when global).",
    "basic.qos-ok": "Confirms a prefetch setting.",
    "basic.consume": "Starts a consumer on a queue.",
    "basic.consume-ok": "Confirms a consumer, with its tag.",
    "basic.cancel": "Cancels a consumer (sent by the broker too, when a queue goes away).",
    "basic.cancel-ok": "Confirms a consumer cancellation.",
    "basic.publish": "Publishes a message; content (header and body frames) follows.",
    "basic.return": "Returns an unroutable mandatory message; content follows.",
    "basic.deliver": "Delivers a message to a consumer; content follows.",
    "basic.get": "Fetches one message from a queue.",
    "basic.get-ok": "Answers a get with a message; content follows.",
    "basic.get-empty": "Answers a get when the queue has no ready message.",
    "basic.ack": "Acknowledges one or more messages (from the broker too, in confirm mode).",
    "basic.reject": "Rejects one message.",
    "basic.recover-async": "Redelivers unacknowledged messages (deprecated).",
    "basic.recover": "Redelivers unacknowledged messages.",
    "basic.recover-ok": "Confirms a recover.",
    "basic.nack": "Rejects one or more messages (a RabbitMQ extension; also a negative confirm).",
    "tx.select": "Puts the channel in transaction mode.",
    "tx.select-ok": "Confirms transaction mode.",
    "tx.commit": "Commits the current transaction.",
    "tx.commit-ok": "Confirms a commit.",
    "tx.rollback": "Abandons the current transaction.",
    "tx.rollback-ok": "Confirms a rollback.",
    "confirm.select": "Puts the channel in publisher-confirm mode (a RabbitMQ extension).",
    "confirm.select-ok": "Confirms publisher-confirm mode.",
}


def isort_key(name: str) -> tuple[int, str]:
    """Sort ``__all__`` as ruff's RUF022 wants: CONSTANTS, then Classes, then others."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def camel(name: str) -> str:
    """``get-ok`` → ``GetOk``."""
    return "".join(part.capitalize() for part in name.split("-"))


def snake(name: str) -> str:
    """``routing-key`` → ``routing_key`` (``global`` → ``global_``, as in pika)."""
    ident = name.replace("-", "_")
    return ident + "_" if keyword.iskeyword(ident) else ident


@dataclass
class Field:
    """One method argument or content property."""

    name: str
    kind: str
    default: Any = None
    has_default: bool = False

    @property
    def attr(self) -> str:
        return snake(self.name)


@dataclass
class MethodSpec:
    """One method of a class."""

    cls: str
    class_id: int
    name: str
    method_id: int
    synchronous: bool
    content: bool
    fields: list[Field] = field(default_factory=list)

    @property
    def py_name(self) -> str:
        return camel(self.name)

    @property
    def qualname(self) -> str:
        return f"{camel(self.cls)}.{self.py_name}"


class StructRegistry:
    """Deduplicates the module-level ``struct.Struct`` objects by layout."""

    def __init__(self) -> None:
        self.formats: dict[str, str] = {}

    def get(self, fmt: str) -> str:
        name = f"_S_{fmt}"
        self.formats[fmt] = name
        return name

    def render(self) -> list[str]:
        return [f'{name} = struct.Struct(">{fmt}")' for fmt, name in sorted(self.formats.items())]


def resolve_kind(argument: dict[str, Any], domains: dict[str, str]) -> str:
    kind = argument.get("type") or argument["domain"]
    while kind in domains and domains[kind] != kind:
        kind = domains[kind]
    if kind not in PY_TYPES:
        raise SystemExit(f"unsupported field type {kind!r}")
    return kind


def load(spec_path: Path) -> dict[str, Any]:
    with spec_path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def build_methods(spec: dict[str, Any]) -> list[MethodSpec]:
    domains = {name: kind for name, kind in spec["domains"]}
    methods = []
    for cls in spec["classes"]:
        for method in cls["methods"]:
            fields = [
                Field(
                    name=arg["name"],
                    kind=resolve_kind(arg, domains),
                    default=arg.get("default-value"),
                    has_default="default-value" in arg,
                )
                for arg in method["arguments"]
            ]
            methods.append(
                MethodSpec(
                    cls=cls["name"],
                    class_id=cls["id"],
                    name=method["name"],
                    method_id=method["id"],
                    synchronous=bool(method.get("synchronous", False)),
                    content=bool(method.get("content", False)),
                    fields=fields,
                )
            )
    return methods


def default_literal(f: Field) -> str:
    if f.kind == "table":
        return "None"
    if f.has_default and f.default is not None:
        value = f.default
        if f.kind == "longstr":
            return repr(str(value).encode())
        if f.kind == "table":
            return "None"
        return repr(value)
    return ZERO_DEFAULTS[f.kind]


def group_runs(fields: list[Field]) -> list[tuple[str, list[Field]]]:
    """Split fields into wire segments.

    Each segment is ``("fixed", fields)`` — fixed-size fields and bit groups, plus
    at most one trailing string whose length prefix joins the fixed run — or
    ``("table", [field])``.
    """
    segments: list[tuple[str, list[Field]]] = []
    current: list[Field] = []
    for f in fields:
        if f.kind == "table":
            if current:
                segments.append(("fixed", current))
                current = []
            segments.append(("table", [f]))
            continue
        current.append(f)
        if f.kind in ("shortstr", "longstr"):
            segments.append(("fixed", current))
            current = []
    if current:
        segments.append(("fixed", current))
    return segments


def layout(run: list[Field]) -> list[tuple[str, list[Field]]]:
    """The struct slots of a fixed run: ``(code, fields)``; bits share an octet."""
    slots: list[tuple[str, list[Field]]] = []
    bits: list[Field] = []
    for f in run:
        if f.kind == "bit":
            if len(bits) == 8:
                slots.append(("B", bits))
                bits = []
            bits.append(f)
            continue
        if bits:
            slots.append(("B", bits))
            bits = []
        if f.kind == "shortstr":
            slots.append(("B", [f]))
        elif f.kind == "longstr":
            slots.append(("I", [f]))
        else:
            slots.append((STRUCT_CODES[f.kind], [f]))
    if bits:
        slots.append(("B", bits))
    return slots


def bit_expr(bits: list[Field], source: str) -> str:
    terms = [f"{1 << i} if {source}.{f.attr} else 0" for i, f in enumerate(bits)]
    if len(terms) == 1:
        return terms[0]
    return " | ".join(f"({term})" for term in terms)


def gen_encode(m: MethodSpec, structs: StructRegistry) -> list[str]:
    lines = ["    def encode(self) -> bytes:", '        """The method frame payload."""']
    if not m.fields:
        ids = (m.class_id << 16 | m.method_id).to_bytes(4, "big")
        lines.append(f"        return {ids!r}")
        return lines
    lines.append("        try:")
    body: list[str] = []
    pieces: list[str] = []
    fmt = "HH"
    args = [str(m.class_id), str(m.method_id)]
    for kind, run in group_runs(m.fields):
        if kind == "table":
            if fmt:
                pieces.append(f"{structs.get(fmt)}.pack({', '.join(args)})")
                fmt, args = "", []
            f = run[0]
            pieces.append(f"encode_table(self.{f.attr})")
            continue
        for code, slot in layout(run):
            f = slot[0]
            if f.kind == "bit":
                fmt += code
                args.append(bit_expr(slot, "self"))
            elif f.kind == "shortstr":
                body.append(f"            _{f.attr} = self.{f.attr}.encode()")
                fmt += code
                args.append(f"len(_{f.attr})")
            elif f.kind == "longstr":
                body.append(
                    f"            _{f.attr} = (self.{f.attr}.encode() if isinstance("
                    f"self.{f.attr}, str) else self.{f.attr})"
                )
                fmt += code
                args.append(f"len(_{f.attr})")
            else:
                fmt += code
                args.append(f"self.{f.attr}")
        last = run[-1]
        if last.kind in ("shortstr", "longstr"):
            pieces.append(f"{structs.get(fmt)}.pack({', '.join(args)})")
            pieces.append(f"_{last.attr}")
            fmt, args = "", []
    if fmt:
        pieces.append(f"{structs.get(fmt)}.pack({', '.join(args)})")
    lines.extend(body)
    lines.append(f"            return {' + '.join(pieces)}")
    lines.append("        except _ENCODE_ERRORS:")
    lines.append("            return self._encode_slow()")
    return lines


def gen_decode(m: MethodSpec, structs: StructRegistry) -> list[str]:
    q = m.qualname
    lines = [
        "    @classmethod",
        f"    def decode(cls, data: bytes, offset: int = 4) -> {q}:",
        '        """Decode the method frame payload ``data`` (arguments from ``offset``)."""',
    ]
    if not m.fields:
        lines.append("        if offset != len(data):")
        lines.append("            return cls._decode_slow(data, offset)")
        lines.append("        return cls.__new__(cls)")
        return lines
    lines.append("        self = cls.__new__(cls)")
    lines.append("        start = offset")
    lines.append("        try:")
    ind = "            "
    for kind, run in group_runs(m.fields):
        if kind == "table":
            f = run[0]
            lines.append(f"{ind}self.{f.attr}, offset = decode_table(data, offset)")
            continue
        slots = layout(run)
        fmt = "".join(code for code, _ in slots)
        targets = []
        for _code, slot in slots:
            f = slot[0]
            if f.kind == "bit":
                targets.append("_bits")
            elif f.kind in ("shortstr", "longstr"):
                targets.append("_n")
            else:
                targets.append(f"self.{f.attr}")
        s = structs.get(fmt)
        size = sum({"B": 1, "H": 2, "I": 4, "Q": 8}[c] for c in fmt)
        bit_groups = [slot for code, slot in slots if slot[0].kind == "bit"]
        if len(bit_groups) > 1:
            # Several bit octets in one run: give each its own temporary.
            targets = []
            gi = 0
            for _code, slot in slots:
                f = slot[0]
                if f.kind == "bit":
                    targets.append(f"_bits{gi}")
                    gi += 1
                elif f.kind in ("shortstr", "longstr"):
                    targets.append("_n")
                else:
                    targets.append(f"self.{f.attr}")
        if fmt == "B":
            # A lone octet: indexing is cheaper than a struct call.
            lines.append(f"{ind}{targets[0]} = data[offset]")
        elif len(targets) == 1:
            lines.append(f"{ind}{targets[0]} = {s}.unpack_from(data, offset)[0]")
        else:
            lines.append(f"{ind}{', '.join(targets)} = {s}.unpack_from(data, offset)")
        lines.append(f"{ind}offset += {size}")
        gi = 0
        for _code, slot in slots:
            f = slot[0]
            if f.kind == "bit":
                var = f"_bits{gi}" if len(bit_groups) > 1 else "_bits"
                gi += 1
                for i, b in enumerate(slot):
                    lines.append(f"{ind}self.{b.attr} = bool({var} & {1 << i})")
        last = run[-1]
        if last.kind == "shortstr":
            lines.append(f"{ind}self.{last.attr} = data[offset : offset + _n].decode()")
            lines.append(f"{ind}offset += _n")
        elif last.kind == "longstr":
            lines.append(f"{ind}self.{last.attr} = data[offset : offset + _n]")
            lines.append(f"{ind}offset += _n")
    lines.append(f"{ind}if offset == len(data):")
    lines.append(f"{ind}    return self")
    lines.append("        except _DECODE_ERRORS:")
    lines.append("            pass")
    lines.append("        return cls._decode_slow(data, start)")
    return lines


def gen_method(m: MethodSpec, structs: StructRegistry) -> list[str]:
    key = f"{m.cls}.{m.name}"
    slots = "".join(repr(a) + ", " for a in sorted(f.attr for f in m.fields)).rstrip(", ")
    kinds = "synchronous" if m.synchronous else "asynchronous"
    doc = METHOD_DOCS.get(key, "")
    extra = " Carries content." if m.content else ""
    lines = [
        f"    class {m.py_name}(Method):",
        f'        """``{m.qualname}`` (class {m.class_id}, method {m.method_id}), {kinds}.',
        "",
        f"        {doc}{extra}",
        '        """',
        "",
        f"        INDEX: ClassVar[int] = 0x{m.class_id:04X}{m.method_id:04X}",
        f'        NAME: ClassVar[str] = "{m.qualname}"',
        f"        CLASS_ID: ClassVar[int] = {m.class_id}",
        f"        METHOD_ID: ClassVar[int] = {m.method_id}",
        f"        synchronous: ClassVar[bool] = {m.synchronous}",
        f"        has_content: ClassVar[bool] = {m.content}",
        "        _fields: ClassVar[tuple[tuple[str, str], ...]] = ("
        + "".join(f'("{f.attr}", "{f.kind}"), ' for f in m.fields).rstrip(", ")
        + ("," if len(m.fields) == 1 else "")
        + ")",
        f"        __slots__ = ({slots}" + ("," if len(m.fields) == 1 else "") + ")",
        "",
    ]
    for f in m.fields:
        lines.append(f"        {f.attr}: {PY_TYPES[f.kind]}")
    if m.fields:
        lines.append("")
    # __init__
    if m.fields:
        params = []
        for f in m.fields:
            ptype = "Mapping[str, Any] | None" if f.kind == "table" else PY_TYPES[f.kind]
            params.append(f"{f.attr}: {ptype} = {default_literal(f)}")
        sig = ", ".join(["self", *params])
        if len(sig) + 25 > 99:
            lines.append("        def __init__(")
            lines.append("            self,")
            for p in params:
                lines.append(f"            {p},")
            lines.append("        ) -> None:")
        else:
            lines.append(f"        def __init__({sig}) -> None:")
        lines.append('            """Build the method; every argument has the spec\'s default."""')
        for f in m.fields:
            if f.kind == "table":
                lines.append(
                    f"            self.{f.attr} = dict({f.attr}) if {f.attr} is not None else {{}}"
                )
            else:
                lines.append(f"            self.{f.attr} = {f.attr}")
        lines.append("")
    lines.extend("    " + line for line in gen_encode(m, structs))
    lines.append("")
    lines.extend("    " + line for line in gen_decode(m, structs))
    return lines


# --------------------------------------------------------------------------
# Content properties


def gen_properties(props: list[Field], structs: StructRegistry) -> list[str]:
    flags = {p.attr: 1 << (15 - i) for i, p in enumerate(props)}
    lines = [
        "class BasicProperties(Properties):",
        '    """The content properties of a ``basic`` message (its content header).',
        "",
        "    Every property defaults to ``None``, meaning absent from the header.",
        '    """',
        "",
        "    # No __slots__ here: absent properties are the class attributes below,",
        "    # so decoding a header only stores the properties it carries.",
        "    CLASS: ClassVar[type[Class]] = Basic",
        "    INDEX: ClassVar[int] = 60",
        '    NAME: ClassVar[str] = "BasicProperties"',
        "    _fields: ClassVar[tuple[tuple[str, str], ...]] = ("
        + "".join(f'("{p.attr}", "{p.kind}"), ' for p in props).rstrip(", ")
        + ")",
    ]
    for p in props:
        lines.append(f"    FLAG_{p.attr.upper()}: ClassVar[int] = 0x{flags[p.attr]:04X}")
    lines.append("")
    for p in props:
        ptype = "dict[str, Any]" if p.kind == "table" else PY_TYPES[p.kind]
        lines.append(f"    {p.attr}: {ptype} | None = None")
    lines.append("")
    lines.append("    def __init__(")
    lines.append("        self,")
    for p in props:
        ptype = "Mapping[str, Any]" if p.kind == "table" else PY_TYPES[p.kind]
        if p.attr == "delivery_mode":
            ptype = "int | _enum.Enum"
        lines.append(f"        {p.attr}: {ptype} | None = None,")
    lines.append("    ) -> None:")
    lines.append('        """Build properties; pass only those the message carries."""')
    for p in props:
        if p.kind == "table":
            lines.append(
                f"        self.{p.attr} = dict({p.attr}) if {p.attr} is not None else None"
            )
        elif p.attr == "delivery_mode":
            lines.append(
                "        self.delivery_mode = (\n"
                "            delivery_mode.value\n"
                "            if isinstance(delivery_mode, _enum.Enum)\n"
                "            else delivery_mode\n"
                "        )"
            )
        else:
            lines.append(f"        self.{p.attr} = {p.attr}")
    lines.append("")
    # encode
    lines.append("    def encode(self) -> bytes:")
    lines.append('        """The property flags and the present properties, in wire order."""')
    lines.append("        try:")
    lines.append("            flags = 0")
    lines.append("            parts = []")
    for p in props:
        lines.append(f"            if self.{p.attr} is not None:")
        lines.append(f"                flags |= 0x{flags[p.attr]:04X}")
        if p.kind == "shortstr":
            lines.append(f"                _v = self.{p.attr}.encode()")
            lines.append("                parts.append(_S_B.pack(len(_v)) + _v)")
        elif p.kind == "table":
            lines.append(f"                parts.append(encode_table(self.{p.attr}))")
        else:
            code = STRUCT_CODES[p.kind]
            lines.append(f"                parts.append({structs.get(code)}.pack(self.{p.attr}))")
    structs.get("B")
    structs.get("H")
    lines.append('            return _S_H.pack(flags) + b"".join(parts)')
    lines.append("        except _ENCODE_ERRORS:")
    lines.append("            return self._encode_slow()")
    lines.append("")
    # decode: test flags four at a time, so absent groups cost one test.
    lines.append("    @classmethod")
    lines.append("    def decode(cls, data: bytes, offset: int = 0) -> BasicProperties:")
    lines.append(
        '        """Decode flags and properties from ``data`` (to its end) at ``offset``."""'
    )
    lines.append("        self = cls.__new__(cls)")
    lines.append("        start = offset")
    lines.append("        try:")
    lines.append("            flags = _S_H.unpack_from(data, offset)[0]")
    lines.append("            if flags & 0x0003:")
    lines.append("                return cls._decode_slow(data, start)")
    lines.append("            offset += 2")
    for g in range(0, len(props), 4):
        group = props[g : g + 4]
        mask = sum(flags[p.attr] for p in group)
        lines.append(f"            if flags & 0x{mask:04X}:")
        for p in group:
            lines.append(f"                if flags & 0x{flags[p.attr]:04X}:")
            if p.kind == "shortstr":
                lines.append("                    _n = data[offset]")
                lines.append(
                    f"                    self.{p.attr} = "
                    "data[offset + 1 : offset + 1 + _n].decode()"
                )
                lines.append("                    offset += 1 + _n")
            elif p.kind == "table":
                lines.append(
                    f"                    self.{p.attr}, offset = decode_table(data, offset)"
                )
            else:
                code = STRUCT_CODES[p.kind]
                size = {"B": 1, "Q": 8}[code]
                value = (
                    "data[offset]"
                    if code == "B"
                    else f"{structs.get(code)}.unpack_from(data, offset)[0]"
                )
                lines.append(f"                    self.{p.attr} = {value}")
                lines.append(f"                    offset += {size}")
    lines.append("            if offset == len(data):")
    lines.append("                return self")
    lines.append("        except _DECODE_ERRORS:")
    lines.append("            pass")
    lines.append("        return cls._decode_slow(data, start)")
    return lines


# --------------------------------------------------------------------------


HEADER = '''\
"""AMQP 0-9-1 (RabbitMQ flavour): constants, method classes and content properties.

GENERATED by ``tools/gen_spec.py`` from ``amqp-rabbitmq-0.9.1.json``; do not edit.
Regenerate with ``python tools/gen_spec.py``; CI runs ``--check``.

Names follow pika's ``pika.spec``: ``spec.Basic.Publish``, ``spec.Queue.DeclareOk``,
``spec.BasicProperties``, ``spec.PERSISTENT_DELIVERY_MODE``, the reply-code
constants. Each method class has ``INDEX`` (class id << 16 | method id),
``NAME``, ``CLASS_ID``, ``METHOD_ID``, ``synchronous``, ``has_content`` and
``valid_responses`` (the replies a synchronous method may get), ``encode()``
(the method frame payload) and ``decode(payload)``.

The spec JSON carries this licence notice:

{copyright}
"""

from __future__ import annotations

import enum as _enum
import struct
from collections.abc import Mapping
from typing import Any, ClassVar

from txamqp091.fields import FieldTable, decode_table, encode_table
from txamqp091.spec_base import (
    _DECODE_ERRORS,
    _ENCODE_ERRORS,
    Class,
    Method,
    Properties,
)

__all__ = [
{all_names}]

PROTOCOL_VERSION = ({major}, {minor}, {revision})
PORT = {port}

'''


def generate(spec: dict[str, Any]) -> str:
    structs = StructRegistry()
    methods = build_methods(spec)
    constants = {c["name"].replace("-", "_"): c for c in spec["constants"]}
    copyright_text = "\n".join(
        line.rstrip() for chunk in spec["copyright"] for line in chunk.splitlines()
    )
    copyright_text = "\n".join(
        ("    " + line) if line else "" for line in copyright_text.split("\n")
    )
    class_names = [camel(c["name"]) for c in spec["classes"]]
    const_names = sorted(
        [
            *constants,
            "FRAME_HEADER_SIZE",
            "FRAME_END_SIZE",
            "FRAME_MAX_SIZE",
            "PERSISTENT_DELIVERY_MODE",
            "TRANSIENT_DELIVERY_MODE",
            "PROTOCOL_VERSION",
            "PORT",
            "REPLY_CODE_NAMES",
            "HARD_ERROR_CODES",
            "SOFT_ERROR_CODES",
        ]
    )
    exported = [
        *class_names,
        *const_names,
        "BasicProperties",
        "Class",
        "DeliveryMode",
        "Method",
        "Properties",
        "has_content",
        "methods",
        "props",
    ]
    all_names = "".join(f'    "{n}",\n' for n in sorted(exported, key=isort_key))
    out = [
        HEADER.format(
            copyright=copyright_text,
            all_names=all_names,
            major=spec["major-version"],
            minor=spec["minor-version"],
            revision=spec["revision"],
            port=spec["port"],
        )
    ]
    for name, c in constants.items():
        out.append(f"{name} = {c['value']!r}")
    out.append("FRAME_HEADER_SIZE = 7")
    out.append("FRAME_END_SIZE = 1")
    out.append("#: The largest frame RabbitMQ accepts by default (its ``frame_max``).")
    out.append("FRAME_MAX_SIZE = 131072")
    out.append("TRANSIENT_DELIVERY_MODE = 1")
    out.append("PERSISTENT_DELIVERY_MODE = 2")
    out.append("")
    out.append("#: Reply codes and their spec names, e.g. ``404: 'not-found'``.")
    out.append("REPLY_CODE_NAMES: dict[int, str] = {")
    for c in spec["constants"]:
        if "class" in c or c["name"] == "REPLY-SUCCESS":
            out.append(f'    {c["value"]}: "{c["name"].lower()}",')
    out.append("}")
    hard = sorted(c["value"] for c in spec["constants"] if c.get("class") == "hard-error")
    soft = sorted(c["value"] for c in spec["constants"] if c.get("class") == "soft-error")
    out.append("#: Reply codes that close the connection.")
    out.append(f"HARD_ERROR_CODES: frozenset[int] = frozenset({hard!r})")
    out.append("#: Reply codes that close only the channel.")
    out.append(f"SOFT_ERROR_CODES: frozenset[int] = frozenset({soft!r})")
    out.append("")
    out.append("")
    out.append("class DeliveryMode(_enum.IntEnum):")
    out.append('    """The ``delivery_mode`` property values (pika\'s ``DeliveryMode``)."""')
    out.append("")
    out.append("    Transient = 1")
    out.append("    Persistent = 2")
    out.append("")

    body: list[str] = []
    for cls in spec["classes"]:
        cname = camel(cls["name"])
        body.append("")
        body.append("")
        body.append(f"class {cname}(Class):")
        body.append(f'    """The ``{cls["name"]}`` class ({cls["id"]}).')
        body.append("")
        body.append(f"    {CLASS_DOCS[cls['name']]}")
        body.append('    """')
        body.append("")
        body.append(f"    INDEX: ClassVar[int] = {cls['id']}")
        body.append(f'    NAME: ClassVar[str] = "{cname}"')
        for m in methods:
            if m.cls != cls["name"]:
                continue
            body.append("")
            body.extend(gen_method(m, structs))
    basic = next(c for c in spec["classes"] if c["name"] == "basic")
    props = [Field(name=p["name"], kind=p["type"]) for p in basic["properties"]]
    body.append("")
    body.append("")
    body.extend(gen_properties(props, structs))

    # valid responses
    by_name = {(m.cls, m.name): m for m in methods}
    resp: list[str] = ["", ""]
    resp.append("# The replies each synchronous method may get (the spec JSON does not name")
    resp.append("# them: the reply of x is x-ok, except basic.get, answered by get-ok or")
    resp.append("# get-empty).")
    for m in methods:
        if not m.synchronous:
            continue
        if (m.cls, m.name) == ("basic", "get"):
            replies = [by_name[("basic", "get-ok")], by_name[("basic", "get-empty")]]
        else:
            replies = [by_name[(m.cls, m.name + "-ok")]]
        names = ", ".join(r.qualname for r in replies)
        resp.append(f"{m.qualname}.valid_responses = ({names},)")
    resp.append("")
    resp.append("#: Every method class by ``INDEX`` (class id << 16 | method id).")
    resp.append("methods: dict[int, type[Method]] = {")
    for m in methods:
        resp.append(f"    0x{m.class_id:04X}{m.method_id:04X}: {m.qualname},")
    resp.append("}")
    resp.append("")
    resp.append("#: Content property classes by class id.")
    resp.append("props: dict[int, type[BasicProperties]] = {60: BasicProperties}")
    resp.append("")
    resp.append("")
    resp.append("def has_content(index: int) -> bool:")
    resp.append(
        '    """Whether the method with ``INDEX`` ``index`` carries content (pika\'s name)."""'
    )
    resp.append("    method = methods.get(index)")
    resp.append("    return method is not None and method.has_content")

    out.append("")
    out.extend(structs.render())
    out.extend(body)
    out.extend(resp)
    return "\n".join(out) + "\n"


def format_source(source: str) -> str:
    """Run ``ruff format`` on the source, when ruff is installed, so the output is stable."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    if ruff is None:
        return source
    result = subprocess.run(
        [
            ruff,
            "format",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--stdin-filename",
            "spec.py",
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="the spec JSON")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="spec.py to write")
    parser.add_argument(
        "--check", action="store_true", help="fail if the output file is not up to date"
    )
    args = parser.parse_args(argv)
    if not args.spec.exists():
        print(f"gen_spec: spec JSON not found at {args.spec}", file=sys.stderr)
        return 2
    source = format_source(generate(load(args.spec)))
    if args.check:
        if SHARED_SPEC.exists() and SHARED_SPEC.read_bytes() != VENDORED_SPEC.read_bytes():
            print(
                f"gen_spec: {VENDORED_SPEC} differs from {SHARED_SPEC}; copy the shared one over",
                file=sys.stderr,
            )
            return 1
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != source:
            print(
                f"gen_spec: {args.output} is out of date; run python tools/gen_spec.py",
                file=sys.stderr,
            )
            return 1
        print(f"gen_spec: {args.output} is up to date")
        return 0
    args.output.write_text(source, encoding="utf-8")
    print(f"gen_spec: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
