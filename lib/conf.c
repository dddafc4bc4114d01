/*  conf.c — YAML configuration and rules files, with positions.

    Every daemon config and every rules file goes through here, so every
    later complaint (an unknown key, a module that does not resolve, a chain
    cycle) can point at `file:line:column` instead of at "somewhere in the
    rules".

    We drive libyaml's event parser rather than its document loader because
    we need full control over what is an error: duplicate keys, non-scalar
    keys, recursive aliases, a second document. Events carry 0-based marks;
    everything we hand out is 1-based.

    Memory: a load owns one arena (a list of chunks). Nodes, child arrays,
    scalar text and the file name all live in it, so nerve_conf_destroy()
    frees a handful of chunks and aliases can share subtrees freely without
    any risk of a double free. The root node is embedded in the arena's
    header, which is how destroy finds the arena from the root.

    An alias becomes a shallow copy of its anchor's node that carries the
    alias's own position (so "expected an integer" points where the value
    was used) and shares the anchor's children. Because aliases share,
    a small file can describe an enormous tree ("billion laughs"); every node
    records how many nodes and how many bytes of scalar text it stands for
    once expanded, and how deep it is, and a document past S_MAX_NODES,
    S_MAX_TEXT or S_MAX_DEPTH is refused while it is parsed, so
    nerve_conf_to_obj() (which copies every expanded scalar) and every
    recursive walker stay bounded. Nodes alone are not enough: a 3 KB file
    that aliases one 3000-byte string a million times is only a million
    nodes, but gigabytes of text.

    Typing: nerve_conf_to_obj() follows the YAML 1.2 core schema for plain
    scalars; quoted and block scalars are strings. Map keys always become
    strings, because modules look params up by name (nerve_obj_get) and a
    key `1:` must still be found as "1"; for the same reason `1` and "1" in
    one map are duplicate keys. The typed getters (nerve_conf_as_int, …) read
    the scalar's text whatever its style, so `port: "7450"` is accepted: an
    operator who quotes a number means the number.
*/
#define _GNU_SOURCE
#include <nerve/conf.h>
#include <nerve/error.h>

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/*  Limits that keep hostile or broken input from hanging or exhausting a
    daemon. Real configs are a few hundred nodes and a dozen levels deep. */
#define S_MAX_DEPTH 256         /* nesting levels, aliases expanded */
#define S_MAX_NODES (1u << 20)  /* nodes, aliases expanded: 10,000 rule blocks are ~200,000 */
#define S_MAX_FILE (64u << 20)  /* bytes of YAML read by nerve_conf_load */
#define S_MAX_TEXT (64u << 20)  /* bytes of scalar text, aliases expanded */
#define S_CHUNK 16384           /* arena chunk size */
#define S_DOC_MAGIC 0x6e636f6eu /* "ncon": catches destroy on a non-root */

typedef struct s_node {
  nerve_conf_t pub; /* first: a nerve_conf_t * is an s_node_t * */
  uint64_t weight;  /* nodes this one stands for, aliases expanded */
  uint64_t bytes;   /* scalar text (keys too) it stands for, likewise */
  uint32_t height;  /* levels below and including this node */
} s_node_t;

typedef struct s_chunk {
  struct s_chunk *next;
  size_t size;
  size_t used;
  max_align_t data[];
} s_chunk_t;

/*  One load. `root` comes first so the root's nerve_conf_t * is the
    document's address. */
typedef struct s_doc {
  s_node_t root;
  uint32_t magic;
  s_chunk_t *chunks;
} s_doc_t;

/*  A collection being built: its node and the children seen so far (for a
    map: key, value, key, value, …). */
typedef struct s_frame {
  s_node_t *node;
  s_node_t **kids;
  size_t count;
  size_t cap;
  uint64_t weight;
  uint64_t bytes;
  uint32_t height;
} s_frame_t;

typedef struct s_parse {
  yaml_parser_t parser;
  const char *text;
  size_t len;
  const char *file; /* arena copy: every node's `file` */
  s_doc_t *doc;
  s_frame_t *frames;
  size_t depth;
  size_t frames_cap;
  zhashx_t *anchors; /* name → s_node_t * (latest definition wins) */
  s_node_t *root;
  int documents;
  nerve_conf_error_t *err;
} s_parse_t;

//  --------------------------------------------------------------------------
//  Errors

