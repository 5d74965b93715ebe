/*
 * Optional C accelerator for txamqp091.codec: the frame decoder's feed() and
 * the content/method frame encoders.
 *
 * This module only walks the happy path. Whenever it meets anything unusual
 * (a malformed frame, a value of an unexpected type, invalid UTF-8, a field
 * type it does not handle itself) it hands the whole unit of work to the pure
 * Python implementation, which either handles the rare valid case or raises
 * the precise, documented error. So the Python code in codec.py, fields.py and
 * spec.py stays the single definition of behaviour; the tests check that both
 * paths give identical results.
 *
 * Set TXAMQP091_PURE_PYTHON=1 to run without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>
#include <stdint.h>

#define FRAME_END 0xCE
#define MAX_DEPTH 64

/* Objects handed over by codec.configure(). */
static PyObject *MethodFrameType, *HeaderFrameType, *BodyFrameType, *Heartbeat;
static PyObject *Methods;          /* spec.methods: INDEX -> method class */
static PyObject *PropertiesType;   /* spec.BasicProperties */
static PyObject *PyDecodeValue;    /* fields.decode_value (D, T and typed values) */
static PyObject *PyEncodeValue;    /* fields.encode_value (for other value types) */
static PyObject *Diagnose;         /* raises the pure decoder's error for bad bytes */
static PyObject *PyEncodeMessage;  /* pure encode_message */
static PyObject *PyEncodeMethod;   /* pure encode_method_frame */
static PyObject *str_decode_slow, *str_fields;
static int configured = 0;

/* Slot offsets of the frame classes, found from their member descriptors. */
static Py_ssize_t off_mf_channel, off_mf_method;
static Py_ssize_t off_hf_channel, off_hf_size, off_hf_props;
static Py_ssize_t off_bf_channel, off_bf_fragment;

/* ------------------------------------------------------------------------ */
/* Big-endian helpers */

static inline uint16_t rd16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t rd64(const unsigned char *p) {
    return ((uint64_t)rd32(p) << 32) | rd32(p + 4);
}
static inline void wr16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static inline void wr32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static inline void wr64(unsigned char *p, uint64_t v) { wr32(p, (uint32_t)(v >> 32)); wr32(p + 4, (uint32_t)v); }

/* ------------------------------------------------------------------------ */
/* Slot access */

static int
slot_offset(PyObject *type, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyObject_GetAttrString(type, name);
    if (descr == NULL)
        return -1;
    if (Py_TYPE(descr) != &PyMemberDescr_Type) {
        Py_DECREF(descr);
        PyErr_Format(PyExc_TypeError, "%s is not a slot", name);
        return -1;
    }
    *offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    Py_DECREF(descr);
    return 0;
}

/* Store a new reference into a freshly allocated object's slot. */
static inline void
set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject **slot = (PyObject **)((char *)obj + offset);
    PyObject *old = *slot;
    *slot = value;
    Py_XDECREF(old);
}

static inline PyObject *
get_slot(PyObject *obj, Py_ssize_t offset)
{
    return *(PyObject **)((char *)obj + offset);
}

/* ------------------------------------------------------------------------ */
/* Method and property layouts, built once per class from its _fields. */

enum kind { K_OCTET, K_SHORT, K_LONG, K_LONGLONG, K_BIT, K_SHORTSTR, K_LONGSTR, K_TABLE };

typedef struct {
    int nfields;
    int class_id, method_id, has_content;
    int kinds[16];
    Py_ssize_t offsets[16];    /* slot offsets (methods) */
    PyObject *names[16];       /* attribute names (properties) */
} Layout;

static PyObject *layouts;      /* dict: method class -> capsule(Layout); methods only */
static Layout *props_layout;   /* BasicProperties' layout */

static int
kind_of(PyObject *name)
{
    const char *k = PyUnicode_AsUTF8(name);
    if (k == NULL) return -1;
    if (!strcmp(k, "octet")) return K_OCTET;
    if (!strcmp(k, "short")) return K_SHORT;
    if (!strcmp(k, "long")) return K_LONG;
    if (!strcmp(k, "longlong") || !strcmp(k, "timestamp")) return K_LONGLONG;
    if (!strcmp(k, "bit")) return K_BIT;
    if (!strcmp(k, "shortstr")) return K_SHORTSTR;
    if (!strcmp(k, "longstr")) return K_LONGSTR;
    if (!strcmp(k, "table")) return K_TABLE;
    PyErr_Format(PyExc_ValueError, "unknown field kind %s", k);
    return -1;
}

static void
layout_free(PyObject *capsule)
{
    Layout *layout = PyCapsule_GetPointer(capsule, "txamqp091.layout");
    if (layout == NULL) return;
    for (int i = 0; i < layout->nfields; i++) Py_XDECREF(layout->names[i]);
    PyMem_Free(layout);
}

static int
int_attr(PyObject *cls, const char *name, int *out)
{
    PyObject *v = PyObject_GetAttrString(cls, name);
    if (v == NULL) return -1;
    *out = (int)PyLong_AsLong(v);
    Py_DECREF(v);
    return PyErr_Occurred() ? -1 : 0;
}

