/*
 * mm_streamio: the bot host's Redis stream reader as a C loop that never needs the GIL.
 *
 * Why (docs/workers.md, "Latency hygiene"): the bot host's stream reader is a thread in a
 * process whose event loop runs hundreds of bots. In Python every system call gives the GIL
 * away and getting it back waits for the loop thread (at least the switch interval, longer when
 * that thread is not even running on a busy machine), and a feed entry published meanwhile
 * waits too. Pump.run() repeats XREAD with the GIL released, notes where each stream goes on,
 * queues whole replies and wakes the loop, which parses them (it holds the GIL anyway).
 *
 * Pump(wake_fd, max_queued_bytes=64 MiB)
 *                                  wake_fd: a socket the loop watches (one byte per wake-up), or -1;
 *                                  run() holds off while this much is queued and not taken
 *   .set_streams([(name, id)...])  the streams to read, each after entry id (bytes)
 *   .streams()                     [(name, id)...]: where each stream's next read starts
 *   .run(fd, count, block_ms, timeout_ms)
 *                                  XREAD COUNT count BLOCK block_ms on the connected socket fd
 *                                  until interrupt() (returns None) or a failed exchange (raises
 *                                  OSError, TimeoutError, ConnectionError, RuntimeError for an
 *                                  error reply); timeout_ms bounds each wait on the socket
 *   .take()                        [(reply, sent_ns, arrived_ns, received_ns)...] queued so far;
 *                                  arrived_ns: the kernel's receive time of the reply's first
 *                                  bytes (SO_TIMESTAMPNS), 0 when the socket does not stamp
 *   .interrupt()                   the run in progress (or the next) returns after its exchange
 *   .counts()                      (replies queued, entries in them, times run() held off) so far
 *
 * reply_length(data) -> length of the first complete RESP reply in data, 0 if incomplete
 *   (exposed for tests; raises ValueError on a type byte RESP does not have).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
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

/* Send request on fd and receive one complete RESP reply, without touching Python (callers hold
 * no GIL). On DONE, *bufp (malloc'd, the caller frees) holds *lenp bytes: exactly the reply, or
 * more when the peer sent bytes past it (the caller's framing check fails loudly on those). On
 * any other outcome *bufp is still set (and *lenp counts what arrived) for the error message. */
static enum outcome roundtrip(int fd, const char *out, Py_ssize_t out_len, int timeout_ms, char **bufp,
                              Py_ssize_t *lenp, Py_ssize_t *completep, long long *arrived_ns, int *saved_errno)
{
    enum outcome outcome = DONE;
    Py_ssize_t cap = 65536, len = 0, complete = 0;
    char *buf = malloc((size_t)cap);
    *bufp = buf;
    *lenp = 0;
    *completep = 0;
    *arrived_ns = 0;
    if (buf == NULL)
        return NO_MEMORY;
    long long deadline = now_ms() + timeout_ms;
    Py_ssize_t sent = 0;
    while (sent < out_len) {
        ssize_t w = send(fd, out + sent, (size_t)(out_len - sent), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            sent += w;
        else if (!try_again(fd, POLLOUT, deadline, &outcome, saved_errno))
            return outcome;
    }
    char control[CMSG_SPACE(sizeof(struct timespec))];
    while (outcome == DONE) {
        if (cap - len < 16384) {
            char *bigger = realloc(buf, (size_t)(cap * 2));
            if (bigger == NULL) {
                outcome = NO_MEMORY;
                break;
            }
            buf = *bufp = bigger;
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
            if (try_again(fd, POLLIN, deadline, &outcome, saved_errno))
                continue;
            break;
        }
        if (r == 0) {
            outcome = CLOSED;
            break;
        }
        if (*arrived_ns == 0) {
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS
                    && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    *arrived_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
                }
            }
        }
        len += r;
        *lenp = len;
        complete = reply_length(buf, len);
        if (complete < 0)
            outcome = PROTOCOL;
        else if (complete > 0)
            break;
    }
    *completep = complete;
    return outcome;
}

