/* sseload: N Server-Sent Events clients in one epoll loop, cheap enough to leave the server's latency visible.
 *
 *   sseload HOST PORT PATH N RECORDS_FILE [INFLIGHT [HEADER]]
 *
 * Opens N keep-alive HTTP/1.1 GETs to PATH (at most INFLIGHT handshakes at a time, default 256; HEADER, e.g.
 * "Authorization: Bearer <key>", is added to each request), decodes
 * chunked transfer encoding when the server uses it, and splits the body into SSE events. The bench feeds
 * every server the same contract document, whose first fields are {"id":...,"seq":N,...}: an event whose
 * first data line carries "seq":N is recorded as (client, seq, CLOCK_REALTIME when its closing blank line
 * was read). Per client, seq must grow by exactly one: a jump is a gap, a repeat a duplicate.
 *
 * stdout: a status line every 250 ms ("status connected=.. failed=.. closed=.. pending=.. events=.."), and
 * on SIGTERM/SIGINT one JSON summary line, including the loader's own CPU (getrusage), after the records
 * have been written to RECORDS_FILE as packed little-endian {uint32 client, uint32 seq, double unix_time}.
 * Build: gcc -O2 -o sseload loader.c (bench/run.py does this).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum phase { P_IDLE, P_CONNECTING, P_HEADERS, P_STREAM, P_DONE };
enum chunk { C_SIZE, C_DATA, C_DATA_END };
#define HEADCAP 96
#define HDRCAP 2048
#define PER_SOURCE 2000

typedef struct {
    int fd;
    uint8_t phase, chunked, cstate, last_char;
    uint32_t crem;       /* bytes left in the current chunk */
    uint32_t line_len;   /* bytes of the current SSE line so far */
    uint16_t head_len, hdr_len;
    int64_t cur_seq, last_seq;
    char head[HEADCAP];  /* first bytes of the current line: enough to find "seq" */
    char *hdr;           /* response head until the blank line, freed afterwards */
} client_t;

typedef struct { uint32_t client, seq; double t; } __attribute__((packed)) record_t;

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static client_t *clients;
static record_t *records;
static size_t nrecords, caprecords;
static long n_connected, n_failed, n_closed, n_pending, n_gaps, n_dups, n_events, n_bad_status;
static unsigned long long n_bytes;

static double now_real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record(uint32_t idx, int64_t seq, double t) {
    client_t *c = &clients[idx];
    if (c->last_seq >= 0) {
        if (seq == c->last_seq + 1) { /* in order */ }
        else if (seq <= c->last_seq) n_dups++;
        else n_gaps += seq - c->last_seq - 1;
    }
    if (seq > c->last_seq) c->last_seq = seq;
    if (nrecords == caprecords) {
        caprecords = caprecords ? caprecords * 2 : 1 << 16;
        records = realloc(records, caprecords * sizeof(record_t));
        if (!records) { perror("realloc"); exit(2); }
    }
    records[nrecords++] = (record_t){idx, (uint32_t)seq, t};
    n_events++;
}

static int64_t find_seq(const char *h, size_t n) {
    static const char pat[] = "\"seq\":";
    if (n < 5 || memcmp(h, "data:", 5) != 0) return -1;
    const char *p = memmem(h, n, pat, sizeof(pat) - 1);
    if (!p) return -1;
    p += sizeof(pat) - 1;
    const char *end = h + n;
    if (p >= end || *p < '0' || *p > '9') return -1;
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    return v;
}