/* is_method: 1 for method classes (slots), 0 for properties (attributes). */
static Layout *
get_layout(PyObject *cls, int is_method)
{
    if (!is_method && props_layout != NULL) return props_layout;
    PyObject *capsule = is_method ? PyDict_GetItemWithError(layouts, cls) : NULL;
    if (capsule != NULL)
        return PyCapsule_GetPointer(capsule, "txamqp091.layout");
    if (PyErr_Occurred()) return NULL;
    PyObject *fields = PyObject_GetAttr(cls, str_fields);
    if (fields == NULL) return NULL;
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) > 16) {
        Py_DECREF(fields);
        PyErr_SetString(PyExc_TypeError, "_fields must be a tuple of at most 16 fields");
        return NULL;
    }
    Layout *layout = PyMem_Calloc(1, sizeof(Layout));
    if (layout == NULL) { Py_DECREF(fields); PyErr_NoMemory(); return NULL; }
    layout->nfields = (int)PyTuple_GET_SIZE(fields);
    for (int i = 0; i < layout->nfields; i++) {
        PyObject *pair = PyTuple_GET_ITEM(fields, i);
        PyObject *name = PyTuple_GetItem(pair, 0), *kind = PyTuple_GetItem(pair, 1);
        if (name == NULL || kind == NULL) goto fail;
        if ((layout->kinds[i] = kind_of(kind)) < 0) goto fail;
        Py_INCREF(name);
        layout->names[i] = name;
        if (is_method && slot_offset(cls, PyUnicode_AsUTF8(name), &layout->offsets[i]) < 0)
            goto fail;
    }
    if (is_method) {
        PyObject *hc = PyObject_GetAttrString(cls, "has_content");
        if (hc == NULL) goto fail;
        layout->has_content = PyObject_IsTrue(hc);
        Py_DECREF(hc);
        if (int_attr(cls, "CLASS_ID", &layout->class_id) < 0) goto fail;
        if (int_attr(cls, "METHOD_ID", &layout->method_id) < 0) goto fail;
    }
    Py_DECREF(fields);
    if (!is_method) {
        props_layout = layout;   /* kept for the life of the process */
        return layout;
    }
    capsule = PyCapsule_New(layout, "txamqp091.layout", layout_free);
    if (capsule == NULL) {
        for (int i = 0; i < layout->nfields; i++) Py_XDECREF(layout->names[i]);
        PyMem_Free(layout);
        return NULL;
    }
    if (PyDict_SetItem(layouts, cls, capsule) < 0) { Py_DECREF(capsule); return NULL; }
    Py_DECREF(capsule);
    return layout;
fail:
    Py_DECREF(fields);
    for (int i = 0; i < layout->nfields; i++) Py_XDECREF(layout->names[i]);
    PyMem_Free(layout);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Decoding. Each decoder returns a new reference, or NULL with *fallback set
 * (and no exception) when the Python implementation must take over, or NULL
 * with an exception set for a real error (e.g. out of memory). */

static PyObject *decode_table(const unsigned char *p, Py_ssize_t len,
                              Py_ssize_t *pos, int depth, int *fallback);

static PyObject *
decode_value(const unsigned char *p, Py_ssize_t len, Py_ssize_t *pos,
             int depth, int *fallback)
{
    Py_ssize_t o = *pos;
    if (o >= len) { *fallback = 1; return NULL; }
    unsigned char code = p[o++];
    PyObject *value;
    uint32_t n;
    switch (code) {
    case 't':
        if (o + 1 > len) break;
        value = p[o] ? Py_True : Py_False; Py_INCREF(value); *pos = o + 1; return value;
    case 'I':
        if (o + 4 > len) break;
        *pos = o + 4; return PyLong_FromLong((int32_t)rd32(p + o));
    case 'd': {
        if (o + 8 > len) break;
        uint64_t bits = rd64(p + o); double d;
        memcpy(&d, &bits, 8);
        *pos = o + 8; return PyFloat_FromDouble(d);
    }
    case 'S':
        if (o + 4 > len) break;
        n = rd32(p + o);
        if ((uint64_t)n > (uint64_t)(len - o - 4)) break;
        value = PyUnicode_DecodeUTF8((const char *)p + o + 4, n, NULL);
        if (value == NULL) {
            /* Not UTF-8: Python gives a LongStr (bytes that encode back to S). */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return NULL;
            PyErr_Clear();
            break;
        }
        *pos = o + 4 + n; return value;
    case 'x':
        if (o + 4 > len) break;
        n = rd32(p + o);
        if ((uint64_t)n > (uint64_t)(len - o - 4)) break;
        *pos = o + 4 + n; return PyBytes_FromStringAndSize((const char *)p + o + 4, n);
    case 'V':
        *pos = o; Py_RETURN_NONE;
    case 'F':
        *pos = o;
        return decode_table(p, len, pos, depth + 1, fallback);
    case 'A': {
        if (depth >= MAX_DEPTH || o + 4 > len) break;
        n = rd32(p + o);
        if ((uint64_t)n > (uint64_t)(len - o - 4)) break;
        Py_ssize_t end = o + 4 + n;
        Py_ssize_t q = o + 4;
        PyObject *list = PyList_New(0);
        if (list == NULL) return NULL;
        while (q < end) {
            PyObject *item = decode_value(p, end, &q, depth + 1, fallback);
            if (item == NULL) { Py_DECREF(list); return NULL; }
            int rc = PyList_Append(list, item);
            Py_DECREF(item);
            if (rc < 0) { Py_DECREF(list); return NULL; }
        }
        *pos = end; return list;
    }
    case 'D': case 'T':
    case 'b': case 'B': case 's': case 'u': case 'i': case 'l': case 'f': {
        /* Rare: let Python build the Decimal / datetime (and judge the value), and
         * the typed wrappers (Int8, ..., Float32) that encode back to their letter.
         * Hand it only this value's bytes (its letter and at most 8 more), so
         * that many such values cost linear time. */
        Py_ssize_t start = *pos, avail = len - start < 9 ? len - start : 9;
        PyObject *chunk = PyBytes_FromStringAndSize((const char *)p + start, avail);
        if (chunk == NULL) return NULL;
        PyObject *result = PyObject_CallFunction(PyDecodeValue, "Oin", chunk, 0, (Py_ssize_t)depth);
        Py_DECREF(chunk);
        if (result == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;
            PyErr_Clear();
            break;
        }
        if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 2) { Py_DECREF(result); break; }
        value = PyTuple_GET_ITEM(result, 0);
        Py_ssize_t used = PyLong_AsSsize_t(PyTuple_GET_ITEM(result, 1));
        if (used <= 0 || used > avail) { PyErr_Clear(); Py_DECREF(result); break; }
        Py_INCREF(value);
        Py_DECREF(result);
        *pos = start + used; return value;
    }
    default:
        break;
    }
    *fallback = 1;
    return NULL;
}