/* Raise the Python exception for a failed roundtrip (GIL held). */
static void raise_outcome(enum outcome outcome, int saved_errno, int timeout_ms, Py_ssize_t len)
{
    switch (outcome) {
    case DONE:
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
}

static void send_wake(int wake_fd)
{
    ssize_t w;
    do {
        w = send(wake_fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    /* EAGAIN: a wake-up byte is already waiting; anything else: the loop is gone */
}

/* ------------------------------------------------------------------------------------------
 * Pump: the stream reader's whole loop in C, so the reader never needs the GIL.
 *
 * Its predecessor (2026-11-21, sixth session) did one exchange per call and took the GIL back
 * to parse the reply and hand it over; on a busy 2-core machine the loop thread holding it was
 * sometimes not even running, and that wait was what remained of the feed-to-bot latency at
 * 500 bots (p99 2-3.4 ms of 3.5-7.7; docs/workers.md). run() repeats
 * XREAD on the streams it was given, notes each stream's last entry id itself (the next XREAD
 * starts there), queues every reply and wakes the loop with one byte when the queue was empty
 * since the loop's last take(). The loop thread parses the replies (it needed the GIL for them
 * anyway). Python reconnects, chooses the streams and handles errors; run() returns only when
 * interrupt() is called or an exchange fails (the replies queued before stay queued).
 * ------------------------------------------------------------------------------------------ */


#define MAX_ID 48 /* "18446744073709551615-18446744073709551615" is 41 bytes */

typedef struct reply_node {
    struct reply_node *next;
    char *data;
    Py_ssize_t len;
    long long sent_ns, arrived_ns, received_ns;
} reply_node;

typedef struct {
    char *name;
    Py_ssize_t name_len;
    char id[MAX_ID];
    Py_ssize_t id_len;
} stream_pos;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock; /* guards head, tail, scheduled, queued_bytes, counts and the streams' ids */
    pthread_cond_t taken; /* signalled by take() and interrupt(): a run holding off goes on */
    reply_node *head, *tail;
    Py_ssize_t queued_bytes, max_queued; /* run() holds off while the loop has not taken this much */
    int scheduled;   /* a wake byte went out and the loop has not taken since */
    int wake_fd;
    int interrupted; /* __atomic */
    int running;     /* __atomic: run() is in progress (streams may not change) */
    stream_pos *streams;
    Py_ssize_t nstreams;
    long long replies, entries, held_off; /* totals, for stats and tests */
} Pump;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void free_streams(Pump *p)
{
    for (Py_ssize_t i = 0; i < p->nstreams; i++)
        free(p->streams[i].name);
    free(p->streams);
    p->streams = NULL;
    p->nstreams = 0;
}

static int Pump_init(Pump *p, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"wake_fd", "max_queued_bytes", NULL};
    int wake_fd;
    Py_ssize_t max_queued = 64 * 1024 * 1024;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|n", kwlist, &wake_fd, &max_queued))
        return -1;
    if (p->wake_fd != -2) {
        PyErr_SetString(PyExc_RuntimeError, "Pump is already initialised");
        return -1;
    }
    if (max_queued <= 0) {
        PyErr_Format(PyExc_ValueError, "max_queued_bytes must be > 0 (got %zd)", max_queued);
        return -1;
    }
    p->wake_fd = wake_fd;
    p->max_queued = max_queued;
    return 0;
}

static PyObject *Pump_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Pump *p = (Pump *)type->tp_alloc(type, 0);
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->taken, NULL);
    p->wake_fd = -2; /* not yet initialised */
    return (PyObject *)p;
}

