/* cc_wtoken: token generation and hashing with OpenSSL libcrypto (see cc_wtoken.h). */
#include "cc_wtoken.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

cc_status cc_wtoken_new(char out[CC_WTOKEN_LEN + 1]) {
  unsigned char r[33];
  if (RAND_bytes(r, 32) != 1) return CC_INTERNAL;
  r[32] = 0;
  memcpy(out, "cct_", 4);
  char *p = out + 4;
  /* 32 bytes = 256 bits -> 43 base64url digits (the last one carries 4 bits). */
  for (int i = 0, bit = 0; i < 43; i++, bit += 6) {
    int byte = bit / 8, off = bit % 8;
    unsigned v = ((unsigned)r[byte] << 8 | r[byte + 1]) >> (10 - off);
    *p++ = b64url[v & 63];
  }
  *p = 0;
  OPENSSL_cleanse(r, sizeof r);
  return CC_OK;
}

struct cc_wtoken_hasher {
  EVP_MD *md;
};

cc_wtoken_hasher *cc_wtoken_hasher_new(void) {
  cc_wtoken_hasher *h = calloc(1, sizeof *h);
  if (h && !(h->md = EVP_MD_fetch(NULL, "SHA256", NULL))) {
    free(h);
    h = NULL;
  }
  return h;
}

void cc_wtoken_hasher_free(cc_wtoken_hasher *h) {
  if (!h) return;
  EVP_MD_free(h->md);
  free(h);
}

cc_status cc_wtoken_hash(const char *token, size_t len, char hex[CC_WTOKEN_HASH_LEN + 1]) {
  return cc_wtoken_hash_with(NULL, token, len, hex);
}

cc_status cc_wtoken_hash_with(const cc_wtoken_hasher *h, const char *token, size_t len,
                              char hex[CC_WTOKEN_HASH_LEN + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(token, len, md, &mdlen, h ? h->md : EVP_sha256(), NULL) != 1 || mdlen != 32)
    return CC_INTERNAL;
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = 0;
  return CC_OK;
}
