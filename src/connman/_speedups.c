/* connman._speedups: the C form of connman._datapath (decision 54).
 *
 * Each class mirrors its Python reference in _datapath.py field for field and step for step: the
 * common case runs here, everything else goes back to the same Python methods (Connection._write_slow,
 * Dispatcher._run, Dispatcher._delivered). Keep the two in step: the test suite runs under both
 * (CONNMAN_PURE_PYTHON=1 selects the Python classes).
 *
 * Fields that Python code reads or writes on a data path (DispatcherBase's, which Dispatcher._run
 * uses) are objects (T_OBJECT_EX), which CPython's attribute specialization handles like __slots__;
 * the counters and flags that C reads on every write or chunk are C values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "pythread.h"
#if !defined(MS_WINDOWS) && defined(_POSIX_THREADS)
#define THREAD_ID_IS_PTHREAD_SELF 1 /* as CPython's thread_pthread.h: get_ident() is pthread_self() */
#include <pthread.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define COLD __attribute__((cold, noinline)) /* out of the hot code, which then fits fewer cache lines */
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#define COLD
#endif

static PyObject *s_is_closing, *s_write, *s_write_slow, *s_run, *s_delivered, *s_filled;
static PyObject *caught; /* what Dispatcher catches: (Exception, SystemExit, KeyboardInterrupt) */

/* The exception being raised, normalized, with its traceback; the error indicator is cleared. */
static PyObject *take_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* 1 if `value` is true, 0 if false; -1 with an exception. None and NULL (not set yet) are false. */
static inline int truth(PyObject *value) {
    if (value == Py_False || value == Py_None || value == NULL)
        return 0;
    if (value == Py_True)
        return 1;
    return PyObject_IsTrue(value);
}

/* Set an object field to True or False. */
static inline void set_flag(PyObject **field, int value) {
    PyObject *old = *field;
    *field = Py_NewRef(value ? Py_True : Py_False);
    Py_XDECREF(old);
}

/* fn(*args[1:1 + nargs]) by vectorcall; args[0] is free for the callee to use (a bound method puts
 * its self there). The callee's vectorcall is found inline (PyVectorcall_Function is a call in
 * 3.11), and without the interpreter's result check: a faulty C callee that returns NULL without an
 * exception surfaces as a SystemError from our caller. */
static inline PyObject *call(PyObject *fn, PyObject *const *args, Py_ssize_t nargs) {
    size_t nargsf = (size_t)nargs | PY_VECTORCALL_ARGUMENTS_OFFSET;
    PyTypeObject *type = Py_TYPE(fn);
    if (PyType_HasFeature(type, Py_TPFLAGS_HAVE_VECTORCALL)) {
        vectorcallfunc vectorcall = *(vectorcallfunc *)((char *)fn + type->tp_vectorcall_offset);
        if (vectorcall != NULL)
            return vectorcall(fn, args + 1, nargsf, NULL);
    }
    return PyObject_Vectorcall(fn, args + 1, nargsf, NULL);
}

/* threading.get_ident(): PyThread_get_thread_ident, without its call where it is pthread_self. */
static inline unsigned long current_thread(void) {
#ifdef THREAD_ID_IS_PTHREAD_SELF
    return (unsigned long)pthread_self();
#else
    return PyThread_get_thread_ident();
#endif
}

/* Whether `obj.name` is always `type.name` bound to obj, for every name: no instance dict, and no
 * type in the MRO that can change (uvloop's transports; asyncio's are Python classes). */
static int lookups_fixed(PyTypeObject *type) {
    if (type->tp_dictoffset != 0 || type->tp_getattro != PyObject_GenericGetAttr || type->tp_mro == NULL)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(type->tp_mro); i++) {
        PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(type->tp_mro, i);
        if (!PyType_HasFeature(base, Py_TPFLAGS_IMMUTABLETYPE))
            return 0;
    }
    return 1;
}

/* The function behind `obj.name` for every instance of `type`, whose lookups are fixed, if it is a
 * plain method, else NULL: then it is looked up at each call. Borrowed: the type's MRO holds it. As
 * the interpreter's own method lookup (_PyObject_GetMethod): the MRO's entry, taken only if it binds
 * like a function (not a staticmethod, a property, ...). Runs no Python code and raises nothing. */
