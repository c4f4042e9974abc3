/* The compiled hot paths of `wit crawl`: query matching over words, and the per-image work of
 * HTML extraction. Each does exactly what its Python reference does (wit_builder/crawl/match.py's
 * automaton matcher, wit_builder/crawl/sources/html.py's images_of); tests compare them on generated
 * inputs.
 *
 * Matching. Queries match whole words and phrases, so the alphabet here is words, not
 * characters: a hash table maps every word of the queries to a node (its word id), and a second
 * table maps (node, next word id) to the node of the longer phrase. A phrase can only start at a
 * word, so matching probes, from every word of the text, successively longer phrases while the
 * trie has them: exactly the queries whose words occur contiguously in the text, which is what
 * the character automaton over " query " keys finds in " word word ... ". A text costs one pass
 * over its bytes (lower-casing and cutting words as match.matchable_text does for ASCII) and one
 * hash probe per word; non-ASCII texts are cut by the Python reference (NFKC) and split here.
 *
 * Extraction. The per-image work (which URL, data: URIs, 1x1 pixels, resolution of relative
 * URLs, alt/title whitespace) is decided here for the common shapes of images, on the attribute
 * dicts of the nodes selectolax's public API returns; every other image is handed to the Python
 * reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/siphash.h"
#include "../core/words.h"

typedef unsigned char u8;
typedef Py_ssize_t ssz;

/* ---------- word hashing ---------- */
/*
 * The tables' keys come from untrusted text (every word of every page is probed), so they are
 * hashed with SipHash-1-3 under a random 128-bit key drawn once per process (os.urandom at import):
 * nobody can choose words or phrases that pile into one probe run. Nothing keyed is ever written
 * out: a cache holds the words and edges, and the tables are rebuilt under this process's key.
 */

static uint64_t load_le64(const u8 *s) { return sip_load_le64(s); }

/* SipHash-1-3 of s[:n] under this process's key (core/siphash.h). */
static uint64_t hash_bytes(const u8 *s, ssz n) { return siphash13(s, n); }

/* An edge's key is a pair of ids, (parent node, word): fixed-size, so it is hashed by simple
 * tabulation (Patrascu and Thorup: linear probing takes O(1) expected probes whatever the keys,
 * as long as they do not depend on the tables): eight random tables, one per byte of the key,
 * filled from SipHash under the process's key. Eight loads and XORs where SipHash took five
 * rounds: matching runs ~15% faster than with SipHash here. */
static uint64_t edge_table[8][256];

static uint64_t edge_hash(uint32_t parent, uint32_t word) {
    uint64_t x = (uint64_t)word << 32 | parent, h = 0;
    for (int i = 0; i < 8; i++) h ^= edge_table[i][(x >> (8 * i)) & 0xff];
    return h;
}

/* The per-process key, from os.urandom, and the edge tables drawn from it; -1 on error. */
static int init_hash_key(void) {
    if (sip_key_init() < 0) return -1;
    for (uint64_t i = 0; i < 8 * 256; i++) {
        u8 counter[8];
        for (int k = 0; k < 8; k++) counter[k] = (u8)(i >> (8 * k));
        edge_table[i / 256][i % 256] = hash_bytes(counter, 8);
    }
    return 0;
}

/* ---------- the tables ---------- */

#define INLINE_KEY 16
#define NO_QUERY (-1)
#define HAS_CHILDREN 0x80000000u

/* A word of the queries: 32 bytes, so a probe that finds it touches one cache line. */
typedef struct {
    uint32_t hash;      /* high half of the word's hash */
    uint32_t id_plus1;  /* word id + 1; 0 marks an empty slot */
    int32_t query;      /* id of the query that is this word alone, else NO_QUERY */
    uint32_t length;    /* bytes of the word; HAS_CHILDREN bit: a phrase continues it */
    union {
        u8 key[INLINE_KEY];          /* words of up to INLINE_KEY bytes */
        uint64_t arena_offset;       /* longer ones live in the arena */
    } word;
} WordSlot;

/* A phrase edge: (parent node, next word) -> child node. */
typedef struct {
    uint32_t parent_plus1;  /* 0 marks an empty slot */
    uint32_t word;
    int32_t query;          /* id of the query this phrase is, else NO_QUERY */
    uint32_t child;         /* child node; HAS_CHILDREN bit: a longer phrase continues it */
} EdgeSlot;

typedef struct {
    WordSlot *words;
    uint64_t word_mask, word_count;
    EdgeSlot *edges;
    uint64_t edge_mask, edge_count;
    u8 *arena;
    uint64_t arena_len, arena_cap;
} Tables;

static void tables_free(Tables *t) {
    PyMem_RawFree(t->words);
    PyMem_RawFree(t->edges);
    PyMem_RawFree(t->arena);
    memset(t, 0, sizeof(*t));
}

static uint64_t slot_length(const WordSlot *slot) { return slot->length & ~HAS_CHILDREN; }

static const u8 *slot_key(const Tables *t, const WordSlot *slot) {
    return slot_length(slot) <= INLINE_KEY ? slot->word.key : t->arena + slot->word.arena_offset;
}

/* The slot of word s[:n] (hash h), or the empty slot where it would go. */
static WordSlot *find_word(const Tables *t, const u8 *s, ssz n, uint64_t h) {
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & t->word_mask;; i = (i + 1) & t->word_mask) {
        WordSlot *slot = &t->words[i];
        if (!slot->id_plus1) return slot;
        if (slot->hash == tag && slot_length(slot) == (uint64_t)n &&
            !memcmp(slot_key(t, slot), s, n))
            return slot;
    }
}

static EdgeSlot *find_edge(const Tables *t, uint32_t parent, uint32_t word) {
    for (uint64_t i = edge_hash(parent, word) & t->edge_mask;; i = (i + 1) & t->edge_mask) {
        EdgeSlot *slot = &t->edges[i];
        if (!slot->parent_plus1 || (slot->parent_plus1 == parent + 1 && slot->word == word))
            return slot;
    }
}

/* ---------- building ---------- */

static int grow_words(Tables *t) {
    uint64_t capacity = (t->word_mask + 1) * 2;
    WordSlot *old = t->words;
    uint64_t old_capacity = t->word_mask + 1;
    t->words = PyMem_RawCalloc(capacity, sizeof(WordSlot));
    if (!t->words) { t->words = old; return -1; }
    t->word_mask = capacity - 1;
    for (uint64_t i = 0; i < old_capacity; i++) {
        if (!old[i].id_plus1) continue;
        const u8 *key = slot_key(t, &old[i]);
        *find_word(t, key, slot_length(&old[i]), hash_bytes(key, slot_length(&old[i]))) = old[i];
    }
    PyMem_RawFree(old);
    return 0;
}

