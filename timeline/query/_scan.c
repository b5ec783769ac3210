/*
 * timeline.query._scan: split ASCII text into stems in one pass, for the watch matcher.
 *
 * The pure-Python path (normalise.words + normalise.stems) is the reference: this module must
 * give exactly what it gives, for ASCII text (tests/query/test_scan.py checks both on random
 * and hostile texts, and whole matches against the pure-Python path). It exists for speed: an
 * item of ~200 words is lower-cased, split and looked up in a table of known words without
 * making a string per word. Every stem it returns is a string the table holds, one object per
 * stem, shared between items; words are not made at all (scan returns where each word is, and
 * words_of makes them when something needs them).
 *
 * Rules (those of normalise.words for ASCII text):
 *   - a token is a run of ASCII letters and digits; every other character separates tokens;
 *   - tokens are lower-cased;
 *   - a possessive 's is dropped: a token that is one "s" or "S", directly after an
 *     apostrophe that directly follows a letter or digit ("NATO's" -> "nato"; "x's's" -> "x").
 *
 * The table maps a lower-cased word to (word, stem). A word not in it is stemmed by the
 * Python callable given to Vocabulary(); once the table holds max_entries words, it is
 * emptied (news vocabulary repeats: it fills again with the words in use). Text is hostile:
 * short words are hashed with per-process random seeds, long ones with CPython's keyed
 * string hash, and no lookup probes more than MAX_PROBES slots (past that a word is stemmed
 * without being kept), so crafted collisions cost a bounded amount per word.
 *
 * set_interest() tells the table which stems and 3-character prefixes the current watches
 * look for; each entry caches whether it is one (per interest generation), so a scan also
 * returns the positions of the wanted stems and the wanted prefixes present, at no cost for
 * the other words.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Entry.flags, valid while Entry.generation is the vocabulary's (see set_interest). */
#define STEM_WANTED 1
#define PREFIX_WANTED 2

/* A word's first bytes are kept in its entry: most words are compared without reading the
 * word's own string, which is elsewhere in memory (a cache miss per word, measured). */
#define KEY_INLINE 16

typedef struct {
    Py_hash_t hash;
    uint16_t len;  /* the word's length, at most 0xFFFF (longer words compare by their str) */
    uint16_t flags;
    uint32_t generation;
    uint64_t key[KEY_INLINE / 8]; /* the word's first bytes, zero-padded */
    PyObject *word; /* NULL: empty slot */
    PyObject *stem;
} Entry;

typedef struct {
    PyObject_HEAD
    PyObject *stem_fn;
    PyObject *interned; /* stem -> the one str used for it (equal stems are one object) */
    Entry *slots;
    Py_ssize_t mask;  /* capacity - 1; capacity is a power of two */
    Py_ssize_t used;
    Py_ssize_t max_entries;
    int max_probes;
    unsigned long long hits;
    unsigned long long misses;
    unsigned long long bypassed;
    /* What the current watches look for (set_interest); generation 0: nothing. */
    PyObject *wanted_stems;
    PyObject *wanted_prefixes;
    unsigned int generation;
    /* Changed by every change to the table: an Entry pointer taken at an earlier version may
     * dangle (allocating can run a finalizer, which can scan). */
    unsigned long long version;
} Vocabulary;

/* Make sure a str has its compact form (only strings made by long-deprecated C APIs lack
 * it, before Python 3.12); -1 with an exception on failure. */
#if PY_VERSION_HEX < 0x030C0000
#define ENSURE_READY(o) PyUnicode_READY(o)
#else
#define ENSURE_READY(o) 0
#endif

/* ASCII letter or digit -> its lower-case form; anything else -> 0. */
static unsigned char FOLD[256];

/* The 3-character prefixes of ASCII letter-and-digit words, by their characters' codes. */
#define ALNUM 36
static PyObject *PREFIXES[ALNUM * ALNUM * ALNUM];
static int ALNUM_CODE[256]; /* '0'-'9', 'a'-'z' -> 0..35; anything else -> -1 */

/* Return a new reference to the str of the first three characters of lower-case ASCII letters
 * and digits at `d` (one shared str for each). */
static PyObject *
prefix3(const unsigned char *d)
{
    int a = ALNUM_CODE[d[0]], b = ALNUM_CODE[d[1]], c = ALNUM_CODE[d[2]];
    if (a < 0 || b < 0 || c < 0) {
        return PyUnicode_FromStringAndSize((const char *)d, 3);
    }
    int code = (a * ALNUM + b) * ALNUM + c;
    if (PREFIXES[code] == NULL) {
        PREFIXES[code] = PyUnicode_FromStringAndSize((const char *)d, 3);
        if (PREFIXES[code] == NULL) {
            return NULL;
        }
    }
    return Py_NewRef(PREFIXES[code]);
}

/* Random for each process (from Python's own hash secret): see hash_word. */
static uint64_t SEED0, SEED1;

/* Bring a word's first KEY_INLINE bytes into key (zero-padded). */
static inline void
make_key(const char *data, Py_ssize_t len, uint64_t key[KEY_INLINE / 8])
{
    unsigned char bytes[KEY_INLINE] = {0};
    for (Py_ssize_t k = 0; k < len && k < KEY_INLINE; k++) {
        bytes[k] = (unsigned char)data[k];
    }
    memcpy(key, bytes, KEY_INLINE);
}

static inline uint64_t
mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static Py_hash_t hash_bytes(const char *data, Py_ssize_t len);

