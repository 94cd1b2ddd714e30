#!/usr/bin/env python3
"""amqpgen.py - generates hotpath's AMQP 0-9-1 method and content-property
codec (amqp_spec.h and amqp_spec.c) from the specification XML.

    amqpgen.py --spec amqp0-9-1.stripped.extended.xml --ext src/amqp/rabbit_ext.xml \\
               --check include/hotpath/amqp.h --check src/amqp/frame_int.h \\
               --header build/amqp_spec.h      (or --source build/amqp_spec.c)

The model is read once from the spec and then from each --ext file (same
schema: <amqp><constant/><domain/><class><field/><method><field/>...), an
extension adding constants, domains, classes, methods of a known class;
a class repeated in an extension must keep its index, and a method or a
constant defined twice is an error. --check names a header whose
HP_AMQP_* names are compared with the spec's <constant>s: for every
constant whose name (HP_AMQP_ + upper-case, dashes to underscores) the
header defines, the source gets a _Static_assert that the values agree.

Only the Python 3 standard library is used. Output is written through a
temporary file and renamed, so an interrupted run never leaves a
half-written file that make would take as up to date.
"""

import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET

SCRIPT = "tools/amqpgen/amqpgen.py"

# Wire types the 0-9-1 grammar knows, with the C type of a decoded value,
# the descriptor tag and the fixed size on the wire (None: variable).
TYPES = {
    "bit": ("bool", "HP_AMQP_FIELD_BIT", None),
    "octet": ("uint8_t", "HP_AMQP_FIELD_OCTET", 1),
    "short": ("uint16_t", "HP_AMQP_FIELD_SHORT", 2),
    "long": ("uint32_t", "HP_AMQP_FIELD_LONG", 4),
    "longlong": ("uint64_t", "HP_AMQP_FIELD_LONGLONG", 8),
    "timestamp": ("uint64_t", "HP_AMQP_FIELD_TIMESTAMP", 8),
    "shortstr": ("hp_amqp_bytes_t", "HP_AMQP_FIELD_SHORTSTR", None),
    "longstr": ("hp_amqp_bytes_t", "HP_AMQP_FIELD_LONGSTR", None),
    "table": ("hp_amqp_bytes_t", "HP_AMQP_FIELD_TABLE", None),
}

# Reading and writing one non-bit value: (reader call, writer call).
RD = {
    "octet": "hp_amqp_rd_u8(&r)",
    "short": "hp_amqp_rd_u16(&r)",
    "long": "hp_amqp_rd_u32(&r)",
    "longlong": "hp_amqp_rd_u64(&r)",
    "timestamp": "hp_amqp_rd_u64(&r)",
    "shortstr": "hp_amqp_rd_shortstr(&r)",
    "longstr": "hp_amqp_rd_longstr(&r)",
    "table": "hp_amqp_rd_longstr(&r)",
}
WR = {
    "octet": "hp_amqp_wr_u8",
    "short": "hp_amqp_wr_u16",
    "long": "hp_amqp_wr_u32",
    "longlong": "hp_amqp_wr_u64",
    "timestamp": "hp_amqp_wr_u64",
    "shortstr": "hp_amqp_wr_shortstr",
    "longstr": "hp_amqp_wr_longstr",
    "table": "hp_amqp_wr_longstr",
}

C_KEYWORDS = set(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while bool true false _Bool _Alignas _Alignof _Atomic _Generic "
    "_Noreturn _Static_assert _Thread_local".split()
)

# The property-flags word: 15 presence bits, bit 15 for the first
# property, and bit 0 saying another flags word follows (spec §4.2.6.1).
PROPS_PER_WORD = 15


class SpecError(Exception):
    pass


def cname(xml_name, what, alone=True):
    """A C identifier for an XML name: dashes become underscores. Class and
    method names only ever appear inside longer identifiers (basic.return
    makes basic_return), so only a name used alone must not be a keyword."""
    n = xml_name.replace("-", "_")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", n):
        raise SpecError(f"{what} {xml_name!r}: not usable as a C name")
    if alone and n in C_KEYWORDS:
        raise SpecError(f"{what} {xml_name!r}: a C keyword")
    return n


