/* A neutral benchmark server: one thread, epoll, non-blocking sockets, never the bottleneck.
 *
 *   epoll_server CPU          listens on three loopback ports and prints them: "echo bulk sink"
 *
 * echo: sends back what it receives.  bulk: sends 256 KiB chunks for as long as the client reads.
 * sink: reads and discards.  The process pins itself to CPU `CPU` (the client takes another).
 * Built by bench/run.py with the machine's compiler: cc -O2 -o epoll_server epoll_server.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { ECHO, BULK, SINK };
#define CHUNK (256 * 1024)
static char buffer[CHUNK];

static int listen_on(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 65535)) { perror("listen"); exit(1); }
    return fd;
}

static int port_of(int fd) {
    struct sockaddr_in addr; socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    return ntohs(addr.sin_port);
}

/* epoll data: fd in the low 32 bits, mode in the high bits; listeners have bit 40 set. */
#define LISTENER (1ULL << 40)

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit); limit.rlim_cur = limit.rlim_max; setrlimit(RLIMIT_NOFILE, &limit);
    if (argc > 1) {
        cpu_set_t cpus; CPU_ZERO(&cpus); CPU_SET(atoi(argv[1]), &cpus);
        sched_setaffinity(0, sizeof cpus, &cpus);
    }
    memset(buffer, 'b', sizeof buffer);
    int ep = epoll_create1(0), listeners[3];
    for (int mode = 0; mode < 3; mode++) {
        listeners[mode] = listen_on();
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LISTENER | ((unsigned long long)mode << 32) | listeners[mode]};
        epoll_ctl(ep, EPOLL_CTL_ADD, listeners[mode], &ev);
    }
    printf("%d %d %d\n", port_of(listeners[ECHO]), port_of(listeners[BULK]), port_of(listeners[SINK]));
    fflush(stdout);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            unsigned long long data = events[i].data.u64;
            int fd = (int)(data & 0xffffffff), mode = (int)((data >> 32) & 0xff);
            if (data & LISTENER) {
                int client;
                while ((client = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ev = {.events = mode == BULK ? EPOLLIN | EPOLLOUT : EPOLLIN,
                                             .data.u64 = ((unsigned long long)mode << 32) | client};
                    epoll_ctl(ep, EPOLL_CTL_ADD, client, &ev);
                }
                continue;
            }
            if (events[i].events & (EPOLLHUP | EPOLLERR)) { close(fd); continue; }
            if (mode == BULK && (events[i].events & EPOLLOUT)) {
                while (send(fd, buffer, CHUNK, 0) > 0) {}
            }
            if (events[i].events & EPOLLIN) {
                ssize_t got;
                while ((got = recv(fd, buffer, CHUNK, 0)) > 0) {
                    if (mode == ECHO) {
                        ssize_t sent = 0;
                        while (sent < got) {  /* tiny echoes: the client's window keeps this short */
                            ssize_t w = send(fd, buffer + sent, got - sent, 0);
                            if (w < 0) { if (errno == EAGAIN) continue; break; }
                            sent += w;
                        }
                    }
                }
                if (got == 0 || (got < 0 && errno != EAGAIN)) close(fd);
                if (mode == BULK) memset(buffer, 'b', 64);
            }
        }
    }
}