/* Hash a word: short words (nearly all) by mixing their key with the process's seeds, which
 * is several times faster than SipHash; longer ones with Python's keyed string hash. Text is
 * hostile, so the table also bounds every probe sequence (MAX_PROBES). */
static inline Py_hash_t
hash_word(const char *data, Py_ssize_t len, const uint64_t key[KEY_INLINE / 8])
{
    if (len <= KEY_INLINE) {
        return (Py_hash_t)mix64((key[0] ^ SEED0) * 0x9E3779B97F4A7C15ULL + (key[1] ^ SEED1) +
                                (uint64_t)len);
    }
    return hash_bytes(data, len);
}

static Py_hash_t
hash_bytes(const char *data, Py_ssize_t len)
{
#if PY_VERSION_HEX >= 0x030E0000
    return Py_HashBuffer(data, len);
#else
    return _Py_HashBytes(data, len);
#endif
}

static void
table_clear(Vocabulary *self)
{
    if (self->slots == NULL) {
        return;
    }
    self->version++;
    for (Py_ssize_t i = 0; i <= self->mask; i++) {
        Entry *e = &self->slots[i];
        if (e->word != NULL) {
            PyObject *word = e->word, *stem = e->stem;
            e->word = NULL;
            e->stem = NULL;
            Py_DECREF(word);
            Py_DECREF(stem);
        }
    }
    self->used = 0;
    if (self->interned != NULL) {
        PyDict_Clear(self->interned);
    }
}

/* Slots a lookup visits at most (Vocabulary's max_probes): past them, a word bypasses the
 * table (is stemmed, not kept). With half the slots free, a probe sequence this long only
 * happens to crafted text. */
#define MAX_PROBES 64

/* Return the slot holding `data` or the empty slot where it would go; NULL if neither is
 * found within MAX_PROBES slots. */
static inline Entry *
table_find(Entry *slots, Py_ssize_t mask, const char *data, Py_ssize_t len, Py_hash_t hash,
           const uint64_t key[KEY_INLINE / 8], int max_probes)
{
    size_t i = (size_t)hash & (size_t)mask;
    size_t perturb = (size_t)hash;
    uint16_t short_len = len > 0xFFFF ? 0xFFFF : (uint16_t)len;
    for (int probes = 0; probes < max_probes; probes++) {
        Entry *e = &slots[i];
        if (e->word == NULL) {
            return e;
        }
        if (e->hash == hash && e->len == short_len && e->key[0] == key[0] && e->key[1] == key[1] &&
            (len <= KEY_INLINE ||
             (PyUnicode_GET_LENGTH(e->word) == len &&
              memcmp(PyUnicode_1BYTE_DATA(e->word), data, (size_t)len) == 0))) {
            return e;
        }
        /* CPython's dict probing: every slot is visited, and high hash bits matter. */
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & (size_t)mask;
    }
    return NULL;
}

static int
table_grow(Vocabulary *self)
{
    Py_ssize_t capacity = self->slots == NULL ? 1024 : (self->mask + 1) * 2;
    Entry *slots = PyMem_Calloc((size_t)capacity, sizeof(Entry));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (self->slots != NULL) {
        for (Py_ssize_t i = 0; i <= self->mask; i++) {
            Entry *e = &self->slots[i];
            if (e->word != NULL) {
                /* (Words are unique: the first empty slot of the probe sequence is its place.) */
                size_t j = (size_t)e->hash & (size_t)(capacity - 1);
                size_t perturb = (size_t)e->hash;
                while (slots[j].word != NULL) {
                    perturb >>= 5;
                    j = (j * 5 + perturb + 1) & (size_t)(capacity - 1);
                }
                slots[j] = *e;
            }
        }
        PyMem_Free(self->slots);
    }
    self->slots = slots;
    self->mask = capacity - 1;
    self->version++;
    return 0;
}

/* Call the stemmer on a new word; return new references to the word and its stem. */
static int
stem_new(Vocabulary *self, const char *data, Py_ssize_t len, PyObject **word, PyObject **stem)
{
    PyObject *w = PyUnicode_FromStringAndSize(data, len);
    if (w == NULL) {
        return -1;
    }
    PyObject *s = PyObject_CallOneArg(self->stem_fn, w);
    if (s == NULL) {
        Py_DECREF(w);
        return -1;
    }
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_ASCII(s)) {
        /* (The stemmer of ASCII words returns ASCII words: anything else is a bug.) */
        PyErr_Format(PyExc_TypeError, "stemmer returned %R for %R, not an ASCII str", s, w);
        Py_DECREF(w);
        Py_DECREF(s);
        return -1;
    }
    if (PyUnicode_GET_LENGTH(s) == len && memcmp(PyUnicode_1BYTE_DATA(s), data, (size_t)len) == 0) {
        /* Most stems are the word itself: keep one string. */
        Py_SETREF(s, Py_NewRef(w));
    }
    *word = w;
    *stem = s;
    return 0;
}

/* Look up one lower-cased word, adding it if new. Return 1 and set *entry (valid until the
 * table next changes) for a word of the table; 0 and a new reference to its stem in *stem for
 * a word that bypasses the table (MAX_PROBES); -1 on error. */
static int lookup_miss(Vocabulary *self, const char *data, Py_ssize_t len, Py_hash_t hash,
                       const uint64_t key[KEY_INLINE / 8], Entry **entry, PyObject **stem);