static int grow_edges(Tables *t) {
    uint64_t capacity = (t->edge_mask + 1) * 2;
    EdgeSlot *old = t->edges;
    uint64_t old_capacity = t->edge_mask + 1;
    t->edges = PyMem_RawCalloc(capacity, sizeof(EdgeSlot));
    if (!t->edges) { t->edges = old; return -1; }
    t->edge_mask = capacity - 1;
    for (uint64_t i = 0; i < old_capacity; i++)
        if (old[i].parent_plus1) *find_edge(t, old[i].parent_plus1 - 1, old[i].word) = old[i];
    PyMem_RawFree(old);
    return 0;
}

/* Empty tables that hold `words` words and `edges` edges without growing (at most half full). */
static uint64_t table_capacity(uint64_t entries) {
    uint64_t capacity = 1024;
    while (capacity < 2 * (entries + 1)) capacity *= 2;
    return capacity;
}

static int tables_init(Tables *t, uint64_t words, uint64_t edges) {
    memset(t, 0, sizeof(*t));
    t->word_mask = table_capacity(words) - 1;
    t->edge_mask = table_capacity(edges) - 1;
    t->words = PyMem_RawCalloc(t->word_mask + 1, sizeof(WordSlot));
    t->edges = PyMem_RawCalloc(t->edge_mask + 1, sizeof(EdgeSlot));
    return t->words && t->edges ? 0 : -1;
}

/* The slot of word s[:n], added when new. */
static WordSlot *add_word(Tables *t, const u8 *s, ssz n) {
    if ((t->word_count + 1) * 2 > t->word_mask + 1 && grow_words(t) < 0) return NULL;
    uint64_t h = hash_bytes(s, n);
    WordSlot *slot = find_word(t, s, n, h);
    if (slot->id_plus1) return slot;
    if (t->word_count >= 0x7fffffffu || (uint64_t)n >= HAS_CHILDREN) return NULL;
    slot->hash = (uint32_t)(h >> 32);
    slot->id_plus1 = (uint32_t)++t->word_count;
    slot->query = NO_QUERY;
    slot->length = (uint32_t)n;
    if (n <= INLINE_KEY) {
        memcpy(slot->word.key, s, n);
        return slot;
    }
    if (t->arena_len + n > t->arena_cap) {
        uint64_t capacity = t->arena_cap ? t->arena_cap : 4096;
        while (capacity < t->arena_len + n) capacity *= 2;
        u8 *arena = PyMem_RawRealloc(t->arena, capacity);
        if (!arena) return NULL;
        t->arena = arena;
        t->arena_cap = capacity;
    }
    memcpy(t->arena + t->arena_len, s, n);
    slot->word.arena_offset = t->arena_len;
    t->arena_len += n;
    return slot;
}

/* The node of phrase (parent, word), added when new; nodes past the words are numbered on. */
static EdgeSlot *add_edge(Tables *t, uint32_t parent, uint32_t word) {
    if ((t->edge_count + 1) * 2 > t->edge_mask + 1 && grow_edges(t) < 0) return NULL;
    EdgeSlot *slot = find_edge(t, parent, word);
    if (slot->parent_plus1) return slot;
    slot->parent_plus1 = parent + 1;
    slot->word = word;
    slot->query = NO_QUERY;
    slot->child = 0;  /* numbered once the vocabulary is complete */
    t->edge_count++;
    return slot;
}

/* ---------- the matcher object ---------- */

typedef struct {
    PyObject_HEAD
    Tables t;
    PyObject *cut_words;  /* str -> str of words between spaces: the non-ASCII reference */
    /* scratch reused across texts (the GIL is held throughout) */
    u8 *folded;
    ssz folded_cap;
    const WordSlot **found;
    ssz found_cap;
    int32_t *hits;
    ssz hits_cap;
} Matcher;

static int reserve(void **buffer, ssz *capacity, ssz need, size_t item) {
    if (need <= *capacity) return 0;
    ssz cap = *capacity ? *capacity : 256;
    while (cap < need) cap *= 2;
    void *grown = PyMem_RawRealloc(*buffer, (size_t)cap * item);
    if (!grown) { PyErr_NoMemory(); return -1; }
    *buffer = grown;
    *capacity = cap;
    return 0;
}

static u8 latin1_space[256];  /* str.isspace() of every one-byte (Latin-1) character */

static void init_byte_classes(void) {
    for (int c = 0; c < 256; c++) {
        latin1_space[c] = (u8)Py_UNICODE_ISSPACE((Py_UCS4)c);
    }
}

/* Adds one word's slot (NULL: a word of no query) to m->found. */
static void note_word(Matcher *m, const u8 *s, ssz n, ssz *count) {
    const WordSlot *slot = find_word(&m->t, s, n, hash_bytes(s, n));
    m->found[(*count)++] = slot->id_plus1 ? slot : NULL;
}

/* ASCII text cut into words as match.matchable_text cuts it (core/words.h: text.py's words of the
 * lower-cased text, possessives folded), written to m->folded as words between single spaces.
 * Returns the length written, or -1. */
static ssz fold_ascii(Matcher *m, const u8 *s, ssz n) {
    if (reserve((void **)&m->folded, &m->folded_cap, n + 1, 1) < 0) return -1;
    u8 *out = m->folded;
    ssz i = 0;
    while (i < n) {
        if (!word_class[s[i]]) { i++; continue; }
        if (out != m->folded) *out++ = ' ';
        ssz length, end = ascii_word_at(s, i, n, &length);
        for (ssz j = 0; j < length; j++) out[j] = (u8)Py_TOLOWER(s[i + j]);
        out += length;
        i = end;
    }
    return out - m->folded;
}

/* Words of text already cut by the reference (single spaces; runs allowed at the ends). */
static ssz spaced_words(Matcher *m, const u8 *s, ssz n) {
    if (reserve((void **)&m->found, &m->found_cap, n / 2 + 2, sizeof(WordSlot *)) < 0) return -1;
    ssz count = 0, i = 0;
    while (i < n) {
        if (s[i] == ' ') { i++; continue; }
        ssz start = i;
        while (i < n && s[i] != ' ') i++;
        note_word(m, s + start, i - start, &count);
    }
    return count;
}

/* The words of `text` looked up in m->found; -1 on error. */
static ssz text_words(Matcher *m, PyObject *text) {
    if (PyUnicode_IS_ASCII(text)) {
        ssz n = fold_ascii(m, PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text));
        return n < 0 ? -1 : spaced_words(m, m->folded, n);
    }
    PyObject *cut = PyObject_CallOneArg(m->cut_words, text);
    if (!cut) return -1;
    ssz n;
    const char *s = PyUnicode_Check(cut) ? PyUnicode_AsUTF8AndSize(cut, &n) : NULL;
    ssz count = -1;
    if (s) count = spaced_words(m, (const u8 *)s, n);
    else if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "cut_words must return str");
    Py_DECREF(cut);
    return count;
}

