/* apd/json.h: JSON helpers the library shares with its tools and users.
 *
 *     char buf[64];
 *     size_t need = apd_json_escape(buf, sizeof buf, name);   // "name" with quotes
 *     if (need >= sizeof buf) { ... allocate need + 1 and call again ... }
 *
 * Thread-safe (no state).
 */
#ifndef APD_JSON_H
#define APD_JSON_H

#include <stddef.h>

#include "apd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write s as a quoted JSON string literal (RFC 8259 escapes for quote, backslash and control
 * characters; other bytes unchanged) into out, NUL-terminated when cap > 0 (truncated to fit).
 * @return the length of the full literal without the NUL (snprintf convention): the output
 *         was complete iff the return value is < cap. */
APD_API size_t apd_json_escape(char *out, size_t cap, const char *s);

#ifdef __cplusplus
}
#endif

#endif
