/* waiter: the set of held subscribers and the hand-over queue. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "waiter.h"

struct waiter_chan {
	struct waiter_chan *hnext;
	struct waiter_link *head;
	uint64_t hash;
	char name[];
};

struct waiter_set {
	struct waiter_chan **bucket;
	size_t nbucket, nchan;
	struct waiter **heap;
	size_t nheap, capheap;
	size_t nindexed;
};

struct waiter *waiter_new(const char *const *chans, int nchan)
{
	size_t names = 0;
	for (int i = 0; i < nchan; i++)
		names += strlen(chans[i]) + 1;
	struct waiter *w = xcalloc(1, sizeof *w + (size_t)nchan * sizeof w->links[0] + names);
	char *p = (char *)&w->links[nchan];
	w->nchan = nchan;
	w->heap_idx = SIZE_MAX;
	for (int i = 0; i < nchan; i++) {
		size_t n = strlen(chans[i]) + 1;
		memcpy(p, chans[i], n);
		w->links[i].w = w;
		w->links[i].name = p;
		p += n;
	}
	return w;
}

void waiter_free(struct waiter *w)
{
	if (!w)
		return;
	buf_free(&w->items);
	free(w->callback);
	free(w->headers);
	free(w->exclude);
	if (w->render_free)
		w->render_free(w->render_arg);
	for (int i = 0; i < w->nmembers; i++) {
		free(w->members[i].channel);
		free(w->members[i].id);
		free(w->members[i].info);
	}
	free(w->members);
	free(w);
}

void waiter_names(const struct waiter *w, const char **out)
{
	for (int i = 0; i < w->nchan; i++)
		out[i] = w->links[i].name;
}

struct waiter_set *waiter_set_new(void)
{
	struct waiter_set *s = xcalloc(1, sizeof *s);
	s->nbucket = 64;
	s->bucket = xcalloc(s->nbucket, sizeof *s->bucket);
	return s;
}

void waiter_set_free(struct waiter_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nbucket; i++)
		for (struct waiter_chan *c = s->bucket[i], *next; c; c = next) {
			next = c->hnext;
			free(c);
		}
	free(s->bucket);
	free(s->heap);
	free(s);
}

size_t waiter_count(const struct waiter_set *s)
{
	return s->nheap;
}

static uint64_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;	/* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct waiter_chan **slot(struct waiter_set *s, const char *name, uint64_t h)
{
	struct waiter_chan **pp = &s->bucket[h & (s->nbucket - 1)];
	while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0))
		pp = &(*pp)->hnext;
	return pp;
}

static void grow(struct waiter_set *s)
{
	size_t n = s->nbucket * 2;
	struct waiter_chan **b = xcalloc(n, sizeof *b);
	for (size_t i = 0; i < s->nbucket; i++)
		for (struct waiter_chan *c = s->bucket[i], *next; c; c = next) {
			next = c->hnext;
			c->hnext = b[c->hash & (n - 1)];
			b[c->hash & (n - 1)] = c;
		}
	free(s->bucket);
	s->bucket = b;
	s->nbucket = n;
}

struct waiter_link *waiter_on(struct waiter_set *s, const char *name)
{
	struct waiter_chan *c = *slot(s, name, hash(name));
	return c ? c->head : NULL;
}

/* Heap of waiters by deadline; heap_idx tracks each one's place. */
static bool before(const struct waiter *a, const struct waiter *b)
{
	return a->deadline < b->deadline;
}

static void heap_set(struct waiter_set *s, size_t i, struct waiter *w)
{
	s->heap[i] = w;
	w->heap_idx = i;
}

static void sift_up(struct waiter_set *s, size_t i)
{
	struct waiter *w = s->heap[i];
	while (i > 0 && before(w, s->heap[(i - 1) / 2])) {
		heap_set(s, i, s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(s, i, w);
}

static void sift_down(struct waiter_set *s, size_t i)
{
	struct waiter *w = s->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && before(s->heap[c + 1], s->heap[c]))
			c++;
		if (!before(s->heap[c], w))
			break;
		heap_set(s, i, s->heap[c]);
		i = c;
	}
	heap_set(s, i, w);
}

static void heap_add(struct waiter_set *s, struct waiter *w, int64_t deadline)
{
	w->deadline = deadline;
	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 64;
		s->heap = xrealloc(s->heap, s->capheap * sizeof *s->heap);
	}
	s->heap[s->nheap] = w;
	sift_up(s, s->nheap++);
	w->parked = true;
}