static int add_hit(Matcher *m, ssz *hits, int32_t query) {
    if (reserve((void **)&m->hits, &m->hits_cap, *hits + 1, sizeof(int32_t)) < 0) return -1;
    m->hits[(*hits)++] = query;
    return 0;
}

static int compare_ints(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Sorted distinct ids of the queries found in the text's words. */
static PyObject *Matcher_match(Matcher *m, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "match() takes a str");
        return NULL;
    }
    ssz words = text_words(m, text), hits = 0;
    if (words < 0) return NULL;
    const WordSlot **found = m->found;
    for (ssz i = 0; i < words; i++) {
        const WordSlot *slot = found[i];
        if (!slot) continue;
        if (slot->query != NO_QUERY && add_hit(m, &hits, slot->query) < 0) return NULL;
        if (!(slot->length & HAS_CHILDREN)) continue;
        uint32_t node = slot->id_plus1 - 1;
        for (ssz j = i + 1; j < words && found[j]; j++) {
            const EdgeSlot *edge = find_edge(&m->t, node, found[j]->id_plus1 - 1);
            if (!edge->parent_plus1) break;
            if (edge->query != NO_QUERY && add_hit(m, &hits, edge->query) < 0) return NULL;
            if (!(edge->child & HAS_CHILDREN)) break;
            node = edge->child & ~HAS_CHILDREN;
        }
    }
    if (hits > 1) qsort(m->hits, hits, sizeof(int32_t), compare_ints);
    ssz distinct = 0;
    for (ssz i = 0; i < hits; i++)
        if (i == 0 || m->hits[i] != m->hits[distinct - 1]) m->hits[distinct++] = m->hits[i];
    PyObject *result = PyList_New(distinct);
    if (!result) return NULL;
    for (ssz i = 0; i < distinct; i++) {
        PyObject *id = PyLong_FromLong(m->hits[i]);
        if (!id) { Py_DECREF(result); return NULL; }
        PyList_SET_ITEM(result, i, id);
    }
    return result;
}

/* The words match() looks up for `text` (for tests: they must be matchable_text's). */
static PyObject *Matcher_words(Matcher *m, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "words() takes a str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        PyObject *cut = PyObject_CallOneArg(m->cut_words, text);
        if (!cut) return NULL;
        PyObject *result = PyUnicode_Split(cut, NULL, -1);
        Py_DECREF(cut);
        return result;
    }
    ssz n = fold_ascii(m, PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text));
    if (n < 0) return NULL;
    PyObject *folded = PyUnicode_DecodeASCII((const char *)m->folded, n, NULL);
    if (!folded) return NULL;
    PyObject *result = PyUnicode_Split(folded, NULL, -1);
    Py_DECREF(folded);
    return result;
}

/* Sets HAS_CHILDREN on every word and phrase node that an edge continues. Node ids: words are
 * 0..word_count-1, phrase nodes word_count.. (an edge's child). */
static int mark_continuations(Tables *t) {
    uint64_t nodes = t->word_count + t->edge_count;
    uint64_t *slot_of = PyMem_RawMalloc((nodes + 1) * sizeof(uint64_t));
    if (!slot_of) return -1;
    for (uint64_t i = 0; i < nodes; i++) slot_of[i] = UINT64_MAX;
    for (uint64_t i = 0; i <= t->word_mask; i++)
        if (t->words[i].id_plus1) slot_of[t->words[i].id_plus1 - 1] = i;
    for (uint64_t i = 0; i <= t->edge_mask; i++) {
        uint64_t child = t->edges[i].child & ~HAS_CHILDREN;
        if (t->edges[i].parent_plus1 && child < nodes) slot_of[child] = i;
    }
    for (uint64_t i = 0; i <= t->edge_mask; i++) {
        uint64_t parent = t->edges[i].parent_plus1;
        if (!parent || parent - 1 >= nodes || slot_of[parent - 1] == UINT64_MAX) continue;
        if (parent - 1 < t->word_count) t->words[slot_of[parent - 1]].length |= HAS_CHILDREN;
        else t->edges[slot_of[parent - 1]].child |= HAS_CHILDREN;
    }
    PyMem_RawFree(slot_of);
    return 0;
}

/* ---------- construction, serialisation ---------- */

static PyTypeObject MatcherType;

static Matcher *new_matcher(PyObject *cut_words) {
    Matcher *m = (Matcher *)MatcherType.tp_alloc(&MatcherType, 0);
    if (!m) return NULL;
    m->cut_words = Py_NewRef(cut_words);
    return m;
}

/* Phrase nodes are numbered while building: a phrase's node must exist before its children's
 * edges name it. Edge nodes take ids from a counter above every possible word id. */
#define PHRASE_NODE_BASE 0x40000000u

static int add_phrase(Tables *t, int32_t query, const u8 *key, ssz n, uint32_t *next_node) {
    ssz i = 0;
    uint32_t node = 0;
    int depth = 0;
    int32_t *target = NULL;
    while (i < n) {
        if (key[i] == ' ') { i++; continue; }
        ssz start = i;
        while (i < n && key[i] != ' ') i++;
        WordSlot *slot = add_word(t, key + start, i - start);
        if (!slot) return -1;
        uint32_t word = slot->id_plus1 - 1;
        if (depth++ == 0) {
            node = word;
            target = &slot->query;
            continue;
        }
        EdgeSlot *edge = add_edge(t, node, word);
        if (!edge) return -1;
        if (!edge->child) edge->child = (*next_node)++;
        node = edge->child;
        target = &edge->query;
    }
    if (target) *target = query;  /* equal keys: the last query wins, as in the automaton */
    return 0;
}

/* Renumbers phrase nodes from PHRASE_NODE_BASE + k to word_count + k, once words are final. */
static int renumber_phrase_nodes(Tables *t) {
    uint64_t words = t->word_count;
    EdgeSlot *old = t->edges;
    uint64_t capacity = t->edge_mask + 1;
    t->edges = PyMem_RawCalloc(capacity, sizeof(EdgeSlot));
    if (!t->edges) { t->edges = old; return -1; }
    for (uint64_t i = 0; i < capacity; i++) {
        EdgeSlot edge = old[i];
        if (!edge.parent_plus1) continue;
        uint32_t parent = edge.parent_plus1 - 1;
        if (parent >= PHRASE_NODE_BASE) parent = (uint32_t)(words + parent - PHRASE_NODE_BASE);
        edge.parent_plus1 = parent + 1;
        edge.child = (uint32_t)(words + edge.child - PHRASE_NODE_BASE);
        *find_edge(t, parent, edge.word) = edge;
    }
    PyMem_RawFree(old);
    return 0;
}

