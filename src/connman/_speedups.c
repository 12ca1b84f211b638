/* connman._speedups: the C form of connman._datapath (decision 54).
 *
 * Each class mirrors its Python reference in _datapath.py field for field and step for step: the
 * common case runs here, everything else goes back to the same Python methods (Connection._write_slow,
 * Dispatcher._run, Dispatcher._delivered). Keep the two in step: the test suite runs under both
 * (CONNMAN_PURE_PYTHON=1 selects the Python classes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "pythread.h"

static PyObject *s_is_closing, *s_write, *s_write_slow, *s_run, *s_delivered;
static PyObject *caught;  /* (Exception, SystemExit, KeyboardInterrupt) */

/* The exception being raised, normalized, with its traceback; the error indicator is cleared. */
static PyObject *take_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* ---- Writer: Connection.write's fast path ---- */
typedef struct {
    PyObject_HEAD
    PyObject *transport;
    unsigned long thread_id;
    Py_ssize_t headroom;
    long long bytes_out;
    char fast;
    char writing_paused;
} Writer;

static int Writer_traverse(Writer *self, visitproc visit, void *arg) { Py_VISIT(self->transport); return 0; }
static int Writer_clear(Writer *self) { Py_CLEAR(self->transport); return 0; }
static void Writer_dealloc(Writer *self) {
    PyObject_GC_UnTrack(self); Writer_clear(self); Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Writer_write(Writer *self, PyObject *data) {
    PyObject *transport = self->transport;
    if (transport != NULL && transport != Py_None && PyBytes_CheckExact(data) && self->fast
        && PyThread_get_thread_ident() == self->thread_id && PyBytes_GET_SIZE(data) <= self->headroom) {
        Py_INCREF(transport);
        PyObject *closing = PyObject_CallMethodNoArgs(transport, s_is_closing);
        if (closing == NULL) { Py_DECREF(transport); return NULL; }
        int is_closing = PyObject_IsTrue(closing);
        Py_DECREF(closing);
        if (is_closing < 0) { Py_DECREF(transport); return NULL; }
        if (!is_closing) {
            self->bytes_out += PyBytes_GET_SIZE(data);
            PyObject *r = PyObject_CallMethodOneArg(transport, s_write, data);
            Py_DECREF(transport);
            if (r == NULL) return NULL;
            Py_DECREF(r);
            return PyBool_FromLong(!self->writing_paused);
        }
        Py_DECREF(transport);
    }
    return PyObject_CallMethodOneArg((PyObject *)self, s_write_slow, data);
}

static PyMethodDef Writer_methods[] = {
    {"write", (PyCFunction)Writer_write, METH_O,
     "write($self, data, /)\n--\n\n"
     "Send data now, or queue it while down; False once above the high-water mark.\n\n"
     "The C form of connman._datapath.Writer.write: see Connection.write's documentation."},
    {NULL}
};
static PyMemberDef Writer_members[] = {
    {"_transport", T_OBJECT, offsetof(Writer, transport), 0, NULL},
    {"_thread_id", T_ULONG, offsetof(Writer, thread_id), 0, NULL},
    {"_headroom", T_PYSSIZET, offsetof(Writer, headroom), 0, NULL},
    {"_bytes_out", T_LONGLONG, offsetof(Writer, bytes_out), 0, NULL},
    {"_fast", T_BOOL, offsetof(Writer, fast), 0, NULL},
    {"_writing_paused", T_BOOL, offsetof(Writer, writing_paused), 0, NULL},
    {NULL}
};
static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connman._speedups.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_traverse = (traverseproc)Writer_traverse,
    .tp_clear = (inquiry)Writer_clear,
    .tp_methods = Writer_methods,
    .tp_members = Writer_members,
};

/* ---- DispatcherBase ---- */
typedef struct {
    PyObject_HEAD
    PyObject *queue;
    double slow;
    char running;
} DispatcherBase;

static int Disp_traverse(DispatcherBase *self, visitproc visit, void *arg) { Py_VISIT(self->queue); return 0; }
static int Disp_clear(DispatcherBase *self) { Py_CLEAR(self->queue); return 0; }
static void Disp_dealloc(DispatcherBase *self) {
    PyObject_GC_UnTrack(self); Disp_clear(self); Py_TYPE(self)->tp_free((PyObject *)self);
}
static PyMemberDef Disp_members[] = {
    {"_queue", T_OBJECT, offsetof(DispatcherBase, queue), 0, NULL},
    {"_slow", T_DOUBLE, offsetof(DispatcherBase, slow), 0, NULL},
    {"_running", T_BOOL, offsetof(DispatcherBase, running), 0, NULL},
    {NULL}
};
static PyTypeObject DispatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connman._speedups.DispatcherBase",
    .tp_basicsize = sizeof(DispatcherBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Disp_dealloc,
    .tp_traverse = (traverseproc)Disp_traverse,
    .tp_clear = (inquiry)Disp_clear,
    .tp_members = Disp_members,
};