static PyObject *method_lookup(PyTypeObject *type, PyObject *name) {
    PyObject *fn = _PyType_Lookup(type, name); /* borrowed */
    if (fn == NULL || !PyType_HasFeature(Py_TYPE(fn), Py_TPFLAGS_METHOD_DESCRIPTOR))
        return NULL;
    return fn;
}

/* obj.name(*args[2:2 + nargs]) where args[1] is obj and args[0] is free: through `method` when
 * there is one, else looked up. */
static inline PyObject *method_call(PyObject *method, PyObject *name, PyObject *const *args, Py_ssize_t nargs) {
    if (method != NULL)
        return call(method, args, nargs + 1);
    return PyObject_VectorcallMethod(name, args + 1, (size_t)(nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* ---- Writer: Connection.write's fast path ------------------------------------------------------ */

/* The functions behind transport.write and transport.is_closing, for the last few transport types
 * written to, most recent first (NULL functions: looked up by name at each call, see method_lookup).
 * What a type whose lookups are fixed maps to cannot change, so one entry serves every transport of
 * the type, and a new transport needs no lookup (decision 57). Each entry holds its type, so that
 * its address cannot be reused while it is here; the functions are borrowed from the type's MRO. */
#define TRANSPORT_TYPES 4
typedef struct {
    PyTypeObject *type;
    PyObject *write, *is_closing;
} TransportType;
static TransportType transport_types[TRANSPORT_TYPES];

/* Make `type` the first entry, found or looked up, and return it. Raises nothing. */
static COLD TransportType transport_type_first(PyTypeObject *type) {
    int found = TRANSPORT_TYPES - 1; /* not found: the last, least recent entry makes way */
    for (int i = 1; i < TRANSPORT_TYPES; i++)
        if (transport_types[i].type == type)
            found = i;
    TransportType entry = transport_types[found];
    memmove(&transport_types[1], &transport_types[0], (size_t)found * sizeof(TransportType));
    if (entry.type != type) {
        PyTypeObject *old = entry.type;
        entry.type = (PyTypeObject *)Py_NewRef(type);
        entry.write = entry.is_closing = NULL;
        if (lookups_fixed(type)) {
            entry.write = method_lookup(type, s_write);
            entry.is_closing = entry.write == NULL ? NULL : method_lookup(type, s_is_closing);
            if (entry.is_closing == NULL)
                entry.write = NULL;
        }
        transport_types[0] = entry;
        Py_XDECREF(old); /* may run code (a finalizer) that writes and changes the entries: */
    } else {
        transport_types[0] = entry;
    }
    return entry; /* still `type`'s, which the caller's transport holds */
}

typedef struct {
    PyObject_HEAD
    PyObject *transport;
    unsigned long thread_id;
    Py_ssize_t headroom;
    long long bytes_out;
    char fast;
    char writing_paused;
} Writer;

static int Writer_traverse(Writer *self, visitproc visit, void *arg) {
    Py_VISIT(self->transport);
    return 0;
}

static int Writer_clear(Writer *self) {
    Py_CLEAR(self->transport);
    return 0;
}

static void Writer_dealloc(Writer *self) {
    PyObject_GC_UnTrack(self);
    Writer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Connection._write_slow(data): every case but the common one. */
static COLD PyObject *write_slow(Writer *self, PyObject *data) {
    return PyObject_CallMethodOneArg((PyObject *)self, s_write_slow, data);
}

static PyObject *write_data(Writer *self, PyObject *data) {
    PyObject *transport = self->transport;
    if (UNLIKELY(transport == NULL || transport == Py_None || !PyBytes_CheckExact(data) || !self->fast
                 || current_thread() != self->thread_id || PyBytes_GET_SIZE(data) > self->headroom))
        return write_slow(self, data);
    /* is_closing(), or freeing a type that leaves the cache, may run Python code that replaces
     * self->transport: hold it. The functions are its type's, which it holds. */
    Py_INCREF(transport);
    PyTypeObject *type = Py_TYPE(transport);
    TransportType entry = transport_types[0];
    if (UNLIKELY(entry.type != type))
        entry = transport_type_first(type);
    PyObject *argv[3] = {NULL, transport, data};
    PyObject *closing = method_call(entry.is_closing, s_is_closing, argv, 0);
    int closed = closing == NULL ? -1 : truth(closing);
    Py_XDECREF(closing);
    if (UNLIKELY(closed != 0)) {
        Py_DECREF(transport);
        return closed < 0 ? NULL : write_slow(self, data);
    }
    self->bytes_out += PyBytes_GET_SIZE(data);
    PyObject *done = method_call(entry.write, s_write, argv, 1);
    Py_DECREF(transport);
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    return Py_NewRef(self->writing_paused ? Py_False : Py_True);
}

/* write(data=...), as the Python form allows, or a TypeError. */
static COLD PyObject *write_by_keyword(Writer *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs == 0 && kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1 && PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0))
        && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "data") == 0)
        return write_data(self, args[0]);
    PyErr_SetString(PyExc_TypeError, "write() takes exactly one argument, data (bytes-like)");
    return NULL;
}