static PyObject *
decode_table(const unsigned char *p, Py_ssize_t len, Py_ssize_t *pos,
             int depth, int *fallback)
{
    Py_ssize_t o = *pos;
    if (depth >= MAX_DEPTH || o + 4 > len) { *fallback = 1; return NULL; }
    uint32_t n = rd32(p + o);
    if ((uint64_t)n > (uint64_t)(len - o - 4)) { *fallback = 1; return NULL; }
    Py_ssize_t end = o + 4 + n;
    o += 4;
    PyObject *table = PyDict_New();
    if (table == NULL) return NULL;
    while (o < end) {
        Py_ssize_t klen = p[o];
        if (o + 1 + klen > end) { *fallback = 1; goto fail; }
        PyObject *key = PyUnicode_DecodeUTF8((const char *)p + o + 1, klen, NULL);
        if (key == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) { PyErr_Clear(); *fallback = 1; }
            goto fail;
        }
        o += 1 + klen;
        PyObject *value = decode_value(p, end, &o, depth, fallback);
        if (value == NULL) { Py_DECREF(key); goto fail; }
        int rc = PyDict_SetItem(table, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) goto fail;
    }
    *pos = end;
    return table;
fail:
    Py_DECREF(table);
    return NULL;
}

static PyObject *
decode_shortstr(const unsigned char *p, Py_ssize_t len, Py_ssize_t *pos, int *fallback)
{
    Py_ssize_t o = *pos;
    if (o >= len) { *fallback = 1; return NULL; }
    Py_ssize_t n = p[o];
    if (o + 1 + n > len) { *fallback = 1; return NULL; }
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p + o + 1, n, NULL);
    if (s == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) { PyErr_Clear(); *fallback = 1; }
        return NULL;
    }
    *pos = o + 1 + n;
    return s;
}

/* Decode one field of a method or property; bits are handled by the callers. */
static PyObject *
decode_field(int kind, const unsigned char *p, Py_ssize_t len,
             Py_ssize_t *pos, int *fallback)
{
    Py_ssize_t o = *pos;
    uint32_t n;
    switch (kind) {
    case K_OCTET:
        if (o + 1 > len) break;
        *pos = o + 1; return PyLong_FromLong(p[o]);
    case K_SHORT:
        if (o + 2 > len) break;
        *pos = o + 2; return PyLong_FromLong(rd16(p + o));
    case K_LONG:
        if (o + 4 > len) break;
        *pos = o + 4; return PyLong_FromUnsignedLong(rd32(p + o));
    case K_LONGLONG:
        if (o + 8 > len) break;
        *pos = o + 8; return PyLong_FromUnsignedLongLong(rd64(p + o));
    case K_SHORTSTR:
        return decode_shortstr(p, len, pos, fallback);
    case K_LONGSTR:
        if (o + 4 > len) break;
        n = rd32(p + o);
        if ((uint64_t)n > (uint64_t)(len - o - 4)) break;
        *pos = o + 4 + n; return PyBytes_FromStringAndSize((const char *)p + o + 4, n);
    case K_TABLE:
        return decode_table(p, len, pos, 0, fallback);
    }
    *fallback = 1;
    return NULL;
}

/* Call cls._decode_slow(payload, offset): the precise error, or the rare case. */
static PyObject *
decode_slow(PyObject *cls, const unsigned char *p, Py_ssize_t len, Py_ssize_t offset)
{
    PyObject *payload = PyBytes_FromStringAndSize((const char *)p, len);
    if (payload == NULL) return NULL;
    PyObject *start = PyLong_FromSsize_t(offset);
    if (start == NULL) { Py_DECREF(payload); return NULL; }
    PyObject *result = PyObject_CallMethodObjArgs(cls, str_decode_slow, payload, start, NULL);
    Py_DECREF(start);
    Py_DECREF(payload);
    return result;
}

/* Decode a method frame payload (class and method ids included). */
static PyObject *
decode_method(PyObject *cls, const unsigned char *p, Py_ssize_t len)
{
    Layout *layout = get_layout(cls, 1);
    if (layout == NULL) return NULL;
    PyTypeObject *type = (PyTypeObject *)cls;
    PyObject *obj = type->tp_alloc(type, 0);
    if (obj == NULL) return NULL;
    Py_ssize_t pos = 4;
    int fallback = 0, bit = 8;
    unsigned char bits = 0;
    for (int i = 0; i < layout->nfields; i++) {
        PyObject *value;
        if (layout->kinds[i] == K_BIT) {
            if (bit == 8) {
                if (pos >= len) { fallback = 1; goto fail; }
                bits = p[pos++];
                bit = 0;
            }
            value = (bits & (1 << bit++)) ? Py_True : Py_False;
            Py_INCREF(value);
        } else {
            bit = 8;
            value = decode_field(layout->kinds[i], p, len, &pos, &fallback);
            if (value == NULL) goto fail;
        }
        set_slot(obj, layout->offsets[i], value);
    }
    if (pos != len) { fallback = 1; goto fail; }
    return obj;
fail:
    Py_DECREF(obj);
    if (fallback && !PyErr_Occurred()) return decode_slow(cls, p, len, 4);
    return NULL;
}

