/*
 * A custom Lambda runtime in C: the zip's `bootstrap`. POSIX sockets and hand-written
 * HTTP/1.1 (Content-Length bodies, one keep-alive connection), no libraries.
 *
 * It speaks the Lambda Runtime API at $AWS_LAMBDA_RUNTIME_API: it long-polls
 * /invocation/next, answers each event with a greeting, the request id, its pid and a
 * counter (the same process serves every warm invocation), and reports an event
 * {"fail": true} through /invocation/{id}/error. An unknown _HANDLER is reported through
 * /init/error. Build: gcc -O2 -Wall -o bootstrap bootstrap.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define PREFIX "/2018-06-01/runtime"
#define ERROR_TYPE "CustomC.AskedToFail"

/* A growable byte buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

/* Exits after reporting `what`, with the system's reason when `error` (an errno) is set. */
static void die(const char *what, int error) {
    fprintf(stderr, "c runtime: %s: %s\n", what, error ? strerror(error) : "failed");
    exit(1);
}

static void buf_add(buf_t *b, const char *data, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) die("out of memory", ENOMEM);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *text) { buf_add(b, text, strlen(text)); }

static void buf_printf(buf_t *b, const char *format, ...) {
    va_list args;
    va_start(args, format);
    char *text = NULL;
    int len = vasprintf(&text, format, args);
    va_end(args);
    if (len < 0) die("out of memory", ENOMEM);
    buf_add(b, text, (size_t)len);
    free(text);
}

/* Appends `text` as a JSON string literal. */
static void buf_json_string(buf_t *b, const char *text) {
    buf_add(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char escaped[2] = {'\\', (char)*c};
            buf_add(b, escaped, 2);
        } else if (*c < 0x20) {
            buf_printf(b, "\\u%04x", *c);
        } else {
            buf_add(b, (const char *)c, 1);
        }
    }
    buf_add(b, "\"", 1);
}

typedef struct {
    int status;
    int keep_alive;
    char request_id[128];
    char function_arn[512];
    long long deadline_ms;
    char *body;
    size_t body_len;
} response_t;

static char api_host[256];
static char api_port[16];
static int connection = -1;

static int connect_to_api(void) {
    struct addrinfo hints = {0}, *found;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(api_host, api_port, &hints, &found) != 0) die("resolving the Runtime API", 0);
    int fd = -1;
    for (struct addrinfo *a = found; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            int on = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            break;
        }
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    if (fd < 0) die("connecting to the Runtime API", errno);
    return fd;
}

static int send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t sent = send(fd, data, len, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR) continue;
        if (sent <= 0) return -1;
        data += sent;
        len -= (size_t)sent;
    }
    return 0;
}

/* Copies header `name`'s value from `headers` (case-insensitive, CRLF lines) into `out`. */
static int header_value(const char *headers, const char *name, char *out, size_t size) {
    size_t name_len = strlen(name);
    for (const char *line = headers; line && *line; line = strstr(line, "\r\n")) {
        if (line[0] == '\r') line += 2;
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *value = line + name_len + 1;
            while (*value == ' ' || *value == '\t') value++;
            size_t len = strcspn(value, "\r\n");
            if (len >= size) len = size - 1;
            memcpy(out, value, len);
            out[len] = '\0';
            return 1;
        }
    }
    return 0;
}

/*
 * One request and its response on the keep-alive connection. Returns -1 if the connection
 * failed before any byte of a response came back (it may have been closed while idle).
 */
static int try_request(const char *method, const char *path, const char *error_type,
                       const buf_t *body, response_t *response) {
    if (connection < 0) connection = connect_to_api();
    buf_t head = {0};
    buf_printf(&head, "%s %s%s HTTP/1.1\r\nHost: %s:%s\r\n", method, PREFIX, path, api_host,
               api_port);
    if (error_type) buf_printf(&head, "Lambda-Runtime-Function-Error-Type: %s\r\n", error_type);
    if (body) {
        buf_printf(&head, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body->len);
    }
    buf_str(&head, "\r\n");
    /* One write for head and body: two small writes meet Nagle and delayed ACK (40 ms). */
    if (body) buf_add(&head, body->data, body->len);
    int failed = send_all(connection, head.data, head.len) < 0;
    free(head.data);
    if (failed) return -1;

    /* Read up to the blank line that ends the head; what follows it is the body's start. */
    buf_t in = {0};
    char chunk[4096];
    char *end = NULL;
    while (!(end = in.data ? strstr(in.data, "\r\n\r\n") : NULL)) {
        ssize_t got = recv(connection, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            int nothing = in.len == 0;
            free(in.data);
            if (nothing) return -1;
            die("the Runtime API closed the connection mid-response", got ? errno : 0);
        }
        buf_add(&in, chunk, (size_t)got);
    }
    *end = '\0';
    char *headers = strstr(in.data, "\r\n");
    headers = headers ? headers + 2 : end;
    memset(response, 0, sizeof *response);
    if (sscanf(in.data, "HTTP/1.%*d %d", &response->status) != 1) {
        die("parsing the status line", 0);
    }
    char value[64];
    size_t length = header_value(headers, "Content-Length", value, sizeof value)
                        ? strtoull(value, NULL, 10) : 0;
    response->keep_alive = !(header_value(headers, "Connection", value, sizeof value) &&
                             strcasecmp(value, "close") == 0);
    header_value(headers, "Lambda-Runtime-Aws-Request-Id", response->request_id,
                 sizeof response->request_id);
    header_value(headers, "Lambda-Runtime-Invoked-Function-Arn", response->function_arn,
                 sizeof response->function_arn);
    if (header_value(headers, "Lambda-Runtime-Deadline-Ms", value, sizeof value)) {
        response->deadline_ms = strtoll(value, NULL, 10);
    }

    response->body = malloc(length + 1);
    if (!response->body) die("out of memory", ENOMEM);
    size_t have = in.len - (size_t)(end + 4 - in.data);
    if (have > length) have = length;
    memcpy(response->body, end + 4, have);
    free(in.data);
    while (have < length) {
        ssize_t got = recv(connection, response->body + have, length - have, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) die("reading a response body", got ? errno : 0);
        have += (size_t)got;
    }
    response->body[length] = '\0';
    response->body_len = length;
    if (!response->keep_alive) {
        close(connection);
        connection = -1;
    }
    return 0;
}