static PyObject *Matcher_build(PyObject *cls, PyObject *args) {
    PyObject *phrases, *cut_words;
    if (!PyArg_ParseTuple(args, "OO", &phrases, &cut_words)) return NULL;
    Matcher *m = new_matcher(cut_words);
    if (!m) return NULL;
    if (tables_init(&m->t, 0, 0) < 0) { Py_DECREF(m); return PyErr_NoMemory(); }
    PyObject *iterator = PyObject_GetIter(phrases), *item;
    if (!iterator) { Py_DECREF(m); return NULL; }
    uint32_t next_node = PHRASE_NODE_BASE;
    while ((item = PyIter_Next(iterator))) {
        int query;
        const char *key;
        ssz n;
        /* the key's UTF-8 lives as long as the item: release the item only after adding */
        int ok = PyArg_ParseTuple(item, "is#", &query, &key, &n) &&
                 add_phrase(&m->t, query, (const u8 *)key, n, &next_node) == 0;
        Py_DECREF(item);
        if (!ok || m->t.word_count >= PHRASE_NODE_BASE) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_MemoryError, "query matcher: too many words or phrases");
            break;
        }
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) { Py_DECREF(m); return NULL; }
    if (renumber_phrase_nodes(&m->t) < 0 || mark_continuations(&m->t) < 0) {
        Py_DECREF(m);
        return PyErr_NoMemory();
    }
    return (PyObject *)m;
}

/* ---------- serialisation: entries, never the tables ---------- */
/*
 * to_bytes() writes what the tables hold, not how they lie (slots depend on this process's hash
 * key), all integers little-endian:
 *
 *   header  MAGIC, NUL-padded to 32 bytes; word_count, edge_count, text_bytes (u64 each)
 *   words   word_count x (query i32, length u32): word i is node i, its bytes the next `length`
 *           bytes of `text`; query -1 when no query is that word alone (any query id is safe:
 *           match() only reports it)
 *   edges   edge_count x (parent u32, word u32, query i32): edge k leads from node `parent` by
 *           word `word` to phrase node word_count + k; query -1 when that phrase is no query
 *   text    text_bytes: the words' bytes, in word order
 *
 * from_bytes() trusts none of it (a cache sits in a workdir others may write): every count,
 * length and index is checked against the buffer and the tables before use, words must be
 * distinct, non-empty and space-free, edges distinct, and an edge's parent must be a word or an
 * earlier phrase node (so phrases form a tree); the tables are then built afresh under this
 * process's key. Anything else is a ValueError, never a read out of bounds. (The cache file adds
 * a blake2b checksum of these bytes: match.py checks it before calling here.)
 */

#define MAGIC "witbuilder-wordmatcher-2"
#define MAGIC_BYTES 32
#define HEADER_BYTES (MAGIC_BYTES + 3 * 8)
#define WORD_RECORD 8
#define EDGE_RECORD 12

static void put_u32(u8 *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (u8)(v >> (8 * i));
}

static void put_u64(u8 *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (u8)(v >> (8 * i));
}