def int_attr(el, name, where):
    v = el.get(name)
    if v is None:
        raise SpecError(f"{where}: no {name}")
    try:
        return int(v, 0)
    except ValueError:
        raise SpecError(f"{where}: {name}={v!r} is not a number") from None


class Field:
    def __init__(self, xml_name, domain, wire, reserved):
        self.xml = xml_name
        self.c = cname(xml_name, "field")
        self.domain = domain  # the XML's domain (or type) as written
        self.wire = wire      # one of TYPES
        self.reserved = reserved

    @property
    def ctype(self):
        return TYPES[self.wire][0]


class Method:
    def __init__(self, cls, xml_name, index):
        self.cls = cls
        self.xml = xml_name
        self.c = cname(xml_name, "method", alone=False)
        self.index = index
        self.fields = []
        self.synchronous = False
        self.content = False
        self.responses = []  # XML names, in order
        self.origin = ""

    @property
    def id(self):
        return self.cls.index << 16 | self.index

    @property
    def enum(self):
        return f"HP_AMQP_{self.cls.c.upper()}_{self.c.upper()}"

    @property
    def member(self):
        return f"{self.cls.c}_{self.c}"

    @property
    def type(self):
        return f"hp_amqp_{self.member}_t"

    @property
    def dotted(self):
        return f"{self.cls.xml}.{self.xml}"


class Class:
    def __init__(self, xml_name, index):
        self.xml = xml_name
        self.c = cname(xml_name, "class", alone=False)
        self.index = index
        self.methods = []
        self.props = []


