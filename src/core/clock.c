/*
 * clock.c - clock reads and IMF-fixdate formatting.
 *
 * The date is computed from the day number with the civil-from-days
 * method: shift the year to start on 1 March, so the leap day is the last
 * day of the (shifted) year, split days into 400-year eras of 146097 days,
 * then into years and a day-of-year from which a linear formula gives the
 * month. Only integer division by constants; no tables of days per month
 * and no special cases for leap years.
 *
 * Invariant: hp_clock_date_t.text is always the formatting of hp_clock_date_t.sec (or
 * empty while sec == -1).
 */
#include "hotpath/clock.h"

#include <string.h>
#include <time.h>

/* The seconds of 9999-12-31 23:59:59 UTC, the last second with 4 digits. */
#define DATE_MAX_SEC 253402300799LL

uint64_t hp_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for this clock */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t hp_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t hp_clock_real_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static inline void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

void hp_clock_date_format(int64_t unix_sec, char out[HP_CLOCK_DATE_LEN + 1])
{
    static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (unix_sec < 0)
        unix_sec = 0;
    if (unix_sec > DATE_MAX_SEC)
        unix_sec = DATE_MAX_SEC;
    /* Non-negative from here, so plain division is floor division. */
    uint64_t days = (uint64_t)unix_sec / 86400;
    unsigned sod = (unsigned)((uint64_t)unix_sec % 86400);
    unsigned wd = (unsigned)((days + 4) % 7); /* 1970-01-01 was a Thursday */

    /* Days since 0000-03-01 (proleptic Gregorian); 719468 is the distance
     * from there to 1970-01-01. */
    uint64_t z = days + 719468;
    uint64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                  /* 0..146096 */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);       /* 0..365 */
    unsigned mp = (5 * doy + 2) / 153;              /* 0 = March .. 11 = Feb */
    unsigned mday = doy - (153 * mp + 2) / 5 + 1;
    unsigned month = mp < 10 ? mp + 3 : mp - 9;     /* 1..12 */
    unsigned year = (unsigned)(era * 400) + yoe + (month <= 2);

    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    memcpy(out, wday[wd], 3);
    out[3] = ',';
    out[4] = ' ';
    put2(out + 5, mday);
    out[7] = ' ';
    memcpy(out + 8, mon[month - 1], 3);
    out[11] = ' ';
    put2(out + 12, year / 100);
    put2(out + 14, year % 100);
    out[16] = ' ';
    put2(out + 17, sod / 3600);
    out[19] = ':';
    put2(out + 20, sod / 60 % 60);
    out[22] = ':';
    put2(out + 23, sod % 60);
    memcpy(out + 25, " GMT", 5); /* with the NUL */
}

bool hp_clock_date_update(hp_clock_date_t *d, int64_t unix_sec)
{
    if (d->sec == unix_sec)
        return false;
    hp_clock_date_format(unix_sec, d->text);
    d->sec = unix_sec;
    return true;
}