static void request(const char *method, const char *path, const char *error_type,
                    const buf_t *body, response_t *response) {
    int reused = connection >= 0;
    errno = 0; /* a peer's close sets no errno: report no stale one */
    if (try_request(method, path, error_type, body, response) == 0) return;
    int error = errno;
    close(connection);
    connection = -1;
    /* Only a GET is safe to repeat: a repeated POST could answer an invocation twice. */
    if (reused && strcmp(method, "GET") == 0) {
        errno = 0;
        if (try_request(method, path, error_type, body, response) == 0) return;
        error = errno;
        close(connection);
        connection = -1;
    }
    die(path, error);
}

static void post(const char *path, const char *error_type, const buf_t *body) {
    response_t response;
    request("POST", path, error_type, body, &response);
    if (response.status != 202) {
        fprintf(stderr, "c runtime: POST %s answered %d: %s\n", path, response.status,
                response.body);
        exit(1);
    }
    free(response.body);
}

/* Whether the event has "fail": true. A scan, not a JSON parser: enough for this example. */
static int asks_to_fail(const char *event) {
    for (const char *key = strstr(event, "\"fail\""); key; key = strstr(key + 1, "\"fail\"")) {
        const char *c = key + 6;
        while (isspace((unsigned char)*c)) c++;
        if (*c++ != ':') continue;
        while (isspace((unsigned char)*c)) c++;
        if (strncmp(c, "true", 4) == 0) return 1;
    }
    return 0;
}

static int is_blank(const char *text) {
    while (isspace((unsigned char)*text)) text++;
    return *text == '\0';
}

int main(void) {
    /* stdout is a pipe: flush each line so it lands in the invocation's log. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    const char *colon = api ? strrchr(api, ':') : NULL;
    if (!colon || (size_t)(colon - api) >= sizeof api_host ||
        strlen(colon + 1) >= sizeof api_port) {
        fprintf(stderr, "c runtime: AWS_LAMBDA_RUNTIME_API is not host:port\n");
        return 1;
    }
    memcpy(api_host, api, (size_t)(colon - api));
    strcpy(api_port, colon + 1);

    const char *handler = getenv("_HANDLER");
    if (!handler) handler = "";
    if (strcmp(handler, "echo") != 0) {
        buf_t message = {0}, body = {0};
        buf_printf(&message, "c runtime has no handler '%s' (only \"echo\")", handler);
        fprintf(stderr, "%s\n", message.data);
        buf_str(&body, "{\"errorType\":\"Runtime.HandlerNotFound\",\"errorMessage\":");
        buf_json_string(&body, message.data);
        buf_str(&body, "}");
        post("/init/error", "Runtime.HandlerNotFound", &body);
        return 1;
    }

    long pid = (long)getpid();
    for (long count = 1;; count++) {
        response_t next;
        request("GET", "/invocation/next", NULL, NULL, &next);
        if (next.status != 200) {
            fprintf(stderr, "c runtime: /invocation/next answered %d\n", next.status);
            return 1;
        }
        printf("c runtime handling %s (invocation %ld in pid %ld)\n", next.request_id, count, pid);

        buf_t path = {0}, body = {0};
        if (asks_to_fail(next.body)) {
            buf_printf(&path, "/invocation/%s/error", next.request_id);
            buf_printf(&body, "{\"errorType\":\"%s\",\"errorMessage\":", ERROR_TYPE);
            buf_t message = {0};
            buf_printf(&message, "c runtime was asked to fail %s", next.request_id);
            buf_json_string(&body, message.data);
            buf_str(&body, "}");
            free(message.data);
            post(path.data, ERROR_TYPE, &body);
        } else {
            buf_printf(&path, "/invocation/%s/response", next.request_id);
            buf_str(&body, "{\"greeting\":\"hello from c\",\"runtime\":\"c\",\"handler\":");
            buf_json_string(&body, handler);
            buf_str(&body, ",\"request_id\":");
            buf_json_string(&body, next.request_id);
            buf_str(&body, ",\"function_arn\":");
            buf_json_string(&body, next.function_arn);
            buf_printf(&body, ",\"deadline_ms\":%lld,\"pid\":%ld,\"count\":%ld,\"event\":",
                       next.deadline_ms, pid, count);
            /* The event is JSON already (the Invoke API checked it): echo it verbatim. */
            if (is_blank(next.body)) {
                buf_str(&body, "null");
            } else {
                buf_add(&body, next.body, next.body_len);
            }
            buf_str(&body, "}");
            post(path.data, NULL, &body);
        }
        free(path.data);
        free(body.data);
        free(next.body);
    }
}