class Spec:
    def __init__(self):
        self.constants = []  # (xml name, value, class attribute)
        self.domains = {}    # name -> wire type or another domain
        self.classes = []

    def cls(self, name):
        for c in self.classes:
            if c.xml == name:
                return c
        return None

    def wire(self, domain, where, seen=()):
        """The wire type a domain comes down to."""
        if domain in TYPES and domain not in self.domains:
            return domain
        if domain not in self.domains:
            raise SpecError(f"{where}: unknown domain {domain!r}")
        t = self.domains[domain]
        if t == domain:
            if t not in TYPES:
                raise SpecError(f"{where}: domain {domain!r} has an unknown type")
            return t
        if domain in seen:
            raise SpecError(f"{where}: domain {domain!r} is defined in a loop")
        return self.wire(t, where, seen + (domain,))

    def load(self, path):
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            raise SpecError(f"{path}: {e}") from None
        if root.tag != "amqp":
            raise SpecError(f"{path}: the root element is <{root.tag}>, not <amqp>")
        ver = (root.get("major"), root.get("minor"), root.get("revision"))
        if ver != ("0", "9", "1"):
            raise SpecError(f"{path}: version {'-'.join(str(v) for v in ver)}, not 0-9-1")
        base = os.path.basename(path)
        for el in root.findall("constant"):
            name = el.get("name")
            if any(c[0] == name for c in self.constants):
                raise SpecError(f"{path}: constant {name!r} defined twice")
            self.constants.append((name, int_attr(el, "value", f"{path}: constant {name}"),
                                   el.get("class", "")))
        for el in root.findall("domain"):
            name, t = el.get("name"), el.get("type")
            if name in self.domains and self.domains[name] != t:
                raise SpecError(f"{path}: domain {name!r} redefined as {t!r}")
            self.domains[name] = t
        for cel in root.findall("class"):
            self._load_class(path, base, cel)

    def _field(self, el, where):
        name = el.get("name")
        domain = el.get("domain") or el.get("type")
        if not name or not domain:
            raise SpecError(f"{where}: a field without a name or a domain")
        return Field(name, domain, self.wire(domain, f"{where}.{name}"), el.get("reserved") == "1")

    def _load_class(self, path, base, cel):
        name = cel.get("name")
        index = int_attr(cel, "index", f"{path}: class {name}")
        c = self.cls(name)
        if c is None:
            if any(o.index == index for o in self.classes):
                raise SpecError(f"{path}: class {name}: index {index} is taken")
            c = Class(name, index)
            self.classes.append(c)
        elif c.index != index:
            raise SpecError(f"{path}: class {name}: index {index}, was {c.index}")
        props = [self._field(f, f"{path}: {name}") for f in cel.findall("field")]
        if props:
            if c.props:
                raise SpecError(f"{path}: class {name}: properties defined twice")
            c.props = props
        for mel in cel.findall("method"):
            mname = mel.get("name")
            where = f"{path}: {name}.{mname}"
            m = Method(c, mname, int_attr(mel, "index", where))
            for o in c.methods:
                if o.xml == mname or o.index == m.index:
                    raise SpecError(f"{where}: clashes with {o.dotted} ({o.origin})")
            m.synchronous = mel.get("synchronous") == "1"
            m.content = mel.get("content") == "1"
            m.responses = [r.get("name") for r in mel.findall("response")]
            m.fields = [self._field(f, where) for f in mel.findall("field")]
            if len({f.c for f in m.fields}) != len(m.fields):
                raise SpecError(f"{where}: two fields with one C name")
            m.origin = base
            c.methods.append(m)

    def check(self):
        """Whole-model checks, after every file is loaded."""
        ids = {}
        for c in self.classes:
            if not 0 < c.index <= 0xFFFF:
                raise SpecError(f"class {c.xml}: index {c.index} out of range")
            for m in c.methods:
                if not 0 < m.index <= 0xFFFF:
                    raise SpecError(f"{m.dotted}: index {m.index} out of range")
                if m.enum in ids:
                    raise SpecError(f"{m.dotted} and {ids[m.enum]} both make {m.enum}")
                ids[m.enum] = m.dotted
                for r in m.responses:
                    if not any(o.xml == r for o in c.methods):
                        raise SpecError(f"{m.dotted}: response {r!r} is not a method of {c.xml}")
                    if not m.synchronous:
                        raise SpecError(f"{m.dotted}: a response but not synchronous")
        basic = self.cls("basic")
        if basic is None or not basic.props:
            raise SpecError("the basic class and its properties are missing")
        if len(basic.props) > PROPS_PER_WORD:
            # hp_amqp_props_t has one 16-bit flags word: more properties
            # would need continuation words, which this codec does not do.
            raise SpecError(f"basic has {len(basic.props)} properties: more than one flags word")
        for c in self.classes:
            if c.props and c is not basic:
                raise SpecError(f"class {c.xml} has properties: only basic's are generated")

    def methods(self):
        """Every method, in id order."""
        return sorted((m for c in self.classes for m in c.methods), key=lambda m: m.id)


def bit_runs(fields):
    """Splits a field list into items: a non-bit field alone, or a run of
    at most 8 consecutive bit fields sharing one octet (spec §4.2.5.2)."""
    items, run = [], []
    for f in fields:
        if f.wire == "bit":
            if len(run) == 8:
                items.append(run)
                run = []
            run.append(f)
            continue
        if run:
            items.append(run)
            run = []
        items.append(f)
    if run:
        items.append(run)
    return items


# ---------------------------------------------------------------- header


def banner(args):
    srcs = " and ".join([args.spec] + args.ext)
    return f"/* Generated by {SCRIPT} from {srcs}. Do not edit. */\n"


