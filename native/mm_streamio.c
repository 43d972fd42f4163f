/*
 * mm_streamio: one Redis request/reply exchange with the GIL released for all of it.
 *
 * Why (docs/workers.md, "The stream reader's GIL hand-offs"): the bot host's stream reader is a
 * thread in a process whose event loop runs hundreds of bots. In Python every system call gives
 * the GIL away and getting it back waits for the loop thread (at least the switch interval), so
 * the reader's turn (wake the loop, send XREAD, receive the reply) cost three such waits, and a
 * feed entry published during any of them waited too. exchange() does the three system calls
 * in C and takes the GIL back once, when the whole reply is in.
 *
 * exchange(fd, wake_fd, request, timeout_ms) -> (reply bytes, arrived_ns)
 *   fd:         a connected stream socket (blocking or not: readiness is polled here)
 *   wake_fd:    -1, or a socket to write one byte to first (waking an event loop); a full
 *               buffer there means a wake-up is already waiting and is not an error
 *   request:    the RESP-encoded command(s) for exactly one reply
 *   timeout_ms: for each wait on the socket
 *   reply:      the bytes of one complete RESP reply (parse them with hiredis)
 *   arrived_ns: the kernel's receive time of the reply's first bytes (SO_TIMESTAMPNS, ns since
 *               the epoch), or 0 when the socket does not stamp
 *
 * reply_length(data) -> length of the first complete RESP reply in data, 0 if incomplete
 *   (exposed for tests; raises ValueError on a type byte RESP does not have).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Length of the first complete reply in b[0..n), 0 when more bytes are needed, -1 on a type
 * byte that is not RESP2/RESP3. Iterative: `pending` counts the elements still to read. */