/* Decode content properties (flags first) from p[pos:len]. */
static PyObject *
decode_properties(const unsigned char *p, Py_ssize_t len, Py_ssize_t start)
{
    Layout *layout = get_layout(PropertiesType, 0);
    if (layout == NULL) return NULL;
    int fallback = 0;
    PyObject *obj = NULL;
    Py_ssize_t pos = start;
    if (pos + 2 > len) { fallback = 1; goto fail; }
    uint16_t flags = rd16(p + pos);
    if (flags & 3) { fallback = 1; goto fail; }
    pos += 2;
    PyTypeObject *type = (PyTypeObject *)PropertiesType;
    obj = type->tp_alloc(type, 0);
    if (obj == NULL) return NULL;
    for (int i = 0; i < layout->nfields && flags; i++) {
        uint16_t flag = (uint16_t)(1 << (15 - i));
        if (!(flags & flag)) continue;
        flags &= (uint16_t)~flag;
        PyObject *value = decode_field(layout->kinds[i], p, len, &pos, &fallback);
        if (value == NULL) goto fail;
        int rc = PyObject_GenericSetAttr(obj, layout->names[i], value);
        Py_DECREF(value);
        if (rc < 0) goto fail;
    }
    if (flags || pos != len) { fallback = 1; goto fail; }
    return obj;
fail:
    Py_XDECREF(obj);
    if (fallback && !PyErr_Occurred()) {
        PyObject *payload = PyBytes_FromStringAndSize((const char *)p, len);
        if (payload == NULL) return NULL;
        PyObject *result = PyObject_CallMethod(PropertiesType, "_decode_slow", "On", payload, start);
        Py_DECREF(payload);
        return result;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* FrameDecoder */

typedef struct {
    PyObject_HEAD
    PyObject *buffer;          /* bytearray holding an incomplete frame */
    uint64_t need;             /* bytes the next frame needs before decoding */
    uint64_t max_payload;
} Decoder;

static void
Decoder_dealloc(Decoder *self)
{
    Py_XDECREF(self->buffer);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Decoder_init(Decoder *self, PyObject *args, PyObject *kwds)
{
    unsigned long long max_payload;
    if (!PyArg_ParseTuple(args, "K", &max_payload)) return -1;
    if (!configured) { PyErr_SetString(PyExc_RuntimeError, "_speedups is not configured"); return -1; }
    Py_XSETREF(self->buffer, PyByteArray_FromStringAndSize(NULL, 0));
    if (self->buffer == NULL) return -1;
    self->need = 7;
    self->max_payload = max_payload;
    return 0;
}

static PyObject *
new_frame(PyObject *cls, Py_ssize_t off_channel, PyObject *channel)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    PyObject *frame = type->tp_alloc(type, 0);
    if (frame == NULL) { Py_DECREF(channel); return NULL; }
    set_slot(frame, off_channel, channel);
    return frame;
}

/* Let the pure decoder raise its error for the bytes from the bad frame on. */
static PyObject *
diagnose(const unsigned char *p, Py_ssize_t len, uint64_t max_payload)
{
    PyObject *rest = PyBytes_FromStringAndSize((const char *)p, len);
    if (rest == NULL) return NULL;
    PyObject *result = PyObject_CallFunction(Diagnose, "OK", rest, (unsigned long long)max_payload);
    Py_DECREF(rest);
    Py_XDECREF(result);
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "_speedups: the pure decoder found no error");
    return NULL;
}

static PyObject *
Decoder_feed(Decoder *self, PyObject *arg)
{
    PyObject *data;
    if (self->buffer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FrameDecoder.__init__ was not called");
        return NULL;
    }
    if (PyBytes_CheckExact(arg)) {
        data = arg;
        Py_INCREF(data);
    } else {
        data = PyBytes_FromObject(arg);
        if (data == NULL) return NULL;
    }
    Py_ssize_t buffered = PyByteArray_GET_SIZE(self->buffer);
    if (buffered) {
        if (PyByteArray_Resize(self->buffer, buffered + PyBytes_GET_SIZE(data)) < 0) goto error;
        memcpy(PyByteArray_AS_STRING(self->buffer) + buffered, PyBytes_AS_STRING(data),
               PyBytes_GET_SIZE(data));
        Py_DECREF(data);
        if ((uint64_t)PyByteArray_GET_SIZE(self->buffer) < self->need) return PyList_New(0);
        /* Parse straight from the buffer instead of copying it into bytes: it is
           swapped for a fresh one first, so nothing called while parsing can
           resize the memory being read. */
        PyObject *fresh = PyByteArray_FromStringAndSize(NULL, 0);
        if (fresh == NULL) return NULL;
        data = self->buffer;
        self->buffer = fresh;
    } else if ((uint64_t)PyBytes_GET_SIZE(data) < self->need) {
        if (PyByteArray_Resize(self->buffer, PyBytes_GET_SIZE(data)) < 0) goto error;
        memcpy(PyByteArray_AS_STRING(self->buffer), PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
        Py_DECREF(data);
        return PyList_New(0);
    }
    const unsigned char *p;
    Py_ssize_t length, pos = 0;
    if (PyByteArray_CheckExact(data)) {
        p = (const unsigned char *)PyByteArray_AS_STRING(data);
        length = PyByteArray_GET_SIZE(data);
    } else {
        p = (const unsigned char *)PyBytes_AS_STRING(data);
        length = PyBytes_GET_SIZE(data);
    }
    PyObject *frames = PyList_New(0);
    if (frames == NULL) goto error;
    for (;;) {
        if (length - pos < 7) { self->need = 7; break; }
        unsigned char type = p[pos];
        uint16_t channel = rd16(p + pos + 1);
        uint32_t size = rd32(p + pos + 3);
        if ((uint64_t)size > self->max_payload) goto bad;
        if ((uint64_t)pos + 7 + size >= (uint64_t)length) {
            if (type != 1 && type != 2 && type != 3 && type != 8) goto bad;
            self->need = (uint64_t)size + 8;
            break;
        }
        Py_ssize_t end = pos + 7 + (Py_ssize_t)size;   /* < length, so it fits */
        if (p[end] != FRAME_END) goto bad;
        const unsigned char *payload = p + pos + 7;
        PyObject *frame = NULL, *ch;
        switch (type) {
        case 3: {
            PyObject *fragment = PyBytes_FromStringAndSize((const char *)payload, size);
            if (fragment == NULL) goto fail;
            ch = PyLong_FromLong(channel);
            if (ch == NULL) { Py_DECREF(fragment); goto fail; }
            frame = new_frame(BodyFrameType, off_bf_channel, ch);
            if (frame == NULL) { Py_DECREF(fragment); goto fail; }
            set_slot(frame, off_bf_fragment, fragment);
            break;
        }
        case 1: {
            if (size < 4) goto bad;
            PyObject *index = PyLong_FromUnsignedLong(rd32(payload));
            if (index == NULL) goto fail;
            PyObject *cls = PyDict_GetItemWithError(Methods, index);
            Py_DECREF(index);
            if (cls == NULL) { if (PyErr_Occurred()) goto fail; goto bad; }
            PyObject *method = decode_method(cls, payload, size);
            if (method == NULL) goto fail;
            ch = PyLong_FromLong(channel);
            if (ch == NULL) { Py_DECREF(method); goto fail; }
            frame = new_frame(MethodFrameType, off_mf_channel, ch);
            if (frame == NULL) { Py_DECREF(method); goto fail; }
            set_slot(frame, off_mf_method, method);
            break;
        }
        case 2: {
            if (size < 14 || rd16(payload) != 60 || rd16(payload + 2) != 0) goto bad;
            PyObject *body_size = PyLong_FromUnsignedLongLong(rd64(payload + 4));
            if (body_size == NULL) goto fail;
            PyObject *props = decode_properties(payload, size, 12);
            if (props == NULL) { Py_DECREF(body_size); goto fail; }
            ch = PyLong_FromLong(channel);
            if (ch == NULL) { Py_DECREF(body_size); Py_DECREF(props); goto fail; }
            frame = new_frame(HeaderFrameType, off_hf_channel, ch);
            if (frame == NULL) { Py_DECREF(body_size); Py_DECREF(props); goto fail; }
            set_slot(frame, off_hf_size, body_size);
            set_slot(frame, off_hf_props, props);
            break;
        }
        case 8:
            if (size != 0 || channel != 0) goto bad;
            frame = Heartbeat;
            Py_INCREF(frame);
            break;
        default:
            goto bad;
        }
        int rc = PyList_Append(frames, frame);
        Py_DECREF(frame);
        if (rc < 0) goto fail;
        pos = end + 1;
        continue;
    bad:
        diagnose(p + pos, length - pos, self->max_payload);
        goto fail;
    }
    if (pos < length) {
        if (PyByteArray_Resize(self->buffer, length - pos) < 0) goto fail;
        memcpy(PyByteArray_AS_STRING(self->buffer), p + pos, length - pos);
    }
    Py_DECREF(data);
    return frames;
fail:
    Py_DECREF(frames);
error:
    Py_DECREF(data);
    return NULL;
}

static PyObject *
Decoder_get_buffered(Decoder *self, void *closure)
{
    return PyLong_FromSsize_t(self->buffer ? PyByteArray_GET_SIZE(self->buffer) : 0);
}

static PyObject *
Decoder_get_max_payload(Decoder *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->max_payload);
}

static int
Decoder_set_max_payload(Decoder *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "max_payload cannot be deleted");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    self->max_payload = v;
    return 0;
}