def gen_header(spec, args):
    o = [banner(args)]
    meths = spec.methods()
    basic = spec.cls("basic")
    o.append(f"""/*
 * amqp_spec.h - the AMQP 0-9-1 methods and the basic class's content
 * properties: ids, argument structs, a decoder and an encoder, and what the
 * spec says about each method (name, content, synchronous, response).
 *
 * Private to the library (built into $(BUILD), never installed). Decoding
 * copies nothing: every hp_amqp_bytes_t in a decoded struct points into
 * the bytes that were decoded and is valid as long as they are. A table
 * argument is its encoded body (the bytes after its 32-bit length), always
 * checked with hp_amqp_table_validate() before decode returns 0. Any
 * thread may call these functions on its own buffers; nothing allocates.
 */
#ifndef HOTPATH_AMQP_SPEC_H
#define HOTPATH_AMQP_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp/wire_int.h"
#include "hotpath/amqp.h"
#include "hotpath/amqp_table.h"

/* Class ids. */
enum {{
""")
    for c in sorted(spec.classes, key=lambda c: c.index):
        o.append(f"    HP_AMQP_CLASS_{c.c.upper()} = {c.index},\n")
    o.append("};\n\n")
    o.append("/* Method ids: class id << 16 | method id, which is also the first four\n"
             " * bytes of a method frame's payload read as one big-endian long. */\n")
    o.append("enum {\n")
    decls = [f"{m.enum} = {m.cls.index} << 16 | {m.index}," for m in meths]
    dw = max(len(d) for d in decls)
    for m, d in zip(meths, decls):
        ext = f" ({m.origin})" if m.origin != os.path.basename(args.spec) else ""
        o.append(f"    {d:<{dw}} /* {m.dotted}{ext} */\n")
    o.append("};\n\n")
    o.append(f"/* How many methods there are (the enum above). */\n"
             f"#define HP_AMQP_METHOD_COUNT {len(meths)}\n\n")

    o.append("/* Arguments, one struct per method that has any, fields in wire order\n"
             " * and named as in the spec (dashes as underscores). Strings and tables\n"
             " * are borrowed (see above); reserved-N fields are sent as given and\n"
             " * should be left zero. */\n")
    for m in meths:
        if not m.fields:
            continue
        notes = []
        if m.content:
            notes.append("content follows")
        if m.synchronous:
            notes.append("synchronous" + (f", answered by {' or '.join(m.responses)}"
                                          if m.responses else ""))
        o.append(f"typedef struct hp_amqp_{m.member} {{ /* {m.dotted}"
                 f"{': ' + '; '.join(notes) if notes else ''} */\n")
        width = max(len(f.ctype) for f in m.fields)
        decls = [f"{f.ctype:<{width}} {f.c};" for f in m.fields]
        dw = max(len(d) for d in decls)
        for f, d in zip(m.fields, decls):
            what = f.wire if f.domain == f.wire else f"{f.domain}: {f.wire}"
            if f.reserved:
                what += ", reserved"
            if f.wire == "table":
                what += " (encoded body)"
            o.append(f"    {d:<{dw}} /* {what} */\n")
        o.append(f"}} {m.type};\n\n")

    o.append("/* A decoded method: `id` says which member of the union holds the\n"
             " * arguments (none for a method without any). */\n")
    o.append("typedef struct hp_amqp_method {\n    uint32_t id; /* HP_AMQP_<CLASS>_<METHOD> */\n"
             "    union {\n")
    for m in meths:
        if m.fields:
            o.append(f"        {m.type} {m.member};\n")
    o.append("    };\n} hp_amqp_method_t;\n\n")

    flags = [f"HP_AMQP_PROP_{f.c.upper()}" for f in basic.props]
    prop_all = "(" + " | \\\n     ".join(flags) + ")"
    o.append(f"""/* Every content property flag of the basic class ({len(basic.props)} of them). */
#define HP_AMQP_PROPS_ALL \\\n    {prop_all}

/* Decodes a method frame's whole payload: class id, method id and the
 * arguments, into *m (OUT; its strings and tables point into `payload`,
 * borrowed). Returns 0; -EPROTO when the payload is truncated, has bytes
 * left after the last argument, or holds a table that
 * hp_amqp_table_validate() refuses; -ENOTSUP for a class or method this
 * spec does not have (m->id is then set, for the 540/503 reply). Unused
 * bits of a bit octet are ignored. *m is unspecified on any error. */
int hp_amqp_method_decode(const void *payload, size_t len, hp_amqp_method_t *m);

/* Encodes class id, method id and arguments of *m at w's position
 * (consecutive bit fields packed into one octet, first field in the least
 * significant bit). Returns 0; -ENOBUFS when the writer overflowed (now or
 * before: its overflow is sticky, and what was written is to be dropped);
 * -EINVAL, with nothing written, for a shortstr longer than 255 bytes or
 * an id that is not a method's. */
int hp_amqp_method_encode(hp_amqp_wr_t *w, const hp_amqp_method_t *m);

/* "basic.publish" for HP_AMQP_BASIC_PUBLISH (static storage), NULL for an
 * id that is not a method's. */
const char *hp_amqp_method_name(uint32_t id);

/* Whether content (a header frame, then body frames) follows the method
 * (the spec's content="1": basic.publish, .return, .deliver, .get-ok). */
bool hp_amqp_method_has_content(uint32_t id);

/* Whether the method is synchronous: a request that waits for a response,
 * or a response itself (the spec's synchronous="1"). */
bool hp_amqp_method_synchronous(uint32_t id);

/* The id of the method that answers a synchronous request (the first
 * when the spec allows several: basic.get-ok for basic.get, not
 * get-empty); 0 for a method that expects no answer or an unknown id. */
uint32_t hp_amqp_method_response(uint32_t id);

/* Wire types of arguments, for hp_amqp_field_desc_t. */
enum {{
    HP_AMQP_FIELD_BIT = 1,   /* bool */
    HP_AMQP_FIELD_OCTET,     /* uint8_t */
    HP_AMQP_FIELD_SHORT,     /* uint16_t */
    HP_AMQP_FIELD_LONG,      /* uint32_t */
    HP_AMQP_FIELD_LONGLONG,  /* uint64_t */
    HP_AMQP_FIELD_TIMESTAMP, /* uint64_t */
    HP_AMQP_FIELD_SHORTSTR,  /* hp_amqp_bytes_t */
    HP_AMQP_FIELD_LONGSTR,   /* hp_amqp_bytes_t */
    HP_AMQP_FIELD_TABLE,     /* hp_amqp_bytes_t: the encoded body */
}};

/* One argument of a method, as the spec lists it: for tracing a method
 * generically (and for tests that walk every method). */
typedef struct hp_amqp_field_desc {{
    const char *name; /* the spec's: "routing-key" */
    uint16_t offset;  /* of the value in hp_amqp_method_t */
    uint8_t type;     /* HP_AMQP_FIELD_* */
    bool reserved;    /* a reserved-N field */
}} hp_amqp_field_desc_t;

/* The arguments of method `id` in wire order: returns how many, with
 * *out (static storage) set, or -ENOTSUP for an unknown id. */
int hp_amqp_method_fields(uint32_t id, const hp_amqp_field_desc_t **out);

/* Reads the property flags and the property list of a basic content
 * header from r (the frame's payload after class id, weight and body
 * size: see hp_amqp_frame_read_content_header) into *p (OUT; strings and
 * the headers table borrowed from r's bytes; absent properties zero).
 * Returns 0 with r after the list, or -EPROTO: truncated, a headers table
 * hp_amqp_table_validate() refuses, or a flag that names no basic
 * property. That includes bit 0, the continuation flag ("another flags
 * word follows"): basic's {len(basic.props)} properties fit the first word, so a
 * peer that sets it is announcing properties basic does not have and
 * whose types cannot be known; it is refused, not skipped. The caller
 * checks that nothing follows the list (r->pos == r->len). */
int hp_amqp_props_decode(hp_amqp_rd_t *r, hp_amqp_props_t *p);

/* Writes p->flags and the properties it names at w's position. Returns 0;
 * -ENOBUFS when the writer overflowed; -EINVAL, with nothing written, for
 * a flag outside HP_AMQP_PROPS_ALL or a present shortstr property longer
 * than 255 bytes. Absent properties are not looked at. */
int hp_amqp_props_encode(hp_amqp_wr_t *w, const hp_amqp_props_t *p);

#endif
""")
    return "".join(o)