static Py_ssize_t reply_length(const char *b, Py_ssize_t n)
{
    Py_ssize_t pos = 0;
    long long pending = 1;
    while (pending > 0) {
        if (pos >= n)
            return 0;
        const char *nl = memchr(b + pos, '\n', (size_t)(n - pos));
        if (nl == NULL)
            return 0;
        Py_ssize_t line_end = (nl - b) + 1;
        char type = b[pos];
        long long count;
        pending--;
        switch (type) {
        case '+': case '-': case ':': case '_': case ',': case '#': case '(':
            pos = line_end;
            break;
        case '$': case '=': case '!':
            count = strtoll(b + pos + 1, NULL, 10);
            pos = line_end;
            if (count >= 0) { /* -1: a null bulk string, nothing follows */
                if (n - pos < count + 2)
                    return 0;
                pos += (Py_ssize_t)count + 2;
            }
            break;
        case '*': case '~': case '>':
            count = strtoll(b + pos + 1, NULL, 10);
            pos = line_end;
            if (count > 0)
                pending += count;
            break;
        case '%':
            count = strtoll(b + pos + 1, NULL, 10);
            pos = line_end;
            if (count > 0)
                pending += 2 * count;
            break;
        case '|': /* attributes, then the reply they describe */
            count = strtoll(b + pos + 1, NULL, 10);
            pos = line_end;
            pending += (count > 0 ? 2 * count : 0) + 1;
            break;
        default:
            return -1;
        }
    }
    return pos;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events` or the deadline passes: 1 ready, 0 timed out, -1 error. */
static int wait_for(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, left > 0x7fffffff ? 0x7fffffff : (int)left);
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

enum outcome { DONE, OS_ERROR, TIMED_OUT, CLOSED, PROTOCOL, NO_MEMORY };

/* After a send or receive on fd failed (errno set): 1 to try again (interrupted, or fd became
 * ready for `events`), 0 to stop with *outcome and *saved_errno set. */
static int try_again(int fd, short events, long long deadline, enum outcome *outcome, int *saved_errno)
{
    if (errno == EINTR)
        return 1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int ready = wait_for(fd, events, deadline);
        if (ready == 1)
            return 1;
        *outcome = ready == 0 ? TIMED_OUT : OS_ERROR;
    } else {
        *outcome = OS_ERROR;
    }
    *saved_errno = errno;
    return 0;
}

static PyObject *exchange(PyObject *self, PyObject *args)
{
    int fd, wake_fd, timeout_ms;
    Py_buffer request;
    if (!PyArg_ParseTuple(args, "iiy*i", &fd, &wake_fd, &request, &timeout_ms))
        return NULL;

    enum outcome outcome = DONE;
    int saved_errno = 0;
    Py_ssize_t cap = 65536, len = 0, complete = 0;
    long long arrived_ns = 0;
    char *buf = malloc((size_t)cap);
    if (buf == NULL) {
        PyBuffer_Release(&request);
        return PyErr_NoMemory();
    }

    Py_BEGIN_ALLOW_THREADS
    long long deadline = now_ms() + timeout_ms;
    if (wake_fd >= 0) {
        ssize_t w;
        do {
            w = send(wake_fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (w < 0 && errno == EINTR);
        /* EAGAIN: a wake-up byte is already waiting; anything else: the loop is gone */
    }
    const char *out = request.buf;
    Py_ssize_t sent = 0;
    while (sent < request.len) {
        ssize_t w = send(fd, out + sent, (size_t)(request.len - sent), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            sent += w;
        else if (!try_again(fd, POLLOUT, deadline, &outcome, &saved_errno))
            break;
    }
    char control[CMSG_SPACE(sizeof(struct timespec))];
    while (outcome == DONE) {
        if (cap - len < 16384) {
            char *bigger = realloc(buf, (size_t)(cap * 2));
            if (bigger == NULL) {
                outcome = NO_MEMORY;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        struct iovec iov = {buf + len, (size_t)(cap - len)};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t r = recvmsg(fd, &msg, MSG_DONTWAIT);
        if (r < 0) {
            if (try_again(fd, POLLIN, deadline, &outcome, &saved_errno))
                continue;
            break;
        }
        if (r == 0) {
            outcome = CLOSED;
            break;
        }
        if (arrived_ns == 0) {
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS
                    && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    arrived_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
                }
            }
        }
        len += r;
        complete = reply_length(buf, len);
        if (complete < 0)
            outcome = PROTOCOL;
        else if (complete > 0)
            break;
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&request);
    PyObject *result = NULL;
    switch (outcome) {
    case DONE:
        /* One request, one reply: bytes past it would be a reply to nothing (kept with it so
         * the parser sees them and the caller's framing check fails loudly). */
        result = Py_BuildValue("(y#L)", buf, len, arrived_ns);
        break;
    case OS_ERROR:
        errno = saved_errno;
        PyErr_SetFromErrno(PyExc_OSError);
        break;
    case TIMED_OUT:
        PyErr_Format(PyExc_TimeoutError, "no complete reply from Redis within %d ms (%zd bytes received)",
                     timeout_ms, len);
        break;
    case CLOSED:
        PyErr_Format(PyExc_ConnectionError, "Redis closed the connection (%zd bytes of a reply received)", len);
        break;
    case PROTOCOL:
        PyErr_Format(PyExc_ConnectionError, "not a RESP reply: unexpected type byte in %zd bytes received", len);
        break;
    case NO_MEMORY:
        PyErr_NoMemory();
        break;
    }
    free(buf);
    return result;
}

static PyObject *py_reply_length(PyObject *self, PyObject *args)
{
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data))
        return NULL;
    Py_ssize_t n = reply_length(data.buf, data.len);
    PyBuffer_Release(&data);
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "not a RESP reply: unexpected type byte");
        return NULL;
    }
    return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"exchange", exchange, METH_VARARGS,
     "exchange(fd, wake_fd, request, timeout_ms) -> (reply bytes, arrived_ns): write one byte to "
     "wake_fd (if >= 0), send request on fd, receive one complete RESP reply; the GIL is released "
     "throughout."},
    {"reply_length", py_reply_length, METH_VARARGS,
     "reply_length(data) -> length of the first complete RESP reply in data, 0 if incomplete."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mm_streamio", NULL, -1, methods};

PyMODINIT_FUNC PyInit_mm_streamio(void)
{
    return PyModule_Create(&module);
}