static PyMethodDef Decoder_methods[] = {
    {"feed", (PyCFunction)Decoder_feed, METH_O, "Take received bytes; return completed frames."},
    {NULL}
};

static PyGetSetDef Decoder_getset[] = {
    {"buffered", (getter)Decoder_get_buffered, NULL, "Bytes of an incomplete frame held.", NULL},
    {"max_payload", (getter)Decoder_get_max_payload, (setter)Decoder_set_max_payload,
     "The largest payload accepted (frame_max - 8).", NULL},
    {NULL}
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "txamqp091._speedups.FrameDecoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The C frame decoder behind txamqp091.codec.FrameDecoder.",
    .tp_methods = Decoder_methods,
    .tp_getset = Decoder_getset,
    .tp_init = (initproc)Decoder_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------------ */
/* Encoding into a growable buffer. Encoders return 0, 1 for "fall back", or
 * -1 for a real error (exception set). */

typedef struct {
    unsigned char *data;
    Py_ssize_t len, cap;
} Buf;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    unsigned char *data = PyMem_Realloc(b->data, cap);
    if (data == NULL) { PyErr_NoMemory(); return -1; }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int
buf_put(Buf *b, const void *src, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static inline int
buf_byte(Buf *b, unsigned char c)
{
    if (buf_reserve(b, 1) < 0) return -1;
    b->data[b->len++] = c;
    return 0;
}

static int encode_table(Buf *b, PyObject *table, int depth);

/* After a failed call into Python while encoding: fall back (1) for ordinary
 * exceptions, which the pure encoder will raise again precisely; propagate
 * (-1) the others (KeyboardInterrupt, SystemExit). */
static int
fall_back_or_raise(void)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
    PyErr_Clear();
    return 1;
}

static int
put_shortstr(Buf *b, PyObject *value)
{
    if (!PyUnicode_CheckExact(value)) return 1;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(value, &n);
    if (s == NULL) { PyErr_Clear(); return 1; }   /* e.g. lone surrogates */
    if (n > 255) return 1;
    if (buf_byte(b, (unsigned char)n) < 0 || buf_put(b, s, n) < 0) return -1;
    return 0;
}

static int
encode_value(Buf *b, PyObject *value, int depth)
{
    unsigned char tmp[9];
    if (value == Py_None) return buf_byte(b, 'V');
    if (PyBool_Check(value)) {
        tmp[0] = 't'; tmp[1] = value == Py_True;
        return buf_put(b, tmp, 2);
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) return 1;
        if (v == -1 && PyErr_Occurred()) return -1;
        if (v >= INT32_MIN && v <= INT32_MAX) {
            tmp[0] = 'I'; wr32(tmp + 1, (uint32_t)(int32_t)v);
            return buf_put(b, tmp, 5);
        }
        tmp[0] = 'l'; wr64(tmp + 1, (uint64_t)v);
        return buf_put(b, tmp, 9);
    }
    if (PyUnicode_CheckExact(value)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(value, &n);
        if (s == NULL) { PyErr_Clear(); return 1; }
        if ((uint64_t)n > UINT32_MAX) return 1;
        tmp[0] = 'S'; wr32(tmp + 1, (uint32_t)n);
        if (buf_put(b, tmp, 5) < 0 || buf_put(b, s, n) < 0) return -1;
        return 0;
    }
    if (PyFloat_CheckExact(value)) {
        double d = PyFloat_AS_DOUBLE(value);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        tmp[0] = 'd'; wr64(tmp + 1, bits);
        return buf_put(b, tmp, 9);
    }
    if (PyBytes_CheckExact(value)) {
        Py_ssize_t n = PyBytes_GET_SIZE(value);
        if ((uint64_t)n > UINT32_MAX) return 1;
        tmp[0] = 'x'; wr32(tmp + 1, (uint32_t)n);
        if (buf_put(b, tmp, 5) < 0 || buf_put(b, PyBytes_AS_STRING(value), n) < 0) return -1;
        return 0;
    }
    if (PyDict_CheckExact(value)) {
        if (buf_byte(b, 'F') < 0) return -1;
        return encode_table(b, value, depth + 1);
    }
    if (PyList_CheckExact(value) || PyTuple_CheckExact(value)) {
        if (depth >= MAX_DEPTH) return 1;
        PyObject *seq = value;
        Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
        if (buf_byte(b, 'A') < 0 || buf_reserve(b, 4) < 0) return -1;
        Py_ssize_t at = b->len;
        b->len += 4;
        for (Py_ssize_t i = 0; i < count && i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
            Py_INCREF(item);
            int rc = encode_value(b, item, depth + 1);
            Py_DECREF(item);
            if (rc) return rc;
        }
        if (count != PySequence_Fast_GET_SIZE(seq)) return 1;
        Py_ssize_t n = b->len - at - 4;
        if ((uint64_t)n > UINT32_MAX) return 1;
        wr32(b->data + at, (uint32_t)n);
        return 0;
    }
    /* Decimal, datetime, wrappers, subclasses: Python decides. */
    PyObject *encoded = PyObject_CallFunction(PyEncodeValue, "Oi", value, depth);
    if (encoded == NULL) return fall_back_or_raise();
    int rc = PyBytes_Check(encoded)
        ? buf_put(b, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded)) : 1;
    Py_DECREF(encoded);
    return rc;
}