static PyObject *Writer_write(Writer *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (UNLIKELY(nargs != 1 || kwnames != NULL))
        return write_by_keyword(self, args, nargs, kwnames);
    return write_data(self, args[0]);
}

static PyMethodDef Writer_methods[] = {
    {"write", (PyCFunction)(void (*)(void))Writer_write, METH_FASTCALL | METH_KEYWORDS,
     "write($self, data)\n--\n\n"
     "Send data now, or queue it while down; False once above the high-water mark.\n\n"
     "The C form of connman._datapath.Writer.write: see Connection.write's documentation."},
    {NULL},
};

static PyMemberDef Writer_members[] = {
    {"_transport", T_OBJECT_EX, offsetof(Writer, transport), 0, NULL},
    {"_thread_id", T_ULONG, offsetof(Writer, thread_id), 0, NULL},
    {"_headroom", T_PYSSIZET, offsetof(Writer, headroom), 0, NULL},
    {"_bytes_out", T_LONGLONG, offsetof(Writer, bytes_out), 0, NULL},
    {"_fast", T_BOOL, offsetof(Writer, fast), 0, NULL},
    {"_writing_paused", T_BOOL, offsetof(Writer, writing_paused), 0, NULL},
    {NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connman._speedups.Writer",
    .tp_doc = "The fields of Connection.write's fast path, and the path (connman._datapath.Writer).",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_traverse = (traverseproc)Writer_traverse,
    .tp_clear = (inquiry)Writer_clear,
    .tp_methods = Writer_methods,
    .tp_members = Writer_members,
};

/* ---- DispatcherBase: the fields of a Dispatcher that the receive path reads --------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *queue;   /* None or a deque */
    PyObject *running; /* bool */
    PyObject *slow;    /* float: 0.0 when callbacks are untimed */
} DispatcherBase;

static int Disp_traverse(DispatcherBase *self, visitproc visit, void *arg) {
    Py_VISIT(self->queue);
    Py_VISIT(self->running);
    Py_VISIT(self->slow);
    return 0;
}

static int Disp_clear(DispatcherBase *self) {
    Py_CLEAR(self->queue);
    Py_CLEAR(self->running);
    Py_CLEAR(self->slow);
    return 0;
}