static uint32_t get_u32(const u8 *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static PyObject *Matcher_to_bytes(Matcher *m, PyObject *unused) {
    Tables *t = &m->t;
    uint64_t words = t->word_count, edges = t->edge_count, text = 0;
    /* slots in word-id order and in child order: the bytes do not depend on the key */
    const WordSlot **word_at = PyMem_RawCalloc(words + 1, sizeof(WordSlot *));
    const EdgeSlot **edge_at = PyMem_RawCalloc(edges + 1, sizeof(EdgeSlot *));
    if (!word_at || !edge_at) {
        PyMem_RawFree(word_at);
        PyMem_RawFree(edge_at);
        return PyErr_NoMemory();
    }
    for (uint64_t i = 0; i <= t->word_mask; i++) {
        const WordSlot *slot = &t->words[i];
        if (!slot->id_plus1) continue;
        word_at[slot->id_plus1 - 1] = slot;
        text += slot_length(slot);
    }
    for (uint64_t i = 0; i <= t->edge_mask; i++)
        if (t->edges[i].parent_plus1)
            edge_at[(t->edges[i].child & ~HAS_CHILDREN) - words] = &t->edges[i];
    PyObject *out = PyBytes_FromStringAndSize(
        NULL, (ssz)(HEADER_BYTES + words * WORD_RECORD + edges * EDGE_RECORD + text));
    if (out) {
        u8 *p = (u8 *)PyBytes_AS_STRING(out);
        memset(p, 0, MAGIC_BYTES);
        memcpy(p, MAGIC, sizeof(MAGIC) - 1);
        put_u64(p + MAGIC_BYTES, words);
        put_u64(p + MAGIC_BYTES + 8, edges);
        put_u64(p + MAGIC_BYTES + 16, text);
        u8 *record = p + HEADER_BYTES, *bytes = record + words * WORD_RECORD + edges * EDGE_RECORD;
        for (uint64_t i = 0; i < words; i++, record += WORD_RECORD) {
            const WordSlot *slot = word_at[i];
            uint64_t length = slot_length(slot);
            put_u32(record, (uint32_t)slot->query);
            put_u32(record + 4, (uint32_t)length);
            memcpy(bytes, slot_key(t, slot), length);
            bytes += length;
        }
        for (uint64_t k = 0; k < edges; k++, record += EDGE_RECORD) {
            put_u32(record, edge_at[k]->parent_plus1 - 1);
            put_u32(record + 4, edge_at[k]->word);
            put_u32(record + 8, (uint32_t)edge_at[k]->query);
        }
    }
    PyMem_RawFree(word_at);
    PyMem_RawFree(edge_at);
    return out;
}

/* The tables of to_bytes()'s bytes, checked throughout; on failure, the reason (a static
 * string) and no Python error, or NULL reason and a Python error (out of memory). */
static int tables_from_bytes(Tables *t, const u8 *p, uint64_t n, const char **reason) {
    *reason = NULL;
    if (n < HEADER_BYTES) { *reason = "shorter than its header"; return -1; }
    u8 magic[MAGIC_BYTES] = {0};
    memcpy(magic, MAGIC, sizeof(MAGIC) - 1);
    if (memcmp(p, magic, MAGIC_BYTES)) { *reason = "bad magic"; return -1; }
    uint64_t words = load_le64(p + MAGIC_BYTES), edges = load_le64(p + MAGIC_BYTES + 8);
    uint64_t text = load_le64(p + MAGIC_BYTES + 16);
    /* bounded counts: the products below cannot overflow, node ids fit below HAS_CHILDREN */
    if (words >= PHRASE_NODE_BASE || edges >= PHRASE_NODE_BASE) {
        *reason = "counts out of range";
        return -1;
    }
    uint64_t records = HEADER_BYTES + words * WORD_RECORD + edges * EDGE_RECORD;
    if (records > n || text != n - records) {
        *reason = "sizes disagree with its length";
        return -1;
    }
    if (tables_init(t, words, edges) < 0) { PyErr_NoMemory(); return -1; }
    const u8 *record = p + HEADER_BYTES, *bytes = p + records;
    uint64_t used = 0;
    for (uint64_t i = 0; i < words; i++, record += WORD_RECORD) {
        int32_t query = (int32_t)get_u32(record);
        uint64_t length = get_u32(record + 4);
        if (!length || length > text - used || length >= HAS_CHILDREN) {
            *reason = "a word's length out of range";
            return -1;
        }
        const u8 *key = bytes + used;
        if (memchr(key, ' ', length)) { *reason = "a word holds a space"; return -1; }
        WordSlot *slot = add_word(t, key, (ssz)length);
        if (!slot) { PyErr_NoMemory(); return -1; }
        if (slot->id_plus1 != i + 1) { *reason = "a word repeats"; return -1; }
        slot->query = query;
        used += length;
    }
    if (used != text) { *reason = "word lengths disagree with the text's"; return -1; }
    for (uint64_t k = 0; k < edges; k++, record += EDGE_RECORD) {
        uint32_t parent = get_u32(record), word = get_u32(record + 4);
        int32_t query = (int32_t)get_u32(record + 8);
        if (word >= words || parent >= words + k) {
            *reason = "an edge's node or word out of range";
            return -1;
        }
        uint64_t before = t->edge_count;
        EdgeSlot *slot = add_edge(t, parent, word);
        if (!slot) { PyErr_NoMemory(); return -1; }
        if (t->edge_count == before) { *reason = "an edge repeats"; return -1; }
        slot->query = query;
        slot->child = (uint32_t)(words + k);
    }
    if (mark_continuations(t) < 0) { PyErr_NoMemory(); return -1; }
    return 0;
}

static PyObject *Matcher_from_bytes(PyObject *cls, PyObject *args) {
    Py_buffer data;
    PyObject *cut_words;
    if (!PyArg_ParseTuple(args, "y*O", &data, &cut_words)) return NULL;
    Matcher *m = new_matcher(cut_words);
    if (!m) { PyBuffer_Release(&data); return NULL; }
    const char *reason;
    int status = tables_from_bytes(&m->t, data.buf, (uint64_t)data.len, &reason);
    PyBuffer_Release(&data);
    if (status < 0) {
        if (reason)
            PyErr_Format(PyExc_ValueError, "not the bytes of a query matcher of this version: %s",
                         reason);
        Py_DECREF(m);
        return NULL;
    }
    return (PyObject *)m;
}

static PyObject *Matcher_stats(Matcher *m, PyObject *unused) {
    return Py_BuildValue("{sKsKsK}", "words", (unsigned long long)m->t.word_count,
                         "phrase_nodes", (unsigned long long)m->t.edge_count, "bytes",
                         (unsigned long long)((m->t.word_mask + 1) * sizeof(WordSlot) +
                                              (m->t.edge_mask + 1) * sizeof(EdgeSlot) +
                                              m->t.arena_len));
}

static void Matcher_dealloc(Matcher *m) {
    Py_XDECREF(m->cut_words);
    tables_free(&m->t);
    PyMem_RawFree(m->folded);
    PyMem_RawFree(m->found);
    PyMem_RawFree(m->hits);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static PyMethodDef Matcher_methods[] = {
    {"build", (PyCFunction)Matcher_build, METH_VARARGS | METH_CLASS,
     "build(phrases, cut_words): phrases are (query id, words joined by single spaces)."},
    {"from_bytes", (PyCFunction)Matcher_from_bytes, METH_VARARGS | METH_CLASS,
     "from_bytes(data, cut_words): the matcher to_bytes() wrote."},
    {"to_bytes", (PyCFunction)Matcher_to_bytes, METH_NOARGS, "The tables as bytes."},
    {"match", (PyCFunction)Matcher_match, METH_O, "Sorted distinct ids of the queries in a str."},
    {"words", (PyCFunction)Matcher_words, METH_O, "The words match() looks up for a str."},
    {"stats", (PyCFunction)Matcher_stats, METH_NOARGS, "Words, phrase nodes, bytes."},
    {NULL, NULL, 0, NULL}};

/* ---------- HTML extraction: the per-image work of sources/html.py's images_of ---------- */
/*
 * Decided here: no lazy or srcset attribute, an ASCII src, an ASCII width/height, a URL that
 * UrlResolver.fast_path resolves, a non-empty alt or title. Any other image (srcset, data-src,
 * figcaption, non-ASCII src, URLs needing urljoin) is decided by the Python reference
 * (html.image_outcome, UrlResolver.resolve), so the outcome is the reference's by construction.
 */

static PyObject *S_slash, *S_attributes, *S_href, *S_rel;
static PyObject *R_opted_out, *R_no_url, *R_data_uri, *R_tracking_pixel, *R_not_http;
static PyObject *R_alt, *R_title;
#define UNDECIDED ((PyObject *)1)

static int ascii_space(u8 c) { return Py_UNICODE_ISSPACE(c); }

/* s[:n] without whitespace at either end (str.strip on ASCII). */
static void strip_ascii(const u8 **s, ssz *n) {
    while (*n && ascii_space((*s)[0])) { (*s)++; (*n)--; }
    while (*n && ascii_space((*s)[*n - 1])) (*n)--;
}

static const u8 *find_pair(const u8 *s, ssz n, u8 a, u8 b) {
    for (ssz i = 0; i + 1 < n; i++)
        if (s[i] == a && s[i + 1] == b) return s + i;
    return NULL;
}

static int starts_with(const u8 *s, ssz n, const char *prefix) {
    ssz k = (ssz)strlen(prefix);
    return n >= k && !memcmp(s, prefix, k);
}

static PyObject *ascii_str(const u8 *s, ssz n) {
    return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, s, n);
}

/* prefix + s[:n] (s is ASCII). */
static PyObject *joined(PyObject *prefix, const u8 *s, ssz n) {
    if (!PyUnicode_IS_ASCII(prefix)) {
        PyObject *tail = ascii_str(s, n);
        if (!tail) return NULL;
        PyObject *result = PyUnicode_Concat(prefix, tail);
        Py_DECREF(tail);
        return result;
    }
    ssz length = PyUnicode_GET_LENGTH(prefix);
    PyObject *result = PyUnicode_New(length + n, 127);
    if (!result) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(result), PyUnicode_1BYTE_DATA(prefix), length);
    memcpy(PyUnicode_1BYTE_DATA(result) + length, s, n);
    return result;
}

