/*
 * cc_sbd_tls: sandboxd's HTTPS certificate: the operator's files, or issued by a local CA
 * that sandboxd keeps in a directory (cc_sbd_tls.c).
 */
#ifndef CC_SBD_TLS_H
#define CC_SBD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "cc_status.h"

/* A lower-case DNS name (letters, digits, '-', dots between labels). */
bool cc_sbd_tls_domain_ok(const char *domain);

/* The certificate chain and key (PEM, malloc'd) to serve: read from cert_file/key_file when
 * given, else issued for *.<domain> by the CA in ca_dir (created there when missing). */
cc_status cc_sbd_tls_setup(const char *cert_file, const char *key_file, const char *ca_dir,
                           const char *domain, char **cert_pem, char **key_pem, char *err,
                           size_t errlen);

#endif