static void Disp_dealloc(DispatcherBase *self) {
    PyObject_GC_UnTrack(self);
    Disp_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Disp_members[] = {
    {"_queue", T_OBJECT_EX, offsetof(DispatcherBase, queue), 0, NULL},
    {"_running", T_OBJECT_EX, offsetof(DispatcherBase, running), 0, NULL},
    {"_slow", T_OBJECT_EX, offsetof(DispatcherBase, slow), 0, NULL},
    {NULL},
};

static PyTypeObject DispatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connman._speedups.DispatcherBase",
    .tp_doc = "The fields of a Dispatcher that the receive path reads (connman._datapath.DispatcherBase).",
    .tp_basicsize = sizeof(DispatcherBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Disp_dealloc,
    .tp_traverse = (traverseproc)Disp_traverse,
    .tp_clear = (inquiry)Disp_clear,
    .tp_members = Disp_members,
};

/* Dispatcher.deliver(fn, data): its common case here, nothing running or queued and callbacks
 * untimed; Dispatcher._run or Dispatcher._delivered for everything else. A new reference or NULL. */
static COLD PyObject *deliver_in_turn(PyObject *d, PyObject *fn, PyObject *data) {
    return PyObject_CallMethodObjArgs(d, s_run, fn, data, NULL);
}

/* fn raised: Dispatcher._delivered reports it, if it is ours to catch. */
static COLD PyObject *deliver_failed(DispatcherBase *disp) {
    if (!PyErr_ExceptionMatches(caught)) { /* a CancelledError, GeneratorExit: not ours to report */
        set_flag(&disp->running, 0);
        return NULL;
    }
    PyObject *exc = take_exception();
    PyObject *done = PyObject_CallMethodObjArgs((PyObject *)disp, s_delivered, Py_None, exc, NULL);
    Py_DECREF(exc);
    return done;
}

/* An awaitable to await in a task, or what fn asked for meanwhile to run: Python's part. Steals
 * `result`. */
static COLD PyObject *deliver_rest(DispatcherBase *disp, PyObject *result) {
    PyObject *done = PyObject_CallMethodObjArgs((PyObject *)disp, s_delivered, result, Py_None, NULL);
    Py_DECREF(result);
    return done;
}

static PyObject *deliver(DispatcherBase *disp, PyObject *fn, PyObject *data) {
    int busy = truth(disp->running);
    if (LIKELY(busy == 0))
        busy = disp->slow != NULL && PyFloat_CheckExact(disp->slow) ? PyFloat_AS_DOUBLE(disp->slow) != 0.0 : truth(disp->slow);
    if (UNLIKELY(busy != 0))
        return busy < 0 ? NULL : deliver_in_turn((PyObject *)disp, fn, data);
    set_flag(&disp->running, 1);
    PyObject *argv[2] = {NULL, data};
    PyObject *result = call(fn, argv, 1);
    if (UNLIKELY(result == NULL))
        return deliver_failed(disp);
    if (LIKELY(result == Py_None)) {
        int queued = truth(disp->queue);
        if (LIKELY(queued == 0)) {
            set_flag(&disp->running, 0);
            return result;
        }
        if (queued < 0) {
            set_flag(&disp->running, 0);
            Py_DECREF(result);
            return NULL;
        }
    }
    return deliver_rest(disp, result);
}

/* ---- Receiver: a protocol's receive path ------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *active;     /* bool */
    PyObject *buffer;     /* None, or the memoryview a buffered protocol reads into */
    PyObject *dispatcher; /* a DispatcherBase */
    PyObject *on_data;
    long long received;
} Receiver;

static int Recv_traverse(Receiver *self, visitproc visit, void *arg) {
    Py_VISIT(self->active);
    Py_VISIT(self->buffer);
    Py_VISIT(self->dispatcher);
    Py_VISIT(self->on_data);
    return 0;
}

static int Recv_clear(Receiver *self) {
    Py_CLEAR(self->active);
    Py_CLEAR(self->buffer);
    Py_CLEAR(self->dispatcher);
    Py_CLEAR(self->on_data);
    return 0;
}

static void Recv_dealloc(Receiver *self) {
    PyObject_GC_UnTrack(self);
    Recv_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The last type that passed for a dispatcher, held so that its address cannot be reused. */
static PyTypeObject *dispatcher_seen;

static COLD PyObject *not_set_up(void) {
    PyErr_SetString(PyExc_TypeError, "the protocol is not set up (no dispatcher or on_data)");
    return NULL;
}

/* Whether `d` is a DispatcherBase: 0, and its type is remembered; or -1 with a TypeError. */
static COLD int check_dispatcher(PyObject *d) {
    if (!PyObject_TypeCheck(d, &DispatcherType)) {
        PyErr_SetString(PyExc_TypeError, "the protocol's dispatcher is not a DispatcherBase");
        return -1;
    }
    Py_INCREF(Py_TYPE(d));
    Py_XSETREF(dispatcher_seen, Py_TYPE(d));
    return 0;
}

/* Count `size` received bytes and hand `data` to on_data through the dispatcher. A new reference to
 * None, or NULL. */
static PyObject *receive(Receiver *self, PyObject *data, Py_ssize_t size) {
    PyObject *d = self->dispatcher, *fn = self->on_data;
    if (UNLIKELY(d == NULL || fn == NULL))
        return not_set_up();
    /* on_data may replace either (a reconnect inside on_data), and so may code run by freeing an old
     * type in check_dispatcher: hold them. */
    Py_INCREF(d);
    Py_INCREF(fn);
    if (UNLIKELY(Py_TYPE(d) != dispatcher_seen) && check_dispatcher(d) < 0) {
        Py_DECREF(d);
        Py_DECREF(fn);
        return NULL;
    }
    self->received += size;
    PyObject *done = deliver((DispatcherBase *)d, fn, data);
    Py_DECREF(d);
    Py_DECREF(fn);
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    Py_RETURN_NONE;
}

static PyObject *Recv_data_received(Receiver *self, PyObject *data) {
    int active = truth(self->active);
    if (active <= 0)
        return active < 0 ? NULL : Py_NewRef(Py_None);
    Py_ssize_t size = PyBytes_CheckExact(data) ? PyBytes_GET_SIZE(data) : PyObject_Size(data);
    if (size < 0)
        return NULL;
    return receive(self, data, size);
}

static PyObject *Recv_buffer_updated(Receiver *self, PyObject *arg) {
    int active = truth(self->active);
    if (active <= 0)
        return active < 0 ? NULL : Py_NewRef(Py_None);
    Py_ssize_t nbytes = PyNumber_AsSsize_t(arg, NULL); /* saturated: out of range below */
    if (nbytes == -1 && PyErr_Occurred())
        return NULL;
    PyObject *buffer = self->buffer;
    if (buffer == NULL || buffer == Py_None) {
        PyErr_SetString(PyExc_TypeError, "buffer_updated: the protocol has no buffer");
        return NULL;
    }
    /* An export of our own for the copy: a released memoryview refuses it (ValueError, as in
     * Python), so the memory cannot be gone while we read it. */
    Py_buffer view;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t size = view.len;
    if (nbytes < 0 || nbytes > size) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "buffer_updated: nbytes must be 0 to %zd, not %zd", size, nbytes);
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(view.buf, nbytes); /* on_data's own copy */
    PyBuffer_Release(&view);
    if (data == NULL)
        return NULL;
    if (nbytes == size) { /* a full read: the protocol may read plain from now on */
        PyObject *filled = PyObject_CallMethodNoArgs((PyObject *)self, s_filled);
        if (filled == NULL) {
            Py_DECREF(data);
            return NULL;
        }
        Py_DECREF(filled);
    }
    PyObject *done = receive(self, data, nbytes);
    Py_DECREF(data);
    return done;
}

