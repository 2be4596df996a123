/*
 * cc_wstore: includes shared/cc_proto.h and shared/cc_store.h together.
 *
 * Both headers declare the record statuses as CC_RECORD_PENDING..CC_RECORD_CANCELED (in
 * two enum types with the same values).  Until they share one enum, the store's copy is
 * seen here as CC_STORE_RECORD_*, and the static assertions below prove that both lists
 * agree, so the worker passes CC_RECORD_* values to the store safely.
 */
#ifndef CC_WSTORE_H
#define CC_WSTORE_H

#include "cc_proto.h"

#define CC_RECORD_PENDING CC_STORE_RECORD_PENDING
#define CC_RECORD_RUNNING CC_STORE_RECORD_RUNNING
#define CC_RECORD_SUCCESS CC_STORE_RECORD_SUCCESS
#define CC_RECORD_FAILED CC_STORE_RECORD_FAILED
#define CC_RECORD_ERROR CC_STORE_RECORD_ERROR
#define CC_RECORD_TIMEOUT CC_STORE_RECORD_TIMEOUT
#define CC_RECORD_CANCELED CC_STORE_RECORD_CANCELED
#define CC_RECORD_STATUS_COUNT CC_STORE_RECORD_STATUS_COUNT
#include "cc_store.h"
#undef CC_RECORD_PENDING
#undef CC_RECORD_RUNNING
#undef CC_RECORD_SUCCESS
#undef CC_RECORD_FAILED
#undef CC_RECORD_ERROR
#undef CC_RECORD_TIMEOUT
#undef CC_RECORD_CANCELED
#undef CC_RECORD_STATUS_COUNT

_Static_assert((int)CC_STORE_RECORD_PENDING == (int)CC_RECORD_PENDING &&
                   (int)CC_STORE_RECORD_RUNNING == (int)CC_RECORD_RUNNING &&
                   (int)CC_STORE_RECORD_SUCCESS == (int)CC_RECORD_SUCCESS &&
                   (int)CC_STORE_RECORD_FAILED == (int)CC_RECORD_FAILED &&
                   (int)CC_STORE_RECORD_ERROR == (int)CC_RECORD_ERROR &&
                   (int)CC_STORE_RECORD_TIMEOUT == (int)CC_RECORD_TIMEOUT &&
                   (int)CC_STORE_RECORD_CANCELED == (int)CC_RECORD_CANCELED,
               "cc_proto and cc_store record statuses differ");

#endif
