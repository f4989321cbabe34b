/* peer_c: the hand-written C baseline of the peer comparison (benches/peers).
 *
 * Plain CPython C API, METH_FASTCALL functions, static types, as the CPython
 * tutorial writes them; no helper library. Every module of the comparison
 * exposes the same Python API (see benches/peers/README.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- helpers ------------------------------------------------------------ */

/* Py_NewRef arrived in 3.10; this module builds on 3.9 too. */
static inline PyObject *
new_ref(PyObject *o)
{
    Py_INCREF(o);
    return o;
}

static int
check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)",
                     fname, expected, nargs);
        return -1;
    }
    return 0;
}

/* Reads a Python int into [lo, hi]; -1 with OverflowError/TypeError set on failure. */
static int
long_in_range(PyObject *o, long lo, long hi, long *out)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < lo || v > hi) {
        PyErr_SetString(PyExc_OverflowError, "Python int out of range for the C type");
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- functions --------------------------------------------------------- */

/* add(a: int32, b: int32) -> int64 */
static PyObject *
add(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long a, b;
    if (check_nargs("add", nargs, 2) < 0
        || long_in_range(args[0], INT32_MIN, INT32_MAX, &a) < 0
        || long_in_range(args[1], INT32_MIN, INT32_MAX, &b) < 0)
        return NULL;
    return PyLong_FromLongLong((long long)a + (long long)b);
}

/* six(a: u16, b: i64, c: i32, d: u64, e: u32, f: f32) -> float (nanobind's benchmark shape) */
static PyObject *
six(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long a, c, e;
    long long b;
    unsigned long long d;
    double f;
    if (check_nargs("six", nargs, 6) < 0
        || long_in_range(args[0], 0, UINT16_MAX, &a) < 0)
        return NULL;
    b = PyLong_AsLongLong(args[1]);
    if (b == -1 && PyErr_Occurred())
        return NULL;
    if (long_in_range(args[2], INT32_MIN, INT32_MAX, &c) < 0)
        return NULL;
    d = PyLong_AsUnsignedLongLong(args[3]);
    if (d == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (long_in_range(args[4], 0, (long)UINT32_MAX, &e) < 0)
        return NULL;
    f = PyFloat_AsDouble(args[5]);
    if (f == -1.0 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble((double)a + (double)b + (double)c + (double)d + (double)e
                              + (double)(float)f);
}

/* sum_list(xs: list[float]) -> float, PyFloat_AsDouble per item. */
static PyObject *
sum_list(PyObject *module, PyObject *xs)
{
    double sum = 0.0;
    if (!PyList_Check(xs)) {
        PyErr_Format(PyExc_TypeError, "sum_list() expects a list, not %.100s",
                     Py_TYPE(xs)->tp_name);
        return NULL;
    }
    /* The size is read on every turn: a __float__ may shrink the list. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(xs); i++) {
        PyObject *item = PyList_GET_ITEM(xs, i);
        double v;
        if (PyFloat_CheckExact(item)) {
            v = PyFloat_AsDouble(item); /* runs no Python code: the borrow is safe */
        }
        else {
            Py_INCREF(item); /* __float__ / __index__ may drop the list's reference */
            v = PyFloat_AsDouble(item);
            Py_DECREF(item);
        }
        if (v == -1.0 && PyErr_Occurred())
            return NULL;
        sum += v;
    }
    return PyFloat_FromDouble(sum);
}

/* make_ints(n) -> [0, 1, ..., n-1] */
static PyObject *
make_ints(PyObject *module, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_OverflowError, "make_ints() needs n >= 0");
        return NULL;
    }
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromSsize_t(i);
        if (v == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

/* make_dict(n) -> {"k0": 0, ..., "k{n-1}": n-1} */
static PyObject *
make_dict(PyObject *module, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_OverflowError, "make_dict() needs n >= 0");
        return NULL;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "k%zd", i);
        PyObject *key = PyUnicode_FromStringAndSize(buf, len);
        PyObject *value = key ? PyLong_FromSsize_t(i) : NULL;
        int rc = value ? PyDict_SetItem(dict, key, value) : -1;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (rc < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    return dict;
}

/* ---- class Counter ------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    int64_t value;
} CounterObject;

static PyTypeObject Counter_Type;

static PyObject *
counter_create(PyTypeObject *type, PyObject *start)
{
    long long v = PyLong_AsLongLong(start);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    CounterObject *self = (CounterObject *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->value = v;
    return (PyObject *)self;
}

/* Counter(start) through a tuple: Counter.__new__, and calls tp_vectorcall cannot take. */
static PyObject *
Counter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if ((kwds != NULL && PyDict_GET_SIZE(kwds) != 0) || PyTuple_GET_SIZE(args) != 1) {
        PyErr_SetString(PyExc_TypeError, "Counter() takes exactly one argument, start");
        return NULL;
    }
    return counter_create(type, PyTuple_GET_ITEM(args, 0));
}