static PyMethodDef Recv_methods[] = {
    {"data_received", (PyCFunction)Recv_data_received, METH_O,
     "data_received($self, data, /)\n--\n\nCount the chunk and hand it to on_data through the dispatcher."},
    {"buffer_updated", (PyCFunction)Recv_buffer_updated, METH_O,
     "buffer_updated($self, nbytes, /)\n--\n\n"
     "Count nbytes read into buffer and hand a copy to on_data through the dispatcher."},
    {NULL},
};

static PyMemberDef Recv_members[] = {
    {"active", T_OBJECT_EX, offsetof(Receiver, active), 0, NULL},
    {"buffer", T_OBJECT_EX, offsetof(Receiver, buffer), 0, NULL},
    {"dispatcher", T_OBJECT_EX, offsetof(Receiver, dispatcher), 0, NULL},
    {"on_data", T_OBJECT_EX, offsetof(Receiver, on_data), 0, NULL},
    {"received", T_LONGLONG, offsetof(Receiver, received), 0, NULL},
    {NULL},
};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connman._speedups.Receiver",
    .tp_doc = "A protocol's receive path (connman._datapath.Receiver).",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Recv_dealloc,
    .tp_traverse = (traverseproc)Recv_traverse,
    .tp_clear = (inquiry)Recv_clear,
    .tp_methods = Recv_methods,
    .tp_members = Recv_members,
};

/* ---- the module -------------------------------------------------------------------------------- */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "connman._speedups",
    .m_doc = "The data path in C: see connman._datapath, whose Python classes these mirror.",
    .m_size = -1,
};

static int add_type(PyObject *module, const char *name, PyTypeObject *type) {
    if (PyType_Ready(type) < 0)
        return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(module, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__speedups(void) {
    s_is_closing = PyUnicode_InternFromString("is_closing");
    s_write = PyUnicode_InternFromString("write");
    s_write_slow = PyUnicode_InternFromString("_write_slow");
    s_run = PyUnicode_InternFromString("_run");
    s_delivered = PyUnicode_InternFromString("_delivered");
    s_filled = PyUnicode_InternFromString("_filled");
    caught = PyTuple_Pack(3, PyExc_Exception, PyExc_SystemExit, PyExc_KeyboardInterrupt);
    if (!s_is_closing || !s_write || !s_write_slow || !s_run || !s_delivered || !s_filled || !caught)
        return NULL;
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "CAUGHT", caught) < 0) { /* for the test that it is _callbacks' */
        Py_DECREF(module);
        return NULL;
    }
    if (add_type(module, "Writer", &WriterType) < 0 || add_type(module, "DispatcherBase", &DispatcherType) < 0
        || add_type(module, "Receiver", &ReceiverType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