# ---------------------------------------------------------------- source


def header_names(path):
    """The HP_AMQP_* names a header defines (enumerators and macros)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SpecError(f"{path}: {e}") from None
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    names = set(re.findall(r"\b(HP_AMQP_[A-Z0-9_]+)\s*=(?!=)", text))
    names |= set(re.findall(r"^\s*#\s*define\s+(HP_AMQP_[A-Z0-9_]+)\b", text, flags=re.M))
    return names


def include_name(path):
    """How a checked header is included: by its path under include/ or src/."""
    p = path.replace(os.sep, "/")
    for root in ("include/", "src/"):
        i = p.rfind(root)
        if i >= 0:
            return p[i + len(root):]
    return os.path.basename(p)


def gen_static_asserts(spec, args):
    o = []
    basic = spec.cls("basic")
    o.append("/* The hand-written flags and fields of hp_amqp_props_t (amqp.h) are the\n"
             " * spec's property list of the basic class, in its order: bit 15 first. */\n")
    for i, f in enumerate(basic.props):
        flag = f"HP_AMQP_PROP_{f.c.upper()}"
        o.append(f"_Static_assert({flag} == 1u << {PROPS_PER_WORD - i},\n"
                 f"               \"{flag} is not bit {PROPS_PER_WORD - i}, "
                 f"the spec's property {i + 1} ({f.xml})\");\n")
        o.append(f"_Static_assert(_Generic(((hp_amqp_props_t *)0)->{f.c}, {f.ctype}: 1, default: 0),\n"
                 f"               \"hp_amqp_props_t.{f.c} is not a {f.ctype} ({f.xml}: {f.wire})\");\n")
    o.append("\n")

    defined = {}
    for h in args.check:
        for n in header_names(h):
            defined.setdefault(n, h)
    checked, unchecked = [], []
    for name, value, _ in spec.constants:
        n = "HP_AMQP_" + name.replace("-", "_").upper()
        (checked if n in defined else unchecked).append((n, name, value))
    if checked:
        o.append("/* Constants the headers name (" +
                 ", ".join(include_name(h) for h in args.check) +
                 ") have the spec's values. */\n")
    for n, name, value in checked:
        o.append(f"_Static_assert({n} == {value},\n               \"{include_name(defined[n])}: "
                 f"{n} is not the spec's {name} ({value})\");\n")
    if unchecked:
        o.append("/* Spec constants no checked header names (not compared): " +
                 ", ".join(f"{name} {value}" for _, name, value in unchecked) + ". */\n")
    return "".join(o)


def gen_decode_case(m):
    o = [f"    case {m.enum}: {{\n", f"        {m.type} *a = &m->{m.member};\n"]
    tables = []
    for item in bit_runs(m.fields):
        if isinstance(item, list):
            o.append("        bits = hp_amqp_rd_u8(&r);\n")
            for k, f in enumerate(item):
                o.append(f"        a->{f.c} = {'bits & 1' if k == 0 else f'bits >> {k} & 1'};\n")
        else:
            o.append(f"        a->{item.c} = {RD[item.wire]};\n")
            if item.wire == "table":
                tables.append(item)
    for f in tables:
        o.append(f"        if (!r.bad && hp_amqp_table_validate(a->{f.c}) < 0)\n"
                 f"            return -EPROTO;\n")
    o.append("        break;\n    }\n")
    return "".join(o)


def gen_encode_case(m):
    o = [f"    case {m.enum}: {{\n", f"        const {m.type} *a = &m->{m.member};\n"]
    shorts = [f for f in m.fields if f.wire == "shortstr"]
    if shorts:
        cond = " || ".join(f"a->{f.c}.len > 255" for f in shorts)
        o.append(f"        if ({cond})\n            return -EINVAL;\n")
    o.append("        hp_amqp_wr_u32(w, m->id);\n")
    for item in bit_runs(m.fields):
        if isinstance(item, list):
            o.append(f"        bits = a->{item[0].c};\n")
            for k, f in enumerate(item[1:], 1):
                o.append(f"        bits |= (uint8_t)(a->{f.c} << {k});\n")
            o.append("        hp_amqp_wr_u8(w, bits);\n")
        else:
            o.append(f"        {WR[item.wire]}(w, a->{item.c});\n")
    o.append("        break;\n    }\n")
    return "".join(o)


def gen_source(spec, args):
    meths = spec.methods()
    basic = spec.cls("basic")
    o = [banner(args)]
    o.append("""/*
 * amqp_spec.c - the AMQP 0-9-1 codec amqp_spec.h declares: one switch case
 * per method to decode and one to encode, each reading or writing the
 * arguments in the spec's order with the wire_int.h primitives, and a
 * table of the methods sorted by id for the name, content, synchronous,
 * response and field lookups (a binary search).
 *
 * Invariant: decode returns 0 only when the arguments took exactly the
 * payload and every table in them validated; encode writes nothing before
 * it has checked every length it could refuse, so -EINVAL leaves the
 * writer as it was. The _Static_asserts below hold the hand-written
 * public constants to the spec's values.
 */