/* Counter(start) through vectorcall (CPython 3.9+ calls a type's tp_vectorcall). */
static PyObject *
Counter_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)
        || PyVectorcall_NARGS(nargsf) != 1) {
        PyErr_SetString(PyExc_TypeError, "Counter() takes exactly one argument, start");
        return NULL;
    }
    return counter_create((PyTypeObject *)type, args[0]);
}

static PyObject *
Counter_incr(PyObject *self, PyObject *unused)
{
    CounterObject *c = (CounterObject *)self;
    c->value = (int64_t)((uint64_t)c->value + 1); /* wraps like Rust's wrapping_add */
    return PyLong_FromLongLong(c->value);
}

static PyObject *
Counter_get_value(PyObject *self, void *closure)
{
    return PyLong_FromLongLong(((CounterObject *)self)->value);
}

static PyMethodDef Counter_methods[] = {
    {"incr", Counter_incr, METH_NOARGS, "Adds one and returns the new value."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Counter_getset[] = {
    {"value", Counter_get_value, NULL, "The current value.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Counter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "peer_c.Counter",
    .tp_basicsize = sizeof(CounterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Counter(start): a 64-bit counter.",
    .tp_methods = Counter_methods,
    .tp_getset = Counter_getset,
    .tp_new = Counter_new,
    .tp_vectorcall = Counter_vectorcall,
};

/* take_ref(c: Counter) -> int: reads a field through a borrowed reference. */
static PyObject *
take_ref(PyObject *module, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &Counter_Type)) {
        PyErr_Format(PyExc_TypeError, "take_ref() expects a Counter, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    return PyLong_FromLongLong(((CounterObject *)arg)->value);
}

/* ---- class Node: GC-tracked, holds one Python reference ----------------- */

typedef struct {
    PyObject_HEAD
    PyObject *other; /* strong, never NULL after construction (None when empty) */
    PyObject *weakrefs;
} NodeObject;

static PyObject *
Node_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if ((kwds != NULL && PyDict_GET_SIZE(kwds) != 0) || PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "Node() takes no arguments");
        return NULL;
    }
    NodeObject *self = (NodeObject *)type->tp_alloc(type, 0); /* GC-tracked by tp_alloc */
    if (self != NULL)
        self->other = new_ref(Py_None);
    return (PyObject *)self;
}

static int
Node_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((NodeObject *)self)->other);
    return 0;
}

static int
Node_clear(PyObject *self)
{
    Py_CLEAR(((NodeObject *)self)->other);
    return 0;
}

static void
Node_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    if (((NodeObject *)self)->weakrefs != NULL)
        PyObject_ClearWeakRefs(self);
    Node_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *
Node_get_other(PyObject *self, void *closure)
{
    PyObject *other = ((NodeObject *)self)->other;
    return new_ref(other != NULL ? other : Py_None);
}

static int
Node_set_other(PyObject *self, PyObject *value, void *closure)
{
    Py_XSETREF(((NodeObject *)self)->other, new_ref(value != NULL ? value : Py_None));
    return 0;
}

static PyGetSetDef Node_getset[] = {
    {"other", Node_get_other, Node_set_other, "Any Python object (None by default).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Node_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "peer_c.Node",
    .tp_basicsize = sizeof(NodeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Node(): holds one Python reference in .other; GC-tracked.",
    .tp_traverse = Node_traverse,
    .tp_clear = Node_clear,
    .tp_dealloc = Node_dealloc,
    .tp_weaklistoffset = offsetof(NodeObject, weakrefs),
    .tp_getset = Node_getset,
    .tp_new = Node_new,
};

/* ---- module ------------------------------------------------------------- */

static PyMethodDef peer_c_methods[] = {
    {"add", (PyCFunction)(void (*)(void))add, METH_FASTCALL, "add(a, b) -> a + b"},
    {"six", (PyCFunction)(void (*)(void))six, METH_FASTCALL, "six(a, b, c, d, e, f) -> sum"},
    {"sum_list", sum_list, METH_O, "sum_list(xs) -> float sum of a list"},
    {"make_ints", make_ints, METH_O, "make_ints(n) -> [0, ..., n-1]"},
    {"make_dict", make_dict, METH_O, "make_dict(n) -> {'k0': 0, ...}"},
    {"take_ref", take_ref, METH_O, "take_ref(counter) -> counter.value"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef peer_c_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "peer_c",
    .m_doc = "Hand-written C baseline of bindery's peer comparison.",
    .m_size = -1,
    .m_methods = peer_c_methods,
};

PyMODINIT_FUNC
PyInit_peer_c(void)
{
    if (PyType_Ready(&Counter_Type) < 0 || PyType_Ready(&Node_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&peer_c_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&Counter_Type);
    if (PyModule_AddObject(m, "Counter", (PyObject *)&Counter_Type) < 0) {
        Py_DECREF(&Counter_Type);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&Node_Type);
    if (PyModule_AddObject(m, "Node", (PyObject *)&Node_Type) < 0) {
        Py_DECREF(&Node_Type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