static void Pump_dealloc(Pump *p)
{
    reply_node *n = p->head;
    while (n != NULL) {
        reply_node *next = n->next;
        free(n->data);
        free(n);
        n = next;
    }
    free_streams(p);
    pthread_cond_destroy(&p->taken);
    pthread_mutex_destroy(&p->lock);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

/* set_streams([(name, last_id), ...]): the streams the next run() reads, from after last_id. */
static PyObject *Pump_set_streams(Pump *p, PyObject *arg)
{
    if (__atomic_load_n(&p->running, __ATOMIC_SEQ_CST)) {
        PyErr_SetString(PyExc_RuntimeError, "set_streams() while run() is in progress");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(arg, "set_streams() takes a list of (name, last id) pairs of bytes");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    stream_pos *streams = calloc(n > 0 ? (size_t)n : 1, sizeof(stream_pos));
    if (streams == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name, *id;
        Py_ssize_t name_len, id_len;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "y#y#", &name, &name_len, &id, &id_len)) {
            for (Py_ssize_t j = 0; j < i; j++)
                free(streams[j].name);
            free(streams);
            Py_DECREF(seq);
            return NULL;
        }
        if (id_len <= 0 || id_len >= MAX_ID || name_len <= 0) {
            for (Py_ssize_t j = 0; j < i; j++)
                free(streams[j].name);
            free(streams);
            Py_DECREF(seq);
            return PyErr_Format(PyExc_ValueError,
                                "stream %zd: a name of 1 or more bytes and an entry id of 1 to %d bytes are accepted "
                                "(got %zd and %zd bytes)", i, MAX_ID - 1, name_len, id_len);
        }
        streams[i].name = malloc((size_t)name_len);
        if (streams[i].name == NULL) {
            for (Py_ssize_t j = 0; j < i; j++)
                free(streams[j].name);
            free(streams);
            Py_DECREF(seq);
            return PyErr_NoMemory();
        }
        memcpy(streams[i].name, name, (size_t)name_len);
        streams[i].name_len = name_len;
        memcpy(streams[i].id, id, (size_t)id_len);
        streams[i].id_len = id_len;
    }
    Py_DECREF(seq);
    free_streams(p);
    p->streams = streams;
    p->nstreams = n;
    Py_RETURN_NONE;
}

