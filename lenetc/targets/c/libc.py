"""Targets (c, libc): the C99 library's identifiers, which a layer's C names must not take.

Takes nothing; `LIBC` is every function, lower-case macro, type and object that C99's headers
(7.2-7.26) declare. gcc and clang know most of the functions as builtins even where no header is
included (`static void memset(...)` is "conflicting types for built-in function" under -Werror),
so model.c renames a layer called after any of them (`printf` -> `printf_layer`), as it does C's
keywords and what <math.h> declares. Upper-case names are already out (they may be macros).
"""

from __future__ import annotations

_FUNCTIONS = """
    assert abort abs atexit atof atoi atol atoll bsearch calloc div exit _Exit free getenv labs
    ldiv llabs lldiv malloc mblen mbstowcs mbtowc qsort rand realloc srand strtod strtof strtol
    strtold strtoll strtoul strtoull system wcstombs wctomb
    clearerr fclose feof ferror fflush fgetc fgetpos fgets fopen fprintf fputc fputs fread freopen
    fscanf fseek fsetpos ftell fwrite getc getchar gets perror printf putc putchar puts remove
    rename rewind scanf setbuf setvbuf snprintf sprintf sscanf tmpfile tmpnam ungetc vfprintf
    vfscanf vprintf vscanf vsnprintf vsprintf vsscanf
    memchr memcmp memcpy memmove memset strcat strchr strcmp strcoll strcpy strcspn strerror
    strlen strncat strncmp strncpy strpbrk strrchr strspn strstr strtok strxfrm
    isalnum isalpha isblank iscntrl isdigit isgraph islower isprint ispunct isspace isupper
    isxdigit tolower toupper
    asctime clock ctime difftime gmtime localtime mktime strftime time
    raise signal longjmp setjmp localeconv setlocale
    va_arg va_copy va_end va_start
    feclearexcept fegetenv fegetexceptflag fegetround feholdexcept feraiseexcept fesetenv
    fesetexceptflag fesetround fetestexcept feupdateenv
    imaxabs imaxdiv strtoimax strtoumax wcstoimax wcstoumax
    btowc fgetwc fgetws fputwc fputws fwide fwprintf fwscanf getwc getwchar mbrlen mbrtowc
    mbsinit mbsrtowcs putwc putwchar swprintf swscanf ungetwc vfwprintf vfwscanf vswprintf
    vswscanf vwprintf vwscanf wcrtomb wcscat wcschr wcscmp wcscoll wcscpy wcscspn wcsftime wcslen
    wcsncat wcsncmp wcsncpy wcspbrk wcsrchr wcsrtombs wcsspn wcsstr wcstod wcstof wcstok wcstol
    wcstold wcstoll wcstoul wcstoull wcsxfrm wctob wmemchr wmemcmp wmemcpy wmemmove wmemset
    wprintf wscanf iswalnum iswalpha iswblank iswcntrl iswctype iswdigit iswgraph iswlower
    iswprint iswpunct iswspace iswupper iswxdigit towctrans towlower towupper wctrans wctype
    cabs cacos cacosh carg casin casinh catan catanh ccos ccosh cexp cimag clog conj cpow cproj
    creal csin csinh csqrt ctan ctanh
    alloca bzero bcopy index rindex strdup strndup stpcpy ffs
"""
_TYPES_AND_OBJECTS = """
    errno stdin stdout stderr bool true false complex imaginary
    size_t ptrdiff_t wchar_t wint_t wctrans_t wctype_t mbstate_t div_t ldiv_t lldiv_t imaxdiv_t
    fpos_t jmp_buf sig_atomic_t va_list clock_t time_t tm lconv fenv_t fexcept_t
    int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t int_least8_t
    int_least16_t int_least32_t int_least64_t uint_least8_t uint_least16_t uint_least32_t
    uint_least64_t int_fast8_t int_fast16_t int_fast32_t int_fast64_t uint_fast8_t uint_fast16_t
    uint_fast32_t uint_fast64_t intptr_t uintptr_t intmax_t uintmax_t
"""
# <complex.h>'s functions in their float and long double forms too (<math.h>'s are in targets/c.py).
_SUFFIXED = """cabs cacos cacosh carg casin casinh catan catanh ccos ccosh cexp cimag clog conj cpow
    cproj creal csin csinh csqrt ctan ctanh"""

LIBC = frozenset(
    _FUNCTIONS.split()
    + _TYPES_AND_OBJECTS.split()
    + [f + s for f in _SUFFIXED.split() for s in "fl"]
)
