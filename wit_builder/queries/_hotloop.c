/* The compiled hot loop of `wit queries`: MediaWiki XML fragments -> word, pair and link counts.
 *
 * It does what wit_builder/queries/counts.py's Python path does (parse_page, strip_wikitext,
 * normalize, text.tokens through core/words.h, the counters), on bytes, and must give identical
 * counts.
 * The wikitext passes replay wikitext.py's regex substitutions in the same order, each as one
 * linear scan over UTF-8 bytes; Unicode classes (\s, \w) are decided with CPython's own tables.
 * Entities are decoded, and NFKC and lower-casing applied, per whitespace-delimited segment of
 * the stripped text (they are per-character, so segments cut at ' ', '\t', '\n', '\f' give the
 * same tokens as the whole text): ASCII segments are tokenised here; a segment whose entities
 * and non-ASCII characters all have a checked ASCII stand-in (counts.ascii_stand_ins: "&nbsp;"
 * -> " ", "\u2019" -> "'") is rewritten and tokenised here too; any other goes to a Python
 * callback (html.unescape + normalize + the word regex). A page whose wikitext the byte passes
 * cannot replay exactly (invalid UTF-8, a non-ASCII letter where re.I compares a tag name, odd
 * numeric XML references) is stripped by the Python reference (`fallback_page`), then counted
 * here. Articles are stripped and counted without the GIL; pairs are summed by a radix sort.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../core/siphash.h"
#include "../core/words.h"

typedef unsigned char u8;
typedef Py_ssize_t ssz;

#define BAIL (-1)
#define FAILED (-2)

/* ---------- growable byte buffers ---------- */

typedef struct {
    u8 *data;
    ssz len, cap;
} Buf;

