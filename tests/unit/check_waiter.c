#include "config.h"
#include "suites.h"
Suite *waiter_suite(void)
{
	Suite *s = suite_create("waiter");
	return s;
}