/* UrlResolver.fast_path on a stripped, fragment-free ASCII URL: a new str, or UNDECIDED. */
static PyObject *fast_url(const u8 *u, ssz n, PyObject *origin, PyObject *directory,
                          int simple_base) {
    if (!n || u[n - 1] == '?') return UNDECIDED;
    for (ssz i = 0; i < n; i++)
        if (u[i] <= ' ' || u[i] > '~' || u[i] == '\\') return UNDECIDED;
    if (find_pair(u, n, '/', '.')) return UNDECIDED;
    if (u[0] == '/' && !(n > 1 && u[1] == '/'))  /* root-relative, the commonest shape */
        return simple_base && !find_pair(u, n, '/', '/') ? joined(origin, u, n) : UNDECIDED;
    if (starts_with(u, n, "http://") || starts_with(u, n, "https://")) {
        ssz host = find_pair(u, n, '/', '/') - u + 2, slash = host;
        while (slash < n && u[slash] != '/') slash++;
        if (slash == host) return UNDECIDED;
        for (ssz i = host; i < slash; i++)
            if (u[i] == '?' || u[i] == '@') return UNDECIDED;
        if (slash < n) return ascii_str(u, n);
        PyObject *url = ascii_str(u, n);
        if (!url) return NULL;
        PyObject *result = PyUnicode_Concat(url, S_slash);
        Py_DECREF(url);
        return result;
    }
    if (!simple_base || starts_with(u, n, "//") || u[0] == '?') return UNDECIDED;
    if (find_pair(u, n, '/', '/')) return UNDECIDED;
    if (u[0] == '/') return joined(origin, u, n);
    for (ssz i = 0; i < n && u[i] != '/'; i++)
        if (u[i] == ':') return UNDECIDED;
    if (u[0] == '.') return UNDECIDED;
    return joined(directory, u, n);
}

/* ASCII src: "data_uri" (a borrowed reason) when it is a data: URI, else NULL. */
static PyObject *data_uri(const u8 *s, ssz n) {
    if (!memchr(s, ':', n)) return NULL;
    while (n && ascii_space(s[0])) { s++; n--; }
    static const char data[] = "data:";
    if (n < 5) return NULL;
    for (int i = 0; i < 5; i++)
        if (Py_TOLOWER(s[i]) != data[i]) return NULL;
    return R_data_uri;
}

/* One attribute value of an image, from a selectolax attribute dict. */
typedef struct {
    int present;      /* the attribute exists */
    const u8 *bytes;  /* its bytes when ASCII, "" when not; NULL when valueless (None) */
    ssz n;
    int ascii;        /* the value is ASCII (only then are src, width, height decided here) */
    PyObject *str;    /* the str itself (borrowed); NULL when valueless */
} Value;

/* The attributes the compiled path reads; `lazy`: a URL attribute other than src is set. */
typedef struct {
    Value src, alt, title, width, height;
    int lazy;
} ImageAttributes;

/* The value as selectolax gives it (a new reference): the str, or None. */
static PyObject *value_str(const Value *v) {
    return Py_NewRef(v->str ? v->str : Py_None);
}

/* is_tracking_pixel's `declared` on one value: 1 when it declares a size <= 1, 0 when it
 * declares more or nothing readable, -1 when only the reference can tell (non-ASCII). */
static int declares_at_most_one(const Value *v, int *declared) {
    *declared = 0;
    if (!v->bytes) return 0;
    if (!v->ascii) return -1;
    const u8 *s = v->bytes;
    ssz n = v->n;
    strip_ascii(&s, &n);
    if (n >= 2 && Py_TOLOWER(s[n - 2]) == 'p' && Py_TOLOWER(s[n - 1]) == 'x') n -= 2;
    if (!n) return 0;
    for (ssz i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    *declared = 1;
    while (n && s[0] == '0') { s++; n--; }  /* int(value) <= 1 without overflowing */
    return n == 0 || (n == 1 && s[0] == '1');
}

/* 1: a declared 1x1 (or smaller) image; 0: not; -1: only the reference can tell. */
static int tracking_pixel(const ImageAttributes *a) {
    if (!a->width.present || !a->height.present) return 0;
    int width_declared, height_declared;
    int small_width = declares_at_most_one(&a->width, &width_declared);
    int small_height = declares_at_most_one(&a->height, &height_declared);
    if (small_width < 0 || small_height < 0) return -1;
    return width_declared && height_declared && small_width && small_height;
}

/* True when a one-byte str needs no collapsing: no whitespace but single ' ' between words. */
static int latin1_collapsed(const u8 *s, ssz n) {
    if (n && (latin1_space[s[0]] || latin1_space[s[n - 1]])) return 0;
    /* Branch- and table-free so that the compiler vectorises it: captions hold a space every
     * few bytes, and a branch on each mispredicts. Latin-1 whitespace is \t-\r, \x1c-\x1f,
     * ' ', \x85 and \xa0; only a ' ' followed by a non-space may stay. */
    unsigned bad = 0;
    for (ssz i = 0; i + 1 < n; i++) {
        u8 c = s[i], next = s[i + 1];
        bad |= ((u8)(c - '\t') < 5) | ((u8)(c - 0x1c) < 4) | (c == 0x85) | (c == 0xa0) |
               ((c == ' ') & (next == ' '));
    }
    return !bad;
}

/* collapse_whitespace: runs of whitespace made one space, none at the ends (any str kind).
 * Returns a new reference (the same str when nothing changes); None or a non-str gives "". */
static PyObject *collapsed(PyObject *text) {
    if (!text || !PyUnicode_Check(text)) return PyUnicode_New(0, 0);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    ssz n = PyUnicode_GET_LENGTH(text);
    if (kind == PyUnicode_1BYTE_KIND && latin1_collapsed(data, n)) return Py_NewRef(text);
    Py_UCS4 *out = PyMem_Malloc((n ? n : 1) * sizeof(Py_UCS4));
    if (!out) return PyErr_NoMemory();
    ssz length = 0;
    for (ssz i = 0; i < n;) {
        while (i < n && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) i++;
        if (i == n) break;
        if (length) out[length++] = ' ';
        while (i < n && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)))
            out[length++] = PyUnicode_READ(kind, data, i++);
    }
    /* FromKindAndData narrows to the canonical kind: equal strs must have equal kinds */
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, length);
    PyMem_Free(out);
    return result;
}

/* Where a page's URLs resolve: origin and directory for the fast path, and the reference's
 * UrlResolver.resolve for every other URL (all borrowed). */
typedef struct {
    PyObject *origin, *directory;
    int simple_base;
    PyObject *resolve;
} Resolution;

/* The image's URL resolved (a new str), or None when the reference drops it, NULL on error. */
static PyObject *resolved_url(const Value *src, Resolution *r) {
    const u8 *u = src->bytes;
    ssz n = src->n;
    strip_ascii(&u, &n);
    const u8 *fragment = memchr(u, '#', n);
    if (fragment) n = fragment - u;
    PyObject *url = fast_url(u, n, r->origin, r->directory, r->simple_base);
    if (url != UNDECIDED) return url;
    PyObject *raw = value_str(src);
    if (!raw) return NULL;
    url = PyObject_CallOneArg(r->resolve, raw);
    Py_DECREF(raw);
    return url;
}

/* A non-empty collapsed text (a new str) from alt, else title; NULL with no error when both
 * are empty (the figure's caption: the reference reads it). */