/* Look up one lower-cased word of known hash and key, adding it if new. Return 1 and set
 * *entry (valid until the table next changes) for a word of the table; 0 and a new reference
 * to its stem in *stem for a word that bypasses the table (MAX_PROBES); -1 on error. */
static inline int
lookup_hashed(Vocabulary *self, const char *data, Py_ssize_t len, Py_hash_t hash,
              const uint64_t key[KEY_INLINE / 8], Entry **entry, PyObject **stem)
{
    Entry *e = table_find(self->slots, self->mask, data, len, hash, key, self->max_probes);
    if (e != NULL && e->word != NULL) {
        self->hits++;
        *entry = e;
        return 1;
    }
    return lookup_miss(self, data, len, hash, key, entry, stem);
}

/* lookup_hashed() for a word not found: stem it and add it. */
static int
lookup_miss(Vocabulary *self, const char *data, Py_ssize_t len, Py_hash_t hash,
            const uint64_t key[KEY_INLINE / 8], Entry **entry, PyObject **stem)
{
    Entry *e;
    self->misses++;
    PyObject *w, *s;
    if (stem_new(self, data, len, &w, &s) < 0) {
        return -1;
    }
    /* The stemmer ran Python code (another thread may have changed the table): find again.
     * (Stems of words that bypassed the table are interned too: bound that as well.) */
    if (self->used >= self->max_entries || PyDict_GET_SIZE(self->interned) >= 2 * self->max_entries) {
        table_clear(self);
    }
    /* One object per stem: comparing stems (sets, dicts) then stops at identity. */
    PyObject *canonical = PyDict_SetDefault(self->interned, s, s); /* borrowed */
    if (canonical == NULL) {
        Py_DECREF(w);
        Py_DECREF(s);
        return -1;
    }
    Py_SETREF(s, Py_NewRef(canonical));
    if ((self->used + 1) * 2 > self->mask + 1) {
        if (table_grow(self) < 0) {
            Py_DECREF(w);
            Py_DECREF(s);
            return -1;
        }
    }
    e = table_find(self->slots, self->mask, data, len, hash, key, self->max_probes);
    if (e == NULL) {
        self->bypassed++;
        Py_DECREF(w);
        *stem = s;
        return 0;
    }
    if (e->word == NULL) {
        e->hash = hash;
        e->len = len > 0xFFFF ? 0xFFFF : (uint16_t)len;
        e->key[0] = key[0];
        e->key[1] = key[1];
        e->word = w; /* (the table takes over both references) */
        e->stem = s;
        e->generation = 0;
        e->flags = 0;
        self->used++;
        self->version++;
    }
    else {
        Py_DECREF(w);
        Py_DECREF(s);
    }
    *entry = e;
    return 1;
}

static int
lookup(Vocabulary *self, const char *data, Py_ssize_t len, Entry **entry, PyObject **stem)
{
    uint64_t key[KEY_INLINE / 8];
    make_key(data, len, key);
    return lookup_hashed(self, data, len, hash_word(data, len, key), key, entry, stem);
}

/* Set *out to the flags of (word, stem) under the vocabulary's interest; -1 on error. */
static int
compute_flags(Vocabulary *self, const char *word, Py_ssize_t len, PyObject *stem,
              unsigned int *out)
{
    unsigned int flags = 0;
    /* (Both sets hold exact str only, checked by set_interest: no Python code runs here.) */
    int in = PySet_Contains(self->wanted_stems, stem);
    if (in < 0) {
        return -1;
    }
    if (in) {
        flags |= STEM_WANTED;
    }
    if (len >= 3) {
        PyObject *prefix = prefix3((const unsigned char *)word);
        if (prefix == NULL) {
            return -1;
        }
        in = PySet_Contains(self->wanted_prefixes, prefix);
        Py_DECREF(prefix);
        if (in < 0) {
            return -1;
        }
        if (in) {
            flags |= PREFIX_WANTED;
        }
    }
    *out = flags;
    return 0;
}

typedef struct {
    PyObject **stems;  /* new references (NULL until looked up, or when not kept) */
    Py_ssize_t *spans; /* start, end, start, end, ...: where each word is in the text */
    Py_hash_t *hashes; /* each word's hash (hash_word) */
    uint64_t *keys;    /* each word's key (make_key): KEY_INLINE / 8 words each */
    Py_ssize_t n;
    Py_ssize_t cap;
} Tokens;

static void
tokens_free(Tokens *t)
{
    for (Py_ssize_t i = 0; i < t->n; i++) {
        Py_XDECREF(t->stems[i]);
    }
    PyMem_Free(t->stems);
    PyMem_Free(t->spans);
    PyMem_Free(t->hashes);
    PyMem_Free(t->keys);
}

