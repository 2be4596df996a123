/*
 * cc_sbd_tls: the certificate sandboxd serves HTTPS with, so that `https://<port>-<id>.<domain>`
 * works as on E2B (docs/sandboxd.md, "Port URLs and TLS").
 *
 * Either the operator's own certificate and key (PEM files, e.g. a wildcard certificate for
 * *.<domain> from their CA), or a local CA: on first use sandboxd creates a CA key and
 * self-signed CA certificate in --tls-ca DIR (ca-key.pem 0600, ca.pem to be trusted by
 * clients: NODE_EXTRA_CA_CERTS, a browser's or the system's store), and at every start issues
 * a fresh server certificate from it for *.<domain>, <domain>, localhost, 127.0.0.1 and ::1,
 * valid 90 days, with a new key that never touches the disk.  Keys are ECDSA P-256; everything
 * goes through OpenSSL's libcrypto (the project already links it).
 */
#include "cc_sbd_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CA_DAYS 3650
#define LEAF_DAYS 90

static cc_status fail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return CC_BAD_REQUEST;
}

/* A file's whole content, NUL-terminated (at most 1 MiB). */
static char *read_file(const char *path, char *err, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fail(err, n, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc((1u << 20) + 1);
  size_t len = buf ? fread(buf, 1, 1u << 20, f) : 0;
  bool big = buf && len == (1u << 20) && fgetc(f) != EOF;
  fclose(f);
  if (!buf || big) {
    free(buf);
    fail(err, n, "%s: %s", path, big ? "larger than 1 MiB" : "out of memory");
    return NULL;
  }
  buf[len] = 0;
  return buf;
}

/* PEM text of a key or certificate (malloc'd). */
static char *pem_of(EVP_PKEY *key, X509 *cert) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return NULL;
  int ok = key ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
               : PEM_write_bio_X509(b, cert);
  char *data = NULL;
  long len = BIO_get_mem_data(b, &data);
  char *out = ok && len > 0 ? malloc((size_t)len + 1) : NULL;
  if (out) {
    memcpy(out, data, (size_t)len);
    out[len] = 0;
  }
  BIO_free(b);
  return out;
}

/* Writes text to path with mode, replacing it atomically. */
static bool write_file(const char *path, const char *text, mode_t mode) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  size_t n = strlen(text);
  bool ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (ok) ok = rename(tmp, path) == 0;
  if (!ok) unlink(tmp);
  return ok;
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  bool ok = ext && X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

/* A certificate for key, signed by issuer_key (issuer NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, long days, X509 *issuer,
                       EVP_PKEY *issuer_key, bool ca, const char *san) {
  X509 *cert = X509_new();
  unsigned char serial[16];
  BIGNUM *bn = NULL;
  bool ok = cert && RAND_bytes(serial, sizeof serial) == 1;
  if (ok) {
    serial[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(serial, sizeof serial, NULL);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
         X509_set_version(cert, 2) && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
         X509_gmtime_adj(X509_getm_notAfter(cert), days * 86400L) &&
         X509_set_pubkey(cert, key);
  }
  BN_free(bn);
  X509_NAME *name = ok ? X509_get_subject_name(cert) : NULL;
  ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                        (const unsigned char *)"codecanvas-sandboxd", -1, -1, 0) &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) &&
       X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
  X509 *iss = issuer ? issuer : cert;
  if (ok && ca)
    ok = add_ext(cert, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(cert, iss, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         add_ext(cert, iss, NID_subject_key_identifier, "hash");
  if (ok && !ca)
    ok = add_ext(cert, iss, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(cert, iss, NID_key_usage, "critical,digitalSignature") &&
         add_ext(cert, iss, NID_ext_key_usage, "serverAuth") &&
         add_ext(cert, iss, NID_subject_alt_name, san) &&
         add_ext(cert, iss, NID_authority_key_identifier, "keyid:always");
  ok = ok && X509_sign(cert, issuer_key, EVP_sha256()) > 0;
  if (!ok) {
    X509_free(cert);
    return NULL;
  }
  return cert;
}

/* The CA in dir: loaded, or created there. */
static cc_status load_or_create_ca(const char *dir, EVP_PKEY **key, X509 **cert, char *err,
                                   size_t n) {
  char kpath[4096], cpath[4096];
  snprintf(kpath, sizeof kpath, "%s/ca-key.pem", dir);
  snprintf(cpath, sizeof cpath, "%s/ca.pem", dir);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return fail(err, n, "cannot create --tls-ca %s: %s", dir, strerror(errno));
  FILE *kf = fopen(kpath, "r");
  if (kf) {
    *key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
    fclose(kf);
    FILE *cf = fopen(cpath, "r");
    *cert = cf ? PEM_read_X509(cf, NULL, NULL, NULL) : NULL;
    if (cf) fclose(cf);
    if (!*key || !*cert || X509_check_private_key(*cert, *key) != 1)
      return fail(err, n, "%s and %s are not a CA certificate and its key", cpath, kpath);
    return CC_OK;
  }
  if (errno != ENOENT) return fail(err, n, "cannot read %s: %s", kpath, strerror(errno));
  char host[256] = "localhost", cn[320];
  gethostname(host, sizeof host - 1);
  snprintf(cn, sizeof cn, "codecanvas-sandboxd local CA (%.200s)", host);
  *key = EVP_EC_gen("P-256");
  *cert = *key ? make_cert(*key, cn, CA_DAYS, NULL, *key, true, NULL) : NULL;
  char *kpem = *cert ? pem_of(*key, NULL) : NULL, *cpem = *cert ? pem_of(NULL, *cert) : NULL;
  bool ok = kpem && cpem && write_file(kpath, kpem, 0600) && write_file(cpath, cpem, 0644);
  if (kpem) OPENSSL_cleanse(kpem, strlen(kpem));
  free(kpem);
  free(cpem);
  if (!ok) return fail(err, n, "cannot create the CA in %s: %s", dir, strerror(errno));
  return CC_OK;
}

