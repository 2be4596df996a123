/*
 * cc_warena: a per-thread bump allocator for the request tree an event-loop thread parses.
 *
 * A cached exec is answered in the event loop; parsing its request with cJSON made a dozen
 * malloc/free pairs, a tenth of the request's CPU.  cJSON's allocation hooks (installed once,
 * for the whole process) send its allocations to the calling thread's arena between
 * cc_warena_begin and cc_warena_end, and to malloc everywhere else; cJSON_free of a block in
 * the thread's arena does nothing, any other block goes to free.
 *
 * The rule that makes this safe: a tree (or any cJSON allocation) made inside a scope is
 * released on the same thread before that thread's next cc_warena_begin, which reuses the
 * arena from its start, and is never handed to another thread.  cc_wrpc keeps it: the parse
 * is the only thing in the scope, and a request deferred to the pool is parsed again there.
 * A scope that outgrows the arena gets malloc'd blocks, freed as usual.
 *
 * One effect on the rest of the process: with its own hooks cJSON never uses realloc, so a
 * printed text grows by malloc, copy and free (the large responses, histories, are printed by
 * cc_wjson and do not go through it).
 */
#ifndef CC_WARENA_H
#define CC_WARENA_H

/* Installs cJSON's hooks.  Call once before any thread uses cJSON (cc_worker_new does). */
void cc_warena_install(void);

/* Opens a scope on this thread (the arena is reset; made at the first call). */
void cc_warena_begin(void);
/* Closes it: cJSON allocates with malloc again; blocks made in the scope stay valid. */
void cc_warena_end(void);

#endif