/* SSE bytes (after transfer decoding): find line ends with memchr, keep only each line's head. */
static void feed_sse(uint32_t idx, const char *p, size_t n, double t) {
    client_t *c = &clients[idx];
    while (n > 0) {
        const char *q = memchr(p, '\n', n);
        size_t seg = q ? (size_t)(q - p) : n;
        if (c->head_len < HEADCAP) {
            size_t take = HEADCAP - c->head_len;
            if (take > seg) take = seg;
            memcpy(c->head + c->head_len, p, take);
            c->head_len += take;
        }
        if (seg) c->last_char = (uint8_t)p[seg - 1];
        c->line_len += seg;
        if (!q) return;
        size_t content = c->line_len - (c->line_len && c->last_char == '\r' ? 1 : 0);
        if (content == 0) {  /* blank line: the event is complete */
            if (c->cur_seq >= 0) record(idx, c->cur_seq, t);
            c->cur_seq = -1;
        } else if (c->cur_seq < 0) {
            size_t hn = c->head_len < content ? c->head_len : content;
            c->cur_seq = find_seq(c->head, hn);
        }
        c->line_len = 0;
        c->head_len = 0;
        c->last_char = 0;
        p = q + 1;
        n -= seg + 1;
    }
}

static void close_client(int ep, uint32_t idx, int failed) {
    client_t *c = &clients[idx];
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->phase == P_CONNECTING || c->phase == P_HEADERS) n_pending--;
    if (c->phase == P_STREAM) { n_connected--; n_closed++; }
    else if (failed) n_failed++;
    c->fd = -1;
    c->phase = P_DONE;
    free(c->hdr);
    c->hdr = NULL;
}

/* Body bytes: undo chunked encoding if the server used it. Returns 0 when the stream ended. */
static int feed_body(uint32_t idx, const char *p, size_t n, double t) {
    client_t *c = &clients[idx];
    if (!c->chunked) { feed_sse(idx, p, n, t); return 1; }
    while (n > 0) {
        if (c->cstate == C_SIZE) {
            char ch = *p++; n--;
            if (ch == '\n') {
                if (c->crem == 0) return 0;  /* last chunk */
                c->cstate = C_DATA;
            } else if (ch >= '0' && ch <= '9') c->crem = c->crem * 16 + (uint32_t)(ch - '0');
            else if (ch >= 'a' && ch <= 'f') c->crem = c->crem * 16 + (uint32_t)(ch - 'a' + 10);
            else if (ch >= 'A' && ch <= 'F') c->crem = c->crem * 16 + (uint32_t)(ch - 'A' + 10);
            /* '\r' and chunk extensions are skipped */
        } else if (c->cstate == C_DATA) {
            size_t take = n < c->crem ? n : c->crem;
            feed_sse(idx, p, take, t);
            p += take; n -= take; c->crem -= (uint32_t)take;
            if (c->crem == 0) c->cstate = C_DATA_END;
        } else {  /* CRLF after the chunk's data */
            char ch = *p++; n--;
            if (ch == '\n') { c->cstate = C_SIZE; c->crem = 0; }
        }
    }
    return 1;
}

