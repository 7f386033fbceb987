/* Claims: several ckptd instances watching one shared tree (a watcher per login
 * node, an HA pair, a daemon per node) convert each checkpoint once.
 *
 * Before a conversion starts, its instance claims the source in claims_dir: a file
 * named by a hash of the source's path, holding the instance's name, host, pid, its
 * temporaries' tag, a random token and the lease's expiry (wall-clock seconds). It
 * appears whole and atomically: written under a private name, then link(2)ed to the
 * claim's name, which fails with EEXIST if the name is taken (atomic on local
 * filesystems, NFSv3+, Lustre and GPFS, like O_EXCL, and a reader never sees a
 * half-written claim). The holder renews the lease while its job runs and removes
 * the claim when it ends. A claim whose lease has expired is taken over: it is
 * renamed aside (one taker wins the rename), checked to be the expired one, and
 * replaced by the taker's. Clocks of the hosts must agree to well within a lease
 * (NTP). See README "Clusters". */
#ifndef CK_CLAIM_H
#define CK_CLAIM_H

#include <stddef.h>

#include "error.h"

struct ck_claim_info {
  char instance[256];
  char host[128];
  long pid;
  char tag[9];        /* its temporaries' instance tag (fileio.h's ck_temp_instance) */
  char token[33];
  double expires;     /* wall-clock seconds */
  char source[1024];  /* for humans; the name is the hash */
};

/* Pure: a claim's text and back (0, or -1 if it is not a claim). */
int ck_claim_format(const struct ck_claim_info *c, char *buf, size_t len);
int ck_claim_parse(const char *text, size_t len, struct ck_claim_info *c);
/* The claim file of a source: DIR/HASH.claim (NULL on ENOMEM). */
char *ck_claim_path(const char *dir, const char *source);

struct ck_claims;

/* This instance's claims in dir, with lease seconds. NULL on ENOMEM. */
struct ck_claims *ck_claims_new(const char *dir, const char *instance, double lease);

enum { CK_CLAIM_OURS = 0, CK_CLAIM_HELD = 1, CK_CLAIM_TOOK_OVER = 2 };

/* Claim source: CK_CLAIM_OURS, CK_CLAIM_TOOK_OVER (an expired claim: *other is its
 * holder, whose temporaries the caller removes), CK_CLAIM_HELD (by *other), or a
 * negative code with err set (claims_dir unusable: the conversion must wait). A
 * claim this instance already holds is OURS again; one left by an earlier run of
 * this instance (same name) is taken over at once. */
int ck_claim_take(struct ck_claims *cs, const char *source, struct ck_claim_info *other, struct ck_err *err);

/* Renew every lease; lost(ctx, source) for each claim that is no longer ours (its
 * lease expired and another instance took it over). */
void ck_claims_renew(struct ck_claims *cs, void (*lost)(void *ctx, const char *source), void *ctx);

/* Give up a claim (the job ended): the file goes if it still is ours. */
void ck_claim_release(struct ck_claims *cs, const char *source);

/* How many claims are held. */
int ck_claims_held(const struct ck_claims *cs);

/* Release every claim and free. */
void ck_claims_free(struct ck_claims *cs);

#endif