void waiter_park_timer(struct waiter_set *s, struct waiter *w, int64_t deadline)
{
	heap_add(s, w, deadline);
}

size_t waiter_listening(const struct waiter_set *s)
{
	return s->nindexed;
}

void waiter_park(struct waiter_set *s, struct waiter *w, int64_t deadline)
{
	w->indexed = true;
	s->nindexed++;
	for (int i = 0; i < w->nchan; i++) {
		struct waiter_link *l = &w->links[i];
		uint64_t h = hash(l->name);
		struct waiter_chan **pp = slot(s, l->name, h);
		if (!*pp) {
			size_t n = strlen(l->name) + 1;
			struct waiter_chan *c = xcalloc(1, sizeof *c + n);
			memcpy(c->name, l->name, n);
			c->hash = h;
			*pp = c;
			if (++s->nchan > s->nbucket)
				grow(s);
			pp = slot(s, l->name, h);
		}
		l->ch = *pp;
		l->prev = NULL;
		l->next = l->ch->head;
		if (l->next)
			l->next->prev = l;
		l->ch->head = l;
	}
	heap_add(s, w, deadline);
}

void waiter_unpark(struct waiter_set *s, struct waiter *w)
{
	if (!w->parked)
		return;
	for (int i = 0; w->indexed && i < w->nchan; i++) {
		struct waiter_link *l = &w->links[i];
		if (l->prev)
			l->prev->next = l->next;
		else
			l->ch->head = l->next;
		if (l->next)
			l->next->prev = l->prev;
		if (!l->ch->head) {
			/* Last waiter of the channel: forget the channel. */
			struct waiter_chan **pp = slot(s, l->ch->name, l->ch->hash);
			*pp = l->ch->hnext;
			free(l->ch);
			s->nchan--;
		}
		l->ch = NULL;
		l->prev = l->next = NULL;
	}
	size_t i = w->heap_idx;
	struct waiter *last = s->heap[--s->nheap];
	if (i < s->nheap) {
		heap_set(s, i, last);
		sift_down(s, i);
		sift_up(s, last->heap_idx);
	}
	w->heap_idx = SIZE_MAX;
	w->parked = false;
	if (w->indexed)
		s->nindexed--;
	w->indexed = false;
}

int64_t waiter_next_deadline(const struct waiter_set *s)
{
	return s->nheap ? s->heap[0]->deadline : INT64_MAX;
}

struct waiter *waiter_expired(struct waiter_set *s, int64_t now)
{
	if (!s->nheap || s->heap[0]->deadline > now)
		return NULL;
	struct waiter *w = s->heap[0];
	waiter_unpark(s, w);
	return w;
}

void waiter_each(struct waiter_set *s, void (*fn)(struct waiter *, void *), void *arg)
{
	for (size_t i = 0; i < s->nheap; i++)
		fn(s->heap[i], arg);
}

int waiter_queue_init(struct waiter_queue *q)
{
	memset(q, 0, sizeof *q);
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0)
		return -1;
	pthread_mutex_init(&q->mu, NULL);
	return 0;
}

void waiter_queue_destroy(struct waiter_queue *q)
{
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
}

bool waiter_queue_push_quiet(struct waiter_queue *q, struct waiter_qlink *l)
{
	l->next = NULL;
	pthread_mutex_lock(&q->mu);
	bool was_empty = q->head == NULL;
	if (q->tail)
		q->tail->next = l;
	else
		q->head = l;
	q->tail = l;
	pthread_mutex_unlock(&q->mu);
	return was_empty;
}

void waiter_queue_ring(struct waiter_queue *q)
{
	uint64_t one = 1;
	/* Cannot fail short of a counter overflow, which the reader prevents. */
	if (write(q->efd, &one, sizeof one) < 0)
		return;
}

/* Only the push onto an empty queue rings: the take that empties the queue
 * takes every link behind the first too, and it comes after that ring (or
 * makes it a harmless spare). */
void waiter_queue_push(struct waiter_queue *q, struct waiter_qlink *l)
{
	if (waiter_queue_push_quiet(q, l))
		waiter_queue_ring(q);
}

struct waiter_qlink *waiter_queue_take(struct waiter_queue *q)
{
	uint64_t v;
	if (read(q->efd, &v, sizeof v) < 0)
		v = 0;
	pthread_mutex_lock(&q->mu);
	struct waiter_qlink *l = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->mu);
	return l;
}