static int start_connect(int ep, uint32_t idx, struct sockaddr_in *addr) {
    client_t *c = &clients[idx];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Spread clients over source addresses 127.0.0.2, .3, ... (PER_SOURCE each): with ~20k connections from one
     * address to one port, the kernel's search for a free ephemeral port becomes linear and connect() costs ~1 ms. */
    if (((ntohl(addr->sin_addr.s_addr) >> 24) & 0xff) == 127) {
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
        src.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)(2 + idx / PER_SOURCE));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) { close(fd); return -1; }
    }
    c->fd = fd;
    c->phase = P_CONNECTING;
    c->last_seq = c->cur_seq = -1;
    n_pending++;
    if (connect(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 && errno != EINPROGRESS) {
        close_client(ep, idx, 1);
        return 0;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = idx};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH N RECORDS_FILE [INFLIGHT [HEADER]]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3], *out = argv[5];
    int port = atoi(argv[2]);
    long n = atol(argv[4]);
    long inflight = argc > 6 ? atol(argv[6]) : 256;
    const char *extra = argc > 7 ? argv[7] : NULL;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;  /* every socket is a descriptor: take the whole hard limit */
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
    char request[1024];
    int reqlen = snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n%s%s\r\n",
                          path, host, port, extra ? extra : "", extra ? "\r\n" : "");
    if (reqlen < 0 || reqlen >= (int)sizeof(request)) { fprintf(stderr, "request too long\n"); return 2; }

    clients = calloc((size_t)n, sizeof(client_t));
    if (!clients) { perror("calloc"); return 2; }
    for (long i = 0; i < n; i++) clients[i].fd = -1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    static char buf[1 << 18];
    struct epoll_event evs[512];
    long next = 0;
    double last_status = 0;

    while (!stop_flag) {
        while (next < n && n_pending < inflight) {
            if (start_connect(ep, (uint32_t)next, &addr) < 0) {  /* out of descriptors: stop opening */
                fprintf(stderr, "socket: %s after %ld clients\n", strerror(errno), next);
                n_failed += n - next;
                next = n;
                break;
            }
            next++;
        }
        int k = epoll_wait(ep, evs, 512, 100);
        double t = now_real();
        for (int e = 0; e < k; e++) {
            uint32_t idx = evs[e].data.u32;
            client_t *c = &clients[idx];
            if (c->phase == P_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || (evs[e].events & (EPOLLERR | EPOLLHUP))) { close_client(ep, idx, 1); continue; }
                if (write(c->fd, request, (size_t)reqlen) != reqlen) { close_client(ep, idx, 1); continue; }
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = idx};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->phase = P_HEADERS;
                c->hdr = malloc(HDRCAP);
                continue;
            }
            ssize_t r = read(c->fd, buf, sizeof(buf));
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                close_client(ep, idx, 1);
                continue;
            }
            n_bytes += (unsigned long long)r;
            const char *p = buf;
            size_t left = (size_t)r;
            if (c->phase == P_HEADERS) {
                size_t take = left;
                if (c->hdr_len + take > HDRCAP - 1) take = HDRCAP - 1 - c->hdr_len;
                memcpy(c->hdr + c->hdr_len, p, take);
                c->hdr_len += take;
                c->hdr[c->hdr_len] = 0;
                char *end = strstr(c->hdr, "\r\n\r\n");
                if (!end) {
                    if (c->hdr_len >= HDRCAP - 1) { n_bad_status++; close_client(ep, idx, 1); }
                    continue;
                }
                size_t head_bytes = (size_t)(end + 4 - c->hdr);
                size_t body_off = head_bytes - (c->hdr_len - take);  /* where the body starts in buf */
                if (strncmp(c->hdr, "HTTP/1.1 200", 12) != 0) { n_bad_status++; close_client(ep, idx, 1); continue; }
                *end = 0;
                c->chunked = strcasestr(c->hdr, "transfer-encoding: chunked") != NULL;
                free(c->hdr);
                c->hdr = NULL;
                c->phase = P_STREAM;
                n_pending--;
                n_connected++;
                p += body_off;
                left -= body_off;
            }
            if (left && !feed_body(idx, p, left, t)) close_client(ep, idx, 0);
        }
        if (t - last_status >= 0.25) {
            last_status = t;
            printf("status connected=%ld failed=%ld closed=%ld pending=%ld events=%ld\n", n_connected, n_failed,
                   n_closed, n_pending, n_events);
            fflush(stdout);
        }
    }

    FILE *f = fopen(out, "wb");
    if (!f || fwrite(records, sizeof(record_t), nrecords, f) != nrecords) { perror(out); return 2; }
    fclose(f);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"connected\":%ld,\"failed\":%ld,\"closed\":%ld,\"bad_status\":%ld,\"events\":%ld,\"gaps\":%ld,"
           "\"duplicates\":%ld,\"bytes\":%llu,\"records\":%zu,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f}\n",
           n_connected, n_failed, n_closed, n_bad_status, n_events, n_gaps, n_dups, n_bytes, nrecords,
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    fflush(stdout);
    return 0;
}