static PyObject *alt_or_title(const ImageAttributes *a, PyObject **source) {
    const Value *candidates[2] = {&a->alt, &a->title};
    PyObject *sources[2] = {R_alt, R_title};
    for (int k = 0; k < 2; k++) {
        PyObject *raw = value_str(candidates[k]);
        if (!raw) return NULL;
        PyObject *text = collapsed(raw);
        Py_DECREF(raw);
        if (!text) return NULL;
        if (PyUnicode_GET_LENGTH(text)) {
            *source = sources[k];
            return text;
        }
        Py_DECREF(text);
    }
    return NULL;
}

/* The outcome of one image: a new ImageText, a borrowed reason, UNDECIDED, or NULL on error.
 * The checks run in the reference's order; an image it cannot finish is left UNDECIDED. */
static PyObject *decide_image(const ImageAttributes *a, Resolution *r, PyObject *image_text) {
    if (a->lazy) return UNDECIDED;
    if (!a->src.present || !a->src.bytes) return R_no_url;
    if (!a->src.ascii) return UNDECIDED;
    if (a->src.n == 0) return R_no_url;
    if (data_uri(a->src.bytes, a->src.n)) return R_data_uri;
    int pixel = tracking_pixel(a);
    if (pixel) return pixel < 0 ? UNDECIDED : R_tracking_pixel;
    PyObject *source = NULL;
    PyObject *text = alt_or_title(a, &source);
    if (!text) return PyErr_Occurred() ? NULL : UNDECIDED;
    PyObject *url = resolved_url(&a->src, r);
    if (!url || url == Py_None) {
        Py_DECREF(text);
        if (!url) return NULL;
        Py_DECREF(url);
        return R_not_http;
    }
    /* ImageText(url, text, source) as tuple.__new__ builds a tuple subclass (tp_alloc, then
     * the items), without the NamedTuple's Python-level __new__ frame */
    PyObject *pair = ((PyTypeObject *)image_text)->tp_alloc((PyTypeObject *)image_text, 3);
    if (!pair) { Py_DECREF(url); Py_DECREF(text); return NULL; }
    PyTuple_SET_ITEM(pair, 0, url);
    PyTuple_SET_ITEM(pair, 1, text);
    PyTuple_SET_ITEM(pair, 2, Py_NewRef(source));
    return pair;
}

/* Every URL attribute is "srcset" or "data-..." (a test holds html.URL_ATTRIBUTES to it): other
 * names (src, alt, width...) need no set lookup. */
static int may_be_url_attribute(const u8 *name, ssz n) {
    return n >= 6 && (name[0] == 's' || name[0] == 'd');
}

static int named(const u8 *name, ssz n, const char *expected) {
    return (ssz)strlen(expected) == n && !memcmp(name, expected, n);
}

/* Which of the read attributes `name` is, or NULL. */
static Value *slot_for(ImageAttributes *a, const u8 *name, ssz n) {
    if (named(name, n, "src")) return &a->src;
    if (named(name, n, "alt")) return &a->alt;
    if (named(name, n, "title")) return &a->title;
    if (named(name, n, "width")) return &a->width;
    if (named(name, n, "height")) return &a->height;
    return NULL;
}

/* ImageAttributes of a selectolax attribute dict; -1 on error. */
static int dict_attributes(PyObject *attributes, PyObject *url_attributes, ImageAttributes *a) {
    memset(a, 0, sizeof(*a));
    PyObject *key, *value;
    ssz position = 0;
    while (PyDict_Next(attributes, &position, &key, &value)) {
        if (!PyUnicode_Check(key) || !PyUnicode_IS_ASCII(key)) {
            int lazy = PySet_Contains(url_attributes, key);
            if (lazy < 0) return -1;
            a->lazy |= lazy;
            continue;
        }
        const u8 *name = PyUnicode_1BYTE_DATA(key);
        ssz n = PyUnicode_GET_LENGTH(key);
        if (may_be_url_attribute(name, n)) {
            int lazy = PySet_Contains(url_attributes, key);
            if (lazy < 0) return -1;
            a->lazy |= lazy;
        }
        Value *v = slot_for(a, name, n);
        if (!v) continue;
        v->present = 1;
        if (!PyUnicode_Check(value)) continue;  /* None: a valueless attribute */
        v->str = value;
        v->ascii = PyUnicode_IS_ASCII(value);
        v->bytes = v->ascii ? PyUnicode_1BYTE_DATA(value) : (const u8 *)"";
        v->n = v->ascii ? PyUnicode_GET_LENGTH(value) : 0;
    }
    return 0;
}

/* dropped[reason] += by (the key is set even when `by` is 0, as Counter's += sets it). */
static int count_drops(PyObject *dropped, PyObject *reason, long by) {
    PyObject *count = PyDict_GetItemWithError(dropped, reason);
    if (!count && PyErr_Occurred()) return -1;
    long n = count ? PyLong_AsLong(count) : 0;
    if (n == -1 && PyErr_Occurred()) return -1;
    PyObject *next = PyLong_FromLong(n + by);
    if (!next) return -1;
    int status = PyDict_SetItem(dropped, reason, next);
    Py_DECREF(next);
    return status;
}

/* page_images(nodes, url_attributes, origin, directory, simple_base, resolve, decide,
 *             image_text, pairs, dropped): appends each image's ImageText to `pairs` or counts
 * its drop reason in `dropped` (a Counter), in page order. */
