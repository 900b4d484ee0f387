/* status.c: apd_strerror, apd_version, and the apd_err helpers (see common/internal.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apd/status.h"
#include "common/internal.h"

const char *apd_strerror(apd_status s)
{
    switch (s) {
    case APD_OK: return "success";
    case APD_EINVAL: return "invalid argument";
    case APD_ENOMEM: return "out of memory";
    case APD_EOVERFLOW: return "size overflow";
    case APD_ELIMIT: return "limit exceeded";
    case APD_EBADSTATE: return "handle unusable after an earlier error";
    case APD_EUNSUPPORTED: return "unsupported";
    case APD_ECANCELED: return "canceled";
    case APD_EBUFSIZE: return "buffer too small";
    case APD_EIO: return "I/O error";
    case APD_ENOENT: return "no such file or directory";
    case APD_EEXIST: return "file exists";
    case APD_EACCES: return "permission denied";
    case APD_ELMDB: return "LMDB error";
    case APD_EMAGIC: return "not an .apd file (bad magic)";
    case APD_EVERSION: return "unsupported format version";
    case APD_ETRUNC: return "truncated data";
    case APD_ECORRUPT: return "corrupt data";
    case APD_ECHECKSUM: return "checksum mismatch";
    case APD_EFOREIGN: return "LMDB environment is not an .apd file";
    case APD_EMETA: return "bad or missing metadata";
    case APD_ERANGE: return "index out of range";
    case APD_ENOTFOUND: return "key not found";
    case APD_EDATASET: return "bad dataset";
    case APD_EIMAGE: return "bad image file";
    case APD_EEMPTY: return "no images";
    case APD_EMISMATCH: return "inconsistent inputs";
    case APD_ENUMERIC: return "non-finite number";
    case APD_ESHAPE: return "shape mismatch";
    }
    return "unknown status";
}

const char *apd_version(void) { return APD_VERSION_STRING; }

apd_status apd__err_set(apd_err *e, apd_status code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        e->code = code;
        e->sys_errno = 0;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

apd_status apd__status_from_errno(int err)
{
    switch (err) {
    case ENOENT: case ENOTDIR: return APD_ENOENT;
    case EACCES: case EPERM: return APD_EACCES;
    case EEXIST: return APD_EEXIST;
    case ENOMEM: return APD_ENOMEM;
    default: return APD_EIO;
    }
}

apd_status apd__err_sys(apd_err *e, int err, const char *path, const char *what)
{
    apd_status code = apd__status_from_errno(err);
    if (e) {
        e->code = code;
        e->sys_errno = err;
        snprintf(e->msg, sizeof e->msg, "%s: %s: %s", path ? path : "?", what ? what : "error",
                 strerror(err));
    }
    return code;
}