static int
encode_table(Buf *b, PyObject *table, int depth)
{
    if (depth >= MAX_DEPTH) return 1;
    if (table == Py_None) return buf_put(b, "\0\0\0\0", 4);
    if (!PyDict_CheckExact(table)) return 1;
    if (buf_reserve(b, 4) < 0) return -1;
    Py_ssize_t at = b->len;
    b->len += 4;
    Py_ssize_t i = 0;
    PyObject *key, *value;
    Py_ssize_t size = PyDict_GET_SIZE(table);
    while (PyDict_Next(table, &i, &key, &value)) {
        Py_INCREF(key);
        Py_INCREF(value);
        int rc = put_shortstr(b, key);
        if (rc == 0) rc = encode_value(b, value, depth);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc) return rc;
        if (PyDict_GET_SIZE(table) != size) return 1;   /* changed under us: Python decides */
    }
    Py_ssize_t n = b->len - at - 4;
    if ((uint64_t)n > UINT32_MAX) return 1;
    wr32(b->data + at, (uint32_t)n);
    return 0;
}

static int
put_uint(Buf *b, PyObject *value, int size)
{
    if (!PyLong_Check(value)) return 1;
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return fall_back_or_raise();
    unsigned char tmp[8];
    switch (size) {
    case 1: if (v > 0xFF) return 1; tmp[0] = (unsigned char)v; break;
    case 2: if (v > 0xFFFF) return 1; wr16(tmp, (uint32_t)v); break;
    case 4: if (v > 0xFFFFFFFFULL) return 1; wr32(tmp, (uint32_t)v); break;
    default: wr64(tmp, v); break;
    }
    return buf_put(b, tmp, size);
}

static int
encode_field(Buf *b, int kind, PyObject *value)
{
    switch (kind) {
    case K_OCTET: return put_uint(b, value, 1);
    case K_SHORT: return put_uint(b, value, 2);
    case K_LONG: return put_uint(b, value, 4);
    case K_LONGLONG: return put_uint(b, value, 8);
    case K_SHORTSTR: return put_shortstr(b, value);
    case K_LONGSTR: {
        const char *s;
        Py_ssize_t n;
        if (PyBytes_CheckExact(value)) { s = PyBytes_AS_STRING(value); n = PyBytes_GET_SIZE(value); }
        else if (PyUnicode_CheckExact(value)) {
            s = PyUnicode_AsUTF8AndSize(value, &n);
            if (s == NULL) { PyErr_Clear(); return 1; }
        } else return 1;
        if ((uint64_t)n > UINT32_MAX) return 1;
        unsigned char tmp[4];
        wr32(tmp, (uint32_t)n);
        if (buf_put(b, tmp, 4) < 0 || buf_put(b, s, n) < 0) return -1;
        return 0;
    }
    case K_TABLE: return encode_table(b, value, 0);
    }
    return 1;
}