static int buf_reserve(Buf *b, ssz need) {
    if (need <= b->cap) return 0;
    ssz cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    u8 *data = PyMem_RawRealloc(b->data, cap);
    if (!data) return FAILED;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const u8 *s, ssz n) {
    if (n <= 0) return 0;
    if (buf_reserve(b, b->len + n) < 0) return FAILED;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static void buf_free(Buf *b) {
    PyMem_RawFree(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Pass outputs never outgrow their input, so one reserve per pass makes every put safe. */
#define PUT(o, s, n) do { memcpy((o)->data + (o)->len, (s), (n)); (o)->len += (n); } while (0)

/* First `needle` in s[from:n]: memchr on its first byte (whose bytes are rare in wikitext and
 * XML: '<', '{', '[', '_') beats memmem's setup on these short needles. */
static const u8 *find(const u8 *s, ssz from, ssz n, const char *needle, ssz len) {
    const u8 *p = s + from, *end = s + n;
    while (end - p >= len) {
        p = memchr(p, needle[0], (end - p) - len + 1);
        if (!p) return NULL;
        if (!memcmp(p + 1, needle + 1, len - 1)) return p;
        p++;
    }
    return NULL;
}

static const u8 *find_byte(const u8 *s, ssz from, ssz n, int byte) {
    if (from >= n) return NULL;
    return memchr(s + from, byte, n - from);
}

/* ---------- Unicode helpers (the text is valid UTF-8 whenever these run) ---------- */

static ssz utf8_length(u8 lead) {
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

static Py_UCS4 utf8_decode(const u8 *s, ssz avail, ssz *length) {
    ssz n = utf8_length(s[0]);
    if (n > avail) n = avail;
    *length = n;
    if (n == 1) return s[0];
    if (n == 2) return ((Py_UCS4)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    if (n == 3) return ((Py_UCS4)(s[0] & 0x0F) << 12) | ((Py_UCS4)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return ((Py_UCS4)(s[0] & 0x07) << 18) | ((Py_UCS4)(s[1] & 0x3F) << 12) |
           ((Py_UCS4)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* Bytes of the whitespace character (regex \s, str.isspace) at s, 0 when it is not one. */
static ssz space_length(const u8 *s, ssz avail) {
    if (avail <= 0) return 0;
    if (s[0] < 0x80)
        return (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r') || (s[0] >= 0x1C && s[0] <= 0x1F));
    ssz n;
    Py_UCS4 ch = utf8_decode(s, avail, &n);
    return Py_UNICODE_ISSPACE(ch) ? n : 0;
}

/* Regex \w (letter, digit or underscore, any script) at s; 0 at the end of the text. */
static int is_word_char(const u8 *s, ssz avail) {
    if (avail <= 0) return 0;
    if (s[0] < 0x80) return Py_ISALNUM(s[0]) || s[0] == '_';
    ssz n;
    return Py_UNICODE_ISALNUM(utf8_decode(s, avail, &n));
}

static ssz char_length(const u8 *s, ssz avail) {
    ssz n = utf8_length(s[0]);
    return n > avail ? avail : n;
}

/* Strict UTF-8 validation (what Python's decoder accepts without errors). */
static int valid_utf8(const u8 *s, ssz n) {
    ssz i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t chunk;
            memcpy(&chunk, s + i, 8);
            if (!(chunk & 0x8080808080808080ULL)) { i += 8; continue; }
        }
        u8 c = s[i];
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && s[i + 1] < 0xA0) return 0;   /* overlong */
            if (c == 0xED && s[i + 1] >= 0xA0) return 0;  /* surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80) return 0;
            if (c == 0xF0 && s[i + 1] < 0x90) return 0;
            if (c == 0xF4 && s[i + 1] >= 0x90) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static ssz utf8_encode(Py_UCS4 ch, u8 *out) {
    if (ch < 0x80) { out[0] = (u8)ch; return 1; }
    if (ch < 0x800) { out[0] = 0xC0 | (ch >> 6); out[1] = 0x80 | (ch & 0x3F); return 2; }
    if (ch < 0x10000) {
        out[0] = 0xE0 | (ch >> 12); out[1] = 0x80 | ((ch >> 6) & 0x3F); out[2] = 0x80 | (ch & 0x3F);
        return 3;
    }
    out[0] = 0xF0 | (ch >> 18); out[1] = 0x80 | ((ch >> 12) & 0x3F);
    out[2] = 0x80 | ((ch >> 6) & 0x3F); out[3] = 0x80 | (ch & 0x3F);
    return 4;
}

/* Case-insensitive compare of ASCII `name` at s: 1 match, 0 no match, BAIL when a non-ASCII
 * character stands where a letter is compared (re.I also matches 'ı', 'İ', 'ſ' and the Kelvin
 * sign to ASCII letters: the Python reference decides those pages). */
static int match_name(const u8 *s, ssz avail, const char *name, ssz len) {
    for (ssz i = 0; i < len; i++) {
        if (i >= avail) return 0;
        if (s[i] >= 0x80) {
            ssz n;
            Py_UCS4 ch = utf8_decode(s + i, avail - i, &n);
            return (ch == 0x130 || ch == 0x131 || ch == 0x17F || ch == 0x212A) ? BAIL : 0;
        }
        if (Py_TOLOWER(s[i]) != (u8)name[i]) return 0;
    }
    return 1;
}

/* ---------- the passes of strip_wikitext, in its order ---------- */

/* Most passes are one regex substitution: every match (found from a trigger string, left to
 * right, never overlapping) is replaced by `replacement` (usually nothing). */
typedef struct {
    ssz end;                 /* 0: no match at this position; BAIL: let Python strip the page */
    const u8 *replacement;
    ssz replacement_length;
} Match;

typedef Match (*MatchAt)(const u8 *s, ssz n, ssz at);
/* Match.end when no match can start here or anywhere after (an element opening with no ">"
 * after it): the scan stops instead of searching the rest again from every later opening. */
#define NO_MORE (-2)

static const Match NO_MATCH = {0, NULL, 0};

static Match removed_up_to(ssz end) {
    Match match = {end, NULL, 0};
    return match;
}

/* Writes the substituted text to `o` and returns 1, or returns 0 (nothing matched: the input
 * stands, `o` is untouched) or BAIL. */
static int substitute(const u8 *s, ssz n, Buf *o, const char *trigger, MatchAt match_at) {
    ssz i = 0, from = 0, trigger_length = (ssz)strlen(trigger);
    const u8 *p;
    while ((p = find(s, from, n, trigger, trigger_length))) {
        ssz at = p - s;
        Match match = match_at(s, n, at);
        if (match.end == BAIL) return BAIL;
        if (match.end == NO_MORE) break;
        if (!match.end) { from = at + 1; continue; }
        PUT(o, s + i, at - i);
        if (match.replacement_length) PUT(o, match.replacement, match.replacement_length);
        i = from = match.end;
    }
    if (i == 0) return 0;
    if (i < n) PUT(o, s + i, n - i);
    return 1;
}

/* COMMENT: <!-- ... --> (an unclosed comment runs to the end). */
static Match comment_at(const u8 *s, ssz n, ssz at) {
    const u8 *e = find(s, at + 4, n, "-->", 3);
    return removed_up_to(e ? (e - s) + 3 : n);
}

/* Where `</name\s*>` first ends at or after `from` (n when never: the element runs to the end). */
static ssz element_close(const u8 *s, ssz n, ssz from, const char *name, ssz len) {
    const u8 *p;
    while ((p = find(s, from, n, "</", 2))) {
        ssz at = p - s;
        int matched = match_name(s + at + 2, n - at - 2, name, len);
        if (matched == BAIL) return BAIL;
        if (matched) {
            ssz k = at + 2 + len, w;
            while ((w = space_length(s + k, n - k))) k += w;
            if (k < n && s[k] == '>') return k + 1;
        }
        from = at + 1;
    }
    return n;
}

/* End of the element `<name\b[^>]*?/>` or `<name\b[^>]*>.*?(</name\s*>|\Z)` opening at `at`
 * (whose name ends at `name_end`); 0 when none opens there, NO_MORE when no ">" follows. */
static ssz element_end(const u8 *s, ssz n, ssz name_end, const char *name, ssz len) {
    if (is_word_char(s + name_end, n - name_end)) return 0;
    const u8 *gt = find_byte(s, name_end, n, '>');
    if (!gt) return NO_MORE;
    ssz g = gt - s;
    if (g - 1 >= name_end && s[g - 1] == '/') return g + 1;
    return element_close(s, n, g + 1, name, len);
}

static const char *DROPPED_NAMES[] = {
    "math", "chem", "ce", "gallery", "timeline", "score", "hiero", "imagemap", "syntaxhighlight",
    "source", "pre", "templatedata", "templatestyles", "graph", "mapframe", "maplink", "inputbox",
    "categorytree", "references", NULL};

/* REF (names = {"ref"}) or DROPPED_ELEMENT (names = DROPPED_NAMES) opening at `at`. */
static Match element_at(const u8 *s, ssz n, ssz at, const char **names) {
    for (const char **name = names; *name; name++) {
        ssz len = (ssz)strlen(*name);
        int matched = match_name(s + at + 1, n - at - 1, *name, len);
        if (matched == BAIL) return removed_up_to(BAIL);
        if (!matched) continue;
        ssz end = element_end(s, n, at + 1 + len, *name, len);
        if (end == BAIL) return removed_up_to(BAIL);
        if (end) return removed_up_to(end);
    }
    return NO_MATCH;
}

static Match ref_at(const u8 *s, ssz n, ssz at) {
    static const char *ref[] = {"ref", NULL};
    return element_at(s, n, at, ref);
}

static Match dropped_element_at(const u8 *s, ssz n, ssz at) {
    return element_at(s, n, at, DROPPED_NAMES);
}

/* remove_templates in one pass: each `}}` closes the nearest open `{{` and removes what it spans
 * (spans inside it included); an unclosed `{{` stays. 1 when something was removed, 0 when not,
 * BAIL when out of memory (the Python reference then strips the page). */
static int pass_templates(const u8 *s, ssz n, Buf *o) {
    ssz *opened = PyMem_RawMalloc(sizeof(ssz) * (n / 2 + 1));
    ssz *spans = PyMem_RawMalloc(sizeof(ssz) * 2 * (n / 2 + 1));  /* start, end; disjoint */
    if (!opened || !spans) { PyMem_RawFree(opened); PyMem_RawFree(spans); return BAIL; }
    ssz depth = 0, count = 0;
    for (ssz i = 0; i + 1 < n;) {
        if (s[i] == '{' && s[i + 1] == '{') {
            opened[depth++] = i;
            i += 2;
        } else if (s[i] == '}' && s[i + 1] == '}') {
            if (depth) {
                ssz start = opened[--depth];
                while (count && spans[2 * (count - 1)] >= start) count--;
                spans[2 * count] = start;
                spans[2 * count + 1] = i + 2;
                count++;
            }
            i += 2;
        } else {
            i++;
        }
    }
    ssz position = 0;
    for (ssz k = 0; k < count; k++) {
        PUT(o, s + position, spans[2 * k] - position);
        position = spans[2 * k + 1];
    }
    if (count) PUT(o, s + position, n - position);
    PyMem_RawFree(opened);
    PyMem_RawFree(spans);
    return count > 0;
}

/* remove_tables: `{|` ... `|}` at line starts, nested; an unclosed table swallows the rest. */
static int pass_tables(const u8 *s, ssz n, Buf *o) {
    ssz depth = 0, start = 0, line = 0;
    while (line < n) {
        ssz k = line;
        while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
        int opener = k + 1 < n && s[k] == '{' && s[k + 1] == '|';
        int closer = !opener && k + 1 < n && s[k] == '|' && s[k + 1] == '}';
        ssz next_from = k;
        if (opener || closer) {
            if (depth == 0) PUT(o, s + start, line - start);
            depth = opener ? depth + 1 : (depth > 0 ? depth - 1 : 0);
            start = k + 2;
            next_from = k + 2;
        }
        const u8 *nl = find_byte(s, next_from, n, '\n');
        if (!nl) break;
        line = nl - s + 1;
    }
    if (start == 0 && depth == 0) return 0;
    if (depth == 0 && start < n) PUT(o, s + start, n - start);
    return 1;
}

/* EXTERNAL_LINK: `[` + optional scheme + `//` + URL + spaces, removed; the label kept without its
 * closing bracket. */
static Match external_link_url_at(const u8 *s, ssz n, ssz at) {
    ssz j = at + 1;
    if (n - j >= 6 && !memcmp(s + j, "https:", 6)) j += 6;
    else if (n - j >= 5 && !memcmp(s + j, "http:", 5)) j += 5;
    else if (n - j >= 4 && !memcmp(s + j, "ftp:", 4)) j += 4;
    if (!(n - j >= 2 && s[j] == '/' && s[j + 1] == '/')) return NO_MATCH;
    ssz k = j + 2, w;
    while (k < n && s[k] != ']' && !space_length(s + k, n - k)) k += char_length(s + k, n - k);
    while ((w = space_length(s + k, n - k))) k += w;
    ssz label_end = k;  /* `[URL label]` -> label: the bytes up to a "]" before any "[" or line end */
    while (label_end < n && s[label_end] != ']' && s[label_end] != '[' && s[label_end] != '\n')
        label_end++;
    if (label_end < n && s[label_end] == ']') {
        Match match = {label_end + 1, s + k, label_end - k};
        return match;
    }
    return removed_up_to(k);
}

static int is_lower_ascii(const u8 *s, ssz k, ssz n) { return k < n && s[k] >= 'a' && s[k] <= 'z'; }

/* DROPPED_LINK_START at p (which holds "[["): 1, 0 or BAIL. */
static int dropped_link_starts(const u8 *s, ssz n, ssz p) {
    static const char *names[] = {"file", "image", "category", "media", NULL};
    ssz k = p + 2, w;
    while ((w = space_length(s + k, n - k))) k += w;
    if (k < n && s[k] == ':') k++;
    while ((w = space_length(s + k, n - k))) k += w;
    for (const char **name = names; *name; name++) {
        ssz len = (ssz)strlen(*name);
        int matched = match_name(s + k, n - k, *name, len);
        if (matched == BAIL) return BAIL;
        if (!matched) continue;
        ssz m = k + len;
        while ((w = space_length(s + m, n - m))) m += w;
        if (m < n && s[m] == ':') return 1;
    }
    ssz letters = 0;
    while (letters < 4 && is_lower_ascii(s, k + letters, n)) letters++;
    if (letters < 2 || letters > 3) return 0;
    ssz m = k + letters;
    if (m < n && s[m] == '-') {
        if (!is_lower_ascii(s, m + 1, n)) return 0;
        m++;
        while (is_lower_ascii(s, m, n)) m++;
    }
    return m + 1 < n && s[m] == ':' && !space_length(s + m + 1, n - m - 1);
}

/* end_of_link: where the link opening at `start` closes, `[[`/`]]` nesting counted. */
static ssz link_end(const u8 *s, ssz n, ssz start) {
    ssz depth = 0, i = start;
    while (i + 1 < n) {
        if (s[i] == '[' && s[i + 1] == '[') { depth++; i += 2; }
        else if (s[i] == ']' && s[i + 1] == ']') { depth--; i += 2; if (depth == 0) return i; }
        else i++;
    }
    return n;
}

/* File/Image/Category/interlanguage links, with whatever they nest. */
static Match dropped_link_at(const u8 *s, ssz n, ssz at) {
    int starts = dropped_link_starts(s, n, at);
    if (starts == BAIL) return removed_up_to(BAIL);
    return starts ? removed_up_to(link_end(s, n, at)) : NO_MATCH;
}

static ssz run_without(const u8 *s, ssz k, ssz n, const char *stops) {
    u8 stop[256] = {0};
    for (const char *c = stops; *c; c++) stop[(u8)*c] = 1;
    while (k < n && !stop[s[k]]) k++;
    return k;
}

/* LINK_TARGET findall + link_target: visible link targets, without #section and outer spaces,
 * appended to `links` as (length, bytes) records. */
static int collect_link_targets(const u8 *s, ssz n, Buf *links) {
    ssz from = 0;
    const u8 *p;
    while ((p = find(s, from, n, "[[", 2))) {
        ssz at = p - s, end_target = run_without(s, at + 2, n, "[]|"), k = end_target;
        if (k < n && s[k] == '|') k = run_without(s, k + 1, n, "[]");
        if (!(k + 1 < n && s[k] == ']' && s[k + 1] == ']')) { from = at + 1; continue; }
        from = k + 2;
        ssz a = at + 2, b = end_target;
        const u8 *hash = memchr(s + a, '#', b - a);
        if (hash) b = hash - s;
        ssz w;
        while (a < b && (w = space_length(s + a, b - a))) a += w;
        while (b > a) {  /* step back over whitespace characters from the end */
            ssz c = b - 1;
            while (c > a && (s[c] & 0xC0) == 0x80) c--;
            if (!space_length(s + c, b - c)) break;
            b = c;
        }
        if (b > a) {
            ssz length = b - a;
            if (buf_put(links, (const u8 *)&length, sizeof(length)) < 0 ||
                buf_put(links, s + a, length) < 0)
                return FAILED;
        }
    }
    return 0;
}

/* PIPED_LINK_OPENING: `[[target|` removed. */
static Match piped_opening_at(const u8 *s, ssz n, ssz at) {
    ssz k = run_without(s, at + 2, n, "[]|");
    return k < n && s[k] == '|' ? removed_up_to(k + 1) : NO_MATCH;
}

/* ANCHORED_LINK: `[[target#section]]` -> target. */
static Match anchored_link_at(const u8 *s, ssz n, ssz at) {
    ssz k = run_without(s, at + 2, n, "[]|#");
    if (!(k < n && s[k] == '#')) return NO_MATCH;
    ssz m = run_without(s, k + 1, n, "[]|");
    if (!(m + 1 < n && s[m] == ']' && s[m + 1] == ']')) return NO_MATCH;
    Match match = {m + 2, s + at + 2, k - at - 2};
    return match;
}

/* str.replace of a two-byte string by nothing: non-overlapping, left to right. */
static Match pair_at(const u8 *s, ssz n, ssz at) {
    (void)s; (void)n;
    return removed_up_to(at + 2);
}

/* BARE_URL: `https?://` + at least one character that is not whitespace or <>[]{}|; a NUL
 * byte is part of the URL (memchr, not strchr: strchr would find the terminator). */
static Match bare_url_at(const u8 *s, ssz n, ssz at) {
    ssz k = at + 4;
    if (k < n && s[k] == 's') k++;
    if (!(n - k >= 3 && !memcmp(s + k, "://", 3))) return NO_MATCH;
    ssz m = k + 3;
    while (m < n && !memchr("<>[]{}|", s[m], 7) && !space_length(s + m, n - m))
        m += char_length(s + m, n - m);
    return m > k + 3 ? removed_up_to(m) : NO_MATCH;
}

/* BOLD_ITALIC: runs of two or more apostrophes. */
static Match bold_italic_at(const u8 *s, ssz n, ssz at) {
    ssz k = at + 2;
    while (k < n && s[k] == '\'') k++;
    return removed_up_to(k);
}

/* MAGIC_WORD: `__[A-Z]+__`. */
static Match magic_word_at(const u8 *s, ssz n, ssz at) {
    ssz k = at + 2;
    while (k < n && s[k] >= 'A' && s[k] <= 'Z') k++;
    return k > at + 2 && k + 1 < n && s[k] == '_' && s[k + 1] == '_' ? removed_up_to(k + 2)
                                                                      : NO_MATCH;
}

/* LINE_BREAK_TAG: "<br", spaces, an optional "/" and ">" (any letter case) -> one space. */
static Match line_break_at(const u8 *s, ssz n, ssz at) {
    ssz k = at + 1, w;
    if (!(k + 1 < n && Py_TOLOWER(s[k]) == 'b' && Py_TOLOWER(s[k + 1]) == 'r')) return NO_MATCH;
    k += 2;
    while ((w = space_length(s + k, n - k))) k += w;
    if (k < n && s[k] == '/') k++;
    if (!(k < n && s[k] == '>')) return NO_MATCH;
    Match match = {k + 1, (const u8 *)" ", 1};
    return match;
}

/* HTML_TAG: `</?[A-Za-z][^<>]*>`. */
static Match html_tag_at(const u8 *s, ssz n, ssz at) {
    ssz k = at + 1;
    if (k < n && s[k] == '/') k++;
    if (!(k < n && s[k] < 0x80 && Py_ISALPHA(s[k]))) return NO_MATCH;
    ssz m = k + 1;
    while (m < n && s[m] != '<' && s[m] != '>') m++;
    return m < n && s[m] == '>' ? removed_up_to(m + 1) : NO_MATCH;
}

/* pages.xml_unescape on bytes: &lt; &gt; &quot; &apos; &#N; &#xH; &amp;. BAIL where the
 * reference's sequential replaces could differ from one scan (a reference that decodes to '&')
 * or where it would raise or produce a lone surrogate. */
static int xml_unescape_bytes(const u8 *s, ssz n, Buf *o) {
    ssz i = 0, from = 0;
    const u8 *p;
    while ((p = find_byte(s, from, n, '&'))) {
        ssz at = p - s, avail = n - at, end = 0;
        const char *plain = NULL;
        u8 encoded[4];
        ssz encoded_len = 0;
        if (avail >= 4 && !memcmp(p, "&lt;", 4)) { plain = "<"; end = at + 4; }
        else if (avail >= 4 && !memcmp(p, "&gt;", 4)) { plain = ">"; end = at + 4; }
        else if (avail >= 6 && !memcmp(p, "&quot;", 6)) { plain = "\""; end = at + 6; }
        else if (avail >= 6 && !memcmp(p, "&apos;", 6)) { plain = "'"; end = at + 6; }
        else if (avail >= 5 && !memcmp(p, "&amp;", 5)) { plain = "&"; end = at + 5; }
        else if (avail >= 2 && p[1] == '#') {
            ssz k = at + 2, digits;
            int hex = k < n && s[k] == 'x';
            if (hex) k++;
            ssz first = k;
            Py_UCS4 value = 0;
            while (k < n && (hex ? Py_ISXDIGIT(s[k]) : Py_ISDIGIT(s[k])) && k - first < 9) {
                value = value * (hex ? 16 : 10) +
                        (Py_ISDIGIT(s[k]) ? s[k] - '0' : Py_TOLOWER(s[k]) - 'a' + 10);
                k++;
            }
            digits = k - first;
            if (k < n && s[k] >= 0x80) return BAIL;  /* \d also matches other scripts' digits */
            if (digits > 0 && k < n && s[k] == ';') {
                if (digits >= 9 || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF) ||
                    value == '&')
                    return BAIL;
                encoded_len = utf8_encode(value, encoded);
                end = k + 1;
            } else if (digits >= 9) {
                return BAIL;
            }
        }
        if (!end) { from = at + 1; continue; }
        PUT(o, s + i, at - i);
        if (plain) PUT(o, (const u8 *)plain, 1);
        else PUT(o, encoded, encoded_len);
        i = from = end;
    }
    if (i < n) PUT(o, s + i, n - i);
    return 0;
}

/* ---------- hash tables: words (bytes -> id) and pairs (id1 << 32 | id2 -> count) ---------- */

typedef struct {
    uint64_t *slots;        /* hash's high 32 bits << 32 | (id + 1); 0 when empty */
    ssz capacity;           /* power of two */
    ssz size;
    uint64_t *hashes;       /* by id */
    ssz *offsets;           /* by id, into arena */
    uint32_t *lengths;      /* by id */
    int64_t *counts;        /* by id */
    ssz ids_capacity;
    Buf arena;
    long long probes;       /* occupied slots stepped over, for tests: stays near the lookups */
} StringTable;

/* Keys are hashed and compared as 64-bit words of their bytes, zero-padded to a multiple of 8
 * (the arena stores them padded and aligned): no memcpy or memcmp call per token, which cost as
 * much as the probing itself on short words. */
#define PADDED(n) (((n) + 7) & ~(ssz)7)

/* The tables' keys come from the dump's text: an unkeyed hash would let crafted text put any
 * number of keys in one probe run (quadratic time). Keys are hashed by SipHash-1-3 under a random
 * 128-bit key drawn when the module is loaded (os.urandom). */
/* A word of key bytes as SipHash reads it (little-endian). */
static inline uint64_t little_endian(uint64_t word) {
#if PY_LITTLE_ENDIAN
    return word;
#else
    uint64_t swapped = 0;
    for (int i = 0; i < 8; i++, word >>= 8) swapped = (swapped << 8) | (word & 0xFF);
    return swapped;
#endif
}

/* SipHash-1-3 (core/siphash.h) of the key's n bytes, read as the zero-padded words `w` (the
 * padding is where the last block's free bytes are: the result is the standard SipHash-1-3 of
 * the n bytes). */
static uint64_t hash_padded(const uint64_t *w, ssz n) {
    SipState state = sip_start();
    ssz full = n >> 3;
    for (ssz i = 0; i < full; i++) sip_block(&state, little_endian(w[i]));
    sip_block(&state, ((uint64_t)n << 56) | ((n & 7) ? little_endian(w[full]) : 0));
    return sip_finish(&state);
}

static int same_padded(const uint64_t *a, const uint64_t *b, ssz n) {
    for (ssz i = 0, chunks = PADDED(n) >> 3; i < chunks; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void table_free(StringTable *t) {
    PyMem_RawFree(t->slots); PyMem_RawFree(t->hashes); PyMem_RawFree(t->offsets);
    PyMem_RawFree(t->lengths); PyMem_RawFree(t->counts);
    buf_free(&t->arena);
    memset(t, 0, sizeof(*t));
}

static int table_grow_slots(StringTable *t) {
    ssz capacity = t->capacity ? t->capacity * 2 : 1 << 14;
    uint64_t *slots = PyMem_RawCalloc(capacity, sizeof(uint64_t));
    if (!slots) return FAILED;
    for (ssz id = 0; id < t->size; id++) {
        ssz slot = t->hashes[id] & (capacity - 1);
        while (slots[slot]) { slot = (slot + 1) & (capacity - 1); t->probes++; }
        slots[slot] = (t->hashes[id] & 0xFFFFFFFF00000000ULL) | (uint64_t)(id + 1);
    }
    PyMem_RawFree(t->slots);
    t->slots = slots;
    t->capacity = capacity;
    return 0;
}

/* Resize one per-id array; on failure the old block stays valid and owned by the table. */
static int grow_array(void **array, ssz capacity, size_t item_size) {
    void *grown = PyMem_RawRealloc(*array, capacity * item_size);
    if (!grown) return FAILED;
    *array = grown;
    return 0;
}

static int table_grow_ids(StringTable *t) {
    ssz capacity = t->ids_capacity ? t->ids_capacity * 2 : 1 << 13;
    if (grow_array((void **)&t->hashes, capacity, sizeof *t->hashes)
            || grow_array((void **)&t->offsets, capacity, sizeof *t->offsets)
            || grow_array((void **)&t->lengths, capacity, sizeof *t->lengths)
            || grow_array((void **)&t->counts, capacity, sizeof *t->counts))
        return FAILED;
    t->ids_capacity = capacity;
    return 0;
}

/* The id of the key `w` (n bytes, zero-padded), -1 when absent (*free_slot: where it would go). */
static int64_t table_find(StringTable *t, const uint64_t *w, ssz n, uint64_t h,
                          ssz *free_slot) {
    if (!t->capacity) { *free_slot = -1; return -1; }
    ssz slot = h & (t->capacity - 1);
    uint64_t entry, tag = h & 0xFFFFFFFF00000000ULL;
    while ((entry = t->slots[slot])) {
        if ((entry & 0xFFFFFFFF00000000ULL) == tag) {
            ssz id = (ssz)(entry & 0xFFFFFFFF) - 1;
            if (t->lengths[id] == (uint32_t)n &&
                    same_padded((const uint64_t *)(t->arena.data + t->offsets[id]), w, n))
                return id;
        }
        slot = (slot + 1) & (t->capacity - 1);
        t->probes++;
    }
    *free_slot = slot;
    return -1;
}

/* The id of the zero-padded key `w` (added with count 0 when new); FAILED on memory errors. */
static int64_t table_id_padded(StringTable *t, const uint64_t *w, ssz n) {
    if (2 * (t->size + 1) > t->capacity && table_grow_slots(t) < 0) return FAILED;
    uint64_t h = hash_padded(w, n);
    ssz slot = 0;
    int64_t found = table_find(t, w, n, h, &slot);
    if (found >= 0) return found;
    if (t->size >= UINT32_MAX - 1) return FAILED;  /* reported as MemoryError */
    if (t->size == t->ids_capacity && table_grow_ids(t) < 0) return FAILED;
    ssz id = t->size++;
    t->hashes[id] = h;
    t->offsets[id] = t->arena.len;
    t->lengths[id] = (uint32_t)n;
    t->counts[id] = 0;
    if (buf_put(&t->arena, (const u8 *)w, PADDED(n)) < 0) return FAILED;
    t->slots[slot] = (h & 0xFFFFFFFF00000000ULL) | (uint64_t)(id + 1);
    return id;
}

/* A key's bytes copied into a zero-padded, aligned buffer: `small` when it fits, else a new
 * block that the caller frees (NULL when out of memory). */
static uint64_t *padded_copy(const u8 *s, ssz n, uint64_t *small, ssz small_words) {
    uint64_t *w = PADDED(n) <= small_words * 8 ? small : PyMem_RawMalloc(PADDED(n) + 8);
    if (!w) return NULL;
    if (n) w[(PADDED(n) >> 3) - 1] = 0;
    memcpy(w, s, n);
    return w;
}

/* table_id_padded of unpadded bytes. */
static int64_t table_id(StringTable *t, const u8 *s, ssz n) {
    uint64_t small[32];
    small[0] = 0;  /* an empty key reads no word; this quiets -Wmaybe-uninitialized */
    uint64_t *w = padded_copy(s, n, small, 32);
    if (!w) return FAILED;
    int64_t id = table_id_padded(t, w, n);
    if (w != small) PyMem_RawFree(w);
    return id;
}

/* table_find of unpadded bytes: the id, -1 when absent, FAILED when out of memory. */
static int64_t table_lookup(StringTable *t, const u8 *s, ssz n) {
    uint64_t small[32];
    small[0] = 0;  /* an empty key reads no word; this quiets -Wmaybe-uninitialized */
    uint64_t *w = padded_copy(s, n, small, 32);
    if (!w) return FAILED;
    ssz unused;
    int64_t id = table_find(t, w, n, hash_padded(w, n), &unused);
    if (w != small) PyMem_RawFree(w);
    return id;
}

/* Pairs are appended as keys (id1 << 32 | id2) and summed by a radix sort when taken: sequential
 * writes instead of a hash table's cache misses, which dominated the loop. */
typedef struct {
    uint64_t *keys;
    ssz len, cap;
} PairKeys;

static void pairs_free(PairKeys *t) {
    PyMem_RawFree(t->keys);
    memset(t, 0, sizeof(*t));
}

static int pairs_add(PairKeys *t, uint64_t key) {
    if (t->len == t->cap) {
        ssz cap = t->cap ? t->cap * 2 : 1 << 16;
        uint64_t *keys = PyMem_RawRealloc(t->keys, cap * sizeof(uint64_t));
        if (!keys) return FAILED;
        t->keys = keys;
        t->cap = cap;
    }
    t->keys[t->len++] = key;
    return 0;
}

/* LSD radix sort of keys by bytes, skipping the bytes every key shares; the result is in
 * *sorted (keys or scratch). */
static void radix_sort(uint64_t *keys, uint64_t *scratch, ssz n, uint64_t **sorted) {
    ssz counts[8][256];
    memset(counts, 0, sizeof(counts));
    for (ssz i = 0; i < n; i++)
        for (int byte = 0; byte < 8; byte++) counts[byte][(keys[i] >> (8 * byte)) & 0xFF]++;
    uint64_t *from = keys, *to = scratch;
    for (int byte = 0; byte < 8; byte++) {
        ssz *count = counts[byte], position = 0;
        if (count[(from[0] >> (8 * byte)) & 0xFF] == n) continue;
        for (int digit = 0; digit < 256; digit++) {
            ssz c = count[digit];
            count[digit] = position;
            position += c;
        }
        for (ssz i = 0; i < n; i++) to[count[(from[i] >> (8 * byte)) & 0xFF]++] = from[i];
        uint64_t *t = from;
        from = to;
        to = t;
    }
    *sorted = from;
}

/* Keys of a partition with at most 65536 words fit in 32 bits (id1 << 16 | id2): packed into
 * `scratch` (2n entries: the keys, then room to sort them) and sorted in three passes of 11
 * bits, moving half the bytes of the 64-bit sort in fewer passes; the result is in scratch. */
static uint32_t *radix_sort32(const uint64_t *keys, uint32_t *scratch, ssz n) {
    uint32_t *from = scratch, *to = scratch + n;
    for (ssz i = 0; i < n; i++) from[i] = (uint32_t)((keys[i] >> 16) | (keys[i] & 0xFFFF));
    enum { BITS = 11, DIGITS = 1 << BITS };
    static const int shifts[3] = {0, BITS, 2 * BITS};
    ssz counts[3][DIGITS];
    memset(counts, 0, sizeof(counts));
    for (ssz i = 0; i < n; i++)
        for (int pass = 0; pass < 3; pass++)
            counts[pass][(from[i] >> shifts[pass]) & (DIGITS - 1)]++;
    for (int pass = 0; pass < 3; pass++) {
        ssz *count = counts[pass], position = 0;
        int shift = shifts[pass];
        if (count[(from[0] >> shift) & (DIGITS - 1)] == n) continue;
        for (int digit = 0; digit < DIGITS; digit++) {
            ssz c = count[digit];
            count[digit] = position;
            position += c;
        }
        for (ssz i = 0; i < n; i++) to[count[(from[i] >> shift) & (DIGITS - 1)]++] = from[i];
        uint32_t *t = from;
        from = to;
        to = t;
    }
    return from;
}

/* ---------- the counter object ---------- */

/* A direct-mapped cache of short words (<= 8 bytes: most tokens) in front of the word table:
 * a hit costs one compare in a 64 KB array that stays in cache, where a table lookup touches
 * four arrays that outgrow it (words follow Zipf's law, so a few thousand cover most tokens). */
#define WORD_CACHE_BITS 12
typedef struct {
    uint64_t word;    /* the word's bytes, zero-padded */
    uint32_t length;  /* 0: empty */
    uint32_t id;
} CachedWord;

typedef struct {
    PyObject_HEAD
    PyObject *segment_tokens;          /* str -> tokens, entities decoded first */
    PyObject *decoded_segment_tokens;  /* str -> tokens, entities already decoded */
    PyObject *xml_unescape;            /* str -> str */
    PyObject *fallback_page;           /* unescaped wikitext str -> (stripped str, [link str]) */
    int count_links;
    StringTable words, links, replaceable;
    Buf replacements, segment;          /* ASCII stand-ins of `replaceable`, by id; scratch */
    ssz *replacement_offsets;
    PairKeys pairs;
    Buf a, b, page_links;
    PyObject *titles, *redirects;      /* lists, taken by take_pages() */
    long long pages, articles, redirect_pages, other_namespaces, fallback_pages, python_segments;
    int64_t previous;                  /* id of the word before, -1 after a boundary */
    CachedWord word_cache[1 << WORD_CACHE_BITS];
    PyThreadState *released;           /* set while an article is counted without the GIL */
} Counter;

/* Articles are stripped and counted without the GIL, so a decompressing thread runs alongside;
 * the rare calls into Python take it back for their duration. */
static void take_gil(Counter *c, PyThreadState **saved) {
    *saved = c->released;
    if (*saved) { PyEval_RestoreThread(*saved); c->released = NULL; }
}

static void give_back_gil(Counter *c, PyThreadState *saved) {
    if (saved) c->released = PyEval_SaveThread();
}

static int count_word_id(Counter *c, int64_t id) {
    if (id < 0) return FAILED;
    c->words.counts[id]++;
    if (c->previous >= 0 && pairs_add(&c->pairs, ((uint64_t)c->previous << 32) | (uint64_t)id) < 0)
        return FAILED;
    c->previous = id;
    return 0;
}

static int emit_word(Counter *c, const u8 *s, ssz n) {
    return count_word_id(c, table_id(&c->words, s, n));
}

/* Tokens of one segment, through Python (non-ASCII or entity-bearing text). */
static int python_segment_with_gil(Counter *c, const u8 *s, ssz n, int decode_entities);

static int python_segment(Counter *c, const u8 *s, ssz n, int decode_entities) {
    PyThreadState *saved;
    take_gil(c, &saved);
    int status = python_segment_with_gil(c, s, n, decode_entities);
    give_back_gil(c, saved);
    return status;
}

static int python_segment_with_gil(Counter *c, const u8 *s, ssz n, int decode_entities) {
    c->python_segments++;
    PyObject *segment = PyUnicode_DecodeUTF8((const char *)s, n, "surrogatepass");
    if (!segment) return FAILED;
    PyObject *tokens = PyObject_CallOneArg(
        decode_entities ? c->segment_tokens : c->decoded_segment_tokens, segment);
    Py_DECREF(segment);
    if (!tokens) return FAILED;
    PyObject *fast = PySequence_Fast(tokens, "segment tokens must be a sequence");
    Py_DECREF(tokens);
    if (!fast) return FAILED;
    ssz count = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (ssz k = 0; k < count; k++) {
        ssz length;
        const char *token = PyUnicode_AsUTF8AndSize(items[k], &length);
        if (!token) { Py_DECREF(fast); return FAILED; }
        if (length && memchr(".!?\n", token[0], 4)) { c->previous = -1; continue; }
        if (emit_word(c, (const u8 *)token, length) < 0) { Py_DECREF(fast); return FAILED; }
    }
    Py_DECREF(fast);
    return 0;
}

enum { WORD = 1, STOP = 4, BOUNDARY = 8, SPECIAL = 16 };
static u8 byte_class[256];

static void init_byte_classes(void) {
    for (int ch = 0; ch < 256; ch++) {
        u8 cls = 0;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) cls |= WORD;
        /* text.BOUNDARY_CHARACTERS' ASCII ones: each ends a run of adjacent words */
        if (ch && strchr(".!?\n,;:()[]{}/|-", ch)) cls |= STOP;
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\f') cls |= BOUNDARY;
        if (ch >= 0x80) cls |= SPECIAL;
        byte_class[ch] = cls;
    }
}

/* Words of ASCII text: [A-Za-z0-9]+ joined by single ' or -, lower-cased; .!?\n end sentences. */
/* The id of a word of at most 8 bytes (`word`: its bytes, zero-padded). */
static int64_t cached_word_id(Counter *c, uint64_t word, ssz length) {
    CachedWord *entry =
        &c->word_cache[((word ^ sip_key[1]) * 0x9E3779B97F4A7C15ULL) >> (64 - WORD_CACHE_BITS)];
    if (entry->word == word && entry->length == (uint32_t)length) return entry->id;
    int64_t id = table_id_padded(&c->words, &word, length);
    if (id >= 0) {
        entry->word = word;
        entry->length = (uint32_t)length;
        entry->id = (uint32_t)id;
    }
    return id;
}

/* Words of ASCII text as text.tokens cuts them, lower-cased, possessive 's folded; boundaries
 * (STOP bytes that join nothing) end adjacency. */
static int ascii_words(Counter *c, const u8 *s, ssz n) {
    uint64_t lowered[32];  /* the word, lower-cased and zero-padded: hashed as it is */
    ssz k = 0;
    while (k < n) {
        u8 cls = byte_class[s[k]];
        if (!(cls & WORD)) {
            if (cls & STOP) c->previous = -1;
            k++;
            continue;
        }
        ssz length, m = ascii_word_at(s, k, n, &length);
        uint64_t *w = PADDED(length) <= (ssz)sizeof(lowered) ? lowered
                                                              : PyMem_RawMalloc(PADDED(length));
        if (!w) return FAILED;
        w[(PADDED(length) >> 3) - 1] = 0;
        u8 *bytes = (u8 *)w;
        for (ssz j = 0; j < length; j++) bytes[j] = Py_TOLOWER(s[k + j]);
        int status = count_word_id(c, length <= 8 ? cached_word_id(c, w[0], length)
                                                  : table_id_padded(&c->words, w, length));
        if (w != lowered) PyMem_RawFree(w);
        if (status < 0) return FAILED;
        k = m;
    }
    return 0;
}

/* The segment with each entity or non-ASCII character replaced by its ASCII stand-in (which
 * tokenises the same in any ASCII context: see counts.ascii_stand_ins) in c->segment; 0 when a
 * piece has none, and the segment goes to Python. */
static int replace_known_pieces(Counter *c, const u8 *s, ssz n, int decode_entities) {
    if (!c->replaceable.size) return 0;
    if (buf_reserve(&c->segment, n * 4 + 16) < 0) return FAILED;
    Buf *o = &c->segment;
    o->len = 0;
    ssz i = 0;
    while (i < n) {
        ssz length;
        if (s[i] >= 0x80) length = char_length(s + i, n - i);
        else if (s[i] == '&' && decode_entities) {
            const u8 *semicolon = memchr(s + i, ';', (n - i) < 34 ? (n - i) : 34);
            if (!semicolon) return 0;
            length = semicolon - (s + i) + 1;
        } else {
            o->data[o->len++] = s[i++];
            continue;
        }
        int64_t id = table_lookup(&c->replaceable, s + i, length);
        if (id == FAILED) return FAILED;
        if (id < 0) return 0;
        ssz start = c->replacement_offsets[id], size = c->replacement_offsets[id + 1] - start;
        if (o->len + size > o->cap) return 0;
        memcpy(o->data + o->len, c->replacements.data + start, size);
        o->len += size;
        i += length;
    }
    return 1;
}

/* Count the words and pairs of stripped text, segment by segment (see the file's comment). */
static int count_words(Counter *c, const u8 *s, ssz n, int decode_entities) {
    u8 special = SPECIAL;
    ssz i = 0;
    c->previous = -1;
    while (i < n) {
        ssz j = i;
        u8 seen = 0;
        while (j < n && !(byte_class[s[j]] & BOUNDARY)) {
            seen |= byte_class[s[j]];
            if (s[j] == '&' && decode_entities) seen |= special;
            j++;
        }
        if (j > i) {
            int status;
            if (!(seen & SPECIAL)) {
                status = ascii_words(c, s + i, j - i);
            } else {
                status = replace_known_pieces(c, s + i, j - i, decode_entities);
                if (status == 1) status = ascii_words(c, c->segment.data, c->segment.len);
                else if (status == 0) status = python_segment(c, s + i, j - i, decode_entities);
            }
            if (status < 0) return FAILED;
        }
        if (j < n && s[j] == '\n') c->previous = -1;
        i = j + 1;
    }
    c->previous = -1;
    return 0;
}

static void swap(Buf **from, Buf **to) {
    Buf *t = *from;
    *from = *to;
    *to = t;
}

/* A pass writes `out` only when it changes something (returns 1); then `out` becomes current. */
#define RUN(pass_call) do { out->len = 0; if (pass_call) swap(&cur, &out); } while (0)
#define RUN_OR_BAIL(pass_call) do { \
        out->len = 0; int changed = (pass_call); if (changed < 0) return BAIL; if (changed) swap(&cur, &out); \
    } while (0)
#define CONTAINS(text) (find(cur->data, 0, cur->len, text, (ssz)strlen(text)) != NULL)
#define HAS_BYTE(ch) (find_byte(cur->data, 0, cur->len, ch) != NULL)

/* strip_wikitext on XML-escaped page text; the result is in *result. BAIL: use Python. */
static int strip_page(Counter *c, const u8 *raw, ssz raw_len, Buf **result) {
    if (!valid_utf8(raw, raw_len)) return BAIL;
    if (buf_reserve(&c->a, raw_len + 1) < 0 || buf_reserve(&c->b, raw_len + 1) < 0) return FAILED;
    Buf *cur = &c->a, *out = &c->b;
    out->len = 0;
    if (xml_unescape_bytes(raw, raw_len, out) < 0) return BAIL;
    swap(&cur, &out);
    c->page_links.len = 0;
    if (CONTAINS("<!--")) RUN(substitute(cur->data, cur->len, out, "<!--", comment_at));
    if (HAS_BYTE('<')) {
        RUN_OR_BAIL(substitute(cur->data, cur->len, out, "<", ref_at));
        RUN_OR_BAIL(substitute(cur->data, cur->len, out, "<", dropped_element_at));
    }
    if (HAS_BYTE('{')) {
        if (CONTAINS("{{")) RUN_OR_BAIL(pass_templates(cur->data, cur->len, out));
        if (CONTAINS("{|")) RUN(pass_tables(cur->data, cur->len, out));
    }
    if (HAS_BYTE('[')) {
        RUN(substitute(cur->data, cur->len, out, "[", external_link_url_at));
        if (CONTAINS("[[")) {
            RUN_OR_BAIL(substitute(cur->data, cur->len, out, "[[", dropped_link_at));
            if (c->count_links && collect_link_targets(cur->data, cur->len, &c->page_links) < 0)
                return FAILED;
            RUN(substitute(cur->data, cur->len, out, "[[", piped_opening_at));
            if (HAS_BYTE('#')) RUN(substitute(cur->data, cur->len, out, "[[", anchored_link_at));
            RUN(substitute(cur->data, cur->len, out, "[[", pair_at));
            RUN(substitute(cur->data, cur->len, out, "]]", pair_at));
        }
    }
    if (CONTAINS("://")) RUN(substitute(cur->data, cur->len, out, "http", bare_url_at));
    if (CONTAINS("''")) RUN(substitute(cur->data, cur->len, out, "''", bold_italic_at));
    if (CONTAINS("__")) RUN(substitute(cur->data, cur->len, out, "__", magic_word_at));
    if (HAS_BYTE('<')) {
        if (CONTAINS("<br") || CONTAINS("<BR")) RUN(substitute(cur->data, cur->len, out, "<", line_break_at));
        RUN(substitute(cur->data, cur->len, out, "<", html_tag_at));
    }
    *result = cur;
    return 0;
}

static int add_link(Counter *c, const u8 *s, ssz n) {
    int64_t id = table_id(&c->links, s, n);
    if (id < 0) return FAILED;
    c->links.counts[id]++;
    return 0;
}

/* A page the byte passes cannot replay: the Python reference strips it, we count it. */
static int count_fallback_article(Counter *c, const u8 *raw, ssz raw_len) {
    c->fallback_pages++;
    PyObject *escaped = PyUnicode_DecodeUTF8((const char *)raw, raw_len, "replace");
    if (!escaped) return FAILED;
    PyObject *text = PyObject_CallOneArg(c->xml_unescape, escaped);
    Py_DECREF(escaped);
    if (!text) return FAILED;
    PyObject *stripped = PyObject_CallOneArg(c->fallback_page, text);
    Py_DECREF(text);
    if (!stripped) return FAILED;
    PyObject *plain, *links;
    if (!PyArg_ParseTuple(stripped, "UO", &plain, &links)) { Py_DECREF(stripped); return FAILED; }
    PyObject *encoded = PyUnicode_AsEncodedString(plain, "utf-8", "surrogatepass");
    int status = encoded ? count_words(c, (const u8 *)PyBytes_AS_STRING(encoded),
                                       PyBytes_GET_SIZE(encoded), 0) : FAILED;
    Py_XDECREF(encoded);
    if (status == 0 && c->count_links) {
        PyObject *fast = PySequence_Fast(links, "links must be a sequence");
        if (!fast) status = FAILED;
        for (ssz k = 0; fast && status == 0 && k < PySequence_Fast_GET_SIZE(fast); k++) {
            PyObject *link = PyUnicode_AsEncodedString(PySequence_Fast_GET_ITEM(fast, k), "utf-8",
                                                       "surrogatepass");
            status = link ? add_link(c, (const u8 *)PyBytes_AS_STRING(link), PyBytes_GET_SIZE(link))
                          : FAILED;
            Py_XDECREF(link);
        }
        Py_XDECREF(fast);
    }
    Py_DECREF(stripped);
    return status;
}

static int count_stripped_article(Counter *c, const u8 *raw, ssz raw_len) {
    Buf *stripped = NULL;
    int status = strip_page(c, raw, raw_len, &stripped);
    if (status < 0) return status;
    if (count_words(c, stripped->data, stripped->len, 1) < 0) return FAILED;
    for (ssz k = 0; k < c->page_links.len;) {
        ssz length;
        memcpy(&length, c->page_links.data + k, sizeof(length));
        k += sizeof(length);
        if (add_link(c, c->page_links.data + k, length) < 0) return FAILED;
        k += length;
    }
    return 0;
}

static int count_article(Counter *c, const u8 *raw, ssz raw_len) {
    c->released = PyEval_SaveThread();
    int status = count_stripped_article(c, raw, raw_len);
    PyEval_RestoreThread(c->released);
    c->released = NULL;
    if (status == BAIL) return count_fallback_article(c, raw, raw_len);
    return status;
}

/* ---------- pages (pages.parse_page on bytes) ---------- */

static PyObject *xml_text(Counter *c, const u8 *s, ssz n) {
    PyObject *text = PyUnicode_DecodeUTF8((const char *)s, n, "replace");
    if (!text || !memchr(s, '&', n)) return text;
    PyObject *unescaped = PyObject_CallOneArg(c->xml_unescape, text);
    Py_DECREF(text);
    return unescaped;
}

static void element_span(const u8 *b, ssz n, const char *open, const char *close,
                         ssz *start, ssz *length) {
    const u8 *p = find(b, 0, n, open, (ssz)strlen(open));
    *start = 0;
    *length = 0;
    if (!p) return;
    ssz from = p - b + (ssz)strlen(open);
    const u8 *e = find(b, from, n, close, (ssz)strlen(close));
    if (!e) return;
    *start = from;
    *length = (e - b) - from;
}

static int ascii_space(u8 ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }
static int ascii_word(u8 ch) { return ch < 0x80 && (Py_ISALNUM(ch) || ch == '_'); }

/* NAMESPACE = <ns>\s*(-?\d+)\s*</ns>, searched before "<revision": 1 when the page is not in
 * namespace 0 (absent, "0", "-0" and "000" are all 0). */
static int outside_article_namespace(const u8 *b, ssz n) {
    const u8 *rev = find(b, 0, n, "<revision", 9);
    ssz end = rev ? rev - b : n, from = 0;
    const u8 *p;
    while ((p = find(b, from, end, "<ns>", 4))) {
        ssz k = p - b + 4;
        while (k < end && ascii_space(b[k])) k++;
        if (k < end && b[k] == '-') k++;
        ssz digits = k;
        int nonzero = 0;
        while (k < end && b[k] >= '0' && b[k] <= '9') nonzero |= b[k++] != '0';
        if (k > digits) {
            while (k < end && ascii_space(b[k])) k++;
            if (end - k >= 5 && !memcmp(b + k, "</ns>", 5)) return nonzero;
        }
        from = (p - b) + 1;
    }
    return 0;
}

/* REDIRECT = <redirect\b(?:[^>]*?\btitle="([^"]*)")?: found?, and the title's span. */
static int find_redirect(const u8 *b, ssz n, ssz *start, ssz *length) {
    ssz from = 0;
    const u8 *p;
    *start = -1;
    *length = 0;
    while ((p = find(b, from, n, "<redirect", 9))) {
        ssz k = p - b + 9;
        if (k < n && ascii_word(b[k])) { from = k; continue; }
        for (ssz j = k; j < n && b[j] != '>'; j++) {
            if (n - j < 7 || memcmp(b + j, "title=\"", 7) || ascii_word(b[j - 1])) continue;
            const u8 *quote = find_byte(b, j + 7, n, '"');
            if (!quote) continue;
            *start = j + 7;
            *length = (quote - b) - (j + 7);
            break;
        }
        return 1;
    }
    return 0;
}

static int count_page(Counter *c, const u8 *b, ssz n) {
    ssz title_start, title_length;
    c->pages++;
    if (outside_article_namespace(b, n)) { c->other_namespaces++; return 0; }
    element_span(b, n, "<title>", "</title>", &title_start, &title_length);
    ssz target_start, target_length;
    if (find_redirect(b, n, &target_start, &target_length)) {
        c->redirect_pages++;
        PyObject *title = xml_text(c, b + title_start, title_length);
        PyObject *target = target_start >= 0 ? xml_text(c, b + target_start, target_length)
                                             : PyUnicode_FromString("");
        PyObject *pair = (title && target) ? PyTuple_Pack(2, title, target) : NULL;
        Py_XDECREF(title);
        Py_XDECREF(target);
        int status = pair ? PyList_Append(c->redirects, pair) : FAILED;
        Py_XDECREF(pair);
        return status < 0 ? FAILED : 0;
    }
    c->articles++;
    PyObject *title = xml_text(c, b + title_start, title_length);
    if (!title) return FAILED;
    int status = PyList_Append(c->titles, title);
    Py_DECREF(title);
    if (status < 0) return FAILED;
    /* pages.revision_text */
    const u8 *p = find(b, 0, n, "<text", 5);
    if (!p) return 0;
    const u8 *tag_end = find_byte(b, p - b, n, '>');
    if (!tag_end || tag_end[-1] == '/') return 0;
    ssz start = tag_end - b + 1;
    const u8 *end = find(b, start, n, "</text>", 7);
    if (!end) return 0;
    return count_article(c, b + start, (end - b) - start);
}

/* ---------- Python methods ---------- */

static PyObject *Counter_count(Counter *c, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const u8 *xml = view.buf;
    ssz n = view.len, from = 0;
    const u8 *p;
    int status = 0;
    while (status == 0 && (p = find(xml, from, n, "<page>", 6))) {
        ssz start = p - xml;
        const u8 *e = find(xml, start, n, "</page>", 7);
        if (!e) break;
        status = count_page(c, xml + start + 6, (e - xml) - start - 6);
        from = e - xml;
    }
    PyBuffer_Release(&view);
    if (status < 0) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    Py_RETURN_NONE;
}

/* {str: count} of a table's entries with a count. */
static PyObject *table_dict(StringTable *t, const char *errors) {
    PyObject *result = PyDict_New();
    if (!result) return NULL;
    for (ssz id = 0; id < t->size; id++) {
        if (!t->counts[id]) continue;
        PyObject *key = PyUnicode_DecodeUTF8((const char *)t->arena.data + t->offsets[id],
                                             t->lengths[id], errors);
        PyObject *value = key ? PyLong_FromLongLong(t->counts[id]) : NULL;
        if (!value || PyDict_SetItem(result, key, value) < 0) {
            Py_XDECREF(key); Py_XDECREF(value); Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    return result;
}

static PyObject *Counter_unigrams(Counter *c, PyObject *unused) { return table_dict(&c->words, "strict"); }
static PyObject *Counter_links(Counter *c, PyObject *unused) { return table_dict(&c->links, "surrogatepass"); }

/* (first ids int32, second ids int32, counts int64) of the distinct pairs counted since the last
 * call, as bytes, sorted by (first, second); the pair keys empty. */
static PyObject *Counter_take_pairs(Counter *c, PyObject *unused) {
    PairKeys *t = &c->pairs;
    ssz n = t->len, rows = 0;
    int narrow = c->words.size <= 0x10000;  /* ids fit in 16 bits: sorted as 32-bit keys */
    /* 64-bit keys: n more for the sort; 32-bit: n for the packed keys, n for the sort */
    uint64_t *scratch = n ? PyMem_RawMalloc(n * sizeof(uint64_t)) : NULL;
    if (n && !scratch) return PyErr_NoMemory();
    uint64_t *sorted = t->keys;
    uint32_t *sorted32 = NULL;
    if (n) {
        Py_BEGIN_ALLOW_THREADS
        if (narrow) {
            sorted32 = radix_sort32(t->keys, (uint32_t *)scratch, n);
            for (ssz i = 0; i < n; i++) rows += (i == 0 || sorted32[i] != sorted32[i - 1]);
        } else {
            radix_sort(t->keys, scratch, n, &sorted);
            for (ssz i = 0; i < n; i++) rows += (i == 0 || sorted[i] != sorted[i - 1]);
        }
        Py_END_ALLOW_THREADS
    }
    PyObject *first = PyBytes_FromStringAndSize(NULL, rows * 4);
    PyObject *second = PyBytes_FromStringAndSize(NULL, rows * 4);
    PyObject *counts = PyBytes_FromStringAndSize(NULL, rows * 8);
    if (!first || !second || !counts) {
        Py_XDECREF(first); Py_XDECREF(second); Py_XDECREF(counts); PyMem_RawFree(scratch);
        return NULL;
    }
    int32_t *first_out = (int32_t *)PyBytes_AS_STRING(first);
    int32_t *second_out = (int32_t *)PyBytes_AS_STRING(second);
    int64_t *count_out = (int64_t *)PyBytes_AS_STRING(counts);
    ssz row = -1;
    for (ssz i = 0; i < n; i++) {
        uint64_t key = narrow ? ((uint64_t)(sorted32[i] >> 16) << 32) | (sorted32[i] & 0xFFFF)
                              : sorted[i];
        if (i == 0 || key != (narrow ? ((uint64_t)(sorted32[i - 1] >> 16) << 32) |
                                           (sorted32[i - 1] & 0xFFFF)
                                     : sorted[i - 1])) {
            row++;
            first_out[row] = (int32_t)(key >> 32);
            second_out[row] = (int32_t)(key & 0xFFFFFFFF);
            count_out[row] = 0;
        }
        count_out[row]++;
    }
    PyMem_RawFree(scratch);
    pairs_free(t);
    PyObject *result = PyTuple_Pack(3, first, second, counts);
    Py_DECREF(first);
    Py_DECREF(second);
    Py_DECREF(counts);
    return result;
}

/* (offsets int32, key bytes, counts int64) of a table's keys with a count, as bytes: the
 * buffers of an Arrow binary array and an int64 array, made without a Python object per key. */
static PyObject *table_buffers(StringTable *t) {
    ssz rows = 0, size = 0;
    for (ssz id = 0; id < t->size; id++) {
        if (!t->counts[id]) continue;
        rows++;
        size += t->lengths[id];
    }
    if (size > INT32_MAX) return PyErr_NoMemory();
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (rows + 1) * 4);
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    PyObject *counts = PyBytes_FromStringAndSize(NULL, rows * 8);
    if (!offsets || !data || !counts) {
        Py_XDECREF(offsets); Py_XDECREF(data); Py_XDECREF(counts);
        return NULL;
    }
    int32_t *offset_out = (int32_t *)PyBytes_AS_STRING(offsets);
    u8 *data_out = (u8 *)PyBytes_AS_STRING(data);
    int64_t *count_out = (int64_t *)PyBytes_AS_STRING(counts);
    ssz row = 0, at = 0;
    offset_out[0] = 0;
    for (ssz id = 0; id < t->size; id++) {
        if (!t->counts[id]) continue;
        memcpy(data_out + at, t->arena.data + t->offsets[id], t->lengths[id]);
        at += t->lengths[id];
        count_out[row] = t->counts[id];
        offset_out[++row] = (int32_t)at;
    }
    PyObject *result = PyTuple_Pack(3, offsets, data, counts);
    Py_DECREF(offsets);
    Py_DECREF(data);
    Py_DECREF(counts);
    return result;
}

static PyObject *Counter_word_buffers(Counter *c, PyObject *unused) { return table_buffers(&c->words); }
static PyObject *Counter_link_buffers(Counter *c, PyObject *unused) { return table_buffers(&c->links); }

/* (titles of articles, [(redirect title, target)]) seen since the last call, in page order. */
static PyObject *Counter_take_pages(Counter *c, PyObject *unused) {
    PyObject *titles = PyList_New(0), *redirects = PyList_New(0);
    if (!titles || !redirects) { Py_XDECREF(titles); Py_XDECREF(redirects); return NULL; }
    PyObject *result = PyTuple_Pack(2, c->titles, c->redirects);
    Py_SETREF(c->titles, titles);
    Py_SETREF(c->redirects, redirects);
    return result;
}

static PyObject *Counter_stats(Counter *c, PyObject *unused) {
    return Py_BuildValue("{sLsLsLsLsLsLsnsLsLsnsn}", "pages", c->pages, "articles", c->articles,
                         "redirects", c->redirect_pages, "other_namespaces", c->other_namespaces,
                         "fallback_pages", c->fallback_pages, "python_segments", c->python_segments,
                         "pair_rows", c->pairs.len, "word_probes", c->words.probes,
                         "link_probes", c->links.probes, "words", c->words.size,
                         "links", c->links.size);
}

static PyObject *Counter_pair_rows(Counter *c, void *unused) { return PyLong_FromSsize_t(c->pairs.len); }

static PyMethodDef Counter_methods[] = {
    {"count", (PyCFunction)Counter_count, METH_O,
     "Count every complete <page> of an XML fragment (bytes)."},
    {"unigrams", (PyCFunction)Counter_unigrams, METH_NOARGS, "{word: count} so far."},
    {"links", (PyCFunction)Counter_links, METH_NOARGS, "{link target: count} so far."},
    {"take_pairs", (PyCFunction)Counter_take_pairs, METH_NOARGS,
     "(first ids, second ids, counts): int32, int32, int64 bytes; the pair table empties."},
    {"word_buffers", (PyCFunction)Counter_word_buffers, METH_NOARGS,
     "(offsets, bytes, counts) of every word so far: Arrow binary and int64 buffers."},
    {"link_buffers", (PyCFunction)Counter_link_buffers, METH_NOARGS,
     "(offsets, bytes, counts) of every link target so far: Arrow binary and int64 buffers."},
    {"take_pages", (PyCFunction)Counter_take_pages, METH_NOARGS,
     "(article titles, [(redirect, target)]) since the last call."},
    {"stats", (PyCFunction)Counter_stats, METH_NOARGS, "Page counts, fallbacks and hash-table probes so far."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Counter_getset[] = {
    {"pair_rows", (getter)Counter_pair_rows, NULL, "Pairs held (a bound on the rows of take_pairs).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

/* {bytes piece: bytes ASCII stand-in}: entities ("&nbsp;") and UTF-8 characters. */
static int set_stand_ins(Counter *c, PyObject *stand_ins) {
    PyObject *piece, *stand_in;
    ssz position = 0, count = PyDict_GET_SIZE(stand_ins);
    table_free(&c->replaceable);
    buf_free(&c->replacements);
    PyMem_RawFree(c->replacement_offsets);
    c->replacement_offsets = PyMem_RawCalloc(count + 1, sizeof(ssz));
    if (!c->replacement_offsets) { PyErr_NoMemory(); return -1; }
    while (PyDict_Next(stand_ins, &position, &piece, &stand_in)) {
        if (!PyBytes_Check(piece) || !PyBytes_Check(stand_in)) {
            PyErr_SetString(PyExc_TypeError, "stand_ins must map bytes to bytes");
            return -1;
        }
        int64_t id = table_id(&c->replaceable, (const u8 *)PyBytes_AS_STRING(piece),
                              PyBytes_GET_SIZE(piece));
        if (id < 0 || buf_put(&c->replacements, (const u8 *)PyBytes_AS_STRING(stand_in),
                              PyBytes_GET_SIZE(stand_in)) < 0) {
            if (!PyErr_Occurred()) PyErr_NoMemory();
            return -1;
        }
        c->replacement_offsets[id + 1] = c->replacements.len;
    }
    return 0;
}

static int Counter_init(Counter *c, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"segment_tokens", "decoded_segment_tokens", "xml_unescape",
                               "fallback_page", "count_links", "stand_ins", NULL};
    PyObject *segment_tokens, *decoded, *unescape, *fallback, *stand_ins = NULL;
    int count_links = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO|pO!", keywords, &segment_tokens, &decoded,
                                     &unescape, &fallback, &count_links, &PyDict_Type, &stand_ins))
        return -1;
    if (stand_ins && set_stand_ins(c, stand_ins) < 0) return -1;
    Py_XSETREF(c->segment_tokens, Py_NewRef(segment_tokens));
    Py_XSETREF(c->decoded_segment_tokens, Py_NewRef(decoded));
    Py_XSETREF(c->xml_unescape, Py_NewRef(unescape));
    Py_XSETREF(c->fallback_page, Py_NewRef(fallback));
    c->count_links = count_links;
    if (!c->titles && !(c->titles = PyList_New(0))) return -1;
    if (!c->redirects && !(c->redirects = PyList_New(0))) return -1;
    c->previous = -1;
    return 0;
}

static void Counter_dealloc(Counter *c) {
    Py_XDECREF(c->segment_tokens);
    Py_XDECREF(c->decoded_segment_tokens);
    Py_XDECREF(c->xml_unescape);
    Py_XDECREF(c->fallback_page);
    Py_XDECREF(c->titles);
    Py_XDECREF(c->redirects);
    table_free(&c->words);
    table_free(&c->links);
    table_free(&c->replaceable);
    buf_free(&c->replacements);
    buf_free(&c->segment);
    PyMem_RawFree(c->replacement_offsets);
    pairs_free(&c->pairs);
    buf_free(&c->a);
    buf_free(&c->b);
    buf_free(&c->page_links);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyTypeObject CounterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wit_builder.queries._hotloop.FragmentCounter",
    .tp_basicsize = sizeof(Counter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Word, pair and link counts of MediaWiki XML fragments (see counts.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Counter_init,
    .tp_dealloc = (destructor)Counter_dealloc,
    .tp_methods = Counter_methods,
    .tp_getset = Counter_getset,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hotloop",
                                    "Compiled hot loop of wit queries (see _hotloop.c).", -1, NULL};

PyMODINIT_FUNC PyInit__hotloop(void) {
    init_byte_classes();
    init_word_classes();
    if (sip_key_init() < 0) return NULL;
    if (PyType_Ready(&CounterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CounterType);
    if (PyModule_AddObject(m, "FragmentCounter", (PyObject *)&CounterType) < 0) {
        Py_DECREF(&CounterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