/* Append a word (its stem not looked up yet). */
static int
tokens_push(Tokens *t, Py_ssize_t start, Py_ssize_t end, Py_hash_t hash,
            const uint64_t key[KEY_INLINE / 8])
{
    if (t->n == t->cap) {
        Py_ssize_t cap = t->cap ? t->cap * 2 : 256; /* (an item's summary: one allocation) */
        PyObject **stems = PyMem_Realloc(t->stems, (size_t)cap * sizeof(PyObject *));
        if (stems != NULL) {
            t->stems = stems;
        }
        Py_ssize_t *spans = PyMem_Realloc(t->spans, (size_t)cap * 2 * sizeof(Py_ssize_t));
        if (spans != NULL) {
            t->spans = spans;
        }
        Py_hash_t *hashes = PyMem_Realloc(t->hashes, (size_t)cap * sizeof(Py_hash_t));
        if (hashes != NULL) {
            t->hashes = hashes;
        }
        uint64_t *keys = PyMem_Realloc(t->keys, (size_t)cap * KEY_INLINE);
        if (keys != NULL) {
            t->keys = keys;
        }
        if (stems == NULL || spans == NULL || hashes == NULL || keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->cap = cap;
    }
    t->stems[t->n] = NULL;
    t->spans[2 * t->n] = start;
    t->spans[2 * t->n + 1] = end;
    t->hashes[t->n] = hash;
    memcpy(&t->keys[t->n * (KEY_INLINE / 8)], key, KEY_INLINE);
    t->n++;
    return 0;
}

/* Lower-case text[start:end] (ASCII letters and digits) into *buf, growing it past `small`. */
static int
fold_word(const unsigned char *text, Py_ssize_t start, Py_ssize_t len, char **buf,
          Py_ssize_t *bufsize, char *small)
{
    if (len > *bufsize) {
        char *bigger = PyMem_Malloc((size_t)len);
        if (bigger == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (*buf != small) {
            PyMem_Free(*buf);
        }
        *buf = bigger;
        *bufsize = len;
    }
    for (Py_ssize_t k = 0; k < len; k++) {
        (*buf)[k] = (char)FOLD[text[start + k]];
    }
    return 0;
}

/* Words looked up ahead of the one in hand: their table slots are fetched into the cache
 * meanwhile (a slot is a cache miss otherwise: most of a scan's time, measured). */
#define PREFETCH_AHEAD 8

PyDoc_STRVAR(scan_doc,
"scan(text, keep_stems=True, /)\n--\n\n"
"Split ASCII `text`; return (stems, spans, found, prefixes, generation), or None if `text`\n"
"is not ASCII.\n\n"
"stems is normalise.stems(normalise.words(text)) (None without keep_stems: stems_of makes\n"
"it later, and the scan touches no stem it does not report); spans is where each word is in `text`\n"
"(start, end, start, end, ...), a bytes object of native Py_ssize_t (struct format 'n'):\n"
"a word is text[start:end].lower() (see words_of). With an interest set (set_interest;\n"
"`generation` is its number, 0 for none): found maps each wanted stem present to its\n"
"positions, and prefixes is the set of wanted 3-character prefixes of words present (each\n"
"None when empty).");

/* Append position `at` to the list found[key] (made when missing); -1 on error. */
static int
add_position(PyObject *found, PyObject *key, Py_ssize_t at)
{
    PyObject *where = PyDict_GetItemWithError(found, key); /* borrowed */
    if (where == NULL) {
        if (PyErr_Occurred() || (where = PyList_New(0)) == NULL) {
            return -1;
        }
        int failed = PyDict_SetItem(found, key, where);
        Py_DECREF(where); /* (the dict holds it) */
        if (failed < 0) {
            return -1;
        }
    }
    PyObject *pos = PyLong_FromSsize_t(at);
    if (pos == NULL) {
        return -1;
    }
    int failed = PyList_Append(where, pos);
    Py_DECREF(pos);
    return failed;
}

/* Record a wanted stem at position `at` and a wanted prefix, per `flags`. */
static int
note_interest(const char *word, PyObject *stem, unsigned int flags, Py_ssize_t at,
              PyObject **found, PyObject **prefixes)
{
    if (flags & STEM_WANTED) {
        if (*found == NULL && (*found = PyDict_New()) == NULL) {
            return -1;
        }
        if (add_position(*found, stem, at) < 0) {
            return -1;
        }
    }
    if (flags & PREFIX_WANTED) {
        if (*prefixes == NULL && (*prefixes = PySet_New(NULL)) == NULL) {
            return -1;
        }
        PyObject *prefix = prefix3((const unsigned char *)word);
        if (prefix == NULL) {
            return -1;
        }
        int failed = PySet_Add(*prefixes, prefix);
        Py_DECREF(prefix);
        if (failed < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
Vocabulary_scan(Vocabulary *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "scan() takes a str and an optional keep_stems");
        return NULL;
    }
    PyObject *text = args[0];
    int keep_stems = nargs == 2 ? PyObject_IsTrue(args[1]) : 1;
    if (keep_stems < 0) {
        return NULL;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "scan() takes a str, not %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (ENSURE_READY(text) < 0) {
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    if (self->stem_fn == NULL || self->interned == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Vocabulary.__init__ was not called");
        return NULL;
    }
    if (self->slots == NULL && table_grow(self) < 0) {
        return NULL;
    }
    /* (The interest may change while a stemmer runs Python code: this scan keeps its own.) */
    unsigned int generation = self->generation;
    PyObject *wanted_stems = Py_XNewRef(self->wanted_stems);
    PyObject *wanted_prefixes = Py_XNewRef(self->wanted_prefixes);
    const unsigned char *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    char small[128];
    char *buf = small;
    Py_ssize_t bufsize = (Py_ssize_t)sizeof(small);
    Tokens tokens = {NULL, NULL, NULL, NULL, 0, 0};
    PyObject *found = NULL, *prefixes = NULL;
    /* Pass 1: find and hash the words (reading nothing but the text). */
    Py_ssize_t i = 0;
    while (i < n) {
        if (FOLD[s[i]] == 0) {
            i++;
            continue;
        }
        /* Fold the word's first bytes into its key as the word is found. */
        Py_ssize_t start = i;
        union {
            uint64_t words[KEY_INLINE / 8];
            unsigned char bytes[KEY_INLINE];
        } key = {{0}};
        unsigned char c = FOLD[s[i]];
        do {
            if (i - start < KEY_INLINE) {
                key.bytes[i - start] = c;
            }
            i++;
        } while (i < n && (c = FOLD[s[i]]) != 0);
        Py_ssize_t len = i - start;
        if (len == 1 && (s[start] == 's' || s[start] == 'S') && start >= 2 && s[start - 1] == '\'' &&
            FOLD[s[start - 2]] != 0) {
            continue; /* a possessive 's */
        }
        Py_hash_t hash;
        if (len <= KEY_INLINE) {
            hash = hash_word((const char *)key.bytes, len, key.words);
        }
        else {
            if (fold_word(s, start, len, &buf, &bufsize, small) < 0) {
                goto error;
            }
            hash = hash_word(buf, len, key.words);
        }
        if (tokens_push(&tokens, start, i, hash, key.words) < 0) {
            goto error;
        }
    }
    /* Pass 2: look each word up, fetching the slots of the next ones meanwhile. */
    for (Py_ssize_t k = 0; k < tokens.n; k++) {
#if defined(__GNUC__)
        if (k + PREFETCH_AHEAD < tokens.n) {
            __builtin_prefetch(&self->slots[(size_t)tokens.hashes[k + PREFETCH_AHEAD] &
                                            (size_t)self->mask]);
        }
#endif
        Py_ssize_t start = tokens.spans[2 * k], len = tokens.spans[2 * k + 1] - start;
        const uint64_t *key = &tokens.keys[k * (KEY_INLINE / 8)];
        /* The word's bytes: its key when short (nearly always), else folded anew. */
        const char *word = (const char *)key;
        if (len > KEY_INLINE) {
            if (fold_word(s, start, len, &buf, &bufsize, small) < 0) {
                goto error;
            }
            word = buf;
        }
        Entry *e = NULL;
        PyObject *stem = NULL;
        int kept = lookup_hashed(self, word, len, tokens.hashes[k], key, &e, &stem);
        if (kept < 0) {
            goto error;
        }
        if (!kept) {
            /* A word that bypassed the table: `stem` is a new reference. */
            if (generation != 0 && generation == self->generation) {
                unsigned int flags = 0;
                if (compute_flags(self, word, len, stem, &flags) < 0 ||
                    (flags && note_interest(word, stem, flags, k, &found, &prefixes) < 0)) {
                    Py_DECREF(stem);
                    goto error;
                }
            }
            if (keep_stems) {
                tokens.stems[k] = stem;
            }
            else {
                Py_DECREF(stem);
            }
            continue;
        }
        /* A table word: `e` is valid until the table changes (allocating may change it). */
        if (keep_stems) {
            tokens.stems[k] = Py_NewRef(e->stem);
        }
        if (generation == 0 || generation != self->generation) {
            continue;
        }
        unsigned int flags = e->flags;
        if (e->generation != generation) {
            unsigned long long version = self->version;
            stem = Py_NewRef(e->stem);
            int failed = compute_flags(self, word, len, stem, &flags);
            if (failed == 0 && version == self->version) {
                e->flags = (uint16_t)flags;
                e->generation = generation;
            }
            if (failed == 0 && flags) {
                failed = note_interest(word, stem, flags, k, &found, &prefixes);
            }
            Py_DECREF(stem);
            if (failed < 0) {
                goto error;
            }
        }
        else if (flags) {
            stem = Py_NewRef(e->stem);
            int failed = note_interest(word, stem, flags, k, &found, &prefixes);
            Py_DECREF(stem);
            if (failed < 0) {
                goto error;
            }
        }
    }
    if (buf != small) {
        PyMem_Free(buf);
        buf = small;
    }
    if (generation != self->generation) {
        /* The interest changed during the scan: what was found is for neither. */
        generation = 0;
        Py_CLEAR(found);
        Py_CLEAR(prefixes);
    }
    PyObject *stems = keep_stems ? PyList_New(tokens.n) : Py_NewRef(Py_None);
    PyObject *spans = PyBytes_FromStringAndSize(
        tokens.n ? (const char *)tokens.spans : NULL, 2 * tokens.n * (Py_ssize_t)sizeof(Py_ssize_t));
    if (stems == NULL || spans == NULL) {
        Py_XDECREF(stems);
        Py_XDECREF(spans);
        goto error;
    }
    if (keep_stems) {
        for (Py_ssize_t k = 0; k < tokens.n; k++) {
            PyList_SET_ITEM(stems, k, tokens.stems[k]); /* (the list takes over the reference) */
        }
    }
    PyMem_Free(tokens.stems);
    PyMem_Free(tokens.spans);
    PyMem_Free(tokens.hashes);
    PyMem_Free(tokens.keys);
    Py_XDECREF(wanted_stems);
    Py_XDECREF(wanted_prefixes);
    return Py_BuildValue("(NNNNI)", stems, spans, found ? found : Py_NewRef(Py_None),
                         prefixes ? prefixes : Py_NewRef(Py_None), generation);

error:
    if (buf != small) {
        PyMem_Free(buf);
    }
    tokens_free(&tokens);
    Py_XDECREF(found);
    Py_XDECREF(prefixes);
    Py_XDECREF(wanted_stems);
    Py_XDECREF(wanted_prefixes);
    return NULL;
}

PyDoc_STRVAR(stems_of_doc,
"stems_of(text, spans, /)\n--\n\n"
"Return the stems of the words of ASCII `text` at `spans` (from scan()).");

static PyObject *
Vocabulary_stems_of(Vocabulary *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 2 && PyUnicode_Check(args[0]) && ENSURE_READY(args[0]) < 0) {
        return NULL;
    }
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_IS_ASCII(args[0]) ||
        !PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) % (2 * sizeof(Py_ssize_t)) != 0) {
        PyErr_SetString(PyExc_TypeError, "stems_of() takes an ASCII str and spans from scan()");
        return NULL;
    }
    if (self->stem_fn == NULL || self->interned == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Vocabulary.__init__ was not called");
        return NULL;
    }
    if (self->slots == NULL && table_grow(self) < 0) {
        return NULL;
    }
    PyObject *text = args[0], *raw = args[1];
    Py_INCREF(text);
    Py_INCREF(raw); /* (both kept alive while the stemmer runs Python code) */
    const unsigned char *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    Py_ssize_t n = PyBytes_GET_SIZE(raw) / (Py_ssize_t)(2 * sizeof(Py_ssize_t));
    PyObject *out = PyList_New(n);
    char small[128];
    char *buf = small;
    Py_ssize_t bufsize = (Py_ssize_t)sizeof(small);
    if (out == NULL) {
        goto error;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t span[2];
        memcpy(span, PyBytes_AS_STRING(raw) + k * 2 * sizeof(Py_ssize_t), sizeof(span));
        Py_ssize_t len = span[1] - span[0];
        if (span[0] < 0 || len < 1 || span[1] > length) {
            PyErr_SetString(PyExc_ValueError, "stems_of(): a span is outside the text");
            goto error;
        }
        if (len > bufsize) {
            char *bigger = PyMem_Malloc((size_t)len);
            if (bigger == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            if (buf != small) {
                PyMem_Free(buf);
            }
            buf = bigger;
            bufsize = len;
        }
        for (Py_ssize_t c = 0; c < len; c++) {
            unsigned char ch = s[span[0] + c];
            buf[c] = (char)((ch >= 'A' && ch <= 'Z') ? ch + ('a' - 'A') : ch);
        }
        Entry *e = NULL;
        PyObject *stem = NULL;
        int kept = lookup(self, buf, len, &e, &stem);
        if (kept < 0) {
            goto error;
        }
        PyList_SET_ITEM(out, k, kept ? Py_NewRef(e->stem) : stem);
    }
    if (buf != small) {
        PyMem_Free(buf);
    }
    Py_DECREF(text);
    Py_DECREF(raw);
    return out;
error:
    if (buf != small) {
        PyMem_Free(buf);
    }
    Py_XDECREF(out);
    Py_DECREF(text);
    Py_DECREF(raw);
    return NULL;
}

PyDoc_STRVAR(stem_doc,
"stem(word, /)\n--\n\n"
"Return the stem of the ASCII str `word` (the table's own string: equal stems of texts\n"
"scanned since are the same object, which makes comparing them cheap).");

static PyObject *
Vocabulary_stem(Vocabulary *self, PyObject *word)
{
    if (PyUnicode_CheckExact(word) && ENSURE_READY(word) < 0) {
        return NULL;
    }
    if (!PyUnicode_CheckExact(word) || !PyUnicode_IS_ASCII(word)) {
        PyErr_SetString(PyExc_TypeError, "stem() takes an ASCII str");
        return NULL;
    }
    if (self->stem_fn == NULL || self->interned == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Vocabulary.__init__ was not called");
        return NULL;
    }
    if (self->slots == NULL && table_grow(self) < 0) {
        return NULL;
    }
    Entry *e = NULL;
    PyObject *stem = NULL;
    int kept = lookup(self, (const char *)PyUnicode_1BYTE_DATA(word), PyUnicode_GET_LENGTH(word),
                      &e, &stem);
    if (kept < 0) {
        return NULL;
    }
    return kept ? Py_NewRef(e->stem) : stem;
}

PyDoc_STRVAR(set_interest_doc,
"set_interest(stems, prefixes, /)\n--\n\n"
"Make scan() report which of the frozenset `stems` and which 3-character prefixes of the\n"
"frozenset `prefixes` a text holds; return the new generation number (never 0).");

static PyObject *
Vocabulary_set_interest(Vocabulary *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyFrozenSet_CheckExact(args[0]) || !PyFrozenSet_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "set_interest() takes two frozensets of str");
        return NULL;
    }
    for (int k = 0; k < 2; k++) {
        Py_ssize_t pos = 0;
        PyObject *key;
        Py_hash_t hash;
        while (_PySet_NextEntry(args[k], &pos, &key, &hash)) {
            if (!PyUnicode_CheckExact(key)) {
                PyErr_SetString(PyExc_TypeError, "set_interest() takes two frozensets of str");
                return NULL;
            }
        }
    }
    Py_XSETREF(self->wanted_stems, Py_NewRef(args[0]));
    Py_XSETREF(self->wanted_prefixes, Py_NewRef(args[1]));
    self->generation++;
    if (self->generation == 0) {
        self->generation = 1; /* (after 2**32 changes: no entry keeps a stale generation 1 for
                                 long, and a clash only costs a wrong flag until refreshed) */
    }
    return PyLong_FromUnsignedLong(self->generation);
}

