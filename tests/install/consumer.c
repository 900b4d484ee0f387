/* consumer.c: a program built against the INSTALLED libapd (not the build tree).
 * Exits 0 only if the installed library answers as the headers promise. */
#include <stdio.h>
#include <string.h>

#include <apd/apd.h>

int main(void)
{
    apd_dataset ds = {0};
    char hex[17];
    if (strcmp(apd_strerror(APD_ECHECKSUM), "checksum mismatch") != 0) return 1;
    if (apd_dataset_alloc(&ds, 2, 3, 4, 5, 2) != APD_OK) return 2;
    apd_dataset_hash(&ds, hex);
    if (strlen(hex) != 16) return 3;
    /* the public JSON reader and the provenance writer the tools use */
    char src[512];
    size_t n = apd_dataset_source_json(src, sizeof src, &ds, hex, 0);
    apd_json_doc *d;
    if (n == 0 || n >= sizeof src || apd_json_parse(&d, src, n) != APD_OK) return 4;
    char got[17];
    int ok = apd_json_string(d, apd_json_get(d, 0, "hash"), got, sizeof got) == APD_OK && strcmp(got, hex) == 0;
    apd_json_free(d);
    if (!ok) return 5;
    apd_dataset_free(&ds);
    printf("libapd %s ok\n", apd_version());
    return 0;
}
