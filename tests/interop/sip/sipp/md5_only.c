/*
 * LD_PRELOAD shim for sipp 3.6.1 (Debian bookworm's sip-tester): removes, from what sipp
 * receives, every WWW-Authenticate / Proxy-Authenticate line whose algorithm= is not MD5
 * (MD5-sess and AKA included: sipd offers neither).
 *
 * Why: sipd answers REGISTER with one 401 carrying two challenges, SHA-256 first then MD5
 * (RFC 8760 order). sipp 3.6.1 concatenates all WWW-Authenticate headers and reads the first
 * `algorithm=`, so it sees SHA-256 and aborts the call with "createAuthHeader: authentication
 * must use MD5 or AKAv1-MD5" instead of answering the MD5 challenge it supports (RFC 8760
 * §2.4: a client uses the first challenge whose algorithm it supports). The shim makes sipp
 * behave as that rule says; the server still sends, and is measured with, both challenges.
 *
 * sipsak 0.9.8.1 ("unsupported authentication algorithm") and baresip 1.0.0 / libre
 * ("Register: Function not implemented", ENOSYS from libre's auth handler) fail the same way
 * on the first challenge; the same shim works for them.
 *
 * Wrapped: recv(2) and recvfrom(2) (all that sipp and sipsak import for receiving) and
 * OpenSSL's SSL_read (libre's TLS, so baresip over TLS is filtered after decryption). A header
 * line split across two stream reads would be left as is (the client would then fail the
 * registration, visibly); SIP messages this small arrive in one read in practice.
 *
 * Build: cc -O2 -shared -fPIC -o md5_only.so md5_only.c -ldl
 * Use:   LD_PRELOAD=/path/md5_only.so sipp ...   (or sipsak, baresip)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>

static ssize_t filter(char *buf, ssize_t n)
{
    if (n <= 0) {
        return n;
    }
    ssize_t i = 0;
    while (i < n) {
        /* [i, eol) is one line; eol points at '\n' or n. */
        char *nl = memchr(buf + i, '\n', (size_t)(n - i));
        ssize_t eol = nl ? nl - buf : n;
        ssize_t len = eol - i;
        int is_auth = (len > 17 && strncasecmp(buf + i, "WWW-Authenticate:", 17) == 0) ||
                      (len > 19 && strncasecmp(buf + i, "Proxy-Authenticate:", 19) == 0);
        if (is_auth && nl) {
            /* A challenge without algorithm= is MD5 (RFC 2617); keep it, and MD5 ones. */
            int other = 0;
            for (ssize_t j = i; j + 10 <= eol; j++) {
                if (strncasecmp(buf + j, "algorithm=", 10) == 0) {
                    const char *v = buf + j + 10;
                    ssize_t vlen = eol - (j + 10);
                    if (vlen > 0 && *v == '"') {
                        v++;
                        vlen--;
                    }
                    int is_md5 = vlen >= 3 && strncasecmp(v, "MD5", 3) == 0 &&
                                 (vlen == 3 || v[3] == ',' || v[3] == ' ' || v[3] == '"' ||
                                  v[3] == '\r' || v[3] == ';');
                    other = !is_md5;
                    break;
                }
            }
            if (other) {
                ssize_t drop = eol + 1 - i; /* the line and its '\n' */
                memmove(buf + i, buf + eol + 1, (size_t)(n - eol - 1));
                n -= drop;
                continue;
            }
        }
        i = eol + 1;
    }
    return n;
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    static ssize_t (*real)(int, void *, size_t, int);
    if (!real) {
        real = (ssize_t(*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
    }
    ssize_t n = real(fd, buf, len, flags);
    return (flags & MSG_PEEK) ? n : filter(buf, n);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *src, socklen_t *srclen)
{
    static ssize_t (*real)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    if (!real) {
        real = (ssize_t(*)(int, void *, size_t, int, struct sockaddr *, socklen_t *))dlsym(
            RTLD_NEXT, "recvfrom");
    }
    ssize_t n = real(fd, buf, len, flags, src, srclen);
    return (flags & MSG_PEEK) ? n : filter(buf, n);
}

/* OpenSSL's SSL_read, for clients that take SIP over TLS from it (libre, hence baresip). */
int SSL_read(void *ssl, void *buf, int num)
{
    static int (*real)(void *, void *, int);
    if (!real) {
        real = (int (*)(void *, void *, int))dlsym(RTLD_NEXT, "SSL_read");
    }
    int n = real(ssl, buf, num);
    return n > 0 ? (int)filter(buf, n) : n;
}