static PyObject *page_images(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "page_images() takes 10 arguments");
        return NULL;
    }
    PyObject *nodes = args[0], *url_attributes = args[1], *origin = args[2];
    PyObject *directory = args[3], *resolve = args[5], *decide = args[6];
    Resolution r = {origin, directory, 0, resolve};
    PyObject *image_text = args[7], *pairs = args[8], *dropped = args[9];
    int simple_base = PyObject_IsTrue(args[4]);
    if (simple_base < 0) return NULL;
    r.simple_base = simple_base;
    if (!PyList_Check(nodes) || !PyAnySet_Check(url_attributes) || !PyUnicode_Check(origin) ||
        !PyUnicode_Check(directory) || !PyType_Check(image_text) ||
        !PyType_IsSubtype((PyTypeObject *)image_text, &PyTuple_Type) || !PyList_Check(pairs) ||
        !PyDict_Check(dropped)) {
        PyErr_SetString(PyExc_TypeError, "page_images(): unexpected argument types");
        return NULL;
    }
    for (ssz i = 0; i < PyList_GET_SIZE(nodes); i++) {
        PyObject *node = PyList_GET_ITEM(nodes, i);
        PyObject *attributes = PyObject_GetAttr(node, S_attributes);
        if (!attributes) return NULL;
        ImageAttributes read;
        PyObject *outcome = UNDECIDED;
        if (PyDict_Check(attributes)) {
            outcome = dict_attributes(attributes, url_attributes, &read) < 0
                ? NULL
                : decide_image(&read, &r, image_text);
        }
        if (outcome == UNDECIDED)
            outcome = PyObject_CallFunctionObjArgs(decide, node, attributes, resolve, NULL);
        else if (outcome && PyUnicode_CheckExact(outcome))
            Py_INCREF(outcome);  /* reasons come back borrowed */
        Py_DECREF(attributes);
        if (!outcome) return NULL;
        int status = PyUnicode_CheckExact(outcome) ? count_drops(dropped, outcome, 1)
                                                   : PyList_Append(pairs, outcome);
        Py_DECREF(outcome);
        if (status < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyTypeObject MatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wit_builder.crawl._crawlfast.WordMatcher",
    .tp_basicsize = sizeof(Matcher),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Word-level query matcher (see match.py); made by build() or from_bytes().",
    .tp_dealloc = (destructor)Matcher_dealloc,
    .tp_methods = Matcher_methods,
};

/* True when ASCII `rel` holds the token "nofollow" (rel.lower().split() on ASCII). */
static int ascii_nofollow(const u8 *s, ssz n) {
    ssz i = 0;
    while (i < n) {
        while (i < n && latin1_space[s[i]]) i++;
        ssz start = i;
        while (i < n && !latin1_space[s[i]]) i++;
        if (i - start == 8) {
            int equal = 1;
            for (int k = 0; k < 8 && equal; k++) equal = Py_TOLOWER(s[start + k]) == "nofollow"[k];
            if (equal) return 1;
        }
    }
    return 0;
}

/* page_links(nodes, origin, directory, simple_base, resolve, nofollow, links): html.links_of's
 * loop: appends to `links` the resolved href of every <a> that has one and whose rel does not
 * say nofollow, when it resolves (to an http(s) URL). ASCII hrefs of the common shapes resolve
 * here (as images' URLs do), others through `resolve`; a non-ASCII rel is read by
 * nofollow(rel). */
static PyObject *page_links(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "page_links() takes 7 arguments");
        return NULL;
    }
    PyObject *nodes = args[0], *origin = args[1], *directory = args[2], *resolve = args[4];
    PyObject *nofollow = args[5], *links = args[6];
    Resolution r = {origin, directory, 0, resolve};
    int simple_base = PyObject_IsTrue(args[3]);
    if (simple_base < 0) return NULL;
    r.simple_base = simple_base;
    if (!PyList_Check(nodes) || !PyUnicode_Check(origin) || !PyUnicode_Check(directory) ||
        !PyList_Check(links)) {
        PyErr_SetString(PyExc_TypeError, "page_links(): unexpected argument types");
        return NULL;
    }
    for (ssz i = 0; i < PyList_GET_SIZE(nodes); i++) {
        PyObject *attributes = PyObject_GetAttr(PyList_GET_ITEM(nodes, i), S_attributes);
        if (!attributes) return NULL;
        if (!PyDict_Check(attributes)) {
            Py_DECREF(attributes);
            PyErr_SetString(PyExc_TypeError, "page_links(): attributes must be a dict");
            return NULL;
        }
        PyObject *href = PyDict_GetItemWithError(attributes, S_href);  /* borrowed */
        PyObject *rel = href ? PyDict_GetItemWithError(attributes, S_rel) : NULL;
        int skip = !href;
        if (!PyErr_Occurred() && rel && PyUnicode_Check(rel)) {
            if (PyUnicode_IS_ASCII(rel)) {
                skip = ascii_nofollow(PyUnicode_1BYTE_DATA(rel), PyUnicode_GET_LENGTH(rel));
            } else {
                PyObject *says = PyObject_CallOneArg(nofollow, rel);
                skip = says ? PyObject_IsTrue(says) : -1;
                Py_XDECREF(says);
            }
        }
        PyObject *url = NULL;
        if (PyErr_Occurred() || skip < 0) {
            Py_DECREF(attributes);
            return NULL;
        }
        if (!skip) {
            if (PyUnicode_Check(href) && PyUnicode_IS_ASCII(href)) {
                Value value = {1, PyUnicode_1BYTE_DATA(href), PyUnicode_GET_LENGTH(href), 1, href};
                url = resolved_url(&value, &r);
            } else {  /* resolve(href or ""): a valueless href is the page itself */
                PyObject *raw = PyUnicode_Check(href) ? Py_NewRef(href) : PyUnicode_New(0, 0);
                url = raw ? PyObject_CallOneArg(resolve, raw) : NULL;
                Py_XDECREF(raw);
            }
        }
        Py_DECREF(attributes);
        if (skip) continue;
        if (!url) return NULL;
        int status = url == Py_None ? 0 : PyList_Append(links, url);
        Py_DECREF(url);
        if (status < 0) return NULL;
    }
    Py_RETURN_NONE;
}

/* _word_hash(bytes): a word's hash under this process's key (for tests: it must be keyed). */
static PyObject *word_hash(PyObject *module, PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
    uint64_t h = hash_bytes(data.buf, data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(h);
}

static PyMethodDef module_functions[] = {
    {"_word_hash", (PyCFunction)word_hash, METH_O,
     "_word_hash(bytes): the SipHash-1-3 of a word under this process's key (for tests)."},
    {"page_images", (PyCFunction)(void (*)(void))page_images, METH_FASTCALL,
     "page_images(nodes, url_attributes, origin, directory, simple_base, resolve, decide, "
     "image_text, pairs, dropped): the images_of loop (see sources/html.py)."},
    {"page_links", (PyCFunction)(void (*)(void))page_links, METH_FASTCALL,
     "page_links(nodes, origin, directory, simple_base, resolve, nofollow, links): the links_of "
     "loop (see sources/html.py)."},
    {NULL, NULL, 0, NULL}};

static int intern_strings(void) {
    struct { PyObject **target; const char *text; } strings[] = {
        {&S_slash, "/"}, {&S_attributes, "attributes"}, {&S_href, "href"}, {&S_rel, "rel"},
        {&R_opted_out, "opted_out"}, {&R_no_url, "no_url"}, {&R_data_uri, "data_uri"},
        {&R_tracking_pixel, "tracking_pixel"},
        {&R_not_http, "not_http"}, {&R_alt, "alt"}, {&R_title, "title"}};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        if (!(*strings[i].target = PyUnicode_InternFromString(strings[i].text))) return -1;
    return 0;
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_crawlfast",
                                    "Compiled hot paths of wit crawl (see _crawlfast.c).", -1,
                                    module_functions};

PyMODINIT_FUNC PyInit__crawlfast(void) {
    init_byte_classes();
    init_word_classes();
    if (init_hash_key() < 0 || intern_strings() < 0 || PyType_Ready(&MatcherType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&MatcherType);
    if (PyModule_AddObject(m, "WordMatcher", (PyObject *)&MatcherType) < 0) {
        Py_DECREF(&MatcherType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