/*  Copies src into dst (size > 0), truncating. */
static void s_copy(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (n >= size)
    n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static void s_verr(nerve_conf_error_t *err, const char *file, size_t line,
                   size_t column, const char *fmt, va_list ap) {
  if (!err)
    return;
  const size_t size = sizeof err->message;
  int n = 0;
  s_copy(err->file, sizeof err->file, file ? file : "");
  err->line = line;
  err->column = column;
  err->message[0] = '\0';
  if (file && line)
    n = snprintf(err->message, size, "%s:%zu:%zu: ", file, line, column);
  else if (file && *file)
    n = snprintf(err->message, size, "%s: ", file);
  /*  A truncated message still says the right thing first. */
  size_t used = n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
  if (vsnprintf(err->message + used, size - used, fmt, ap) < 0)
    s_copy(err->message + used, size - used, fmt);
  /*  One line, whatever the file held: a quoted "\n" in a value quoted
      back (an id, a tag, a unit name) must not forge a log line. */
  for (char *c = err->message; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f)
      *c = '?';
}

static void s_err(nerve_conf_error_t *err, const char *file, size_t line,
                  size_t column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void s_err(nerve_conf_error_t *err, const char *file, size_t line,
                  size_t column, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  s_verr(err, file, line, column, fmt, ap);
  va_end(ap);
}

/*  Fails at a node's place (or with no place when node is NULL) with `rc`. */
static int s_node_fail(const nerve_conf_t *node, nerve_conf_error_t *err,
                       int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_node_fail(const nerve_conf_t *node, nerve_conf_error_t *err,
                       int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (node)
    s_verr(err, node->file, node->line, node->column, fmt, ap);
  else
    s_verr(err, NULL, 0, 0, fmt, ap);
  va_end(ap);
  return rc;
}

/*  Fails during parsing at a libyaml mark. */
static int s_parse_fail(s_parse_t *self, yaml_mark_t mark, int rc,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_parse_fail(s_parse_t *self, yaml_mark_t mark, int rc,
                        const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  s_verr(self->err, self->file, mark.line + 1, mark.column + 1, fmt, ap);
  va_end(ap);
  return rc;
}

/*  Writes text for an error message: at most 64 bytes, cut on a UTF-8
    boundary, control characters shown as '?'. */
static const char *s_show(const char *text, size_t len, char *buf,
                          size_t size) {
  size_t max = size - 4, n = len < max ? len : max;
  if (n < len)
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
      n--;
  for (size_t i = 0; i < n; i++)
    buf[i] = ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) ? '?' : text[i];
  if (n < len)
    memcpy(buf + n, "...", 4);
  else
    buf[n] = '\0';
  return buf;
}

/*  "'abc'", "a map", "a sequence", "nothing": what a getter got. */
static const char *s_got(const nerve_conf_t *node, char *buf, size_t size) {
  if (!node)
    return "nothing";
  if (node->type == NERVE_CONF_MAP)
    return "a map";
  if (node->type == NERVE_CONF_SEQ)
    return "a sequence";
  char shown[68];
  s_show(node->text, node->text_len, shown, sizeof shown);
  snprintf(buf, size, "'%s'", shown);
  return buf;
}

//  --------------------------------------------------------------------------
//  Arena

static void *s_alloc(s_doc_t *doc, size_t size) {
  const size_t align = alignof(max_align_t);
  if (size > SIZE_MAX - sizeof(s_chunk_t) - align)
    return NULL;
  size = (size + align - 1) & ~(align - 1);
  s_chunk_t *chunk = doc->chunks;
  if (!chunk || chunk->size - chunk->used < size) {
    size_t cap = size > S_CHUNK ? size : S_CHUNK;
    chunk = malloc(sizeof *chunk + cap);
    if (!chunk)
      return NULL;
    chunk->size = cap;
    chunk->used = 0;
    if (size > S_CHUNK / 4 && doc->chunks) {
      /*  A big block gets its own chunk behind the current one, which
          keeps serving small allocations. */
      chunk->next = doc->chunks->next;
      doc->chunks->next = chunk;
      chunk->used = size;
      return chunk->data;
    }
    chunk->next = doc->chunks;
    doc->chunks = chunk;
  }
  void *ptr = (char *)chunk->data + chunk->used;
  chunk->used += size;
  return ptr;
}

static char *s_strndup(s_doc_t *doc, const char *text, size_t len) {
  char *copy = s_alloc(doc, len + 1);
  if (copy) {
    if (len)
      memcpy(copy, text, len);
    copy[len] = '\0';
  }
  return copy;
}

static void s_doc_destroy(s_doc_t **doc_p) {
  s_doc_t *doc = *doc_p;
  if (!doc)
    return;
  while (doc->chunks) {
    s_chunk_t *next = doc->chunks->next;
    free(doc->chunks);
    doc->chunks = next;
  }
  doc->magic = 0;
  free(doc);
  *doc_p = NULL;
}

void nerve_conf_destroy(nerve_conf_t **root) {
  if (!root || !*root)
    return;
  s_doc_t *doc = (s_doc_t *)(void *)*root;
  assert(doc->magic == S_DOC_MAGIC); /* only a root returned by load/parse */
  s_doc_destroy(&doc);
  *root = NULL;
}

//  --------------------------------------------------------------------------
//  Building the tree from events

/*  A fresh node at `mark`; the document's root lives in the header. */
static s_node_t *s_node_new(s_parse_t *self, nerve_conf_type_t type,
                            yaml_mark_t mark) {
  s_node_t *node = self->depth == 0 && !self->root
                       ? &self->doc->root
                       : s_alloc(self->doc, sizeof *node);
  if (!node)
    return NULL;
  memset(node, 0, sizeof *node);
  node->pub.type = type;
  node->pub.file = self->file;
  node->pub.line = mark.line + 1;
  node->pub.column = mark.column + 1;
  node->weight = 1;
  node->height = 1;
  return node;
}

/*  True if the next node of the innermost open collection is a map key. */
static bool s_at_key(const s_parse_t *self) {
  if (self->depth == 0)
    return false;
  const s_frame_t *top = &self->frames[self->depth - 1];
  return top->node->pub.type == NERVE_CONF_MAP && top->count % 2 == 0;
}

/*  Attaches a finished node to the open collection, or makes it the root. */
static int s_attach(s_parse_t *self, s_node_t *node, yaml_mark_t mark) {
  if (self->depth + node->height > S_MAX_DEPTH)
    return s_parse_fail(self, mark, NERVE_ERANGE,
                        "nesting is deeper than %d levels (aliases expanded)",
                        S_MAX_DEPTH);
  if (self->depth == 0) {
    self->root = node;
    return 0;
  }
  s_frame_t *top = &self->frames[self->depth - 1];
  if (top->weight + node->weight > S_MAX_NODES)
    return s_parse_fail(
        self, mark, NERVE_ERANGE,
        "document is too large: more than %u nodes once aliases are "
        "expanded",
        S_MAX_NODES);
  if (top->bytes + node->bytes > S_MAX_TEXT)
    return s_parse_fail(
        self, mark, NERVE_ERANGE,
        "document is too large: more than %u MiB of text once aliases are "
        "expanded",
        S_MAX_TEXT >> 20);
  if (top->count == top->cap) {
    size_t cap = top->cap ? top->cap * 2 : 8;
    s_node_t **kids = realloc(top->kids, cap * sizeof *kids);
    if (!kids)
      return s_parse_fail(self, mark, NERVE_ENOMEM, "out of memory");
    top->kids = kids;
    top->cap = cap;
  }
  top->kids[top->count++] = node;
  top->weight += node->weight;
  top->bytes += node->bytes;
  if (node->height > top->height)
    top->height = node->height;
  return 0;
}

/*  Tags: `!!str` and the non-specific `!` make a scalar a string; the core
    schema's own tags are accepted and typing follows the text; anything else
    (local `!vault` tags and the like) would silently mean nothing here, so
    it is an error. */
static int s_check_tag(s_parse_t *self, const yaml_char_t *tag,
                       nerve_conf_type_t type, yaml_mark_t mark,
                       bool *forced_str) {
  static const char core[] = "tag:yaml.org,2002:";
  *forced_str = false;
  if (!tag)
    return 0;
  const char *t = (const char *)tag;
  if (strcmp(t, "!") == 0) {
    *forced_str = type == NERVE_CONF_SCALAR;
    return 0;
  }
  if (strncmp(t, core, sizeof core - 1) == 0) {
    const char *name = t + sizeof core - 1;
    if (type == NERVE_CONF_SCALAR) {
      if (strcmp(name, "str") == 0) {
        *forced_str = true;
        return 0;
      }
      if (strcmp(name, "null") == 0 || strcmp(name, "bool") == 0 ||
          strcmp(name, "int") == 0 || strcmp(name, "float") == 0)
        return 0;
    } else if (strcmp(name, type == NERVE_CONF_MAP ? "map" : "seq") == 0)
      return 0;
  }
  char shown[68];
  return s_parse_fail(self, mark, NERVE_EPARSE, "unsupported tag '%s'",
                      s_show(t, strlen(t), shown, sizeof shown));
}

static int s_anchor(s_parse_t *self, const yaml_char_t *anchor,
                    s_node_t *node) {
  if (anchor)
    zhashx_update(self->anchors, anchor, node);
  return 0;
}

static int s_on_scalar(s_parse_t *self, yaml_event_t *event) {
  bool forced_str;
  int rc = s_check_tag(self, event->data.scalar.tag, NERVE_CONF_SCALAR,
                       event->start_mark, &forced_str);
  if (rc)
    return rc;
  s_node_t *node = s_node_new(self, NERVE_CONF_SCALAR, event->start_mark);
  char *text =
      node ? s_strndup(self->doc, (const char *)event->data.scalar.value,
                       event->data.scalar.length)
           : NULL;
  if (!text)
    return s_parse_fail(self, event->start_mark, NERVE_ENOMEM, "out of memory");
  node->pub.text = text;
  node->pub.text_len = event->data.scalar.length;
  node->bytes = event->data.scalar.length;
  node->pub.quoted =
      forced_str || event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
  s_anchor(self, event->data.scalar.anchor, node);
  return s_attach(self, node, event->start_mark);
}

static int s_on_start(s_parse_t *self, yaml_event_t *event,
                      nerve_conf_type_t type) {
  if (s_at_key(self))
    return s_parse_fail(self, event->start_mark, NERVE_EPARSE,
                        "a mapping key must be a scalar, not a %s",
                        type == NERVE_CONF_MAP ? "map" : "sequence");
  if (self->depth + 1 > S_MAX_DEPTH)
    return s_parse_fail(self, event->start_mark, NERVE_ERANGE,
                        "nesting is deeper than %d levels", S_MAX_DEPTH);
  const yaml_char_t *tag = type == NERVE_CONF_MAP
                               ? event->data.mapping_start.tag
                               : event->data.sequence_start.tag;
  const yaml_char_t *anchor = type == NERVE_CONF_MAP
                                  ? event->data.mapping_start.anchor
                                  : event->data.sequence_start.anchor;
  bool forced_str;
  int rc = s_check_tag(self, tag, type, event->start_mark, &forced_str);
  if (rc)
    return rc;
  if (self->depth == self->frames_cap) {
    size_t cap = self->frames_cap ? self->frames_cap * 2 : 16;
    s_frame_t *frames = realloc(self->frames, cap * sizeof *frames);
    if (!frames)
      return s_parse_fail(self, event->start_mark, NERVE_ENOMEM,
                          "out of memory");
    self->frames = frames;
    self->frames_cap = cap;
  }
  s_node_t *node = s_node_new(self, type, event->start_mark);
  if (!node)
    return s_parse_fail(self, event->start_mark, NERVE_ENOMEM, "out of memory");
  s_anchor(self, anchor, node);
  self->frames[self->depth++] = (s_frame_t){.node = node};
  return 0;
}

typedef struct s_key_ref {
  const s_node_t *key;
  size_t index;
} s_key_ref_t;

static int s_key_cmp(const void *a, const void *b) {
  const s_key_ref_t *x = a, *y = b;
  size_t lx = x->key->pub.text_len, ly = y->key->pub.text_len;
  int c = memcmp(x->key->pub.text, y->key->pub.text, lx < ly ? lx : ly);
  if (c)
    return c;
  if (lx != ly)
    return lx < ly ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

/*  Finds the first key (in document order) that repeats an earlier one.
    Sorting keeps a 100 000-key map from turning into a quadratic hang. */
static int s_check_duplicates(s_parse_t *self, s_frame_t *frame) {
  size_t nkeys = frame->count / 2;
  if (nkeys < 2)
    return 0;
  s_key_ref_t *refs = malloc(nkeys * sizeof *refs);
  if (!refs) {
    yaml_mark_t mark = {.line = frame->node->pub.line - 1,
                        .column = frame->node->pub.column - 1};
    return s_parse_fail(self, mark, NERVE_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < nkeys; i++)
    refs[i] = (s_key_ref_t){frame->kids[2 * i], i};
  qsort(refs, nkeys, sizeof *refs, s_key_cmp);
  size_t dup = SIZE_MAX, first = 0, group = 0;
  for (size_t i = 1; i < nkeys; i++) {
    s_key_ref_t a = refs[i - 1], b = refs[i];
    bool same =
        a.key->pub.text_len == b.key->pub.text_len &&
        memcmp(a.key->pub.text, b.key->pub.text, a.key->pub.text_len) == 0;
    if (!same) {
      group = i;
      continue;
    }
    if (i == group + 1 && b.index < dup) {
      dup = b.index;
      first = refs[group].index;
    }
  }
  free(refs);
  if (dup == SIZE_MAX)
    return 0;
  const nerve_conf_t *key = &frame->kids[2 * dup]->pub;
  const nerve_conf_t *orig = &frame->kids[2 * first]->pub;
  char shown[68];
  s_err(self->err, self->file, key->line, key->column,
        "duplicate key '%s' (first defined at %zu:%zu)",
        s_show(key->text, key->text_len, shown, sizeof shown), orig->line,
        orig->column);
  return NERVE_EPARSE;
}

static int s_on_end(s_parse_t *self, yaml_event_t *event) {
  assert(self->depth > 0); /* libyaml balances start and end events */
  s_frame_t *frame = &self->frames[self->depth - 1];
  s_node_t *node = frame->node;
  int rc = 0;
  if (node->pub.type == NERVE_CONF_MAP) {
    rc = s_check_duplicates(self, frame);
    if (rc)
      return rc;
    node->pub.count = frame->count / 2;
  } else
    node->pub.count = frame->count;
  if (node->pub.count) {
    size_t n = node->pub.count;
    node->pub.items = s_alloc(self->doc, n * sizeof(nerve_conf_t *));
    if (node->pub.type == NERVE_CONF_MAP)
      node->pub.keys = s_alloc(self->doc, n * sizeof(nerve_conf_t *));
    if (!node->pub.items ||
        (node->pub.type == NERVE_CONF_MAP && !node->pub.keys))
      return s_parse_fail(self, event->start_mark, NERVE_ENOMEM,
                          "out of memory");
    for (size_t i = 0; i < n; i++) {
      if (node->pub.type == NERVE_CONF_MAP) {
        node->pub.keys[i] = &frame->kids[2 * i]->pub;
        node->pub.items[i] = &frame->kids[2 * i + 1]->pub;
      } else
        node->pub.items[i] = &frame->kids[i]->pub;
    }
  }
  node->weight = 1 + frame->weight;
  node->bytes = frame->bytes;
  node->height = 1 + frame->height;
  free(frame->kids);
  frame->kids = NULL;
  self->depth--;
  yaml_mark_t mark = {.line = node->pub.line - 1,
                      .column = node->pub.column - 1};
  return s_attach(self, node, mark);
}

static int s_on_alias(s_parse_t *self, yaml_event_t *event) {
  const char *name = (const char *)event->data.alias.anchor;
  char shown[68];
  s_node_t *target = zhashx_lookup(self->anchors, name);
  if (!target)
    return s_parse_fail(self, event->start_mark, NERVE_EPARSE,
                        "unknown alias '*%s'",
                        s_show(name, strlen(name), shown, sizeof shown));
  for (size_t i = 0; i < self->depth; i++)
    if (self->frames[i].node == target)
      return s_parse_fail(self, event->start_mark, NERVE_EPARSE,
                          "alias '*%s' refers to a node that contains it",
                          s_show(name, strlen(name), shown, sizeof shown));
  if (target->pub.type != NERVE_CONF_SCALAR && s_at_key(self))
    return s_parse_fail(
        self, event->start_mark, NERVE_EPARSE,
        "a mapping key must be a scalar, but alias '*%s' is a %s",
        s_show(name, strlen(name), shown, sizeof shown),
        target->pub.type == NERVE_CONF_MAP ? "map" : "sequence");
  s_node_t *node = s_node_new(self, target->pub.type, event->start_mark);
  if (!node)
    return s_parse_fail(self, event->start_mark, NERVE_ENOMEM, "out of memory");
  size_t line = node->pub.line, column = node->pub.column;
  *node = *target;
  node->pub.line = line;
  node->pub.column = column;
  return s_attach(self, node, event->start_mark);
}

/*  libyaml's own errors: the problem text at its mark, the context (where
    the construct being parsed began) when it says something, and a hint for
    the most common mistake, a tab in indentation. */
static int s_yaml_error(s_parse_t *self) {
  yaml_parser_t *parser = &self->parser;
  if (parser->error == YAML_MEMORY_ERROR) {
    s_err(self->err, self->file, 0, 0, "out of memory while parsing YAML");
    return NERVE_ENOMEM;
  }
  const char *problem = parser->problem ? parser->problem : "invalid YAML";
  if (parser->error == YAML_READER_ERROR) {
    /*  The reader reports a byte offset, not a mark. */
    size_t offset = parser->problem_offset, line = 1, column = 1;
    for (size_t i = 0; i < offset && i < self->len; i++) {
      if (self->text[i] == '\n') {
        line++;
        column = 1;
      } else if (((unsigned char)self->text[i] & 0xC0) != 0x80)
        column++;
    }
    if (parser->problem_value != -1)
      s_err(self->err, self->file, line, column, "%s (byte 0x%02x)", problem,
            (unsigned)parser->problem_value & 0xffu);
    else
      s_err(self->err, self->file, line, column, "%s", problem);
    return NERVE_EPARSE;
  }
  yaml_mark_t mark = parser->problem_mark;
  size_t line = mark.line + 1, column = mark.column + 1;
  if (mark.index < self->len && self->text[mark.index] == '\t')
    s_err(self->err, self->file, line, column,
          "%s (a tab: indent YAML with spaces)", problem);
  else if (parser->context &&
           strncmp(parser->context, "while scanning for the next", 27))
    s_err(self->err, self->file, line, column, "%s (%s at %zu:%zu)", problem,
          parser->context, parser->context_mark.line + 1,
          parser->context_mark.column + 1);
  else
    s_err(self->err, self->file, line, column, "%s", problem);
  return NERVE_EPARSE;
}

/*  Handles one event. Returns 0 to go on, 1 at the end of the stream, or a
    negative error. */
static int s_on_event(s_parse_t *self, yaml_event_t *event) {
  switch (event->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (++self->documents > 1)
      return s_parse_fail(
          self, event->start_mark, NERVE_EPARSE,
          "a second YAML document; a nerve file holds exactly one");
    return 0;
  case YAML_SCALAR_EVENT:
    return s_on_scalar(self, event);
  case YAML_SEQUENCE_START_EVENT:
    return s_on_start(self, event, NERVE_CONF_SEQ);
  case YAML_MAPPING_START_EVENT:
    return s_on_start(self, event, NERVE_CONF_MAP);
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    return s_on_end(self, event);
  case YAML_ALIAS_EVENT:
    return s_on_alias(self, event);
  case YAML_STREAM_END_EVENT:
    return 1;
  default:
    return 0;
  }
}

int nerve_conf_parse(const char *name, const char *text, size_t len,
                     nerve_conf_t **root, nerve_conf_error_t *err) {
  if (!name)
    name = "<string>";
  if (!root || (!text && len)) {
    s_err(err, name, 0, 0,
          "nerve_conf_parse: no text or no place for the result");
    return NERVE_EINVAL;
  }
  *root = NULL;
  if (err)
    memset(err, 0, sizeof *err);

  s_parse_t self = {.text = text ? text : "", .len = len, .err = err};
  int rc = 0;
  self.doc = calloc(1, sizeof *self.doc);
  if (self.doc) {
    self.doc->magic = S_DOC_MAGIC;
    self.file = s_strndup(self.doc, name, strlen(name));
  }
  self.anchors = zhashx_new();
  if (!self.doc || !self.file || !self.anchors) {
    s_err(err, name, 0, 0, "out of memory");
    zhashx_destroy(&self.anchors);
    s_doc_destroy(&self.doc);
    return NERVE_ENOMEM;
  }
  if (!yaml_parser_initialize(&self.parser)) {
    s_err(err, name, 0, 0, "out of memory");
    zhashx_destroy(&self.anchors);
    s_doc_destroy(&self.doc);
    return NERVE_ENOMEM;
  }
  yaml_parser_set_input_string(&self.parser, (const unsigned char *)self.text,
                               len);

  while (rc == 0) {
    yaml_event_t event;
    if (!yaml_parser_parse(&self.parser, &event)) {
      rc = s_yaml_error(&self);
      break;
    }
    rc = s_on_event(&self, &event);
    yaml_event_delete(&event);
  }
  if (rc == 1)
    rc = 0;

  for (size_t i = 0; i < self.depth; i++)
    free(self.frames[i].kids);
  free(self.frames);
  zhashx_destroy(&self.anchors);
  yaml_parser_delete(&self.parser);

  /*  No document, or one that is only "---": nothing configured. */
  const nerve_conf_t *top = self.root ? &self.root->pub : NULL;
  bool empty = !top || (top->type == NERVE_CONF_SCALAR && !top->quoted &&
                        top->text_len == 0);
  if (rc || empty) {
    s_doc_destroy(&self.doc);
    return rc;
  }
  *root = &self.doc->root.pub;
  return 0;
}

int nerve_conf_load(const char *path, nerve_conf_t **root,
                    nerve_conf_error_t *err) {
  if (root)
    *root = NULL;
  if (!path || !root) {
    s_err(err, NULL, 0, 0,
          "nerve_conf_load: no path or no place for the result");
    return NERVE_EINVAL;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    s_err(err, path, 0, 0, "cannot open: %s", strerror(e));
    return e == ENOENT || e == ENOTDIR ? NERVE_ENOENT : NERVE_EIO;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    s_err(err, path, 0, 0, "cannot read: is a directory");
    close(fd);
    return NERVE_EIO;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = 0;
  for (;;) {
    if (len == cap) {
      if (cap > S_MAX_FILE) {
        s_err(err, path, 0, 0, "cannot read: larger than %u MiB",
              S_MAX_FILE >> 20);
        rc = NERVE_EIO;
        break;
      }
      size_t grow = cap ? cap * 2 : 65536;
      char *bigger = realloc(buf, grow);
      if (!bigger) {
        s_err(err, path, 0, 0, "cannot read: out of memory");
        rc = NERVE_ENOMEM;
        break;
      }
      buf = bigger;
      cap = grow;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      s_err(err, path, 0, 0, "cannot read: %s", strerror(errno));
      rc = NERVE_EIO;
      break;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  if (rc == 0)
    rc = nerve_conf_parse(path, buf, len, root, err);
  free(buf);
  return rc;
}

//  --------------------------------------------------------------------------
//  Lookups and getters

int nerve_conf_fail(const nerve_conf_t *node, nerve_conf_error_t *err,
                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (node)
    s_verr(err, node->file, node->line, node->column, fmt, ap);
  else
    s_verr(err, NULL, 0, 0, fmt, ap);
  va_end(ap);
  return NERVE_EINVAL;
}

static bool s_text_is(const nerve_conf_t *node, const char *s) {
  size_t n = strlen(s);
  return node->text_len == n && memcmp(node->text, s, n) == 0;
}

const nerve_conf_t *nerve_conf_get(const nerve_conf_t *node, const char *key) {
  if (!node || !key || node->type != NERVE_CONF_MAP)
    return NULL;
  for (size_t i = 0; i < node->count; i++)
    if (s_text_is(node->keys[i], key))
      return node->items[i];
  return NULL;
}

/*  Core-schema integer syntax: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+.
    Returns 0 with sign and magnitude, NERVE_ETYPE if it is not an integer,
    NERVE_ERANGE if the magnitude does not fit 64 bits. */
static int s_parse_int(const char *s, size_t len, bool *negative,
                       uint64_t *magnitude) {
  size_t i = 0;
  unsigned base = 10;
  *negative = false;
  if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    base = s[1] == 'x' ? 16 : 8;
    i = 2;
  } else if (len > 0 && (s[0] == '-' || s[0] == '+')) {
    *negative = s[0] == '-';
    i = 1;
  }
  if (i == len)
    return NERVE_ETYPE;
  uint64_t value = 0;
  bool overflow = false;
  for (; i < len; i++) {
    unsigned c = (unsigned char)s[i], digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      digit = c - 'A' + 10;
    else
      return NERVE_ETYPE;
    if (digit >= base)
      return NERVE_ETYPE;
    if (value > (UINT64_MAX - digit) / base)
      overflow = true;
    else
      value = value * base + digit;
  }
  *magnitude = value;
  return overflow ? NERVE_ERANGE : 0;
}

/*  Core-schema float syntax, without the special values:
    [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool s_is_float_syntax(const char *s, size_t len) {
  size_t i = 0, digits = 0;
  if (i < len && (s[i] == '-' || s[i] == '+'))
    i++;
  while (i < len && s[i] >= '0' && s[i] <= '9')
    i++, digits++;
  if (i < len && s[i] == '.') {
    i++;
    size_t frac = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++, frac++;
    if (digits == 0 && frac == 0)
      return false;
    digits += frac;
  }
  if (digits == 0)
    return false;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '-' || s[i] == '+'))
      i++;
    size_t exp = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++, exp++;
    if (exp == 0)
      return false;
  }
  return i == len;
}

static locale_t s_c_locale;
static pthread_once_t s_c_locale_once = PTHREAD_ONCE_INIT;

static void s_c_locale_init(void) {
  s_c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/*  strtod in the C locale: "1.5" must not depend on a daemon's LC_NUMERIC. */
static double s_strtod(const char *s) {
  pthread_once(&s_c_locale_once, s_c_locale_init);
  return s_c_locale ? strtod_l(s, NULL, s_c_locale) : strtod(s, NULL);
}

/*  Parses a core-schema float (including .inf/.nan and integers written as
    decimals). `s` is NUL-terminated at len. */
static bool s_parse_float(const char *s, size_t len, double *out) {
  const char *p = s;
  size_t n = len;
  double sign = 1.0;
  if (n > 0 && (*p == '-' || *p == '+')) {
    sign = *p == '-' ? -1.0 : 1.0;
    p++, n--;
  }
  if (n == 4 && (!memcmp(p, ".inf", 4) || !memcmp(p, ".Inf", 4) ||
                 !memcmp(p, ".INF", 4))) {
    *out = sign * INFINITY;
    return true;
  }
  if (len == 4 && (!memcmp(s, ".nan", 4) || !memcmp(s, ".NaN", 4) ||
                   !memcmp(s, ".NAN", 4))) {
    *out = NAN;
    return true;
  }
  if (!s_is_float_syntax(s, len))
    return false;
  *out = s_strtod(s);
  return true;
}

static bool s_parse_bool(const nerve_conf_t *node, bool *out) {
  if (s_text_is(node, "true") || s_text_is(node, "True") ||
      s_text_is(node, "TRUE")) {
    *out = true;
    return true;
  }
  if (s_text_is(node, "false") || s_text_is(node, "False") ||
      s_text_is(node, "FALSE")) {
    *out = false;
    return true;
  }
  return false;
}

static bool s_is_null(const nerve_conf_t *node) {
  return node->text_len == 0 || s_text_is(node, "~") ||
         s_text_is(node, "null") || s_text_is(node, "Null") ||
         s_text_is(node, "NULL");
}

int nerve_conf_as_str(const nerve_conf_t *node, const char **out,
                      nerve_conf_error_t *err) {
  char got[80];
  if (!node || node->type != NERVE_CONF_SCALAR)
    return s_node_fail(node, err, NERVE_ETYPE, "expected a string, got %s",
                       s_got(node, got, sizeof got));
  /*  A quoted "\0" is valid YAML, but every caller uses the text as a C
      string: a value silently cut at the NUL is not what the file says. */
  if (memchr(node->text, '\0', node->text_len))
    return s_node_fail(node, err, NERVE_ETYPE,
                       "expected a string without NUL characters, got %s",
                       s_got(node, got, sizeof got));
  if (out)
    *out = node->text;
  return 0;
}

int nerve_conf_set_str(char **slot, const char *value) {
  char *copy = value ? strdup(value) : NULL;
  if (value && !copy)
    return NERVE_ENOMEM;
  free(*slot);
  *slot = copy;
  return 0;
}

int nerve_conf_get_str(const nerve_conf_t *root, const char *key, char **slot,
                       nerve_conf_error_t *err) {
  const nerve_conf_t *n = nerve_conf_get(root, key);
  const char *s;
  if (!n)
    return 0;
  if (nerve_conf_as_str(n, &s, err) != 0)
    return NERVE_EINVAL;
  if (nerve_conf_set_str(slot, s) != 0)
    return s_node_fail(n, err, NERVE_ENOMEM, "out of memory");
  return 0;
}

int nerve_conf_get_module_dirs(const nerve_conf_t *root, char **dirs,
                               size_t max, size_t *n, nerve_conf_error_t *err) {
  const nerve_conf_t *node = nerve_conf_get(root, "modules");
  if (!node)
    return 0;
  if (node->type == NERVE_CONF_MAP)
    return s_node_fail(node, err, NERVE_EINVAL,
                       "modules: expected a directory or a list of them");
  size_t count = node->type == NERVE_CONF_SEQ ? node->count : 1;
  if (count > max)
    return s_node_fail(node, err, NERVE_EINVAL, "at most %zu module directories",
                       max);
  for (size_t i = 0; i < *n; i++) {
    free(dirs[i]);
    dirs[i] = NULL;
  }
  *n = 0;
  for (size_t i = 0; i < count; i++) {
    const nerve_conf_t *one =
        node->type == NERVE_CONF_SEQ ? node->items[i] : node;
    const char *s;
    if (nerve_conf_as_str(one, &s, err) != 0)
      return NERVE_EINVAL;
    if (!*s)
      return s_node_fail(one, err, NERVE_EINVAL, "an empty module directory");
    if (!(dirs[*n] = strdup(s)))
      return s_node_fail(one, err, NERVE_ENOMEM, "out of memory");
    (*n)++;
  }
  return 0;
}

int nerve_conf_as_int(const nerve_conf_t *node, int64_t min, int64_t max,
                      int64_t *out, nerve_conf_error_t *err) {
  char got[80], want[96];
  if (min == INT64_MIN && max == INT64_MAX)
    snprintf(want, sizeof want, "an integer");
  else
    snprintf(want, sizeof want, "an integer between %" PRId64 " and %" PRId64,
             min, max);
  if (!node || node->type != NERVE_CONF_SCALAR)
    return s_node_fail(node, err, NERVE_ETYPE, "expected %s, got %s", want,
                       s_got(node, got, sizeof got));
  bool negative;
  uint64_t magnitude;
  int rc = s_parse_int(node->text, node->text_len, &negative, &magnitude);
  if (rc == 0) {
    if (negative ? magnitude > (uint64_t)INT64_MAX + 1
                 : magnitude > (uint64_t)INT64_MAX)
      rc = NERVE_ERANGE;
  }
  if (rc == 0) {
    int64_t value = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    if (value < min || value > max)
      rc = NERVE_ERANGE;
    else if (out)
      *out = value;
  }
  if (rc)
    return s_node_fail(node, err, rc, "expected %s, got %s", want,
                       s_got(node, got, sizeof got));
  return 0;
}

int nerve_conf_as_double(const nerve_conf_t *node, double *out,
                         nerve_conf_error_t *err) {
  char got[80];
  double value;
  if (!node || node->type != NERVE_CONF_SCALAR ||
      !s_parse_float(node->text, node->text_len, &value))
    return s_node_fail(node, err, NERVE_ETYPE, "expected a number, got %s",
                       s_got(node, got, sizeof got));
  if (!isfinite(value))
    return s_node_fail(node, err, NERVE_ERANGE,
                       "expected a finite number, got %s",
                       s_got(node, got, sizeof got));
  if (out)
    *out = value;
  return 0;
}

int nerve_conf_as_bool(const nerve_conf_t *node, bool *out,
                       nerve_conf_error_t *err) {
  char got[80];
  bool value;
  if (!node || node->type != NERVE_CONF_SCALAR || !s_parse_bool(node, &value))
    return s_node_fail(node, err, NERVE_ETYPE, "expected true or false, got %s",
                       s_got(node, got, sizeof got));
  if (out)
    *out = value;
  return 0;
}

/*  Duration syntax: digits, optional fraction, optional unit. Returns 0,
    NERVE_EINVAL (not a duration) or NERVE_ERANGE (negative, or more
    milliseconds than fit in 64 bits). Exact integer arithmetic: "0.1s" is
    100 ms, not 99. */
static int s_duration(const char *s, size_t len, uint64_t *out_ms) {
  size_t i = 0;
  bool negative = len > 0 && s[0] == '-';
  if (negative)
    i = 1;
  uint64_t whole = 0, frac = 0, scale = 1;
  bool overflow = false;
  size_t digits = 0;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (whole > (UINT64_MAX - d) / 10)
      overflow = true;
    else
      whole = whole * 10 + d;
  }
  if (i < len && s[i] == '.') {
    size_t fdigits = 0;
    for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, fdigits++)
      if (fdigits < 9) {
        frac = frac * 10 + (uint64_t)(s[i] - '0');
        scale *= 10;
      }
    if (fdigits == 0)
      return NERVE_EINVAL;
    digits += fdigits;
  }
  if (digits == 0)
    return NERVE_EINVAL;
  const char *unit = s + i;
  size_t ulen = len - i;
  uint64_t unit_ms;
  if (ulen == 0 || (ulen == 1 && *unit == 's'))
    unit_ms = 1000;
  else if (ulen == 2 && !memcmp(unit, "ms", 2))
    unit_ms = 1;
  else if (ulen == 1 && *unit == 'm')
    unit_ms = 60 * 1000;
  else if (ulen == 1 && *unit == 'h')
    unit_ms = 3600 * 1000;
  else if (ulen == 1 && *unit == 'd')
    unit_ms = 86400 * 1000;
  else
    return NERVE_EINVAL;
  if (negative)
    return NERVE_ERANGE;
  if (overflow || whole > UINT64_MAX / unit_ms)
    return NERVE_ERANGE;
  uint64_t ms = whole * unit_ms, part = frac * unit_ms / scale;
  if (ms > UINT64_MAX - part)
    return NERVE_ERANGE;
  *out_ms = ms + part;
  return 0;
}

int nerve_duration_parse_ms(const char *text, uint64_t *out_ms) {
  uint64_t ms;
  if (!text || s_duration(text, strlen(text), &ms) != 0)
    return NERVE_EINVAL;
  if (out_ms)
    *out_ms = ms;
  return 0;
}

int nerve_conf_as_duration_ms(const nerve_conf_t *node, uint64_t *out_ms,
                              nerve_conf_error_t *err) {
  static const char want[] = "a duration (250ms, 30s, 5m, 2h, 1d or seconds)";
  char got[80];
  uint64_t ms;
  if (!node || node->type != NERVE_CONF_SCALAR)
    return s_node_fail(node, err, NERVE_ETYPE, "expected %s, got %s", want,
                       s_got(node, got, sizeof got));
  int rc = s_duration(node->text, node->text_len, &ms);
  if (rc == NERVE_EINVAL)
    return s_node_fail(node, err, NERVE_ETYPE, "expected %s, got %s", want,
                       s_got(node, got, sizeof got));
  if (rc)
    return s_node_fail(
        node, err, NERVE_ERANGE,
        "expected a duration that is not negative and fits in 64-bit "
        "milliseconds, got %s",
        s_got(node, got, sizeof got));
  if (out_ms)
    *out_ms = ms;
  return 0;
}

int nerve_conf_check_keys(const nerve_conf_t *node, const char *const *allowed,
                          nerve_conf_error_t *err) {
  char got[80];
  if (!node || node->type != NERVE_CONF_MAP)
    return s_node_fail(node, err, NERVE_ETYPE, "expected a map, got %s",
                       s_got(node, got, sizeof got));
  for (size_t i = 0; i < node->count; i++) {
    const nerve_conf_t *key = node->keys[i];
    bool known = false;
    for (size_t a = 0; allowed && allowed[a] && !known; a++)
      known = s_text_is(key, allowed[a]);
    if (known)
      continue;
    char list[512] = "", shown[68];
    size_t used = 0;
    for (size_t a = 0; allowed && allowed[a] && used < sizeof list; a++) {
      int n = snprintf(list + used, sizeof list - used, "%s%s", a ? ", " : "",
                       allowed[a]);
      if (n < 0)
        break;
      used += (size_t)n;
    }
    return nerve_conf_fail(
        key, err, "unknown key '%s' (expected one of: %s)",
        s_show(key->text, key->text_len, shown, sizeof shown),
        used ? list : "no keys at all");
  }
  return 0;
}

//  --------------------------------------------------------------------------
//  Conversion to msgpack

static int s_obj_str(const nerve_conf_t *node, msgpack_zone *zone,
                     msgpack_object *out) {
  if (node->text_len > UINT32_MAX)
    return NERVE_ERANGE;
  char *copy = msgpack_zone_malloc(zone, node->text_len ? node->text_len : 1);
  if (!copy)
    return NERVE_ENOMEM;
  if (node->text_len)
    memcpy(copy, node->text, node->text_len);
  out->type = MSGPACK_OBJECT_STR;
  out->via.str.ptr = copy;
  out->via.str.size = (uint32_t)node->text_len;
  return 0;
}

/*  Plain-scalar typing, YAML 1.2 core schema. */
static int s_obj_scalar(const nerve_conf_t *node, msgpack_zone *zone,
                        msgpack_object *out) {
  if (node->quoted)
    return s_obj_str(node, zone, out);
  bool flag, negative;
  uint64_t magnitude;
  double d;
  if (s_is_null(node)) {
    out->type = MSGPACK_OBJECT_NIL;
    return 0;
  }
  if (s_parse_bool(node, &flag)) {
    out->type = MSGPACK_OBJECT_BOOLEAN;
    out->via.boolean = flag;
    return 0;
  }
  int rc = s_parse_int(node->text, node->text_len, &negative, &magnitude);
  if (rc == 0 && (!negative || magnitude == 0)) {
    out->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    out->via.u64 = magnitude;
    return 0;
  }
  if (rc == 0 && magnitude <= (uint64_t)INT64_MAX + 1) {
    out->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    out->via.i64 = (int64_t)(0 - magnitude);
    return 0;
  }
  /*  A decimal integer too big for 64 bits is still a number: keep it as
      the nearest double. Hex and octal ones fall through to strings. */
  if (s_parse_float(node->text, node->text_len, &d)) {
    out->type = MSGPACK_OBJECT_FLOAT64;
    out->via.f64 = d;
    return 0;
  }
  return s_obj_str(node, zone, out);
}

int nerve_conf_to_obj(const nerve_conf_t *node, msgpack_zone *zone,
                      msgpack_object *out) {
  if (!out || !zone)
    return NERVE_EINVAL;
  memset(out, 0, sizeof *out);
  if (!node) {
    out->type = MSGPACK_OBJECT_NIL;
    return 0;
  }
  if (node->type == NERVE_CONF_SCALAR)
    return s_obj_scalar(node, zone, out);
  if (node->count > UINT32_MAX)
    return NERVE_ERANGE;
  uint32_t n = (uint32_t)node->count;
  if (node->type == NERVE_CONF_SEQ) {
    msgpack_object *items = NULL;
    if (n && !(items = msgpack_zone_malloc(zone, n * sizeof *items)))
      return NERVE_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
      int rc = nerve_conf_to_obj(node->items[i], zone, &items[i]);
      if (rc)
        return rc;
    }
    out->type = MSGPACK_OBJECT_ARRAY;
    out->via.array.size = n;
    out->via.array.ptr = items;
    return 0;
  }
  msgpack_object_kv *kv = NULL;
  if (n && !(kv = msgpack_zone_malloc(zone, n * sizeof *kv)))
    return NERVE_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    int rc = s_obj_str(node->keys[i], zone, &kv[i].key);
    if (!rc)
      rc = nerve_conf_to_obj(node->items[i], zone, &kv[i].val);
    if (rc)
      return rc;
  }
  out->type = MSGPACK_OBJECT_MAP;
  out->via.map.size = n;
  out->via.map.ptr = kv;
  return 0;
}

int nerve_conf_load_daemon(const char *path, const char *default_path, nerve_conf_t **root,
                           const char **used, nerve_conf_error_t *err)
{
    memset(err, 0, sizeof *err);
    *root = NULL;
    *used = NULL;
    if (!path) {
        if (!default_path || access(default_path, F_OK) != 0)
            return 0;
        path = default_path;
    }
    int rc = nerve_conf_load(path, root, err);
    if (rc == 0)
        *used = path;
    return rc;
}