/* A method frame payload (ids and arguments). */
static int
encode_method(Buf *b, PyObject *method, Layout *layout)
{
    unsigned char ids[4];
    wr16(ids, (uint32_t)layout->class_id);
    wr16(ids + 2, (uint32_t)layout->method_id);
    if (buf_put(b, ids, 4) < 0) return -1;
    int bit = 0;
    unsigned char bits = 0;
    for (int i = 0; i < layout->nfields; i++) {
        PyObject *value = get_slot(method, layout->offsets[i]);
        if (value == NULL) return 1;   /* unset slot: Python raises */
        if (layout->kinds[i] == K_BIT) {
            if (bit == 8) { if (buf_byte(b, bits) < 0) return -1; bit = 0; bits = 0; }
            Py_INCREF(value);
            int truth = PyObject_IsTrue(value);
            Py_DECREF(value);
            if (truth < 0) return fall_back_or_raise();
            if (truth) bits |= (unsigned char)(1 << bit);
            bit++;
            continue;
        }
        if (bit) { if (buf_byte(b, bits) < 0) return -1; bit = 0; bits = 0; }
        /* Python code run while encoding (a value's __index__, say) may
         * replace the slot: hold our own reference meanwhile. */
        Py_INCREF(value);
        int rc = encode_field(b, layout->kinds[i], value);
        Py_DECREF(value);
        if (rc) return rc;
    }
    if (bit && buf_byte(b, bits) < 0) return -1;
    return 0;
}

static int
encode_properties(Buf *b, PyObject *props)
{
    if (props == Py_None) return buf_put(b, "\0\0", 2);
    if ((PyObject *)Py_TYPE(props) != PropertiesType) return 1;
    Layout *layout = get_layout(PropertiesType, 0);
    if (layout == NULL) return -1;
    if (buf_reserve(b, 2) < 0) return -1;
    Py_ssize_t at = b->len;
    b->len += 2;
    uint32_t flags = 0;
    for (int i = 0; i < layout->nfields; i++) {
        PyObject *value = PyObject_GetAttr(props, layout->names[i]);
        if (value == NULL) return fall_back_or_raise();
        if (value != Py_None) {
            flags |= 1u << (15 - i);
            int rc = encode_field(b, layout->kinds[i], value);
            Py_DECREF(value);
            if (rc) return rc;
        } else {
            Py_DECREF(value);
        }
    }
    wr16(b->data + at, flags);
    return 0;
}

static Layout *
method_layout(PyObject *method)
{
    PyObject *cls = (PyObject *)Py_TYPE(method);
    PyObject *capsule = PyDict_GetItemWithError(layouts, cls);
    if (capsule != NULL) return PyCapsule_GetPointer(capsule, "txamqp091.layout");
    if (PyErr_Occurred()) return NULL;
    /* Only classes of spec.methods get a layout; anything else falls back. */
    PyObject *index = PyObject_GetAttrString(cls, "INDEX");
    if (index == NULL) { PyErr_Clear(); return NULL; }
    PyObject *known = PyDict_GetItemWithError(Methods, index);
    Py_DECREF(index);
    if (known != cls) { PyErr_Clear(); return NULL; }
    Layout *layout = get_layout(cls, 1);
    if (layout == NULL) PyErr_Clear();
    return layout;
}

static PyObject *
fallback_call(PyObject *func, PyObject *const *args, Py_ssize_t nargs)
{
    return PyObject_Vectorcall(func, args, nargs, NULL);
}

/* encode_method_frame(channel_number, method) */
static PyObject *
c_encode_method_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured) { PyErr_SetString(PyExc_RuntimeError, "_speedups is not configured"); return NULL; }
    if (nargs != 2) return fallback_call(PyEncodeMethod, args, nargs);
    long channel = PyLong_CheckExact(args[0]) ? PyLong_AsLong(args[0]) : -1;
    if (channel < 0 || channel > 0xFFFF) { PyErr_Clear(); return fallback_call(PyEncodeMethod, args, nargs); }
    Layout *layout = method_layout(args[1]);
    if (layout == NULL) return fallback_call(PyEncodeMethod, args, nargs);
    Buf b = {0};
    int rc = buf_reserve(&b, 7);
    if (rc == 0) { b.len = 7; rc = encode_method(&b, args[1], layout); }
    if (rc == 0) rc = buf_byte(&b, FRAME_END);
    if (rc) {
        PyMem_Free(b.data);
        if (rc < 0) return NULL;
        return fallback_call(PyEncodeMethod, args, nargs);
    }
    b.data[0] = 1;
    wr16(b.data + 1, (uint32_t)channel);
    wr32(b.data + 3, (uint32_t)(b.len - 8));
    PyObject *result = PyBytes_FromStringAndSize((const char *)b.data, b.len);
    PyMem_Free(b.data);
    return result;
}