/* streams() -> [(name, last id), ...]: where each stream's next read starts. */
static PyObject *Pump_get_streams(Pump *p, PyObject *unused)
{
    PyObject *out = PyList_New(p->nstreams);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < p->nstreams; i++) {
        char id[MAX_ID];
        pthread_mutex_lock(&p->lock); /* a running run() updates ids (the list itself is fixed) */
        Py_ssize_t id_len = p->streams[i].id_len;
        memcpy(id, p->streams[i].id, (size_t)id_len);
        pthread_mutex_unlock(&p->lock);
        PyObject *pair = Py_BuildValue("(y#y#)", p->streams[i].name, p->streams[i].name_len, id, id_len);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

/* One RESP header at b[*pos]: its type byte and number; *pos moves past its line. 0: malformed. */
static int header(const char *b, Py_ssize_t n, Py_ssize_t *pos, char *type, long long *value)
{
    if (*pos >= n)
        return 0;
    const char *nl = memchr(b + *pos, '\n', (size_t)(n - *pos));
    if (nl == NULL)
        return 0;
    *type = b[*pos];
    *value = strtoll(b + *pos + 1, NULL, 10);
    *pos = (nl - b) + 1;
    return 1;
}

/* A bulk string at b[*pos]: its bytes and length; *pos moves past it. 0: not a bulk string. */
static int bulk(const char *b, Py_ssize_t n, Py_ssize_t *pos, const char **s, Py_ssize_t *len)
{
    char type;
    long long value;
    if (!header(b, n, pos, &type, &value) || type != '$' || value < 0 || n - *pos < value + 2)
        return 0;
    *s = b + *pos;
    *len = (Py_ssize_t)value;
    *pos += (Py_ssize_t)value + 2;
    return 1;
}

/* Note the last entry id of every stream in one complete XREAD reply (RESP2 array or RESP3
 * map; a null reply has none); count its entries. 0: the reply is not shaped like XREAD's. */
static int note_ids(Pump *p, const char *b, Py_ssize_t n, long long *entries)
{
    Py_ssize_t pos = 0;
    char type;
    long long nstreams;
    if (!header(b, n, &pos, &type, &nstreams))
        return 0;
    if (type == '_' || (type == '*' && nstreams < 0))
        return 1; /* BLOCK timed out: nothing new */
    if ((type != '*' && type != '%') || nstreams < 0)
        return 0;
    int is_map = type == '%';
    for (long long i = 0; i < nstreams; i++) {
        long long count;
        if (!is_map && (!header(b, n, &pos, &type, &count) || type != '*' || count != 2))
            return 0;
        const char *name;
        Py_ssize_t name_len;
        if (!bulk(b, n, &pos, &name, &name_len))
            return 0;
        if (!header(b, n, &pos, &type, &count) || type != '*')
            return 0;
        const char *last = NULL;
        Py_ssize_t last_len = 0;
        for (long long e = 0; e < count; e++) {
            long long two;
            if (!header(b, n, &pos, &type, &two) || type != '*' || two != 2)
                return 0;
            if (!bulk(b, n, &pos, &last, &last_len))
                return 0;
            Py_ssize_t fields = reply_length(b + pos, n - pos); /* the field list, skipped whole */
            if (fields <= 0)
                return 0;
            pos += fields;
            (*entries)++;
        }
        if (last == NULL)
            continue;
        if (last_len >= MAX_ID)
            return 0;
        for (Py_ssize_t s = 0; s < p->nstreams; s++) {
            stream_pos *sp = &p->streams[s];
            if (sp->name_len == name_len && memcmp(sp->name, name, (size_t)name_len) == 0) {
                pthread_mutex_lock(&p->lock); /* streams() may read it from another thread */
                memcpy(sp->id, last, (size_t)last_len);
                sp->id_len = last_len;
                pthread_mutex_unlock(&p->lock);
                break;
            }
        }
    }
    return pos == n;
}

static int digits(char *out, long long v)
{
    return sprintf(out, "%lld", v);
}

/* The XREAD command for the streams' current positions (RESP), into a malloc'd buffer. */
static char *xread_command(Pump *p, long long count, long long block_ms, Py_ssize_t *len)
{
    size_t cap = 128;
    for (Py_ssize_t i = 0; i < p->nstreams; i++)
        cap += (size_t)p->streams[i].name_len + MAX_ID + 48;
    char *cmd = malloc(cap);
    if (cmd == NULL)
        return NULL;
    char num[32];
    int nlen;
    size_t at = (size_t)sprintf(cmd, "*%zd\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n", 6 + 2 * p->nstreams);
    nlen = digits(num, count);
    at += (size_t)sprintf(cmd + at, "$%d\r\n%s\r\n$5\r\nBLOCK\r\n", nlen, num);
    nlen = digits(num, block_ms);
    at += (size_t)sprintf(cmd + at, "$%d\r\n%s\r\n$7\r\nSTREAMS\r\n", nlen, num);
    for (int pass = 0; pass < 2; pass++) {
        for (Py_ssize_t i = 0; i < p->nstreams; i++) {
            const char *s = pass == 0 ? p->streams[i].name : p->streams[i].id;
            Py_ssize_t slen = pass == 0 ? p->streams[i].name_len : p->streams[i].id_len;
            at += (size_t)sprintf(cmd + at, "$%zd\r\n", slen);
            memcpy(cmd + at, s, (size_t)slen);
            at += (size_t)slen;
            memcpy(cmd + at, "\r\n", 2);
            at += 2;
        }
    }
    *len = (Py_ssize_t)at;
    return cmd;
}

/* run(fd, count, block_ms, timeout_ms): XREAD again and again with the GIL released, queueing
 * every reply with entries, until interrupt() (returns None) or a failed exchange (raises; the
 * replies queued before stay queued, the positions stay at the last queued reply). */
static PyObject *Pump_run(Pump *p, PyObject *args)
{
    int fd, timeout_ms;
    long long count, block_ms;
    if (!PyArg_ParseTuple(args, "iLLi", &fd, &count, &block_ms, &timeout_ms))
        return NULL;
    if (p->nstreams == 0) {
        PyErr_SetString(PyExc_ValueError, "run() needs at least one stream (set_streams)");
        return NULL;
    }
    if (count <= 0 || block_ms < 0 || timeout_ms <= 0) {
        return PyErr_Format(PyExc_ValueError,
                            "run(): count must be > 0, block_ms >= 0 and timeout_ms > 0 (got %lld, %lld, %d)",
                            count, block_ms, timeout_ms);
    }
    int expected = 0;
    if (!__atomic_compare_exchange_n(&p->running, &expected, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        PyErr_SetString(PyExc_RuntimeError, "run() is already in progress on another thread");
        return NULL;
    }
    enum outcome outcome = DONE;
    int saved_errno = 0, shape_error = 0, error_reply = 0;
    char error_text[200] = "";
    Py_ssize_t err_len = 0;

    Py_BEGIN_ALLOW_THREADS
    while (!__atomic_exchange_n(&p->interrupted, 0, __ATOMIC_SEQ_CST)) {
        /* The loop is far behind (stuck?): leave the entries in Redis until it takes what it has
         * (a stream is capped there; a book snapshot repairs what it trims) rather than growing
         * without bound here. */
        pthread_mutex_lock(&p->lock);
        int held = 0;
        while (p->queued_bytes >= p->max_queued && !__atomic_load_n(&p->interrupted, __ATOMIC_SEQ_CST)) {
            if (!held)
                p->held_off++;
            held = 1;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 100 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->taken, &p->lock, &until);
        }
        pthread_mutex_unlock(&p->lock);
        if (held)
            continue; /* check for an interrupt() that came meanwhile, then read on */
        Py_ssize_t cmd_len;
        char *cmd = xread_command(p, count, block_ms, &cmd_len);
        if (cmd == NULL) {
            outcome = NO_MEMORY;
            break;
        }
        char *buf;
        Py_ssize_t len, complete;
        long long arrived_ns, sent_ns = now_ns();
        outcome = roundtrip(fd, cmd, cmd_len, timeout_ms, &buf, &len, &complete, &arrived_ns, &saved_errno);
        long long received_ns = now_ns();
        free(cmd);
        if (outcome != DONE) {
            err_len = len;
            free(buf);
            break;
        }
        if (complete != len) { /* bytes past the one reply: out of step */
            outcome = PROTOCOL;
            shape_error = 1;
            err_len = len;
            free(buf);
            break;
        }
        if (buf[0] == '-') { /* an error reply (e.g. a key that is not a stream) */
            error_reply = 1;
            Py_ssize_t keep = 0; /* the line after '-', up to its CR, cut to fit */
            while (1 + keep < len && buf[1 + keep] != '\r' && keep < (Py_ssize_t)sizeof error_text - 1)
                keep++;
            memcpy(error_text, buf + 1, (size_t)keep);
            error_text[keep] = '\0';
            free(buf);
            break;
        }
        long long entries = 0;
        if (!note_ids(p, buf, len, &entries)) {
            shape_error = 1;
            outcome = PROTOCOL;
            err_len = len;
            free(buf);
            break;
        }
        if (entries == 0) { /* BLOCK ran out: nothing to hand over */
            free(buf);
            continue;
        }
        if (len < 32768) { /* a small reply keeps a small buffer while it waits for the loop */
            char *fitted = realloc(buf, (size_t)len);
            if (fitted != NULL)
                buf = fitted;
        }
        reply_node *node = malloc(sizeof *node);
        if (node == NULL) {
            free(buf);
            outcome = NO_MEMORY;
            break;
        }
        node->next = NULL;
        node->data = buf;
        node->len = len;
        node->sent_ns = sent_ns;
        node->arrived_ns = arrived_ns;
        node->received_ns = received_ns;
        pthread_mutex_lock(&p->lock);
        if (p->tail != NULL)
            p->tail->next = node;
        else
            p->head = node;
        p->tail = node;
        p->replies++;
        p->entries += entries;
        p->queued_bytes += len;
        int wake = !p->scheduled;
        p->scheduled = 1;
        pthread_mutex_unlock(&p->lock);
        if (wake && p->wake_fd >= 0)
            send_wake(p->wake_fd);
    }
    Py_END_ALLOW_THREADS
    __atomic_store_n(&p->running, 0, __ATOMIC_SEQ_CST);

    if (error_reply) {
        PyErr_Format(PyExc_RuntimeError, "Redis answered XREAD with an error: %s", error_text);
        return NULL;
    }
    if (shape_error) {
        PyErr_Format(PyExc_ConnectionError, "not an XREAD reply: %zd bytes of an unexpected shape", err_len);
        return NULL;
    }
    if (outcome != DONE) {
        raise_outcome(outcome, saved_errno, timeout_ms, err_len);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* take() -> [(reply bytes, sent_ns, arrived_ns, received_ns), ...], oldest first; after it the
 * next queued reply wakes the loop again. sent_ns: when its XREAD went out; arrived_ns: the
 * kernel's receive time of its first bytes (0 without stamps); received_ns: when it was whole. */
static PyObject *Pump_take(Pump *p, PyObject *unused)
{
    pthread_mutex_lock(&p->lock);
    reply_node *n = p->head;
    p->head = p->tail = NULL;
    p->scheduled = 0;
    p->queued_bytes = 0;
    pthread_cond_signal(&p->taken);
    pthread_mutex_unlock(&p->lock);
    PyObject *out = PyList_New(0);
    while (n != NULL) {
        reply_node *next = n->next;
        if (out != NULL) {
            PyObject *item = Py_BuildValue("(y#LLL)", n->data, n->len, n->sent_ns, n->arrived_ns, n->received_ns);
            if (item == NULL || PyList_Append(out, item) < 0)
                Py_CLEAR(out); /* out of memory: the error propagates, the rest is freed */
            Py_XDECREF(item);
        }
        free(n->data);
        free(n);
        n = next;
    }
    return out;
}

static PyObject *Pump_interrupt(Pump *p, PyObject *unused)
{
    __atomic_store_n(&p->interrupted, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&p->lock); /* a run holding off wakes at once */
    pthread_cond_signal(&p->taken);
    pthread_mutex_unlock(&p->lock);
    Py_RETURN_NONE;
}

static PyObject *Pump_counts(Pump *p, PyObject *unused)
{
    pthread_mutex_lock(&p->lock);
    long long replies = p->replies, entries = p->entries, held_off = p->held_off;
    pthread_mutex_unlock(&p->lock);
    return Py_BuildValue("(LLL)", replies, entries, held_off);
}

static PyMethodDef pump_methods[] = {
    {"set_streams", (PyCFunction)Pump_set_streams, METH_O,
     "set_streams([(name, last_id), ...]): the streams run() reads, each after last_id (bytes)."},
    {"streams", (PyCFunction)Pump_get_streams, METH_NOARGS,
     "streams() -> [(name, last_id), ...]: where each stream's next read starts."},
    {"run", (PyCFunction)Pump_run, METH_VARARGS,
     "run(fd, count, block_ms, timeout_ms): XREAD until interrupt() (None) or a failed exchange "
     "(raises); the GIL is released throughout."},
    {"take", (PyCFunction)Pump_take, METH_NOARGS,
     "take() -> [(reply, sent_ns, arrived_ns, received_ns), ...]: the queued replies, oldest first."},
    {"interrupt", (PyCFunction)Pump_interrupt, METH_NOARGS,
     "interrupt(): the running (or next) run() returns after its exchange in flight."},
    {"counts", (PyCFunction)Pump_counts, METH_NOARGS,
     "counts() -> (replies queued, entries in them, times run() held off for the loop) so far."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mm_streamio.Pump",
    .tp_doc = "Pump(wake_fd, max_queued_bytes=64 MiB): the stream reader's XREAD loop in C (see mm_streamio.c).",
    .tp_basicsize = sizeof(Pump),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Pump_new,
    .tp_init = (initproc)Pump_init,
    .tp_dealloc = (destructor)Pump_dealloc,
    .tp_methods = pump_methods,
};

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
    {"reply_length", py_reply_length, METH_VARARGS,
     "reply_length(data) -> length of the first complete RESP reply in data, 0 if incomplete."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "mm_streamio", NULL, -1, methods};

PyMODINIT_FUNC PyInit_mm_streamio(void)
{
    if (PyType_Ready(&PumpType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PumpType);
    if (PyModule_AddObject(m, "Pump", (PyObject *)&PumpType) < 0) {
        Py_DECREF(&PumpType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