static PyObject *
Vocabulary_clear(Vocabulary *self, PyObject *Py_UNUSED(ignored))
{
    table_clear(self);
    Py_RETURN_NONE;
}

static PyObject *
Vocabulary_stats(Vocabulary *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{sn,sn,sK,sK,sK}", "words", self->used, "capacity",
                         self->slots == NULL ? (Py_ssize_t)0 : self->mask + 1, "hits", self->hits,
                         "misses", self->misses, "bypassed", self->bypassed);
}

static Py_ssize_t
Vocabulary_len(Vocabulary *self)
{
    return self->used;
}

static int
Vocabulary_init(Vocabulary *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"stem", "max_entries", "max_probes", NULL};
    PyObject *stem_fn;
    Py_ssize_t max_entries;
    int max_probes = MAX_PROBES;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On|i:Vocabulary", kwlist, &stem_fn, &max_entries,
                                     &max_probes)) {
        return -1;
    }
    if (max_probes < 1) {
        PyErr_SetString(PyExc_ValueError, "max_probes must be at least 1");
        return -1;
    }
    if (!PyCallable_Check(stem_fn)) {
        PyErr_SetString(PyExc_TypeError, "stem must be callable");
        return -1;
    }
    if (max_entries < 1) {
        PyErr_SetString(PyExc_ValueError, "max_entries must be at least 1");
        return -1;
    }
    table_clear(self);
    if (self->interned == NULL && (self->interned = PyDict_New()) == NULL) {
        return -1;
    }
    Py_XSETREF(self->stem_fn, Py_NewRef(stem_fn));
    self->max_entries = max_entries;
    self->max_probes = max_probes;
    return 0;
}

