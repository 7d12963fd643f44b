/* clock: the two clocks the program reads. Modules that decide by time take
 * the time as an argument, so tests can inject it; only callers read here. */
#ifndef COMET_CLOCK_H
#define COMET_CLOCK_H

#include <stdint.h>

int64_t clock_wall_ms(void);	/* Unix milliseconds: message times */
int64_t clock_mono_ms(void);	/* monotonic milliseconds: deadlines */
int64_t clock_mono_us(void);	/* monotonic microseconds: latencies */

#endif
