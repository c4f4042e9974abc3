/* How core/text.py cuts ASCII text into words, for both C extensions (queries/_hotloop.c counts
 * words, crawl/_crawlfast.c matches them); any other text goes to text.py itself. The rules are
 * text.py's: runs of letters and digits joined by an apostrophe, by a hyphen unless both sides
 * are digits, by '.' or ',' between digits ("1,000", "3.5"); single letters each followed by a
 * full stop are one word ("u.s.", "i.e"); a final "'s" is not part of the word (possessive).
 * Include after Python.h. */
#ifndef WITBUILDER_WORDS_H
#define WITBUILDER_WORDS_H

enum { WORD_LETTER = 1, WORD_DIGIT = 2 };
#define WORD_CHARACTER (WORD_LETTER | WORD_DIGIT)
static unsigned char word_class[256];

static void init_word_classes(void) {
    for (int ch = 0; ch < 256; ch++)
        word_class[ch] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) ? WORD_LETTER
                         : (ch >= '0' && ch <= '9') ? WORD_DIGIT : 0;
}

/* Whether s[m] joins the runs of letters and digits on its two sides (text.JOINER). */
static int word_joins(const unsigned char *s, Py_ssize_t m, Py_ssize_t n) {
    if (m == 0 || m + 1 >= n || !word_class[s[m + 1]]) return 0;
    int digits = word_class[s[m - 1]] == WORD_DIGIT && word_class[s[m + 1]] == WORD_DIGIT;
    switch (s[m]) {
    case '\'': return 1;
    case '-': return !digits;
    case '.': case ',': return digits;
    default: return 0;
    }
}

/* The end of the abbreviation (text.ABBREVIATION_PATTERN) starting at s[k], 0 when none does. */
static Py_ssize_t abbreviation_end(const unsigned char *s, Py_ssize_t k, Py_ssize_t n) {
    if (word_class[s[k]] != WORD_LETTER) return 0;
    Py_ssize_t m = k + 1;
    while (m + 1 < n && s[m] == '.' && word_class[s[m + 1]] == WORD_LETTER
           && !(m + 2 < n && word_class[s[m + 2]]))
        m += 2;
    if (m == k + 1) return 0;
    return m < n && s[m] == '.' ? m + 1 : m;
}

/* The word starting at s[k] (a letter or digit that no word before it continues): returns where
 * it ends; *length is how many of its bytes are the word (a possessive "'s" left out). */
static Py_ssize_t ascii_word_at(const unsigned char *s, Py_ssize_t k, Py_ssize_t n,
                                Py_ssize_t *length) {
    Py_ssize_t m = abbreviation_end(s, k, n);
    if (m) {
        *length = m - k;
        return m;
    }
    m = k + 1;
    for (;;) {
        while (m < n && word_class[s[m]]) m++;
        if (m < n && word_joins(s, m, n)) m += 2;
        else break;
    }
    *length = m - k;
    if (*length >= 3 && s[m - 2] == '\'' && (s[m - 1] | 0x20) == 's') *length -= 2;
    return m;
}

#endif