#include "amqp_spec.h"

#include <errno.h>
#include <stddef.h>

""")
    for h in args.check:
        inc = include_name(h)
        if inc not in ("hotpath/amqp.h",):
            o.append(f'#include "{inc}"\n')
    o.append("\n")
    o.append(gen_static_asserts(spec, args))
    o.append("\n")

    # Field descriptors.
    for m in meths:
        if not m.fields:
            continue
        o.append(f"static const hp_amqp_field_desc_t fields_{m.member}[] = {{\n")
        for f in m.fields:
            o.append(f"    {{\"{f.xml}\", offsetof(hp_amqp_method_t, {m.member}.{f.c}), "
                     f"{TYPES[f.wire][1]}, {'true' if f.reserved else 'false'}}},\n")
        o.append("};\n")
    o.append("""
enum { M_CONTENT = 1, M_SYNC = 2 };

typedef struct method_info {
    uint32_t id, response;
    const char *name;
    const hp_amqp_field_desc_t *fields;
    uint8_t nfields, flags;
} method_info_t;

/* Sorted by id. */
static const method_info_t methods[HP_AMQP_METHOD_COUNT] = {
""")
    for m in meths:
        flags = " | ".join(n for n, on in (("M_CONTENT", m.content), ("M_SYNC", m.synchronous))
                           if on) or "0"
        resp = "0"
        if m.responses:
            r = next(x for x in m.cls.methods if x.xml == m.responses[0])
            resp = r.enum
        fields = f"fields_{m.member}" if m.fields else "NULL"
        o.append(f"    {{{m.enum}, {resp}, \"{m.dotted}\", {fields}, {len(m.fields)}, {flags}}},\n")
    o.append("""};

