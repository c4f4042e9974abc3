/* SipHash-1-3 under a random 128-bit key drawn once per process (os.urandom when the module is
 * loaded): the hash of every table whose keys come from untrusted text (the queries hot loop's
 * words and link targets, the crawl matcher's words), so nobody can choose keys that pile into
 * one probe run. Included by both extensions; each gets its own copy of the key. */

#ifndef WIT_SIPHASH_H
#define WIT_SIPHASH_H

#include <Python.h>
#include <stdint.h>

static uint64_t sip_key[2];

typedef struct { uint64_t v0, v1, v2, v3; } SipState;

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void sip_round(SipState *s) {
    s->v0 += s->v1; s->v1 = SIP_ROTL(s->v1, 13); s->v1 ^= s->v0; s->v0 = SIP_ROTL(s->v0, 32);
    s->v2 += s->v3; s->v3 = SIP_ROTL(s->v3, 16); s->v3 ^= s->v2;
    s->v0 += s->v3; s->v3 = SIP_ROTL(s->v3, 21); s->v3 ^= s->v0;
    s->v2 += s->v1; s->v1 = SIP_ROTL(s->v1, 17); s->v1 ^= s->v2; s->v2 = SIP_ROTL(s->v2, 32);
}

static inline SipState sip_start(void) {
    SipState s = {0x736f6d6570736575ULL ^ sip_key[0], 0x646f72616e646f6dULL ^ sip_key[1],
                  0x6c7967656e657261ULL ^ sip_key[0], 0x7465646279746573ULL ^ sip_key[1]};
    return s;
}

/* One 8-byte block, read little-endian (one compression round: SipHash-1-3). */
static inline void sip_block(SipState *s, uint64_t m) {
    s->v3 ^= m;
    sip_round(s);
    s->v0 ^= m;
}

/* The hash, after the last block (which carries the length in its top byte): three rounds. */
static inline uint64_t sip_finish(SipState *s) {
    s->v2 ^= 0xff;
    sip_round(s); sip_round(s); sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

static inline uint64_t sip_load_le64(const unsigned char *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* SipHash-1-3 of s[:n]. */
static inline uint64_t siphash13(const unsigned char *s, Py_ssize_t n) {
    SipState state = sip_start();
    const unsigned char *end = s + (n & ~(Py_ssize_t)7);
    for (; s < end; s += 8) sip_block(&state, sip_load_le64(s));
    uint64_t last = (uint64_t)n << 56;
    for (int i = (int)(n & 7) - 1; i >= 0; i--) last |= (uint64_t)s[i] << (8 * i);
    sip_block(&state, last);
    return sip_finish(&state);
}

/* The key, from os.urandom (the one source CPython trusts on every platform); -1 on error with
 * a Python exception set. */
static int sip_key_init(void) {
    PyObject *os = PyImport_ImportModule("os");
    PyObject *key = os ? PyObject_CallMethod(os, "urandom", "i", 16) : NULL;
    Py_XDECREF(os);
    if (!key) return -1;
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) != 16) {
        Py_DECREF(key);
        PyErr_SetString(PyExc_RuntimeError, "os.urandom(16) gave no 16 bytes");
        return -1;
    }
    sip_key[0] = sip_load_le64((const unsigned char *)PyBytes_AS_STRING(key));
    sip_key[1] = sip_load_le64((const unsigned char *)PyBytes_AS_STRING(key) + 8);
    Py_DECREF(key);
    return 0;
}

#endif