static int
Vocabulary_traverse(Vocabulary *self, visitproc visit, void *arg)
{
    Py_VISIT(self->stem_fn);
    Py_VISIT(self->wanted_stems);
    Py_VISIT(self->wanted_prefixes);
    return 0;
}

static int
Vocabulary_tp_clear(Vocabulary *self)
{
    Py_CLEAR(self->stem_fn);
    Py_CLEAR(self->wanted_stems);
    Py_CLEAR(self->wanted_prefixes);
    return 0; /* (interned holds only str: no cycle through it) */
}

static void
Vocabulary_dealloc(Vocabulary *self)
{
    PyObject_GC_UnTrack(self);
    table_clear(self);
    PyMem_Free(self->slots);
    self->slots = NULL;
    Py_CLEAR(self->stem_fn);
    Py_CLEAR(self->wanted_stems);
    Py_CLEAR(self->wanted_prefixes);
    Py_CLEAR(self->interned);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Vocabulary_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))Vocabulary_scan, METH_FASTCALL, scan_doc},
    {"stems_of", (PyCFunction)(void (*)(void))Vocabulary_stems_of, METH_FASTCALL, stems_of_doc},
    {"stem", (PyCFunction)Vocabulary_stem, METH_O, stem_doc},
    {"set_interest", (PyCFunction)(void (*)(void))Vocabulary_set_interest, METH_FASTCALL,
     set_interest_doc},
    {"clear", (PyCFunction)Vocabulary_clear, METH_NOARGS, "Forget every word."},
    {"stats", (PyCFunction)Vocabulary_stats, METH_NOARGS,
     "Return the number of words held, the table's capacity, hits and misses."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Vocabulary_as_sequence = {
    .sq_length = (lenfunc)Vocabulary_len,
};

static PyTypeObject VocabularyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "timeline.query._scan.Vocabulary",
    .tp_doc = PyDoc_STR("Vocabulary(stem, max_entries, max_probes=64)\n--\n\n"
                        "Known words and their stems; scan() splits ASCII text with it."),
    .tp_basicsize = sizeof(Vocabulary),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Vocabulary_init,
    .tp_dealloc = (destructor)Vocabulary_dealloc,
    .tp_traverse = (traverseproc)Vocabulary_traverse,
    .tp_clear = (inquiry)Vocabulary_tp_clear,
    .tp_methods = Vocabulary_methods,
    .tp_as_sequence = &Vocabulary_as_sequence,
};