static const method_info_t *info(uint32_t id)
{
    size_t lo = 0, hi = HP_AMQP_METHOD_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (methods[mid].id == id)
            return &methods[mid];
        if (methods[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *hp_amqp_method_name(uint32_t id)
{
    const method_info_t *i = info(id);
    return i ? i->name : NULL;
}

bool hp_amqp_method_has_content(uint32_t id)
{
    const method_info_t *i = info(id);
    return i && i->flags & M_CONTENT;
}

bool hp_amqp_method_synchronous(uint32_t id)
{
    const method_info_t *i = info(id);
    return i && i->flags & M_SYNC;
}

uint32_t hp_amqp_method_response(uint32_t id)
{
    const method_info_t *i = info(id);
    return i ? i->response : 0;
}

int hp_amqp_method_fields(uint32_t id, const hp_amqp_field_desc_t **out)
{
    const method_info_t *i = info(id);
    if (!i)
        return -ENOTSUP;
    *out = i->fields;
    return i->nfields;
}

int hp_amqp_method_decode(const void *payload, size_t len, hp_amqp_method_t *m)
{
    hp_amqp_rd_t r = hp_amqp_rd(payload, len);
    /* Class id and method id, read as one long, are the method's id. */
    m->id = hp_amqp_rd_u32(&r);
    if (r.bad)
        return -EPROTO;
    uint8_t bits; /* the octet a run of bit fields shares */
    switch (m->id) {
""")
    bare = [m for m in meths if not m.fields]
    for m in meths:
        if m.fields:
            o.append(gen_decode_case(m))
    for m in bare:
        o.append(f"    case {m.enum}:\n")
    o.append("""        break;
    default:
        return -ENOTSUP;
    }
    /* The reader is sticky: one check covers every argument read. */
    if (r.bad || r.pos != r.len)
        return -EPROTO;
    return 0;
}

int hp_amqp_method_encode(hp_amqp_wr_t *w, const hp_amqp_method_t *m)
{
    uint8_t bits; /* a run of bit fields, first in the least significant bit */
    switch (m->id) {
""")
    for m in meths:
        if m.fields:
            o.append(gen_encode_case(m))
    for m in bare:
        o.append(f"    case {m.enum}:\n")
    o.append("""        hp_amqp_wr_u32(w, m->id);
        break;
    default:
        return -EINVAL;
    }
    return w->overflow ? -ENOBUFS : 0;
}

""")
    # Properties.
    o.append("int hp_amqp_props_decode(hp_amqp_rd_t *r, hp_amqp_props_t *p)\n{\n"
             "    uint16_t f = hp_amqp_rd_u16(r);\n"
             "    if (r->bad)\n        return -EPROTO;\n"
             "    /* Bit 0 (continuation) and any bit below the last property name\n"
             "     * properties basic does not have (see amqp_spec.h). */\n"
             "    if (f & ~HP_AMQP_PROPS_ALL)\n        return -EPROTO;\n"
             "    p->flags = f;\n")
    for f in basic.props:
        flag = f"HP_AMQP_PROP_{f.c.upper()}"
        zero = "(hp_amqp_bytes_t){NULL, 0}" if f.ctype == "hp_amqp_bytes_t" else "0"
        if f.wire == "bit":
            raise SpecError(f"basic property {f.xml} is a bit: not supported")
        rd = RD[f.wire].replace("&r", "r")
        o.append(f"    p->{f.c} = f & {flag} ? {rd} : {zero};\n")
    o.append("    if (r->bad)\n        return -EPROTO;\n")
    for f in basic.props:
        if f.wire == "table":
            o.append(f"    if (f & HP_AMQP_PROP_{f.c.upper()} && hp_amqp_table_validate(p->{f.c}) < 0)\n"
                     f"        return -EPROTO;\n")
    o.append("    return 0;\n}\n\n")

    o.append("int hp_amqp_props_encode(hp_amqp_wr_t *w, const hp_amqp_props_t *p)\n{\n"
             "    uint16_t f = p->flags;\n"
             "    if (f & ~HP_AMQP_PROPS_ALL)\n        return -EINVAL;\n")
    shorts = [x for x in basic.props if x.wire == "shortstr"]
    if shorts:
        conds = [f"(f & HP_AMQP_PROP_{x.c.upper()} && p->{x.c}.len > 255)" for x in shorts]
        o.append("    if (" + " ||\n        ".join(conds) + ")\n        return -EINVAL;\n")
    o.append("    hp_amqp_wr_u16(w, f);\n")
    for x in basic.props:
        o.append(f"    if (f & HP_AMQP_PROP_{x.c.upper()})\n        {WR[x.wire]}(w, p->{x.c});\n")
    o.append("    return w->overflow ? -ENOBUFS : 0;\n}\n")
    return "".join(o)


def write_atomically(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description="Generates the AMQP 0-9-1 codec from the spec XML.")
    ap.add_argument("--spec", required=True, help="the specification XML")
    ap.add_argument("--ext", action="append", default=[], help="an extension XML (repeatable)")
    ap.add_argument("--check", action="append", default=[],
                    help="a header whose HP_AMQP_* constants must equal the spec's (repeatable)")
    out = ap.add_mutually_exclusive_group(required=True)
    out.add_argument("--header", help="write amqp_spec.h here")
    out.add_argument("--source", help="write amqp_spec.c here")
    args = ap.parse_args(argv)
    try:
        spec = Spec()
        spec.load(args.spec)
        for e in args.ext:
            spec.load(e)
        spec.check()
        if args.header:
            write_atomically(args.header, gen_header(spec, args))
        else:
            write_atomically(args.source, gen_source(spec, args))
    except SpecError as e:
        print(f"amqpgen: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
