/* glibc >= 2.38 headers (C23) redirect strtol/sscanf to __isoc23_* symbols that an older glibc
   lacks at link time; forward them to the classic functions (they differ only in accepting a
   0b/0B binary prefix). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }
int __isoc23_sscanf(const char *s, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); int r = vsscanf(s, fmt, ap); va_end(ap); return r;
}