PyDoc_STRVAR(first3_doc,
"first3(words, into, /)\n--\n\n"
"Add word[:3] to the set `into` for every str in the list `words` of 3 characters or more.");

static PyObject *
first3(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "first3() takes a list and a set");
        return NULL;
    }
    PyObject *words = args[0], *into = args[1];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++) {
        PyObject *word = PyList_GET_ITEM(words, i);
        if (!PyUnicode_Check(word)) {
            PyErr_SetString(PyExc_TypeError, "first3() takes a list of str");
            return NULL;
        }
        if (ENSURE_READY(word) < 0) {
            return NULL;
        }
        if (PyUnicode_GET_LENGTH(word) < 3) {
            continue;
        }
        PyObject *prefix = NULL;
        int code = -1;
        if (PyUnicode_IS_ASCII(word)) {
            const unsigned char *d = PyUnicode_1BYTE_DATA(word);
            int a = ALNUM_CODE[d[0]], b = ALNUM_CODE[d[1]], c = ALNUM_CODE[d[2]];
            if (a >= 0 && b >= 0 && c >= 0) {
                code = (a * ALNUM + b) * ALNUM + c;
                prefix = PREFIXES[code];
            }
        }
        if (prefix == NULL) {
            prefix = PyUnicode_Substring(word, 0, 3);
            if (prefix == NULL) {
                return NULL;
            }
            if (code >= 0) {
                PREFIXES[code] = prefix; /* kept for the life of the process */
                Py_INCREF(prefix);
            }
        }
        else {
            Py_INCREF(prefix);
        }
        int failed = PySet_Add(into, prefix);
        Py_DECREF(prefix);
        if (failed < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(words_of_doc,
"words_of(text, spans, /)\n--\n\n"
"Return the words of ASCII `text` at `spans` (from Vocabulary.scan), lower-cased.");

static PyObject *
words_of(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 2 && PyUnicode_Check(args[0]) && ENSURE_READY(args[0]) < 0) {
        return NULL;
    }
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_IS_ASCII(args[0]) ||
        !PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) % (2 * sizeof(Py_ssize_t)) != 0) {
        PyErr_SetString(PyExc_TypeError, "words_of() takes an ASCII str and spans from scan()");
        return NULL;
    }
    const unsigned char *text = PyUnicode_1BYTE_DATA(args[0]);
    Py_ssize_t length = PyUnicode_GET_LENGTH(args[0]);
    Py_ssize_t spans[2];
    const char *raw = PyBytes_AS_STRING(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[1]) / (Py_ssize_t)(2 * sizeof(Py_ssize_t));
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        memcpy(spans, raw + k * 2 * sizeof(Py_ssize_t), sizeof(spans));
        if (spans[0] < 0 || spans[0] > spans[1] || spans[1] > length) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_ValueError, "words_of(): a span is outside the text");
            return NULL;
        }
        PyObject *word = PyUnicode_New(spans[1] - spans[0], 127);
        if (word == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        Py_UCS1 *to = PyUnicode_1BYTE_DATA(word);
        for (Py_ssize_t c = spans[0]; c < spans[1]; c++) {
            unsigned char ch = text[c];
            *to++ = (ch >= 'A' && ch <= 'Z') ? (Py_UCS1)(ch + ('a' - 'A')) : (Py_UCS1)ch;
        }
        PyList_SET_ITEM(out, k, word);
    }
    return out;
}