/* ---- Receiver ---- */
typedef struct {
    PyObject_HEAD
    PyObject *dispatcher;
    PyObject *on_data;
    long long received;
    char active;
} Receiver;

static int Recv_traverse(Receiver *self, visitproc visit, void *arg) {
    Py_VISIT(self->dispatcher); Py_VISIT(self->on_data); return 0;
}
static int Recv_clear(Receiver *self) { Py_CLEAR(self->dispatcher); Py_CLEAR(self->on_data); return 0; }
static void Recv_dealloc(Receiver *self) {
    PyObject_GC_UnTrack(self); Recv_clear(self); Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Dispatcher.deliver(fn, data) in the common case: nothing running or queued, callbacks untimed. */
static PyObject *deliver(DispatcherBase *disp, PyObject *fn, PyObject *data) {
    PyObject *d = (PyObject *)disp;
    if (disp->running || disp->slow != 0.0)
        return PyObject_CallMethodObjArgs(d, s_run, fn, data, NULL);
    disp->running = 1;
    PyObject *result = PyObject_CallOneArg(fn, data);
    if (result == NULL) {
        if (!PyErr_ExceptionMatches(caught)) {  /* GeneratorExit, CancelledError: not ours to report */
            disp->running = 0;
            return NULL;
        }
        PyObject *exc = take_exception();
        PyObject *done = PyObject_CallMethodObjArgs(d, s_delivered, Py_None, exc, NULL);
        Py_DECREF(exc);
        return done;
    }
    if (result == Py_None) {
        PyObject *queue = disp->queue;
        int queued = (queue == NULL || queue == Py_None) ? 0 : PyObject_IsTrue(queue);
        if (queued == 0) {
            disp->running = 0;
            return result;
        }
        if (queued < 0) {
            disp->running = 0;
            Py_DECREF(result);
            return NULL;
        }
    }
    /* An awaitable to await, or what fn asked for meanwhile to run: Python's part. */
    PyObject *done = PyObject_CallMethodObjArgs(d, s_delivered, result, Py_None, NULL);
    Py_DECREF(result);
    return done;
}

static PyObject *Recv_data_received(Receiver *self, PyObject *data) {
    if (!self->active)
        Py_RETURN_NONE;
    Py_ssize_t size = PyBytes_CheckExact(data) ? PyBytes_GET_SIZE(data) : PyObject_Size(data);
    if (size < 0)
        return NULL;
    self->received += size;
    PyObject *d = self->dispatcher, *fn = self->on_data;
    if (d == NULL || fn == NULL || !PyObject_TypeCheck(d, &DispatcherType)) {
        PyErr_SetString(PyExc_TypeError, "data_received: the protocol has no dispatcher");
        return NULL;
    }
    /* on_data may replace or drop both (a reconnect inside on_data): hold them for the call. */
    Py_INCREF(d);
    Py_INCREF(fn);
    PyObject *done = deliver((DispatcherBase *)d, fn, data);
    Py_DECREF(d);
    Py_DECREF(fn);
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    Py_RETURN_NONE;
}

static PyMethodDef Recv_methods[] = {
    {"data_received", (PyCFunction)Recv_data_received, METH_O,
     "data_received($self, data, /)\n--\n\nCount the chunk and hand it to on_data through the dispatcher."},
    {NULL}
};
static PyMemberDef Recv_members[] = {
    {"dispatcher", T_OBJECT, offsetof(Receiver, dispatcher), 0, NULL},
    {"on_data", T_OBJECT, offsetof(Receiver, on_data), 0, NULL},
    {"received", T_LONGLONG, offsetof(Receiver, received), 0, NULL},
    {"active", T_BOOL, offsetof(Receiver, active), 0, NULL},
    {NULL}
};
static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connman._speedups.Receiver",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Recv_dealloc,
    .tp_traverse = (traverseproc)Recv_traverse,
    .tp_clear = (inquiry)Recv_clear,
    .tp_methods = Recv_methods,
    .tp_members = Recv_members,
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "connman._speedups", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&WriterType) < 0 || PyType_Ready(&DispatcherType) < 0 || PyType_Ready(&ReceiverType) < 0)
        return NULL;
    s_is_closing = PyUnicode_InternFromString("is_closing");
    s_write = PyUnicode_InternFromString("write");
    s_write_slow = PyUnicode_InternFromString("_write_slow");
    s_run = PyUnicode_InternFromString("_run");
    s_delivered = PyUnicode_InternFromString("_delivered");
    caught = PyTuple_Pack(3, PyExc_Exception, PyExc_SystemExit, PyExc_KeyboardInterrupt);
    PyObject *m = PyModule_Create(&moddef);
    if (m == NULL) return NULL;
    Py_INCREF(&WriterType); PyModule_AddObject(m, "Writer", (PyObject *)&WriterType);
    Py_INCREF(&DispatcherType); PyModule_AddObject(m, "DispatcherBase", (PyObject *)&DispatcherType);
    Py_INCREF(&ReceiverType); PyModule_AddObject(m, "Receiver", (PyObject *)&ReceiverType);
    return m;
}