bool cc_sbd_tls_domain_ok(const char *domain) {
  size_t n = strlen(domain), labels = 1, run = 0;
  if (n == 0 || n > 200 || domain[0] == '.' || domain[n - 1] == '.') return false;
  for (const char *p = domain; *p; p++) {
    if (*p == '.') {
      if (run == 0) return false;
      labels++, run = 0;
    } else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') {
      if (++run > 63) return false;
    } else {
      return false;
    }
  }
  return labels >= 1;
}

cc_status cc_sbd_tls_setup(const char *cert_file, const char *key_file, const char *ca_dir,
                           const char *domain, char **cert_pem, char **key_pem, char *err,
                           size_t errlen) {
  *cert_pem = *key_pem = NULL;
  if (cert_file || key_file) {
    if (!cert_file || !key_file)
      return fail(err, errlen, "--tls-cert and --tls-key go together");
    if (!(*cert_pem = read_file(cert_file, err, errlen))) return CC_BAD_REQUEST;
    if (!(*key_pem = read_file(key_file, err, errlen))) {
      free(*cert_pem);
      *cert_pem = NULL;
      return CC_BAD_REQUEST;
    }
    return CC_OK;
  }
  /* A wildcard over one label (*.localhost) is refused by clients (Node, browsers). */
  if (!strchr(domain, '.'))
    return fail(err, errlen,
                "--tls-ca issues a certificate for *.%s, which clients refuse (a wildcard over a "
                "single label): use a --domain of two labels or more, e.g. sandbox.localhost",
                domain);
  EVP_PKEY *ca_key = NULL, *key = NULL;
  X509 *ca = NULL, *leaf = NULL;
  cc_status st = load_or_create_ca(ca_dir, &ca_key, &ca, err, errlen);
  if (st == CC_OK) {
    char san[600];
    snprintf(san, sizeof san, "DNS:*.%s,DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", domain,
             domain);
    key = EVP_EC_gen("P-256");
    leaf = key ? make_cert(key, domain, LEAF_DAYS, ca, ca_key, false, san) : NULL;
    *cert_pem = leaf ? pem_of(NULL, leaf) : NULL;
    *key_pem = leaf ? pem_of(key, NULL) : NULL;
    if (!*cert_pem || !*key_pem) {
      free(*cert_pem);
      free(*key_pem);
      *cert_pem = *key_pem = NULL;
      st = fail(err, errlen, "cannot issue the server certificate for %s", domain);
    }
  }
  X509_free(leaf);
  X509_free(ca);
  EVP_PKEY_free(key);
  EVP_PKEY_free(ca_key);
  return st;
}
