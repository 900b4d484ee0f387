/* format/lmdb_check.h: structural check of an .apd file's LMDB container, done with pread()
 * before LMDB maps the file (lmdb_check.c). Not installed.
 *
 * Why: liblmdb trusts its file. A data file shorter than its meta page claims is mapped past
 * its end (SIGBUS on the first access), and a damaged branch/leaf page sends LMDB through
 * wild pointers or into an assertion (abort). A reader must turn both into an error, so it
 * checks everything LMDB will follow for the snapshot it will read, first.
 */
#ifndef APD_FORMAT_LMDB_CHECK_H
#define APD_FORMAT_LMDB_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "apd/status.h"

/* The snapshot that was checked. */
typedef struct apd__lmdb_snap {
    uint64_t file_size;  /* st_size at the time of the check */
    uint64_t psize;      /* LMDB page size */
    uint64_t last_pgno;  /* last page of the snapshot */
    uint64_t txnid;      /* transaction that committed it */
    int meta_page;       /* 0 or 1: the meta page LMDB picks (the higher txnid) */
    uint64_t pages_reached; /* pages reached from the meta page (incl. both meta pages) */
} apd__lmdb_snap;

/* Check the LMDB data file at path the way LMDB's read path will use it:
 *  - both meta pages (P_META, LMDB magic 0xBEEFC0DE, data version 1, one page size that is a
 *    power of two in 512..65536); the snapshot is the one with the higher txnid, as LMDB
 *    picks it;
 *  - the file covers (last_pgno + 1) * psize bytes (else it was truncated: APD_ETRUNC);
 *  - the main database and, inside it, the named databases "meta" and "chunks" (flags 0, no
 *    duplicates): every page they reach (branch, leaf, overflow run) lies in 2..last_pgno,
 *    names itself in its header, has the type its depth requires, nodes inside the page, keys
 *    in strictly increasing order and inside the range its parent gives, and is reached only
 *    once; each tree's depth, entry and page counts agree with its database record.
 * Other named databases (a foreign LMDB environment) are not walked: LMDB never reads them
 * for an .apd. Reads only with pread (never maps the file), so a damaged file cannot crash
 * it. On failure why (cap bytes) holds the reason, naming pages and databases.
 * @return APD_OK, APD_EMAGIC (page 0 is not an LMDB meta page), APD_EVERSION (other LMDB
 *         data version), APD_ETRUNC (file shorter than the snapshot), APD_ECORRUPT,
 *         APD_ENOMEM, or the status of a failed open/read (APD_ENOENT, APD_EACCES, APD_EIO). */
apd_status apd__lmdb_check(const char *path, apd__lmdb_snap *snap, char *why, size_t cap);

#endif