/* encode_message(channel_number, method, properties, body, frame_max=131072) */
static PyObject *
c_encode_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!configured) { PyErr_SetString(PyExc_RuntimeError, "_speedups is not configured"); return NULL; }
    if (kwnames != NULL || nargs < 4 || nargs > 5) goto slow;
    long channel = PyLong_CheckExact(args[0]) ? PyLong_AsLong(args[0]) : -1;
    if (channel < 0 || channel > 0xFFFF) { PyErr_Clear(); goto slow; }
    long long frame_max = 131072;
    if (nargs == 5) {
        if (!PyLong_CheckExact(args[4])) goto slow;
        frame_max = PyLong_AsLongLong(args[4]);
        if (frame_max == -1 && PyErr_Occurred()) { PyErr_Clear(); goto slow; }
    }
    if (frame_max < 4096 || frame_max > 0xFFFFFFFFLL) goto slow;
    if (!PyBytes_CheckExact(args[3])) goto slow;
    Layout *layout = method_layout(args[1]);
    if (layout == NULL || !layout->has_content) goto slow;
    Py_ssize_t body_size = PyBytes_GET_SIZE(args[3]);
    const char *body = PyBytes_AS_STRING(args[3]);
    Py_ssize_t chunk = (Py_ssize_t)frame_max - 8;
    Buf b = {0};
    int rc = buf_reserve(&b, 256);
    if (rc < 0) return NULL;
    /* method frame */
    b.len = 7;
    rc = encode_method(&b, args[1], layout);
    if (rc) goto encode_failed;
    wr32(b.data + 3, (uint32_t)(b.len - 7));
    b.data[0] = 1;
    wr16(b.data + 1, (uint32_t)channel);
    if ((rc = buf_byte(&b, FRAME_END))) goto encode_failed;
    /* content header frame */
    Py_ssize_t header_at = b.len;
    if ((rc = buf_reserve(&b, 19))) goto encode_failed;
    b.len += 19;
    rc = encode_properties(&b, args[2]);
    if (rc) goto encode_failed;
    unsigned char *h = b.data + header_at;
    h[0] = 2;
    wr16(h + 1, (uint32_t)channel);
    wr32(h + 3, (uint32_t)(b.len - header_at - 7));
    wr16(h + 7, 60);
    wr16(h + 9, 0);
    wr64(h + 11, (uint64_t)body_size);
    if ((rc = buf_byte(&b, FRAME_END))) goto encode_failed;
    /* body frames, written straight into the result: the body is copied once */
    Py_ssize_t nframes = (body_size + chunk - 1) / chunk;
    if (body_size > PY_SSIZE_T_MAX - b.len - 8 * nframes) {
        PyMem_Free(b.data);
        return PyErr_NoMemory();
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, b.len + body_size + 8 * nframes);
    if (result == NULL) { PyMem_Free(b.data); return NULL; }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    memcpy(out, b.data, b.len);
    out += b.len;
    PyMem_Free(b.data);
    for (Py_ssize_t start = 0; start < body_size; start += chunk) {
        Py_ssize_t n = body_size - start < chunk ? body_size - start : chunk;
        out[0] = 3;
        wr16(out + 1, (uint32_t)channel);
        wr32(out + 3, (uint32_t)n);
        memcpy(out + 7, body + start, n);
        out[7 + n] = FRAME_END;
        out += 8 + n;
    }
    return result;
encode_failed:
    PyMem_Free(b.data);
    if (rc < 0) return NULL;
slow:
    if (PyErr_Occurred()) return NULL;
    return PyObject_Vectorcall(PyEncodeMessage, args, nargs, kwnames);
}

/* configure(frame classes, heartbeat, methods, properties class, python helpers) */
static PyObject *
c_configure(PyObject *module, PyObject *args)
{
    PyObject *mf, *hf, *bf, *hb, *methods, *props, *dv, *ev, *diag, *em, *emf;
    if (configured) {
        /* Layouts and borrowed pointers must stay valid: configure only once. */
        PyErr_SetString(PyExc_RuntimeError, "_speedups is already configured");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOOO!OOOOOO", &mf, &hf, &bf, &hb, &PyDict_Type, &methods,
                          &props, &dv, &ev, &diag, &em, &emf))
        return NULL;
    if (slot_offset(mf, "channel_number", &off_mf_channel) < 0
        || slot_offset(mf, "method", &off_mf_method) < 0
        || slot_offset(hf, "channel_number", &off_hf_channel) < 0
        || slot_offset(hf, "body_size", &off_hf_size) < 0
        || slot_offset(hf, "properties", &off_hf_props) < 0
        || slot_offset(bf, "channel_number", &off_bf_channel) < 0
        || slot_offset(bf, "fragment", &off_bf_fragment) < 0)
        return NULL;
#define KEEP(var, value) do { Py_INCREF(value); Py_XSETREF(var, value); } while (0)
    KEEP(MethodFrameType, mf); KEEP(HeaderFrameType, hf); KEEP(BodyFrameType, bf);
    KEEP(Heartbeat, hb); KEEP(Methods, methods); KEEP(PropertiesType, props);
    KEEP(PyDecodeValue, dv); KEEP(PyEncodeValue, ev); KEEP(Diagnose, diag);
    KEEP(PyEncodeMessage, em); KEEP(PyEncodeMethod, emf);
#undef KEEP
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", c_configure, METH_VARARGS, "Hand over the Python objects the codec uses."},
    {"encode_message", (PyCFunction)(void (*)(void))c_encode_message, METH_FASTCALL | METH_KEYWORDS,
     "C encode_message; falls back to the Python one for anything unusual."},
    {"encode_method_frame", (PyCFunction)(void (*)(void))c_encode_method_frame, METH_FASTCALL,
     "C encode_method_frame; falls back to the Python one for anything unusual."},
    {NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "txamqp091._speedups",
    "Optional C accelerator for txamqp091.codec.", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&DecoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL) return NULL;
    layouts = PyDict_New();
    str_decode_slow = PyUnicode_InternFromString("_decode_slow");
    str_fields = PyUnicode_InternFromString("_fields");
    if (layouts == NULL || str_decode_slow == NULL || str_fields == NULL) { Py_DECREF(m); return NULL; }
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(m, "FrameDecoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(&DecoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
