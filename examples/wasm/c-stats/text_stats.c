/* text-stats: a cap-v1 plugin in C (built with zig's clang for wasm32-wasi, as a reactor).
 *
 * text.stats  {"text": "..."}  ->  {"bytes": N, "chars": N, "words": N, "lines": N}
 *
 * The ABI glue is the first 25 lines; the rest is the capability. JSON parsing is minimal
 * on purpose: it finds the "text" member and decodes its string (all escapes included).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

static char *request;  /* the input of the call in progress: ours once cap_call runs */
static char *response; /* the last output: valid until the next call into the plugin */

EXPORT("cap_abi_version") int32_t cap_abi_version(void) { return 1; }

EXPORT("cap_alloc") char *cap_alloc(int32_t len) {
    free(request);
    free(response);
    response = NULL;
    request = malloc(len > 0 ? (size_t)len : 1);
    return request;
}

static int64_t reply(const char *data, size_t len, int error) {
    return ((int64_t)(uintptr_t)data << 32) | (int64_t)len | (error ? 0x80000000LL : 0);
}

static int64_t fail(const char *message) {
    response = malloc(strlen(message) + 40);
    int n = sprintf(response, "{\"code\":\"INVALID_PARAMS\",\"message\":\"%s\"}", message);
    return reply(response, (size_t)n, 1);
}

/* Decode the JSON string starting after its opening quote into out; returns its length
 * in bytes, or -1 if it is malformed. */
static long decode_string(const char *p, const char *end, char *out) {
    long n = 0;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p++;
        if (c != '\\') { out[n++] = (char)c; continue; }
        if (p >= end) return -1;
        c = (unsigned char)*p++;
        switch (c) {
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'u': {
            if (end - p < 4) return -1;
            unsigned cp = (unsigned)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
            p += 4;
            /* a surrogate pair counts as one character: encode U+FFFD-sized (3 bytes) per half */
            if (cp < 0x80) out[n++] = (char)cp;
            else if (cp < 0x800) { out[n++] = (char)(0xC0 | cp >> 6); out[n++] = (char)(0x80 | (cp & 63)); }
            else { out[n++] = (char)(0xE0 | cp >> 12); out[n++] = (char)(0x80 | ((cp >> 6) & 63)); out[n++] = (char)(0x80 | (cp & 63)); }
            break;
        }
        default: out[n++] = (char)c;
        }
    }
    return p < end ? n : -1;
}

EXPORT("cap_call") int64_t cap_call(char *input, int32_t len) {
    const char *end = input + len;
    const char *key = NULL;
    for (const char *p = input; p + 6 <= end; p++) {
        if (memcmp(p, "\"text\"", 6) == 0) { key = p + 6; break; }
    }
    if (!key) return fail("missing member 'text'");
    while (key < end && (*key == ' ' || *key == ':' || *key == '\n' || *key == '\t')) key++;
    if (key >= end || *key != '"') return fail("'text' must be a string");
    char *text = malloc((size_t)len);
    long n = decode_string(key + 1, end, text);
    if (n < 0) { free(text); return fail("'text' is not a valid JSON string"); }
    long chars = 0, words = 0, lines = n > 0 ? 1 : 0;
    int in_word = 0;
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c & 0xC0) != 0x80) chars++;
        if (c == '\n') lines++;
        int space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
        if (!space && !in_word) words++;
        in_word = !space;
    }
    free(text);
    response = malloc(128);
    int size = snprintf(response, 128, "{\"bytes\":%ld,\"chars\":%ld,\"words\":%ld,\"lines\":%ld}",
                        n, chars, words, lines);
    return reply(response, (size_t)size, 0);
}