PyDoc_STRVAR(locate_doc,
"locate(seq, wanted, /)\n--\n\n"
"Return {item: [positions]} for the items of the list `seq` that are in the set `wanted`.");

static PyObject *
locate(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyAnySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "locate() takes a list and a set");
        return NULL;
    }
    PyObject *seq = args[0], *wanted = args[1];
    PyObject *found = PyDict_New();
    if (found == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(seq); i++) {
        /* (A reference of our own: comparing may run code that changes the list.) */
        PyObject *item = Py_NewRef(PyList_GET_ITEM(seq, i));
        int in = PySet_Contains(wanted, item);
        if (in > 0) {
            in = add_position(found, item, i);
        }
        Py_DECREF(item);
        if (in < 0) {
            goto error;
        }
    }
    return found;
error:
    Py_DECREF(found);
    return NULL;
}

PyDoc_STRVAR(starting_doc,
"starting(words, prefix, /)\n--\n\n"
"Return the positions of the str items of the list `words` that start with str `prefix`.");

static PyObject *
starting(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "starting() takes a list and a str");
        return NULL;
    }
    PyObject *words = args[0], *prefix = args[1];
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++) {
        PyObject *word = PyList_GET_ITEM(words, i);
        if (!PyUnicode_Check(word)) {
            PyErr_SetString(PyExc_TypeError, "starting() takes a list of str");
            goto error;
        }
        Py_ssize_t yes = PyUnicode_Tailmatch(word, prefix, 0, PY_SSIZE_T_MAX, -1);
        if (yes < 0) {
            goto error;
        }
        if (yes) {
            PyObject *at = PyLong_FromSsize_t(i);
            if (at == NULL) {
                goto error;
            }
            int failed = PyList_Append(out, at);
            Py_DECREF(at);
            if (failed < 0) {
                goto error;
            }
        }
    }
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"first3", (PyCFunction)(void (*)(void))first3, METH_FASTCALL, first3_doc},
    {"locate", (PyCFunction)(void (*)(void))locate, METH_FASTCALL, locate_doc},
    {"words_of", (PyCFunction)(void (*)(void))words_of, METH_FASTCALL, words_of_doc},
    {"starting", (PyCFunction)(void (*)(void))starting, METH_FASTCALL, starting_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "timeline.query._scan",
    .m_doc = "Split ASCII text into words and stems in one pass (see normalise.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    for (int c = 0; c < 256; c++) {
        FOLD[c] = 0;
        ALNUM_CODE[c] = -1;
    }
    for (int c = 0; c < 10; c++) {
        ALNUM_CODE['0' + c] = c;
    }
    for (int c = 0; c < 26; c++) {
        ALNUM_CODE['a' + c] = 10 + c;
    }
    for (int c = '0'; c <= '9'; c++) {
        FOLD[c] = (unsigned char)c;
    }
    for (int c = 'a'; c <= 'z'; c++) {
        FOLD[c] = (unsigned char)c;
        FOLD[c - 'a' + 'A'] = (unsigned char)c;
    }
    static const char seed0[] = "timeline.query._scan seed 0";
    static const char seed1[] = "timeline.query._scan seed 1";
    SEED0 = (uint64_t)hash_bytes(seed0, (Py_ssize_t)sizeof(seed0) - 1);
    SEED1 = (uint64_t)hash_bytes(seed1, (Py_ssize_t)sizeof(seed1) - 1);
    if (PyType_Ready(&VocabularyType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&scan_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Vocabulary", (PyObject *)&VocabularyType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
